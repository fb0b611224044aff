//! The driver: one task that owns the protocol state machine and the swarm. It feeds swarm
//! events, commands from [`Handle`]s and timer expiries into the machine, and carries out what
//! comes out (publishing, subscribing, starting tasks through [`crate::exec`]). It makes no
//! protocol decisions of its own: what to keep when nobody listens, and for how long, is the
//! machine's (`Node::handle_unheard`).

use crate::blob_proto::BlobResponse;
use crate::direct::{self, Direct};
use crate::exec;
use crate::fetch::{FetchError, FetchReply};
use crate::gossip_score::{self, InvalidCounts};
use crate::handle::{Command, Handle, JobError, JobOutcome, MeshView, NodeSnapshot};
use crate::net::{Behaviour, BehaviourEvent};
use crate::peers::{PeerBook, node_id};
use crate::seal::{self, SealChecker};
use crate::serve::{Access, BlobServer, Verdict};
use crate::store::BlobStore;
use crate::suspects::SuspectFile;
use futures::StreamExt;
use libp2p::core::transport::ListenerId;
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm, gossipsub, identify, kad, mdns, multiaddr::Protocol};
use shoal_protocol::bounded::BoundedMap;
use shoal_protocol::{
    BlobHash, Effect, JobId, Millis, Node, PeerStatus, Subscription, TaskOutcome, TaskRun, Topic,
};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Most peers we dial on our own initiative.
const MAX_CONNECTIONS: usize = 256;
/// Finished results kept for `wait` callers that come late.
const RESULT_MEMORY: usize = 64;
/// Peers banned at once (the oldest ban is lifted early past this).
const BANS_MAX: usize = 1024;
/// How often kept outputs are checked for expiry and kept inputs of ended jobs removed.
const TIDY_INTERVAL: Duration = Duration::from_secs(1);
/// How often the node looks for more peers through Kademlia (and lifts expired bans).
const DISCOVERY_EVERY: Duration = Duration::from_secs(10);
/// The first extra lookup after start; the next ones at twice the wait each, until it reaches
/// [`DISCOVERY_EVERY`] (at 0.5, 1.5, 3.5 and 7.5 s).
const EARLY_DISCOVERY_FIRST: Duration = Duration::from_millis(500);
/// Tiny tasks the driver runs in one turn of its loop before it looks at the network again.
const TINY_TASKS_PER_TURN: usize = 64;

/// Called with the node's listen addresses whenever they change.
pub type ListenCallback = Box<dyn FnMut(&[Multiaddr]) + Send>;

/// Everything the driver needs to start.
pub struct DriverParts {
    pub swarm: Swarm<Behaviour>,
    pub protocol: Node,
    pub store: BlobStore,
    pub bootstrap: Vec<Multiaddr>,
    /// The listeners opened on the swarm: addresses are reported once each has one.
    pub listeners: Vec<ListenerId>,
    /// Called with the listen addresses whenever they change (after every listener is up).
    pub on_listen: ListenCallback,
    /// Where the node keeps what survives a restart (the input cache); `None`: nowhere.
    pub data_dir: Option<std::path::PathBuf>,
    /// Results to corrupt (fault injection only).
    pub lies: Option<crate::fault::Lies>,
    /// The outputs and endings of durable jobs this node keeps.
    pub results: crate::results::ResultStore,
    /// The results of tasks this node computed, for later jobs (see [`crate::reuse`]).
    pub reuse: crate::reuse::ReuseCache,
    /// The pieces of durable jobs' inputs this node keeps (see [`crate::kept`]).
    pub kept: crate::kept::KeptInputs,
    /// The node's peer key, which seals what it publishes (see [`crate::seal`]).
    pub key: libp2p::identity::Keypair,
}

struct Driver {
    swarm: Swarm<Behaviour>,
    node: Node,
    start: Instant,
    handle: Handle,
    rx: mpsc::Receiver<Command>,
    /// Tiny tasks to run on the driver itself (see `exec::is_tiny`), a few per turn.
    tiny: VecDeque<TaskRun>,
    peers: PeerBook,
    /// The serving side of the blob protocol.
    server: BlobServer,
    /// Peers kept out, until when (in ban order: every ban is as long).
    bans: BoundedMap<PeerId, Instant>,
    /// Blob requests in flight, by request id: at most the blob behaviour's stream limit.
    fetches: HashMap<OutboundRequestId, (BlobHash, FetchReply)>,
    /// Callers waiting for jobs this node tracks (bounded by the jobs it tracks).
    waiters: HashMap<JobId, Vec<oneshot::Sender<JobOutcome>>>,
    results: BoundedMap<JobId, JobOutcome>,
    /// Outputs collected while the protocol still settles their job's account
    /// ([`Node::settling_account`]): their waiters are answered once it is whole, so the
    /// account they read with the output names every task.
    settling: HashMap<JobId, JobOutcome>,
    /// When each job submitted here was submitted, and its operator (for its duration).
    submitted: BoundedMap<JobId, (Instant, &'static str)>,
    listen: Vec<Multiaddr>,
    /// Listeners that have not reported an address yet.
    listeners_pending: Vec<ListenerId>,
    on_listen: ListenCallback,
    /// The suspicions kept across restarts.
    suspects: SuspectFile,
    /// Invalid gossip per peer, for its score.
    invalid: InvalidCounts,
    /// Seals what this node publishes.
    key: libp2p::identity::Keypair,
    /// Checks the seals of what it receives.
    seals: SealChecker,
    /// Sends on direct streams where the mesh is small and fully connected.
    direct: Direct,
}

/// The gossipsub topic of a protocol topic.
fn gossip_topic(topic: Topic) -> gossipsub::IdentTopic {
    gossipsub::IdentTopic::new(topic.name())
}

/// Starts the driver task. Returns the handle and the task's join handle.
pub fn spawn(parts: DriverParts) -> (Handle, tokio::task::JoinHandle<()>) {
    let DriverParts {
        mut swarm,
        mut protocol,
        store,
        bootstrap,
        listeners,
        on_listen,
        data_dir,
        lies,
        results,
        reuse,
        kept,
        key,
    } = parts;
    // What this node kept of durable jobs before it restarted: it answers for them again.
    for r in results.endings() {
        protocol.restore_ending(r.job, r.epoch, r.ending);
    }
    let (handle, rx) = Handle::new(
        store,
        protocol.id(),
        data_dir.as_deref(),
        lies,
        results,
        reuse,
        kept,
    );
    let control = swarm.behaviour().direct.new_control();
    crate::direct::accept(control.clone(), handle.clone());
    // The spot-check secret: nobody else may be able to tell which results get checked.
    let mut secret = [0u8; 32];
    if let Err(e) = getrandom::fill(&mut secret) {
        tracing::warn!("no randomness for the spot-check secret ({e}); using the seed's");
    } else {
        protocol.set_secret(secret);
    }
    let suspects = SuspectFile::load(data_dir.as_deref(), &mut protocol, 0);
    for addr in bootstrap {
        if let Some(Protocol::P2p(peer)) = addr.iter().last() {
            swarm.behaviour_mut().kad.add_address(&peer, addr.clone());
        }
        if let Err(e) = swarm.dial(addr.clone()) {
            tracing::warn!(%addr, "cannot dial bootstrap address: {e}");
        }
    }
    let driver = Driver {
        swarm,
        node: protocol,
        start: Instant::now(),
        handle: handle.clone(),
        rx,
        tiny: VecDeque::new(),
        peers: PeerBook::default(),
        server: BlobServer::default(),
        bans: BoundedMap::new(BANS_MAX),
        fetches: HashMap::new(),
        waiters: HashMap::new(),
        results: BoundedMap::new(RESULT_MEMORY),
        settling: HashMap::new(),
        submitted: BoundedMap::new(RESULT_MEMORY),
        listen: Vec::new(),
        listeners_pending: listeners,
        on_listen,
        suspects,
        invalid: InvalidCounts::default(),
        key,
        seals: SealChecker::default(),
        direct: Direct::new(control),
    };
    let join = tokio::spawn(driver.run());
    (handle, join)
}

impl Driver {
    fn now(&self) -> Millis {
        self.start.elapsed().as_millis() as Millis
    }

    async fn run(mut self) {
        // The protocol's first subscriptions.
        self.pump();
        let mut discovery = tokio::time::interval(DISCOVERY_EVERY);
        // More lookups in the first seconds, at growing intervals: a node that joined through
        // a peer at about the same time as another did learns nothing of it from that peer's
        // first answer, and would otherwise find it only at the next round, 10 s on.
        let mut early_wait = EARLY_DISCOVERY_FIRST;
        let early_discovery = tokio::time::sleep(early_wait);
        tokio::pin!(early_discovery);
        let mut tidy = tokio::time::interval(TIDY_INTERVAL);
        loop {
            let deadline = self.start + Duration::from_millis(self.node.poll_timeout());
            self.node.begin_turn();
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                command = self.rx.recv() => match command {
                    Some(Command::Shutdown) | None => break,
                    Some(command) => self.on_command(command),
                },
                _ = tokio::time::sleep_until(deadline.into()) => {
                    self.node.set_load(crate::sysinfo::load_milli());
                    self.node.handle_timeout(self.now());
                }
                _ = tidy.tick() => self.tidy_kept(),
                _ = &mut early_discovery, if early_wait < DISCOVERY_EVERY => {
                    self.discover();
                    early_wait *= 2;
                    early_discovery
                        .as_mut()
                        .reset(tokio::time::Instant::now() + early_wait);
                }
                _ = discovery.tick() => {
                    self.discover();
                    self.lift_bans();
                    let forgiven = self.invalid.decay();
                    gossip_score::apply(&mut self.swarm.behaviour_mut().gossipsub, &forgiven);
                }
                // Ready at once while tiny tasks wait; `select!` picks among the ready
                // branches at random, so the network and commands are served in between.
                _ = std::future::ready(()), if !self.tiny.is_empty() => self.run_tiny_tasks(),
            }
            self.pump();
        }
        tracing::debug!("node stopped");
    }

    /// Runs some of the waiting tiny tasks and reports their outcomes to the protocol.
    fn run_tiny_tasks(&mut self) {
        for _ in 0..TINY_TASKS_PER_TURN {
            if self.tiny.is_empty() {
                // Each task that finished freed its slot for the next claimed one: take those
                // up in this turn too, rather than one slot's worth per turn of the loop.
                self.apply_subscriptions_and_effects();
            }
            let Some(run) = self.tiny.pop_front() else {
                break;
            };
            let (outcome, run_us) = exec::run_tiny(&self.handle, &run);
            if let TaskOutcome::Failed(reason) = &outcome {
                tracing::warn!("{reason}");
            }
            self.count_task(run.spec.op.name(), exec::tasks_in(&run), &outcome, run_us);
            let now = self.now();
            self.node
                .task_finished(now, run.job, run.task, outcome, run_us);
        }
    }

    /// Drops kept outputs past their retention or the budget (the protocol then says they
    /// expired), and the kept input pieces once no durable job runs here.
    fn tidy_kept(&mut self) {
        let now = self.now();
        for (job, epoch) in self.handle.results().expire() {
            tracing::info!(%job, "the kept output expired (retention or disk budget)");
            self.node.output_expired(now, job, epoch);
        }
        self.handle
            .kept()
            .tidy(self.node.tracks_durable_jobs(), self.handle.store());
    }

    /// Looks for more peers through Kademlia (for meshes joined with `--bootstrap`).
    fn discover(&mut self) {
        let kad = &mut self.swarm.behaviour_mut().kad;
        if kad.bootstrap().is_ok() {
            kad.get_closest_peers(PeerId::random());
        }
    }

    /// Sends what the protocol wants sent and starts what it wants done. Tiny tasks the turn
    /// started run before anything is sent (one round of them), so that their claims and
    /// completions leave in one batch ([`Node::begin_turn`]).
    fn pump(&mut self) {
        self.apply_subscriptions_and_effects();
        if !self.tiny.is_empty() {
            self.run_tiny_tasks();
            self.apply_subscriptions_and_effects();
        }
        if !self.settling.is_empty() {
            self.answer_settled();
        }
        self.node.end_turn(self.now());
        while let Some((topic, bytes)) = self.node.poll_transmit() {
            self.publish(topic, bytes);
        }
    }

    /// Answers the waiters of the collected outputs whose job's account is now whole.
    fn answer_settled(&mut self) {
        let settled: Vec<JobId> = self
            .settling
            .keys()
            .filter(|job| !self.node.settling_account(job))
            .copied()
            .collect();
        for job in settled {
            if let Some(outcome) = self.settling.remove(&job) {
                self.finish(job, outcome);
            }
        }
    }

    /// Joins and leaves the topics the protocol asks for, and carries out its effects.
    fn apply_subscriptions_and_effects(&mut self) {
        while let Some(change) = self.node.poll_subscription() {
            let gossip = &mut self.swarm.behaviour_mut().gossipsub;
            match change {
                Subscription::Join(topic) => {
                    if gossip_score::scored(&topic) {
                        let _ = gossip
                            .set_topic_params(gossip_topic(topic), gossip_score::topic_params());
                    }
                    if let Err(e) = gossip.subscribe(&gossip_topic(topic)) {
                        tracing::warn!(%topic, "cannot subscribe: {e}");
                    }
                }
                Subscription::Leave(topic) => {
                    gossip.unsubscribe(&gossip_topic(topic));
                }
            }
        }
        while let Some(effect) = self.node.poll_effect() {
            self.on_effect(effect);
        }
    }

    fn on_effect(&mut self, effect: Effect) {
        match effect {
            Effect::Run(run) if exec::is_tiny(&run) => self.tiny.push_back(run),
            Effect::Run(run) => {
                let handle = self.handle.clone();
                tokio::spawn(async move {
                    let (job, task, op) = (run.job, run.task, run.spec.op.name());
                    let tasks = exec::tasks_in(&run);
                    let reduce = matches!(run.work, shoal_protocol::Work::Reduce { .. });
                    let (outcome, run_us) = exec::run_task(&handle, run).await;
                    tracing::debug!(%job, task, reduce, run_us, reused = matches!(outcome, TaskOutcome::Reused(_)), "task ended");
                    if let TaskOutcome::Failed(reason) | TaskOutcome::Unavailable(reason) = &outcome
                    {
                        tracing::warn!("{reason}");
                    }
                    handle
                        .tell(Command::TaskFinished {
                            job,
                            task,
                            op,
                            tasks,
                            outcome,
                            run_us,
                        })
                        .await;
                });
            }
            Effect::Collect {
                job,
                spec,
                result,
                holder,
            } => {
                let durable = spec.keep.copies > 1;
                if let Some(output) = exec::collect_tiny(&spec, &result) {
                    self.collected(job, holder, output, durable);
                    return;
                }
                let handle = self.handle.clone();
                tokio::spawn(async move {
                    let result = exec::collect(&handle, spec, result, holder).await;
                    handle
                        .tell(Command::Collected {
                            job,
                            holder,
                            result,
                            durable,
                        })
                        .await;
                });
            }
            Effect::Keep {
                job,
                piece,
                spec,
                holders,
            } => {
                let handle = self.handle.clone();
                tokio::spawn(async move {
                    let ok = match exec::keep_piece(&handle, job, piece, &spec, &holders).await {
                        Ok(()) => true,
                        Err(e) => {
                            tracing::debug!(%job, piece, "cannot copy this piece of the input (retried later): {e}");
                            false
                        }
                    };
                    handle.tell(Command::Kept { job, piece, ok }).await;
                });
            }
            Effect::Ended { job, epoch, ending } => {
                self.handle.results().record(job, epoch, ending);
            }
            Effect::JobFailed { job, error } => self.finish(job, Err(JobError::Failed(error))),
            Effect::Release { blob } => self.handle.store().release(&blob),
            Effect::Suspected {
                peer,
                lost,
                offences,
                remaining_ms,
            } => {
                tracing::warn!(
                    %peer,
                    lost,
                    "a result of this peer lost a vote: no work goes to it for {} s",
                    remaining_ms / 1000
                );
                self.suspects.record(peer, lost, offences, remaining_ms);
            }
            Effect::ReuseMaps { job, spec, holders } => {
                let handle = self.handle.clone();
                tokio::spawn(async move {
                    let results = exec::reusable_maps(&handle, job, &spec, &holders).await;
                    handle
                        .tell(Command::Reused {
                            job,
                            results,
                            looked_up: true,
                        })
                        .await;
                });
            }
            Effect::ReuseReduce { job, task, key } if self.handle.reuse().contains(&key) => {
                if let Some(result) = exec::reusable_in_memory(&self.handle, job, &key) {
                    tracing::debug!(%job, task, "a kept reduce result reported at once");
                    let now = self.now();
                    self.node.task_reused(now, job, task, result);
                    return;
                }
                tracing::debug!(%job, task, "a kept reduce result to read from its file");
                let handle = self.handle.clone();
                tokio::spawn(async move {
                    if let Some(result) = exec::reusable(&handle, job, key).await {
                        let results = vec![(task, result)];
                        let looked_up = false;
                        handle
                            .tell(Command::Reused {
                                job,
                                results,
                                looked_up,
                            })
                            .await;
                    }
                });
            }
            Effect::ReuseReduce { .. } => {}
            Effect::ServeParts { job, manifests } => {
                for manifest in manifests {
                    self.handle.store().grant_manifest(job, manifest);
                }
            }
            Effect::Prefetch { job, task, source } => {
                let handle = self.handle.clone();
                tokio::spawn(async move {
                    if let Err(e) = exec::prefetch(&handle, job, source).await {
                        tracing::debug!(%job, task, "prefetch failed (the task will retry): {e}");
                    }
                });
            }
        }
    }

    /// The peers gossipsub sends this node's messages on `topic` to directly (it floods its own
    /// messages to every peer of the topic it does not distrust), when few enough to name in
    /// the seal (see `crate::seal`); none otherwise.
    fn direct_recipients(&self, topic: &gossipsub::TopicHash) -> Vec<PeerId> {
        if self.swarm.network_info().num_peers() > seal::ADDRESSED_MAX {
            return Vec::new();
        }
        let gossip = &self.swarm.behaviour().gossipsub;
        gossip
            .all_peers()
            .filter(|(peer, topics)| {
                topics.contains(&topic)
                    && gossip
                        .peer_score(peer)
                        .is_none_or(|s| s >= gossip_score::PUBLISH_THRESHOLD)
            })
            .map(|(peer, _)| *peer)
            .collect()
    }

    /// Whether this node is connected to every peer the protocol knows to be live: then what it
    /// sends to each subscriber of a topic reaches everyone gossip would (see `crate::direct`).
    fn all_live_connected(&self) -> bool {
        let now = self.now();
        self.node.live_peer_ids(now).all(|id| {
            self.peers
                .peer_id(&id)
                .is_some_and(|peer| self.swarm.is_connected(&peer))
        })
    }

    /// A message from a peer's direct stream: taken as gossip from that peer would be, on the
    /// topics this node is subscribed to. The connection proves the author; nothing is
    /// forwarded.
    fn on_direct(&mut self, peer: PeerId, topic: &str, payload: Vec<u8>) {
        if Topic::from_name(topic).is_none() {
            self.invalid_from(
                peer,
                &format!("a direct message on the unknown topic {topic:?}"),
            );
            return;
        }
        let gossip = &self.swarm.behaviour().gossipsub;
        if gossip
            .peer_score(&peer)
            .is_some_and(|s| s < gossip_score::GRAYLIST)
        {
            return;
        }
        // A topic this node just left (the sender had not heard yet): nothing to do.
        if !gossip.topics().any(|t| t.as_str() == topic) {
            return;
        }
        self.learn_peer(peer);
        let now = self.now();
        match self.node.handle_message(now, node_id(&peer), &payload) {
            Ok(()) => {
                self.handle.metrics.direct_received.inc();
            }
            Err(e) => self.invalid_from(peer, &e.to_string()),
        }
    }

    /// `peer` sent something invalid: its score drops (below the graylist, nothing more of it
    /// is taken).
    fn invalid_from(&mut self, peer: PeerId, error: &str) {
        tracing::debug!(%peer, "rejected an invalid message: {error}");
        self.handle.metrics.offences.inc();
        let score = self.invalid.offence(peer);
        gossip_score::apply(&mut self.swarm.behaviour_mut().gossipsub, &[(peer, score)]);
    }

    /// Publishes on a topic. A message nobody hears goes back to the protocol, which decides
    /// whether to keep it for a subscriber to come.
    fn publish(&mut self, topic: Topic, bytes: Vec<u8>) {
        let gossip_topic = gossip_topic(topic);
        let addressed = self.direct_recipients(&gossip_topic.hash());
        if direct::use_direct(addressed.len(), || self.all_live_connected()) {
            let frame = direct::frame(gossip_topic.hash().as_str(), &bytes);
            if self.direct.send(&addressed, frame) {
                self.handle.metrics.direct_sent.inc();
                return;
            }
        }
        // Gossipsub consumes the bytes; copy only what the protocol would keep.
        let keep = Node::retains_unheard(&topic).then(|| bytes.clone());
        let sealed = seal::seal(&self.key, gossip_topic.hash().as_str(), &addressed, &bytes);
        match self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(gossip_topic, sealed)
        {
            Ok(_) => {}
            Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => {
                if let Some(bytes) = keep {
                    let now = self.now();
                    self.node.handle_unheard(now, topic, bytes);
                }
            }
            Err(e) => tracing::debug!("gossip publish failed: {e}"),
        }
    }

    /// Counts a task (or a run of `tasks` tasks) that ended on this node (inputs that could
    /// not be fetched are not the task's failure, and are not counted).
    fn count_task(&self, op: &str, tasks: u32, outcome: &TaskOutcome, run_us: u64) {
        match outcome {
            TaskOutcome::Done(_) | TaskOutcome::Reused(_) => {
                self.handle.metrics.task(op, tasks, true, run_us)
            }
            TaskOutcome::Failed(_) => self.handle.metrics.task(op, tasks, false, run_us),
            TaskOutcome::Unavailable(_) | TaskOutcome::InputLost { .. } => {}
        }
    }

    fn snapshot(&self, now: Millis) -> NodeSnapshot {
        let view = self.mesh_view(now);
        let jobs = self.node.jobs();
        let running = jobs.iter().filter(|j| {
            matches!(
                j.status,
                shoal_protocol::JobStatus::Running | shoal_protocol::JobStatus::WaitingForCapacity
            )
        });
        let members = running.map(|j| j.members as usize).sum();
        let (store_bytes, store_blobs) = self.handle.store().usage();
        NodeSnapshot {
            me: view.me,
            me_peer: view.me_peer,
            stats: self.node.stats().clone(),
            peers: view.peers.len(),
            jobs: self.node.table_sizes().jobs,
            members,
            serve: self.server.stats,
            store_bytes,
            store_blobs,
        }
    }

    /// How job `job` ended, for someone waiting on it: its outcome while this node still holds
    /// it; `None` while it runs or waits in the queue (a waiter will be told); `Forgotten` if it
    /// ended and its outcome was pushed out of the last [`RESULT_MEMORY`] since (no waiter
    /// would ever be told); `Unknown` if this node never heard of it.
    fn ended(&self, job: &JobId) -> Option<JobOutcome> {
        if let Some(outcome) = self.results.get(job) {
            return Some(outcome.clone());
        }
        let status = self.node.job_status(job);
        if self.node.tracks(job)
            || status
                .as_ref()
                .is_some_and(|v| matches!(v.status, shoal_protocol::JobStatus::Queued { .. }))
        {
            None
        } else if status.is_some() {
            Some(Err(JobError::Forgotten(*job)))
        } else {
            Some(Err(JobError::Unknown(*job)))
        }
    }

    /// The job's output, finalized from its root result (or why it could not be).
    fn collected(
        &mut self,
        job: JobId,
        holder: shoal_protocol::NodeId,
        result: Result<Vec<u8>, exec::CollectError>,
        durable: bool,
    ) {
        let now = self.now();
        match result {
            Ok(bytes) => {
                let bytes = Arc::new(bytes);
                // A durable job's output is kept on disk (this node is one of its keepers);
                // any other's only goes to whoever waits for it here.
                let output = if durable {
                    self.handle.results().put_output(job, &bytes)
                } else {
                    shoal_protocol::durable::OutputRef {
                        hash: BlobHash::of(&bytes),
                        len: bytes.len() as u64,
                    }
                };
                self.node.job_collected(now, job, Ok(output));
                if self.node.settling_account(&job) {
                    self.settling.insert(job, Ok(bytes));
                } else {
                    self.finish(job, Ok(bytes));
                }
            }
            Err(e) => {
                tracing::warn!(%job, "{e}; recomputing it");
                self.node.job_collected(now, job, Err(holder));
            }
        }
    }

    fn finish(&mut self, job: JobId, outcome: JobOutcome) {
        if outcome.is_ok()
            && let Some((at, op)) = self.submitted.remove(&job)
        {
            self.handle
                .metrics
                .job_duration
                .get_or_create(&crate::metrics::OpLabel { op: op.to_string() })
                .observe(at.elapsed().as_secs_f64());
        }
        for waiter in self.waiters.remove(&job).unwrap_or_default() {
            let _ = waiter.send(outcome.clone());
        }
        self.results.insert(job, outcome);
    }

    fn on_command(&mut self, command: Command) {
        let now = self.now();
        match command {
            Command::Submit {
                spec,
                reply,
                waiter,
            } => {
                let epoch = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64);
                let op = spec.op.name();
                let result = self.node.submit(now, spec, epoch);
                if let Ok(id) = &result {
                    // A resubmission computes afresh.
                    self.results.remove(id);
                    self.submitted.insert(*id, (Instant::now(), op));
                    if let Some(waiter) = waiter {
                        self.waiters.entry(*id).or_default().push(waiter);
                    }
                }
                let _ = reply.send(result);
            }
            Command::Status { job, reply } => {
                let live = self.node.peers(now).len();
                let _ = reply.send(self.node.job_status(&job).map(|v| (v, live)));
            }
            Command::Wait { job, reply } => match self.ended(&job) {
                Some(outcome) => {
                    let _ = reply.send(outcome);
                }
                None => self.waiters.entry(job).or_default().push(reply),
            },
            Command::Outcome { job, reply } => {
                let outcome = match self.ended(&job) {
                    Some(Err(JobError::Unknown(_))) => None,
                    other => other,
                };
                let _ = reply.send(outcome);
            }
            Command::Peers { reply } => {
                let _ = reply.send(self.mesh_view(now));
            }
            Command::Jobs { reply } => {
                let _ = reply.send(self.node.jobs());
            }
            Command::Fetch {
                holder,
                hash,
                reply,
            } => self.fetch(now, holder, hash, reply),
            Command::Respond {
                peer,
                channel,
                response,
            } => {
                self.server.finished(peer);
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .blobs
                    .send_response(channel, response);
            }
            Command::TaskFinished {
                job,
                task,
                op,
                tasks,
                outcome,
                run_us,
            } => {
                self.count_task(op, tasks, &outcome, run_us);
                self.node.task_finished(now, job, task, outcome, run_us);
            }
            Command::Detail { job, reply } => {
                let detail = self.node.job_status(&job).zip(self.node.job_detail(&job));
                let _ = reply.send(detail);
            }
            Command::Snapshot { reply } => {
                let _ = reply.send(self.snapshot(now));
            }
            Command::Collected {
                job,
                holder,
                result,
                durable,
            } => self.collected(job, holder, result, durable),
            Command::Direct {
                peer,
                topic,
                payload,
            } => self.on_direct(peer, &topic, payload),
            Command::DirectInvalid { peer, error } => self.invalid_from(peer, &error),
            Command::Kept { job, piece, ok } => self.node.piece_kept(now, job, piece, ok),
            Command::Reused {
                job,
                results,
                looked_up,
            } => {
                for (task, result) in results {
                    self.node.task_reused(now, job, task, result);
                }
                if looked_up {
                    self.node.reuse_looked_up(now, job);
                }
            }
            Command::SetShares { shares, reply } => {
                let _ = reply.send(self.node.set_shares(shares));
            }
            Command::Datasets { reply } => {
                let _ = reply.send(self.node.datasets());
            }
            Command::Dataset { name, reply } => {
                let _ = reply.send(self.node.dataset(&name));
            }
            Command::Moved { job, bytes } => self.node.input_moved(now, job, bytes),
            Command::ResultStatus { job, query, reply } => {
                if query {
                    self.node.query(now, job);
                }
                let _ = reply.send(self.node.result_status(&job));
            }
            Command::Shutdown => {}
        }
    }

    /// Sends a blob request to `holder`, unless it is known to be gone or unreachable.
    fn fetch(
        &mut self,
        now: Millis,
        holder: shoal_protocol::NodeId,
        hash: BlobHash,
        reply: FetchReply,
    ) {
        let failed = |why: String| Err(FetchError::Failed(why));
        match self.peers.peer_id(&holder) {
            // A dead holder would make each attempt wait for a handshake timeout.
            Some(_) if self.node.peer_gone(&holder, now) => {
                let _ = reply.send(failed(format!("peer {holder} is gone (it went silent)")));
            }
            Some(peer) => {
                let id = self.swarm.behaviour_mut().blobs.send_request(&peer, hash);
                self.fetches.insert(id, (hash, reply));
            }
            None => {
                let _ = reply.send(failed(format!("no known address for peer {holder}")));
            }
        }
    }

    fn mesh_view(&self, now: Millis) -> MeshView {
        let capacity = self.node.capacity();
        let me = PeerStatus {
            id: self.node.id(),
            slots_total: capacity.slots,
            slots_free: self.node.free_slots(),
            cores: capacity.cores,
            mem_mb: capacity.mem_mb,
            load_milli: crate::sysinfo::load_milli(),
            age_ms: 0,
            suspect_ms: 0,
            lost_votes: 0,
            tags: self.node.tags().to_vec(),
        };
        let peers = self
            .node
            .peers(now)
            .into_iter()
            .map(|p| {
                let peer = self.peers.peer_id(&p.id);
                let connection = peer.and_then(|peer| self.peers.connection(&peer));
                (p, peer, connection)
            })
            .collect();
        let gossip = &self.swarm.behaviour().gossipsub;
        let gossip_scores = gossip
            .all_peers()
            .filter_map(|(peer, _)| Some((*peer, gossip.peer_score(peer)?)))
            .filter(|(_, score)| *score < 0.0)
            .collect();
        MeshView {
            me,
            me_peer: *self.swarm.local_peer_id(),
            peers,
            gossip_scores,
        }
    }

    /// Remembers a peer's protocol id. A peer heard of only through gossip is looked up in
    /// Kademlia, so that we connect to it directly (blobs need direct connections).
    fn learn_peer(&mut self, peer: PeerId) {
        let connected = self.swarm.is_connected(&peer);
        if self.peers.learn(peer, connected, Instant::now()) {
            self.swarm.behaviour_mut().kad.get_closest_peers(peer);
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        {
            use libp2p::metrics::Recorder;
            let recorder = &self.handle.metrics.libp2p;
            recorder.record(&event);
            if let SwarmEvent::Behaviour(e) = &event {
                match e {
                    BehaviourEvent::Gossipsub(e) => recorder.record(e),
                    BehaviourEvent::Kad(e) => recorder.record(e),
                    BehaviourEvent::Identify(e) => recorder.record(e),
                    _ => {}
                }
            }
        }
        match event {
            SwarmEvent::NewListenAddr {
                address,
                listener_id,
            } => {
                self.listen.push(address);
                self.listeners_pending.retain(|l| *l != listener_id);
                if self.listeners_pending.is_empty() {
                    (self.on_listen)(&self.listen);
                }
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.listen.retain(|a| *a != address);
                (self.on_listen)(&self.listen);
            }
            SwarmEvent::ListenerClosed {
                listener_id,
                reason,
                ..
            } => {
                tracing::warn!("listener closed: {reason:?}");
                self.listeners_pending.retain(|l| *l != listener_id);
            }
            SwarmEvent::ConnectionEstablished {
                peer_id, endpoint, ..
            } => {
                self.peers.connected(peer_id, endpoint.get_remote_address());
                self.learn_peer(peer_id);
                if endpoint.is_dialer() {
                    self.swarm
                        .behaviour_mut()
                        .kad
                        .add_address(&peer_id, endpoint.get_remote_address().clone());
                }
                if self.swarm.connected_peers().count() == 1 {
                    // Our first peer: fill the routing table so the rest of the mesh is found.
                    let _ = self.swarm.behaviour_mut().kad.bootstrap();
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established,
                ..
            } => {
                // Its direct stream may have gone with the connection: the next message opens
                // another.
                self.direct.forget(&peer_id);
                if num_established > 0 {
                    // One of several connections to a peer went away: typically a stale one to
                    // a peer that restarted and reconnected. Gossipsub sends our subscriptions
                    // only on a peer's first connection, so the restarted peer never learnt
                    // them. Start over with that peer: close the rest and dial it again, so
                    // that the next connection is the first for both sides. (Subscribing
                    // afresh instead would send unsubscribe/subscribe pairs that gossipsub may
                    // deliver out of order over two connections, leaving peers believing we
                    // left a topic.)
                    self.peers.redial_later(peer_id);
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                } else {
                    self.peers.disconnected(&peer_id);
                    if self.peers.take_redial(&peer_id) {
                        let opts = libp2p::swarm::dial_opts::DialOpts::peer_id(peer_id).build();
                        if let Err(e) = self.swarm.dial(opts) {
                            tracing::debug!(peer = %peer_id, "redial failed: {e}");
                        }
                    }
                }
            }
            SwarmEvent::OutgoingConnectionError {
                peer_id: Some(peer),
                error,
                ..
            } => {
                tracing::debug!(%peer, "dial failed: {error}");
                self.peers.dial_failed(peer, Instant::now());
            }
            SwarmEvent::IncomingConnectionError { error, .. } => {
                tracing::debug!("incoming connection refused: {error}");
            }
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
            _ => {}
        }
    }

    fn dial_if_new(&mut self, peer: PeerId, addrs: Vec<Multiaddr>) {
        if peer == *self.swarm.local_peer_id()
            || self.swarm.is_connected(&peer)
            || self.swarm.connected_peers().count() >= MAX_CONNECTIONS
            || !self.peers.may_dial(&peer, Instant::now())
        {
            return;
        }
        let opts = libp2p::swarm::dial_opts::DialOpts::peer_id(peer)
            .addresses(crate::addrs::dialable(addrs))
            .build();
        if let Err(e) = self.swarm.dial(opts) {
            tracing::debug!(%peer, "dial failed: {e}");
        }
    }

    fn on_behaviour_event(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Gossipsub(gossipsub::Event::Subscribed { peer_id, topic }) => {
                self.learn_peer(peer_id);
                if let Some(topic) = Topic::from_name(topic.as_str()) {
                    let now = self.now();
                    self.node.handle_peer_subscribed(now, topic);
                }
            }
            BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                message,
                message_id,
                propagation_source,
            }) => {
                // The seal is checked once per message (gossipsub dropped the duplicates
                // already), and not at all for one that came straight from its author to
                // this node and to each of its other mesh peers (see `crate::seal`).
                let direct_end = seal::goes_no_further(
                    message.source.as_ref(),
                    &propagation_source,
                    &message.data,
                    self.swarm.behaviour().gossipsub.mesh_peers(&message.topic),
                );
                let opened = |seals: &mut SealChecker, source: &PeerId| {
                    if direct_end {
                        seal::unchecked(&message.data)
                    } else {
                        seals.open(&message.data, message.topic.as_str(), source)
                    }
                };
                let valid = match message.source {
                    Some(source) => match opened(&mut self.seals, &source) {
                        Ok(opened) => {
                            self.learn_peer(source);
                            let now = self.now();
                            self.node
                                .handle_message(now, node_id(&source), opened.payload)
                                .map_err(|e| e.to_string())
                        }
                        Err(e) => Err(e.to_string()),
                    },
                    None => Err("a message that names no author".to_string()),
                };
                let acceptance = match valid {
                    // Not checked: not to be passed on, nor served later.
                    Ok(()) if direct_end => gossipsub::MessageAcceptance::Ignore,
                    Ok(()) => gossipsub::MessageAcceptance::Accept,
                    Err(e) => {
                        self.invalid_from(propagation_source, &e);
                        gossipsub::MessageAcceptance::Reject
                    }
                };
                let gossip = &mut self.swarm.behaviour_mut().gossipsub;
                gossip.report_message_validation_result(
                    &message_id,
                    &propagation_source,
                    acceptance,
                );
            }
            BehaviourEvent::Mdns(mdns::Event::Discovered(found)) => {
                let mut by_peer: HashMap<PeerId, Vec<Multiaddr>> = HashMap::new();
                for (peer, addr) in found {
                    self.swarm
                        .behaviour_mut()
                        .kad
                        .add_address(&peer, addr.clone());
                    by_peer.entry(peer).or_default().push(addr);
                }
                for (peer, addrs) in by_peer {
                    self.dial_if_new(peer, addrs);
                }
            }
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                self.learn_peer(peer_id);
                for addr in crate::addrs::dialable(info.listen_addrs) {
                    self.swarm.behaviour_mut().kad.add_address(&peer_id, addr);
                }
            }
            BehaviourEvent::Kad(kad::Event::RoutingUpdated {
                peer, addresses, ..
            }) => {
                self.dial_if_new(peer, addresses.into_vec());
            }
            BehaviourEvent::Blobs(event) => self.on_blob_event(event),
            _ => {}
        }
    }

    /// Answers a blob request, if the peer may have the blob (see `crate::serve`).
    fn serve(&mut self, peer: PeerId, hash: BlobHash, channel: ResponseChannel<BlobResponse>) {
        let from = node_id(&peer);
        let store = self.handle.store();
        let jobs = store.jobs_of(&hash);
        // A kept output is for any peer of the mesh (`shoal result` on any node); anything
        // else only for the members of a job it belongs to.
        let access = if self.handle.results().job_of(&hash).is_some()
            || jobs.iter().any(|job| self.node.may_receive(job, &from))
        {
            Access::Allowed
        } else if !store.contains(&hash)
            || (!jobs.is_empty() && !jobs.iter().any(|job| self.node.tracks(job)))
        {
            Access::Unknown
        } else {
            Access::Denied
        };
        let now = Instant::now();
        let refuse = |swarm: &mut Swarm<Behaviour>, channel| {
            let _ = swarm
                .behaviour_mut()
                .blobs
                .send_response(channel, BlobResponse::Missing);
        };
        match self.server.request(peer, access, now) {
            Verdict::Serve => {
                // Reading a file-backed chunk touches the disk: do it off the driver.
                let handle = self.handle.clone();
                tokio::spawn(async move {
                    let store = handle.store().clone();
                    let results = handle.results().clone();
                    let response = tokio::task::spawn_blocking(move || {
                        match store.get(&hash).or_else(|| results.output_by_hash(&hash)) {
                            Some(bytes) => BlobResponse::Found(bytes),
                            None => BlobResponse::Missing,
                        }
                    })
                    .await
                    .unwrap_or(BlobResponse::Missing);
                    if let BlobResponse::Found(bytes) = &response {
                        handle.metrics.served_bytes.inc_by(bytes.len() as u64);
                    }
                    let respond = Command::Respond {
                        peer,
                        channel,
                        response,
                    };
                    handle.tell(respond).await;
                });
            }
            Verdict::Refuse => {
                tracing::debug!(%peer, %hash, "refused a blob to a peer that may not have it");
                refuse(&mut self.swarm, channel);
            }
            Verdict::Ban => {
                tracing::warn!(
                    %peer,
                    "disconnecting a peer that keeps asking for blobs it may not have; it is kept out for {:?}",
                    crate::serve::BAN
                );
                refuse(&mut self.swarm, channel);
                self.swarm.behaviour_mut().blocked.block_peer(peer);
                self.bans.insert(peer, now + crate::serve::BAN);
            }
            // Dropping the channel fails the request on the peer's side: it may try again.
            Verdict::Busy => drop(channel),
        }
    }

    /// Lets banned peers back in once their ban is over.
    fn lift_bans(&mut self) {
        let now = Instant::now();
        loop {
            let Some((peer, until)) = self.bans.iter().next().map(|(p, u)| (*p, *u)) else {
                break;
            };
            if until > now {
                break;
            }
            self.bans.remove(&peer);
            self.swarm.behaviour_mut().blocked.unblock_peer(peer);
        }
    }

    fn on_blob_event(&mut self, event: request_response::Event<BlobHash, BlobResponse>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => self.serve(peer, request, channel),
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    if let Some((hash, reply)) = self.fetches.remove(&request_id) {
                        // Verified by the fetcher, off the driver.
                        let result = match response {
                            BlobResponse::Found(bytes) => Ok(bytes),
                            BlobResponse::Missing => Err(FetchError::NotHeld {
                                holder: peer.to_string(),
                                hash,
                            }),
                        };
                        let _ = reply.send(result);
                    }
                }
            },
            request_response::Event::OutboundFailure {
                request_id,
                error,
                peer,
                ..
            } => {
                if matches!(error, request_response::OutboundFailure::DialFailure) {
                    // Find fresh addresses for the next attempt.
                    self.swarm.behaviour_mut().kad.get_closest_peers(peer);
                }
                if let Some((_, reply)) = self.fetches.remove(&request_id) {
                    let _ = reply.send(Err(FetchError::Failed(format!("fetch failed: {error}"))));
                }
            }
            _ => {}
        }
    }
}
