//! The driver: one task that owns the protocol state machine and the swarm, feeds swarm events,
//! commands and timer expiries into the machine, and carries out what comes out. It makes no
//! protocol decisions of its own.

use crate::blob_proto::BlobResponse;
use crate::exec;
use crate::net::{Behaviour, BehaviourEvent};
use crate::store::BlobStore;
use futures::StreamExt;
use libp2p::core::transport::ListenerId;
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm, gossipsub, identify, kad, mdns, multiaddr::Protocol};
use shoal_protocol::job::Manifest;
use shoal_protocol::{
    BlobHash, Effect, JobId, JobSpec, JobView, Millis, Node, NodeId, PeerStatus, Subscription,
    TaskOutcome, TaskRun, Topic,
};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Commands queued to the driver. Bounded: senders wait when the driver is busy.
const COMMAND_QUEUE: usize = 4096;
/// Most peers we dial on our own initiative.
const MAX_CONNECTIONS: usize = 256;
/// Finished results kept for `wait` callers that come late.
const RESULT_MEMORY: usize = 64;
/// Job messages kept while their topic has no subscriber yet, and for how long.
const UNSENT_MAX: usize = 1024;
const UNSENT_TTL: Duration = Duration::from_secs(2);
/// Tiny tasks the driver runs in one turn of its loop before it looks at the network again.
const TINY_TASKS_PER_TURN: usize = 64;

/// The final outcome of a job submitted from this node: its output bytes, or why it failed.
pub type JobOutcome = Result<Arc<Vec<u8>>, String>;

/// Called with the node's listen addresses whenever they change.
pub type ListenCallback = Box<dyn FnMut(&[Multiaddr]) + Send>;
/// Where a fetched blob (or why it could not be fetched) is sent.
type FetchReply = oneshot::Sender<Result<Arc<Vec<u8>>, FetchError>>;

/// Why a blob could not be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    /// The holder answered that it does not hold the blob (or this node, the holder, no
    /// longer does): asking again will not help.
    #[error("{0} does not hold the blob")]
    Missing(String),
    /// The holder could not be reached, or answered wrong bytes: another try may work.
    #[error("{0}")]
    Failed(String),
}

impl FetchError {
    /// Whether trying again may help.
    pub fn is_transient(&self) -> bool {
        matches!(self, FetchError::Failed(_))
    }
}

/// A peer as `shoal peers` shows it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PeerRow {
    pub peer_id: String,
    /// The protocol's id for the node, shortened as in a job's `spread`.
    pub node_id: String,
    pub is_self: bool,
    pub slots_total: u32,
    pub slots_free: u32,
    pub cores: u32,
    pub mem_mb: u64,
    pub load: f64,
    pub advert_age_ms: u64,
}

enum Command {
    Submit {
        spec: JobSpec,
        reply: oneshot::Sender<Result<JobId, String>>,
    },
    Status {
        job: JobId,
        reply: oneshot::Sender<Option<(JobView, usize)>>,
    },
    Wait {
        job: JobId,
        reply: oneshot::Sender<JobOutcome>,
    },
    Peers {
        reply: oneshot::Sender<Vec<PeerRow>>,
    },
    Jobs {
        reply: oneshot::Sender<Vec<JobView>>,
    },
    Fetch {
        holder: NodeId,
        hash: BlobHash,
        reply: FetchReply,
    },
    Respond {
        channel: ResponseChannel<BlobResponse>,
        response: BlobResponse,
    },
    TaskFinished {
        job: JobId,
        task: u32,
        outcome: TaskOutcome,
        run_us: u64,
    },
    Collected {
        job: JobId,
        holder: NodeId,
        result: Result<Vec<u8>, String>,
    },
    Shutdown,
}

/// A cloneable handle to a running node: the only way in.
#[derive(Clone)]
pub struct Handle {
    tx: mpsc::Sender<Command>,
    store: BlobStore,
    me: NodeId,
    manifests: Arc<Mutex<HashMap<BlobHash, Arc<Manifest>>>>,
    /// Blobs being fetched, with whoever else waits for the same bytes: a prefetch and the
    /// task that needs the chunk share one transfer.
    fetching: Arc<Mutex<HashMap<BlobHash, Vec<FetchReply>>>>,
}

/// Removes a blob from the in-flight fetches when its fetch ends, however it ends, and hands
/// the outcome to the waiters (an abandoned fetch fails them rather than leaving them waiting).
struct FetchSlot<'a> {
    fetching: &'a Mutex<HashMap<BlobHash, Vec<FetchReply>>>,
    hash: BlobHash,
    outcome: Option<Result<Arc<Vec<u8>>, FetchError>>,
}

impl Drop for FetchSlot<'_> {
    fn drop(&mut self) {
        let waiters = self
            .fetching
            .lock()
            .expect("fetch table lock")
            .remove(&self.hash)
            .unwrap_or_default();
        let outcome = self
            .outcome
            .take()
            .unwrap_or_else(|| Err(FetchError::Failed("the fetch was abandoned".into())));
        for waiter in waiters {
            let _ = waiter.send(outcome.clone());
        }
    }
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle").field("me", &self.me).finish()
    }
}

const GONE: &str = "the node has shut down";

impl Handle {
    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, String> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(make(tx)).await.map_err(|_| GONE.to_string())?;
        rx.await.map_err(|_| GONE.to_string())
    }

    pub fn store(&self) -> &BlobStore {
        &self.store
    }

    /// Builds the spec (chunking file inputs, on the blocking pool) and submits it.
    pub async fn submit(
        &self,
        request: crate::job_request::JobRequest,
    ) -> Result<(JobId, JobSpec), String> {
        let store = self.store.clone();
        let spec = tokio::task::spawn_blocking(move || request.into_spec(&store))
            .await
            .map_err(|e| format!("input preparation panicked: {e}"))??;
        let id = self
            .ask(|reply| Command::Submit {
                spec: spec.clone(),
                reply,
            })
            .await??;
        Ok((id, spec))
    }

    /// A job's state and the number of live peers.
    pub async fn status(&self, job: JobId) -> Result<Option<(JobView, usize)>, String> {
        self.ask(|reply| Command::Status { job, reply }).await
    }

    /// Waits for a job submitted from this node to end.
    pub async fn wait(&self, job: JobId) -> JobOutcome {
        self.ask(|reply| Command::Wait { job, reply }).await?
    }

    pub async fn peers(&self) -> Result<Vec<PeerRow>, String> {
        self.ask(|reply| Command::Peers { reply }).await
    }

    pub async fn jobs(&self) -> Result<Vec<JobView>, String> {
        self.ask(|reply| Command::Jobs { reply }).await
    }

    /// A blob by hash: from the local store, or fetched from `holder` and verified. Concurrent
    /// fetches of one blob share a transfer.
    pub async fn fetch(&self, holder: NodeId, hash: BlobHash) -> Result<Arc<Vec<u8>>, FetchError> {
        if let Some(bytes) = self.store.get(&hash) {
            return Ok(bytes);
        }
        if holder == self.me {
            return Err(FetchError::Missing(format!(
                "this node ({holder}) no longer"
            )));
        }
        let waiting = {
            let mut fetching = self.fetching.lock().expect("fetch table lock");
            match fetching.get_mut(&hash) {
                Some(waiters) => {
                    let (tx, rx) = oneshot::channel();
                    waiters.push(tx);
                    Some(rx)
                }
                None => {
                    fetching.insert(hash, Vec::new());
                    None
                }
            }
        };
        if let Some(rx) = waiting {
            return rx
                .await
                .unwrap_or_else(|_| Err(FetchError::Failed("the fetch was abandoned".into())));
        }
        let mut slot = FetchSlot {
            fetching: &self.fetching,
            hash,
            outcome: None,
        };
        let outcome = self.fetch_from(holder, hash).await;
        slot.outcome = Some(outcome.clone());
        outcome
    }

    async fn fetch_from(&self, holder: NodeId, hash: BlobHash) -> Result<Arc<Vec<u8>>, FetchError> {
        let bytes = self
            .ask(|reply| Command::Fetch {
                holder,
                hash,
                reply,
            })
            .await
            .map_err(FetchError::Failed)??;
        // Hashing a large blob takes a while: done here, in the fetching task, not in the
        // driver that serves every other event.
        let verified = {
            let bytes = bytes.clone();
            tokio::task::spawn_blocking(move || BlobHash::of(&bytes) == hash)
                .await
                .unwrap_or(false)
        };
        if verified {
            Ok(bytes)
        } else {
            Err(FetchError::Failed(format!(
                "peer {holder} sent bytes that do not hash to {hash}"
            )))
        }
    }

    pub fn cached_manifest(&self, hash: &BlobHash) -> Option<Arc<Manifest>> {
        self.manifests
            .lock()
            .expect("manifest lock")
            .get(hash)
            .cloned()
    }

    pub fn cache_manifest(&self, hash: BlobHash, manifest: Arc<Manifest>) {
        let mut m = self.manifests.lock().expect("manifest lock");
        if m.len() >= 64 {
            m.clear();
        }
        m.insert(hash, manifest);
    }

    /// Asks the node to stop.
    pub async fn shutdown(&self) {
        let _ = self.tx.send(Command::Shutdown).await;
    }
}

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
}

struct Driver {
    swarm: Swarm<Behaviour>,
    node: Node,
    start: Instant,
    handle: Handle,
    rx: mpsc::Receiver<Command>,
    /// The hash of the topic every node joins: a peer subscribing to it is a new neighbour.
    jobs_topic: gossipsub::TopicHash,
    /// Peers disconnected on purpose, to be dialled again once every connection is closed.
    redial: HashSet<PeerId>,
    /// Job messages that found no subscriber yet, with when (see `Driver::publish`).
    unsent: std::collections::VecDeque<(Topic, Vec<u8>, Instant)>,
    /// Tiny tasks to run on the driver itself (see `exec::is_tiny`), a few per turn.
    tiny: std::collections::VecDeque<TaskRun>,
    peers: HashMap<NodeId, PeerId>,
    fetches: HashMap<OutboundRequestId, FetchReply>,
    waiters: HashMap<JobId, Vec<oneshot::Sender<JobOutcome>>>,
    results: HashMap<JobId, JobOutcome>,
    result_order: std::collections::VecDeque<JobId>,
    listen: Vec<Multiaddr>,
    /// Listeners that have not reported an address yet.
    listeners_pending: Vec<ListenerId>,
    on_listen: ListenCallback,
}

/// The gossipsub topic of a protocol topic.
fn gossip_topic(topic: Topic) -> gossipsub::IdentTopic {
    gossipsub::IdentTopic::new(topic.name())
}

/// Derives the protocol's node id from a libp2p peer id.
pub fn node_id(peer: &PeerId) -> NodeId {
    NodeId::from_identity_bytes(&peer.to_bytes())
}

/// Starts the driver task. Returns the handle and the task's join handle.
pub fn spawn(parts: DriverParts) -> anyhow::Result<(Handle, tokio::task::JoinHandle<()>)> {
    let DriverParts {
        mut swarm,
        protocol,
        store,
        bootstrap,
        listeners,
        on_listen,
    } = parts;
    let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
    let handle = Handle {
        tx,
        store,
        me: protocol.id(),
        manifests: Arc::default(),
        fetching: Arc::default(),
    };
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
        jobs_topic: gossip_topic(Topic::Jobs).hash(),
        redial: Default::default(),
        unsent: Default::default(),
        tiny: Default::default(),
        peers: HashMap::new(),
        fetches: HashMap::new(),
        waiters: HashMap::new(),
        results: HashMap::new(),
        result_order: Default::default(),
        listen: Vec::new(),
        listeners_pending: listeners,
        on_listen,
    };
    let join = tokio::spawn(driver.run());
    Ok((handle, join))
}

impl Driver {
    fn now(&self) -> Millis {
        self.start.elapsed().as_millis() as Millis
    }

    async fn run(mut self) {
        // The protocol's first subscriptions.
        self.pump();
        let mut discovery = tokio::time::interval(Duration::from_secs(10));
        loop {
            let deadline = self.start + Duration::from_millis(self.node.poll_timeout());
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
                _ = discovery.tick() => self.discover(),
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
            let Some(run) = self.tiny.pop_front() else {
                break;
            };
            let (outcome, run_us) = exec::run_tiny(&self.handle, &run);
            if let TaskOutcome::Failed(reason) = &outcome {
                tracing::warn!("{reason}");
            }
            let now = self.now();
            self.node
                .task_finished(now, run.job, run.task, outcome, run_us);
        }
    }

    /// Looks for more peers through Kademlia (for meshes joined with `--bootstrap`).
    fn discover(&mut self) {
        let kad = &mut self.swarm.behaviour_mut().kad;
        if kad.bootstrap().is_ok() {
            kad.get_closest_peers(PeerId::random());
        }
    }

    /// Sends what the protocol wants sent and starts what it wants done.
    fn pump(&mut self) {
        while let Some(change) = self.node.poll_subscription() {
            let gossip = &mut self.swarm.behaviour_mut().gossipsub;
            match change {
                Subscription::Join(topic) => {
                    if let Err(e) = gossip.subscribe(&gossip_topic(topic)) {
                        tracing::warn!(%topic, "cannot subscribe: {e}");
                    }
                }
                Subscription::Leave(topic) => {
                    gossip.unsubscribe(&gossip_topic(topic));
                }
            }
        }
        while let Some((topic, bytes)) = self.node.poll_transmit() {
            self.publish(topic, bytes);
        }
        while let Some(effect) = self.node.poll_effect() {
            match effect {
                Effect::Run(run) if exec::is_tiny(&run) => self.tiny.push_back(run),
                Effect::Run(run) => {
                    let handle = self.handle.clone();
                    tokio::spawn(async move {
                        let (job, task) = (run.job, run.task);
                        let (outcome, run_us) = exec::run_task(&handle, run).await;
                        if let TaskOutcome::Failed(reason) | TaskOutcome::Unavailable(reason) =
                            &outcome
                        {
                            tracing::warn!("{reason}");
                        }
                        let _ = handle
                            .tx
                            .send(Command::TaskFinished {
                                job,
                                task,
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
                    let handle = self.handle.clone();
                    tokio::spawn(async move {
                        let result = exec::collect(&handle, spec, result, holder).await;
                        let _ = handle
                            .tx
                            .send(Command::Collected {
                                job,
                                holder,
                                result,
                            })
                            .await;
                    });
                }
                Effect::JobFailed { job, error } => self.finish(job, Err(error)),
                Effect::Release { blob } => self.handle.store.release(&blob),
                Effect::Prefetch { job, task, source } => {
                    let handle = self.handle.clone();
                    tokio::spawn(async move {
                        if let Err(e) = exec::prefetch(&handle, source).await {
                            tracing::debug!(%job, task, "prefetch failed (the task will retry): {e}");
                        }
                    });
                }
            }
        }
    }

    /// Publishes on a topic. A job's message that finds no subscriber yet is kept for a short
    /// while and sent when one subscribes: members join a job's topic as they learn of it, and
    /// their first claims and completions can race the subscriptions (gossipsub shares one
    /// queue between a peer's connections, so a subscription may even arrive after the
    /// announcement that follows it). Dropping them cost a steal delay or two per job.
    fn publish(&mut self, topic: Topic, bytes: Vec<u8>) {
        // Only a job's messages are kept, so only theirs are copied before gossipsub takes them.
        let keep = matches!(topic, Topic::Job(_)).then(|| bytes.clone());
        match self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(gossip_topic(topic), bytes)
        {
            Ok(_) => {}
            Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => {
                if let Some(bytes) = keep {
                    if self.unsent.len() >= UNSENT_MAX {
                        self.unsent.pop_front();
                    }
                    self.unsent.push_back((topic, bytes, Instant::now()));
                }
            }
            Err(e) => tracing::debug!("gossip publish failed: {e}"),
        }
    }

    /// A peer subscribed to `topic`: sends what waited for a subscriber there, and forgets
    /// what waited too long (the protocol re-sends what still matters).
    fn send_unsent(&mut self, topic: &gossipsub::TopicHash) {
        let now = Instant::now();
        let waiting = std::mem::take(&mut self.unsent);
        for (t, bytes, since) in waiting {
            if now.duration_since(since) > UNSENT_TTL {
                continue;
            }
            if gossip_topic(t).hash() == *topic {
                self.publish(t, bytes);
            } else {
                self.unsent.push_back((t, bytes, since));
            }
        }
    }

    fn finish(&mut self, job: JobId, outcome: JobOutcome) {
        for waiter in self.waiters.remove(&job).unwrap_or_default() {
            let _ = waiter.send(outcome.clone());
        }
        if self.results.insert(job, outcome).is_none() {
            self.result_order.push_back(job);
        }
        while self.result_order.len() > RESULT_MEMORY {
            if let Some(old) = self.result_order.pop_front() {
                self.results.remove(&old);
            }
        }
    }

    fn on_command(&mut self, command: Command) {
        let now = self.now();
        match command {
            Command::Submit { spec, reply } => {
                let epoch = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64);
                let result = self
                    .node
                    .submit(now, spec, epoch)
                    .map_err(|e| e.to_string());
                if let Ok(id) = &result {
                    // A resubmission computes afresh.
                    self.results.remove(id);
                }
                let _ = reply.send(result);
            }
            Command::Status { job, reply } => {
                let live = self.node.peers(now).len();
                let _ = reply.send(self.node.job_status(&job).map(|v| (v, live)));
            }
            Command::Wait { job, reply } => {
                if let Some(outcome) = self.results.get(&job) {
                    let _ = reply.send(outcome.clone());
                } else if self.node.job_status(&job).is_some() {
                    self.waiters.entry(job).or_default().push(reply);
                } else {
                    let _ = reply.send(Err(format!("job {job} is not known to this node")));
                }
            }
            Command::Peers { reply } => {
                let _ = reply.send(self.peer_rows(now));
            }
            Command::Jobs { reply } => {
                let _ = reply.send(self.node.jobs());
            }
            Command::Fetch {
                holder,
                hash,
                reply,
            } => match self.peers.get(&holder) {
                // A dead holder would make each attempt wait for a handshake timeout.
                Some(_) if self.node.peer_gone(&holder, now) => {
                    let _ = reply.send(Err(FetchError::Failed(format!(
                        "peer {holder} is gone (it went silent)"
                    ))));
                }
                Some(peer) => {
                    let id = self.swarm.behaviour_mut().blobs.send_request(peer, hash);
                    self.fetches.insert(id, reply);
                }
                None => {
                    let _ = reply.send(Err(FetchError::Failed(format!(
                        "no known address for peer {holder}"
                    ))));
                }
            },
            Command::Respond { channel, response } => {
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .blobs
                    .send_response(channel, response);
            }
            Command::TaskFinished {
                job,
                task,
                outcome,
                run_us,
            } => self.node.task_finished(now, job, task, outcome, run_us),
            Command::Collected {
                job,
                holder,
                result,
            } => match result {
                Ok(bytes) => {
                    self.node.job_collected(now, job, Ok(()));
                    self.finish(job, Ok(Arc::new(bytes)));
                }
                Err(e) => {
                    tracing::warn!(%job, "fetching the root result failed: {e}; recomputing it");
                    self.node.job_collected(now, job, Err(holder));
                }
            },
            Command::Shutdown => {}
        }
    }

    fn peer_rows(&self, now: Millis) -> Vec<PeerRow> {
        let me = *self.swarm.local_peer_id();
        let caps = self.node.peers(now);
        let mut rows = vec![PeerRow {
            peer_id: me.to_string(),
            node_id: self.node.id().to_string(),
            is_self: true,
            slots_total: self.node.capacity().slots,
            slots_free: self.node.free_slots(),
            cores: self.node.capacity().cores,
            mem_mb: self.node.capacity().mem_mb,
            load: f64::from(crate::sysinfo::load_milli()) / 1000.0,
            advert_age_ms: 0,
        }];
        rows.extend(caps.into_iter().map(|p: PeerStatus| {
            PeerRow {
                peer_id: self
                    .peers
                    .get(&p.id)
                    .map_or_else(|| p.id.to_hex(), |id| id.to_string()),
                node_id: p.id.to_string(),
                is_self: false,
                slots_total: p.slots_total,
                slots_free: p.slots_free,
                cores: p.cores,
                mem_mb: p.mem_mb,
                load: f64::from(p.load_milli) / 1000.0,
                advert_age_ms: p.age_ms,
            }
        }));
        rows
    }

    /// Remembers a peer's protocol id. A peer heard of only through gossip is looked up in
    /// Kademlia, so that we connect to it directly (blobs need direct connections).
    fn learn_peer(&mut self, peer: PeerId) {
        if self.peers.insert(node_id(&peer), peer).is_none() && !self.swarm.is_connected(&peer) {
            self.swarm.behaviour_mut().kad.get_closest_peers(peer);
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
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
                if num_established > 0 {
                    // One of several connections to a peer went away: typically a stale one to
                    // a peer that restarted and reconnected. Gossipsub sends our subscriptions
                    // only on a peer's first connection, so the restarted peer never learnt
                    // them. Start over with that peer: close the rest and dial it again, so
                    // that the next connection is the first for both sides. (Subscribing
                    // afresh instead would send unsubscribe/subscribe pairs that gossipsub may
                    // deliver out of order over two connections, leaving peers believing we
                    // left a topic.)
                    self.redial.insert(peer_id);
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                } else if self.redial.remove(&peer_id) {
                    let opts = libp2p::swarm::dial_opts::DialOpts::peer_id(peer_id).build();
                    if let Err(e) = self.swarm.dial(opts) {
                        tracing::debug!(peer = %peer_id, "redial failed: {e}");
                    }
                }
            }
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
            _ => {}
        }
    }

    fn dial_if_new(&mut self, peer: PeerId, addrs: Vec<Multiaddr>) {
        if peer == *self.swarm.local_peer_id()
            || self.swarm.is_connected(&peer)
            || self.swarm.connected_peers().count() >= MAX_CONNECTIONS
        {
            return;
        }
        let opts = libp2p::swarm::dial_opts::DialOpts::peer_id(peer)
            .addresses(addrs)
            .build();
        if let Err(e) = self.swarm.dial(opts) {
            tracing::debug!(%peer, "dial failed: {e}");
        }
    }

    fn on_behaviour_event(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Gossipsub(gossipsub::Event::Subscribed { peer_id, topic }) => {
                self.learn_peer(peer_id);
                if !self.unsent.is_empty() {
                    self.send_unsent(&topic);
                }
                if topic == self.jobs_topic {
                    let now = self.now();
                    self.node.neighbour_joined(now);
                }
            }
            BehaviourEvent::Gossipsub(gossipsub::Event::Message { message, .. }) => {
                let Some(source) = message.source else { return };
                self.learn_peer(source);
                let now = self.now();
                if let Err(e) = self
                    .node
                    .handle_message(now, node_id(&source), &message.data)
                {
                    tracing::debug!(peer = %source, "dropped an invalid message: {e}");
                }
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
                for addr in info.listen_addrs {
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

    fn on_blob_event(&mut self, event: request_response::Event<BlobHash, BlobResponse>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => {
                    // Reading a file-backed chunk touches the disk: do it off the driver.
                    let handle = self.handle.clone();
                    tokio::spawn(async move {
                        let store = handle.store.clone();
                        let response =
                            tokio::task::spawn_blocking(move || match store.get(&request) {
                                Some(bytes) => BlobResponse::Found(bytes),
                                None => BlobResponse::Missing,
                            })
                            .await
                            .unwrap_or(BlobResponse::Missing);
                        let _ = handle.tx.send(Command::Respond { channel, response }).await;
                    });
                }
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    if let Some(reply) = self.fetches.remove(&request_id) {
                        // Verified by the fetcher, off the driver.
                        let result = match response {
                            BlobResponse::Found(bytes) => Ok(bytes),
                            BlobResponse::Missing => {
                                Err(FetchError::Missing(format!("peer {peer}")))
                            }
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
                if let Some(reply) = self.fetches.remove(&request_id) {
                    let _ = reply.send(Err(FetchError::Failed(format!("fetch failed: {error}"))));
                }
            }
            _ => {}
        }
    }
}
