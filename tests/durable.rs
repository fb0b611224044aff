//! Jobs that outlive their submitter, on real processes: `shoal submit --detach`, the
//! submitter killed with SIGKILL (right after the command returns, in the middle of the map
//! phase, in the middle of the reduce phase), and `shoal result` on another node; a submitter
//! that comes back; and what `shoal result` says of unknown, failed and expired jobs.

mod support;

use shoal_ops::reference;
use std::process::Output;
use std::time::{Duration, Instant};
use support::*;

/// `shoal submit --detach --json` from `node`; returns the job id.
fn detach(node: &NodeProc, args: &[&str]) -> String {
    let dir = node.dir_arg();
    let mut all = vec!["submit", "--detach", "--json", "--data-dir", &dir];
    all.extend_from_slice(args);
    let out = shoal(&all);
    assert!(
        out.status.success(),
        "shoal {all:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    assert_eq!(answer["detached"], true, "{answer}");
    answer["job"].as_str().expect("the job id").to_string()
}

/// `shoal result ARGS... JOB` on `node`.
fn result(node: &NodeProc, job: &str, args: &[&str]) -> Output {
    let dir = node.dir_arg();
    let mut all = vec!["result", "--data-dir", &dir];
    all.extend_from_slice(args);
    all.push(job);
    shoal(&all)
}

/// The output `shoal result --wait` prints on `node`, which must succeed.
fn waited_result(node: &NodeProc, job: &str) -> Vec<u8> {
    let out = result(node, job, &["--wait", "--timeout", "120s"]);
    assert!(
        out.status.success(),
        "shoal result failed ({:?}): {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Polls `node`'s view of job `job` until `ready` says so; returns that view's (maps_done,
/// maps, done, total).
async fn await_progress(
    node: &NodeProc,
    job: &str,
    ready: impl Fn(u32, u32, u32, u32) -> bool,
) -> (u32, u32, u32, u32) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(jobs) = node.client().jobs().await
            && let Some(j) = jobs.iter().find(|j| j.id == job)
        {
            let seen = (j.maps_done, j.maps, j.done, j.total);
            if ready(seen.0, seen.1, seen.2, seen.3) {
                return seen;
            }
        }
        assert!(Instant::now() < deadline, "job {job} never got there");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A corpus over a vocabulary of 400,000 words: partial results grow large up the tree.
fn write_vocabulary_corpus(dir: &std::path::Path) -> Vec<Vec<u8>> {
    std::fs::create_dir_all(dir).expect("corpus dir");
    let mut rng = shoal_ops::SplitMix64(5);
    (0..8)
        .map(|f| {
            let mut text = String::new();
            for _ in 0..6000 {
                for _ in 0..8 {
                    text.push_str(&format!("v{} ", rng.next_u64() % 400_000));
                }
                text.push('\n');
            }
            std::fs::write(dir.join(format!("v{f}.txt")), &text).expect("writing corpus");
            text.into_bytes()
        })
        .collect()
}

fn printed(json: Vec<u8>) -> Vec<u8> {
    [json, b"\n".to_vec()].concat()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detached_jobs_survive_their_submitter_killed_right_after_submit() {
    let mut mesh = Mesh::start(&[1, 2, 2, 2]).await;
    let corpus = mesh.dir.path().join("corpus");
    let files = write_wide_corpus(&corpus, 6, 1500);
    let corpus_arg = corpus.display().to_string();
    let expected = printed(reference::wordcount(&files));

    let wc = detach(
        &mesh.nodes[0],
        &["--chunk-size", "16384", "wordcount", &corpus_arg],
    );
    let wasm = example_wasm("wordcount").display().to_string();
    let wasm_job = detach(
        &mesh.nodes[0],
        &["--chunk-size", "16384", "--wasm", &wasm, &corpus_arg],
    );
    mesh.nodes[0].kill();
    assert_eq!(waited_result(&mesh.nodes[1], &wc), expected);
    assert_eq!(waited_result(&mesh.nodes[2], &wasm_job), expected);
    // Any node gives it, and --output writes the bytes themselves.
    let out_file = mesh.dir.path().join("wc.json");
    let out = result(
        &mesh.nodes[3],
        &wc,
        &["--output", out_file.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(&out_file).unwrap(),
        reference::wordcount(&files)
    );
    let json = result(&mesh.nodes[3], &wc, &["--json"]);
    let answer: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(answer["status"], "done");
    assert_eq!(result_bytes(&answer), reference::wordcount(&files));
    assert!(answer["holders"].as_array().unwrap().len() >= 2, "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submitter_killed_mid_map_or_mid_reduce_does_not_lose_its_job() {
    let mut mesh = Mesh::start(&[1, 1, 1, 1]).await;
    let corpus = mesh.dir.path().join("corpus");
    let corpus_arg = corpus.display().to_string();

    // Mid-map: some map tasks done, not all. Thousands of small tasks make the job last, but
    // the detach point comes only once two members besides the submitter hold every chunk, and
    // copying races computing: on a fast or idle machine the job may be over by then. Each
    // round that loses the race doubles the corpus (at most three rounds), so the submitter
    // surely dies while its job runs, whichever phase.
    let mut lines = 8000;
    loop {
        let files = write_wide_corpus(&corpus, 16, lines);
        let expected = printed(reference::wordcount(&files));
        let job = detach(
            &mesh.nodes[0],
            &["--chunk-size", "4096", "wordcount", &corpus_arg],
        );
        let seen = await_progress(&mesh.nodes[0], &job, |maps_done, _, _, _| maps_done >= 1).await;
        if seen.2 == seen.3 {
            assert!(
                lines < 4 * 8000,
                "the job ended before its submitter could be killed in three rounds: {seen:?}"
            );
            lines *= 2;
            continue;
        }
        mesh.nodes[0].kill();
        assert_eq!(waited_result(&mesh.nodes[1], &job), expected);
        break;
    }

    // Mid-reduce: every map done, the tree not. A fan-in of 2 makes the tree deep, and a
    // vocabulary of a few hundred thousand words makes its last merges slow.
    let wide = mesh.dir.path().join("vocabulary");
    let files = write_vocabulary_corpus(&wide);
    let expected = printed(reference::wordcount(&files));
    let wide_arg = wide.display().to_string();
    let job = detach(
        &mesh.nodes[1],
        &[
            "--chunk-size",
            "65536",
            "--fanin",
            "2",
            "wordcount",
            &wide_arg,
        ],
    );
    let seen = await_progress(&mesh.nodes[1], &job, |maps_done, maps, _, _| {
        maps_done == maps
    })
    .await;
    mesh.nodes[1].kill();
    assert!(seen.2 < seen.3, "killed in the reduce phase: {seen:?}");
    assert_eq!(waited_result(&mesh.nodes[2], &job), expected);
    assert_eq!(waited_result(&mesh.nodes[3], &job), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submitter_that_comes_back_while_its_job_runs_does_not_fork_it() {
    let mut mesh = Mesh::start(&[1, 1, 1]).await;
    let corpus = mesh.dir.path().join("corpus");
    let files = write_wide_corpus(&corpus, 6, 3000);
    let corpus_arg = corpus.display().to_string();
    let expected = printed(reference::wordcount(&files));
    let job = detach(
        &mesh.nodes[0],
        &["--chunk-size", "8192", "wordcount", &corpus_arg],
    );
    mesh.nodes[0].kill();
    // The same node (its identity and data dir) comes back while the job runs.
    let dir = mesh.nodes[0].data_dir.clone();
    let bootstrap = mesh.nodes[1].addrs.clone();
    mesh.nodes[0] = NodeProc::start(&dir, 1, &bootstrap);
    assert_eq!(waited_result(&mesh.nodes[1], &job), expected);
    assert_eq!(waited_result(&mesh.nodes[0], &job), expected);
    // One run of the job, ended once: every node knows it by the same id and epoch.
    for node in &mesh.nodes {
        let jobs = node.client().jobs().await.unwrap();
        assert!(jobs.iter().filter(|j| j.id == job).count() <= 1, "{jobs:?}");
        assert!(
            jobs.iter()
                .all(|j| j.id != job || !j.status.starts_with("running")),
            "the job ended everywhere: {jobs:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shoal_result_says_unknown_failed_and_expired_with_their_exit_codes() {
    let mesh = Mesh::start_with(&[1, 1, 1], &["--result-retention", "2s"]).await;
    // Unknown: nobody ran it.
    let unknown = "ab".repeat(32);
    let out = result(&mesh.nodes[1], &unknown, &[]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown"),
        "{out:?}"
    );
    // Not an id at all: a usage error.
    let out = result(&mesh.nodes[1], "not-an-id", &[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");

    // Failed: a module that traps, in a job kept on two nodes; the cause is told on another.
    let trap = write_wat(
        mesh.dir.path(),
        "trap",
        r#"(module (memory (export "memory") 1)
        (func (export "shoal_alloc") (param i32) (result i32) (i32.const 1024))
        (func (export "shoal_map") (param i32 i32) (result i64) unreachable)
        (func (export "shoal_reduce") (param i32 i32 i32 i32) (result i64) unreachable))"#,
    );
    let trap = trap.display().to_string();
    let dir = mesh.nodes[0].dir_arg();
    let out = shoal(&[
        "submit",
        "--json",
        "--copies",
        "2",
        "--data-dir",
        &dir,
        "--wasm",
        &trap,
        "--range",
        "0",
        "100",
        "--tasks",
        "2",
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let failed = mesh.nodes[0].client().jobs().await.unwrap()[0].id.clone();
    let out = result(&mesh.nodes[2], &failed, &["--wait", "--timeout", "60s"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("failed") && stderr.contains("trapped"),
        "{stderr}"
    );

    // Expired: done, then past the keepers' retention.
    let job = detach(&mesh.nodes[0], &["sumsq", "0", "1000"]);
    let done = result(&mesh.nodes[1], &job, &["--wait", "--timeout", "60s"]);
    assert!(done.status.success(), "{done:?}");
    assert_eq!(
        String::from_utf8_lossy(&done.stdout).trim(),
        String::from_utf8(reference::sumsq(0, 1000))
            .unwrap()
            .trim_matches('"')
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let out = loop {
        let out = result(&mesh.nodes[2], &job, &[]);
        if out.status.code() != Some(0) || Instant::now() > deadline {
            break out;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("expired"),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_copies_than_nodes_is_refused_before_anything_is_submitted() {
    let mesh = Mesh::start(&[1, 1]).await;
    let dir = mesh.nodes[0].dir_arg();
    // Detached or not: a submitter that stays is one of the copies, and still only one.
    for detach in [&["--detach"][..], &[]] {
        let args = [
            &["submit"][..],
            detach,
            &["--copies", "3", "--data-dir", &dir, "pi", "1000"],
        ]
        .concat();
        let out = shoal(&args);
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("--copies 3 needs at least 3 nodes"),
            "{out:?}"
        );
    }
    assert!(mesh.nodes[0].client().jobs().await.unwrap().is_empty());
}
