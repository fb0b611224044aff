//! The fast path for runs with non-ASCII bytes: the common two- and three-byte UTF-8
//! sequences (every character of the Basic Multilingual Plane) are decoded by hand, classified
//! and lowercased through tables built from the standard library's own `char` functions, so
//! the result is the definition's, by construction.
//!
//! A run is read once to find its words and whether each is already lowercase; most are (CJK
//! has no case, and most letters of cased scripts are small), and those are counted straight
//! from the input, without a copy. Only a word that changes is read again and lowercased into
//! a buffer. Capital sigma, whose lowercase depends on its neighbours in the word (a final one
//! becomes 'ς'), is settled by the same rule `str::to_lowercase` applies, from tables of which
//! characters are cased and which are case-ignorable, probed from `str::to_lowercase` itself.
//!
//! Invalid UTF-8 separates words byte by byte, as its replacement character does in the
//! definition. A word the tables cannot lowercase (one with a four-byte character, or with a
//! character whose lowercase is not one BMP character, such as U+0130 'İ') is lowercased by
//! `str::to_lowercase`, that word alone.

use super::Counts;
use std::sync::OnceLock;

/// Per BMP code point: its lowercase (one BMP character; for 'Σ', the non-final 'σ'), or
/// [`SPECIAL`], or [`SEPARATOR`].
struct Tables {
    lower: Box<[u16]>,
}

/// Not alphanumeric: ends a word.
const SEPARATOR: u16 = 0;
/// Alphanumeric, but the tables cannot lowercase it: the word takes the general path.
const SPECIAL: u16 = 0xFFFF;
/// Capital sigma, the one character whose lowercase depends on its context.
const SIGMA: u32 = 0x3A3;
/// `Cased` in Unicode's sense (and not case-ignorable): a neighbour that makes a sigma final
/// when it precedes it, and not final when it follows it.
const CASED: u8 = 1;
/// `Case_Ignorable`: skipped when looking for a sigma's neighbours.
const IGNORABLE: u8 = 2;

fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(|| {
        let mut lower = vec![SEPARATOR; 0x1_0000].into_boxed_slice();
        for cp in 0..0x1_0000u32 {
            let Some(c) = char::from_u32(cp) else {
                continue; // surrogates are not characters
            };
            if !c.is_alphanumeric() {
                continue;
            }
            let mut low = c.to_lowercase();
            lower[cp as usize] = match (low.next(), low.next()) {
                (Some(l), None) if (l as u32) < 0xFFFF && (l as u32) != 0 => l as u16,
                _ => SPECIAL,
            };
        }
        // U+FFFF itself is a noncharacter (not alphanumeric), so the sentinel is free.
        Tables { lower }
    })
}

/// Per BMP letter or digit, its [`CASED`] and [`IGNORABLE`] bits; built the first time a
/// capital sigma is met (most text has none, and the probes take a few milliseconds).
fn sigma_classes() -> &'static [u8] {
    static CLASSES: OnceLock<Box<[u8]>> = OnceLock::new();
    CLASSES.get_or_init(|| {
        (0..0x1_0000u32)
            .map(|cp| match char::from_u32(cp) {
                Some(c) if c.is_alphanumeric() => sigma_class(c),
                _ => 0,
            })
            .collect()
    })
}

/// How `c` bears on a sigma before or after it, asked of `str::to_lowercase`: a sigma between
/// 'a' (cased) and `c` is final unless `c` is cased or is skipped (case-ignorable) on the way
/// to what follows; with '1' (not cased) or 'a' after `c`, the two cases differ.
fn sigma_class(c: char) -> u8 {
    let final_sigma = |after: char| {
        let probe: String = ['a', 'Σ', c, after].into_iter().collect();
        probe.to_lowercase().chars().nth(1) == Some('ς')
    };
    match (final_sigma('1'), final_sigma('a')) {
        (false, _) => CASED,
        (true, false) => IGNORABLE,
        (true, true) => 0,
    }
}

/// The [`CASED`] and [`IGNORABLE`] bits of `cp`, a letter or digit of a word.
fn class_of(class: &[u8], cp: u32) -> u8 {
    if cp < 0x80 {
        // Inside a word, an ASCII byte is a letter (cased) or a digit (neither).
        if (cp as u8).is_ascii_alphabetic() {
            CASED
        } else {
            0
        }
    } else {
        class[cp as usize]
    }
}

#[inline]
fn continuation(b: u8) -> bool {
    b & 0xC0 == 0x80
}

/// The BMP character whose UTF-8 encoding (two or three bytes, lead byte `b` ≥ 0x80) starts
/// at `i` in `text`, and its length; `None` for anything else (a four-byte sequence, invalid
/// or cut-off UTF-8), which the general path replaces as the definition does.
#[inline(always)]
fn decode(text: &[u8], i: usize, b: u8) -> Option<(u32, usize)> {
    if b < 0xE0 {
        let c1 = *text.get(i + 1)?;
        (b >= 0xC2 && continuation(c1))
            .then(|| ((u32::from(b & 0x1F) << 6) | u32::from(c1 & 0x3F), 2))
    } else if b < 0xF0 {
        let (c1, c2) = (*text.get(i + 1)?, *text.get(i + 2)?);
        if !(continuation(c1) && continuation(c2)) {
            return None;
        }
        let cp = (u32::from(b & 0x0F) << 12) | (u32::from(c1 & 0x3F) << 6) | u32::from(c2 & 0x3F);
        // Overlong encodings and surrogates are invalid UTF-8.
        (cp >= 0x800 && !(0xD800..0xE000).contains(&cp)).then_some((cp, 3))
    } else {
        None
    }
}

/// The characters of `word` (valid, BMP, as checked by the first pass) with their positions.
fn chars_of(word: &[u8]) -> impl DoubleEndedIterator<Item = (usize, u32)> + '_ {
    std::str::from_utf8(word)
        .expect("checked by the first pass")
        .char_indices()
        .map(|(i, c)| (i, c as u32))
}

/// Unicode's Final_Sigma, as `str::to_lowercase` applies it within `word`: the sigma at `at`
/// is final if, skipping case-ignorable characters, a cased one comes before it and none after.
fn final_sigma(class: &[u8], word: &[u8], at: usize) -> bool {
    let cased_past_ignorables = |mut chars: Box<dyn Iterator<Item = (usize, u32)> + '_>| {
        chars
            .find(|&(_, cp)| class_of(class, cp) & IGNORABLE == 0)
            .is_some_and(|(_, cp)| class_of(class, cp) & CASED != 0)
    };
    cased_past_ignorables(Box::new(chars_of(&word[..at]).rev()))
        && !cased_past_ignorables(Box::new(chars_of(&word[at + 2..])))
}

/// Writes the UTF-8 encoding of BMP code point `cp` at `at` in `out`; returns its length.
#[inline(always)]
fn put_utf8(out: &mut [u8], at: usize, cp: u32) -> usize {
    if cp < 0x80 {
        out[at] = cp as u8;
        1
    } else if cp < 0x800 {
        out[at] = 0xC0 | (cp >> 6) as u8;
        out[at + 1] = 0x80 | (cp & 0x3F) as u8;
        2
    } else {
        out[at] = 0xE0 | (cp >> 12) as u8;
        out[at + 1] = 0x80 | ((cp >> 6) & 0x3F) as u8;
        out[at + 2] = 0x80 | (cp & 0x3F) as u8;
        3
    }
}

/// Lowercases `word` (checked by the first pass: BMP characters the tables settle) into
/// `out`, which has room for half as much again (a BMP character's lowercase is at most one
/// byte longer than its two bytes); returns the length written.
#[inline(always)]
fn lowercase_into(tables: &Tables, word: &[u8], out: &mut [u8]) -> usize {
    let mut n = 0;
    let mut i = 0;
    while i < word.len() {
        let b = word[i];
        if b < 0x80 {
            out[n] = b.to_ascii_lowercase();
            n += 1;
            i += 1;
            continue;
        }
        let (cp, len) = decode(word, i, b).expect("checked by the first pass");
        let l = if cp == SIGMA && final_sigma(sigma_classes(), word, i) {
            'ς' as u32
        } else {
            u32::from(tables.lower[cp as usize])
        };
        n += put_utf8(out, n, l);
        i += len;
    }
    n
}

/// Lowercases `word` (as [`lowercase_into`]) and counts it: a short word in a buffer on the
/// stack, packed from there, a longer one in `lowered`.
fn add_lowercased(tables: &Tables, counts: &mut Counts, word: &[u8], lowered: &mut Vec<u8>) {
    const STACK: usize = 32;
    if word.len() <= STACK {
        let mut buf = [0u8; STACK * 3 / 2];
        let n = lowercase_into(tables, word, &mut buf);
        counts.add_at(&buf, 0, n);
    } else {
        lowered.clear();
        lowered.resize(word.len() * 3 / 2, 0);
        let n = lowercase_into(tables, word, lowered);
        counts.add(&lowered[..n]);
    }
}

/// How a word read so far lowercases.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Case {
    /// Lowercasing leaves it as it is: counted straight from the input.
    Unchanged,
    /// The tables lowercase it.
    Tables,
    /// It holds a character the tables cannot lowercase (a four-byte one, or one whose
    /// lowercase is not one BMP character, such as 'İ'): `str::to_lowercase` does, on this
    /// word alone, as the definition lowercases each word on its own.
    General,
}

/// The character whose four-byte UTF-8 encoding starts at `i` (lead byte `b`), if it is one.
fn decode4(text: &[u8], i: usize, b: u8) -> Option<char> {
    if !(0xF0..=0xF4).contains(&b) {
        return None;
    }
    let four = text.get(i..i + 4)?;
    std::str::from_utf8(four).ok()?.chars().next()
}

/// Counts the words of the run `bytes[start..end]` (bytes that are ASCII letters and digits or
/// at least 0x80).
///
/// Invalid UTF-8 separates words byte by byte. The definition replaces each maximal invalid
/// sequence with one U+FFFD, which is a separator; the bytes after such a sequence's first
/// are continuation bytes, which never start a character, so treating each invalid byte as a
/// separator resumes at the same place and finds the same words.
pub(super) fn count_run(
    counts: &mut Counts,
    lowered: &mut Vec<u8>,
    bytes: &[u8],
    start: usize,
    end: usize,
) {
    let tables = tables();
    // A run ends at an ASCII separator or at the end of `bytes`, so no character that starts
    // in it ends past it: decoding may read `bytes` directly.
    let run = bytes;
    let mut finish = |counts: &mut Counts, from: usize, to: usize, case: Case| {
        if to == from {
            return;
        }
        match case {
            Case::Unchanged => counts.add_at(run, from, to - from),
            Case::Tables => add_lowercased(tables, counts, &run[from..to], lowered),
            Case::General => {
                let word = std::str::from_utf8(&run[from..to]).expect("decoded as valid");
                counts.add(word.to_lowercase().as_bytes());
            }
        }
    };
    // Where the current word started, and how it lowercases so far.
    let mut word = start;
    let mut case = Case::Unchanged;
    let mut i = start;
    while i < end {
        let b = run[i];
        if b < 0x80 {
            // In a run, every ASCII byte is a letter or a digit.
            if b.is_ascii_uppercase() {
                case = case.max(Case::Tables);
            }
            i += 1;
            continue;
        }
        let (len, letter) = match decode(run, i, b) {
            Some((cp, len)) => match tables.lower[cp as usize] {
                SEPARATOR => (len, None),
                SPECIAL => (len, Some(Case::General)),
                l if u32::from(l) != cp => (len, Some(Case::Tables)),
                _ => (len, Some(Case::Unchanged)),
            },
            None => match decode4(run, i, b) {
                Some(c) if c.is_alphanumeric() => (4, Some(Case::General)),
                Some(_) => (4, None),
                // Invalid UTF-8: this byte separates.
                None => (1, None),
            },
        };
        match letter {
            Some(c) => case = case.max(c),
            None => {
                finish(counts, word, i, case);
                word = i + len;
                case = Case::Unchanged;
            }
        }
        i += len;
    }
    finish(counts, word, end, case);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bmp_character_is_classified_and_lowercased_as_the_standard_library_does() {
        let lower = &tables().lower;
        for cp in 0..0x1_0000u32 {
            let Some(c) = char::from_u32(cp) else {
                continue;
            };
            match lower[cp as usize] {
                SEPARATOR => assert!(!c.is_alphanumeric(), "{c:?}"),
                SPECIAL => assert!(c.is_alphanumeric(), "{c:?}"),
                l => {
                    let expected: String = c.to_string().to_lowercase();
                    let got = char::from_u32(u32::from(l)).unwrap().to_string();
                    if c != 'Σ' {
                        assert_eq!(got, expected, "{c:?}");
                    }
                }
            }
        }
        assert_eq!(lower['Σ' as usize], 'σ' as u16);
        assert_eq!(lower['İ' as usize], SPECIAL);
    }

    #[test]
    fn sigma_neighbours_are_classified() {
        let class = sigma_classes();
        assert_eq!(class_of(class, 'α' as u32), CASED);
        assert_eq!(class_of(class, 'a' as u32), CASED);
        assert_eq!(class_of(class, '1' as u32), 0);
        assert_eq!(class_of(class, '日' as u32), 0);
        // Combining Greek ypogegrammeni: alphabetic, and case-ignorable.
        assert_eq!(class_of(class, '\u{345}' as u32) & IGNORABLE, IGNORABLE);
        // Modifier letter small h: alphabetic, cased and case-ignorable.
        assert_eq!(class_of(class, '\u{2b0}' as u32) & IGNORABLE, IGNORABLE);
    }

    #[test]
    fn sigma_is_lowercased_as_the_standard_library_does_in_every_context() {
        let tables = tables();
        let neighbours = [
            "",
            "α",
            "Α",
            "1",
            "日",
            "\u{345}",
            "\u{2b0}",
            "a",
            "Σ",
            "\u{345}α",
        ];
        let mut lowered = [0u8; 64];
        for before in neighbours {
            for after in neighbours {
                for middle in ["Σ", "ΣΣ", "Σ\u{345}Σ"] {
                    let word = format!("{before}{middle}{after}");
                    let n = lowercase_into(tables, word.as_bytes(), &mut lowered);
                    assert_eq!(
                        std::str::from_utf8(&lowered[..n]).unwrap(),
                        word.to_lowercase(),
                        "{word:?}"
                    );
                }
            }
        }
    }
}
