//! What a simulation run looks like: sizes, timing, and which faults are on.

use std::fmt;

/// The faults a run can inject. Each is switched on or off; all are driven by the seed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Faults {
    /// Per-link latency drawn from a wide distribution (else a fixed 1 ms).
    pub latency: bool,
    /// 2% of deliveries dropped during the safety phase.
    pub loss: bool,
    /// 1% of deliveries delivered twice.
    pub duplication: bool,
    /// 5% of deliveries held back by up to 200 ms, overtaking later ones.
    pub reordering: bool,
    /// Partitions (one node cut off, halves, a minority) that heal.
    pub partitions: bool,
    /// About 5% of nodes crash during the safety phase.
    pub crashes: bool,
    /// Crashed nodes come back (same id, empty state) after 1–5 s.
    pub restarts: bool,
    /// 10% of nodes run tasks 5x slower.
    pub slow: bool,
    /// The first job's submitter leaves for good once every map task has run (in durable
    /// mode: at a random time after the detach point).
    pub submitter_leaves: bool,
}

/// Names accepted by `--faults`, in order.
pub const FAULT_NAMES: [&str; 9] = [
    "latency",
    "loss",
    "duplication",
    "reordering",
    "partitions",
    "crashes",
    "restarts",
    "slow",
    "submitter-leaves",
];

impl Faults {
    pub fn all() -> Self {
        Self {
            latency: true,
            loss: true,
            duplication: true,
            reordering: true,
            partitions: true,
            crashes: true,
            restarts: true,
            slow: true,
            submitter_leaves: true,
        }
    }

    fn flag(&mut self, name: &str) -> Option<&mut bool> {
        Some(match name {
            "latency" => &mut self.latency,
            "loss" => &mut self.loss,
            "duplication" => &mut self.duplication,
            "reordering" => &mut self.reordering,
            "partitions" => &mut self.partitions,
            "crashes" => &mut self.crashes,
            "restarts" => &mut self.restarts,
            "slow" => &mut self.slow,
            "submitter-leaves" => &mut self.submitter_leaves,
            _ => return None,
        })
    }

    /// Parses `none`, `all`, or a comma-separated list of [`FAULT_NAMES`].
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "none" => return Ok(Self::default()),
            "all" => return Ok(Self::all()),
            _ => {}
        }
        let mut f = Self::default();
        for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let flag = f.flag(name).ok_or_else(|| {
                format!(
                    "unknown fault '{name}'; use none, all, or a list of: {}",
                    FAULT_NAMES.join(", ")
                )
            })?;
            *flag = true;
        }
        Ok(f)
    }
}

impl fmt::Display for Faults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut copy = *self;
        let on: Vec<&str> = FAULT_NAMES
            .iter()
            .copied()
            .filter(|n| *copy.flag(n).expect("known name"))
            .collect();
        if on.is_empty() {
            f.write_str("none")
        } else if on.len() == FAULT_NAMES.len() {
            f.write_str("all")
        } else {
            f.write_str(&on.join(","))
        }
    }
}

/// One simulation run.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub nodes: usize,
    /// Map tasks per job.
    pub tasks: u32,
    pub jobs: usize,
    pub fanin: u32,
    pub seed: u64,
    pub faults: Faults,
    /// Nodes join at random times within this window; 0 picks 2 s, or one second per 1000
    /// nodes in a larger mesh (a mesh does not boot ten thousand nodes in one instant).
    pub join_spread_ms: u64,
    /// Time from the end of the joins to the first submission, for the views to settle.
    pub settle_ms: u64,
    /// Length of the safety phase (faults on), counted from the first submission; 0 picks
    /// three times the expected makespan, so that faults land while the jobs run.
    pub safety_ms: u64,
    /// After faults stop, every job that can finish must finish within this bound.
    pub liveness_ms: u64,
    /// Mean task run time.
    pub task_ms: u64,
    /// Percentage of nodes that run only their own jobs (`--submitters` listing nobody): they
    /// must decline every other job and never run its tasks.
    pub restricted_pct: u32,
    /// Distinct members whose results must agree for each task (`shoal submit --replicas`).
    pub replicas: u8,
    /// Spot checks (`shoal submit --verify-fraction`), in parts per million of the tasks.
    pub verify_ppm: u32,
    /// Percentage of nodes that lie (see [`crate::byzantine`]); job submitters never do.
    pub byzantine_pct: u32,
    /// Scheduling mode: nodes get tags and memory sizes, jobs priorities and needs, and some
    /// jobs take the output of earlier ones as pipeline stages (see [`crate::sim`]).
    pub scheduling: bool,
    /// Durable mode with 2 or more (see [`crate::sim`]): copies of each job's input and output.
    pub copies: u8,
    /// Dataset mode (see [`crate::datasets`]): jobs read shared datasets whose parts other
    /// nodes hold, and their map tasks go to the parts' holders first.
    pub datasets: bool,
    /// Tiny mode: each job is a sum of squares over `tasks` numbers, one a task, whose map
    /// tasks the protocol claims in runs (`shoal_protocol::runs`); each run takes `task_ms`.
    pub tiny: bool,
    /// Grep mode: each job counts the lines holding "1" in its chunks, an operator whose map
    /// tasks stay with the submitter (`shoal_protocol::locality::kept_at_submitter`).
    pub grep: bool,
    /// Whether jobs look up earlier results before computing (`shoal submit --no-reuse` turns
    /// it off). A job that does stays off the real-time path.
    pub reuse: bool,
    /// Whether small jobs may run on their submitter alone (the protocol's
    /// [`shoal_protocol::Config::local_path`]); off, every job takes the mesh path, which is
    /// how a run measures the messages that path saves.
    pub local_path: bool,
    /// Whether a reduce of a dataset job goes first to the member that holds most of its
    /// inputs (the protocol's [`shoal_protocol::Config::reduce_near_inputs`]); off, the rank
    /// alone decides, which is how a run measures the partial results that rule keeps home.
    pub reduce_near_inputs: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            nodes: 50,
            tasks: 1000,
            jobs: 1,
            fanin: 4,
            seed: 1,
            faults: Faults::all(),
            join_spread_ms: 0,
            settle_ms: 1_500,
            safety_ms: 0,
            liveness_ms: 120_000,
            task_ms: 20,
            restricted_pct: 0,
            replicas: 1,
            verify_ppm: 0,
            byzantine_pct: 0,
            scheduling: false,
            copies: 1,
            datasets: false,
            tiny: false,
            grep: false,
            reuse: true,
            local_path: true,
            reduce_near_inputs: true,
        }
    }
}

impl SimConfig {
    /// The join window actually used.
    pub fn join_window_ms(&self) -> u64 {
        if self.join_spread_ms > 0 {
            self.join_spread_ms
        } else {
            (self.nodes as u64).max(2_000)
        }
    }

    /// Nodes one job can use: the mesh, up to the protocol's members per job.
    pub fn workers_per_job(&self) -> usize {
        self.nodes
            .min(shoal_protocol::Config::default().job_members_max)
            .max(1)
    }

    /// The safety phase actually used: the configured one, or three times a rough makespan
    /// estimate (tasks spread over about 2.5 slots a worker, plus the reduction rounds).
    pub fn safety_phase_ms(&self) -> u64 {
        if self.safety_ms > 0 {
            return self.safety_ms;
        }
        let slots = (self.workers_per_job() as u64 * self.jobs as u64 * 5 / 2).max(1);
        let total = u64::from(self.tasks) * self.jobs as u64;
        let depth = u64::from(
            shoal_protocol::tree::Tree::new(self.tasks.max(1), self.fanin.max(2)).depth(),
        );
        let estimate = total.div_ceil(slots) * self.task_ms + depth * (self.task_ms + 50) + 1_000;
        3 * estimate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_lists_parse_and_print_back() {
        let f = Faults::parse("loss,crashes").unwrap();
        assert!(f.loss && f.crashes && !f.partitions);
        assert_eq!(f.to_string(), "loss,crashes");
        assert_eq!(Faults::parse("all").unwrap().to_string(), "all");
        assert!(Faults::parse("loss,typo").is_err());
    }
}
