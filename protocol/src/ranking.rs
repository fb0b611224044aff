//! This node's rendezvous rank for each bucket of a job's tasks, among the job's live
//! candidates, capped at [`RANK_CAP`] (a rank at the cap means "at least the cap").
//!
//! Ranks change when candidates come or go. A change is applied to each bucket with one score
//! comparison: a candidate that joins above this node pushes its rank up one (the cap stays
//! the cap); one that leaves from above pulls it down one, except at the cap, where the true
//! rank is not known and the bucket is counted again. Counting a bucket stops once
//! [`RANK_CAP`] candidates outrank this node, which takes about twenty scores whatever the
//! number of candidates. Many changes at once (a job's members arriving together) are cheaper
//! counted afresh, so changes wait until the ranks are next needed and are then applied one by
//! one or all counted again, whichever costs less.

use crate::ids::{JobId, NodeId};
use crate::rendezvous;

/// Ranks at or beyond this share one class: they all wait the longest before stealing.
pub const RANK_CAP: usize = 4;
/// Pending changes beyond which counting every bucket afresh is cheaper than applying them.
const RECOUNT_AFTER_CHANGES: usize = 16;

/// The draw (scaled to the 53-bit hash space) a candidate of `weight` must exceed to outrank a
/// node whose level for the bucket is `level`.
fn threshold(weight: u32, level: f64) -> f64 {
    (-f64::from(weight) * level).exp() * (1u64 << 53) as f64 - 0.5
}

#[derive(Debug)]
pub struct BucketRanks {
    job: JobId,
    my_weight: u32,
    /// Per bucket, -ln(u) / weight of this node, u its uniform draw for the bucket: a
    /// candidate of weight w outranks it when its own draw exceeds exp(-w · this).
    my_levels: Vec<f64>,
    /// For each weight met, the draw (scaled to the 53-bit hash space) a candidate of that
    /// weight must exceed to outrank this node, per bucket: one comparison, no logarithm.
    thresholds: Vec<(u32, Vec<f64>)>,
    /// The other live candidates.
    others: Vec<(NodeId, u32)>,
    ranks: Vec<u8>,
    /// Changes not yet applied: (candidate, weight, joined).
    pending: Vec<(NodeId, u32, bool)>,
}

impl BucketRanks {
    pub fn new(job: JobId, buckets: u32, me: &NodeId, my_weight: u32) -> Self {
        let my_levels = (0..buckets)
            .map(|b| 1.0 / rendezvous::score(&job, b, me, my_weight.max(1)))
            .collect();
        Self {
            job,
            my_weight,
            my_levels,
            thresholds: Vec::new(),
            others: Vec::new(),
            ranks: vec![0; buckets as usize],
            pending: Vec::new(),
        }
    }

    /// The rank of bucket `b` as of the last [`BucketRanks::settle`].
    pub fn rank(&self, b: u32) -> usize {
        usize::from(self.ranks[b as usize])
    }

    /// A candidate other than this node joins (`joined`) or leaves.
    pub fn changed(&mut self, id: &NodeId, weight: u32, joined: bool) {
        if weight == 0 || self.my_weight == 0 {
            return;
        }
        if joined {
            self.others.push((*id, weight));
        } else if let Some(i) = self.others.iter().position(|c| *c == (*id, weight)) {
            self.others.swap_remove(i);
        } else {
            return;
        }
        self.pending.push((*id, weight, joined));
    }

    /// The thresholds for candidates of `weight` (computed once per weight).
    fn thresholds(&mut self, weight: u32) -> usize {
        if let Some(i) = self.thresholds.iter().position(|(w, _)| *w == weight) {
            return i;
        }
        let t = self
            .my_levels
            .iter()
            .map(|&level| threshold(weight, level))
            .collect();
        self.thresholds.push((weight, t));
        self.thresholds.len() - 1
    }

    /// Whether candidate `id` (its thresholds at index `t`) outranks this node for bucket `b`:
    /// the same as comparing [`rendezvous::score`]s.
    fn outranks(&self, id: &NodeId, t: usize, b: u32) -> bool {
        self.draw(id, b) > self.thresholds[t].1[b as usize]
    }

    /// Candidate `id`'s draw for bucket `b`, scaled to the 53-bit hash space.
    fn draw(&self, id: &NodeId, b: u32) -> f64 {
        (rendezvous::hash(&self.job, b, id) >> 11) as f64
    }

    /// [`BucketRanks::candidate_outranks`] without caching the weight's thresholds: for an
    /// occasional question, where `&self` is all there is.
    pub fn candidate_outranks_once(&self, id: &NodeId, weight: u32, b: u32) -> bool {
        if weight == 0 || self.my_weight == 0 {
            return false;
        }
        self.draw(id, b) > threshold(weight, self.my_levels[b as usize])
    }

    /// Whether candidate `id` of weight `weight` outranks this node for bucket `b`.
    pub fn candidate_outranks(&mut self, id: &NodeId, weight: u32, b: u32) -> bool {
        if weight == 0 || self.my_weight == 0 {
            return false;
        }
        let t = self.thresholds(weight);
        self.outranks(id, t, b)
    }

    /// Counts the candidates that outrank this node for bucket `b`, up to the cap.
    fn count(&self, b: u32, others: &[(NodeId, usize)]) -> u8 {
        let mut rank = 0;
        for (id, t) in others {
            if self.outranks(id, *t, b) {
                rank += 1;
                if usize::from(rank) == RANK_CAP {
                    break;
                }
            }
        }
        rank
    }

    /// Applies the pending changes. Returns the buckets whose rank changed, with the old and
    /// the new rank.
    pub fn settle(&mut self) -> Vec<(u32, usize, usize)> {
        let mut moved = Vec::new();
        if self.pending.is_empty() {
            return moved;
        }
        let buckets = self.ranks.len() as u32;
        let others: Vec<(NodeId, usize)> = self
            .others
            .clone()
            .into_iter()
            .map(|(id, w)| (id, self.thresholds(w)))
            .collect();
        let mut set = |ranks: &mut Vec<u8>, b: u32, rank: u8| {
            let old = ranks[b as usize];
            if old != rank {
                ranks[b as usize] = rank;
                moved.push((b, usize::from(old), usize::from(rank)));
            }
        };
        if self.pending.len() > RECOUNT_AFTER_CHANGES {
            self.pending.clear();
            for b in 0..buckets {
                let rank = self.count(b, &others);
                set(&mut self.ranks, b, rank);
            }
            return moved;
        }
        let cap = RANK_CAP as u8;
        let mut uncertain = vec![false; buckets as usize];
        for (id, weight, joined) in std::mem::take(&mut self.pending) {
            let t = self.thresholds(weight);
            for b in 0..buckets {
                let i = b as usize;
                if uncertain[i] || !self.outranks(&id, t, b) {
                    continue;
                }
                let rank = self.ranks[i];
                if joined {
                    set(&mut self.ranks, b, (rank + 1).min(cap));
                } else if rank < cap {
                    set(&mut self.ranks, b, rank.saturating_sub(1));
                } else {
                    uncertain[i] = true;
                }
            }
        }
        for b in 0..buckets {
            if uncertain[b as usize] {
                let rank = self.count(b, &others);
                set(&mut self.ranks, b, rank);
            }
        }
        moved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Weights from 1 to 4, by id.
    fn weight(id: &NodeId) -> u32 {
        1 + u32::from(id.0[0] % 4)
    }

    /// Exact ranks, the slow way: comparing weighted scores.
    fn exact(job: &JobId, b: u32, me: &NodeId, others: &[NodeId]) -> usize {
        let mine = rendezvous::score(job, b, me, weight(me));
        others
            .iter()
            .filter(|o| rendezvous::score(job, b, o, weight(o)) > mine)
            .count()
            .min(RANK_CAP)
    }

    #[test]
    fn ranks_follow_candidates_one_by_one_and_in_crowds() {
        let job = JobId([9; 32]);
        let ids: Vec<NodeId> = (0..60u8)
            .map(|i| NodeId::from_identity_bytes(&[i]))
            .collect();
        let me = ids[0];
        let mut r = BucketRanks::new(job, 64, &me, weight(&me));
        // A crowd joins, then members leave and come back a few at a time.
        let mut present: Vec<NodeId> = ids[1..40].to_vec();
        for id in &present {
            r.changed(id, weight(id), true);
        }
        r.settle();
        let steps: [(&[usize], &[usize]); 3] =
            [(&[1, 2, 3], &[]), (&[], &[40, 41]), (&[4, 5], &[1])];
        for (leave, join) in steps {
            for &i in leave {
                r.changed(&ids[i], weight(&ids[i]), false);
                present.retain(|p| *p != ids[i]);
            }
            for &i in join {
                r.changed(&ids[i], weight(&ids[i]), true);
                present.push(ids[i]);
            }
            r.settle();
            for b in 0..64 {
                assert_eq!(r.rank(b), exact(&job, b, &me, &present), "bucket {b}");
            }
        }
    }
}
