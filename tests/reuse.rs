//! Results computed once, on real nodes: a word count over 100 files, then one file changed
//! and the same job again: exact, and every task but those that read the changed file (and
//! the reduces above them) takes a result a member kept; `--no-reuse` computes every task.

mod support;

use shoal_ops::reference;
use shoal_protocol::tree::Tree;
use support::*;

/// The reduction tree of a job of `total` tasks with fan-in `fanin`.
fn tree_of(total: u32, fanin: u32) -> Tree {
    (1..=total)
        .map(|maps| Tree::new(maps, fanin))
        .find(|t| t.total() == total)
        .expect("a tree with this many tasks")
}

/// Reduce tasks whose one child is itself a reduce: merging a single partial gives the
/// partial back, so such a task's key is its child's, and a node that computed the child
/// knows its result already, even in a job's first run.
fn echoing_reduces(tree: &Tree) -> u32 {
    (0..tree.total())
        .filter(|&t| {
            let children = tree.children(t);
            !tree.is_map(t) && children.len() == 1 && !tree.is_map(children.start)
        })
        .count() as u32
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_after_one_changed_file_reuses_every_other_task_and_no_reuse_computes_all() {
    let mesh = Mesh::start(&[2, 2, 2]).await;
    mesh.await_full_view(std::time::Duration::from_secs(30))
        .await;
    let dir = mesh.dir.path().join("logs");
    let mut files = write_wide_corpus(&dir, 100, 40);
    let arg = dir.display().to_string();
    let opts = ["--chunk-size", "16384", "--fanin", "4"];
    let first = submit_json(&mesh.nodes[0], &["wordcount", &arg], &opts);
    assert_eq!(result_bytes(&first), reference::wordcount(&files));
    let first_tree = tree_of(first["tasks"].as_u64().unwrap() as u32, 4);
    assert!(
        first["reused"].as_u64().unwrap() <= u64::from(echoing_reduces(&first_tree)),
        "nothing to reuse yet (but a reduce's echo of its one child): {first}"
    );

    // One file grows by a line: its chunk changes, and so do the reduces above it.
    let changed = dir.join("f37.txt");
    let mut text = std::fs::read(&changed).unwrap();
    text.extend_from_slice(b"a brand new line for the rerun\n");
    std::fs::write(&changed, &text).unwrap();
    files[37] = text;
    let second = submit_json(&mesh.nodes[1], &["wordcount", &arg], &opts);
    assert_eq!(result_bytes(&second), reference::wordcount(&files));
    let total = second["tasks"].as_u64().unwrap() as u32;
    let reused = second["reused"].as_u64().unwrap() as u32;
    let depth = tree_of(total, 4).depth();
    // The changed file's pack (and at most the next one, whose boundary may move) and the
    // reduces above them are computed; every other task is reused, from whichever member
    // computed it the first time (the tasks of a new job land elsewhere).
    assert!(
        reused < total && reused + 2 * (depth + 1) >= total,
        "{reused} of {total} tasks reused (tree depth {depth}): {second}"
    );

    let third = submit_json(
        &mesh.nodes[2],
        &["wordcount", &arg],
        &[&opts[..], &["--no-reuse"]].concat(),
    );
    assert_eq!(result_bytes(&third), reference::wordcount(&files));
    assert_eq!(
        third["reused"], 0,
        "--no-reuse computes every task: {third}"
    );
}
