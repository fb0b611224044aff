//! The HTTP API from plain HTTP clients: every curl example of docs/api.md runs against a live
//! mesh, requests without the token are refused everywhere, malformed bodies get a 4xx with a
//! message and leave the node working, and `/metrics` is valid Prometheus text whose task
//! counter grows by the tasks a job ran.

mod support;

use shoal_ops::reference;
use std::process::Command;
use std::time::Duration;
use support::*;

fn token_of(node: &NodeProc) -> String {
    std::fs::read_to_string(node.data_dir.join("api.token"))
        .unwrap()
        .trim()
        .to_string()
}

/// The shell commands of docs/api.md's code blocks that call curl.
fn documented_curls() -> Vec<String> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/api.md"))
        .expect("docs/api.md");
    let mut commands = Vec::new();
    let mut in_block = false;
    let mut current = String::new();
    for line in doc.lines() {
        if line.starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if !in_block {
            continue;
        }
        if line.starts_with("curl ") || !current.is_empty() {
            current.push_str(line.trim_end_matches('\\'));
            current.push(' ');
            if !line.ends_with('\\') {
                commands.push(std::mem::take(&mut current));
            }
        }
    }
    commands
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_curl_example_runs() {
    let mesh = Mesh::start(&[1, 1]).await;
    let node = &mesh.nodes[0];
    let job = submit_json(node, &["sumsq", "0", "100000"], &["--tasks", "8"]);
    let job_id = job["job"].as_str().unwrap().to_string();
    let curls = documented_curls();
    assert!(curls.len() >= 8, "found only {curls:?}");
    for curl in &curls {
        // The status code goes on a line of its own after the body.
        let script = format!("{curl} -w '\\n%{{http_code}}'");
        let out = Command::new("sh")
            .arg("-c")
            .arg(&script)
            .env("TOKEN", token_of(node))
            .env("API", format!("http://{}", node.api))
            .env("JOB", &job_id)
            .output()
            .expect("running sh");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let (body, code) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
        assert!(
            out.status.success(),
            "{curl}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(code.starts_with('2'), "{curl} answered {code}: {body}");
        if curl.contains("/events") {
            assert!(body.contains("event: done"), "{curl}: {body}");
        } else if curl.contains("/metrics") {
            assert!(body.contains("shoal_tasks_run_total"), "{curl}: {body}");
        } else {
            let value: serde_json::Value = serde_json::from_str(body)
                .unwrap_or_else(|e| panic!("{curl} gave no JSON ({e}): {body}"));
            if curl.contains("/results/") {
                // A result by id, from any node: done, with the output base64-encoded.
                use base64::Engine as _;
                assert_eq!(value["status"], "done", "{curl}: {body}");
                let output = base64::engine::general_purpose::STANDARD
                    .decode(value["output_b64"].as_str().unwrap())
                    .unwrap();
                assert_eq!(output, reference::sumsq(0, 100_000));
            } else if curl.contains("/result") {
                assert_eq!(
                    serde_json::to_vec(&value).unwrap(),
                    reference::sumsq(0, 100_000)
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_refuses_a_request_without_the_token() {
    let mesh = Mesh::start(&[1]).await;
    let base = format!("http://{}", mesh.nodes[0].api);
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let job = "00".repeat(32);
    let paths = [
        "/assets/app.js".to_string(),
        "/metrics".into(),
        "/api/v1/node".into(),
        "/api/v1/peers".into(),
        "/api/v1/jobs".into(),
        "/api/v1/events".into(),
        format!("/api/v1/jobs/{job}"),
        format!("/api/v1/jobs/{job}/events"),
        format!("/api/v1/jobs/{job}/result"),
        format!("/api/v1/results/{job}"),
        "/no/such/thing".into(),
    ];
    for path in &paths {
        for token in [None, Some("wrong")] {
            let mut request = http.get(format!("{base}{path}"));
            if let Some(t) = token {
                request = request.bearer_auth(t);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 401, "GET {path} with {token:?}");
            let body: serde_json::Value = response.json().await.unwrap();
            assert!(body["error"].as_str().unwrap().contains("token"), "{body}");
        }
    }
    // A browser at the dashboard without the token is told how to get in, and gets nothing else.
    let page = http.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(page.status(), 401);
    let text = page.text().await.unwrap();
    assert!(
        text.contains("needs the node's token") && !text.contains("app.js"),
        "{text}"
    );
    // With the token from the query, a browser gets the page and a cookie that works alone.
    let token = token_of(&mesh.nodes[0]);
    let page = http
        .get(format!("{base}/?token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let cookie = page.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_string();
    let again = http
        .get(format!("{base}/api/v1/node"))
        .header("Cookie", pair)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_a_4xx_with_a_message_and_the_node_carries_on() {
    let mesh = Mesh::start(&[1]).await;
    let node = &mesh.nodes[0];
    let base = format!("http://{}", node.api);
    let token = token_of(node);
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let bodies: [(&str, &str); 6] = [
        ("{", "malformed job request"),
        ("[]", "malformed job request"),
        (
            r#"{"kind": {"Nope": {}}, "fanin": 4, "chunk_size": null, "tasks": null}"#,
            "malformed job request",
        ),
        (
            r#"{"kind": {"SumSq": {"start": 5, "end": 1}}, "fanin": 4, "chunk_size": null, "tasks": 1}"#,
            "empty range",
        ),
        (
            r#"{"kind": {"SumSq": {"start": 0, "end": 10}}, "fanin": 1, "chunk_size": null, "tasks": 1}"#,
            "fan-in",
        ),
        (
            r#"{"kind": {"WordCount": {"paths": ["/no/such/dir"]}}, "fanin": 4, "chunk_size": null, "tasks": null}"#,
            "/no/such/dir",
        ),
    ];
    for (body, message) in bodies {
        let response = http
            .post(format!("{base}/api/v1/jobs"))
            .bearer_auth(&token)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body}");
        let answer: serde_json::Value = response.json().await.unwrap();
        let error = answer["error"].as_str().unwrap();
        assert!(error.contains(message), "{body}: {error}");
    }
    let too_big = "x".repeat(2 << 20);
    // On a connection of its own: the server refuses the body without reading it and closes
    // the connection, which a pooled client would otherwise try to reuse for the next request.
    let once = reqwest::Client::builder().no_proxy().build().unwrap();
    let response = once
        .post(format!("{base}/api/v1/jobs"))
        .bearer_auth(&token)
        .header("Content-Type", "application/json")
        .body(too_big)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_client_error(), "{}", response.status());
    for path in ["/api/v1/jobs/not-a-job", "/api/v1/jobs/zz/result"] {
        let response = http
            .get(format!("{base}{path}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{path}");
    }
    let unknown = format!("{base}/api/v1/jobs/{}", "ab".repeat(32));
    let response = http.get(&unknown).bearer_auth(&token).send().await.unwrap();
    assert_eq!(response.status(), 404);
    // Nothing was submitted, and the node still works.
    assert!(node.client().jobs().await.unwrap().is_empty());
    let answer = submit_json(node, &["sumsq", "0", "1000"], &["--tasks", "2"]);
    assert_eq!(result_bytes(&answer), reference::sumsq(0, 1000));
}

/// The sum of a counter's samples (over all its labels) in a Prometheus text exposition.
fn counter_total(text: &str, name: &str) -> f64 {
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("valid Prometheus text");
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

async fn metrics_text(node: &NodeProc) -> String {
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let response = http
        .get(format!("http://{}/metrics", node.api))
        .bearer_auth(token_of(node))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let kind = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
    response.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_task_counter_grows_by_the_tasks_a_job_ran() {
    // One node: it runs every task of its job, once.
    let mesh = Mesh::start(&[2]).await;
    let node = &mesh.nodes[0];
    let before = metrics_text(node).await;
    let was = counter_total(&before, "shoal_tasks_run_total");
    let answer = submit_json(
        node,
        &["sumsq", "0", "1000000"],
        &["--tasks", "50", "--fanin", "4"],
    );
    assert_eq!(result_bytes(&answer), reference::sumsq(0, 1_000_000));
    let tasks = answer["tasks"].as_u64().unwrap() as f64;
    assert_eq!(tasks, 50.0 + 13.0 + 4.0 + 1.0, "50 maps and a 4-ary tree");
    let after = metrics_text(node).await;
    assert_eq!(counter_total(&after, "shoal_tasks_run_total") - was, tasks);
    for name in [
        "shoal_gossip_messages_total",
        "shoal_peers",
        "shoal_blob_store_bytes",
        "shoal_job_duration_seconds",
        "shoal_libp2p_swarm_new_listen_addr_total",
    ] {
        assert!(after.contains(name), "{name} missing from:\n{after}");
    }
    let jobs_done = after
        .lines()
        .find(|l| l.starts_with("shoal_job_duration_seconds_count"))
        .unwrap_or_else(|| panic!("no job duration count:\n{after}"));
    assert!(jobs_done.ends_with(" 1"), "{jobs_done}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_small_connected_mesh_a_job_s_messages_travel_on_direct_streams() {
    // The submitter runs nothing: its announcement goes out, and claims and completions come
    // back, on direct streams (not gossip) once every node is connected to every other.
    let mesh = Mesh::start(&[0, 2, 2]).await;
    let submitter = &mesh.nodes[0];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let sent_before = counter_total(
            &metrics_text(submitter).await,
            "shoal_direct_messages_sent_total",
        );
        let answer = submit_json(submitter, &["sumsq", "0", "100000"], &["--tasks", "8"]);
        assert_eq!(result_bytes(&answer), reference::sumsq(0, 100_000));
        let sent = counter_total(
            &metrics_text(submitter).await,
            "shoal_direct_messages_sent_total",
        ) - sent_before;
        let mut received = 0.0;
        for member in &mesh.nodes[1..] {
            received += counter_total(
                &metrics_text(member).await,
                "shoal_direct_messages_received_total",
            );
        }
        if sent > 0.0 && received > 0.0 {
            break;
        }
        // The members may still be finding each other (Kademlia): until then gossip carries
        // the messages, and the results are as exact.
        assert!(
            std::time::Instant::now() < deadline,
            "no direct messages within 30 s (sent {sent}, received {received})"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_a_direct_stream_counts_against_its_sender_and_the_node_works_on() {
    let mesh = Mesh::start(&[1]).await;
    let node = &mesh.nodes[0];
    let offences = |text: &str| counter_total(text, "shoal_peer_offences_total");
    let before = offences(&metrics_text(node).await);
    // A frame on a topic that does not exist, one whose message does not decode, then a length
    // no frame may have (after which the node closes the stream).
    let mut bytes = shoal_node::direct::frame("not/a/topic", b"x");
    bytes.extend(shoal_node::direct::frame("shoal/jobs/4", b"not a message"));
    bytes.extend(u32::MAX.to_le_bytes());
    shoal_node::probe::direct(
        node.addrs[0].parse().unwrap(),
        &bytes,
        None,
        Duration::from_secs(20),
    )
    .await
    .expect("the node read the frames and closed the stream");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let counted = offences(&metrics_text(node).await) - before;
        if counted == 3.0 {
            break;
        }
        assert!(counted < 3.0, "{counted} offences for 3 bad frames");
        assert!(
            std::time::Instant::now() < deadline,
            "{counted} of 3 offences counted within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let answer = submit_json(node, &["sumsq", "0", "1000"], &["--tasks", "2"]);
    assert_eq!(result_bytes(&answer), reference::sumsq(0, 1000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gossip_message_forged_in_another_peer_s_name_counts_against_whoever_passed_it_on() {
    let mesh = Mesh::start(&[1, 1]).await;
    let (a, b) = (&mesh.nodes[0], &mesh.nodes[1]);
    let offences = |text: &str| counter_total(text, "shoal_peer_offences_total");
    let before = offences(&metrics_text(a).await);
    // A well-formed message (a query about a job), sealed by a key that is not B's and passed
    // on to A in B's name by a stranger.
    let jobs = shoal_protocol::Topic::Jobs.name();
    let mut stand_in = shoal_protocol::Node::new(
        shoal_protocol::NodeId([7; 32]),
        shoal_protocol::Capacity {
            slots: 1,
            cores: 1,
            mem_mb: 64,
        },
        shoal_protocol::Config::default(),
        1,
    );
    // Queries about different jobs: different messages (gossip drops a repeated one). Enough
    // of them to graylist whoever they are held against (three, with gossip's own penalty
    // for invalid messages on the jobs topic and the application's: docs/security.md).
    let forger = libp2p::identity::Keypair::generate_ed25519();
    let forged: Vec<Vec<u8>> = (0..12u8)
        .map(|i| {
            stand_in.query(0, shoal_protocol::JobId([i; 32]));
            let (_, payload) = stand_in.poll_transmit().expect("a query goes out");
            shoal_node::seal::seal(&forger, &jobs, &[], &payload)
        })
        .collect();
    let stranger = shoal_node::probe::gossip(
        a.addrs[0].parse().unwrap(),
        &jobs,
        forged,
        Some(b.peer_id.parse().unwrap()),
        None,
        Duration::from_secs(20),
    )
    .await
    .expect("the stranger joined the jobs topic and published");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while offences(&metrics_text(a).await) - before < 3.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "three forged messages were not counted as offences within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(offences(&metrics_text(a).await) - before <= 12.0);
    // The offences went to the stranger, not to B: B's gossip score on A is untouched, and B
    // still takes A's work, its results counted.
    let rows = a.client().peers().await.unwrap();
    let b_row = rows
        .iter()
        .find(|r| r.peer_id == b.peer_id)
        .expect("A lists B");
    assert_eq!(b_row.gossip_score, 0.0, "{b_row:?}");
    assert!(!b_row.graylisted);
    // The stranger is listed (it is no node of the mesh), graylisted.
    let strangers: Vec<_> = rows.iter().filter(|r| r.stranger).collect();
    assert_eq!(strangers.len(), 1, "{rows:?}");
    assert_eq!(strangers[0].peer_id, stranger.peer_id().to_string());
    assert!(strangers[0].graylisted, "{:?}", strangers[0]);
    assert_eq!(strangers[0].slots_total, 0);
    let corpus = mesh.dir.path().join("corpus");
    let files = write_wide_corpus(&corpus, 4, 3000);
    let answer = submit_json(
        a,
        &["wordcount", &corpus.display().to_string()],
        &["--chunk-size", "16384"],
    );
    assert_eq!(result_bytes(&answer), reference::wordcount(&files));
    let b_id = node_id_of(b).await;
    assert!(tasks_done_by(&answer, &b_id) > 0, "B ran none: {answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_s_page_shows_its_tasks_tree_and_grid() {
    let mesh = Mesh::start(&[1, 1]).await;
    let node = &mesh.nodes[0];
    let answer = submit_json(
        node,
        &["sumsq", "0", "200000"],
        &["--tasks", "20", "--fanin", "4"],
    );
    let id = answer["job"].as_str().unwrap();
    let detail = node.client().job(id).await.unwrap();
    let total = answer["tasks"].as_u64().unwrap() as u32;
    assert_eq!(detail.job.total, total);
    assert_eq!(detail.grid.cells.len() as u32, total, "one cell per task");
    assert!(
        detail.grid.cells.iter().all(|(state, _)| *state == 3),
        "all done"
    );
    assert_eq!(detail.tasks.done, total);
    let levels: Vec<u32> = detail.tree.iter().map(|l| l.tasks).collect();
    assert_eq!(levels, vec![20, 5, 2, 1]);
    assert!(detail.tree.iter().all(|l| l.done == l.tasks));
    // A job that waits says why.
    let idle = Mesh::start(&[0]).await;
    let client = idle.nodes[0].client();
    let request = shoal_node::job_request::JobRequest::parse(
        "sumsq",
        &["0".into(), "10".into()],
        4,
        None,
        Some(2),
    )
    .unwrap();
    tokio::spawn(async move { client.submit(request, |_| {}).await });
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let jobs = idle.nodes[0].client().jobs().await.unwrap();
        if let Some(j) = jobs.first() {
            let detail = idle.nodes[0].client().job(&j.id).await.unwrap();
            if detail.why.iter().any(|w| w.contains("waits for capacity")) {
                break;
            }
        }
        assert!(std::time::Instant::now() < deadline, "no reason given");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_outcome_the_node_forgot_fails_at_once_instead_of_hanging_or_running() {
    let mesh = Mesh::start(&[2]).await;
    let client = mesh.nodes[0].client();
    let sumsq = |i: u64| {
        shoal_node::job_request::JobRequest::parse(
            "sumsq",
            &[(i * 10).to_string(), (i * 10 + 9).to_string()],
            4,
            None,
            Some(1),
        )
        .unwrap()
    };
    let first = client.run(sumsq(0)).await.unwrap().job.id;
    // The node keeps the last 64 outcomes: 80 jobs that end after it push the first one's out.
    for i in 1..=80 {
        client.run(sumsq(i)).await.unwrap();
    }
    let base = format!("http://{}", mesh.nodes[0].api);
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let events = tokio::time::timeout(
        Duration::from_secs(30),
        http.get(format!("{base}/api/v1/jobs/{first}/events"))
            .bearer_auth(token_of(&mesh.nodes[0]))
            .send()
            .await
            .unwrap()
            .text(),
    )
    .await
    .expect("the event stream ends instead of waiting forever")
    .unwrap();
    assert!(
        events.contains("event: failed") && events.contains("no longer holds its outcome"),
        "{events}"
    );
    // Its result is gone too, and the answer says so rather than "still running".
    let result = http
        .get(format!("{base}/api/v1/jobs/{first}/result"))
        .bearer_auth(token_of(&mesh.nodes[0]))
        .send()
        .await
        .unwrap();
    assert_eq!(result.status(), reqwest::StatusCode::GONE);
    let body = result.text().await.unwrap();
    assert!(body.contains("no longer holds its outcome"), "{body}");
}
