//! Splitting file bytes into line-aligned chunks. A line is never split: a chunk ends just after
//! a newline, or at the end of the file.

/// Where the chunk that starts at `buf[0]` ends, given about `target` bytes per chunk.
///
/// Returns the length of the chunk: the first newline at or after `target - 1` bytes, plus one.
/// `None` means no newline was found in `buf` past that point: the caller must read more, or,
/// at the end of the file, take all of `buf`.
pub fn chunk_end(buf: &[u8], target: usize) -> Option<usize> {
    let from = target.max(1) - 1;
    if from >= buf.len() {
        return None;
    }
    memchr::memchr(b'\n', &buf[from..]).map(|i| from + i + 1)
}

/// Splits a whole buffer into line-aligned chunks of about `target` bytes (at least one chunk,
/// possibly empty, so every input yields a task).
pub fn split_lines(data: &[u8], target: usize) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < data.len() {
        let len = chunk_end(&data[start..], target).unwrap_or(data.len() - start);
        out.push(start..start + len);
        start += len;
    }
    if out.is_empty() {
        out.push(0..0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_end_at_newlines_and_cover_everything() {
        let data = b"aaaa\nbb\ncccccccccc\nd";
        let chunks = split_lines(data, 3);
        assert_eq!(chunks, vec![0..5, 5..8, 8..19, 19..20]);
        for c in &chunks[..3] {
            assert_eq!(data[c.end - 1], b'\n');
        }
    }

    #[test]
    fn an_empty_input_is_one_empty_chunk() {
        assert_eq!(split_lines(b"", 10), vec![0..0]);
    }

    #[test]
    fn a_long_line_stays_whole() {
        assert_eq!(split_lines(b"abcdefgh\nx\n", 2), vec![0..9, 9..11]);
    }
}
