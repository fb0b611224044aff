//! The `pi` operator's kernel: Monte Carlo samples of the unit square.

use crate::rng::SplitMix64;

/// Samples `count` points in the unit square and counts those inside the quarter circle.
///
/// Each point is one 64-bit draw: the high half is x and the low half y, on a 2³² × 2³² grid.
/// A point is inside when x² + y² < 2⁶⁴, which is exactly when that 64-bit sum does not
/// overflow: integer-only and branch-free. The grid's bias (~10⁻¹⁰) is far below the sampling
/// error of any feasible sample count.
pub fn pi_hits(count: u64, seed: u64) -> u64 {
    let mut rng = SplitMix64(seed);
    let mut hits = 0;
    for _ in 0..count {
        let r = rng.next_u64();
        let (x, y) = (r >> 32, r & 0xFFFF_FFFF);
        let (_, outside) = (x * x).overflowing_add(y * y);
        hits += u64::from(!outside);
    }
    hits
}
