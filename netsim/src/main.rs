//! `shoal-netsim`: run seeds of the deterministic simulation and report.
//!
//! ```text
//! cargo run --release -p shoal-netsim -- --nodes 200 --tasks 2000 --seed 1 --seeds 50 --faults all
//! ```

use clap::Parser;
use shoal_netsim::{Faults, Report, SimConfig};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "shoal-netsim",
    about = "Deterministic simulation of a Shoal mesh"
)]
struct Args {
    /// Number of nodes.
    #[arg(long, default_value_t = 50)]
    nodes: usize,
    /// Map tasks per job.
    #[arg(long, default_value_t = 1000)]
    tasks: u32,
    /// Jobs, submitted from random nodes a quarter second apart.
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// Reduction fan-in.
    #[arg(long, default_value_t = 4)]
    fanin: u32,
    /// First seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Number of seeds to run: seed, seed+1, ...
    #[arg(long, default_value_t = 1)]
    seeds: u64,
    /// Faults: none, all, or a comma-separated list of latency, loss, duplication, reordering,
    /// partitions, crashes, restarts, slow, submitter-leaves.
    #[arg(long, default_value = "all", value_parser = Faults::parse)]
    faults: Faults,
    /// Mean task run time (ms).
    #[arg(long, default_value_t = 20)]
    task_ms: u64,
    /// Window (ms) in which the nodes join; 0: 2 s, or 1 s per 1000 nodes in a larger mesh.
    #[arg(long, default_value_t = 0)]
    join_ms: u64,
    /// Time (ms) from the last join to the first submission.
    #[arg(long, default_value_t = 1_500)]
    settle_ms: u64,
    /// Safety phase length (ms of virtual time, faults on); 0: three times the expected
    /// makespan.
    #[arg(long, default_value_t = 0)]
    safety_ms: u64,
    /// Bound (ms of virtual time) within which every job that can finish must finish after
    /// faults stop.
    #[arg(long, default_value_t = 120_000)]
    liveness_ms: u64,
    /// Percentage of nodes that run only their own jobs (they must decline all others).
    #[arg(long, default_value_t = 0)]
    restricted_pct: u32,
    /// Distinct members whose results must agree for each task (1 to 5).
    #[arg(long, default_value_t = 1)]
    replicas: u8,
    /// With one replica: the fraction of tasks (0 to 1) whose first result a second member
    /// checks.
    #[arg(long, default_value_t = 0.0)]
    verify_fraction: f64,
    /// Percentage of nodes that lie: corrupt results, forged claims and completions, replays,
    /// malformed messages. With --replicas 2 or more every finished job must still be exact.
    #[arg(long, default_value_t = 0)]
    byzantine_pct: u32,
    /// Scheduling mode: node tags and memory, job priorities and needs (tag=gpu, mem=1GiB),
    /// and pipeline stages (a job that starts once the jobs it depends on are complete). Checks
    /// that no task runs on a node lacking a need, that no node starts a lower-priority task
    /// while holding a startable claim of a higher-priority job, and that no stage starts early.
    #[arg(long)]
    scheduling: bool,
    /// Durable mode: jobs keep this many copies of their input and output (1 to 8). With 2
    /// or more, the first job's submitter leaves for good at a random time after the detach
    /// point, no run is excused for lost input, and every job's result must be readable on a
    /// node that did not submit it.
    #[arg(long, default_value_t = 1)]
    copies: u8,
    /// Dataset mode: each job reads a dataset of several parts, each held by one or two
    /// nodes other than its submitter. Checks that a map task runs on a holder of its part
    /// while one is live and in the job (save after the locality wait), and that a job fails
    /// for a lost part only when every holder of that part went down or was cut off.
    #[arg(long)]
    datasets: bool,
    /// Tiny mode: each job sums the squares of --tasks numbers, one a task, so the protocol
    /// claims its map tasks in runs (a subtree of the tree each; each run takes --task-ms).
    /// Compared with the same --tasks without it (file chunks, claimed one by one), shows
    /// the messages runs save.
    #[arg(long, conflicts_with = "datasets")]
    tiny: bool,
    /// Grep mode: each job counts the lines holding "1" in its chunks. A search costs less than
    /// sending its input, so its map tasks stay with the submitter: checks that no other node
    /// starts one before the locality wait while the submitter is up and the run fault-free.
    #[arg(long, conflicts_with_all = ["datasets", "tiny"])]
    grep: bool,
    /// Jobs do not look up earlier results (`shoal submit --no-reuse`): a job of few enough
    /// tasks then runs on its submitter alone, off the wire (the real-time path).
    #[arg(long)]
    no_reuse: bool,
    /// Every job takes the mesh path, however small: with --no-reuse, shows the messages the
    /// real-time path saves.
    #[arg(long)]
    no_local_path: bool,
    /// Reduces of dataset jobs go by rank alone, not first to the member holding most of
    /// their inputs: with --datasets, shows the partial results that rule keeps home.
    #[arg(long)]
    no_reduce_near_inputs: bool,
    /// Run every seed twice and fail if the traces differ.
    #[arg(long)]
    check_determinism: bool,
    /// Print one JSON object per seed.
    #[arg(long)]
    json: bool,
    /// Worker threads (seeds run in parallel; each run is single-threaded and deterministic).
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

impl Args {
    fn config(&self, seed: u64) -> SimConfig {
        SimConfig {
            nodes: self.nodes.max(1),
            tasks: self.tasks.max(1),
            jobs: self.jobs.max(1),
            fanin: self.fanin,
            seed,
            faults: self.faults,
            task_ms: self.task_ms,
            join_spread_ms: self.join_ms,
            settle_ms: self.settle_ms,
            safety_ms: self.safety_ms,
            liveness_ms: self.liveness_ms,
            restricted_pct: self.restricted_pct.min(100),
            replicas: self.replicas,
            verify_ppm: (self.verify_fraction.clamp(0.0, 1.0) * 1e6).round() as u32,
            byzantine_pct: self.byzantine_pct.min(100),
            scheduling: self.scheduling,
            copies: self.copies,
            datasets: self.datasets,
            tiny: self.tiny,
            grep: self.grep,
            reuse: !self.no_reuse,
            local_path: !self.no_local_path,
            reduce_near_inputs: !self.no_reduce_near_inputs,
        }
    }

    fn replay(&self, seed: u64) -> String {
        format!(
            "cargo run --release -p shoal-netsim -- --nodes {} --tasks {} --jobs {} --fanin {} --seed {seed} --faults {} --task-ms {} --join-ms {} --settle-ms {} --safety-ms {} --liveness-ms {} --restricted-pct {} --replicas {} --verify-fraction {} --byzantine-pct {} --copies {}{}{}{}{}{}{}{}",
            self.nodes,
            self.tasks,
            self.jobs,
            self.fanin,
            self.faults,
            self.task_ms,
            self.join_ms,
            self.settle_ms,
            self.safety_ms,
            self.liveness_ms,
            self.restricted_pct,
            self.replicas,
            self.verify_fraction,
            self.byzantine_pct,
            self.copies,
            if self.scheduling { " --scheduling" } else { "" },
            if self.datasets { " --datasets" } else { "" },
            if self.tiny { " --tiny" } else { "" },
            if self.grep { " --grep" } else { "" },
            if self.no_reuse { " --no-reuse" } else { "" },
            if self.no_local_path {
                " --no-local-path"
            } else {
                ""
            },
            if self.no_reduce_near_inputs {
                " --no-reduce-near-inputs"
            } else {
                ""
            }
        )
    }
}

fn run_seed(args: &Args, seed: u64) -> Report {
    let mut report = shoal_netsim::run(args.config(seed));
    if args.check_determinism {
        let again = shoal_netsim::run(args.config(seed));
        if again.trace_hash != report.trace_hash {
            report.violations.push(format!(
                "determinism: the same seed gave trace {} and then {}",
                report.trace_hash, again.trace_hash
            ));
        }
    }
    report
}

fn main() -> ExitCode {
    let args = Args::parse();
    if !(shoal_protocol::job::FANIN_MIN..=shoal_protocol::job::FANIN_MAX).contains(&args.fanin) {
        eprintln!("error: --fanin must be between 2 and 64");
        return ExitCode::from(2);
    }
    let seeds: Vec<u64> = (args.seed..args.seed + args.seeds).collect();
    let threads = args.threads.clamp(1, 64);
    let mut reports: Vec<Report> = Vec::with_capacity(seeds.len());
    std::thread::scope(|scope| {
        let chunks: Vec<Vec<u64>> = (0..threads)
            .map(|t| seeds.iter().copied().skip(t).step_by(threads).collect())
            .collect();
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                let args = &args;
                scope.spawn(move || {
                    chunk
                        .into_iter()
                        .map(|s| run_seed(args, s))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            reports.extend(h.join().expect("a simulation thread panicked"));
        }
    });
    reports.sort_by_key(|r| r.seed);
    let mut failed = 0;
    for r in &reports {
        if args.json {
            println!("{}", serde_json::to_string(r).expect("serializable"));
        } else {
            println!(
                "seed {:>6}: {} nodes, {} tasks, {}/{} jobs done, {} violations, virtual {} ms, {} msgs ({:.2}/task), {} deliveries, {:.1} MB, wall {} ms, trace {}",
                r.seed,
                r.nodes,
                r.tasks,
                r.completed_jobs,
                r.jobs,
                r.violations.len(),
                r.virtual_ms,
                r.messages,
                r.messages_per_task,
                r.deliveries,
                r.bytes as f64 / 1e6,
                r.wall_ms,
                &r.trace_hash[..16]
            );
        }
        if !r.ok() {
            failed += 1;
            for v in &r.violations {
                eprintln!("seed {}: VIOLATION: {v}", r.seed);
            }
            eprintln!("replay: {}", args.replay(r.seed));
        }
    }
    let total_deliveries: u64 = reports.iter().map(|r| r.deliveries).sum();
    let total_wall: u64 = reports.iter().map(|r| r.wall_ms).sum();
    eprintln!(
        "{} passed, {} failed ({} seeds, {:.0} deliveries per wall second per thread)",
        reports.len() - failed,
        failed,
        reports.len(),
        total_deliveries as f64 / (total_wall.max(1) as f64 / 1000.0)
    );
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
