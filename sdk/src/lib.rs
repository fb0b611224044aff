//! Write a Shoal job in a few lines of Rust.
//!
//! ```ignore
//! fn map(input: &[u8]) -> Vec<u8> { /* one chunk of whole lines, or an encoded range */ }
//! fn reduce(a: &[u8], b: &[u8]) -> Vec<u8> { /* must be associative */ }
//! shoal_guest::job!(map: map, reduce: reduce);
//! ```
//!
//! Build with `cargo build --release --target wasm32-unknown-unknown` (crate type `cdylib`) and
//! submit with `shoal submit --wasm module.wasm INPUTS...`. The macro exports `shoal_alloc`,
//! `shoal_map` and `shoal_reduce` as docs/wasm-abi.md specifies; `memory` is exported by the
//! Rust toolchain.
//!
//! Memory handed to the module (inputs) and returned by it (outputs) is never freed: each task
//! runs in a fresh instance that is discarded afterwards, and the host caps its memory.

/// Allocates `len` bytes for the host to write an input into.
pub fn alloc(len: i32) -> i32 {
    let mut buf = Vec::<u8>::with_capacity(len.max(0) as usize);
    let ptr = buf.as_mut_ptr();
    std::mem::forget(buf);
    ptr as usize as i32
}

/// The input the host wrote at `ptr` (obtained from [`alloc`]).
#[allow(unsafe_code)]
pub fn input(ptr: i32, len: i32) -> &'static [u8] {
    if len <= 0 {
        return &[];
    }
    // SAFETY: the host wrote `len` bytes at `ptr`, an allocation of at least `len` bytes made
    // by `alloc`, which is never freed; nothing else writes to it.
    unsafe { std::slice::from_raw_parts(ptr as usize as *const u8, len as usize) }
}

/// Leaks `out` and packs its address and length the way the host reads them.
pub fn output(out: Vec<u8>) -> i64 {
    let out = Box::leak(out.into_boxed_slice());
    let (ptr, len) = (out.as_ptr() as usize as u32, out.len() as u32);
    (i64::from(ptr) << 32) | i64::from(len)
}

/// Decodes a generated range input: `[start, end)` as two little-endian u64.
pub fn range(input: &[u8]) -> Option<(u64, u64)> {
    if input.len() != 16 {
        return None;
    }
    let start = u64::from_le_bytes(input[..8].try_into().ok()?);
    let end = u64::from_le_bytes(input[8..].try_into().ok()?);
    Some((start, end))
}

/// Exports a job module from a map and a reduce function.
#[macro_export]
macro_rules! job {
    (map: $map:path, reduce: $reduce:path $(,)?) => {
        #[allow(unsafe_code)]
        #[unsafe(no_mangle)]
        pub extern "C" fn shoal_alloc(len: i32) -> i32 {
            $crate::alloc(len)
        }

        #[allow(unsafe_code)]
        #[unsafe(no_mangle)]
        pub extern "C" fn shoal_map(ptr: i32, len: i32) -> i64 {
            $crate::output($map($crate::input(ptr, len)))
        }

        #[allow(unsafe_code)]
        #[unsafe(no_mangle)]
        pub extern "C" fn shoal_reduce(a_ptr: i32, a_len: i32, b_ptr: i32, b_len: i32) -> i64 {
            $crate::output($reduce(
                $crate::input(a_ptr, a_len),
                $crate::input(b_ptr, b_len),
            ))
        }
    };
}

/// A flat JSON object of string keys and unsigned integer values, as the example jobs use for
/// their partial results: `{"key":1,"other":2}`, keys in byte order. Keys must not need JSON
/// escaping (the examples' keys are words and level names).
pub mod counts {
    use std::collections::BTreeMap;

    /// Serializes counts compactly, keys in byte order (as serde_json does for a BTreeMap).
    pub fn encode(counts: &BTreeMap<String, u64>) -> Vec<u8> {
        let mut out = Vec::with_capacity(counts.len() * 12 + 2);
        out.push(b'{');
        for (i, (k, v)) in counts.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.push(b'"');
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(b"\":");
            out.extend_from_slice(v.to_string().as_bytes());
        }
        out.push(b'}');
        out
    }

    /// Parses what [`encode`] writes. Malformed input yields the pairs read so far.
    pub fn decode(bytes: &[u8]) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        let text = String::from_utf8_lossy(bytes);
        let body = text.trim().trim_start_matches('{').trim_end_matches('}');
        let mut rest = body;
        while let Some(open) = rest.find('"') {
            let after = &rest[open + 1..];
            let Some(close) = after.find('"') else { break };
            let key = &after[..close];
            let tail = after[close + 1..].trim_start_matches(':');
            let digits: String = tail.chars().take_while(char::is_ascii_digit).collect();
            out.insert(key.to_string(), digits.parse().unwrap_or(0));
            rest = &tail[digits.len()..];
        }
        out
    }

    /// Adds `b` into `a`.
    pub fn merge(mut a: BTreeMap<String, u64>, b: BTreeMap<String, u64>) -> BTreeMap<String, u64> {
        for (k, v) in b {
            *a.entry(k).or_insert(0) += v;
        }
        a
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn counts_round_trip() {
            let mut m = std::collections::BTreeMap::new();
            m.insert("été".to_string(), 3);
            m.insert("a".to_string(), 10);
            assert_eq!(super::decode(&super::encode(&m)), m);
            // Keys in byte order, compact, as serde_json prints a BTreeMap.
            assert_eq!(super::encode(&m), "{\"a\":10,\"été\":3}".as_bytes());
        }
    }
}
