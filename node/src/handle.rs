//! The way into a running node: a cloneable [`Handle`] that sends commands to the driver
//! over a bounded channel and awaits the answers (rust-libp2p's file-sharing `Client` split).
//! Fetching blobs through it is [`crate::fetch`]'s.

use crate::blob_proto::BlobResponse;
use crate::fetch::{FetchReply, InFlight};
use crate::input::cache::InputCache;
use crate::job_request::{JobRequest, PrepareError, Prepared};
use crate::store::BlobStore;
use libp2p::request_response::ResponseChannel;
use shoal_protocol::bounded::BoundedMap;
use shoal_protocol::job::Manifest;
use shoal_protocol::{BlobHash, JobId, JobSpec, JobView, NodeId, PeerStatus, SubmitError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

/// Commands queued to the driver. Bounded: senders wait when the driver is busy.
pub(crate) const COMMAND_QUEUE: usize = 4096;
/// Manifests kept decoded, so that the tasks of a job do not decode its manifest each time.
const MANIFEST_CACHE: usize = 64;

/// The driver has stopped: nothing more can be asked of this node (start it again).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the node has shut down")]
pub struct NodeGone;

/// Why a submission was refused. Nothing was submitted in any of these cases.
#[derive(Debug, thiserror::Error)]
pub enum SubmitFailure {
    /// The inputs could not be prepared (a file is unreadable, a module invalid): fix the
    /// request and submit again.
    #[error(transparent)]
    Prepare(#[from] PrepareError),
    /// The protocol refused the job (an invalid spec, or this node's job table is full):
    /// the message says whether waiting helps.
    #[error(transparent)]
    Refused(#[from] SubmitError),
    /// The node has shut down.
    #[error(transparent)]
    Gone(#[from] NodeGone),
}

/// Why a job submitted from this node has no result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// The job failed on the mesh (one of its tasks failed too often, or its root result
    /// could not be finalized); the message is the cause. Resubmitting runs it afresh.
    #[error("{0}")]
    Failed(String),
    /// This node neither runs nor remembers the job: ask the node that submitted it.
    #[error("job {0} is not known to this node")]
    Unknown(JobId),
    /// The job ended here, but its outcome is no longer held (the node keeps the last few):
    /// waiting would be forever.
    #[error(
        "job {0} ended, but this node no longer holds its outcome (it keeps the last 64); submit it again"
    )]
    Forgotten(JobId),
    /// The node has shut down.
    #[error(transparent)]
    Gone(#[from] NodeGone),
}

/// The final outcome of a job submitted from this node: its output bytes, or why it failed.
pub type JobOutcome = Result<Arc<Vec<u8>>, JobError>;

/// The mesh as the local node sees it, for `shoal peers` ([`crate::cli::rows::PeerRow`]).
#[derive(Debug, Clone)]
pub struct MeshView {
    pub me: PeerStatus,
    /// The local node's libp2p peer id.
    pub me_peer: libp2p::PeerId,
    /// Live peers, with their libp2p peer id where the driver knows it, and the transport of
    /// the connection to each (`None`: heard of through gossip only).
    pub peers: Vec<(PeerStatus, Option<libp2p::PeerId>, Option<&'static str>)>,
    /// The gossip scores of the peers that have one below zero (invalid messages held against
    /// them: [`crate::gossip_score`]).
    pub gossip_scores: HashMap<libp2p::PeerId, f64>,
}

/// The node's own figures, as one consistent snapshot (for `/api/v1/node` and `/metrics`).
#[derive(Debug, Clone)]
pub struct NodeSnapshot {
    pub me: PeerStatus,
    pub me_peer: libp2p::PeerId,
    pub stats: shoal_protocol::Stats,
    /// Live peers in the view.
    pub peers: usize,
    /// Jobs tracked, and their members summed.
    pub jobs: usize,
    pub members: usize,
    pub serve: crate::serve::ServeStats,
    /// Bytes of blobs in memory, and blobs held.
    pub store_bytes: usize,
    pub store_blobs: usize,
}

/// What the driver is asked to do. Each carries its own reply channel, so answers match.
pub(crate) enum Command {
    Submit {
        spec: JobSpec,
        reply: oneshot::Sender<Result<JobId, SubmitError>>,
        /// Told the outcome once the job ends: registered with the submission, in the same
        /// turn of the driver, so that a job that ends at once (one its submitter runs alone)
        /// cannot end before its waiter is there.
        waiter: Option<oneshot::Sender<JobOutcome>>,
    },
    Status {
        job: JobId,
        reply: oneshot::Sender<Option<(JobView, usize)>>,
    },
    Wait {
        job: JobId,
        reply: oneshot::Sender<JobOutcome>,
    },
    Outcome {
        job: JobId,
        reply: oneshot::Sender<Option<JobOutcome>>,
    },
    Peers {
        reply: oneshot::Sender<MeshView>,
    },
    Jobs {
        reply: oneshot::Sender<Vec<JobView>>,
    },
    Detail {
        job: JobId,
        reply: oneshot::Sender<Option<(JobView, shoal_protocol::node::JobDetail)>>,
    },
    Snapshot {
        reply: oneshot::Sender<NodeSnapshot>,
    },
    Fetch {
        holder: NodeId,
        hash: BlobHash,
        reply: FetchReply,
    },
    Respond {
        peer: libp2p::PeerId,
        channel: ResponseChannel<BlobResponse>,
        response: BlobResponse,
    },
    TaskFinished {
        job: JobId,
        task: u32,
        op: &'static str,
        /// The job's tasks it computed: more than one for a run of tiny tasks.
        tasks: u32,
        outcome: shoal_protocol::TaskOutcome,
        run_us: u64,
    },
    /// A frame from a peer's direct stream (see `crate::direct`).
    Direct {
        peer: libp2p::PeerId,
        topic: String,
        payload: Vec<u8>,
    },
    /// A peer's direct stream carried something that is not a frame.
    DirectInvalid {
        peer: libp2p::PeerId,
        error: String,
    },
    Collected {
        job: JobId,
        holder: NodeId,
        result: Result<Vec<u8>, crate::exec::CollectError>,
        /// The job keeps its output on several members (this node is one).
        durable: bool,
    },
    /// A piece of a durable job's input was copied here (or could not be).
    Kept {
        job: JobId,
        piece: u32,
        ok: bool,
    },
    /// Results of tasks of `job` this node knew from earlier jobs (see [`crate::reuse`]).
    Reused {
        job: JobId,
        results: Vec<(u32, shoal_protocol::ResultRef)>,
        /// The lookup of the job's map tasks is over (see
        /// [`shoal_protocol::Node::reuse_looked_up`]).
        looked_up: bool,
    },
    /// What the protocol can say about a job's result; with `query`, it also asks the mesh.
    ResultStatus {
        job: JobId,
        query: bool,
        reply: oneshot::Sender<shoal_protocol::ResultStatus>,
    },
    /// The dataset parts this node shares now ([`crate::shares`]).
    SetShares {
        shares: Vec<shoal_protocol::dataset::Share>,
        reply: oneshot::Sender<Result<(), shoal_protocol::dataset::DatasetError>>,
    },
    /// The datasets of the mesh as this node knows them.
    Datasets {
        reply: oneshot::Sender<Vec<shoal_protocol::dataset::Dataset>>,
    },
    /// Dataset `name` as a job's input.
    Dataset {
        name: String,
        reply: oneshot::Sender<
            Result<shoal_protocol::dataset::Dataset, shoal_protocol::dataset::DatasetError>,
        >,
    },
    /// `bytes` of job `job`'s input came over the network to this node.
    Moved {
        job: JobId,
        bytes: u64,
    },
    Shutdown,
}

/// A cloneable handle to a running node: the only way in.
#[derive(Clone)]
pub struct Handle {
    pub(crate) tx: mpsc::Sender<Command>,
    store: BlobStore,
    me: NodeId,
    pub(crate) manifests: Arc<Mutex<BoundedMap<BlobHash, Arc<Manifest>>>>,
    pub(crate) in_flight: Arc<InFlight>,
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
    /// The chunks of input files already hashed (see [`crate::input::cache`]).
    cache: Arc<InputCache>,
    /// Results this node corrupts (fault injection; `None` in every real deployment).
    pub(crate) lies: Option<crate::fault::Lies>,
    /// The pieces of durable jobs' inputs this node keeps.
    kept: crate::kept::KeptInputs,
    /// The outputs and endings of durable jobs this node keeps.
    results: crate::results::ResultStore,
    /// The results of tasks this node computed, for later jobs.
    reuse: crate::reuse::ReuseCache,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle").field("me", &self.me).finish()
    }
}

impl Handle {
    /// A handle and the receiving end of its commands (for the driver).
    pub(crate) fn new(
        store: BlobStore,
        me: NodeId,
        data_dir: Option<&std::path::Path>,
        lies: Option<crate::fault::Lies>,
        results: crate::results::ResultStore,
        reuse: crate::reuse::ReuseCache,
        kept: crate::kept::KeptInputs,
    ) -> (Self, mpsc::Receiver<Command>) {
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        let handle = Self {
            tx,
            store,
            me,
            manifests: Arc::new(Mutex::new(BoundedMap::new(MANIFEST_CACHE))),
            in_flight: Arc::default(),
            metrics: Arc::default(),
            cache: Arc::new(InputCache::new(data_dir)),
            lies,
            kept,
            results,
            reuse,
        };
        (handle, rx)
    }

    /// Sends a command and waits for its answer.
    pub(crate) async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, NodeGone> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(make(tx)).await.map_err(|_| NodeGone)?;
        rx.await.map_err(|_| NodeGone)
    }

    /// Sends a command that needs no answer (a report from a task the driver started).
    pub(crate) async fn tell(&self, command: Command) {
        // A driver that is gone has nobody left to tell.
        let _ = self.tx.send(command).await;
    }

    /// This node's protocol id.
    pub fn id(&self) -> NodeId {
        self.me
    }

    pub fn store(&self) -> &BlobStore {
        &self.store
    }

    /// The pieces of durable jobs' inputs this node keeps.
    pub fn kept(&self) -> &crate::kept::KeptInputs {
        &self.kept
    }

    /// The outputs and endings of durable jobs this node keeps.
    pub fn results(&self) -> &crate::results::ResultStore {
        &self.results
    }

    /// The chunks of input files already hashed.
    pub fn input_cache(&self) -> &InputCache {
        &self.cache
    }

    /// Sets the dataset parts this node shares (see [`crate::shares`]).
    pub async fn set_shares(
        &self,
        shares: Vec<shoal_protocol::dataset::Share>,
    ) -> Result<Result<(), shoal_protocol::dataset::DatasetError>, NodeGone> {
        self.ask(|reply| Command::SetShares { shares, reply }).await
    }

    /// The datasets of the mesh as this node knows them (`shoal datasets`).
    pub async fn datasets(&self) -> Result<Vec<shoal_protocol::dataset::Dataset>, NodeGone> {
        self.ask(|reply| Command::Datasets { reply }).await
    }

    /// Counts `bytes` of job `job`'s input as moved over the network to this node.
    pub async fn input_moved(&self, job: JobId, bytes: u64) {
        self.tell(Command::Moved { job, bytes }).await;
    }

    /// The results of tasks this node computed, for later jobs.
    pub fn reuse(&self) -> &crate::reuse::ReuseCache {
        &self.reuse
    }

    /// What the node can say about job `job`'s result; with `query`, it asks the mesh too
    /// (the answer comes later: ask again).
    pub async fn result_status(
        &self,
        job: JobId,
        query: bool,
    ) -> Result<shoal_protocol::ResultStatus, NodeGone> {
        self.ask(|reply| Command::ResultStatus { job, query, reply })
            .await
    }

    /// Builds the spec (chunking file inputs, on the blocking pool) and submits it; with
    /// `wait`, also returns where the job's outcome will come once it ends. That waiter is
    /// registered with the submission: waiting with [`Handle::wait`] after submitting could
    /// miss a job that ended in between (one its submitter ran alone, at once) and whose
    /// outcome the node no longer remembers (it keeps the last few).
    pub async fn submit_with(
        &self,
        request: JobRequest,
        wait: bool,
    ) -> Result<(JobId, Prepared, Option<oneshot::Receiver<JobOutcome>>), SubmitFailure> {
        let (waiter, outcome) = if wait {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let store = self.store.clone();
        let cache = self.cache.clone();
        let dataset = match request.dataset() {
            Some(name) => {
                let name = name.to_string();
                let found = self.ask(|reply| Command::Dataset { name, reply }).await?;
                Some(found.map_err(|e| PrepareError::Spec(e.into()))?)
            }
            None => None,
        };
        let prepared = tokio::task::spawn_blocking(move || {
            let prepared = request.into_spec(&store, &cache, dataset)?;
            // The job's members may fetch its blobs from the moment it is announced.
            store.grant_spec(prepared.spec.id(), &prepared.spec);
            Ok::<_, PrepareError>(prepared)
        })
        .await
        .map_err(|e| PrepareError::Panicked(e.to_string()))??;
        let id = self
            .ask(|reply| Command::Submit {
                spec: prepared.spec.clone(),
                reply,
                waiter,
            })
            .await??;
        Ok((id, prepared, outcome))
    }

    /// A job's state and the number of live peers; `None` for a job this node does not know.
    pub async fn status(&self, job: JobId) -> Result<Option<(JobView, usize)>, NodeGone> {
        self.ask(|reply| Command::Status { job, reply }).await
    }

    /// Waits for a job submitted from this node to end.
    pub async fn wait(&self, job: JobId) -> JobOutcome {
        self.ask(|reply| Command::Wait { job, reply }).await?
    }

    /// How a job submitted from this node ended, if it has (and is still remembered).
    pub async fn outcome(&self, job: JobId) -> Result<Option<JobOutcome>, NodeGone> {
        self.ask(|reply| Command::Outcome { job, reply }).await
    }

    /// The mesh as this node sees it.
    pub async fn peers(&self) -> Result<MeshView, NodeGone> {
        self.ask(|reply| Command::Peers { reply }).await
    }

    /// A tracked job in detail (its tasks, tree, grid and why it is not moving).
    pub async fn detail(
        &self,
        job: JobId,
    ) -> Result<Option<(JobView, shoal_protocol::node::JobDetail)>, NodeGone> {
        self.ask(|reply| Command::Detail { job, reply }).await
    }

    /// The node's own figures.
    pub async fn snapshot(&self) -> Result<NodeSnapshot, NodeGone> {
        self.ask(|reply| Command::Snapshot { reply }).await
    }

    /// The node's metrics, in the Prometheus text format.
    pub async fn metrics_text(&self) -> Result<String, NodeGone> {
        let snap = self.snapshot().await?;
        Ok(self.metrics.encode(&snap))
    }

    /// The jobs this node tracks or remembers.
    pub async fn jobs(&self) -> Result<Vec<JobView>, NodeGone> {
        self.ask(|reply| Command::Jobs { reply }).await
    }

    /// Asks the node to stop.
    pub async fn shutdown(&self) {
        self.tell(Command::Shutdown).await;
    }
}
