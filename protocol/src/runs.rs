//! Runs: the tiny tasks of a generated job claimed, computed and reported a subtree at a time.
//!
//! A job of many tiny tasks (a sum of squares over one number each) spends nearly all of its
//! time on coordinating each task: a claim, a completion, a state entry on every member and an
//! input of a reduce, microseconds each where the task itself takes nanoseconds. Such a job's
//! map tasks are grouped in runs of `fanin^k` consecutive tasks, each run a whole subtree of
//! the job's reduction tree. The state machine's leaves are the runs: a member claims a run,
//! computes each of its tasks (one operator call per task, on the task's own part, as if it
//! ran alone) and the reduces inside the subtree in the tree's order, and reports the
//! subtree's root. The tree above the runs is the job's own tree from level `k` up, so the
//! result is the one the unfused tree gives. Dask fuses chains of its task graph for the same
//! reason. What fusing costs: a run is claimed, leased, replicated and re-run as one task.

use crate::job::{Input, JobSpec, Operator};
use std::ops::Range;

/// Largest share of a generated input (numbers of a range, pi samples) one task may have for
/// its job to run in runs: tasks this small take microseconds or less.
pub const TINY_TASK_ITEMS: u64 = 4096;
/// Most items one run computes: a run stays well under a millisecond of work.
pub const RUN_ITEMS_MAX: u64 = 65_536;
/// Most tasks in one run.
pub const RUN_TASKS_MAX: u32 = 1024;
/// Fewest runs a job is cut into, so that its work still spreads over the members.
pub const RUNS_MIN: u32 = 16;

/// How a job's map tasks group into runs (a run of one task each when they do not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Runs {
    /// The job's map tasks.
    tasks: u32,
    /// Tasks per run, `fanin^depth`; the last run may hold fewer.
    len: u32,
    fanin: u32,
    /// Levels of the job's tree inside a run, below the run's root.
    depth: u32,
}

impl Runs {
    /// The runs of a valid spec: tasks of at most [`TINY_TASK_ITEMS`] items of a built-in
    /// operator over a generated input, grouped as deep as [`RUN_ITEMS_MAX`],
    /// [`RUN_TASKS_MAX`] and [`RUNS_MIN`] allow. Every node computes the same from the spec.
    pub fn of(spec: &JobSpec) -> Self {
        let tasks = spec.map_tasks().max(1);
        let mut runs = Self {
            tasks,
            len: 1,
            fanin: spec.fanin,
            depth: 0,
        };
        let items = match (&spec.op, &spec.input) {
            (Operator::SumSq, &Input::Range { start, end, .. }) => end.saturating_sub(start),
            (Operator::Pi, &Input::Samples { total, .. }) => total,
            _ => return runs,
        };
        let per_task = items.div_ceil(u64::from(tasks));
        if per_task > TINY_TASK_ITEMS {
            return runs;
        }
        loop {
            let next = runs.len.saturating_mul(spec.fanin);
            if next > RUN_TASKS_MAX
                || u64::from(next) * per_task > RUN_ITEMS_MAX
                || tasks.div_ceil(next) < RUNS_MIN
            {
                return runs;
            }
            runs.len = next;
            runs.depth += 1;
        }
    }

    /// Map tasks per run (1: the job's tasks are claimed one by one).
    pub fn tasks_per_run(&self) -> u32 {
        self.len
    }

    /// Whether the job's tasks are grouped at all.
    pub fn fused(&self) -> bool {
        self.len > 1
    }

    /// The leaves of the state machine's tree: the runs.
    pub fn leaves(&self) -> u32 {
        self.tasks.div_ceil(self.len)
    }

    /// Levels of the job's tree inside each run.
    pub fn depth(&self) -> u32 {
        self.depth
    }

    /// The job's map tasks that run `leaf` holds.
    pub fn tasks_of(&self, leaf: u32) -> Range<u32> {
        let first = leaf.saturating_mul(self.len).min(self.tasks);
        first..first.saturating_add(self.len).min(self.tasks)
    }

    /// The tasks of the job's tree inside run `leaf`: its map tasks and the reduces over them
    /// up to the run's root, which is the leaf itself. A run starts at a multiple of the
    /// fan-in's power, so each level holds the ceiling of the one below over the fan-in.
    pub fn tree_tasks_of(&self, leaf: u32) -> u32 {
        let mut level = self.tasks_of(leaf).len() as u32;
        let mut sum = level;
        for _ in 0..self.depth {
            level = level.div_ceil(self.fanin);
            sum += level;
        }
        sum
    }

    /// What task `task` of the state machine's tree (a run, or a reduce above the runs) counts
    /// for in the job's tree: (its tasks, its map tasks).
    pub fn weight(&self, tree: &crate::tree::Tree, task: u32) -> (u32, u32) {
        if tree.is_map(task) {
            (self.tree_tasks_of(task), self.tasks_of(task).len() as u32)
        } else {
            (1, 0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::Tree;

    fn sumsq(items: u64, tasks: u32, fanin: u32) -> JobSpec {
        let input = Input::Range {
            start: 0,
            end: items,
            tasks,
        };
        JobSpec::new(Operator::SumSq, input, fanin)
    }

    #[test]
    fn only_many_tiny_generated_tasks_of_a_built_in_run_together() {
        assert_eq!(Runs::of(&sumsq(100_000, 100_000, 4)).tasks_per_run(), 1024);
        // Few tasks: at least RUNS_MIN runs.
        assert_eq!(Runs::of(&sumsq(64, 64, 4)).tasks_per_run(), 4);
        assert_eq!(Runs::of(&sumsq(60, 60, 4)).tasks_per_run(), 1);
        // Parts over the tiny bound, and big runs, are bounded.
        assert_eq!(Runs::of(&sumsq(10_000_000, 1000, 4)).tasks_per_run(), 1);
        assert_eq!(Runs::of(&sumsq(4_096_000, 1000, 4)).tasks_per_run(), 16);
        // Files and WebAssembly never.
        let wasm = Operator::Wasm {
            module: crate::ids::BlobHash([0; 32]),
            len: 1,
            limits: Default::default(),
        };
        let range = Input::Range {
            start: 0,
            end: 100_000,
            tasks: 100_000,
        };
        assert_eq!(Runs::of(&JobSpec::new(wasm, range, 4)).tasks_per_run(), 1);
        let pi = Input::Samples {
            total: 100_000,
            tasks: 100_000,
        };
        assert_eq!(
            Runs::of(&JobSpec::new(Operator::Pi, pi, 2)).tasks_per_run(),
            1024
        );
    }

    #[test]
    fn runs_cover_the_tasks_once_and_the_tree_above_them_is_the_jobs_tree() {
        for tasks in [1u32, 16, 63, 64, 65, 1000, 4097, 100_000] {
            for fanin in [2u32, 3, 4, 7, 64] {
                let spec = sumsq(u64::from(tasks), tasks, fanin);
                let runs = Runs::of(&spec);
                let mut next = 0;
                for leaf in 0..runs.leaves() {
                    let r = runs.tasks_of(leaf);
                    assert_eq!(r.start, next);
                    assert!(!r.is_empty());
                    next = r.end;
                }
                assert_eq!(next, tasks);
                let full = Tree::new(tasks, fanin);
                let fused = Tree::new(runs.leaves(), fanin);
                assert_eq!(full.levels()[runs.depth() as usize].1, fused.maps());
                assert_eq!(full.depth(), fused.depth() + runs.depth());
                let inside: u32 = (0..runs.leaves()).map(|l| runs.tree_tasks_of(l)).sum();
                let above = fused.total() - fused.maps();
                assert_eq!(inside + above, full.total(), "tasks {tasks} fanin {fanin}");
            }
        }
    }
}
