//! `/api/v1/jobs`: submit a job, list jobs, one job's state, its progress as server-sent events,
//! and its result.

use super::{ApiError, ApiState, job_id};
use crate::cli::rows::JobRow;
use crate::handle::{Handle, JobError, NodeGone, SubmitFailure};
use crate::job_request::JobRequest;
use axum::Json;
use axum::body::Body;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use shoal_protocol::{JobId, JobStatus, SubmitError};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How often an event stream hears about progress.
pub const PROGRESS_INTERVAL: Duration = Duration::from_millis(200);
/// Events buffered per stream before a slow reader holds the sender back.
const EVENTS_BUFFERED: usize = 16;

/// The answer to a submission.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Accepted {
    pub job: String,
    /// Map tasks (the reduction tree adds its own).
    pub tasks: u32,
    /// Special files in the input that were passed over (FIFOs, sockets, devices).
    #[serde(default)]
    pub skipped: Vec<String>,
}

/// A progress event (`event: progress`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Progress {
    pub job: JobRow,
    /// Live peers this node sees.
    pub peers: usize,
    pub waiting_for_capacity: bool,
}

/// The last event of a job that succeeded (`event: done`); its output is at
/// `/api/v1/jobs/{id}/result`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Done {
    pub job: JobRow,
    /// From the submission to the result, as the node measured it.
    pub elapsed_ms: u64,
    pub output_bytes: usize,
}

/// The last event of a job that failed (`event: failed`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Failed {
    pub job: String,
    pub error: String,
}

/// The options of a submission.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct SubmitOptions {
    /// Answer when the job has ended, with its outcome, instead of at once with its id: one
    /// request for a job whose progress nobody watches.
    #[serde(default)]
    pub wait: bool,
}

/// The answer to `POST /api/v1/jobs?wait=true`: how the job ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    pub job: JobRow,
    pub elapsed_ms: u64,
    /// The output, base64-encoded (any bytes travel intact); `null` if the job failed.
    pub output_b64: Option<String>,
    /// Why the job failed; `null` if it succeeded.
    pub error: Option<String>,
    /// Special files in the input that were passed over.
    #[serde(default)]
    pub skipped: Vec<String>,
}

/// `POST /api/v1/jobs`: checks, prepares and submits a job. 202 with its id (or, with
/// `?wait=true`, 200 with its outcome once it ends), or 400 (the request is wrong) / 503 (the
/// node cannot take more now); nothing is submitted on an error.
pub async fn submit(
    State(api): State<Arc<ApiState>>,
    Query(options): Query<SubmitOptions>,
    body: Result<Json<JobRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(request) = body
        .map_err(|e| ApiError::BadRequest(format!("malformed job request: {}", e.body_text())))?;
    let started = Instant::now();
    let (job, prepared, outcome) = api
        .handle
        .submit_with(request, options.wait)
        .await
        .map_err(|e| match e {
            SubmitFailure::Refused(SubmitError::QueueFull(_)) | SubmitFailure::Gone(_) => {
                ApiError::Unavailable(e.to_string())
            }
            SubmitFailure::Prepare(_) | SubmitFailure::Refused(_) => {
                ApiError::BadRequest(e.to_string())
            }
        })?;
    api.submitted
        .lock()
        .expect("submissions lock")
        .insert(job, started);
    if let Some(outcome) = outcome {
        let outcome = outcome.await.unwrap_or(Err(JobError::Gone(NodeGone)));
        let row = row(&api.handle, job)
            .await?
            .unwrap_or_else(|| JobRow::ended(job));
        let elapsed_ms = started.elapsed().as_millis() as u64;
        let (output_b64, error) = match outcome {
            Ok(bytes) => {
                use base64::Engine as _;
                let b64 = base64::engine::general_purpose::STANDARD.encode(bytes.as_slice());
                (Some(b64), None)
            }
            Err(e) => (None, Some(e.to_string())),
        };
        let outcome = Outcome {
            job: row,
            elapsed_ms,
            output_b64,
            error,
            skipped: skipped(&prepared),
        };
        return Ok(Json(outcome).into_response());
    }
    let accepted = Accepted {
        job: job.to_hex(),
        tasks: prepared.spec.map_tasks(),
        skipped: skipped(&prepared),
    };
    Ok((StatusCode::ACCEPTED, Json(accepted)).into_response())
}

fn skipped(p: &crate::job_request::Prepared) -> Vec<String> {
    p.skipped.iter().map(|s| s.display().to_string()).collect()
}

/// `GET /api/v1/jobs`: the jobs this node tracks or remembers.
pub async fn list(State(api): State<Arc<ApiState>>) -> Result<Json<Vec<JobRow>>, ApiError> {
    let jobs = api.handle.jobs().await?;
    Ok(Json(jobs.iter().map(JobRow::from).collect()))
}

/// One job in detail, as `GET /api/v1/jobs/{id}` gives it (docs/api.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobDetailRow {
    pub job: JobRow,
    /// Map tasks claimed as one: more than one for a job of many tiny tasks, whose runs
    /// (a subtree of its tree each) `tasks`, `grid` and `placement` count; `tree` and `job`
    /// count every task.
    #[serde(default = "one")]
    pub tasks_per_run: u32,
    pub tasks: TaskCounts,
    pub tree: Vec<LevelRow>,
    pub grid: GridRow,
    /// Who claimed, runs and holds the job's tasks, busiest first (short node ids).
    #[serde(default)]
    pub placement: Vec<PlacementRow>,
    pub why: Vec<String>,
}

fn one() -> u32 {
    1
}

/// What one node does for a job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlacementRow {
    pub node_id: String,
    /// Tasks it claimed and has not started (as far as this node knows).
    pub claimed: u32,
    pub running: u32,
    /// Results it holds.
    pub done: u32,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct TaskCounts {
    pub waiting: u32,
    pub ready: u32,
    /// Claimed by a member, running ones included.
    pub claimed: u32,
    /// Of `claimed`, those running.
    #[serde(default)]
    pub running: u32,
    pub done: u32,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct LevelRow {
    pub level: u32,
    pub tasks: u32,
    pub done: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GridRow {
    pub tasks_per_cell: u32,
    pub nodes: Vec<String>,
    /// `[state, node]`: state 0 waiting, 1 ready, 2 claimed, 3 done; node an index into
    /// `nodes`, or -1.
    pub cells: Vec<(u8, i64)>,
}

impl JobDetailRow {
    fn new(view: &shoal_protocol::JobView, d: &shoal_protocol::node::JobDetail) -> Self {
        Self {
            job: JobRow::from(view),
            tasks_per_run: d.tasks_per_run,
            tasks: TaskCounts {
                waiting: d.tasks.waiting,
                ready: d.tasks.ready,
                claimed: d.tasks.claimed,
                running: d.tasks.running,
                done: d.tasks.done,
            },
            tree: d
                .tree
                .iter()
                .map(|l| LevelRow {
                    level: l.level,
                    tasks: l.tasks,
                    done: l.done,
                })
                .collect(),
            grid: GridRow {
                tasks_per_cell: d.grid.tasks_per_cell,
                nodes: d.grid.nodes.iter().map(|n| n.to_string()).collect(),
                cells: d
                    .grid
                    .cells
                    .iter()
                    .map(|(state, node)| (*state as u8, node.map_or(-1, i64::from)))
                    .collect(),
            },
            placement: d
                .placement
                .iter()
                .map(|p| PlacementRow {
                    node_id: p.node.to_string(),
                    claimed: p.claimed,
                    running: p.running,
                    done: p.done,
                })
                .collect(),
            why: d.why.clone(),
        }
    }
}

/// `GET /api/v1/jobs/{id}`: one job in detail.
pub async fn get(
    State(api): State<Arc<ApiState>>,
    Path(id): Path<String>,
) -> Result<Json<JobDetailRow>, ApiError> {
    let job = job_id(&id)?;
    let (view, detail) = api.handle.detail(job).await?.ok_or_else(|| unknown(job))?;
    Ok(Json(JobDetailRow::new(&view, &detail)))
}

fn unknown(job: JobId) -> ApiError {
    ApiError::NotFound(format!("job {job} is not known to this node"))
}

async fn row(handle: &Handle, job: JobId) -> Result<Option<JobRow>, ApiError> {
    Ok(handle
        .status(job)
        .await?
        .map(|(view, _)| JobRow::from(&view)))
}

/// `GET /api/v1/jobs/{id}/result`: the job's output bytes (JSON for the built-in jobs). 409
/// while it runs or when it failed (with the cause), 410 when it ended but its outcome was
/// pushed out of the node's memory since, 404 if this node does not know it.
pub async fn result(
    State(api): State<Arc<ApiState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let job = job_id(&id)?;
    match api.handle.outcome(job).await? {
        Some(Ok(bytes)) => {
            let json = serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_ok();
            let kind = if json {
                "application/json"
            } else {
                "application/octet-stream"
            };
            Ok(([(header::CONTENT_TYPE, kind)], Body::from(bytes.to_vec())).into_response())
        }
        Some(Err(JobError::Unknown(_))) | None if row(&api.handle, job).await?.is_none() => {
            Err(unknown(job))
        }
        Some(Err(e @ JobError::Forgotten(_))) => Err(ApiError::Gone(e.to_string())),
        Some(Err(e)) => Err(ApiError::Conflict(format!("job {job} failed: {e}"))),
        None => Err(ApiError::Conflict(format!(
            "job {job} is still running; its events are at /api/v1/jobs/{job}/events"
        ))),
    }
}

/// `GET /api/v1/jobs/{id}/events`: server-sent events: `progress` every 200 ms, then one
/// `done` or `failed`, then the stream ends.
pub async fn events(
    State(api): State<Arc<ApiState>>,
    Path(id): Path<String>,
) -> Result<Sse<impl futures::Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let job = job_id(&id)?;
    if row(&api.handle, job).await?.is_none() && api.handle.outcome(job).await?.is_none() {
        return Err(unknown(job));
    }
    let (tx, rx) = mpsc::channel(EVENTS_BUFFERED);
    tokio::spawn(follow(api, job, tx));
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|event| (Ok(event), rx))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// Sends a job's progress until it ends (or the reader goes away).
async fn follow(api: Arc<ApiState>, job: JobId, tx: mpsc::Sender<Event>) {
    let handle = &api.handle;
    let wait = handle.wait(job);
    tokio::pin!(wait);
    let mut ticker = tokio::time::interval(PROGRESS_INTERVAL);
    loop {
        tokio::select! {
            outcome = &mut wait => {
                let event = match outcome {
                    Ok(bytes) => {
                        let elapsed_ms = api
                            .submitted_at(&job)
                            .map_or(0, |t| t.elapsed().as_millis() as u64);
                        let job = row(handle, job).await.ok().flatten().unwrap_or_else(|| JobRow::ended(job));
                        json_event("done", &Done { job, elapsed_ms, output_bytes: bytes.len() })
                    }
                    Err(error) => json_event("failed", &Failed { job: job.to_hex(), error: error.to_string() }),
                };
                let _ = tx.send(event).await;
                return;
            }
            _ = ticker.tick() => {
                if let Ok(Some((view, peers))) = handle.status(job).await {
                    let waiting = view.status == JobStatus::WaitingForCapacity;
                    let progress = Progress { job: JobRow::from(&view), peers, waiting_for_capacity: waiting };
                    if tx.send(json_event("progress", &progress)).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

fn json_event(name: &str, value: &impl Serialize) -> Event {
    Event::default()
        .event(name)
        .data(serde_json::to_string(value).expect("serializable"))
}
