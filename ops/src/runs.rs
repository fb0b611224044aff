//! A run of tiny map tasks ([`shoal_protocol::runs`]) computed as the tasks it holds: each
//! map task on its own generated part, then the reduces of the job's tree inside the run,
//! level by level, up to the run's root.

use crate::run::{MapInput, OpError, map, reduce};
use shoal_protocol::JobSpec;
use std::ops::Range;

/// The partial result of the run of map tasks `tasks` of `spec`: the result the job's tree
/// has at the run's root.
pub fn map_run(spec: &JobSpec, tasks: Range<u32>) -> Result<Vec<u8>, OpError> {
    let runs = spec.runs();
    let wrong = || OpError::WrongInput {
        op: spec.op.name(),
        expected: "a run of tasks over a generated input",
    };
    if tasks.is_empty()
        || tasks.len() > runs.tasks_per_run() as usize
        || !tasks.start.is_multiple_of(runs.tasks_per_run())
    {
        return Err(wrong());
    }
    let count = tasks.len();
    let mut level = spec
        .generated_parts(tasks)
        .map(|part| map(&spec.op, MapInput::Generated(part)))
        .collect::<Result<Vec<_>, _>>()?;
    if level.len() != count {
        return Err(wrong());
    }
    // A run starts at a multiple of its length, so consecutive groups of `fanin` are the
    // children of the tree's reduces inside it.
    for _ in 0..runs.depth() {
        level = level
            .chunks(spec.fanin as usize)
            .map(|group| {
                let parts: Vec<&[u8]> = group.iter().map(Vec::as_slice).collect();
                reduce(&spec.op, &parts)
            })
            .collect::<Result<Vec<_>, _>>()?;
    }
    match <[Vec<u8>; 1]>::try_from(level) {
        Ok([root]) => Ok(root),
        Err(_) => Err(wrong()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{finalize, reference};
    use shoal_protocol::job::Input;
    use shoal_protocol::{Operator, tree::Tree};

    /// The root of the tree over the runs' results, reduced as the state machine's tree is.
    fn root_over_runs(spec: &JobSpec) -> Vec<u8> {
        let runs = spec.runs();
        assert!(runs.fused(), "the spec runs in runs");
        let tree = spec.tree();
        let mut results: Vec<Vec<u8>> = (0..runs.leaves())
            .map(|leaf| map_run(spec, runs.tasks_of(leaf)).unwrap())
            .collect();
        for t in tree.maps()..tree.total() {
            let parts: Vec<&[u8]> = tree.children(t).map(|c| &results[c as usize][..]).collect();
            let r = reduce(&spec.op, &parts).unwrap();
            results.push(r);
        }
        results.pop().unwrap()
    }

    #[test]
    fn runs_give_the_reference_result() {
        for (tasks, fanin) in [(100_000u32, 4u32), (4097, 3), (64, 2), (1000, 64)] {
            let end = 7 + u64::from(tasks) * 2;
            let s = JobSpec::new(
                Operator::SumSq,
                Input::Range {
                    start: 7,
                    end,
                    tasks,
                },
                fanin,
            );
            let root = root_over_runs(&s);
            assert_eq!(
                finalize(&s.op, &root).unwrap(),
                reference::sumsq(7, end),
                "{tasks} tasks, fan-in {fanin}"
            );
        }
        let pi = JobSpec::new(
            Operator::Pi,
            Input::Samples {
                total: 300_001,
                tasks: 3_000,
            },
            4,
        );
        let root = root_over_runs(&pi);
        assert_eq!(
            finalize(&pi.op, &root).unwrap(),
            reference::pi(&pi).unwrap()
        );
        // The same partial as the unfused tree at the run's root.
        let s = JobSpec::new(
            Operator::SumSq,
            Input::Range {
                start: 0,
                end: 5000,
                tasks: 5000,
            },
            4,
        );
        let runs = s.runs();
        let full = Tree::new(5000, 4);
        let (first, _) = full.levels()[runs.depth() as usize];
        let mut results: Vec<Vec<u8>> = (0..5000)
            .map(|t| map(&s.op, MapInput::Generated(s.generated_part(t).unwrap())).unwrap())
            .collect();
        for t in full.maps()..first + 1 {
            let parts: Vec<&[u8]> = full.children(t).map(|c| &results[c as usize][..]).collect();
            let r = reduce(&s.op, &parts).unwrap();
            results.push(r);
        }
        assert_eq!(
            map_run(&s, runs.tasks_of(0)).unwrap(),
            results[first as usize]
        );
    }

    #[test]
    fn a_run_that_is_not_one_is_refused() {
        let s = JobSpec::new(
            Operator::SumSq,
            Input::Range {
                start: 0,
                end: 100,
                tasks: 100,
            },
            4,
        );
        let len = s.runs().tasks_per_run();
        assert!(map_run(&s, 0..0).is_err());
        assert!(map_run(&s, 0..len + 1).is_err());
        assert!(map_run(&s, 98..102).is_err());
        assert!(map_run(&s, 1..len).is_err());
    }
}
