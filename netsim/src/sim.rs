//! The simulator: many protocol nodes, one event queue, virtual time, one seed.
//!
//! Every node is the real `shoal_protocol::Node`. Gossip is modelled as delivery of each
//! published message to every reachable node with a per-delivery latency (several hops of a
//! link); bytes are the real encoded messages. Tasks take simulated time and compute real
//! results: the job is a word count over generated chunks where chunk `i` is the line `p{i}`,
//! so the final result lists every partition with the count of times it was counted, and the
//! reference requires exactly one.

use crate::config::SimConfig;
use crate::report::Report;
use shoal_protocol::ops::{self, MapInput, SplitMix64};
use shoal_protocol::wire::ResultRef;
use shoal_protocol::{
    BlobHash, Capacity, Config, Effect, Input, JobId, JobSpec, MapSource, Millis, Node, NodeId,
    Operator, TaskOutcome, TaskRun, Work, effects,
};
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::rc::Rc;
use std::time::Instant;

enum EventKind {
    Deliver {
        to: usize,
        from: usize,
        msg: u64,
        bytes: Rc<Vec<u8>>,
    },
    Timer {
        node: usize,
    },
    TaskDone {
        node: usize,
        incarnation: u32,
        run: TaskRun,
    },
    Join {
        node: usize,
    },
    Submit {
        job: usize,
    },
    Crash {
        node: usize,
        restart_after: Option<Millis>,
    },
    Restart {
        node: usize,
    },
    Partition {
        groups: Vec<u32>,
        heal_after: Millis,
    },
    Heal,
}

struct Event {
    at: Millis,
    seq: u64,
    kind: EventKind,
}

impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Event {}
impl PartialOrd for Event {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Event {
    // Reversed: BinaryHeap is a max-heap and we want the earliest event first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
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
    seq: u64,
    queue: BinaryHeap<Event>,
    nodes: Vec<SimNode>,
    jobs: Vec<JobTrack>,
    partitioned: bool,
    faults_on: bool,
    inline_max: usize,
    trace: blake3::Hasher,
    messages: u64,
    deliveries: u64,
    bytes: u64,
    violations: Vec<String>,
    first_submit: Option<Millis>,
    submitter_left: bool,
}

fn node_id(i: usize) -> NodeId {
    NodeId::from_identity_bytes(format!("sim-node-{i}").as_bytes())
}

impl Sim {
    pub fn new(cfg: SimConfig) -> Self {
        let mut rng = SplitMix64(cfg.seed ^ 0x5EED_0F51_10A1);
        let nodes = (0..cfg.nodes)
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
        let mut sim = Self {
            cfg,
            rng,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            nodes,
            jobs: Vec::new(),
            partitioned: false,
            faults_on: true,
            inline_max,
            trace: blake3::Hasher::new(),
            messages: 0,
            deliveries: 0,
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

    fn push(&mut self, at: Millis, kind: EventKind) {
        self.seq += 1;
        self.queue.push(Event {
            at,
            seq: self.seq,
            kind,
        });
    }

    /// Lays out joins, submissions and the fault schedule, all from the seed.
    fn schedule(&mut self) {
        let n = self.cfg.nodes;
        for node in 0..n {
            let at = if node == 0 {
                0
            } else {
                self.rand(self.cfg.join_spread_ms)
            };
            self.push(at, EventKind::Join { node });
        }
        let start = self.cfg.join_spread_ms + 1_500;
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
            self.push(start + job as u64 * 250, EventKind::Submit { job });
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
                self.push(
                    at,
                    EventKind::Crash {
                        node,
                        restart_after,
                    },
                );
            }
        }
        if f.partitions {
            let count = 1 + self.rand(3);
            for _ in 0..count {
                let at = start + self.rand(safety);
                let groups: Vec<u32> = match self.rand(3) {
                    0 => {
                        let lone = self.rand(n as u64) as usize;
                        (0..n).map(|i| u32::from(i == lone)).collect()
                    }
                    1 => (0..n).map(|i| u32::from(i >= n / 2)).collect(),
                    _ => (0..n).map(|_| u32::from(self.rand(10) < 3)).collect(),
                };
                let heal_after = 200 + self.rand(safety / 3);
                self.push(at, EventKind::Partition { groups, heal_after });
            }
        }
        // Faults stop here: heal everything; the liveness phase begins.
        self.push(safety_end, EventKind::Heal);
    }

    fn reachable(&self, a: usize, b: usize) -> bool {
        !self.partitioned || self.nodes[a].group == self.nodes[b].group
    }

    fn alive(&self, i: usize) -> bool {
        self.nodes[i].proto.is_some()
    }

    fn latency(&mut self) -> Millis {
        if !self.cfg.faults.latency {
            return 1;
        }
        // A few hops of 1-20 ms links.
        let hops = 1 + self.rand(3);
        (0..hops).map(|_| 1 + self.rand(20)).sum()
    }

    /// Drains what node `i` wants sent and done, and re-arms its timer.
    fn drain(&mut self, i: usize) {
        loop {
            let Some(proto) = self.nodes[i].proto.as_mut() else {
                return;
            };
            let Some(bytes) = proto.poll_transmit() else {
                break;
            };
            self.publish(i, bytes);
        }
        loop {
            let Some(proto) = self.nodes[i].proto.as_mut() else {
                return;
            };
            let Some(effect) = proto.poll_effect() else {
                break;
            };
            self.effect(i, effect);
        }
        if let Some(proto) = &self.nodes[i].proto {
            let t = proto.poll_timeout().max(self.now);
            if self.nodes[i].timer_at != Some(t) {
                self.nodes[i].timer_at = Some(t);
                self.push(t, EventKind::Timer { node: i });
            }
        }
    }

    fn publish(&mut self, from: usize, bytes: Vec<u8>) {
        self.messages += 1;
        let msg = self.messages;
        self.trace.update(&self.now.to_le_bytes());
        self.trace.update(&(from as u64).to_le_bytes());
        self.trace.update(&bytes);
        let bytes = Rc::new(bytes);
        let f = self.cfg.faults;
        for to in 0..self.nodes.len() {
            if to == from || !self.alive(to) || !self.reachable(from, to) {
                continue;
            }
            if self.faults_on && f.loss && self.rand(100) < 2 {
                continue;
            }
            let mut delay = self.latency();
            if self.faults_on && f.reordering && self.rand(100) < 5 {
                delay += self.rand(200);
            }
            self.deliveries += 1;
            self.bytes += bytes.len() as u64;
            self.push(
                self.now + delay,
                EventKind::Deliver {
                    to,
                    from,
                    msg,
                    bytes: bytes.clone(),
                },
            );
            if self.faults_on && f.duplication && self.rand(100) < 1 {
                let later = self.now + delay + self.rand(50);
                self.deliveries += 1;
                self.push(
                    later,
                    EventKind::Deliver {
                        to,
                        from,
                        msg,
                        bytes: bytes.clone(),
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
                self.push(
                    self.now + took,
                    EventKind::TaskDone {
                        node: i,
                        incarnation,
                        run,
                    },
                );
            }
            Effect::Collect {
                job,
                spec,
                result,
                holder,
            } => {
                let outcome = match self.fetch(i, &result, holder) {
                    Some(bytes) => match ops::finalize(&spec.op, &bytes) {
                        Ok(out) => {
                            self.record_output(job, out);
                            Ok(())
                        }
                        Err(e) => {
                            self.violations
                                .push(format!("job {job}: root result does not finalize: {e}"));
                            Ok(())
                        }
                    },
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
        }
    }

    fn record_output(&mut self, job: JobId, out: Vec<u8>) {
        let now = self.now;
        if let Some(t) = self.jobs.iter_mut().find(|t| t.id == job)
            && t.output.is_none()
        {
            t.output = Some(out);
            t.finished_at = Some(now);
        }
    }

    /// A result as node `at` would fetch it: inline, or from a live, reachable holder.
    fn fetch(&self, at: usize, result: &ResultRef, holder: NodeId) -> Option<Vec<u8>> {
        match result {
            ResultRef::Inline(bytes) => Some(bytes.clone()),
            ResultRef::Blob { hash, .. } => {
                let h = self.nodes.iter().position(|n| n.id == holder)?;
                if !self.alive(h) || !self.reachable(at, h) {
                    return None;
                }
                self.nodes[h].blobs.get(hash).map(|b| b.as_ref().clone())
            }
        }
    }

    fn run_task(&mut self, i: usize, run: &TaskRun) -> TaskOutcome {
        let bytes = match &run.work {
            Work::Map {
                source: MapSource::Chunk { index, holder, .. },
            } => {
                // The chunk comes from the submitter, which must be reachable.
                let s = self.nodes.iter().position(|n| n.id == *holder);
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
                let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
                ops::reduce(&run.spec.op, &refs)
            }
        };
        match bytes {
            Ok(bytes) if bytes.len() <= self.inline_max => {
                TaskOutcome::Done(ResultRef::Inline(bytes))
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
    }

    fn step(&mut self, ev: Event) {
        self.now = ev.at;
        match ev.kind {
            EventKind::Deliver {
                to,
                from,
                msg,
                bytes,
            } => {
                if !self.alive(to) || !self.alive(from) || !self.reachable(from, to) {
                    return;
                }
                self.trace.update(&msg.to_le_bytes());
                let from_id = self.nodes[from].id;
                let proto = self.nodes[to].proto.as_mut().expect("alive");
                if let Err(e) = proto.handle_message(self.now, from_id, &bytes) {
                    self.violations
                        .push(format!("node {to} refused a message from node {from}: {e}"));
                }
                self.drain(to);
            }
            EventKind::Timer { node } => {
                if self.nodes[node].timer_at != Some(ev.at) {
                    return; // superseded
                }
                self.nodes[node].timer_at = None;
                if let Some(proto) = self.nodes[node].proto.as_mut() {
                    proto.handle_timeout(self.now);
                    self.drain(node);
                }
            }
            EventKind::TaskDone {
                node,
                incarnation,
                run,
            } => {
                if !self.alive(node) || self.nodes[node].incarnation != incarnation {
                    return;
                }
                let outcome = self.run_task(node, &run);
                if let TaskOutcome::Done(result) = &outcome
                    && let Some(j) = self.jobs.iter().position(|t| t.id == run.job)
                    && run.task
                        == shoal_protocol::tree::Tree::new(self.cfg.tasks, self.cfg.fanin).root()
                {
                    // The root is done: the job's result exists from this moment.
                    let holder = self.nodes[node].id;
                    if let Some(bytes) = self.fetch(node, result, holder) {
                        match ops::finalize(&self.jobs[j].spec.op, &bytes) {
                            Ok(out) => self.record_output(run.job, out),
                            Err(e) => self.violations.push(format!(
                                "job {}: root result does not finalize: {e}",
                                run.job
                            )),
                        }
                    }
                }
                let took = self.cfg.task_ms * 1000;
                let proto = self.nodes[node].proto.as_mut().expect("alive");
                proto.task_finished(self.now, run.job, run.task, outcome, took);
                self.drain(node);
                self.maybe_submitter_leaves();
            }
            EventKind::Join { node } => self.start_node(node),
            EventKind::Submit { job } => {
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
            EventKind::Crash {
                node,
                restart_after,
            } => {
                if self.alive(node) {
                    self.crash(node);
                    if let Some(after) = restart_after {
                        self.push(self.now + after, EventKind::Restart { node });
                    }
                }
            }
            EventKind::Restart { node } => {
                if !self.alive(node) {
                    self.start_node(node);
                }
            }
            EventKind::Partition { groups, heal_after } => {
                if self.faults_on {
                    for (n, g) in self.nodes.iter_mut().zip(groups) {
                        n.group = g;
                    }
                    self.partitioned = true;
                    self.push(self.now + heal_after, EventKind::Heal);
                }
            }
            EventKind::Heal => {
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
        let Some(view) = self.nodes[s]
            .proto
            .as_ref()
            .and_then(|p| p.job_status(&job.id))
        else {
            return;
        };
        if view.maps_done == view.maps {
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
                match ops::finalize(&self.jobs[j].spec.op, &bytes) {
                    Ok(out) => self.record_output(id, out),
                    Err(e) => self
                        .violations
                        .push(format!("job {id}: root result does not finalize: {e}")),
                }
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
        while let Some(ev) = self.queue.pop() {
            if let Some(d) = deadline
                && ev.at > d
            {
                break;
            }
            self.step(ev);
            if !self.faults_on {
                deadline.get_or_insert(self.now + self.cfg.liveness_ms);
                if (0..self.jobs.len())
                    .all(|j| self.jobs[j].output.is_some() || !self.can_finish(j))
                {
                    break;
                }
            }
        }
        // Final accounting.
        let mut completed = 0;
        let mut last_finish = 0;
        for j in 0..self.jobs.len() {
            let done = self.finished(j);
            let t = &self.jobs[j];
            if done {
                completed += 1;
                last_finish = last_finish.max(t.finished_at.unwrap_or(self.now));
                let expected = ops::reference::wordcount(&[(0..self.cfg.tasks)
                    .map(|i| format!("p{i}\n"))
                    .collect::<String>()
                    .into_bytes()]);
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
        let tree = shoal_protocol::tree::Tree::new(self.cfg.tasks.max(1), self.cfg.fanin);
        let slots_total: u64 = self.nodes.iter().map(|n| u64::from(n.slots)).sum();
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
            messages: self.messages,
            deliveries: self.deliveries,
            bytes: self.bytes,
            wall_ms: wall.elapsed().as_millis() as u64,
            tree_depth: tree.depth(),
            tree_tasks: tree.total(),
            slots_total,
            mean_task_ms: self.cfg.task_ms,
            ..Report::default()
        }
        .with_derived()
    }
}
