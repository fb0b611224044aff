//! Shoal against the tools people would use instead, side by side in one run.
//!
//!     cargo bench -p shoal-node --bench suite                 # everything; updates the docs
//!     cargo bench -p shoal-node --bench suite -- --smoke      # small sizes, one run, no docs
//!
//! Options (after `--`): `--smoke`; `--runs N` (default 3); `--only LIST` (comma-separated:
//! tiny, latency, pi, wordcount, cold-start, memory, private, real, trust, durable, reuse); `--skip-peers LIST` (multiprocessing,
//! ray, dask). The Python peers are installed into target/bench-venv from
//! bench/requirements.txt on first use. A full run writes docs/benchmarks.json and the table in
//! docs/BENCHMARKS.md; a smoke run writes target/bench-smoke.json and prints the table.
//! Shoal failing (a wrong result, a job error) fails the run; a peer that cannot be installed
//! or run is reported as not measured. A run of some workloads only (`--only`, `--skip-peers`)
//! writes target/bench-partial.json instead of the docs.

#[path = "../../../tests/support/mod.rs"]
mod support;

mod baseline;
mod corpus;
mod durable;
mod private;
mod python;
mod real;
mod report;
mod reuse;
mod trust;
mod workloads;

use report::Row;
use std::process::Command;
use workloads::{Bench, Sizes, root};

const WORKLOADS: [&str; 11] = [
    "tiny",
    "latency",
    "pi",
    "wordcount",
    "cold-start",
    "memory",
    "private",
    "real",
    "trust",
    "durable",
    "reuse",
];
const BEGIN: &str = "<!-- suite:begin -->";
const END: &str = "<!-- suite:end -->";

struct Options {
    smoke: bool,
    runs: usize,
    only: Vec<String>,
    skip_peers: Vec<String>,
}

fn parse_options() -> Result<Options, String> {
    let mut o = Options {
        smoke: false,
        runs: 3,
        only: WORKLOADS.iter().map(|w| w.to_string()).collect(),
        skip_peers: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    let list = |v: Option<String>, what: &str| -> Result<Vec<String>, String> {
        v.map(|v| v.split(',').map(str::to_string).collect())
            .ok_or(format!("{what} needs a comma-separated list"))
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            // cargo bench adds this; it means nothing here.
            "--bench" => {}
            "--smoke" => o.smoke = true,
            "--runs" => {
                o.runs = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&n| n > 0)
                    .ok_or("--runs needs a positive number")?;
            }
            "--only" => {
                o.only = list(args.next(), "--only")?;
                if let Some(bad) = o.only.iter().find(|w| !WORKLOADS.contains(&w.as_str())) {
                    return Err(format!(
                        "unknown workload {bad}; the workloads are {}",
                        WORKLOADS.join(", ")
                    ));
                }
            }
            "--skip-peers" => o.skip_peers = list(args.next(), "--skip-peers")?,
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(o)
}

fn main() {
    let options = match parse_options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("suite: {e}");
            std::process::exit(2);
        }
    };
    let sizes = if options.smoke {
        Sizes::smoke()
    } else {
        Sizes::full(options.runs)
    };
    let bench = Bench {
        sizes,
        python: python::Python::setup(&root()),
        data: root().join("target/bench-data"),
        skip: options.skip_peers.clone(),
    };
    if let Err(e) = &bench.python {
        eprintln!("the Python peers will not be measured: {e}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut rows: Vec<Row> = Vec::new();
    for workload in &options.only {
        eprintln!("== {workload}");
        runtime.block_on(async {
            match workload.as_str() {
                "tiny" => rows.push(bench.tiny().await),
                "latency" => rows.extend(bench.latency().await),
                "pi" => rows.push(bench.pi().await),
                "wordcount" => rows.push(bench.wordcount().await),
                "cold-start" => rows.push(bench.cold_start().await),
                "memory" => rows.extend(bench.memory().await),
                "private" => rows.extend(bench.private().await),
                "real" => rows.extend(bench.real().await),
                "trust" => rows.extend(bench.trust().await),
                "durable" => rows.extend(bench.durable().await),
                "reuse" => rows.extend(bench.reuse().await),
                _ => unreachable!("checked when parsing"),
            }
        });
        eprintln!("{}", rows.last().expect("a row").markdown());
    }
    let json: Vec<serde_json::Value> = rows.iter().map(Row::json).collect();
    let json = serde_json::to_string_pretty(&json).expect("serializable") + "\n";
    let table = report::markdown_table(&rows);
    // A smoke run, or a run of some workloads only, leaves the documented full run alone.
    let partial = options.only.len() != WORKLOADS.len() || !options.skip_peers.is_empty();
    if options.smoke || partial {
        let name = if options.smoke {
            "bench-smoke.json"
        } else {
            "bench-partial.json"
        };
        let path = root().join("target").join(name);
        std::fs::write(&path, json).expect("writing the results");
        println!("{table}");
        eprintln!(
            "figures in {} (docs/BENCHMARKS.md is written by full runs only)",
            path.display()
        );
        return;
    }
    std::fs::write(root().join("docs/benchmarks.json"), json)
        .expect("writing docs/benchmarks.json");
    write_docs(&options, &table);
    println!("{table}");
}

/// Replaces the suite's section of docs/BENCHMARKS.md.
fn write_docs(options: &Options, table: &str) {
    let path = root().join("docs/BENCHMARKS.md");
    let doc = std::fs::read_to_string(&path).expect("reading docs/BENCHMARKS.md");
    let (Some(begin), Some(end)) = (doc.find(BEGIN), doc.find(END)) else {
        eprintln!("docs/BENCHMARKS.md has no {BEGIN} … {END} section; table not written");
        return;
    };
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / (1 << 20) as f64);
    let date = Command::new("date")
        .arg("+%Y-%m-%d")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let mut command = String::from("cargo bench -p shoal-node --bench suite");
    if options.runs != 3 || options.only.len() != WORKLOADS.len() || !options.skip_peers.is_empty()
    {
        command.push_str(&format!(" -- --runs {}", options.runs));
        if options.only.len() != WORKLOADS.len() {
            command.push_str(&format!(" --only {}", options.only.join(",")));
        }
        if !options.skip_peers.is_empty() {
            command.push_str(&format!(" --skip-peers {}", options.skip_peers.join(",")));
        }
    }
    let section = format!(
        "{BEGIN}\nMeasured {date} on {cores} cores and {mem_gib:.0} GiB with `{command}`; \
         medians of {} runs (min–max); JSON in [benchmarks.json](benchmarks.json).\n\n{table}{END}",
        options.runs
    );
    let updated = format!("{}{section}{}", &doc[..begin], &doc[end + END.len()..]);
    std::fs::write(&path, updated).expect("writing docs/BENCHMARKS.md");
}
