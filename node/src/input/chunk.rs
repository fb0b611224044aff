//! Cutting input files into chunks: small files are packed whole, several to a chunk, so that a
//! job's task count follows its input's size and not its file count; a large file is cut at
//! line ends into chunks of about the target size. In a chunk, every file's last line ends with
//! a newline (one is added to a file that lacks one), so no line of one file ever joins a line
//! of the next.

use super::walk::{FileStamp, InputFile};
use shoal_protocol::BlobHash;
use shoal_protocol::partition::chunk_end;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// One piece of a chunk: a byte range of one file, perhaps followed by an added newline.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Piece {
    pub path: PathBuf,
    pub stamp: FileStamp,
    pub offset: u64,
    pub len: u64,
    /// A newline follows the range in the chunk (the file's last line lacks one).
    pub newline: bool,
}

impl Piece {
    /// Bytes the piece occupies in its chunk.
    pub fn chunk_len(&self) -> u64 {
        self.len + u64::from(self.newline)
    }
}

/// A chunk: its hash, and where its bytes are.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Chunk {
    pub hash: BlobHash,
    pub pieces: Vec<Piece>,
}

impl Chunk {
    pub fn len(&self) -> u64 {
        self.pieces.iter().map(Piece::chunk_len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why a file could not be chunked. Nothing was submitted.
#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: a line of over {limit} bytes cannot be put in one chunk")]
    LineTooLong { path: PathBuf, limit: usize },
    #[error("{path} changed while it was being read; submit again")]
    Changed { path: PathBuf },
}

/// A unit of chunking work: files packed whole into one chunk, or one file cut into several.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unit {
    Pack(Vec<usize>),
    Split(usize),
}

impl Unit {
    /// The indices of the files this unit reads.
    pub fn files(&self) -> &[usize] {
        match self {
            Unit::Pack(files) => files,
            Unit::Split(file) => std::slice::from_ref(file),
        }
    }
}

/// Lays out the units: files in order, each of `target` bytes or more split on its own, the
/// smaller ones packed whole. A pack ends after a file whose path (below its input's root:
/// the same tree packs alike wherever it lies) falls on a boundary once the
/// pack holds half the target, or before it would pass twice the target. The boundaries follow
/// the files' paths, not a running count of bytes: a file that grows or shrinks changes its
/// own pack (and sometimes the next), while every other pack keeps its bytes, its hash, and so
/// the results kept for it ([`crate::reuse`]).
pub fn plan(files: &[InputFile], target: u64) -> Vec<Unit> {
    let every = boundary_spacing(files, target);
    let mut units = Vec::new();
    let mut pack: Vec<usize> = Vec::new();
    let mut pack_bytes = 0u64;
    for (i, f) in files.iter().enumerate() {
        let size = f.stamp.size;
        if size >= target {
            if !pack.is_empty() {
                units.push(Unit::Pack(std::mem::take(&mut pack)));
                pack_bytes = 0;
            }
            units.push(Unit::Split(i));
            continue;
        }
        if !pack.is_empty() && pack_bytes + size + 1 > 2 * target {
            units.push(Unit::Pack(std::mem::take(&mut pack)));
            pack_bytes = 0;
        }
        pack.push(i);
        pack_bytes += size + 1;
        if pack_bytes >= target / 2 && on_boundary(&f.rel, every) {
            units.push(Unit::Pack(std::mem::take(&mut pack)));
            pack_bytes = 0;
        }
    }
    if !pack.is_empty() {
        units.push(Unit::Pack(pack));
    }
    units
}

/// One small file in this many is a pack boundary: past half the target, about half a
/// target's worth more files to the next boundary. A power of two, so that a file's change
/// of size seldom changes it (and with it every boundary).
fn boundary_spacing(files: &[InputFile], target: u64) -> u64 {
    let (count, bytes) = files
        .iter()
        .filter(|f| f.stamp.size < target)
        .fold((0u64, 0u64), |(n, b), f| (n + 1, b + f.stamp.size + 1));
    let average = (bytes / count.max(1)).max(1);
    (target / 2 / average).max(1).next_power_of_two()
}

fn on_boundary(path: &Path, every: u64) -> bool {
    BlobHash::of(path.as_os_str().as_encoded_bytes())
        .prefix64()
        .is_multiple_of(every)
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> ChunkError + '_ {
    move |source| ChunkError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads and hashes one unit.
pub fn chunk_unit(unit: &Unit, files: &[InputFile], target: u64) -> Result<Vec<Chunk>, ChunkError> {
    match unit {
        Unit::Pack(members) => hash_pack(members, files),
        Unit::Split(i) => split_file(&files[*i], target as usize),
    }
}

/// Bytes of a pack gathered before they are hashed: large enough that blake3 hashes many of
/// its 1 KiB chunks side by side (most packed files are a few KB).
const PACK_HASH_BATCH: usize = 1 << 20;
/// A thread's pack buffer is kept for the next pack up to this size (a pack holds files
/// smaller than the chunk target, at most 8 MiB by default).
const PACK_BUFFER_KEPT: usize = 16 << 20;

thread_local! {
    /// Each hashing thread's buffer, reused from pack to pack: the bytes are only hashed, and
    /// a fresh buffer per pack cost page faults, zeroing and unmapping for every few MiB read
    /// (a tenth of a first submission's CPU over a tree of small files). Its bytes stay
    /// initialized, so that a file is read straight into it (see [`read_listed`]).
    static PACK_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Reads the file `f` into `buf` at `at` (growing `buf` if needed) and returns its length,
/// or an error if it no longer has the size it was listed with. One `read` for a file as
/// listed: a buffer one byte longer than the listed size comes back short exactly when the
/// file ends there (a regular file's reads are short only at its end), so no second `read` is
/// needed to see the end; a file that grew fills the extra byte. (Over a tree of small files
/// that second `read` was one system call in four of hashing them.)
fn read_listed(f: &InputFile, buf: &mut Vec<u8>, at: usize) -> Result<usize, ChunkError> {
    let size = usize::try_from(f.stamp.size).unwrap_or(usize::MAX - 1);
    if buf.len() < at + size + 1 {
        buf.resize(at + size + 1, 0);
    }
    let mut file = File::open(&f.path).map_err(io(&f.path))?;
    let window = &mut buf[at..at + size + 1];
    let mut got = 0;
    loop {
        let n = match file.read(&mut window[got..]) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io(&f.path)(e)),
        };
        got += n;
        // The end (nothing more), the listed size (reached by a short read), or more.
        if n == 0 || got >= size {
            break;
        }
    }
    if got != size {
        return Err(ChunkError::Changed {
            path: f.path.clone(),
        });
    }
    Ok(size)
}

/// Reads the files of a pack in order and hashes them as one chunk (each file's bytes, and a
/// newline after a file whose last line lacks one), without keeping the chunk in memory.
fn hash_pack(members: &[usize], files: &[InputFile]) -> Result<Vec<Chunk>, ChunkError> {
    PACK_BUFFER.with_borrow_mut(|buf| {
        // Bytes of `buf` gathered and not yet hashed.
        let mut used: usize = 0;
        let mut hasher = blake3::Hasher::new();
        let mut pieces = Vec::with_capacity(members.len());
        for &i in members {
            let f = &files[i];
            let size = usize::try_from(f.stamp.size).unwrap_or(usize::MAX);
            if used > 0 && used.saturating_add(size) > PACK_HASH_BATCH {
                hasher.update(&buf[..used]);
                used = 0;
            }
            let len = read_listed(f, buf, used)?;
            used += len;
            let newline = len > 0 && buf[used - 1] != b'\n';
            if newline {
                // The byte after the file's is in the buffer already (it was read into).
                buf[used] = b'\n';
                used += 1;
            }
            // Empty files add nothing: a pack of them is no chunk at all.
            if len > 0 {
                pieces.push(Piece {
                    path: f.path.clone(),
                    stamp: f.stamp,
                    offset: 0,
                    len: len as u64,
                    newline,
                });
            }
        }
        hasher.update(&buf[..used]);
        if buf.len() > PACK_BUFFER_KEPT {
            *buf = Vec::new();
        }
        if pieces.is_empty() {
            return Ok(Vec::new());
        }
        Ok(vec![Chunk {
            hash: BlobHash(*hasher.finalize().as_bytes()),
            pieces,
        }])
    })
}

/// Cuts one file into line-aligned chunks of about `target` bytes, reading it once in a
/// streaming pass (never whole in memory).
fn split_file(f: &InputFile, target: usize) -> Result<Vec<Chunk>, ChunkError> {
    let limit = shoal_protocol::codec::MAX_BLOB_BYTES / 2;
    let mut file = File::open(&f.path).map_err(io(&f.path))?;
    let mut buf: Vec<u8> = Vec::with_capacity(target * 2);
    let mut offset = 0u64;
    let mut eof = false;
    let mut chunks = Vec::new();
    loop {
        // Fill until the buffer holds a cut point or the file ends.
        while !eof && chunk_end(&buf, target).is_none() {
            if buf.len() > limit {
                return Err(ChunkError::LineTooLong {
                    path: f.path.clone(),
                    limit,
                });
            }
            let start = buf.len();
            buf.resize(start + target.max(64 * 1024), 0);
            let n = file.read(&mut buf[start..]).map_err(io(&f.path))?;
            buf.truncate(start + n);
            eof = n == 0;
        }
        let len = match chunk_end(&buf, target) {
            Some(len) => len,
            None if buf.is_empty() => break,
            None => buf.len(),
        };
        let newline = eof && len == buf.len() && buf[len - 1] != b'\n';
        let hash = if newline {
            let mut h = blake3::Hasher::new();
            h.update(&buf[..len]);
            h.update(b"\n");
            BlobHash(*h.finalize().as_bytes())
        } else {
            BlobHash::of(&buf[..len])
        };
        chunks.push(Chunk {
            hash,
            pieces: vec![Piece {
                path: f.path.clone(),
                stamp: f.stamp,
                offset,
                len: len as u64,
                newline,
            }],
        });
        offset += len as u64;
        buf.drain(..len);
        if eof && buf.is_empty() {
            break;
        }
    }
    if offset != f.stamp.size {
        return Err(ChunkError::Changed {
            path: f.path.clone(),
        });
    }
    Ok(chunks)
}

/// Reads a chunk's bytes from its files, if every file is as it was when it was chunked.
pub fn read_chunk(pieces: &[Piece]) -> Option<Vec<u8>> {
    use std::io::{Seek, SeekFrom};
    let total: u64 = pieces.iter().map(Piece::chunk_len).sum();
    let mut out = Vec::with_capacity(usize::try_from(total).ok()?);
    for p in pieces {
        // The stamp is checked on the open file: one lookup of the path, not two, and no
        // window between the check and the read.
        let file = File::open(&p.path).ok()?;
        let stamp = file.metadata().ok().map(|m| FileStamp::of(&m));
        if stamp != Some(p.stamp) {
            tracing::warn!(path = %p.path.display(), "input file changed since it was submitted");
            return None;
        }
        let mut file = &file;
        if p.offset > 0 {
            file.seek(SeekFrom::Start(p.offset)).ok()?;
        }
        // Into the capacity reserved above: no zeroing of the buffer first.
        let start = out.len();
        file.take(p.len).read_to_end(&mut out).ok()?;
        if (out.len() - start) as u64 != p.len {
            return None;
        }
        if p.newline {
            out.push(b'\n');
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &Path, name: &str, text: &str) -> InputFile {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        InputFile {
            stamp: FileStamp::now(&path).unwrap(),
            rel: name.into(),
            path,
        }
    }

    #[test]
    fn small_files_pack_and_large_ones_split() {
        let dir = tempfile::tempdir().unwrap();
        let files = vec![
            file(dir.path(), "a", "aa\n"),
            file(dir.path(), "b", "bbbb\n"),
            file(dir.path(), "big", &"line\n".repeat(10)),
            file(dir.path(), "c", "c\n"),
        ];
        assert_eq!(
            plan(&files, 12),
            vec![Unit::Pack(vec![0, 1]), Unit::Split(2), Unit::Pack(vec![3])]
        );
    }

    #[test]
    fn a_file_without_a_final_newline_never_joins_the_next_one() {
        let dir = tempfile::tempdir().unwrap();
        let files = vec![
            file(dir.path(), "a", "end of a"),
            file(dir.path(), "b", "start of b\n"),
            file(dir.path(), "empty", ""),
        ];
        let chunks = chunk_unit(&Unit::Pack(vec![0, 1, 2]), &files, 1 << 20).unwrap();
        assert_eq!(chunks.len(), 1);
        let bytes = read_chunk(&chunks[0].pieces).unwrap();
        assert_eq!(bytes, b"end of a\nstart of b\n");
        assert_eq!(chunks[0].hash, BlobHash::of(&bytes));
        assert_eq!(chunks[0].len(), bytes.len() as u64);
        // The same for a split file's last piece.
        let big = vec![file(dir.path(), "big", "x\nyy\nzzz")];
        let chunks = chunk_unit(&Unit::Split(0), &big, 2).unwrap();
        let joined: Vec<u8> = chunks
            .iter()
            .flat_map(|c| read_chunk(&c.pieces).unwrap())
            .collect();
        assert_eq!(joined, b"x\nyy\nzzz\n");
        for c in &chunks {
            assert_eq!(c.hash, BlobHash::of(&read_chunk(&c.pieces).unwrap()));
        }
    }

    #[test]
    fn a_pack_larger_than_a_hashing_batch_hashes_as_its_bytes() {
        // Files that fill several batches, one larger than a batch by itself, some without a
        // final newline, and an empty one; packed twice on one thread (the buffer is reused).
        let dir = tempfile::tempdir().unwrap();
        let sizes = [300_000, PACK_HASH_BATCH + 7, 0, 5, 700_001, 1];
        let files: Vec<InputFile> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let text: String = (0..n)
                    .map(|k| if k % 61 == 60 { '\n' } else { 'q' })
                    .collect();
                file(dir.path(), &format!("f{i}"), &text)
            })
            .collect();
        let all: Vec<usize> = (0..files.len()).collect();
        for _ in 0..2 {
            let chunks = chunk_unit(&Unit::Pack(all.clone()), &files, 8 << 20).unwrap();
            assert_eq!(chunks.len(), 1);
            let bytes = read_chunk(&chunks[0].pieces).unwrap();
            assert_eq!(chunks[0].hash, BlobHash::of(&bytes));
            assert_eq!(chunks[0].len(), bytes.len() as u64);
        }
        // A file that grew or shrank since it was listed is refused (and one that grew by a
        // single byte, the byte the read leaves room for).
        for (i, text) in [(3, "grown!\n"), (3, "qqqqq!"), (4, "short\n")] {
            let original = std::fs::read(&files[i].path).unwrap();
            std::fs::write(&files[i].path, text).unwrap();
            assert!(
                matches!(
                    chunk_unit(&Unit::Pack(all.clone()), &files, 8 << 20),
                    Err(ChunkError::Changed { .. })
                ),
                "file {i} now {text:?}"
            );
            std::fs::write(&files[i].path, original).unwrap();
        }
    }

    #[test]
    fn a_changed_file_is_not_served() {
        let dir = tempfile::tempdir().unwrap();
        let files = vec![file(dir.path(), "a", "hello\n")];
        let chunks = chunk_unit(&Unit::Pack(vec![0]), &files, 1 << 20).unwrap();
        assert!(read_chunk(&chunks[0].pieces).is_some());
        // Same size, new contents, later modification time.
        std::fs::write(&files[0].path, "HELLO\n").unwrap();
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&files[0].path)
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert!(read_chunk(&chunks[0].pieces).is_none());
    }
}
