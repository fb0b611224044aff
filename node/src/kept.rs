//! The pieces of durable jobs' inputs this node keeps (`--copies`, see
//! `shoal_protocol::durable`): chunks, their manifests and modules, held for the job's life
//! and served. They stay in memory up to `--kept-memory` ([`DEFAULT_MEMORY`]), never evicted;
//! past it they are written to `DATA-DIR/kept/HASH` (mode 0600) and served from there. Memory
//! first because a kept copy is worth no more on disk: a node that restarts is a new process
//! to the mesh, whose copies are gone either way, and writing them took a fifth of both
//! cores while copying (a small VM's page cache takes 300 MB/s; see docs/BENCHMARKS.md).
//! Without a data dir, copies past the budget stay in memory, evictable.
//!
//! Blobs are shared by content: two jobs over the same files keep one copy. The folder is
//! emptied once no durable job runs on the node (so it holds at most the inputs of the durable
//! jobs that overlap in time), and at start: a node that restarts holds nothing (the mesh
//! counts it as a new process, whose copies are gone).

use crate::handle::Handle;
use crate::input::chunk::Piece;
use crate::input::walk::FileStamp;
use shoal_protocol::{BlobHash, JobId};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Default memory for kept pieces (`shoal node --kept-memory`).
pub const DEFAULT_MEMORY: u64 = 512 << 20;

/// Where kept pieces live, and the jobs each is kept for.
#[derive(Debug, Clone)]
pub struct KeptInputs {
    dir: Option<PathBuf>,
    /// Bytes of kept pieces held in memory at most; the rest go to `dir`.
    memory: usize,
    jobs: Arc<Mutex<HashMap<BlobHash, Vec<JobId>>>>,
    /// One write at a time: two tasks keeping the same blob must not race on its file (the
    /// store serves a file only under the stamp it was registered with).
    writing: Arc<tokio::sync::Mutex<()>>,
}

impl KeptInputs {
    /// The kept pieces: up to `memory` bytes in memory, the rest under `data_dir` (emptied: a
    /// restarted node keeps nothing).
    pub fn open(data_dir: Option<&Path>, memory: u64) -> Self {
        let dir = data_dir.map(|d| d.join("kept"));
        if let Some(dir) = &dir
            && dir.exists()
            && let Err(e) = std::fs::remove_dir_all(dir)
        {
            tracing::warn!("cannot empty {}: {e}", dir.display());
        }
        Self {
            dir,
            memory: usize::try_from(memory).unwrap_or(usize::MAX),
            jobs: Arc::default(),
            writing: Arc::default(),
        }
    }

    /// Keeps chunk `hash` of job `job` and the job's manifest `manifest` (fetched before the
    /// chunk, so at hand in the store).
    pub async fn keep(
        &self,
        handle: &Handle,
        job: JobId,
        manifest: BlobHash,
        hash: BlobHash,
        bytes: &Arc<Vec<u8>>,
    ) -> bool {
        let Some(manifest_bytes) = handle.manifest_bytes(&manifest) else {
            tracing::warn!(%job, "the manifest {manifest} is no longer at hand: not keeping chunk {hash}");
            return false;
        };
        self.keep_blob(handle, job, manifest, &manifest_bytes).await
            && self.keep_blob(handle, job, hash, bytes).await
    }

    /// Keeps the module `module` of job `job`.
    pub async fn keep_module(
        &self,
        handle: &Handle,
        job: JobId,
        module: BlobHash,
        bytes: &Arc<Vec<u8>>,
    ) -> bool {
        self.keep_blob(handle, job, module, bytes).await
    }

    /// Keeps a blob of job `job`, in memory within the budget, else on disk when there is a
    /// data dir, and serves it to the job's members from there.
    async fn keep_blob(
        &self,
        handle: &Handle,
        job: JobId,
        hash: BlobHash,
        bytes: &Arc<Vec<u8>>,
    ) -> bool {
        let store = handle.store();
        self.jobs
            .lock()
            .expect("kept lock")
            .entry(hash)
            .or_default()
            .push(job);
        // Kept already (for this job or another), or one of this node's own input files, or
        // room in memory: served from there.
        if store.held_for_good(&hash) || store.put_kept(hash, bytes.clone(), self.memory) {
            store.grant(job, &[hash]);
            return true;
        }
        let Some(dir) = &self.dir else {
            store.put_verified_for(job, hash, bytes.clone());
            return true;
        };
        let path = dir.join(hash.to_hex());
        let _writing = self.writing.lock().await;
        if store.held_for_good(&hash) {
            store.grant(job, &[hash]);
            return true;
        }
        tracing::debug!(%job, %hash, "keeping a copy");
        let written = {
            let (path, bytes) = (path.clone(), bytes.clone());
            tokio::task::spawn_blocking(move || write_kept(&path, &bytes)).await
        };
        match written {
            Ok(Ok(stamp)) => {
                let piece = Piece {
                    path,
                    stamp,
                    offset: 0,
                    len: bytes.len() as u64,
                    newline: false,
                };
                store.put_file(hash, vec![piece]);
                store.grant(job, &[hash]);
                true
            }
            Ok(Err(e)) => {
                tracing::warn!(%job, "cannot keep {hash} in {}: {e}", path.display());
                false
            }
            Err(e) => {
                tracing::warn!(%job, "cannot keep {hash}: {e}");
                false
            }
        }
    }

    /// Removes every kept blob once no durable job runs here (`busy` false): the blobs are
    /// shared by content between jobs and served from there, so none goes while any
    /// durable job might still read or serve it.
    pub fn tidy(&self, busy: bool, store: &crate::store::BlobStore) {
        let mut jobs = self.jobs.lock().expect("kept lock");
        if busy || jobs.is_empty() {
            return;
        }
        jobs.clear();
        // The store forgets them first: it must not name files that are gone.
        store.forget_kept(self.dir.as_deref());
        if let Some(dir) = &self.dir
            && let Err(e) = std::fs::remove_dir_all(dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("cannot empty {}: {e}", dir.display());
        }
        tracing::debug!("no durable job runs here: the kept copies are removed");
    }
}

/// Writes a kept blob (only its owner can read it) and returns the stamp it is served under.
fn write_kept(path: &Path, bytes: &[u8]) -> std::io::Result<FileStamp> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
        // Only the node's user may read what it keeps of other people's inputs.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o700))?;
    }
    let tmp = path.with_extension("tmp");
    crate::suspects::write_private(&tmp, bytes)?;
    std::fs::rename(&tmp, path)?;
    FileStamp::now(path).ok_or_else(|| std::io::Error::other("the kept file vanished"))
}
