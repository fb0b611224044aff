//! The protocol state machine of one node.
//!
//! Inputs are method calls that take `now`: [`Node::handle_message`] (or
//! [`Node::handle_envelope`] for a message already decoded), [`Node::handle_timeout`],
//! [`Node::submit`], [`Node::task_finished`], [`Node::job_collected`],
//! [`Node::handle_peer_subscribed`], [`Node::handle_unheard`]. Outputs are drained after each input, in this order:
//! [`Node::poll_subscription`] (topics to join or leave), [`Node::poll_transmit`] (messages to
//! publish, each on its topic), [`Node::poll_effect`] (work for the driver), then
//! [`Node::poll_timeout`] (when to call `handle_timeout` next). The machine reads no clock and
//! draws no randomness of its own.
//!
//! # Layout
//!
//! - this file: the machine's state, its inputs and outputs;
//! - `handlers`: what each received message does;
//! - `upkeep`: the timers: adverts and coverage, pulses, announcements and members, expiry,
//!   repair;
//! - `work`: claiming tasks and starting them;
//! - `outbox`: batching, pacing and publishing;
//! - `trust`: suspects (members whose results lost a vote) and spot checks;
//! - `status`: read-only views for the driver's API and for diagnostics; `detail`: one job in
//!   detail (tasks by state, the tree, a grid, why it is not moving).

mod datasets;
mod detail;
mod durability;
mod early;
mod handlers;
mod outbox;
mod status;
mod trust;

pub use datasets::PART_LOST_MS;
pub use detail::{
    CellState, GRID_CELLS_MAX, JobDetail, LevelProgress, NodeTasks, TaskCounts, TaskGrid,
};
pub use durability::INPUT_LOST_MS;
pub use durability::{ANSWER_GAP_MS, ENDINGS_KEPT, HEARD_MAX, KEEPING_MAX, ResultStatus};
pub use status::TableSizes;
pub use trust::{SUSPECT_BASE_MS, SUSPECT_MAX_MS, SUSPECTS_MAX, Suspicion};
mod upkeep;
mod work;
pub use work::StartableClaim;

use crate::durable::OutputRef;
use crate::effects::{Effect, JobView, TaskOutcome};
use crate::ids::{BoundedIdMap, IdMap, IdSet, JobId, Millis, NodeId};
use crate::job::{JobSpec, SpecError};
use crate::job_state::{JobState, TaskState};
use crate::pacer::FlushPacer;
use crate::topic::{Subscription, Topic};
use crate::view::{ME, View};
use crate::wire::{Announce, Batch, Envelope, InvalidMessage, Lost, Message, ResultRef};
use std::collections::VecDeque;
use std::sync::Arc;

/// Tunables. Defaults suit a LAN; the simulator and tests shorten or stretch them.
#[derive(Debug, Clone)]
pub struct Config {
    /// How often a node sends its capacity advert in a small mesh.
    pub advert_interval_ms: Millis,
    /// A peer silent for this long leaves the view (3.5 advert periods); peers that advertise
    /// less often get proportionally longer.
    pub peer_ttl_ms: Millis,
    /// Adverts a node should receive per second at most: a node whose view holds more than
    /// this many peers stretches its advert period (N peers advertise every N / rate seconds).
    pub advert_rate_max: u32,
    /// Longest advert period, whatever the mesh size.
    pub advert_interval_max_ms: Millis,
    /// Peers the view aims to hold: a node listens to fewer advert shards when it sees more
    /// than twice this, and to more when it sees fewer than half.
    pub view_target: usize,
    /// Most members a job starts with and is topped up to: the workers of one job. A larger
    /// mesh runs several jobs side by side on different members.
    pub job_members_max: usize,
    /// How often a member pulses on each of its jobs' topics.
    pub pulse_interval_ms: Millis,
    /// A member silent on a job's topic for this long is gone for the job: its claims go back
    /// into play and the results only it held are recomputed.
    pub member_ttl_ms: Millis,
    /// How long a claim stays valid unless the claimer's pulses say it runs the task.
    pub lease_ms: Millis,
    /// How long a task waits per rank step before lower-ranked peers may take it.
    pub steal_delay_ms: Millis,
    /// Least time between two batches once a burst of [`Config::flush_burst`] is spent:
    /// isolated events go out at once, storms are batched.
    pub flush_interval_ms: Millis,
    pub flush_burst: u32,
    /// Batches a member should receive per second on one job's topic at most: in a job with
    /// many busy members each member spaces its batches further apart (N members sending
    /// flush every N / rate seconds), so the traffic each member handles stays bounded.
    pub job_batch_rate_max: u32,
    /// How often a submitter re-announces its running jobs (for members added later).
    pub announce_interval_ms: Millis,
    /// How often members and claims are checked for expiry.
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
    /// How long a job's message that nobody heard is kept for a subscriber to come.
    pub unheard_ttl_ms: Millis,
    /// Whether a small job its submitter can start at once runs there alone, off the wire
    /// (the real-time path, [`crate::local`]). On in every node; the simulator turns it off to
    /// count the messages it saves.
    pub local_path: bool,
    /// Whether a reduce of a job over a dataset goes first to the member that holds most of
    /// its inputs, so that the partial results of a part's maps are combined where they were
    /// computed ([`crate::job_state::JobState`]). On in every node; the simulator turns it off
    /// to count the fetches it saves.
    pub reduce_near_inputs: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            advert_interval_ms: 1_000,
            peer_ttl_ms: 3_500,
            advert_rate_max: 30,
            advert_interval_max_ms: 60_000,
            view_target: 256,
            job_members_max: 256,
            pulse_interval_ms: 1_000,
            member_ttl_ms: 3_500,
            lease_ms: 5_000,
            steal_delay_ms: 250,
            flush_interval_ms: 2,
            flush_burst: 8,
            job_batch_rate_max: 2_000,
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
            unheard_ttl_ms: 2_000,
            local_path: true,
            reduce_near_inputs: true,
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
    /// Jobs this node declined because their submitter is not one it runs jobs for.
    pub jobs_declined: u64,
    /// Valid messages received and messages published, by kind
    /// ([`crate::wire::MESSAGE_KINDS`] order).
    pub in_by_kind: [u64; crate::wire::MESSAGE_KINDS.len()],
    pub out_by_kind: [u64; crate::wire::MESSAGE_KINDS.len()],
}

/// Why a submission was refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SubmitError {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(
        "{0} submissions already wait for room on this node (the queue is full); wait for some to finish"
    )]
    QueueFull(usize),
}

/// Remembered end of a job this node no longer tracks: its last view, or none when the end
/// was heard of before the job itself (gossip does not keep a job's announcement ahead of
/// its `Finished`). Either way, announcements of that run that arrive later are stale.
#[derive(Debug, Clone)]
struct FinishedJob {
    epoch: u64,
    view: Option<JobView>,
}

const FINISHED_MEMORY: usize = 1024;
/// Most messages kept for a topic nobody listened to yet ([`Node::handle_unheard`]).
pub const UNHEARD_MAX: usize = 1024;
/// Least time between an advert and an extra one for a new neighbour.
pub const EXTRA_ADVERT_GAP_MS: Millis = 100;
/// Longest a node waits, after it starts, before its first advert.
pub const FIRST_ADVERT_DELAY_MS: Millis = 300;
/// How long a coordinator that holds a job's output waits, at most, for the completions of
/// tasks it has not heard, before it ends the job. The output does not need them (a reduce
/// above them was done elsewhere), but the job's account does: where each task ran
/// (`at_data`, the spread) and the input bytes moved come with the completions, and one that
/// raced the reduce above it would otherwise be missing from what the submitter reports.
/// Normally they arrive within a message's time; the wait is bounded for a member that died.
pub const ACCOUNTING_GRACE_MS: Millis = 300;

/// The protocol state machine. See the module docs for the calling convention.
#[derive(Debug)]
pub struct Node {
    cfg: Config,
    capacity: Capacity,
    load_milli: u32,
    view: View,
    jobs: IdMap<JobId, JobState>,
    /// Job ids by priority (highest first), then in arrival order: the order in which tasks
    /// are claimed.
    order: Vec<JobId>,
    finished: BoundedIdMap<JobId, FinishedJob>,
    /// Jobs this node submitted and waits for.
    mine: IdSet<JobId>,
    /// Claimed by this node, not started, in claim order; `queued` holds the same entries for
    /// membership tests.
    queue: VecDeque<(JobId, u32)>,
    queued: IdSet<(JobId, u32)>,
    /// Started, with the time they started.
    running: IdMap<(JobId, u32), Millis>,
    /// Queued tasks whose input the driver was asked to fetch ahead.
    prefetched: IdSet<(JobId, u32)>,
    /// Mean run time of recent tasks (µs), for sizing the queue.
    avg_task_us: Option<f64>,
    /// Batches not yet sent, one per job, and their estimated encoded size.
    pending: Vec<Batch>,
    pending_bytes: usize,
    flush_pacer: FlushPacer,
    /// Between [`Node::begin_turn`] and [`Node::end_turn`]: batches wait for the turn's end.
    turn_open: bool,
    outbox: VecDeque<(Topic, Vec<u8>)>,
    /// Published messages nobody heard, with when, waiting for a subscriber.
    unheard: VecDeque<(Topic, Vec<u8>, Millis)>,
    /// Batches for jobs not announced here yet ([`early`]).
    early: early::EarlyBatches,
    subscriptions: VecDeque<Subscription>,
    effects: VecDeque<Effect>,
    seq: u64,
    next_advert: Millis,
    /// When the last advert went out, if one did.
    last_advert: Option<Millis>,
    /// When this node first ran its timers.
    started: Option<Millis>,
    /// The first advert waits (up to [`FIRST_ADVERT_DELAY_MS`]) until this node has heard
    /// enough of the mesh to size its advert period: a node that joins a large mesh would
    /// otherwise advertise twice in its first second, the first time with a small mesh's period.
    first_advert_held: bool,
    next_sweep: Millis,
    next_announce: Millis,
    next_pulse: Millis,
    next_repair: Millis,
    claim_wakeup: Option<Millis>,
    /// When a coordinator that holds a job's output but has not heard all of its tasks'
    /// completions ends it anyway ([`ACCOUNTING_GRACE_MS`]).
    finish_wakeup: Option<Millis>,
    stats: Stats,
    /// Whose jobs this node works on; `None`: anyone's.
    submitters: Option<IdSet<NodeId>>,
    /// Jobs declined, with the epoch: a job is declined once per run, not at every
    /// re-announcement.
    declined: BoundedIdMap<JobId, u64>,
    /// The last details of jobs no longer tracked (`detail.rs`).
    ended_details: BoundedIdMap<JobId, JobDetail>,
    /// Peers whose results lost votes (`trust.rs`).
    suspects: BoundedIdMap<NodeId, Suspicion>,
    /// The key spot checks are drawn with ([`Node::set_secret`]).
    secret: [u8; 32],
    /// Labels this node advertises ([`Node::set_tags`]), sorted.
    tags: Vec<String>,
    /// The dataset parts this node shares ([`Node::set_shares`]), sorted.
    shares: Vec<crate::dataset::Share>,
    /// The latest time an input brought: what read-only views judge liveness by.
    last_now: Millis,
    /// Submissions waiting for room in the job table, highest priority first
    /// ([`Node::submit`]).
    waiting: VecDeque<Waiting>,
    /// How jobs ended, as heard or kept here (`durability.rs`).
    endings: BoundedIdMap<JobId, durability::KnownEnding>,
    /// Running jobs heard announced by non-members, for progress on request.
    heard: BoundedIdMap<JobId, durability::HeardJob>,
    /// When this node last queried, or answered a query, for each job.
    queried: BoundedIdMap<JobId, Millis>,
    answered: BoundedIdMap<JobId, Millis>,
}

/// A submission that waits for room in the job table.
#[derive(Debug, Clone)]
struct Waiting {
    id: JobId,
    spec: JobSpec,
    epoch: u64,
}

/// Most submissions one node keeps waiting for room in its job table.
pub const WAITING_MAX: usize = 4096;

impl Node {
    /// A node with identity `me`. `seed` decorrelates this node's message sequence numbers from
    /// a previous incarnation with the same id (gossip deduplicates by content).
    pub fn new(me: NodeId, capacity: Capacity, cfg: Config, seed: u64) -> Self {
        let view = View::new(
            me,
            capacity.slots,
            cfg.peer_ttl_ms,
            cfg.advert_interval_ms,
            cfg.view_target,
        );
        let flush_pacer = FlushPacer::new(cfg.flush_interval_ms, cfg.flush_burst);
        let mut subscriptions = VecDeque::from([Subscription::Join(Topic::Jobs)]);
        subscriptions.extend(view.shards().map(|s| Subscription::Join(Topic::Adverts(s))));
        Self {
            cfg,
            capacity,
            load_milli: 0,
            view,
            jobs: IdMap::default(),
            order: Vec::new(),
            finished: BoundedIdMap::new(FINISHED_MEMORY),
            mine: IdSet::default(),
            queue: VecDeque::new(),
            queued: IdSet::default(),
            running: IdMap::default(),
            prefetched: IdSet::default(),
            avg_task_us: None,
            pending: Vec::new(),
            pending_bytes: 0,
            flush_pacer,
            turn_open: false,
            outbox: VecDeque::new(),
            unheard: VecDeque::new(),
            early: early::EarlyBatches::default(),
            subscriptions,
            effects: VecDeque::new(),
            seq: seed << 20,
            next_advert: 0,
            last_advert: None,
            started: None,
            first_advert_held: true,
            next_sweep: 0,
            next_announce: 0,
            next_pulse: 0,
            next_repair: 0,
            claim_wakeup: None,
            finish_wakeup: None,
            stats: Stats::default(),
            submitters: None,
            declined: BoundedIdMap::new(FINISHED_MEMORY),
            ended_details: BoundedIdMap::new(detail::DETAILS_KEPT),
            suspects: BoundedIdMap::new(SUSPECTS_MAX),
            // Until the driver sets a random one: derived from the seed, so a simulation stays
            // reproducible (and still unguessable by peers that do not know the seed).
            secret: *blake3::hash(&[&seed.to_le_bytes()[..], &me.0[..]].concat()).as_bytes(),
            tags: Vec::new(),
            shares: Vec::new(),
            last_now: 0,
            waiting: VecDeque::new(),
            endings: BoundedIdMap::new(durability::ENDINGS_KEPT),
            heard: BoundedIdMap::new(durability::HEARD_MAX),
            queried: BoundedIdMap::new(durability::HEARD_MAX),
            answered: BoundedIdMap::new(durability::HEARD_MAX),
        }
    }

    pub fn id(&self) -> NodeId {
        self.view.id(ME)
    }

    pub fn capacity(&self) -> Capacity {
        self.capacity
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Restricts whose jobs this node works on (`None`: anyone's). Jobs this node submits
    /// itself are always its own business. A job from anyone else is declined with a
    /// [`Message::Decline`], so that its submitter stops waiting for this node.
    pub fn set_submitters(&mut self, allowed: Option<IdSet<NodeId>>) {
        self.submitters = allowed;
    }

    /// Whether this node works on jobs submitted by `submitter`.
    pub fn accepts_jobs_from(&self, submitter: &NodeId) -> bool {
        *submitter == self.id()
            || self
                .submitters
                .as_ref()
                .is_none_or(|s| s.contains(submitter))
    }

    /// Sets the labels this node advertises (checked and sorted first; see
    /// [`crate::schedule::normalize_tags`]). Jobs that need a tag run only on nodes that have it.
    pub fn set_tags(&mut self, tags: Vec<String>) -> Result<(), crate::schedule::TagError> {
        self.tags = crate::schedule::normalize_tags(tags)?;
        Ok(())
    }

    /// The labels this node advertises.
    pub fn tags(&self) -> &[String] {
        &self.tags
    }

    /// The latest time an input brought (read-only views have no `now` of their own).
    fn view_now(&self) -> Millis {
        self.last_now
    }

    /// How many tasks of a job with `needs` this node runs at once (0: it does not meet them).
    fn slots_for(&self, needs: &crate::schedule::Needs) -> u32 {
        needs.slots(&self.tags, self.capacity.slots, self.capacity.mem_mb)
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
        match Envelope::decode(bytes) {
            Ok(env) => {
                self.handle_envelope(now, from, &env, bytes.len());
                Ok(())
            }
            Err(e) => {
                self.stats.messages_in += 1;
                self.stats.bytes_in += bytes.len() as u64;
                self.stats.invalid_messages += 1;
                Err(e)
            }
        }
    }

    /// A message from `from` that was already decoded and validated ([`Envelope::decode`]),
    /// `len` bytes on the wire. A simulator that delivers one message to many nodes decodes it
    /// once and hands it to each.
    pub fn handle_envelope(&mut self, now: Millis, from: NodeId, env: &Envelope, len: usize) {
        // What a message starts (a job it announces, with the deadlines it sets) counts from
        // now, not from this node's previous step, which may be a second old on an idle node.
        self.last_now = self.last_now.max(now);
        self.stats.messages_in += 1;
        self.stats.bytes_in += len as u64;
        self.stats.in_by_kind[env.body.kind()] += 1;
        if matches!(env.body, Message::Advert(_)) && !self.view.covers(&from) {
            // From a shard this node stopped listening to (in flight when it left): not
            // worth a place in the peer table.
            return;
        }
        let Some(from) = self.view.intern(from) else {
            return;
        };
        if from == ME {
            return;
        }
        match &env.body {
            Message::Advert(advert) => self.on_advert(now, from, advert),
            Message::Announce(a) => self.on_announce(now, from, a),
            Message::Batch(b) => self.on_batch(now, from, b),
            Message::Pulse(p) => self.on_pulse(now, from, p),
            Message::Finished(f) => self.on_finished(now, from, f),
            Message::Decline(d) => self.on_decline(now, from, d),
            Message::Query(q) => self.on_query(now, q),
        }
        self.after_step(now);
    }

    /// A peer started listening to `topic`. On the jobs topic that is a new neighbour:
    /// advertise soon, so it can count on this node without waiting a whole advert period
    /// (adverts stay at least [`EXTRA_ADVERT_GAP_MS`] apart however many neighbours arrive).
    /// Messages kept for that topic because nobody heard them ([`Node::handle_unheard`]) go
    /// out again.
    pub fn handle_peer_subscribed(&mut self, now: Millis, topic: Topic) {
        if topic == Topic::Jobs {
            self.neighbour_joined(now);
        }
        if self.unheard.is_empty() {
            return;
        }
        let ttl = self.cfg.unheard_ttl_ms;
        let kept = std::mem::take(&mut self.unheard);
        for (t, bytes, since) in kept {
            if now.saturating_sub(since) > ttl {
                continue;
            }
            if t == topic {
                self.outbox.push_back((t, bytes));
            } else {
                self.unheard.push_back((t, bytes, since));
            }
        }
    }

    /// Whether a message on `topic` that nobody hears is worth handing back through
    /// [`Node::handle_unheard`]: only a job's messages are. Members join a job's topic as they
    /// learn of the job, and its first claims and completions can race their subscriptions
    /// (gossipsub shares one queue between a peer's connections, so a subscription may even
    /// arrive after the announcement that follows it); each one lost costs a steal delay.
    /// Adverts and announcements are re-sent on their own timers anyway.
    pub fn retains_unheard(topic: &Topic) -> bool {
        matches!(topic, Topic::Job(_))
    }

    /// The driver published `bytes` on `topic` and no peer listens there yet. A job's message
    /// is kept for [`Config::unheard_ttl_ms`] (at most [`UNHEARD_MAX`] of them, oldest dropped
    /// first) and published again when a peer subscribes; anything else is dropped (the
    /// protocol re-sends what still matters).
    pub fn handle_unheard(&mut self, now: Millis, topic: Topic, bytes: Vec<u8>) {
        if !Self::retains_unheard(&topic) {
            return;
        }
        if self.unheard.len() >= UNHEARD_MAX {
            self.unheard.pop_front();
        }
        self.unheard.push_back((topic, bytes, now));
    }

    fn neighbour_joined(&mut self, now: Millis) {
        self.first_advert_held = false;
        let soonest = self
            .last_advert
            .map_or(now, |t| t + EXTRA_ADVERT_GAP_MS)
            .max(now);
        self.next_advert = self.next_advert.min(soonest);
    }

    /// Timer expiry: call at (or after) the time [`Node::poll_timeout`] returned.
    pub fn handle_timeout(&mut self, now: Millis) {
        self.last_now = self.last_now.max(now);
        self.upkeep(now);
        if self.claim_wakeup.is_some_and(|t| now >= t) {
            self.claim_wakeup = None;
        }
        if self.finish_wakeup.is_some_and(|t| now >= t) {
            self.finish_wakeup = None;
            self.finish_waiting();
        }
        self.after_step(now);
    }

    /// Submits a job from this node. `epoch` must grow from one submission to the next (the
    /// driver passes wall-clock milliseconds), so that peers can tell a resubmission from stale
    /// copies of a finished run.
    pub fn submit(&mut self, now: Millis, spec: JobSpec, epoch: u64) -> Result<JobId, SubmitError> {
        spec.validate()?;
        let id = spec.id();
        if let Some(job) = self.jobs.get_mut(&id) {
            // Already running (perhaps submitted elsewhere): wait for the same result.
            self.mine.insert(id);
            if job.is_complete() {
                self.request_collect(id);
            }
            self.after_step(now);
            return Ok(id);
        }
        if self.waiting.iter().any(|w| w.id == id) {
            return Ok(id);
        }
        if self.jobs.len() >= self.cfg.max_jobs || !self.waiting.is_empty() {
            // No room in the job table (or others wait already): the job waits its turn,
            // behind the waiting jobs of its priority or higher.
            if self.waiting.len() >= WAITING_MAX {
                return Err(SubmitError::QueueFull(self.waiting.len()));
            }
            let priority = spec.sched.priority;
            let at = self
                .waiting
                .partition_point(|w| w.spec.sched.priority >= priority);
            self.waiting.insert(at, Waiting { id, spec, epoch });
            self.after_step(now);
            return Ok(id);
        }
        self.start_job(now, spec, epoch, id);
        self.after_step(now);
        Ok(id)
    }

    /// Starts waiting submissions while the job table has room.
    fn start_waiting(&mut self, now: Millis) {
        while self.jobs.len() < self.cfg.max_jobs {
            let Some(w) = self.waiting.pop_front() else {
                break;
            };
            if self.jobs.contains_key(&w.id) {
                // Announced by another submitter meanwhile: wait for that run's result.
                self.mine.insert(w.id);
                continue;
            }
            self.start_job(now, w.spec, w.epoch, w.id);
        }
    }

    /// Starts tracking a job submitted here: recruits its members and announces it.
    fn start_job(&mut self, now: Millis, spec: JobSpec, epoch: u64, id: JobId) {
        self.mine.insert(id);
        self.finished.remove(&id);
        let me = self.id();
        // The submitter runs tasks only if it meets the job's needs itself.
        let weight = self.slots_for(&spec.sched.needs);
        let mut job = JobState::new(Arc::new(spec), id, (ME, &me), epoch, now, &me, weight);
        job.steal_delay_ms = self.cfg.steal_delay_ms;
        job.near_inputs = self.cfg.reduce_near_inputs;
        if self.cfg.local_path
            && crate::local::runs_alone(&job.spec, job.tree.maps(), weight, self.free_slots())
        {
            // The real-time path: no members, no announcement, no topic to join.
            job.alone = true;
            job.topic = Topic::Jobs;
            self.insert_job(job);
            return;
        }
        let added = self.recruit_into(&mut job, now);
        job.apply(&added);
        // Every other node of the mesh (as far as this node can tell, beyond its view) is a
        // member: the jobs topic will do.
        let others = self.view.mesh_estimate(now).saturating_sub(1);
        if others <= job.members.len() as u64 {
            job.topic = Topic::Jobs;
        }
        self.insert_job(job);
        self.announce(id);
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
                self.ran_map(job, task);
                self.on_done(now, job, task, ME, result.clone(), false);
                let size = result_entry_len(&result);
                self.queue_entry(job, size, |b| b.done.push((task, result)));
            }
            TaskOutcome::Reused(result) => self.report_reused(now, job, task, result),
            TaskOutcome::Failed(reason) => self.fail_task(now, job, task, reason, false),
            TaskOutcome::Unavailable(reason) => self.fail_task(now, job, task, reason, true),
            TaskOutcome::InputLost { child, holder } => {
                if self.on_lost(now, job, child, holder) {
                    self.sweep_holder(now, job, holder);
                }
                if let Some(j) = self.jobs.get_mut(&job)
                    && let Some(TaskState::Claimed { by: ME, .. }) = j.tasks.get(task as usize)
                {
                    // Give the reduce task back: it waits until the lost child is redone.
                    j.reopen(task, now);
                }
                self.queue_entry(job, 40, |b| {
                    b.lost.push(Lost {
                        task: child,
                        holder,
                    })
                });
            }
        }
        self.after_step(now);
    }

    /// This node knows the result of `task` from an earlier job (after an
    /// [`Effect::ReuseMaps`] or [`Effect::ReuseReduce`], or found when it came to run the
    /// task): it completes the task as if this node had computed it, as its one vote, and
    /// tells the members it was reused. Ignored if the task is done or this node voted on it.
    pub fn task_reused(&mut self, now: Millis, job: JobId, task: u32, result: ResultRef) {
        let Some(j) = self.jobs.get(&job) else {
            return;
        };
        if task >= j.total()
            || j.failed.is_some()
            || j.tasks[task as usize].is_done()
            || j.votes.voters(task).any(|v| v == ME)
        {
            return;
        }
        self.report_reused(now, job, task, result);
        self.after_step(now);
    }

    /// The driver has reported every result it kept for job `job`'s map tasks (after an
    /// [`Effect::ReuseMaps`]; none, or the lookup failed, alike): the members hear so, and
    /// this node claims its tasks once every live member has looked up too.
    pub fn reuse_looked_up(&mut self, now: Millis, job: JobId) {
        let Some(j) = self.jobs.get_mut(&job) else {
            return;
        };
        if j.looked_up.insert(ME) {
            self.queue_entry(job, 1, |b| b.looked_up = true);
        }
        self.after_step(now);
    }

    fn report_reused(&mut self, now: Millis, job: JobId, task: u32, result: ResultRef) {
        self.on_done(now, job, task, ME, result.clone(), true);
        let size = result_entry_len(&result) + 4;
        self.queue_entry(job, size, |b| {
            b.done.push((task, result));
            b.reused.push(task);
        });
    }

    /// The driver fetched (or failed to fetch) the root result after an [`Effect::Collect`],
    /// and keeps the output it made of it (`Ok`, with its content address). A coordinator ends
    /// the job once enough members keep the output too; another keeper says it keeps it.
    pub fn job_collected(&mut self, now: Millis, job: JobId, outcome: Result<OutputRef, NodeId>) {
        match outcome {
            Ok(output) => {
                self.mine.remove(&job);
                if self.collected_after_end(job, Some(output)) {
                    // The run ended while this node fetched its copy: nothing left to say.
                } else if let Some(state) = self.jobs.get_mut(&job) {
                    state.output = Some(output);
                    state.account_until = now + ACCOUNTING_GRACE_MS;
                    let (epoch, coordinator) = (state.epoch, state.coordinator);
                    if coordinator == ME {
                        self.try_finish(job);
                    } else if state.spec.keep.copies > 1 {
                        self.queue_entry(job, 48, |b| b.output = Some(output));
                    } else {
                        self.retire(job, epoch);
                    }
                }
            }
            // A keeper whose fetch failed after the run ended gives up its copy; whoever
            // waits for the output here fetches again (the root is recomputed if need be).
            Err(_) if !self.mine.contains(&job) && self.collected_after_end(job, None) => {}
            Err(holder) => {
                if let Some(state) = self.jobs.get(&job) {
                    let root = state.tree.root();
                    if self.on_lost(now, job, root, holder) {
                        self.sweep_holder(now, job, holder);
                    }
                    self.queue_entry(job, 40, |b| b.lost.push(Lost { task: root, holder }));
                }
            }
        }
        self.after_step(now);
    }

    // ----- outputs ------------------------------------------------------------------------

    /// Next topic to join or leave.
    pub fn poll_subscription(&mut self) -> Option<Subscription> {
        self.subscriptions.pop_front()
    }

    /// Next message to publish, and its topic.
    pub fn poll_transmit(&mut self) -> Option<(Topic, Vec<u8>)> {
        let (topic, bytes) = self.outbox.pop_front()?;
        self.stats.messages_out += 1;
        self.stats.bytes_out += bytes.len() as u64;
        Some((topic, bytes))
    }

    /// Next effect for the driver.
    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.effects.pop_front()
    }

    /// When [`Node::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Millis {
        let mut t = self
            .next_advert
            .min(self.next_sweep)
            .min(self.next_repair)
            .min(self.next_pulse);
        // Any node may come to coordinate a job (as a successor).
        t = t.min(self.next_announce);
        if let Some(w) = self.claim_wakeup {
            t = t.min(w);
        }
        if let Some(w) = self.finish_wakeup {
            t = t.min(w);
        }
        if !self.pending.is_empty() {
            t = t.min(self.flush_pacer.next_at());
        }
        t
    }

    // ----- shared internals ---------------------------------------------------------------

    /// Tracks a job whose topic is settled, joining that topic if it is the job's own.
    fn insert_job(&mut self, mut job: JobState) {
        let id = job.id;
        self.seat_dataset_holders(&mut job);
        if crate::reuse::applies(&job.spec) {
            job.reuse_lookup_until = Some(self.last_now + crate::reuse::LOOKUP_MAX_MS);
            let holders = self.piece_sources(&job, 0, self.last_now);
            self.effects.push_back(Effect::ReuseMaps {
                job: id,
                spec: job.spec.clone(),
                holders,
            });
        }
        if job.topic != Topic::Jobs {
            self.subscriptions.push_back(Subscription::Join(job.topic));
        }
        // Highest priority first, then in the order this node heard of them.
        let priority = job.spec.sched.priority;
        let jobs = &self.jobs;
        let at = self.order.partition_point(|o| {
            jobs.get(o)
                .is_some_and(|j| j.spec.sched.priority >= priority)
        });
        self.order.insert(at, id);
        self.jobs.insert(id, job);
        self.serve_shared_parts(id);
        // No pulse on joining: the announcement that named this node a member makes it live
        // to the others for a TTL, and the periodic pulse comes well within it. A short job
        // ends before it: a one-task job's remote path is then three messages (announcement,
        // batch, end) instead of five, and each message is a wake-up of every member.
    }

    /// A job over a dataset: each map task's chunk is held by its part's holders (and, in a
    /// durable job, later by the members that copy it), not by the submitter.
    fn seat_dataset_holders(&mut self, job: &mut JobState) {
        let crate::job::Input::Dataset(d) = &job.spec.input else {
            return;
        };
        let mut holders = Vec::with_capacity(job.tree.maps() as usize);
        for p in &d.parts {
            let ixs: Vec<crate::view::PeerIx> = p
                .holders
                .iter()
                .filter_map(|id| self.view.intern(*id))
                .collect();
            holders.extend(std::iter::repeat_n(ixs, p.chunks as usize));
        }
        job.holders = holders;
    }

    /// The topic of a tracked job's traffic (its own for one no longer tracked).
    fn topic_of(&self, job: &JobId) -> Topic {
        self.jobs.get(job).map_or(Topic::Job(*job), |j| j.topic)
    }

    /// Publishes the announcement of a job this node submitted, naming its members.
    fn announce(&mut self, id: JobId) {
        let Some(job) = self.jobs.get(&id).filter(|j| !j.alone) else {
            return;
        };
        let me = crate::wire::Member {
            id: self.view.id(ME),
            weight: self.slots_for(&job.spec.sched.needs),
        };
        let mut members: Vec<crate::wire::Member> = job
            .members
            .iter()
            .take(crate::wire::MAX_MEMBERS - 1)
            .map(|m| crate::wire::Member {
                id: m.id,
                weight: m.weight,
            })
            .chain([me])
            .collect();
        members.sort_unstable_by_key(|m| m.id);
        let announce = Announce {
            job: id,
            submitter: self.view.id(job.submitter),
            spec: (*job.spec).clone(),
            epoch: job.epoch,
            members,
            done: job.done_ranges(crate::wire::MAX_DONE_RANGES),
            own_topic: job.topic != Topic::Jobs,
        };
        self.publish(Topic::Jobs, Message::Announce(announce));
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
        let view = Some(self.job_view(state));
        let topic = state.topic;
        if state.submitter == ME || state.coordinator == ME {
            // Its page stays readable after the end (only a submitter or its successor keeps
            // details: every member keeping them would cost a mesh memory for nothing).
            self.keep_detail(job);
        }
        let Some(state) = self.jobs.get(&job) else {
            return;
        };
        for blob in state.held_blobs() {
            self.effects.push_back(Effect::Release { blob });
        }
        self.jobs.remove(&job);
        self.order.retain(|id| *id != job);
        self.queue.retain(|(j, _)| *j != job);
        self.queued.retain(|(j, _)| *j != job);
        self.prefetched.retain(|(j, _)| *j != job);
        self.pending.retain(|b| b.job != job);
        if topic != Topic::Jobs {
            self.subscriptions.push_back(Subscription::Leave(topic));
        }
        self.finished.insert(job, FinishedJob { epoch, view });
    }

    fn after_step(&mut self, now: Millis) {
        self.last_now = self.last_now.max(now);
        if !self.waiting.is_empty() {
            self.start_waiting(now);
        }
        self.fill_queue(now);
        self.start_tasks(now);
        // Refill right away: starting tasks may have freed room in the window.
        self.fill_queue(now);
        if !self.turn_open {
            self.maybe_flush(now);
        }
    }

    /// The driver begins a turn (one wake-up: a message, a command, a timer, and what it
    /// starts): until [`Node::end_turn`], claims, completions and the rest wait in their
    /// batches instead of leaving after each step. A tiny task the turn claimed and ran then
    /// travels as one batch, its claim with its completion, not two (the real-time path's
    /// "messages coalesced per wake-up"). A driver that never calls it sends after each step.
    pub fn begin_turn(&mut self) {
        self.turn_open = true;
    }

    /// The turn is over: the batches it filled go out, as the pacer allows (see
    /// [`Node::begin_turn`]).
    pub fn end_turn(&mut self, now: Millis) {
        self.turn_open = false;
        self.last_now = self.last_now.max(now);
        self.maybe_flush(now);
    }
}

/// Shortens `s` to at most `max` bytes on a character boundary.
fn truncate_utf8(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

/// A result's estimated size inside a batch.
fn result_entry_len(result: &ResultRef) -> usize {
    8 + result.wire_len()
}
