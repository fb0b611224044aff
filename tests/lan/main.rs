//! LAN tests: real `shoal node` processes on separate network hosts (Linux network namespaces
//! joined by bridges, a router or a link emulator), jobs submitted with the CLI inside the
//! hosts, results compared byte for byte with the single-process references.
//!
//! They need root (to create namespaces); otherwise every scenario is reported as ignored with
//! the reason. Scenarios run one at a time: their timings are part of what they report. Lines
//! starting with `LAN REPORT` carry the measured figures (docs/lan.md).

#[path = "../support/mod.rs"]
mod support;

mod host;
mod linkemu;
mod netns;
mod private;

use host::{Lan, wait_until};
use libtest_mimic::{Arguments, Trial};
use linkemu::Impairment;
use shoal_node::job_request::JobRequest;
use shoal_ops::reference;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};
use support::{result_bytes, tasks_done_by, write_wide_corpus};

fn main() {
    let mut args = Arguments::from_args();
    args.test_threads = Some(1);
    let skip = netns::unavailable();
    if let Some(why) = &skip {
        eprintln!("LAN tests skipped: {why}");
    }
    let scenarios: [(&str, fn()); 10] = [
        ("lan_formation_by_mdns_alone", lan_formation_by_mdns_alone),
        (
            "nodes_that_join_through_one_peer_connect_to_each_other",
            nodes_that_join_through_one_peer_connect_to_each_other,
        ),
        ("a_laptop_joins_mid_job", a_laptop_joins_mid_job),
        (
            "two_subnets_joined_by_a_router",
            two_subnets_joined_by_a_router,
        ),
        (
            "a_worker_crash_costs_at_most_a_lease",
            a_worker_crash_costs_at_most_a_lease,
        ),
        ("a_reducer_crash_is_repaired", a_reducer_crash_is_repaired),
        (
            "a_partition_heals_without_a_wrong_result",
            a_partition_heals_without_a_wrong_result,
        ),
        (
            "bad_links_slow_the_job_down_but_not_the_result",
            bad_links_slow_the_job_down_but_not_the_result,
        ),
        (
            "a_restarted_node_rejoins_with_its_peer_id",
            a_restarted_node_rejoins_with_its_peer_id,
        ),
        (
            "a_private_mesh_admits_only_key_holders",
            private::a_private_mesh_admits_only_key_holders,
        ),
    ];
    let trials = scenarios
        .into_iter()
        .map(|(name, scenario)| {
            Trial::test(name, move || {
                scenario();
                Ok(())
            })
            .with_ignored_flag(skip.is_some())
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}

/// Prints a measured figure where CI logs keep it.
pub(crate) fn report(scenario: &str, what: String) {
    eprintln!("LAN REPORT {scenario}: {what}");
}

/// A corpus in the LAN's directory (all hosts share the file system; only the submitter reads
/// it, workers fetch chunks over the network). Returns its path and the files' bytes.
pub(crate) fn corpus(lan: &Lan, name: &str, files: usize, lines: usize) -> (String, Vec<Vec<u8>>) {
    let dir = lan.dir.path().join(name);
    let bytes = write_wide_corpus(&dir, files, lines);
    (dir.display().to_string(), bytes)
}

/// The reference result of `shoal submit pi SAMPLES --tasks TASKS --fanin FANIN`.
fn pi_reference(samples: u64, tasks: u32, fanin: u32) -> Vec<u8> {
    let spec = JobRequest::parse("pi", &[samples.to_string()], fanin, None, Some(tasks))
        .expect("a valid pi job")
        .generated_spec()
        .expect("a generated job");
    reference::pi(&spec).expect("a pi spec")
}

/// Waits until `host`'s node runs job `op` and has seen some but not all of its tasks done.
pub(crate) fn await_mid_job(lan: &Lan, host: usize, op: &str) -> shoal_node::cli::rows::JobRow {
    wait_until(
        &format!("host {} to see a {op} job under way", host + 1),
        Duration::from_secs(60),
        || {
            lan.hosts[host].jobs().into_iter().find(|j| {
                assert!(
                    !(j.op == op && j.status == "complete"),
                    "the {op} job finished before the scenario could act; make it bigger"
                );
                j.op == op && j.done > 0 && j.status == "running"
            })
        },
    )
}

/// 1. Five hosts on one bridge, no `--bootstrap` anywhere: mDNS alone forms the mesh.
fn lan_formation_by_mdns_alone() {
    let mut lan = Lan::bridged(&[(1, 5)]);
    for host in &mut lan.hosts {
        host.start_node(1, &[]);
    }
    let all: Vec<usize> = (0..5).collect();
    let formed = lan.await_views(&all, 5, Duration::from_secs(10));
    report(
        "lan formation",
        format!(
            "every node saw the other four {} ms after the last node started",
            formed.as_millis()
        ),
    );
    assert!(
        formed <= Duration::from_secs(2),
        "the mesh took {formed:?} to form (at most 2 s)"
    );
}

/// 1b. Without mDNS, two hosts join through a third (`--bootstrap`): they find each other
///    through Kademlia and connect directly, so that nothing between them depends on the
///    third. Each node listens on every interface on the same port, as a deployment would,
///    and reports all its addresses, loopback included: a loopback address passed on to
///    another host names that host itself, and the dial to it (to the dialer itself, which
///    answers first when the LAN has any latency) used to fail every dial between the two.
fn nodes_that_join_through_one_peer_connect_to_each_other() {
    const LISTEN: [&str; 3] = ["--no-mdns", "--listen", "/ip4/0.0.0.0/udp/4001/quic-v1"];
    let mut lan = Lan::emulated(3, 11);
    lan.emulator().set(Impairment {
        latency: Duration::from_millis(10),
        ..Impairment::default()
    });
    lan.hosts[0].start_node(1, &LISTEN);
    let entry = lan.hosts[0].quic_addr();
    for host in &mut lan.hosts[1..] {
        host.start_node(1, &[&LISTEN[..], &["--bootstrap", &entry]].concat());
    }
    lan.await_views(&[0, 1, 2], 3, Duration::from_secs(10));
    let formed = Instant::now();
    let peer_of_1 = lan.hosts[1].peer_id().to_string();
    let host_2 = &lan.hosts[2];
    let connected = wait_until(
        "host 3 to connect to host 2 directly",
        Duration::from_secs(10),
        || {
            let rows = host_2.peers();
            let row = rows.iter().find(|r| r.peer_id == peer_of_1)?;
            row.connection.clone()
        },
    );
    report(
        "join through one peer",
        format!(
            "the two joiners connected directly ({connected}) {} ms after the mesh formed",
            formed.elapsed().as_millis()
        ),
    );
}

/// 2. A laptop joins mid-job and takes tasks; a `--join` submitter on another host gets the
///    exact result.
fn a_laptop_joins_mid_job() {
    let mut lan = Lan::bridged(&[(1, 5)]);
    for host in &mut lan.hosts[..3] {
        host.start_node(1, &[]);
    }
    lan.await_views(&[0, 1, 2], 3, Duration::from_secs(10));
    let (samples, tasks) = (1_200_000_000_u64, 600_u32);
    let samples_arg = samples.to_string();
    let tasks_arg = tasks.to_string();
    // Host 5 submits without running a node of its own: `--join` finds the mesh by mDNS.
    let submission = lan.hosts[4].submit(&["--join", "pi", &samples_arg, "--tasks", &tasks_arg]);
    let before = await_mid_job(&lan, 0, "pi");
    lan.hosts[3].start_node(1, &[]);
    let laptop = lan.hosts[3].node_id();
    let (answer, _) = submission.finish();
    assert_eq!(result_bytes(&answer), pi_reference(samples, tasks, 4));
    let by_laptop = tasks_done_by(&answer, &laptop);
    report(
        "laptop joins",
        format!(
            "joined when {}/{} tasks were done and completed {by_laptop} of them",
            before.done, before.total
        ),
    );
    assert!(by_laptop > 0, "the laptop took no task: {answer}");
}

/// 3. Two subnets behind a router (no multicast across): the second joins with `--bootstrap`
///    to one node of the first; everything ends in one mesh and a job uses both sides.
fn two_subnets_joined_by_a_router() {
    let mut lan = Lan::bridged(&[(1, 3), (2, 2)]);
    lan.add_router(&[1, 2]);
    for host in &mut lan.hosts[..3] {
        host.start_node(1, &[]);
    }
    lan.await_views(&[0, 1, 2], 3, Duration::from_secs(10));
    let entry = lan.hosts[0].quic_addr();
    for host in &mut lan.hosts[3..] {
        host.start_node(1, &["--bootstrap", &entry]);
    }
    let joined = lan.await_views(&[0, 1, 2, 3, 4], 5, Duration::from_secs(30));
    report(
        "two subnets",
        format!(
            "all five nodes in one mesh {} ms after the second subnet started",
            joined.as_millis()
        ),
    );
    let (path, files) = corpus(&lan, "corpus", 4, 20_000);
    let (answer, _) = lan.hosts[1]
        .submit(&["--chunk-size", "32768", "wordcount", &path])
        .finish();
    assert_eq!(result_bytes(&answer), reference::wordcount(&files));
    let first: u64 = lan.hosts[..3]
        .iter()
        .map(|h| tasks_done_by(&answer, &h.node_id()))
        .sum();
    let second: u64 = lan.hosts[3..]
        .iter()
        .map(|h| tasks_done_by(&answer, &h.node_id()))
        .sum();
    report(
        "two subnets",
        format!("tasks done: {first} in the first subnet, {second} in the second"),
    );
    assert!(first > 0 && second > 0, "both subnets worked: {answer}");
}

/// 4. SIGKILL one of five workers while it runs a task: the job completes exactly, and the
///    time lost is about one lease.
fn a_worker_crash_costs_at_most_a_lease() {
    let mut lan = Lan::bridged(&[(1, 5)]);
    for host in &mut lan.hosts {
        host.start_node(1, &[]);
    }
    lan.await_views(&[0, 1, 2, 3, 4], 5, Duration::from_secs(10));
    let samples = 1_000_000_000_u64;
    let samples_arg = samples.to_string();
    // The same work twice: fan-in 4 without a crash, fan-in 5 (another job id) with one.
    let (clean, clean_time) = lan.hosts[0]
        .submit(&["--tasks", "200", "--fanin", "4", "pi", &samples_arg])
        .finish();
    assert_eq!(result_bytes(&clean), pi_reference(samples, 200, 4));
    let submission = lan.hosts[0].submit(&["--tasks", "200", "--fanin", "5", "pi", &samples_arg]);
    wait_until("host 3 to run a task", Duration::from_secs(60), || {
        lan.hosts[2]
            .jobs()
            .into_iter()
            .find(|j| j.op == "pi" && j.status == "running" && j.here.running > 0)
    });
    lan.hosts[2].kill_node();
    let (answer, crash_time) = submission.finish();
    assert_eq!(result_bytes(&answer), pi_reference(samples, 200, 5));
    // Four workers instead of five do the rest: that part of the slow-down is not "lost".
    let lost = crash_time.saturating_sub(clean_time);
    let lease = shoal_protocol::Config::default().lease_ms;
    report(
        "worker crash",
        format!(
            "clean {} ms, with a worker killed {} ms: {} ms lost (lease {lease} ms)",
            clean_time.as_millis(),
            crash_time.as_millis(),
            lost.as_millis()
        ),
    );
    assert!(
        lost < Duration::from_millis(2 * lease) + clean_time / 2,
        "a crash cost {lost:?}, far more than a lease of {lease} ms"
    );
}

/// 5. Kill the node that holds an interior reduce task (running it, or holding its result
///    before the parent used it): the job still completes exactly.
fn a_reducer_crash_is_repaired() {
    let mut lan = Lan::bridged(&[(1, 5)]);
    for host in &mut lan.hosts {
        host.start_node(1, &[]);
    }
    lan.await_views(&[0, 1, 2, 3, 4], 5, Duration::from_secs(10));
    let (path, files) = corpus(&lan, "corpus", 8, 25_000);
    let expected = reference::wordcount(&files);
    // The same work twice: without a crash, then (another chunk size, another job id) with one.
    let (clean, clean_time) = lan.hosts[0]
        .submit(&["--chunk-size", "16384", "--fanin", "2", "wordcount", &path])
        .finish();
    assert_eq!(result_bytes(&clean), expected);
    let submission =
        lan.hosts[0].submit(&["--chunk-size", "16385", "--fanin", "2", "wordcount", &path]);
    let victim = wait_until(
        "a worker to hold an interior reduce task",
        Duration::from_secs(60),
        || {
            (1..5).find(|&i| {
                lan.hosts[i]
                    .jobs()
                    .iter()
                    .any(|j| j.op == "wordcount" && j.status == "running" && j.here.interior > 0)
            })
        },
    );
    lan.hosts[victim].kill_node();
    let (answer, crash_time) = submission.finish();
    assert_eq!(result_bytes(&answer), expected);
    report(
        "reducer crash",
        format!(
            "host {} killed while holding an interior reduce task; exact result in {} ms \
             ({} ms without the crash)",
            victim + 1,
            crash_time.as_millis(),
            clean_time.as_millis()
        ),
    );
}

/// 6. Split the mesh in two mid-job, then heal: the job completes exactly, and the half
///    without the submitter never reports the job complete while cut off.
fn a_partition_heals_without_a_wrong_result() {
    let mut lan = Lan::bridged(&[(1, 6)]);
    for host in &mut lan.hosts {
        host.start_node(1, &[]);
    }
    lan.await_views(&[0, 1, 2, 3, 4, 5], 6, Duration::from_secs(10));
    let (path, files) = corpus(&lan, "corpus", 8, 25_000);
    let mut submission = lan.hosts[0].submit(&["--chunk-size", "16384", "wordcount", &path]);
    let at_split = await_mid_job(&lan, 0, "wordcount");
    let ips: Vec<Ipv4Addr> = lan.hosts.iter().map(|h| h.ip).collect();
    for (i, host) in lan.hosts.iter().enumerate() {
        host.block(if i < 3 { &ips[3..] } else { &ips[..3] });
    }
    // Hold the split for longer than a lease and a view TTL, watching the far half.
    let split = Instant::now();
    let mut far_progress = 0;
    while split.elapsed() < Duration::from_secs(8) {
        for host in &lan.hosts[3..] {
            for job in host.jobs() {
                assert_ne!(
                    job.status, "complete",
                    "a node cut off from the submitter reported the job complete"
                );
                far_progress = far_progress.max(job.done);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let finished_during_split = submission.ended();
    for host in &lan.hosts {
        host.unblock();
    }
    let (answer, elapsed) = submission.finish();
    assert_eq!(result_bytes(&answer), reference::wordcount(&files));
    report(
        "partition",
        format!(
            "split at {}/{} tasks for 8 s (finished during the split: {finished_during_split}, \
             far half saw {far_progress} done); exact result {} ms after submit",
            at_split.done,
            at_split.total,
            elapsed.as_millis()
        ),
    );
}

/// 7. 100 ms ± 20 ms latency, 5% loss and 1% duplication on every link: exact result; the
///    slow-down against the same links without impairment is reported.
fn bad_links_slow_the_job_down_but_not_the_result() {
    let mut lan = Lan::emulated(5, 7);
    for host in &mut lan.hosts {
        host.start_node(1, &[]);
    }
    lan.await_views(&[0, 1, 2, 3, 4], 5, Duration::from_secs(20));
    let (path, files) = corpus(&lan, "corpus", 4, 10_000);
    let expected = reference::wordcount(&files);
    let (clean, clean_time) = lan.hosts[0]
        .submit(&["--chunk-size", "32768", "wordcount", &path])
        .finish();
    assert_eq!(result_bytes(&clean), expected);
    lan.emulator().set(Impairment {
        latency: Duration::from_millis(100),
        jitter: Duration::from_millis(20),
        duplicate_per_mille: 10,
    });
    for host in &lan.hosts {
        host.set_loss(5);
    }
    // Another chunk size: another job id, the same data.
    let (bad, bad_time) = lan.hosts[0]
        .submit(&["--chunk-size", "32769", "wordcount", &path])
        .finish();
    assert_eq!(result_bytes(&bad), expected);
    let counters = &lan.emulator().counters;
    report(
        "bad links",
        format!(
            "clean {} ms, impaired {} ms: {:.1}x slower ({} tasks; emulator duplicated {} packets)",
            clean_time.as_millis(),
            bad_time.as_millis(),
            bad_time.as_secs_f64() / clean_time.as_secs_f64(),
            bad["tasks"],
            counters
                .duplicated
                .load(std::sync::atomic::Ordering::Relaxed),
        ),
    );
}

/// 8. A killed node restarts with the same data dir: same peer id, back in every view (by
///    mDNS), and it takes work again.
fn a_restarted_node_rejoins_with_its_peer_id() {
    let mut lan = Lan::bridged(&[(1, 3)]);
    for host in &mut lan.hosts {
        host.start_node(1, &[]);
    }
    lan.await_views(&[0, 1, 2], 3, Duration::from_secs(10));
    let old_id = lan.hosts[2].peer_id().to_string();
    lan.hosts[2].kill_node();
    let gone = lan.await_views(&[0, 1], 2, Duration::from_secs(10));
    lan.hosts[2].start_node(1, &[]);
    assert_eq!(
        lan.hosts[2].peer_id(),
        old_id,
        "the peer id survives a restart"
    );
    let back = lan.await_views(&[0, 1, 2], 3, Duration::from_secs(10));
    report(
        "restart",
        format!(
            "the dead node left the views after {} ms; restarted, it was back in every view after {} ms",
            gone.as_millis(),
            back.as_millis()
        ),
    );
    let (path, files) = corpus(&lan, "corpus", 3, 10_000);
    let (answer, _) = lan.hosts[0]
        .submit(&["--chunk-size", "16384", "wordcount", &path])
        .finish();
    assert_eq!(result_bytes(&answer), reference::wordcount(&files));
    let restarted = lan.hosts[2].node_id();
    assert!(
        tasks_done_by(&answer, &restarted) > 0,
        "the restarted node took no task: {answer}"
    );
}
