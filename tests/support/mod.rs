//! Test support: real `shoal node` processes on 127.0.0.1, each with its own data dir and API
//! port, killed (SIGKILL) when the test ends, pass or fail.

#![allow(dead_code)]

use shoal_node::api::token::ApiToken;
use shoal_node::client::Client;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub(crate) const SHOAL: &str = env!("CARGO_BIN_EXE_shoal");

/// One `shoal node` process.
pub(crate) struct NodeProc {
    pub child: Child,
    pub peer_id: String,
    pub addrs: Vec<String>,
    pub api: SocketAddr,
    pub data_dir: PathBuf,
}

impl NodeProc {
    /// Starts a node and waits until it prints its API address (it is listening by then).
    pub(crate) fn start(data_dir: &Path, slots: u32, bootstrap: &[String]) -> Self {
        Self::start_with(data_dir, slots, bootstrap, &[])
    }

    /// Starts a node with `extra` arguments (`--mesh-key K`, `--submitters F`, ...).
    pub(crate) fn start_with(
        data_dir: &Path,
        slots: u32,
        bootstrap: &[String],
        extra: &[&str],
    ) -> Self {
        let mut cmd = Command::new(SHOAL);
        cmd.args([
            "node",
            "--no-mdns",
            "--listen",
            "/ip4/127.0.0.1/udp/0/quic-v1",
        ])
        .args(["--api", "127.0.0.1:0", "--slots", &slots.to_string()])
        .arg("--data-dir")
        .arg(data_dir);
        for b in bootstrap {
            cmd.args(["--bootstrap", b]);
        }
        cmd.args(extra);
        Self::spawn(cmd, data_dir)
    }

    /// Runs `cmd` (a `shoal node` command line, perhaps wrapped) and waits until the node prints
    /// its API address.
    pub(crate) fn spawn(mut cmd: Command, data_dir: &Path) -> Self {
        cmd.stdout(Stdio::piped()).stderr(Stdio::null());
        // For diagnosing a failing test: keep each node's log in this directory (with
        // SHOAL_LOG for the level).
        if let Some(dir) = std::env::var_os("SHOAL_TEST_NODE_LOGS") {
            let name = data_dir.display().to_string().replace('/', "_");
            let log = std::fs::File::create(Path::new(&dir).join(name))
                .expect("creating a node log in SHOAL_TEST_NODE_LOGS");
            cmd.stderr(log);
        }
        let mut child = cmd.spawn().expect("spawning shoal node");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let (mut peer_id, mut addrs, mut api) = (String::new(), Vec::new(), None);
        // The node prints these lines once, at start; reading them blocks until it is up.
        for line in lines.by_ref() {
            let line = line.expect("reading node stdout");
            if let Some(id) = line.strip_prefix("peer id: ") {
                peer_id = id.to_string();
            } else if let Some(a) = line.strip_prefix("listening on ") {
                addrs.push(a.to_string());
            } else if let Some(a) = line.strip_prefix("local api: ") {
                api = Some(a.parse().expect("api address"));
                break;
            }
        }
        // Keep draining stdout so the node never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Self {
            child,
            peer_id,
            addrs,
            api: api.expect("node printed its api address"),
            data_dir: data_dir.to_path_buf(),
        }
    }

    /// The data dir as a CLI argument: the CLI finds the node's API and token there.
    pub(crate) fn dir_arg(&self) -> String {
        self.data_dir.display().to_string()
    }

    pub(crate) fn client(&self) -> Client {
        let token = ApiToken::find(&self.data_dir).expect("the node wrote its API token");
        Client::new(self.api, token)
    }

    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Several nodes joined through the first one's address (no mDNS: tests run side by side).
pub(crate) struct Mesh {
    pub dir: tempfile::TempDir,
    pub nodes: Vec<NodeProc>,
}

impl Mesh {
    pub(crate) async fn start(slots: &[u32]) -> Self {
        Self::start_with(slots, &[]).await
    }

    /// The same, every node started with `extra` arguments (`--mesh-key K`, ...).
    pub(crate) async fn start_with(slots: &[u32], extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut nodes: Vec<NodeProc> = Vec::new();
        for (i, &s) in slots.iter().enumerate() {
            let mut bootstrap = nodes.first().map(|n| n.addrs.clone()).unwrap_or_default();
            if i % 2 == 0 {
                // Every other node bootstraps from the bare address, without /p2p/<peer-id>.
                bootstrap = bootstrap.iter().map(|a| strip_peer_id(a)).collect();
            }
            nodes.push(NodeProc::start_with(
                &dir.path().join(format!("node-{i}")),
                s,
                &bootstrap,
                extra,
            ));
        }
        let mesh = Self { dir, nodes };
        mesh.await_full_view(Duration::from_secs(30)).await;
        mesh
    }

    /// Polls every node's view until each sees all the others, or panics at the deadline.
    pub(crate) async fn await_full_view(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        for node in &self.nodes {
            loop {
                let seen = node.client().node_count().await.unwrap_or(0);
                if seen >= self.nodes.len() {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "node {} sees {seen} of {} nodes",
                    node.peer_id,
                    self.nodes.len()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// A multiaddr without its trailing `/p2p/<peer-id>`.
pub(crate) fn strip_peer_id(addr: &str) -> String {
    match addr.rfind("/p2p/") {
        Some(i) => addr[..i].to_string(),
        None => addr.to_string(),
    }
}

/// Polls a node's view (itself included) until it holds exactly `size` nodes, or panics at the
/// deadline.
pub(crate) async fn await_view_size(node: &NodeProc, size: usize, deadline: Instant) {
    loop {
        let seen = node.client().node_count().await.unwrap_or(0);
        if seen == size {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "node {} sees {seen} nodes, not {size}",
            node.peer_id
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs `shoal ARGS...` to completion.
pub(crate) fn shoal(args: &[&str]) -> Output {
    Command::new(SHOAL)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running shoal")
}

/// `shoal submit --join --no-mdns --bootstrap BOOTSTRAP ARGS...`: a temporary peer that joins
/// the mesh through `bootstrap` (a node's address), submits, and exits.
pub(crate) fn join_submit(bootstrap: &str, args: &[&str]) -> Output {
    let mut all = vec!["submit", "--join", "--no-mdns", "--bootstrap", bootstrap];
    all.extend_from_slice(args);
    shoal(&all)
}

/// `shoal submit --json` through a node's API; returns the parsed JSON line.
pub(crate) fn submit_json(
    node: &NodeProc,
    job_and_args: &[&str],
    extra: &[&str],
) -> serde_json::Value {
    let dir = node.dir_arg();
    let mut args = vec!["submit", "--json", "--data-dir", &dir, "--timeout", "120s"];
    args.extend_from_slice(extra);
    args.extend_from_slice(job_and_args);
    let out = shoal(&args);
    assert!(
        out.status.success(),
        "shoal {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("utf-8 output");
    assert_eq!(
        stdout.lines().count(),
        1,
        "--json prints exactly one line: {stdout}"
    );
    serde_json::from_str(&stdout).expect("valid JSON")
}

/// The result field of a --json answer, as the bytes a reference implementation produces.
pub(crate) fn result_bytes(answer: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&answer["result"]).expect("serializable")
}

/// Writes a corpus with many distinct words, so partial results are blobs, not inline values.
pub(crate) fn write_wide_corpus(dir: &Path, files: usize, lines: usize) -> Vec<Vec<u8>> {
    std::fs::create_dir_all(dir).expect("corpus dir");
    let mut rng = shoal_ops::SplitMix64(11);
    (0..files)
        .map(|f| {
            let mut text = String::new();
            for _ in 0..lines {
                for _ in 0..8 {
                    text.push_str(&format!("w{} ", rng.next_u64() % 5000));
                }
                text.push_str("Shoal FISH\n");
            }
            std::fs::write(dir.join(format!("f{f}.txt")), &text).expect("writing corpus");
            text.into_bytes()
        })
        .collect()
}

/// Builds the example WebAssembly jobs (once per test run) and returns the path of `name`'s
/// module. Installs the wasm32 target first if this toolchain lacks it.
pub(crate) fn example_wasm(name: &str) -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("workspace root")
            .to_path_buf();
        let installed = Command::new("rustup")
            .args(["target", "list", "--installed"])
            .output();
        if let Ok(out) = installed
            && !String::from_utf8_lossy(&out.stdout).contains("wasm32-unknown-unknown")
        {
            let status = Command::new("rustup")
                .args(["target", "add", "wasm32-unknown-unknown"])
                .status()
                .expect("running rustup");
            assert!(
                status.success(),
                "rustup target add wasm32-unknown-unknown failed"
            );
        }
        let target_dir = root.join("target").join("wasm-examples");
        let status = Command::new(env!("CARGO"))
            .current_dir(&root)
            .args(["build", "--release", "--target", "wasm32-unknown-unknown"])
            .args([
                "-p",
                "shoal-example-wordcount",
                "-p",
                "shoal-example-pi",
                "-p",
                "shoal-example-loglevels",
            ])
            .arg("--target-dir")
            .arg(&target_dir)
            .status()
            .expect("running cargo build for the wasm examples");
        assert!(status.success(), "building the wasm examples failed");
        target_dir.join("wasm32-unknown-unknown").join("release")
    });
    dir.join(format!("shoal_example_{name}.wasm"))
}

/// Writes a WebAssembly module given in text form, for hostile-module tests.
pub(crate) fn write_wat(dir: &Path, name: &str, wat: &str) -> PathBuf {
    let path = dir.join(format!("{name}.wasm"));
    std::fs::write(&path, wat::parse_str(wat).expect("valid WAT")).expect("writing module");
    path
}

/// `shoal submit` through a node's API with `args`; returns the finished process output.
pub(crate) fn submit_raw(node: &NodeProc, args: &[&str]) -> Output {
    let dir = node.dir_arg();
    let mut all = vec!["submit", "--data-dir", &dir, "--timeout", "120s"];
    all.extend_from_slice(args);
    shoal(&all)
}

/// The `spread` entry of `node_id` in a --json answer: how many tasks that node completed.
pub(crate) fn tasks_done_by(answer: &serde_json::Value, node_id: &str) -> u64 {
    answer["spread"]
        .as_array()
        .expect("the answer lists the spread")
        .iter()
        .find(|entry| entry[0].as_str() == Some(node_id))
        .map_or(0, |entry| entry[1].as_u64().unwrap_or(0))
}

/// The protocol id of a node, as a job's `spread` names it.
pub(crate) async fn node_id_of(node: &NodeProc) -> String {
    let rows = node.client().peers().await.expect("the node answers");
    rows.into_iter()
        .find(|p| p.is_self)
        .expect("a node lists itself")
        .node_id
}
