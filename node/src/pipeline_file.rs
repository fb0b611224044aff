//! `PIPELINE.toml`, as `shoal run` reads it: one `[stages.NAME]` table per stage, each a job
//! as `shoal submit` takes it, whose inputs may be other stages' outputs (`"stage:NAME"`).
//!
//! Everything is checked here, before anything runs: the TOML, every field of every stage (its
//! type and its value, through the same [`JobRequest`] checks as `shoal submit`), and the graph
//! (unknown stages, cycles). A stage's output becomes its dependents' input as one file: each
//! stage gets a file in a private temporary directory (mode 0700, the files 0600) that exists,
//! empty, from the start, so that dependents' requests can be checked like any other, and that
//! receives the stage's output when it completes.

use crate::job_request::{JobRequest, UsageError};
use shoal_protocol::job::{FANIN_DEFAULT, SpecError, WasmLimits};
use shoal_protocol::pipeline::{Plan, PlanError};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Largest pipeline file read.
const MAX_FILE_BYTES: u64 = 1 << 20;
/// The prefix of an input that names another stage's output.
pub const STAGE_INPUT: &str = "stage:";

/// A checked pipeline, ready to run.
#[derive(Debug)]
pub struct Pipeline {
    pub plan: Plan,
    /// Per stage, in the plan's order.
    pub stages: Vec<Stage>,
    /// Holds the stages' output files; removed when the pipeline is dropped.
    pub dir: tempfile::TempDir,
}

/// One stage: its request, and the file its output is written to.
#[derive(Debug)]
pub struct Stage {
    pub name: String,
    pub request: JobRequest,
    pub output: PathBuf,
}

/// Why a pipeline file is refused; `shoal run` exits with code 2. Each names the stage and
/// the field.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("{path}: {error}")]
    Read { path: PathBuf, error: String },
    #[error("{path}: {error}")]
    Toml { path: PathBuf, error: String },
    #[error("stage {stage}: {field}: {error}")]
    Field {
        stage: String,
        field: String,
        error: String,
    },
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("cannot make the stages' output files: {0}")]
    Temp(std::io::Error),
}

/// The fields a stage may have.
const FIELDS: &[&str] = &[
    "job",
    "wasm",
    "inputs",
    "args",
    "range",
    "priority",
    "needs",
    "replicas",
    "verify_fraction",
    "fanin",
    "chunk_size",
    "tasks",
    "exclude",
    "fuel",
    "call_deadline",
    "memory_limit",
    "output_limit",
];

impl Pipeline {
    /// Reads and checks `path`. Relative paths in it are relative to the file's directory.
    pub fn load(path: &Path) -> Result<Self, PipelineError> {
        let read_error = |error: String| PipelineError::Read {
            path: path.to_path_buf(),
            error,
        };
        let meta = std::fs::metadata(path).map_err(|e| read_error(e.to_string()))?;
        if meta.len() > MAX_FILE_BYTES {
            return Err(read_error(format!(
                "{} bytes; a pipeline file is at most {MAX_FILE_BYTES}",
                meta.len()
            )));
        }
        let text = std::fs::read_to_string(path).map_err(|e| read_error(e.to_string()))?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        Self::parse(&text, base).map_err(|e| match e {
            PipelineError::Toml { error, .. } => PipelineError::Toml {
                path: path.to_path_buf(),
                error,
            },
            other => other,
        })
    }

    /// Checks the text of a pipeline file whose relative paths are relative to `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Self, PipelineError> {
        let toml_error = |error: String| PipelineError::Toml {
            path: PathBuf::from("PIPELINE.toml"),
            error,
        };
        let doc: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| toml_error(e.to_string().trim_end().to_string()))?;
        if let Some(other) = doc.keys().find(|k| *k != "stages") {
            return Err(toml_error(format!(
                "unknown table or key '{other}': a pipeline file has only [stages.NAME] tables"
            )));
        }
        let Some(stages) = doc.get("stages") else {
            return Err(PlanError::Empty.into());
        };
        let Some(stages) = stages.as_table() else {
            return Err(toml_error("'stages' must be tables: [stages.NAME]".into()));
        };
        // The graph first: a cycle or an unknown stage is the error to report, whatever else.
        let mut graph = BTreeMap::new();
        for (name, value) in stages {
            let table = value.as_table().ok_or_else(|| PipelineError::Field {
                stage: name.clone(),
                field: "(table)".into(),
                error: "a stage is a table: [stages.NAME] with job = ..., inputs = [...]".into(),
            })?;
            let fields = Fields { stage: name, table };
            let deps = fields
                .strings("inputs")?
                .iter()
                .filter_map(|i| i.strip_prefix(STAGE_INPUT).map(str::to_string))
                .collect();
            graph.insert(name.clone(), deps);
        }
        let plan = Plan::new(&graph)?;
        let dir = tempfile::Builder::new()
            .prefix("shoal-run-")
            .tempdir()
            .map_err(PipelineError::Temp)?;
        let output_of = |name: &str| dir.path().join(format!("{name}.out"));
        for name in plan.names() {
            create_private(&output_of(name)).map_err(PipelineError::Temp)?;
        }
        let mut out = Vec::with_capacity(plan.names().len());
        for name in plan.names() {
            let table = stages
                .get(name)
                .and_then(toml::Value::as_table)
                .expect("checked above");
            let fields = Fields { stage: name, table };
            let request = fields.request(base, &output_of)?;
            out.push(Stage {
                name: name.clone(),
                request,
                output: output_of(name),
            });
        }
        Ok(Self {
            plan,
            stages: out,
            dir,
        })
    }
}

/// Creates an empty file only its owner can read.
fn create_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map(drop)
}

/// One stage's table, read field by field so that every error names its field.
struct Fields<'a> {
    stage: &'a str,
    table: &'a toml::Table,
}

impl Fields<'_> {
    fn error(&self, field: &str, error: impl Into<String>) -> PipelineError {
        PipelineError::Field {
            stage: self.stage.to_owned(),
            field: field.to_owned(),
            error: error.into(),
        }
    }

    fn string(&self, field: &str) -> Result<Option<String>, PipelineError> {
        match self.table.get(field) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(self.error(
                field,
                format!("expected a string, found {}", other.type_str()),
            )),
        }
    }

    /// An array of strings (numbers are taken as their decimal text, for `args = [0, 100]`).
    fn strings(&self, field: &str) -> Result<Vec<String>, PipelineError> {
        let Some(value) = self.table.get(field) else {
            return Ok(Vec::new());
        };
        let Some(items) = value.as_array() else {
            return Err(self.error(
                field,
                format!("expected an array of strings, found {}", value.type_str()),
            ));
        };
        items
            .iter()
            .map(|v| match v {
                toml::Value::String(s) => Ok(s.clone()),
                toml::Value::Integer(i) => Ok(i.to_string()),
                other => Err(self.error(
                    field,
                    format!("expected strings, found {}", other.type_str()),
                )),
            })
            .collect()
    }

    fn integer<T: TryFrom<i64>>(&self, field: &str) -> Result<Option<T>, PipelineError> {
        match self.table.get(field) {
            None => Ok(None),
            Some(toml::Value::Integer(i)) => T::try_from(*i)
                .map(Some)
                .map_err(|_| self.error(field, format!("{i} is out of range"))),
            Some(other) => Err(self.error(
                field,
                format!("expected an integer, found {}", other.type_str()),
            )),
        }
    }

    fn float(&self, field: &str) -> Result<Option<f64>, PipelineError> {
        match self.table.get(field) {
            None => Ok(None),
            Some(toml::Value::Float(f)) => Ok(Some(*f)),
            Some(toml::Value::Integer(i)) => Ok(Some(*i as f64)),
            Some(other) => Err(self.error(
                field,
                format!("expected a number, found {}", other.type_str()),
            )),
        }
    }

    /// The stage's request, checked as `shoal submit` checks its command line.
    fn request(
        &self,
        base: &Path,
        output_of: &dyn Fn(&str) -> PathBuf,
    ) -> Result<JobRequest, PipelineError> {
        if let Some(unknown) = self.table.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(self.error(
                unknown,
                format!("unknown field; the fields are {}", FIELDS.join(", ")),
            ));
        }
        let inputs: Vec<String> = self
            .strings("inputs")?
            .iter()
            .map(|i| match i.strip_prefix(STAGE_INPUT) {
                Some(stage) => output_of(stage).display().to_string(),
                // A shared dataset is read where it is held, not below the file's folder.
                None if i.starts_with(crate::job_request::DATASET_PREFIX) => i.clone(),
                None => base.join(i).display().to_string(),
            })
            .collect();
        let args = self.strings("args")?;
        let fanin = self.integer("fanin")?.unwrap_or(FANIN_DEFAULT);
        let chunk_size = self.integer("chunk_size")?;
        let tasks = self.integer("tasks")?;
        let request = match (self.string("job")?, self.string("wasm")?) {
            (Some(_), Some(_)) => {
                return Err(self.error("wasm", "a stage has job or wasm, not both"));
            }
            (None, None) => {
                return Err(self.error(
                    "job",
                    "missing: job = \"wordcount\" (a built-in), or wasm = \"path/to/module.wasm\"",
                ));
            }
            (Some(job), None) => {
                for f in [
                    "range",
                    "fuel",
                    "call_deadline",
                    "memory_limit",
                    "output_limit",
                ] {
                    if self.table.contains_key(f) {
                        return Err(self.error(f, "applies to wasm stages only"));
                    }
                }
                let positional: Vec<String> = args.iter().chain(&inputs).cloned().collect();
                JobRequest::parse(&job, &positional, fanin, chunk_size, tasks)
                    .map_err(|e| self.usage(e))?
            }
            (None, Some(module)) => {
                if !args.is_empty() {
                    return Err(self.error("args", "a wasm stage takes inputs, not args"));
                }
                let range = match self.table.get("range") {
                    None => None,
                    Some(_) => {
                        let r = self.strings("range")?;
                        let parse = |s: &str| {
                            s.parse::<u64>()
                                .map_err(|_| self.error("range", "expected [START, END]"))
                        };
                        match r.as_slice() {
                            [a, b] => Some((parse(a)?, parse(b)?)),
                            _ => return Err(self.error("range", "expected [START, END]")),
                        }
                    }
                };
                JobRequest::wasm(
                    &base.join(module),
                    &inputs,
                    range,
                    self.limits()?,
                    fanin,
                    chunk_size,
                    tasks,
                )
                .map_err(|e| self.usage(e))?
            }
        };
        let replicas = self.integer("replicas")?.unwrap_or(1);
        let verify = self.float("verify_fraction")?.unwrap_or(0.0);
        let mut request = request
            .with_trust(replicas, verify)
            .map_err(|e| self.usage(e))?
            .with_sched(
                self.integer("priority")?.unwrap_or(0),
                &self.strings("needs")?,
            )
            .map_err(|e| self.usage(e))?;
        let exclude = self.strings("exclude")?;
        crate::input::walk::Excludes::new(&exclude)
            .map_err(|e| self.error("exclude", e.to_string()))?;
        request.exclude = exclude;
        Ok(request)
    }

    fn limits(&self) -> Result<WasmLimits, PipelineError> {
        let d = WasmLimits::default();
        let deadline_ms = match self.string("call_deadline")? {
            None => d.deadline_ms,
            Some(s) => humantime::parse_duration(&s)
                .map_err(|e| self.error("call_deadline", e.to_string()))?
                .as_millis() as u64,
        };
        Ok(WasmLimits {
            fuel: self.integer("fuel")?.unwrap_or(d.fuel),
            deadline_ms,
            memory_bytes: self.integer("memory_limit")?.unwrap_or(d.memory_bytes),
            output_bytes: self.integer("output_limit")?.unwrap_or(d.output_bytes),
        })
    }

    /// A request error, under the field it is about.
    fn usage(&self, e: UsageError) -> PipelineError {
        let field = match &e {
            UsageError::UnknownJob(_) | UsageError::NoJob => "job",
            UsageError::MissingPath(_) | UsageError::WasmInputs => "inputs",
            UsageError::Module { .. } => "wasm",
            UsageError::Args { msg, .. } if msg.contains("path") => "inputs",
            UsageError::Args { .. } => "args",
            UsageError::Exclude(_) => "exclude",
            UsageError::Needs(_) => "needs",
            UsageError::ChunkSize(_) => "chunk_size",
            UsageError::Spec(s) => match s {
                SpecError::Fanin(_) => "fanin",
                SpecError::Replicas(_) => "replicas",
                SpecError::VerifyFraction | SpecError::VerifyWithReplicas => "verify_fraction",
                SpecError::Needs(_) => "needs",
                SpecError::TaskCount(_) | SpecError::MoreTasksThanItems { .. } => "tasks",
                SpecError::ZeroLimit(_) | SpecError::OutputCap(_) => "limits",
                SpecError::ModuleSize(_) => "wasm",
                _ => "args",
            },
        };
        self.error(field, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Pipeline, PipelineError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("corpus.txt"), "a b a\n").unwrap();
        Pipeline::parse(text, dir.path())
    }

    #[test]
    fn a_fan_in_pipeline_becomes_requests_whose_stage_inputs_are_the_stage_files() {
        let p = parse(
            r#"
            [stages.count]
            job = "wordcount"
            inputs = ["corpus.txt"]
            [stages.squares]
            job = "sumsq"
            args = [0, 1000]
            [stages.hits]
            job = "grep"
            args = ["1"]
            inputs = ["stage:count", "stage:squares"]
            priority = 5
            needs = ["mem=1MiB"]
            "#,
        )
        .unwrap();
        assert_eq!(p.plan.names(), ["count", "hits", "squares"]);
        assert_eq!(p.plan.ready(), vec![0, 2]);
        let hits = &p.stages[1];
        assert_eq!(hits.request.priority, 5);
        assert_eq!(hits.request.needs.mem_mb, 1);
        let crate::job_request::JobKind::Grep { paths, .. } = &hits.request.kind else {
            panic!("{:?}", hits.request.kind)
        };
        let expected: Vec<PathBuf> = [&p.stages[0].output, &p.stages[2].output]
            .iter()
            .map(|o| std::fs::canonicalize(o).unwrap())
            .collect();
        assert_eq!(paths, &expected);
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&p.stages[0].output)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_stage_may_read_a_shared_dataset() {
        let p = parse(
            r#"
            [stages.count]
            job = "wordcount"
            inputs = ["dataset:logs"]
            "#,
        )
        .unwrap();
        assert_eq!(p.stages[0].request.dataset(), Some("logs"));
    }

    #[test]
    fn errors_name_the_stage_and_the_field() {
        for (text, says) in [
            (
                "[stages.a]\njob = \"wordcount\"\ninputs = [\"stage:b\"]\n[stages.b]\njob = \"wordcount\"\ninputs = [\"stage:a\"]",
                "stages a -> b -> a: inputs: they form a cycle",
            ),
            (
                "[stages.a]\njob = \"wordcount\"\ninputs = [\"stage:nope\"]",
                "stage a: inputs: there is no stage named \"nope\"",
            ),
            (
                "[stages.a]\njob = \"frobnicate\"",
                "stage a: job: unknown job",
            ),
            (
                "[stages.a]\njob = \"wordcount\"\ninputs = [\"corpus.txt\"]\npriorty = 3",
                "stage a: priorty: unknown field",
            ),
            (
                "[stages.a]\njob = \"wordcount\"\ninputs = [\"corpus.txt\"]\npriority = \"high\"",
                "stage a: priority: expected an integer, found string",
            ),
            (
                "[stages.a]\njob = \"wordcount\"\ninputs = [\"missing.txt\"]",
                "stage a: inputs: ",
            ),
            (
                "[stages.a]\njob = \"wordcount\"\ninputs = [\"corpus.txt\"]\nfanin = 1",
                "stage a: fanin: ",
            ),
            (
                "[stages.a]\njob = \"wordcount\"\ninputs = [\"corpus.txt\"]\nneeds = [\"gpu\"]",
                "stage a: needs: ",
            ),
            (
                "[stages.a]\ninputs = [\"corpus.txt\"]",
                "stage a: job: missing",
            ),
            ("[stage.a]\njob = \"pi\"", "unknown table or key 'stage'"),
            ("[stages.a\n", "PIPELINE.toml: "),
            ("", "at least one stage"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(says), "{text:?}: {e}");
        }
    }
}
