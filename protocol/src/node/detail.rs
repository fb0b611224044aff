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
    /// Claimed by some member (running ones included).
    pub claimed: u32,
    /// Of `claimed`, those running: here, or on a member whose pulses say so.
    pub running: u32,
    pub done: u32,
}

/// What one node does for a job, as this node knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeTasks {
    pub node: NodeId,
    /// Tasks it claimed, not known to be running.
    pub claimed: u32,
    pub running: u32,
    /// Results it holds.
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

/// The levels of `tree`, none of their tasks done.
fn empty_levels(tree: &crate::tree::Tree) -> Vec<LevelProgress> {
    tree.levels()
        .iter()
        .enumerate()
        .map(|(level, &(_, tasks))| LevelProgress {
            level: level as u32,
            tasks,
            done: 0,
        })
        .collect()
}

/// The levels of the job's tree from those of the state machine's (`levels`, with their done
/// counts): the same unless its tasks run in runs, whose inner levels count the tasks inside
/// the runs done.
fn task_levels(job: &JobState, levels: Vec<LevelProgress>) -> Vec<LevelProgress> {
    let runs = job.runs;
    if !runs.fused() {
        return levels;
    }
    let mut inner = empty_levels(&job.spec.task_tree());
    inner.truncate(runs.depth() as usize);
    for leaf in (0..job.tree.maps()).filter(|&l| job.tasks[l as usize].is_done()) {
        let mut count = runs.tasks_of(leaf).len() as u32;
        for level in &mut inner {
            level.done += count;
            count = count.div_ceil(job.spec.fanin);
        }
    }
    let shifted = levels.into_iter().map(|l| LevelProgress {
        level: l.level + runs.depth(),
        ..l
    });
    inner.into_iter().chain(shifted).collect()
}

/// A job in detail. See the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobDetail {
    /// Map tasks per leaf of the state machine's tree: more than one for a job of many tiny
    /// tasks, claimed in runs ([`crate::runs`]). `tasks`, `grid` and `placement` count the
    /// state machine's tasks (runs, and the reduces above them); `tree` counts every task of
    /// the job's tree.
    pub tasks_per_run: u32,
    pub tasks: TaskCounts,
    pub tree: Vec<LevelProgress>,
    pub grid: TaskGrid,
    /// Who claimed, runs and holds what, busiest first.
    pub placement: Vec<NodeTasks>,
    /// Why what is not moving is not moving, in sentences.
    pub why: Vec<String>,
}

impl Node {
    /// A job in detail: tracked, or one of the last 32 this node submitted and
    /// stopped tracking (as they were when it did). `None` for a job this node does not know.
    pub fn job_detail(&self, id: &JobId) -> Option<JobDetail> {
        match self.jobs.get(id) {
            Some(job) => Some(self.detail_of(job)),
            None => self
                .ended_details
                .get(id)
                .cloned()
                .or_else(|| self.queued_detail(id)),
        }
    }

    /// The detail of a submission waiting for room in the job table: no task exists yet.
    fn queued_detail(&self, id: &JobId) -> Option<JobDetail> {
        let at = self.waiting.iter().position(|w| w.id == *id)?;
        let w = &self.waiting[at];
        let tree = w.spec.task_tree();
        Some(JobDetail {
            tasks_per_run: w.spec.runs().tasks_per_run(),
            tasks: TaskCounts::default(),
            tree: empty_levels(&tree),
            grid: TaskGrid {
                tasks_per_cell: 1,
                nodes: Vec::new(),
                cells: Vec::new(),
            },
            placement: Vec::new(),
            why: vec![format!(
                "queued: this node tracks {} jobs, its most; {at} submission(s) are ahead of this \
                 one (higher priority first, then the earliest), and it starts as others finish",
                self.jobs.len()
            )],
        })
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
        let mut tree = empty_levels(&job.tree);
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
        let mut placement: Vec<NodeTasks> = Vec::new();
        let mut place = |ix: PeerIx, view: &crate::view::View, f: &dyn Fn(&mut NodeTasks)| {
            let node = view.id(ix);
            let at = match placement.iter().position(|p| p.node == node) {
                Some(i) => i,
                None => {
                    placement.push(NodeTasks {
                        node,
                        claimed: 0,
                        running: 0,
                        done: 0,
                    });
                    placement.len() - 1
                }
            };
            f(&mut placement[at]);
        };
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
                    let running = if *by == crate::view::ME {
                        self.running.contains_key(&(job.id, t))
                    } else {
                        job.members.runs(*by, t)
                    };
                    counts.running += u32::from(running);
                    if running {
                        place(*by, &self.view, &|p| p.running += 1);
                    } else {
                        place(*by, &self.view, &|p| p.claimed += 1);
                    }
                    (CellState::Claimed, Some(*by))
                }
                TaskState::Done { holder, .. } => {
                    place(*holder, &self.view, &|p| p.done += 1);
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
        placement.sort_by(|a, b| {
            (b.running + b.claimed, b.done, a.node).cmp(&(a.running + a.claimed, a.done, b.node))
        });
        JobDetail {
            tasks_per_run: job.runs.tasks_per_run(),
            placement,
            tasks: counts,
            tree: task_levels(job, tree),
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
            JobStatus::WaitingForCapacity | JobStatus::Running | JobStatus::Queued { .. } => {}
        }
        // A need nobody meets is the reason; "no free slot" would only send the user looking
        // for capacity that would not help.
        self.why_needs(job, &mut why);
        let unmet = !why.is_empty();
        if view.status == JobStatus::WaitingForCapacity && !unmet {
            why.push(
                "no live member offers a free slot: the job waits for capacity (start a node with slots, or free some)"
                    .into(),
            );
        }
        self.why_priority(job, counts, &mut why);
        if job.submitter != crate::view::ME
            && job.holders.is_empty()
            && matches!(job.spec.input, crate::job::Input::Chunks { .. })
            && job.maps_done < job.tree.maps()
            && self.view.gone(job.submitter, self.view_now())
        {
            why.push(
                "the input's holder (the job's submitter) is unreachable: map tasks cannot fetch their chunks until it is back"
                    .into(),
            );
        }
        if crate::locality::kept_at_submitter(&job.spec)
            && counts.ready > 0
            && job.maps_done < job.tree.maps()
        {
            why.push(format!(
                "map tasks of a {} stay with the submitter, which holds the files (searching a byte costs less than sending it): another member takes them only once they have waited {} s for a busy submitter",
                job.spec.op.name(),
                crate::locality::LOCALITY_WAIT_MS / 1000
            ));
        }
        if !job.holders.is_empty() && job.maps_done < job.tree.maps() {
            let copies = u32::from(job.spec.keep.copies);
            let short = job.live_copies().filter(|&n| n < copies).count();
            if short > 0 && copies > 1 {
                why.push(format!(
                    "{short} piece(s) of the input are held by fewer than {copies} live members: members are copying them"
                ));
            }
            let lost = job
                .holders
                .iter()
                .filter(|h| !h.iter().any(|&ix| job.members.is_live(ix)))
                .count();
            let dataset = match &job.spec.input {
                crate::job::Input::Dataset(d) => Some(&d.name),
                _ => None,
            };
            match dataset {
                Some(name) if lost > 0 => why.push(format!(
                    "{lost} chunk(s) of dataset {name} have no live holder: the job fails if no \
                     node sharing their part is back within {} s",
                    super::PART_LOST_MS / 1000
                )),
                Some(name) if counts.ready > 0 => why.push(format!(
                    "map tasks of dataset {name} go to their parts' holders first: a node that \
                     does not hold a part takes its tasks only when no holder is live, or once \
                     they have waited {} s for busy holders",
                    crate::locality::LOCALITY_WAIT_MS / 1000
                )),
                Some(_) => {}
                None if lost > 0 => why.push(format!(
                    "{lost} piece(s) of the input have no live holder: their map tasks wait until a holder is back"
                )),
                None => {}
            }
        }
        if job.coordinator != job.submitter {
            why.push(format!(
                "the submitter {} went silent: {} coordinates the job as its successor",
                self.view.id(job.submitter),
                self.view.id(job.coordinator)
            ));
        }
        if job.declined > 0 {
            why.push(format!(
                "{} node(s) declined the job: they run only jobs from the submitters they list",
                job.declined
            ));
        }
        if counts.ready > 0 && !unmet {
            why.push(format!(
                "{} task(s) are ready and not yet claimed: no free slot (the members' slots are busy), or a claim is on its way",
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

    /// The needs of `job` that no live node of this node's view meets (this node included),
    /// each in a sentence.
    fn why_needs(&self, job: &JobState, why: &mut Vec<String>) {
        let needs = &job.spec.sched.needs;
        if needs.is_empty() {
            return;
        }
        let now = self.view_now();
        for unmet in self.unmet_needs(needs, now) {
            why.push(format!(
                "no live node meets the need {unmet}: the job waits for one (nodes advertise tags with `shoal node --tag NAME`; memory is what the node has)"
            ));
        }
    }

    /// The single needs of `needs` that neither this node nor any live peer meets.
    pub fn unmet_needs(
        &self,
        needs: &crate::schedule::Needs,
        now: crate::ids::Millis,
    ) -> Vec<crate::schedule::Unmet> {
        use crate::schedule::{Needs, Unmet};
        let mut singles: Vec<Needs> = needs
            .tags
            .iter()
            .map(|t| Needs {
                tags: vec![t.clone()],
                mem_mb: 0,
            })
            .collect();
        if needs.mem_mb > 0 {
            singles.push(Needs {
                tags: Vec::new(),
                mem_mb: needs.mem_mb,
            });
        }
        let met_here =
            |n: &Needs| n.slots(&self.tags, self.capacity.slots, self.capacity.mem_mb) > 0;
        singles
            .into_iter()
            .filter(|n| {
                !met_here(n)
                    && !self.view.live_peers(now).any(|(_, p)| {
                        n.slots(&p.advert.tags, p.advert.slots_total, p.advert.mem_mb) > 0
                    })
            })
            .filter_map(|n| match n.tags.first() {
                Some(t) => Some(Unmet::Tag(t.clone())),
                None => (n.mem_mb > 0).then_some(Unmet::Mem(n.mem_mb)),
            })
            .collect()
    }

    /// Higher-priority jobs that hold this node's slots while `job` has tasks ready.
    fn why_priority(&self, job: &JobState, counts: &TaskCounts, why: &mut Vec<String>) {
        if counts.ready == 0 {
            return;
        }
        let priority = job.spec.sched.priority;
        let ahead: Vec<String> = self
            .order
            .iter()
            .filter_map(|id| self.jobs.get(id))
            .filter(|j| j.spec.sched.priority > priority && !j.is_complete() && j.failed.is_none())
            .take(4)
            .map(|j| format!("{} (priority {})", j.id, j.spec.sched.priority))
            .collect();
        if !ahead.is_empty() {
            why.push(format!(
                "behind higher-priority job(s) {}: members start their tasks first",
                ahead.join(", ")
            ));
        }
    }
}
