//! Jobs over shared datasets, on real processes: nodes share their own parts of `logs`
//! (`shoal node --share logs=DIR`), a node that holds nothing submits `dataset:logs`, and every
//! map task runs where its part is, so that only results travel; a holder killed mid-job is
//! replaced by another copy of its part, or the job fails naming the part; a changed file is
//! shared again under its new hash.

mod support;

use shoal_ops::reference;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

/// Writes `files` log files under `dir` whose words depend on `part` (distinct parts have
/// distinct contents); returns their contents.
fn write_part(dir: &Path, part: u64, files: usize, lines: usize) -> Vec<Vec<u8>> {
    std::fs::create_dir_all(dir).expect("part dir");
    let mut rng = shoal_ops::SplitMix64(1000 + part);
    (0..files)
        .map(|f| {
            let mut text = String::new();
            for _ in 0..lines {
                for _ in 0..6 {
                    text.push_str(&format!("p{part}w{} ", rng.next_u64() % 3000));
                }
                text.push_str("ERROR sensor\n");
            }
            std::fs::write(dir.join(format!("log{f}.txt")), &text).expect("writing a log");
            text.into_bytes()
        })
        .collect()
}

/// Starts a node sharing `shares` (NAME=DIR each), joined through `first` if given.
fn node_sharing(root: &Path, name: &str, first: Option<&NodeProc>, shares: &[String]) -> NodeProc {
    let mut extra: Vec<&str> = Vec::new();
    for s in shares {
        extra.extend(["--share", s.as_str(), "--share-rescan", "200ms"]);
    }
    let bootstrap = first.map(|n| n.addrs.clone()).unwrap_or_default();
    NodeProc::start_with(&root.join(name), 2, &bootstrap, &extra)
}

fn share(dir: &Path) -> String {
    format!("logs={}", dir.display())
}

/// Polls `node` until it sees `peers` nodes and dataset `logs` in `parts` parts; returns the
/// dataset's row.
async fn await_dataset(
    node: &NodeProc,
    peers: usize,
    parts: usize,
) -> shoal_node::api::datasets::DatasetRow {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let seen = node.client().node_count().await.unwrap_or(0);
        let rows = node.client().datasets().await.unwrap_or_default();
        if let Some(row) = rows.into_iter().find(|d| d.name == "logs")
            && row.parts.len() == parts
            && seen >= peers
        {
            return row;
        }
        assert!(
            Instant::now() < deadline,
            "node {} never saw {parts} parts of logs among {peers} nodes",
            node.peer_id
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_are_computed_where_they_are_held_and_only_results_travel() {
    let root = tempfile::tempdir().unwrap();
    let dirs: Vec<PathBuf> = (0..3)
        .map(|i| root.path().join(format!("part{i}")))
        .collect();
    let mut files = Vec::new();
    for (i, d) in dirs.iter().enumerate() {
        // About 3 MiB each: several chunks per part.
        files.extend(write_part(d, i as u64, 30, 1500));
    }
    let a = node_sharing(root.path(), "a", None, &[share(&dirs[0])]);
    let b = node_sharing(root.path(), "b", Some(&a), &[share(&dirs[1])]);
    let c = node_sharing(root.path(), "c", Some(&a), &[share(&dirs[2])]);
    let d = node_sharing(root.path(), "d", Some(&a), &[]);
    let row = await_dataset(&d, 4, 3).await;
    let input: u64 = files.iter().map(|f| f.len() as u64).sum();
    assert_eq!(
        row.bytes, input,
        "the dataset is the union of the parts: {row:?}"
    );
    let ids = [
        node_id_of(&a).await,
        node_id_of(&b).await,
        node_id_of(&c).await,
    ];
    assert!(
        row.parts
            .iter()
            .all(|p| p.holders.len() == 1 && p.chunks > 1),
        "each part has its one holder, and several chunks: {row:?}"
    );

    for job in [
        vec!["wordcount", "dataset:logs"],
        vec!["grep", "ERROR", "dataset:logs"],
    ] {
        let answer = submit_json(&d, &job, &[]);
        let expected = match job[0] {
            "wordcount" => reference::wordcount(&files),
            _ => reference::grep(&files, "ERROR"),
        };
        assert_eq!(result_bytes(&answer), expected, "{job:?}");
        let moved = answer["bytes_moved"].as_u64().unwrap();
        assert!(
            moved * 100 <= input,
            "{job:?}: {moved} of {input} input bytes moved: {answer}"
        );
        assert_eq!(
            answer["at_data"].as_u64().unwrap(),
            row.chunks,
            "{job:?}: every map task ran on its part's holder: {answer}"
        );
        assert!(
            tasks_done_by(&answer, &node_id_of(&d).await)
                <= answer["tasks"].as_u64().unwrap() - row.chunks,
            "{job:?}: the node that holds nothing computed reduces only: {answer}"
        );
    }
    // Nothing changed: the word count again takes every result its members kept.
    let again = submit_json(&d, &["wordcount", "dataset:logs"], &[]);
    assert_eq!(result_bytes(&again), reference::wordcount(&files));
    assert_eq!(
        again["reused"], again["tasks"],
        "every task reused: {again}"
    );
    // A WebAssembly job reads the dataset the same way.
    let wc = example_wasm("wordcount").display().to_string();
    let out = submit_raw(&d, &["--wasm", &wc, "dataset:logs"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        out.stdout,
        [reference::wordcount(&files), b"\n".to_vec()].concat()
    );
    // `shoal datasets` names the dataset, its parts and holders.
    let listed = shoal(&["datasets", "--data-dir", &d.dir_arg()]);
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.status.success() && text.contains("logs"), "{text}");
    for id in &ids {
        assert!(text.contains(id.as_str()), "{id} missing from:\n{text}");
    }
}

/// Starts `shoal submit --json JOB` on `node` without waiting for it.
fn submit_in_background(node: &NodeProc, job: &[&str]) -> std::process::Child {
    let dir = node.dir_arg();
    let mut args = vec!["submit", "--json", "--data-dir", &dir, "--timeout", "120s"];
    args.extend_from_slice(job);
    Command::new(SHOAL)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running shoal submit")
}

/// Polls `node` until a job it submitted has some map tasks done and not all; panics if the
/// job finishes first (the part is too small to catch it midway).
async fn await_midway(node: &NodeProc) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(jobs) = node.client().jobs().await
            && let Some(j) = jobs.first()
            && j.maps_done > 0
        {
            assert!(
                j.done < j.total,
                "the job ended before a holder could be killed"
            );
            return;
        }
        assert!(Instant::now() < deadline, "the job never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_killed_mid_job_is_replaced_by_a_copy_and_without_one_the_job_fails_naming_its_part()
 {
    let root = tempfile::tempdir().unwrap();
    // Part 0 is large (its holder is busy for a while), and a copy of it sits at another path.
    let (big, small, copy) = (
        root.path().join("big"),
        root.path().join("small"),
        root.path().join("copy"),
    );
    let mut files = write_part(&big, 0, 40, 4000);
    files.extend(write_part(&small, 1, 5, 200));
    write_part(&copy, 0, 40, 4000);

    // With the copy: the job is exact.
    let mut a = node_sharing(root.path(), "a", None, &[share(&big)]);
    let b = node_sharing(root.path(), "b", Some(&a), &[share(&small)]);
    let c = node_sharing(root.path(), "c", Some(&a), &[share(&copy)]);
    let d = node_sharing(root.path(), "d", Some(&a), &[]);
    let row = await_dataset(&d, 4, 2).await;
    assert!(
        row.parts.iter().any(|p| p.holders.len() == 2),
        "identical folders on two nodes are one part held twice: {row:?}"
    );
    let running = submit_in_background(&d, &["wordcount", "dataset:logs"]);
    await_midway(&d).await;
    a.kill();
    let out = running.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result_bytes(&answer), reference::wordcount(&files));
    drop((b, c, d));

    // Without a copy: the job fails, and says which part is missing.
    let root2 = tempfile::tempdir().unwrap();
    let mut a = node_sharing(root2.path(), "a", None, &[share(&big)]);
    let b = node_sharing(root2.path(), "b", Some(&a), &[share(&small)]);
    let d = node_sharing(root2.path(), "d", Some(&a), &[]);
    let row = await_dataset(&d, 3, 2).await;
    let big_part = row
        .parts
        .iter()
        .find(|p| p.chunks > 1)
        .expect("the big part")
        .manifest
        .clone();
    let running = submit_in_background(&d, &["wordcount", "dataset:logs"]);
    await_midway(&d).await;
    a.kill();
    let out = running.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "no result without the part: {stderr}"
    );
    assert!(
        stderr.contains("no live holder") && stderr.contains(&big_part[..16]),
        "the error names the missing part {big_part}: {stderr}"
    );
    assert!(out.stdout.is_empty(), "no result printed");
    drop(b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_file_is_shared_again_under_its_new_hash() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("logs");
    let mut files = write_part(&dir, 7, 10, 50);
    let a = node_sharing(root.path(), "a", None, &[share(&dir)]);
    let b = node_sharing(root.path(), "b", Some(&a), &[]);
    let before = await_dataset(&b, 2, 1).await;
    let first = submit_json(&b, &["wordcount", "dataset:logs"], &[]);
    assert_eq!(result_bytes(&first), reference::wordcount(&files));

    let changed = dir.join("log3.txt");
    files[3].extend_from_slice(b"a fresh line\n");
    std::fs::write(&changed, &files[3]).unwrap();
    // The next scan shares the new content: a new part replaces the old one.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = await_dataset(&b, 2, 1).await;
        if now.parts[0].manifest != before.parts[0].manifest {
            assert_eq!(now.bytes, before.bytes + 13);
            break;
        }
        assert!(Instant::now() < deadline, "the change was never shared");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let second = submit_json(&b, &["wordcount", "dataset:logs"], &[]);
    assert_eq!(result_bytes(&second), reference::wordcount(&files));
}

#[test]
fn bad_dataset_inputs_are_refused_before_anything_is_submitted() {
    let root = tempfile::tempdir().unwrap();
    let a = NodeProc::start(&root.path().join("a"), 1, &[]);
    let out = submit_raw(&a, &["wordcount", "dataset:nosuch"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("nosuch") && stderr.contains("--share"),
        "{stderr}"
    );
    let out = submit_raw(&a, &["wordcount", "dataset:a/b"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bad = shoal(&[
        "node",
        "--share",
        "logs=/no/such/dir",
        "--data-dir",
        &a.dir_arg(),
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("/no/such/dir"));
}
