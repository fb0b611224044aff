//! 9. A private mesh on a LAN: three hosts hold key K; on the same bridge, with mDNS on, one
//!    host holds no key and one holds K'. The intruders also dial a K host directly.

use crate::host::Lan;
use crate::{await_mid_job, corpus, report};
use shoal_node::input;
use shoal_node::store::BlobStore;
use shoal_ops::reference;
use shoal_protocol::codec;
use shoal_protocol::job::Manifest;
use std::time::{Duration, Instant};
use support::{result_bytes, tasks_done_by};

use crate::support;

/// The chunk hashes `shoal submit --chunk-size CHUNK` makes of `dir`, as the submitter does.
fn chunk_hashes(dir: &str, chunk: u64) -> Vec<String> {
    let store = BlobStore::new(1 << 30);
    let files = input::list_files(&[dir.into()], &[]).expect("the corpus exists");
    let cache = input::cache::InputCache::new(None);
    let manifest = input::prepare(&files, Some(chunk), &store, &cache)
        .expect("chunking")
        .manifest;
    let manifest: Manifest =
        codec::decode_blob(&store.get(&manifest).expect("the manifest")).expect("a manifest");
    manifest.chunks.iter().map(|c| c.hash.to_hex()).collect()
}

pub(crate) fn a_private_mesh_admits_only_key_holders() {
    let mut lan = Lan::bridged(&[(1, 5)]);
    let keys = lan.dir.path().join("keys");
    std::fs::create_dir_all(&keys).expect("keys dir");
    let k = keys.join("k.key").display().to_string();
    let other = keys.join("other.key").display().to_string();
    for key in [&k, &other] {
        assert!(lan.hosts[0].shoal(&["key", "new", key]).status.success());
    }
    for host in &mut lan.hosts[..3] {
        host.start_node(1, &["--mesh-key", &k]);
    }
    lan.await_views(&[0, 1, 2], 3, Duration::from_secs(10));
    let k_addr = lan.hosts[0].quic_addr();
    lan.hosts[3].start_node(1, &["--bootstrap", &k_addr]);
    lan.hosts[4].start_node(1, &["--mesh-key", &other, "--bootstrap", &k_addr]);
    let insiders: Vec<String> = lan.hosts[..3]
        .iter()
        .map(|h| h.peer_id().to_string())
        .collect();
    let intruders: Vec<String> = lan.hosts[3..]
        .iter()
        .map(|h| h.peer_id().to_string())
        .collect();
    // Checked again and again while everything below happens: nobody crosses the line.
    let check_views = |lan: &Lan| {
        for (i, host) in lan.hosts.iter().enumerate() {
            let seen: Vec<String> = host.peers().into_iter().map(|p| p.peer_id).collect();
            let (own, others) = if i < 3 {
                (&insiders, &intruders)
            } else {
                (&intruders, &insiders)
            };
            for p in &seen {
                assert!(
                    !others.contains(p),
                    "host {} sees {p} across the line",
                    i + 1
                );
            }
            if i < 3 {
                assert!(
                    seen.iter().all(|p| own.contains(p)),
                    "host {}: {seen:?}",
                    i + 1
                );
            } else {
                assert_eq!(seen.len(), 1, "intruder host {} sees {seen:?}", i + 1);
            }
        }
    };
    // Several mDNS, dial and advert rounds.
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        check_views(&lan);
    }
    // A job of the private mesh: exact, and only on K hosts.
    let (path, files) = corpus(&lan, "private", 4, 30_000);
    let chunk = 16_384;
    let hashes = chunk_hashes(&path, chunk);
    let chunk_arg = chunk.to_string();
    let submission = lan.hosts[0].submit(&["--chunk-size", &chunk_arg, "wordcount", &path]);
    await_mid_job(&lan, 0, "wordcount");
    // Intruders asking the submitter for its chunks get nothing, with or without a key.
    let submitter = lan.hosts[0].quic_addr();
    for (host, key) in [(3, None), (4, Some(other.as_str()))] {
        for hash in hashes.iter().take(3) {
            let mut args = vec![
                "probe",
                "blob",
                &submitter,
                hash,
                "--json",
                "--timeout",
                "6s",
            ];
            if let Some(key) = key {
                args.extend(["--mesh-key", key]);
            }
            let out = lan.hosts[host].shoal(&args);
            let answer: serde_json::Value =
                serde_json::from_slice(&out.stdout).expect("probe prints JSON");
            let outcome = answer["outcome"].as_str().unwrap_or("");
            assert!(
                outcome == "no-connection" || outcome == "failed",
                "host {} asked for a chunk and got: {answer}",
                host + 1
            );
        }
    }
    check_views(&lan);
    let (answer, took) = submission.finish();
    assert_eq!(result_bytes(&answer), reference::wordcount(&files));
    let intruder_ids: Vec<String> = lan.hosts[3..].iter().map(|h| h.node_id()).collect();
    for id in &intruder_ids {
        assert_eq!(
            tasks_done_by(&answer, id),
            0,
            "an intruder ran tasks: {answer}"
        );
    }
    // A job an intruder submits stays with it.
    let insider_ids: Vec<String> = lan.hosts[..3].iter().map(|h| h.node_id()).collect();
    for host in [3, 4] {
        let (answer, _) = lan.hosts[host]
            .submit(&["sumsq", "0", "2000000", "--tasks", "32"])
            .finish();
        assert_eq!(result_bytes(&answer), reference::sumsq(0, 2_000_000));
        for id in &insider_ids {
            assert_eq!(
                tasks_done_by(&answer, id),
                0,
                "a K host ran an intruder's task: {answer}"
            );
        }
    }
    check_views(&lan);
    report(
        "private mesh",
        format!(
            "3 key holders, 2 intruders on one bridge: no cross-over in any view; the private word count took {} ms",
            took.as_millis()
        ),
    );
}
