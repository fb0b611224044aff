//! `/api/v1/peers`: the mesh as this node sees it.

use super::{ApiError, ApiState};
use crate::cli::rows::PeerRow;
use axum::Json;
use axum::extract::State;
use std::sync::Arc;

/// `GET /api/v1/peers`: this node first, then every live peer of its view.
pub async fn list(State(api): State<Arc<ApiState>>) -> Result<Json<Vec<PeerRow>>, ApiError> {
    let view = api.handle.peers().await?;
    Ok(Json(PeerRow::rows(&view)))
}
