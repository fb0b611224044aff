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
    f64::from(weight) / neg_ln(u)
}

/// `-ln(u)` for `u` in (0, 1), to about eight significant digits, from additions,
/// multiplications and one division only: several times faster than the C library's `log`,
/// and bit-for-bit the same on every machine (IEEE 754 rounds these exactly), so every node
/// ranks alike.
#[inline]
fn neg_ln(u: f64) -> f64 {
    const LN_2: f64 = std::f64::consts::LN_2;
    const SQRT_2: f64 = std::f64::consts::SQRT_2;
    let bits = u.to_bits();
    let mut exponent = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mut m = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
    if m > SQRT_2 {
        m *= 0.5;
        exponent += 1;
    }
    // ln(m) = 2 atanh(t) with t = (m - 1) / (m + 1), |t| < 0.172: four terms of the series.
    let t = (m - 1.0) / (m + 1.0);
    let t2 = t * t;
    let ln_m = 2.0 * t * (1.0 + t2 * (1.0 / 3.0 + t2 * (1.0 / 5.0 + t2 * (1.0 / 7.0))));
    -(exponent as f64 * LN_2 + ln_m)
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
    fn the_fast_logarithm_matches_the_library_one() {
        let mut u = 1e-12_f64;
        while u < 1.0 {
            let exact = -u.ln();
            assert!(((neg_ln(u) - exact) / exact).abs() < 1e-7, "u = {u}");
            u *= 1.001;
        }
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
