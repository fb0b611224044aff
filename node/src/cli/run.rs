//! `shoal run PIPELINE.toml`: runs a DAG of stages through the local node. A stage is
//! submitted once every stage it takes output from is complete (independent stages run at the
//! same time); its output, as `shoal submit` prints it, becomes its dependents' input file; a
//! failed stage fails its dependents with the cause while the others finish.

use super::rows::short_id;
use super::submit::{printed, run_submit, submit_json, timeout_message, with_json_member};
use super::{EXIT_USAGE, QueryArgs, client};
use crate::client::{ClientError, Finished};
use crate::pipeline_file::Pipeline;
use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use shoal_protocol::pipeline::StageState;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Duration;

/// How a stage ended.
enum Ended {
    Done(Box<Finished>),
    /// The job it ran (if it got that far) and the cause.
    Failed(Option<String>, String),
}

/// Runs `shoal run`.
pub(super) async fn run(
    query: QueryArgs,
    file: &Path,
    timeout: Duration,
) -> anyhow::Result<ExitCode> {
    let pipeline = match Pipeline::load(file) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(EXIT_USAGE));
        }
    };
    let client = client(&query)?;
    let json = query.json;
    let mut plan = pipeline.plan.clone();
    let names = plan.names().to_vec();
    let accepted: Vec<Mutex<Option<String>>> = names.iter().map(|_| Mutex::new(None)).collect();
    let mut ended: BTreeMap<usize, Ended> = BTreeMap::new();
    let mut running = FuturesUnordered::new();
    let deadline = tokio::time::Instant::now() + timeout;
    if !json {
        for (s, name) in names.iter().enumerate() {
            let waits = plan.waiting_on(s);
            if !waits.is_empty() {
                eprintln!("stage {name}: waiting on stage {}", waits.join(", "));
            }
        }
    }
    loop {
        for s in plan.ready() {
            plan.start(s);
            if !json {
                eprintln!("stage {}: started", names[s]);
            }
            let request = pipeline.stages[s].request.clone();
            let (client, slot) = (&client, &accepted[s]);
            running.push(async move { (s, run_submit(client, request, true, slot).await) });
        }
        if running.is_empty() {
            break;
        }
        let Ok(Some((s, outcome))) = tokio::time::timeout_at(deadline, running.next()).await else {
            break;
        };
        let end = match outcome {
            Ok(done) => match std::fs::write(&pipeline.stages[s].output, printed(&done)) {
                Ok(()) => {
                    plan.complete(s);
                    Ended::Done(Box::new(done))
                }
                Err(e) => {
                    let cause = format!("cannot keep its output for the next stages: {e}");
                    plan.fail(s, &cause);
                    Ended::Failed(Some(done.job.id.clone()), cause)
                }
            },
            Err(e) => {
                let job = match &e {
                    ClientError::Failed { job, .. } => Some(job.clone()),
                    _ => accepted[s].lock().ok().and_then(|a| a.clone()),
                };
                let cause = e.to_string();
                plan.fail(s, &cause);
                Ended::Failed(job, cause)
            }
        };
        if !json {
            show(&names[s], &end)?;
        }
        ended.insert(s, end);
    }
    // Past the deadline: what still runs fails with why its job is not done; what waits, with
    // the stage it waits on.
    drop(running);
    for (s, name) in names.iter().enumerate() {
        if !matches!(plan.state(s), StageState::Running) {
            continue;
        }
        let job = accepted[s].lock().ok().and_then(|a| a.clone());
        let cause = timeout_message(&client, job.clone(), timeout).await;
        let cause = cause.trim_start_matches("error: ").to_string();
        plan.fail(s, &cause);
        let end = Ended::Failed(job, cause);
        if !json {
            show(name, &end)?;
        }
        ended.insert(s, end);
    }
    for (s, name) in names.iter().enumerate() {
        if let (StageState::Failed(cause), false) = (plan.state(s), ended.contains_key(&s)) {
            let end = Ended::Failed(None, cause.clone());
            if !json {
                show(name, &end)?;
            }
            ended.insert(s, end);
        }
    }
    let failed = ended.values().any(|e| matches!(e, Ended::Failed(..)));
    if json {
        // Written as text, so that each stage's answer (its output spliced in as it is, see
        // `submit_json`) is never built into a value nor checked twice.
        let stages: Vec<String> = ended
            .iter()
            .map(|(s, end)| {
                let value = match end {
                    Ended::Done(done) => {
                        let job = serde_json::json!({ "job": done.job.id });
                        with_json_member(&job, "result", &submit_json(done, true))
                    }
                    Ended::Failed(job, cause) => serde_json::json!({
                        "job": job,
                        "error": cause,
                    })
                    .to_string(),
                };
                format!("{}:{value}", serde_json::Value::from(names[*s].as_str()))
            })
            .collect();
        println!("{{\"stages\":{{{}}}}}", stages.join(","));
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Prints how a stage ended: its result on stdout under a header, failures on stderr.
fn show(name: &str, end: &Ended) -> anyhow::Result<()> {
    use std::io::Write as _;
    match end {
        Ended::Done(done) => {
            let mut out = std::io::stdout().lock();
            writeln!(out, "== stage {name} (job {}) ==", short_id(&done.job.id))?;
            out.write_all(&printed(done))?;
            out.flush()?;
            eprintln!(
                "stage {name}: complete: {} tasks on {} workers in {} ms",
                done.job.total, done.job.workers, done.elapsed_ms
            );
        }
        Ended::Failed(job, cause) => {
            let job = job
                .as_deref()
                .map(|j| format!(" (job {})", short_id(j)))
                .unwrap_or_default();
            eprintln!("stage {name}{job}: failed: {cause}");
        }
    }
    Ok(())
}
