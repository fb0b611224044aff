//! Executors: run one task (fetching its inputs from whichever peer holds them), or collect a
//! job's root result. Computation runs on the blocking pool so the driver never stalls, except
//! for tasks known to take microseconds ([`run_tiny`]).

use crate::fetch::FetchError;
use crate::handle::Handle;
use shoal_ops::{self as ops, MapInput};
use shoal_protocol::job::GeneratedPart;
use shoal_protocol::wire::INLINE_RESULT_MAX;
use shoal_protocol::{
    BlobHash, ChildInput, JobId, JobSpec, MapSource, NodeId, Operator, ResultRef, ReuseKey,
    TaskOutcome, TaskRun, Work, effects, reuse,
};
use std::sync::Arc;
use std::time::Instant;

/// Why a job's root result could not be turned into its output.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CollectError {
    /// The root result could not be fetched from its holder: it is computed again.
    #[error("fetching the root result failed: {0}")]
    Fetch(#[from] FetchError),
    /// The root result does not finalize (it is corrupt): it is computed again.
    #[error("the root result does not finalize: {0}")]
    Finalize(String),
}

/// Largest generated part (numbers of a range, pi samples) counted as tiny work: the tasks
/// that the protocol groups in runs when there are many.
const TINY_ITEMS: u64 = shoal_protocol::runs::TINY_TASK_ITEMS;
/// Largest total of inline child results a tiny reduce combines.
const TINY_REDUCE_BYTES: usize = 64 * 1024;

/// The inputs of a tiny task, in hand.
enum TinyInput<'a> {
    Part(GeneratedPart),
    Results(Vec<&'a [u8]>),
}

/// The inputs of `run` if it is tiny work with its inputs in hand: a small generated part, or
/// a reduce of small inline results (never a WebAssembly job, whose cost is the module's).
fn tiny_input(run: &TaskRun) -> Option<TinyInput<'_>> {
    if matches!(run.spec.op, Operator::Wasm { .. }) {
        return None;
    }
    match &run.work {
        Work::Map {
            source: MapSource::Generated(part),
        } => {
            let items = match *part {
                GeneratedPart::Range { start, end } => end.saturating_sub(start),
                GeneratedPart::Samples { count, .. } => count,
            };
            (items <= TINY_ITEMS).then_some(TinyInput::Part(*part))
        }
        Work::Reduce { children } => {
            let results = children
                .iter()
                .map(|c| match &c.result {
                    ResultRef::Inline(bytes) => Some(&bytes[..]),
                    ResultRef::Blob { .. } => None,
                })
                .collect::<Option<Vec<&[u8]>>>()?;
            let bytes: usize = results.iter().map(|r| r.len()).sum();
            (bytes <= TINY_REDUCE_BYTES).then_some(TinyInput::Results(results))
        }
        Work::Map { .. } => None,
    }
}

/// Whether `run` is tiny work with its inputs in hand. Such a task takes microseconds, less
/// than handing it to another thread and its outcome back; for a job of many tiny tasks those
/// hand-offs were most of the work, so the driver runs these itself ([`run_tiny`]).
pub fn is_tiny(run: &TaskRun) -> bool {
    tiny_input(run).is_some()
}

/// The job's tasks that `run` computes: those of its tree inside a run of tiny tasks
/// ([`shoal_protocol::runs`]), else one.
pub fn tasks_in(run: &TaskRun) -> u32 {
    match &run.work {
        Work::Map {
            source: MapSource::Run { .. },
        } => run.spec.runs().tree_tasks_of(run.task),
        _ => 1,
    }
}

/// Runs a task for which [`is_tiny`] holds, on this thread. Returns the outcome and how long it
/// took (µs).
pub fn run_tiny(handle: &Handle, run: &TaskRun) -> (TaskOutcome, u64) {
    let started = Instant::now();
    // Only reduces of a job over files have a key; their small results are kept in memory.
    let key = reduce_key(run);
    if let Some(bytes) = key.and_then(|k| handle.reuse().get_in_memory(&k)) {
        let outcome = TaskOutcome::Reused(publish(handle, run.job, bytes));
        return (outcome, started.elapsed().as_micros() as u64);
    }
    let result = match tiny_input(run) {
        Some(TinyInput::Part(part)) => {
            ops::map(&run.spec.op, MapInput::Generated(part)).map_err(|e| (e, None))
        }
        Some(TinyInput::Results(results)) => ops::reduce(&run.spec.op, &results).map_err(|e| {
            let corrupt = ops::corrupt_input(&run.spec.op, &results);
            (e, corrupt)
        }),
        None => {
            let outcome = TaskOutcome::Failed("not a tiny task (a bug in the node)".to_string());
            return (outcome, 0);
        }
    };
    let outcome = match result {
        Ok(bytes) => TaskOutcome::Done(store_result(handle, run, bytes, key)),
        Err((e, corrupt)) => reduce_failure(run, e, corrupt),
    };
    (outcome, started.elapsed().as_micros() as u64)
}

/// Runs a task to its outcome: its result from [`crate::reuse`] if this node computed the
/// same task before, else computed (and kept there for next time). Returns the outcome and
/// how long it took (µs).
pub async fn run_task(handle: &Handle, run: TaskRun) -> (TaskOutcome, u64) {
    let started = Instant::now();
    let key = reuse_key(handle, &run).await;
    if let Some(key) = key
        && let Some(result) = reusable(handle, run.job, key).await
    {
        return (
            TaskOutcome::Reused(result),
            started.elapsed().as_micros() as u64,
        );
    }
    let outcome = match run_inner(handle, &run).await {
        Ok(bytes) => TaskOutcome::Done(store_result(handle, &run, bytes, key)),
        Err(outcome) => outcome,
    };
    (outcome, started.elapsed().as_micros() as u64)
}

/// The key of a reduce task's result, if reuse applies to its job.
fn reduce_key(run: &TaskRun) -> Option<ReuseKey> {
    match &run.work {
        Work::Reduce { children } if reuse::applies(&run.spec) => Some(reuse::reduce_key(
            &run.spec.op,
            children.iter().map(|c| &c.result),
        )),
        _ => None,
    }
}

/// The key of `run`'s result, if reuse applies to its job (for a map task, from the chunk's
/// hash in the manifest, which the task reads anyway).
async fn reuse_key(handle: &Handle, run: &TaskRun) -> Option<ReuseKey> {
    match &run.work {
        Work::Map {
            source:
                MapSource::Chunk {
                    manifest,
                    index,
                    holders,
                },
        } if reuse::applies(&run.spec) => {
            let chunks = handle.manifest(holders, *manifest).await.ok()?;
            let chunk = chunks.chunks.get(*index as usize)?;
            Some(reuse::map_key(&run.spec.op, &chunk.hash))
        }
        _ => reduce_key(run),
    }
}

/// The result kept for `key`, made available to job `job`'s members, if there is one.
pub async fn reusable(handle: &Handle, job: JobId, key: ReuseKey) -> Option<ResultRef> {
    if !handle.reuse().contains(&key) {
        return None;
    }
    let h = handle.clone();
    tokio::task::spawn_blocking(move || reuse_blocking(&h, job, &key))
        .await
        .ok()?
}

/// [`reusable`] when the result is in memory (as small reduce results are), without leaving
/// this thread: the driver reports it at once, before the job's other members give up waiting
/// for it ([`shoal_protocol::reuse::REDUCE_LOOKUP_MS`]) and compute it again.
pub fn reusable_in_memory(handle: &Handle, job: JobId, key: &ReuseKey) -> Option<ResultRef> {
    let bytes = handle.reuse().get_in_memory(key)?;
    Some(publish(handle, job, bytes))
}

/// [`reusable`] on the blocking pool. A result too large to travel inline is not read: the
/// store serves it from its file (a peer that fetches it checks its hash, as always).
fn reuse_blocking(handle: &Handle, job: JobId, key: &ReuseKey) -> Option<ResultRef> {
    if let Some((hash, len, path)) = handle.reuse().locate(key)
        && len > INLINE_RESULT_MAX as u64
    {
        let stamp = crate::input::walk::FileStamp::now(&path)?;
        let piece = crate::input::chunk::Piece {
            path,
            stamp,
            offset: 32,
            len,
            newline: false,
        };
        let store = handle.store();
        if !store.contains(&hash) {
            store.put_file(hash, vec![piece]);
        }
        store.grant(job, &[hash]);
        return Some(ResultRef::Blob { hash, len });
    }
    let bytes = handle.reuse().get(key)?;
    Some(publish(handle, job, bytes))
}

/// The map tasks of `job` whose results this node kept from earlier jobs, with the results
/// made available to the job's members (after [`shoal_protocol::Effect::ReuseMaps`]).
pub async fn reusable_maps(
    handle: &Handle,
    job: JobId,
    spec: &JobSpec,
    holders: &[NodeId],
) -> Vec<(u32, ResultRef)> {
    // Each manifest the map tasks read, the task that reads its first chunk, and who has it.
    let manifests: Vec<(BlobHash, u32, Vec<NodeId>)> = match &spec.input {
        shoal_protocol::Input::Chunks { manifest, .. } => vec![(*manifest, 0, holders.to_vec())],
        shoal_protocol::Input::Dataset(d) => (0..d.parts.len())
            .map(|i| {
                (
                    d.parts[i].manifest,
                    d.tasks_of(i).0,
                    d.parts[i].holders.clone(),
                )
            })
            .collect(),
        _ => Vec::new(),
    };
    let mut keys: Vec<(u32, ReuseKey)> = Vec::new();
    for (manifest, first, holders) in manifests {
        match handle.manifest(&holders, manifest).await {
            Ok(chunks) => keys.extend(
                chunks
                    .chunks
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (first + i as u32, reuse::map_key(&spec.op, &c.hash)))
                    .filter(|(_, k)| handle.reuse().contains(k)),
            ),
            Err(e) => tracing::debug!(%job, "cannot look up reusable results: {e}"),
        }
    }
    if keys.is_empty() {
        return Vec::new();
    }
    let h = handle.clone();
    tokio::task::spawn_blocking(move || {
        keys.into_iter()
            .filter_map(|(task, key)| reuse_blocking(&h, job, &key).map(|r| (task, r)))
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default()
}

/// A task's inputs, fetched.
enum Inputs {
    Map(MapBytes),
    Reduce(Vec<Arc<Vec<u8>>>),
}

enum MapBytes {
    Chunk(Arc<Vec<u8>>),
    Generated(GeneratedPart),
    Run(std::ops::Range<u32>),
}

async fn run_inner(handle: &Handle, run: &TaskRun) -> Result<Vec<u8>, TaskOutcome> {
    let failed =
        |what: String| TaskOutcome::Failed(format!("job {} task {}: {what}", run.job, run.task));
    // An input that cannot be fetched is no fault of the task: it is retried later without
    // counting an attempt.
    let unavailable = |what: String| {
        TaskOutcome::Unavailable(format!("job {} task {}: {what}", run.job, run.task))
    };
    let inputs = match &run.work {
        Work::Map {
            source: MapSource::Generated(part),
        } => Inputs::Map(MapBytes::Generated(*part)),
        Work::Map {
            source: MapSource::Run { tasks },
        } => Inputs::Map(MapBytes::Run(tasks.clone())),
        Work::Map {
            source:
                MapSource::Chunk {
                    manifest,
                    index,
                    holders,
                },
        } => {
            let (hash, bytes, moved) = handle
                .chunk_traced(holders, *manifest, *index)
                .await
                .map_err(|e| match e {
                    // Named its only holder, this node cannot read it: its file changed since
                    // it was submitted or shared. Waiting will not bring it back: each try
                    // counts, and the job fails with this reason.
                    FetchError::NoLongerHere { .. } => failed(format!(
                        "input chunk {index}: {e} (did its file change since it was submitted or shared?)"
                    )),
                    e => unavailable(format!("input chunk {index} unavailable: {e}")),
                })?;
            if moved {
                handle.input_moved(run.job, bytes.len() as u64).await;
            }
            if run.spec.keep.copies > 1 && !handle.store().held_for_good(&hash) {
                // A durable job's chunk stays here, served, for the job's life: the protocol
                // counts this node as one of its holders from now on. (Its submitter, or a
                // node sharing its dataset part, serves its own files.) Written while the
                // task computes: the task does not wait for the disk.
                let (h, job, manifest, bytes) = (handle.clone(), run.job, *manifest, bytes.clone());
                tokio::spawn(async move { h.kept().keep(&h, job, manifest, hash, &bytes).await });
            } else {
                // A chunk fetched from another node (kept if prefetched) is not needed again.
                handle.store().release(&hash);
            }
            Inputs::Map(MapBytes::Chunk(bytes))
        }
        Work::Reduce { children } => Inputs::Reduce(fetch_children(handle, children).await?),
    };
    match run.spec.op.clone() {
        Operator::Wasm { module, limits, .. } => {
            // A module compiled here already needs no bytes; otherwise fetch it once and keep
            // it, so that this node holds (and can serve) it too.
            let compiled = match crate::wasm::sandbox().cached(&module) {
                Some(compiled) => Ok(compiled),
                None => {
                    let bytes = handle
                        .fetch_from_any(run.submitter, &run.workers, module)
                        .await
                        .map_err(|e| unavailable(format!("wasm module unavailable: {e}")))?;
                    handle
                        .store()
                        .put_verified_for(run.job, module, bytes.clone());
                    if run.spec.keep.copies > 1 {
                        handle
                            .kept()
                            .keep_module(handle, run.job, module, &bytes)
                            .await;
                    }
                    Err(bytes)
                }
            };
            compute(move || {
                let sandbox = crate::wasm::sandbox();
                let compiled = match compiled {
                    Ok(compiled) => compiled,
                    Err(bytes) => sandbox.module(module, &bytes)?,
                };
                let mut job = sandbox.instantiate(&compiled, limits)?;
                match inputs {
                    Inputs::Map(MapBytes::Chunk(chunk)) => job.map(&chunk),
                    Inputs::Map(MapBytes::Generated(GeneratedPart::Range { start, end })) => {
                        job.map(&crate::wasm::encode_range(start, end))
                    }
                    Inputs::Map(MapBytes::Generated(GeneratedPart::Samples { .. })) => Err(
                        crate::wasm::WasmError::Trap("wasm jobs take files or a range".into()),
                    ),
                    // The protocol never groups a WebAssembly job's tasks.
                    Inputs::Map(MapBytes::Run(_)) => Err(crate::wasm::WasmError::Trap(
                        "wasm jobs do not run in runs".into(),
                    )),
                    Inputs::Reduce(parts) => {
                        let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
                        job.reduce(&refs)
                    }
                }
            })
            .await
            .map_err(|e| failed(format!("wasm module {e}")))
        }
        op => {
            let spec = run.spec.clone();
            let outcome = tokio::task::spawn_blocking(move || match inputs {
                Inputs::Map(MapBytes::Run(tasks)) => {
                    ops::map_run(&spec, tasks).map_err(|e| (e, None))
                }
                Inputs::Map(MapBytes::Chunk(chunk)) => {
                    ops::map(&op, MapInput::Chunk(&chunk)).map_err(|e| (e, None))
                }
                Inputs::Map(MapBytes::Generated(part)) => {
                    ops::map(&op, MapInput::Generated(part)).map_err(|e| (e, None))
                }
                Inputs::Reduce(parts) => {
                    let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
                    ops::reduce(&op, &refs).map_err(|e| (e, ops::corrupt_input(&op, &refs)))
                }
            })
            .await;
            match outcome {
                Ok(Ok(bytes)) => Ok(bytes),
                Ok(Err((e, corrupt))) => Err(reduce_failure(run, e, corrupt)),
                Err(e) => Err(failed(format!("executor panicked: {e}"))),
            }
        }
    }
}

/// How a failed built-in task ends: a reduce whose child result is corrupt reports that
/// child lost (a broken or lying peer's fault, not the task's: the child is computed again);
/// anything else is the task's failure.
fn reduce_failure(run: &TaskRun, error: ops::OpError, corrupt: Option<usize>) -> TaskOutcome {
    if let (Work::Reduce { children }, Some(i)) = (&run.work, corrupt)
        && let Some(child) = children.get(i)
    {
        tracing::warn!(job = %run.job, task = run.task, child = child.task, holder = %child.holder,
            "a child result is corrupt: {error}; it will be computed again");
        return TaskOutcome::InputLost {
            child: child.task,
            holder: child.holder,
        };
    }
    TaskOutcome::Failed(format!("job {} task {}: {error}", run.job, run.task))
}

/// Fetches a queued task's input chunk ahead of time and keeps it in the store (released once
/// the task has used it).
pub async fn prefetch(handle: &Handle, job: JobId, source: MapSource) -> Result<(), FetchError> {
    let MapSource::Chunk {
        manifest,
        index,
        holders,
    } = source
    else {
        return Ok(());
    };
    let (hash, bytes, moved) = handle.chunk_traced(&holders, manifest, index).await?;
    if moved {
        handle.input_moved(job, bytes.len() as u64).await;
    }
    handle.store().put_verified_for(job, hash, bytes);
    Ok(())
}

/// Copies piece `piece` of a durable job's input from one of `holders` and keeps it (see
/// [`crate::kept`]): a chunk with its manifest, and the module of a WebAssembly job.
pub async fn keep_piece(
    handle: &Handle,
    job: JobId,
    piece: u32,
    spec: &shoal_protocol::JobSpec,
    holders: &[NodeId],
) -> Result<(), FetchError> {
    let kept = handle.kept();
    let failed = || FetchError::Failed("the copy could not be written".into());
    if let Some((manifest, index)) = spec.chunk_of(piece) {
        let (hash, bytes) = handle.chunk(holders, manifest, index).await?;
        if !kept.keep(handle, job, manifest, hash, &bytes).await {
            return Err(failed());
        }
    }
    if let Operator::Wasm { module, .. } = spec.op {
        let bytes = handle.fetch_from_holders(holders, module).await?;
        if !kept.keep_module(handle, job, module, &bytes).await {
            return Err(failed());
        }
    }
    Ok(())
}

/// Children's results in order; a child whose holder cannot serve it is reported lost, so
/// that it is computed again.
async fn fetch_children(
    handle: &Handle,
    children: &[ChildInput],
) -> Result<Vec<Arc<Vec<u8>>>, TaskOutcome> {
    let fetches =
        children.iter().map(|c| async move {
            match &c.result {
                ResultRef::Inline(bytes) => Ok(Arc::new(bytes.to_vec())),
                ResultRef::Blob { hash, .. } => handle
                    .fetch_retrying(c.holder, *hash)
                    .await
                    .map_err(|_| TaskOutcome::InputLost {
                        child: c.task,
                        holder: c.holder,
                    }),
            }
        });
    futures::future::join_all(fetches)
        .await
        .into_iter()
        .collect()
}

/// Runs `f` on the blocking pool.
async fn compute<E: std::fmt::Display + Send + 'static>(
    f: impl FnOnce() -> Result<Vec<u8>, E> + Send + 'static,
) -> Result<Vec<u8>, String> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(e) => Err(format!("executor panicked: {e}")),
    }
}

/// A computed result: kept for later jobs under `key` (on the blocking pool: it writes a
/// file), and made available to the job's members.
fn store_result(
    handle: &Handle,
    run: &TaskRun,
    bytes: Vec<u8>,
    key: Option<ReuseKey>,
) -> ResultRef {
    let job = run.job;
    let bytes = Arc::new(match &handle.lies {
        Some(lies) => lies.apply(&handle.id(), &run.spec.op, &job, run.task, bytes),
        None => bytes,
    });
    if let Some(key) = key {
        let (cache, kept) = (handle.reuse().clone(), bytes.clone());
        tokio::task::spawn_blocking(move || cache.put(key, kept));
    }
    publish(handle, job, bytes)
}

/// Small results travel inline in the completion; larger ones stay here as blobs, served to
/// the job's members.
fn publish(handle: &Handle, job: JobId, bytes: Arc<Vec<u8>>) -> ResultRef {
    if bytes.len() <= INLINE_RESULT_MAX {
        ResultRef::Inline(bytes.as_slice().into())
    } else {
        let r = effects::blob_ref(&bytes);
        if let ResultRef::Blob { hash, .. } = r {
            handle.store().put_verified_for(job, hash, bytes);
        }
        r
    }
}

/// Fetches and finalizes a job's root result: the job's final output bytes.
/// The job's output from a root result small enough to finalize on the driver, as a tiny
/// reduce runs there (the hand-off to the blocking pool and back took longer than the work);
/// `None` for a blob to fetch or a large result, which [`collect`] finalizes.
pub fn collect_tiny(
    spec: &shoal_protocol::JobSpec,
    result: &ResultRef,
) -> Option<Result<Vec<u8>, CollectError>> {
    match result {
        ResultRef::Inline(bytes) if bytes.len() <= TINY_REDUCE_BYTES => {
            Some(ops::finalize(&spec.op, bytes).map_err(|e| CollectError::Finalize(e.to_string())))
        }
        _ => None,
    }
}

pub async fn collect(
    handle: &Handle,
    spec: Arc<shoal_protocol::JobSpec>,
    result: ResultRef,
    holder: NodeId,
) -> Result<Vec<u8>, CollectError> {
    let bytes = match result {
        ResultRef::Inline(b) => Arc::new(b.to_vec()),
        ResultRef::Blob { hash, .. } => handle.fetch_retrying(holder, hash).await?,
    };
    compute(move || ops::finalize(&spec.op, &bytes))
        .await
        .map_err(CollectError::Finalize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_protocol::BlobHash;
    use shoal_protocol::job::{Input, JobSpec};

    fn run(op: Operator, work: Work) -> TaskRun {
        TaskRun {
            job: shoal_protocol::JobId([1; 32]),
            task: 0,
            spec: Arc::new(JobSpec {
                op,
                input: Input::Range {
                    start: 0,
                    end: 1,
                    tasks: 1,
                },
                fanin: 4,
                trust: Default::default(),
                sched: Default::default(),
                keep: Default::default(),
                reuse: true,
            }),
            submitter: NodeId([2; 32]),
            workers: Vec::new(),
            work,
        }
    }

    fn range(start: u64, end: u64) -> Work {
        Work::Map {
            source: MapSource::Generated(GeneratedPart::Range { start, end }),
        }
    }

    fn reduce_of(results: Vec<ResultRef>) -> Work {
        let children = results
            .into_iter()
            .enumerate()
            .map(|(i, result)| ChildInput {
                task: i as u32,
                result,
                holder: NodeId([3; 32]),
            })
            .collect();
        Work::Reduce { children }
    }

    #[test]
    fn only_small_generated_parts_and_small_inline_reduces_are_tiny() {
        assert!(is_tiny(&run(Operator::SumSq, range(0, TINY_ITEMS))));
        assert!(!is_tiny(&run(Operator::SumSq, range(0, TINY_ITEMS + 1))));
        let small = ResultRef::Inline(vec![0u8; 16].into());
        assert!(is_tiny(&run(
            Operator::SumSq,
            reduce_of(vec![small.clone(); 4])
        )));
        let blob = ResultRef::Blob {
            hash: BlobHash([4; 32]),
            len: 16,
        };
        assert!(!is_tiny(&run(
            Operator::SumSq,
            reduce_of(vec![small, blob])
        )));
        let big = ResultRef::Inline(vec![0u8; TINY_REDUCE_BYTES / 2 + 1].into());
        assert!(!is_tiny(&run(Operator::SumSq, reduce_of(vec![big; 2]))));
        // A module's cost is its own, whatever the input size.
        let wasm = Operator::Wasm {
            module: BlobHash([5; 32]),
            len: 1,
            limits: Default::default(),
        };
        assert!(!is_tiny(&run(wasm, range(0, 1))));
    }

    #[test]
    fn a_small_inline_root_is_finalized_in_place_and_anything_else_is_left_to_collect() {
        let spec = run(Operator::SumSq, range(0, 1)).spec;
        let root = ops::map(
            &Operator::SumSq,
            MapInput::Generated(GeneratedPart::Range { start: 0, end: 10 }),
        )
        .expect("sumsq maps");
        let inline = ResultRef::Inline(root.clone().into());
        let output = collect_tiny(&spec, &inline).expect("small inline roots finalize here");
        assert_eq!(
            output.expect("a good root finalizes"),
            ops::finalize(&Operator::SumSq, &root).expect("finalizes")
        );
        // A root that does not decode is reported, so that it is computed again.
        let corrupt = ResultRef::Inline(vec![0xff; 3].into());
        assert!(matches!(
            collect_tiny(&spec, &corrupt),
            Some(Err(CollectError::Finalize(_)))
        ));
        let blob = ResultRef::Blob {
            hash: BlobHash([4; 32]),
            len: 16,
        };
        assert!(collect_tiny(&spec, &blob).is_none());
        let big = ResultRef::Inline(vec![0u8; TINY_REDUCE_BYTES + 1].into());
        assert!(collect_tiny(&spec, &big).is_none());
    }
}
