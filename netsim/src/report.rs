//! What a run reports: outcome, invariant violations, cost, and cost against the models.

use serde::Serialize;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub seed: u64,
    pub nodes: usize,
    /// Map tasks over all jobs.
    pub tasks: u64,
    pub jobs: usize,
    pub faults: String,
    pub completed_jobs: usize,
    pub violations: Vec<String>,
    /// blake3 over every published message and delivery in order: equal for equal seeds.
    pub trace_hash: String,
    /// Simulated makespan: first submission to last completion.
    pub virtual_ms: u64,
    /// Virtual time simulated in all, joins included.
    pub simulated_ms: u64,
    /// Adverts each node received per second of virtual time while jobs ran (from the first
    /// submission on): the cost of keeping views fresh, which the protocol bounds.
    pub adverts_per_node_s: f64,
    /// Messages published (each is gossiped to the reachable listeners of its topic).
    pub messages: u64,
    /// Message deliveries (the receive side of gossip): each one decoded and handled by a
    /// protocol node.
    pub deliveries: u64,
    /// Publications and deliveries per kind of message (advert, announce, batch, pulse,
    /// finished).
    pub messages_by_kind: std::collections::BTreeMap<String, u64>,
    pub deliveries_by_kind: std::collections::BTreeMap<String, u64>,
    /// Estimated wire transmissions: each delivery plus the duplicate copies a gossipsub mesh
    /// of degree 6 sends along (dropped by the receiver).
    pub transmissions: u64,
    /// Bytes delivered.
    pub bytes: u64,
    pub wall_ms: u64,
    pub tree_depth: u32,
    /// Map and reduce tasks of one job.
    pub tree_tasks: u32,
    pub slots_total: u64,
    pub mean_task_ms: u64,
    /// Jobs whose result a liar corrupted: with one replica, lies reach the output (with two
    /// or more that would be a violation).
    pub corrupted_jobs: usize,
    /// Reduce inputs held as blobs (too large to travel in a message): read on the node that
    /// computed them, and fetched from another node.
    pub reduce_inputs_local: u64,
    pub reduce_inputs_fetched: u64,
    pub messages_per_task: f64,
    pub bytes_per_task: f64,
    pub messages_per_node: f64,
    pub deliveries_per_node: f64,
    /// ceil(log_fanin(map tasks)): the reduction rounds.
    pub reduction_rounds: u32,
    /// T_p * n + T_comm * (n - 1) with n the map tasks of one job: a sequential chain.
    pub model_sequential_ms: u64,
    /// ceil(tasks / slots) * T_p + rounds * (T_p + T_comm): perfect spreading plus the tree.
    pub model_parallel_ms: u64,
    /// Simulated deliveries per second of wall time.
    pub deliveries_per_wall_s: f64,
}

/// Mean one-way latency of the simulated gossip (two 10 ms hops on average).
const T_COMM_MS: u64 = 21;

impl Report {
    pub fn with_derived(mut self) -> Self {
        let tasks = self.tasks.max(1) as f64;
        let nodes = self.nodes.max(1) as f64;
        self.messages_per_task = self.messages as f64 / tasks;
        self.bytes_per_task = self.bytes as f64 / tasks;
        self.messages_per_node = self.messages as f64 / nodes;
        self.deliveries_per_node = self.deliveries as f64 / nodes;
        self.reduction_rounds = self.tree_depth;
        let n = self.tasks / self.jobs.max(1) as u64;
        self.model_sequential_ms = self.mean_task_ms * n + T_COMM_MS * n.saturating_sub(1);
        self.model_parallel_ms = self.tasks.div_ceil(self.slots_total.max(1)) * self.mean_task_ms
            + u64::from(self.tree_depth) * (self.mean_task_ms + T_COMM_MS);
        self.deliveries_per_wall_s = self.deliveries as f64 / (self.wall_ms.max(1) as f64 / 1000.0);
        self
    }

    pub fn ok(&self) -> bool {
        self.violations.is_empty()
    }
}
