//! The node's Prometheus metrics (`GET /metrics`, docs/api.md): counters the driver, the
//! fetcher and the blob server add to as things happen, gauges set from a snapshot of the
//! protocol machine at each scrape, and libp2p's own metrics. Every name starts with `shoal_`.

use crate::handle::NodeSnapshot;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Label of the per-operator families.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabel {
    pub op: String,
}

/// Labels of the gossip counters.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GossipLabel {
    pub direction: &'static str,
    pub kind: &'static str,
}

fn durations() -> Histogram {
    // 100 µs to about 30 minutes.
    Histogram::new(exponential_buckets(0.0001, 4.0, 13))
}

/// The node's metrics. Cheap to update from any thread.
pub struct Metrics {
    registry: Registry,
    /// libp2p's recorder, fed the swarm's events by the driver.
    pub libp2p: libp2p::metrics::Metrics,
    pub tasks_run: Family<OpLabel, Counter>,
    pub tasks_failed: Family<OpLabel, Counter>,
    pub tasks_reused: Family<OpLabel, Counter>,
    pub task_duration: Family<OpLabel, Histogram, fn() -> Histogram>,
    pub job_duration: Family<OpLabel, Histogram, fn() -> Histogram>,
    pub fetched_bytes: Counter,
    pub served_bytes: Counter,
    pub blob_refusals: Counter,
    /// Protocol messages sent and received on direct streams (see `crate::direct`).
    pub direct_sent: Counter,
    pub direct_received: Counter,
    /// Invalid messages and frames counted against the peers that sent them.
    pub offences: Counter,
    /// Set at each scrape from the protocol's totals.
    gossip: Family<GossipLabel, Counter>,
    invalid: Counter,
    peers: Gauge,
    jobs: Gauge,
    members: Gauge,
    store_bytes: Gauge,
    store_blobs: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("shoal");
        let tasks_run = Family::<OpLabel, Counter>::default();
        let tasks_failed = Family::<OpLabel, Counter>::default();
        let tasks_reused = Family::<OpLabel, Counter>::default();
        let task_duration: Family<OpLabel, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(durations);
        let job_duration: Family<OpLabel, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(durations);
        let gossip = Family::<GossipLabel, Counter>::default();
        let (fetched_bytes, served_bytes, blob_refusals, invalid) = Default::default();
        let (direct_sent, direct_received, offences) = Default::default();
        let (peers, jobs, members, store_bytes, store_blobs) = Default::default();
        r.register(
            "tasks_run",
            "Tasks this node ran to a result",
            tasks_run.clone(),
        );
        r.register(
            "tasks_failed",
            "Tasks that failed here (the operator's error)",
            tasks_failed.clone(),
        );
        r.register(
            "tasks_reused",
            "Tasks completed from a known result without running",
            tasks_reused.clone(),
        );
        r.register(
            "task_duration_seconds",
            "Run time of the tasks this node ran",
            task_duration.clone(),
        );
        r.register(
            "job_duration_seconds",
            "Submission to result, of jobs submitted here",
            job_duration.clone(),
        );
        let counters: [(&str, &str, &Counter); 7] = [
            (
                "fetched_bytes",
                "Blob bytes fetched from peers (verified)",
                &fetched_bytes,
            ),
            ("served_bytes", "Blob bytes served to peers", &served_bytes),
            (
                "blob_requests_refused",
                "Blob requests refused (the asker is not a member of a job using the blob)",
                &blob_refusals,
            ),
            (
                "invalid_messages",
                "Messages dropped because they did not decode or validate",
                &invalid,
            ),
            (
                "direct_messages_sent",
                "Protocol messages sent on direct streams instead of gossip (a small, fully connected mesh)",
                &direct_sent,
            ),
            (
                "direct_messages_received",
                "Protocol messages received on direct streams",
                &direct_received,
            ),
            (
                "peer_offences",
                "Invalid messages and malformed frames counted against the peers that sent them (gossip or direct streams)",
                &offences,
            ),
        ];
        for (name, help, counter) in counters {
            r.register(name, help, counter.clone());
        }
        r.register(
            "gossip_messages",
            "Protocol messages by direction and kind",
            gossip.clone(),
        );
        let gauges: [(&str, &str, &Gauge); 5] = [
            ("peers", "Live peers in this node's view", &peers),
            ("jobs", "Jobs this node tracks", &jobs),
            (
                "job_members",
                "Members of the jobs this node tracks, summed",
                &members,
            ),
            (
                "blob_store_bytes",
                "Bytes of blobs held in memory",
                &store_bytes,
            ),
            (
                "blob_store_blobs",
                "Blobs held (in memory or as ranges of local files)",
                &store_blobs,
            ),
        ];
        for (name, help, gauge) in gauges {
            r.register(name, help, gauge.clone());
        }
        // libp2p prefixes its own names with `libp2p_`.
        let libp2p = libp2p::metrics::Metrics::new(&mut r);
        Self {
            registry: r,
            libp2p,
            tasks_run,
            tasks_failed,
            tasks_reused,
            task_duration,
            job_duration,
            fetched_bytes,
            served_bytes,
            blob_refusals,
            direct_sent,
            direct_received,
            offences,
            gossip,
            invalid,
            peers,
            jobs,
            members,
            store_bytes,
            store_blobs,
        }
    }

    /// The text exposition, with the gauges and totals set from `snap`.
    pub fn encode(&self, snap: &NodeSnapshot) -> String {
        use shoal_protocol::wire::MESSAGE_KINDS;
        for (i, kind) in MESSAGE_KINDS.iter().enumerate() {
            for (direction, totals) in [
                ("in", &snap.stats.in_by_kind),
                ("out", &snap.stats.out_by_kind),
            ] {
                let counter = self.gossip.get_or_create(&GossipLabel { direction, kind });
                set_counter(&counter, totals[i]);
            }
        }
        set_counter(&self.invalid, snap.stats.invalid_messages);
        set_counter(&self.blob_refusals, snap.serve.refused);
        self.peers.set(snap.peers as i64);
        self.jobs.set(snap.jobs as i64);
        self.members.set(snap.members as i64);
        self.store_bytes.set(snap.store_bytes as i64);
        self.store_blobs.set(snap.store_blobs as i64);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }

    /// Counts a finished task of operator `op` that ran for `run_us` (a run of `tasks` tiny
    /// tasks counts for each of them, and once in the durations).
    pub fn task(&self, op: &str, tasks: u32, ok: bool, run_us: u64) {
        let label = OpLabel { op: op.to_string() };
        if ok {
            self.tasks_run
                .get_or_create(&label)
                .inc_by(u64::from(tasks));
            self.task_duration
                .get_or_create(&label)
                .observe(run_us as f64 / 1e6);
        } else {
            self.tasks_failed
                .get_or_create(&label)
                .inc_by(u64::from(tasks));
        }
    }
}

/// Raises a counter to `total` (the protocol keeps totals; Prometheus counters only grow).
fn set_counter(counter: &Counter, total: u64) {
    let now = counter.get();
    if total > now {
        counter.inc_by(total - now);
    }
}
