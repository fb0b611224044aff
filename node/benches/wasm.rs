//! Benchmark: the WebAssembly word count against the built-in one on the same input, and module
//! compile time with and without the per-node cache. Single process, no network: it measures
//! the executors alone.
//!
//! Run: `cargo build --release --target wasm32-unknown-unknown -p shoal-example-wordcount`
//! then `cargo bench -p shoal-node --bench wasm`.

use shoal_node::wasm::sandbox;
use shoal_ops::{self as ops, MapInput};
use shoal_protocol::job::WasmLimits;
use shoal_protocol::partition::split_lines;
use shoal_protocol::{BlobHash, Operator};
use std::time::{Duration, Instant};

const RUNS: usize = 5;

fn median(mut v: Vec<Duration>) -> (Duration, Duration, Duration) {
    v.sort();
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let module_path =
        root.join("target/wasm32-unknown-unknown/release/shoal_example_wordcount.wasm");
    let Ok(module) = std::fs::read(&module_path) else {
        eprintln!(
            "build the example first: cargo build --release --target wasm32-unknown-unknown -p shoal-example-wordcount"
        );
        std::process::exit(2);
    };
    let dir = tempfile::tempdir().unwrap();
    shoal_node::demo::write_corpus(dir.path(), 4, 200_000).unwrap();
    let mut corpus = Vec::new();
    for f in 0..4 {
        corpus.extend(std::fs::read(dir.path().join(format!("part-{f:02}.txt"))).unwrap());
    }
    let chunks: Vec<&[u8]> = split_lines(&corpus, 1 << 20)
        .into_iter()
        .map(|r| &corpus[r])
        .collect();
    println!(
        "input: {} MiB in {} chunks of ~1 MiB",
        corpus.len() >> 20,
        chunks.len()
    );

    let builtin = |chunks: &[&[u8]]| {
        let parts: Vec<Vec<u8>> = chunks
            .iter()
            .map(|c| ops::map(&Operator::WordCount, MapInput::Chunk(c)).unwrap())
            .collect();
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        ops::finalize(
            &Operator::WordCount,
            &ops::reduce(&Operator::WordCount, &refs).unwrap(),
        )
        .unwrap()
    };
    let hash = BlobHash::of(&module);
    let wasm = |chunks: &[&[u8]]| {
        let compiled = sandbox().module(hash, &module).unwrap();
        let parts: Vec<Vec<u8>> = chunks
            .iter()
            .map(|c| {
                sandbox()
                    .instantiate(&compiled, WasmLimits::default())
                    .unwrap()
                    .map(c)
                    .unwrap()
            })
            .collect();
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        sandbox()
            .instantiate(&compiled, WasmLimits::default())
            .unwrap()
            .reduce(&refs)
            .unwrap()
    };
    assert_eq!(
        builtin(&chunks),
        wasm(&chunks),
        "the wasm word count equals the built-in"
    );

    let time = |f: &dyn Fn()| {
        median(
            (0..RUNS)
                .map(|_| {
                    let t = Instant::now();
                    f();
                    t.elapsed()
                })
                .collect(),
        )
    };
    let (b, bmin, bmax) = time(&|| {
        builtin(&chunks);
    });
    let (w, wmin, wmax) = time(&|| {
        wasm(&chunks);
    });
    let mib = corpus.len() as f64 / (1 << 20) as f64;
    println!(
        "builtin wordcount: {:.1} MiB/s (median {b:?}, min {bmin:?}, max {bmax:?})",
        mib / b.as_secs_f64()
    );
    println!(
        "wasm wordcount:    {:.1} MiB/s (median {w:?}, min {wmin:?}, max {wmax:?})",
        mib / w.as_secs_f64()
    );
    println!(
        "wasm / builtin throughput: {:.2}",
        b.as_secs_f64() / w.as_secs_f64()
    );

    let (cold, cmin, cmax) = time(&|| {
        sandbox().validate(&module).unwrap();
    });
    let (warm, hmin, hmax) = time(&|| {
        sandbox().module(hash, &module).unwrap();
    });
    println!(
        "compile, no cache: median {cold:?} (min {cmin:?}, max {cmax:?}); module {} KiB",
        module.len() / 1024
    );
    println!(
        "compile, cached:   median {warm:?} (min {hmin:?}, max {hmax:?}); ratio {:.0}x",
        cold.as_secs_f64() / warm.as_secs_f64()
    );
}
