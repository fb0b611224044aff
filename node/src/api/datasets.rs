//! `/api/v1/datasets`: the datasets the mesh shares, as this node knows them.

use super::{ApiError, ApiState};
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use shoal_protocol::dataset::Dataset;
use std::sync::Arc;

/// One dataset: its parts (one per distinct content) and who holds each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetRow {
    pub name: String,
    /// Bytes and chunks of all its parts (a part held twice counts once).
    pub bytes: u64,
    pub chunks: u64,
    /// Distinct nodes holding at least one part.
    pub holders: usize,
    pub parts: Vec<PartRow>,
}

/// A part of a dataset: one node's folder (or identical folders on several nodes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartRow {
    /// The part's manifest hash (its content address).
    pub manifest: String,
    pub chunks: u32,
    pub bytes: u64,
    /// The holders' node ids, as in a job's `spread`.
    pub holders: Vec<String>,
}

impl DatasetRow {
    pub fn of(d: &Dataset) -> Self {
        let mut holders: Vec<_> = d.parts.iter().flat_map(|p| p.holders.iter()).collect();
        holders.sort_unstable();
        holders.dedup();
        Self {
            name: d.name.clone(),
            bytes: d.bytes(),
            chunks: d.chunks(),
            holders: holders.len(),
            parts: d
                .parts
                .iter()
                .map(|p| PartRow {
                    manifest: p.manifest.to_hex(),
                    chunks: p.chunks,
                    bytes: p.bytes,
                    holders: p.holders.iter().map(ToString::to_string).collect(),
                })
                .collect(),
        }
    }
}

/// `GET /api/v1/datasets`: every dataset this node knows, by name.
pub async fn list(State(api): State<Arc<ApiState>>) -> Result<Json<Vec<DatasetRow>>, ApiError> {
    let datasets = api.handle.datasets().await?;
    Ok(Json(datasets.iter().map(DatasetRow::of).collect()))
}

/// The table `shoal datasets` prints.
pub fn table(rows: &[DatasetRow]) -> String {
    if rows.is_empty() {
        return "no dataset is shared (share one with `shoal node --share NAME=DIR`)\n".into();
    }
    let mut out = format!(
        "{:<24} {:>6} {:>8} {:>14} {:>8}\n",
        "DATASET", "PARTS", "CHUNKS", "BYTES", "HOLDERS"
    );
    for d in rows {
        out.push_str(&format!(
            "{:<24} {:>6} {:>8} {:>14} {:>8}\n",
            d.name,
            d.parts.len(),
            d.chunks,
            d.bytes,
            d.holders
        ));
        for p in &d.parts {
            out.push_str(&format!(
                "  part {}  {} chunks, {} bytes, held by {}\n",
                &p.manifest[..16],
                p.chunks,
                p.bytes,
                p.holders.join(", ")
            ));
        }
    }
    out
}
