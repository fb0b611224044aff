//! The node's suspicions of its peers (members whose results lost a vote), kept in
//! `<data-dir>/suspects.json` so that a restart does not forgive them. The protocol decides
//! who is a suspect and for how long; this file only remembers it.
//!
//! Entries hold the end of the suspicion as wall-clock milliseconds (the protocol's clock
//! starts at zero with each run). The file is bounded like the protocol's table, written
//! whole (to a temporary file, then renamed) at each change, and read leniently: an entry
//! that does not parse is skipped with a warning.

use serde::{Deserialize, Serialize};
use shoal_protocol::node::SUSPECTS_MAX;
use shoal_protocol::{Millis, Node, NodeId};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// The file's name in the data dir.
pub const FILE: &str = "suspects.json";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    lost: u32,
    offences: u32,
    /// Unix milliseconds.
    until_ms: u64,
}

/// What is kept, and where.
#[derive(Debug, Default)]
pub struct SuspectFile {
    path: Option<PathBuf>,
    entries: BTreeMap<String, Entry>,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl SuspectFile {
    /// Reads the suspicions kept in `data_dir` (none without one) and hands those still
    /// running to `node`, whose clock reads `now`.
    pub fn load(data_dir: Option<&Path>, node: &mut Node, now: Millis) -> Self {
        let Some(dir) = data_dir else {
            return Self::default();
        };
        let path = dir.join(FILE);
        let mut entries: BTreeMap<String, Entry> = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(
                    "{} is not a suspects file ({e}); starting without suspects",
                    path.display()
                );
                BTreeMap::new()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => {
                tracing::warn!(
                    "cannot read {}: {e}; starting without suspects",
                    path.display()
                );
                BTreeMap::new()
            }
        };
        let wall = unix_ms();
        entries.retain(|id, e| {
            let Some(peer) = NodeId::from_hex(id) else {
                tracing::warn!(
                    "{}: skipping the entry {id:?}, not a node id",
                    path.display()
                );
                return false;
            };
            if e.until_ms <= wall {
                return false;
            }
            node.restore_suspect(now, peer, e.lost, e.offences, e.until_ms - wall);
            true
        });
        Self {
            path: Some(path),
            entries,
        }
    }

    /// The protocol made `peer` a suspect for `remaining_ms` more: remember it.
    pub fn record(&mut self, peer: NodeId, lost: u32, offences: u32, remaining_ms: u64) {
        let wall = unix_ms();
        self.entries.retain(|_, e| e.until_ms > wall);
        self.entries.insert(
            peer.to_hex(),
            Entry {
                lost,
                offences,
                until_ms: wall + remaining_ms,
            },
        );
        while self.entries.len() > SUSPECTS_MAX {
            // The one that ends first goes first.
            let Some(first) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.until_ms)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            self.entries.remove(&first);
        }
        self.save();
    }

    fn save(&self) {
        let Some(path) = &self.path else {
            return;
        };
        let tmp = path.with_extension("json.tmp");
        let bytes = match serde_json::to_vec_pretty(&self.entries) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!("cannot encode the suspects: {e}");
                return;
            }
        };
        if let Err(e) = write_private(&tmp, &bytes).and_then(|()| std::fs::rename(&tmp, path)) {
            tracing::warn!(
                "cannot keep the suspects in {}: {e} (they are forgotten at restart)",
                path.display()
            );
        }
    }
}

/// Writes a file only its owner can read.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_protocol::{Capacity, Config};

    fn node() -> Node {
        let cap = Capacity {
            slots: 1,
            cores: 1,
            mem_mb: 64,
        };
        Node::new(
            NodeId::from_identity_bytes(b"me"),
            cap,
            Config::default(),
            1,
        )
    }

    #[test]
    fn a_suspicion_survives_a_restart_and_an_expired_one_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let liar = NodeId::from_identity_bytes(b"liar");
        let forgiven = NodeId::from_identity_bytes(b"forgiven");
        let mut n = node();
        let mut file = SuspectFile::load(Some(dir.path()), &mut n, 0);
        file.record(liar, 3, 1, 60_000);
        file.record(forgiven, 1, 1, 0);
        let mut restarted = node();
        SuspectFile::load(Some(dir.path()), &mut restarted, 5);
        assert!(restarted.is_suspect(&liar, 5));
        assert!(!restarted.is_suspect(&forgiven, 5));
        let peers = restarted.suspects(5);
        assert_eq!(peers.len(), 1);
        assert_eq!(peers[0].1.lost, 3);
    }

    #[test]
    fn a_damaged_file_is_skipped_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), b"{not json").unwrap();
        let mut n = node();
        SuspectFile::load(Some(dir.path()), &mut n, 0);
        assert!(n.suspects(0).is_empty());
    }
}
