//! Drives several protocol nodes on virtual time with an in-memory broadcast network, running
//! tasks with the built-in operators, and checks results against the reference.

use shoal_ops::{self as ops, MapInput};
use shoal_protocol::harness::{Env, Harness, Published};
use shoal_protocol::ids::IdSet;
use shoal_protocol::node::FIRST_ADVERT_DELAY_MS;
use shoal_protocol::wire;
use shoal_protocol::wire::ResultRef;
use shoal_protocol::*;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

/// The tests' environment of the shared harness: a broadcast network with a fixed latency,
/// tasks that take a fixed time and run the built-in operators, and the jobs' outcomes.
struct Net {
    latency: Millis,
    /// Extra latency of some links, by (from, to).
    slow: HashMap<(u32, u32), Millis>,
    task_ms: Millis,
    /// Tasks started so far.
    runs: usize,
    /// Every task run, as it ends: (node, job, task, virtual time it started).
    started: Vec<(usize, JobId, u32, Millis)>,
    /// When each job's result arrived.
    finished_at: HashMap<JobId, Millis>,
    /// Deliver every message a second time, later, to check idempotence.
    duplicate: bool,
    /// Input chunks by index, for jobs over chunks.
    inputs: HashMap<u32, Vec<u8>>,
    /// When set, every task ends with this outcome instead of running.
    forced: Option<TaskOutcome>,
    /// Nodes that lie: each result they report is a plausible wrong one (the reduce of the
    /// true result with itself: double the counts).
    liars: HashSet<usize>,
    results: HashMap<JobId, Vec<u8>>,
    failures: HashMap<JobId, String>,
    /// Outputs kept, by node and job.
    kept: HashMap<(usize, JobId), Vec<u8>>,
    /// Pieces of inputs copied (`Effect::Keep` done): (node, job, piece).
    copied: Vec<(usize, JobId, u32)>,
    /// How long each node takes to collect a root result (none: at once).
    collect_ms: HashMap<usize, Millis>,
    /// Endings kept (`Effect::Ended`), by node and job.
    endings: HashMap<(usize, JobId), durable::Ending>,
    /// The input of jobs over chunks is nowhere to be read: no copy of it can be made and no
    /// map task over a chunk can read its chunk (as when it left with its submitter).
    input_gone: bool,
}

impl Env for Net {
    type Event = ();

    fn publish(&mut self, h: &mut Harness<()>, msg: Rc<Published>, _bytes: &[u8]) {
        let listeners: Vec<u32> = h.topics().listeners(&msg.topic).to_vec();
        for to in listeners {
            if to == msg.from {
                continue;
            }
            let extra = self.slow.get(&(msg.from, to)).copied().unwrap_or(0);
            h.deliver_at(h.now() + self.latency + extra, to, msg.clone());
            if self.duplicate {
                h.deliver_at(h.now() + 3 * self.latency + 1, to, msg.clone());
            }
        }
    }

    fn invalid_publication(&mut self, node: usize, error: wire::InvalidMessage) {
        panic!("node {node} published an invalid message: {error}");
    }

    fn deliverable(&mut self, h: &Harness<()>, _to: usize, msg: &Published) -> bool {
        h.alive(msg.from as usize)
    }

    fn task_duration(&mut self, _node: usize, _run: &TaskRun) -> Millis {
        self.runs += 1;

        self.task_ms
    }

    fn task_outcome(&mut self, h: &mut Harness<()>, i: usize, run: &TaskRun) -> (TaskOutcome, u64) {
        self.started
            .push((i, run.job, run.task, h.now().saturating_sub(self.task_ms)));
        if let Some(outcome) = &self.forced {
            return (outcome.clone(), 5);
        }
        let computed = match &run.work {
            Work::Map {
                source: MapSource::Generated(part),
            } => ops::map(&run.spec.op, MapInput::Generated(*part)),
            Work::Map {
                source: MapSource::Run { tasks },
            } => ops::map_run(&run.spec, tasks.clone()),
            Work::Map {
                source: MapSource::Chunk { .. },
            } if self.input_gone => {
                return (TaskOutcome::Unavailable("the input is gone".into()), 5);
            }
            Work::Map {
                source: MapSource::Chunk { index, .. },
            } => ops::map(&run.spec.op, MapInput::Chunk(&self.inputs[index])),
            Work::Reduce { children } => {
                let mut parts = Vec::new();
                for c in children {
                    match h.fetch(&c.result, &c.holder) {
                        Some(b) => parts.push(b),
                        None => {
                            let lost = TaskOutcome::InputLost {
                                child: c.task,
                                holder: c.holder,
                            };
                            return (lost, 1);
                        }
                    }
                }
                let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
                ops::reduce(&run.spec.op, &refs)
            }
        };
        let computed = match computed {
            Ok(bytes) if self.liars.contains(&i) => ops::reduce(&run.spec.op, &[&bytes, &bytes]),
            other => other,
        };
        let outcome = match computed {
            Ok(bytes) => TaskOutcome::Done(h.keep_result(i, bytes, 16)),
            Err(e) => TaskOutcome::Failed(e.to_string()),
        };
        (outcome, self.task_ms * 1000)
    }

    fn collect(
        &mut self,
        h: &Harness<()>,
        node: usize,
        job: JobId,
        spec: &JobSpec,
        result: &ResultRef,
        holder: NodeId,
    ) -> Result<durable::OutputRef, NodeId> {
        let bytes = h.fetch(result, &holder).ok_or(holder)?;
        let output = ops::finalize(&spec.op, &bytes).unwrap();
        self.finished_at.entry(job).or_insert(h.now());
        let kept = durable::OutputRef {
            hash: BlobHash::of(&output),
            len: output.len() as u64,
        };
        self.kept.insert((node, job), output.clone());
        self.results.entry(job).or_insert(output);
        Ok(kept)
    }

    fn keep_piece(
        &mut self,
        h: &Harness<()>,
        node: usize,
        job: JobId,
        piece: u32,
        holders: &[NodeId],
    ) -> bool {
        let ok = !self.input_gone
            && holders
                .iter()
                .any(|n| h.index_of(n).is_some_and(|i| h.alive(i)));
        if ok {
            self.copied.push((node, job, piece));
        }
        ok
    }

    fn collect_duration(&mut self, node: usize) -> Millis {
        self.collect_ms.get(&node).copied().unwrap_or(0)
    }

    fn ended(&mut self, node: usize, job: JobId, ending: &durable::Ending) {
        self.endings.insert((node, job), ending.clone());
    }

    fn job_failed(&mut self, _node: usize, job: JobId, error: String) {
        self.failures.insert(job, error);
    }

    fn custom(&mut self, _h: &mut Harness<()>, _event: ()) {}
}

/// Nodes on the shared harness with the tests' environment.
struct Mesh {
    h: Harness<()>,
    net: Net,
}

impl Mesh {
    /// Nodes with these slot counts, all started at time 0.
    fn new(slots: &[u32]) -> Self {
        let mut mesh = Self {
            h: Harness::new(slots.len()),
            net: Net {
                latency: 2,
                slow: HashMap::new(),
                task_ms: 10,
                runs: 0,
                started: Vec::new(),
                finished_at: HashMap::new(),
                duplicate: false,
                inputs: HashMap::new(),
                forced: None,
                liars: HashSet::new(),
                results: HashMap::new(),
                failures: HashMap::new(),
                kept: HashMap::new(),
                copied: Vec::new(),
                collect_ms: HashMap::new(),
                endings: HashMap::new(),
                input_gone: false,
            },
        };
        for (i, &s) in slots.iter().enumerate() {
            let cap = Capacity {
                slots: s,
                cores: s,
                mem_mb: 1024,
            };
            let node = Node::new(
                NodeId::from_identity_bytes(&[i as u8]),
                cap,
                Config::default(),
                i as u64,
            );
            mesh.h.start(i, node, &mut mesh.net);
        }
        mesh
    }

    fn now(&self) -> Millis {
        self.h.now()
    }

    /// Submits `spec` from node `i`.
    fn submit(&mut self, i: usize, spec: JobSpec) -> JobId {
        let now = self.h.now();
        let job = self.h.node_mut(i).unwrap().submit(now, spec, 1).unwrap();
        self.h.drain(i, &mut self.net);
        job
    }

    fn node(&self, i: usize) -> &Node {
        self.h.node(i).unwrap()
    }

    fn run_until(&mut self, until: Millis, stop: impl FnMut(&Net) -> bool) {
        let mut stop = stop;
        self.h.run_until(until, &mut self.net, |_, net| stop(net));
    }

    /// Runs for `ms` of virtual time.
    fn run_for(&mut self, ms: Millis) {
        let until = self.now() + ms;
        self.run_until(until, |_| false);
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
        trust: Default::default(),
        sched: Default::default(),
        keep: Default::default(),
        reuse: true,
    }
}

#[test]
fn three_nodes_compute_sumsq_exactly_and_share_the_work() {
    let mut h = Mesh::new(&[2, 2, 2]);
    h.run_until(1_500, |_| false); // adverts go round
    let spec = sumsq(100_000, 64, 4);
    let job = h.submit(0, spec);
    h.run_until(60_000, |net| net.results.contains_key(&job));
    assert_eq!(h.net.results[&job], ops::reference::sumsq(0, 100_000));
    let view = h.node(0).job_status(&job).unwrap();
    assert_eq!(view.status, JobStatus::Complete);
    assert!(
        view.workers.len() >= 2,
        "work spread over {:?}",
        view.workers
    );
}

/// What node `i` has published so far besides adverts: announcements, batches, pulses, ends.
fn job_traffic(h: &Mesh, i: usize) -> u64 {
    h.node(i).stats().out_by_kind[1..].iter().sum()
}

#[test]
fn a_job_that_fits_the_submitter_s_idle_slots_runs_there_alone_without_a_hop() {
    let mut h = Mesh::new(&[2, 2, 2]);
    h.run_until(1_500, |_| false);
    let before = job_traffic(&h, 0);
    let submitted = h.now();
    let job = h.submit(0, sumsq(10_000, 2, 4));
    h.run_until(60_000, |net| net.results.contains_key(&job));
    assert_eq!(h.net.results[&job], ops::reference::sumsq(0, 10_000));
    // Both maps started at once on the submitter, then the root reduce: two tasks' time and
    // not one hop.
    assert_eq!(h.net.finished_at[&job] - submitted, 2 * h.net.task_ms);
    assert_eq!(job_traffic(&h, 0), before, "nothing about the job went out");
    let view = h.node(0).job_status(&job).unwrap();
    assert!(view.alone);
    assert_eq!(view.workers, vec![(h.node(0).id(), 3)]);
    assert!(h.node(1).job_status(&job).is_none() && h.node(2).job_status(&job).is_none());

    // One task more than the idle slots: the mesh path, announced and shared.
    let job = h.submit(0, sumsq(10_000, 3, 4));
    h.run_until(60_000, |net| net.results.contains_key(&job));
    assert_eq!(h.net.results[&job], ops::reference::sumsq(0, 10_000));
    assert!(job_traffic(&h, 0) > before);
    assert!(!h.node(0).job_status(&job).unwrap().alone);
}

/// Lets adverts go round, submits `spec` from node `submitter`, kills node `victim`
/// `crash_after` ms later, and runs until the job's result arrives (or two minutes pass).
fn run_with_a_crash(
    h: &mut Mesh,
    spec: JobSpec,
    submitter: usize,
    victim: usize,
    crash_after: Millis,
) -> Vec<u8> {
    h.run_until(1_500, |_| false);
    let job = h.submit(submitter, spec);
    h.run_for(crash_after);
    h.h.crash(victim);
    h.run_until(120_000, |net| net.results.contains_key(&job));
    h.net.results.remove(&job).expect("the job finished")
}

#[test]
fn a_crashed_worker_s_tasks_finish_elsewhere() {
    let mut h = Mesh::new(&[1, 1, 1, 1]);
    h.net.task_ms = 50;
    let result = run_with_a_crash(&mut h, sumsq(1_000_000, 40, 3), 0, 2, 400);
    assert_eq!(result, ops::reference::sumsq(0, 1_000_000));
}

#[test]
fn a_job_waits_while_no_node_has_slots() {
    let mut h = Mesh::new(&[0, 0]);
    h.run_until(1_500, |_| false);
    let job = h.submit(0, sumsq(100, 2, 2));
    h.run_until(10_000, |_| false);
    assert_eq!(
        h.node(0).job_status(&job).unwrap().status,
        JobStatus::WaitingForCapacity
    );
    assert_eq!(h.net.runs, 0);
}

#[test]
fn a_task_that_always_fails_fails_the_job_after_the_attempt_limit() {
    let mut h = Mesh::new(&[1, 1]);
    h.run_until(1_500, |_| false);
    // A chunk job whose chunk index has no input in this harness map: we feed a bad op instead.
    let spec = JobSpec {
        op: Operator::Pi,
        input: Input::Samples {
            total: 10,
            tasks: 2,
        },
        fanin: 2,
        trust: Default::default(),
        sched: Default::default(),
        keep: Default::default(),
        reuse: true,
    };
    // Every task that runs fails.
    h.net.forced = Some(TaskOutcome::Failed("boom".into()));
    let job = h.submit(0, spec);
    h.run_until(60_000, |net| net.failures.contains_key(&job));
    let error = &h.net.failures[&job];
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
    let mut h = Mesh::new(&[2, 2]);
    h.net.task_ms = 0;
    h.run_until(1_500, |_| false);
    let sent_by_all = |h: &Mesh| -> u64 { (0..2).map(|i| h.node(i).stats().messages_out).sum() };
    let before = sent_by_all(&h);
    let job = h.submit(0, sumsq(100_000, 100_000, 4));
    h.run_until(600_000, |net| net.results.contains_key(&job));
    assert_eq!(h.net.results[&job], ops::reference::sumsq(0, 100_000));
    let sent = sent_by_all(&h) - before;
    let total_tasks = h.node(0).job_status(&job).unwrap().total as u64;
    assert!(
        sent * 20 < total_tasks,
        "{sent} messages for {total_tasks} tasks"
    );
}

#[test]
fn many_tiny_tasks_run_a_subtree_at_a_time_and_count_as_the_tasks_they_hold() {
    let mut h = Mesh::new(&[2, 2]);
    h.net.task_ms = 0;
    h.run_until(1_500, |_| false);
    let spec = sumsq(100_000, 100_000, 4);
    let (runs, tree) = (spec.runs(), spec.tree());
    assert_eq!(runs.tasks_per_run(), 1024, "runs of 4^5 tasks");
    let job = h.submit(0, spec);
    h.run_until(600_000, |net| net.results.contains_key(&job));
    assert_eq!(h.net.results[&job], ops::reference::sumsq(0, 100_000));
    // The machine ran a run per 1024 tasks and the reduces above them, each once.
    let started = h.net.started.iter().filter(|s| s.1 == job).count();
    assert_eq!(
        started as u32,
        tree.total(),
        "{} runs and reduces",
        tree.total()
    );
    // What the job reports counts every task of its tree, each once.
    let view = h.node(0).job_status(&job).unwrap();
    let full = shoal_protocol::tree::Tree::new(100_000, 4);
    assert_eq!(
        (view.maps, view.total, view.depth),
        (100_000, full.total(), full.depth())
    );
    assert_eq!((view.done, view.maps_done), (view.total, view.maps));
    let spread: u32 = view.workers.iter().map(|(_, n)| n).sum();
    assert_eq!(spread, view.total, "{:?}", view.workers);
    assert_eq!(
        view.workers.len(),
        2,
        "both nodes ran runs: {:?}",
        view.workers
    );
}

#[test]
fn duplicated_messages_and_twice_run_tasks_still_count_each_partition_once() {
    let mut h = Mesh::new(&[1, 1, 1]);
    h.net.duplicate = true;
    // A worker dies after some of its results exist: they are recomputed elsewhere, and some
    // tasks run twice.
    let result = run_with_a_crash(&mut h, sumsq(300_000, 90, 3), 1, 0, 200);
    assert_eq!(result, ops::reference::sumsq(0, 300_000));
}

#[test]
fn unavailable_inputs_are_retried_without_failing_the_job() {
    let mut h = Mesh::new(&[1, 1]);
    h.run_until(1_500, |_| false);
    // Ten runs of "input unavailable" (more than the attempt limit), then let tasks run.
    h.net.forced = Some(TaskOutcome::Unavailable("partitioned".into()));
    let job = h.submit(0, sumsq(1000, 2, 2));
    h.run_until(60_000, |net| net.runs >= 10);
    assert!(h.net.runs >= 10, "only {} runs", h.net.runs);
    assert!(h.net.failures.is_empty(), "{:?}", h.net.failures);
    h.net.forced = None;
    let until = h.now() + 60_000;
    h.run_until(until, |net| net.results.contains_key(&job));
    assert_eq!(h.net.results[&job], ops::reference::sumsq(0, 1000));
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
            tags: Vec::new(),
            shares: Vec::new(),
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
    node.handle_peer_subscribed(11_000, Topic::Jobs);
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
        ending: shoal_protocol::durable::Ending::Expired,
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
fn joining_a_job_pulses_nothing_until_the_periodic_round() {
    let (mut submitter, mut worker) = submitter_and_worker();
    let from = submitter.id();
    worker.handle_timeout(0);
    let mut jobs = Vec::new();
    for (i, end) in [1000u64, 2000].into_iter().enumerate() {
        let now = 100 + i as Millis;
        let job = submitter
            .submit(now, sumsq(end, 2, 4), 7 + i as u64)
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
        // The announcement made the worker live to the others; a job shorter than the pulse
        // period (a one-task job) is announcement, batch and end, nothing more.
        assert!(pulsed.is_empty(), "job {i}: {pulsed:?}");
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

/// The ids of the nodes of `mesh` with these indices.
fn ids(mesh: &Mesh, nodes: &[usize]) -> IdSet<NodeId> {
    nodes.iter().map(|&i| mesh.node(i).id()).collect()
}

#[test]
fn a_node_that_does_not_list_a_submitter_never_runs_its_tasks() {
    let mut h = Mesh::new(&[2, 2, 2]);
    // Node 2 works only for node 1.
    let only_node_1 = ids(&h, &[1]);
    h.h.node_mut(2).unwrap().set_submitters(Some(only_node_1));
    h.run_until(1_500, |_| false);
    let job = h.submit(0, sumsq(200_000, 40, 4));
    h.run_until(60_000, |net| net.results.contains_key(&job));
    assert_eq!(h.net.results[&job], ops::reference::sumsq(0, 200_000));
    let view = h.node(0).job_status(&job).unwrap();
    let outsider = h.node(2).id();
    assert!(
        view.workers.iter().all(|(id, _)| *id != outsider),
        "node 2 ran tasks: {:?}",
        view.workers
    );
    assert_eq!(
        h.node(2).stats().jobs_declined,
        1,
        "declined once, not per announcement"
    );
    // A job of node 1's runs there too.
    let job = h.submit(1, sumsq(300_000, 40, 4));
    h.run_until(h.now() + 60_000, |net| net.results.contains_key(&job));
    let view = h.node(1).job_status(&job).unwrap();
    assert!(
        view.workers.iter().any(|(id, _)| *id == outsider),
        "{:?}",
        view.workers
    );
}

#[test]
fn a_job_nobody_accepts_fails_with_a_reason_instead_of_waiting_forever() {
    let mut h = Mesh::new(&[0, 2, 2]);
    let nobody = IdSet::default();
    for i in [1, 2] {
        h.h.node_mut(i)
            .unwrap()
            .set_submitters(Some(nobody.clone()));
    }
    h.run_until(1_500, |_| false);
    let job = h.submit(0, sumsq(1_000, 4, 4));
    h.run_until(30_000, |net| net.failures.contains_key(&job));
    let error = h.net.failures.get(&job).expect("the job failed");
    assert!(error.contains("no node accepts jobs from you"), "{error}");
    assert_eq!(h.net.runs, 0);
}

fn replicated(spec: JobSpec, replicas: u8, verify_ppm: u32) -> JobSpec {
    JobSpec {
        trust: Trust {
            replicas,
            verify_ppm,
        },
        ..spec
    }
}

/// Node `i`'s id in these meshes.
fn id_of(i: usize) -> NodeId {
    NodeId::from_identity_bytes(&[i as u8])
}

#[test]
fn with_two_replicas_a_liar_is_outvoted_suspected_and_left_out_of_the_next_job() {
    let mut h = Mesh::new(&[1, 1, 1, 1, 1]);
    h.net.liars.insert(3);
    h.run_until(1_500, |_| false);
    let job = h.submit(0, replicated(sumsq(1_000_000, 40, 4), 2, 0));
    h.run_until(120_000, |net| net.results.contains_key(&job));
    assert_eq!(h.net.results[&job], ops::reference::sumsq(0, 1_000_000));
    let now = h.now();
    let view = h.node(0).job_status(&job).unwrap();
    assert_eq!(view.replicas, 2);
    assert!(
        view.suspects
            .iter()
            .any(|(id, lost)| *id == id_of(3) && *lost > 0),
        "the liar is a suspect of the job: {:?}",
        view.suspects
    );
    assert!(
        view.suspects.iter().all(|(id, _)| *id == id_of(3)),
        "only the liar lost votes: {:?}",
        view.suspects
    );
    assert!(h.node(0).is_suspect(&id_of(3), now));
    let peer = h.node(0).peers(now).into_iter().find(|p| p.id == id_of(3));
    assert!(peer.is_some_and(|p| p.suspect_ms > 0 && p.lost_votes > 0));

    // The next job does not ask the suspect, so it is exact with no vote lost.
    let second = h.submit(0, replicated(sumsq(500_000, 20, 4), 2, 0));
    h.run_until(h.now() + 120_000, |net| net.results.contains_key(&second));
    assert_eq!(h.net.results[&second], ops::reference::sumsq(0, 500_000));
    let view = h.node(0).job_status(&second).unwrap();
    assert!(view.suspects.is_empty(), "{:?}", view.suspects);
    assert!(
        view.workers.iter().all(|(id, _)| *id != id_of(3)),
        "the suspect did no work: {:?}",
        view.workers
    );
}

#[test]
fn with_one_replica_a_liar_corrupts_the_result() {
    // What replicas are for: the same lie, taken on faith.
    let mut h = Mesh::new(&[1, 1, 1]);
    h.net.liars.insert(1);
    h.run_until(1_500, |_| false);
    let job = h.submit(0, sumsq(1_000_000, 40, 4));
    h.run_until(120_000, |net| net.results.contains_key(&job));
    assert_ne!(h.net.results[&job], ops::reference::sumsq(0, 1_000_000));
    assert!(h.node(0).job_status(&job).unwrap().suspects.is_empty());
}

#[test]
fn spot_checks_catch_a_liar_and_check_about_the_fraction_asked() {
    let mut h = Mesh::new(&[1, 1, 1, 1]);
    h.net.liars.insert(2);
    h.run_until(1_500, |_| false);
    let tasks = 200;
    let job = h.submit(0, replicated(sumsq(1_000_000, tasks, 8), 1, 500_000));
    h.run_until(300_000, |net| net.results.contains_key(&job));
    assert!(h.net.results.contains_key(&job), "the job finished");
    let view = h.node(0).job_status(&job).unwrap();
    assert!(
        view.suspects.iter().any(|(id, _)| *id == id_of(2)),
        "the liar was caught: {:?}",
        view.suspects
    );
    // Half the workers' tasks checked (the submitter's own, about a quarter, never are): the
    // runs are the tasks plus about 3/8 of them again (more where a check disagreed and a
    // third result was needed).
    let total = view.total as usize;
    assert!(
        h.net.runs > total + total / 4 && h.net.runs < total * 2 + total / 4,
        "{} runs for {total} tasks",
        h.net.runs
    );
}

#[test]
fn the_submitter_checks_every_worker_result_asked_but_never_its_own() {
    let mut h = Mesh::new(&[1, 1]);
    h.run_until(1_500, |_| false);
    let job = h.submit(0, replicated(sumsq(100_000, 40, 4), 1, 1_000_000));
    h.run_until(300_000, |net| net.results.contains_key(&job));
    assert_eq!(h.net.results[&job], ops::reference::sumsq(0, 100_000));
    // Who computed each task, in order.
    let mut by_task: HashMap<u32, Vec<usize>> = HashMap::new();
    for &(node, _, task, _) in h.net.started.iter().filter(|s| s.1 == job) {
        by_task.entry(task).or_default().push(node);
    }
    let (mut own, mut checked) = (0, 0);
    for (task, nodes) in &by_task {
        if nodes[0] == 0 {
            // The submitter's result stands alone.
            assert_eq!(nodes, &[0], "task {task}");
            own += 1;
        } else {
            // Every worker result is checked by the only other member, the submitter.
            assert_eq!(nodes, &[1, 0], "task {task}");
            checked += 1;
        }
    }
    assert!(own > 0 && checked > 0, "{own} own, {checked} checked");
}

#[test]
fn a_job_ends_with_the_completions_that_raced_the_reduces_above_them() {
    // Node 1's messages reach the submitter (node 0, which runs nothing) 150 ms late, node 2's
    // at once: the reduces node 2 computes over node 1's maps, and the root, reach the
    // submitter before the completions of those maps. The output does not need them, but the
    // job's account (who ran what) does: the submitter waits for them, briefly.
    let mut h = Mesh::new(&[0, 1, 1]);
    h.net.slow.insert((1, 0), 150);
    h.run_until(1_500, |_| false);
    let job = h.submit(0, sumsq(100_000, 24, 4));
    h.run_until(60_000, |net| net.results.contains_key(&job));
    let collected = h.h.now();
    h.run_until(collected + 20, |_| false);
    assert!(
        h.node(0).settling_account(&job),
        "the output is in, node 1's completions are not: the job waits for them"
    );
    h.run_until(collected + 2_000, |_| false);
    assert!(!h.node(0).settling_account(&job));
    assert_eq!(h.net.results[&job], ops::reference::sumsq(0, 100_000));
    let view = h.node(0).job_status(&job).expect("the job's account");
    let by_node1 = h
        .net
        .started
        .iter()
        .filter(|s| s.1 == job && s.0 == 1)
        .count() as u32;
    assert!(by_node1 > 0, "node 1 took part");
    let counted: u32 = view.workers.iter().map(|(_, n)| n).sum();
    assert_eq!(
        (view.maps_done, counted),
        (view.maps, view.total),
        "every task in the account: {:?}",
        view.workers
    );
    assert_eq!(
        view.workers
            .iter()
            .find(|(id, _)| *id == id_of(1))
            .map(|w| w.1),
        Some(by_node1)
    );
}

#[test]
fn a_quorum_that_cannot_be_reached_waits_and_says_why() {
    let mut h = Mesh::new(&[1, 1]);
    h.run_until(1_500, |_| false);
    let job = h.submit(0, replicated(sumsq(1_000, 4, 2), 3, 0));
    h.run_until(20_000, |_| false);
    assert!(!h.net.results.contains_key(&job));
    let detail = h.node(0).job_detail(&job).unwrap();
    assert!(
        detail
            .why
            .iter()
            .any(|w| w.contains("needs 3 agreeing results")),
        "{:?}",
        detail.why
    );
}

#[test]
fn replicas_outside_one_to_five_are_refused() {
    for bad in [0, 6] {
        let spec = replicated(sumsq(1_000, 4, 2), bad, 0);
        assert!(spec.validate().is_err(), "replicas {bad}");
    }
    assert!(
        replicated(sumsq(1_000, 4, 2), 1, 1_000_001)
            .validate()
            .is_err()
    );
}

fn with_priority(spec: JobSpec, priority: i32) -> JobSpec {
    let mut spec = spec;
    spec.sched.priority = priority;
    spec
}

fn needing(spec: JobSpec, tags: &[&str], mem_mb: u64) -> JobSpec {
    let mut spec = spec;
    spec.sched.needs = schedule::Needs {
        tags: tags.iter().map(|t| t.to_string()).collect(),
        mem_mb,
    };
    spec
}

/// How long a short job of `priority` takes on two one-slot nodes, submitted while a long
/// job of priority 0 runs (`busy`) or alone; checks both results.
fn short_job_time(priority: i32, busy: bool) -> Millis {
    let mut h = Mesh::new(&[1, 1]);
    h.net.task_ms = 100;
    h.run_until(1_500, |_| false);
    let long = busy.then(|| h.submit(0, sumsq(1_000_000, 40, 4)));
    h.run_for(350);
    let submitted = h.now();
    let short = h.submit(1, with_priority(sumsq(10_000, 4, 4), priority));
    h.run_until(120_000, |net| net.results.contains_key(&short));
    let took = h.net.finished_at[&short] - submitted;
    assert_eq!(h.net.results[&short], ops::reference::sumsq(0, 10_000));
    if let Some(long) = long {
        h.run_until(300_000, |net| net.results.contains_key(&long));
        assert_eq!(h.net.results[&long], ops::reference::sumsq(0, 1_000_000));
    }
    took
}

#[test]
fn a_higher_priority_job_runs_before_the_queued_tasks_of_a_lower_one() {
    let alone = short_job_time(10, false);
    let first = short_job_time(10, true);
    let equal = short_job_time(0, true);
    eprintln!(
        "short job: alone {alone} ms, with priority {first} ms, at equal priority {equal} ms"
    );
    // Running tasks are not preempted: about one task of the long job (100 ms) more than
    // alone, and one more for the claim race of a stolen task. At equal priority the short
    // job waits behind the long job's tasks.
    assert!(
        first <= alone + 2 * 100,
        "alone {alone} ms, behind the long job with priority {first} ms"
    );
    assert!(
        equal > first + 500,
        "at equal priority {equal} ms, with priority {first} ms"
    );
}

#[test]
fn a_job_with_needs_runs_only_where_they_are_met_and_says_which_nobody_meets() {
    let mut h = Mesh::new(&[1, 1, 1]);
    h.h.node_mut(2)
        .unwrap()
        .set_tags(vec!["special".into()])
        .unwrap();
    h.run_until(3_000, |_| false);
    let special = h.submit(0, needing(sumsq(100_000, 12, 4), &["special"], 0));
    h.run_until(60_000, |net| net.results.contains_key(&special));
    assert_eq!(h.net.results[&special], ops::reference::sumsq(0, 100_000));
    let ran: HashSet<usize> = h
        .net
        .started
        .iter()
        .filter(|s| s.1 == special)
        .map(|s| s.0)
        .collect();
    assert_eq!(ran, HashSet::from([2]));

    let runs = h.net.runs;
    let missing = h.submit(0, needing(sumsq(100, 2, 2), &["missing"], 0));
    let too_big = h.submit(1, needing(sumsq(200, 2, 2), &[], 1 << 20));
    h.run_for(5_000);
    assert_eq!(h.net.runs, runs, "nothing ran");
    for (job, node, need) in [(missing, 0, "tag=missing"), (too_big, 1, "mem=1048576MiB")] {
        let view = h.node(node).job_status(&job).unwrap();
        assert_eq!(view.status, JobStatus::WaitingForCapacity);
        let why = h.node(node).job_detail(&job).unwrap().why.join("\n");
        assert!(
            why.contains(&format!("no live node meets the need {need}")),
            "{why}"
        );
    }
}

#[test]
fn submissions_beyond_the_job_table_wait_in_priority_order_and_all_finish() {
    let mut h = Mesh::new(&[2, 2]);
    for i in 0..2 {
        let node = Node::new(
            NodeId::from_identity_bytes(&[i as u8]),
            Capacity {
                slots: 2,
                cores: 2,
                mem_mb: 1024,
            },
            Config {
                max_jobs: 4,
                ..Config::default()
            },
            i as u64,
        );
        h.h.start(i, node, &mut h.net);
    }
    h.run_until(1_500, |_| false);
    let jobs: Vec<JobId> = (0..12)
        .map(|k| h.submit(0, with_priority(sumsq(1_000 + k, 4, 2), (k % 3) as i32)))
        .collect();
    let queued = h
        .node(0)
        .jobs()
        .into_iter()
        .filter(|v| matches!(v.status, JobStatus::Queued { .. }))
        .count();
    assert_eq!(queued, 8, "four run, the rest wait");
    assert_eq!(h.node(0).table_sizes().jobs, 4);
    h.run_until(300_000, |net| {
        jobs.iter().all(|j| net.results.contains_key(j))
    });
    for (k, job) in jobs.iter().enumerate() {
        assert_eq!(
            h.net.results[job],
            ops::reference::sumsq(0, 1_000 + k as u64)
        );
    }
    // Of the waiting ones, the priority-2 jobs started first.
    let first_start = |job: &JobId| {
        h.net
            .started
            .iter()
            .filter(|s| s.1 == *job)
            .map(|s| s.3)
            .min()
            .unwrap()
    };
    assert!(first_start(&jobs[5]) <= first_start(&jobs[6]));
    assert!(first_start(&jobs[8]) <= first_start(&jobs[7]));
}

/// A word count over `chunks` chunks of the harness's inputs that keeps `copies` copies, its
/// submitter detached (leaving once they are made) or not.
fn durable_wordcount(h: &mut Mesh, chunks: u32, copies: u8, detached: bool) -> (JobSpec, Vec<u8>) {
    let mut all = Vec::new();
    for i in 0..chunks {
        let text = format!("w{} common words\n", i % 7).into_bytes();
        all.extend_from_slice(&text);
        h.net.inputs.insert(i, text);
    }
    let spec = JobSpec {
        op: Operator::WordCount,
        input: Input::Chunks {
            manifest: BlobHash::of(b"durable input"),
            chunks,
            bytes: all.len() as u64,
        },
        fanin: 4,
        trust: Default::default(),
        sched: Default::default(),
        keep: durable::Durability { copies, detached },
        reuse: true,
    };
    (spec, ops::reference::wordcount(&[all]))
}

/// Submits a durable job from node 0, waits for its detach point (every piece held by
/// `copies` members), kills the submitter, and runs until node `reader` says it is done.
fn detach_and_leave(h: &mut Mesh, spec: JobSpec, reader: usize) -> (JobId, ResultStatus) {
    h.run_until(1_500, |_| false);
    let copies = u32::from(spec.keep.copies);
    let job = h.submit(0, spec);
    let until = h.now() + 10_000;
    h.h.run_until(until, &mut h.net, |h, _| {
        h.node(0)
            .and_then(|n| n.job_status(&job))
            .is_some_and(|v| v.copies_held >= copies)
    });
    assert!(
        h.node(0).job_status(&job).unwrap().copies_held >= copies,
        "the input is held by {copies} members"
    );
    h.h.crash(0);
    let until = h.now() + 120_000;
    h.h.run_until(until, &mut h.net, |h, _| {
        h.node(reader).is_some_and(|n| {
            matches!(
                n.result_status(&job),
                ResultStatus::Done { .. } | ResultStatus::Failed { .. }
            )
        })
    });
    (job, h.node(reader).result_status(&job))
}

#[test]
fn a_durable_job_whose_input_left_before_it_was_held_fails_and_says_why() {
    let mut h = Mesh::new(&[1, 1, 1, 1, 1]);
    h.net.task_ms = 50;
    h.run_until(1_500, |_| false);
    let (spec, _) = durable_wordcount(&mut h, 40, 2, true);
    // No piece is ever copied; the submitter leaves once its members heard of the job.
    h.net.input_gone = true;
    let job = h.submit(0, spec);
    h.run_for(100);
    h.h.crash(0);
    let left = h.now();
    let until = left + 300_000;
    h.h.run_until(until, &mut h.net, |h, _| {
        h.node(4)
            .is_some_and(|n| matches!(n.result_status(&job), ResultStatus::Failed { .. }))
    });
    let status = h.node(4).result_status(&job);
    let ResultStatus::Failed { error } = status else {
        panic!("the job did not fail: {status:?}");
    };
    assert!(error.contains("input is lost"), "{error}");
    assert!(
        h.now() - left >= shoal_protocol::node::INPUT_LOST_MS,
        "failed after {} ms",
        h.now() - left
    );
}

#[test]
fn a_detached_job_finishes_after_its_submitter_leaves_and_any_node_reads_its_result() {
    let mut h = Mesh::new(&[1, 1, 1, 1, 1]);
    h.net.task_ms = 50;
    let (spec, expected) = durable_wordcount(&mut h, 40, 2, true);
    let (job, status) = detach_and_leave(&mut h, spec, 4);
    let ResultStatus::Done { output, holders } = status else {
        panic!("the job did not finish: {status:?}");
    };
    assert!(holders.len() >= 2, "the output is kept twice: {holders:?}");
    let submitter = NodeId::from_identity_bytes(&[0]);
    assert!(!holders.contains(&submitter));
    for holder in &holders {
        let i = h.h.index_of(holder).unwrap();
        assert!(h.h.alive(i));
        let kept = &h.net.kept[&(i, job)];
        assert_eq!(kept, &expected, "the kept output is the reference");
        assert_eq!(output.hash, BlobHash::of(kept));
    }
    // A node that restarts has forgotten the job: it asks, and a keeper answers.
    let reader = (1..5)
        .find(|i| !holders.contains(&NodeId::from_identity_bytes(&[*i as u8])))
        .unwrap();
    h.h.crash(reader);
    let node = Node::new(
        NodeId::from_identity_bytes(&[reader as u8]),
        Capacity {
            slots: 1,
            cores: 1,
            mem_mb: 1024,
        },
        Config::default(),
        99,
    );
    h.h.start(reader, node, &mut h.net);
    h.run_for(1_500);
    assert_eq!(h.node(reader).result_status(&job), ResultStatus::Unknown);
    let now = h.now();
    h.h.node_mut(reader).unwrap().query(now, job);
    h.h.drain(reader, &mut h.net);
    h.run_for(500);
    assert_eq!(
        h.node(reader).result_status(&job),
        ResultStatus::Done { output, holders }
    );
}

#[test]
fn a_keeper_still_fetching_the_output_when_the_job_ends_keeps_it_all_the_same() {
    // The coordinator ends the job as soon as one other keeper has the output; a keeper whose
    // fetch takes longer hears the end first. It must still keep the output (and say so when
    // asked), not hold a copy nobody knows of. Which members keep depends on the job's id:
    // jobs are tried until one has a slow keeper besides the coordinator's first one.
    let mut raced = 0;
    for round in 0..12u32 {
        let mut h = Mesh::new(&[1, 1, 1, 1]);
        h.net.collect_ms = (1..4).map(|n| (n, 300 * n as Millis)).collect();
        let (mut spec, expected) = durable_wordcount(&mut h, 8, 2, false);
        spec.fanin = 2 + round % 3;
        if let Input::Chunks { manifest, .. } = &mut spec.input {
            *manifest = BlobHash::of(&round.to_le_bytes());
        }
        h.run_until(1_500, |_| false);
        let job = h.submit(0, spec);
        h.run_until(60_000, |net| net.results.contains_key(&job));
        assert_eq!(h.net.results[&job], expected);
        // Every slow keeper's fetch is over by now.
        h.run_for(2_000);
        let collectors: Vec<usize> = (1..4)
            .filter(|n| h.net.kept.contains_key(&(*n, job)))
            .collect();
        if collectors.len() < 2 {
            continue;
        }
        raced += 1;
        for n in collectors {
            let Some(durable::Ending::Done { output, .. }) = h.net.endings.get(&(n, job)) else {
                panic!("node {n} fetched the output but keeps no ending (round {round})");
            };
            assert_eq!(output.hash, BlobHash::of(&expected));
            assert!(
                matches!(h.node(n).result_status(&job), ResultStatus::Done { .. }),
                "node {n} says its result is done"
            );
        }
    }
    assert!(
        raced > 0,
        "no round had two keepers besides the coordinator"
    );
}

#[test]
fn a_detached_job_that_fails_says_why_on_every_node() {
    let mut h = Mesh::new(&[1, 1, 1, 1]);
    let (spec, _) = durable_wordcount(&mut h, 8, 2, true);
    h.net.forced = Some(TaskOutcome::Failed("boom".into()));
    let (_, status) = detach_and_leave(&mut h, spec, 3);
    match status {
        ResultStatus::Failed { error } => assert!(error.contains("boom"), "{error}"),
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn a_submitter_that_stays_is_one_of_the_copies_and_a_detached_one_is_not() {
    for detached in [false, true] {
        let mut h = Mesh::new(&[1, 1, 1]);
        h.net.task_ms = 200;
        let chunks = 12;
        let (spec, expected) = durable_wordcount(&mut h, chunks, 2, detached);
        h.run_until(1_500, |_| false);
        let job = h.submit(0, spec);
        let until = h.now() + 5_000;
        h.h.run_until(until, &mut h.net, |h, _| {
            h.node(0)
                .and_then(|n| n.job_status(&job))
                .is_some_and(|v| v.copies_held >= 2)
        });
        assert!(
            h.node(0).job_status(&job).unwrap().copies_held >= 2,
            "every piece held twice (detached={detached})"
        );
        h.run_until(60_000, |net| net.results.contains_key(&job));
        assert_eq!(h.net.results[&job], expected);
        let copied: Vec<(usize, u32)> = h
            .net
            .copied
            .iter()
            .filter(|c| c.1 == job)
            .map(|c| (c.0, c.2))
            .collect();
        assert!(
            copied.iter().all(|c| c.0 != 0),
            "the submitter copies nothing"
        );
        if detached {
            // Both other members hold every piece: the submitter's copy does not count.
            for piece in 0..chunks {
                for node in 1..3 {
                    assert!(
                        copied.contains(&(node, piece))
                            || h.net
                                .started
                                .iter()
                                .any(|s| s.0 == node && s.1 == job && s.2 == piece),
                        "node {node} holds piece {piece}"
                    );
                }
            }
        } else {
            // The submitter is one of the two: each piece is copied once at most (where no
            // member computed it first).
            for piece in 0..chunks {
                let copies = copied.iter().filter(|c| c.1 == piece).count();
                assert!(copies <= 1, "piece {piece} copied {copies} times");
            }
        }
    }
}

#[test]
fn one_copy_keeps_the_input_on_the_submitter_only() {
    let mut h = Mesh::new(&[1, 1, 1]);
    let (spec, expected) = durable_wordcount(&mut h, 12, 1, false);
    h.run_until(1_500, |_| false);
    let job = h.submit(0, spec);
    h.run_until(60_000, |net| net.results.contains_key(&job));
    assert_eq!(h.net.results[&job], expected);
    // Only the submitter collected it, and nobody copied anything.
    assert_eq!(h.net.kept.len(), 1);
    assert!(h.net.kept.contains_key(&(0, job)));
}

#[test]
fn a_grep_stays_on_its_busy_submitter_for_the_locality_wait_then_spreads_and_says_why() {
    // The submitter has one slot and each task takes a second: the other node, with four
    // idle slots, still leaves the search's map tasks to it until they have waited 5 s.
    let mut h = Mesh::new(&[1, 4]);
    h.net.task_ms = 1_000;
    let mut all = Vec::new();
    for i in 0..12u32 {
        let text = format!("line {i} with a needle\nline {i} without\n").into_bytes();
        all.extend_from_slice(&text);
        h.net.inputs.insert(i, text);
    }
    let spec = JobSpec::new(
        Operator::Grep {
            pattern: "needle".into(),
        },
        Input::Chunks {
            manifest: BlobHash::of(b"grep input"),
            chunks: 12,
            bytes: all.len() as u64,
        },
        4,
    );
    h.run_until(1_500, |_| false);
    let submitted = h.now();
    let job = h.submit(0, spec);
    h.run_for(2_000);
    let maps_by = |h: &Mesh, node: usize| {
        h.net
            .started
            .iter()
            .filter(|s| s.0 == node && s.1 == job && s.2 < 12)
            .count()
    };
    assert_eq!(maps_by(&h, 1), 0, "the other node waits");
    assert!(maps_by(&h, 0) >= 1, "the submitter searches its files");
    let why = h.node(1).job_detail(&job).unwrap().why.join("\n");
    assert!(why.contains("stay with the submitter"), "{why}");
    h.run_until(60_000, |net| net.results.contains_key(&job));
    assert_eq!(
        h.net.results.get(&job),
        Some(&ops::reference::grep(&[all], "needle"))
    );
    let first_elsewhere = h
        .net
        .started
        .iter()
        .filter(|s| s.0 == 1 && s.1 == job && s.2 < 12)
        .map(|s| s.3)
        .min()
        .expect("the other node took map tasks once the wait was over");
    assert!(
        first_elsewhere >= submitted + locality::LOCALITY_WAIT_MS,
        "started at {first_elsewhere}, submitted at {submitted}"
    );
}
