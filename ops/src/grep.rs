//! The `grep` operator's kernel: lines that contain a literal pattern.

/// What a match is, applied directly: the number of lines of `bytes` that contain `pattern`.
/// A line ends at `\n`; a final line without a newline counts too; the empty remainder after a
/// trailing newline is not a line. (The single-process reference counts with this; the
/// operator with [`grep_count`].)
pub fn lines_containing(bytes: &[u8], pattern: &[u8]) -> u64 {
    if bytes.is_empty() {
        return 0;
    }
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let finder = memchr::memmem::Finder::new(pattern);
    body.split(|&b| b == b'\n')
        .filter(|line| finder.find(line).is_some())
        .count() as u64
}

/// Counts lines of `bytes` that contain `pattern`, as [`lines_containing`] defines them, by
/// searching the whole text for the pattern and skipping to the end of each matching line:
/// most lines hold no match, and are never looked at one by one.
pub fn grep_count(bytes: &[u8], pattern: &[u8]) -> u64 {
    if pattern.is_empty() {
        // Every line matches.
        let newlines = memchr::memchr_iter(b'\n', bytes).count() as u64;
        return newlines + u64::from(bytes.last().is_some_and(|&b| b != b'\n'));
    }
    if memchr::memchr(b'\n', pattern).is_some() {
        // No line holds a newline.
        return 0;
    }
    let finder = memchr::memmem::Finder::new(pattern);
    let mut count = 0;
    let mut at = 0;
    while let Some(found) = finder.find(&bytes[at..]) {
        count += 1;
        // The pattern holds no newline, so the match lies within one line: go past its end.
        let after = at + found + pattern.len();
        match memchr::memchr(b'\n', &bytes[after..]) {
            Some(end) => at = after + end + 1,
            None => break,
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    #[test]
    fn grep_counts_lines_not_occurrences() {
        for count in [grep_count, lines_containing] {
            assert_eq!(count(b"ab ab\nxx\nab", b"ab"), 2);
            assert_eq!(count(b"ab\n", b"ab"), 1);
            assert_eq!(count(b"\n\n", b""), 2);
            assert_eq!(count(b"", b""), 0);
            assert_eq!(count(b"x", b""), 1);
            assert_eq!(count(b"a\nb", b"a\nb"), 0);
        }
    }

    #[test]
    fn the_fast_count_agrees_with_the_definition_on_random_text() {
        let mut rng = SplitMix64(3);
        let alphabet = b"ab\n\nxa";
        let patterns: [&[u8]; 7] = [b"", b"a", b"ab", b"aba", b"\n", b"b\na", b"bb"];
        for _ in 0..3_000 {
            let len = (rng.next_u64() % 40) as usize;
            let text: Vec<u8> = (0..len)
                .map(|_| alphabet[(rng.next_u64() % alphabet.len() as u64) as usize])
                .collect();
            for pattern in patterns {
                assert_eq!(
                    grep_count(&text, pattern),
                    lines_containing(&text, pattern),
                    "{:?} in {:?}",
                    String::from_utf8_lossy(pattern),
                    String::from_utf8_lossy(&text)
                );
            }
        }
    }
}
