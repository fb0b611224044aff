//! Content-addressed blob store: input chunks (served from the submitter's files, never copied
//! into memory ahead of time), manifests and partial results (in memory, bounded).

use shoal_protocol::BlobHash;
use std::collections::{HashMap, VecDeque};
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Default budget for blobs held in memory (results, manifests, fetched chunks). Oldest go
/// first; by then their parents have usually consumed them, and a needed one that is gone is
/// recomputed. Sized so that a node stays under 512 MiB resident during a 4 GiB word count.
pub const DEFAULT_MEMORY_BUDGET: usize = 128 << 20;

#[derive(Debug, Clone)]
enum Entry {
    Memory(Arc<Vec<u8>>),
    File {
        path: PathBuf,
        offset: u64,
        len: u64,
    },
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<BlobHash, Entry>,
    /// In-memory blobs in insertion order, for eviction.
    order: VecDeque<BlobHash>,
    memory_bytes: usize,
}

/// A cloneable handle to the node's blobs.
#[derive(Debug, Clone)]
pub struct BlobStore {
    inner: Arc<Mutex<Inner>>,
    budget: usize,
}

impl BlobStore {
    pub fn new(budget: usize) -> Self {
        Self {
            inner: Arc::default(),
            budget,
        }
    }

    /// Keeps `bytes` in memory under its hash, evicting the oldest in-memory blobs past the budget.
    pub fn put(&self, bytes: Vec<u8>) -> BlobHash {
        let hash = BlobHash::of(&bytes);
        self.put_verified(hash, Arc::new(bytes));
        hash
    }

    /// Keeps bytes already known to hash to `hash`.
    pub fn put_verified(&self, hash: BlobHash, bytes: Arc<Vec<u8>>) {
        let mut inner = self.inner.lock().expect("store lock poisoned");
        if inner.entries.contains_key(&hash) {
            return;
        }
        inner.memory_bytes += bytes.len();
        inner.entries.insert(hash, Entry::Memory(bytes));
        inner.order.push_back(hash);
        while inner.memory_bytes > self.budget && inner.order.len() > 1 {
            let Some(old) = inner.order.pop_front() else {
                break;
            };
            if let Some(Entry::Memory(b)) = inner.entries.remove(&old) {
                inner.memory_bytes -= b.len();
            }
        }
    }

    /// Registers a byte range of a local file as the blob `hash` (input chunks).
    pub fn put_file_range(&self, hash: BlobHash, path: PathBuf, offset: u64, len: u64) {
        let mut inner = self.inner.lock().expect("store lock poisoned");
        inner
            .entries
            .entry(hash)
            .or_insert(Entry::File { path, offset, len });
    }

    pub fn contains(&self, hash: &BlobHash) -> bool {
        self.inner
            .lock()
            .expect("store lock poisoned")
            .entries
            .contains_key(hash)
    }

    /// Reads a blob. File-backed blobs are read from disk and re-verified, so a file changed
    /// after submission is reported instead of served.
    pub fn get(&self, hash: &BlobHash) -> Option<Arc<Vec<u8>>> {
        let entry = self
            .inner
            .lock()
            .expect("store lock poisoned")
            .entries
            .get(hash)
            .cloned()?;
        match entry {
            Entry::Memory(bytes) => Some(bytes),
            Entry::File { path, offset, len } => {
                let mut file = std::fs::File::open(&path).ok()?;
                file.seek(SeekFrom::Start(offset)).ok()?;
                let mut buf = vec![0u8; usize::try_from(len).ok()?];
                file.read_exact(&mut buf).ok()?;
                if BlobHash::of(&buf) != *hash {
                    tracing::warn!(path = %path.display(), "input file changed since it was submitted");
                    return None;
                }
                Some(Arc::new(buf))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_budget_evicts_oldest_first() {
        let store = BlobStore::new(10);
        let a = store.put(vec![1; 6]);
        let b = store.put(vec![2; 6]);
        assert!(!store.contains(&a));
        assert_eq!(store.get(&b).unwrap().as_slice(), &[2; 6]);
    }

    #[test]
    fn a_changed_file_is_not_served() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"hello\n").unwrap();
        let store = BlobStore::new(10);
        let hash = BlobHash::of(b"hello\n");
        store.put_file_range(hash, path.clone(), 0, 6);
        assert_eq!(store.get(&hash).unwrap().as_slice(), b"hello\n");
        std::fs::write(&path, b"HELLO\n").unwrap();
        assert!(store.get(&hash).is_none());
    }
}
