//! The protocol state machine of one node.
//!
//! Inputs are method calls that take `now`: [`Node::handle_message`], [`Node::handle_timeout`],
//! [`Node::submit`], [`Node::task_finished`], [`Node::job_collected`]. Outputs are drained after
//! each input, in this order: [`Node::poll_transmit`] (messages to broadcast),
//! [`Node::poll_effect`] (work for the driver), then [`Node::poll_timeout`] (when to call
//! `handle_timeout` next). The machine reads no clock and draws no randomness of its own.

use crate::effects::{
    ChildInput, Effect, JobStatus, JobView, MapSource, PeerStatus, TaskOutcome, TaskRun, Work,
};
use crate::ids::{IdMap, IdSet, JobId, Millis, NodeId};
use crate::job::{JobSpec, SpecError};
use crate::job_state::{JobState, TaskState};
use crate::pacer::FlushPacer;
use crate::rendezvous;
use crate::view::{ME, PeerIx, View};
use crate::wire::{
    Advert, Announce, Batch, Envelope, Failure, Finished, InvalidMessage, JobResults, JobTasks,
    Lost, MAX_ACTIVE_JOBS, MAX_DONE_RANGES, MAX_REASON_BYTES, Message, ResultRef,
};
use std::collections::VecDeque;

/// Tunables. Defaults suit a LAN; the simulator and tests shorten or stretch them.
#[derive(Debug, Clone)]
pub struct Config {
    /// How often a node sends its capacity advert in a small mesh.
    pub advert_interval_ms: Millis,
    /// A peer silent for this long leaves the view (3.5 advert periods); peers of a large
    /// mesh, which advertise less often, get proportionally longer.
    pub peer_ttl_ms: Millis,
    /// Adverts a node should receive per second at most: in a mesh larger than this, every
    /// node stretches its advert period so the total stays bounded (N peers advertise every
    /// N / rate seconds), keeping advert traffic per node constant as the mesh grows.
    pub advert_rate_max: u32,
    /// Longest advert period, whatever the mesh size.
    pub advert_interval_max_ms: Millis,
    /// How long a claim stays valid without the claimer listing the job as active.
    pub lease_ms: Millis,
    /// How long a task waits per rank step before lower-ranked peers may take it.
    pub steal_delay_ms: Millis,
    /// Least time between two batches once a burst of [`Config::flush_burst`] is spent:
    /// isolated events go out at once, storms are batched.
    pub flush_interval_ms: Millis,
    pub flush_burst: u32,
    /// How often a submitter re-announces its running jobs (for late joiners).
    pub announce_interval_ms: Millis,
    /// How often claims and results are checked for expiry.
    pub sweep_interval_ms: Millis,
    /// How often a node re-sends completions of the results it holds that are still needed,
    /// so that a lost completion message does not stall a job.
    pub repair_interval_ms: Millis,
    /// Failures of one task after which its job fails.
    pub max_attempts: u32,
    /// How long a task whose input could not be fetched waits before it is offered again.
    pub unavailable_backoff_ms: Millis,
    /// Most jobs tracked at once; announcements beyond it are dropped.
    pub max_jobs: usize,
    /// A job with no progress for this long is dropped by non-submitters.
    pub job_idle_ms: Millis,
    /// Queue about this much work per slot ahead of time when tasks are short.
    pub queue_target_us: u64,
    /// Most tasks queued per slot.
    pub prefetch_max: usize,
    /// A batch is sent at once when it grows past this many encoded bytes.
    pub batch_bytes_max: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            advert_interval_ms: 1_000,
            peer_ttl_ms: 3_500,
            advert_rate_max: 200,
            advert_interval_max_ms: 60_000,
            lease_ms: 5_000,
            steal_delay_ms: 250,
            flush_interval_ms: 2,
            flush_burst: 8,
            announce_interval_ms: 1_000,
            sweep_interval_ms: 500,
            repair_interval_ms: 2_000,
            max_attempts: 3,
            unavailable_backoff_ms: 1_000,
            max_jobs: 256,
            job_idle_ms: 600_000,
            queue_target_us: 20_000,
            prefetch_max: 1024,
            batch_bytes_max: 256 * 1024,
        }
    }
}

/// What this node offers.
#[derive(Debug, Clone, Copy)]
pub struct Capacity {
    pub slots: u32,
    pub cores: u32,
    pub mem_mb: u64,
}

/// Counters for what happened to incoming traffic.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Stats {
    pub messages_in: u64,
    pub messages_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Messages dropped because they failed to decode or validate.
    pub invalid_messages: u64,
    /// Entries that named an unknown task index or an untracked job.
    pub ignored_entries: u64,
    /// Announcements dropped because the job table was full.
    pub jobs_refused: u64,
}

/// Why a submission was refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SubmitError {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error("this node already tracks {0} jobs; wait for some to finish")]
    TooManyJobs(usize),
}

/// Remembered outcome of a job this node no longer tracks.
#[derive(Debug, Clone)]
struct FinishedJob {
    epoch: u64,
    view: JobView,
}

const FINISHED_MEMORY: usize = 1024;
/// Least time between an advert and an extra one for a new neighbour.
pub const EXTRA_ADVERT_GAP_MS: Millis = 100;

/// The protocol state machine. See the module docs for the calling convention.
#[derive(Debug)]
pub struct Node {
    cfg: Config,
    capacity: Capacity,
    load_milli: u32,
    view: View,
    jobs: IdMap<JobId, JobState>,
    /// Job ids in arrival order: older jobs are served first.
    order: Vec<JobId>,
    finished: IdMap<JobId, FinishedJob>,
    finished_order: VecDeque<JobId>,
    /// Jobs this node submitted and waits for.
    mine: IdSet<JobId>,
    /// Claimed by this node, not started, in claim order; `queued` holds the same entries for
    /// membership tests.
    queue: VecDeque<(JobId, u32)>,
    queued: IdSet<(JobId, u32)>,
    /// Started, with the time they started.
    running: IdMap<(JobId, u32), Millis>,
    /// Mean run time of recent tasks (µs), for sizing the queue.
    avg_task_us: Option<f64>,
    pending: Batch,
    pending_bytes: usize,
    flush_pacer: FlushPacer,
    outbox: VecDeque<Vec<u8>>,
    effects: VecDeque<Effect>,
    seq: u64,
    next_advert: Millis,
    /// When the last advert went out, if one did.
    last_advert: Option<Millis>,
    next_sweep: Millis,
    next_announce: Millis,
    next_repair: Millis,
    claim_wakeup: Option<Millis>,
    stats: Stats,
}

impl Node {
    /// A node with identity `me`. `seed` decorrelates this node's message sequence numbers from
    /// a previous incarnation with the same id (gossip deduplicates by content).
    pub fn new(me: NodeId, capacity: Capacity, cfg: Config, seed: u64) -> Self {
        let view = View::new(me, capacity.slots, cfg.peer_ttl_ms, cfg.advert_interval_ms);
        let flush_pacer = FlushPacer::new(cfg.flush_interval_ms, cfg.flush_burst);
        Self {
            cfg,
            capacity,
            load_milli: 0,
            view,
            jobs: IdMap::default(),
            order: Vec::new(),
            finished: IdMap::default(),
            finished_order: VecDeque::new(),
            mine: IdSet::default(),
            queue: VecDeque::new(),
            queued: IdSet::default(),
            running: IdMap::default(),
            avg_task_us: None,
            pending: Batch::default(),
            pending_bytes: 0,
            flush_pacer,
            outbox: VecDeque::new(),
            effects: VecDeque::new(),
            seq: seed << 20,
            next_advert: 0,
            last_advert: None,
            next_sweep: 0,
            next_announce: 0,
            next_repair: 0,
            claim_wakeup: None,
            stats: Stats::default(),
        }
    }

    pub fn id(&self) -> NodeId {
        self.view.id(ME)
    }

    pub fn capacity(&self) -> Capacity {
        self.capacity
    }

    /// Whether `peer` was seen and has since stopped advertising: asking it for anything is
    /// futile. A peer never heard from is not "gone".
    pub fn peer_gone(&self, peer: &NodeId, now: Millis) -> bool {
        self.view
            .lookup(peer)
            .is_some_and(|ix| !self.view.is_live(ix, now))
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Updates the load figure carried in adverts (the driver reads it from the OS).
    pub fn set_load(&mut self, load_milli: u32) {
        self.load_milli = load_milli;
    }

    // ----- inputs -------------------------------------------------------------------------

    /// A gossip message from peer `from`. Invalid messages are dropped, counted and reported.
    pub fn handle_message(
        &mut self,
        now: Millis,
        from: NodeId,
        bytes: &[u8],
    ) -> Result<(), InvalidMessage> {
        self.stats.messages_in += 1;
        self.stats.bytes_in += bytes.len() as u64;
        let env = match Envelope::decode(bytes) {
            Ok(env) => env,
            Err(e) => {
                self.stats.invalid_messages += 1;
                return Err(e);
            }
        };
        let Some(from) = self.view.intern(from) else {
            return Ok(());
        };
        if from == ME {
            return Ok(());
        }
        match env.body {
            Message::Advert(advert) => self.on_advert(now, from, advert),
            Message::Announce(a) => self.on_announce(now, from, a),
            Message::Batch(b) => self.on_batch(now, from, b),
            Message::Finished(f) => self.on_finished(f),
        }
        self.after_step(now);
        Ok(())
    }

    /// A peer started listening to this node's gossip (a new neighbour): advertise soon, so it
    /// can count on this node without waiting a whole advert period. Adverts stay at least
    /// [`EXTRA_ADVERT_GAP_MS`] apart however many neighbours arrive.
    pub fn neighbour_joined(&mut self, now: Millis) {
        let soonest = self
            .last_advert
            .map_or(now, |t| t + EXTRA_ADVERT_GAP_MS)
            .max(now);
        self.next_advert = self.next_advert.min(soonest);
    }

    /// Timer expiry: call at (or after) the time [`Node::poll_timeout`] returned.
    pub fn handle_timeout(&mut self, now: Millis) {
        if now >= self.next_advert {
            let interval = self.advert_interval(now);
            self.send_advert(interval);
            self.next_advert = now + interval;
            self.last_advert = Some(now);
        }
        if now >= self.next_sweep {
            self.sweep(now);
            self.next_sweep = now + self.cfg.sweep_interval_ms;
        }
        if now >= self.next_announce {
            self.announce_mine(now);
            self.next_announce = now + self.cfg.announce_interval_ms;
        }
        if now >= self.next_repair {
            self.repair();
            self.next_repair = now + self.cfg.repair_interval_ms;
        }
        if self.claim_wakeup.is_some_and(|t| now >= t) {
            self.claim_wakeup = None;
        }
        self.after_step(now);
    }

    /// Submits a job from this node. `epoch` must grow from one submission to the next (the
    /// driver passes wall-clock milliseconds), so that peers can tell a resubmission from stale
    /// copies of a finished run.
    pub fn submit(&mut self, now: Millis, spec: JobSpec, epoch: u64) -> Result<JobId, SubmitError> {
        spec.validate()?;
        let id = spec.id();
        self.mine.insert(id);
        if let Some(job) = self.jobs.get_mut(&id) {
            // Already running (perhaps submitted elsewhere): wait for the same result.
            if job.is_complete() {
                self.request_collect(id);
            }
            self.after_step(now);
            return Ok(id);
        }
        if self.jobs.len() >= self.cfg.max_jobs {
            self.mine.remove(&id);
            return Err(SubmitError::TooManyJobs(self.jobs.len()));
        }
        self.finished.remove(&id);
        self.insert_job(JobState::new(spec.clone(), ME, epoch, now));
        self.broadcast(Message::Announce(Announce {
            spec,
            epoch,
            done: Vec::new(),
        }));
        self.after_step(now);
        Ok(id)
    }

    /// The driver finished (or failed) a task that an [`Effect::Run`] started.
    pub fn task_finished(
        &mut self,
        now: Millis,
        job: JobId,
        task: u32,
        outcome: TaskOutcome,
        run_us: u64,
    ) {
        if self.running.remove(&(job, task)).is_none() {
            return;
        }
        let sample = run_us.max(1) as f64;
        self.avg_task_us = Some(match self.avg_task_us {
            Some(avg) => avg * 0.8 + sample * 0.2,
            None => sample,
        });
        match outcome {
            TaskOutcome::Done(result) => {
                let size = 48
                    + match &result {
                        ResultRef::Inline(bytes) => bytes.len(),
                        ResultRef::Blob { .. } => 40,
                    };
                self.on_done(now, job, task, ME, result.clone());
                self.queue_entry(size, |b| push_result(&mut b.done, job, task, result));
            }
            TaskOutcome::Failed(reason) => self.fail_task(now, job, task, reason, false),
            TaskOutcome::Unavailable(reason) => self.fail_task(now, job, task, reason, true),
            TaskOutcome::InputLost { child, holder } => {
                self.on_lost(now, job, child, holder);
                if let Some(j) = self.jobs.get_mut(&job) {
                    // Give the reduce task back: it waits until the lost child is redone.
                    if let Some(TaskState::Claimed { by: ME, .. }) = j.tasks.get(task as usize) {
                        j.reopen(task, now, &self.view);
                    }
                }
                self.queue_entry(80, |b| {
                    b.lost.push(Lost {
                        job,
                        task: child,
                        holder,
                    })
                });
            }
        }
        self.after_step(now);
    }

    /// The driver fetched (or failed to fetch) the root result after an [`Effect::Collect`].
    pub fn job_collected(&mut self, now: Millis, job: JobId, outcome: Result<(), NodeId>) {
        match outcome {
            Ok(()) => {
                self.mine.remove(&job);
                if let Some(state) = self.jobs.get(&job) {
                    let epoch = state.epoch;
                    if state.submitter == ME {
                        self.broadcast(Message::Finished(Finished {
                            job,
                            epoch,
                            ok: true,
                        }));
                    }
                    self.retire(job, epoch);
                }
            }
            Err(holder) => {
                if let Some(state) = self.jobs.get(&job) {
                    let root = state.tree.root();
                    self.on_lost(now, job, root, holder);
                    self.queue_entry(80, |b| {
                        b.lost.push(Lost {
                            job,
                            task: root,
                            holder,
                        })
                    });
                }
            }
        }
        self.after_step(now);
    }

    // ----- outputs ------------------------------------------------------------------------

    /// Next message to broadcast to every peer.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        let bytes = self.outbox.pop_front()?;
        self.stats.messages_out += 1;
        self.stats.bytes_out += bytes.len() as u64;
        Some(bytes)
    }

    /// Next effect for the driver.
    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.effects.pop_front()
    }

    /// When [`Node::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Millis {
        let mut t = self.next_advert.min(self.next_sweep).min(self.next_repair);
        if !self.mine.is_empty() {
            t = t.min(self.next_announce);
        }
        if let Some(w) = self.claim_wakeup {
            t = t.min(w);
        }
        if !self.pending_is_empty() {
            t = t.min(self.flush_pacer.next_at());
        }
        t
    }

    // ----- queries ------------------------------------------------------------------------

    /// The root result of a tracked job, if this node knows it is done: where to get it.
    pub fn root_result(&self, id: &JobId) -> Option<(ResultRef, NodeId)> {
        let job = self.jobs.get(id)?;
        match &job.tasks[job.tree.root() as usize] {
            TaskState::Done { holder, result } => Some((result.clone(), self.view.id(*holder))),
            _ => None,
        }
    }

    /// A one-line summary of a tracked job's task states, for diagnosing stuck runs.
    pub fn debug_job(&self, id: &JobId, now: Millis) -> String {
        let Some(job) = self.jobs.get(id) else {
            return "not tracked".into();
        };
        let mut waiting = 0;
        let mut ready = 0;
        let mut claimed = Vec::new();
        let mut elsewhere = 0;
        let mut first_open = Vec::new();
        for (t, state) in job.tasks.iter().enumerate() {
            match state {
                TaskState::Waiting { .. } => waiting += 1,
                TaskState::Ready { .. } => {
                    ready += 1;
                    if first_open.len() < 5 {
                        first_open.push(t);
                    }
                }
                TaskState::Claimed { by, at } => {
                    if claimed.len() < 5 {
                        let kids: Vec<String> = job
                            .tree
                            .children(t as u32)
                            .map(|c| match &job.tasks[c as usize] {
                                TaskState::Done { holder, result } => format!(
                                    "{c}:done@{}{}",
                                    self.view.id(*holder),
                                    if matches!(result, ResultRef::Inline(_)) {
                                        "(inline)"
                                    } else {
                                        ""
                                    }
                                ),
                                other => format!("{c}:{other:?}"),
                            })
                            .collect();
                        claimed.push(format!(
                            "{t} kids {kids:?} by {} (live {}, at {at}, queued here {})",
                            self.view.id(*by),
                            self.view.is_live(*by, now),
                            self.queued.contains(&(*id, t as u32))
                                || self.running.contains_key(&(*id, t as u32)),
                        ));
                    }
                }
                TaskState::DoneElsewhere => elsewhere += 1,
                TaskState::Done { .. } => {}
            }
        }
        format!(
            "done {}/{} (elsewhere {elsewhere}), waiting {waiting}, ready {ready} {first_open:?}, claimed {claimed:?}, failed {:?}, candidates {}, queue {}, running {}",
            job.done,
            job.total(),
            job.failed,
            self.view.candidates().len(),
            self.queue.len(),
            self.running.len()
        )
    }

    /// Status of one job, tracked or recently finished.
    pub fn job_status(&self, id: &JobId) -> Option<JobView> {
        if let Some(job) = self.jobs.get(id) {
            return Some(self.job_view(job));
        }
        self.finished.get(id).map(|f| f.view.clone())
    }

    /// All tracked and recently finished jobs.
    pub fn jobs(&self) -> Vec<JobView> {
        let mut out: Vec<JobView> = self
            .order
            .iter()
            .filter_map(|id| self.jobs.get(id))
            .map(|j| self.job_view(j))
            .collect();
        out.extend(
            self.finished_order
                .iter()
                .filter_map(|id| self.finished.get(id))
                .map(|f| f.view.clone()),
        );
        out
    }

    /// Live peers (not this node) with their adverts.
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
            })
            .collect()
    }

    /// Whether any live node (this one included) offers slots.
    pub fn capacity_available(&self) -> bool {
        !self.view.candidates().is_empty()
    }

    /// Free slots this node advertises.
    pub fn free_slots(&self) -> u32 {
        self.capacity
            .slots
            .saturating_sub(self.running.len() as u32)
    }

    fn job_view(&self, job: &JobState) -> JobView {
        let status = if let Some(e) = &job.failed {
            JobStatus::Failed(e.clone())
        } else if job.is_complete() {
            JobStatus::Complete
        } else if !self.capacity_available() {
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
        JobView {
            id: job.id,
            op: job.spec.op.name(),
            maps: job.tree.maps(),
            total: job.total(),
            done: job.done,
            maps_done: job.maps_done,
            depth: job.tree.depth(),
            submitter: self.view.id(job.submitter),
            status,
            workers,
            local: job.local_tasks(),
        }
    }

    // ----- message handlers ---------------------------------------------------------------

    fn on_advert(&mut self, now: Millis, from: PeerIx, advert: Advert) {
        let first_contact = !self.view.is_live(from, now);
        self.view.update(from, advert, now);
        if first_contact && !self.mine.is_empty() {
            // A newcomer learns our running jobs without waiting a whole announce period.
            self.next_announce = now;
        }
    }

    fn on_announce(&mut self, now: Millis, from: PeerIx, a: Announce) {
        let id = a.spec.id();
        if self.finished.get(&id).is_some_and(|f| f.epoch >= a.epoch) {
            return;
        }
        if let Some(job) = self.jobs.get_mut(&id) {
            if job.epoch == a.epoch {
                job.record_done_ranges(&a.done);
            }
            return;
        }
        if self.jobs.len() >= self.cfg.max_jobs {
            self.stats.jobs_refused += 1;
            return;
        }
        let mut job = JobState::new(a.spec, from, a.epoch, now);
        job.record_done_ranges(&a.done);
        self.insert_job(job);
    }

    fn on_batch(&mut self, now: Millis, from: PeerIx, b: Batch) {
        for JobTasks { job, tasks } in b.claims {
            for task in tasks {
                self.on_claim(now, job, task, from);
            }
        }
        for JobResults { job, results } in b.done {
            for (task, result) in results {
                self.on_done(now, job, task, from, result);
            }
        }
        for f in b.failed {
            self.on_failure(now, f.job, f.task, from, &f.reason, f.transient);
        }
        for l in b.lost {
            self.on_lost(now, l.job, l.task, l.holder);
        }
    }

    fn on_finished(&mut self, f: Finished) {
        if self.jobs.get(&f.job).is_some_and(|j| j.epoch <= f.epoch) && !self.mine.contains(&f.job)
        {
            self.retire(f.job, f.epoch);
        }
    }

    fn on_claim(&mut self, now: Millis, job: JobId, task: u32, by: PeerIx) {
        let Some(current) = self
            .jobs
            .get(&job)
            .and_then(|j| j.tasks.get(task as usize))
            .cloned()
        else {
            self.stats.ignored_entries += 1;
            return;
        };
        let take = match current {
            TaskState::Ready { .. } => true,
            TaskState::Claimed { by: cur, at } => {
                cur == by
                    || !self.claim_valid(job, task, cur, at, now)
                    || rendezvous::conflict_winner(&job, task, self.view.id(cur), self.view.id(by))
                        == self.view.id(by)
            }
            _ => false,
        };
        if take && let Some(j) = self.jobs.get_mut(&job) {
            j.tasks[task as usize] = TaskState::Claimed { by, at: now };
        }
    }

    fn on_done(&mut self, now: Millis, job: JobId, task: u32, holder: PeerIx, result: ResultRef) {
        let view = &self.view;
        let Some(j) = self.jobs.get_mut(&job).filter(|j| task < j.total()) else {
            self.stats.ignored_entries += 1;
            return;
        };
        if j.record_done(task, holder, result, now, view)
            && task == j.tree.root()
            && self.mine.contains(&job)
        {
            self.request_collect(job);
        }
    }

    /// Reports a task of this node that failed, and tells the mesh.
    fn fail_task(
        &mut self,
        now: Millis,
        job: JobId,
        task: u32,
        mut reason: String,
        transient: bool,
    ) {
        truncate_utf8(&mut reason, MAX_REASON_BYTES);
        self.on_failure(now, job, task, ME, &reason, transient);
        self.queue_entry(64 + reason.len(), |b| {
            b.failed.push(Failure {
                job,
                task,
                reason,
                transient,
            })
        });
    }

    /// A task failed on `by`. A transient failure (its input could not be fetched) does not
    /// count towards the attempt limit: the task is offered again after a back-off, so that a
    /// partition or a slow peer cannot fail a job that would succeed later.
    fn on_failure(
        &mut self,
        now: Millis,
        job: JobId,
        task: u32,
        by: PeerIx,
        reason: &str,
        transient: bool,
    ) {
        let max = self.cfg.max_attempts;
        let backoff = self.cfg.unavailable_backoff_ms;
        let view = &self.view;
        let Some(j) = self.jobs.get_mut(&job).filter(|j| task < j.total()) else {
            self.stats.ignored_entries += 1;
            return;
        };
        if let TaskState::Claimed { by: cur, .. } = j.tasks[task as usize]
            && cur == by
        {
            j.reopen(task, if transient { now + backoff } else { now }, view);
        }
        if transient {
            return;
        }
        let attempts = j.attempts.entry(task).or_insert(0);
        *attempts += 1;
        let attempts = *attempts;
        if attempts >= max && j.failed.is_none() {
            let error = format!(
                "job {} failed: task {task} failed {attempts} times; last error: {reason}",
                job
            );
            j.failed = Some(error.clone());
            if self.mine.contains(&job) {
                self.effects.push_back(Effect::JobFailed { job, error });
                let epoch = j.epoch;
                if j.submitter == ME {
                    self.broadcast(Message::Finished(Finished {
                        job,
                        epoch,
                        ok: false,
                    }));
                }
                self.mine.remove(&job);
                self.retire(job, epoch);
            }
        }
    }

    fn on_lost(&mut self, now: Millis, job: JobId, task: u32, holder: NodeId) {
        let Some(holder_ix) = self.view.lookup(&holder) else {
            return;
        };
        let view = &self.view;
        let Some(j) = self.jobs.get_mut(&job).filter(|j| task < j.total()) else {
            self.stats.ignored_entries += 1;
            return;
        };
        if let TaskState::Done { holder: h, .. } = j.tasks[task as usize]
            && h == holder_ix
        {
            j.revert(task, now, view);
        }
    }

    // ----- internals ----------------------------------------------------------------------

    fn insert_job(&mut self, job: JobState) {
        self.order.push(job.id);
        self.jobs.insert(job.id, job);
    }

    fn request_collect(&mut self, job: JobId) {
        let Some(j) = self.jobs.get_mut(&job) else {
            return;
        };
        if j.collecting {
            return;
        }
        if let TaskState::Done { holder, result } = &j.tasks[j.tree.root() as usize] {
            j.collecting = true;
            self.effects.push_back(Effect::Collect {
                job,
                spec: j.spec.clone(),
                result: result.clone(),
                holder: self.view.id(*holder),
            });
        }
    }

    /// Stops tracking a job and remembers how it ended.
    fn retire(&mut self, job: JobId, epoch: u64) {
        let Some(state) = self.jobs.get(&job) else {
            return;
        };
        let view = self.job_view(state);
        self.jobs.remove(&job);
        self.order.retain(|id| *id != job);
        self.queue.retain(|(j, _)| *j != job);
        self.queued.retain(|(j, _)| *j != job);
        if self
            .finished
            .insert(job, FinishedJob { epoch, view })
            .is_none()
        {
            self.finished_order.push_back(job);
        }
        while self.finished_order.len() > FINISHED_MEMORY {
            if let Some(old) = self.finished_order.pop_front() {
                self.finished.remove(&old);
            }
        }
    }

    /// A claim is valid while its holder lives and either renewed it recently or lists the job
    /// as active in its adverts. This node's own claims are valid while it holds the task.
    fn claim_valid(&self, job: JobId, task: u32, by: PeerIx, at: Millis, now: Millis) -> bool {
        let lease = self.cfg.lease_ms;
        if by == ME {
            return self.running.contains_key(&(job, task)) || self.queued.contains(&(job, task));
        }
        self.view.is_live(by, now)
            && (now.saturating_sub(at) < lease || self.view.lists_active(by, &job))
    }

    /// Expires peers, claims and results held by dead peers; drops idle jobs.
    fn sweep(&mut self, now: Millis) {
        self.view.expire(now);
        let mut idle = Vec::new();
        for id in self.order.clone() {
            let mut expired = Vec::new();
            let mut lost = Vec::new();
            {
                let job = &self.jobs[&id];
                for (t, state) in job.tasks.iter().enumerate() {
                    let t = t as u32;
                    match *state {
                        TaskState::Claimed { by, at } if !self.claim_valid(id, t, by, at, now) => {
                            expired.push(t);
                        }
                        // An inline result travels with the completion; a blob dies with its holder.
                        TaskState::Done {
                            holder,
                            result: ResultRef::Blob { .. },
                        } if !self.view.is_live(holder, now) => lost.push(t),
                        _ => {}
                    }
                }
                if job.submitter != ME
                    && !self.mine.contains(&id)
                    && now.saturating_sub(job.last_progress) > self.cfg.job_idle_ms
                {
                    idle.push((id, job.epoch));
                }
            }
            let view = &self.view;
            let job = self.jobs.get_mut(&id).expect("listed in order");
            for t in expired {
                job.reopen(t, now, view);
            }
            for t in lost {
                job.revert(t, now, view);
            }
        }
        for (id, epoch) in idle {
            self.retire(id, epoch);
        }
        // Roots that became done again after a revert need collecting again.
        for id in self.mine.clone() {
            if self.jobs.get(&id).is_some_and(|j| j.is_complete()) {
                self.request_collect(id);
            }
        }
    }

    /// Re-sends completions of results held here that are still needed (bounded per round).
    fn repair(&mut self) {
        const MAX_PER_ROUND: usize = 4096;
        let mut budget = MAX_PER_ROUND;
        let mut entries = Vec::new();
        for id in &self.order {
            if budget == 0 {
                break;
            }
            let results = self.jobs[id].needed_results(ME, budget);
            budget -= results.len();
            if !results.is_empty() {
                entries.push((*id, results));
            }
        }
        for (job, results) in entries {
            for (task, result) in results {
                let size = 48
                    + match &result {
                        ResultRef::Inline(bytes) => bytes.len(),
                        ResultRef::Blob { .. } => 40,
                    };
                self.queue_entry(size, |b| push_result(&mut b.done, job, task, result));
            }
        }
    }

    fn announce_mine(&mut self, _now: Millis) {
        let mut msgs = Vec::new();
        for id in &self.order {
            let job = &self.jobs[id];
            if job.submitter == ME && job.failed.is_none() && !job.is_complete() {
                msgs.push(Message::Announce(Announce {
                    spec: (*job.spec).clone(),
                    epoch: job.epoch,
                    done: job.done_ranges(MAX_DONE_RANGES),
                }));
            }
        }
        for m in msgs {
            self.broadcast(m);
        }
    }

    /// The advert period: the base period, stretched in large meshes so that each node
    /// receives at most `advert_rate_max` adverts per second.
    fn advert_interval(&self, now: Millis) -> Millis {
        let peers = self.view.live_peers(now).count() as Millis;
        let stretched = peers * 1000 / Millis::from(self.cfg.advert_rate_max.max(1));
        stretched.clamp(
            self.cfg.advert_interval_ms,
            self.cfg
                .advert_interval_max_ms
                .max(self.cfg.advert_interval_ms),
        )
    }

    fn send_advert(&mut self, interval: Millis) {
        let mut active: Vec<JobId> = Vec::new();
        for (job, _) in self.queue.iter().chain(self.running.keys()) {
            if !active.contains(job) && active.len() < MAX_ACTIVE_JOBS {
                active.push(*job);
            }
        }
        let advert = Advert {
            slots_total: self.capacity.slots,
            slots_free: self.free_slots(),
            cores: self.capacity.cores,
            mem_mb: self.capacity.mem_mb,
            load_milli: self.load_milli,
            active_jobs: active,
            interval_ms: u32::try_from(interval).unwrap_or(u32::MAX),
        };
        self.broadcast(Message::Advert(advert));
    }

    /// How many tasks this node keeps claimed (queued plus running): one per slot for long
    /// tasks, more for short ones so that claims and results travel in large batches.
    fn window(&self) -> usize {
        let slots = self.capacity.slots as usize;
        let per_slot = match self.avg_task_us {
            None => 1,
            Some(avg) => {
                ((self.cfg.queue_target_us as f64 / avg) as usize).clamp(1, self.cfg.prefetch_max)
            }
        };
        slots * per_slot
    }

    fn fill_queue(&mut self, now: Millis) {
        if self.capacity.slots == 0 {
            return;
        }
        let mut want = self
            .window()
            .saturating_sub(self.queue.len() + self.running.len());
        if want == 0 {
            return;
        }
        let mut wake: Option<Millis> = None;
        for k in 0..self.order.len() {
            if want == 0 {
                break;
            }
            let id = self.order[k];
            let view = &self.view;
            let job = self.jobs.get_mut(&id).expect("listed in order");
            if job.failed.is_some() || job.is_complete() {
                continue;
            }
            let (tasks, w) = job.take_claimable(want, now, self.cfg.steal_delay_ms, view);
            if let Some(w) = w {
                wake = Some(wake.map_or(w, |x: Millis| x.min(w)));
            }
            if tasks.is_empty() {
                continue;
            }
            for &t in &tasks {
                job.tasks[t as usize] = TaskState::Claimed { by: ME, at: now };
                self.queue.push_back((id, t));
                self.queued.insert((id, t));
            }
            want -= tasks.len();
            self.pending_bytes += 40 + 5 * tasks.len();
            match self.pending.claims.iter_mut().find(|c| c.job == id) {
                Some(c) => c.tasks.extend(tasks),
                None => self.pending.claims.push(JobTasks { job: id, tasks }),
            }
        }
        self.claim_wakeup = wake;
    }

    fn start_tasks(&mut self, now: Millis) {
        while self.running.len() < self.capacity.slots as usize {
            let Some((id, task)) = self.queue.pop_front() else {
                break;
            };
            self.queued.remove(&(id, task));
            let Some(job) = self.jobs.get(&id) else {
                continue;
            };
            if !matches!(job.tasks[task as usize], TaskState::Claimed { by: ME, .. })
                || job.failed.is_some()
            {
                continue;
            }
            let work = if job.tree.is_map(task) {
                let source = match job.spec.generated_part(task) {
                    Some(part) => MapSource::Generated(part),
                    None => match job.spec.input {
                        crate::job::Input::Chunks { manifest, .. } => MapSource::Chunk {
                            manifest,
                            index: task,
                            holder: self.view.id(job.submitter),
                        },
                        _ => unreachable!("generated_part covers every generated input"),
                    },
                };
                Work::Map { source }
            } else {
                let mut children = Vec::new();
                for child in job.tree.children(task) {
                    match &job.tasks[child as usize] {
                        TaskState::Done { holder, result } => children.push(ChildInput {
                            task: child,
                            result: result.clone(),
                            holder: self.view.id(*holder),
                        }),
                        _ => break,
                    }
                }
                if children.len() != job.tree.children(task).len() {
                    continue;
                }
                Work::Reduce { children }
            };
            self.running.insert((id, task), now);
            let mut workers: Vec<(u32, PeerIx)> = job
                .completions
                .iter()
                .filter(|&(&ix, _)| ix != ME && ix != job.submitter && self.view.is_live(ix, now))
                .map(|(&ix, &n)| (n, ix))
                .collect();
            workers.sort_unstable_by(|a, b| b.cmp(a));
            self.effects.push_back(Effect::Run(TaskRun {
                job: id,
                task,
                spec: job.spec.clone(),
                submitter: self.view.id(job.submitter),
                workers: workers
                    .iter()
                    .take(4)
                    .map(|&(_, ix)| self.view.id(ix))
                    .collect(),
                work,
            }));
        }
    }

    fn after_step(&mut self, now: Millis) {
        self.fill_queue(now);
        self.start_tasks(now);
        // Refill right away: starting tasks may have freed room in the window.
        self.fill_queue(now);
        self.maybe_flush(now);
    }

    fn pending_is_empty(&self) -> bool {
        let b = &self.pending;
        b.claims.is_empty() && b.done.is_empty() && b.failed.is_empty() && b.lost.is_empty()
    }

    /// Adds an entry to the pending batch; `bytes` estimates its encoded size.
    fn queue_entry(&mut self, bytes: usize, f: impl FnOnce(&mut Batch)) {
        f(&mut self.pending);
        self.pending_bytes += bytes;
    }

    fn maybe_flush(&mut self, now: Millis) {
        if self.pending_is_empty() {
            return;
        }
        let full = self.pending_bytes >= self.cfg.batch_bytes_max;
        if self.flush_pacer.try_take(now) || full {
            let batch = std::mem::take(&mut self.pending);
            self.pending_bytes = 0;
            self.broadcast(Message::Batch(batch));
        }
    }

    fn broadcast(&mut self, body: Message) {
        self.seq += 1;
        self.outbox.push_back(
            Envelope {
                seq: self.seq,
                body,
            }
            .encode(),
        );
    }
}

fn push_result(done: &mut Vec<JobResults>, job: JobId, task: u32, result: ResultRef) {
    match done.iter_mut().find(|d| d.job == job) {
        Some(d) => d.results.push((task, result)),
        None => done.push(JobResults {
            job,
            results: vec![(task, result)],
        }),
    }
}

fn truncate_utf8(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}
