//! Inputs as users have them, on real nodes: trees of many small files (packed into few tasks),
//! files without a final newline, hidden files, symbolic links and their loops, special files,
//! `--exclude`, unreadable files, and files that change between submissions.

mod support;

use shoal_ops::reference;
use std::path::Path;
use std::process::Command;
use support::*;

/// A tree of `n` small files (some without a final newline), a hidden file, a link to a file,
/// a link loop, a FIFO and a directory to exclude. Returns the bytes of the files a job must
/// read, in no particular order.
fn write_tree(root: &Path, n: usize) -> Vec<Vec<u8>> {
    let mut files = Vec::new();
    for i in 0..n {
        let dir = root.join(format!("d{}", i % 7));
        std::fs::create_dir_all(&dir).unwrap();
        let mut text = format!("file {i} says hello\nword{} shoal\n", i % 50);
        if i % 3 == 0 {
            text.push_str("last line without a newline");
        }
        std::fs::write(dir.join(format!("f{i}.txt")), &text).unwrap();
        files.push(text.into_bytes());
    }
    std::fs::write(root.join(".hidden"), "hidden shoal words\n").unwrap();
    files.push(b"hidden shoal words\n".to_vec());
    std::os::unix::fs::symlink(root.join("d0/f0.txt"), root.join("d1/same-as-f0")).unwrap();
    std::os::unix::fs::symlink(root, root.join("d2/loop")).unwrap();
    std::fs::create_dir_all(root.join("skipme")).unwrap();
    std::fs::write(root.join("skipme/not-read.txt"), "excluded shoal\n").unwrap();
    assert!(
        Command::new("mkfifo")
            .arg(root.join("a-fifo"))
            .status()
            .unwrap()
            .success()
    );
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tree_of_many_small_files_runs_as_few_tasks_and_equals_the_reference() {
    let mesh = Mesh::start(&[2, 2]).await;
    let tree = mesh.dir.path().join("tree");
    let files = write_tree(&tree, 1_500);
    let total: usize = files.iter().map(Vec::len).sum();
    let chunk = 4096;
    let tree_arg = tree.display().to_string();
    let chunk_arg = chunk.to_string();
    let extra = ["--chunk-size", &chunk_arg, "--exclude", "skipme"];
    let wc = submit_json(&mesh.nodes[0], &["wordcount", &tree_arg], &extra);
    assert_eq!(result_bytes(&wc), reference::wordcount(&files));
    let grep = submit_json(&mesh.nodes[1], &["grep", "shoal", &tree_arg], &extra);
    assert_eq!(result_bytes(&grep), reference::grep(&files, "shoal"));
    let lines = submit_json(&mesh.nodes[1], &["grep", "", &tree_arg], &extra);
    assert_eq!(
        result_bytes(&lines),
        reference::grep(&files, ""),
        "every line, the last ones too"
    );
    // About one map task per chunk's worth of input, not one per file.
    let detail = mesh.nodes[0]
        .client()
        .job(wc["job"].as_str().unwrap())
        .await
        .unwrap();
    let target = total.div_ceil(chunk) as u32;
    let maps = detail.job.maps;
    assert!(
        maps <= 2 * target && maps >= target / 2,
        "{maps} map tasks for {target} chunks"
    );
    let skipped: Vec<String> = wc["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(skipped, vec![tree.join("a-fifo").display().to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_changed_is_read_again_and_an_unchanged_tree_gives_the_same_job() {
    let mesh = Mesh::start(&[2]).await;
    let tree = mesh.dir.path().join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    for i in 0..20 {
        let path = tree.join(format!("f{i}"));
        std::fs::write(&path, format!("alpha beta {i}\n")).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(old)
            .unwrap();
    }
    let tree_arg = tree.display().to_string();
    let first = submit_json(&mesh.nodes[0], &["wordcount", &tree_arg], &[]);
    let again = submit_json(&mesh.nodes[0], &["wordcount", &tree_arg], &[]);
    assert_eq!(
        first["job"], again["job"],
        "the same files, the same chunks, the same job"
    );
    assert!(mesh.nodes[0].data_dir.join("input-cache").exists());
    // Same size, new contents, the old modification time put back: only the inode's change
    // time tells, and it is enough.
    let changed = tree.join("f7");
    std::fs::write(&changed, "gamma beta 7\n").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&changed)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let after = submit_json(&mesh.nodes[0], &["wordcount", &tree_arg], &[]);
    assert_ne!(after["job"], first["job"]);
    assert_eq!(after["result"]["gamma"], 1);
    assert_eq!(after["result"]["alpha"], 19);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_the_node_cannot_read_is_an_error_naming_it_and_nothing_is_submitted() {
    // Only a node that is not root can be refused a file: as root, run the node as nobody.
    let root = Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
    if !root {
        eprintln!("skipped: needs root to run a node as another user");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("nobody-node");
    std::fs::create_dir_all(&data).unwrap();
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join("readable.txt"), "fine words\n").unwrap();
    let secret = tree.join("root-only.txt");
    std::fs::write(&secret, "private words\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    for p in [dir.path(), tree.as_path()] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(
        tree.join("readable.txt"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let chown = Command::new("chown")
        .arg("nobody")
        .arg(&data)
        .status()
        .unwrap();
    assert!(chown.success());
    // setpriv runs the node in its own process (runuser forks it and waits: killing runuser at
    // the end of the test left the node running as nobody).
    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--reuid=nobody",
        "--regid=nogroup",
        "--clear-groups",
        SHOAL,
        "node",
        "--no-mdns",
        "--slots",
        "1",
    ])
    .args([
        "--listen",
        "/ip4/127.0.0.1/udp/0/quic-v1",
        "--api",
        "127.0.0.1:0",
    ])
    .arg("--data-dir")
    .arg(&data);
    let node = NodeProc::spawn(cmd, &data);
    let out = submit_raw(&node, &["wordcount", &tree.display().to_string()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("root-only.txt") && stderr.contains("ermission denied"),
        "{stderr}"
    );
    assert!(!stderr.contains("private words"));
    assert!(
        node.client().jobs().await.unwrap().is_empty(),
        "nothing was submitted"
    );
}
