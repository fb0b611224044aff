//! The scheduling mode (`--scheduling`): nodes advertise tags and differ in memory, jobs have
//! priorities and needs, and some jobs are pipeline stages that start only once the jobs they
//! take output from are complete ([`shoal_protocol::pipeline::Plan`], the rules `shoal run`
//! follows). What is drawn here comes from the seed; the checks run at every task start.

use shoal_ops::SplitMix64;
use shoal_protocol::schedule::{Needs, Schedule};
use shoal_protocol::{Node, TaskRun};

/// The tag some nodes have and some jobs need.
pub const TAG: &str = "gpu";
/// Memory sizes nodes are drawn from (MiB).
const MEM_MB: [u64; 4] = [512, 1024, 2048, 4096];
/// What a memory-hungry job needs per task (MiB): nodes of 512 MiB cannot run it, 1 GiB nodes
/// run one task at a time, larger ones more.
const JOB_MEM_MB: u64 = 1024;

/// A node's tags and memory. Node 0 (the first to join) always has the tag and the most
/// memory, so that every need is met by some node at the start.
pub fn node_resources(rng: &mut SplitMix64, node: usize) -> (Vec<String>, u64) {
    if node == 0 {
        return (vec![TAG.to_owned()], MEM_MB[MEM_MB.len() - 1]);
    }
    let tags = if rng.next_u64().is_multiple_of(3) {
        vec![TAG.to_owned()]
    } else {
        Vec::new()
    };
    let mem = MEM_MB[(rng.next_u64() % MEM_MB.len() as u64) as usize];
    (tags, mem)
}

/// A job's priority (-2 to 5) and needs (the tag for a third of the jobs, memory for a
/// quarter).
pub fn job_schedule(rng: &mut SplitMix64) -> Schedule {
    let priority = (rng.next_u64() % 8) as i32 - 2;
    let tags = if rng.next_u64().is_multiple_of(3) {
        vec![TAG.to_owned()]
    } else {
        Vec::new()
    };
    let mem_mb = if rng.next_u64().is_multiple_of(4) {
        JOB_MEM_MB
    } else {
        0
    };
    Schedule {
        priority,
        needs: Needs { tags, mem_mb },
    }
}

/// The earlier jobs job `job` takes output from: none for a half of the jobs, else one or two.
pub fn job_deps(rng: &mut SplitMix64, job: usize) -> Vec<usize> {
    if job == 0 || rng.next_u64().is_multiple_of(2) {
        return Vec::new();
    }
    let mut deps = vec![(rng.next_u64() % job as u64) as usize];
    if job > 1 && rng.next_u64().is_multiple_of(2) {
        deps.push((rng.next_u64() % job as u64) as usize);
    }
    deps.sort_unstable();
    deps.dedup();
    deps
}

/// What is wrong with `node` (tags `tags`, memory `mem_mb`) starting `run` at `now`: a need it
/// does not meet, or a claim of a higher-priority job it holds and could have started instead
/// (claimed before this step: a claim made by the refill after starting is not held against
/// it).
pub fn check_start(
    proto: &Node,
    node: usize,
    tags: &[String],
    mem_mb: u64,
    run: &TaskRun,
    now: shoal_protocol::Millis,
) -> Vec<String> {
    let mut wrong = Vec::new();
    if let Some(unmet) = run.spec.sched.needs.unmet(tags, mem_mb) {
        wrong.push(format!(
            "node {node} started task {} of job {} without meeting its need {unmet}",
            run.task, run.job
        ));
    }
    let priority = run.spec.sched.priority;
    if let Some(c) = proto
        .startable_claims()
        .into_iter()
        .find(|c| c.priority > priority && c.claimed_at < now)
    {
        wrong.push(format!(
            "priority: node {node} started task {} of job {} (priority {priority}) while holding \
             task {} of job {} (priority {}), claimed at {} ms and startable",
            run.task, run.job, c.task, c.job, c.priority, c.claimed_at
        ));
    }
    wrong
}
