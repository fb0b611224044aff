//! The built-in operators' map, reduce and finalize over opaque partial-result bytes.
//!
//! Partial results are bincode blobs: word counts as a sorted `Vec<(String, u64)>`, grep as a
//! `u64`, sumsq as a `u128`, pi as `(samples, hits)`. Final results are compact JSON text.
//! Partial results come from peers: every sum over them is checked, so a value crafted to
//! overflow is an operator error, never a panic and never a silently wrapped result.

use crate::grep::grep_count;
use crate::pi::pi_hits;
use shoal_protocol::codec::{self, CodecError};
use shoal_protocol::job::{GeneratedPart, Operator};

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
    /// A sum over partial results does not fit its type: the partials are corrupt or forged
    /// (no honest input reaches these bounds).
    #[error("{0} overflowed: the partial results are corrupt")]
    Overflow(&'static str),
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
                sum = sum
                    .checked_add(sq)
                    .ok_or(OpError::Overflow("sum of squares"))?;
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
            // is the same as that of an owned `Vec<(String, u64)>`.
            let mut lists = parts
                .iter()
                .map(|part| codec::decode_blob::<Vec<(&str, u64)>>(part))
                .collect::<Result<Vec<_>, _>>()?;
            // Merged pairwise, level by level: each word is moved once per level (log2 of the
            // fan-in), where folding into one growing list would move the largest lists again
            // for every part.
            while lists.len() > 1 {
                let mut next = Vec::with_capacity(lists.len().div_ceil(2));
                let mut level = lists.into_iter();
                while let Some(a) = level.next() {
                    next.push(match level.next() {
                        Some(b) => merge_counts(a, b)?,
                        None => a,
                    });
                }
                lists = next;
            }
            Ok(codec::encode_blob(&lists.pop().expect("at least one part")))
        }
        Operator::Grep { .. } => {
            let mut total = 0u64;
            for part in parts {
                let n: u64 = codec::decode_blob(part)?;
                total = total
                    .checked_add(n)
                    .ok_or(OpError::Overflow("line count"))?;
            }
            Ok(codec::encode_blob(&total))
        }
        Operator::SumSq => {
            let mut total = 0u128;
            for part in parts {
                let x: u128 = codec::decode_blob(part)?;
                total = total
                    .checked_add(x)
                    .ok_or(OpError::Overflow("sum of squares"))?;
            }
            Ok(codec::encode_blob(&total))
        }
        Operator::Pi => {
            let (mut samples, mut hits) = (0u64, 0u64);
            for part in parts {
                let (s, h): (u64, u64) = codec::decode_blob(part)?;
                samples = samples
                    .checked_add(s)
                    .ok_or(OpError::Overflow("sample count"))?;
                hits = hits.checked_add(h).ok_or(OpError::Overflow("hit count"))?;
            }
            Ok(codec::encode_blob(&(samples, hits)))
        }
        Operator::Wasm { .. } => Err(OpError::NotBuiltin),
    }
}

/// Which of a reduce's inputs is to blame when it fails on a corrupt partial: the first that
/// does not even reduce on its own. `None` when each is fine alone (the failure is the
/// combination's, such as an overflow).
///
/// A child result that does not decode came from a broken or lying peer: the reducer reports
/// that child lost, so that it is computed again, instead of failing itself.
pub fn corrupt_input(op: &Operator, parts: &[&[u8]]) -> Option<usize> {
    parts
        .iter()
        .position(|part| matches!(reduce(op, &[part]), Err(OpError::Corrupt(_))))
}

/// Turns the root's partial result into the job's final result (JSON text).
pub fn finalize(op: &Operator, root: &[u8]) -> Result<Vec<u8>, OpError> {
    Ok(match op {
        Operator::WordCount => {
            let counts: Vec<(&str, u64)> = codec::decode_blob(root)?;
            if counts.windows(2).all(|w| w[0].0 < w[1].0) {
                // Sorted and unique, as every merge leaves it: written out in order, as the
                // JSON object a sorted map would make, without building one.
                let mut out = Vec::with_capacity(counts.len() * 16);
                let mut ser = serde_json::Serializer::new(&mut out);
                serde::Serializer::collect_map(&mut ser, counts.iter().map(|(w, n)| (*w, *n)))
                    .expect("serializing into a Vec cannot fail");
                out
            } else {
                // A root partial that was not merged as ours are (it came from a peer): the
                // map decides the order and which of a repeated word's counts stands.
                let map: serde_json::Map<String, serde_json::Value> = counts
                    .into_iter()
                    .map(|(w, n)| (w.to_string(), serde_json::Value::from(n)))
                    .collect();
                json_bytes(&serde_json::Value::Object(map))
            }
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

pub(crate) fn json_bytes(v: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("serializing a JSON value cannot fail")
}

pub(crate) fn pi_json(samples: u64, hits: u64) -> Vec<u8> {
    let pi = 4.0 * hits as f64 / samples as f64;
    json_bytes(&serde_json::json!({ "samples": samples, "hits": hits, "pi": pi }))
}

/// The order of two words, as `str`'s: their first eight bytes (zero-padded) compared as one
/// big-endian integer settle nearly every pair without a `memcmp` call. Where those differ,
/// that is the order (a padding zero sits where the shorter word ended, and a word is before
/// any longer word it begins); where they agree, the full comparison decides.
#[inline(always)]
fn word_order(a: &str, b: &str) -> std::cmp::Ordering {
    let prefix = |w: &str| {
        let w = w.as_bytes();
        let mut buf = [0u8; 8];
        let n = w.len().min(8);
        buf[..n].copy_from_slice(&w[..n]);
        u64::from_be_bytes(buf)
    };
    prefix(a).cmp(&prefix(b)).then_with(|| a.cmp(b))
}

/// Merges two word-sorted count lists into one.
fn merge_counts<'a>(
    a: Vec<(&'a str, u64)>,
    b: Vec<(&'a str, u64)>,
) -> Result<Vec<(&'a str, u64)>, OpError> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let mut a = a.into_iter().peekable();
    let mut b = b.into_iter().peekable();
    loop {
        let next = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) => match word_order(x.0, y.0) {
                std::cmp::Ordering::Less => a.next(),
                std::cmp::Ordering::Greater => b.next(),
                std::cmp::Ordering::Equal => {
                    let (w, n) = a.next().expect("peeked");
                    let (_, m) = b.next().expect("peeked");
                    Some((w, n.checked_add(m).ok_or(OpError::Overflow("word count"))?))
                }
            },
            (Some(_), None) => a.next(),
            (None, Some(_)) => b.next(),
            (None, None) => break,
        };
        out.extend(next);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference;
    use shoal_protocol::job::{Input, JobSpec};

    #[test]
    fn word_order_is_the_order_of_str() {
        let words = [
            "",
            "a",
            "a\0",
            "a\0\0",
            "ab",
            "abcdefgh",
            "abcdefgh\0",
            "abcdefghi",
            "abcdefgi",
            "abcdefg",
            "b",
            "\u{e9}",
            "\u{e9}t\u{e9}",
            "\u{65e5}\u{672c}",
            "z\u{ff}",
            "\0",
        ];
        for a in words {
            for b in words {
                assert_eq!(word_order(a, b), a.cmp(b), "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn reducing_many_parts_at_once_equals_reducing_them_one_by_one() {
        let texts: Vec<String> = (0..11)
            .map(|i| format!("w{i} common x{} Common y{}", i % 3, i % 5))
            .collect();
        let partials: Vec<Vec<u8>> = texts
            .iter()
            .map(|t| map(&Operator::WordCount, MapInput::Chunk(t.as_bytes())).unwrap())
            .collect();
        let refs: Vec<&[u8]> = partials.iter().map(Vec::as_slice).collect();
        let at_once = reduce(&Operator::WordCount, &refs).unwrap();
        let one_by_one = refs[1..].iter().fold(refs[0].to_vec(), |acc, part| {
            reduce(&Operator::WordCount, &[&acc, part]).unwrap()
        });
        assert_eq!(at_once, one_by_one);
        let all: Vec<u8> = texts.join("\n").into_bytes();
        assert_eq!(
            finalize(&Operator::WordCount, &at_once).unwrap(),
            reference::wordcount(&[all])
        );
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
            trust: Default::default(),
            sched: Default::default(),
            keep: Default::default(),
            reuse: true,
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
            trust: Default::default(),
            sched: Default::default(),
            keep: Default::default(),
            reuse: true,
        };
        let a = reference::pi(&spec).unwrap();
        assert_eq!(a, reference::pi(&spec).unwrap());
        let v: serde_json::Value = serde_json::from_slice(&a).unwrap();
        assert!((v["pi"].as_f64().unwrap() - std::f64::consts::PI).abs() < 0.05);
    }

    #[test]
    fn corrupt_partials_are_errors_not_panics() {
        assert!(reduce(&Operator::WordCount, &[&[0xff, 0xff, 0xff]]).is_err());
        assert!(finalize(&Operator::SumSq, &[]).is_err());
    }

    #[test]
    fn sums_over_forged_partials_are_overflow_errors_not_panics() {
        let big = codec::encode_blob(&u64::MAX);
        let one = codec::encode_blob(&1u64);
        let grep = Operator::Grep {
            pattern: "x".into(),
        };
        assert_eq!(
            reduce(&grep, &[&big, &one]),
            Err(OpError::Overflow("line count"))
        );
        let pi = [
            codec::encode_blob(&(u64::MAX, 1u64)),
            codec::encode_blob(&(1u64, 1u64)),
        ];
        assert_eq!(
            reduce(&Operator::Pi, &[&pi[0], &pi[1]]),
            Err(OpError::Overflow("sample count"))
        );
        let sq = [codec::encode_blob(&u128::MAX), codec::encode_blob(&1u128)];
        assert!(matches!(
            reduce(&Operator::SumSq, &[&sq[0], &sq[1]]),
            Err(OpError::Overflow(_))
        ));
        let words = [
            codec::encode_blob(&vec![("a", u64::MAX)]),
            codec::encode_blob(&vec![("a", 1u64)]),
        ];
        assert_eq!(
            reduce(&Operator::WordCount, &[&words[0], &words[1]]),
            Err(OpError::Overflow("word count"))
        );
    }

    #[test]
    fn a_root_partial_out_of_order_finalizes_as_a_map_would() {
        let forged = codec::encode_blob(&vec![("b", 1u64), ("a", 2), ("b", 3)]);
        let out = finalize(&Operator::WordCount, &forged).unwrap();
        assert_eq!(out, br#"{"a":2,"b":3}"#);
        let sorted = codec::encode_blob(&vec![("a\"q", 1u64), ("é", 2)]);
        let out = finalize(&Operator::WordCount, &sorted).unwrap();
        assert_eq!(out, "{\"a\\\"q\":1,\"é\":2}".as_bytes());
    }
}
