//! Datasets this node shares (`shoal node --share NAME=DIR`): each folder is chunked as a
//! submission is (the same chunker, the same hash cache), its manifest kept in
//! `<data-dir>/shares/` and its chunks served from the files themselves, to the members of
//! jobs that read the dataset only. The folders are scanned again every
//! [`DEFAULT_RESCAN`] (`--share-rescan`): a changed file gets new chunks and the adverts name
//! the new part; its old chunks are never served again (the store checks each file's stamp
//! before serving, so a file changed between two scans is refused, not served stale).

use crate::handle::Handle;
use crate::input::{self, cache::InputCache};
use crate::store::BlobStore;
use shoal_protocol::BlobHash;
use shoal_protocol::dataset::{self, MAX_SHARES, Share};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How often shared folders are scanned for changes when `--share-rescan` is not given.
pub const DEFAULT_RESCAN: Duration = Duration::from_secs(10);

/// One `--share NAME=DIR`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareSpec {
    pub name: String,
    /// Absolute.
    pub dir: PathBuf,
}

/// Why a `--share` is refused (the node does not start).
#[derive(Debug, thiserror::Error)]
pub enum ShareError {
    #[error("--share {0:?}: expected NAME=DIR")]
    Syntax(String),
    #[error("--share: {0}")]
    Name(#[from] dataset::DatasetError),
    #[error("--share {name}={dir}: {source}")]
    Dir {
        name: String,
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("--share {name}={dir}: not a directory")]
    NotDir { name: String, dir: PathBuf },
    #[error("--share {0}: named twice (one folder per dataset name on a node)")]
    Twice(String),
    #[error("--share: at most {MAX_SHARES} datasets per node")]
    TooMany,
}

impl std::str::FromStr for ShareSpec {
    type Err = ShareError;

    fn from_str(s: &str) -> Result<Self, ShareError> {
        let (name, dir) = s
            .split_once('=')
            .ok_or_else(|| ShareError::Syntax(s.to_string()))?;
        dataset::check_name(name)?;
        let dir_error = |source| ShareError::Dir {
            name: name.to_string(),
            dir: PathBuf::from(dir),
            source,
        };
        let abs = std::fs::canonicalize(dir).map_err(dir_error)?;
        if !abs.is_dir() {
            return Err(ShareError::NotDir {
                name: name.to_string(),
                dir: abs,
            });
        }
        Ok(Self {
            name: name.to_string(),
            dir: abs,
        })
    }
}

/// Checks a node's shares as a whole: distinct names, not too many.
pub fn check_all(specs: &[ShareSpec]) -> Result<(), ShareError> {
    if specs.len() > MAX_SHARES {
        return Err(ShareError::TooMany);
    }
    for (i, s) in specs.iter().enumerate() {
        if specs[..i].iter().any(|o| o.name == s.name) {
            return Err(ShareError::Twice(s.name.clone()));
        }
    }
    Ok(())
}

/// Chunks one shared folder: its part, with the manifest stored where eviction cannot take it
/// (a file in `manifests`, served like a chunk). `None` (and a warning) if the folder cannot
/// be read or holds no file.
fn scan_one(
    spec: &ShareSpec,
    store: &BlobStore,
    cache: &InputCache,
    manifests: &Path,
) -> Option<Share> {
    let prepared = input::list_files(std::slice::from_ref(&spec.dir), &[])
        .and_then(|listing| input::prepare(&listing, None, store, cache));
    let prepared = match prepared {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(dataset = %spec.name, "not shared for now: {e}");
            return None;
        }
    };
    if let Err(e) = keep_manifest(store, prepared.manifest, manifests) {
        tracing::warn!(dataset = %spec.name, "not shared for now: cannot keep its manifest: {e}");
        return None;
    }
    Some(Share {
        name: spec.name.clone(),
        manifest: prepared.manifest,
        chunks: prepared.chunks,
        bytes: prepared.bytes,
    })
}

/// Writes manifest `hash` (in `store`, just put there) to `dir` and serves it from that file.
fn keep_manifest(store: &BlobStore, hash: BlobHash, dir: &Path) -> std::io::Result<()> {
    let path = dir.join(hash.to_hex());
    if !path.exists() {
        let bytes = store
            .get(&hash)
            .ok_or_else(|| std::io::Error::other("the manifest left the store"))?;
        std::fs::create_dir_all(dir)?;
        // The manifests name the chunks of the user's files: other local users have no business
        // with them (as with <data-dir>/results and kept).
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, bytes.as_slice())?;
        std::fs::rename(&tmp, &path)?;
    }
    let stamp = crate::input::walk::FileStamp::now(&path)
        .ok_or_else(|| std::io::Error::other("the kept manifest vanished"))?;
    store.put_file(
        hash,
        vec![crate::input::chunk::Piece {
            len: stamp.size,
            path,
            stamp,
            offset: 0,
            newline: false,
        }],
    );
    Ok(())
}

/// Scans every shared folder once.
pub fn scan(
    specs: &[ShareSpec],
    store: &BlobStore,
    cache: &InputCache,
    data_dir: &Path,
) -> Vec<Share> {
    let manifests = data_dir.join("shares");
    specs
        .iter()
        .filter_map(|s| scan_one(s, store, cache, &manifests))
        .collect()
}

/// Scans the shared folders now and every `every`, and tells the node what it shares.
pub async fn run(handle: Handle, specs: Vec<ShareSpec>, data_dir: PathBuf, every: Duration) {
    let mut ticks = tokio::time::interval(every.max(Duration::from_millis(100)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let (h, s, d) = (handle.clone(), specs.clone(), data_dir.clone());
        let shares = tokio::task::spawn_blocking(move || scan(&s, h.store(), h.input_cache(), &d))
            .await
            .unwrap_or_default();
        if handle.set_shares(shares).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_flags_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let arg = format!("logs={}", dir.path().display());
        let spec: ShareSpec = arg.parse().unwrap();
        assert_eq!(spec.name, "logs");
        assert!("logs".parse::<ShareSpec>().is_err());
        assert!(
            format!("a/b={}", dir.path().display())
                .parse::<ShareSpec>()
                .is_err()
        );
        assert!("logs=/no/such/dir".parse::<ShareSpec>().is_err());
        let file = dir.path().join("f");
        std::fs::write(&file, "x\n").unwrap();
        assert!(matches!(
            format!("logs={}", file.display()).parse::<ShareSpec>(),
            Err(ShareError::NotDir { .. })
        ));
        assert!(matches!(
            check_all(&[spec.clone(), spec]),
            Err(ShareError::Twice(_))
        ));
    }

    #[test]
    fn a_share_is_chunked_and_its_manifest_survives_the_memory_budget() {
        let dir = tempfile::tempdir().unwrap();
        let data = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.log"), "one two\nthree\n").unwrap();
        let spec: ShareSpec = format!("logs={}", dir.path().display()).parse().unwrap();
        let store = BlobStore::new(0);
        let cache = InputCache::new(None);
        let shares = scan(std::slice::from_ref(&spec), &store, &cache, data.path());
        assert_eq!(shares.len(), 1);
        assert_eq!((shares[0].chunks, shares[0].bytes), (1, 14));
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(data.path().join("shares"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o777,
            0o700,
            "the manifests are this node's user's only"
        );
        // A zero memory budget evicts whatever is in memory: the manifest is on disk.
        store.put(vec![0; 16]);
        assert!(store.get(&shares[0].manifest).is_some());
        let m: shoal_protocol::job::Manifest =
            shoal_protocol::codec::decode_blob(&store.get(&shares[0].manifest).unwrap()).unwrap();
        let old_chunk = m.chunks[0].hash;
        assert!(store.get(&old_chunk).is_some());
        // A changed file makes a new part, and its old chunk is never served again.
        std::fs::write(dir.path().join("a.log"), "one two\nthree four\n").unwrap();
        assert!(store.get(&old_chunk).is_none(), "served with its old hash");
        let again = scan(&[spec], &store, &cache, data.path());
        assert_ne!(again[0].manifest, shares[0].manifest);
    }
}
