//! `/api/v1/events`: the dashboard's live feed, one `mesh` event a second with the node's
//! figures, its peers and its jobs.

use super::{ApiError, ApiState};
use crate::api::node::NodeRow;
use crate::cli::rows::{JobRow, PeerRow};
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use serde::Serialize;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How often the feed sends the mesh.
pub const MESH_INTERVAL: Duration = Duration::from_secs(1);

/// One `mesh` event.
#[derive(Debug, Clone, Serialize)]
pub struct MeshEvent {
    /// The node's clock (milliseconds since the Unix epoch), so rates drawn from successive
    /// events do not depend on when they reached the reader.
    pub now_ms: u64,
    pub node: NodeRow,
    pub peers: Vec<PeerRow>,
    pub jobs: Vec<JobRow>,
}

/// `GET /api/v1/events`.
pub async fn mesh(
    State(api): State<Arc<ApiState>>,
) -> Result<Sse<impl futures::Stream<Item = Result<Event, Infallible>>>, ApiError> {
    // One event's worth of buffering: a reader that falls behind gets fresh figures, not a
    // backlog.
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(MESH_INTERVAL);
        loop {
            ticker.tick().await;
            let Ok(event) = mesh_event(&api).await else {
                return;
            };
            let data = serde_json::to_string(&event).expect("serializable");
            if tx
                .send(Event::default().event("mesh").data(data))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|event| (Ok(event), rx))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

async fn mesh_event(api: &ApiState) -> Result<MeshEvent, crate::handle::NodeGone> {
    let snap = api.handle.snapshot().await?;
    let view = api.handle.peers().await?;
    let jobs = api.handle.jobs().await?;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    Ok(MeshEvent {
        now_ms,
        node: NodeRow::new(api, &snap),
        peers: PeerRow::rows(&view),
        jobs: jobs.iter().map(JobRow::from).collect(),
    })
}
