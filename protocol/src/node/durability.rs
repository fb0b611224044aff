//! Jobs that outlive their submitter (the rules are in [`crate::durable`]): members copy the
//! pieces of the input that too few live members hold, a successor coordinates a job whose
//! coordinator went silent, several members keep the final output, and any node can say how a
//! job ended (`shoal result`), asking the mesh when it does not know.
//!
//! Only jobs that keep more than one copy ([`crate::durable::Durability`]) take part: a job
//! with `copies` 1 behaves as before (its submitter is its only coordinator).

use super::Node;
use crate::durable::{self, Ending, OUTPUT_PIECE, OutputRef};
use crate::effects::Effect;
use crate::ids::{JobId, Millis, NodeId};
use crate::job_state::{JobState, TaskState};
use crate::topic::Topic;
use crate::view::{ME, PeerIx};
use crate::wire::{Announce, Finished, Message, Query};

/// Most pieces one node copies at once for one detached job (whose submitter waits for them).
pub const KEEPING_MAX: usize = 64;
/// Most pieces one node copies at once for a job whose submitter stays: the copies share the
/// links with the job's own fetches, and a task must not wait behind dozens of them.
pub(crate) const KEEPING_ALONGSIDE: usize = 4;
/// Endings remembered (heard of, or kept here).
pub const ENDINGS_KEPT: usize = 4096;
/// Running jobs this node is no member of but heard announced, for progress on request.
pub const HEARD_MAX: usize = 1024;
/// Least time between two queries, or two answers, for one job.
pub const ANSWER_GAP_MS: Millis = 1_000;
/// How long the coordinator of a durable job waits, once a piece of the input that a task
/// still needs has no live holder it knows of, before it fails the job: holders say again what
/// they hold every repair round, so a successor that missed a batch learns of them meanwhile.
pub const INPUT_LOST_MS: Millis = 30_000;
/// How long a keeper holding a job's output waits for the job's end before it asks.
pub(super) const ENDING_UNHEARD_MS: Millis = 2_000;
/// Most holders a task is told to fetch a piece from.
const PIECE_SOURCES: usize = 4;
/// Most pieces re-advertised per job per repair round.
const HELD_REPAIR_MAX: usize = 4096;

/// What a node can say about a job's result ([`Node::result_status`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResultStatus {
    /// Never heard of here (a [`Node::query`] may find out).
    Unknown,
    /// Submitted here, waiting for room in the job table.
    Queued,
    /// Running: tasks done of the total, and who coordinates it.
    Running {
        done: u32,
        total: u32,
        coordinator: NodeId,
    },
    Done {
        output: OutputRef,
        holders: Vec<NodeId>,
    },
    Failed {
        error: String,
    },
    Expired,
}

/// How a job ended, as this node knows it.
#[derive(Debug, Clone)]
pub(super) struct KnownEnding {
    epoch: u64,
    ending: Ending,
    /// This node keeps it (the output, or the failure it published): it answers queries.
    kept: bool,
}

/// A job this node heard announced without being a member.
#[derive(Debug, Clone)]
pub(super) struct HeardJob {
    epoch: u64,
    done: u32,
    total: u32,
    coordinator: NodeId,
}

impl Node {
    /// Whether job `j` keeps copies (and so has successors and output keepers).
    fn durable(j: &JobState) -> bool {
        j.spec.keep.copies > 1
    }

    /// Most pieces of job `j` this node copies at once.
    fn keeping_max(j: &JobState) -> usize {
        if j.spec.keep.detached {
            KEEPING_MAX
        } else {
            KEEPING_ALONGSIDE
        }
    }

    /// The members that may keep copies of a job's pieces or output, sorted: its live announced
    /// members that are not suspects, and this node.
    fn keeper_ring(&self, j: &JobState, now: Millis) -> Vec<NodeId> {
        let mut ring: Vec<NodeId> = j
            .members
            .iter()
            .filter(|m| m.live && m.announced && m.weight > 0 && !self.is_suspect(&m.id, now))
            .map(|m| m.id)
            .collect();
        if j.takes_tasks() {
            ring.push(self.id());
        }
        ring.sort_unstable();
        ring.dedup();
        ring
    }

    /// Copies the pieces of durable jobs that fewer than `copies` live members hold, where the
    /// ring picks this node for them.
    pub(super) fn plan_keeps(&mut self, now: Millis) {
        for id in self.order.clone() {
            self.plan_keeps_of(id, now);
        }
    }

    /// [`Node::plan_keeps`] for job `id` only.
    fn plan_keeps_of(&mut self, id: JobId, now: Millis) {
        let me = self.id();
        let Some(j) = self.jobs.get_mut(&id) else {
            return;
        };
        if j.holders.is_empty() || j.failed.is_some() || j.is_complete() {
            return;
        }
        j.settle_ranks();
        let j = &self.jobs[&id];
        let ring = self.keeper_ring(j, now);
        // A detached submitter is about to leave: K copies besides its own (as many as the
        // other members allow), for a copy lost with another member while it leaves must not
        // be the last one. A submitter that stays is a holder like any other, one of the K.
        let submitter = self.view.id(j.submitter);
        let detached = j.spec.keep.detached;
        let leaving = |n: &NodeId| detached && *n == submitter;
        let room = ring.iter().filter(|n| !leaving(n)).count()
            + usize::from(!detached && !ring.contains(&submitter));
        let want = usize::from(j.spec.keep.copies).min(room.max(1));
        let max = Self::keeping_max(j);
        // Each piece is the input of the map task of the same index (one piece per map task).
        let piece_per_map = j.holders.len() as u32 == j.tree.maps();
        let submitter_weight = j.members.get(j.submitter).map_or(0, |m| m.weight);
        let mut plan = Vec::new();
        for (piece, holders) in j.holders.iter().enumerate() {
            if j.keeping.len() + plan.len() >= max {
                break;
            }
            let piece = piece as u32;
            if j.keeping.contains(&piece) || holders.contains(&ME) {
                continue;
            }
            // While the submitter stays, a member that claimed the map task over a piece is
            // fetching it and keeps it once computed: a copy meanwhile would cross the network
            // twice. (Detached, the submitter waits for every copy: they are made at once.)
            if !detached
                && piece_per_map
                && let TaskState::Claimed { by, .. } = j.tasks[piece as usize]
                && by != j.submitter
                && (by == ME || j.members.is_live(by))
            {
                continue;
            }
            let live: Vec<NodeId> = holders
                .iter()
                .filter(|&&ix| j.members.is_live(ix) && !self.view.gone(ix, now))
                .map(|&ix| self.view.id(ix))
                .collect();
            let counted = live.iter().filter(|n| !leaving(n)).count();
            if live.is_empty() || counted >= want {
                continue;
            }
            // While the submitter stays and the piece's map task is still to run, its one
            // missing copy goes where that task will most likely run: to the member that
            // ranks first for it after the submitter, whose copy is then also the task's
            // input. Once the task is done, the ring picks as for any piece.
            if !detached
                && piece_per_map
                && want - counted == 1
                && !j.tasks[piece as usize].is_done()
                && j.takes_tasks()
                && let Some(first) = j.first_but(piece, &submitter, submitter_weight)
            {
                if first {
                    plan.push((piece, live));
                }
                continue;
            }
            let skip = |n: &NodeId| live.contains(n) || leaving(n);
            if durable::ring_pick(&id, piece, &ring, skip, want - counted).any(|n| *n == me) {
                plan.push((piece, live));
            }
        }
        let spec = j.spec.clone();
        let j = self.jobs.get_mut(&id).expect("just read");
        for (piece, holders) in plan {
            j.keeping.insert(piece);
            self.effects.push_back(Effect::Keep {
                job: id,
                piece,
                spec: spec.clone(),
                holders,
            });
        }
    }

    /// The driver copied (or failed to copy) piece `piece` of job `job` after an
    /// [`Effect::Keep`]: it holds it now and serves it for the job's life.
    pub fn piece_kept(&mut self, now: Millis, job: JobId, piece: u32, ok: bool) {
        if let Some(j) = self.jobs.get_mut(&job) {
            j.keeping.remove(&piece);
            let low = j.keeping.len() <= Self::keeping_max(j) / 2;
            if ok {
                self.now_holds(job, piece);
            }
            if ok && low {
                // Copying goes on at once rather than at the next sweep (64 pieces every
                // 500 ms held a detached submission of thousands of small pieces for seconds);
                // planning in halves keeps the pass over the pieces off every copy.
                self.plan_keeps_of(job, now);
            }
        }
        self.after_step(now);
    }

    /// This node holds piece `piece` of job `job` (it copied it, or fetched it to run a task):
    /// the members hear so in its next batch.
    pub(super) fn now_holds(&mut self, job: JobId, piece: u32) {
        if self
            .jobs
            .get_mut(&job)
            .is_some_and(|j| j.add_holder(piece, ME))
        {
            self.queue_entry(job, 8, |b| b.held.push(piece));
        }
    }

    /// This node ran task `task` of job `job`: a map task of a durable job leaves the piece it
    /// read here (its chunk, or the module of a generated input), kept for the job's life.
    pub(super) fn ran_map(&mut self, job: JobId, task: u32) {
        let Some(j) = self.jobs.get(&job) else {
            return;
        };
        if !Self::durable(j) || !j.tree.is_map(task) {
            return;
        }
        let piece = if j.holders.len() == 1 { 0 } else { task };
        self.now_holds(job, piece);
    }

    /// Where a task reads piece `piece` of job `j` from: for a job that keeps one copy, its
    /// submitter (this node, when it submitted the job); for a durable job, its live holders
    /// (this node first if it holds it), else the submitter, else any live member.
    pub(super) fn piece_sources(&self, j: &JobState, piece: u32, now: Millis) -> Vec<NodeId> {
        if j.holders.is_empty() {
            return vec![self.view.id(j.submitter)];
        }
        let mut sources: Vec<PeerIx> = j
            .holders
            .get(piece as usize)
            .map(|h| {
                h.iter()
                    .copied()
                    .filter(|&ix| {
                        ix == ME
                            || (j.members.is_live(ix)
                                && !self.view.gone(ix, now)
                                && !self.suspect_ix(ix, now))
                    })
                    .collect()
            })
            .unwrap_or_default();
        sources.sort_by_key(|&ix| ix != ME);
        sources.truncate(PIECE_SOURCES);
        let submitter_live = j.submitter != ME
            && j.members.is_live(j.submitter)
            && !self.view.gone(j.submitter, now);
        if sources.is_empty() && submitter_live {
            sources.push(j.submitter);
        }
        if sources.is_empty() {
            // No live holder known here (a member that joined late, a holder whose batch was
            // lost, or a submitter that came back without its old copies): ask the live
            // members; those without it say so.
            sources = j
                .members
                .iter()
                .filter(|m| m.live && m.announced && !self.is_suspect(&m.id, now))
                .map(|m| m.ix)
                .take(PIECE_SOURCES)
                .collect();
        }
        sources.into_iter().map(|ix| self.view.id(ix)).collect()
    }

    /// Members that hold any piece of job `j` (and so its module): fallbacks for a module
    /// its submitter cannot serve.
    pub(super) fn piece_holders(&self, j: &JobState, now: Millis) -> Vec<NodeId> {
        let mut out: Vec<PeerIx> = j
            .holders
            .iter()
            .flatten()
            .copied()
            .filter(|&ix| {
                ix != ME
                    && ix != j.submitter
                    && j.members.is_live(ix)
                    && !self.view.gone(ix, now)
                    && !self.suspect_ix(ix, now)
            })
            .collect();
        out.sort_unstable();
        out.dedup();
        out.truncate(PIECE_SOURCES);
        out.into_iter().map(|ix| self.view.id(ix)).collect()
    }

    /// Re-advertises the pieces this node holds of durable running jobs: a lost batch must
    /// not leave a copy unknown once the submitter is gone.
    pub(super) fn repair_holdings(&mut self) {
        for id in self.order.clone() {
            let Some(j) = self.jobs.get(&id) else {
                continue;
            };
            if j.holders.is_empty() || j.is_complete() {
                if let Some(output) = j.output.filter(|_| j.coordinator != ME) {
                    self.queue_entry(id, 48, |b| b.output = Some(output));
                }
                continue;
            }
            let held: Vec<u32> = j
                .holders
                .iter()
                .enumerate()
                .filter(|(_, h)| h.contains(&ME))
                .map(|(p, _)| p as u32)
                .take(HELD_REPAIR_MAX)
                .collect();
            if !held.is_empty() && j.submitter != ME {
                self.queue_entry(id, 4 * held.len(), |b| b.held.extend(held));
            }
        }
    }

    /// A member said it holds pieces, or keeps the output.
    pub(super) fn on_holdings(
        &mut self,
        job: JobId,
        from: PeerIx,
        held: &[u32],
        output: Option<OutputRef>,
    ) {
        let Some(j) = self.jobs.get_mut(&job) else {
            return;
        };
        for &piece in held {
            j.add_holder(piece, from);
        }
        if let Some(output) = output
            && !j.output_holders.contains(&(from, output))
        {
            j.output_holders.retain(|(ix, _)| *ix != from);
            j.output_holders.push((from, output));
            self.try_finish(job);
        }
    }

    /// Hands job coordination to a successor where the coordinator went silent.
    pub(super) fn check_coordinators(&mut self, now: Millis) {
        for id in self.order.clone() {
            let Some(j) = self.jobs.get(&id) else {
                continue;
            };
            if !Self::durable(j)
                || j.coordinator == ME
                || j.failed.is_some()
                || (j.members.is_live(j.coordinator) && !self.view.gone(j.coordinator, now))
            {
                continue;
            }
            let submitter = self.view.id(j.submitter);
            let me = self.id();
            let mut best = (durable::precedence(&id, &submitter, &me), ME);
            for m in j.members.iter() {
                if m.live && m.announced && m.ix != j.coordinator && !self.is_suspect(&m.id, now) {
                    let p = durable::precedence(&id, &submitter, &m.id);
                    if p > best.0 {
                        best = (p, m.ix);
                    }
                }
            }
            let j = self.jobs.get_mut(&id).expect("just read");
            j.coordinator = best.1;
            if best.1 == ME {
                // Take over at once: announce, recruit, and collect if the root is done.
                self.next_announce = now;
                if j.is_complete() {
                    self.request_collect(id);
                }
            }
        }
    }

    /// An announcement of a tracked durable job from `from`, which is not who this node takes
    /// for its coordinator: two successors at once (or a returning submitter) settle on the
    /// higher precedence; a silent coordinator gives way to whoever speaks.
    pub(super) fn announced_by(&mut self, now: Millis, from: PeerIx, a: &Announce) {
        let Some(j) = self.jobs.get_mut(&a.job) else {
            return;
        };
        if j.coordinator == from || !Self::durable(j) {
            return;
        }
        let current = j.coordinator;
        let live = j.members.is_live(current) && !self.view.gone(current, now);
        let submitter = self.view.id(j.submitter);
        let outranks = durable::precedence(&a.job, &submitter, &self.view.id(from))
            > durable::precedence(&a.job, &submitter, &self.view.id(current));
        if !live || outranks {
            j.coordinator = from;
        }
    }

    /// Whether this node keeps the output of job `j` once its root is done.
    pub(super) fn keeps_output(&self, j: &JobState, now: Millis) -> bool {
        if j.coordinator == ME || self.mine.contains(&j.id) {
            return true;
        }
        if !Self::durable(j) {
            return false;
        }
        // K keepers picked from the ring alone, not skipping the coordinator: members that
        // disagree about who coordinates (one saw a submitter that restarted at once go
        // silent, another did not) still pick the same keepers, where skipping each one's
        // own idea of the coordinator could leave the real one waiting for a keeper nobody
        // is. The cost: a coordinator the ring did not pick makes K + 1 copies.
        let me = self.id();
        let ring = self.keeper_ring(j, now);
        let want = usize::from(j.spec.keep.copies);
        durable::ring_pick(&j.id, OUTPUT_PIECE, &ring, |_| false, want).any(|n| *n == me)
    }

    /// A coordinator that holds the output ends the job once enough live members keep it too.
    pub(super) fn try_finish(&mut self, job: JobId) {
        let Some(j) = self.jobs.get(&job) else {
            return;
        };
        let Some(output) = j
            .output
            .filter(|_| j.coordinator == ME && j.failed.is_none())
        else {
            return;
        };
        if self.settling_account(&job) {
            // Completions still on their way: the job's account waits for them, briefly.
            let at = j.account_until;
            self.finish_wakeup = Some(self.finish_wakeup.map_or(at, |w| w.min(at)));
            return;
        }
        let mut holders = vec![self.id()];
        holders.extend(
            j.output_holders
                .iter()
                .filter(|(ix, o)| *o == output && j.members.is_live(*ix))
                .map(|(ix, _)| self.view.id(*ix)),
        );
        holders.sort_unstable();
        holders.dedup();
        let others = j
            .members
            .iter()
            .filter(|m| m.live && m.announced && m.weight > 0)
            .count();
        let want = usize::from(j.spec.keep.copies).min(1 + others);
        if holders.len() < want {
            return;
        }
        holders.truncate(durable::MAX_HOLDERS);
        self.end_job(job, Ending::Done { output, holders });
    }

    /// Whether this node holds job `job`'s output and waits, before it ends the job, for
    /// completions it has not heard ([`super::ACCOUNTING_GRACE_MS`]).
    pub fn settling_account(&self, job: &JobId) -> bool {
        self.jobs.get(job).is_some_and(|j| {
            j.output.is_some()
                && j.coordinator == ME
                && j.failed.is_none()
                && self.last_now < j.account_until
                && j.completions_unheard()
        })
    }

    /// Ends the jobs whose output this node holds and whose wait for their account is over
    /// ([`super::ACCOUNTING_GRACE_MS`]).
    pub(super) fn finish_waiting(&mut self) {
        let held: Vec<JobId> = self
            .order
            .iter()
            .filter(|id| self.jobs[*id].output.is_some())
            .copied()
            .collect();
        for id in held {
            self.try_finish(id);
        }
    }

    /// This node coordinates job `job` and it ended: everyone hears how, the end is kept here
    /// (for a durable job), and the job is no longer tracked.
    pub(super) fn end_job(&mut self, job: JobId, ending: Ending) {
        let Some(j) = self.jobs.get(&job) else {
            return;
        };
        let (epoch, alone) = (j.epoch, j.alone);
        // Kept here with the output only: a successor ending its run as an earlier one ended
        // may not hold it.
        let keep = Self::durable(j)
            && match &ending {
                Ending::Done { output, .. } => j.output == Some(*output),
                Ending::Failed { .. } | Ending::Expired => true,
            };
        if !alone {
            let end = Finished {
                job,
                epoch,
                ending: ending.clone(),
            };
            self.publish(Topic::Jobs, Message::Finished(end));
        }
        self.note_ending(job, epoch, ending, keep);
        self.mine.remove(&job);
        self.retire(job, epoch);
    }

    /// Remembers how job `job` ended; `kept`: this node keeps it (the driver stores it).
    pub(super) fn note_ending(&mut self, job: JobId, epoch: u64, ending: Ending, kept: bool) {
        if let Some(known) = self.endings.get(&job)
            && (known.epoch > epoch || (known.kept && !kept))
        {
            return;
        }
        if kept {
            self.effects.push_back(Effect::Ended {
                job,
                epoch,
                ending: ending.clone(),
            });
        }
        self.heard.remove(&job);
        self.endings.insert(
            job,
            KnownEnding {
                epoch,
                ending,
                kept,
            },
        );
    }

    /// How job `job` ended, from a `Finished` (the coordinator's, or a keeper's answer).
    /// Returns whether this node keeps the output (it collected the same one).
    pub(super) fn heard_ending(&mut self, job: JobId, f: &Finished) -> bool {
        let kept = match (&f.ending, self.jobs.get(&job)) {
            (Ending::Done { output, .. }, Some(j)) => {
                Self::durable(j) && j.epoch == f.epoch && j.output == Some(*output)
            }
            _ => false,
        };
        let already = self.endings.get(&job).is_some_and(|k| k.kept);
        if !already || kept {
            self.note_ending(job, f.epoch, f.ending.clone(), kept);
        }
        kept
    }

    /// Whether `f` ends a run of a durable job whose output this node is fetching to keep.
    pub(super) fn collecting_copy(&self, f: &Finished) -> bool {
        matches!(f.ending, Ending::Done { .. })
            && self
                .jobs
                .get(&f.job)
                .is_some_and(|j| Self::durable(j) && j.collecting && j.epoch == f.epoch)
    }

    /// This node was collecting job `job`'s output when its run ended (see
    /// [`Node::collecting_copy`]), and the collection is over (`Some`: with this output,
    /// `None`: it failed): it keeps the ending if it has the output the coordinator named,
    /// and stops tracking the job either way. Returns whether the run had ended.
    pub(super) fn collected_after_end(&mut self, job: JobId, output: Option<OutputRef>) -> bool {
        let Some(j) = self.jobs.get(&job) else {
            return false;
        };
        let (epoch, durable) = (j.epoch, Self::durable(j));
        let Some(known) = self.endings.get(&job).filter(|k| k.epoch == epoch) else {
            return false;
        };
        let ending = known.ending.clone();
        let same = matches!(&ending, Ending::Done { output: o, .. } if Some(*o) == output);
        if same && durable {
            self.note_ending(job, epoch, ending, true);
        }
        self.retire(job, epoch);
        true
    }

    /// A non-member heard a job announced: remembered for progress on request.
    pub(super) fn heard_announce(&mut self, from: PeerIx, a: &Announce) {
        if self.endings.contains_key(&a.job)
            || self.heard.get(&a.job).is_some_and(|h| h.epoch > a.epoch)
        {
            return;
        }
        let done = a.done.iter().map(|&(lo, hi)| hi.saturating_sub(lo)).sum();
        let total = a.spec.tree().total();
        self.heard.insert(
            a.job,
            HeardJob {
                epoch: a.epoch,
                done,
                total,
                coordinator: self.view.id(from),
            },
        );
    }

    /// Asks the mesh how job `job` ended (the nodes that keep it answer with its `Finished`).
    /// At most one query per job per [`ANSWER_GAP_MS`].
    pub fn query(&mut self, now: Millis, job: JobId) {
        self.ask_ending(now, job);
        self.after_step(now);
    }

    fn ask_ending(&mut self, now: Millis, job: JobId) {
        let due = self
            .queried
            .get(&job)
            .is_none_or(|&t| now >= t + ANSWER_GAP_MS);
        if due {
            self.queried.insert(job, now);
            self.publish(Topic::Jobs, Message::Query(Query { job }));
        }
    }

    /// Fails each durable job this node coordinates whose input has a piece that a task still
    /// needs and that no live node holds, for [`INPUT_LOST_MS`]: its submitter left before the
    /// piece was copied (a `--detach` that never returned), or every holder went away. Without
    /// this the job never ended: its members asked each other for the piece forever (seen in
    /// the simulator when it let a submitter leave before its second job was held). A
    /// submitter that coordinates holds the whole input: only successors look.
    pub(super) fn check_pieces(&mut self, now: Millis) {
        let mut failing = Vec::new();
        for i in 0..self.order.len() {
            let id = self.order[i];
            let j = &self.jobs[&id];
            if j.coordinator != ME
                || j.submitter == ME
                || j.failed.is_some()
                || !Self::durable(j)
                || j.holders.is_empty()
                || matches!(j.spec.input, crate::job::Input::Dataset(_))
            {
                continue;
            }
            let live = |ix: PeerIx| ix == ME || (j.members.is_live(ix) && !self.view.gone(ix, now));
            let held = |piece: u32| {
                j.holders
                    .get(piece as usize)
                    .is_some_and(|h| h.iter().any(|&ix| live(ix)))
            };
            let lost = if let crate::job::Input::Chunks { .. } = j.spec.input {
                (0..j.tree.maps())
                    .find(|&t| !j.tasks[t as usize].is_done() && !held(t))
                    .map(|t| format!("input chunk {t}"))
            } else {
                // The module of a WebAssembly job over a generated input: every task needs it.
                (!j.is_complete() && !held(0)).then(|| "its WebAssembly module".to_string())
            };
            let copies = j.spec.keep.copies;
            let j = self.jobs.get_mut(&id).expect("listed in order");
            if j.unheld_for(lost.is_some(), now) >= INPUT_LOST_MS
                && let Some(what) = lost
            {
                failing.push((
                    id,
                    format!(
                        "the job's input is lost: {what} has no live holder (its submitter left before it was held by {copies} members, or every holder went away); submit the job again"
                    ),
                ));
            }
        }
        for (job, error) in failing {
            self.fail_job(job, error);
        }
    }

    /// A node that holds a durable job's output and has heard nothing of the job for
    /// [`ENDING_UNHEARD_MS`] asks how it ended. A keeper: the coordinator's `Finished` may
    /// have been lost on its way, and without it the keeper would hold a copy nobody knows it
    /// keeps until the job went idle and it forgot the job. A successor coordinator waiting
    /// for keepers: an earlier run may have ended, its keepers with it (see
    /// [`Node::on_finished`]).
    pub(super) fn ask_unheard_endings(&mut self, now: Millis) {
        let unheard: Vec<JobId> = self
            .order
            .iter()
            .filter(|id| {
                let j = &self.jobs[*id];
                Self::durable(j)
                    && j.output.is_some()
                    && now.saturating_sub(j.last_progress) > ENDING_UNHEARD_MS
            })
            .copied()
            .collect();
        for id in unheard {
            self.ask_ending(now, id);
        }
    }

    /// Someone asked how a job ended: a node that keeps its end answers (at most once per
    /// [`ANSWER_GAP_MS`] per job, however many ask).
    pub(super) fn on_query(&mut self, now: Millis, q: &Query) {
        let Some(known) = self.endings.get(&q.job).filter(|k| k.kept) else {
            return;
        };
        if self
            .answered
            .get(&q.job)
            .is_some_and(|&t| now < t + ANSWER_GAP_MS)
        {
            return;
        }
        let end = Finished {
            job: q.job,
            epoch: known.epoch,
            ending: known.ending.clone(),
        };
        self.answered.insert(q.job, now);
        self.publish(Topic::Jobs, Message::Finished(end));
    }

    /// Whether this node keeps how job `job` ended (and answers queries about it).
    pub fn keeps_ending(&self, job: &JobId) -> bool {
        self.endings.get(job).is_some_and(|k| k.kept)
    }

    /// What this node can say about job `job`'s result.
    pub fn result_status(&self, job: &JobId) -> ResultStatus {
        if let Some(j) = self.jobs.get(job) {
            if let Some(error) = &j.failed {
                return ResultStatus::Failed {
                    error: error.clone(),
                };
            }
            return ResultStatus::Running {
                done: j.done,
                total: j.total(),
                coordinator: self.view.id(j.coordinator),
            };
        }
        if self.waiting.iter().any(|w| w.id == *job) {
            return ResultStatus::Queued;
        }
        if let Some(known) = self.endings.get(job) {
            return match &known.ending {
                Ending::Done { output, holders } => ResultStatus::Done {
                    output: *output,
                    holders: holders.clone(),
                },
                Ending::Failed { error } => ResultStatus::Failed {
                    error: error.clone(),
                },
                Ending::Expired => ResultStatus::Expired,
            };
        }
        if let Some(h) = self.heard.get(job) {
            return ResultStatus::Running {
                done: h.done,
                total: h.total,
                coordinator: h.coordinator,
            };
        }
        ResultStatus::Unknown
    }

    /// Hands back an end this node kept before it restarted (or, with [`Ending::Expired`],
    /// one it dropped): it answers queries for it, and ignores stale announcements of that run.
    pub fn restore_ending(&mut self, job: JobId, epoch: u64, ending: Ending) {
        if self.finished.get(&job).is_none_or(|f| f.epoch < epoch) {
            self.finished
                .insert(job, super::FinishedJob { epoch, view: None });
        }
        self.endings.insert(
            job,
            KnownEnding {
                epoch,
                ending,
                kept: true,
            },
        );
    }

    /// The driver dropped the output of job `job` it kept (past its retention or the disk
    /// budget): this node says so from now on, and tells the mesh, so that nodes that heard it
    /// was done stop sending readers to this keeper.
    pub fn output_expired(&mut self, now: Millis, job: JobId, epoch: u64) {
        self.restore_ending(job, epoch, Ending::Expired);
        let end = Finished {
            job,
            epoch,
            ending: Ending::Expired,
        };
        self.publish(Topic::Jobs, Message::Finished(end));
        self.after_step(now);
    }

    /// Whether this node tracks a durable job (whose input pieces it may keep or read).
    pub fn tracks_durable_jobs(&self) -> bool {
        self.jobs.values().any(Self::durable)
    }

    /// Whether `from` may end tracked job `j`: its coordinator, its submitter, or a member.
    pub(super) fn may_end(j: &JobState, from: PeerIx) -> bool {
        from == j.coordinator
            || from == j.submitter
            || j.members.get(from).is_some_and(|m| m.announced)
    }
}
