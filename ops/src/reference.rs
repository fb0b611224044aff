//! Single-process reference implementations. They compute each job's result directly, without
//! partitioning or a reduction tree, so they check the mesh rather than repeat it.

use crate::grep::lines_containing;
use crate::pi::pi_hits;
use crate::run::{json_bytes, pi_json};
use crate::words::for_each_word;
use shoal_protocol::job::{Input, JobSpec, split_even, task_seed};
use std::collections::BTreeMap;

/// Word count over whole files.
pub fn wordcount(files: &[Vec<u8>]) -> Vec<u8> {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for file in files {
        for_each_word(file, |w| *counts.entry(w).or_insert(0) += 1);
    }
    serde_json::to_vec(&counts).expect("serializing a map cannot fail")
}

/// Matching lines over whole files.
pub fn grep(files: &[Vec<u8>], pattern: &str) -> Vec<u8> {
    let total: u64 = files
        .iter()
        .map(|f| lines_containing(f, pattern.as_bytes()))
        .sum();
    json_bytes(&serde_json::json!({ "total": total }))
}

/// Sum of squares over `[start, end)` in one loop.
pub fn sumsq(start: u64, end: u64) -> Vec<u8> {
    let total: u128 = (start..end).map(|x| u128::from(x) * u128::from(x)).sum();
    json_bytes(&serde_json::Value::String(total.to_string()))
}

/// Pi with the job's per-task seeds, tasks run one after another. `None` for a spec whose
/// input is not a sample count.
pub fn pi(spec: &JobSpec) -> Option<Vec<u8>> {
    let Input::Samples { total, tasks } = spec.input else {
        return None;
    };
    let job = spec.id();
    let mut hits = 0;
    for index in 0..tasks {
        let (a, b) = split_even(total, tasks, index);
        hits += pi_hits(b - a, task_seed(&job, index));
    }
    Some(pi_json(total, hits))
}
