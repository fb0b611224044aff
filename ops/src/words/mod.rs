//! Word counting for the `wordcount` map task, fast on ASCII text and exact on everything else.
//!
//! A word is a maximal run of characters for which `char::is_alphanumeric` holds, lowercased
//! with `str::to_lowercase`; invalid UTF-8 is replaced with U+FFFD, which separates words. That
//! definition lives in [`for_each_word`]; the rest of this module computes the same counts
//! faster. ASCII bytes that are not letters or digits are always separators and never part of a
//! multi-byte character, so the text splits at them into runs, found 64 bytes at a time with a
//! bitmask. A run of up to 16 ASCII letters and digits (nearly every word) is packed into an
//! integer, lowercased eight bytes at a time and counted in a linear-probing table
//! (`short_table.rs`); a longer ASCII run is lowercased in a reused buffer; a run holding bytes
//! ≥ 0x80 is decoded and split through tables of the Basic Multilingual Plane (`unicode.rs`);
//! its words are counted straight from the input when already lowercase, else lowercased
//! through the same tables (capital sigma included, by the standard library's final-sigma
//! rule), and packed like ASCII ones when they are 16 bytes or shorter; invalid UTF-8 separates
//! words byte by byte (as its replacement character does), and a word the tables cannot
//! lowercase (a four-byte character, 'İ') is lowercased by `str::to_lowercase` alone.

mod definition;
mod short_table;
mod unicode;

pub use definition::for_each_word;
use short_table::ShortTable;
use std::collections::HashMap;

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

/// The `len` (1 to 8) bytes at `at` as a little-endian integer, zero-padded: one unaligned
/// load when eight bytes are there (no copy through a buffer).
fn load_le(bytes: &[u8], at: usize, len: usize) -> u64 {
    match bytes.get(at..at + 8) {
        Some(window) => {
            u64::from_le_bytes(window.try_into().expect("8 bytes")) & (u64::MAX >> (64 - 8 * len))
        }
        None => {
            let mut buf = [0u8; 8];
            buf[..len].copy_from_slice(&bytes[at..at + len]);
            u64::from_le_bytes(buf)
        }
    }
}

/// The `len` (1 to 16) bytes at `at`, packed like [`pack`]. Most words fit in the first half.
fn pack_at(bytes: &[u8], at: usize, len: usize) -> u128 {
    if len <= 8 {
        u128::from(load_le(bytes, at, len))
    } else {
        u128::from(load_le(bytes, at, 8)) | u128::from(load_le(bytes, at + 8, len - 8)) << 64
    }
}

/// ASCII-lowercases every byte of a packed key (all bytes below 0x80): a byte in A..=Z gains
/// 0x20, computed eight bytes at a time.
fn lowercase_packed(key: u128) -> u128 {
    let lower8 = |x: u64| {
        let at_least_a = x + LOW * u64::from(0x80 - b'A');
        let above_z = x + LOW * u64::from(0x80 - b'Z' - 1);
        x | ((at_least_a & !above_z & HIGH) >> 2)
    };
    u128::from(lower8(key as u64)) | u128::from(lower8((key >> 64) as u64)) << 64
}

/// The length of a packed word (the bytes before the zero padding).
fn packed_len(key: u128) -> usize {
    SHORT - (key.leading_zeros() / 8) as usize
}

/// Counts per word: short words under packed keys, the rest under their bytes.
#[derive(Default)]
struct Counts {
    short: ShortTable,
    long: HashMap<Box<[u8]>, u64, Hasher>,
}

impl Counts {
    /// Counts the `len` bytes at `at` in `bytes`, a lowercase word: a short one is packed
    /// straight from `bytes`, without a copy.
    #[inline]
    fn add_at(&mut self, bytes: &[u8], at: usize, len: usize) {
        if len <= SHORT {
            self.short.add(pack_at(bytes, at, len), 1);
        } else {
            self.add(&bytes[at..at + len]);
        }
    }

    fn add(&mut self, word: &[u8]) {
        if word.len() <= SHORT {
            self.short.add(pack(word), 1);
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
        let mut short = self.short.drain();
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
    with_counts(bytes, |sorted| shoal_protocol::codec::encode_blob(&sorted))
}

const HIGH: u64 = 0x8080_8080_8080_8080;
const LOW: u64 = 0x0101_0101_0101_0101;
const HIGH128: u128 = u128::from_le_bytes([0x80; SHORT]);

/// For the eight bytes of `x` (little-endian), the high bit of each byte set where the byte
/// continues a run: a letter, a digit, or any byte of 0x80 and above. Computed on the eight
/// bytes at once: each range test adds a constant to the low seven bits of every byte, which
/// cannot carry into the next.
fn run_bytes8(x: u64) -> u64 {
    let y = x & !HIGH;
    let at_least = |v: u64, c: u8| (v + LOW * u64::from(0x80 - c)) & HIGH;
    let digit = at_least(y, b'0') & !at_least(y, b'9' + 1);
    // Setting bit 5 folds A..=Z onto a..=z and nothing else onto them.
    let folded = y | (LOW * 0x20);
    let letter = at_least(folded, b'a') & !at_least(folded, b'z' + 1);
    digit | letter | (x & HIGH)
}

/// The high bit of each byte of `x` gathered into the low eight bits, byte 0 to bit 0.
fn high_bits8(x: u64) -> u64 {
    (((x >> 7) & LOW).wrapping_mul(0x0102_0408_1020_4080)) >> 56
}

/// A bit per byte of the (up to) 64 bytes at `base`: set where the byte continues a run.
/// Bytes past the end count as separators.
fn run_mask(bytes: &[u8], base: usize) -> u64 {
    let mut padded = [0u8; 64];
    let block: &[u8] = match bytes.get(base..base + 64) {
        Some(block) => block,
        None => {
            // Zero is a separator.
            let tail = &bytes[base..];
            padded[..tail.len()].copy_from_slice(tail);
            &padded
        }
    };
    let mut mask = 0;
    for (k, eight) in block.chunks_exact(8).enumerate() {
        let x = u64::from_le_bytes(eight.try_into().expect("8 bytes"));
        mask |= high_bits8(run_bytes8(x)) << (8 * k);
    }
    mask
}

/// Buffers reused from run to run.
#[derive(Default)]
struct Scratch {
    lowered: Vec<u8>,
}

/// Counts the run `bytes[start..end]`: a short ASCII run (nearly every word) under its packed
/// key, other ASCII runs lowercased in a buffer, runs with non-ASCII characters through the
/// tables of `unicode.rs`.
#[inline(always)]
fn add_run(counts: &mut Counts, scratch: &mut Scratch, bytes: &[u8], start: usize, end: usize) {
    let lowered = &mut scratch.lowered;
    let len = end - start;
    if len <= SHORT {
        let key = pack_at(bytes, start, len);
        if key & HIGH128 == 0 {
            counts.short.add(lowercase_packed(key), 1);
            return;
        }
    }
    let word = &bytes[start..end];
    if word.is_ascii() {
        lowered.clear();
        lowered.extend(word.iter().map(u8::to_ascii_lowercase));
        counts.add(lowered);
    } else {
        unicode::count_run(counts, lowered, bytes, start, end);
    }
}

/// Adds the words of `bytes` to `counts`: the text is scanned 64 bytes at a time into a
/// bitmask of run bytes, and runs are read off the mask with bit counts.
fn count_into(counts: &mut Counts, bytes: &[u8]) {
    let mut scratch = Scratch::default();
    let mut add =
        |counts: &mut Counts, start, end| add_run(counts, &mut scratch, bytes, start, end);
    // Where the run that reaches the end of the previous block started.
    let mut open: Option<usize> = None;
    let mut base = 0;
    while base < bytes.len() {
        let mut mask = run_mask(bytes, base);
        if let Some(start) = open {
            let stop = (!mask).trailing_zeros();
            if stop == 64 {
                base += 64;
                continue;
            }
            add(counts, start, base + stop as usize);
            open = None;
            mask &= !0 << stop;
        }
        while mask != 0 {
            let start = mask.trailing_zeros();
            let after = !mask & (!0 << start);
            if after == 0 {
                open = Some(base + start as usize);
                break;
            }
            let end = after.trailing_zeros();
            add(counts, base + start as usize, base + end as usize);
            mask &= !0 << end;
        }
        base += 64;
    }
    if let Some(start) = open {
        add(counts, start, bytes.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;
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
            shoal_protocol::codec::encode_blob(&by_definition(text))
        );
    }

    #[test]
    fn the_run_mask_marks_letters_digits_and_non_ascii_bytes() {
        for b in 0..=255u8 {
            let continues = b >= 0x80 || b.is_ascii_alphanumeric();
            let run = run_bytes8(u64::from_le_bytes([b; 8]));
            assert_eq!(run, if continues { HIGH } else { 0 }, "byte {b:#x}");
        }
        // Bit k of the mask is byte k, also in a short last block.
        let text = b"ab cd\xc3\xa9-9_Z!0123456789abcdefghijklmnopqrstuvwxyz?.,ABCDEFGHIJKLMNOPQRST";
        for base in [0, 64] {
            let mask = run_mask(text, base);
            for k in 0..64 {
                let expected = text
                    .get(base + k)
                    .is_some_and(|&b| b >= 0x80 || b.is_ascii_alphanumeric());
                assert_eq!(mask >> k & 1 == 1, expected, "byte {}", base + k);
            }
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

    /// Random texts of up to `max_len` bytes drawn from `alphabet` count as the definition says.
    fn agrees_on_random_texts(seed: u64, alphabet: &[u8], texts: usize, max_len: u64) {
        let mut rng = SplitMix64(seed);
        for _ in 0..texts {
            let len = (rng.next_u64() % max_len) as usize;
            let text: Vec<u8> = (0..len)
                .map(|_| alphabet[(rng.next_u64() % alphabet.len() as u64) as usize])
                .collect();
            assert_eq!(count_words(&text), by_definition(&text), "{text:?}");
        }
    }

    #[test]
    fn agrees_with_the_definition_on_long_random_runs() {
        // Mostly letters, so that runs cross the 64-byte blocks of the scan.
        agrees_on_random_texts(9, b"abcdefghijXYZ0123456789abcdefghij \xc3\xa9.", 300, 300);
    }

    #[test]
    fn agrees_with_the_definition_on_random_bytes() {
        // Bytes drawn mostly from letters, with separators, UTF-8 lead and continuation bytes.
        agrees_on_random_texts(5, b"aAzZ09 ,.\n\xc3\xa9\xe2\x82\xac\xff\x80", 500, 200);
    }

    #[test]
    fn agrees_with_the_definition_on_binary_data() {
        // Any byte at all, mixed with pieces of UTF-8: four-byte characters, 'İ', capital
        // sigma, cut-off sequences, overlong encodings, surrogates, code points past U+10FFFF,
        // stray continuation bytes. Invalid bytes separate words right next to valid letters.
        let pieces: [&[u8]; 14] = [
            "😀".as_bytes(),
            "𝐀".as_bytes(),
            "İ".as_bytes(),
            "Σ".as_bytes(),
            "é".as_bytes(),
            "日".as_bytes(),
            b"\xf0\x9f\x98",
            b"\xe2\x82",
            b"\xc0\xaf",
            b"\xe0\x80\xaf",
            b"\xed\xa0\x80",
            b"\xf4\x90\x80\x80",
            b"\xf8\x88\x80\x80\x80",
            b"aZ",
        ];
        let mut rng = SplitMix64(41);
        for _ in 0..3_000 {
            let len = rng.next_u64() % 40;
            let mut text = Vec::new();
            for _ in 0..len {
                let r = rng.next_u64();
                if r.is_multiple_of(3) {
                    text.push((r >> 8) as u8);
                } else {
                    text.extend_from_slice(pieces[(r >> 8) as usize % pieces.len()]);
                }
            }
            assert_eq!(count_words(&text), by_definition(&text), "{text:?}");
        }
    }

    /// Random texts of up to `max_chars` characters drawn from `alphabet` count as the
    /// definition says.
    fn agrees_on_random_unicode(seed: u64, alphabet: &[char], texts: usize, max_chars: u64) {
        let mut rng = SplitMix64(seed);
        for _ in 0..texts {
            let len = rng.next_u64() % max_chars;
            let text: String = (0..len)
                .map(|_| alphabet[(rng.next_u64() % alphabet.len() as u64) as usize])
                .collect();
            assert_eq!(
                count_words(text.as_bytes()),
                by_definition(text.as_bytes()),
                "{text:?}"
            );
        }
    }

    #[test]
    fn agrees_with_the_definition_on_random_multilingual_text() {
        // Letters of several scripts in both cases, other scripts' digits, separators of all
        // widths, combining marks, final-sigma contexts, characters whose lowercase is longer
        // (İ) or ASCII (the Kelvin sign), four-byte characters and a private-use one.
        let alphabet: Vec<char> = "aZ9 ,.\n\téÉßẞçÇøØΣσςΑαΩωЖжЯяЁёԱաⴀႠ日本語中文한국어ひらがなカタカナ٣٤०१\u{301}\u{345}\u{200b}\u{a0}、。—–İıK𝐀😀𠀀\u{e000}\u{fffd}"
            .chars()
            .collect();
        agrees_on_random_unicode(21, &alphabet, 2_000, 120);
    }

    #[test]
    fn agrees_with_the_definition_around_capital_sigma() {
        // Sigma next to cased letters, caseless ones, digits, case-ignorable letters (a
        // combining mark, a modifier letter), separators, and characters that take the general
        // path: its lowercase ('σ' or a final 'ς') depends on all of them.
        let alphabet: Vec<char> = "ΣΣΣσςαΑa1日\u{345}\u{2b0} 、İ".chars().collect();
        agrees_on_random_unicode(33, &alphabet, 3_000, 12);
    }

    #[test]
    fn agrees_with_the_definition_on_random_code_points() {
        // Any code point at all, weighted towards the two- and three-byte ranges.
        let mut rng = SplitMix64(77);
        let alphabet: Vec<char> = (0..4_000)
            .filter_map(|i| {
                let r = rng.next_u64();
                let cp = match i % 4 {
                    0 => (r % 0x80) as u32,
                    1 => 0x80 + (r % 0x780) as u32,
                    2 => 0x800 + (r % 0xF800) as u32,
                    _ => 0x1_0000 + (r % 0x2_0000) as u32,
                };
                char::from_u32(cp)
            })
            .collect();
        agrees_on_random_unicode(5, &alphabet, 1_000, 200);
    }

    #[test]
    fn short_non_ascii_words_are_packed_and_sorted_like_the_rest() {
        let text = "Été été ÉTÉ été zèbre ÆON æon 日本 日本語 Καλημέρα ΚΑΛΗΜΈΡΑ";
        assert_eq!(count_words(text.as_bytes()), by_definition(text.as_bytes()));
        assert_eq!(
            count_words_encoded(text.as_bytes()),
            shoal_protocol::codec::encode_blob(&by_definition(text.as_bytes()))
        );
    }
}
