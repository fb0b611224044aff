//! The pieces of durable jobs' inputs this node keeps (`--copies`, see
//! `shoal_protocol::durable`): chunks, their manifests and modules, written to
//! `DATA-DIR/kept/HASH` (mode 0600) and served from there for the job's life, so that a copy
//! survives the memory budget. Without a data dir they stay in memory.
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

/// Where kept pieces live, and the jobs each is kept for.
#[derive(Debug, Clone)]
pub struct KeptInputs {
    dir: Option<PathBuf>,
    jobs: Arc<Mutex<HashMap<BlobHash, Vec<JobId>>>>,
    /// One write at a time: two tasks keeping the same blob must not race on its file (the
    /// store serves a file only under the stamp it was registered with).
    writing: Arc<tokio::sync::Mutex<()>>,
}

impl KeptInputs {
    /// The kept pieces under `data_dir` (emptied: a restarted node keeps nothing).
    pub fn open(data_dir: Option<&Path>) -> Self {
        let dir = data_dir.map(|d| d.join("kept"));
        if let Some(dir) = &dir
            && dir.exists()
            && let Err(e) = std::fs::remove_dir_all(dir)
        {
            tracing::warn!("cannot empty {}: {e}", dir.display());
        }
        Self {
            dir,
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

    /// Keeps a blob of job `job`, on disk when there is a data dir, and serves it to the job's
    /// members from there.
    async fn keep_blob(
        &self,
        handle: &Handle,
        job: JobId,
        hash: BlobHash,
        bytes: &Arc<Vec<u8>>,
    ) -> bool {
        let store = handle.store();
        let Some(dir) = &self.dir else {
            store.put_verified_for(job, hash, bytes.clone());
            return true;
        };
        let path = dir.join(hash.to_hex());
        self.jobs
            .lock()
            .expect("kept lock")
            .entry(hash)
            .or_default()
            .push(job);
        let _writing = self.writing.lock().await;
        if store.on_disk(&hash) {
            // Kept already (for this job or another), or one of this node's own input files:
            // served from there.
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
    /// shared by content between jobs and served from their files, so none goes while any
    /// durable job might still read or serve it.
    pub fn tidy(&self, busy: bool, store: &crate::store::BlobStore) {
        let mut jobs = self.jobs.lock().expect("kept lock");
        if busy || jobs.is_empty() {
            return;
        }
        jobs.clear();
        if let Some(dir) = &self.dir {
            // The store forgets them first: it must not name files that are gone.
            store.forget_files_under(dir);
            if let Err(e) = std::fs::remove_dir_all(dir)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!("cannot empty {}: {e}", dir.display());
            }
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
