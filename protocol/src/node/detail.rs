//! One job in detail, for the dashboard's job page and for saying why a job is not moving:
//! its tasks by state, the reduction tree level by level, a grid of cells (a cell per task,
//! or per run of tasks in a large job) with the node that claimed or holds each, and reasons.

use super::Node;
use crate::effects::JobStatus;
use crate::ids::{JobId, NodeId};

use crate::job_state::{JobState, TaskState};
use crate::view::PeerIx;
use serde::Serialize;

/// Most cells a grid has: a larger job's consecutive tasks share a cell.
pub const GRID_CELLS_MAX: u32 = 4096;
/// Details kept of jobs this node no longer tracks (each at most [`GRID_CELLS_MAX`] cells).
pub(super) const DETAILS_KEPT: usize = 32;

/// A job's tasks by state, as this node knows them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TaskCounts {
    /// Reduce tasks whose children are not all done.
    pub waiting: u32,
    /// Claimable, not claimed.
    pub ready: u32,
    /// Claimed (and perhaps running) by some member.
    pub claimed: u32,
    pub done: u32,
}

/// One level of the reduction tree (level 0: the map tasks; the last: the root).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LevelProgress {
    pub level: u32,
    pub tasks: u32,
    pub done: u32,
}

/// The state of a grid cell: its least advanced task's, except that a cell with any claimed
/// task shows claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum CellState {
    Waiting = 0,
    Ready = 1,
    Claimed = 2,
    Done = 3,
}

/// The tasks of a job laid out for display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskGrid {
    pub tasks_per_cell: u32,
    /// The nodes cells refer to.
    pub nodes: Vec<NodeId>,
    /// Per cell: its state and the index in `nodes` of who claimed or holds it.
    pub cells: Vec<(CellState, Option<u32>)>,
}

/// A job in detail. See the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobDetail {
    pub tasks: TaskCounts,
    pub tree: Vec<LevelProgress>,
    pub grid: TaskGrid,
    /// Why what is not moving is not moving, in sentences.
    pub why: Vec<String>,
}

impl Node {
    /// A job in detail: tracked, or one of the last 32 this node submitted and
    /// stopped tracking (as they were when it did). `None` for a job this node does not know.
    pub fn job_detail(&self, id: &JobId) -> Option<JobDetail> {
        match self.jobs.get(id) {
            Some(job) => Some(self.detail_of(job)),
            None => self.ended_details.get(id).cloned(),
        }
    }

    /// Keeps the detail of a job this node stops tracking.
    pub(super) fn keep_detail(&mut self, id: JobId) {
        if let Some(job) = self.jobs.get(&id) {
            let detail = self.detail_of(job);
            self.ended_details.insert(id, detail);
        }
    }

    fn detail_of(&self, job: &JobState) -> JobDetail {
        let total = job.total();
        let mut counts = TaskCounts::default();
        let mut tree: Vec<LevelProgress> = job
            .tree
            .levels()
            .iter()
            .enumerate()
            .map(|(level, &(_, tasks))| LevelProgress {
                level: level as u32,
                tasks,
                done: 0,
            })
            .collect();
        let per_cell = total.div_ceil(GRID_CELLS_MAX).max(1);
        let mut nodes: Vec<NodeId> = Vec::new();
        let mut index_of = |ix: PeerIx, view: &crate::view::View| -> u32 {
            let id = view.id(ix);
            match nodes.iter().position(|n| *n == id) {
                Some(i) => i as u32,
                None => {
                    nodes.push(id);
                    (nodes.len() - 1) as u32
                }
            }
        };
        let mut cells: Vec<(CellState, Option<u32>)> =
            Vec::with_capacity(total.div_ceil(per_cell) as usize);
        let mut level = 0;
        for (t, state) in job.tasks.iter().enumerate() {
            let t = t as u32;
            while t >= tree[level].tasks + job.tree.levels()[level].0 {
                level += 1;
            }
            let (cell, who) = match state {
                TaskState::Waiting { .. } => {
                    counts.waiting += 1;
                    (CellState::Waiting, None)
                }
                TaskState::Ready { .. } => {
                    counts.ready += 1;
                    (CellState::Ready, None)
                }
                TaskState::Claimed { by, .. } => {
                    counts.claimed += 1;
                    (CellState::Claimed, Some(*by))
                }
                TaskState::Done { holder, .. } => {
                    counts.done += 1;
                    tree[level].done += 1;
                    (CellState::Done, Some(*holder))
                }
                TaskState::DoneElsewhere => {
                    counts.done += 1;
                    tree[level].done += 1;
                    (CellState::Done, None)
                }
            };
            let who = who.map(|ix| index_of(ix, &self.view));
            if t.is_multiple_of(per_cell) {
                cells.push((cell, who));
            } else if let Some(last) = cells.last_mut() {
                // A cell shows claimed if any of its tasks is, else its least advanced task.
                let merged = if last.0 == CellState::Claimed || cell == CellState::Claimed {
                    CellState::Claimed
                } else {
                    last.0.min(cell)
                };
                *last = (merged, last.1.or(who));
            }
        }
        let why = self.why_not_moving(job, &counts);
        JobDetail {
            tasks: counts,
            tree,
            grid: TaskGrid {
                tasks_per_cell: per_cell,
                nodes,
                cells,
            },
            why,
        }
    }

    /// Reasons, in words, for what of `job` is not moving.
    fn why_not_moving(&self, job: &JobState, counts: &TaskCounts) -> Vec<String> {
        let mut why = Vec::new();
        let view = self.job_view(job);
        match &view.status {
            JobStatus::Complete => return why,
            JobStatus::Failed(e) => {
                why.push(format!("the job failed: {e}"));
                return why;
            }
            JobStatus::WaitingForCapacity => why.push(
                "no live member offers a free slot: the job waits for capacity (start a node with slots, or free some)"
                    .into(),
            ),
            JobStatus::Running => {}
        }
        if job.declined > 0 {
            why.push(format!(
                "{} node(s) declined the job: they run only jobs from the submitters they list",
                job.declined
            ));
        }
        if counts.ready > 0 {
            why.push(format!(
                "{} task(s) are ready and not yet claimed: the members' slots are busy, or a claim is on its way",
                counts.ready
            ));
        }
        if counts.waiting > 0 {
            why.push(format!(
                "{} reduce task(s) wait for their children's results",
                counts.waiting
            ));
        }
        let replicas = usize::from(job.spec.trust.replicas);
        let computers = job.members.live_candidates() + usize::from(job.takes_tasks());
        if replicas > 1 && computers < replicas {
            why.push(format!(
                "each task needs {replicas} agreeing results from distinct members, and only \
                 {computers} live member(s) can compute (suspects excluded): the quorum cannot \
                 be reached until more nodes join"
            ));
        }
        let (mut voting, mut exhausted) = (0, 0);
        for (task, _) in job.votes.open() {
            voting += 1;
            exhausted += usize::from(job.votes.exhausted(task));
        }
        if !job.lost_votes.is_empty() {
            why.push(format!(
                "{} member(s) reported results that lost a vote: they are suspects, get no more \
                 tasks, and their results are not counted",
                job.lost_votes.len()
            ));
        }
        if voting > 0 {
            why.push(format!(
                "{voting} task(s) have results that do not settle them yet: they wait for \
                 further replicas (or the submitter's spot-check decision)"
            ));
        }
        if exhausted > 0 {
            why.push(format!(
                "{exhausted} task(s) took {} results without a majority of two agreeing: \
                 nothing can settle them",
                crate::quorum::MAX_VOTES
            ));
        }
        let attempts: u32 = job.attempts.values().copied().max().unwrap_or(0);
        if attempts > 0 {
            why.push(format!(
                "a task has failed {attempts} time(s) of {}; the job fails at {}",
                self.cfg.max_attempts, self.cfg.max_attempts
            ));
        }
        why
    }
}
