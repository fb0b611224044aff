//! `shoal demo`: a 3-node mesh on loopback in one process, a generated corpus, a word count and
//! a sum of squares, each checked against the single-process reference.

use crate::job_request::JobRequest;
use crate::launch::{self, NodeOptions, RunningNode};
use crate::mesh_key::MeshKey;
use shoal_ops::{SplitMix64, reference};
use std::process::ExitCode;
use std::time::Duration;

const NODES: usize = 3;
const FILES: usize = 8;
const LINES_PER_FILE: usize = 20_000;

/// Writes a deterministic corpus of `FILES` files into `dir`.
pub fn write_corpus(dir: &std::path::Path, files: usize, lines: usize) -> std::io::Result<()> {
    const WORDS: &[&str] = &[
        "shoal",
        "mesh",
        "peer",
        "task",
        "gossip",
        "claim",
        "reduce",
        "chunk",
        "node",
        "hash",
        "lease",
        "tree",
        "fish",
        "swim",
        "Ocean",
        "wave",
        "coral",
        "reef",
        "tide",
        "Été",
        "naïve",
        "σκάφος",
        "42",
    ];
    let mut rng = SplitMix64(7);
    for f in 0..files {
        let mut text = String::new();
        for _ in 0..lines {
            let n = 3 + rng.next_u64() % 9;
            for i in 0..n {
                // Skewed choice: low indices are common, like real word frequencies.
                let a = rng.next_u64() % WORDS.len() as u64;
                let b = rng.next_u64() % WORDS.len() as u64;
                text.push_str(WORDS[a.min(b) as usize]);
                text.push_str(if i + 1 == n { ".\n" } else { ", " });
            }
        }
        std::fs::write(dir.join(format!("part-{f:02}.txt")), text)?;
    }
    Ok(())
}

/// Starts the demo's nodes on loopback, in a private mesh of their own (a fresh key), so that
/// nothing else on the machine can join it.
async fn start_mesh(root: &std::path::Path) -> anyhow::Result<Vec<RunningNode>> {
    let key = MeshKey::write_new(&root.join("mesh.key"))?;
    let mut nodes: Vec<RunningNode> = Vec::new();
    let mut bootstrap = Vec::new();
    for i in 0..NODES {
        let mut node = launch::launch(NodeOptions {
            bootstrap: bootstrap.clone(),
            mesh_key: Some(key.clone()),
            ..NodeOptions::loopback(root.join(format!("node-{i}")), 2)
        })
        .await?;
        if bootstrap.is_empty() {
            bootstrap = node.dial_addrs().await;
        }
        nodes.push(node);
    }
    // Wait until every node sees the other two.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    for node in &nodes {
        let client = node.client().expect("a node started with an API");
        while client.node_count().await? < NODES {
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "the demo mesh did not form within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(nodes)
}

/// Runs the demo.
pub async fn run() -> anyhow::Result<ExitCode> {
    let root = tempfile::tempdir()?;
    println!("starting a private {NODES}-node mesh on 127.0.0.1 (a fresh mesh key) ...");
    let nodes = start_mesh(root.path()).await?;
    for (i, n) in nodes.iter().enumerate() {
        println!("  node {i}: {}", n.peer_id);
    }
    let corpus = root.path().join("corpus");
    std::fs::create_dir_all(&corpus)?;
    write_corpus(&corpus, FILES, LINES_PER_FILE)?;
    let files: Vec<Vec<u8>> = (0..FILES)
        .map(|f| std::fs::read(corpus.join(format!("part-{f:02}.txt"))))
        .collect::<Result<_, _>>()?;
    let bytes: usize = files.iter().map(Vec::len).sum();
    println!("generated a corpus of {FILES} files, {} KiB", bytes / 1024);

    let mut ok = true;
    // Word count, submitted from node 1.
    let client = nodes[1].client().expect("a node started with an API");
    let request = JobRequest::parse(
        "wordcount",
        &[corpus.display().to_string()],
        4,
        Some(64 * 1024),
        None,
    )?;
    let done = client.submit(request, |_| {}).await?;
    let matches = done.output == reference::wordcount(&files);
    ok &= matches;
    let mut top: Vec<(String, u64)> = done
        .json()
        .as_ref()
        .and_then(|v| v.as_object())
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    println!(
        "\nwordcount from node 1: {} tasks ({} map, tree depth {}) in {} ms; {} distinct words",
        done.job.total,
        done.job.maps,
        done.job.depth,
        done.elapsed_ms,
        top.len()
    );
    for (w, n) in top.iter().take(8) {
        println!("  {w:<10} {n}");
    }
    println!("  work spread (tasks per node):");
    for (node, count) in &done.job.spread {
        println!("    {node}  {count}");
    }
    println!(
        "  equals the single-process reference: {}",
        if matches { "yes" } else { "NO" }
    );

    // Sum of squares, submitted from node 2.
    let client = nodes[2].client().expect("a node started with an API");
    let request = JobRequest::parse("sumsq", &["0".into(), "50000000".into()], 4, None, Some(32))?;
    let done = client.submit(request, |_| {}).await?;
    let matches = done.output == reference::sumsq(0, 50_000_000);
    ok &= matches;
    println!(
        "\nsumsq 0 50000000 from node 2 = {} ({} tasks on {} workers, {} ms); equals the reference: {}",
        String::from_utf8_lossy(&done.output).trim_matches('"'),
        done.job.total,
        done.job.workers,
        done.elapsed_ms,
        if matches { "yes" } else { "NO" }
    );
    for n in &nodes {
        n.handle.shutdown().await;
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
