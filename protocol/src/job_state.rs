//! One job as one of its members sees it: the state of every task, the members, and the ready
//! tasks ordered by this node's rendezvous rank.

use crate::effects::LocalTasks;
use crate::ids::{IdMap, JobId, Millis, NodeId};
use crate::job::JobSpec;
use crate::members::{Members, RankChange};
use crate::quorum::{Verdict, Votes};
use crate::ready::ReadyQueue;
use crate::tree::Tree;
use crate::view::{ME, PeerIx};
use crate::wire::ResultRef;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

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

/// The blob behind `state` if this node holds it.
fn held_blob(state: &TaskState) -> Option<crate::ids::BlobHash> {
    match state {
        TaskState::Done {
            holder: ME,
            result: ResultRef::Blob { hash, .. },
        } => Some(*hash),
        _ => None,
    }
}

#[derive(Debug)]
pub struct JobState {
    pub id: JobId,
    pub spec: Arc<JobSpec>,
    /// Who submitted the job: it coordinates while it is live.
    pub submitter: PeerIx,
    /// Who coordinates the job now (announcing, topping up members, collecting, ending it):
    /// the submitter, or a successor once the submitter went silent (`crate::durable`).
    pub coordinator: PeerIx,
    pub epoch: u64,
    /// Where the job's traffic goes: its own topic, or the jobs topic (see `Announce`).
    pub topic: crate::topic::Topic,
    pub tree: Tree,
    /// How the job's map tasks group into the tree's leaves.
    pub runs: crate::runs::Runs,
    pub tasks: Vec<TaskState>,
    pub done: u32,
    /// Of `done`, how many are map tasks.
    pub maps_done: u32,
    /// `done` and `maps_done` as tasks of the job's tree: a run counts for the tasks in it.
    pub tree_done: (u32, u32),
    pub members: Members,
    queue: ReadyQueue,
    /// For a job over a dataset, its map tasks, ranked among their parts' holders; for a job
    /// kept at its submitter's files, ranked with the submitter first (the `queue` then holds
    /// only the reduce tasks).
    locality: Option<crate::locality::Locality>,
    /// Peers' claims in the order they arrived, for expiring them when their lease runs out.
    claim_log: VecDeque<(Millis, u32)>,
    /// Tasks whose result this node produced and holds, with when: re-announced while still
    /// needed.
    held: BTreeMap<u32, Millis>,
    pub attempts: HashMap<u32, u32>,
    pub failed: Option<String>,
    pub last_progress: Millis,
    /// Fresh completions per holder, as tasks of the job's tree: how the work was spread.
    pub completions: HashMap<PeerIx, u32>,
    /// The submitter asked for the root result and waits for it.
    pub collecting: bool,
    /// Members (this node included) that sent batches in the last second, as of the last
    /// sweep; `None` before the first: how busy the job's topic is.
    pub senders: Option<u32>,
    /// Members that declined the job (they do not run jobs from its submitter).
    pub declined: u32,
    /// Results of replicated tasks not settled yet (`crate::quorum`).
    pub votes: Votes,
    /// Spot checks the submitter decided: whether a task's first result must be checked.
    pub checks: IdMap<u32, bool>,
    /// Votes each member lost in this job (its result disagreed with the settled one).
    pub lost_votes: BTreeMap<PeerIx, u32>,
    /// Settled tasks whose result this node computed too (it agreed with the holder's): it
    /// re-sends them like the results it holds, so that a member that missed the settlement
    /// can settle the task again from agreeing votes rather than take one member's word.
    agreed: BTreeMap<u32, ResultRef>,
    /// The steal delay per rank step (the node's config): how much earlier a replica round
    /// is offered per voter ahead of this node.
    pub steal_delay_ms: Millis,
    /// Whether a reduce of a job over a dataset goes first to the member that holds most of
    /// its inputs (the node's [`crate::Config::reduce_near_inputs`]).
    pub near_inputs: bool,
    /// Per piece of the input ([`crate::durable::pieces`]), the members known to hold it;
    /// empty for a job that keeps one copy.
    pub holders: Vec<Vec<PeerIx>>,
    /// Pieces this node is copying, to keep.
    pub keeping: std::collections::BTreeSet<u32>,
    /// Members known to keep the final output, and the output as this node keeps it.
    pub output_holders: Vec<(PeerIx, crate::durable::OutputRef)>,
    pub output: Option<crate::durable::OutputRef>,
    /// Until when the coordinator, holding the output, waits for completions it has not heard
    /// ([`crate::node::ACCOUNTING_GRACE_MS`]).
    pub account_until: Millis,
    /// Tasks settled by a result its member knew from an earlier job (see [`crate::reuse`]).
    pub reused: u32,
    /// Reduce tasks that became ready here, with their keys, for the node to look up (only
    /// where reuse applies); drained by the node after each completion.
    pub reuse_ready: Vec<(u32, crate::ids::ReuseKey)>,
    /// Tasks a member reported as reused (bounded by the job's tasks). A reduce whose children
    /// all were is most likely kept by the member that computed it last time: it is offered
    /// only after [`crate::reuse::REDUCE_LOOKUP_MS`], so that the member reports it rather
    /// than another member computing it again.
    pub reported_reused: std::collections::BTreeSet<u32>,
    /// Until when this node claims none of the job's tasks: the members (this node included)
    /// are looking up which results they kept ([`crate::Effect::ReuseMaps`]), and a task
    /// claimed meanwhile would be computed by one member while another reports it. Cleared
    /// once every live member that takes tasks has said its lookup is over, bounded by
    /// [`crate::reuse::LOOKUP_MAX_MS`].
    pub reuse_lookup_until: Option<Millis>,
    /// The members (by index; [`crate::view::ME`] for this node) whose lookup is over. Bounded
    /// by the tracked members: only a member's own batch adds it.
    pub looked_up: std::collections::BTreeSet<PeerIx>,
    /// Input bytes fetched over the network for the job, by this node and as its members
    /// reported.
    pub bytes_moved: u64,
    /// Map tasks computed where their input was ([`JobState::at_data`]).
    pub at_data: u32,
    /// For a job over a dataset, or a durable job: since when a piece of the input that a task
    /// still needs has had no live holder.
    pub part_lost_since: Option<Millis>,
    /// The submitter runs the job alone ([`crate::local`]): nobody else hears of it, so its
    /// claims, completions and end stay off the wire.
    pub alone: bool,
}

/// What a completion did to its task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion {
    /// Nothing new: the task was done already, or the vote did not count.
    Old,
    /// The task is done now; the members whose votes lost, if any.
    Done { losers: Vec<PeerIx> },
    /// A vote of a task that needs more: it is open for another member.
    Voted,
}

impl JobState {
    /// A job this node is a member of; `my_weight` is the slots it gives the job (0: none).
    /// `submitter` is the submitter's index in this node's view, and its id.
    pub fn new(
        spec: Arc<JobSpec>,
        id: JobId,
        (submitter, submitter_id): (PeerIx, &NodeId),
        epoch: u64,
        now: Millis,
        me: &NodeId,
        my_weight: u32,
    ) -> Self {
        let tree = spec.tree();
        let runs = spec.runs();
        let locality = match &spec.input {
            crate::job::Input::Dataset(d) => {
                Some(crate::locality::Locality::new(id, d, now, me, my_weight))
            }
            crate::job::Input::Chunks { chunks, .. }
                if crate::locality::kept_at_submitter(&spec) =>
            {
                Some(crate::locality::Locality::at_submitter(
                    id,
                    *chunks,
                    *submitter_id,
                    now,
                    me,
                    my_weight,
                ))
            }
            _ => None,
        };
        let queued_maps = if locality.is_some() { 0 } else { tree.maps() };
        let queue = ReadyQueue::new(id, queued_maps, tree.total(), now, me, my_weight);
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
        let holders = if spec.keep.copies > 1 {
            vec![vec![submitter]; crate::durable::pieces(&spec) as usize]
        } else {
            Vec::new()
        };
        Self {
            id,
            spec,
            submitter,
            coordinator: submitter,
            epoch,
            topic: crate::topic::Topic::Job(id),
            tree,
            runs,
            tasks,
            done: 0,
            maps_done: 0,
            tree_done: (0, 0),
            members: Members::default(),
            queue,
            locality,
            claim_log: VecDeque::new(),
            held: BTreeMap::new(),
            attempts: HashMap::new(),
            failed: None,
            last_progress: now,
            completions: HashMap::new(),
            collecting: false,
            senders: None,
            declined: 0,
            votes: Votes::default(),
            checks: IdMap::default(),
            lost_votes: BTreeMap::new(),
            agreed: BTreeMap::new(),
            steal_delay_ms: 250,
            near_inputs: true,
            holders,
            keeping: Default::default(),
            output_holders: Vec::new(),
            output: None,
            account_until: 0,
            reused: 0,
            reuse_ready: Vec::new(),
            reported_reused: Default::default(),
            reuse_lookup_until: None,
            looked_up: Default::default(),
            bytes_moved: 0,
            at_data: 0,
            part_lost_since: None,
            alone: false,
        }
    }

    pub fn total(&self) -> u32 {
        self.tree.total()
    }

    pub fn is_complete(&self) -> bool {
        self.tasks[self.tree.root() as usize].is_done()
    }

    /// How many live holders the worst-kept piece of the input has (the job's `copies` when it
    /// has nothing to keep, or keeps one copy). A detached submitter's own copy counts only in
    /// a mesh with fewer than `copies` other members: elsewhere the copies must outlive it.
    pub fn copies_held(&self) -> u32 {
        let copies = u32::from(self.spec.keep.copies);
        self.live_copies().min().map_or(copies, |n| n.min(copies))
    }

    /// Per piece of the input, how many live holders count toward the job's `copies`.
    pub fn live_copies(&self) -> impl Iterator<Item = u32> + '_ {
        let copies = u32::from(self.spec.keep.copies);
        let me_other = self.submitter != crate::view::ME && self.takes_tasks();
        let others = self
            .members
            .iter()
            .filter(|m| m.live && m.announced && m.weight > 0 && m.ix != self.submitter)
            .count() as u32
            + u32::from(me_other);
        // A detached submitter's copy counts only where the mesh is too small without it.
        let count_submitter = !self.spec.keep.detached || others < copies;
        self.holders.iter().map(move |h| {
            h.iter()
                .filter(|&&ix| {
                    self.members.is_live(ix) && (count_submitter || ix != self.submitter)
                })
                .count() as u32
        })
    }

    /// Whether this node holds piece `piece` of the input (the submitter of a job that keeps
    /// one copy holds them all).
    pub fn holds_piece(&self, piece: u32) -> bool {
        match self.holders.get(piece as usize) {
            Some(h) => h.contains(&crate::view::ME),
            None => self.holders.is_empty() && self.submitter == crate::view::ME,
        }
    }

    /// Notes whether a piece of the input that a task still needs has no live holder now;
    /// returns for how long that has been so (0 while it has one).
    pub fn unheld_for(&mut self, unheld: bool, now: Millis) -> Millis {
        if !unheld {
            self.part_lost_since = None;
            return 0;
        }
        now.saturating_sub(*self.part_lost_since.get_or_insert(now))
    }

    /// Records that `ix` holds piece `piece`. Returns whether that was news.
    pub fn add_holder(&mut self, piece: u32, ix: PeerIx) -> bool {
        match self.holders.get_mut(piece as usize) {
            Some(h) if !h.contains(&ix) => {
                h.push(ix);
                true
            }
            _ => false,
        }
    }

    /// Whether this node takes tasks of the job.
    pub fn takes_tasks(&self) -> bool {
        self.queue.active()
    }

    /// Whether this node ranks first for task `task` among the job's candidates other than
    /// `other` (of weight `weight`): the member that will most likely run it when `other`
    /// does not. As of the last [`JobState::settle_ranks`]; `None` for the map tasks of a job
    /// over a dataset, which go to their part's holders instead.
    pub fn first_but(&self, task: u32, other: &NodeId, weight: u32) -> Option<bool> {
        if self.locality.is_some() && self.tree.is_map(task) {
            return None;
        }
        let behind_other = usize::from(self.queue.outranks_me(other, weight, task));
        Some(self.queue.rank(task) == behind_other)
    }

    /// Brings this node's ranks up to date with the candidates' comings and goings.
    pub fn settle_ranks(&mut self) {
        self.queue.settle_ranks();
    }

    /// This node's rank for `task` (capped), for tests and diagnostics.
    pub fn rank(&self, task: u32) -> usize {
        match &self.locality {
            Some(l) if self.tree.is_map(task) => l.rank(task),
            _ => self.queue.rank(task),
        }
    }

    /// Whether `by` holds the input of map task `task`: the submitter for files it submitted,
    /// a holder of the task's part for a dataset.
    pub fn at_data(&self, task: u32, by: &NodeId, submitter: &NodeId) -> bool {
        match &self.spec.input {
            crate::job::Input::Chunks { .. } => by == submitter,
            crate::job::Input::Dataset(d) => d
                .locate(task)
                .is_some_and(|(part, _)| d.parts[part].holders.contains(by)),
            crate::job::Input::Range { .. } | crate::job::Input::Samples { .. } => false,
        }
    }

    /// Whether the completion of some task was not heard here (a reduce above it was).
    pub fn completions_unheard(&self) -> bool {
        self.done < self.tree.total()
    }

    /// Whether every live member that takes tasks (this node included) has looked up the
    /// results it kept for this job.
    pub fn lookups_over(&self) -> bool {
        self.looked_up.contains(&crate::view::ME)
            && self
                .members
                .iter()
                .filter(|m| m.live && m.weight > 0)
                .all(|m| self.looked_up.contains(&m.ix))
    }

    /// Applies changes of the ranking candidates to the ready queue.
    pub fn apply(&mut self, changes: &[RankChange]) {
        for c in changes {
            self.queue.candidate_changed(&c.id, c.weight, c.joined);
            if let Some(l) = &mut self.locality {
                l.candidate_changed(&c.id, c.weight, c.joined);
            }
        }
    }

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

    /// Adjusts the done counters for `task` by `delta` (+1 or -1).
    fn count_done(&mut self, task: u32, delta: i32) {
        self.done = self.done.wrapping_add_signed(delta);
        if self.tree.is_map(task) {
            self.maps_done = self.maps_done.wrapping_add_signed(delta);
        }
        let (tasks, maps) = self.runs.weight(&self.tree, task);
        self.tree_done.0 = self.tree_done.0.wrapping_add_signed(delta * tasks as i32);
        self.tree_done.1 = self.tree_done.1.wrapping_add_signed(delta * maps as i32);
    }

    /// Children of `task` whose result is not known here (not done, or done elsewhere with an
    /// unknown holder). A reduce task can run only when this is zero.
    fn children_missing(&self, task: u32) -> u32 {
        self.tree
            .children(task)
            .filter(|&c| !matches!(self.tasks[c as usize], TaskState::Done { .. }))
            .count() as u32
    }

    /// Puts a task that is not done back in play from `since`: ready if it can run (a map task,
    /// or a reduce task with every child's result known), else waiting. Every path that reopens
    /// a task goes through here, so a node never claims a task it cannot start.
    pub fn reopen(&mut self, task: u32, since: Millis) {
        match self.children_missing(task) {
            0 => {
                // Another replica of a task: the members ahead of this node that voted on it
                // will not take it, so its wait starts as if they had passed it by.
                let since = if self.votes.count(task) > 0 {
                    let voters: Vec<(NodeId, u32)> = self
                        .votes
                        .voters(task)
                        .filter_map(|ix| self.members.get(ix).map(|m| (m.id, m.weight)))
                        .collect();
                    let ahead = match &mut self.locality {
                        Some(l) if self.tree.is_map(task) => l.ahead_of_me(task, &voters),
                        _ => self.queue.ahead_of_me(task, &voters),
                    } as Millis;
                    since
                        .saturating_sub(ahead * self.steal_delay_ms)
                        .max(self.queue.start())
                } else {
                    self.near_its_inputs(task, since)
                };
                self.tasks[task as usize] = TaskState::Ready { since };
                match &mut self.locality {
                    Some(l) if self.tree.is_map(task) => l.push(task, since),
                    _ => self.queue.push(task, since),
                }
            }
            left => self.tasks[task as usize] = TaskState::Waiting { left },
        }
    }

    /// For a reduce task of a job over a dataset, when it is offered here, ready at `since`: if
    /// this node holds most of its inputs (more than half of its children's result bytes), it
    /// takes it at once, whatever its rank. The reduces over a part's maps then run on the
    /// part's holder, and only the combined result travels (over the slow links of the edge,
    /// the children's partials were most of the job's traffic). The others keep their rank's
    /// timing: the holder usually completed the last child itself, and its claim goes out in
    /// the batch of that completion, which members apply completions first, so it is taken
    /// before anyone's rank comes up; and a holder that lost what it held (a restart) does not
    /// count itself, so nothing waits for it.
    fn near_its_inputs(&self, task: u32, since: Millis) -> Millis {
        if !self.near_inputs || self.locality.is_none() || self.tree.is_map(task) {
            return since;
        }
        let (mut mine, mut total) = (0, 0);
        for c in self.tree.children(task) {
            if let TaskState::Done {
                holder,
                result: ResultRef::Blob { len, .. },
            } = &self.tasks[c as usize]
            {
                total += len;
                if *holder == ME {
                    mine += len;
                }
            }
        }
        if mine * 2 > total {
            let rank = self.queue.rank(task) as Millis;
            since.saturating_sub(rank * self.steal_delay_ms)
        } else {
            since
        }
    }

    /// Records `by`'s claim of `task` at `now`.
    pub fn claim(&mut self, task: u32, by: PeerIx, now: Millis) {
        self.tasks[task as usize] = TaskState::Claimed { by, at: now };
        if by != ME {
            self.claim_log.push_back((now, task));
        }
    }

    /// Takes up to `want` tasks this node may claim at `now` (see [`ReadyQueue::take`]).
    pub fn take_claimable(
        &mut self,
        want: usize,
        now: Millis,
        steal_delay: Millis,
    ) -> (Vec<u32>, Option<Millis>) {
        let (tasks, votes) = (&self.tasks, &self.votes);
        // No member computes two replicas of one task.
        let ready = |task: u32, since| {
            tasks[task as usize] == TaskState::Ready { since } && !votes.voted(task, ME)
        };
        let (mut out, wake) = self.queue.take(want, now, steal_delay, ready);
        let Some(l) = &mut self.locality else {
            return (out, wake);
        };
        let (maps, map_wake) = l.take(want - out.len(), now, steal_delay, ready);
        out.extend(maps);
        let wake = match (wake, map_wake) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        (out, wake)
    }

    /// Peers' claims older than `lease`: renewed if the claimer still runs the task (its pulse
    /// says so), else reopened. Returns how many were reopened.
    pub fn expire_claims(&mut self, now: Millis, lease: Millis) -> usize {
        let mut reopened = 0;
        while let Some(&(at, task)) = self.claim_log.front() {
            if at + lease > now {
                break;
            }
            self.claim_log.pop_front();
            let TaskState::Claimed { by, at: current } = self.tasks[task as usize] else {
                continue;
            };
            if current != at {
                continue; // re-claimed since: a later log entry covers it
            }
            if self.members.is_live(by) && self.members.runs(by, task) {
                self.claim(task, by, now);
            } else {
                self.reopen(task, now);
                reopened += 1;
            }
        }
        reopened
    }

    /// `gone` peers are gone: their claims go back into play and the results only they held
    /// are lost. One pass over the tasks, however many are gone.
    pub fn forget(&mut self, gone: &[PeerIx], now: Millis) {
        if gone.is_empty() {
            return;
        }
        let max = gone.iter().copied().max().unwrap_or(0) as usize;
        let mut is_gone = vec![false; max + 1];
        for &p in gone {
            is_gone[p as usize] = true;
        }
        let hit = |p: PeerIx| is_gone.get(p as usize).copied().unwrap_or(false);
        // A member that comes back is a new process: what it held is gone with the old one.
        for h in &mut self.holders {
            h.retain(|&p| !hit(p));
        }
        self.output_holders.retain(|&(p, _)| !hit(p));
        for t in 0..self.total() {
            match self.tasks[t as usize] {
                TaskState::Claimed { by, .. } if hit(by) => self.reopen(t, now),
                TaskState::Done {
                    holder,
                    result: ResultRef::Blob { .. },
                } if hit(holder) => {
                    self.revert(t, now);
                }
                _ => {}
            }
        }
    }

    /// Agreeing results a task needs, if known: the job's replicas, or for a spot-checked job
    /// 2 or 1 once the submitter decided, `None` before.
    pub fn need(&self, task: u32) -> Option<u8> {
        let t = self.spec.trust;
        if t.replicas > 1 || t.verify_ppm == 0 {
            return Some(t.replicas);
        }
        self.checks
            .get(&task)
            .map(|&check| if check { 2 } else { 1 })
    }

    /// Whether every result of the job is taken as the first member reports it.
    pub fn single_vote(&self) -> bool {
        self.spec.trust.replicas <= 1 && self.spec.trust.verify_ppm == 0
    }

    /// Records `by`'s result for `task`: a completion, or a vote of a replicated task.
    pub fn record_result(
        &mut self,
        task: u32,
        by: PeerIx,
        result: ResultRef,
        now: Millis,
    ) -> Completion {
        let elsewhere = match self.tasks[task as usize] {
            TaskState::Done { .. } => return Completion::Old,
            TaskState::DoneElsewhere => true,
            _ => false,
        };
        if self.single_vote() {
            // Done by the submitter's word, or not yet: either way this is the result to read.
            return self.record_done(task, by, result, now);
        }
        // A spot check not decided yet: wait for the submitter's decision. Unless the submitter
        // already summed the task up as done and its decision never reached this node: then
        // the first result re-sent is taken, as with one replica (spot checks find liars over
        // jobs; they do not guarantee one job's output).
        let need = self
            .need(task)
            .unwrap_or(if elsewhere { 1 } else { u8::MAX });
        match self.votes.add(task, by, result, need) {
            Verdict::Ignored => Completion::Old,
            // Done elsewhere: the result is known once enough re-sent votes agree.
            Verdict::Open if elsewhere => Completion::Old,
            Verdict::Open => {
                self.last_progress = now;
                self.after_vote(task, now);
                Completion::Voted
            }
            Verdict::Settled {
                result,
                holder,
                winners,
                losers,
            } => self.settle(task, holder, result, &winners, losers, now),
        }
    }

    /// A task's votes settled it.
    fn settle(
        &mut self,
        task: u32,
        holder: PeerIx,
        result: ResultRef,
        winners: &[PeerIx],
        losers: Vec<PeerIx>,
        now: Millis,
    ) -> Completion {
        for &l in &losers {
            *self.lost_votes.entry(l).or_insert(0) += 1;
        }
        if holder != ME && winners.contains(&ME) {
            self.agreed.insert(task, result.clone());
        }
        match self.record_done(task, holder, result, now) {
            Completion::Done { .. } => Completion::Done { losers },
            other => other,
        }
    }

    /// After an unsettled vote: the task is open for another member, or (a spot check not
    /// decided yet) waits for the submitter's decision.
    fn after_vote(&mut self, task: u32, now: Millis) {
        if self.need(task).is_some() && !self.votes.exhausted(task) {
            self.reopen(task, now);
        } else {
            self.tasks[task as usize] = TaskState::Waiting { left: 0 };
        }
    }

    /// The submitter decided whether `task`'s first result must be checked.
    pub fn decide(&mut self, task: u32, check: bool, now: Millis) -> Completion {
        if self.checks.insert(task, check).is_some() || self.tasks[task as usize].is_done() {
            return Completion::Old;
        }
        let need = if check { 2 } else { 1 };
        match self.votes.reconsider(task, need) {
            Some(Verdict::Settled {
                result,
                holder,
                winners,
                losers,
            }) => self.settle(task, holder, result, &winners, losers, now),
            _ => {
                if self.votes.count(task) > 0 {
                    self.after_vote(task, now);
                }
                Completion::Voted
            }
        }
    }

    /// Records a completion: `Done` if it was news, `Old` if the task was done already.
    fn record_done(
        &mut self,
        task: u32,
        holder: PeerIx,
        result: ResultRef,
        now: Millis,
    ) -> Completion {
        let was_elsewhere = match self.tasks[task as usize] {
            TaskState::Done { .. } => return Completion::Old,
            TaskState::DoneElsewhere => true,
            _ => false,
        };
        if !was_elsewhere {
            self.count_done(task, 1);
            *self.completions.entry(holder).or_insert(0) += self.runs.weight(&self.tree, task).0;
        }
        self.last_progress = now;
        self.tasks[task as usize] = TaskState::Done { holder, result };
        if holder == ME {
            self.held.insert(task, now);
        }
        if let Some(parent) = self.tree.parent(task)
            && let TaskState::Waiting { .. } = self.tasks[parent as usize]
        {
            let reuse = crate::reuse::applies(&self.spec);
            let all_reused = reuse
                && self
                    .tree
                    .children(parent)
                    .all(|c| self.reported_reused.contains(&c));
            let since = if all_reused {
                now + crate::reuse::REDUCE_LOOKUP_MS
            } else {
                now
            };
            self.reopen(parent, since);
            if reuse && let TaskState::Ready { .. } = self.tasks[parent as usize] {
                let key = crate::reuse::reduce_key(
                    &self.spec.op,
                    self.tree
                        .children(parent)
                        .filter_map(|c| match &self.tasks[c as usize] {
                            TaskState::Done { result, .. } => Some(result),
                            _ => None,
                        }),
                );
                self.reuse_ready.push((parent, key));
            }
        }
        self.votes.clear(task);
        Completion::Done { losers: Vec::new() }
    }

    /// Up to `max` tasks whose first result is to be checked and that are not done yet.
    pub fn open_checks(&self, max: usize) -> Vec<u32> {
        self.checks
            .iter()
            .filter(|&(&t, &check)| check && !self.tasks[t as usize].is_done())
            .map(|(&t, _)| t)
            .take(max)
            .collect()
    }

    /// Marks ranges of tasks done per the submitter's summary (results unknown here: a
    /// replicated task's result is known once re-sent votes settle it again).
    pub fn record_done_ranges(&mut self, ranges: &[(u32, u32)], now: Millis) {
        for &(lo, hi) in ranges {
            for t in lo..hi.min(self.total()) {
                if self.tasks[t as usize].is_done() {
                    continue;
                }
                // The votes heard so far stay: with the ones members re-send, they settle
                // which result is the one to read (one member's word is not enough).
                self.tasks[t as usize] = TaskState::DoneElsewhere;
                self.count_done(t, 1);
                // A spot check whose decision never arrived here: the result heard stands (see
                // `record_result`).
                if self.need(t).is_none()
                    && let Some(Verdict::Settled { result, holder, .. }) =
                        self.votes.reconsider(t, 1)
                {
                    self.record_done(t, holder, result, now);
                }
            }
        }
    }

    /// Whether the result of `task` may still be needed: it is the root, or its parent is not
    /// done.
    fn needed(&self, task: u32) -> bool {
        self.tree
            .parent(task)
            .is_none_or(|p| !self.tasks[p as usize].is_done())
    }

    /// Results this node holds that may have been missed, at most `max`: completed at least
    /// `min_age` ago, and still needed by a parent that nobody has claimed (had every member
    /// heard of all its children, one would have), or the root. Re-sent now and then, so that
    /// a lost completion message does not stall the job. Results no longer needed are
    /// forgotten.
    pub fn needed_results(
        &mut self,
        now: Millis,
        min_age: Millis,
        max: usize,
    ) -> Vec<(u32, ResultRef)> {
        let mut out = Vec::new();
        let mut stale = Vec::new();
        for (&t, &at) in &self.held {
            let TaskState::Done { holder: ME, result } = &self.tasks[t as usize] else {
                stale.push(t);
                continue;
            };
            if !self.needed(t) {
                stale.push(t);
                continue;
            }
            let parent_claimed = self
                .tree
                .parent(t)
                .is_some_and(|p| matches!(self.tasks[p as usize], TaskState::Claimed { .. }));
            if out.len() < max && at + min_age <= now && !parent_claimed {
                out.push((t, result.clone()));
            }
        }
        for t in stale {
            self.held.remove(&t);
        }
        // This node's votes on tasks not settled yet (a vote whose message was lost would
        // leave the task waiting for a replica that was computed), and those it agreed with
        // (see `agreed`) while they are needed.
        self.agreed.retain(|&t, _| {
            self.tasks[t as usize].is_done()
                && self
                    .tree
                    .parent(t)
                    .is_some_and(|p| !self.tasks[p as usize].is_done())
        });
        let room = max.saturating_sub(out.len());
        out.extend(
            self.votes
                .by(ME)
                .chain(self.agreed.iter().map(|(t, r)| (*t, r)))
                .take(room)
                .map(|(t, r)| (t, r.clone())),
        );
        out
    }

    /// The blobs this node holds for the children of `task`, which `task`'s completion made
    /// unneeded.
    pub fn released_by(&self, task: u32) -> Vec<crate::ids::BlobHash> {
        self.tree
            .children(task)
            .filter_map(|c| held_blob(&self.tasks[c as usize]))
            .collect()
    }

    /// Every blob this node holds for the job.
    pub fn held_blobs(&self) -> Vec<crate::ids::BlobHash> {
        self.tasks.iter().filter_map(held_blob).collect()
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

    /// Puts back in play every result still needed that `holder` holds as a blob, after one of
    /// them could not be fetched from it: a holder that lost one result (it restarted) has
    /// most likely lost them all, and finding that out one reduce attempt at a time, each
    /// after the lost child was computed again, kept jobs waiting for a minute when the
    /// holder had held whole subtrees (the reduces near their inputs). Returns how many.
    pub fn revert_held_by(&mut self, holder: PeerIx, now: Millis) -> usize {
        let held: Vec<u32> = (0..self.total())
            .filter(|&t| {
                matches!(
                    &self.tasks[t as usize],
                    TaskState::Done { holder: h, result: ResultRef::Blob { .. } } if *h == holder
                ) && self.needed(t)
            })
            .collect();
        for &t in &held {
            self.revert(t, now);
        }
        held.len()
    }

    /// The result of `task` is gone (its holder died or could not serve it): compute it again,
    /// unless its parent is already done and no longer needs it. Returns whether it did.
    pub fn revert(&mut self, task: u32, now: Millis) -> bool {
        if !self.tasks[task as usize].is_done() || !self.needed(task) {
            return false;
        }
        self.count_done(task, -1);
        self.collecting = false;
        self.reopen(task, now);
        if let Some(parent) = self.tree.parent(task) {
            self.reopen(parent, now);
        }
        true
    }
}
