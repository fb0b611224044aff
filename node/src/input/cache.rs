//! The chunks of unchanged inputs, remembered across submissions (`<data-dir>/input-cache`), so
//! that a job over files already hashed does not read them again.
//!
//! An entry is keyed by everything its chunks depend on: the unit's kind, the target chunk size
//! for a split file, and each file's path and stamp (device, inode, size, modification and change
//! times). Any write, `chmod`, rename over or replacement of a file changes its stamp and so
//! misses the cache: a changed file is always hashed again. A file modified shortly before it
//! was read is not cached at all, since a second write within the file system's timestamp
//! granularity could leave its stamp unchanged (git's "racy clean" problem): "shortly" is
//! [`RACY_FINE_NS`] for a file system whose stamps have a sub-second part (ext4, xfs, btrfs,
//! tmpfs: their clocks tick every few milliseconds), [`RACY_NS`] otherwise (FAT's 2 s stamps).

use super::chunk::{Chunk, Unit};
use super::walk::InputFile;
use shoal_protocol::bounded::BoundedMap;
use shoal_protocol::codec;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The cache file's name in the data directory.
pub const CACHE_FILE: &str = "input-cache";
/// Units remembered; the oldest are forgotten first.
pub const CACHE_UNITS: usize = 200_000;
/// Files modified less than this before they were read are not cached, when their stamps
/// have whole seconds only (the coarsest common granularity, FAT's, is 2 s).
pub const RACY_NS: i128 = 2_000_000_000;
/// The same for stamps with a sub-second part: those file systems stamp from a clock that
/// ticks every 1-10 ms (the kernel's coarse clock), far less than this.
pub const RACY_FINE_NS: i128 = 100_000_000;

/// Whether a file stamped `mtime_ns` and read from `read_at_ns` on could have been written
/// again, after the read began, without its stamp changing.
pub fn racy(mtime_ns: i128, read_at_ns: i128) -> bool {
    let granularity = if mtime_ns % 1_000_000_000 == 0 {
        RACY_NS
    } else {
        RACY_FINE_NS
    };
    read_at_ns - mtime_ns < granularity
}

/// The wall clock in nanoseconds since the epoch, as file stamps count.
pub fn now_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

type Key = [u8; 32];

/// The on-disk form: entries oldest first.
#[derive(serde::Serialize, serde::Deserialize)]
struct OnDisk {
    version: u32,
    entries: Vec<(Key, Vec<Chunk>)>,
}

const VERSION: u32 = 1;

/// The cache. Cheap to share between submissions (one lock around lookups and inserts).
#[derive(Debug)]
pub struct InputCache {
    path: Option<PathBuf>,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    entries: BoundedMap<Key, Vec<Chunk>>,
    loaded: bool,
    dirty: bool,
}

impl InputCache {
    /// A cache kept in `data_dir` (`None`: in memory only).
    pub fn new(data_dir: Option<&Path>) -> Self {
        Self {
            path: data_dir.map(|d| d.join(CACHE_FILE)),
            inner: Mutex::new(Inner {
                entries: BoundedMap::new(CACHE_UNITS),
                loaded: false,
                dirty: false,
            }),
        }
    }

    /// The key of a unit: its kind, the target (for a split), and its files' paths and stamps.
    pub fn key(unit: &Unit, files: &[InputFile], target: u64) -> Key {
        let mut h = blake3::Hasher::new();
        match unit {
            Unit::Pack(_) => h.update(b"pack"),
            Unit::Split(_) => h.update(b"split").update(&target.to_le_bytes()),
        };
        for &i in unit.files() {
            let f = &files[i];
            let path = f.path.as_os_str().as_encoded_bytes();
            h.update(&(path.len() as u64).to_le_bytes());
            h.update(path);
            let s = f.stamp;
            for v in [s.dev, s.ino, s.size] {
                h.update(&v.to_le_bytes());
            }
            h.update(&s.mtime_ns.to_le_bytes());
            h.update(&s.ctime_ns.to_le_bytes());
        }
        *h.finalize().as_bytes()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        let mut inner = self.inner.lock().expect("input cache lock");
        if !inner.loaded {
            inner.loaded = true;
            if let Some(path) = &self.path {
                load(path, &mut inner.entries);
            }
        }
        inner
    }

    pub fn get(&self, key: &Key) -> Option<Vec<Chunk>> {
        self.lock().entries.get(key).cloned()
    }

    /// Remembers a unit's chunks, read from `read_at_ns` ([`now_ns`] before the reading
    /// began), unless one of its files was modified too shortly before to trust its stamp.
    pub fn put(
        &self,
        key: Key,
        unit: &Unit,
        files: &[InputFile],
        chunks: Vec<Chunk>,
        read_at_ns: i128,
    ) {
        let racy = unit
            .files()
            .iter()
            .any(|&i| racy(files[i].stamp.mtime_ns, read_at_ns));
        if racy {
            return;
        }
        let mut inner = self.lock();
        inner.entries.insert(key, chunks);
        inner.dirty = true;
    }

    /// Writes the cache to its file if it changed (atomically: a crash leaves the old one).
    pub fn save(&self) {
        let Some(path) = &self.path else { return };
        let mut inner = self.lock();
        if !inner.dirty {
            return;
        }
        let disk = OnDisk {
            version: VERSION,
            entries: inner.entries.iter().map(|(k, v)| (*k, v.clone())).collect(),
        };
        let bytes = codec::encode_blob(&disk);
        let tmp = path.with_extension("tmp");
        match std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path)) {
            Ok(()) => inner.dirty = false,
            Err(e) => tracing::warn!(path = %path.display(), "cannot write the input cache: {e}"),
        }
    }
}

fn load(path: &Path, entries: &mut BoundedMap<Key, Vec<Chunk>>) {
    let Ok(bytes) = std::fs::read(path) else {
        return;
    };
    match codec::decode_blob::<OnDisk>(&bytes) {
        Ok(disk) if disk.version == VERSION => {
            for (k, v) in disk.entries {
                entries.insert(k, v);
            }
        }
        // A cache from another version, or damaged: start afresh (it only saves time).
        _ => tracing::info!(path = %path.display(), "ignoring an unreadable input cache"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::walk::FileStamp;

    fn input(path: &Path) -> InputFile {
        InputFile {
            path: path.to_path_buf(),
            rel: path.file_name().unwrap().into(),
            stamp: FileStamp::now(path).unwrap(),
        }
    }

    #[test]
    fn any_change_to_a_file_changes_the_key_and_racy_files_are_not_cached() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "one\n").unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let files = vec![input(&path)];
        let unit = Unit::Pack(vec![0]);
        let key = InputCache::key(&unit, &files, 100);
        assert_eq!(key, InputCache::key(&unit, &files, 100));
        assert_ne!(key, InputCache::key(&Unit::Split(0), &files, 100));
        // A chmod changes only the change time, and still misses.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let after_chmod = vec![input(&path)];
        if after_chmod[0].stamp.ctime_ns != files[0].stamp.ctime_ns {
            assert_ne!(key, InputCache::key(&unit, &after_chmod, 100));
        }
        let cache = InputCache::new(Some(dir.path()));
        cache.put(key, &unit, &files, Vec::new(), now_ns());
        cache.save();
        let reloaded = InputCache::new(Some(dir.path()));
        assert_eq!(reloaded.get(&key), Some(Vec::new()));
        // A file written just now is not trusted yet.
        let fresh_path = dir.path().join("fresh");
        std::fs::write(&fresh_path, "new\n").unwrap();
        let fresh = vec![input(&fresh_path)];
        let fresh_key = InputCache::key(&unit, &fresh, 100);
        cache.put(fresh_key, &unit, &fresh, Vec::new(), now_ns());
        assert_eq!(cache.get(&fresh_key), None);
    }

    #[test]
    fn a_stamp_is_trusted_once_its_file_system_clock_has_ticked_past_it() {
        let read_at = 1_700_000_000 * 1_000_000_000;
        // Whole-second stamps (FAT, ext3): 2 s of doubt.
        let whole = read_at - 1_000_000_000;
        assert_eq!(whole % 1_000_000_000, 0);
        assert!(racy(whole, read_at));
        assert!(!racy(read_at - RACY_NS, read_at));
        // Sub-second stamps: a tenth of a second.
        assert!(racy(read_at - 50_000_001, read_at));
        assert!(!racy(read_at - 150_000_001, read_at));
        // A stamp after the read began (a clock step, a write meanwhile) is never trusted.
        assert!(racy(read_at + 7, read_at));
    }

    #[test]
    fn a_damaged_cache_file_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CACHE_FILE), b"\xff\xff garbage").unwrap();
        let cache = InputCache::new(Some(dir.path()));
        assert_eq!(cache.get(&[0; 32]), None);
    }
}
