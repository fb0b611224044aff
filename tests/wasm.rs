//! WebAssembly jobs across a multi-process mesh: the example modules against their references,
//! hostile modules against the sandbox, and invalid modules against submit-time checks.

mod support;

use shoal_ops::reference;
use std::collections::BTreeMap;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_modules_match_their_references_across_the_mesh() {
    let mesh = Mesh::start(&[2, 2, 2]).await;
    let corpus = mesh.dir.path().join("corpus");
    let files = write_wide_corpus(&corpus, 3, 2000);
    let corpus_arg = corpus.display().to_string();

    // Word count: the same bytes as the built-in reference.
    let wc = example_wasm("wordcount").display().to_string();
    let out = submit_raw(
        &mesh.nodes[0],
        &["--chunk-size", "8192", "--wasm", &wc, &corpus_arg],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        out.stdout,
        [reference::wordcount(&files), b"\n".to_vec()].concat()
    );

    // Pi over a range, written to a file with --output: byte for byte the single-loop reference.
    let pi = example_wasm("pi").display().to_string();
    let output = mesh.dir.path().join("pi.json");
    let out = submit_raw(
        &mesh.nodes[1],
        &[
            "--wasm",
            &pi,
            "--range",
            "0",
            "300000",
            "--tasks",
            "13",
            "--output",
            output.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hits = (0..300_000u64)
        .filter(|&i| shoal_example_pi::hit(i))
        .count() as u64;
    assert_eq!(
        std::fs::read(&output).unwrap(),
        shoal_example_pi::encode(300_000, hits)
    );
    assert!(out.stdout.is_empty(), "--output keeps stdout clear");

    // Log levels: something no built-in computes.
    let logs = mesh.dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let mut text = String::new();
    for i in 0..5000 {
        let level = ["INFO", "WARN", "ERROR", "DEBUG", "TRACE", "note"][i % 6];
        text.push_str(&format!(
            "2026-11-23 {level} request {i} took {}ms\n",
            i % 97
        ));
    }
    std::fs::write(logs.join("app.log"), &text).unwrap();
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for line in text.lines() {
        *expected
            .entry(shoal_example_loglevels::level_of(line).to_string())
            .or_insert(0) += 1;
    }
    let ll = example_wasm("loglevels").display().to_string();
    let answer = submit_json(
        &mesh.nodes[2],
        &[&logs.display().to_string()],
        &["--chunk-size", "4096", "--wasm", &ll],
    );
    assert_eq!(
        result_bytes(&answer),
        shoal_guest::counts::encode(&expected)
    );
    assert!(answer["tasks"].as_u64().unwrap() > 10);
}

/// A module whose map function body is `map`; alloc and reduce behave.
fn module_with_map(map: &str) -> String {
    format!(
        r#"(module
  (memory (export "memory") 1)
  (global $next (mut i32) (i32.const 1024))
  (func (export "shoal_alloc") (param $len i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $next))
    (global.set $next (i32.add (global.get $next) (local.get $len)))
    (block $done (loop $grow
      (br_if $done (i32.le_u (global.get $next) (i32.mul (memory.size) (i32.const 65536))))
      (drop (memory.grow (i32.const 1)))
      (br $grow)))
    (local.get $p))
  (func (export "shoal_map") (param i32 i32) (result i64) {map})
  (func (export "shoal_reduce") (param i32 i32 i32 i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get 0)) (i64.const 32)) (i64.extend_i32_u (local.get 1)))))"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_modules_fail_their_job_with_the_reason_and_the_mesh_keeps_working() {
    let mesh = Mesh::start(&[2, 2]).await;
    let dir = mesh.dir.path();
    let input = dir.join("input.txt");
    std::fs::write(&input, "one line\n").unwrap();
    let input = input.display().to_string();
    let cases: [(&str, &str, &[&str], &str); 6] = [
        (
            "loop",
            "(loop $l (br $l)) (i64.const 0)",
            &["--fuel", "20000000"],
            "ran out of fuel",
        ),
        (
            "slow",
            "(loop $l (br $l)) (i64.const 0)",
            &["--call-deadline", "300ms"],
            "wall-clock deadline of 300 ms",
        ),
        (
            "bomb",
            "(loop $l (drop (memory.grow (i32.const 16))) (br $l)) (i64.const 0)",
            &["--memory-limit", "8388608"],
            "memory limit",
        ),
        ("trap", "unreachable", &[], "trapped"),
        (
            "huge",
            "(i64.const 0x7fffffff)",
            &["--output-limit", "1000000"],
            "over the output cap",
        ),
        (
            "wild",
            "(i64.const 0x7fff000000000010)",
            &[],
            "outside its memory",
        ),
    ];
    for (name, body, flags, reason) in cases {
        let module = write_wat(dir, name, &module_with_map(body));
        let module = module.display().to_string();
        let mut args = vec!["--wasm", &module];
        args.extend_from_slice(flags);
        args.push(&input);
        let out = submit_raw(&mesh.nodes[0], &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
        assert!(
            stderr.contains("task 0") && stderr.contains("failed 3 times"),
            "{name}: {stderr}"
        );
        assert!(
            stderr.contains(reason),
            "{name}: expected '{reason}' in {stderr}"
        );
        assert!(stderr.contains("job "), "{name} names the job: {stderr}");
    }
    // Both nodes survived and still run a normal job.
    let answer = submit_json(&mesh.nodes[1], &["sumsq", "0", "10000"], &["--tasks", "8"]);
    assert_eq!(result_bytes(&answer), reference::sumsq(0, 10_000));
    assert_eq!(mesh.nodes[1].client().peers().await.unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_modules_are_refused_at_submit_time() {
    let mesh = Mesh::start(&[1]).await;
    let dir = mesh.dir.path();
    let input = dir.join("input.txt");
    std::fs::write(&input, "x\n").unwrap();
    let not_wasm = dir.join("not.wasm");
    std::fs::write(&not_wasm, b"#!/bin/sh\necho hi\n").unwrap();
    let missing = write_wat(
        dir,
        "missing",
        r#"(module (memory (export "memory") 1)
        (func (export "shoal_alloc") (param i32) (result i32) (i32.const 0))
        (func (export "shoal_map") (param i32 i32) (result i64) (i64.const 0)))"#,
    );
    let wrong = write_wat(
        dir,
        "wrong",
        r#"(module (memory (export "memory") 1)
        (func (export "shoal_alloc") (param i32) (result i32) (i32.const 0))
        (func (export "shoal_map") (param i32) (result i32) (i32.const 0))
        (func (export "shoal_reduce") (param i32 i32 i32 i32) (result i64) (i64.const 0)))"#,
    );
    let imports = write_wat(
        dir,
        "imports",
        r#"(module (import "env" "clock" (func))
        (memory (export "memory") 1)
        (func (export "shoal_alloc") (param i32) (result i32) (i32.const 0))
        (func (export "shoal_map") (param i32 i32) (result i64) (i64.const 0))
        (func (export "shoal_reduce") (param i32 i32 i32 i32) (result i64) (i64.const 0)))"#,
    );
    let cases = [
        (not_wasm, "not a valid WebAssembly module"),
        (missing, "does not export shoal_reduce"),
        (
            wrong,
            "does not export shoal_map with signature (i32, i32) -> i64",
        ),
        (imports, "imports env::clock"),
    ];
    for (module, message) in cases {
        let out = submit_raw(
            &mesh.nodes[0],
            &["--wasm", module.to_str().unwrap(), input.to_str().unwrap()],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{module:?}: {stderr}");
        assert!(stderr.contains(message), "{module:?}: {stderr}");
    }
    assert!(
        mesh.nodes[0].client().jobs().await.unwrap().is_empty(),
        "nothing reached the mesh"
    );
}
