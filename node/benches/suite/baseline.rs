//! Single-process Rust baselines on 2 threads: what a careful programmer would write by hand
//! for one machine, with no distribution at all. Written here, independently of Shoal's
//! operators, so that they measure what Shoal could be rather than Shoal itself.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

pub(crate) const THREADS: u64 = 2;

/// splitmix64, the generator Shoal's `pi` samples with.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Monte Carlo pi over `samples` points on 2 threads; returns the hits. The same sampling as
/// Shoal's: one 64-bit draw per point, 32 bits per coordinate, inside when x² + y² < 2⁶⁴.
pub(crate) fn pi(samples: u64) -> u64 {
    std::thread::scope(|s| {
        let parts: Vec<_> = (0..THREADS)
            .map(|t| {
                s.spawn(move || {
                    let mut state = t.wrapping_mul(0x1234_5678_9ABC_DEF1);
                    let mut hits = 0u64;
                    for _ in 0..samples / THREADS {
                        let r = next(&mut state);
                        let (x, y) = (r >> 32, r & 0xFFFF_FFFF);
                        hits += u64::from(x * x <= u64::MAX - y * y);
                    }
                    hits
                })
            })
            .collect();
        parts.into_iter().map(|p| p.join().unwrap()).sum()
    })
}

/// Word count over `files` on 2 threads (files dealt round-robin), output as Shoal prints it: a
/// JSON object of lowercased words to counts, sorted. The generated corpus is ASCII, so words
/// are runs of ASCII letters and digits.
pub(crate) fn wordcount(files: &[PathBuf]) -> Vec<u8> {
    type Counts = HashMap<Vec<u8>, u64, foldhash::fast::FixedState>;
    let partials: Vec<Counts> = std::thread::scope(|s| {
        let parts: Vec<_> = (0..THREADS as usize)
            .map(|t| {
                s.spawn(move || {
                    let mut counts = Counts::default();
                    let mut word = Vec::with_capacity(64);
                    for path in files.iter().skip(t).step_by(THREADS as usize) {
                        let bytes = std::fs::read(path).expect("reading the corpus");
                        assert!(bytes.is_ascii(), "the baseline counts ASCII text only");
                        for &b in bytes.iter().chain(std::iter::once(&b' ')) {
                            if b.is_ascii_alphanumeric() {
                                word.push(b.to_ascii_lowercase());
                            } else if !word.is_empty() {
                                match counts.get_mut(word.as_slice()) {
                                    Some(n) => *n += 1,
                                    None => {
                                        counts.insert(word.clone(), 1);
                                    }
                                }
                                word.clear();
                            }
                        }
                    }
                    counts
                })
            })
            .collect();
        parts.into_iter().map(|p| p.join().unwrap()).collect()
    });
    let mut total: BTreeMap<String, u64> = BTreeMap::new();
    for part in partials {
        for (w, n) in part {
            *total
                .entry(String::from_utf8(w).expect("ASCII"))
                .or_insert(0) += n;
        }
    }
    serde_json::to_vec(&total).expect("serializable")
}
