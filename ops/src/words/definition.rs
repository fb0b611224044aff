//! What a word is: the one definition every word count in Shoal agrees with.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_alphanumeric_runs_lowercased() {
        let mut words = Vec::new();
        for_each_word("Hello, WORLD! héllo_x 42\nÉté".as_bytes(), |w| {
            words.push(w)
        });
        assert_eq!(words, ["hello", "world", "héllo", "x", "42", "été"]);
    }
}
