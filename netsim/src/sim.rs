//! The simulator: many protocol nodes on the shared harness
//! ([`shoal_protocol::harness`]), one seed, a gossip model with faults, and the checks.
//!
//! Every node is the real `shoal_protocol::Node`, driven by the same harness the state-machine
//! tests use; this module is the harness's [`Env`]: the network model, task execution, the
//! fault schedule and the bookkeeping the checks need. Gossip is modelled per topic
//! ([`crate::gossip`]): a message reaches the nodes subscribed to its topic after a few hops
//! of a link each; bytes are the real encoded messages. Each published message is decoded and
//! validated once and the decoded message handed to every receiver (they would all decode the
//! same bytes). Tasks take simulated time and compute real results: the job is a word count
//! over generated chunks where chunk `i` is the line `p{i}`, so the final result lists every
//! partition with the count of times it was counted, and the reference requires exactly one.

use crate::byzantine::{self, ReplayPool};
use crate::config::SimConfig;
use crate::datasets;
use crate::gossip;
use crate::report::Report;
use crate::scheduling;
use shoal_ops::{self as ops, MapInput, SplitMix64};
use shoal_protocol::durable::OutputRef;
use shoal_protocol::harness::{Env, Harness, Published};
use shoal_protocol::pipeline::{Plan, StageState};
use shoal_protocol::wire::{InvalidMessage, ResultRef};
use shoal_protocol::{
    BlobHash, Capacity, Config, Input, JobId, JobSpec, MapSource, Millis, Node, NodeId, Operator,
    ResultStatus, TaskOutcome, TaskRun, Work,
};
use std::rc::Rc;
use std::time::Instant;

/// Durable mode: how long a run goes on after its last job finished, for every keeper to hear
/// how it ended (see `World::check_keepers`).
const SETTLE_MS: Millis = 10_000;

/// Grep mode: the lines "p{i}" of a job's chunks that its jobs count.
const GREP_PATTERN: &str = "1";

/// The simulator's own events: joins, submissions and the fault schedule.
pub enum Fault {
    Join {
        node: u32,
    },
    Submit {
        job: u32,
    },
    Crash {
        node: u32,
        restart_after: Option<Millis>,
    },
    Restart {
        node: u32,
    },
    Partition {
        groups: Box<[u32]>,
        heal_after: Millis,
    },
    Heal,
    /// Liar `from` sends malformed bytes to `to`.
    Garbage {
        from: u32,
        to: u32,
    },
}

/// What the simulator knows of a node besides its protocol state (which the harness holds).
struct SimNode {
    id: NodeId,
    slow: bool,
    slots: u32,
    /// Partition group; nodes talk only within their group.
    group: u32,
    /// Runs only its own jobs (declines every other).
    restricted: bool,
    /// A liar, and its ordinal among the liars ([`crate::byzantine`]).
    liar: Option<u32>,
    /// What it advertises: tags (scheduling mode) and memory.
    tags: Vec<String>,
    mem_mb: u64,
}

struct JobTrack {
    spec: JobSpec,
    id: JobId,
    submitter: usize,
    submitted_at: Option<Millis>,
    finished_at: Option<Millis>,
    output: Option<Vec<u8>>,
    failed: Option<String>,
    /// A map task found its input gone (the submitter left): the job may be unable to finish.
    input_missing: bool,
    /// Jobs whose output this one takes as a pipeline stage (scheduling mode).
    deps: Vec<usize>,
    /// Dataset mode: each part's holders, by node index.
    part_holders: Vec<Vec<usize>>,
}

/// A simulation in progress.
pub struct Sim {
    h: Harness<Fault>,
    w: World,
}

/// The harness's environment: the network model, the faults, the jobs and the counters.
struct World {
    cfg: SimConfig,
    rng: SplitMix64,
    nodes: Vec<SimNode>,
    jobs: Vec<JobTrack>,
    partitioned: bool,
    faults_on: bool,
    inline_max: usize,
    trace: blake3::Hasher,
    /// Deliveries folded into one word (hashing each into `trace` would cost more than the
    /// delivery itself); added to the trace at the end.
    delivery_trace: u64,
    messages: u64,
    deliveries: u64,
    /// Publications and deliveries per kind of message, in [`KINDS`] order.
    messages_by_kind: [u64; KINDS.len()],
    deliveries_by_kind: [u64; KINDS.len()],
    /// Advert deliveries since the first submission: the mesh's upkeep while jobs run.
    adverts_since_submit: u64,
    transmissions: u64,
    bytes: u64,
    violations: Vec<String>,
    first_submit: Option<Millis>,
    submitter_left: bool,
    /// Nodes that have crashed at least once, and whether the mesh was ever partitioned.
    down: Vec<bool>,
    ever_partitioned: bool,
    /// Durable mode: pieces of input held, by (node, incarnation, job, piece).
    held: std::collections::HashSet<(usize, u32, JobId, u32)>,
    /// Durable mode: outputs kept, by (node, incarnation, job), with their content address.
    kept: std::collections::HashMap<(usize, u32, JobId), (OutputRef, Vec<u8>)>,
    /// Publications liars replay (kept only when there are liars).
    replays: ReplayPool,
    /// Ids of forged publications, counting down from the top.
    forged_id: u64,
    /// Jobs whose result a liar corrupted (expected with one replica).
    corrupted: usize,
    /// Reduce inputs held as blobs, read where they were (`.0`) and fetched from another
    /// node (`.1`).
    reduce_inputs: (u64, u64),
    /// The jobs as pipeline stages (scheduling mode): a job is submitted once the jobs it
    /// depends on are complete.
    plan: Option<Plan>,
}

/// The kinds of message, as reported.
pub use shoal_protocol::wire::MESSAGE_KINDS as KINDS;

fn node_id(i: usize) -> NodeId {
    NodeId::from_identity_bytes(format!("sim-node-{i}").as_bytes())
}

/// A job's name as a pipeline stage: zero-padded, so that the plan's (sorted) order is the
/// jobs' order.
fn stage_name(job: usize) -> String {
    format!("job{job:05}")
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Sim {
    pub fn new(cfg: SimConfig) -> Self {
        let mut rng = SplitMix64(cfg.seed ^ 0x5EED_0F51_10A1);
        let nodes: Vec<SimNode> = (0..cfg.nodes)
            .map(|i| SimNode {
                id: node_id(i),
                slow: cfg.faults.slow && rng.next_u64().is_multiple_of(10),
                slots: 1 + (rng.next_u64() % 4) as u32,
                group: 0,
                restricted: cfg.restricted_pct > 0
                    && rng.next_u64() % 100 < u64::from(cfg.restricted_pct),
                liar: None,
                tags: Vec::new(),
                mem_mb: 1024,
            })
            .collect();
        let mut nodes = nodes;
        if cfg.scheduling {
            for (i, n) in nodes.iter_mut().enumerate() {
                (n.tags, n.mem_mb) = scheduling::node_resources(&mut rng, i);
            }
        }
        if cfg.byzantine_pct > 0 {
            let mut ordinal = 0;
            for n in &mut nodes {
                if rng.next_u64() % 100 < u64::from(cfg.byzantine_pct) {
                    n.liar = Some(ordinal);
                    ordinal += 1;
                }
            }
        }
        // Half the seeds keep every result as a blob, so that results die with their holders.
        let inline_max = if rng.next_u64().is_multiple_of(2) {
            0
        } else {
            shoal_protocol::wire::INLINE_RESULT_MAX
        };
        let mut sim = Self {
            h: Harness::new(cfg.nodes),
            w: World {
                cfg,
                rng,
                nodes,
                jobs: Vec::new(),
                partitioned: false,
                faults_on: true,
                inline_max,
                trace: blake3::Hasher::new(),
                delivery_trace: 0,
                messages: 0,
                deliveries: 0,
                messages_by_kind: [0; KINDS.len()],
                deliveries_by_kind: [0; KINDS.len()],
                adverts_since_submit: 0,
                transmissions: 0,
                bytes: 0,
                violations: Vec::new(),
                first_submit: None,
                submitter_left: false,
                down: Vec::new(),
                ever_partitioned: false,
                kept: Default::default(),
                held: Default::default(),
                replays: ReplayPool::default(),
                forged_id: u64::MAX,
                corrupted: 0,
                reduce_inputs: (0, 0),
                plan: None,
            },
        };
        sim.w.schedule(&mut sim.h);
        sim
    }

    /// Runs the simulation to its end and checks the invariants.
    pub fn run(mut self) -> Report {
        let wall = Instant::now();
        let mut deadline: Option<Millis> = None;
        let mut next_read = 0;
        let mut settled: Option<Millis> = None;
        while let Some(event) = self.h.next_event(deadline.unwrap_or(Millis::MAX)) {
            self.h.handle(event, &mut self.w);
            if self.w.durable() && self.h.now() >= next_read {
                // A durable job is done once its result can be read away from its submitter.
                next_read = self.h.now() + 500;
                for j in 0..self.w.jobs.len() {
                    self.w.finished(&self.h, j);
                }
            }
            if self.w.jobs.iter().all(|j| j.output.is_some()) {
                if !self.w.durable() {
                    break; // every job finished: nothing left to check
                }
                // Durable mode: the keepers' view of the end must settle too (see
                // `World::check_keepers`).
                let settle = *settled.get_or_insert(self.h.now() + SETTLE_MS);
                deadline = Some(deadline.map_or(settle, |d| d.min(settle)));
                continue;
            }
            if !self.w.faults_on {
                deadline.get_or_insert(self.h.now() + self.w.cfg.liveness_ms);
                if (0..self.w.jobs.len())
                    .all(|j| self.w.jobs[j].output.is_some() || !self.w.can_finish(&self.h, j))
                {
                    break;
                }
            }
        }
        self.w.check(&self.h);
        self.w
            .into_report(&self.h, wall.elapsed().as_millis() as u64)
    }
}

impl World {
    fn rand(&mut self, n: u64) -> u64 {
        self.rng.next_u64() % n.max(1)
    }

    /// Lays out joins, submissions and the fault schedule, all from the seed.
    fn schedule(&mut self, h: &mut Harness<Fault>) {
        let n = self.cfg.nodes;
        for node in 0..n {
            let at = if node == 0 {
                0
            } else {
                self.rand(self.cfg.join_window_ms())
            };
            h.schedule(at, Fault::Join { node: node as u32 });
        }
        let start = self.cfg.join_window_ms() + self.cfg.settle_ms;
        self.down = vec![false; n];
        for job in 0..self.cfg.jobs {
            let submitter = self.rand(n as u64) as usize;
            let (input, part_holders) = if self.cfg.datasets {
                // Honest, unrestricted nodes other than the submitter hold the parts.
                let eligible: Vec<usize> = (0..n)
                    .filter(|&i| {
                        i != submitter && !self.nodes[i].restricted && self.nodes[i].liar.is_none()
                    })
                    .collect();
                let ids: Vec<NodeId> = self.nodes.iter().map(|n| n.id).collect();
                let (d, holders) =
                    datasets::draw(&mut self.rng, job, self.cfg.tasks, &eligible, &ids);
                (Input::Dataset(d), holders)
            } else if self.cfg.tiny {
                let (start, end) = self.tiny_range(job);
                let input = Input::Range {
                    start,
                    end,
                    tasks: self.cfg.tasks,
                };
                (input, Vec::new())
            } else {
                let input = Input::Chunks {
                    manifest: BlobHash::of(format!("sim-job-{job}").as_bytes()),
                    chunks: self.cfg.tasks,
                    bytes: 0,
                };
                (input, Vec::new())
            };
            let spec = JobSpec {
                op: if self.cfg.tiny {
                    Operator::SumSq
                } else if self.cfg.grep {
                    Operator::Grep {
                        pattern: GREP_PATTERN.into(),
                    }
                } else {
                    Operator::WordCount
                },
                input,
                fanin: self.cfg.fanin,
                trust: shoal_protocol::Trust {
                    replicas: self.cfg.replicas,
                    verify_ppm: self.cfg.verify_ppm,
                },
                sched: if self.cfg.scheduling {
                    scheduling::job_schedule(&mut self.rng)
                } else {
                    Default::default()
                },
                // Submitted as `--detach` does: the submitter may leave at any time after.
                keep: shoal_protocol::durable::Durability {
                    copies: self.cfg.copies.max(1),
                    detached: true,
                },
                reuse: self.cfg.reuse,
            };
            let deps = if self.cfg.scheduling {
                scheduling::job_deps(&mut self.rng, job)
            } else {
                Vec::new()
            };
            // A submitter trusts itself: liars are other people's machines.
            self.nodes[submitter].liar = None;
            self.jobs.push(JobTrack {
                id: spec.id(),
                spec,
                submitter,
                submitted_at: None,
                finished_at: None,
                output: None,
                failed: None,
                input_missing: false,
                deps,
                part_holders,
            });
            h.schedule(start + job as u64 * 250, Fault::Submit { job: job as u32 });
        }
        if self.cfg.scheduling {
            let graph = self
                .jobs
                .iter()
                .enumerate()
                .map(|(j, t)| {
                    (
                        stage_name(j),
                        t.deps.iter().map(|&d| stage_name(d)).collect(),
                    )
                })
                .collect();
            self.plan = Some(Plan::new(&graph).expect("earlier jobs only: no cycle"));
        }
        let f = self.cfg.faults;
        let safety = self.cfg.safety_phase_ms();
        let safety_end = start + safety;
        let submitters: Vec<usize> = self.jobs.iter().map(|j| j.submitter).collect();
        if f.crashes {
            for _ in 0..(n / 20).max(1) {
                let node = self.rand(n as u64) as usize;
                if submitters.contains(&node) && n > submitters.len() + 1 {
                    continue;
                }
                let at = start + self.rand(safety);
                let restart_after = f.restarts.then(|| 200 + self.rand(safety / 3));
                h.schedule(
                    at,
                    Fault::Crash {
                        node: node as u32,
                        restart_after,
                    },
                );
            }
        }
        if f.partitions {
            let count = 1 + self.rand(3);
            for _ in 0..count {
                let at = start + self.rand(safety);
                let groups: Box<[u32]> = match self.rand(3) {
                    0 => {
                        let lone = self.rand(n as u64) as usize;
                        (0..n).map(|i| u32::from(i == lone)).collect()
                    }
                    1 => (0..n).map(|i| u32::from(i >= n / 2)).collect(),
                    _ => (0..n).map(|_| u32::from(self.rand(10) < 3)).collect(),
                };
                let heal_after = 200 + self.rand(safety / 3);
                h.schedule(at, Fault::Partition { groups, heal_after });
            }
        }
        let liars: Vec<u32> = (0..n as u32)
            .filter(|&i| self.nodes[i as usize].liar.is_some())
            .collect();
        for from in liars {
            for _ in 0..3 {
                let at = start + self.rand(safety);
                let to = self.rand(n as u64) as u32;
                h.schedule(at, Fault::Garbage { from, to });
            }
        }
        // Faults stop here: heal everything; the liveness phase begins.
        h.schedule(safety_end, Fault::Heal);
    }

    fn reachable(&self, a: usize, b: usize) -> bool {
        !self.partitioned || self.nodes[a].group == self.nodes[b].group
    }

    /// One message's trip to a listener: `hops` hops of a 1-20 ms link each (1 ms flat
    /// without the latency fault).
    fn latency(&mut self, depth: u64) -> Millis {
        if !self.cfg.faults.latency {
            return 1;
        }
        let hops = 1 + self.rand(depth);
        (0..hops).map(|_| 1 + self.rand(20)).sum()
    }

    /// Turns a root result into the job's output (the first one counts).
    fn finalize(&mut self, now: Millis, job: JobId, op: &Operator, root: &[u8]) {
        match ops::finalize(op, root) {
            Ok(out) => {
                if let Some(j) = self.jobs.iter().position(|t| t.id == job)
                    && self.jobs[j].output.is_none()
                {
                    self.jobs[j].output = Some(out);
                    self.jobs[j].finished_at = Some(now);
                    if let Some(plan) = &mut self.plan {
                        plan.complete(j);
                    }
                }
            }
            // Taken on one member's word, a liar's forged root is what the job ends with
            // (counted as corrupted by the checks); with replicas it would be a bug.
            Err(_) if self.cfg.replicas < 2 && self.nodes.iter().any(|n| n.liar.is_some()) => {
                if let Some(j) = self.jobs.iter().position(|t| t.id == job)
                    && self.jobs[j].output.is_none()
                {
                    self.jobs[j].output = Some(Vec::new());
                    self.jobs[j].finished_at = Some(now);
                    if let Some(plan) = &mut self.plan {
                        plan.complete(j);
                    }
                }
            }
            Err(e) => self
                .violations
                .push(format!("job {job}: root result does not finalize: {e}")),
        }
    }

    /// A result as node `at` would fetch it: inline, or from a live, reachable holder.
    fn fetch(
        &self,
        h: &Harness<Fault>,
        at: usize,
        result: &ResultRef,
        holder: &NodeId,
    ) -> Option<Rc<Vec<u8>>> {
        if let ResultRef::Blob { .. } = result
            && !h.index_of(holder).is_some_and(|i| self.reachable(at, i))
        {
            return None;
        }
        h.fetch(result, holder)
    }

    /// Whether node `at` can fetch piece `piece` of `job`'s input from one of `holders`: one
    /// that is live, reachable, and really holds it (the submitter, or a node that copied it
    /// or ran its map task in its current incarnation).
    fn servable(
        &self,
        h: &Harness<Fault>,
        at: usize,
        job: JobId,
        piece: u32,
        holders: &[NodeId],
    ) -> bool {
        let track = self.jobs.iter().find(|t| t.id == job);
        // Whose files the piece is: the submitter's, or its dataset part's holders'.
        let original = |s: usize| {
            track.is_some_and(|t| match &t.spec.input {
                Input::Dataset(d) => d
                    .locate(piece)
                    .is_some_and(|(part, _)| t.part_holders[part].contains(&s)),
                _ => s == t.submitter,
            })
        };
        holders.iter().any(|n| {
            h.index_of(n).is_some_and(|s| {
                h.alive(s)
                    && self.reachable(at, s)
                    && (original(s) || self.held.contains(&(s, h.incarnation(s), job, piece)))
            })
        })
    }

    fn durable(&self) -> bool {
        self.cfg.copies > 1
    }

    fn run_task(&mut self, h: &mut Harness<Fault>, i: usize, run: &TaskRun) -> TaskOutcome {
        let bytes = match &run.work {
            Work::Map {
                source: MapSource::Chunk { holders, .. },
            } => {
                // The chunk comes from one of its holders, which must be live and reachable.
                // Its piece is its task (for a dataset, the chunk's index is within its part).
                let index = &run.task;
                if !self.servable(h, i, run.job, *index, holders) {
                    if !holders
                        .iter()
                        .any(|n| h.index_of(n).is_some_and(|s| h.alive(s)))
                        && let Some(t) = self.jobs.iter_mut().find(|t| t.id == run.job)
                    {
                        t.input_missing = true;
                    }
                    if std::env::var_os("SHOAL_SIM_DEBUG").is_some() {
                        let alive: Vec<(usize, bool)> = holders
                            .iter()
                            .filter_map(|n| h.index_of(n))
                            .map(|s| (s, h.alive(s)))
                            .collect();
                        let kept: Vec<(usize, u32, bool)> = self
                            .held
                            .iter()
                            .filter(|k| k.2 == run.job && k.3 == *index)
                            .map(|k| (k.0, k.1, h.alive(k.0) && h.incarnation(k.0) == k.1))
                            .collect();
                        eprintln!(
                            "t={} node {i}: chunk {index} unavailable from {alive:?}; held by {kept:?}",
                            h.now()
                        );
                    }
                    return TaskOutcome::Unavailable(format!("input chunk {index} unavailable"));
                }
                // The worker keeps the chunk it read (a durable job's map task counts it as a
                // holder from now on).
                if self.durable() {
                    self.held.insert((i, h.incarnation(i), run.job, *index));
                }
                let line = format!("p{index}\n");
                ops::map(&run.spec.op, MapInput::Chunk(line.as_bytes()))
            }
            Work::Map {
                source: MapSource::Generated(part),
            } => ops::map(&run.spec.op, MapInput::Generated(*part)),
            Work::Map {
                source: MapSource::Run { tasks },
            } => ops::map_run(&run.spec, tasks.clone()),
            Work::Reduce { children } => {
                let mut parts = Vec::with_capacity(children.len());
                for c in children {
                    match self.fetch(h, i, &c.result, &c.holder) {
                        Some(b) => {
                            if let ResultRef::Blob { .. } = c.result {
                                if h.index_of(&c.holder) == Some(i) {
                                    self.reduce_inputs.0 += 1;
                                } else {
                                    self.reduce_inputs.1 += 1;
                                }
                            }
                            parts.push(b)
                        }
                        None => {
                            return TaskOutcome::InputLost {
                                child: c.task,
                                holder: c.holder,
                            };
                        }
                    }
                }
                let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
                let reduced = ops::reduce(&run.spec.op, &refs);
                if reduced.is_err()
                    && let Some(bad) = ops::corrupt_input(&run.spec.op, &refs)
                {
                    // A forged child result: computed again, as the node does.
                    return TaskOutcome::InputLost {
                        child: children[bad].task,
                        holder: children[bad].holder,
                    };
                }
                reduced
            }
        };
        let bytes = match (bytes, self.nodes[i].liar) {
            (Ok(honest), Some(ordinal)) => Ok(byzantine::corrupt(&run.spec.op, honest, ordinal)),
            (other, _) => other,
        };
        match bytes {
            Ok(bytes) => TaskOutcome::Done(h.keep_result(i, bytes, self.inline_max)),
            Err(e) => TaskOutcome::Failed(e.to_string()),
        }
    }

    fn start_node(&mut self, h: &mut Harness<Fault>, i: usize) {
        let node = &self.nodes[i];
        let cap = Capacity {
            slots: node.slots,
            cores: node.slots,
            mem_mb: node.mem_mb,
        };
        // A restart is a new incarnation: its sequence numbers must not repeat the last one's.
        let seed = (i as u64) << 8 | u64::from(h.incarnation(i) + 1);
        let config = Config {
            local_path: self.cfg.local_path,
            reduce_near_inputs: self.cfg.reduce_near_inputs,
            ..Config::default()
        };
        let mut proto = Node::new(node.id, cap, config, seed);
        if node.restricted {
            proto.set_submitters(Some(Default::default()));
        }
        proto
            .set_tags(node.tags.clone())
            .expect("the simulator's tags are valid");
        // A node shares the dataset parts it holds (their files outlive a restart).
        let mut shares: Vec<shoal_protocol::dataset::Share> = self
            .jobs
            .iter()
            .filter_map(|t| match &t.spec.input {
                Input::Dataset(d) => Some((d, &t.part_holders)),
                _ => None,
            })
            .flat_map(|(d, holders)| {
                d.parts
                    .iter()
                    .zip(holders)
                    .filter(|(_, hs)| hs.contains(&i))
                    .map(|(p, _)| shoal_protocol::dataset::Share {
                        name: d.name.clone(),
                        manifest: p.manifest,
                        chunks: p.chunks,
                        bytes: p.bytes,
                    })
            })
            .collect();
        shares.truncate(shoal_protocol::dataset::MAX_SHARES);
        proto
            .set_shares(shares)
            .expect("the simulator's shares are valid");
        h.start(i, proto, self);
    }
}

impl World {
    /// Dataset and grep modes: a map task starts on a holder of its part (a grep's, on its
    /// submitter) unless the locality rule lets another node take it
    /// ([`datasets::StartCheck`]).
    fn check_locality(&mut self, h: &Harness<Fault>, node: usize, run: &TaskRun) {
        let Some(t) = self.jobs.iter().find(|t| t.id == run.job) else {
            return;
        };
        let submitter = [t.submitter];
        let holders: &[usize] = match datasets::part_of(&t.spec, run) {
            Some(part) => &t.part_holders[part],
            None if shoal_protocol::locality::kept_at_submitter(&t.spec)
                && matches!(run.work, Work::Map { .. }) =>
            {
                &submitter
            }
            None => return,
        };
        let check = datasets::StartCheck {
            node,
            holders,
            holders_up: holders.iter().any(|&n| h.alive(n) && !self.down[n]),
            faults_so_far: self.down.iter().any(|&d| d) || self.ever_partitioned,
            since_submit: h.now().saturating_sub(t.submitted_at.unwrap_or(0)),
        };
        if let Some(v) = check.violation(run) {
            if std::env::var_os("SHOAL_SIM_DEBUG").is_some() {
                for &n in holders {
                    eprintln!(
                        "holder {n} alive {}: {}",
                        h.alive(n),
                        h.node(n)
                            .map_or("down".into(), |p| p.debug_job(&run.job, h.now()))
                    );
                }
                if let Some(p) = h.node(node) {
                    eprintln!("starter {node}: {}", p.debug_job(&run.job, h.now()));
                    for &n in holders {
                        let id = self.nodes[n].id;
                        let m = p.job_members(&run.job).into_iter().find(|m| m.0 == id);
                        eprintln!("  holder {n} as a member at the starter: {m:?}");
                    }
                }
                if let Some(p) = h.node(t.submitter) {
                    for &n in holders {
                        let id = self.nodes[n].id;
                        let m = p.job_members(&run.job).into_iter().find(|m| m.0 == id);
                        eprintln!(
                            "  holder {n} as a member at the submitter {}: {m:?}; in view {:?}",
                            t.submitter,
                            p.peers(h.now()).iter().any(|x| x.id == id)
                        );
                    }
                }
            }
            self.violations.push(v);
        }
    }

    /// The first job's submitter leaves for good once every one of its map tasks is done; in
    /// durable mode, at a random time after the detach point (every piece of its input held
    /// by `copies` members), up to a third of the safety phase later.
    fn maybe_submitter_leaves(&mut self, h: &mut Harness<Fault>) {
        if !self.cfg.faults.submitter_leaves || self.submitter_left || !self.faults_on {
            return;
        }
        let Some(job) = self.jobs.first() else { return };
        let s = job.submitter;
        if self.durable() {
            // Past the detach point of every job it submitted: a submitter that leaves before
            // a job of its own is held would lose that job, as `shoal submit --detach` says by
            // not returning (seed 16257 of `--tasks 100 --copies 2`: one node submitted both
            // jobs and left once the first was held).
            let detached = self.jobs.iter().filter(|t| t.submitter == s).all(|t| {
                h.node(s)
                    .and_then(|p| p.job_status(&t.id))
                    .is_some_and(|v| v.copies_held >= u32::from(v.copies))
            });
            if detached {
                self.submitter_left = true;
                let at = h.now() + self.rand(self.cfg.safety_phase_ms() / 3);
                h.schedule(
                    at,
                    Fault::Crash {
                        node: s as u32,
                        restart_after: None,
                    },
                );
            }
            return;
        }
        let Some((done, maps)) = h.node(s).and_then(|p| p.map_progress(&job.id)) else {
            return;
        };
        if done == maps {
            self.submitter_left = true;
            self.down[s] = true;
            h.crash(s);
        }
    }

    /// Whether a job finished: its submitter collected it, or a live node holds its root
    /// result. In durable mode: a live node that did not submit it knows it is done, and a
    /// live keeper it names holds the output.
    fn finished(&mut self, h: &Harness<Fault>, j: usize) -> bool {
        if self.jobs[j].output.is_some() {
            return true;
        }
        if self.durable() {
            return self.readable(h, j);
        }
        let id = self.jobs[j].id;
        for i in 0..h.len() {
            let Some(proto) = h.node(i) else {
                continue;
            };
            if let Some((result, holder)) = proto.root_result(&id)
                && let Some(bytes) = self.fetch(h, i, &result, &holder)
            {
                let op = self.jobs[j].spec.op.clone();
                self.finalize(h.now(), id, &op, &bytes);
                return true;
            }
        }
        false
    }

    /// Durable mode: whether job `j`'s result can be read on a live node that did not submit
    /// it (then it is taken as the job's output).
    fn readable(&mut self, h: &Harness<Fault>, j: usize) -> bool {
        let t = &self.jobs[j];
        let found = (0..h.len())
            .filter(|&i| i != t.submitter)
            .filter_map(|i| h.node(i))
            .find_map(|p| match p.result_status(&t.id) {
                ResultStatus::Done { output, holders } => holders.iter().find_map(|n| {
                    let k = h.index_of(n).filter(|&k| h.alive(k))?;
                    self.kept
                        .get(&(k, h.incarnation(k), t.id))
                        .filter(|(kept, _)| *kept == output)
                        .map(|(_, bytes)| bytes.clone())
                }),
                _ => None,
            });
        match found {
            Some(bytes) => {
                self.jobs[j].output = Some(bytes);
                self.jobs[j].finished_at = Some(h.now());
                if let Some(plan) = &mut self.plan {
                    plan.complete(j);
                }
                true
            }
            None => false,
        }
    }

    /// Whether a job can still finish: its input (held by its submitter) is there, or no map
    /// task has needed it since the submitter left.
    ///
    /// A spot-checked job needs its submitter too: only it decides which results are checked
    /// (a successor that takes over is #17's work).
    ///
    /// In scheduling mode, a job also needs a live node that meets its needs, and a stage
    /// every stage it takes output from.
    fn can_finish(&self, h: &Harness<Fault>, j: usize) -> bool {
        let t = &self.jobs[j];
        if t.output.is_some() {
            return true;
        }
        let needs = &t.spec.sched.needs;
        let servable = needs.is_empty()
            || (0..self.nodes.len()).any(|i| {
                h.alive(i)
                    && needs
                        .unmet(&self.nodes[i].tags, self.nodes[i].mem_mb)
                        .is_none()
            });
        // Without its submitter, a job lives on only if some live node tracks it: a stage
        // submitted just before its submitter left (or never, as it left first) is lost with
        // it (#17's work).
        let tracked =
            || (0..h.len()).any(|i| h.node(i).is_some_and(|p| p.map_progress(&t.id).is_some()));
        // A durable job has no excuse: its input and its coordination outlive the submitter.
        (self.durable()
            || h.alive(t.submitter)
            || (!t.input_missing && t.spec.trust.verify_ppm == 0 && tracked()))
            && servable
            && t.deps.iter().all(|&d| self.can_finish(h, d))
    }

    /// [`World::can_finish`], made exact for a job whose input left with its submitter (one
    /// copy, no dataset): it can finish only if its root's result can still be built from the
    /// results live nodes can give. Walks every node's tasks, so it runs once, after the run.
    fn can_finish_exact(&self, h: &Harness<Fault>, j: usize) -> bool {
        let t = &self.jobs[j];
        if !self.can_finish(h, j) {
            return false;
        }
        if t.output.is_some()
            || self.durable()
            || h.alive(t.submitter)
            || matches!(t.spec.input, Input::Dataset(_))
        {
            return true;
        }
        let mut tree = None;
        let mut known: Vec<bool> = Vec::new();
        for i in 0..h.len() {
            let Some((node_tree, here)) = h.node(i).and_then(|p| p.results_here(&t.id)) else {
                continue;
            };
            if !h.alive(i) {
                continue;
            }
            known.resize(here.len().max(known.len()), false);
            for (k, h) in known.iter_mut().zip(here) {
                *k |= h;
            }
            tree = Some(node_tree);
        }
        let Some(tree) = tree else {
            return false;
        };
        // Children come before their parents: one pass in task order settles every task. A map
        // task's input is gone, so only its result counts.
        for task in 0..tree.total() {
            if !tree.is_map(task) && tree.children(task).all(|c| known[c as usize]) {
                known[task as usize] = true;
            }
        }
        known[tree.root() as usize]
    }

    /// The numbers job `job` of tiny mode sums the squares of: a range of its own, so that
    /// no two jobs have one id.
    fn tiny_range(&self, job: usize) -> (u64, u64) {
        let tasks = u64::from(self.cfg.tasks);
        (job as u64 * tasks, (job as u64 + 1) * tasks)
    }

    /// The checks after a run: results, exactly-once accounting, liveness.
    fn check(&mut self, h: &Harness<Fault>) {
        let lines = [(0..self.cfg.tasks)
            .map(|i| format!("p{i}\n"))
            .collect::<String>()
            .into_bytes()];
        let words = if self.cfg.grep {
            ops::reference::grep(&lines, GREP_PATTERN)
        } else {
            ops::reference::wordcount(&lines)
        };
        for j in 0..self.jobs.len() {
            let expected = if self.cfg.tiny {
                let (start, end) = self.tiny_range(j);
                ops::reference::sumsq(start, end)
            } else {
                words.clone()
            };
            let done = self.finished(h, j);
            let can_finish = self.can_finish_exact(h, j);
            let t = &self.jobs[j];
            if done {
                let liars = self.nodes.iter().any(|n| n.liar.is_some());
                if t.output.as_deref() != Some(expected.as_slice())
                    && liars
                    && self.cfg.replicas < 2
                {
                    // Taken on faith, a lie reaches the output: what replicas are for.
                    self.corrupted += 1;
                } else if t.output.as_deref() != Some(expected.as_slice()) {
                    self.violations.push(format!(
                        "job {}: result differs from the reference (partitions missing or counted twice)",
                        t.id
                    ));
                }
            } else if let Some(e) = &t.failed {
                // A job over a dataset whose part's holders all went down fails, and says so.
                let excused = datasets::failure_excused(
                    e,
                    &t.part_holders,
                    &self.down,
                    self.ever_partitioned,
                );
                if can_finish && !excused {
                    self.violations.push(format!("job {} failed: {e}", t.id));
                }
            } else if can_finish {
                if std::env::var_os("SHOAL_SIM_DEBUG").is_some() {
                    eprintln!(
                        "job {j}: submitter {} (alive {}), submitted at {:?}, deps {:?}, stage {:?}, schedule {:?}",
                        t.submitter,
                        h.alive(t.submitter),
                        t.submitted_at,
                        t.deps,
                        self.plan.as_ref().map(|p| p.state(j).clone()),
                        t.spec.sched
                    );
                    for i in 0..h.len() {
                        if let Some(p) = h.node(i) {
                            eprintln!("node {i} ({}): {}", p.id(), p.debug_job(&t.id, h.now()));
                        }
                    }
                }
                self.violations.push(format!(
                    "liveness: job {} did not finish within {} ms after faults stopped",
                    t.id, self.cfg.liveness_ms
                ));
            }
        }
        if self.durable() {
            self.check_keepers(h);
        }
    }

    /// Durable mode: every live node that fetched a finished job's output keeps its ending
    /// too (else it holds a copy nobody asks it for, and forgets it at its next restart).
    fn check_keepers(&mut self, h: &Harness<Fault>) {
        for (&(node, incarnation, job), (_, bytes)) in &self.kept {
            let finished = self
                .jobs
                .iter()
                .any(|t| t.id == job && t.output.as_ref() == Some(bytes));
            let current = h.is_current(node, incarnation);
            if finished && current && h.node(node).is_some_and(|p| !p.keeps_ending(&job)) {
                let status = h.node(node).map(|p| p.result_status(&job));
                self.violations.push(format!(
                    "node {node} fetched the output of job {job} but does not keep its ending ({status:?})"
                ));
            }
        }
    }

    fn into_report(mut self, h: &Harness<Fault>, wall_ms: u64) -> Report {
        let completed = self.jobs.iter().filter(|t| t.output.is_some()).count();
        let now = h.now();
        let last_finish = self
            .jobs
            .iter()
            .filter_map(|t| t.finished_at)
            .max()
            .unwrap_or(now);
        self.trace.update(&self.delivery_trace.to_le_bytes());
        let tree = shoal_protocol::tree::Tree::new(self.cfg.tasks.max(1), self.cfg.fanin);
        // The model's slots: those of the nodes a job can have as members.
        let workers = self.cfg.workers_per_job() as u64 * self.cfg.jobs as u64;
        let slots: u64 = self.nodes.iter().map(|n| u64::from(n.slots)).sum();
        let slots_total = slots * workers.min(self.cfg.nodes as u64) / self.cfg.nodes.max(1) as u64;
        let by_kind = |counts: [u64; KINDS.len()]| {
            KINDS
                .iter()
                .zip(counts)
                .map(|(k, n)| (k.to_string(), n))
                .collect()
        };
        let since_submit = now.saturating_sub(self.first_submit.unwrap_or(0));
        Report {
            seed: self.cfg.seed,
            nodes: self.cfg.nodes,
            tasks: u64::from(self.cfg.tasks) * self.cfg.jobs as u64,
            jobs: self.cfg.jobs,
            faults: self.cfg.faults.to_string(),
            completed_jobs: completed,
            violations: self.violations,
            trace_hash: self.trace.finalize().to_hex().to_string(),
            virtual_ms: last_finish.saturating_sub(self.first_submit.unwrap_or(0)),
            simulated_ms: now,
            adverts_per_node_s: self.adverts_since_submit as f64
                / self.cfg.nodes.max(1) as f64
                / (since_submit.max(1) as f64 / 1000.0),
            messages: self.messages,
            deliveries: self.deliveries,
            messages_by_kind: by_kind(self.messages_by_kind),
            deliveries_by_kind: by_kind(self.deliveries_by_kind),
            transmissions: self.transmissions,
            bytes: self.bytes,
            wall_ms,
            tree_depth: tree.depth(),
            tree_tasks: tree.total(),
            slots_total,
            mean_task_ms: self.cfg.task_ms,
            corrupted_jobs: self.corrupted,
            reduce_inputs_local: self.reduce_inputs.0,
            reduce_inputs_fetched: self.reduce_inputs.1,
            ..Report::default()
        }
        .with_derived()
    }
}

impl World {
    /// Delivers `msg` to the reachable listeners of its topic, `extra_delay` late, with the
    /// network's faults.
    fn spread(&mut self, h: &mut Harness<Fault>, msg: &Rc<Published>, extra_delay: Millis) {
        let now = h.now();
        let from = msg.from as usize;
        let listeners: Vec<u32> = h.topics().listeners(&msg.topic).to_vec();
        let depth = gossip::mesh_depth(listeners.len());
        let per_delivery = gossip::transmissions_per_delivery(listeners.len());
        let f = self.cfg.faults;
        let kind = msg.env.body.kind();
        let counts_as_upkeep = kind == 0 && self.first_submit.is_some();
        for to in listeners {
            let t = to as usize;
            if t == from || !self.reachable(from, t) {
                continue;
            }
            if self.faults_on && f.loss && self.rand(100) < 2 {
                continue;
            }
            let mut delay = extra_delay + self.latency(depth);
            if self.faults_on && f.reordering && self.rand(100) < 5 {
                delay += self.rand(200);
            }
            self.deliveries += 1;
            self.deliveries_by_kind[kind] += 1;
            self.adverts_since_submit += u64::from(counts_as_upkeep);
            self.transmissions += per_delivery;
            self.bytes += msg.len as u64;
            h.deliver_at(now + delay, to, msg.clone());
            if self.faults_on && f.duplication && self.rand(100) < 1 {
                let later = now + delay + self.rand(50);
                self.deliveries += 1;
                self.deliveries_by_kind[kind] += 1;
                h.deliver_at(later, to, msg.clone());
            }
        }
    }

    /// What liar `msg.from` adds to its own publication: a forged claim and completion with
    /// each batch, and a replay of something seen earlier, seconds late.
    fn lie_in_gossip(&mut self, h: &mut Harness<Fault>, msg: &Rc<Published>, ordinal: u32) {
        if let shoal_protocol::wire::Message::Batch(real) = &msg.env.body {
            let total = shoal_protocol::tree::Tree::new(self.cfg.tasks, self.cfg.fanin).total();
            let (claim, done) = (
                self.rand(total.into()) as u32,
                self.rand(total.into()) as u32,
            );
            let junk = (self.rng.next_u64() ^ u64::from(ordinal)).to_le_bytes();
            let body = byzantine::forged_batch(real, claim, done, junk);
            self.forged_id -= 1;
            let forged = byzantine::publication(self.forged_id, msg.from, msg, body);
            self.spread(h, &forged, 1);
        }
        let pick = self.rng.next_u64();
        if let Some(old) = self.replays.pick(pick) {
            let late = 1_000 + self.rand(3_000);
            self.spread(h, &old, late);
        }
    }
}

impl Env for World {
    type Event = Fault;

    fn publish(&mut self, h: &mut Harness<Fault>, msg: Rc<Published>, bytes: &[u8]) {
        let now = h.now();
        let from = msg.from as usize;
        self.messages += 1;
        self.trace.update(&now.to_le_bytes());
        self.trace.update(&(from as u64).to_le_bytes());
        self.trace.update(bytes);
        self.messages_by_kind[msg.env.body.kind()] += 1;
        self.spread(h, &msg, 0);
        if let Some(ordinal) = self.nodes[from].liar {
            self.lie_in_gossip(h, &msg, ordinal);
        }
        if self.cfg.byzantine_pct > 0 {
            self.replays.remember(&msg);
        }
    }

    fn invalid_publication(&mut self, node: usize, error: InvalidMessage) {
        self.violations
            .push(format!("node {node} published an invalid message: {error}"));
    }

    fn deliverable(&mut self, h: &Harness<Fault>, to: usize, msg: &Published) -> bool {
        let from = msg.from as usize;
        if !h.alive(from) || !self.reachable(from, to) {
            return false;
        }
        self.delivery_trace =
            mix(self.delivery_trace ^ msg.id.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ to as u64);
        true
    }

    fn task_duration(&mut self, node: usize, _run: &TaskRun) -> Millis {
        let mean = self.cfg.task_ms.max(1);
        let took = mean / 2 + self.rand(mean);
        if self.nodes[node].slow {
            took * 5
        } else {
            took
        }
    }

    fn task_outcome(
        &mut self,
        h: &mut Harness<Fault>,
        node: usize,
        run: &TaskRun,
    ) -> (TaskOutcome, u64) {
        if self.nodes[node].restricted && run.submitter != self.nodes[node].id {
            self.violations.push(format!(
                "node {node} runs only its own jobs but ran task {} of job {}",
                run.task, run.job
            ));
        }
        let outcome = self.run_task(h, node, run);
        // With one replica, the root's result exists from the moment it is computed; with
        // more, only once its votes settle it (`finished` reads it then).
        if let TaskOutcome::Done(result) = &outcome
            && !self.durable()
            && self.cfg.replicas < 2
            && self.cfg.verify_ppm == 0
            && let Some(j) = self.jobs.iter().position(|t| t.id == run.job)
            && run.task == run.spec.tree().root()
        {
            // The root is done: the job's result exists from this moment.
            let holder = self.nodes[node].id;
            if let Some(bytes) = self.fetch(h, node, result, &holder) {
                let op = self.jobs[j].spec.op.clone();
                self.finalize(h.now(), run.job, &op, &bytes);
            }
        }
        (outcome, self.cfg.task_ms * 1000)
    }

    fn after_task(&mut self, h: &mut Harness<Fault>, _node: usize) {
        self.maybe_submitter_leaves(h);
    }

    fn collect(
        &mut self,
        h: &Harness<Fault>,
        node: usize,
        job: JobId,
        spec: &JobSpec,
        result: &ResultRef,
        holder: NodeId,
    ) -> Result<OutputRef, NodeId> {
        let bytes = self.fetch(h, node, result, &holder).ok_or(holder)?;
        let output = ops::finalize(&spec.op, &bytes).unwrap_or_default();
        let kept = OutputRef {
            hash: BlobHash::of(&output),
            len: output.len() as u64,
        };
        if self.durable() {
            // Kept by this incarnation of the node: gone if it crashes.
            self.kept
                .insert((node, h.incarnation(node), job), (kept, output));
        } else {
            self.finalize(h.now(), job, &spec.op, &bytes);
        }
        Ok(kept)
    }

    /// A durable job's keepers take a while to fetch its root result, so that the job may
    /// end elsewhere meanwhile (every other mode keeps the instant fetch, and its seeds' runs).
    fn collect_duration(&mut self, _node: usize) -> Millis {
        if self.durable() {
            self.rand(self.cfg.task_ms.max(1))
        } else {
            0
        }
    }

    fn keep_piece(
        &mut self,
        h: &Harness<Fault>,
        node: usize,
        job: JobId,
        piece: u32,
        holders: &[NodeId],
    ) -> bool {
        let ok = self.servable(h, node, job, piece, holders);
        if ok {
            self.held.insert((node, h.incarnation(node), job, piece));
        }
        ok
    }

    fn job_failed(&mut self, _node: usize, job: JobId, error: String) {
        if let Some(j) = self.jobs.iter().position(|t| t.id == job) {
            if let Some(plan) = &mut self.plan {
                plan.fail(j, &error);
            }
            self.jobs[j].failed = Some(error);
        }
    }

    fn task_started(&mut self, h: &Harness<Fault>, node: usize, run: &TaskRun) {
        if self.cfg.datasets || self.cfg.grep {
            self.check_locality(h, node, run);
        }
        if !self.cfg.scheduling {
            return;
        }
        if let Some(proto) = h.node(node) {
            let n = &self.nodes[node];
            let wrong = scheduling::check_start(proto, node, &n.tags, n.mem_mb, run, h.now());
            self.violations.extend(wrong);
        }
        if let Some(j) = self.jobs.iter().position(|t| t.id == run.job) {
            for &d in &self.jobs[j].deps {
                if self.jobs[d].output.is_none() {
                    self.violations.push(format!(
                        "pipeline: job {} started a task before job {} it takes output from was complete",
                        run.job, self.jobs[d].id
                    ));
                }
            }
        }
    }

    fn custom(&mut self, h: &mut Harness<Fault>, event: Fault) {
        let now = h.now();
        match event {
            Fault::Join { node } => self.start_node(h, node as usize),
            Fault::Submit { job } => {
                let job = job as usize;
                if let Some(plan) = &mut self.plan {
                    match plan.state(job) {
                        // A stage whose input failed fails with it; it is never submitted.
                        StageState::Failed(cause) => {
                            self.jobs[job].failed = Some(cause.clone());
                            return;
                        }
                        StageState::Waiting if plan.ready().contains(&job) => plan.start(job),
                        StageState::Waiting => {
                            // Its inputs are not complete: look again shortly.
                            h.schedule(now + 50, Fault::Submit { job: job as u32 });
                            return;
                        }
                        StageState::Running | StageState::Complete => return,
                    }
                }
                let s = self.jobs[job].submitter;
                let spec = self.jobs[job].spec.clone();
                self.first_submit.get_or_insert(now);
                self.jobs[job].submitted_at = Some(now);
                if let Some(proto) = h.node_mut(s) {
                    match proto.submit(now, spec, 1 + job as u64) {
                        Ok(_) => h.drain(s, self),
                        Err(e) => self
                            .violations
                            .push(format!("job {job} refused at submit: {e}")),
                    }
                }
            }
            Fault::Crash {
                node,
                restart_after,
            } => {
                if h.alive(node as usize) {
                    self.down[node as usize] = true;
                    h.crash(node as usize);
                    if let Some(after) = restart_after {
                        h.schedule(now + after, Fault::Restart { node });
                    }
                }
            }
            Fault::Restart { node } => {
                if !h.alive(node as usize) {
                    self.start_node(h, node as usize);
                }
            }
            Fault::Partition { groups, heal_after } => {
                if self.faults_on {
                    for (n, &g) in self.nodes.iter_mut().zip(groups.iter()) {
                        n.group = g;
                    }
                    self.partitioned = true;
                    self.ever_partitioned = true;
                    h.schedule(now + heal_after, Fault::Heal);
                }
            }
            Fault::Garbage { from, to } => {
                let to = to as usize;
                let liar = self.nodes[from as usize].id;
                let len = 1 + self.rand(200) as usize;
                let garbage: Vec<u8> = (0..len).map(|_| self.rng.next_u64() as u8).collect();
                if let Some(proto) = h.node_mut(to) {
                    // Refused and counted (`invalid_messages`), or, should random bytes make a
                    // well-formed message, handled like any other message of the liar's.
                    let _ = proto.handle_message(now, liar, &garbage);
                    h.drain(to, self);
                }
            }
            Fault::Heal => {
                self.partitioned = false;
                for n in &mut self.nodes {
                    n.group = 0;
                }
                if self
                    .first_submit
                    .is_some_and(|t| now >= t + self.cfg.safety_phase_ms())
                {
                    self.faults_on = false;
                }
            }
        }
    }
}
