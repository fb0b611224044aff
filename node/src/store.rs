//! Content-addressed blob store: input chunks (served from the submitter's files, never copied
//! into memory ahead of time), manifests and partial results (in memory, bounded).
//!
//! Each blob records the jobs that use it (at most [`JOBS_PER_BLOB`]): the node serves a blob
//! only to members of one of those jobs (see the driver's blob serving).

use crate::input::chunk::{Piece, read_chunk};
use shoal_protocol::job::Manifest;
use shoal_protocol::{BlobHash, Input, JobId, JobSpec, Operator, codec};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

/// Default budget for blobs held in memory (results, manifests, fetched chunks). Oldest go
/// first; by then their parents have usually consumed them, and a needed one that is gone is
/// recomputed. Sized so that a node stays under 512 MiB resident during a 4 GiB word count.
pub const DEFAULT_MEMORY_BUDGET: usize = 128 << 20;

#[derive(Debug, Clone)]
enum Entry {
    Memory(Arc<Vec<u8>>),
    /// An input chunk, read from its files when it is served: its pieces and the files'
    /// stamps as they were when it was hashed (a changed file is never served).
    Pieces(Arc<[Piece]>),
    /// A copy of a durable job's input kept in memory (`crate::kept`): never evicted, held
    /// until [`BlobStore::forget_kept`].
    Kept(Arc<Vec<u8>>),
}

/// Jobs remembered per blob (the same bytes can belong to several jobs: a resubmission, two
/// jobs over one file); the oldest is forgotten first.
pub const JOBS_PER_BLOB: usize = 16;

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<BlobHash, Entry>,
    /// The jobs each stored blob belongs to.
    jobs: HashMap<BlobHash, Vec<JobId>>,
    /// In-memory blobs in insertion order, for eviction.
    order: VecDeque<BlobHash>,
    /// In-memory blobs their job no longer needs, in release order: evicted before any other.
    /// Entries not in `released_now` were needed again since (a job produced or fetched the
    /// same bytes: blobs are shared by content) and are skipped.
    released: VecDeque<BlobHash>,
    released_now: HashSet<BlobHash>,
    memory_bytes: usize,
    /// Bytes of [`Entry::Kept`] copies (outside `memory_bytes` and its budget).
    kept_bytes: usize,
}

impl Inner {
    /// Replaces the entry of `hash`, keeping the byte counts right.
    fn replace(&mut self, hash: BlobHash, entry: Entry) {
        match self.entries.insert(hash, entry) {
            Some(Entry::Memory(b)) => {
                self.memory_bytes -= b.len();
                self.released_now.remove(&hash);
            }
            Some(Entry::Kept(b)) => self.kept_bytes -= b.len(),
            _ => {}
        }
    }

    /// Drops in-memory blobs until they fit in `budget`: released ones first, oldest first,
    /// then the oldest of the rest, but never the newest (a blob larger than the budget
    /// stays, alone).
    fn evict(&mut self, budget: usize) {
        while self.memory_bytes > budget {
            let victim = match self.released.pop_front() {
                Some(hash) if self.released_now.remove(&hash) => hash,
                Some(_) => continue,
                None if self.order.len() > 1 => match self.order.pop_front() {
                    Some(hash) => {
                        if self.entries.contains_key(&hash) {
                            tracing::debug!(
                                memory = self.memory_bytes,
                                blobs = self.entries.len(),
                                "memory budget exceeded: dropping a blob still needed"
                            );
                        }
                        hash
                    }
                    None => break,
                },
                None => break,
            };
            if let Some(Entry::Memory(b)) = self.entries.get(&victim) {
                self.memory_bytes -= b.len();
                self.entries.remove(&victim);
                self.jobs.remove(&victim);
            }
        }
    }
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
            // Needed again.
            inner.released_now.remove(&hash);
            return;
        }
        inner.memory_bytes += bytes.len();
        inner.entries.insert(hash, Entry::Memory(bytes));
        inner.order.push_back(hash);
        inner.evict(self.budget);
    }

    /// Keeps `bytes` as a blob of job `job` (a task's result).
    pub fn put_for(&self, job: JobId, bytes: Vec<u8>) -> BlobHash {
        let hash = self.put(bytes);
        self.grant(job, &[hash]);
        hash
    }

    /// Keeps bytes already known to hash to `hash` as a blob of job `job` (a chunk or a
    /// module fetched for it).
    pub fn put_verified_for(&self, job: JobId, hash: BlobHash, bytes: Arc<Vec<u8>>) {
        self.put_verified(hash, bytes);
        self.grant(job, &[hash]);
    }

    /// Records that the stored blobs `hashes` belong to job `job` (members of the job may
    /// fetch them). Blobs not stored are skipped.
    pub fn grant(&self, job: JobId, hashes: &[BlobHash]) {
        let mut inner = self.inner.lock().expect("store lock poisoned");
        for hash in hashes {
            if !inner.entries.contains_key(hash) {
                continue;
            }
            let jobs = inner.jobs.entry(*hash).or_default();
            if !jobs.contains(&job) {
                if jobs.len() >= JOBS_PER_BLOB {
                    jobs.remove(0);
                }
                jobs.push(job);
            }
        }
    }

    /// Records the blobs `spec` names as job `job`'s: its manifest and every chunk the manifest
    /// lists, and its module.
    pub fn grant_spec(&self, job: JobId, spec: &JobSpec) {
        if let Input::Chunks { manifest, .. } = spec.input {
            self.grant_manifest(job, manifest);
        }
        if let Operator::Wasm { module, .. } = spec.op {
            self.grant(job, &[module]);
        }
    }

    /// Records manifest `manifest` and every chunk it lists as job `job`'s (if stored here).
    pub fn grant_manifest(&self, job: JobId, manifest: BlobHash) {
        let mut hashes = vec![manifest];
        if let Some(bytes) = self.get(&manifest)
            && let Ok(m) = codec::decode_blob::<Manifest>(&bytes)
        {
            hashes.extend(m.chunks.iter().map(|c| c.hash));
        }
        self.grant(job, &hashes);
    }

    /// Bytes of blobs in memory, and blobs held (in memory or as file ranges).
    pub fn usage(&self) -> (usize, usize) {
        let inner = self.inner.lock().expect("store lock poisoned");
        (inner.memory_bytes, inner.entries.len())
    }

    /// The jobs a stored blob belongs to (none for a blob this node does not hold).
    pub fn jobs_of(&self, hash: &BlobHash) -> Vec<JobId> {
        let inner = self.inner.lock().expect("store lock poisoned");
        inner.jobs.get(hash).cloned().unwrap_or_default()
    }

    /// Marks an in-memory blob as no longer needed: the first to go when memory runs short.
    pub fn release(&self, hash: &BlobHash) {
        let mut inner = self.inner.lock().expect("store lock poisoned");
        if matches!(inner.entries.get(hash), Some(Entry::Memory(_)))
            && inner.released_now.insert(*hash)
        {
            inner.released.push_back(*hash);
        }
    }

    /// Registers the input chunk `hash`, whose bytes are `pieces` of local files. A chunk
    /// registered before from other files (or the same files, since changed and changed
    /// back) now reads from these, just hashed: the old ones may be gone.
    pub fn put_pieces(&self, hash: BlobHash, pieces: Vec<Piece>) {
        let mut inner = self.inner.lock().expect("store lock poisoned");
        if !matches!(
            inner.entries.get(&hash),
            Some(Entry::Memory(_) | Entry::Kept(_))
        ) {
            inner.entries.insert(hash, Entry::Pieces(pieces.into()));
        }
    }

    /// Serves blob `hash` from `pieces` of files from now on, in place of any copy in memory
    /// (a kept copy must outlive the memory budget).
    pub fn put_file(&self, hash: BlobHash, pieces: Vec<Piece>) {
        let mut inner = self.inner.lock().expect("store lock poisoned");
        inner.replace(hash, Entry::Pieces(pieces.into()));
    }

    /// Keeps blob `hash` (a durable job's input) in memory for good, if kept copies stay
    /// within `budget` bytes so; false if they would not (nothing changes: the caller keeps it
    /// on disk instead). For a blob not [`BlobStore::held_for_good`]: one served from files
    /// is replaced (its files changed since).
    pub fn put_kept(&self, hash: BlobHash, bytes: Arc<Vec<u8>>, budget: usize) -> bool {
        let mut inner = self.inner.lock().expect("store lock poisoned");
        match inner.entries.get(&hash) {
            Some(Entry::Kept(_)) => true,
            _ if inner.kept_bytes + bytes.len() > budget => false,
            _ => {
                inner.kept_bytes += bytes.len();
                inner.replace(hash, Entry::Kept(bytes));
                true
            }
        }
    }

    /// Forgets the kept copies: those in memory, and those served from files under `dir`
    /// (about to be removed).
    pub fn forget_kept(&self, dir: Option<&std::path::Path>) {
        let mut inner = self.inner.lock().expect("store lock poisoned");
        inner.entries.retain(|_, e| match e {
            Entry::Pieces(p) => !dir.is_some_and(|d| p.iter().any(|p| p.path.starts_with(d))),
            Entry::Memory(_) => true,
            Entry::Kept(_) => false,
        });
        inner.kept_bytes = 0;
    }

    /// Whether blob `hash` is held for as long as it is needed: served from files that are
    /// still as they were registered (an input's own files, or a kept copy on disk), or kept
    /// in memory for good. Such a copy needs no other.
    pub fn held_for_good(&self, hash: &BlobHash) -> bool {
        let pieces = {
            let inner = self.inner.lock().expect("store lock poisoned");
            match inner.entries.get(hash) {
                Some(Entry::Pieces(p)) => p.clone(),
                Some(Entry::Kept(_)) => return true,
                _ => return false,
            }
        };
        pieces
            .iter()
            .all(|p| crate::input::walk::FileStamp::now(&p.path) == Some(p.stamp))
    }

    pub fn contains(&self, hash: &BlobHash) -> bool {
        self.inner
            .lock()
            .expect("store lock poisoned")
            .entries
            .contains_key(hash)
    }

    /// Reads a blob. Input chunks are read from their files; a chunk one of whose files
    /// changed since it was registered is reported missing instead of served. (The bytes are
    /// not hashed again here: a peer that fetches them verifies them, and hashing every chunk
    /// twice cost the submitter a fifth of a word count's time.)
    pub fn get(&self, hash: &BlobHash) -> Option<Arc<Vec<u8>>> {
        let entry = self
            .inner
            .lock()
            .expect("store lock poisoned")
            .entries
            .get(hash)
            .cloned()?;
        match entry {
            Entry::Memory(bytes) | Entry::Kept(bytes) => Some(bytes),
            Entry::Pieces(pieces) => read_chunk(&pieces).map(Arc::new),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::walk::FileStamp;

    #[test]
    fn memory_budget_evicts_oldest_first() {
        let store = BlobStore::new(10);
        let a = store.put(vec![1; 6]);
        let b = store.put(vec![2; 6]);
        assert!(!store.contains(&a));
        assert_eq!(store.get(&b).unwrap().as_slice(), &[2; 6]);
    }

    #[test]
    fn kept_copies_outlive_the_memory_budget_within_their_own() {
        let store = BlobStore::new(10);
        let a = store.put(vec![1; 6]);
        // A fetched blob becomes a kept copy: it leaves the evictable memory.
        assert!(store.put_kept(a, Arc::new(vec![1; 6]), 8));
        assert!(store.held_for_good(&a));
        let kept = BlobHash::of(&[7; 4]);
        assert!(
            !store.put_kept(kept, Arc::new(vec![7; 4]), 8),
            "past the kept budget: the caller writes it to disk"
        );
        assert!(!store.contains(&kept));
        for i in 0..5u8 {
            store.put(vec![i + 10; 6]);
        }
        assert_eq!(store.get(&a).unwrap().as_slice(), &[1; 6], "never evicted");
        assert_eq!(
            store.usage().0,
            6,
            "kept bytes are outside the memory budget"
        );
        store.forget_kept(None);
        assert!(!store.contains(&a));
        assert!(store.put_kept(kept, Arc::new(vec![7; 4]), 8), "room again");
    }

    #[test]
    fn released_blobs_go_first() {
        let store = BlobStore::new(20);
        let a = store.put(vec![1; 6]);
        let b = store.put(vec![2; 6]);
        let c = store.put(vec![3; 6]);
        store.release(&b);
        let d = store.put(vec![4; 6]);
        assert!(
            store.contains(&a) && !store.contains(&b),
            "the released one went, not the oldest"
        );
        assert!(store.contains(&c) && store.contains(&d));
        // A released blob produced again is needed again.
        store.release(&c);
        assert_eq!(store.put(vec![3; 6]), c);
        store.put(vec![5; 6]);
        assert!(store.contains(&c), "needed again, so not dropped first");
        assert!(!store.contains(&a));
    }

    #[test]
    fn input_chunks_are_read_from_their_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"hello\nworld").unwrap();
        let piece = |offset, len, newline| Piece {
            path: path.clone(),
            stamp: FileStamp::now(&path).unwrap(),
            offset,
            len,
            newline,
        };
        let store = BlobStore::new(10);
        let hash = BlobHash::of(b"world\n");
        store.put_pieces(hash, vec![piece(6, 5, true)]);
        assert_eq!(store.get(&hash).unwrap().as_slice(), b"world\n");
        assert_eq!(store.usage(), (0, 1), "nothing of it is held in memory");
    }

    #[test]
    fn a_kept_copy_replaces_one_whose_file_changed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kept");
        std::fs::write(&path, b"copy").unwrap();
        let store = BlobStore::new(10);
        let hash = BlobHash::of(b"copy");
        store.put_file(
            hash,
            vec![Piece {
                path: path.clone(),
                stamp: FileStamp::now(&path).unwrap(),
                offset: 0,
                len: 4,
                newline: false,
            }],
        );
        assert!(store.held_for_good(&hash));
        std::fs::write(&path, b"other bytes").unwrap();
        assert!(!store.held_for_good(&hash), "its file changed");
        assert!(store.put_kept(hash, Arc::new(b"copy".to_vec()), 8));
        assert!(store.held_for_good(&hash));
        assert_eq!(store.get(&hash).unwrap().as_slice(), b"copy");
    }

    #[test]
    fn a_chunk_registered_again_reads_from_its_new_files() {
        let dir = tempfile::tempdir().unwrap();
        let piece = |name: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, b"same\n").unwrap();
            Piece {
                stamp: FileStamp::now(&path).unwrap(),
                path,
                offset: 0,
                len: 5,
                newline: false,
            }
        };
        let store = BlobStore::new(10);
        let hash = BlobHash::of(b"same\n");
        store.put_pieces(hash, vec![piece("old")]);
        std::fs::remove_file(dir.path().join("old")).unwrap();
        assert!(store.get(&hash).is_none(), "its file is gone");
        store.put_pieces(hash, vec![piece("new")]);
        assert_eq!(store.get(&hash).unwrap().as_slice(), b"same\n");
    }
}
