//! A log-level summary, which no built-in job computes: for every line, the first log level
//! word it contains (ERROR, WARN, INFO, DEBUG or TRACE, as a whole word) is counted; lines with
//! none count as "other". Output: a JSON object level -> count, keys in byte order.

use shoal_guest::counts;
use std::collections::BTreeMap;

const LEVELS: [&str; 5] = ["DEBUG", "ERROR", "INFO", "TRACE", "WARN"];

/// The level a line is counted under.
pub fn level_of(line: &str) -> &'static str {
    line.split(|c: char| !c.is_ascii_alphanumeric())
        .find_map(|word| LEVELS.iter().find(|l| **l == word).copied())
        .unwrap_or("other")
}

pub fn map(chunk: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(chunk);
    let mut out: BTreeMap<String, u64> = BTreeMap::new();
    for line in text.lines() {
        *out.entry(level_of(line).to_string()).or_insert(0) += 1;
    }
    counts::encode(&out)
}

pub fn reduce(a: &[u8], b: &[u8]) -> Vec<u8> {
    counts::encode(&counts::merge(counts::decode(a), counts::decode(b)))
}

// Exported only in the WebAssembly build, so the host can link the crate for its tests.
#[cfg(target_arch = "wasm32")]
shoal_guest::job!(map: map, reduce: reduce);
