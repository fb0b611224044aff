//! Mutation fuzzing on the stable toolchain (nightly-only fuzzers are not available here):
//! every decoder that takes bytes from the network or from a file ([`targets`]) is fed
//! mutated valid encodings and random bytes ([`mutate`]); a panic is a crash, reported with
//! the seed and iteration that replay it.
//!
//! The tests run a bounded number of inputs per target; `cargo run --release -p shoal-fuzz --
//! --iterations N` runs longer (docs/security.md has the figures of a long run).
#![forbid(unsafe_code)]

pub mod mutate;
pub mod targets;

use std::panic::{AssertUnwindSafe, catch_unwind};

/// What one target's run found.
#[derive(Debug)]
pub struct Outcome {
    pub target: &'static str,
    pub tried: u64,
    /// The inputs that panicked (iteration, bytes), the first few.
    pub crashes: Vec<(u64, Vec<u8>)>,
}

/// Feeds `iterations` inputs drawn from `seed` to `target`.
pub fn fuzz(target: &mut targets::Target, iterations: u64, seed: u64) -> Outcome {
    let mut mutator = mutate::Mutator::new(seed);
    let mut crashes = Vec::new();
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for seed_input in target.seeds.clone() {
        if catch_unwind(AssertUnwindSafe(|| (target.run)(&seed_input))).is_err() {
            crashes.push((0, seed_input));
        }
    }
    for i in 0..iterations {
        let input = mutator.next(&target.seeds);
        if catch_unwind(AssertUnwindSafe(|| (target.run)(&input))).is_err() && crashes.len() < 8 {
            crashes.push((i + 1, input));
        }
    }
    std::panic::set_hook(hook);
    Outcome {
        target: target.name,
        tried: iterations + target.seeds.len() as u64,
        crashes,
    }
}
