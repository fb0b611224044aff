//! Word count as a WebAssembly job: the same output as the built-in `wordcount`, a JSON object
//! word -> count with words lowercased runs of alphanumeric characters.

use shoal_guest::counts;
use std::collections::BTreeMap;

pub fn map(chunk: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(chunk);
    let mut words: BTreeMap<String, u64> = BTreeMap::new();
    for word in text.split(|c: char| !c.is_alphanumeric()) {
        if !word.is_empty() {
            *words.entry(word.to_lowercase()).or_insert(0) += 1;
        }
    }
    counts::encode(&words)
}

pub fn reduce(a: &[u8], b: &[u8]) -> Vec<u8> {
    counts::encode(&counts::merge(counts::decode(a), counts::decode(b)))
}

// Exported only in the WebAssembly build, so the host can link the crate for its tests.
#[cfg(target_arch = "wasm32")]
shoal_guest::job!(map: map, reduce: reduce);
