//! The node's HTTP API (docs/api.md): versioned JSON resources under `/api/v1/`, live progress
//! as server-sent events, every request authenticated by the node's token ([`token`]).
//!
//! It binds loopback unless the node is started with `--api-public`, and even then every
//! request needs the token: whoever may read `<data-dir>/api.token` may drive the node (and so
//! have it read any file the node can read, as a job's input).
//!
//! # Layout
//!
//! - this file: the router, shared state, errors as responses;
//! - [`token`]: the credential and the middleware that checks it;
//! - [`jobs`]: submitting jobs, their state and detail, progress events and results;
//! - [`results`]: a job's result from any node, by id;
//! - [`peers`]: the mesh as this node sees it; [`node`]: the node's own figures and
//!   `/metrics`; [`events`]: the dashboard's live feed; [`dashboard`]: its files.

pub mod dashboard;
pub mod datasets;
pub mod events;
pub mod jobs;
pub mod node;
pub mod peers;
pub mod results;
pub mod token;

use crate::handle::Handle;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use shoal_protocol::JobId;
use shoal_protocol::bounded::BoundedMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use token::Gate;

/// Largest request body accepted (a job request is a few hundred bytes plus its paths).
pub const MAX_REQUEST_BYTES: usize = 1 << 20;
/// Submission times remembered, for the elapsed time a finished job reports.
const SUBMISSIONS_REMEMBERED: usize = 1024;

/// What the handlers share.
#[derive(Debug)]
pub struct ApiState {
    pub handle: Handle,
    /// When each job was submitted through this API.
    submitted: Mutex<BoundedMap<JobId, Instant>>,
    /// The mesh key's fingerprint, in a private mesh.
    pub fingerprint: Option<String>,
    pub started: Instant,
}

impl ApiState {
    fn submitted_at(&self, job: &JobId) -> Option<Instant> {
        self.submitted
            .lock()
            .expect("submissions lock")
            .get(job)
            .copied()
    }
}

/// An error as the API reports it: a status and `{"error": "..."}`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed or asks for something impossible (400): fix it; nothing was
    /// done.
    #[error("{0}")]
    BadRequest(String),
    /// No such job, or nothing known about it here (404).
    #[error("{0}")]
    NotFound(String),
    /// The resource exists but is not in a state to give what was asked (409), e.g. the result
    /// of a job still running.
    #[error("{0}")]
    Conflict(String),
    /// The job ended but this node no longer holds what was asked (410): submit it again, or
    /// read a kept result through `/api/v1/results/{id}`.
    #[error("{0}")]
    Gone(String),
    /// The node cannot take it now (503): try again later.
    #[error("{0}")]
    Unavailable(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Gone(_) => StatusCode::GONE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        let body = serde_json::json!({ "error": self.to_string() });
        (status, axum::Json(body)).into_response()
    }
}

impl From<crate::handle::NodeGone> for ApiError {
    fn from(e: crate::handle::NodeGone) -> Self {
        ApiError::Unavailable(e.to_string())
    }
}

/// A job id from a path segment.
fn job_id(text: &str) -> Result<JobId, ApiError> {
    JobId::from_hex(text)
        .ok_or_else(|| ApiError::BadRequest(format!("'{text}' is not a job id (64 hex digits)")))
}

/// The whole API, behind the token. `fingerprint` names the mesh key of a private mesh.
pub fn router(handle: Handle, gate: Arc<Gate>, fingerprint: Option<String>) -> Router {
    let state = Arc::new(ApiState {
        handle,
        submitted: Mutex::new(BoundedMap::new(SUBMISSIONS_REMEMBERED)),
        fingerprint,
        started: Instant::now(),
    });
    Router::new()
        .route("/", get(dashboard::index))
        .route("/assets/app.js", get(dashboard::app))
        .route("/assets/style.css", get(dashboard::style))
        .route("/metrics", get(node::metrics))
        .route("/api/v1/node", get(node::get))
        .route("/api/v1/events", get(events::mesh))
        .route("/api/v1/peers", get(peers::list))
        .route("/api/v1/datasets", get(datasets::list))
        .route("/api/v1/jobs", get(jobs::list).post(jobs::submit))
        .route("/api/v1/jobs/{id}", get(jobs::get))
        .route("/api/v1/jobs/{id}/events", get(jobs::events))
        .route("/api/v1/jobs/{id}/result", get(jobs::result))
        .route("/api/v1/results/{id}", get(results::get))
        .fallback(|| async { ApiError::NotFound("no such resource; see docs/api.md".into()) })
        .with_state(state)
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            gate,
            token::require_token,
        ))
}

/// Serves the API until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, router: Router) {
    use axum::serve::ListenerExt;
    // Answers are small and written as they come (events above all): Nagle's algorithm would
    // hold each for a delayed ACK, tens of milliseconds.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    if let Err(e) = axum::serve(listener, router).await {
        tracing::warn!("the HTTP API stopped: {e}");
    }
}
