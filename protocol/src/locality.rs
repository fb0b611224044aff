//! Locality-first claims for jobs over shared datasets, and for searches over their
//! submitter's files ([`kept_at_submitter`], the submitter as the one holder): the map tasks of
//! a part are ranked among the part's holders, so a holder claims them at once and reads its
//! own disk; a node that does not hold the part claims them only when no holder that takes
//! tasks is live, or once they have been ready for [`LOCALITY_WAIT_MS`] (the holders stayed
//! busy), and then fetches the chunk from a holder.
//!
//! Each part has its own [`ReadyQueue`] over its tasks (numbered from 0 inside the part). On a
//! holder its candidates are the part's live holders; on any other node, every candidate of the
//! job, so that the others take the tasks one by one, in rank order, once the wait is over.
//! The rank rules, the steal delay and the changes of candidates are the ready queue's.

use crate::dataset::Dataset;
use crate::ids::{JobId, Millis, NodeId};
use crate::job::{Input, JobSpec};
use crate::ready::ReadyQueue;

/// Whether the map tasks of a job over files go to its submitter first, the way a dataset's go
/// to its holders: when its operator costs less to run on a byte than sending the byte would
/// cost the submitter ([`crate::job::Operator::cheaper_than_sending`]), and the job asks
/// nothing that needs the input elsewhere (a second replica, a spot check, a second copy).
/// Others take the tasks only once they have waited [`LOCALITY_WAIT_MS`] for a busy submitter
/// (delay scheduling): a long job still spreads, a short one never ships its input.
pub fn kept_at_submitter(spec: &JobSpec) -> bool {
    matches!(spec.input, Input::Chunks { .. })
        && spec.op.cheaper_than_sending()
        && spec.trust.replicas <= 1
        && spec.trust.verify_ppm == 0
        && spec.keep.copies <= 1
}

/// How long a map task waits for its part's holders before a node that must fetch the chunk
/// may claim it. Long against a task (holders free a slot every few hundred milliseconds),
/// short against a job that would otherwise wait for one busy holder.
pub const LOCALITY_WAIT_MS: Millis = 5_000;

#[derive(Debug)]
struct LocalPart {
    first: u32,
    holders: Vec<NodeId>,
    /// Whether this node holds the part.
    mine: bool,
    /// Live holders other than this node that take tasks.
    live: usize,
    queue: ReadyQueue,
}

/// The ready map tasks of a job over a dataset, by part.
#[derive(Debug)]
pub struct Locality {
    parts: Vec<LocalPart>,
}

impl Locality {
    /// The map tasks of `dataset`, all ready from `start`; `my_weight` 0: this node takes none.
    pub fn new(job: JobId, dataset: &Dataset, start: Millis, me: &NodeId, my_weight: u32) -> Self {
        let parts = dataset.parts.iter().map(|p| (p.chunks, p.holders.clone()));
        Self::of_parts(job, parts, start, me, my_weight)
    }

    /// The `chunks` map tasks of a job over files its submitter `holder` holds, kept at the
    /// data (see [`kept_at_submitter`]), all ready from `start`.
    pub fn at_submitter(
        job: JobId,
        chunks: u32,
        holder: NodeId,
        start: Millis,
        me: &NodeId,
        my_weight: u32,
    ) -> Self {
        Self::of_parts(job, [(chunks, vec![holder])], start, me, my_weight)
    }

    fn of_parts(
        job: JobId,
        parts: impl IntoIterator<Item = (u32, Vec<NodeId>)>,
        start: Millis,
        me: &NodeId,
        my_weight: u32,
    ) -> Self {
        let mut first = 0;
        let parts = parts
            .into_iter()
            .map(|(chunks, holders)| {
                let part = LocalPart {
                    first,
                    mine: holders.contains(me),
                    holders,
                    live: 0,
                    queue: ReadyQueue::new(job, chunks, chunks, start, me, my_weight),
                };
                first += chunks;
                part
            })
            .collect();
        Self { parts }
    }

    /// The part of map task `task`.
    fn part(&self, task: u32) -> usize {
        self.parts
            .partition_point(|p| p.first <= task)
            .saturating_sub(1)
    }

    /// Offers map task `task` again, ready since `since`.
    pub fn push(&mut self, task: u32, since: Millis) {
        let i = self.part(task);
        let p = &mut self.parts[i];
        p.queue.push(task - p.first, since);
    }

    /// This node's rank for `task` (capped): among its part's holders if it holds the part,
    /// else among every candidate (and it waits [`LOCALITY_WAIT_MS`] more while a holder is
    /// live).
    pub fn rank(&self, task: u32) -> usize {
        let p = &self.parts[self.part(task)];
        p.queue.rank(task - p.first)
    }

    /// See [`ReadyQueue::ahead_of_me`].
    pub fn ahead_of_me(&mut self, task: u32, voters: &[(NodeId, u32)]) -> usize {
        let i = self.part(task);
        let p = &mut self.parts[i];
        let ranked: Vec<(NodeId, u32)> = voters
            .iter()
            .filter(|(id, _)| !p.mine || p.holders.contains(id))
            .copied()
            .collect();
        p.queue.ahead_of_me(task - p.first, &ranked)
    }

    /// A member other than this node joins (`joined`) or leaves the job's candidates. A holder
    /// ranks among the part's holders only; a node that does not hold the part ranks among
    /// every candidate, so that once the wait is over the others do not all claim its tasks
    /// at once (each task goes to the first-ranked of them, the next one a steal delay later).
    pub fn candidate_changed(&mut self, id: &NodeId, weight: u32, joined: bool) {
        for p in &mut self.parts {
            if weight == 0 {
                continue;
            }
            let holder = p.holders.contains(id);
            if holder || !p.mine {
                p.queue.candidate_changed(id, weight, joined);
            }
            if !holder {
                continue;
            }
            if joined {
                p.live += 1;
            } else {
                p.live = p.live.saturating_sub(1);
            }
        }
    }

    /// Takes up to `want` map tasks this node may claim at `now`: those of parts it holds by
    /// its rank among their holders, those of other parts by the same rule
    /// [`LOCALITY_WAIT_MS`] later while a holder is live. Returns the tasks and, if some are
    /// not yet eligible, when the earliest will be.
    pub fn take(
        &mut self,
        want: usize,
        now: Millis,
        steal_delay: Millis,
        mut still_ready: impl FnMut(u32, Millis) -> bool,
    ) -> (Vec<u32>, Option<Millis>) {
        let mut out = Vec::new();
        let mut wake: Option<Millis> = None;
        // Parts this node holds first: their tasks cost no transfer.
        let order = (0..self.parts.len())
            .filter(|&i| self.parts[i].mine)
            .chain((0..self.parts.len()).filter(|&i| !self.parts[i].mine));
        for i in order.collect::<Vec<_>>() {
            if out.len() >= want {
                break;
            }
            let p = &mut self.parts[i];
            let wait = if p.mine || p.live == 0 {
                0
            } else {
                LOCALITY_WAIT_MS
            };
            // Seen `wait` earlier, every task becomes eligible `wait` later than by rank alone.
            let first = p.first;
            let shifted = now.saturating_sub(wait);
            let (tasks, later) = p
                .queue
                .take(want - out.len(), shifted, steal_delay, |t, s| {
                    still_ready(t + first, s)
                });
            out.extend(tasks.into_iter().map(|t| t + first));
            if let Some(at) = later {
                let at = at + wait;
                wake = Some(wake.map_or(at, |w: Millis| w.min(at)));
            }
        }
        (out, wake)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::Part;
    use crate::ids::BlobHash;

    fn id(b: u8) -> NodeId {
        NodeId([b; 32])
    }

    fn dataset() -> Dataset {
        Dataset {
            name: "logs".into(),
            parts: vec![
                Part {
                    manifest: BlobHash([1; 32]),
                    chunks: 6,
                    bytes: 60,
                    holders: vec![id(1)],
                },
                Part {
                    manifest: BlobHash([2; 32]),
                    chunks: 4,
                    bytes: 40,
                    holders: vec![id(2), id(3)],
                },
            ],
        }
    }

    /// Each node's queue, with every other node a live member of weight 1.
    fn queues(start: Millis) -> Vec<(NodeId, Locality)> {
        let nodes = [id(1), id(2), id(3), id(4)];
        nodes
            .iter()
            .map(|me| {
                let mut l = Locality::new(JobId([9; 32]), &dataset(), start, me, 1);
                for other in nodes.iter().filter(|n| *n != me) {
                    l.candidate_changed(other, 1, true);
                }
                (*me, l)
            })
            .collect()
    }

    #[test]
    fn holders_take_their_parts_at_once_and_strangers_only_after_the_wait() {
        let mut qs = queues(1_000);
        let mut taken = std::collections::BTreeMap::new();
        // Before any steal delay and the locality wait: each task goes to its first-ranked
        // holder, and to nobody else.
        let now = 1_000;
        for (me, q) in &mut qs {
            let (tasks, _) = q.take(100, now, 250, |_, _| true);
            for t in tasks {
                assert!(taken.insert(t, *me).is_none(), "task {t} taken twice");
            }
        }
        assert_eq!(taken.len(), 10, "every task taken by a holder");
        for (t, by) in &taken {
            let holders = if *t < 6 {
                vec![id(1)]
            } else {
                vec![id(2), id(3)]
            };
            assert!(holders.contains(by), "task {t} went to a non-holder");
        }
    }

    #[test]
    fn a_stranger_takes_a_part_whose_holders_are_gone_at_once_and_a_busy_one_later() {
        let mut qs = queues(1_000);
        let (_, stranger) = &mut qs[3];
        let (tasks, wake) = stranger.take(100, 1_000, 250, |_, _| true);
        assert!(tasks.is_empty());
        assert!(wake.unwrap() >= 1_000 + LOCALITY_WAIT_MS);
        // Part 0's one holder leaves: its tasks are the stranger's (after its rank's delay).
        stranger.candidate_changed(&id(1), 1, false);
        let (mut tasks, _) = stranger.take(100, 1_000 + 4 * 250, 250, |_, _| true);
        tasks.sort_unstable();
        assert_eq!(tasks, (0..6).collect::<Vec<_>>());
        // Part 1's holders are live but busy: the stranger waits them out.
        let (mut tasks, _) =
            stranger.take(100, 1_000 + LOCALITY_WAIT_MS + 4 * 250, 250, |_, _| true);
        tasks.sort_unstable();
        assert_eq!(tasks, (6..10).collect::<Vec<_>>());
    }

    fn spec(op: crate::job::Operator) -> JobSpec {
        JobSpec::new(
            op,
            Input::Chunks {
                manifest: BlobHash([7; 32]),
                chunks: 8,
                bytes: 800,
            },
            4,
        )
    }

    #[test]
    fn a_search_stays_at_its_submitter_files_unless_its_input_must_travel_anyway() {
        let grep = spec(crate::job::Operator::Grep {
            pattern: "x".into(),
        });
        assert!(kept_at_submitter(&grep));
        assert!(
            !kept_at_submitter(&spec(crate::job::Operator::WordCount)),
            "counting a byte costs more than sending it: a word count spreads"
        );
        let mut replicated = grep.clone();
        replicated.trust.replicas = 2;
        let mut checked = grep.clone();
        checked.trust.verify_ppm = 100_000;
        let mut durable = grep.clone();
        durable.keep.copies = 2;
        for s in [replicated, checked, durable] {
            assert!(!kept_at_submitter(&s), "{s:?}");
        }
    }

    #[test]
    fn the_submitter_takes_a_kept_job_s_maps_at_once_and_others_after_the_wait() {
        let job = JobId([9; 32]);
        let submitter = id(1);
        let mut own = Locality::at_submitter(job, 8, submitter, 1_000, &submitter, 2);
        let mut other = Locality::at_submitter(job, 8, submitter, 1_000, &id(2), 2);
        own.candidate_changed(&id(2), 2, true);
        other.candidate_changed(&submitter, 2, true);
        let (mut mine, _) = own.take(100, 1_000, 250, |_, _| true);
        mine.sort_unstable();
        assert_eq!(mine, (0..8).collect::<Vec<_>>());
        let (early, wake) = other.take(100, 1_000 + LOCALITY_WAIT_MS - 1, 250, |_, _| true);
        assert!(early.is_empty(), "{early:?}");
        assert!(wake.unwrap() >= 1_000 + LOCALITY_WAIT_MS);
        let (late, _) = other.take(100, 1_000 + LOCALITY_WAIT_MS + 250, 250, |_, _| true);
        assert_eq!(
            late.len(),
            8,
            "a busy submitter's tasks spread after the wait"
        );
        // A submitter that gives the job no slots holds nobody up.
        let mut idle = Locality::at_submitter(job, 8, submitter, 1_000, &id(2), 2);
        idle.candidate_changed(&submitter, 0, true);
        let (at_once, _) = idle.take(100, 1_000 + 250, 250, |_, _| true);
        assert_eq!(at_once.len(), 8);
    }

    #[test]
    fn after_the_wait_the_others_take_a_kept_job_s_maps_one_at_a_time_by_rank() {
        let job = JobId([9; 32]);
        let submitter = id(1);
        let nodes: Vec<NodeId> = (1..=6).map(id).collect();
        let mut taken = std::collections::BTreeMap::new();
        for me in &nodes[1..] {
            let mut q = Locality::at_submitter(job, 64, submitter, 1_000, me, 1);
            for other in nodes.iter().filter(|n| *n != me) {
                q.candidate_changed(other, 1, true);
            }
            let (tasks, _) = q.take(100, 1_000 + LOCALITY_WAIT_MS, 250, |_, _| true);
            for t in tasks {
                assert!(
                    taken.insert(t, *me).is_none(),
                    "task {t} claimed by two members the moment the wait ended"
                );
            }
        }
        assert!(!taken.is_empty(), "the first-ranked others take tasks");
    }
}
