//! Read-only views of the machine: for the driver's API, status displays and diagnostics.

use super::Node;
use crate::effects::{JobStatus, JobView, PeerStatus};
use crate::ids::{JobId, Millis, NodeId};
use crate::job_state::{JobState, TaskState};
use crate::wire::ResultRef;

/// How full the machine's tables keyed by what peers send are (each has a bound).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct TableSizes {
    /// Peers ever heard from (interned), at most [`crate::view::MAX_PEERS`].
    pub peers_interned: usize,
    /// Jobs tracked, at most [`crate::Config::max_jobs`].
    pub jobs: usize,
    /// Ends of jobs remembered, at most 1024.
    pub finished: usize,
    /// Messages kept for a subscriber, at most [`super::UNHEARD_MAX`].
    pub unheard: usize,
}

impl Node {
    /// How full the bounded tables are: for metrics, and for tests that flood them.
    pub fn table_sizes(&self) -> TableSizes {
        TableSizes {
            peers_interned: self.view.interned(),
            jobs: self.jobs.len(),
            finished: self.finished.len(),
            unheard: self.unheard.len(),
        }
    }

    /// Whether `peer` was heard from and has since gone silent: asking it for anything is
    /// futile. A peer never heard from is not "gone".
    pub fn peer_gone(&self, peer: &NodeId, now: Millis) -> bool {
        self.view
            .lookup(peer)
            .is_some_and(|ix| self.view.gone(ix, now))
    }

    /// Whether `peer` may be given job `job`'s data (its input chunks, module and results):
    /// it is the job's submitter, or a member the submitter announced. A peer that only spoke
    /// on the job's topic is not.
    pub fn may_receive(&self, job: &JobId, peer: &NodeId) -> bool {
        let (Some(j), Some(ix)) = (self.jobs.get(job), self.view.lookup(peer)) else {
            return false;
        };
        ix == j.submitter || ix == j.coordinator || j.members.get(ix).is_some_and(|m| m.announced)
    }

    /// Whether this node tracks job `id` (runs it, coordinates it or takes part in it).
    pub fn tracks(&self, id: &JobId) -> bool {
        self.jobs.contains_key(id)
    }

    /// The root result of a tracked job, if this node knows it is done: where to get it.
    pub fn root_result(&self, id: &JobId) -> Option<(ResultRef, NodeId)> {
        let job = self.jobs.get(id)?;
        match &job.tasks[job.tree.root() as usize] {
            TaskState::Done { holder, result } => Some((result.clone(), self.view.id(*holder))),
            _ => None,
        }
    }

    /// (map tasks done, map tasks) of a tracked job: cheap, unlike [`Node::job_status`].
    pub fn map_progress(&self, id: &JobId) -> Option<(u32, u32)> {
        self.jobs.get(id).map(|j| (j.maps_done, j.tree.maps()))
    }

    /// For a tracked job, its reduction tree and, per task, whether this node can give the
    /// task's result to the others (a result sent inline, which it heard, or a blob it holds):
    /// what the simulator checks a job whose input is gone against.
    pub fn results_here(&self, id: &JobId) -> Option<(crate::tree::Tree, Vec<bool>)> {
        let job = self.jobs.get(id)?;
        let here = job
            .tasks
            .iter()
            .map(|state| match state {
                TaskState::Done {
                    result: ResultRef::Blob { .. },
                    holder,
                } => *holder == crate::view::ME,
                TaskState::Done { .. } => true,
                _ => false,
            })
            .collect();
        Some((job.tree.clone(), here))
    }

    /// A one-line summary of a tracked job's task states, for diagnosing stuck runs.
    pub fn debug_job(&self, id: &JobId, now: Millis) -> String {
        let Some(job) = self.jobs.get(id) else {
            return "not tracked".into();
        };
        let (mut waiting, mut ready, mut elsewhere) = (0, 0, 0);
        let mut claimed = Vec::new();
        let mut first_ready = Vec::new();
        for (t, state) in job.tasks.iter().enumerate() {
            match state {
                TaskState::Waiting { .. } => waiting += 1,
                TaskState::Ready { .. } => {
                    ready += 1;
                    if first_ready.len() < 5 {
                        first_ready.push((t, job.rank(t as u32)));
                    }
                }
                TaskState::Claimed { by, at } if claimed.len() < 5 => claimed.push(format!(
                    "{t} by {} (member live {}, at {at}, queued here {})",
                    self.view.id(*by),
                    job.members.is_live(*by),
                    self.queued.contains(&(*id, t as u32))
                        || self.running.contains_key(&(*id, t as u32)),
                )),
                TaskState::DoneElsewhere => elsewhere += 1,
                _ => {}
            }
        }
        // The reduce tasks not done yet, with how this node knows each child: what a stalled
        // job is waiting for.
        let open: Vec<String> = (0..job.total())
            .filter(|&t| !job.tree.is_map(t) && !job.tasks[t as usize].is_done())
            .take(5)
            .map(|t| {
                let children: Vec<String> = job
                    .tree
                    .children(t)
                    .map(|c| match &job.tasks[c as usize] {
                        TaskState::Done { holder, result } => format!(
                            "{c}: done, held by {}{}",
                            self.view.id(*holder),
                            if matches!(result, ResultRef::Blob { .. }) {
                                ""
                            } else {
                                " (inline)"
                            }
                        ),
                        TaskState::DoneElsewhere => format!("{c}: done elsewhere"),
                        other => format!("{c}: {other:?}"),
                    })
                    .collect();
                format!("{t} <- [{}]", children.join(", "))
            })
            .collect();
        format!(
            "done {}/{} (elsewhere {elsewhere}), waiting {waiting}, ready {ready} (task, rank) {first_ready:?}, claimed {claimed:?}, open reduces {open:?}, failed {:?}, members {} ({} live candidates), queue {}, running {}, now {now}",
            job.done,
            job.total(),
            job.failed,
            job.members.len(),
            job.members.live_candidates(),
            self.queue.len(),
            self.running.len()
        )
    }

    /// The members of a tracked job as this node knows them, each with whether it is live
    /// (for diagnostics and the simulator's checks).
    pub fn job_members(&self, id: &JobId) -> Vec<(NodeId, bool)> {
        self.jobs.get(id).map_or_else(Vec::new, |job| {
            job.members.iter().map(|m| (m.id, m.live)).collect()
        })
    }

    /// Status of one job, tracked or recently finished.
    pub fn job_status(&self, id: &JobId) -> Option<JobView> {
        if let Some(job) = self.jobs.get(id) {
            return Some(self.job_view(job));
        }
        if let Some(at) = self.waiting.iter().position(|w| w.id == *id) {
            return Some(self.queued_view(at));
        }
        self.finished.get(id).and_then(|f| f.view.clone())
    }

    /// The view of the submission `at` places from the front of the waiting queue.
    fn queued_view(&self, at: usize) -> JobView {
        let w = &self.waiting[at];
        let tree = w.spec.task_tree();
        JobView {
            id: w.id,
            op: w.spec.op.name(),
            maps: tree.maps(),
            total: tree.total(),
            done: 0,
            maps_done: 0,
            depth: tree.depth(),
            submitter: self.id(),
            status: JobStatus::Queued { ahead: at as u32 },
            workers: Vec::new(),
            members: 0,
            local: Default::default(),
            input: crate::effects::InputSize::of(&w.spec.input),
            replicas: w.spec.trust.replicas,
            suspects: Vec::new(),
            priority: w.spec.sched.priority,
            needs: w.spec.sched.needs.clone(),
            coordinator: self.id(),
            copies: w.spec.keep.copies,
            copies_held: 0,
            reused: 0,
            bytes_moved: 0,
            at_data: 0,
            alone: false,
        }
    }

    /// How many submissions wait for room in the job table.
    pub fn queued_jobs(&self) -> usize {
        self.waiting.len()
    }

    /// All tracked and recently finished jobs.
    pub fn jobs(&self) -> Vec<JobView> {
        let mut out: Vec<JobView> = self
            .order
            .iter()
            .filter_map(|id| self.jobs.get(id))
            .map(|j| self.job_view(j))
            .collect();
        out.extend((0..self.waiting.len()).map(|at| self.queued_view(at)));
        out.extend(self.finished.iter().filter_map(|(_, end)| end.view.clone()));
        out
    }

    /// Live peers of the view (not this node) with their adverts.
    /// The ids of the peers this node knows to be live (a cheap [`Node::peers`]).
    pub fn live_peer_ids(&self, now: Millis) -> impl Iterator<Item = NodeId> + '_ {
        self.view.live_peers(now).map(|(id, _)| id)
    }

    pub fn peers(&self, now: Millis) -> Vec<PeerStatus> {
        self.view
            .live_peers(now)
            .map(|(id, p)| PeerStatus {
                id,
                slots_total: p.advert.slots_total,
                slots_free: p.advert.slots_free,
                cores: p.advert.cores,
                mem_mb: p.advert.mem_mb,
                load_milli: p.advert.load_milli,
                age_ms: now.saturating_sub(p.last_seen),
                suspect_ms: self
                    .suspects
                    .get(&id)
                    .map_or(0, |s| s.until.saturating_sub(now)),
                lost_votes: self.suspects.get(&id).map_or(0, |s| s.lost),
                tags: p.advert.tags.clone(),
            })
            .collect()
    }

    /// Free slots this node advertises.
    pub fn free_slots(&self) -> u32 {
        self.capacity
            .slots
            .saturating_sub(self.running.len() as u32)
    }

    pub(super) fn job_view(&self, job: &JobState) -> JobView {
        let status = if let Some(e) = &job.failed {
            JobStatus::Failed(e.clone())
        } else if job.is_complete() {
            JobStatus::Complete
        } else if !job.takes_tasks() && job.members.live_candidates() == 0 {
            JobStatus::WaitingForCapacity
        } else {
            JobStatus::Running
        };
        let mut workers: Vec<(NodeId, u32)> = job
            .completions
            .iter()
            .map(|(&ix, &n)| (self.view.id(ix), n))
            .collect();
        workers.sort();
        // Counted in the job's tasks: a run counts for every task in it.
        let tree = job.spec.task_tree();
        JobView {
            id: job.id,
            op: job.spec.op.name(),
            maps: tree.maps(),
            total: tree.total(),
            done: job.tree_done.0,
            maps_done: job.tree_done.1,
            depth: tree.depth(),
            submitter: self.view.id(job.submitter),
            status,
            workers,
            members: job.members.len() as u32 + 1,
            local: job.local_tasks(),
            input: crate::effects::InputSize::of(&job.spec.input),
            replicas: job.spec.trust.replicas,
            suspects: job
                .lost_votes
                .iter()
                .map(|(&ix, &n)| (self.view.id(ix), n))
                .collect(),
            priority: job.spec.sched.priority,
            needs: job.spec.sched.needs.clone(),
            coordinator: self.view.id(job.coordinator),
            copies: job.spec.keep.copies,
            copies_held: job.copies_held(),
            reused: job.reused,
            bytes_moved: job.bytes_moved,
            at_data: job.at_data,
            alone: job.alone,
        }
    }
}
