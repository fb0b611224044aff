//! What the state machine asks of its driver, what the driver reports back, and the read-only
//! views it offers for status displays.

use crate::ids::{BlobHash, JobId, NodeId};
use crate::job::{GeneratedPart, JobSpec};
use crate::wire::ResultRef;
use serde::Serialize;
use std::sync::Arc;

/// Work for the driver.
#[derive(Debug, Clone)]
pub enum Effect {
    /// Run a task; report with [`crate::Node::task_finished`].
    Run(TaskRun),
    /// The job's root is done and this node waits for its output (it submitted it, coordinates
    /// it, or keeps a copy of its output): fetch the root result from `holder` (or take it
    /// inline), finalize it, keep the output, and report with [`crate::Node::job_collected`].
    Collect {
        job: JobId,
        spec: Arc<JobSpec>,
        result: ResultRef,
        holder: NodeId,
    },
    /// A job this node submitted failed for good.
    JobFailed { job: JobId, error: String },
    /// Copy piece `piece` of the job's input ([`crate::durable::pieces`]: a chunk with its
    /// manifest, or the module) from one of `holders`, and keep it while the job runs; report
    /// with [`crate::Node::piece_kept`].
    Keep {
        job: JobId,
        piece: u32,
        spec: Arc<JobSpec>,
        holders: Vec<NodeId>,
    },
    /// This node keeps how job `job` ended (its output, collected earlier, or its failure):
    /// the driver keeps it on disk, answers `shoal result` from it, and hands it back after a
    /// restart with [`crate::Node::restore_ending`].
    Ended {
        job: JobId,
        epoch: u64,
        ending: crate::durable::Ending,
    },
    /// A task this node has claimed but not started will read this chunk from `source`:
    /// fetch it ahead (into the store), so that the task finds it at hand when a slot frees.
    Prefetch {
        job: JobId,
        task: u32,
        source: MapSource,
    },
    /// A result this node holds is no longer needed by its job (its parent is done, or the
    /// job is over): the driver may drop it first when memory runs short. Kept while room
    /// allows: if the parent's result is lost, this one is needed again.
    Release { blob: BlobHash },
    /// This node takes part in job `job`, which reads dataset parts it shares: their
    /// manifests (`manifests`) and the chunks they list are the job's, served to its members.
    ServeParts {
        job: JobId,
        manifests: Vec<crate::ids::BlobHash>,
    },
    /// A job whose results may be reused ([`crate::reuse::applies`]) has map tasks: fetch its
    /// manifest from one of `holders`, key each chunk with [`crate::reuse::map_key`], and
    /// report each task whose result this node knows with [`crate::Node::task_reused`], then
    /// say the lookup is over with [`crate::Node::reuse_looked_up`] (until then, or for at most
    /// [`crate::reuse::LOOKUP_MAX_MS`], this node claims none of the job's tasks). Once per
    /// job on each node that tracks it.
    ReuseMaps {
        job: JobId,
        spec: Arc<JobSpec>,
        holders: Vec<NodeId>,
    },
    /// Every child of reduce task `task` is done: if this node knows the result of `key`
    /// ([`crate::reuse::reduce_key`]), report it with [`crate::Node::task_reused`].
    ReuseReduce {
        job: JobId,
        task: u32,
        key: crate::ids::ReuseKey,
    },
    /// A peer's result lost a vote: it is a suspect for `remaining_ms` more. The driver keeps
    /// suspicions across restarts and hands them back with [`crate::Node::restore_suspect`].
    Suspected {
        peer: NodeId,
        lost: u32,
        offences: u32,
        remaining_ms: u64,
    },
}

/// One task to run.
#[derive(Debug, Clone)]
pub struct TaskRun {
    pub job: JobId,
    pub task: u32,
    pub spec: Arc<JobSpec>,
    /// Holds the job's input chunks and module.
    pub submitter: NodeId,
    /// Live peers that completed tasks of this job (most first), and so fetched what the job
    /// shares, such as its module: where to turn when the submitter cannot serve it.
    pub workers: Vec<NodeId>,
    pub work: Work,
}

#[derive(Debug, Clone)]
pub enum Work {
    /// A map task over one input part.
    Map { source: MapSource },
    /// A reduce task over its children's results, in task-index order.
    Reduce { children: Vec<ChildInput> },
}

/// Where a map task's input comes from.
#[derive(Debug, Clone)]
pub enum MapSource {
    /// Computed from the spec alone.
    Generated(GeneratedPart),
    /// A run of the job's map tasks ([`crate::runs`]), each computed from the spec alone
    /// ([`JobSpec::generated_part`]), then reduced in the job's tree up to the run's root.
    Run { tasks: std::ops::Range<u32> },
    /// Chunk `index` of the manifest blob `manifest`; both are held by each of `holders`
    /// (the submitter, and the members that keep copies), best first.
    Chunk {
        manifest: BlobHash,
        index: u32,
        holders: Vec<NodeId>,
    },
}

/// One child result a reduce task combines.
#[derive(Debug, Clone)]
pub struct ChildInput {
    pub task: u32,
    pub result: ResultRef,
    pub holder: NodeId,
}

/// How a task ended.
#[derive(Debug, Clone)]
pub enum TaskOutcome {
    Done(ResultRef),
    /// Done with a result this node knew from an earlier job ([`crate::reuse`]), not computed.
    Reused(ResultRef),
    /// The task itself failed; counts towards the job's attempt limit.
    Failed(String),
    /// The task's input (a chunk, a module) could not be fetched: offered again after a
    /// back-off, without counting an attempt.
    Unavailable(String),
    /// A child's result could not be fetched from its holder: the child must be redone.
    InputLost {
        child: u32,
        holder: NodeId,
    },
}

/// A job's state as seen from one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum JobStatus {
    /// Submitted here and waiting for room in this node's job table; `ahead` submissions go
    /// first.
    Queued {
        ahead: u32,
    },
    Running,
    /// No live node offers a slot: the job waits.
    WaitingForCapacity,
    Complete,
    Failed(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct JobView {
    pub id: JobId,
    pub op: &'static str,
    pub maps: u32,
    pub total: u32,
    pub done: u32,
    /// Of `done`, the map tasks: once all are done, the input is no longer needed (unless a
    /// result is lost).
    pub maps_done: u32,
    pub depth: u32,
    pub submitter: NodeId,
    pub status: JobStatus,
    /// Fresh completions per node: how the work was spread.
    pub workers: Vec<(NodeId, u32)>,
    /// Nodes taking part in the job as this node knows them (itself included).
    pub members: u32,
    /// What this node itself is doing for the job.
    pub local: LocalTasks,
    /// The job's input size in its own unit.
    pub input: InputSize,
    /// Distinct members whose results must agree for each task.
    pub replicas: u8,
    /// Members whose results lost votes in this job, with how many each lost.
    pub suspects: Vec<(NodeId, u32)>,
    /// Its priority (higher first).
    pub priority: i32,
    /// What a node must have to run its tasks.
    pub needs: crate::schedule::Needs,
    /// Who coordinates it now: its submitter, or a successor that took over.
    pub coordinator: NodeId,
    /// How many live members the job wants to hold each piece of its input and its output,
    /// and how many hold the worst-kept piece (a detached submission returns once this reaches
    /// `copies`).
    pub copies: u8,
    pub copies_held: u32,
    /// Tasks settled by a result a member knew from an earlier job rather than computed.
    pub reused: u32,
    /// Input bytes that crossed the network for the job, as its members reported them.
    pub bytes_moved: u64,
    /// Map tasks computed by a node that held their input (the submitter's files, or a part
    /// of a shared dataset): no input moved for them.
    pub at_data: u32,
    /// Its submitter runs it alone, off the wire ([`crate::local`]).
    pub alone: bool,
}

/// A job's size in its own unit: bytes of files, or items of a generated input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct InputSize {
    /// `bytes` or `items`.
    pub unit: &'static str,
    pub size: u64,
}

impl InputSize {
    pub fn of(input: &crate::job::Input) -> Self {
        use crate::job::Input;
        match *input {
            Input::Chunks { bytes, .. } => Self {
                unit: "bytes",
                size: bytes,
            },
            Input::Range { start, end, .. } => Self {
                unit: "items",
                size: end.saturating_sub(start),
            },
            Input::Samples { total, .. } => Self {
                unit: "items",
                size: total,
            },
            Input::Dataset(ref d) => Self {
                unit: "bytes",
                size: d.bytes(),
            },
        }
    }
}

/// A job's tasks that this node runs or whose results it holds: what is lost if it dies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct LocalTasks {
    /// Tasks this node has claimed and not yet finished.
    pub running: u32,
    /// Finished tasks whose result (a blob) only this node holds.
    pub holding: u32,
    /// Of those two, interior reduce tasks (neither a map task nor the root).
    pub interior: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct PeerStatus {
    pub id: NodeId,
    pub slots_total: u32,
    pub slots_free: u32,
    pub cores: u32,
    pub mem_mb: u64,
    pub load_milli: u32,
    pub age_ms: u64,
    /// Lost votes: this node gives it no work until `suspect_ms` from now (0: trusted).
    pub suspect_ms: u64,
    /// Votes it lost, in all.
    pub lost_votes: u32,
    /// The labels it advertises (`shoal node --tag`).
    pub tags: Vec<String>,
}

/// The content address of a blob result, for the driver deciding between inline and blob.
pub fn blob_ref(bytes: &[u8]) -> ResultRef {
    ResultRef::Blob {
        hash: BlobHash::of(bytes),
        len: bytes.len() as u64,
    }
}
