//! The one harness that drives protocol nodes on virtual time: the in-crate counterpart of
//! quinn-proto's `Pair`. The state-machine tests and the simulator (`shoal-netsim`) both run
//! their nodes through it, so the [`Effect`] dispatch, the timers and the in-memory network's
//! plumbing exist once. (The real node has its own driver: libp2p and tokio in place of this.)
//!
//! A [`Harness`] holds the nodes (each may be down), the virtual clock, one event queue, the
//! topic subscriptions and the result blobs each node holds. What differs between a test and the
//! simulator is an [`Env`]: where a published message goes and when (the network model), how
//! long a task takes and what it computes, what a root result becomes, and any events of its own
//! (crashes, partitions, submissions). [`Harness::step`] takes the next event, hands it to the
//! node it is for, and drains that node's outputs in the documented order.
//!
//! Determinism: events come out by (virtual time, insertion order); the harness draws no
//! randomness (an `Env` that wants some brings a seeded generator).

mod queue;
mod topics;

pub use queue::EventQueue;
pub use topics::Topics;

use crate::durable::OutputRef;
use crate::effects::{Effect, TaskOutcome, TaskRun};
use crate::ids::{BlobHash, JobId, Millis, NodeId};
use crate::job::JobSpec;
use crate::node::Node;
use crate::topic::{Subscription, Topic};
use crate::wire::{Envelope, InvalidMessage, ResultRef};
use std::collections::HashMap;
use std::rc::Rc;

/// A published message, decoded once, shared by its deliveries.
#[derive(Debug)]
pub struct Published {
    /// Publication number, from 1, in publication order.
    pub id: u64,
    /// The publisher's index, and its protocol id.
    pub from: u32,
    pub from_id: NodeId,
    pub topic: Topic,
    pub env: Envelope,
    /// Encoded size on the wire.
    pub len: usize,
}

/// What happens next, at some virtual time.
#[derive(Debug)]
pub enum Event<X> {
    /// A message reaches node `to`.
    Deliver { to: u32, msg: Rc<Published> },
    /// Node `node`'s timer (as it set it; a superseded one is ignored).
    Timer { node: u32 },
    /// A task that node `node` started in its incarnation `incarnation` has run its time.
    TaskDone {
        node: u32,
        incarnation: u32,
        run: Box<TaskRun>,
    },
    /// Node `node` (in its incarnation `incarnation`) is done fetching job `job`'s output
    /// (see [`Env::collect_duration`]).
    Collected {
        node: u32,
        incarnation: u32,
        job: JobId,
        outcome: Result<OutputRef, NodeId>,
    },
    /// An event of the [`Env`]'s own.
    Custom(X),
}

/// What the surroundings of the nodes decide: the network model, task execution, and what
/// finished jobs become. See the module docs.
pub trait Env: Sized {
    /// The environment's own events (faults, submissions), scheduled with
    /// [`Harness::schedule`].
    type Event;

    /// Node `msg.from` published `msg` (`bytes` as encoded): schedule its deliveries with
    /// [`Harness::deliver_at`], to [`Harness::topics`]' listeners of `msg.topic` or whomever the
    /// model says.
    fn publish(&mut self, h: &mut Harness<Self::Event>, msg: Rc<Published>, bytes: &[u8]);

    /// A node published bytes that are not a valid message (a protocol bug).
    fn invalid_publication(&mut self, node: usize, error: InvalidMessage);

    /// Whether a delivery that is due still happens (the harness already skips dead
    /// receivers). A model with partitions or dead senders says no here.
    fn deliverable(&mut self, h: &Harness<Self::Event>, to: usize, msg: &Published) -> bool {
        let _ = (h, to, msg);
        true
    }

    /// Node `node` started `run`: how long it takes, in virtual milliseconds.
    fn task_duration(&mut self, node: usize, run: &TaskRun) -> Millis;

    /// Node `node` started `run` in the step just drained (`h` shows the node as it is after
    /// that step): for checks of what it chose to start.
    fn task_started(&mut self, h: &Harness<Self::Event>, node: usize, run: &TaskRun) {
        let _ = (h, node, run);
    }

    /// `run` has run its time on `node`: its outcome, computed from what is reachable now, and
    /// the run time to report (µs). Results that stay on `node` go in with
    /// [`Harness::keep_result`].
    fn task_outcome(
        &mut self,
        h: &mut Harness<Self::Event>,
        node: usize,
        run: &TaskRun,
    ) -> (TaskOutcome, u64);

    /// Called after a finished task was reported to its node and the node drained.
    fn after_task(&mut self, h: &mut Harness<Self::Event>, node: usize) {
        let _ = (h, node);
    }

    /// Node `node` keeps the output of `job` (it submitted it, coordinates it, or keeps a
    /// copy) and its root is done: fetch `result` from `holder`, keep the job's output, and
    /// say its content address. `Err(holder)` if the result cannot be had (it is then
    /// recomputed).
    fn collect(
        &mut self,
        h: &Harness<Self::Event>,
        node: usize,
        job: JobId,
        spec: &JobSpec,
        result: &ResultRef,
        holder: NodeId,
    ) -> Result<OutputRef, NodeId>;

    /// A job node `node` submitted failed for good.
    fn job_failed(&mut self, node: usize, job: JobId, error: String);

    /// Node `node` copies piece `piece` of `job`'s input from one of `holders`: whether it
    /// could (a model with dead or cut-off holders says no).
    fn keep_piece(
        &mut self,
        h: &Harness<Self::Event>,
        node: usize,
        job: JobId,
        piece: u32,
        holders: &[NodeId],
    ) -> bool {
        let _ = (h, node, job, piece, holders);
        true
    }

    /// How long node `node` takes to fetch a job's root result and make its output, in
    /// virtual milliseconds (0, the default: at once, within the step that asked for it).
    /// Meanwhile the job may end elsewhere: a model that takes time here checks that race.
    fn collect_duration(&mut self, node: usize) -> Millis {
        let _ = node;
        0
    }

    /// Node `node` keeps how `job` ended (an [`Effect::Ended`]).
    fn ended(&mut self, node: usize, job: JobId, ending: &crate::durable::Ending) {
        let _ = (node, job, ending);
    }

    /// One of the environment's own events is due.
    fn custom(&mut self, h: &mut Harness<Self::Event>, event: Self::Event);
}

/// One node's place in the harness.
#[derive(Debug, Default)]
struct Slot {
    proto: Option<Node>,
    /// Starts counted: a task started before a crash does not report to the restarted node.
    incarnation: u32,
    /// When this node's timer event is due, if one is queued.
    timer_at: Option<Millis>,
    /// Result blobs this node holds; gone with a crash.
    blobs: HashMap<BlobHash, Rc<Vec<u8>>>,
}

/// Nodes, virtual time and one event queue. See the module docs.
#[derive(Debug)]
pub struct Harness<X> {
    now: Millis,
    queue: EventQueue<Event<X>>,
    slots: Vec<Slot>,
    by_id: HashMap<NodeId, usize>,
    topics: Topics,
    /// Topics on which some node holds messages nobody heard, with those nodes: told when a
    /// peer joins the topic.
    unheard: HashMap<Topic, Vec<u32>>,
    published: u64,
}

impl<X> Harness<X> {
    /// A harness with room for `nodes` nodes, all down until [`Harness::start`].
    pub fn new(nodes: usize) -> Self {
        Self {
            now: 0,
            queue: EventQueue::default(),
            slots: (0..nodes).map(|_| Slot::default()).collect(),
            by_id: HashMap::new(),
            topics: Topics::new(nodes),
            unheard: HashMap::new(),
            published: 0,
        }
    }

    pub fn now(&self) -> Millis {
        self.now
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// How many times node `i` was started.
    pub fn incarnation(&self, i: usize) -> u32 {
        self.slots[i].incarnation
    }

    pub fn alive(&self, i: usize) -> bool {
        self.slots[i].proto.is_some()
    }

    /// Whether node `i` is up in its incarnation `incarnation` (an event of an earlier one,
    /// a task or a fetch it started before it went down, is stale).
    pub fn is_current(&self, i: usize, incarnation: u32) -> bool {
        self.alive(i) && self.slots[i].incarnation == incarnation
    }

    /// Node `i`, if it is up.
    pub fn node(&self, i: usize) -> Option<&Node> {
        self.slots[i].proto.as_ref()
    }

    /// Node `i`, if it is up. Drain it ([`Harness::drain`]) after giving it an input.
    pub fn node_mut(&mut self, i: usize) -> Option<&mut Node> {
        self.slots[i].proto.as_mut()
    }

    /// The index of the node with protocol id `id` (up or down), once it was started.
    pub fn index_of(&self, id: &NodeId) -> Option<usize> {
        self.by_id.get(id).copied()
    }

    pub fn topics(&self) -> &Topics {
        &self.topics
    }

    /// Schedules one of the environment's events.
    pub fn schedule(&mut self, at: Millis, event: X) {
        self.queue.push(at, Event::Custom(event));
    }

    /// Schedules the delivery of `msg` to node `to`.
    pub fn deliver_at(&mut self, at: Millis, to: u32, msg: Rc<Published>) {
        self.queue.push(at, Event::Deliver { to, msg });
    }

    /// Brings node `i` up as `node` (a restart is a fresh node under the same id): its first
    /// timers run now.
    pub fn start<E: Env<Event = X>>(&mut self, i: usize, mut node: Node, env: &mut E) {
        node.handle_timeout(self.now);
        self.by_id.insert(node.id(), i);
        let slot = &mut self.slots[i];
        slot.incarnation += 1;
        slot.proto = Some(node);
        slot.timer_at = None;
        self.drain(i, env);
    }

    /// Takes node `i` down: its state, its blobs and its subscriptions are gone.
    pub fn crash(&mut self, i: usize) {
        let slot = &mut self.slots[i];
        slot.proto = None;
        slot.blobs.clear();
        slot.timer_at = None;
        self.topics.forget(i);
    }

    /// A task's result as the harness holds it: inline when at most `inline_max` bytes,
    /// otherwise a blob kept by node `i` (gone if it crashes).
    pub fn keep_result(&mut self, i: usize, bytes: Vec<u8>, inline_max: usize) -> ResultRef {
        if bytes.len() <= inline_max {
            return ResultRef::Inline(bytes.into());
        }
        let r = crate::effects::blob_ref(&bytes);
        if let ResultRef::Blob { hash, .. } = r {
            self.slots[i].blobs.insert(hash, Rc::new(bytes));
        }
        r
    }

    /// A result's bytes: inline, or from its holder if the holder is up and holds it.
    pub fn fetch(&self, result: &ResultRef, holder: &NodeId) -> Option<Rc<Vec<u8>>> {
        match result {
            ResultRef::Inline(bytes) => Some(Rc::new(bytes.to_vec())),
            ResultRef::Blob { hash, .. } => {
                let h = self.index_of(holder)?;
                self.slots[h].proto.as_ref()?;
                self.slots[h].blobs.get(hash).cloned()
            }
        }
    }

    /// The next event due at or before `limit`, with the clock moved to it; none (and the
    /// clock at `limit`) if nothing is due by then.
    pub fn next_event(&mut self, limit: Millis) -> Option<Event<X>> {
        match self.queue.pop_until(limit) {
            Some((at, event)) => {
                self.now = at;
                Some(event)
            }
            None => {
                self.now = self.now.max(limit);
                None
            }
        }
    }

    /// Handles one event: a delivery, a timer, a finished task, or the environment's own.
    pub fn handle<E: Env<Event = X>>(&mut self, event: Event<X>, env: &mut E) {
        match event {
            Event::Deliver { to, msg } => {
                let to = to as usize;
                if !self.alive(to) || !env.deliverable(self, to, &msg) {
                    return;
                }
                let now = self.now;
                let proto = self.slots[to].proto.as_mut().expect("alive");
                proto.handle_envelope(now, msg.from_id, &msg.env, msg.len);
                self.drain(to, env);
            }
            Event::Timer { node } => {
                let i = node as usize;
                if self.slots[i].timer_at != Some(self.now) {
                    return; // superseded
                }
                self.slots[i].timer_at = None;
                let now = self.now;
                if let Some(proto) = self.slots[i].proto.as_mut() {
                    proto.handle_timeout(now);
                    self.drain(i, env);
                }
            }
            Event::TaskDone {
                node,
                incarnation,
                run,
            } => {
                let i = node as usize;
                if !self.is_current(i, incarnation) {
                    return;
                }
                let (outcome, run_us) = env.task_outcome(self, i, &run);
                let now = self.now;
                if let Some(proto) = self.slots[i].proto.as_mut() {
                    proto.task_finished(now, run.job, run.task, outcome, run_us);
                    self.drain(i, env);
                }
                env.after_task(self, i);
            }
            Event::Collected {
                node,
                incarnation,
                job,
                outcome,
            } => {
                let i = node as usize;
                if !self.is_current(i, incarnation) {
                    return;
                }
                let now = self.now;
                if let Some(proto) = self.slots[i].proto.as_mut() {
                    proto.job_collected(now, job, outcome);
                    self.drain(i, env);
                }
            }
            Event::Custom(x) => env.custom(self, x),
        }
    }

    /// Takes and handles the next event due by `limit`. False when none was.
    pub fn step<E: Env<Event = X>>(&mut self, limit: Millis, env: &mut E) -> bool {
        match self.next_event(limit) {
            Some(event) => {
                self.handle(event, env);
                true
            }
            None => false,
        }
    }

    /// Steps until `limit` or until `stop` holds (checked after every event).
    pub fn run_until<E: Env<Event = X>>(
        &mut self,
        limit: Millis,
        env: &mut E,
        mut stop: impl FnMut(&Self, &E) -> bool,
    ) {
        while !stop(self, env) && self.step(limit, env) {}
    }

    /// Carries out what node `i` wants joined, sent and done, in the machine's order, then
    /// re-arms its timer. Call after every input to the node.
    pub fn drain<E: Env<Event = X>>(&mut self, i: usize, env: &mut E) {
        loop {
            let now = self.now;
            let Some(proto) = self.slots[i].proto.as_mut() else {
                return;
            };
            if let Some(change) = proto.poll_subscription() {
                self.subscribe(i, change, env);
            } else if let Some((topic, bytes)) = proto.poll_transmit() {
                let from_id = proto.id();
                self.publish(i, from_id, topic, bytes, env);
            } else if let Some(effect) = proto.poll_effect() {
                self.effect(i, effect, env);
            } else {
                let t = proto.poll_timeout().max(now);
                let slot = &mut self.slots[i];
                if slot.timer_at != Some(t) {
                    slot.timer_at = Some(t);
                    self.queue.push(t, Event::Timer { node: i as u32 });
                }
                return;
            }
        }
    }

    fn subscribe<E: Env<Event = X>>(&mut self, i: usize, change: Subscription, env: &mut E) {
        self.topics.apply(i, change);
        let Subscription::Join(topic) = change else {
            return;
        };
        // Nodes holding messages nobody heard on this topic hear of their first listener.
        let Some(holders) = self.unheard.remove(&topic) else {
            return;
        };
        for n in holders {
            let n = n as usize;
            if n == i {
                continue;
            }
            let now = self.now;
            if let Some(proto) = self.slots[n].proto.as_mut() {
                proto.handle_peer_subscribed(now, topic);
                self.drain(n, env);
            }
        }
    }

    fn publish<E: Env<Event = X>>(
        &mut self,
        i: usize,
        from_id: NodeId,
        topic: Topic,
        bytes: Vec<u8>,
        env: &mut E,
    ) {
        self.published += 1;
        let msg = match Envelope::decode(&bytes) {
            Ok(decoded) => Rc::new(Published {
                id: self.published,
                from: i as u32,
                from_id,
                topic,
                env: decoded,
                len: bytes.len(),
            }),
            Err(e) => return env.invalid_publication(i, e),
        };
        env.publish(self, msg, &bytes);
        let heard = self
            .topics
            .listeners(&topic)
            .iter()
            .any(|&n| n as usize != i);
        if !heard && Node::retains_unheard(&topic) {
            let now = self.now;
            if let Some(proto) = self.slots[i].proto.as_mut() {
                proto.handle_unheard(now, topic, bytes);
                let holders = self.unheard.entry(topic).or_default();
                if !holders.contains(&(i as u32)) {
                    holders.push(i as u32);
                }
            }
        }
    }

    fn effect<E: Env<Event = X>>(&mut self, i: usize, effect: Effect, env: &mut E) {
        match effect {
            Effect::Run(run) => {
                env.task_started(self, i, &run);
                let took = env.task_duration(i, &run);
                let incarnation = self.slots[i].incarnation;
                self.queue.push(
                    self.now + took,
                    Event::TaskDone {
                        node: i as u32,
                        incarnation,
                        run: Box::new(run),
                    },
                );
            }
            Effect::Collect {
                job,
                spec,
                result,
                holder,
            } => {
                let outcome = env.collect(self, i, job, &spec, &result, holder);
                let took = env.collect_duration(i);
                if took > 0 {
                    let incarnation = self.slots[i].incarnation;
                    let event = Event::Collected {
                        node: i as u32,
                        incarnation,
                        job,
                        outcome,
                    };
                    self.queue.push(self.now + took, event);
                    return;
                }
                let now = self.now;
                if let Some(proto) = self.slots[i].proto.as_mut() {
                    proto.job_collected(now, job, outcome);
                }
            }
            Effect::JobFailed { job, error } => env.job_failed(i, job, error),
            Effect::Keep {
                job,
                piece,
                holders,
                ..
            } => {
                let ok = env.keep_piece(self, i, job, piece, &holders);
                let now = self.now;
                if let Some(proto) = self.slots[i].proto.as_mut() {
                    proto.piece_kept(now, job, piece, ok);
                }
            }
            Effect::Ended { job, ending, .. } => env.ended(i, job, &ending),
            // The harness keeps every result while its holder lives: memory is not what is
            // simulated, and inputs are at hand, so there is nothing to fetch ahead.
            // The harness keeps no results across jobs: every lookup finds nothing.
            Effect::ReuseMaps { job, .. } => {
                let now = self.now;
                if let Some(proto) = self.slots[i].proto.as_mut() {
                    proto.reuse_looked_up(now, job);
                }
            }
            Effect::Release { .. }
            | Effect::ServeParts { .. }
            | Effect::Prefetch { .. }
            | Effect::Suspected { .. }
            | Effect::ReuseReduce { .. } => {}
        }
    }
}
