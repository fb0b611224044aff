//! Job specifications: what to compute, over which input, with which reduction fan-in.

use crate::codec;
use crate::ids::{BlobHash, JobId};
use serde::{Deserialize, Serialize};

/// Most map tasks one job may have. Bounds every per-job table on every node.
pub const MAX_TASKS: u32 = 1_000_000;
/// Fan-in bounds for the reduction tree.
pub const FANIN_MIN: u32 = 2;
pub const FANIN_MAX: u32 = 64;
/// Default fan-in.
pub const FANIN_DEFAULT: u32 = 4;
/// Longest literal pattern `grep` accepts.
pub const MAX_PATTERN_BYTES: usize = 1024;
/// Largest `B` for `sumsq A B`: keeps the sum of squares inside u128.
pub const SUMSQ_END_MAX: u64 = 1_000_000_000_000;

/// A built-in operator.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Operator {
    /// Words are maximal runs of alphanumeric characters, lowercased; result word -> count.
    WordCount,
    /// Counts lines containing a literal pattern.
    Grep { pattern: String },
    /// Sum of x*x over a range, as u128.
    SumSq,
    /// Monte Carlo estimate of pi with per-task seeds from the job id and task index.
    Pi,
    /// A WebAssembly module (a blob held by the submitter) run in a sandbox with these limits.
    Wasm {
        module: BlobHash,
        len: u64,
        limits: WasmLimits,
    },
}

/// Sandbox limits of a WebAssembly job; part of the spec, so every worker enforces the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WasmLimits {
    /// Fuel (roughly, WebAssembly instructions) per call of `shoal_map` or `shoal_reduce`.
    pub fuel: u64,
    /// Wall-clock deadline per call.
    pub deadline_ms: u64,
    /// Linear memory cap.
    pub memory_bytes: u64,
    /// Largest output of one call.
    pub output_bytes: u64,
}

impl Default for WasmLimits {
    fn default() -> Self {
        Self {
            fuel: 10_000_000_000,
            deadline_ms: 30_000,
            memory_bytes: 256 << 20,
            output_bytes: 64 << 20,
        }
    }
}

/// Largest WebAssembly module accepted.
pub const MAX_MODULE_BYTES: u64 = 64 << 20;

impl Operator {
    /// The operator's name as typed on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            Operator::WordCount => "wordcount",
            Operator::Grep { .. } => "grep",
            Operator::SumSq => "sumsq",
            Operator::Pi => "pi",
            Operator::Wasm { .. } => "wasm",
        }
    }

    /// Whether running the operator on a byte of input costs less than sending that byte to
    /// another member: a literal search runs at several GB/s a core, faster than any LAN
    /// moves the byte and faster than the sender encrypts it, so its tasks stay where the files
    /// are ([`crate::locality::kept_at_submitter`]). A word count (a few hundred MB/s a core)
    /// and WebAssembly (unknown cost) are worth sending to idle members.
    pub fn cheaper_than_sending(&self) -> bool {
        matches!(self, Operator::Grep { .. })
    }
}

/// Names of the built-in jobs, for error messages and help.
pub const BUILTIN_JOBS: &[&str] = &["wordcount", "grep", "sumsq", "pi"];

/// A job's input: chunks of files, or a generated input split into sub-ranges.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Input {
    /// Line-aligned file chunks listed in a manifest blob (a [`Manifest`]).
    Chunks {
        manifest: BlobHash,
        chunks: u32,
        bytes: u64,
    },
    /// The integers in `[start, end)`, split into `tasks` sub-ranges.
    Range { start: u64, end: u64, tasks: u32 },
    /// `total` samples split into `tasks` parts.
    Samples { total: u64, tasks: u32 },
    /// The chunks of a shared dataset's parts, read where they are held (`dataset:NAME`).
    Dataset(crate::dataset::Dataset),
}

/// The list of chunks of a file input, stored as a blob held by the submitter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub chunks: Vec<ChunkRef>,
}

/// One content-addressed input chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    pub hash: BlobHash,
    pub len: u64,
}

/// What a job computes. Its canonical encoding hashes to the [`JobId`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct JobSpec {
    pub op: Operator,
    pub input: Input,
    pub fanin: u32,
    /// How far a result is taken on a peer's word.
    pub trust: Trust,
    /// Its priority and what a node needs to run it.
    pub sched: crate::schedule::Schedule,
    /// How many members keep its input and its output (so that it outlives its submitter).
    pub keep: crate::durable::Durability,
    /// Whether a task whose result a member computed before (for any job) takes that result
    /// instead of being computed again (see [`crate::reuse`]); `--no-reuse` turns it off.
    pub reuse: bool,
}

/// How many members must agree on each task's result (see [`crate::quorum`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Trust {
    /// Distinct members whose results must agree, 1 to [`crate::quorum::MAX_REPLICAS`].
    pub replicas: u8,
    /// With one replica: the share of tasks (parts per million) that the submitter has
    /// checked by a second member, chosen by a secret only it knows, after the first result
    /// is in (so no worker can tell which of its results will be checked).
    pub verify_ppm: u32,
}

impl Trust {
    /// Checks the replica count and the spot-check fraction.
    pub fn validate(&self) -> Result<(), SpecError> {
        if !(1..=crate::quorum::MAX_REPLICAS).contains(&self.replicas) {
            return Err(SpecError::Replicas(self.replicas));
        }
        if self.verify_ppm > 1_000_000 {
            return Err(SpecError::VerifyFraction);
        }
        if self.verify_ppm > 0 && self.replicas > 1 {
            return Err(SpecError::VerifyWithReplicas);
        }
        Ok(())
    }
}

impl Default for Trust {
    fn default() -> Self {
        Self {
            replicas: 1,
            verify_ppm: 0,
        }
    }
}

/// Why a job spec is refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    #[error("fan-in {0} is outside {FANIN_MIN}..={FANIN_MAX}")]
    Fanin(u32),
    #[error("the job has {0} tasks; it needs between 1 and {MAX_TASKS}")]
    TaskCount(u64),
    #[error("operator {op} cannot run over this input (it needs {needs})")]
    Mismatch {
        op: &'static str,
        needs: &'static str,
    },
    #[error("empty range: start {start} is not below end {end}")]
    EmptyRange { start: u64, end: u64 },
    #[error("sumsq end {0} is above {SUMSQ_END_MAX}; the sum would not fit in u128")]
    SumSqTooLarge(u64),
    #[error("pi needs at least one sample")]
    NoSamples,
    #[error("grep pattern is {0} bytes; the limit is {MAX_PATTERN_BYTES}")]
    PatternTooLong(usize),
    #[error("more tasks ({tasks}) than items ({items}) in the generated input")]
    MoreTasksThanItems { tasks: u32, items: u64 },
    #[error("wasm module of {0} bytes is empty or over the limit of {MAX_MODULE_BYTES} bytes")]
    ModuleSize(u64),
    #[error("wasm limit {0} must be above zero")]
    ZeroLimit(&'static str),
    #[error("wasm output cap {0} is above the blob limit")]
    OutputCap(u64),
    #[error("replicas {0} is outside 1..={max}", max = crate::quorum::MAX_REPLICAS)]
    Replicas(u8),
    #[error("the verify fraction must be between 0 and 1")]
    VerifyFraction,
    #[error("copies {0} is outside 1..={max}", max = crate::durable::MAX_COPIES)]
    Copies(u8),
    #[error("needs: {0}")]
    Needs(#[from] crate::schedule::TagError),
    #[error("{0}")]
    Dataset(#[from] crate::dataset::DatasetError),
    #[error(
        "a verify fraction applies to jobs of one replica: every task of a job with more is checked already"
    )]
    VerifyWithReplicas,
}

impl JobSpec {
    /// A spec of `op` over `input` with the defaults of `shoal submit`: one replica, no spot
    /// checks, priority 0 and no needs, one copy, results reused.
    pub fn new(op: Operator, input: Input, fanin: u32) -> Self {
        Self {
            op,
            input,
            fanin,
            trust: Trust::default(),
            sched: Default::default(),
            keep: Default::default(),
            reuse: true,
        }
    }

    /// The job's id: blake3 of its canonical encoding.
    pub fn id(&self) -> JobId {
        JobId(*blake3::hash(&codec::encode_message(self)).as_bytes())
    }

    /// Number of map tasks (leaves of the reduction tree).
    pub fn map_tasks(&self) -> u32 {
        match self.input {
            Input::Chunks { chunks, .. } => chunks,
            Input::Range { tasks, .. } | Input::Samples { tasks, .. } => tasks,
            Input::Dataset(ref d) => u32::try_from(d.chunks()).unwrap_or(u32::MAX),
        }
    }

    /// How the map tasks group into runs claimed as one ([`crate::runs`]).
    pub fn runs(&self) -> crate::runs::Runs {
        crate::runs::Runs::of(self)
    }

    /// The state machine's reduction tree: its leaves are the runs (the map tasks themselves
    /// when they do not group).
    pub fn tree(&self) -> crate::tree::Tree {
        crate::tree::Tree::new(self.runs().leaves(), self.fanin)
    }

    /// The reduction tree over every map task of the job: what its task counts describe
    /// (the same as [`JobSpec::tree`] unless its tasks run in runs).
    pub fn task_tree(&self) -> crate::tree::Tree {
        crate::tree::Tree::new(self.map_tasks(), self.fanin)
    }

    /// Whether the input is chunks of files (a submission's, or a dataset's).
    pub fn reads_chunks(&self) -> bool {
        matches!(self.input, Input::Chunks { .. } | Input::Dataset(_))
    }

    /// The manifest that lists map task `task`'s chunk, and the chunk's index in it (`None`
    /// for a generated input, or a task out of range).
    pub fn chunk_of(&self, task: u32) -> Option<(BlobHash, u32)> {
        match &self.input {
            Input::Chunks {
                manifest, chunks, ..
            } => (task < *chunks).then_some((*manifest, task)),
            Input::Dataset(d) => d
                .locate(task)
                .map(|(part, index)| (d.parts[part].manifest, index)),
            Input::Range { .. } | Input::Samples { .. } => None,
        }
    }

    /// Input bytes in all (for a generated input, none).
    pub fn input_bytes(&self) -> u64 {
        match &self.input {
            Input::Chunks { bytes, .. } => *bytes,
            Input::Dataset(d) => d.bytes(),
            Input::Range { .. } | Input::Samples { .. } => 0,
        }
    }

    /// Checks everything a peer must check before it spends anything on the job.
    pub fn validate(&self) -> Result<(), SpecError> {
        if !(FANIN_MIN..=FANIN_MAX).contains(&self.fanin) {
            return Err(SpecError::Fanin(self.fanin));
        }
        self.trust.validate()?;
        self.keep.validate()?;
        crate::schedule::check_tags(&self.sched.needs.tags)?;
        if let Input::Dataset(d) = &self.input {
            d.validate()?;
            if d.chunks() > u64::from(MAX_TASKS) {
                return Err(SpecError::TaskCount(d.chunks()));
            }
        }
        let tasks = self.map_tasks();
        if tasks == 0 || tasks > MAX_TASKS {
            return Err(SpecError::TaskCount(tasks.into()));
        }
        let mismatch = |needs| SpecError::Mismatch {
            op: self.op.name(),
            needs,
        };
        match (&self.op, &self.input) {
            (Operator::WordCount, Input::Chunks { .. } | Input::Dataset(_)) => Ok(()),
            (Operator::Grep { pattern }, Input::Chunks { .. } | Input::Dataset(_)) => {
                if pattern.len() > MAX_PATTERN_BYTES {
                    Err(SpecError::PatternTooLong(pattern.len()))
                } else {
                    Ok(())
                }
            }
            (Operator::SumSq, &Input::Range { start, end, tasks }) => {
                if start >= end {
                    Err(SpecError::EmptyRange { start, end })
                } else if end > SUMSQ_END_MAX {
                    Err(SpecError::SumSqTooLarge(end))
                } else if u64::from(tasks) > end - start {
                    Err(SpecError::MoreTasksThanItems {
                        tasks,
                        items: end - start,
                    })
                } else {
                    Ok(())
                }
            }
            (Operator::Pi, &Input::Samples { total, tasks }) => {
                if total == 0 {
                    Err(SpecError::NoSamples)
                } else if u64::from(tasks) > total {
                    Err(SpecError::MoreTasksThanItems {
                        tasks,
                        items: total,
                    })
                } else {
                    Ok(())
                }
            }
            (Operator::Wasm { len, limits, .. }, input) => {
                if *len == 0 || *len > MAX_MODULE_BYTES {
                    return Err(SpecError::ModuleSize(*len));
                }
                for (name, v) in [
                    ("fuel", limits.fuel),
                    ("deadline", limits.deadline_ms),
                    ("memory", limits.memory_bytes),
                    ("output", limits.output_bytes),
                ] {
                    if v == 0 {
                        return Err(SpecError::ZeroLimit(name));
                    }
                }
                if limits.output_bytes > crate::codec::MAX_BLOB_BYTES as u64 {
                    return Err(SpecError::OutputCap(limits.output_bytes));
                }
                match *input {
                    Input::Chunks { .. } | Input::Dataset(_) => Ok(()),
                    Input::Range { start, end, tasks }
                        if start < end && u64::from(tasks) <= end - start =>
                    {
                        Ok(())
                    }
                    Input::Range { start, end, .. } if start >= end => {
                        Err(SpecError::EmptyRange { start, end })
                    }
                    Input::Range { start, end, tasks } => Err(SpecError::MoreTasksThanItems {
                        tasks,
                        items: end - start,
                    }),
                    Input::Samples { .. } => Err(mismatch("files or a range")),
                }
            }
            (Operator::WordCount | Operator::Grep { .. }, _) => Err(mismatch("files")),
            (Operator::SumSq, _) => Err(mismatch("a range A B")),
            (Operator::Pi, _) => Err(mismatch("a sample count")),
        }
    }

    /// The generated input of map task `index`, or `None` for file inputs.
    pub fn generated_part(&self, index: u32) -> Option<GeneratedPart> {
        self.generated_parts(index..index + 1).next()
    }

    /// The generated inputs of map tasks `tasks`, in order (none for file inputs); the job id
    /// that seeds pi's samples is hashed once for them all.
    pub fn generated_parts(
        &self,
        tasks: std::ops::Range<u32>,
    ) -> impl Iterator<Item = GeneratedPart> + '_ {
        let id = matches!(self.input, Input::Samples { .. }).then(|| self.id());
        tasks.map_while(move |index| self.part_of(id.as_ref(), index))
    }

    fn part_of(&self, id: Option<&JobId>, index: u32) -> Option<GeneratedPart> {
        if index >= self.map_tasks() {
            return None;
        }
        match self.input {
            Input::Range { start, end, tasks } => {
                let (a, b) = split_even(end - start, tasks, index);
                Some(GeneratedPart::Range {
                    start: start + a,
                    end: start + b,
                })
            }
            Input::Samples { total, tasks } => {
                let (a, b) = split_even(total, tasks, index);
                Some(GeneratedPart::Samples {
                    count: b - a,
                    seed: task_seed(id?, index),
                })
            }
            Input::Chunks { .. } | Input::Dataset(_) => None,
        }
    }
}

/// One map task's share of a generated input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GeneratedPart {
    Range { start: u64, end: u64 },
    Samples { count: u64, seed: u64 },
}

/// Splits `len` items into `parts` nearly equal consecutive parts and returns part `index` as
/// offsets `[a, b)`. Computed in u128 so that no product overflows.
pub fn split_even(len: u64, parts: u32, index: u32) -> (u64, u64) {
    let at = |i: u32| (u128::from(len) * u128::from(i) / u128::from(parts)) as u64;
    (at(index), at(index + 1))
}

/// The seed of a sampling task: derived from the job id and the task index, so every run of the
/// same job draws the same samples wherever the task runs.
pub fn task_seed(job: &JobId, index: u32) -> u64 {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&job.0);
    hasher.update(&index.to_le_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&hasher.finalize().as_bytes()[..8]);
    u64::from_le_bytes(b)
}

/// A sensible default number of map tasks for a generated input of `items` items: about ten
/// million items per task, at least one, at most 4096, never more than there are items.
pub fn default_generated_tasks(items: u64) -> u32 {
    let per_task = 10_000_000u64;
    let tasks = items.div_ceil(per_task).clamp(1, 4096);
    tasks.min(items.max(1)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sumsq(start: u64, end: u64, tasks: u32) -> JobSpec {
        JobSpec {
            op: Operator::SumSq,
            input: Input::Range { start, end, tasks },
            fanin: 4,
            trust: Default::default(),
            sched: Default::default(),
            keep: Default::default(),
            reuse: true,
        }
    }

    #[test]
    fn the_same_spec_always_has_the_same_id() {
        assert_eq!(sumsq(0, 10, 2).id(), sumsq(0, 10, 2).id());
        assert_ne!(sumsq(0, 10, 2).id(), sumsq(0, 11, 2).id());
    }

    #[test]
    fn sub_ranges_cover_the_range_exactly_once() {
        let spec = sumsq(5, 1_000_003, 7);
        let mut next = 5;
        for i in 0..7 {
            match spec.generated_part(i) {
                Some(GeneratedPart::Range { start, end }) => {
                    assert_eq!(start, next);
                    next = end;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(next, 1_000_003);
    }

    #[test]
    fn validation_refuses_bad_specs() {
        assert_eq!(
            sumsq(3, 3, 1).validate(),
            Err(SpecError::EmptyRange { start: 3, end: 3 })
        );
        assert!(matches!(
            sumsq(0, 2, 3).validate(),
            Err(SpecError::MoreTasksThanItems { .. })
        ));
        let mut spec = sumsq(0, 10, 1);
        spec.fanin = 1;
        assert_eq!(spec.validate(), Err(SpecError::Fanin(1)));
        spec.fanin = 4;
        spec.op = Operator::WordCount;
        assert!(matches!(spec.validate(), Err(SpecError::Mismatch { .. })));
    }
}
