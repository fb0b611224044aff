//! The gossip layer's cost: how long a message takes to reach each listener of its topic, and
//! how many transmissions that takes. (Who listens to which topic is the shared harness's
//! `Topics`.)
//!
//! Like gossipsub, a message published on a topic reaches every node subscribed to it (and
//! nobody else) by hopping along a mesh of degree [`MESH_DEGREE`]: it takes about
//! log_D(listeners) hops, each a link of the simulated network, and every listener receives it
//! from up to D neighbours, the first copy delivered and the rest dropped as duplicates. The
//! simulator delivers the first copy and counts the rest as transmissions.

/// Mesh degree of the modelled gossipsub (its default `D`).
pub const MESH_DEGREE: u64 = 6;

/// Hops a message takes to reach the farthest of `listeners` nodes in a mesh of degree D.
pub fn mesh_depth(listeners: usize) -> u64 {
    let mut depth = 1;
    let mut reach = MESH_DEGREE;
    while reach < listeners as u64 {
        reach *= MESH_DEGREE;
        depth += 1;
    }
    depth
}

/// Transmissions a delivery costs in a mesh of degree D among `listeners` nodes: the copy
/// delivered plus the duplicates from the other mesh neighbours.
pub fn transmissions_per_delivery(listeners: usize) -> u64 {
    MESH_DEGREE.min(listeners.saturating_sub(1) as u64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_grows_with_the_log_of_the_listeners() {
        assert_eq!(mesh_depth(2), 1);
        assert_eq!(mesh_depth(36), 2);
        assert_eq!(mesh_depth(37), 3);
        assert_eq!(mesh_depth(10_000), 6);
    }
}
