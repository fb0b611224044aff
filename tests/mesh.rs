//! Multi-process tests: real `shoal node` processes on 127.0.0.1, jobs submitted through the
//! CLI, results compared byte for byte with the single-process reference implementations.

mod support;

use shoal_node::api::jobs::Progress;
use shoal_node::client::Update;
use shoal_node::job_request::JobRequest;
use shoal_ops::reference;
use std::time::{Duration, Instant};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_builtin_job_submitted_from_a_different_peer_equals_the_reference() {
    let mesh = Mesh::start(&[2, 2, 2]).await;
    let corpus = mesh.dir.path().join("corpus");
    let files = write_wide_corpus(&corpus, 3, 3000);
    let corpus_arg = corpus.display().to_string();

    let wc = submit_json(
        &mesh.nodes[0],
        &["wordcount", &corpus_arg],
        &["--chunk-size", "16384"],
    );
    assert_eq!(result_bytes(&wc), reference::wordcount(&files));
    assert!(
        wc["tasks"].as_u64().unwrap() > 10,
        "the corpus was split: {wc}"
    );
    assert!(wc["peers"].as_u64().unwrap() >= 2, "work was spread: {wc}");
    assert_eq!(wc["job"].as_str().unwrap().len(), 64);

    let grep = submit_json(
        &mesh.nodes[1],
        &["grep", "w42 ", &corpus_arg],
        &["--chunk-size", "8192"],
    );
    assert_eq!(result_bytes(&grep), reference::grep(&files, "w42 "));
    // A search costs less than sending its input: its map tasks stay on the submitter, which
    // holds the files, where the word count's went to the other members too.
    assert!(
        grep["tasks"].as_u64().unwrap() > 4 && grep["alone"] == false,
        "{grep}"
    );
    assert_eq!(grep["bytes_moved"], 0, "no chunk was sent: {grep}");
    assert!(grep["at_data"].as_u64().unwrap() > 0, "{grep}");
    assert!(wc["bytes_moved"].as_u64().unwrap() > 0, "{wc}");

    let sumsq = submit_json(
        &mesh.nodes[2],
        &["sumsq", "3", "2000003"],
        &["--tasks", "37", "--fanin", "3"],
    );
    assert_eq!(result_bytes(&sumsq), reference::sumsq(3, 2_000_003));

    let pi = submit_json(&mesh.nodes[1], &["pi", "3000000"], &["--tasks", "12"]);
    let spec = JobRequest::parse("pi", &["3000000".into()], 4, None, Some(12))
        .unwrap()
        .generated_spec()
        .unwrap();
    assert_eq!(result_bytes(&pi), reference::pi(&spec).expect("a pi spec"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tiny_tasks_claimed_in_runs_equal_the_reference_and_count_every_task() {
    let mesh = Mesh::start(&[2, 2]).await;
    let sumsq = submit_json(
        &mesh.nodes[0],
        &["sumsq", "5", "200005"],
        &["--tasks", "100000"],
    );
    assert_eq!(result_bytes(&sumsq), reference::sumsq(5, 200_005));
    let request = |job: &str, args: &[&str], tasks: u32| {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        JobRequest::parse(job, &args, 4, None, Some(tasks))
            .unwrap()
            .generated_spec()
            .unwrap()
    };
    let spec = request("sumsq", &["5", "200005"], 100_000);
    assert!(spec.runs().tasks_per_run() > 1, "the job runs in runs");
    // The job's account counts each of its tasks (the maps and every reduce of its tree).
    assert_eq!(
        sumsq["tasks"].as_u64().unwrap(),
        u64::from(spec.task_tree().total())
    );
    assert!(
        sumsq["peers"].as_u64().unwrap() >= 2,
        "work was spread: {sumsq}"
    );

    let pi = submit_json(&mesh.nodes[1], &["pi", "300000"], &["--tasks", "30000"]);
    let spec = request("pi", &["300000"], 30_000);
    assert!(spec.runs().tasks_per_run() > 1, "the job runs in runs");
    assert_eq!(result_bytes(&pi), reference::pi(&spec).expect("a pi spec"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_job_does_not_change_the_result() {
    let mut mesh = Mesh::start(&[1, 1, 1, 1]).await;
    let corpus = mesh.dir.path().join("corpus");
    let files = write_wide_corpus(&corpus, 4, 30_000);
    // Small chunks make many tasks, so the job runs long enough to kill a worker mid-way.
    let request = JobRequest::parse(
        "wordcount",
        &[corpus.display().to_string()],
        4,
        Some(8 * 1024),
        None,
    )
    .unwrap();
    let client = mesh.nodes[0].client();
    let mut killed_at = None;
    let victim = &mut mesh.nodes[2];
    let done = client
        .submit(request, |update| {
            if let Update::Progress(Progress { job, .. }) = update
                && killed_at.is_none()
                && job.done > 0
                && job.done < job.total / 2
            {
                victim.kill();
                killed_at = Some(job.done);
            }
        })
        .await
        .expect("the job completes without the killed worker");
    assert!(
        killed_at.is_some(),
        "the worker was killed while the job ran"
    );
    assert_eq!(done.output, reference::wordcount(&files));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_submitter_gets_the_exact_result_and_contributes_no_slots() {
    let mesh = Mesh::start(&[2, 2]).await;
    let bootstrap = mesh.nodes[0].addrs[0].clone();
    let out = join_submit(
        &bootstrap,
        &[
            "--json",
            "--timeout",
            "60s",
            "sumsq",
            "0",
            "1000000",
            "--tasks",
            "16",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result_bytes(&answer), reference::sumsq(0, 1_000_000));
    // Only the two mesh nodes did work.
    assert!(answer["peers"].as_u64().unwrap() <= 2);

    // More copies than the mesh and the joining peer make are refused, as through a node.
    let out = join_submit(&bootstrap, &["--copies", "4", "sumsq", "0", "1000"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("needs at least 4 nodes"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_exit_with_code_2_and_submit_nothing() {
    let mesh = Mesh::start(&[1]).await;
    let dir = mesh.nodes[0].dir_arg();
    let cases: [(&[&str], &str); 4] = [
        (
            &["wordcont", "x"],
            "the jobs are: wordcount, grep, sumsq, pi",
        ),
        (
            &["wordcount", "/definitely/not/here"],
            "no such file or directory",
        ),
        (&["sumsq", "10", "5"], "malformed range"),
        (&["pi", "many"], "not a non-negative integer"),
    ];
    for (job, message) in cases {
        let mut args = vec!["submit", "--data-dir", &dir];
        args.extend_from_slice(job);
        let out = shoal(&args);
        assert_eq!(out.status.code(), Some(2), "{job:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(message), "{job:?}: {stderr}");
    }
    let jobs = mesh.nodes[0].client().jobs().await.unwrap();
    assert!(jobs.is_empty(), "nothing was submitted: {jobs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_waits_and_says_so_when_no_node_has_slots() {
    let mesh = Mesh::start(&[0, 0]).await;
    let dir = mesh.nodes[0].dir_arg();
    let out = shoal(&[
        "submit",
        "--data-dir",
        &dir,
        "--timeout",
        "2s",
        "sumsq",
        "0",
        "100",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no result after 2s"));
    let jobs = mesh.nodes[0].client().jobs().await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].status, "waiting for capacity");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_keeps_its_peer_id_and_rejoins() {
    let mut mesh = Mesh::start(&[1, 1]).await;
    let dir = mesh.nodes[1].data_dir.clone();
    let old_id = mesh.nodes[1].peer_id.clone();
    mesh.nodes[1].kill();
    // A dead node leaves the view within a few advert periods (adverts every 1 s, TTL 3.5 s).
    let killed = Instant::now();
    await_view_size(&mesh.nodes[0], 1, killed + Duration::from_secs(6)).await;
    let bootstrap = mesh.nodes[0].addrs.clone();
    mesh.nodes[1] = NodeProc::start(&dir, 1, &bootstrap);
    assert_eq!(mesh.nodes[1].peer_id, old_id);
    mesh.await_full_view(Duration::from_secs(30)).await;
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("node.json")).unwrap()).unwrap();
    assert_eq!(info["peer_id"], old_id.as_str());
    assert_eq!(info["api"], mesh.nodes[1].api.to_string().as_str());
}

#[test]
fn the_demo_runs_and_matches_the_reference() {
    let out = shoal(&["demo"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout
            .matches("equals the single-process reference: yes")
            .count(),
        1,
        "{stdout}"
    );
    assert!(stdout.contains("equals the reference: yes"), "{stdout}");
    assert!(stdout.contains("work spread"), "{stdout}");
}
