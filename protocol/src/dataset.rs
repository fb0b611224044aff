//! Shared datasets: data that stays on the nodes that produce it, and jobs that go to it.
//!
//! A node started with `--share NAME=DIR` chunks DIR into a *part* (a manifest of chunks, like
//! a submission's) and names it in its adverts ([`Share`]). Every node that shares the same
//! NAME holds a part of the dataset; two nodes that share identical contents hold the same
//! part (the same manifest hash), so each is a copy of the other. A job over `dataset:NAME`
//! lists the parts the submitter knows of, each with its holders ([`Dataset`]): map task `t`
//! reads chunk `t` of the parts laid end to end, from a holder of its part, and the holders
//! claim it first ([`crate::locality`]).

use crate::ids::{BlobHash, NodeId};
use serde::{Deserialize, Serialize};

/// Longest dataset name.
pub const MAX_NAME_BYTES: usize = 64;
/// Most datasets one node shares (and names in its adverts).
pub const MAX_SHARES: usize = 16;
/// Most parts a job over a dataset reads.
pub const MAX_PARTS: usize = 64;
/// Most holders a job names for one part.
pub const MAX_PART_HOLDERS: usize = 8;

/// A part of a dataset that a node holds, as its adverts name it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Share {
    pub name: String,
    /// The part's manifest ([`crate::job::Manifest`]), served by the node to peers of the mesh.
    pub manifest: BlobHash,
    pub chunks: u32,
    pub bytes: u64,
}

/// The input of a job over a dataset: the parts it reads, in order, and who holds them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Dataset {
    pub name: String,
    pub parts: Vec<Part>,
}

/// One part of a dataset, as a job reads it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Part {
    pub manifest: BlobHash,
    pub chunks: u32,
    pub bytes: u64,
    /// The nodes that share it, sorted (at least one).
    pub holders: Vec<NodeId>,
}

/// Why a dataset name or a dataset input is refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum DatasetError {
    #[error(
        "dataset name {0:?}: use 1 to {MAX_NAME_BYTES} letters, digits, '.', '_' or '-', not starting with '.'"
    )]
    Name(String),
    #[error("dataset {name}: {parts} parts; a job reads 1 to {MAX_PARTS}")]
    Parts { name: String, parts: usize },
    #[error("dataset {name}: a part has {holders} holders; a job names 1 to {MAX_PART_HOLDERS}")]
    Holders { name: String, holders: usize },
    #[error("dataset {name}: a part has no chunks")]
    EmptyPart { name: String },
    #[error("dataset {name}: a part's holders are not sorted and distinct")]
    UnsortedHolders { name: String },
    #[error(
        "no live node shares a dataset named {0:?} (see `shoal datasets`; nodes share one with `shoal node --share NAME=DIR`)"
    )]
    Unknown(String),
}

/// Checks a dataset name: short, and safe in a path, a URL and a shell word.
pub fn check_name(name: &str) -> Result<(), DatasetError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(DatasetError::Name(name.to_string()))
    }
}

/// Checks the shares of an advert.
pub fn check_shares(shares: &[Share]) -> Result<(), DatasetError> {
    if shares.len() > MAX_SHARES {
        return Err(DatasetError::Parts {
            name: "(advert)".into(),
            parts: shares.len(),
        });
    }
    shares.iter().try_for_each(|s| check_name(&s.name))
}

impl Dataset {
    /// Checks the structure (the task count is checked with the spec's).
    pub fn validate(&self) -> Result<(), DatasetError> {
        check_name(&self.name)?;
        let name = || self.name.clone();
        if self.parts.is_empty() || self.parts.len() > MAX_PARTS {
            return Err(DatasetError::Parts {
                name: name(),
                parts: self.parts.len(),
            });
        }
        for p in &self.parts {
            if p.holders.is_empty() || p.holders.len() > MAX_PART_HOLDERS {
                return Err(DatasetError::Holders {
                    name: name(),
                    holders: p.holders.len(),
                });
            }
            if p.holders.windows(2).any(|w| w[0] >= w[1]) {
                return Err(DatasetError::UnsortedHolders { name: name() });
            }
            if p.chunks == 0 {
                return Err(DatasetError::EmptyPart { name: name() });
            }
        }
        Ok(())
    }

    /// Chunks in all (saturating: the spec's task limit refuses anything that large).
    pub fn chunks(&self) -> u64 {
        self.parts.iter().map(|p| u64::from(p.chunks)).sum()
    }

    pub fn bytes(&self) -> u64 {
        self.parts.iter().map(|p| p.bytes).sum()
    }

    /// The part that map task `task` reads, and the chunk's index in that part's manifest.
    pub fn locate(&self, task: u32) -> Option<(usize, u32)> {
        let mut first = 0u32;
        for (i, p) in self.parts.iter().enumerate() {
            if task < first.saturating_add(p.chunks) {
                return Some((i, task - first));
            }
            first = first.saturating_add(p.chunks);
        }
        None
    }

    /// The map tasks `[first, end)` that read part `part`.
    pub fn tasks_of(&self, part: usize) -> (u32, u32) {
        let first: u32 = self.parts[..part].iter().map(|p| p.chunks).sum();
        (first, first + self.parts[part].chunks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(chunks: u32, holders: &[u8]) -> Part {
        Part {
            manifest: BlobHash([chunks as u8; 32]),
            chunks,
            bytes: u64::from(chunks) * 10,
            holders: holders.iter().map(|&b| NodeId([b; 32])).collect(),
        }
    }

    #[test]
    fn tasks_map_to_parts_end_to_end() {
        let d = Dataset {
            name: "logs".into(),
            parts: vec![part(2, &[1]), part(3, &[2, 3])],
        };
        d.validate().unwrap();
        assert_eq!(d.chunks(), 5);
        let located: Vec<_> = (0..6).map(|t| d.locate(t)).collect();
        assert_eq!(
            located,
            [
                Some((0, 0)),
                Some((0, 1)),
                Some((1, 0)),
                Some((1, 1)),
                Some((1, 2)),
                None
            ]
        );
        assert_eq!(d.tasks_of(1), (2, 5));
    }

    #[test]
    fn bad_names_and_shapes_are_refused() {
        for bad in ["", ".hidden", "a/b", "a b", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        check_name("sensor-logs_2026.v1").unwrap();
        let unsorted = Dataset {
            name: "d".into(),
            parts: vec![part(1, &[3, 2])],
        };
        assert!(unsorted.validate().is_err());
        let orphan = Dataset {
            name: "d".into(),
            parts: vec![part(1, &[])],
        };
        assert!(orphan.validate().is_err());
    }
}
