//! `/api/v1/results/{id}`: a job's result from any node of the mesh, by id (see
//! [`crate::result_lookup`]).

use super::{ApiError, ApiState, job_id};
use crate::result_lookup::ResultLookup;
use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// What a node can say about a job's result (docs/api.md).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ResultAnswer {
    pub job: String,
    /// `done`, `running`, `queued`, `failed`, `expired`, `unreachable` or `unknown`.
    pub status: String,
    /// The output, base64-encoded, when `done`.
    #[serde(default)]
    pub output_b64: Option<String>,
    /// The nodes that keep the output (short ids), when `done` or `unreachable`.
    #[serde(default)]
    pub holders: Vec<String>,
    /// Tasks done of the total, and who coordinates the job, when `running`.
    #[serde(default)]
    pub done: Option<u32>,
    #[serde(default)]
    pub total: Option<u32>,
    #[serde(default)]
    pub coordinator: Option<String>,
    /// Why it failed (`failed`), or why the output could not be fetched (`unreachable`).
    #[serde(default)]
    pub error: Option<String>,
}

/// `GET /api/v1/results/{id}`: always 200 with a [`ResultAnswer`] (an unknown job is an
/// answer, not an error); 400 for a malformed id.
pub async fn get(
    State(api): State<Arc<ApiState>>,
    Path(id): Path<String>,
) -> Result<Json<ResultAnswer>, ApiError> {
    let job = job_id(&id)?;
    let found = api.handle.lookup_result(job).await?;
    let mut answer = ResultAnswer {
        job: job.to_hex(),
        ..Default::default()
    };
    let short = |ids: &[shoal_protocol::NodeId]| ids.iter().map(|n| n.to_string()).collect();
    answer.status = match found {
        ResultLookup::Done { output, holders } => {
            use base64::Engine as _;
            answer.output_b64 =
                Some(base64::engine::general_purpose::STANDARD.encode(output.as_slice()));
            answer.holders = short(&holders);
            "done"
        }
        ResultLookup::Running {
            done,
            total,
            coordinator,
        } => {
            answer.done = Some(done);
            answer.total = Some(total);
            answer.coordinator = Some(coordinator.to_string());
            "running"
        }
        ResultLookup::Queued => "queued",
        ResultLookup::Failed(error) => {
            answer.error = Some(error);
            "failed"
        }
        ResultLookup::Expired => "expired",
        ResultLookup::Unreachable { holders, error } => {
            answer.holders = short(&holders);
            answer.error = Some(error);
            "unreachable"
        }
        ResultLookup::Unknown => "unknown",
    }
    .to_string();
    Ok(Json(answer))
}
