//! One job as one node sees it: the state of every task, and the claimable tasks bucketed by
//! this node's rendezvous rank.

use crate::effects::LocalTasks;
use crate::ids::{JobId, Millis};
use crate::job::JobSpec;
use crate::rendezvous;
use crate::tree::Tree;
use crate::view::{ME, PeerIx, View};
use crate::wire::ResultRef;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// Ranks at or beyond this share one bucket: they all wait the longest before stealing.
pub const RANK_CAP: usize = 4;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskState {
    /// A reduce task that cannot run yet: `left` of its children have no known result here.
    Waiting { left: u32 },
    /// Claimable since `since`.
    Ready { since: Millis },
    /// Claimed by a peer, last (re)claimed at `at`.
    Claimed { by: PeerIx, at: Millis },
    /// Done; the result is inline or held by `holder`.
    Done { holder: PeerIx, result: ResultRef },
    /// Done according to the submitter's summary; who holds the result is not known here.
    DoneElsewhere,
}

impl TaskState {
    pub fn is_done(&self) -> bool {
        matches!(self, TaskState::Done { .. } | TaskState::DoneElsewhere)
    }
}

#[derive(Debug)]
pub struct JobState {
    pub id: JobId,
    pub spec: Arc<JobSpec>,
    pub submitter: PeerIx,
    pub epoch: u64,
    pub tree: Tree,
    pub tasks: Vec<TaskState>,
    pub done: u32,
    /// Of `done`, how many are map tasks.
    pub maps_done: u32,
    /// Ready tasks as (ready since, task), by this node's rank for them. Entries may be stale:
    /// they are checked against `tasks` when taken.
    open: Vec<BTreeSet<(Millis, u32)>>,
    open_version: u64,
    pub attempts: HashMap<u32, u32>,
    pub failed: Option<String>,
    pub last_progress: Millis,
    /// Fresh completions per holder: how the work was spread.
    pub completions: HashMap<PeerIx, u32>,
    /// The submitter asked for the root result and waits for it.
    pub collecting: bool,
}

impl JobState {
    /// Counts the tasks this node runs or holds the only copy of.
    pub fn local_tasks(&self) -> LocalTasks {
        let mut local = LocalTasks::default();
        let root = self.tree.root();
        for (t, state) in self.tasks.iter().enumerate() {
            let mine = match state {
                TaskState::Claimed { by, .. } => {
                    local.running += u32::from(*by == ME);
                    *by == ME
                }
                TaskState::Done {
                    holder,
                    result: ResultRef::Blob { .. },
                } => {
                    local.holding += u32::from(*holder == ME);
                    *holder == ME
                }
                _ => false,
            };
            let t = t as u32;
            if mine && !self.tree.is_map(t) && t != root {
                local.interior += 1;
            }
        }
        local
    }

    pub fn new(spec: JobSpec, submitter: PeerIx, epoch: u64, now: Millis) -> Self {
        let tree = Tree::new(spec.map_tasks(), spec.fanin);
        let tasks = (0..tree.total())
            .map(|t| {
                if tree.is_map(t) {
                    TaskState::Ready { since: now }
                } else {
                    TaskState::Waiting {
                        left: tree.children(t).len() as u32,
                    }
                }
            })
            .collect();
        Self {
            id: spec.id(),
            spec: Arc::new(spec),
            submitter,
            epoch,
            tree,
            tasks,
            done: 0,
            maps_done: 0,
            open: vec![BTreeSet::new(); RANK_CAP + 1],
            open_version: u64::MAX,
            attempts: HashMap::new(),
            failed: None,
            last_progress: now,
            completions: HashMap::new(),
            collecting: false,
        }
    }

    pub fn total(&self) -> u32 {
        self.tree.total()
    }

    pub fn is_complete(&self) -> bool {
        self.tasks[self.tree.root() as usize].is_done()
    }

    /// This node's rank for `task` among the claim candidates, capped at [`RANK_CAP`].
    fn rank(&self, task: u32, view: &View) -> usize {
        let me = view.id(ME);
        let mine = rendezvous::score(&self.id, task, &me, view.my_weight());
        let mut rank = 0;
        for &(ix, w) in view.candidates() {
            if ix != ME && rendezvous::score(&self.id, task, &view.id(ix), w) > mine {
                rank += 1;
                if rank == RANK_CAP {
                    break;
                }
            }
        }
        rank
    }

    fn push_open(&mut self, task: u32, since: Millis, view: &View) {
        if view.my_weight() == 0 {
            return;
        }
        let rank = self.rank(task, view);
        self.open[rank].insert((since, task));
    }

    /// Rebuilds the rank buckets when the candidate set changed since they were built.
    fn refresh_open(&mut self, view: &View) {
        if self.open_version == view.version() {
            return;
        }
        self.open_version = view.version();
        for bucket in &mut self.open {
            bucket.clear();
        }
        for t in 0..self.total() {
            if let TaskState::Ready { since } = self.tasks[t as usize] {
                self.push_open(t, since, view);
            }
        }
    }

    /// Adjusts the done counters for `task` by `delta` (+1 or -1).
    fn count_done(&mut self, task: u32, delta: i32) {
        self.done = self.done.wrapping_add_signed(delta);
        if self.tree.is_map(task) {
            self.maps_done = self.maps_done.wrapping_add_signed(delta);
        }
    }

    /// Children of `task` whose result is not known here (not done, or done elsewhere with an
    /// unknown holder). A reduce task can run only when this is zero.
    fn children_missing(&self, task: u32) -> u32 {
        self.tree
            .children(task)
            .filter(|&c| !matches!(self.tasks[c as usize], TaskState::Done { .. }))
            .count() as u32
    }

    /// Puts a task that is not done back in play: ready if it can run (a map task, or a reduce
    /// task with every child's result known), else waiting. Every path that reopens a task goes
    /// through here, so a node never claims a task it cannot start.
    pub fn reopen(&mut self, task: u32, now: Millis, view: &View) {
        match self.children_missing(task) {
            0 => self.make_ready(task, now, view),
            left => self.tasks[task as usize] = TaskState::Waiting { left },
        }
    }

    /// Marks `task` ready (again) from `now`.
    fn make_ready(&mut self, task: u32, now: Millis, view: &View) {
        self.tasks[task as usize] = TaskState::Ready { since: now };
        if self.open_version == view.version() {
            self.push_open(task, now, view);
        }
    }

    /// Takes up to `want` tasks this node may claim at `now`: its rank-0 tasks at once, rank-r
    /// tasks once they have been ready for `r * steal_delay`. Returns the tasks and, if some are
    /// not yet eligible, when the earliest will be.
    pub fn take_claimable(
        &mut self,
        want: usize,
        now: Millis,
        steal_delay: Millis,
        view: &View,
    ) -> (Vec<u32>, Option<Millis>) {
        self.refresh_open(view);
        let mut out = Vec::new();
        let mut wake: Option<Millis> = None;
        for rank in 0..=RANK_CAP {
            let delay = steal_delay * rank as Millis;
            while out.len() < want {
                let Some(&(since, task)) = self.open[rank].first() else {
                    break;
                };
                if since + delay > now {
                    wake = Some(wake.map_or(since + delay, |w: Millis| w.min(since + delay)));
                    break;
                }
                self.open[rank].pop_first();
                if self.tasks[task as usize] == (TaskState::Ready { since }) {
                    out.push(task);
                }
            }
        }
        (out, wake)
    }

    /// Records a completion. Returns whether it was news.
    pub fn record_done(
        &mut self,
        task: u32,
        holder: PeerIx,
        result: ResultRef,
        now: Millis,
        view: &View,
    ) -> bool {
        let was_elsewhere = match self.tasks[task as usize] {
            TaskState::Done { .. } => return false,
            TaskState::DoneElsewhere => true,
            _ => false,
        };
        if !was_elsewhere {
            self.count_done(task, 1);
            *self.completions.entry(holder).or_insert(0) += 1;
        }
        self.last_progress = now;
        self.tasks[task as usize] = TaskState::Done { holder, result };
        if let Some(parent) = self.tree.parent(task)
            && let TaskState::Waiting { .. } = self.tasks[parent as usize]
        {
            self.reopen(parent, now, view);
        }
        true
    }

    /// Marks ranges of tasks done per the submitter's summary (results unknown here).
    pub fn record_done_ranges(&mut self, ranges: &[(u32, u32)]) {
        for &(lo, hi) in ranges {
            for t in lo..hi.min(self.total()) {
                let state = &mut self.tasks[t as usize];
                if !state.is_done() {
                    *state = TaskState::DoneElsewhere;
                    self.count_done(t, 1);
                }
            }
        }
    }

    /// Results this node holds that are still needed (their parent is not done, or they are
    /// the root): re-sent now and then, so that a lost completion message is repaired.
    pub fn needed_results(&self, holder: PeerIx, max: usize) -> Vec<(u32, ResultRef)> {
        let mut out = Vec::new();
        for (t, state) in self.tasks.iter().enumerate() {
            if let TaskState::Done { holder: h, result } = state
                && *h == holder
                && self
                    .tree
                    .parent(t as u32)
                    .is_none_or(|p| !self.tasks[p as usize].is_done())
            {
                out.push((t as u32, result.clone()));
                if out.len() == max {
                    break;
                }
            }
        }
        out
    }

    /// Done tasks as ranges, for an announcement, at most `max` of them.
    pub fn done_ranges(&self, max: usize) -> Vec<(u32, u32)> {
        let mut out: Vec<(u32, u32)> = Vec::new();
        for (t, state) in self.tasks.iter().enumerate() {
            if !state.is_done() {
                continue;
            }
            let t = t as u32;
            if let Some((_, hi)) = out.last_mut()
                && *hi == t
            {
                *hi = t + 1;
            } else if out.len() == max {
                break;
            } else {
                out.push((t, t + 1));
            }
        }
        out
    }

    /// The result of `task` is gone (its holder died or could not serve it): compute it again,
    /// unless its parent is already done and no longer needs it.
    pub fn revert(&mut self, task: u32, now: Millis, view: &View) {
        if !self.tasks[task as usize].is_done() {
            return;
        }
        let parent = self.tree.parent(task);
        if parent.is_some_and(|p| self.tasks[p as usize].is_done()) {
            return;
        }
        self.count_done(task, -1);
        self.collecting = false;
        self.reopen(task, now, view);
        if let Some(parent) = parent {
            self.reopen(parent, now, view);
        }
    }
}
