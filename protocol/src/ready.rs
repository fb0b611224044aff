//! The ready tasks of one job, ordered by how soon this node may claim them.
//!
//! A job's tasks are hashed into buckets (at most [`MAX_BUCKETS`], fixed by the job's size, so
//! every member uses the same buckets). For each bucket this node keeps its exact rendezvous
//! rank among the job's live candidates: how many of them score higher for the bucket. A task
//! of a bucket where this node ranks `r` may be claimed once it has been ready for
//! `r × steal delay`, so the first-ranked member takes it at once and the others only when it
//! lingers. When a candidate comes or goes, only the ranks change (one score per bucket): no
//! task is ranked again, however many there are.

use crate::ids::{JobId, Millis, NodeId};
use crate::rendezvous;
use std::collections::BTreeSet;

/// Ranks at or beyond this share one class: they all wait the longest before stealing.
pub const RANK_CAP: usize = 4;
/// Most buckets per job: enough for a fair share among hundreds of members, few enough that
/// a change of candidates costs little.
pub const MAX_BUCKETS: u32 = 2048;

#[derive(Debug)]
pub struct ReadyQueue {
    job: JobId,
    mask: u32,
    /// This node's score per bucket; empty when this node takes no tasks.
    my_scores: Vec<f64>,
    /// Live candidates that outrank this node, per bucket.
    ranks: Vec<u16>,
    /// Ready tasks per bucket as (ready since, task). Entries may be stale: the caller checks
    /// them when they are taken.
    ready: Vec<BTreeSet<(Millis, u32)>>,
    /// Non-empty buckets per rank class, keyed by their earliest entry.
    classes: [BTreeSet<(Millis, u32)>; RANK_CAP + 1],
}

fn class(rank: u16) -> usize {
    usize::from(rank).min(RANK_CAP)
}

impl ReadyQueue {
    /// A queue for a job of `total` tasks. `my_weight` 0: this node takes none of them.
    pub fn new(job: JobId, total: u32, me: &NodeId, my_weight: u32) -> Self {
        let buckets = total.max(1).next_power_of_two().min(MAX_BUCKETS);
        let my_scores = if my_weight == 0 {
            Vec::new()
        } else {
            (0..buckets)
                .map(|b| rendezvous::score(&job, b, me, my_weight))
                .collect()
        };
        Self {
            job,
            mask: buckets - 1,
            my_scores,
            ranks: vec![0; buckets as usize],
            ready: vec![BTreeSet::new(); buckets as usize],
            classes: Default::default(),
        }
    }

    /// Whether this node takes tasks of the job at all.
    pub fn active(&self) -> bool {
        !self.my_scores.is_empty()
    }

    /// The bucket of `task`: a hash of (job, task), the same on every node.
    pub fn bucket(&self, task: u32) -> u32 {
        (rendezvous::hash(&self.job, task, &NodeId::default()) as u32) & self.mask
    }

    /// This node's rank for `task`, capped at [`RANK_CAP`].
    pub fn rank(&self, task: u32) -> usize {
        class(self.ranks[self.bucket(task) as usize])
    }

    /// A candidate other than this node joins (`joined`) or leaves the ranking.
    pub fn candidate_changed(&mut self, id: &NodeId, weight: u32, joined: bool) {
        if !self.active() || weight == 0 {
            return;
        }
        for b in 0..=self.mask {
            let i = b as usize;
            if rendezvous::score(&self.job, b, id, weight) <= self.my_scores[i] {
                continue;
            }
            let before = class(self.ranks[i]);
            self.ranks[i] = if joined {
                self.ranks[i].saturating_add(1)
            } else {
                self.ranks[i].saturating_sub(1)
            };
            let after = class(self.ranks[i]);
            if before != after
                && let Some(&(since, _)) = self.ready[i].first()
            {
                self.classes[before].remove(&(since, b));
                self.classes[after].insert((since, b));
            }
        }
    }

    /// Offers `task`, ready since `since`.
    pub fn push(&mut self, task: u32, since: Millis) {
        if !self.active() {
            return;
        }
        let b = self.bucket(task);
        let i = b as usize;
        let old_first = self.ready[i].first().copied();
        self.ready[i].insert((since, task));
        if old_first.is_none_or(|first| (since, task) < first) {
            let c = class(self.ranks[i]);
            if let Some((s, _)) = old_first {
                self.classes[c].remove(&(s, b));
            }
            self.classes[c].insert((since, b));
        }
    }

    /// Takes up to `want` tasks this node may claim at `now`: those of its first-ranked buckets
    /// at once, those where it ranks `r` once ready for `r × steal_delay`. `still_ready` says
    /// whether an entry is current. Returns the tasks and, if some are not yet eligible, when
    /// the earliest will be.
    pub fn take(
        &mut self,
        want: usize,
        now: Millis,
        steal_delay: Millis,
        mut still_ready: impl FnMut(u32, Millis) -> bool,
    ) -> (Vec<u32>, Option<Millis>) {
        let mut out = Vec::new();
        let mut wake: Option<Millis> = None;
        for c in 0..=RANK_CAP {
            let delay = steal_delay * c as Millis;
            while out.len() < want {
                let Some(&(since, b)) = self.classes[c].first() else {
                    break;
                };
                if since + delay > now {
                    wake = Some(wake.map_or(since + delay, |w: Millis| w.min(since + delay)));
                    break;
                }
                let i = b as usize;
                let (since, task) = self.ready[i]
                    .pop_first()
                    .expect("listed buckets are non-empty");
                self.classes[c].pop_first();
                if let Some(&(next, _)) = self.ready[i].first() {
                    self.classes[c].insert((next, b));
                }
                if still_ready(task, since) {
                    out.push(task);
                }
            }
        }
        (out, wake)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: u8) -> Vec<NodeId> {
        (0..n).map(|i| NodeId::from_identity_bytes(&[i])).collect()
    }

    /// Builds every member's queue for a job with all members as candidates.
    fn queues(job: JobId, total: u32, members: &[NodeId]) -> Vec<ReadyQueue> {
        members
            .iter()
            .map(|me| {
                let mut q = ReadyQueue::new(job, total, me, 1);
                for other in members.iter().filter(|o| *o != me) {
                    q.candidate_changed(other, 1, true);
                }
                q
            })
            .collect()
    }

    #[test]
    fn exactly_one_member_ranks_first_for_each_task() {
        let job = JobId([5; 32]);
        let members = ids(7);
        let qs = queues(job, 1000, &members);
        for t in 0..1000 {
            let first = qs.iter().filter(|q| q.rank(t) == 0).count();
            assert_eq!(first, 1, "task {t}");
        }
    }

    #[test]
    fn when_a_candidate_leaves_the_next_ranked_member_takes_its_tasks_at_once() {
        let job = JobId([6; 32]);
        let members = ids(5);
        let mut qs = queues(job, 64, &members);
        let victim_tasks: Vec<u32> = (0..64).filter(|&t| qs[0].rank(t) == 0).collect();
        assert!(!victim_tasks.is_empty());
        for q in &mut qs[1..] {
            q.candidate_changed(&members[0], 1, false);
        }
        for t in victim_tasks {
            assert_eq!(qs[1..].iter().filter(|q| q.rank(t) == 0).count(), 1);
        }
    }

    #[test]
    fn lower_ranked_tasks_wait_their_steal_delay() {
        let job = JobId([7; 32]);
        let members = ids(3);
        let mut q = queues(job, 32, &members).remove(0);
        for t in 0..32 {
            q.push(t, 100);
        }
        let (mine, wake) = q.take(100, 100, 250, |_, _| true);
        assert!(mine.iter().all(|&t| q.rank(t) == 0));
        assert_eq!(wake, Some(350));
        let (second, _) = q.take(100, 350, 250, |_, _| true);
        assert!(!second.is_empty() && second.iter().all(|&t| q.rank(t) == 1));
        let (rest, wake) = q.take(100, 10_000, 250, |_, _| true);
        assert_eq!(mine.len() + second.len() + rest.len(), 32);
        assert_eq!(wake, None);
    }
}
