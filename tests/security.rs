//! The trust boundary on loopback, with real `shoal node` processes: the API's token, jobs' data
//! going only to their members, `--submitters`, and private meshes that intruders cannot join.
//! (The same on separate hosts with mDNS: tests/lan, scenario `a_private_mesh_...`.)

mod support;

use shoal_ops::reference;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use support::*;

/// A word no other file in the tests contains: if it shows up anywhere, the file was read.
const SECRET_WORD: &str = "quetzalcoatlus7731";

fn write_secret(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("secret.txt");
    std::fs::write(&path, format!("top {SECRET_WORD} secret\n")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    path
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_requests_without_the_right_token_are_refused_and_read_nothing() {
    let mesh = Mesh::start(&[1]).await;
    let node = &mesh.nodes[0];
    let secret = write_secret(mesh.dir.path());
    let base = format!("http://{}", node.api);
    let job = serde_json::json!({
        "kind": { "WordCount": { "paths": [secret] } },
        "fanin": 4, "chunk_size": null, "tasks": null
    });
    let token = std::fs::read_to_string(node.data_dir.join("api.token")).unwrap();
    for auth in [
        None,
        Some("Bearer 0000"),
        Some("Bearer "),
        Some("Basic abc"),
    ] {
        for (method, path) in [
            ("GET", "/api/v1/peers"),
            ("GET", "/api/v1/jobs"),
            ("POST", "/api/v1/jobs"),
        ] {
            let mut request = match method {
                "GET" => http().get(format!("{base}{path}")),
                _ => http().post(format!("{base}{path}")).json(&job),
            };
            if let Some(a) = auth {
                request = request.header("Authorization", a);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 401, "{method} {path} with {auth:?}");
            let body = response.text().await.unwrap();
            assert!(
                body.contains("API token") && !body.contains(SECRET_WORD),
                "{body}"
            );
        }
    }
    // A wrong token in the query or a cookie does no better.
    let response = http()
        .post(format!("{base}/api/v1/jobs?token=1234"))
        .header("Cookie", format!("shoal_token_{}=1234", node.api.port()))
        .json(&job)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    // The CLI with a wrong token: refused, nothing printed of the file.
    let out = Command::new(SHOAL)
        .args(["submit", "--api", &node.api.to_string(), "wordcount"])
        .arg(&secret)
        .env("SHOAL_API_TOKEN", "not-the-token")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        all.contains("refused") && !all.contains(SECRET_WORD),
        "{all}"
    );
    // Nothing was submitted: the file was never chunked.
    let jobs = node.client().jobs().await.unwrap();
    assert!(jobs.is_empty(), "{jobs:?}");
    // A malformed body with the right token is a 400 with a message, and the node carries on.
    let response = http()
        .post(format!("{base}/api/v1/jobs"))
        .bearer_auth(token.trim())
        .body("{\"kind\": 7")
        .header("Content-Type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("malformed job request")
    );
    assert_eq!(node.client().peers().await.unwrap().len(), 1);
}

/// `runuser -u nobody -- ARGS`, if this process may do that (root, and the tool exists).
fn as_nobody(args: &[&str], env: &[(&str, &str)]) -> Option<std::process::Output> {
    let root = Command::new("id").arg("-u").output().ok()?.stdout == b"0\n";
    if !root {
        return None;
    }
    let mut cmd = Command::new("runuser");
    cmd.args(["-u", "nobody", "--"]).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_local_user_cannot_drive_the_node_or_read_its_files() {
    let mesh = Mesh::start(&[1]).await;
    let node = &mesh.nodes[0];
    let secret = write_secret(mesh.dir.path());
    let secret_arg = secret.display().to_string();
    let api = node.api.to_string();
    let dir = node.dir_arg();
    // Through the node's data dir (its token is the node user's alone), and with a guess.
    type Attempt<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)]);
    let attempts: [Attempt; 3] = [
        (
            &[
                SHOAL,
                "submit",
                "--data-dir",
                &dir,
                "wordcount",
                &secret_arg,
            ],
            &[],
        ),
        (
            &[SHOAL, "submit", "--api", &api, "grep", "top", &secret_arg],
            &[("SHOAL_API_TOKEN", "guess")],
        ),
        (
            &[SHOAL, "jobs", "--api", &api],
            &[("SHOAL_API_TOKEN", "guess")],
        ),
    ];
    for (args, env) in attempts {
        let Some(out) = as_nobody(args, env) else {
            eprintln!("skipped: switching to the nobody user needs root and runuser");
            return;
        };
        assert!(!out.status.success(), "{args:?} succeeded as nobody");
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!all.contains(SECRET_WORD), "{all}");
        assert!(
            all.contains("refused")
                || all.contains("cannot read the API token")
                || all.contains("Permission denied"),
            "{args:?}: {all}"
        );
    }
    let jobs = node.client().jobs().await.unwrap();
    assert!(jobs.is_empty(), "nothing was submitted: {jobs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_is_not_a_member_of_a_job_cannot_fetch_its_chunks() {
    // A node without slots: its job waits for a member, holding its chunk.
    let mut mesh = Mesh::start(&[0]).await;
    let corpus = mesh.dir.path().join("corpus");
    let files = write_wide_corpus(&corpus, 1, 200);
    let chunk_hash = blake3::hash(&files[0]).to_hex().to_string();
    let client = mesh.nodes[0].client();
    let request = shoal_node::job_request::JobRequest::parse(
        "wordcount",
        &[corpus.display().to_string()],
        4,
        Some(64 << 20),
        None,
    )
    .unwrap();
    let job = tokio::spawn(async move { client.submit(request, |_| {}).await });
    let deadline = Instant::now() + Duration::from_secs(10);
    while mesh.nodes[0].client().jobs().await.unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the job was not accepted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Anyone else asking for the chunk by its hash gets nothing, however often it asks.
    let addr = mesh.nodes[0].addrs[0].clone();
    for _ in 0..3 {
        let out = shoal(&["probe", "blob", &addr, &chunk_hash, "--json"]);
        let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(answer["outcome"], "missing", "{answer}");
        assert_eq!(out.status.code(), Some(3));
    }
    // A member (a node with a slot, recruited by the submitter) gets it: the job finishes exactly.
    let bootstrap = mesh.nodes[0].addrs.clone();
    mesh.nodes.push(NodeProc::start(
        &mesh.dir.path().join("worker"),
        1,
        &bootstrap,
    ));
    let done = tokio::time::timeout(Duration::from_secs(60), job)
        .await
        .expect("the job finished once a member came")
        .unwrap()
        .unwrap();
    assert_eq!(done.output, reference::wordcount(&files));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_runs_only_the_jobs_of_the_submitters_it_lists() {
    let dir = tempfile::tempdir().unwrap();
    let a = NodeProc::start(&dir.path().join("a"), 1, &[]);
    let b = NodeProc::start(&dir.path().join("b"), 1, &a.addrs);
    let list = dir.path().join("submitters");
    std::fs::write(&list, format!("# only a\n{}\n", a.peer_id)).unwrap();
    let list_arg = list.display().to_string();
    let c = NodeProc::start_with(
        &dir.path().join("c"),
        2,
        &a.addrs,
        &["--submitters", &list_arg],
    );
    let mesh = Mesh {
        dir,
        nodes: vec![a, b, c],
    };
    mesh.await_full_view(Duration::from_secs(30)).await;
    let c_id = node_id_of(&mesh.nodes[2]).await;
    // A job of b's: c declines it and never runs a task of it.
    let from_b = submit_json(
        &mesh.nodes[1],
        &["sumsq", "0", "3000000"],
        &["--tasks", "64"],
    );
    assert_eq!(result_bytes(&from_b), reference::sumsq(0, 3_000_000));
    assert!(
        tasks_done_by(&from_b, &c_id) == 0,
        "c ran b's tasks: {from_b}"
    );
    // A job of a's: c works on it.
    let from_a = submit_json(
        &mesh.nodes[0],
        &["sumsq", "0", "3000001"],
        &["--tasks", "64"],
    );
    assert_eq!(result_bytes(&from_a), reference::sumsq(0, 3_000_001));
    assert!(
        tasks_done_by(&from_a, &c_id) > 0,
        "c did not work for a: {from_a}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_no_node_accepts_fails_with_the_reason_instead_of_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let nobody = dir.path().join("nobody");
    std::fs::write(&nobody, "# no one else's jobs\n").unwrap();
    let nobody_arg = nobody.display().to_string();
    let a = NodeProc::start_with(
        &dir.path().join("a"),
        2,
        &[],
        &["--submitters", &nobody_arg],
    );
    let b = NodeProc::start_with(
        &dir.path().join("b"),
        2,
        &a.addrs,
        &["--submitters", &nobody_arg],
    );
    let mesh = Mesh {
        dir,
        nodes: vec![a, b],
    };
    mesh.await_full_view(Duration::from_secs(30)).await;
    let started = Instant::now();
    let bootstrap = mesh.nodes[0].addrs[0].clone();
    let out = join_submit(&bootstrap, &["--timeout", "60s", "sumsq", "0", "1000"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no node accepts jobs from you"), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "it waited {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_with_another_key_or_none_never_join_a_private_mesh() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k.key");
    let other = dir.path().join("other.key");
    for k in [&key, &other] {
        assert!(
            shoal(&["key", "new", &k.display().to_string()])
                .status
                .success()
        );
    }
    // `key new` never overwrites.
    let again = shoal(&["key", "new", &key.display().to_string()]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let k = key.display().to_string();
    let o = other.display().to_string();
    let a = NodeProc::start_with(&dir.path().join("a"), 1, &[], &["--mesh-key", &k]);
    let b = NodeProc::start_with(&dir.path().join("b"), 1, &a.addrs, &["--mesh-key", &k]);
    // Intruders dial a's address directly.
    let open = NodeProc::start(&dir.path().join("open"), 1, &a.addrs);
    let wrong = NodeProc::start_with(&dir.path().join("wrong"), 1, &a.addrs, &["--mesh-key", &o]);
    let mesh = Mesh {
        dir,
        nodes: vec![a, b, open, wrong],
    };
    let insiders = [&mesh.nodes[0], &mesh.nodes[1]];
    let deadline = Instant::now() + Duration::from_secs(20);
    for n in insiders {
        await_view_size(n, 2, deadline).await;
    }
    // For several dial and advert rounds, nobody crosses the line either way.
    let watch_until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < watch_until {
        for n in insiders {
            let ids: Vec<String> = n
                .client()
                .peers()
                .await
                .unwrap()
                .into_iter()
                .map(|p| p.peer_id)
                .collect();
            assert_eq!(ids.len(), 2, "{ids:?}");
            for intruder in &mesh.nodes[2..] {
                assert!(
                    !ids.contains(&intruder.peer_id),
                    "{} got in: {ids:?}",
                    intruder.peer_id
                );
            }
        }
        for intruder in &mesh.nodes[2..] {
            let seen = intruder.client().peers().await.unwrap();
            assert_eq!(seen.len(), 1, "an intruder sees {seen:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A job of the private mesh runs on its members and is exact.
    let answer = submit_json(
        &mesh.nodes[0],
        &["sumsq", "0", "1000000"],
        &["--tasks", "16"],
    );
    assert_eq!(result_bytes(&answer), reference::sumsq(0, 1_000_000));
    // The intruders never reach the blob protocol: no answer at all, not even "missing" (the
    // connection is closed before any protocol runs on it).
    let manifestless = "00".repeat(32);
    for key_arg in [None, Some(o.as_str())] {
        let mut args = vec![
            "probe",
            "blob",
            &mesh.nodes[0].addrs[0],
            &manifestless,
            "--json",
        ];
        if let Some(key) = key_arg {
            args.extend(["--mesh-key", key]);
        }
        let out = shoal(&args);
        let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let outcome = answer["outcome"].as_str().unwrap();
        assert!(
            outcome == "no-connection" || outcome == "failed",
            "{answer}"
        );
    }
}
