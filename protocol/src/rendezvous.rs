//! Rendezvous (highest-random-weight) hashing of (task, peer), weighted by capacity.
//!
//! Every node computes the same scores from the same inputs, so without talking they agree on
//! which peer ranks first for each task. Conflicts between two claims are settled with the
//! unweighted hash alone, which depends on nothing that two views could disagree on.

use crate::ids::{JobId, NodeId};

/// A well-mixed 64-bit hash of (job, task, node). Pure arithmetic: the same on every node.
#[inline]
pub fn hash(job: &JobId, task: u32, node: &NodeId) -> u64 {
    let mut z = job.prefix64()
        ^ node.prefix64().rotate_left(17)
        ^ u64::from(task).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Weighted rendezvous score: `weight / -ln(u)` with `u` uniform in (0, 1) from the hash. A
/// peer with twice the weight ranks first for twice as many tasks.
#[inline]
pub fn score(job: &JobId, task: u32, node: &NodeId, weight: u32) -> f64 {
    let u = ((hash(job, task, node) >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    f64::from(weight) / -u.ln()
}

/// Which of two claimers keeps a contested task: the one with the higher unweighted hash.
pub fn conflict_winner(job: &JobId, task: u32, a: NodeId, b: NodeId) -> NodeId {
    if (hash(job, task, &a), a) >= (hash(job, task, &b), b) {
        a
    } else {
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_shifts_the_share_of_first_ranks() {
        let job = JobId([7; 32]);
        let heavy = NodeId([1; 32]);
        let light = NodeId([2; 32]);
        let wins = (0..10_000)
            .filter(|&t| score(&job, t, &heavy, 3) > score(&job, t, &light, 1))
            .count();
        // Expected share 3/4.
        assert!((7_200..7_800).contains(&wins), "heavy won {wins}");
    }

    #[test]
    fn conflict_winner_is_symmetric() {
        let job = JobId([3; 32]);
        let (a, b) = (NodeId([1; 32]), NodeId([9; 32]));
        for t in 0..100 {
            assert_eq!(
                conflict_winner(&job, t, a, b),
                conflict_winner(&job, t, b, a)
            );
        }
    }
}
