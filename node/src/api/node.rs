//! `/api/v1/node`: this node's own figures; `/metrics`: the same and more for Prometheus.

use super::{ApiError, ApiState};
use crate::handle::NodeSnapshot;
use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The node's figures, as `GET /api/v1/node` gives them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeRow {
    pub peer_id: String,
    pub node_id: String,
    pub version: String,
    /// `open` or `private`.
    pub mesh: String,
    /// A public name of the mesh key (never the key), in a private mesh.
    pub key_fingerprint: Option<String>,
    pub uptime_s: u64,
    pub slots_total: u32,
    pub slots_free: u32,
    pub cores: u32,
    pub mem_mb: u64,
    pub load: f64,
    pub peers: usize,
    pub jobs: usize,
    pub gossip: GossipRow,
    pub blobs: BlobsRow,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GossipRow {
    pub messages_in: u64,
    pub messages_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub invalid_messages: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BlobsRow {
    pub served: u64,
    pub refused: u64,
    pub busy: u64,
    pub banned: u64,
    pub store_bytes: usize,
    pub store_blobs: usize,
}

impl NodeRow {
    pub(crate) fn new(api: &ApiState, s: &NodeSnapshot) -> Self {
        Self {
            peer_id: s.me_peer.to_string(),
            node_id: s.me.id.to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            mesh: if api.fingerprint.is_some() {
                "private"
            } else {
                "open"
            }
            .to_string(),
            key_fingerprint: api.fingerprint.clone(),
            uptime_s: api.started.elapsed().as_secs(),
            slots_total: s.me.slots_total,
            slots_free: s.me.slots_free,
            cores: s.me.cores,
            mem_mb: s.me.mem_mb,
            load: f64::from(s.me.load_milli) / 1000.0,
            peers: s.peers,
            jobs: s.jobs,
            gossip: GossipRow {
                messages_in: s.stats.messages_in,
                messages_out: s.stats.messages_out,
                bytes_in: s.stats.bytes_in,
                bytes_out: s.stats.bytes_out,
                invalid_messages: s.stats.invalid_messages,
            },
            blobs: BlobsRow {
                served: s.serve.served,
                refused: s.serve.refused,
                busy: s.serve.busy,
                banned: s.serve.banned,
                store_bytes: s.store_bytes,
                store_blobs: s.store_blobs,
            },
        }
    }
}

/// `GET /api/v1/node`.
pub async fn get(State(api): State<Arc<ApiState>>) -> Result<Json<NodeRow>, ApiError> {
    let snap = api.handle.snapshot().await?;
    Ok(Json(NodeRow::new(&api, &snap)))
}

/// `GET /metrics`: the Prometheus text format.
pub async fn metrics(State(api): State<Arc<ApiState>>) -> Result<impl IntoResponse, ApiError> {
    let text = api.handle.metrics_text().await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    ))
}
