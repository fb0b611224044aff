//! The ready tasks of one job, ordered by how soon this node may claim them.
//!
//! A job's tasks fall into buckets (at most [`MAX_BUCKETS`], fixed by the job's shape, so every
//! member uses the same buckets): the map tasks in contiguous runs, one run per bucket, and
//! the reduce tasks by hash. For each bucket this node knows its rendezvous rank among the
//! job's live candidates ([`crate::ranking`]). A task of a bucket where this node ranks `r` may
//! be claimed once it has been ready for `r × steal delay` (ranks from [`RANK_CAP`] on wait
//! alike), so the first-ranked member takes it at once and the others only when it lingers.
//! When candidates come or go, only bucket ranks change: no task is ranked again.
//!
//! The map tasks, all ready from the start, are not listed one by one: each bucket walks its
//! run with a cursor. Only tasks that become ready later (reduce tasks, reopened tasks) are
//! listed, and within a rank class they are taken before the maps not yet started: a reduce
//! whose inputs are done merges them while the maps go on, instead of waiting behind every
//! map (which would leave all the reduces, one level after another, to the end of the job,
//! on the critical path), and a task that was lost is computed again before the job moves on.

use crate::ids::{JobId, Millis, NodeId};
use crate::ranking::BucketRanks;
pub use crate::ranking::RANK_CAP;
use crate::rendezvous;
use std::collections::{BTreeSet, VecDeque};
/// Most buckets per job: enough for a fair share among hundreds of members, few enough that
/// ranking them again costs little.
pub const MAX_BUCKETS: u32 = 2048;

#[derive(Debug, Default, Clone)]
struct Bucket {
    /// The next map task of the bucket's run not yet taken, and the end of the run.
    next_map: u32,
    end_map: u32,
    /// Tasks that became ready after the start, as (ready since, task), in order. Kept in a
    /// sorted deque: tasks become ready as time goes on, so nearly every insertion is at the
    /// back.
    later: VecDeque<(Millis, u32)>,
}

#[derive(Debug)]
pub struct ReadyQueue {
    job: JobId,
    buckets: u32,
    maps: u32,
    /// When the map tasks became ready (the job's start here).
    start: Millis,
    /// Whether this node takes tasks of the job.
    active: bool,
    ranks: BucketRanks,
    /// Entries may be stale: the caller checks them when they are taken.
    ready: Vec<Bucket>,
    /// Buckets with maps not yet taken, per rank class, keyed by (start, bucket).
    classes: [BTreeSet<(Millis, u32)>; RANK_CAP + 1],
    /// Buckets with tasks that became ready later, per rank class, keyed by their earliest.
    later_classes: [BTreeSet<(Millis, u32)>; RANK_CAP + 1],
}

impl ReadyQueue {
    /// A queue for a job of `maps` map tasks and `total` tasks in all, whose map tasks are
    /// ready from `start`. `my_weight` 0: this node takes none of them.
    pub fn new(
        job: JobId,
        maps: u32,
        total: u32,
        start: Millis,
        me: &NodeId,
        my_weight: u32,
    ) -> Self {
        // About two tasks a bucket: fine enough to spread a small job, few enough buckets that
        // ranking them stays cheap.
        let buckets = total
            .div_ceil(2)
            .max(1)
            .next_power_of_two()
            .min(MAX_BUCKETS);
        let mut q = Self {
            job,
            buckets,
            maps,
            start,
            active: my_weight > 0,
            ranks: BucketRanks::new(job, buckets, me, my_weight),
            ready: vec![Bucket::default(); buckets as usize],
            classes: Default::default(),
            later_classes: Default::default(),
        };
        if q.active() {
            for b in 0..buckets {
                let (first, end) = (q.run_start(b), q.run_start(b + 1));
                let bucket = &mut q.ready[b as usize];
                bucket.next_map = first;
                bucket.end_map = end;
                if first < end {
                    q.classes[0].insert((start, b));
                }
            }
        }
        q
    }

    /// The first map task of bucket `b`'s run.
    fn run_start(&self, b: u32) -> u32 {
        (u64::from(self.maps) * u64::from(b) / u64::from(self.buckets)) as u32
    }

    /// When the map tasks became ready: no task is ready earlier.
    pub fn start(&self) -> Millis {
        self.start
    }

    /// Whether this node takes tasks of the job at all.
    pub fn active(&self) -> bool {
        self.active
    }

    /// The bucket of `task`: the same on every node.
    pub fn bucket(&self, task: u32) -> u32 {
        if task < self.maps {
            // The last bucket whose run starts at or before the task.
            let b = (u64::from(task) * u64::from(self.buckets) / u64::from(self.maps)) as u32;
            let mut b = b.min(self.buckets - 1);
            while self.run_start(b) > task {
                b -= 1;
            }
            while b + 1 < self.buckets && self.run_start(b + 1) <= task {
                b += 1;
            }
            b
        } else {
            (rendezvous::hash(&self.job, task, &NodeId::default()) as u32) & (self.buckets - 1)
        }
    }

    /// This node's rank for `task` (capped at [`RANK_CAP`]), as of the last claim.
    pub fn rank(&self, task: u32) -> usize {
        self.ranks.rank(self.bucket(task))
    }

    /// Applies the candidate changes not yet applied (ranks are otherwise brought up to date
    /// when tasks are next taken).
    pub fn settle_ranks(&mut self) {
        self.settle();
    }

    /// Whether candidate `id` of weight `weight` outranks this node for `task`.
    pub fn outranks_me(&self, id: &NodeId, weight: u32, task: u32) -> bool {
        self.ranks
            .candidate_outranks_once(id, weight, self.bucket(task))
    }

    /// A candidate other than this node joins (`joined`) or leaves the ranking. Applied when
    /// tasks are next taken.
    pub fn candidate_changed(&mut self, id: &NodeId, weight: u32, joined: bool) {
        if self.active {
            self.ranks.changed(id, weight, joined);
        }
    }

    /// Applies candidate changes, moving non-empty buckets between the rank classes.
    fn settle(&mut self) {
        for (b, before, after) in self.ranks.settle() {
            let bucket = &self.ready[b as usize];
            if bucket.next_map < bucket.end_map {
                self.classes[before].remove(&(self.start, b));
                self.classes[after].insert((self.start, b));
            }
            if let Some(&(since, _)) = bucket.later.front() {
                self.later_classes[before].remove(&(since, b));
                self.later_classes[after].insert((since, b));
            }
        }
    }

    /// How many of `voters` (id and weight) outrank this node for `task`: a replica of a task
    /// is offered that many steal delays early, since the members ahead of this node voted on
    /// it already and will not take it.
    pub fn ahead_of_me(&mut self, task: u32, voters: &[(NodeId, u32)]) -> usize {
        let b = self.bucket(task);
        voters
            .iter()
            .filter(|(id, w)| self.ranks.candidate_outranks(id, *w, b))
            .count()
    }

    /// Offers `task`, ready since `since` (a task that became ready after the start).
    pub fn push(&mut self, task: u32, since: Millis) {
        if !self.active() {
            return;
        }
        let b = self.bucket(task);
        let later = &mut self.ready[b as usize].later;
        let old_first = later.front().copied();
        if later.back().is_none_or(|&last| last <= (since, task)) {
            later.push_back((since, task));
        } else {
            let at = later.partition_point(|&e| e < (since, task));
            later.insert(at, (since, task));
        }
        if old_first.is_none_or(|first| (since, task) < first) {
            let c = self.ranks.rank(b);
            if let Some((s, _)) = old_first {
                self.later_classes[c].remove(&(s, b));
            }
            self.later_classes[c].insert((since, b));
        }
    }

    /// Removes and returns the earliest later entry of bucket `b`, of class `c`.
    fn pop_later(&mut self, b: u32, c: usize) -> (Millis, u32) {
        let later = &mut self.ready[b as usize].later;
        let (since, task) = later.pop_front().expect("listed buckets are non-empty");
        self.later_classes[c].remove(&(since, b));
        if let Some(&(next, _)) = later.front() {
            self.later_classes[c].insert((next, b));
        }
        (since, task)
    }

    /// Removes and returns the next map task of bucket `b`, of class `c`.
    fn pop_map(&mut self, b: u32, c: usize) -> (Millis, u32) {
        let bucket = &mut self.ready[b as usize];
        let task = bucket.next_map;
        bucket.next_map += 1;
        if bucket.next_map == bucket.end_map {
            self.classes[c].remove(&(self.start, b));
        }
        (self.start, task)
    }

    /// Takes up to `want` tasks this node may claim at `now`: those of its first-ranked buckets
    /// at once, those where it ranks `r` once ready for `r × steal_delay`; in each rank class
    /// the tasks that became ready later before the maps. `still_ready` says
    /// whether an entry is current. Returns the tasks and, if some are not yet eligible, when
    /// the earliest will be.
    pub fn take(
        &mut self,
        want: usize,
        now: Millis,
        steal_delay: Millis,
        mut still_ready: impl FnMut(u32, Millis) -> bool,
    ) -> (Vec<u32>, Option<Millis>) {
        self.settle();
        let mut out = Vec::new();
        let mut wake: Option<Millis> = None;
        for c in 0..=RANK_CAP {
            let delay = steal_delay * c as Millis;
            // Tasks that became ready later first (see the module's note), then maps.
            for later in [true, false] {
                while out.len() < want {
                    let set = if later {
                        &self.later_classes[c]
                    } else {
                        &self.classes[c]
                    };
                    let Some(&(since, b)) = set.first() else {
                        break;
                    };
                    if since + delay > now {
                        wake = Some(wake.map_or(since + delay, |w: Millis| w.min(since + delay)));
                        break;
                    }
                    let (since, task) = if later {
                        self.pop_later(b, c)
                    } else {
                        self.pop_map(b, c)
                    };
                    if still_ready(task, since) {
                        out.push(task);
                    }
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
                let mut q = ReadyQueue::new(job, total, total, 100, me, 1);
                for other in members.iter().filter(|o| *o != me) {
                    q.candidate_changed(other, 1, true);
                }
                q.settle();
                q
            })
            .collect()
    }

    #[test]
    fn every_task_has_one_bucket_and_map_runs_are_contiguous() {
        let q = ReadyQueue::new(JobId([1; 32]), 1000, 1334, 0, &NodeId([2; 32]), 1);
        let mut previous = 0;
        for t in 0..1000 {
            let b = q.bucket(t);
            assert!(b >= previous && b < 2048);
            assert!(q.run_start(b) <= t && t < q.run_start(b + 1));
            previous = b;
        }
        assert!((1000..1334).all(|t| q.bucket(t) < 2048));
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
            q.settle();
        }
        for t in victim_tasks {
            assert_eq!(qs[1..].iter().filter(|q| q.rank(t) == 0).count(), 1);
        }
    }

    #[test]
    fn a_task_ready_later_goes_before_the_maps_not_yet_taken() {
        // One member: every bucket is first-ranked. 40 maps, reduces from 40 on.
        let mut q = ReadyQueue::new(JobId([8; 32]), 40, 46, 100, &NodeId([1; 32]), 1);
        let (first, _) = q.take(4, 100, 250, |_, _| true);
        assert_eq!(first.len(), 4);
        assert!(first.iter().all(|&t| t < 40));
        // A reduce ready now, and one that will be ready only later (a lookup's wait).
        q.push(41, 150);
        q.push(42, 900);
        let (next, wake) = q.take(3, 200, 250, |_, _| true);
        assert_eq!(next[0], 41, "the ready reduce first: {next:?}");
        assert!(next[1..].iter().all(|&t| t < 40), "then maps: {next:?}");
        assert_eq!(wake, Some(900));
        let (rest, _) = q.take(100, 900, 250, |_, _| true);
        assert_eq!(rest[0], 42, "{rest:?}");
        assert_eq!(first.len() + next.len() + rest.len(), 42);
    }

    #[test]
    fn lower_ranked_tasks_wait_their_steal_delay() {
        let job = JobId([7; 32]);
        let members = ids(3);
        let mut q = queues(job, 32, &members).remove(0);
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
