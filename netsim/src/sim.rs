//! The simulator: many protocol nodes, one event queue, virtual time, one seed.
//!
//! Every node is the real `shoal_protocol::Node`. Gossip is modelled per topic
//! ([`crate::gossip`]): a message reaches the nodes subscribed to its topic after a few hops
//! of a link each; bytes are the real encoded messages. Each published message is decoded and
//! validated once and the decoded message handed to every receiver (they would all decode the
//! same bytes). Tasks take simulated time and compute real results: the job is a word count
//! over generated chunks where chunk `i` is the line `p{i}`, so the final result lists every
//! partition with the count of times it was counted, and the reference requires exactly one.

use crate::config::SimConfig;
use crate::gossip::{self, Topics};
use crate::queue::EventQueue;
use crate::report::Report;
use shoal_protocol::ops::{self, MapInput, SplitMix64};
use shoal_protocol::wire::{Envelope, Message, ResultRef};
use shoal_protocol::{
    BlobHash, Capacity, Config, Effect, Input, JobId, JobSpec, MapSource, Millis, Node, NodeId,
    Operator, TaskOutcome, TaskRun, Topic, Work, effects,
};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Instant;

/// A published message, decoded once, shared by its deliveries.
struct Published {
    id: u64,
    from: u32,
    env: Envelope,
    len: usize,
}

enum Event {
    Deliver {
        to: u32,
        msg: Rc<Published>,
    },
    Timer {
        node: u32,
    },
    TaskDone(Box<(u32, u32, TaskRun)>),
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
}

struct SimNode {
    id: NodeId,
    proto: Option<Node>,
    incarnation: u32,
    slow: bool,
    slots: u32,
    /// Partition group; nodes talk only within their group.
    group: u32,
    timer_at: Option<Millis>,
    blobs: HashMap<BlobHash, Rc<Vec<u8>>>,
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
}

/// A simulation in progress.
pub struct Sim {
    cfg: SimConfig,
    rng: SplitMix64,
    now: Millis,
    queue: EventQueue<Event>,
    nodes: Vec<SimNode>,
    by_id: HashMap<NodeId, usize>,
    topics: Topics,
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
}

/// The kinds of message, as reported.
pub const KINDS: [&str; 5] = ["advert", "announce", "batch", "pulse", "finished"];

fn kind(env: &Envelope) -> usize {
    match env.body {
        Message::Advert(_) => 0,
        Message::Announce(_) => 1,
        Message::Batch(_) => 2,
        Message::Pulse(_) => 3,
        Message::Finished(_) => 4,
    }
}

fn node_id(i: usize) -> NodeId {
    NodeId::from_identity_bytes(format!("sim-node-{i}").as_bytes())
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
                proto: None,
                incarnation: 0,
                slow: cfg.faults.slow && rng.next_u64().is_multiple_of(10),
                slots: 1 + (rng.next_u64() % 4) as u32,
                group: 0,
                timer_at: None,
                blobs: HashMap::new(),
            })
            .collect();
        // Half the seeds keep every result as a blob, so that results die with their holders.
        let inline_max = if rng.next_u64().is_multiple_of(2) {
            0
        } else {
            shoal_protocol::wire::INLINE_RESULT_MAX
        };
        let by_id = nodes.iter().enumerate().map(|(i, n)| (n.id, i)).collect();
        let mut sim = Self {
            topics: Topics::new(cfg.nodes),
            cfg,
            rng,
            now: 0,
            queue: EventQueue::default(),
            nodes,
            by_id,
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
        };
        sim.schedule();
        sim
    }

    fn rand(&mut self, n: u64) -> u64 {
        self.rng.next_u64() % n.max(1)
    }

    /// Lays out joins, submissions and the fault schedule, all from the seed.
    fn schedule(&mut self) {
        let n = self.cfg.nodes;
        for node in 0..n {
            let at = if node == 0 {
                0
            } else {
                self.rand(self.cfg.join_window_ms())
            };
            self.queue.push(at, Event::Join { node: node as u32 });
        }
        let start = self.cfg.join_window_ms() + self.cfg.settle_ms;
        for job in 0..self.cfg.jobs {
            let submitter = self.rand(n as u64) as usize;
            let spec = JobSpec {
                op: Operator::WordCount,
                input: Input::Chunks {
                    manifest: BlobHash::of(format!("sim-job-{job}").as_bytes()),
                    chunks: self.cfg.tasks,
                    bytes: 0,
                },
                fanin: self.cfg.fanin,
            };
            self.jobs.push(JobTrack {
                id: spec.id(),
                spec,
                submitter,
                submitted_at: None,
                finished_at: None,
                output: None,
                failed: None,
                input_missing: false,
            });
            self.queue
                .push(start + job as u64 * 250, Event::Submit { job: job as u32 });
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
                self.queue.push(
                    at,
                    Event::Crash {
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
                self.queue.push(at, Event::Partition { groups, heal_after });
            }
        }
        // Faults stop here: heal everything; the liveness phase begins.
        self.queue.push(safety_end, Event::Heal);
    }

    fn reachable(&self, a: usize, b: usize) -> bool {
        !self.partitioned || self.nodes[a].group == self.nodes[b].group
    }

    fn alive(&self, i: usize) -> bool {
        self.nodes[i].proto.is_some()
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

    /// Drains what node `i` wants joined, sent and done, and re-arms its timer.
    fn drain(&mut self, i: usize) {
        loop {
            let Some(proto) = self.nodes[i].proto.as_mut() else {
                return;
            };
            if let Some(change) = proto.poll_subscription() {
                self.topics.apply(i, change);
            } else if let Some((topic, bytes)) = proto.poll_transmit() {
                self.publish(i, topic, bytes);
            } else if let Some(effect) = proto.poll_effect() {
                self.effect(i, effect);
            } else {
                break;
            }
        }
        if let Some(proto) = &self.nodes[i].proto {
            let t = proto.poll_timeout().max(self.now);
            if self.nodes[i].timer_at != Some(t) {
                self.nodes[i].timer_at = Some(t);
                self.queue.push(t, Event::Timer { node: i as u32 });
            }
        }
    }

    fn publish(&mut self, from: usize, topic: Topic, bytes: Vec<u8>) {
        self.messages += 1;
        self.trace.update(&self.now.to_le_bytes());
        self.trace.update(&(from as u64).to_le_bytes());
        self.trace.update(&bytes);
        let env = match Envelope::decode(&bytes) {
            Ok(env) => env,
            Err(e) => {
                self.violations
                    .push(format!("node {from} published an invalid message: {e}"));
                return;
            }
        };
        let msg = Rc::new(Published {
            id: self.messages,
            from: from as u32,
            env,
            len: bytes.len(),
        });
        let listeners: Vec<u32> = self.topics.listeners(&topic).to_vec();
        let depth = gossip::mesh_depth(listeners.len());
        let per_delivery = gossip::transmissions_per_delivery(listeners.len());
        let f = self.cfg.faults;
        let kind = kind(&msg.env);
        self.messages_by_kind[kind] += 1;
        let counts_as_upkeep = kind == 0 && self.first_submit.is_some();
        for to in listeners {
            let t = to as usize;
            if t == from || !self.reachable(from, t) {
                continue;
            }
            if self.faults_on && f.loss && self.rand(100) < 2 {
                continue;
            }
            let mut delay = self.latency(depth);
            if self.faults_on && f.reordering && self.rand(100) < 5 {
                delay += self.rand(200);
            }
            self.deliveries += 1;
            self.deliveries_by_kind[kind] += 1;
            self.adverts_since_submit += u64::from(counts_as_upkeep);
            self.transmissions += per_delivery;
            self.bytes += msg.len as u64;
            self.queue.push(
                self.now + delay,
                Event::Deliver {
                    to,
                    msg: msg.clone(),
                },
            );
            if self.faults_on && f.duplication && self.rand(100) < 1 {
                let later = self.now + delay + self.rand(50);
                self.deliveries += 1;
                self.deliveries_by_kind[kind] += 1;
                self.queue.push(
                    later,
                    Event::Deliver {
                        to,
                        msg: msg.clone(),
                    },
                );
            }
        }
    }

    fn effect(&mut self, i: usize, effect: Effect) {
        match effect {
            Effect::Run(run) => {
                let mean = self.cfg.task_ms.max(1);
                let mut took = mean / 2 + self.rand(mean);
                if self.nodes[i].slow {
                    took *= 5;
                }
                let incarnation = self.nodes[i].incarnation;
                self.queue.push(
                    self.now + took,
                    Event::TaskDone(Box::new((i as u32, incarnation, run))),
                );
            }
            Effect::Collect {
                job,
                spec,
                result,
                holder,
            } => {
                let outcome = match self.fetch(i, &result, holder) {
                    Some(bytes) => {
                        self.finalize(job, &spec.op, &bytes);
                        Ok(())
                    }
                    None => Err(holder),
                };
                if let Some(proto) = self.nodes[i].proto.as_mut() {
                    proto.job_collected(self.now, job, outcome);
                }
            }
            Effect::JobFailed { job, error } => {
                if let Some(t) = self.jobs.iter_mut().find(|t| t.id == job) {
                    t.failed = Some(error);
                }
            }
            // The simulated nodes keep every result: memory is not what is simulated.
            Effect::Release { .. } | Effect::Prefetch { .. } => {}
        }
    }

    /// Turns a root result into the job's output (the first one counts).
    fn finalize(&mut self, job: JobId, op: &Operator, root: &[u8]) {
        match ops::finalize(op, root) {
            Ok(out) => {
                let now = self.now;
                if let Some(t) = self.jobs.iter_mut().find(|t| t.id == job)
                    && t.output.is_none()
                {
                    t.output = Some(out);
                    t.finished_at = Some(now);
                }
            }
            Err(e) => self
                .violations
                .push(format!("job {job}: root result does not finalize: {e}")),
        }
    }

    /// A result as node `at` would fetch it: inline, or from a live, reachable holder.
    fn fetch(&self, at: usize, result: &ResultRef, holder: NodeId) -> Option<Rc<Vec<u8>>> {
        match result {
            ResultRef::Inline(bytes) => Some(Rc::new(bytes.to_vec())),
            ResultRef::Blob { hash, .. } => {
                let h = *self.by_id.get(&holder)?;
                if !self.alive(h) || !self.reachable(at, h) {
                    return None;
                }
                self.nodes[h].blobs.get(hash).cloned()
            }
        }
    }

    fn run_task(&mut self, i: usize, run: &TaskRun) -> TaskOutcome {
        let bytes = match &run.work {
            Work::Map {
                source: MapSource::Chunk { index, holder, .. },
            } => {
                // The chunk comes from the submitter, which must be reachable.
                let s = self.by_id.get(holder).copied();
                if !s.is_some_and(|s| self.alive(s) && self.reachable(i, s)) {
                    if !s.is_some_and(|s| self.alive(s))
                        && let Some(t) = self.jobs.iter_mut().find(|t| t.id == run.job)
                    {
                        t.input_missing = true;
                    }
                    return TaskOutcome::Unavailable(format!("input chunk {index} unavailable"));
                }
                let line = format!("p{index}\n");
                ops::map(&run.spec.op, MapInput::Chunk(line.as_bytes()))
            }
            Work::Map {
                source: MapSource::Generated(part),
            } => ops::map(&run.spec.op, MapInput::Generated(*part)),
            Work::Reduce { children } => {
                let mut parts = Vec::with_capacity(children.len());
                for c in children {
                    match self.fetch(i, &c.result, c.holder) {
                        Some(b) => parts.push(b),
                        None => {
                            return TaskOutcome::InputLost {
                                child: c.task,
                                holder: c.holder,
                            };
                        }
                    }
                }
                let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
                ops::reduce(&run.spec.op, &refs)
            }
        };
        match bytes {
            Ok(bytes) if bytes.len() <= self.inline_max => {
                TaskOutcome::Done(ResultRef::Inline(bytes.into()))
            }
            Ok(bytes) => {
                let r = effects::blob_ref(&bytes);
                if let ResultRef::Blob { hash, .. } = r {
                    self.nodes[i].blobs.insert(hash, Rc::new(bytes));
                }
                TaskOutcome::Done(r)
            }
            Err(e) => TaskOutcome::Failed(e.to_string()),
        }
    }

    fn start_node(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        node.incarnation += 1;
        let cap = Capacity {
            slots: node.slots,
            cores: node.slots,
            mem_mb: 1024,
        };
        let seed = (i as u64) << 8 | u64::from(node.incarnation);
        let mut proto = Node::new(node.id, cap, Config::default(), seed);
        proto.handle_timeout(self.now);
        node.proto = Some(proto);
        node.timer_at = None;
        self.drain(i);
    }

    fn crash(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        node.proto = None;
        node.blobs.clear();
        node.timer_at = None;
        self.topics.forget(i);
    }

    fn deliver(&mut self, to: usize, msg: &Published) {
        let from = msg.from as usize;
        if !self.alive(to) || !self.alive(from) || !self.reachable(from, to) {
            return;
        }
        self.delivery_trace =
            mix(self.delivery_trace ^ msg.id.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ to as u64);
        let from_id = self.nodes[from].id;
        let proto = self.nodes[to].proto.as_mut().expect("alive");
        proto.handle_envelope(self.now, from_id, &msg.env, msg.len);
        self.drain(to);
    }

    fn task_done(&mut self, node: usize, incarnation: u32, run: TaskRun) {
        if !self.alive(node) || self.nodes[node].incarnation != incarnation {
            return;
        }
        let outcome = self.run_task(node, &run);
        if let TaskOutcome::Done(result) = &outcome
            && let Some(j) = self.jobs.iter().position(|t| t.id == run.job)
            && run.task == shoal_protocol::tree::Tree::new(self.cfg.tasks, self.cfg.fanin).root()
        {
            // The root is done: the job's result exists from this moment.
            let holder = self.nodes[node].id;
            if let Some(bytes) = self.fetch(node, result, holder) {
                let op = self.jobs[j].spec.op.clone();
                self.finalize(run.job, &op, &bytes);
            }
        }
        let took = self.cfg.task_ms * 1000;
        let proto = self.nodes[node].proto.as_mut().expect("alive");
        proto.task_finished(self.now, run.job, run.task, outcome, took);
        self.drain(node);
        self.maybe_submitter_leaves();
    }

    fn step(&mut self, event: Event) {
        match event {
            Event::Deliver { to, msg } => self.deliver(to as usize, &msg),
            Event::Timer { node } => {
                let node = node as usize;
                if self.nodes[node].timer_at != Some(self.now) {
                    return; // superseded
                }
                self.nodes[node].timer_at = None;
                if let Some(proto) = self.nodes[node].proto.as_mut() {
                    proto.handle_timeout(self.now);
                    self.drain(node);
                }
            }
            Event::TaskDone(done) => {
                let (node, incarnation, run) = *done;
                self.task_done(node as usize, incarnation, run);
            }
            Event::Join { node } => self.start_node(node as usize),
            Event::Submit { job } => {
                let job = job as usize;
                let s = self.jobs[job].submitter;
                let spec = self.jobs[job].spec.clone();
                self.first_submit.get_or_insert(self.now);
                self.jobs[job].submitted_at = Some(self.now);
                let now = self.now;
                if let Some(proto) = self.nodes[s].proto.as_mut() {
                    match proto.submit(now, spec, 1 + job as u64) {
                        Ok(_) => self.drain(s),
                        Err(e) => self
                            .violations
                            .push(format!("job {job} refused at submit: {e}")),
                    }
                }
            }
            Event::Crash {
                node,
                restart_after,
            } => {
                let node = node as usize;
                if self.alive(node) {
                    self.crash(node);
                    if let Some(after) = restart_after {
                        self.queue
                            .push(self.now + after, Event::Restart { node: node as u32 });
                    }
                }
            }
            Event::Restart { node } => {
                if !self.alive(node as usize) {
                    self.start_node(node as usize);
                }
            }
            Event::Partition { groups, heal_after } => {
                if self.faults_on {
                    for (n, &g) in self.nodes.iter_mut().zip(groups.iter()) {
                        n.group = g;
                    }
                    self.partitioned = true;
                    self.queue.push(self.now + heal_after, Event::Heal);
                }
            }
            Event::Heal => {
                self.partitioned = false;
                for n in &mut self.nodes {
                    n.group = 0;
                }
                if self
                    .first_submit
                    .is_some_and(|t| self.now >= t + self.cfg.safety_phase_ms())
                {
                    self.faults_on = false;
                }
            }
        }
    }

    /// The first job's submitter leaves for good once every one of its map tasks is done.
    fn maybe_submitter_leaves(&mut self) {
        if !self.cfg.faults.submitter_leaves || self.submitter_left || !self.faults_on {
            return;
        }
        let Some(job) = self.jobs.first() else { return };
        let s = job.submitter;
        let Some((done, maps)) = self.nodes[s]
            .proto
            .as_ref()
            .and_then(|p| p.map_progress(&job.id))
        else {
            return;
        };
        if done == maps {
            self.submitter_left = true;
            self.crash(s);
        }
    }

    /// Whether a job finished: its submitter collected it, or a live node holds its root result.
    fn finished(&mut self, j: usize) -> bool {
        if self.jobs[j].output.is_some() {
            return true;
        }
        let id = self.jobs[j].id;
        for i in 0..self.nodes.len() {
            let Some(proto) = &self.nodes[i].proto else {
                continue;
            };
            if let Some((result, holder)) = proto.root_result(&id)
                && let Some(bytes) = self.fetch(i, &result, holder)
            {
                let op = self.jobs[j].spec.op.clone();
                self.finalize(id, &op, &bytes);
                return true;
            }
        }
        false
    }

    /// Whether a job can still finish: its input (held by its submitter) is there, or no map
    /// task has needed it since the submitter left.
    fn can_finish(&self, j: usize) -> bool {
        self.alive(self.jobs[j].submitter) || !self.jobs[j].input_missing
    }

    /// Runs the simulation to its end and checks the invariants.
    pub fn run(mut self) -> Report {
        let wall = Instant::now();
        let mut deadline: Option<Millis> = None;
        while let Some((at, event)) = self.queue.pop() {
            if let Some(d) = deadline
                && at > d
            {
                break;
            }
            self.now = at;
            self.step(event);
            if self.jobs.iter().all(|j| j.output.is_some()) {
                break; // every job finished: nothing left to check
            }
            if !self.faults_on {
                deadline.get_or_insert(self.now + self.cfg.liveness_ms);
                if (0..self.jobs.len())
                    .all(|j| self.jobs[j].output.is_some() || !self.can_finish(j))
                {
                    break;
                }
            }
        }
        self.check().into_report(wall.elapsed().as_millis() as u64)
    }

    /// The checks after a run: results, exactly-once accounting, liveness.
    fn check(mut self) -> Self {
        let expected = ops::reference::wordcount(&[(0..self.cfg.tasks)
            .map(|i| format!("p{i}\n"))
            .collect::<String>()
            .into_bytes()]);
        for j in 0..self.jobs.len() {
            let done = self.finished(j);
            let t = &self.jobs[j];
            if done {
                if t.output.as_deref() != Some(expected.as_slice()) {
                    self.violations.push(format!(
                        "job {}: result differs from the reference (partitions missing or counted twice)",
                        t.id
                    ));
                }
            } else if let Some(e) = &t.failed {
                if self.can_finish(j) {
                    self.violations.push(format!("job {} failed: {e}", t.id));
                }
            } else if self.can_finish(j) {
                if std::env::var_os("SHOAL_SIM_DEBUG").is_some() {
                    for (i, n) in self.nodes.iter().enumerate() {
                        if let Some(p) = &n.proto {
                            eprintln!("node {i} ({}): {}", n.id, p.debug_job(&t.id, self.now));
                        }
                    }
                }
                self.violations.push(format!(
                    "liveness: job {} did not finish within {} ms after faults stopped",
                    t.id, self.cfg.liveness_ms
                ));
            }
        }
        self
    }

    fn into_report(mut self, wall_ms: u64) -> Report {
        let completed = self.jobs.iter().filter(|t| t.output.is_some()).count();
        let last_finish = self
            .jobs
            .iter()
            .filter_map(|t| t.finished_at)
            .max()
            .unwrap_or(self.now);
        self.trace.update(&self.delivery_trace.to_le_bytes());
        let tree = shoal_protocol::tree::Tree::new(self.cfg.tasks.max(1), self.cfg.fanin);
        // The model's slots: those of the nodes a job can have as members.
        let workers = self.cfg.workers_per_job() as u64 * self.cfg.jobs as u64;
        let slots: u64 = self.nodes.iter().map(|n| u64::from(n.slots)).sum();
        let slots_total = slots * workers.min(self.cfg.nodes as u64) / self.cfg.nodes.max(1) as u64;
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
            simulated_ms: self.now,
            adverts_per_node_s: self.adverts_since_submit as f64
                / self.cfg.nodes.max(1) as f64
                / (self
                    .now
                    .saturating_sub(self.first_submit.unwrap_or(0))
                    .max(1) as f64
                    / 1000.0),
            messages: self.messages,
            deliveries: self.deliveries,
            messages_by_kind: KINDS
                .iter()
                .zip(self.messages_by_kind)
                .map(|(k, n)| (k.to_string(), n))
                .collect(),
            deliveries_by_kind: KINDS
                .iter()
                .zip(self.deliveries_by_kind)
                .map(|(k, n)| (k.to_string(), n))
                .collect(),
            transmissions: self.transmissions,
            bytes: self.bytes,
            wall_ms,
            tree_depth: tree.depth(),
            tree_tasks: tree.total(),
            slots_total,
            mean_task_ms: self.cfg.task_ms,
            ..Report::default()
        }
        .with_derived()
    }
}
