//! Results checked by replicas: real nodes, one of which lies (the `fault-injection` feature's
//! `--lie-rate`). With `--replicas 2` every job is exact and the liar is caught; with one
//! replica its lies reach the output; spot checks catch an occasional liar.

mod support;

use shoal_node::job_request::JobRequest;
use shoal_ops::reference;
use std::time::{Duration, Instant};
use support::*;

/// Four honest nodes and one that corrupts `lie_rate` of its results.
async fn mesh_with_a_liar(lie_rate: &str) -> (Mesh, String) {
    let mut mesh = Mesh::start(&[1, 1, 1, 1]).await;
    let liar = NodeProc::start_with(
        &mesh.dir.path().join("liar"),
        1,
        &mesh.nodes[0].addrs,
        &["--lie-rate", lie_rate, "--lie-seed", "7"],
    );
    mesh.nodes.push(liar);
    mesh.await_full_view(Duration::from_secs(30)).await;
    let liar_id = node_id_of(&mesh.nodes[4]).await;
    (mesh, liar_id)
}

/// The node ids a --json answer lists as suspects.
fn suspects(answer: &serde_json::Value) -> Vec<String> {
    answer["suspects"]
        .as_array()
        .expect("the answer lists suspects")
        .iter()
        .map(|s| s["node_id"].as_str().unwrap().to_string())
        .collect()
}

/// Asserts that `answer` names exactly the liar as a suspect, with a lost vote.
fn assert_caught(answer: &serde_json::Value, liar: &str) {
    assert_eq!(answer["replicas"], 2);
    assert_eq!(suspects(answer), vec![liar.to_string()], "{answer}");
    assert!(answer["suspects"][0]["lost"].as_u64().unwrap() >= 1);
    assert!(
        answer["suspects"][0]["peer_id"]
            .as_str()
            .is_some_and(|p| p.starts_with("12D3")),
        "{answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_replicas_word_count_and_grep_are_exact_and_the_liar_is_caught_and_avoided() {
    let (mesh, liar) = mesh_with_a_liar("1").await;
    let corpus = mesh.dir.path().join("corpus");
    let files = write_wide_corpus(&corpus, 4, 600);
    let corpus = corpus.display().to_string();
    let extra = ["--replicas", "2", "--chunk-size", "8192"];
    let wc = submit_json(&mesh.nodes[0], &["wordcount", &corpus], &extra);
    assert_eq!(result_bytes(&wc), reference::wordcount(&files));
    assert_caught(&wc, &liar);

    // The liar is a suspect now: `shoal peers` says so, it is kept across a restart, and the
    // next job gives it nothing to do.
    let peers = mesh.nodes[0].client().peers().await.unwrap();
    let row = peers
        .iter()
        .find(|p| p.node_id == liar)
        .expect("liar listed");
    assert!(
        row.suspect && row.suspect_ms > 0 && row.lost_votes >= 1,
        "{row:?}"
    );
    let out = shoal(&["peers", "--data-dir", &mesh.nodes[0].dir_arg()]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("SUSPECT") && table.contains("vote(s) lost"),
        "{table}"
    );
    let kept = std::fs::read_to_string(mesh.nodes[0].data_dir.join("suspects.json")).unwrap();
    assert!(kept.contains(&liar), "{kept}");

    let grep = submit_json(&mesh.nodes[0], &["grep", "FISH", &corpus], &extra);
    assert_eq!(result_bytes(&grep), reference::grep(&files, "FISH"));
    assert!(suspects(&grep).is_empty(), "{grep}");
    assert_eq!(tasks_done_by(&grep, &liar), 0, "{grep}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_replicas_pi_and_a_wasm_job_are_exact_despite_a_liar() {
    let (mesh, liar) = mesh_with_a_liar("1").await;
    let pi = submit_json(
        &mesh.nodes[1],
        &["pi", "2000000"],
        &["--tasks", "24", "--replicas", "2"],
    );
    let spec = JobRequest::parse("pi", &["2000000".into()], 4, None, Some(24))
        .unwrap()
        .with_trust(2, 0.0)
        .unwrap()
        .generated_spec()
        .unwrap();
    assert_eq!(result_bytes(&pi), reference::pi(&spec).unwrap());
    assert_caught(&pi, &liar);

    // A fresh mesh, so the liar is not yet a suspect for the wasm job.
    drop(mesh);
    let (mesh, liar) = mesh_with_a_liar("1").await;
    let corpus = mesh.dir.path().join("corpus");
    let files = write_wide_corpus(&corpus, 3, 400);
    let wc = example_wasm("wordcount").display().to_string();
    let answer = submit_json(
        &mesh.nodes[2],
        &["--wasm", &wc, &corpus.display().to_string()],
        &["--replicas", "2", "--chunk-size", "8192"],
    );
    let mut expected = reference::wordcount(&files);
    expected.push(b'\n');
    use base64::Engine as _;
    let output = match answer.get("result_encoding") {
        Some(_) => base64::engine::general_purpose::STANDARD
            .decode(answer["result"].as_str().unwrap())
            .unwrap(),
        None => [result_bytes(&answer), b"\n".to_vec()].concat(),
    };
    assert_eq!(output, expected);
    assert_caught(&answer, &liar);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_one_replica_the_liar_s_results_reach_the_output() {
    // The same mesh without replicas: the corruption is real, so the tests above mean something.
    let (mesh, liar) = mesh_with_a_liar("1").await;
    let corpus = mesh.dir.path().join("corpus");
    let files = write_wide_corpus(&corpus, 4, 600);
    let wc = submit_json(
        &mesh.nodes[0],
        &["wordcount", &corpus.display().to_string()],
        &["--chunk-size", "8192"],
    );
    assert!(tasks_done_by(&wc, &liar) > 0, "the liar took part: {wc}");
    assert_ne!(result_bytes(&wc), reference::wordcount(&files));
    assert!(suspects(&wc).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spot_checks_catch_an_occasional_liar_within_a_few_jobs() {
    // The liar corrupts 10% of its results; half of all first results are checked. It does
    // about a fifth of each job's 200 tasks, so each job catches it with probability
    // 1 - (1 - 0.1 * 0.5)^40, about 0.87 (docs/security.md); six jobs miss it with
    // probability below 1e-5.
    let (mesh, liar) = mesh_with_a_liar("0.1").await;
    let mut caught = false;
    for round in 0..6u64 {
        let samples = (2_000_000 + round).to_string();
        let answer = submit_json(
            &mesh.nodes[0],
            &["pi", &samples],
            &["--tasks", "200", "--verify-fraction", "0.5"],
        );
        if suspects(&answer).contains(&liar) {
            caught = true;
            break;
        }
    }
    assert!(caught, "six spot-checked jobs never caught the liar");
    let peers = mesh.nodes[0].client().peers().await.unwrap();
    assert!(peers.iter().any(|p| p.node_id == liar && p.suspect));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quorum_larger_than_the_mesh_fails_at_the_timeout_and_says_why() {
    let mesh = Mesh::start(&[1, 1]).await;
    let dir = mesh.nodes[0].dir_arg();
    let started = Instant::now();
    let out = shoal(&[
        "submit",
        "--data-dir",
        &dir,
        "--timeout",
        "4s",
        "--replicas",
        "3",
        "sumsq",
        "0",
        "1000",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("needs 3 agreeing results") && stderr.contains("only 2 live member(s)"),
        "{stderr}"
    );
    assert!(started.elapsed() >= Duration::from_secs(4));
    // Bad values are usage errors (exit 2), refused before anything is submitted.
    for bad in [
        &["--replicas", "0"][..],
        &["--replicas", "6"],
        &["--verify-fraction", "1.5"],
        &["--replicas", "2", "--verify-fraction", "0.1"],
    ] {
        let mut args = vec!["submit", "--data-dir", &dir];
        args.extend_from_slice(bad);
        args.extend_from_slice(&["sumsq", "0", "10"]);
        let out = shoal(&args);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
    }
}
