//! Executors: run one task (fetching its inputs from whichever peer holds them), or collect a
//! job's root result. Computation runs on the blocking pool so the driver never stalls.

use crate::driver::Handle;
use shoal_protocol::ops::{self, MapInput};
use shoal_protocol::wire::INLINE_RESULT_MAX;
use shoal_protocol::{
    BlobHash, MapSource, NodeId, ResultRef, TaskOutcome, TaskRun, Work, codec, effects,
    job::Manifest,
};
use std::sync::Arc;
use std::time::Instant;

/// Runs a task to its outcome. Returns the outcome and how long it took (µs).
pub async fn run_task(handle: &Handle, run: TaskRun) -> (TaskOutcome, u64) {
    let started = Instant::now();
    let outcome = match run_inner(handle, &run).await {
        Ok(bytes) => TaskOutcome::Done(store_result(handle, bytes)),
        Err(outcome) => outcome,
    };
    (outcome, started.elapsed().as_micros() as u64)
}

async fn run_inner(handle: &Handle, run: &TaskRun) -> Result<Vec<u8>, TaskOutcome> {
    let op = run.spec.op.clone();
    let failed =
        |what: String| TaskOutcome::Failed(format!("job {} task {}: {what}", run.job, run.task));
    match &run.work {
        Work::Map {
            source: MapSource::Generated(part),
        } => {
            let part = *part;
            compute(move || ops::map(&op, MapInput::Generated(part)))
                .await
                .map_err(failed)
        }
        Work::Map {
            source:
                MapSource::Chunk {
                    manifest,
                    index,
                    holder,
                },
        } => {
            let manifest = fetch_manifest(handle, *holder, *manifest)
                .await
                .map_err(|e| failed(format!("manifest unavailable: {e}")))?;
            let chunk = *manifest
                .chunks
                .get(*index as usize)
                .ok_or_else(|| failed(format!("manifest has no chunk {index}")))?;
            let bytes = fetch_retrying(handle, *holder, chunk.hash)
                .await
                .map_err(|e| failed(format!("input chunk {index} unavailable: {e}")))?;
            compute(move || ops::map(&op, MapInput::Chunk(&bytes)))
                .await
                .map_err(failed)
        }
        Work::Reduce { children } => {
            let fetches = children.iter().map(|c| async move {
                match &c.result {
                    ResultRef::Inline(bytes) => Ok(Arc::new(bytes.clone())),
                    ResultRef::Blob { hash, .. } => fetch_retrying(handle, c.holder, *hash)
                        .await
                        .map_err(|_| TaskOutcome::InputLost {
                            child: c.task,
                            holder: c.holder,
                        }),
                }
            });
            let parts = futures::future::join_all(fetches)
                .await
                .into_iter()
                .collect::<Result<Vec<_>, _>>()?;
            compute(move || {
                let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
                ops::reduce(&op, &refs)
            })
            .await
            .map_err(failed)
        }
    }
}

/// Fetch attempts before an input counts as unavailable, and the first retry delay (doubling).
const FETCH_ATTEMPTS: u32 = 5;
const FETCH_RETRY_FIRST: std::time::Duration = std::time::Duration::from_millis(100);

/// Fetches a blob, retrying with backoff: a peer may be reachable only once discovery has found
/// its address, and a busy peer may time out once.
async fn fetch_retrying(
    handle: &Handle,
    holder: NodeId,
    hash: BlobHash,
) -> Result<Arc<Vec<u8>>, String> {
    let mut delay = FETCH_RETRY_FIRST;
    let mut attempt = 1;
    loop {
        match handle.fetch(holder, hash).await {
            Ok(bytes) => return Ok(bytes),
            Err(e) if attempt >= FETCH_ATTEMPTS => {
                return Err(format!("{e} (after {attempt} attempts)"));
            }
            Err(e) => tracing::debug!(%holder, "fetch attempt {attempt} failed: {e}"),
        }
        tokio::time::sleep(delay).await;
        delay *= 2;
        attempt += 1;
    }
}

async fn compute(
    f: impl FnOnce() -> Result<Vec<u8>, ops::OpError> + Send + 'static,
) -> Result<Vec<u8>, String> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(e) => Err(format!("executor panicked: {e}")),
    }
}

/// Small results travel inline in the completion; larger ones stay here as blobs.
fn store_result(handle: &Handle, bytes: Vec<u8>) -> ResultRef {
    if bytes.len() <= INLINE_RESULT_MAX {
        ResultRef::Inline(bytes)
    } else {
        let r = effects::blob_ref(&bytes);
        handle.store().put(bytes);
        r
    }
}

async fn fetch_manifest(
    handle: &Handle,
    holder: NodeId,
    hash: BlobHash,
) -> Result<Arc<Manifest>, String> {
    if let Some(m) = handle.cached_manifest(&hash) {
        return Ok(m);
    }
    let bytes = fetch_retrying(handle, holder, hash).await?;
    let manifest: Manifest = codec::decode_blob(&bytes).map_err(|e| e.to_string())?;
    let manifest = Arc::new(manifest);
    handle.cache_manifest(hash, manifest.clone());
    Ok(manifest)
}

/// Fetches and finalizes a job's root result: the job's final output bytes.
pub async fn collect(
    handle: &Handle,
    spec: Arc<shoal_protocol::JobSpec>,
    result: ResultRef,
    holder: NodeId,
) -> Result<Vec<u8>, String> {
    let bytes = match result {
        ResultRef::Inline(b) => Arc::new(b),
        ResultRef::Blob { hash, .. } => fetch_retrying(handle, holder, hash).await?,
    };
    compute(move || ops::finalize(&spec.op, &bytes)).await
}
