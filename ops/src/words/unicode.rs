//! The fast path for runs with non-ASCII bytes: the common two- and three-byte UTF-8
//! sequences (every character of the Basic Multilingual Plane) are decoded by hand, classified
//! and lowercased through tables built from the standard library's own `char` functions, so
//! the result is the definition's, by construction.
//!
//! A run that holds anything the tables do not settle goes whole to the general path: a
//! four-byte sequence, invalid UTF-8, a character whose lowercase is not one BMP character
//! (U+0130 'İ' becomes two), and capital sigma, whose lowercase depends on where in the word
//! it stands (`str::to_lowercase` makes a final one 'ς').

use std::sync::OnceLock;

/// Per BMP code point: its lowercase (one BMP character), or [`SPECIAL`], or [`SEPARATOR`].
struct Tables {
    lower: Box<[u16]>,
}

/// Not alphanumeric: ends a word.
const SEPARATOR: u16 = 0;
/// Alphanumeric, but the tables cannot lowercase it: the run takes the general path.
const SPECIAL: u16 = 0xFFFF;

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
            let entry = match (low.next(), low.next()) {
                (Some(l), None) if (l as u32) < 0xFFFF && (l as u32) != 0 && c != 'Σ' => l as u16,
                _ => SPECIAL,
            };
            lower[cp as usize] = entry;
        }
        // U+FFFF itself is a noncharacter (not alphanumeric), so the sentinel is free.
        Tables { lower }
    })
}

/// Appends the UTF-8 encoding of BMP code point `cp`.
#[inline]
fn push_utf8(out: &mut Vec<u8>, cp: u16) {
    let cp = u32::from(cp);
    if cp < 0x80 {
        out.push(cp as u8);
    } else if cp < 0x800 {
        out.extend_from_slice(&[0xC0 | (cp >> 6) as u8, 0x80 | (cp & 0x3F) as u8]);
    } else {
        out.extend_from_slice(&[
            0xE0 | (cp >> 12) as u8,
            0x80 | ((cp >> 6) & 0x3F) as u8,
            0x80 | (cp & 0x3F) as u8,
        ]);
    }
}

#[inline]
fn continuation(b: u8) -> bool {
    b & 0xC0 == 0x80
}

/// The words of `run` (bytes that are ASCII letters and digits or at least 0x80), lowercased,
/// laid end to end in `lowered` with their ends in `ends`; `false` if the run needs the general
/// path (then `lowered` and `ends` hold nothing meaningful).
pub(super) fn split_lowered(run: &[u8], lowered: &mut Vec<u8>, ends: &mut Vec<usize>) -> bool {
    let lower = &tables().lower;
    lowered.clear();
    ends.clear();
    let mut i = 0;
    let n = run.len();
    // Where the word being built started in `lowered`.
    let mut word_start = 0;
    while i < n {
        let b = run[i];
        if b < 0x80 {
            // In a run, every ASCII byte is a letter or a digit.
            lowered.push(b.to_ascii_lowercase());
            i += 1;
            continue;
        }
        let (cp, len) = if b < 0xE0 {
            match run.get(i + 1) {
                Some(&c1) if b >= 0xC2 && continuation(c1) => {
                    ((u32::from(b & 0x1F) << 6) | u32::from(c1 & 0x3F), 2)
                }
                _ => return false,
            }
        } else if b < 0xF0 {
            match (run.get(i + 1), run.get(i + 2)) {
                (Some(&c1), Some(&c2)) if continuation(c1) && continuation(c2) => {
                    let cp = (u32::from(b & 0x0F) << 12)
                        | (u32::from(c1 & 0x3F) << 6)
                        | u32::from(c2 & 0x3F);
                    // Overlong encodings and surrogates are invalid UTF-8: the general path
                    // replaces them as the definition does.
                    if cp < 0x800 || (0xD800..0xE000).contains(&cp) {
                        return false;
                    }
                    (cp, 3)
                }
                _ => return false,
            }
        } else {
            return false;
        };
        match lower[cp as usize] {
            SEPARATOR => {
                if lowered.len() != word_start {
                    ends.push(lowered.len());
                    word_start = lowered.len();
                }
            }
            SPECIAL => return false,
            l if u32::from(l) == cp => lowered.extend_from_slice(&run[i..i + len]),
            l => push_utf8(lowered, l),
        }
        i += len;
    }
    if lowered.len() != word_start {
        ends.push(lowered.len());
    }
    true
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
                    assert_eq!(got, expected, "{c:?}");
                }
            }
        }
        assert_eq!(lower['Σ' as usize], SPECIAL);
        assert_eq!(lower['İ' as usize], SPECIAL);
    }
}
