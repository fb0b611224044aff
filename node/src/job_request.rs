//! What a user asks for (`wordcount ./corpus`, `sumsq 0 1000000`), checked before anything is
//! sent anywhere, and turned into a [`JobSpec`] by the node that submits it.

use crate::input::cache::InputCache;
use crate::input::{self, InputError};
use crate::store::BlobStore;
use serde::{Deserialize, Serialize};
use shoal_protocol::job::{self, BUILTIN_JOBS, MAX_MODULE_BYTES, WasmLimits};
use shoal_protocol::{Input, JobSpec, Operator, Trust};
use std::path::{Path, PathBuf};

/// A validated job request, as it travels from the CLI to the node's API.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobRequest {
    pub kind: JobKind,
    pub fanin: u32,
    /// File inputs: target bytes per chunk; `None`: sized to the input
    /// ([`crate::input::auto_chunk_size`]).
    pub chunk_size: Option<u64>,
    /// Generated inputs: number of map tasks (default: about ten million items per task).
    pub tasks: Option<u32>,
    /// File inputs: globs of files and directories to leave out (see
    /// [`crate::input::walk::Excludes`]).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Distinct members whose results must agree for each task (1 to 5).
    #[serde(default = "one_replica")]
    pub replicas: u8,
    /// With one replica: the fraction of tasks (0 to 1) checked by a second member.
    #[serde(default)]
    pub verify_fraction: f64,
    /// Higher first (default 0).
    #[serde(default)]
    pub priority: i32,
    /// What a node must have to run the job's tasks.
    #[serde(default)]
    pub needs: shoal_protocol::schedule::Needs,
    /// Live members that keep each piece of the input and the output (1 to 8; default 1).
    #[serde(default = "one_copy")]
    pub copies: u8,
    /// The submitter leaves once the input is held (`shoal submit --detach`): the copies are
    /// all made on other members.
    #[serde(default)]
    pub detach: bool,
    /// Compute every task even where a member knows its result from an earlier job
    /// (`--no-reuse`; see [`shoal_protocol::reuse`]).
    #[serde(default)]
    pub no_reuse: bool,
}

fn one_copy() -> u8 {
    1
}

fn one_replica() -> u8 {
    1
}

/// A spec ready to submit, and what the user should hear about its input.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub spec: JobSpec,
    /// Special files passed over (FIFOs, sockets, devices).
    pub skipped: Vec<PathBuf>,
}

impl From<JobSpec> for Prepared {
    fn from(spec: JobSpec) -> Self {
        Self {
            spec,
            skipped: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum JobKind {
    WordCount {
        paths: Vec<PathBuf>,
    },
    Grep {
        pattern: String,
        paths: Vec<PathBuf>,
    },
    SumSq {
        start: u64,
        end: u64,
    },
    Pi {
        samples: u64,
    },
    /// A WebAssembly module over files or a generated range.
    Wasm {
        module: PathBuf,
        paths: Vec<PathBuf>,
        range: Option<(u64, u64)>,
        limits: WasmLimits,
    },
}

/// A request the user must fix; the CLI exits with code 2.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error("unknown job '{0}'; the jobs are: {jobs}", jobs = BUILTIN_JOBS.join(", "))]
    UnknownJob(String),
    #[error("{job}: {msg}\nusage: shoal submit {usage}")]
    Args {
        job: &'static str,
        msg: String,
        usage: &'static str,
    },
    #[error("{0}: no such file or directory")]
    MissingPath(PathBuf),
    #[error("invalid job: {0}")]
    Spec(#[from] job::SpecError),
    #[error("no job given; the jobs are: {jobs} (or --wasm FILE INPUTS...)", jobs = BUILTIN_JOBS.join(", "))]
    NoJob,
    #[error("{path}: {error}")]
    Module { path: PathBuf, error: String },
    #[error("--wasm needs input paths or --range START END, not both")]
    WasmInputs,
    #[error("{0}")]
    Exclude(String),
    #[error("{0}")]
    Needs(String),
    #[error(
        "--chunk-size {0} is outside {min}..={max} bytes (4 KiB to 64 MiB): a chunk is one task, and smaller chunks make more tasks than work",
        min = input::MIN_CHUNK_SIZE,
        max = input::MAX_CHUNK_SIZE
    )]
    ChunkSize(u64),
}

/// Refuses a chunk size outside [`input::MIN_CHUNK_SIZE`]`..=`[`input::MAX_CHUNK_SIZE`]
/// (`None` is the default, always fine).
fn check_chunk_size(chunk_size: Option<u64>) -> Result<(), UsageError> {
    match chunk_size {
        Some(n) if !(input::MIN_CHUNK_SIZE..=input::MAX_CHUNK_SIZE).contains(&n) => {
            Err(UsageError::ChunkSize(n))
        }
        _ => Ok(()),
    }
}

/// Why a request could not be turned into a job spec on the node. Nothing was submitted.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// An input file could not be read or cut into chunks: the message names the file.
    #[error(transparent)]
    Input(#[from] InputError),
    /// The request itself is wrong (a module that is not valid): fix it and submit again.
    #[error(transparent)]
    Usage(#[from] UsageError),
    /// The spec the inputs make is refused by the protocol's validation.
    #[error("invalid job: {0}")]
    Spec(#[from] job::SpecError),
    /// Preparing the input crashed (a bug in the node): the message says where.
    #[error("input preparation panicked: {0}")]
    Panicked(String),
}

fn args_error(job: &'static str, usage: &'static str, msg: impl Into<String>) -> UsageError {
    UsageError::Args {
        job,
        msg: msg.into(),
        usage,
    }
}

fn number(job: &'static str, usage: &'static str, what: &str, s: &str) -> Result<u64, UsageError> {
    let cleaned: String = s.chars().filter(|c| *c != '_').collect();
    cleaned.parse().map_err(|_| {
        args_error(
            job,
            usage,
            format!("{what} '{s}' is not a non-negative integer"),
        )
    })
}

/// What stands for a shared dataset among a job's inputs: `dataset:NAME`. A file of that name
/// is given as `./dataset:NAME`.
pub const DATASET_PREFIX: &str = "dataset:";

fn paths(
    job: &'static str,
    usage: &'static str,
    args: &[String],
) -> Result<Vec<PathBuf>, UsageError> {
    if args.is_empty() {
        return Err(args_error(job, usage, "no input paths given"));
    }
    if let Some(name) = args.iter().find_map(|a| a.strip_prefix(DATASET_PREFIX)) {
        if args.len() > 1 {
            return Err(args_error(
                job,
                usage,
                "a dataset:NAME input stands alone (a job reads one dataset, or files)",
            ));
        }
        shoal_protocol::dataset::check_name(name)
            .map_err(|e| args_error(job, usage, e.to_string()))?;
        // Kept as given: canonical paths are absolute, so they never take this form.
        return Ok(vec![PathBuf::from(&args[0])]);
    }
    args.iter()
        .map(|a| {
            let p = PathBuf::from(a);
            std::fs::canonicalize(&p).map_err(|_| UsageError::MissingPath(p))
        })
        .collect()
}

impl JobRequest {
    /// Parses `JOB ARGS...` and checks it: paths exist (made absolute), numbers parse, ranges
    /// are well formed, and the spec it will become passes the protocol's validation.
    pub fn parse(
        job: &str,
        args: &[String],
        fanin: u32,
        chunk_size: Option<u64>,
        tasks: Option<u32>,
    ) -> Result<Self, UsageError> {
        let kind = match job {
            "wordcount" => {
                const U: &str = "wordcount PATH...";
                JobKind::WordCount {
                    paths: paths("wordcount", U, args)?,
                }
            }
            "grep" => {
                const U: &str = "grep PATTERN PATH...";
                let Some((pattern, rest)) = args.split_first() else {
                    return Err(args_error("grep", U, "no pattern given"));
                };
                JobKind::Grep {
                    pattern: pattern.clone(),
                    paths: paths("grep", U, rest)?,
                }
            }
            "sumsq" => {
                const U: &str = "sumsq A B   (sum of x*x for A <= x < B)";
                let [a, b] = args else {
                    return Err(args_error(
                        "sumsq",
                        U,
                        format!("expected 2 arguments, got {}", args.len()),
                    ));
                };
                let start = number("sumsq", U, "A", a)?;
                let end = number("sumsq", U, "B", b)?;
                if start >= end {
                    return Err(args_error(
                        "sumsq",
                        U,
                        format!("malformed range: A ({start}) must be below B ({end})"),
                    ));
                }
                JobKind::SumSq { start, end }
            }
            "pi" => {
                const U: &str = "pi SAMPLES";
                let [n] = args else {
                    return Err(args_error(
                        "pi",
                        U,
                        format!("expected 1 argument, got {}", args.len()),
                    ));
                };
                JobKind::Pi {
                    samples: number("pi", U, "SAMPLES", n)?,
                }
            }
            other => return Err(UsageError::UnknownJob(other.to_string())),
        };
        let request = Self {
            kind,
            fanin,
            chunk_size,
            tasks,
            exclude: Vec::new(),
            replicas: 1,
            verify_fraction: 0.0,
            priority: 0,
            needs: Default::default(),
            copies: 1,
            detach: false,
            no_reuse: false,
        };
        if request.dataset().is_some() && chunk_size.is_some() {
            return Err(UsageError::Args {
                job: "dataset",
                msg: "--chunk-size does not apply to dataset:NAME (each holder chunks its part)"
                    .into(),
                usage: "JOB [ARGS] dataset:NAME",
            });
        }
        // Check what can be checked without reading the files.
        if let Some(spec) = request.generated_spec() {
            spec.validate()?;
        } else if !(job::FANIN_MIN..=job::FANIN_MAX).contains(&fanin) {
            return Err(job::SpecError::Fanin(fanin).into());
        } else {
            check_chunk_size(chunk_size)?;
        }
        Ok(request)
    }

    /// A WebAssembly job: `module` over `inputs` (paths) or a generated `range`. The module is
    /// read and checked against the contract here, so a bad module is refused before anything
    /// is submitted.
    pub fn wasm(
        module: &Path,
        inputs: &[String],
        range: Option<(u64, u64)>,
        limits: WasmLimits,
        fanin: u32,
        chunk_size: Option<u64>,
        tasks: Option<u32>,
    ) -> Result<Self, UsageError> {
        if range.is_none() {
            check_chunk_size(chunk_size)?;
        }
        let module = std::fs::canonicalize(module)
            .map_err(|_| UsageError::MissingPath(module.to_path_buf()))?;
        let bytes = read_module(&module)?;
        if inputs.is_empty() == range.is_none() {
            return Err(UsageError::WasmInputs);
        }
        let paths = if range.is_some() {
            Vec::new()
        } else {
            paths(
                "wasm",
                "--wasm FILE PATH... | --wasm FILE --range START END",
                inputs,
            )?
        };
        let request = Self {
            kind: JobKind::Wasm {
                module,
                paths,
                range,
                limits,
            },
            fanin,
            chunk_size,
            tasks,
            exclude: Vec::new(),
            replicas: 1,
            verify_fraction: 0.0,
            priority: 0,
            needs: Default::default(),
            copies: 1,
            detach: false,
            no_reuse: false,
        };
        // Check the limits, the fan-in and a range input now: a usage error, not a failed job.
        let input = match range {
            Some((start, end)) => Input::Range {
                start,
                end,
                tasks: request.range_tasks(start, end),
            },
            None => Input::Chunks {
                manifest: shoal_protocol::BlobHash::default(),
                chunks: 1,
                bytes: 0,
            },
        };
        JobSpec {
            op: Operator::Wasm {
                module: shoal_protocol::BlobHash::of(&bytes),
                len: bytes.len() as u64,
                limits,
            },
            input,
            fanin,
            trust: request.trust(),
            sched: request.sched(),
            keep: request.keep(),
            reuse: !request.no_reuse,
        }
        .validate()?;
        Ok(request)
    }

    /// How far results are taken on a member's word. A fraction outside 0..=1 (or not a
    /// number) becomes one the spec's validation refuses.
    pub fn trust(&self) -> Trust {
        let f = self.verify_fraction;
        let verify_ppm = if (0.0..=1.0).contains(&f) {
            (f * 1e6).round() as u32
        } else {
            u32::MAX
        };
        Trust {
            replicas: self.replicas,
            verify_ppm,
        }
    }

    /// How many members keep the job's input and output, as the spec carries it.
    pub fn keep(&self) -> shoal_protocol::durable::Durability {
        shoal_protocol::durable::Durability {
            copies: self.copies,
            detached: self.detach,
        }
    }

    /// The job's priority and needs, as the spec carries them.
    pub fn sched(&self) -> shoal_protocol::schedule::Schedule {
        shoal_protocol::schedule::Schedule {
            priority: self.priority,
            needs: self.needs.clone(),
        }
    }

    /// Sets the priority and the needs (as typed: `tag=NAME`, `mem=SIZE`) and checks them.
    pub fn with_sched(mut self, priority: i32, needs: &[String]) -> Result<Self, UsageError> {
        self.priority = priority;
        self.needs = crate::needs::parse(needs).map_err(UsageError::Needs)?;
        Ok(self)
    }

    /// Sets how many members keep the job's input and output, and checks it.
    pub fn with_copies(mut self, copies: u8) -> Result<Self, UsageError> {
        self.copies = copies;
        self.keep().validate()?;
        Ok(self)
    }

    /// Sets the trust options and checks them (a usage error, not a failed job).
    pub fn with_trust(mut self, replicas: u8, verify_fraction: f64) -> Result<Self, UsageError> {
        self.replicas = replicas;
        self.verify_fraction = verify_fraction;
        self.trust().validate()?;
        Ok(self)
    }

    fn range_tasks(&self, start: u64, end: u64) -> u32 {
        self.tasks
            .unwrap_or_else(|| job::default_generated_tasks(end.saturating_sub(start)))
    }

    /// The spec of a generated-input job (no files to read).
    pub fn generated_spec(&self) -> Option<JobSpec> {
        let (op, input) = match self.kind {
            JobKind::SumSq { start, end } => (
                Operator::SumSq,
                Input::Range {
                    start,
                    end,
                    tasks: self
                        .tasks
                        .unwrap_or_else(|| job::default_generated_tasks(end.saturating_sub(start))),
                },
            ),
            JobKind::Pi { samples } => (
                Operator::Pi,
                Input::Samples {
                    total: samples,
                    tasks: self
                        .tasks
                        .unwrap_or_else(|| job::default_generated_tasks(samples)),
                },
            ),
            _ => return None,
        };
        Some(JobSpec {
            op,
            input,
            fanin: self.fanin,
            trust: self.trust(),
            sched: self.sched(),
            keep: self.keep(),
            reuse: !self.no_reuse,
        })
    }

    /// The dataset this request reads (`dataset:NAME`), if it reads one.
    pub fn dataset(&self) -> Option<&str> {
        let paths = match &self.kind {
            JobKind::WordCount { paths }
            | JobKind::Grep { paths, .. }
            | JobKind::Wasm { paths, .. } => paths,
            JobKind::SumSq { .. } | JobKind::Pi { .. } => return None,
        };
        match paths.as_slice() {
            [only] => only.to_str()?.strip_prefix(DATASET_PREFIX),
            _ => None,
        }
    }

    /// Builds the spec, chunking file inputs into `store` (through `cache`: unchanged files
    /// are not read again), or reading `dataset` (the one [`JobRequest::dataset`] names, as
    /// the mesh shares it now). Blocking: reads the input files.
    pub fn into_spec(
        self,
        store: &BlobStore,
        cache: &InputCache,
        dataset: Option<shoal_protocol::dataset::Dataset>,
    ) -> Result<Prepared, PrepareError> {
        if let Some(spec) = self.generated_spec() {
            spec.validate()?;
            return Ok(spec.into());
        }
        let (op, paths) = match self.kind.clone() {
            JobKind::WordCount { paths } => (Operator::WordCount, paths),
            JobKind::Grep { pattern, paths } => (Operator::Grep { pattern }, paths),
            JobKind::Wasm {
                module,
                paths,
                range,
                limits,
            } => {
                let bytes = read_module(&module)?;
                let op = Operator::Wasm {
                    len: bytes.len() as u64,
                    module: store.put(bytes),
                    limits,
                };
                if let Some((start, end)) = range {
                    let spec = JobSpec {
                        op,
                        input: Input::Range {
                            start,
                            end,
                            tasks: self.range_tasks(start, end),
                        },
                        fanin: self.fanin,
                        trust: self.trust(),
                        sched: self.sched(),
                        keep: self.keep(),
                        reuse: !self.no_reuse,
                    };
                    spec.validate()?;
                    return Ok(spec.into());
                }
                (op, paths)
            }
            JobKind::SumSq { .. } | JobKind::Pi { .. } => {
                unreachable!("generated kinds are handled above")
            }
        };
        let (input, skipped) = match (self.dataset(), dataset) {
            (Some(_), Some(d)) => (Input::Dataset(d), Vec::new()),
            (Some(name), None) => {
                return Err(PrepareError::Spec(
                    shoal_protocol::dataset::DatasetError::Unknown(name.to_string()).into(),
                ));
            }
            (None, _) => {
                // A request from the API skipped `parse`.
                check_chunk_size(self.chunk_size)?;
                let started = std::time::Instant::now();
                let listing = input::list_files(&paths, &self.exclude)?;
                let listed = started.elapsed();
                let prepared = input::prepare(&listing, self.chunk_size, store, cache)?;
                tracing::debug!(
                    files = listing.files.len(),
                    list_ms = listed.as_millis() as u64,
                    prepare_ms = (started.elapsed() - listed).as_millis() as u64,
                    cached_units = prepared.cached_units,
                    units = prepared.units,
                    "inputs prepared"
                );
                let input = Input::Chunks {
                    manifest: prepared.manifest,
                    chunks: prepared.chunks,
                    bytes: prepared.bytes,
                };
                (input, prepared.skipped)
            }
        };
        let spec = JobSpec {
            op,
            input,
            fanin: self.fanin,
            trust: self.trust(),
            sched: self.sched(),
            keep: self.keep(),
            reuse: !self.no_reuse,
        };
        spec.validate()?;
        Ok(Prepared { spec, skipped })
    }
}

/// Reads a module file and checks it against the contract (docs/wasm-abi.md).
fn read_module(path: &Path) -> Result<Vec<u8>, UsageError> {
    let error = |error: String| UsageError::Module {
        path: path.to_path_buf(),
        error,
    };
    let len = std::fs::metadata(path)
        .map_err(|e| error(e.to_string()))?
        .len();
    if len == 0 || len > MAX_MODULE_BYTES {
        return Err(error(format!(
            "{len} bytes; a module must have 1 to {MAX_MODULE_BYTES} bytes"
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| error(e.to_string()))?;
    crate::wasm::sandbox()
        .validate(&bytes)
        .map_err(|e| error(e.to_string()))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn unknown_jobs_list_the_known_ones() {
        let e = JobRequest::parse("wordcout", &[], 4, Some(1), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("wordcount, grep, sumsq, pi"), "{e}");
    }

    #[test]
    fn malformed_ranges_and_missing_paths_are_usage_errors() {
        assert!(JobRequest::parse("sumsq", &s(&["5", "2"]), 4, Some(1), None).is_err());
        assert!(JobRequest::parse("sumsq", &s(&["x", "2"]), 4, Some(1), None).is_err());
        assert!(matches!(
            JobRequest::parse("wordcount", &s(&["/no/such/path"]), 4, Some(1), None),
            Err(UsageError::MissingPath(_))
        ));
        assert!(JobRequest::parse("sumsq", &s(&["0", "10"]), 1, Some(1), None).is_err());
    }

    #[test]
    fn a_chunk_size_outside_its_bounds_is_refused_for_file_inputs_only() {
        let here = s(&["."]);
        for bad in [0, 1, input::MIN_CHUNK_SIZE - 1, input::MAX_CHUNK_SIZE + 1] {
            let e = JobRequest::parse("wordcount", &here, 4, Some(bad), None).unwrap_err();
            assert!(matches!(e, UsageError::ChunkSize(n) if n == bad), "{e}");
            assert!(e.to_string().contains("4 KiB to 64 MiB"), "{e}");
        }
        for good in [input::MIN_CHUNK_SIZE, 1 << 20, input::MAX_CHUNK_SIZE] {
            assert!(JobRequest::parse("wordcount", &here, 4, Some(good), None).is_ok());
        }
        // A generated input has no chunks: the size is not looked at.
        assert!(JobRequest::parse("sumsq", &s(&["0", "10"]), 4, Some(1), None).is_ok());
    }
}
