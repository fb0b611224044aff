//! Scheduling on real processes: needs and tags, the queue past the job table, priorities,
//! pipelines (`shoal run`), and `shoal why`.

mod support;

use shoal_node::job_request::JobRequest;
use shoal_ops::reference;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

/// A mesh of nodes with their own extra arguments each.
async fn mesh_of(nodes: &[(u32, &[&str])]) -> Mesh {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut procs: Vec<NodeProc> = Vec::new();
    for (i, (slots, extra)) in nodes.iter().enumerate() {
        let bootstrap = procs.first().map(|n| n.addrs.clone()).unwrap_or_default();
        procs.push(NodeProc::start_with(
            &dir.path().join(format!("node-{i}")),
            *slots,
            &bootstrap,
            extra,
        ));
    }
    let mesh = Mesh { dir, nodes: procs };
    mesh.await_full_view(Duration::from_secs(30)).await;
    mesh
}

/// The output as `shoal submit` prints it (what a stage hands its dependents).
fn printed(json_output: &[u8]) -> Vec<u8> {
    match serde_json::from_slice::<serde_json::Value>(json_output).expect("JSON output") {
        serde_json::Value::String(s) => format!("{s}\n").into_bytes(),
        _ => [json_output, b"\n"].concat(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_needs_a_tag_runs_only_where_it_is_and_a_missing_tag_is_named() {
    let mesh = mesh_of(&[(2, &[]), (2, &[]), (2, &["--tag", "special"])]).await;
    let special = node_id_of(&mesh.nodes[2]).await;
    let corpus = mesh.dir.path().join("corpus");
    let files = write_wide_corpus(&corpus, 3, 2000);
    let corpus_arg = corpus.display().to_string();

    let wc = submit_json(
        &mesh.nodes[0],
        &["wordcount", &corpus_arg],
        &["--chunk-size", "16384", "--needs", "tag=special"],
    );
    assert_eq!(result_bytes(&wc), reference::wordcount(&files));
    let spread = wc["spread"].as_array().expect("spread");
    assert!(wc["tasks"].as_u64().unwrap() > 5, "{wc}");
    assert!(
        spread
            .iter()
            .all(|e| e[0].as_str() == Some(special.as_str())),
        "every task ran on the tagged node {special}: {wc}"
    );

    // Nobody has tag=missing: the job waits, `shoal why` names the need, and the submission
    // fails at its timeout with that reason.
    let dir = mesh.nodes[0].dir_arg();
    let child = Command::new(SHOAL)
        .args(["submit", "--data-dir", &dir, "--timeout", "6s"])
        .args(["--needs", "tag=missing", "pi", "1000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning shoal submit");
    let deadline = Instant::now() + Duration::from_secs(5);
    let job = loop {
        let jobs = mesh.nodes[0].client().jobs().await.expect("jobs");
        if let Some(j) = jobs.iter().find(|j| j.needs == ["tag=missing"]) {
            break j.id.clone();
        }
        assert!(Instant::now() < deadline, "the job never showed: {jobs:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let why = shoal(&["why", "--json", "--data-dir", &dir, &job[..12]]);
    assert!(why.status.success(), "{why:?}");
    let why: serde_json::Value = serde_json::from_slice(&why.stdout).expect("why --json");
    assert_eq!(why["job"], job.as_str());
    assert_eq!(why["tasks"]["ready"], 1, "{why}");
    let reasons = why["why"].to_string();
    assert!(reasons.contains("need tag=missing"), "{why}");
    let text = shoal(&["why", "--data-dir", &dir, &job]);
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("no live node meets the need tag=missing"),
        "{text:?}"
    );
    let out = child.wait_with_output().expect("shoal submit ends");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("tag=missing"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_jobs_submitted_at_once_to_one_node_all_finish() {
    let mesh = Mesh::start(&[4, 4]).await;
    let client = mesh.nodes[0].client();
    let runs = (0..300u64).map(|i| {
        let client = client.clone();
        async move {
            let (a, b) = (i * 1000, i * 1000 + 999);
            let request =
                JobRequest::parse("sumsq", &[a.to_string(), b.to_string()], 4, None, Some(1))
                    .expect("a valid request");
            let done = client.run(request).await;
            (a, b, done)
        }
    });
    let results = futures::future::join_all(runs).await;
    for (a, b, done) in results {
        let done = done.unwrap_or_else(|e| panic!("job sumsq {a} {b}: {e}"));
        assert_eq!(done.output, reference::sumsq(a, b), "sumsq {a} {b}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_high_priority_job_overtakes_a_long_one_on_busy_nodes() {
    let mesh = Mesh::start(&[1, 1]).await;
    let client = mesh.nodes[0].client();
    let short = || JobRequest::parse("sumsq", &["0".into(), "1000".into()], 4, None, Some(2));
    // The short job alone, for scale.
    let alone = client.run(short().unwrap()).await.expect("short job alone");
    // A long job: many tasks of some length each, on both slots.
    let long = JobRequest::parse("pi", &["400000000".into()], 4, None, Some(40))
        .unwrap()
        .with_sched(0, &[])
        .unwrap();
    let long_client = client.clone();
    let long_run = tokio::spawn(async move { long_client.run(long).await });
    // Wait until the long job holds both slots.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let jobs = client.jobs().await.expect("jobs");
        if jobs.iter().any(|j| j.op == "pi" && j.done >= 2) {
            break;
        }
        assert!(Instant::now() < deadline, "the long job never got going");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started = Instant::now();
    let urgent = client
        .run(short().unwrap().with_sched(10, &[]).unwrap())
        .await
        .expect("urgent job");
    let took = started.elapsed();
    assert_eq!(urgent.output, reference::sumsq(0, 1000));
    let jobs = client.jobs().await.expect("jobs");
    let long_row = jobs.iter().find(|j| j.op == "pi").expect("the long job");
    assert!(
        long_row.done < long_row.total / 2,
        "the urgent job finished in {took:?}, while the long one was at {}/{}: it did not wait \
         for it (alone it took {} ms)",
        long_row.done,
        long_row.total,
        alone.elapsed_ms
    );
    let long_done = long_run.await.unwrap().expect("long job");
    let per_task = long_done.elapsed_ms / 20; // 40 tasks on 2 slots
    assert!(
        took.as_millis() as u64 <= alone.elapsed_ms + 2 * per_task + 1000,
        "urgent job: {took:?}; alone {} ms, a long task about {per_task} ms",
        alone.elapsed_ms
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_in_pipeline_equals_the_reference_of_each_stage_and_a_cycle_is_refused() {
    let mesh = Mesh::start(&[2, 2]).await;
    let root = mesh.dir.path();
    let corpus = root.join("corpus");
    let files = write_wide_corpus(&corpus, 2, 1500);
    std::fs::write(
        root.join("pipeline.toml"),
        r#"
[stages.count]
job = "wordcount"
inputs = ["./corpus"]
chunk_size = 16384

[stages.squares]
job = "sumsq"
args = [0, 100000]
tasks = 5

[stages.hits]
job = "grep"
args = ["w4"]
inputs = ["stage:count", "stage:squares"]
priority = 5
"#,
    )
    .unwrap();
    let dir = mesh.nodes[1].dir_arg();
    let pipeline = root.join("pipeline.toml").display().to_string();
    let out = shoal(&["run", "--json", "--data-dir", &dir, &pipeline]);
    assert!(out.status.success(), "{out:?}");
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    let stages = &answer["stages"];
    let result = |name: &str| serde_json::to_vec(&stages[name]["result"]["result"]).unwrap();
    let count = reference::wordcount(&files);
    let squares = reference::sumsq(0, 100_000);
    assert_eq!(result("count"), count);
    assert_eq!(result("squares"), squares);
    assert_eq!(
        result("hits"),
        reference::grep(&[printed(&count), printed(&squares)], "w4")
    );
    for name in ["count", "squares", "hits"] {
        assert_eq!(
            stages[name]["job"], stages[name]["result"]["job"],
            "{answer}"
        );
    }

    std::fs::write(
        root.join("cycle.toml"),
        "[stages.a]\njob = \"wordcount\"\ninputs = [\"stage:b\"]\n\
         [stages.b]\njob = \"grep\"\nargs = [\"x\"]\ninputs = [\"stage:a\"]\n",
    )
    .unwrap();
    let cycle = root.join("cycle.toml").display().to_string();
    let before = mesh.nodes[1].client().jobs().await.unwrap().len();
    let out = shoal(&["run", "--data-dir", &dir, &cycle]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("stages a -> b -> a: inputs: they form a cycle"),
        "{out:?}"
    );
    let after = mesh.nodes[1].client().jobs().await.unwrap().len();
    assert_eq!(before, after, "nothing was submitted");
}
