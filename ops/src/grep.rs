//! The `grep` operator's kernel: lines that contain a literal pattern.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grep_counts_lines_not_occurrences() {
        assert_eq!(grep_count(b"ab ab\nxx\nab", b"ab"), 2);
        assert_eq!(grep_count(b"ab\n", b"ab"), 1);
        assert_eq!(grep_count(b"\n\n", b""), 2);
    }
}
