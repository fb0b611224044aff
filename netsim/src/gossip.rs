//! The gossip layer: who listens to which topic, and how long a message takes to reach each
//! listener.
//!
//! Like gossipsub, a message published on a topic reaches every node subscribed to it (and
//! nobody else) by hopping along a mesh of degree [`MESH_DEGREE`]: it takes about
//! log_D(listeners) hops, each a link of the simulated network, and every listener receives it
//! from up to D neighbours, the first copy delivered and the rest dropped as duplicates. The
//! simulator delivers the first copy and counts the rest as transmissions.

use shoal_protocol::{Subscription, Topic};
use std::collections::HashMap;

/// Mesh degree of the modelled gossipsub (its default `D`).
pub const MESH_DEGREE: u64 = 6;

#[derive(Default)]
pub struct Topics {
    listeners: HashMap<Topic, Vec<u32>>,
    /// Topics per node, to unsubscribe a node that crashes.
    of_node: Vec<Vec<Topic>>,
}

impl Topics {
    pub fn new(nodes: usize) -> Self {
        Self {
            listeners: HashMap::new(),
            of_node: vec![Vec::new(); nodes],
        }
    }

    pub fn apply(&mut self, node: usize, change: Subscription) {
        match change {
            Subscription::Join(topic) => {
                if !self.of_node[node].contains(&topic) {
                    self.of_node[node].push(topic);
                    self.listeners.entry(topic).or_default().push(node as u32);
                }
            }
            Subscription::Leave(topic) => self.leave(node, topic),
        }
    }

    fn leave(&mut self, node: usize, topic: Topic) {
        let Some(at) = self.of_node[node].iter().position(|t| *t == topic) else {
            return;
        };
        self.of_node[node].swap_remove(at);
        if let Some(list) = self.listeners.get_mut(&topic) {
            if let Some(i) = list.iter().position(|&n| n as usize == node) {
                list.remove(i);
            }
            if list.is_empty() {
                self.listeners.remove(&topic);
            }
        }
    }

    /// Drops every subscription of a node that crashed.
    pub fn forget(&mut self, node: usize) {
        while let Some(&topic) = self.of_node[node].last() {
            self.leave(node, topic);
        }
    }

    pub fn listeners(&self, topic: &Topic) -> &[u32] {
        self.listeners.get(topic).map_or(&[], Vec::as_slice)
    }
}

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
    fn a_crashed_node_leaves_every_topic() {
        let mut t = Topics::new(3);
        t.apply(0, Subscription::Join(Topic::Jobs));
        t.apply(1, Subscription::Join(Topic::Jobs));
        t.apply(1, Subscription::Join(Topic::Adverts(4)));
        t.apply(1, Subscription::Join(Topic::Jobs));
        assert_eq!(t.listeners(&Topic::Jobs), &[0, 1]);
        t.forget(1);
        assert_eq!(t.listeners(&Topic::Jobs), &[0]);
        assert!(t.listeners(&Topic::Adverts(4)).is_empty());
    }

    #[test]
    fn depth_grows_with_the_log_of_the_listeners() {
        assert_eq!(mesh_depth(2), 1);
        assert_eq!(mesh_depth(36), 2);
        assert_eq!(mesh_depth(37), 3);
        assert_eq!(mesh_depth(10_000), 6);
    }
}
