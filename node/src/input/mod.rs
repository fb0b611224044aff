//! Turns input paths into content-addressed chunks and a manifest: [`walk`] lists the files,
//! [`chunk`] packs small files and splits large ones at line ends, [`cache`] remembers the chunks
//! of unchanged files so that they are not read again. Units are read and hashed on every core;
//! the chunks keep the files' order.

pub mod cache;
pub mod chunk;
mod prefetch;
pub mod walk;

use crate::store::BlobStore;
use cache::InputCache;
use chunk::{Chunk, ChunkError};
use shoal_protocol::job::{ChunkRef, Manifest};
use shoal_protocol::{BlobHash, codec};
use std::path::PathBuf;
use walk::{Excludes, Listing, WalkError};

/// Chunk sizes chosen when none is given: about [`AUTO_CHUNKS`] chunks, each between these
/// bounds. Large enough that per-task overhead (a partial result to sort, send and merge) is
/// small, small enough to spread the work over a mesh.
pub const AUTO_CHUNK_MIN: u64 = 1 << 20;
pub const AUTO_CHUNK_MAX: u64 = 8 << 20;
pub const AUTO_CHUNKS: u64 = 128;
/// Smallest chunk size accepted from a user: a chunk is a task, with its claim, fetch,
/// completion and reduce input; below a few KB they cost more than the work (and a chunk size
/// of a few bytes made a task per line).
pub const MIN_CHUNK_SIZE: u64 = 4 << 10;
/// Largest chunk size accepted (a single line may still make a chunk longer, up to the blob limit).
pub const MAX_CHUNK_SIZE: u64 = 64 << 20;

/// The chunk size for an input of `total` bytes when none is given: the smallest power of two,
/// or one and a half times a power of two, that makes at most [`AUTO_CHUNKS`] chunks. A coarse
/// grid, so that a file that grows or shrinks seldom changes it (a changed size would move
/// every chunk's boundaries, and no result kept for them could be reused); two steps per
/// doubling, so that the chunk count stays within 1.5x of the target (between 85 and 128 for
/// inputs from 128 MiB to 1 GiB; by powers of two alone, an input just over a power of two
/// got half the target).
pub fn auto_chunk_size(total: u64) -> u64 {
    let wanted = (total / AUTO_CHUNKS).max(1);
    let power = wanted.next_power_of_two();
    let step_below = power / 4 * 3;
    let size = if power >= 4 && step_below >= wanted {
        step_below
    } else {
        power
    };
    size.clamp(AUTO_CHUNK_MIN, AUTO_CHUNK_MAX)
}

/// Why the inputs could not be prepared. Nothing was submitted.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error(transparent)]
    Walk(#[from] WalkError),
    #[error(transparent)]
    Chunk(#[from] ChunkError),
}

/// A job's input, ready: its manifest (stored), and what the user should hear about.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub manifest: BlobHash,
    pub chunks: u32,
    pub bytes: u64,
    /// Special files that were passed over.
    pub skipped: Vec<PathBuf>,
    /// Units whose chunks came from the cache, of all units.
    pub cached_units: usize,
    pub units: usize,
}

/// Lists the files under `paths` (see [`walk`]).
pub fn list_files(paths: &[PathBuf], exclude: &[String]) -> Result<Listing, InputError> {
    Ok(walk::list(paths, &Excludes::new(exclude)?)?)
}

/// Chunks `listing` into chunks of about `chunk_size` bytes (`None`: [`auto_chunk_size`]),
/// registers each chunk in `store` where its bytes are, stores the manifest, and remembers the
/// chunks in `cache`.
pub fn prepare(
    listing: &Listing,
    chunk_size: Option<u64>,
    store: &BlobStore,
    cache: &InputCache,
) -> Result<Prepared, InputError> {
    let files = &listing.files;
    let total: u64 = files.iter().map(|f| f.stamp.size).sum();
    let target = chunk_size
        .unwrap_or_else(|| auto_chunk_size(total))
        .clamp(1, MAX_CHUNK_SIZE);
    let units = chunk::plan(files, target);
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(units.len())
        .max(1);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let cached = std::sync::atomic::AtomicUsize::new(0);
    let mut per_unit: Vec<Option<Result<Vec<Chunk>, ChunkError>>> =
        (0..units.len()).map(|_| None).collect();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(unit) = units.get(i) else { break };
                        let key = InputCache::key(unit, files, target);
                        let result = match cache.get(&key) {
                            Some(chunks) => {
                                cached.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                Ok(chunks)
                            }
                            None => {
                                let read_at = cache::now_ns();
                                chunk::chunk_unit(unit, files, target).inspect(|chunks| {
                                    cache.put(key, unit, files, chunks.clone(), read_at);
                                })
                            }
                        };
                        done.push((i, result));
                    }
                    done
                })
            })
            .collect();
        for worker in workers {
            for (i, result) in worker.join().expect("a chunking thread panicked") {
                per_unit[i] = Some(result);
            }
        }
    });
    let mut refs = Vec::new();
    for result in per_unit {
        for c in result.expect("every unit was chunked")? {
            refs.push(ChunkRef {
                hash: c.hash,
                len: c.len(),
            });
            store.put_pieces(c.hash, c.pieces);
        }
    }
    cache.save();
    if refs.is_empty() {
        // Only empty files: one empty chunk, so the job still has a task.
        refs.push(ChunkRef {
            hash: BlobHash::of(b""),
            len: 0,
        });
        store.put_verified(BlobHash::of(b""), std::sync::Arc::new(Vec::new()));
    }
    let bytes = refs.iter().map(|c| c.len).sum();
    let count = refs.len() as u32;
    let manifest = store.put(codec::encode_blob(&Manifest { chunks: refs }));
    Ok(Prepared {
        manifest,
        chunks: count,
        bytes,
        skipped: listing.skipped.clone(),
        cached_units: cached.into_inner(),
        units: units.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest_bytes(store: &BlobStore, manifest: &BlobHash) -> Vec<Vec<u8>> {
        let m: Manifest = codec::decode_blob(&store.get(manifest).unwrap()).unwrap();
        m.chunks
            .iter()
            .map(|c| {
                let bytes = store.get(&c.hash).unwrap();
                assert_eq!(BlobHash::of(&bytes), c.hash);
                assert_eq!(bytes.len() as u64, c.len);
                bytes.to_vec()
            })
            .collect()
    }

    #[test]
    fn the_default_chunk_size_keeps_the_chunk_count_near_its_target() {
        const MIB: u64 = 1 << 20;
        // Inputs where the clamps do not bind: at most the target count, never fewer than
        // two thirds of it (by powers of two alone, 528 MiB made 66 chunks of 8 MiB).
        for mib in 128..=1024 {
            let total = mib * MIB;
            let size = auto_chunk_size(total);
            let chunks = total.div_ceil(size);
            assert!(
                (AUTO_CHUNKS * 2 / 3..=AUTO_CHUNKS).contains(&chunks),
                "{mib} MiB: {chunks} chunks of {size} bytes"
            );
        }
        assert_eq!(auto_chunk_size(528 * MIB), 6 * MIB);
        assert_eq!(auto_chunk_size(1024 * MIB), 8 * MIB);
        assert_eq!(auto_chunk_size(256 * MIB), 2 * MIB);
        assert_eq!(auto_chunk_size(10), AUTO_CHUNK_MIN);
        assert_eq!(auto_chunk_size(100 << 30), AUTO_CHUNK_MAX);
    }

    #[test]
    fn a_tree_of_many_small_files_makes_about_the_target_number_of_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let mut expected = Vec::new();
        for i in 0..2_000 {
            let text = format!("file {i} line one\nline two of {i}");
            std::fs::write(dir.path().join(format!("f{i:04}.txt")), &text).unwrap();
            expected.extend_from_slice(text.as_bytes());
            expected.push(b'\n');
        }
        let store = BlobStore::new(1 << 30);
        let cache = InputCache::new(None);
        let listing = list_files(&[dir.path().to_path_buf()], &[]).unwrap();
        let total = expected.len() as u64;
        let target = total / 16;
        let p = prepare(&listing, Some(target), &store, &cache).unwrap();
        // Pack boundaries follow the files' (random, temporary) paths, so the count varies
        // from run to run by a few packs around 16; the contract is within 2x of the target.
        assert!(
            (8..=32).contains(&p.chunks),
            "{} chunks for 2000 files",
            p.chunks
        );
        assert_eq!(p.bytes, total);
        let joined: Vec<u8> = manifest_bytes(&store, &p.manifest).concat();
        assert_eq!(
            joined, expected,
            "every file whole, in order, each ending a line"
        );
    }

    #[test]
    fn unchanged_files_come_from_the_cache_and_a_changed_one_is_hashed_again() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        for i in 0..10 {
            let path = data.join(format!("f{i}"));
            std::fs::write(&path, format!("{i}\n").repeat(100)).unwrap();
            std::fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
        let cache = InputCache::new(Some(dir.path()));
        let store = BlobStore::new(1 << 30);
        let listing = list_files(std::slice::from_ref(&data), &[]).unwrap();
        let first = prepare(&listing, Some(250), &store, &cache).unwrap();
        assert_eq!(first.cached_units, 0);
        // A new node (a new cache object, reading the file) over the same files.
        let cache = InputCache::new(Some(dir.path()));
        let second = prepare(&listing, Some(250), &store, &cache).unwrap();
        assert_eq!(second.cached_units, second.units);
        assert_eq!(second.manifest, first.manifest);
        // One file changes: only its unit is read again, and the manifest follows it.
        let changed = data.join("f3");
        std::fs::write(&changed, "3\n".repeat(99)).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&changed)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let listing = list_files(std::slice::from_ref(&data), &[]).unwrap();
        let store = BlobStore::new(1 << 30);
        let third = prepare(&listing, Some(250), &store, &cache).unwrap();
        assert_eq!(third.cached_units, third.units - 1);
        assert_ne!(third.manifest, first.manifest);
        let bytes = manifest_bytes(&store, &third.manifest).concat();
        assert_eq!(bytes.len(), 10 * 200 - 2);
    }

    #[test]
    fn an_unreadable_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "x\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).unwrap();
        if std::fs::File::open(&path).is_ok() {
            return; // root reads anything: nothing to check here
        }
        let listing = list_files(&[dir.path().to_path_buf()], &[]).unwrap();
        let e = prepare(
            &listing,
            None,
            &BlobStore::new(1 << 20),
            &InputCache::new(None),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("secret") && e.contains("ermission denied"),
            "{e}"
        );
    }
}
