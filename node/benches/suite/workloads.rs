//! The six workloads: Shoal measured through its Rust client API on real `shoal node`
//! processes (release build, loopback), and the peers measured in the same run. Every node has
//! the default slots of `shoal node` here (one per core: 2); all nodes share the machine's 2
//! cores, as the peers' 2 processes or workers do.

use crate::baseline;
use crate::corpus;
use crate::python::Python;
use crate::report::{Figure, Row};
use crate::support::{Mesh, NodeProc, SHOAL};
use shoal_node::client::Client;
use shoal_node::job_request::JobRequest;
use shoal_ops::reference;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Slots per node: what `shoal node` offers by default on this 2-core machine.
pub(crate) const SLOTS: u32 = 2;

/// How big each workload is: the sizes, or a smoke test's.
#[derive(Debug, Clone)]
pub(crate) struct Sizes {
    pub runs: usize,
    pub tiny_tasks: u64,
    pub latency_jobs: u64,
    pub pi_samples: u64,
    pub python_pi_samples: u64,
    pub corpus_bytes: u64,
    pub memory_corpus_bytes: u64,
}

impl Sizes {
    pub(crate) fn full(runs: usize) -> Self {
        Self {
            runs,
            tiny_tasks: 100_000,
            latency_jobs: 1_000,
            pi_samples: 4_000_000_000,
            python_pi_samples: 20_000_000,
            corpus_bytes: 1 << 30,
            memory_corpus_bytes: 4 << 30,
        }
    }

    pub(crate) fn smoke() -> Self {
        Self {
            runs: 1,
            tiny_tasks: 2_000,
            latency_jobs: 50,
            pi_samples: 40_000_000,
            python_pi_samples: 200_000,
            corpus_bytes: 16 << 20,
            memory_corpus_bytes: 32 << 20,
        }
    }
}

pub(crate) struct Bench {
    pub sizes: Sizes,
    pub python: Result<Python, String>,
    pub data: PathBuf,
    /// Peers whose runs are skipped (`--skip-peers`), by name.
    pub skip: Vec<String>,
}

/// Submits through the client and returns the output and the wall time from submit to result.
pub(crate) async fn run_job(client: &Client, request: JobRequest) -> (Vec<u8>, Duration) {
    let start = Instant::now();
    let done = client
        .run(request)
        .await
        .unwrap_or_else(|e| panic!("a benchmark job failed: {e}"));
    (done.output, start.elapsed())
}

pub(crate) fn request(
    job: &str,
    args: &[String],
    fanin: u32,
    chunk: Option<u64>,
    tasks: Option<u32>,
) -> JobRequest {
    let mut request =
        JobRequest::parse(job, args, fanin, chunk, tasks).expect("a valid benchmark job");
    // Every run computes: a run must not take the results an earlier run kept.
    request.no_reuse = true;
    request
}

impl Bench {
    fn peer(
        &self,
        name: &str,
        workload: &str,
        args: &[String],
    ) -> (String, Result<Figure, String>) {
        if self.skip.iter().any(|s| s == name) {
            return (name.to_string(), Err("skipped".into()));
        }
        let figure = match &self.python {
            Ok(py) => py.figure(workload, name, self.sizes.runs, args),
            Err(e) => Err(e.clone()),
        };
        if let Err(e) = &figure {
            eprintln!("  {name}: {e}");
        }
        (name.to_string(), figure)
    }

    /// Tasks a second of one job of many tiny tasks submitted through node 0 of `mesh`, per
    /// run. `base` keeps each caller's jobs apart (a job id seen before is one the node
    /// remembers, not a new job).
    pub(crate) async fn tiny_rates(&self, mesh: &Mesh, base: u64) -> Vec<f64> {
        let n = self.sizes.tiny_tasks;
        let client = mesh.nodes[0].client();
        let mut values = Vec::new();
        for run in 0..self.sizes.runs as u64 {
            let (start, end) = (base + run * n, base + (run + 1) * n);
            let req = request(
                "sumsq",
                &[start.to_string(), end.to_string()],
                4,
                None,
                Some(n as u32),
            );
            let (out, took) = run_job(&client, req).await;
            assert_eq!(out, reference::sumsq(start, end), "sumsq result");
            values.push(n as f64 / took.as_secs_f64());
        }
        values
    }

    /// 1. One job of many tasks that do almost nothing.
    pub(crate) async fn tiny(&self) -> Row {
        let n = self.sizes.tiny_tasks;
        let mesh = Mesh::start(&[SLOTS; 2]).await;
        let values = self.tiny_rates(&mesh, 0).await;
        drop(mesh);
        let arg = [n.to_string()];
        let shoal = Figure::new(values);
        Row {
            workload: format!("1. tiny tasks: {n} × sumsq of 1 number, 2 nodes"),
            unit: "tasks/s",
            higher_is_better: true,
            // The real-time issue's (#19) target: Ray's published cluster-wide rate is
            // 1.8 million a second on many machines.
            met: shoal.median() >= 2_000_000.0,
            shoal,
            peers: vec![
                self.peer("multiprocessing", "tiny", &arg),
                self.peer("ray", "tiny", &arg),
                self.peer("dask", "tiny", &arg),
            ],
            target: "≥ 2,000,000 tasks/s".into(),
        }
    }

    /// The p50s and p99s (ms), one per run, of one-task jobs submitted through node 0 of
    /// `mesh`, submit to result through the client API. `base` keeps each caller's jobs apart
    /// (a job id seen before is one the node remembers, not a new job).
    pub(crate) async fn one_task_latencies(&self, mesh: &Mesh, base: u64) -> (Vec<f64>, Vec<f64>) {
        let jobs = self.sizes.latency_jobs;
        let client = mesh.nodes[0].client();
        let (mut p50s, mut p99s) = (Vec::new(), Vec::new());
        for run in 0..self.sizes.runs as u64 {
            let mut times = Vec::new();
            for j in 0..jobs {
                let x = base + run * jobs + j;
                let req = request(
                    "sumsq",
                    &[x.to_string(), (x + 1).to_string()],
                    4,
                    None,
                    Some(1),
                );
                let (out, took) = run_job(&client, req).await;
                assert_eq!(out, reference::sumsq(x, x + 1));
                times.push(took.as_secs_f64() * 1000.0);
            }
            times.sort_by(f64::total_cmp);
            p50s.push(times[times.len() / 2]);
            p99s.push(times[(times.len() * 99 / 100).min(times.len() - 1)]);
        }
        (p50s, p99s)
    }

    /// 2. One-task jobs, submit to result, through the client API, on 3 nodes.
    ///
    /// Each is submitted to a node with idle slots (it runs them itself, off the wire), and to
    /// a node that runs no tasks (`--slots 0`: another member runs each, two gossip hops, the
    /// remote path).
    pub(crate) async fn latency(&self) -> Vec<Row> {
        let jobs = self.sizes.latency_jobs;
        let mesh = Mesh::start(&[SLOTS; 3]).await;
        let (p50s, p99s) = self.one_task_latencies(&mesh, 1_000_000).await;
        drop(mesh);
        let mesh = Mesh::start(&[0, SLOTS, SLOTS]).await;
        let (remote_p50s, _) = self.one_task_latencies(&mesh, 3_000_000).await;
        drop(mesh);
        let peers = ["multiprocessing", "ray", "dask"].map(|name| {
            let figures = if self.skip.iter().any(|s| s == name) {
                Err("skipped".to_string())
            } else {
                match &self.python {
                    Ok(py) => py
                        .run("latency", name, self.sizes.runs, &[jobs.to_string()])
                        .map(|v| {
                            let pick = |key: &str| {
                                Figure::new(
                                    v["values"]
                                        .as_array()
                                        .into_iter()
                                        .flatten()
                                        .filter_map(|r| r[key].as_f64())
                                        .collect(),
                                )
                            };
                            (pick("p50"), pick("p99"))
                        }),
                    Err(e) => Err(e.clone()),
                }
            };
            if let Err(e) = &figures {
                eprintln!("  {name}: {e}");
            }
            (name.to_string(), figures)
        });
        let split = |second: bool| -> Vec<(String, Result<Figure, String>)> {
            peers
                .iter()
                .map(|(name, f)| {
                    let f = f.clone().map(|(p50, p99)| if second { p99 } else { p50 });
                    (name.clone(), f)
                })
                .collect()
        };
        let (p50, p99) = (Figure::new(p50s), Figure::new(p99s));
        let remote = Figure::new(remote_p50s);
        vec![
            Row {
                workload: format!("2. latency p50: {jobs} one-task jobs, 3 nodes"),
                unit: "ms",
                higher_is_better: false,
                met: p50.median() <= 0.5,
                shoal: p50,
                peers: split(false),
                target: "p50 ≤ 0.5 ms".into(),
            },
            Row {
                workload: format!("2. latency p99: {jobs} one-task jobs, 3 nodes"),
                unit: "ms",
                higher_is_better: false,
                met: p99.median() <= 2.0,
                shoal: p99,
                peers: split(true),
                target: "p99 ≤ 2 ms".into(),
            },
            Row {
                workload: format!(
                    "2. latency p50, remote path: {jobs} one-task jobs, 3 nodes, submitted to one with --slots 0"
                ),
                unit: "ms",
                higher_is_better: false,
                met: remote.median() <= 1.0,
                shoal: remote,
                peers: split(false),
                target: "p50 ≤ 1 ms".into(),
            },
        ]
    }

    /// 3. CPU-bound: Monte Carlo pi.
    pub(crate) async fn pi(&self) -> Row {
        let samples = self.sizes.pi_samples;
        let mesh = Mesh::start(&[SLOTS; 2]).await;
        let client = mesh.nodes[0].client();
        let mut values = Vec::new();
        for run in 0..self.sizes.runs as u32 {
            // Another fan-in, another job id: the same work again.
            let req = request("pi", &[samples.to_string()], 4 + run, None, None);
            let (out, took) = run_job(&client, req).await;
            let v: serde_json::Value = serde_json::from_slice(&out).expect("pi output");
            let pi = v["pi"].as_f64().expect("pi value");
            assert!((pi - std::f64::consts::PI).abs() < 0.01, "pi = {pi}");
            values.push(samples as f64 / took.as_secs_f64());
        }
        drop(mesh);
        let rust: Vec<f64> = (0..self.sizes.runs)
            .map(|_| {
                let start = Instant::now();
                let hits = baseline::pi(samples);
                assert!(hits > 0);
                samples as f64 / start.elapsed().as_secs_f64()
            })
            .collect();
        let rust = Figure::new(rust);
        let python = self.peer(
            "multiprocessing",
            "pi",
            &[self.sizes.python_pi_samples.to_string()],
        );
        let shoal = Figure::new(values);
        let met = shoal.median() >= 0.9 * rust.median()
            && python
                .1
                .as_ref()
                .is_ok_and(|p| shoal.median() >= 50.0 * p.median());
        Row {
            workload: format!("3. CPU-bound: pi over {samples} samples, 2 nodes"),
            unit: "samples/s",
            higher_is_better: true,
            met,
            shoal,
            peers: vec![("rust, 2 threads".to_string(), Ok(rust)), python],
            target: "≥ 0.9× the Rust baseline, ≥ 50× Python".into(),
        }
    }

    /// 4. Data-bound: word count over a generated corpus, chunks moving between the nodes.
    pub(crate) async fn wordcount(&self) -> Row {
        let files = corpus::ensure(&self.data, self.sizes.corpus_bytes);
        let mib = self.sizes.corpus_bytes as f64 / f64::from(1 << 20);
        let start = Instant::now();
        let expected = baseline::wordcount(&files);
        let mut rust = vec![mib / start.elapsed().as_secs_f64()];
        for _ in 1..self.sizes.runs {
            let start = Instant::now();
            baseline::wordcount(&files);
            rust.push(mib / start.elapsed().as_secs_f64());
        }
        let mesh = Mesh::start(&[SLOTS; 2]).await;
        let client = mesh.nodes[0].client();
        let dir = files[0].parent().expect("corpus dir").display().to_string();
        let mut values = Vec::new();
        for run in 0..self.sizes.runs as u64 {
            // Another fan-in, another job id: the same work again (chunks sized by default).
            let req = request(
                "wordcount",
                std::slice::from_ref(&dir),
                4 + run as u32,
                None,
                None,
            );
            let (out, took) = run_job(&client, req).await;
            assert!(
                out == expected,
                "Shoal's word count differs from the baseline's"
            );
            values.push(mib / took.as_secs_f64());
        }
        drop(mesh);
        let paths: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        let rust = Figure::new(rust);
        let mp = self.peer("multiprocessing", "wordcount", &paths);
        let dask = self.peer("dask", "wordcount", &paths);
        let shoal = Figure::new(values);
        let ten_times = |p: &(String, Result<Figure, String>)| {
            p.1.as_ref()
                .is_ok_and(|f| shoal.median() >= 10.0 * f.median())
        };
        let met = shoal.median() >= 0.8 * rust.median() && ten_times(&mp) && ten_times(&dask);
        Row {
            workload: format!("4. data-bound: word count over {mib:.0} MiB, 2 nodes"),
            unit: "MiB/s",
            higher_is_better: true,
            met,
            shoal,
            peers: vec![("rust, 2 threads".to_string(), Ok(rust)), mp, dask],
            target: "≥ 0.8× the Rust baseline, ≥ 10× each Python peer".into(),
        }
    }

    /// 5. From starting two nodes to both seeing each other and running a task.
    pub(crate) async fn cold_start(&self) -> Row {
        let mut values = Vec::new();
        for _ in 0..self.sizes.runs {
            values.push(cold_start_once().await.as_secs_f64());
        }
        let shoal = Figure::new(values);
        Row {
            workload: "5. cold start: two nodes up, in one mesh, one task run".into(),
            unit: "s",
            higher_is_better: false,
            met: shoal.median() < 1.0,
            shoal,
            peers: vec![
                self.peer("ray", "cold_start", &[]),
                self.peer("dask", "cold_start", &[]),
            ],
            target: "< 1 s".into(),
        }
    }

    /// 6. Resident memory of idle nodes, and peak resident memory during a large word count.
    pub(crate) async fn memory(&self) -> Vec<Row> {
        let files = corpus::ensure(&self.data, self.sizes.memory_corpus_bytes);
        let mesh = Mesh::start(&[SLOTS; 2]).await;
        // Let start-up allocations settle before reading the idle figure.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let idle: Vec<f64> = mesh.nodes.iter().map(|n| status_mib(n, "VmRSS")).collect();
        let dir = files[0].parent().expect("corpus dir").display().to_string();
        let client = mesh.nodes[0].client();
        let (out, _) = run_job(&client, request("wordcount", &[dir], 4, None, None)).await;
        assert!(out.len() > 2, "a word count result");
        let peak: Vec<f64> = mesh.nodes.iter().map(|n| status_mib(n, "VmHWM")).collect();
        drop(mesh);
        let gib = self.sizes.memory_corpus_bytes >> 30;
        let (idle, peak) = (Figure::new(idle), Figure::new(peak));
        vec![
            Row {
                workload: "6. memory: idle node (each of 2)".into(),
                unit: "MiB resident",
                higher_is_better: false,
                met: idle.values.iter().all(|&m| m <= 32.0),
                shoal: idle,
                peers: Vec::new(),
                target: "≤ 32 MiB".into(),
            },
            Row {
                workload: format!(
                    "6. memory: peak per node during a {} word count (each of 2)",
                    if gib > 0 {
                        format!("{gib} GiB")
                    } else {
                        format!("{} MiB", self.sizes.memory_corpus_bytes >> 20)
                    }
                ),
                unit: "MiB resident",
                higher_is_better: false,
                met: peak.values.iter().all(|&m| m <= 512.0),
                shoal: peak,
                peers: Vec::new(),
                target: "≤ 512 MiB per node".into(),
            },
        ]
    }
}

/// A field of /proc/PID/status, in MiB.
fn status_mib(node: &NodeProc, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", node.child.id()))
        .expect("reading the node's /proc status");
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("a memory figure");
    kib / 1024.0
}

/// A free port on 127.0.0.1 (UDP for QUIC, TCP for the API); the OS may hand it out again only
/// after it is released, which is enough here.
fn free_port(udp: bool) -> u16 {
    if udp {
        std::net::UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .expect("a free UDP port")
            .port()
    } else {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .expect("a free TCP port")
            .port()
    }
}

async fn cold_start_once() -> Duration {
    let dir = tempfile::tempdir().expect("temp dir");
    let quic = [free_port(true), free_port(true)];
    let api = [free_port(false), free_port(false)];
    let first = format!("/ip4/127.0.0.1/udp/{}/quic-v1", quic[0]);
    let command = |i: usize| {
        let mut cmd = Command::new(SHOAL);
        cmd.args(["node", "--no-mdns", "--slots", &SLOTS.to_string()])
            .args([
                "--listen",
                &format!("/ip4/127.0.0.1/udp/{}/quic-v1", quic[i]),
            ])
            .args(["--api", &format!("127.0.0.1:{}", api[i])])
            .arg("--data-dir")
            .arg(dir.path().join(format!("n{i}")));
        if i == 1 {
            cmd.args(["--bootstrap", &first]);
        }
        cmd
    };
    let start = Instant::now();
    let nodes: Vec<NodeProc> = std::thread::scope(|s| {
        let spawned: Vec<_> = (0..2)
            .map(|i| {
                let cmd = command(i);
                let path = dir.path().join(format!("n{i}"));
                s.spawn(move || NodeProc::spawn(cmd, &path))
            })
            .collect();
        spawned.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for node in &nodes {
        loop {
            let peers = node.client().peers().await.unwrap_or_default();
            if peers.len() == 2 && peers.iter().all(|p| p.slots_free > 0) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    let req = request("sumsq", &["0".into(), "1".into()], 4, None, Some(1));
    run_job(&nodes[0].client(), req).await;
    start.elapsed()
}

/// The repository root (where bench/ and target/ are).
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the node crate is inside the workspace")
        .to_path_buf()
}
