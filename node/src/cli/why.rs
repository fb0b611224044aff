//! `shoal why JOB`: a job's tasks by state, where they run, and why what is not moving is not
//! moving, as the local node (any member of the job) knows it.

use super::rows::short_id;
use super::{EXIT_USAGE, QueryArgs, client};
use crate::api::jobs::JobDetailRow;
use crate::client::{Client, ClientError};
use serde::Serialize;
use std::process::ExitCode;

/// What `shoal why --json` prints: the five task counts add up to the job's total.
#[derive(Debug, Serialize)]
pub struct Why {
    pub job: String,
    pub op: String,
    pub status: String,
    pub priority: i32,
    pub needs: Vec<String>,
    /// Map tasks claimed as one (a run, a subtree of the tree): `tasks` and `placement`
    /// count runs and the reduces above them when this is above 1.
    pub tasks_per_run: u32,
    pub tasks: WhyTasks,
    /// Who submitted the job and who coordinates it now (a successor once the submitter went
    /// silent); the copies of its input and output it keeps, and how many hold the worst-kept
    /// piece.
    pub submitter: String,
    pub coordinator: String,
    pub copies: u8,
    pub copies_held: u32,
    /// Tasks that took a result kept from an earlier job.
    pub reused: u32,
    /// Input bytes that crossed the network, and map tasks computed where their input was.
    pub bytes_moved: u64,
    pub at_data: u32,
    /// Its submitter runs it alone, off the wire (a small job that fit its idle slots).
    pub alone: bool,
    /// Per node: tasks claimed and not started, running, and results held.
    pub placement: Vec<crate::api::jobs::PlacementRow>,
    /// One sentence per reason; empty when nothing is held up.
    pub why: Vec<String>,
}

/// A job's tasks by state, each task counted once.
#[derive(Debug, Serialize)]
pub struct WhyTasks {
    /// Reduce tasks waiting for their inputs (their children's results).
    pub waiting: u32,
    /// Ready and not claimed.
    pub ready: u32,
    /// Claimed by a member that has not started them.
    pub claimed: u32,
    pub running: u32,
    pub done: u32,
}

impl From<JobDetailRow> for Why {
    fn from(d: JobDetailRow) -> Self {
        Self {
            job: d.job.id,
            op: d.job.op,
            status: d.job.status,
            priority: d.job.priority,
            needs: d.job.needs,
            tasks_per_run: d.tasks_per_run,
            tasks: WhyTasks {
                waiting: d.tasks.waiting,
                ready: d.tasks.ready,
                claimed: d.tasks.claimed.saturating_sub(d.tasks.running),
                running: d.tasks.running,
                done: d.tasks.done,
            },
            placement: d.placement,
            submitter: d.job.submitter,
            coordinator: d.job.coordinator,
            copies: d.job.copies,
            copies_held: d.job.copies_held,
            reused: d.job.reused,
            bytes_moved: d.job.bytes_moved,
            at_data: d.job.at_data,
            alone: d.job.alone,
            why: d.why,
        }
    }
}

/// Runs `shoal why`.
pub async fn why(query: QueryArgs, job: String) -> anyhow::Result<ExitCode> {
    let client = client(&query)?;
    let id = match resolve(&client, &job).await? {
        Ok(id) => id,
        Err(message) => {
            eprintln!("error: {message}");
            return Ok(ExitCode::from(EXIT_USAGE));
        }
    };
    let detail = match client.job(&id).await {
        Ok(d) => d,
        Err(ClientError::Rejected(message)) => {
            eprintln!("error: {message}");
            return Ok(ExitCode::from(EXIT_USAGE));
        }
        Err(e) => return Err(e.into()),
    };
    let why = Why::from(detail);
    if query.json {
        println!("{}", serde_json::to_string(&why)?);
    } else {
        print!("{}", text(&why));
    }
    Ok(ExitCode::SUCCESS)
}

/// The full job id for `given`: the id itself, or the one job this node knows whose id starts
/// with it (as `shoal jobs` shows ids shortened); else what is wrong.
pub(super) async fn resolve(
    client: &Client,
    given: &str,
) -> anyhow::Result<Result<String, String>> {
    let given = given.trim().to_ascii_lowercase();
    if given.is_empty() || !given.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(Err(format!(
            "'{given}' is not a job id (hex digits, as `shoal jobs` shows them)"
        )));
    }
    if given.len() == 64 {
        return Ok(Ok(given));
    }
    let matching: Vec<String> = client
        .jobs()
        .await?
        .into_iter()
        .map(|j| j.id)
        .filter(|id| id.starts_with(&given))
        .collect();
    Ok(match matching.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(format!(
            "no job this node knows starts with {given} (`shoal jobs` lists them)"
        )),
        many => Err(format!(
            "{} jobs start with {given}: give more of the id",
            many.len()
        )),
    })
}

/// The human-readable form.
fn text(w: &Why) -> String {
    let mut out = format!(
        "job {} ({}, priority {}{}): {}\n",
        short_id(&w.job),
        w.op,
        w.priority,
        if w.needs.is_empty() {
            String::new()
        } else {
            format!(", needs {}", w.needs.join(" "))
        },
        w.status
    );
    if w.copies > 1 {
        out.push_str(&format!(
            "durable: {} copies of the input and output, the worst-kept piece on {} live members; coordinated by {}{}\n",
            w.copies,
            w.copies_held,
            w.coordinator,
            if w.coordinator == w.submitter {
                " (its submitter)".to_string()
            } else {
                format!(" (successor of {})", w.submitter)
            }
        ));
    }
    if w.tasks_per_run > 1 {
        out.push_str(&format!(
            "runs: its tiny map tasks are claimed {} at a time, a subtree of its tree each (computed task by task where claimed); the counts below are of runs and the reduces above them\n",
            w.tasks_per_run
        ));
    }
    let t = &w.tasks;
    out.push_str(&format!(
        "tasks: {} waiting for inputs, {} ready, {} claimed, {} running, {} done\n",
        t.waiting, t.ready, t.claimed, t.running, t.done
    ));
    if w.reused > 0 {
        out.push_str(&format!(
            "reused: {} tasks took a result kept from an earlier job (--no-reuse computes every task)\n",
            w.reused
        ));
    }
    if w.alone {
        out.push_str(
            "alone: its submitter runs it by itself, off the wire (every task fit its idle slots; a job that needs replicas, spot checks, copies or other members' data never does)\n",
        );
    }
    if w.at_data > 0 || w.bytes_moved > 0 {
        out.push_str(&format!(
            "locality: {} map task(s) ran where their input was; {} input bytes crossed the network\n",
            w.at_data, w.bytes_moved
        ));
    }
    if !w.placement.is_empty() {
        out.push_str(&format!(
            "{:<18} {:>8} {:>8} {:>8}\n",
            "NODE", "CLAIMED", "RUNNING", "DONE"
        ));
        for p in &w.placement {
            out.push_str(&format!(
                "{:<18} {:>8} {:>8} {:>8}\n",
                p.node_id, p.claimed, p.running, p.done
            ));
        }
    }
    if w.why.is_empty() {
        out.push_str("nothing is held up\n");
    } else {
        out.push_str("why:\n");
        for reason in &w.why {
            out.push_str(&format!("  - {reason}\n"));
        }
    }
    out
}
