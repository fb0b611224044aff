//! Built-in operators: map, reduce and finalize over opaque partial-result bytes, and the
//! single-process reference implementations that every mesh result is checked against.
//!
//! Partial results are bincode blobs: word counts as a sorted `Vec<(String, u64)>`, grep as a
//! `u64`, sumsq as a `u128`, pi as `(samples, hits)`. Final results are compact JSON text.

use crate::codec::{self, CodecError};
use crate::job::{GeneratedPart, JobSpec, Operator};
use std::collections::BTreeMap;

/// Why an operator could not run.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum OpError {
    #[error("partial result is corrupt: {0}")]
    Corrupt(#[from] CodecError),
    #[error("operator {op} expects {expected} input")]
    WrongInput {
        op: &'static str,
        expected: &'static str,
    },
    #[error("sum of squares overflowed u128")]
    Overflow,
    #[error("reduce needs at least one partial result")]
    NothingToReduce,
    #[error("wasm jobs run in the node's sandbox, not in the built-in operators")]
    NotBuiltin,
}

/// The input of one map task.
#[derive(Debug, Clone, Copy)]
pub enum MapInput<'a> {
    Chunk(&'a [u8]),
    Generated(GeneratedPart),
}

type WordCounts = Vec<(String, u64)>;

/// Runs a map task and returns its encoded partial result.
pub fn map(op: &Operator, input: MapInput<'_>) -> Result<Vec<u8>, OpError> {
    let wrong = |expected| OpError::WrongInput {
        op: op.name(),
        expected,
    };
    match (op, input) {
        (Operator::WordCount, MapInput::Chunk(bytes)) => {
            Ok(crate::words::count_words_encoded(bytes))
        }
        (Operator::Grep { pattern }, MapInput::Chunk(bytes)) => {
            Ok(codec::encode_blob(&grep_count(bytes, pattern.as_bytes())))
        }
        (Operator::SumSq, MapInput::Generated(GeneratedPart::Range { start, end })) => {
            let mut sum: u128 = 0;
            for x in start..end {
                let sq = u128::from(x) * u128::from(x);
                sum = sum.checked_add(sq).ok_or(OpError::Overflow)?;
            }
            Ok(codec::encode_blob(&sum))
        }
        (Operator::Pi, MapInput::Generated(GeneratedPart::Samples { count, seed })) => {
            Ok(codec::encode_blob(&(count, pi_hits(count, seed))))
        }
        (Operator::WordCount | Operator::Grep { .. }, _) => Err(wrong("a file chunk")),
        (Operator::SumSq, _) => Err(wrong("a range")),
        (Operator::Pi, _) => Err(wrong("a sample count")),
        (Operator::Wasm { .. }, _) => Err(OpError::NotBuiltin),
    }
}

/// Combines partial results in the order given (task-index order).
pub fn reduce(op: &Operator, parts: &[&[u8]]) -> Result<Vec<u8>, OpError> {
    if parts.is_empty() {
        return Err(OpError::NothingToReduce);
    }
    match op {
        Operator::WordCount => {
            // Words are borrowed from the partials: merging allocates no strings. The encoding
            // is the same as that of owned `WordCounts`.
            let mut acc: Vec<(&str, u64)> = codec::decode_blob(parts[0])?;
            for part in &parts[1..] {
                let next: Vec<(&str, u64)> = codec::decode_blob(part)?;
                acc = merge_counts(acc, next);
            }
            Ok(codec::encode_blob(&acc))
        }
        Operator::Grep { .. } => {
            let mut total = 0u64;
            for part in parts {
                total += codec::decode_blob::<u64>(part)?;
            }
            Ok(codec::encode_blob(&total))
        }
        Operator::SumSq => {
            let mut total = 0u128;
            for part in parts {
                let x: u128 = codec::decode_blob(part)?;
                total = total.checked_add(x).ok_or(OpError::Overflow)?;
            }
            Ok(codec::encode_blob(&total))
        }
        Operator::Pi => {
            let (mut samples, mut hits) = (0u64, 0u64);
            for part in parts {
                let (s, h): (u64, u64) = codec::decode_blob(part)?;
                samples += s;
                hits += h;
            }
            Ok(codec::encode_blob(&(samples, hits)))
        }
        Operator::Wasm { .. } => Err(OpError::NotBuiltin),
    }
}

/// Turns the root's partial result into the job's final result (JSON text).
pub fn finalize(op: &Operator, root: &[u8]) -> Result<Vec<u8>, OpError> {
    Ok(match op {
        Operator::WordCount => {
            let counts: WordCounts = codec::decode_blob(root)?;
            let map: serde_json::Map<String, serde_json::Value> = counts
                .into_iter()
                .map(|(w, n)| (w, serde_json::Value::from(n)))
                .collect();
            json_bytes(&serde_json::Value::Object(map))
        }
        Operator::Grep { .. } => {
            let total: u64 = codec::decode_blob(root)?;
            json_bytes(&serde_json::json!({ "total": total }))
        }
        Operator::SumSq => {
            let total: u128 = codec::decode_blob(root)?;
            json_bytes(&serde_json::Value::String(total.to_string()))
        }
        Operator::Pi => {
            let (samples, hits): (u64, u64) = codec::decode_blob(root)?;
            pi_json(samples, hits)
        }
        // A module's root result is the job's output, byte for byte.
        Operator::Wasm { .. } => root.to_vec(),
    })
}

fn json_bytes(v: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("serializing a JSON value cannot fail")
}

fn pi_json(samples: u64, hits: u64) -> Vec<u8> {
    let pi = 4.0 * hits as f64 / samples as f64;
    json_bytes(&serde_json::json!({ "samples": samples, "hits": hits, "pi": pi }))
}

/// Merges two word-sorted count lists into one.
fn merge_counts<W: Ord>(a: Vec<(W, u64)>, b: Vec<(W, u64)>) -> Vec<(W, u64)> {
    let mut out = Vec::with_capacity(a.len().max(b.len()));
    let mut a = a.into_iter().peekable();
    let mut b = b.into_iter().peekable();
    loop {
        let next = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) => match x.0.cmp(&y.0) {
                std::cmp::Ordering::Less => a.next(),
                std::cmp::Ordering::Greater => b.next(),
                std::cmp::Ordering::Equal => {
                    let (w, n) = a.next().expect("peeked");
                    let (_, m) = b.next().expect("peeked");
                    Some((w, n + m))
                }
            },
            (Some(_), None) => a.next(),
            (None, Some(_)) => b.next(),
            (None, None) => break,
        };
        out.extend(next);
    }
    out
}

/// Calls `f` with each word of `bytes`: a maximal run of characters for which
/// `char::is_alphanumeric` holds, lowercased with `str::to_lowercase`. Invalid UTF-8 is
/// replaced (U+FFFD is not alphanumeric, so it separates words).
pub fn for_each_word(bytes: &[u8], mut f: impl FnMut(String)) {
    let text = String::from_utf8_lossy(bytes);
    for word in text.split(|c: char| !c.is_alphanumeric()) {
        if !word.is_empty() {
            f(word.to_lowercase());
        }
    }
}

/// Counts lines of `bytes` that contain `pattern`. A line ends at `\n`; a final line without a
/// newline counts too; the empty remainder after a trailing newline is not a line.
pub fn grep_count(bytes: &[u8], pattern: &[u8]) -> u64 {
    let finder = memchr::memmem::Finder::new(pattern);
    let mut count = 0;
    let mut rest = bytes;
    while !rest.is_empty() {
        let end = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
        if finder.find(&rest[..end]).is_some() {
            count += 1;
        }
        rest = &rest[(end + 1).min(rest.len())..];
    }
    count
}

/// splitmix64: tiny, fast and good enough for Monte Carlo sampling; fully determined by the seed.
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform float in [0, 1) from the top 53 bits.
    #[inline]
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

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

/// Single-process reference implementations. They compute each job's result directly, without
/// partitioning or a reduction tree, so they check the mesh rather than repeat it.
pub mod reference {
    use super::*;
    use crate::job::Input;

    /// Word count over whole files.
    pub fn wordcount(files: &[Vec<u8>]) -> Vec<u8> {
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for file in files {
            for_each_word(file, |w| *counts.entry(w).or_insert(0) += 1);
        }
        serde_json::to_vec(&counts).expect("serializing a map cannot fail")
    }

    /// Matching lines over whole files.
    pub fn grep(files: &[Vec<u8>], pattern: &str) -> Vec<u8> {
        let total: u64 = files
            .iter()
            .map(|f| grep_count(f, pattern.as_bytes()))
            .sum();
        json_bytes(&serde_json::json!({ "total": total }))
    }

    /// Sum of squares over `[start, end)` in one loop.
    pub fn sumsq(start: u64, end: u64) -> Vec<u8> {
        let total: u128 = (start..end).map(|x| u128::from(x) * u128::from(x)).sum();
        json_bytes(&serde_json::Value::String(total.to_string()))
    }

    /// Pi with the job's per-task seeds, tasks run one after another.
    pub fn pi(spec: &JobSpec) -> Vec<u8> {
        let Input::Samples { total, tasks } = spec.input else {
            panic!("pi reference needs a samples input");
        };
        let job = spec.id();
        let mut hits = 0;
        for index in 0..tasks {
            let (a, b) = crate::job::split_even(total, tasks, index);
            hits += pi_hits(b - a, crate::job::task_seed(&job, index));
        }
        pi_json(total, hits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{Input, JobSpec};

    #[test]
    fn words_are_alphanumeric_runs_lowercased() {
        let mut words = Vec::new();
        for_each_word("Hello, WORLD! héllo_x 42\nÉté".as_bytes(), |w| {
            words.push(w)
        });
        assert_eq!(words, ["hello", "world", "héllo", "x", "42", "été"]);
    }

    #[test]
    fn grep_counts_lines_not_occurrences() {
        assert_eq!(grep_count(b"ab ab\nxx\nab", b"ab"), 2);
        assert_eq!(grep_count(b"ab\n", b"ab"), 1);
        assert_eq!(grep_count(b"\n\n", b""), 2);
    }

    #[test]
    fn map_then_reduce_in_order_equals_the_reference_wordcount() {
        let text = b"a b a\nc A b\nz\n";
        let parts = [&text[..6], &text[6..12], &text[12..]];
        let partials: Vec<Vec<u8>> = parts
            .iter()
            .map(|p| map(&Operator::WordCount, MapInput::Chunk(p)).unwrap())
            .collect();
        let refs: Vec<&[u8]> = partials.iter().map(Vec::as_slice).collect();
        let root = reduce(&Operator::WordCount, &refs).unwrap();
        assert_eq!(
            finalize(&Operator::WordCount, &root).unwrap(),
            reference::wordcount(&[text.to_vec()])
        );
    }

    #[test]
    fn sumsq_partials_add_up_to_the_reference() {
        let spec = JobSpec {
            op: Operator::SumSq,
            input: Input::Range {
                start: 3,
                end: 1000,
                tasks: 7,
            },
            fanin: 3,
        };
        let partials: Vec<Vec<u8>> = (0..7)
            .map(|i| {
                map(
                    &spec.op,
                    MapInput::Generated(spec.generated_part(i).unwrap()),
                )
                .unwrap()
            })
            .collect();
        let refs: Vec<&[u8]> = partials.iter().map(Vec::as_slice).collect();
        let root = reduce(&spec.op, &refs).unwrap();
        assert_eq!(
            finalize(&spec.op, &root).unwrap(),
            reference::sumsq(3, 1000)
        );
    }

    #[test]
    fn pi_estimate_is_close_and_reproducible() {
        let spec = JobSpec {
            op: Operator::Pi,
            input: Input::Samples {
                total: 100_000,
                tasks: 3,
            },
            fanin: 4,
        };
        let a = reference::pi(&spec);
        assert_eq!(a, reference::pi(&spec));
        let v: serde_json::Value = serde_json::from_slice(&a).unwrap();
        assert!((v["pi"].as_f64().unwrap() - std::f64::consts::PI).abs() < 0.05);
    }

    #[test]
    fn corrupt_partials_are_errors_not_panics() {
        assert!(reduce(&Operator::WordCount, &[&[0xff, 0xff, 0xff]]).is_err());
        assert!(finalize(&Operator::SumSq, &[]).is_err());
    }
}
