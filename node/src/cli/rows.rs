//! The rows `shoal peers` and `shoal jobs` show (and the local API sends), built from the
//! driver's views, and their tables.

use crate::handle::MeshView;
use serde::{Deserialize, Serialize};
use shoal_protocol::{JobStatus, JobView, LocalTasks, PeerStatus};

/// A peer as `shoal peers` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerRow {
    pub peer_id: String,
    /// The protocol's id for the node, shortened as in a job's `spread`.
    pub node_id: String,
    pub is_self: bool,
    pub slots_total: u32,
    pub slots_free: u32,
    pub cores: u32,
    pub mem_mb: u64,
    pub load: f64,
    pub advert_age_ms: u64,
    /// How this node is connected to it: `quic`, `tcp`, or none (gossip only; this node itself).
    #[serde(default)]
    pub connection: Option<String>,
    /// Its results lost votes: this node gives it no work for `suspect_ms` more.
    #[serde(default)]
    pub suspect: bool,
    #[serde(default)]
    pub suspect_ms: u64,
    /// Votes it lost, in all.
    #[serde(default)]
    pub lost_votes: u32,
    /// The labels it advertises (`shoal node --tag`).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Its gossip score on this node: 0 for an honest peer, lower for each invalid message it
    /// passed on (see docs/security.md).
    #[serde(default)]
    pub gossip_score: f64,
    /// Its score is below the graylist threshold: this node ignores its messages.
    #[serde(default)]
    pub graylisted: bool,
    /// Not a node of the mesh as far as this node knows (it never advertised itself): listed
    /// only because its gossip score is below zero. Its slots and figures are zero.
    #[serde(default)]
    pub stranger: bool,
}

impl PeerRow {
    /// One row per node of the view, this node first.
    pub fn rows(view: &MeshView) -> Vec<PeerRow> {
        let score = |peer: Option<&libp2p::PeerId>| {
            peer.and_then(|p| view.gossip_scores.get(p))
                .copied()
                .unwrap_or(0.0)
        };
        let row = |p: &PeerStatus,
                   peer_id: String,
                   is_self: bool,
                   connection: Option<&str>,
                   gossip_score: f64| PeerRow {
            peer_id,
            node_id: p.id.to_string(),
            is_self,
            slots_total: p.slots_total,
            slots_free: p.slots_free,
            cores: p.cores,
            mem_mb: p.mem_mb,
            load: f64::from(p.load_milli) / 1000.0,
            advert_age_ms: p.age_ms,
            connection: connection.map(str::to_string),
            suspect: p.suspect_ms > 0,
            suspect_ms: p.suspect_ms,
            lost_votes: p.lost_votes,
            tags: p.tags.clone(),
            gossip_score,
            graylisted: gossip_score < crate::gossip_score::GRAYLIST,
            stranger: false,
        };
        let mut rows = vec![row(&view.me, view.me_peer.to_string(), true, None, 0.0)];
        rows.extend(view.peers.iter().map(|(p, peer, connection)| {
            let name = peer.map_or_else(|| p.id.to_hex(), |id| id.to_string());
            row(p, name, false, *connection, score(peer.as_ref()))
        }));
        // Peers that sent invalid gossip without ever being nodes of the mesh: a stranger
        // passing on forged messages is shown, not only the peers it may have named.
        let mut strangers: Vec<(&libp2p::PeerId, f64)> = view
            .gossip_scores
            .iter()
            .filter(|(peer, _)| !view.peers.iter().any(|(_, p, _)| p.as_ref() == Some(*peer)))
            .map(|(peer, score)| (peer, *score))
            .collect();
        strangers.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(b.0)));
        rows.extend(strangers.into_iter().map(|(peer, score)| {
            let status = PeerStatus {
                id: crate::peers::node_id(peer),
                slots_total: 0,
                slots_free: 0,
                cores: 0,
                mem_mb: 0,
                load_milli: 0,
                age_ms: 0,
                suspect_ms: 0,
                lost_votes: 0,
                tags: Vec::new(),
            };
            PeerRow {
                stranger: true,
                ..row(&status, peer.to_string(), false, None, score)
            }
        }));
        rows
    }
}

/// A job as `shoal jobs` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobRow {
    pub id: String,
    pub op: String,
    pub status: String,
    pub done: u32,
    pub total: u32,
    pub maps: u32,
    pub depth: u32,
    pub workers: usize,
    /// Completed tasks per worker (short node ids).
    pub spread: Vec<(String, u32)>,
    /// Tasks this node runs now, or whose results only it holds.
    pub here: LocalTasks,
    /// The submitter's node id.
    pub submitter: String,
    /// Members of the job as this node knows them (itself included).
    pub members: u32,
    pub maps_done: u32,
    pub input: InputRow,
    /// Distinct members whose results must agree for each task.
    #[serde(default = "one")]
    pub replicas: u8,
    /// Members whose results lost votes in this job (short node ids, as in `spread`).
    #[serde(default)]
    pub suspects: Vec<SuspectRow>,
    /// Higher runs first.
    #[serde(default)]
    pub priority: i32,
    /// What a node must have to run its tasks, as `--needs` takes them (`tag=gpu`, `mem=4096MiB`).
    #[serde(default)]
    pub needs: Vec<String>,
    /// Who coordinates it now (short node id): its submitter, or a successor.
    #[serde(default)]
    pub coordinator: String,
    /// Live members meant to hold each piece of its input and its output, and how many hold
    /// the worst-kept piece (`shoal submit --detach` returns once this reaches `copies`).
    #[serde(default = "one")]
    pub copies: u8,
    #[serde(default)]
    pub copies_held: u32,
    /// Tasks that took a result a member kept from an earlier job instead of computing it.
    #[serde(default)]
    pub reused: u32,
    /// Input bytes that crossed the network (fetched by a member that did not hold them).
    #[serde(default)]
    pub bytes_moved: u64,
    /// Map tasks computed where their input was (on the submitter for files it submitted, on
    /// a holder of the part for a shared dataset).
    #[serde(default)]
    pub at_data: u32,
    /// Its submitter runs it alone, with no other member and nothing on the wire: a small job
    /// whose every task started at once on the submitter's idle slots.
    #[serde(default)]
    pub alone: bool,
}

fn one() -> u8 {
    1
}

/// A member whose results lost votes in a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuspectRow {
    pub node_id: String,
    /// Its libp2p peer id, when the node knows it (`shoal submit` fills it in).
    #[serde(default)]
    pub peer_id: Option<String>,
    pub lost: u32,
}

/// A job's size in its own unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputRow {
    /// `bytes` (files) or `items` (a generated range or samples).
    pub unit: String,
    pub size: u64,
}

impl From<&JobView> for JobRow {
    fn from(v: &JobView) -> Self {
        let status = match &v.status {
            JobStatus::Queued { ahead } => format!("queued ({ahead} ahead)"),
            JobStatus::Running => "running".to_string(),
            JobStatus::WaitingForCapacity => "waiting for capacity".to_string(),
            JobStatus::Complete => "complete".to_string(),
            JobStatus::Failed(e) => format!("failed: {e}"),
        };
        Self {
            id: v.id.to_hex(),
            op: v.op.to_string(),
            status,
            done: v.done,
            total: v.total,
            maps: v.maps,
            depth: v.depth,
            workers: v.workers.len(),
            spread: v.workers.iter().map(|(n, c)| (n.to_string(), *c)).collect(),
            here: v.local,
            submitter: v.submitter.to_string(),
            members: v.members,
            maps_done: v.maps_done,
            input: InputRow {
                unit: v.input.unit.to_string(),
                size: v.input.size,
            },
            replicas: v.replicas,
            suspects: v
                .suspects
                .iter()
                .map(|(n, lost)| SuspectRow {
                    node_id: n.to_string(),
                    peer_id: None,
                    lost: *lost,
                })
                .collect(),
            priority: v.priority,
            needs: crate::needs::describe(&v.needs),
            coordinator: v.coordinator.to_string(),
            copies: v.copies,
            copies_held: v.copies_held,
            reused: v.reused,
            bytes_moved: v.bytes_moved,
            at_data: v.at_data,
            alone: v.alone,
        }
    }
}

impl JobRow {
    /// The row of a job this node no longer tracks (it ended and was forgotten).
    pub fn ended(id: shoal_protocol::JobId) -> Self {
        Self {
            id: id.to_hex(),
            op: String::new(),
            status: "complete".into(),
            done: 0,
            total: 0,
            maps: 0,
            depth: 0,
            workers: 0,
            spread: Vec::new(),
            here: LocalTasks::default(),
            submitter: String::new(),
            members: 0,
            maps_done: 0,
            input: InputRow {
                unit: String::new(),
                size: 0,
            },
            replicas: 1,
            suspects: Vec::new(),
            priority: 0,
            needs: Vec::new(),
            coordinator: String::new(),
            copies: 1,
            copies_held: 0,
            reused: 0,
            bytes_moved: 0,
            at_data: 0,
            alone: false,
        }
    }
}

/// The `shoal peers` table.
pub fn peers_table(rows: &[PeerRow]) -> String {
    let mut out = format!(
        "{:<54} {:>5} {:>5} {:>5} {:>8} {:>6} {:>7}  {:<10} {:<16} SUSPECT\n",
        "PEER", "SLOTS", "FREE", "CORES", "MEM_MB", "LOAD", "AGE_MS", "TAGS", "GOSSIP"
    );
    for p in rows {
        let name = if p.is_self {
            format!("{} (self)", p.peer_id)
        } else if p.stranger {
            format!("{} (stranger)", p.peer_id)
        } else {
            p.peer_id.clone()
        };
        let suspect = if p.suspect {
            format!(
                "yes: {} vote(s) lost, {} s left",
                p.lost_votes,
                p.suspect_ms.div_ceil(1000)
            )
        } else {
            "-".to_string()
        };
        let tags = if p.tags.is_empty() {
            "-".to_string()
        } else {
            p.tags.join(",")
        };
        let gossip = match (p.gossip_score, p.graylisted) {
            (_, true) => format!("{:.0} graylisted", p.gossip_score),
            (s, false) if s < 0.0 => format!("{s:.0}"),
            _ => "ok".to_string(),
        };
        out.push_str(&format!(
            "{:<54} {:>5} {:>5} {:>5} {:>8} {:>6.2} {:>7}  {:<10} {:<16} {}\n",
            name,
            p.slots_total,
            p.slots_free,
            p.cores,
            p.mem_mb,
            p.load,
            p.advert_age_ms,
            tags,
            gossip,
            suspect
        ));
    }
    out
}

/// The `shoal jobs` table.
pub fn jobs_table(rows: &[JobRow]) -> String {
    let mut out = format!(
        "{:<18} {:<10} {:>5} {:>15} {:>8}  STATUS\n",
        "JOB", "OP", "PRIO", "DONE/TOTAL", "WORKERS"
    );
    for j in rows {
        out.push_str(&format!(
            "{:<18} {:<10} {:>5} {:>15} {:>8}  {}\n",
            short_id(&j.id),
            j.op,
            j.priority,
            format!("{}/{}", j.done, j.total),
            j.workers,
            j.status
        ));
    }
    out
}

/// The first 16 characters of a job id, as the tables show it.
pub fn short_id(id: &str) -> &str {
    id.get(..16).unwrap_or(id)
}
