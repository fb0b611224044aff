//! Jobs that outlive their submitter: how many copies of a job's input and final output the
//! mesh keeps, which members keep them, and who coordinates a job whose submitter went silent.
//!
//! Every rule here is a pure function of ids, so members that see the same live members agree
//! without talking:
//!
//! - a job's input is cut into *pieces* (its chunks; for a WebAssembly job over a generated
//!   input, one piece: the module). A piece held by fewer than `copies` live members (not
//!   counting a detached submitter, which is about to leave) is copied by the non-holders
//!   [`ring_pick`] picks for it;
//! - the final output is kept by the coordinator and the `copies - 1` live members the ring
//!   picks for [`OUTPUT_PIECE`];
//! - the coordinator is the submitter while it is live; after that, the live member that ranks
//!   highest as a successor ([`precedence`]). Two successors at once (members that disagreed
//!   about who is live) settle on the one with the higher precedence as soon as they hear each
//!   other's announcements; a returning submitter outranks every successor.

use crate::ids::{BlobHash, JobId, NodeId};
use crate::job::{Input, JobSpec, Operator, SpecError};
use crate::rendezvous;
use serde::{Deserialize, Serialize};

/// Most copies of a job's input and output a submission may ask for.
pub const MAX_COPIES: u8 = 8;
/// Most holders a job's end names.
pub const MAX_HOLDERS: usize = 16;

/// The bucket the successor ranking hashes in (no task has this index).
const SUCCESSOR_BUCKET: u32 = u32::MAX - 1;
/// The piece index the output keepers rank for (no piece has this index).
pub const OUTPUT_PIECE: u32 = u32::MAX - 2;

/// How many live members keep each piece of a job's input and its final output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Durability {
    /// 1 to [`MAX_COPIES`]. 1: the input lives on the submitter only, as before.
    pub copies: u8,
    /// The submitter leaves once its input is held (`shoal submit --detach`): its own copy
    /// does not count toward `copies`, which are all made on other members. A submitter that
    /// stays (waits for the result) is a live holder like any other and is one of the
    /// `copies`.
    pub detached: bool,
}

impl Default for Durability {
    fn default() -> Self {
        Self {
            copies: 1,
            detached: false,
        }
    }
}

impl Durability {
    /// `copies` kept by a submitter that stays.
    pub fn staying(copies: u8) -> Self {
        Self {
            copies,
            detached: false,
        }
    }

    pub fn validate(&self) -> Result<(), SpecError> {
        if (1..=MAX_COPIES).contains(&self.copies) {
            Ok(())
        } else {
            Err(SpecError::Copies(self.copies))
        }
    }
}

/// The content address of a job's final output, as its keepers hold it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OutputRef {
    pub hash: BlobHash,
    pub len: u64,
}

/// How a job ended, as its coordinator publishes it (and its keepers repeat it on request).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ending {
    /// The output, and members that keep it.
    Done {
        output: OutputRef,
        holders: Vec<NodeId>,
    },
    Failed {
        error: String,
    },
    /// The output was dropped by its keepers (past its retention or the disk budget).
    Expired,
}

/// The pieces of a job's input that must survive its submitter: its chunks, or the module of a
/// WebAssembly job over a generated input. Zero: nothing to keep.
pub fn pieces(spec: &JobSpec) -> u32 {
    match (&spec.input, &spec.op) {
        (Input::Chunks { chunks, .. }, _) => *chunks,
        (Input::Dataset(_), _) => spec.map_tasks(),
        (_, Operator::Wasm { .. }) => 1,
        _ => 0,
    }
}

/// The members that should keep piece `piece`: walking `ring` (candidates sorted by id) from
/// a place that depends on the job and the piece only, the first `want` that `skip` does not
/// pass over (those that hold it already). Members with the same ring pick the same keepers
/// without talking; a member that joins or leaves moves few pieces.
pub fn ring_pick<'a>(
    job: &JobId,
    piece: u32,
    ring: &'a [NodeId],
    skip: impl Fn(&NodeId) -> bool + 'a,
    want: usize,
) -> impl Iterator<Item = &'a NodeId> + 'a {
    let start = if ring.is_empty() {
        0
    } else {
        (rendezvous::hash(job, piece, &NodeId([0; 32])) % ring.len() as u64) as usize
    };
    ring[start..]
        .iter()
        .chain(&ring[..start])
        .filter(move |n| !skip(n))
        .take(want)
}

/// Who coordinates ahead of whom: the submitter first, then the successor ranking.
pub fn precedence(job: &JobId, submitter: &NodeId, node: &NodeId) -> (bool, u64, NodeId) {
    (
        node == submitter,
        rendezvous::hash(job, SUCCESSOR_BUCKET, node),
        *node,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(b: u8) -> NodeId {
        NodeId([b; 32])
    }

    #[test]
    fn the_ring_picks_the_wanted_number_of_non_holders_the_same_everywhere() {
        let job = JobId([7; 32]);
        let ring: Vec<NodeId> = (1..=20).map(id).collect();
        let mut first = std::collections::HashMap::new();
        for piece in 0..200 {
            let holders = [id(piece as u8 % 20 + 1)];
            let picked: Vec<NodeId> = ring_pick(&job, piece, &ring, |n| holders.contains(n), 3)
                .copied()
                .collect();
            assert_eq!(picked.len(), 3);
            assert!(picked.iter().all(|p| !holders.contains(p)));
            *first.entry(picked[0]).or_insert(0) += 1;
            let again: Vec<NodeId> = ring_pick(&job, piece, &ring, |n| holders.contains(n), 3)
                .copied()
                .collect();
            assert_eq!(picked, again);
        }
        // The pieces spread over the ring rather than landing on one member.
        assert!(first.len() > 10, "{first:?}");
        assert_eq!(ring_pick(&job, 0, &[], |_| false, 2).count(), 0);
    }

    #[test]
    fn the_submitter_precedes_every_successor() {
        let job = JobId([3; 32]);
        let submitter = id(9);
        for b in 1..50 {
            if b != 9 {
                assert!(
                    precedence(&job, &submitter, &submitter) > precedence(&job, &submitter, &id(b))
                );
            }
        }
    }

    #[test]
    fn copies_are_bounded() {
        assert!(Durability::staying(0).validate().is_err());
        assert!(Durability::staying(MAX_COPIES).validate().is_ok());
        assert!(Durability::staying(MAX_COPIES + 1).validate().is_err());
    }
}
