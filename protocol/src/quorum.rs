//! Replicated tasks: the results members report for a task are votes, compared by content
//! hash, and a task is done only when its votes settle it.
//!
//! The rule is BOINC's. A task that needs `n` replicas is settled when its first `n` votes
//! agree. If they do not, further members compute it until one result has a strict majority
//! of the votes and at least two of them; the members whose votes lost are suspects. A member
//! votes at most once per task (its claim of a task it voted on is ignored), and a task takes at
//! most [`MAX_VOTES`] votes: past that, nothing settles it and the job says so.

use crate::ids::{BlobHash, IdMap};
use crate::view::PeerIx;
use crate::wire::ResultRef;

/// Most replicas a job may ask for.
pub const MAX_REPLICAS: u8 = 5;
/// Most votes one task takes.
pub const MAX_VOTES: usize = 2 * MAX_REPLICAS as usize + 1;

/// One member's result for a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vote {
    pub by: PeerIx,
    pub digest: BlobHash,
    pub result: ResultRef,
}

/// What the votes of a task say now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Not settled: another member must compute the task.
    Open,
    /// Settled: the result, the voter that holds it (the first of the agreeing ones), and the
    /// voters that disagreed.
    Settled {
        result: ResultRef,
        holder: PeerIx,
        /// Every voter whose result won (the holder among them).
        winners: Vec<PeerIx>,
        losers: Vec<PeerIx>,
    },
    /// The vote was not counted: the member voted on the task already, or the task has all the
    /// votes it may take.
    Ignored,
}

/// The verdict of a task's `votes` once `winner` settled them.
fn verdict(votes: Vec<Vote>, winner: BlobHash) -> Verdict {
    let (winners, losers): (Vec<Vote>, Vec<Vote>) =
        votes.into_iter().partition(|v| v.digest == winner);
    let first = winners.first().expect("the winning digest has votes");
    Verdict::Settled {
        result: first.result.clone(),
        holder: first.by,
        winners: winners.iter().map(|v| v.by).collect(),
        losers: losers.iter().map(|v| v.by).collect(),
    }
}

/// The content hash of a result, whether it travels inline or as a blob.
pub fn digest(result: &ResultRef) -> BlobHash {
    match result {
        ResultRef::Inline(bytes) => BlobHash::of(bytes),
        ResultRef::Blob { hash, .. } => *hash,
    }
}

/// The votes of a job's tasks that are not settled yet.
#[derive(Debug, Default)]
pub struct Votes {
    open: IdMap<u32, Vec<Vote>>,
}

impl Votes {
    /// Counts `by`'s vote for `task`, which needs `need` agreeing replicas (1 to
    /// [`MAX_REPLICAS`]).
    pub fn add(&mut self, task: u32, by: PeerIx, result: ResultRef, need: u8) -> Verdict {
        let votes = self.open.entry(task).or_default();
        if votes.len() >= MAX_VOTES || votes.iter().any(|v| v.by == by) {
            return Verdict::Ignored;
        }
        votes.push(Vote {
            by,
            digest: digest(&result),
            result,
        });
        match settle(votes, need) {
            Some(winner) => verdict(self.open.remove(&task).unwrap_or_default(), winner),
            None => Verdict::Open,
        }
    }

    /// Settles `task` with what its votes say if `need` replicas are enough now (the need of a
    /// task can drop: a spot check decided against checking it).
    pub fn reconsider(&mut self, task: u32, need: u8) -> Option<Verdict> {
        let winner = settle(self.open.get(&task)?, need)?;
        Some(verdict(self.open.remove(&task).unwrap_or_default(), winner))
    }

    /// Whether `by` voted on `task` (and so must not compute it again).
    pub fn voted(&self, task: u32, by: PeerIx) -> bool {
        self.open
            .get(&task)
            .is_some_and(|votes| votes.iter().any(|v| v.by == by))
    }

    /// The members that voted on `task`.
    pub fn voters(&self, task: u32) -> impl Iterator<Item = PeerIx> + '_ {
        self.open.get(&task).into_iter().flatten().map(|v| v.by)
    }

    pub fn count(&self, task: u32) -> usize {
        self.open.get(&task).map_or(0, Vec::len)
    }

    /// Whether `task` took all the votes it may and is still not settled.
    pub fn exhausted(&self, task: u32) -> bool {
        self.count(task) >= MAX_VOTES
    }

    /// Forgets the votes of `task` (it is done by the submitter's word, or computed anew).
    pub fn clear(&mut self, task: u32) {
        self.open.remove(&task);
    }

    /// Tasks with open votes by `by`, with its vote: what it re-sends when completions may
    /// have been lost.
    pub fn by(&self, by: PeerIx) -> impl Iterator<Item = (u32, &ResultRef)> + '_ {
        self.open.iter().filter_map(move |(t, votes)| {
            votes.iter().find(|v| v.by == by).map(|v| (*t, &v.result))
        })
    }

    /// Open tasks and their vote counts.
    pub fn open(&self) -> impl Iterator<Item = (u32, usize)> + '_ {
        self.open.iter().map(|(t, v)| (*t, v.len()))
    }
}

/// The digest the votes settle on, if they do: the first `need` votes all agree, or (after a
/// disagreement) one digest has a strict majority of at least two.
fn settle(votes: &[Vote], need: u8) -> Option<BlobHash> {
    let need = usize::from(need.max(1));
    if votes.len() < need {
        return None;
    }
    let first = votes[0].digest;
    if votes[..need].iter().all(|v| v.digest == first) {
        return Some(first);
    }
    let mut best: Option<(BlobHash, usize)> = None;
    for v in votes {
        let n = votes.iter().filter(|w| w.digest == v.digest).count();
        if best.is_none_or(|(_, m)| n > m) {
            best = Some((v.digest, n));
        }
    }
    let (digest, n) = best?;
    (n >= 2 && 2 * n > votes.len()).then_some(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(x: u8) -> ResultRef {
        ResultRef::Inline(vec![x].into())
    }

    #[test]
    fn agreeing_replicas_settle_and_a_disagreement_needs_a_strict_majority_of_two() {
        let mut v = Votes::default();
        assert_eq!(v.add(0, 1, r(7), 2), Verdict::Open);
        assert!(
            matches!(v.add(0, 2, r(7), 2), Verdict::Settled { holder: 1, ref losers, .. } if losers.is_empty())
        );
        // A liar first: two honest votes outvote it.
        assert_eq!(v.add(1, 9, r(6), 2), Verdict::Open);
        assert_eq!(v.add(1, 2, r(7), 2), Verdict::Open);
        match v.add(1, 3, r(7), 2) {
            Verdict::Settled {
                result,
                holder,
                losers,
                ..
            } => {
                assert_eq!((result, holder, losers), (r(7), 2, vec![9]));
            }
            other => panic!("{other:?}"),
        }
        // One vote per member and task.
        assert_eq!(v.add(2, 4, r(1), 3), Verdict::Open);
        assert_eq!(v.add(2, 4, r(1), 3), Verdict::Ignored);
        assert!(v.voted(2, 4) && !v.voted(2, 5));
    }

    #[test]
    fn a_single_replica_settles_at_once_and_votes_are_bounded() {
        let mut v = Votes::default();
        assert!(matches!(v.add(0, 1, r(1), 1), Verdict::Settled { .. }));
        // Every voter disagrees: nothing settles, and the votes stop at the bound.
        for by in 0..MAX_VOTES as PeerIx {
            assert_eq!(v.add(5, by, r(by as u8), 2), Verdict::Open);
        }
        assert!(v.exhausted(5));
        assert_eq!(v.add(5, 99, r(1), 2), Verdict::Ignored);
    }

    #[test]
    fn inline_and_blob_results_of_the_same_bytes_agree() {
        let bytes = b"partial".to_vec();
        let inline = ResultRef::Inline(bytes.clone().into());
        let blob = crate::effects::blob_ref(&bytes);
        assert_eq!(digest(&inline), digest(&blob));
    }
}
