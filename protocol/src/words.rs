//! Word counting for the `wordcount` map task, fast on ASCII text and exact on everything else.
//!
//! A word is a maximal run of characters for which `char::is_alphanumeric` holds, lowercased
//! with `str::to_lowercase`; invalid UTF-8 is replaced with U+FFFD, which separates words. That
//! definition lives in [`crate::ops::for_each_word`]; this module computes the same counts
//! faster. ASCII bytes that are not letters or digits are always separators and never part of a
//! multi-byte character, so the text splits at them into runs. A run of ASCII letters and
//! digits is a word as it is (lowercased in a reused buffer, looked up without allocating); a
//! run holding any byte ≥ 0x80 goes through the general definition.

use crate::ops::for_each_word;
use std::collections::HashMap;

/// Byte classes, as bit flags: what a byte means for splitting. A run's flags are the OR of
/// its bytes' classes, so the scan needs one branch per byte.
const SEPARATOR: u8 = 8;
const LOWER_OR_DIGIT: u8 = 1;
const UPPER: u8 = 2;
const NON_ASCII: u8 = 4;

const CLASS: [u8; 256] = {
    let mut table = [SEPARATOR; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = if c >= 0x80 {
            NON_ASCII
        } else if c.is_ascii_uppercase() {
            UPPER
        } else if c.is_ascii_alphanumeric() {
            LOWER_OR_DIGIT
        } else {
            SEPARATOR
        };
        b += 1;
    }
    table
};

/// A fixed-seed hasher: fast, and the same in every process (the protocol crate uses no
/// ambient randomness; the counts are sorted before they leave, so order never shows).
type Hasher = foldhash::fast::FixedState;

/// Words of up to this many bytes are counted under an integer key: hashing and comparing one
/// `u128` is several times cheaper than a byte slice (no length, no `memcmp` call).
const SHORT: usize = 16;

/// A short word packed little-endian into an integer, zero-padded. Words never contain a zero
/// byte (it is a separator), so the packing is unambiguous.
fn pack(word: &[u8]) -> u128 {
    let mut buf = [0u8; SHORT];
    buf[..word.len()].copy_from_slice(word);
    u128::from_le_bytes(buf)
}

/// The `len <= 16` bytes at `at`, packed like [`pack`], read with one unaligned load when 16
/// bytes are there (no copy through a buffer).
fn pack_at(bytes: &[u8], at: usize, len: usize) -> u128 {
    match bytes.get(at..at + SHORT) {
        Some(window) => {
            let all = u128::from_le_bytes(window.try_into().expect("16 bytes"));
            if len == SHORT {
                all
            } else {
                all & ((1u128 << (8 * len)) - 1)
            }
        }
        None => pack(&bytes[at..at + len]),
    }
}

/// ASCII-lowercases every byte of a packed key (all bytes below 0x80): a byte in A..=Z gains
/// 0x20, computed for the sixteen bytes at once.
fn lowercase_packed(key: u128) -> u128 {
    const ONES: u128 = u128::from_le_bytes([1; SHORT]);
    let at_least_a = key + ONES * (0x80 - u128::from(b'A'));
    let above_z = key + ONES * (0x80 - u128::from(b'Z') - 1);
    let upper = at_least_a & !above_z & (ONES * 0x80);
    key | (upper >> 2)
}

/// The length of a packed word (the bytes before the zero padding).
fn packed_len(key: u128) -> usize {
    SHORT - (key.leading_zeros() / 8) as usize
}

/// Counts per word: short words under packed keys, the rest under their bytes.
#[derive(Default)]
struct Counts {
    short: HashMap<u128, u64, Hasher>,
    long: HashMap<Box<[u8]>, u64, Hasher>,
}

impl Counts {
    fn add_short(&mut self, key: u128) {
        *self.short.entry(key).or_insert(0) += 1;
    }

    fn add(&mut self, word: &[u8]) {
        if word.len() <= SHORT {
            *self.short.entry(pack(word)).or_insert(0) += 1;
        } else {
            match self.long.get_mut(word) {
                Some(n) => *n += 1,
                None => {
                    self.long.insert(word.into(), 1);
                }
            }
        }
    }

    /// The counts sorted by word, as (word, count) pairs borrowing from `arena`, and empties
    /// the tables (keeping their capacity for the next chunk). A packed key read big-endian
    /// orders like its word (zero padding sorts first), so short words sort as integers.
    fn drain_sorted<'a>(&mut self, arena: &'a mut Vec<u8>) -> Vec<(&'a str, u64)> {
        let mut short: Vec<(u128, u64)> = self.short.drain().collect();
        short.sort_unstable_by_key(|&(key, _)| key.swap_bytes());
        let mut long: Vec<(Box<[u8]>, u64)> = self.long.drain().collect();
        long.sort_unstable();
        // Lay the words out in the arena first, then borrow them all at once.
        arena.clear();
        let mut spans: Vec<(usize, usize, u64)> = Vec::with_capacity(short.len() + long.len());
        let mut long = long.into_iter().peekable();
        for (key, count) in short {
            let word = &key.to_le_bytes()[..packed_len(key)];
            while let Some((w, c)) = long.next_if(|(w, _)| **w < *word) {
                spans.push((arena.len(), w.len(), c));
                arena.extend_from_slice(&w);
            }
            spans.push((arena.len(), word.len(), count));
            arena.extend_from_slice(word);
        }
        for (w, c) in long {
            spans.push((arena.len(), w.len(), c));
            arena.extend_from_slice(&w);
        }
        // One validation for all the words: each is whole UTF-8, so every word's bounds are
        // character boundaries of the arena.
        let arena: &'a str = std::str::from_utf8(arena).expect("words are built from valid UTF-8");
        spans
            .into_iter()
            .map(|(at, len, count)| (&arena[at..at + len], count))
            .collect()
    }
}

thread_local! {
    /// Each thread's tables, reused from chunk to chunk: no rehashing as they grow, and no
    /// fresh pages to fault in.
    static TABLES: std::cell::RefCell<(Counts, Vec<u8>)> = std::cell::RefCell::default();
}

/// Counts the words of `bytes` and hands them, sorted by word, to `with`.
fn with_counts<R>(bytes: &[u8], with: impl FnOnce(&[(&str, u64)]) -> R) -> R {
    TABLES.with(|tables| {
        let (counts, arena) = &mut *tables.borrow_mut();
        count_into(counts, bytes);
        with(&counts.drain_sorted(arena))
    })
}

/// Counts the words of `bytes`, sorted by word.
pub fn count_words(bytes: &[u8]) -> Vec<(String, u64)> {
    with_counts(bytes, |sorted| {
        sorted.iter().map(|&(w, c)| (w.to_string(), c)).collect()
    })
}

/// The word counts of `bytes` encoded as the word count's partial result (a sorted
/// `Vec<(String, u64)>`), without building a `String` per word.
pub fn count_words_encoded(bytes: &[u8]) -> Vec<u8> {
    with_counts(bytes, |sorted| crate::codec::encode_blob(&sorted))
}

const HIGH: u64 = 0x8080_8080_8080_8080;
const LOW: u64 = 0x0101_0101_0101_0101;

/// For the eight bytes of `x` (little-endian), the high bit of each byte set where the byte
/// continues a run (a letter, a digit, or any byte of 0x80 and above), then where it is an
/// upper-case letter, then where it is 0x80 or above. Computed on the eight bytes at once:
/// each range test adds a constant to the low seven bits of every byte, which cannot carry
/// into the next.
fn classify8(x: u64) -> (u64, u64, u64) {
    let non_ascii = x & HIGH;
    let y = x & !HIGH;
    let at_least = |c: u8| (y + LOW * u64::from(0x80 - c)) & HIGH;
    let digit = at_least(b'0') & !at_least(b'9' + 1);
    let upper = at_least(b'A') & !at_least(b'Z' + 1) & !non_ascii;
    let lower = at_least(b'a') & !at_least(b'z' + 1);
    (digit | upper | lower | non_ascii, upper, non_ascii)
}

/// The end of the run that starts at `start` (a byte that is not a separator), and its class
/// flags. Eight bytes at a time while eight remain, then byte by byte.
fn run_end(bytes: &[u8], start: usize) -> (usize, u8) {
    let mut i = start;
    let mut flags = 0;
    while let Some(block) = bytes.get(i..i + 8) {
        let x = u64::from_le_bytes(block.try_into().expect("8 bytes"));
        let (run, upper, non_ascii) = classify8(x);
        let stop = !run & HIGH;
        // The bytes before the first separator of the block.
        let within = if stop == 0 {
            u64::MAX
        } else {
            (1u64 << stop.trailing_zeros()) - 1
        };
        if upper & within != 0 {
            flags |= UPPER;
        }
        if non_ascii & within != 0 {
            flags |= NON_ASCII;
        }
        if stop != 0 {
            return (
                i + (stop.trailing_zeros() / 8) as usize,
                flags | LOWER_OR_DIGIT,
            );
        }
        i += 8;
    }
    while i < bytes.len() {
        let class = CLASS[bytes[i] as usize];
        if class == SEPARATOR {
            break;
        }
        flags |= class;
        i += 1;
    }
    (i, flags)
}

/// Adds the words of `bytes` to `counts`.
fn count_into(counts: &mut Counts, bytes: &[u8]) {
    let mut lowered = Vec::with_capacity(64);
    let mut i = 0;
    let n = bytes.len();
    while i < n {
        if CLASS[bytes[i] as usize] == SEPARATOR {
            i += 1;
            continue;
        }
        let start = i;
        let (end, flags) = run_end(bytes, start);
        i = end;
        let len = i - start;
        if flags & NON_ASCII != 0 {
            for_each_word(&bytes[start..i], |w| counts.add(w.as_bytes()));
        } else if len <= SHORT {
            let key = pack_at(bytes, start, len);
            counts.add_short(if flags & UPPER != 0 {
                lowercase_packed(key)
            } else {
                key
            });
        } else if flags & UPPER != 0 {
            lowered.clear();
            lowered.extend(bytes[start..i].iter().map(u8::to_ascii_lowercase));
            counts.add(&lowered);
        } else {
            counts.add(&bytes[start..i]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::SplitMix64;
    use std::collections::BTreeMap;

    /// The definition, applied directly.
    fn by_definition(bytes: &[u8]) -> Vec<(String, u64)> {
        let mut counts = BTreeMap::new();
        for_each_word(bytes, |w| *counts.entry(w).or_insert(0) += 1);
        counts.into_iter().collect()
    }

    #[test]
    fn agrees_with_the_definition_on_tricky_text() {
        let cases: [&[u8]; 10] = [
            b"",
            b"Hello, hello HELLO h3llo 42 42",
            "Stra\u{df}e STRASSE \u{130}stanbul caf\u{e9} CAF\u{c9} na\u{ef}ve".as_bytes(),
            "\u{3a3}\u{39f}\u{3a6}\u{399}\u{391} \u{65e5}\u{672c}\u{8a9e}\u{3001}\u{6587}"
                .as_bytes(),
            b"bad\xffbyte \xe2\x82 cut\xe2\x82\xacok \xc3",
            "em\u{2014}dash non\u{a0}breaking x\u{200b}y".as_bytes(),
            b"tab\tnew\nline\r\nunder_score dot.ted",
            "\u{ff21}\u{ff22} full-width \u{2167} roman".as_bytes(),
            b"A",
            b"sixteen-letters! abcdefghijklmnop abcdefghijklmnopq ABCDEFGHIJKLMNOPQRSTUV x",
        ];
        for case in cases {
            assert_eq!(
                count_words(case),
                by_definition(case),
                "{}",
                String::from_utf8_lossy(case)
            );
        }
    }

    #[test]
    fn the_encoding_is_that_of_the_sorted_owned_counts() {
        let text =
            b"zeta Alpha alpha b a longwordlongword-longwordlongword beta Zeta \xc3\xa9t\xc3\xa9";
        assert_eq!(
            count_words_encoded(text),
            crate::codec::encode_blob(&by_definition(text))
        );
    }

    #[test]
    fn the_eight_byte_classifier_agrees_with_the_class_table() {
        for b in 0..=255u8 {
            let (run, upper, non_ascii) = classify8(u64::from_le_bytes([b; 8]));
            let class = CLASS[b as usize];
            assert_eq!(run == HIGH, class != SEPARATOR, "byte {b:#x}");
            assert_eq!(upper == HIGH, class == UPPER, "byte {b:#x}");
            assert_eq!(non_ascii == HIGH, class == NON_ASCII, "byte {b:#x}");
            assert!(run == 0 || run == HIGH);
        }
    }

    #[test]
    fn packed_lowercasing_touches_capital_letters_only() {
        let all: Vec<u8> = (1..0x80u8).collect();
        for window in all.chunks(SHORT) {
            let expected = pack(&window.to_ascii_lowercase());
            assert_eq!(lowercase_packed(pack(window)), expected, "{window:?}");
        }
    }

    #[test]
    fn agrees_with_the_definition_on_long_random_runs() {
        // Mostly letters, so that runs span several eight-byte blocks.
        let mut rng = SplitMix64(9);
        let alphabet = b"abcdefghijXYZ0123456789abcdefghij \xc3\xa9.";
        for _ in 0..300 {
            let len = (rng.next_u64() % 300) as usize;
            let text: Vec<u8> = (0..len)
                .map(|_| alphabet[(rng.next_u64() % alphabet.len() as u64) as usize])
                .collect();
            assert_eq!(count_words(&text), by_definition(&text), "{text:?}");
        }
    }

    #[test]
    fn agrees_with_the_definition_on_random_bytes() {
        let mut rng = SplitMix64(5);
        // Bytes drawn mostly from letters, with separators, UTF-8 lead and continuation bytes.
        let alphabet = b"aAzZ09 ,.\n\xc3\xa9\xe2\x82\xac\xff\x80";
        for _ in 0..500 {
            let len = (rng.next_u64() % 200) as usize;
            let text: Vec<u8> = (0..len)
                .map(|_| alphabet[(rng.next_u64() % alphabet.len() as u64) as usize])
                .collect();
            assert_eq!(count_words(&text), by_definition(&text), "{text:?}");
        }
    }
}
