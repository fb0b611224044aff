//! Drives several protocol nodes on virtual time with an in-memory broadcast network, running
//! tasks with the built-in operators, and checks results against the reference.

use shoal_protocol::node::FIRST_ADVERT_DELAY_MS;
use shoal_protocol::ops::{self, MapInput};
use shoal_protocol::wire;
use shoal_protocol::wire::ResultRef;
use shoal_protocol::*;
use std::collections::{BTreeMap, HashMap, HashSet};

struct Harness {
    nodes: Vec<Node>,
    /// The topics each node listens to.
    subs: Vec<HashSet<Topic>>,
    alive: Vec<bool>,
    now: Millis,
    /// (deliver at, seq, to, from, bytes)
    inflight: BTreeMap<(Millis, u64), (usize, usize, Vec<u8>)>,
    seq: u64,
    blobs: HashMap<(usize, BlobHash), Vec<u8>>,
    /// (finish at, seq) -> (node, run)
    tasks: BTreeMap<(Millis, u64), (usize, TaskRun)>,
    results: HashMap<JobId, Vec<u8>>,
    failures: HashMap<JobId, String>,
    latency: Millis,
    task_ms: Millis,
    runs: usize,
    /// Deliver every message a second time, later, to check idempotence.
    duplicate: bool,
}

impl Harness {
    fn new(slots: &[u32]) -> Self {
        let cfg = Config::default();
        let nodes = slots
            .iter()
            .enumerate()
            .map(|(i, &s)| {
                let cap = Capacity {
                    slots: s,
                    cores: s,
                    mem_mb: 1024,
                };
                Node::new(
                    NodeId::from_identity_bytes(&[i as u8]),
                    cap,
                    cfg.clone(),
                    i as u64,
                )
            })
            .collect();
        Self {
            subs: vec![HashSet::new(); slots.len()],
            nodes,
            alive: vec![true; slots.len()],
            now: 0,
            inflight: BTreeMap::new(),
            seq: 0,
            blobs: HashMap::new(),
            tasks: BTreeMap::new(),
            results: HashMap::new(),
            failures: HashMap::new(),
            latency: 2,
            task_ms: 10,
            runs: 0,
            duplicate: false,
        }
    }

    fn index_of(&self, id: NodeId) -> usize {
        self.nodes.iter().position(|n| n.id() == id).unwrap()
    }

    fn drain(&mut self, i: usize) {
        while let Some(change) = self.nodes[i].poll_subscription() {
            match change {
                Subscription::Join(t) => self.subs[i].insert(t),
                Subscription::Leave(t) => self.subs[i].remove(&t),
            };
        }
        while let Some((topic, bytes)) = self.nodes[i].poll_transmit() {
            for to in 0..self.nodes.len() {
                if to != i && self.subs[to].contains(&topic) {
                    self.seq += 1;
                    self.inflight
                        .insert((self.now + self.latency, self.seq), (to, i, bytes.clone()));
                    if self.duplicate {
                        self.seq += 1;
                        let later = self.now + 3 * self.latency + 1;
                        self.inflight
                            .insert((later, self.seq), (to, i, bytes.clone()));
                    }
                }
            }
        }
        while let Some(effect) = self.nodes[i].poll_effect() {
            match effect {
                Effect::Run(run) => {
                    self.seq += 1;
                    self.runs += 1;
                    self.tasks
                        .insert((self.now + self.task_ms, self.seq), (i, run));
                }
                Effect::Collect {
                    job,
                    spec,
                    result,
                    holder,
                } => {
                    let h = self.index_of(holder);
                    match self.fetch(h, &result) {
                        Some(bytes) => {
                            self.results
                                .insert(job, ops::finalize(&spec.op, &bytes).unwrap());
                            self.nodes[i].job_collected(self.now, job, Ok(()));
                        }
                        None => self.nodes[i].job_collected(self.now, job, Err(holder)),
                    }
                    self.drain(i);
                }
                Effect::JobFailed { job, error } => {
                    self.failures.insert(job, error);
                }
                Effect::Release { .. } | Effect::Prefetch { .. } => {}
            }
        }
    }

    fn fetch(&self, holder: usize, r: &ResultRef) -> Option<Vec<u8>> {
        match r {
            ResultRef::Inline(b) => Some(b.to_vec()),
            ResultRef::Blob { hash, .. } => {
                if !self.alive[holder] {
                    return None;
                }
                self.blobs.get(&(holder, *hash)).cloned()
            }
        }
    }

    fn execute(&mut self, i: usize, run: TaskRun, inputs: &HashMap<u32, Vec<u8>>) {
        let outcome = match &run.work {
            Work::Map {
                source: MapSource::Generated(part),
            } => ops::map(&run.spec.op, MapInput::Generated(*part)).map_err(|e| e.to_string()),
            Work::Map {
                source: MapSource::Chunk { index, .. },
            } => ops::map(&run.spec.op, MapInput::Chunk(&inputs[index])).map_err(|e| e.to_string()),
            Work::Reduce { children } => {
                let mut parts = Vec::new();
                for c in children {
                    match self.fetch(self.index_of(c.holder), &c.result) {
                        Some(b) => parts.push(b),
                        None => {
                            self.nodes[i].task_finished(
                                self.now,
                                run.job,
                                run.task,
                                TaskOutcome::InputLost {
                                    child: c.task,
                                    holder: c.holder,
                                },
                                1,
                            );
                            return;
                        }
                    }
                }
                let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
                ops::reduce(&run.spec.op, &refs).map_err(|e| e.to_string())
            }
        };
        let outcome = match outcome {
            Ok(bytes) if bytes.len() <= 16 => TaskOutcome::Done(ResultRef::Inline(bytes.into())),
            Ok(bytes) => {
                let r = effects::blob_ref(&bytes);
                if let ResultRef::Blob { hash, .. } = r {
                    self.blobs.insert((i, hash), bytes);
                }
                TaskOutcome::Done(r)
            }
            Err(e) => TaskOutcome::Failed(e),
        };
        self.nodes[i].task_finished(self.now, run.job, run.task, outcome, self.task_ms * 1000);
    }

    /// Ends every task now running with `outcome` instead of running it.
    fn end_running_tasks(&mut self, outcome: TaskOutcome) {
        let runs: Vec<(usize, TaskRun)> = std::mem::take(&mut self.tasks).into_values().collect();
        for (i, run) in runs {
            self.nodes[i].task_finished(self.now, run.job, run.task, outcome.clone(), 5);
            self.drain(i);
        }
    }

    /// Runs until `until` or until nothing is left to do for the submitted jobs.
    fn run_until(
        &mut self,
        until: Millis,
        inputs: &HashMap<u32, Vec<u8>>,
        mut stop: impl FnMut(&Self) -> bool,
    ) {
        for i in 0..self.nodes.len() {
            self.drain(i);
        }
        while self.now < until && !stop(self) {
            let next_msg = self.inflight.keys().next().map(|k| k.0);
            let next_task = self.tasks.keys().next().map(|k| k.0);
            let next_timer = (0..self.nodes.len())
                .filter(|&i| self.alive[i])
                .map(|i| self.nodes[i].poll_timeout())
                .min();
            let t = [next_msg, next_task, next_timer]
                .into_iter()
                .flatten()
                .min()
                .unwrap();
            self.now = self.now.max(t);
            while let Some((&k, _)) = self.inflight.iter().next().filter(|(k, _)| k.0 <= self.now) {
                let (to, from, bytes) = self.inflight.remove(&k).unwrap();
                if self.alive[to] && self.alive[from] {
                    let from_id = self.nodes[from].id();
                    self.nodes[to]
                        .handle_message(self.now, from_id, &bytes)
                        .unwrap();
                    self.drain(to);
                }
            }
            while let Some((&k, _)) = self.tasks.iter().next().filter(|(k, _)| k.0 <= self.now) {
                let (i, run) = self.tasks.remove(&k).unwrap();
                if self.alive[i] {
                    self.execute(i, run, inputs);
                    self.drain(i);
                }
            }
            for i in 0..self.nodes.len() {
                if self.alive[i] && self.nodes[i].poll_timeout() <= self.now {
                    self.nodes[i].handle_timeout(self.now);
                    self.drain(i);
                }
            }
        }
    }
}

fn sumsq(end: u64, tasks: u32, fanin: u32) -> JobSpec {
    JobSpec {
        op: Operator::SumSq,
        input: Input::Range {
            start: 0,
            end,
            tasks,
        },
        fanin,
    }
}

#[test]
fn three_nodes_compute_sumsq_exactly_and_share_the_work() {
    let mut h = Harness::new(&[2, 2, 2]);
    let none = HashMap::new();
    h.run_until(1_500, &none, |_| false); // adverts go round
    let spec = sumsq(100_000, 64, 4);
    let job = h.nodes[0].submit(h.now, spec, 1).unwrap();
    h.drain(0);
    h.run_until(60_000, &none, |h| h.results.contains_key(&job));
    assert_eq!(h.results[&job], ops::reference::sumsq(0, 100_000));
    let view = h.nodes[0].job_status(&job).unwrap();
    assert_eq!(view.status, JobStatus::Complete);
    assert!(
        view.workers.len() >= 2,
        "work spread over {:?}",
        view.workers
    );
}

/// Lets adverts go round, submits `spec` from node `submitter`, kills node `victim`
/// `crash_after` ms later, and runs until the job's result arrives (or two minutes pass).
fn run_with_a_crash(
    h: &mut Harness,
    spec: JobSpec,
    submitter: usize,
    victim: usize,
    crash_after: Millis,
) -> Vec<u8> {
    let none = HashMap::new();
    h.run_until(1_500, &none, |_| false);
    let job = h.nodes[submitter].submit(h.now, spec, 1).unwrap();
    h.drain(submitter);
    let crash_at = h.now + crash_after;
    h.run_until(crash_at, &none, |_| false);
    h.alive[victim] = false;
    h.run_until(120_000, &none, |h| h.results.contains_key(&job));
    h.results.remove(&job).expect("the job finished")
}

#[test]
fn a_crashed_worker_s_tasks_finish_elsewhere() {
    let mut h = Harness::new(&[1, 1, 1, 1]);
    h.task_ms = 50;
    let result = run_with_a_crash(&mut h, sumsq(1_000_000, 40, 3), 0, 2, 400);
    assert_eq!(result, ops::reference::sumsq(0, 1_000_000));
}

#[test]
fn a_job_waits_while_no_node_has_slots() {
    let mut h = Harness::new(&[0, 0]);
    let none = HashMap::new();
    h.run_until(1_500, &none, |_| false);
    let job = h.nodes[0].submit(h.now, sumsq(100, 2, 2), 1).unwrap();
    h.run_until(10_000, &none, |_| false);
    assert_eq!(
        h.nodes[0].job_status(&job).unwrap().status,
        JobStatus::WaitingForCapacity
    );
    assert_eq!(h.runs, 0);
}

#[test]
fn a_task_that_always_fails_fails_the_job_after_the_attempt_limit() {
    let mut h = Harness::new(&[1, 1]);
    let none = HashMap::new();
    h.run_until(1_500, &none, |_| false);
    // A chunk job whose chunk index has no input in this harness map: we feed a bad op instead.
    let spec = JobSpec {
        op: Operator::Pi,
        input: Input::Samples {
            total: 10,
            tasks: 2,
        },
        fanin: 2,
    };
    let job = h.nodes[0].submit(h.now, spec, 1).unwrap();
    // Make every task fail by reporting failure for whatever runs.
    h.drain(0);
    for _ in 0..20 {
        h.end_running_tasks(TaskOutcome::Failed("boom".into()));
        let t = h.now + 300;
        h.run_until(t, &none, |h| !h.tasks.is_empty());
        if h.failures.contains_key(&job) {
            break;
        }
    }
    let error = &h.failures[&job];
    assert!(
        error.contains("boom") && error.contains("3 times"),
        "{error}"
    );
}

#[test]
fn garbage_from_a_peer_is_counted_and_dropped() {
    let mut node = Node::new(
        NodeId([1; 32]),
        Capacity {
            slots: 1,
            cores: 1,
            mem_mb: 1,
        },
        Config::default(),
        0,
    );
    assert!(
        node.handle_message(0, NodeId([2; 32]), &[0xff; 40])
            .is_err()
    );
    assert_eq!(node.stats().invalid_messages, 1);
}

#[test]
fn a_hundred_thousand_tiny_tasks_need_far_fewer_gossip_messages() {
    let mut h = Harness::new(&[2, 2]);
    h.task_ms = 0;
    let none = HashMap::new();
    h.run_until(1_500, &none, |_| false);
    let before: u64 = h.nodes.iter().map(|n| n.stats().messages_out).sum();
    let job = h.nodes[0]
        .submit(h.now, sumsq(100_000, 100_000, 4), 1)
        .unwrap();
    h.drain(0);
    h.run_until(600_000, &none, |h| h.results.contains_key(&job));
    assert_eq!(h.results[&job], ops::reference::sumsq(0, 100_000));
    let sent: u64 = h.nodes.iter().map(|n| n.stats().messages_out).sum::<u64>() - before;
    let total_tasks = h.nodes[0].job_status(&job).unwrap().total as u64;
    assert!(
        sent * 20 < total_tasks,
        "{sent} messages for {total_tasks} tasks"
    );
}

#[test]
fn duplicated_messages_and_twice_run_tasks_still_count_each_partition_once() {
    let mut h = Harness::new(&[1, 1, 1]);
    h.duplicate = true;
    // A worker dies after some of its results exist: they are recomputed elsewhere, and some
    // tasks run twice.
    let result = run_with_a_crash(&mut h, sumsq(300_000, 90, 3), 1, 0, 200);
    assert_eq!(result, ops::reference::sumsq(0, 300_000));
}

#[test]
fn unavailable_inputs_are_retried_without_failing_the_job() {
    let mut h = Harness::new(&[1, 1]);
    let none = HashMap::new();
    h.run_until(1_500, &none, |_| false);
    let job = h.nodes[0].submit(h.now, sumsq(1000, 2, 2), 1).unwrap();
    h.drain(0);
    // Ten rounds of "input unavailable" (more than the attempt limit), then let tasks run.
    for _ in 0..10 {
        h.end_running_tasks(TaskOutcome::Unavailable("partitioned".into()));
        let t = h.now + 1_500;
        h.run_until(t, &none, |h| !h.tasks.is_empty());
    }
    assert!(h.failures.is_empty(), "{:?}", h.failures);
    h.run_until(h.now + 60_000, &none, |h| h.results.contains_key(&job));
    assert_eq!(h.results[&job], ops::reference::sumsq(0, 1000));
}

fn advert_from(node: &mut Node, now: Millis, peer: u32, interval_ms: u32) {
    let env = wire::Envelope {
        seq: u64::from(peer),
        body: wire::Message::Advert(wire::Advert {
            slots_total: 1,
            slots_free: 1,
            cores: 1,
            mem_mb: 1,
            load_milli: 0,
            interval_ms,
            first: false,
        }),
    };
    let id = NodeId::from_identity_bytes(&peer.to_le_bytes());
    node.handle_message(now, id, &env.encode()).unwrap();
}

/// The advert this node sends next, decoded.
fn next_advert(node: &mut Node, now: Millis) -> wire::Advert {
    node.handle_timeout(now);
    while let Some((topic, bytes)) = node.poll_transmit() {
        if let wire::Message::Advert(a) = wire::Envelope::decode(&bytes).unwrap().body {
            assert_eq!(topic, Topic::Adverts(topic::shard_of(&node.id())));
            return a;
        }
    }
    panic!("no advert sent");
}

/// A started lone node that has heard adverts from `peers` peers (0, 1, …), each advertising
/// every `interval_ms`.
fn node_hearing(peers: u32, interval_ms: u32) -> Node {
    let mut node = lone_node();
    node.handle_timeout(0);
    for peer in 0..peers {
        advert_from(&mut node, 10, peer, interval_ms);
    }
    node
}

fn lone_node() -> Node {
    Node::new(
        NodeId([9; 32]),
        Capacity {
            slots: 1,
            cores: 1,
            mem_mb: 1,
        },
        Config::default(),
        0,
    )
}

#[test]
fn adverts_slow_down_in_a_large_view_and_peers_expire_after_their_own_periods() {
    let mut node = lone_node();
    node.handle_timeout(0); // starts: the first advert waits to hear the mesh
    assert!(node.poll_transmit().is_none());
    assert_eq!(
        next_advert(&mut node, FIRST_ADVERT_DELAY_MS).interval_ms,
        1_000,
        "a small mesh adverts every second"
    );
    // 400 peers, each advertising every 10 s, heard one every 25 ms.
    for peer in 0..400 {
        let now = 1_000 + 25 * Millis::from(peer);
        node.handle_timeout(now);
        while node.poll_transmit().is_some() {}
        advert_from(&mut node, now, peer, 10_000);
    }
    // 400 peers at a receive budget of 30 adverts/s: one advert every 13.3 s. (A new neighbour
    // asks for an advert now rather than at the end of the current period.)
    node.neighbour_joined(11_000);
    let interval = next_advert(&mut node, 11_100).interval_ms;
    assert!((12_700..=14_000).contains(&interval), "{interval}");
    // A peer advertising every 10 s lives 3.5 periods after its last advert.
    assert_eq!(node.peers(1_000 + 34_000).len(), 400);
    assert_eq!(node.peers(1_000 + 25 * 400 + 35_000).len(), 0);
}

#[test]
fn a_crowded_view_listens_to_fewer_advert_shards() {
    let mut node = lone_node();
    let mut joined = HashSet::new();
    while let Some(Subscription::Join(t)) = node.poll_subscription() {
        joined.insert(t);
    }
    assert_eq!(
        joined.len(),
        1 + topic::SHARDS as usize,
        "jobs and every shard"
    );
    // 2,000 peers spread over every shard: the view narrows as soon as it passes twice its
    // target of 256, and again, until it holds fewer than 512.
    for peer in 0..2_000 {
        advert_from(&mut node, 10, peer, 20_000);
    }
    let mut left = 0;
    while let Some(change) = node.poll_subscription() {
        assert!(matches!(change, Subscription::Leave(Topic::Adverts(_))));
        left += 1;
    }
    assert!(left >= topic::SHARDS as usize / 2, "left {left} shards");
    let kept = node.peers(20).len();
    assert!((100..512).contains(&kept), "{kept} peers kept");
}

/// The announcement `node` published last, and whether it subscribed to the job's own topic.
fn announced(node: &mut Node) -> (wire::Announce, bool) {
    let mut own_topic_joined = false;
    while let Some(change) = node.poll_subscription() {
        if let Subscription::Join(Topic::Job(_)) = change {
            own_topic_joined = true;
        }
    }
    let mut last = None;
    while let Some((topic, bytes)) = node.poll_transmit() {
        if let wire::Message::Announce(a) = wire::Envelope::decode(&bytes).unwrap().body {
            assert_eq!(topic, Topic::Jobs);
            last = Some(a);
        }
    }
    (last.expect("an announcement"), own_topic_joined)
}

#[test]
fn a_job_of_the_whole_mesh_uses_the_jobs_topic_and_one_of_part_of_it_its_own() {
    // Three peers: all members, no topic of its own.
    let mut small = node_hearing(3, 1_000);
    small.submit(100, sumsq(1000, 10, 4), 1).unwrap();
    let (a, joined) = announced(&mut small);
    assert_eq!(a.members.len(), 4);
    assert!(!a.own_topic && !joined);
    // 400 peers: 256 members at most, so the job gets a topic of its own.
    let mut large = node_hearing(400, 10_000);
    large.submit(100, sumsq(1000, 10, 4), 1).unwrap();
    let (a, joined) = announced(&mut large);
    assert_eq!(a.members.len(), 256, "255 peers and the submitter");
    assert!(a.own_topic && joined);
}

/// A worker that `advert_from(.., peer 0, ..)` speaks for, and a submitter that counts on it.
fn submitter_and_worker() -> (Node, Node) {
    let submitter = node_hearing(1, 1_000);
    let worker = Node::new(
        NodeId::from_identity_bytes(&0u32.to_le_bytes()),
        Capacity {
            slots: 1,
            cores: 1,
            mem_mb: 1,
        },
        Config::default(),
        1,
    );
    (submitter, worker)
}

fn deliver(to: &mut Node, now: Millis, from: NodeId, body: wire::Message) {
    let bytes = wire::Envelope { seq: now, body }.encode();
    to.handle_message(now, from, &bytes).unwrap();
}

/// What `node` published, decoded, and whether it started a task.
fn outputs(node: &mut Node) -> (Vec<wire::Message>, bool) {
    let mut sent = Vec::new();
    while let Some((_, bytes)) = node.poll_transmit() {
        sent.push(wire::Envelope::decode(&bytes).unwrap().body);
    }
    let mut ran = false;
    while let Some(effect) = node.poll_effect() {
        ran |= matches!(effect, Effect::Run(_));
    }
    (sent, ran)
}

#[test]
fn an_announcement_arriving_after_the_job_s_end_starts_nothing() {
    let (mut submitter, mut worker) = submitter_and_worker();
    let from = submitter.id();
    let job = submitter.submit(100, sumsq(1000, 10, 4), 7).unwrap();
    let (announce, _) = announced(&mut submitter);
    assert!(announce.members.iter().any(|m| m.id == worker.id()));
    // In order, the announcement makes the worker a member that runs the task.
    let (_, mut in_order) = submitter_and_worker();
    in_order.handle_timeout(0);
    deliver(
        &mut in_order,
        101,
        from,
        wire::Message::Announce(announce.clone()),
    );
    let o = outputs(&mut in_order);
    assert!(o.1, "the worker runs tasks: {:?}", o.0);
    // The end first, then the announcement: nothing starts, and nothing is pulsed later.
    worker.handle_timeout(0);
    let end = wire::Finished {
        job,
        epoch: announce.epoch,
        ok: true,
    };
    deliver(&mut worker, 101, from, wire::Message::Finished(end));
    deliver(&mut worker, 102, from, wire::Message::Announce(announce));
    let (sent, ran) = outputs(&mut worker);
    assert!(!ran);
    assert!(sent.is_empty(), "{sent:?}");
    assert!(worker.job_status(&job).is_none());
    worker.handle_timeout(5_000);
    let (sent, _) = outputs(&mut worker);
    assert!(
        !sent.iter().any(|m| matches!(m, wire::Message::Pulse(_))),
        "{sent:?}"
    );
}

#[test]
fn joining_a_job_pulses_that_job_only() {
    let (mut submitter, mut worker) = submitter_and_worker();
    let from = submitter.id();
    worker.handle_timeout(0);
    let mut jobs = Vec::new();
    for (i, end) in [1000u64, 2000].into_iter().enumerate() {
        let now = 100 + i as Millis;
        let job = submitter
            .submit(now, sumsq(end, 1, 4), 7 + i as u64)
            .unwrap();
        let (announce, _) = announced(&mut submitter);
        deliver(&mut worker, now, from, wire::Message::Announce(announce));
        let (sent, _) = outputs(&mut worker);
        let pulsed: Vec<JobId> = sent
            .iter()
            .filter_map(|m| match m {
                wire::Message::Pulse(p) => Some(p.job),
                _ => None,
            })
            .collect();
        assert_eq!(pulsed, vec![job], "job {i}");
        jobs.push(job);
    }
    // The periodic round pulses both.
    worker.handle_timeout(100 + Config::default().pulse_interval_ms);
    let (sent, _) = outputs(&mut worker);
    let pulses = sent
        .iter()
        .filter(|m| matches!(m, wire::Message::Pulse(_)))
        .count();
    assert_eq!(pulses, jobs.len());
}
