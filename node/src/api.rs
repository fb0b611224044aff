//! The local control API: newline-delimited JSON over TCP on 127.0.0.1 (by default port 7070).
//!
//! Each connection sends one request line and reads response lines. A `Submit` streams
//! `Accepted`, then `Progress` lines, then one `Done` or `Failed`; other requests get one line.
//! It is meant for the CLI and the Rust client on the same machine, not for the network.

use crate::cli::rows::{JobRow, PeerRow};
use crate::handle::Handle;
use crate::job_request::JobRequest;
use serde::{Deserialize, Serialize};
use shoal_protocol::{JobId, JobStatus, LocalTasks};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Longest request line accepted.
const MAX_REQUEST_BYTES: u64 = 1 << 20;
/// How often a submit connection hears about progress.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ApiRequest {
    Submit(JobRequest),
    Peers,
    Jobs,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ApiResponse {
    Accepted {
        job: String,
        tasks: u32,
    },
    Progress {
        job: JobRow,
        peers: usize,
        waiting_for_capacity: bool,
    },
    /// The job's output bytes, base64-encoded so that any bytes travel intact.
    Done {
        job: JobRow,
        output_b64: String,
        elapsed_ms: u64,
    },
    Failed {
        job: String,
        error: String,
    },
    /// The request was refused before anything was submitted.
    Rejected {
        error: String,
    },
    Peers(Vec<PeerRow>),
    Jobs(Vec<JobRow>),
}

/// Serves the API until the listener fails.
pub async fn serve(listener: TcpListener, handle: Handle) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                // Answers are small lines written one at a time: do not let Nagle hold them.
                let _ = stream.set_nodelay(true);
                let handle = handle.clone();
                tokio::spawn(async move {
                    if let Err(e) = serve_connection(stream, handle).await {
                        tracing::debug!("api connection ended: {e}");
                    }
                });
            }
            Err(e) => {
                tracing::warn!("api accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn send(
    stream: &mut (impl AsyncWriteExt + Unpin),
    response: &ApiResponse,
) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(response).map_err(std::io::Error::other)?;
    line.push(b'\n');
    stream.write_all(&line).await
}

async fn serve_connection(stream: TcpStream, handle: Handle) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read).take(MAX_REQUEST_BYTES);
    let mut line = String::new();
    reader.read_line(&mut line).await?;
    let request: ApiRequest = match serde_json::from_str(&line) {
        Ok(r) => r,
        Err(e) => {
            let error = format!("malformed request: {e}");
            return send(&mut write, &ApiResponse::Rejected { error }).await;
        }
    };
    match request {
        ApiRequest::Peers => {
            let view = handle.peers().await.map_err(std::io::Error::other)?;
            send(&mut write, &ApiResponse::Peers(PeerRow::rows(&view))).await
        }
        ApiRequest::Jobs => {
            let jobs = handle.jobs().await.map_err(std::io::Error::other)?;
            send(
                &mut write,
                &ApiResponse::Jobs(jobs.iter().map(JobRow::from).collect()),
            )
            .await
        }
        ApiRequest::Submit(request) => submit(&mut write, handle, request).await,
    }
}

async fn submit(
    write: &mut (impl AsyncWriteExt + Unpin),
    handle: Handle,
    request: JobRequest,
) -> std::io::Result<()> {
    let started = Instant::now();
    let (job, spec) = match handle.submit(request).await {
        Ok(x) => x,
        Err(error) => {
            let error = error.to_string();
            return send(write, &ApiResponse::Rejected { error }).await;
        }
    };
    send(
        write,
        &ApiResponse::Accepted {
            job: job.to_hex(),
            tasks: spec.map_tasks(),
        },
    )
    .await?;
    let wait = handle.wait(job);
    tokio::pin!(wait);
    let mut ticker = tokio::time::interval(PROGRESS_INTERVAL);
    loop {
        tokio::select! {
            outcome = &mut wait => {
                let response = match outcome {
                    Ok(bytes) => {
                        use base64::Engine as _;
                        let output_b64 = base64::engine::general_purpose::STANDARD.encode(bytes.as_slice());
                        let row = status_row(&handle, job).await;
                        ApiResponse::Done { job: row, output_b64, elapsed_ms: started.elapsed().as_millis() as u64 }
                    }
                    Err(error) => ApiResponse::Failed { job: job.to_hex(), error: error.to_string() },
                };
                return send(write, &response).await;
            }
            _ = ticker.tick() => {
                if let Ok(Some((view, peers))) = handle.status(job).await {
                    let waiting = view.status == JobStatus::WaitingForCapacity;
                    send(write, &ApiResponse::Progress { job: JobRow::from(&view), peers, waiting_for_capacity: waiting }).await?;
                }
            }
        }
    }
}

async fn status_row(handle: &Handle, job: JobId) -> JobRow {
    match handle.status(job).await {
        Ok(Some((view, _))) => JobRow::from(&view),
        _ => JobRow {
            id: job.to_hex(),
            op: String::new(),
            status: "complete".into(),
            done: 0,
            total: 0,
            maps: 0,
            depth: 0,
            workers: 0,
            spread: Vec::new(),
            here: LocalTasks::default(),
        },
    }
}
