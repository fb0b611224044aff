//! Results computed once (see `shoal_protocol::reuse`): the results of the tasks this node
//! computed, by the key of what determines them, so that a later job with the same task (the
//! same operator over the same chunk, or the same reduce over the same children's results)
//! takes the result instead of computing it.
//!
//! On disk in `DATA-DIR/reuse/KEY` (mode 0600 in a 0700 directory), each file the result's
//! blake3 hash followed by its bytes, checked on every read (a file that does not match is
//! removed and counts as a miss). Bounded by `shoal node --reuse-budget` (default
//! [`DEFAULT_BUDGET`]; 0 turns the cache off) and by [`ENTRIES_MAX`] entries: past either, the
//! least recently used go first. Small results are also kept in memory (at most
//! [`MEMORY_MAX`] bytes in all), so that the driver can reuse a tiny task's result on its own
//! thread without reading a file. Without a data dir the cache is in memory only.
//!
//! The cache holds only what this node computed (or, under fault injection, what it
//! reported): reusing an entry is this node's word for the result, as computing it would be.

use shoal_protocol::{BlobHash, ReuseKey};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Default disk budget for reusable results.
pub const DEFAULT_BUDGET: u64 = 512 << 20;
/// Most entries, whatever their size: bounds the index.
pub const ENTRIES_MAX: usize = 65_536;
/// Most bytes of results also kept in memory.
pub const MEMORY_MAX: usize = 32 << 20;
/// Largest result kept in memory too.
const MEMORY_ENTRY_MAX: usize = 64 << 10;

#[derive(Debug)]
struct Entry {
    len: u64,
    /// When it was last used, in the cache's own clock (higher is more recent).
    used: u64,
    /// The bytes, when they are in memory (small ones, or every one without a data dir).
    bytes: Option<Arc<Vec<u8>>>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<ReuseKey, Entry>,
    /// Bytes of all entries, and of those in memory.
    total: u64,
    in_memory: usize,
    clock: u64,
    hits: u64,
}

/// A cloneable handle to this node's reusable results.
#[derive(Debug, Clone)]
pub struct ReuseCache {
    dir: Option<PathBuf>,
    budget: u64,
    inner: Arc<Mutex<Inner>>,
}

impl ReuseCache {
    /// The cache under `data_dir` (entries left by earlier runs are indexed, oldest first by
    /// modification time; their bytes are checked when read).
    pub fn open(data_dir: Option<&Path>, budget: u64) -> Self {
        let dir = data_dir.map(|d| d.join("reuse"));
        let cache = Self {
            dir: None,
            budget,
            inner: Arc::default(),
        };
        let Some(dir) = dir.filter(|_| budget > 0) else {
            return cache;
        };
        if let Err(e) = crate::results::create_private_dir(&dir) {
            tracing::warn!(
                "cannot create {}: {e}; reusable results are kept in memory",
                dir.display()
            );
            return cache;
        }
        let mut found: Vec<(std::time::SystemTime, ReuseKey, u64)> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let key = e.file_name().to_str().and_then(ReuseKey::from_hex)?;
                let meta = e.metadata().ok()?;
                let stored = meta.len().checked_sub(32)?;
                Some((meta.modified().ok()?, key, stored))
            })
            .collect();
        found.sort();
        let cache = Self {
            dir: Some(dir),
            ..cache
        };
        {
            let mut inner = cache.lock();
            for (_, key, len) in found {
                inner.clock += 1;
                let used = inner.clock;
                inner.total += len;
                inner.entries.insert(
                    key,
                    Entry {
                        len,
                        used,
                        bytes: None,
                    },
                );
            }
        }
        cache.evict();
        cache
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn path(&self, key: &ReuseKey) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(key.to_hex()))
    }

    /// Whether the cache has an entry for `key` (cheap: no file is read).
    pub fn contains(&self, key: &ReuseKey) -> bool {
        self.lock().entries.contains_key(key)
    }

    /// The result for `key` if it is in memory (never reads a file).
    pub fn get_in_memory(&self, key: &ReuseKey) -> Option<Arc<Vec<u8>>> {
        let mut inner = self.lock();
        inner.clock += 1;
        let clock = inner.clock;
        let entry = inner.entries.get_mut(key)?;
        let bytes = entry.bytes.clone()?;
        entry.used = clock;
        inner.hits += 1;
        Some(bytes)
    }

    /// The result for `key`, from memory or its file. Blocking: may read a file.
    pub fn get(&self, key: &ReuseKey) -> Option<Arc<Vec<u8>>> {
        if let Some(bytes) = self.get_in_memory(key) {
            return Some(bytes);
        }
        if !self.contains(key) {
            return None;
        }
        let path = self.path(key)?;
        let bytes = std::fs::read(&path).ok().and_then(|mut stored| {
            let body = stored.split_off(32.min(stored.len()));
            (stored.len() == 32 && BlobHash::of(&body).0[..] == stored[..]).then_some(body)
        });
        let mut inner = self.lock();
        match bytes {
            Some(bytes) => {
                inner.clock += 1;
                let clock = inner.clock;
                if let Some(entry) = inner.entries.get_mut(key) {
                    entry.used = clock;
                }
                inner.hits += 1;
                Some(Arc::new(bytes))
            }
            None => {
                tracing::warn!(path = %path.display(), "a reusable result does not match its hash: removed");
                if let Some(e) = inner.entries.remove(key) {
                    inner.total -= e.len;
                }
                drop(inner);
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Where the result for `key` is on disk, without reading it: its hash, its length, and the
    /// file that holds it after a 32-byte header. Blocking: may read the header. `None` when
    /// there is no such entry or it is in memory only.
    pub fn locate(&self, key: &ReuseKey) -> Option<(BlobHash, u64, PathBuf)> {
        let len = self.lock().entries.get(key)?.len;
        let path = self.path(key)?;
        let mut header = [0u8; 32];
        use std::io::Read as _;
        std::fs::File::open(&path)
            .and_then(|mut f| f.read_exact(&mut header))
            .ok()?;
        Some((BlobHash(header), len, path))
    }

    /// Keeps `bytes` as the result for `key`. Blocking: writes a file.
    pub fn put(&self, key: ReuseKey, bytes: Arc<Vec<u8>>) {
        if self.budget == 0 || bytes.len() as u64 > self.budget || self.contains(&key) {
            return;
        }
        if let Some(path) = self.path(&key)
            && let Err(e) = write_private(&path, &bytes)
        {
            tracing::debug!(path = %path.display(), "cannot keep a reusable result: {e}");
            return;
        }
        let on_disk = self.dir.is_some();
        let mut inner = self.lock();
        inner.clock += 1;
        let used = inner.clock;
        let in_memory = (!on_disk
            || (bytes.len() <= MEMORY_ENTRY_MAX && inner.in_memory + bytes.len() <= MEMORY_MAX))
            .then_some(bytes.clone());
        if let Some(b) = &in_memory {
            inner.in_memory += b.len();
        }
        inner.total += bytes.len() as u64;
        let old = inner.entries.insert(
            key,
            Entry {
                len: bytes.len() as u64,
                used,
                bytes: in_memory,
            },
        );
        if let Some(old) = old {
            inner.total -= old.len;
            inner.in_memory -= old.bytes.map_or(0, |b| b.len());
        }
        drop(inner);
        self.evict();
    }

    /// Drops the least recently used entries until the cache is within its bounds.
    fn evict(&self) {
        let mut gone = Vec::new();
        {
            let mut inner = self.lock();
            while inner.total > self.budget || inner.entries.len() > ENTRIES_MAX {
                let Some((&key, _)) = inner.entries.iter().min_by_key(|(_, e)| e.used) else {
                    break;
                };
                let e = inner.entries.remove(&key).expect("just found");
                inner.total -= e.len;
                inner.in_memory -= e.bytes.map_or(0, |b| b.len());
                gone.push(key);
            }
        }
        for key in gone {
            if let Some(path) = self.path(&key) {
                let _ = std::fs::remove_file(path);
            }
        }
    }

    /// Entries, their bytes, and how many lookups found a result since the node started.
    pub fn usage(&self) -> (usize, u64, u64) {
        let inner = self.lock();
        (inner.entries.len(), inner.total, inner.hits)
    }
}

/// Writes the hash and the bytes as a new file of mode 0600 (see
/// [`crate::results::write_atomic`]: a crash leaves no half-written entry under a key's name).
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut stored = Vec::with_capacity(32 + bytes.len());
    stored.extend_from_slice(&BlobHash::of(bytes).0);
    stored.extend_from_slice(bytes);
    crate::results::write_atomic(path, &stored)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> ReuseKey {
        ReuseKey([n; 32])
    }

    #[test]
    fn results_come_back_after_a_restart_and_a_corrupt_file_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ReuseCache::open(Some(dir.path()), 1 << 20);
        cache.put(key(1), Arc::new(b"one".to_vec()));
        cache.put(key(2), Arc::new(vec![7; 100 << 10]));
        assert_eq!(cache.get(&key(1)).unwrap().as_slice(), b"one");
        let again = ReuseCache::open(Some(dir.path()), 1 << 20);
        assert_eq!(again.get(&key(2)).unwrap().len(), 100 << 10);
        // Located without reading: the hash and length of the bytes after the header.
        let (hash, len, file) = again.locate(&key(2)).unwrap();
        assert_eq!((hash, len), (BlobHash::of(&vec![7; 100 << 10]), 100 << 10));
        assert_eq!(std::fs::read(file).unwrap()[32..], vec![7u8; 100 << 10][..]);
        let path = dir.path().join("reuse").join(key(1).to_hex());
        std::fs::write(
            &path,
            b"not what was written, and long enough to have a hash",
        )
        .unwrap();
        assert!(again.get(&key(1)).is_none());
        assert!(!again.contains(&key(1)) && !path.exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let file = dir.path().join("reuse").join(key(2).to_hex());
            let mode = std::fs::metadata(file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn the_least_recently_used_go_first_past_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ReuseCache::open(Some(dir.path()), 300);
        for n in 1..=3 {
            cache.put(key(n), Arc::new(vec![n; 100]));
        }
        assert!(cache.get(&key(1)).is_some());
        cache.put(key(4), Arc::new(vec![4; 100]));
        assert!(cache.contains(&key(1)) && !cache.contains(&key(2)));
        assert!(cache.contains(&key(3)) && cache.contains(&key(4)));
        assert!(!dir.path().join("reuse").join(key(2).to_hex()).exists());
        // Too big for the whole budget: not kept.
        cache.put(key(5), Arc::new(vec![5; 301]));
        assert!(!cache.contains(&key(5)));
    }

    #[test]
    fn a_zero_budget_keeps_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ReuseCache::open(Some(dir.path()), 0);
        cache.put(key(1), Arc::new(b"x".to_vec()));
        assert!(!cache.contains(&key(1)));
    }
}
