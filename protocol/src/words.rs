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

/// Byte classes: what a byte means for splitting.
const SEPARATOR: u8 = 0;
const LOWER_OR_DIGIT: u8 = 1;
const UPPER: u8 = 2;
const NON_ASCII: u8 = 3;

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

fn unpack(key: u128) -> Vec<u8> {
    let bytes = key.to_le_bytes();
    let len = bytes.iter().position(|&b| b == 0).unwrap_or(SHORT);
    bytes[..len].to_vec()
}

/// Counts per word: short words under packed keys, the rest under their bytes.
#[derive(Default)]
struct Counts {
    short: HashMap<u128, u64, Hasher>,
    long: HashMap<Box<[u8]>, u64, Hasher>,
}

impl Counts {
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

    fn sorted(self) -> Vec<(String, u64)> {
        let short = self.short.into_iter().map(|(k, c)| (unpack(k), c));
        let long = self.long.into_iter().map(|(w, c)| (w.into_vec(), c));
        let mut sorted: Vec<(String, u64)> = short
            .chain(long)
            .map(|(w, c)| {
                let word = String::from_utf8(w).expect("words are built from valid UTF-8");
                (word, c)
            })
            .collect();
        sorted.sort_unstable();
        sorted
    }
}

/// Counts the words of `bytes`, sorted by word.
pub fn count_words(bytes: &[u8]) -> Vec<(String, u64)> {
    let mut counts = Counts::default();
    let mut lowered = Vec::with_capacity(64);
    let mut i = 0;
    let n = bytes.len();
    while i < n {
        if CLASS[bytes[i] as usize] == SEPARATOR {
            i += 1;
            continue;
        }
        let start = i;
        let mut upper = false;
        let mut non_ascii = false;
        while i < n {
            match CLASS[bytes[i] as usize] {
                SEPARATOR => break,
                UPPER => upper = true,
                NON_ASCII => non_ascii = true,
                _ => {}
            }
            i += 1;
        }
        let run = &bytes[start..i];
        if non_ascii {
            for_each_word(run, |w| counts.add(w.as_bytes()));
        } else if upper {
            lowered.clear();
            lowered.extend(run.iter().map(u8::to_ascii_lowercase));
            counts.add(&lowered);
        } else {
            counts.add(run);
        }
    }
    counts.sorted()
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
