//! Turns input paths into line-aligned, content-addressed chunks and a manifest, reading each
//! file once in a streaming pass (a file is never held whole in memory).

use crate::store::BlobStore;
use shoal_protocol::job::{ChunkRef, Manifest};
use shoal_protocol::partition::chunk_end;
use shoal_protocol::{BlobHash, codec};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Chunk sizes chosen when none is given: about [`AUTO_CHUNKS`] chunks, each between these
/// bounds. Large enough that per-task overhead (a partial result to sort, send and merge) is
/// small, small enough to spread the work over a mesh.
pub const AUTO_CHUNK_MIN: u64 = 1 << 20;
pub const AUTO_CHUNK_MAX: u64 = 8 << 20;
pub const AUTO_CHUNKS: u64 = 128;

/// The chunk size for an input of `total` bytes when none is given.
pub fn auto_chunk_size(total: u64) -> u64 {
    (total / AUTO_CHUNKS).clamp(AUTO_CHUNK_MIN, AUTO_CHUNK_MAX)
}
/// Largest chunk size accepted (a single line may still make a chunk longer, up to the blob limit).
pub const MAX_CHUNK_SIZE: u64 = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: a line of over {limit} bytes cannot be put in one chunk")]
    LineTooLong { path: PathBuf, limit: usize },
    #[error("no input files found under the given paths")]
    Empty,
}

/// Lists the regular files under `paths` (directories recursively), in a stable order.
pub fn list_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, InputError> {
    let mut out = Vec::new();
    for p in paths {
        walk(p, &mut out)?;
    }
    if out.is_empty() {
        return Err(InputError::Empty);
    }
    Ok(out)
}

fn walk(path: &Path, out: &mut Vec<PathBuf>) -> Result<(), InputError> {
    let io = |source| InputError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(io)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for e in entries {
            walk(&e, out)?;
        }
    } else if meta.is_file() {
        out.push(path.to_path_buf());
    }
    Ok(())
}

/// Chunks every file into chunks of about `chunk_size` bytes (`None`: [`auto_chunk_size`]),
/// registers each chunk in `store` as a range of its file, stores the manifest, and returns
/// the manifest's hash, the chunk count and the total size. Files are read and hashed on as
/// many threads as the machine has cores (the chunks keep the files' order), so that a large
/// input is ready to run sooner.
pub fn prepare(
    files: &[PathBuf],
    chunk_size: Option<u64>,
    store: &BlobStore,
) -> Result<(BlobHash, u32, u64), InputError> {
    let chunk_size = match chunk_size {
        Some(size) => size,
        None => {
            let mut total = 0u64;
            for path in files {
                let meta = std::fs::metadata(path).map_err(|source| InputError::Io {
                    path: path.clone(),
                    source,
                })?;
                total += meta.len();
            }
            auto_chunk_size(total)
        }
    };
    let target = chunk_size.clamp(1, MAX_CHUNK_SIZE) as usize;
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(files.len())
        .max(1);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut per_file: Vec<Option<Result<Vec<ChunkRef>, InputError>>> =
        (0..files.len()).map(|_| None).collect();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(path) = files.get(i) else { break };
                        done.push((i, chunk_file(path, target, store)));
                    }
                    done
                })
            })
            .collect();
        for worker in workers {
            for (i, result) in worker.join().expect("a chunking thread panicked") {
                per_file[i] = Some(result);
            }
        }
    });
    let mut chunks = Vec::new();
    for result in per_file {
        chunks.extend(result.expect("every file was chunked")?);
    }
    let total = chunks.iter().map(|c| c.len).sum();
    let count = chunks.len() as u32;
    let manifest = store.put(codec::encode_blob(&Manifest { chunks }));
    Ok((manifest, count, total))
}

/// Cuts one file into line-aligned chunks of about `target` bytes, registering each in the
/// store. An empty file still yields one (empty) chunk, so every file is a task.
fn chunk_file(path: &Path, target: usize, store: &BlobStore) -> Result<Vec<ChunkRef>, InputError> {
    let limit = shoal_protocol::codec::MAX_BLOB_BYTES / 2;
    let io = |source| InputError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(io)?;
    let mut buf: Vec<u8> = Vec::with_capacity(target * 2);
    let mut offset = 0u64;
    let mut eof = false;
    let mut chunks = Vec::new();
    loop {
        // Fill until the buffer holds a cut point or the file ends.
        while !eof && chunk_end(&buf, target).is_none() {
            if buf.len() > limit {
                return Err(InputError::LineTooLong {
                    path: path.to_path_buf(),
                    limit,
                });
            }
            let start = buf.len();
            buf.resize(start + target.max(64 * 1024), 0);
            let n = file.read(&mut buf[start..]).map_err(io)?;
            buf.truncate(start + n);
            eof = n == 0;
        }
        let len = match chunk_end(&buf, target) {
            Some(len) => len,
            None if buf.is_empty() && !chunks.is_empty() => break,
            None => buf.len(),
        };
        let hash = BlobHash::of(&buf[..len]);
        store.put_file_range(hash, path.to_path_buf(), offset, len as u64);
        chunks.push(ChunkRef {
            hash,
            len: len as u64,
        });
        offset += len as u64;
        buf.drain(..len);
        if eof && buf.is_empty() {
            break;
        }
    }
    Ok(chunks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_reassemble_to_the_files_and_end_at_newlines() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.txt");
        let text: String = (0..500)
            .map(|i| format!("line {i} of the file\n"))
            .collect();
        std::fs::write(&a, &text).unwrap();
        let b = dir.path().join("b.txt");
        std::fs::write(&b, b"").unwrap();
        let store = BlobStore::new(1 << 30);
        let files = list_files(&[dir.path().to_path_buf()]).unwrap();
        let (manifest, count, total) = prepare(&files, Some(1000), &store).unwrap();
        assert_eq!(total, text.len() as u64);
        let m: Manifest = codec::decode_blob(&store.get(&manifest).unwrap()).unwrap();
        assert_eq!(m.chunks.len() as u32, count);
        let mut joined = Vec::new();
        for c in &m.chunks {
            let bytes = store.get(&c.hash).unwrap();
            assert!(bytes.is_empty() || bytes.ends_with(b"\n"));
            joined.extend_from_slice(&bytes);
        }
        assert_eq!(joined, text.as_bytes());
        // The empty file still yields one (empty) chunk, so every file is a task.
        assert!(m.chunks.iter().any(|c| c.len == 0));
    }
}
