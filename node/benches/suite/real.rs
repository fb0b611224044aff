//! 8. Real inputs: a source tree of many small files (a snapshot of cargo's registry sources)
//!    grepped against ripgrep and GNU grep and word-counted against a naive Rust word counter,
//!    a first submission (inputs hashed) and a repeated one (hashes reused); and a word count
//!    over multilingual text against the same naive counter.

use crate::corpus;
use crate::report::{Figure, Row};
use crate::support::Mesh;
use crate::workloads::{Bench, SLOTS, request, run_job};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// The pattern grepped for.
const PATTERN: &str = "unsafe";
/// Bumped when the snapshot's selection changes.
const SNAPSHOT_VERSION: u32 = 1;

/// A fixed copy of cargo's registry sources under `data` (the registry itself changes as
/// crates are downloaded): every crate, or the first `crates` of them in a smoke run.
fn source_tree(data: &Path, crates: Option<usize>) -> PathBuf {
    let name = match crates {
        Some(n) => format!("registry-src-v{SNAPSHOT_VERSION}-{n}"),
        None => format!("registry-src-v{SNAPSHOT_VERSION}-all"),
    };
    let dir = data.join(name);
    if dir.join("complete").exists() {
        return dir.join("src");
    }
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .expect("a cargo home");
    let registry = home.join("registry/src");
    let index = std::fs::read_dir(&registry)
        .expect("cargo's registry sources (a build fills them)")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.is_dir())
        .expect("a registry index directory");
    let mut sources: Vec<PathBuf> = std::fs::read_dir(&index)
        .expect("the registry index")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    sources.sort();
    if let Some(n) = crates {
        sources.truncate(n);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let target = dir.join("src");
    std::fs::create_dir_all(&target).expect("snapshot dir");
    eprintln!(
        "copying {} crates' sources to {}",
        sources.len(),
        target.display()
    );
    let status = Command::new("cp")
        .arg("-r")
        .args(&sources)
        .arg(&target)
        .status()
        .expect("running cp");
    assert!(status.success(), "copying the registry sources failed");
    std::fs::write(dir.join("complete"), b"").expect("snapshot stamp");
    target
}

/// ripgrep and GNU grep, installed from Debian's packages when missing (as root).
fn ensure_tools() -> Result<(), String> {
    let have = |tool: &str| {
        Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if have("rg") {
        return Ok(());
    }
    let status = Command::new("sh")
        .arg("-c")
        .arg("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ripgrep >/dev/null")
        .status()
        .map_err(|e| e.to_string())?;
    if status.success() && have("rg") {
        Ok(())
    } else {
        Err("ripgrep is not installed and could not be (needs root)".into())
    }
}

/// Lines containing PATTERN under `tree`, by `rg -Fac` (2 threads) or `grep -rFac`, and the
/// wall time.
fn tool_count(tool: &str, tree: &Path) -> (u64, f64) {
    let mut cmd = Command::new(tool);
    match tool {
        "rg" => cmd.args([
            "-Fac",
            "--no-ignore",
            "--hidden",
            "--no-messages",
            "-j2",
            PATTERN,
        ]),
        _ => cmd.args(["-rFac", PATTERN]),
    };
    cmd.arg(tree);
    let start = Instant::now();
    let out = cmd.output().expect("running the grep tool");
    let took = start.elapsed().as_secs_f64();
    let total = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.rsplit_once(':')?.1.parse::<u64>().ok())
        .sum();
    (total, took)
}

/// The word count's definition applied naively on 2 threads (files dealt round-robin): split
/// at every character that is not alphanumeric, lowercase with `str::to_lowercase`, count in a
/// `HashMap<String, u64>`. Output as Shoal prints it.
pub(crate) fn naive_wordcount(files: &[PathBuf]) -> Vec<u8> {
    let partials: Vec<HashMap<String, u64>> = std::thread::scope(|s| {
        let parts: Vec<_> = (0..2)
            .map(|t| {
                s.spawn(move || {
                    let mut counts: HashMap<String, u64> = HashMap::new();
                    for path in files.iter().skip(t).step_by(2) {
                        let bytes = std::fs::read(path).expect("reading the input");
                        let text = String::from_utf8_lossy(&bytes);
                        for word in text.split(|c: char| !c.is_alphanumeric()) {
                            if !word.is_empty() {
                                *counts.entry(word.to_lowercase()).or_insert(0) += 1;
                            }
                        }
                    }
                    counts
                })
            })
            .collect();
        parts.into_iter().map(|p| p.join().unwrap()).collect()
    });
    let mut total: BTreeMap<String, u64> = BTreeMap::new();
    for part in partials {
        for (w, n) in part {
            *total.entry(w).or_insert(0) += n;
        }
    }
    serde_json::to_vec(&total).expect("serializable")
}

fn files_under(dir: &Path) -> (Vec<PathBuf>, u64) {
    let listing = shoal_node::input::list_files(&[dir.to_path_buf()], &[]).expect("listing");
    let bytes = listing.files.iter().map(|f| f.stamp.size).sum();
    (listing.files.into_iter().map(|f| f.path).collect(), bytes)
}

impl Bench {
    pub(crate) async fn real(&self) -> Vec<Row> {
        let smoke = self.sizes.runs == 1 && self.sizes.corpus_bytes < (64 << 20);
        let tree = source_tree(&self.data, smoke.then_some(40));
        let (files, tree_bytes) = files_under(&tree);
        let tree_arg = tree.display().to_string();
        let mut rows = Vec::new();
        let tools = ensure_tools();
        // The grep figures of the tools, and the exact count to match.
        let (mut rg, mut gnu, mut expected) = (Vec::new(), Vec::new(), None);
        if tools.is_ok() {
            for _ in 0..self.sizes.runs {
                let (n, t) = tool_count("rg", &tree);
                rg.push(t);
                expected = Some(n);
                let (m, t) = tool_count("grep", &tree);
                assert_eq!(m, n, "GNU grep and ripgrep disagree");
                gnu.push(t);
            }
        } else if let Err(e) = &tools {
            eprintln!("  grep tools: {e}");
        }
        // Shoal: a fresh mesh per run (nothing hashed yet), then the same job again.
        let (mut first, mut repeated, mut wc_first, mut wc_repeated) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut chunks = 0;
        let naive = naive_wordcount(&files);
        for _ in 0..self.sizes.runs {
            let mesh = Mesh::start(&[SLOTS; 2]).await;
            let client = mesh.nodes[0].client();
            for (i, times) in [&mut first, &mut repeated].into_iter().enumerate() {
                // Another fan-in, another job id: the same work again.
                let req = request(
                    "grep",
                    &[PATTERN.into(), tree_arg.clone()],
                    4 + i as u32,
                    None,
                    None,
                );
                let start = Instant::now();
                let done = client.run(req).await.expect("the grep job");
                times.push(start.elapsed().as_secs_f64());
                let total = done.json().and_then(|v| v["total"].as_u64());
                if let Some(n) = expected {
                    assert_eq!(total, Some(n), "Shoal's grep differs from ripgrep's");
                }
                chunks = done.job.maps;
            }
            for (i, rates) in [&mut wc_first, &mut wc_repeated].into_iter().enumerate() {
                let req = request(
                    "wordcount",
                    std::slice::from_ref(&tree_arg),
                    8 + i as u32,
                    None,
                    None,
                );
                let (out, took) = run_job(&client, req).await;
                assert!(
                    out == naive,
                    "Shoal's word count differs from the naive one"
                );
                rates.push(tree_bytes as f64 / f64::from(1 << 20) / took.as_secs_f64());
            }
            drop(mesh);
        }
        let mib = tree_bytes >> 20;
        let n = files.len();
        let target_chunks = shoal_node::input::AUTO_CHUNKS;
        let tool_peers = |extra: Option<(String, Result<Figure, String>)>| {
            let mut peers = Vec::new();
            let measured = |v: &Vec<f64>| {
                if v.is_empty() {
                    Err("not installed".to_string())
                } else {
                    Ok(Figure::new(v.clone()))
                }
            };
            peers.push(("ripgrep, 2 threads".to_string(), measured(&rg)));
            peers.push(("GNU grep".to_string(), measured(&gnu)));
            peers.extend(extra);
            peers
        };
        let rg_median = (!rg.is_empty()).then(|| Figure::new(rg.clone()).median());
        let first = Figure::new(first);
        let repeated = Figure::new(repeated);
        rows.push(Row {
            workload: format!(
                "8. grep '{PATTERN}' over a source tree ({n} files, {mib} MiB; {chunks} tasks, target {target_chunks}), first submission, 2 nodes"
            ),
            unit: "s",
            higher_is_better: false,
            met: rg_median.is_some_and(|r| first.median() <= 3.0 * r)
                && (chunks as u64) <= 2 * target_chunks
                && 2 * (chunks as u64) >= target_chunks,
            shoal: first,
            peers: tool_peers(None),
            target: "≤ 3× ripgrep; tasks within 2× the target".into(),
        });
        rows.push(Row {
            workload: format!(
                "8. grep '{PATTERN}' over the same tree, repeated (hashes reused), 2 nodes"
            ),
            unit: "s",
            higher_is_better: false,
            met: rg_median.is_some_and(|r| repeated.median() <= 2.0 * r),
            shoal: repeated,
            peers: tool_peers(None),
            target: "≤ 2× ripgrep".into(),
        });
        let naive_rate = {
            let start = Instant::now();
            naive_wordcount(&files);
            mib as f64 / start.elapsed().as_secs_f64()
        };
        let wc_first = Figure::new(wc_first);
        rows.push(Row {
            workload: format!(
                "8. word count over the source tree ({mib} MiB), first submission, 2 nodes"
            ),
            unit: "MiB/s",
            higher_is_better: true,
            met: wc_first.median() >= 300.0,
            shoal: wc_first,
            peers: vec![
                (
                    "naive Rust, 2 threads".to_string(),
                    Ok(Figure::new(vec![naive_rate])),
                ),
                (
                    "repeated submission".to_string(),
                    Ok(Figure::new(wc_repeated)),
                ),
            ],
            target: "≥ 300 MiB/s".into(),
        });
        rows.push(self.multilingual().await);
        rows
    }

    /// Word count over generated text mixing Cyrillic, Greek, CJK and accented Latin words,
    /// against the naive counter and against the ASCII corpus of the same size on the same
    /// mesh (interleaved run by run, so both see the same machine).
    async fn multilingual(&self) -> Row {
        let bytes = (self.sizes.corpus_bytes / 4).max(8 << 20);
        let files = corpus::ensure_multilingual(&self.data, bytes);
        let ascii_files = corpus::ensure(&self.data, bytes);
        let mib = bytes as f64 / f64::from(1 << 20);
        let mut naive = Vec::new();
        let mut expected = Vec::new();
        for _ in 0..self.sizes.runs {
            let start = Instant::now();
            expected = naive_wordcount(&files);
            naive.push(mib / start.elapsed().as_secs_f64());
        }
        let ascii_expected = naive_wordcount(&ascii_files);
        let mesh = Mesh::start(&[SLOTS; 2]).await;
        let client = mesh.nodes[0].client();
        let dir_of = |files: &[PathBuf]| {
            let dir = files[0].parent().expect("corpus dir");
            dir.display().to_string()
        };
        let (dir, ascii_dir) = (dir_of(&files), dir_of(&ascii_files));
        let mut values = Vec::new();
        let mut ascii = Vec::new();
        for run in 0..self.sizes.runs as u32 {
            let req = request("wordcount", std::slice::from_ref(&dir), 4 + run, None, None);
            let (out, took) = run_job(&client, req).await;
            assert!(
                out == expected,
                "Shoal's multilingual word count differs from the naive one"
            );
            values.push(mib / took.as_secs_f64());
            let req = request(
                "wordcount",
                std::slice::from_ref(&ascii_dir),
                4 + run,
                None,
                None,
            );
            let (out, took) = run_job(&client, req).await;
            assert!(
                out == ascii_expected,
                "Shoal's ASCII word count differs from the naive one"
            );
            ascii.push(mib / took.as_secs_f64());
        }
        drop(mesh);
        let shoal = Figure::new(values);
        let naive = Figure::new(naive);
        let ascii = Figure::new(ascii);
        Row {
            workload: format!("8. word count over {mib:.0} MiB of multilingual text, 2 nodes"),
            unit: "MiB/s",
            higher_is_better: true,
            met: shoal.median() >= 1.5 * naive.median() && shoal.median() >= 0.5 * ascii.median(),
            shoal,
            peers: vec![
                ("naive Rust, 2 threads".to_string(), Ok(naive)),
                (format!("Shoal on {mib:.0} MiB of ASCII text"), Ok(ascii)),
            ],
            target: "≥ 1.5× the naive Rust baseline, ≥ ½ the ASCII figure".into(),
        }
    }
}
