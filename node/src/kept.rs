//! The pieces of durable jobs' inputs this node keeps (`--copies`, see
//! `shoal_protocol::durable`): chunks, their manifests and modules, written to
//! `DATA-DIR/kept/JOB/HASH` (mode 0600) and served from there for the job's life, so that a
//! copy survives the memory budget. Without a data dir they stay in memory.
//!
//! A node that restarts holds nothing (the mesh counts it as a new process, whose copies are
//! gone): the folder is emptied at start, and a job's folder is removed once the node no
//! longer tracks the job.

use crate::handle::Handle;
use crate::input::chunk::Piece;
use crate::input::walk::FileStamp;
use shoal_protocol::{BlobHash, JobId};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where kept pieces live.
#[derive(Debug, Clone)]
pub struct KeptInputs {
    dir: Option<PathBuf>,
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
        Self { dir }
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
        let Some(manifest_bytes) = handle.store().get(&manifest) else {
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
        let path = dir.join(job.to_hex()).join(hash.to_hex());
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

    /// Removes the folders of jobs `tracked` says this node no longer tracks.
    pub fn forget_untracked(&self, tracked: impl Fn(&JobId) -> bool) {
        let Some(dir) = &self.dir else {
            return;
        };
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(job) = name.to_str().and_then(JobId::from_hex) else {
                continue;
            };
            if !tracked(&job)
                && let Err(e) = std::fs::remove_dir_all(entry.path())
            {
                tracing::warn!("cannot remove {}: {e}", entry.path().display());
            }
        }
    }
}

/// Writes a kept blob (only its owner can read it) and returns the stamp it is served under.
fn write_kept(path: &Path, bytes: &[u8]) -> std::io::Result<FileStamp> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o700))?;
    }
    let tmp = path.with_extension("tmp");
    crate::suspects::write_private(&tmp, bytes)?;
    std::fs::rename(&tmp, path)?;
    FileStamp::now(path).ok_or_else(|| std::io::Error::other("the kept file vanished"))
}
