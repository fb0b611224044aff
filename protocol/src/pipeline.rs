//! Pipelines: a DAG of stages, each one job, where a stage starts only when every stage it
//! depends on is complete, and a failed stage fails everything downstream of it with the cause.
//!
//! This is the plan alone, pure: what runs a stage (the CLI's `shoal run` through a node, or
//! the simulator) asks it which stages are ready and tells it how each ended. Keeping it here
//! lets the simulator check the same rules the CLI follows.

use std::collections::BTreeMap;

/// Most stages a pipeline has.
pub const MAX_STAGES: usize = 256;
/// Longest stage name.
pub const MAX_STAGE_NAME: usize = 64;

/// Where a stage is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageState {
    /// Some stage it depends on is not complete.
    Waiting,
    /// Handed to whoever runs it.
    Running,
    Complete,
    /// It failed, or a stage it depends on did (the cause says which).
    Failed(String),
}

/// Why a pipeline is refused before anything runs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("a pipeline needs at least one stage")]
    Empty,
    #[error("more than {MAX_STAGES} stages")]
    TooMany,
    #[error(
        "stage name {0:?} must be 1 to {MAX_STAGE_NAME} characters of letters, digits, '_' or '-'"
    )]
    BadName(String),
    #[error("stage {stage}: inputs: there is no stage named {named:?}")]
    UnknownStage { stage: String, named: String },
    #[error("stage {0}: inputs: a stage cannot take its own output")]
    SelfInput(String),
    #[error("stages {}: inputs: they form a cycle", .0.join(" -> "))]
    Cycle(Vec<String>),
}

/// A checked pipeline and the state of each stage.
#[derive(Debug, Clone)]
pub struct Plan {
    names: Vec<String>,
    /// Per stage, the stages whose output it takes (indices, sorted, no repeats).
    deps: Vec<Vec<usize>>,
    states: Vec<StageState>,
}

/// Checks a stage name.
pub fn check_name(name: &str) -> Result<(), PlanError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_STAGE_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(PlanError::BadName(name.to_owned()))
    }
}

impl Plan {
    /// A plan of `stages`: each name with the names of the stages it depends on. Refuses bad
    /// names, unknown stages and cycles (naming the stages of one cycle).
    pub fn new(stages: &BTreeMap<String, Vec<String>>) -> Result<Self, PlanError> {
        if stages.is_empty() {
            return Err(PlanError::Empty);
        }
        if stages.len() > MAX_STAGES {
            return Err(PlanError::TooMany);
        }
        let names: Vec<String> = stages.keys().cloned().collect();
        for n in &names {
            check_name(n)?;
        }
        let index = |n: &str| names.binary_search_by(|x| x.as_str().cmp(n)).ok();
        let mut deps = Vec::with_capacity(names.len());
        for (stage, named) in stages {
            let mut d = Vec::with_capacity(named.len());
            for n in named {
                if n == stage {
                    return Err(PlanError::SelfInput(stage.clone()));
                }
                let i = index(n).ok_or_else(|| PlanError::UnknownStage {
                    stage: stage.clone(),
                    named: n.clone(),
                })?;
                d.push(i);
            }
            d.sort_unstable();
            d.dedup();
            deps.push(d);
        }
        if let Some(cycle) = find_cycle(&deps) {
            return Err(PlanError::Cycle(
                cycle.into_iter().map(|i| names[i].clone()).collect(),
            ));
        }
        let states = vec![StageState::Waiting; names.len()];
        Ok(Self {
            names,
            deps,
            states,
        })
    }

    /// The stage names, in order (stage indices refer to this).
    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn state(&self, stage: usize) -> &StageState {
        &self.states[stage]
    }

    /// The stages `stage` takes output from.
    pub fn deps(&self, stage: usize) -> &[usize] {
        &self.deps[stage]
    }

    /// The stages `stage` still waits for (not complete).
    pub fn waiting_on(&self, stage: usize) -> Vec<&str> {
        self.deps[stage]
            .iter()
            .filter(|&&d| self.states[d] != StageState::Complete)
            .map(|&d| self.names[d].as_str())
            .collect()
    }

    /// Waiting stages whose inputs are all complete: they may start now, all of them at once.
    pub fn ready(&self) -> Vec<usize> {
        (0..self.names.len())
            .filter(|&s| {
                self.states[s] == StageState::Waiting
                    && self.deps[s]
                        .iter()
                        .all(|&d| self.states[d] == StageState::Complete)
            })
            .collect()
    }

    /// Marks a ready stage as handed over. Panics if it is not ready (a caller's bug).
    pub fn start(&mut self, stage: usize) {
        assert!(
            self.ready().contains(&stage),
            "stage {} started before its inputs are complete",
            self.names[stage]
        );
        self.states[stage] = StageState::Running;
    }

    pub fn complete(&mut self, stage: usize) {
        self.states[stage] = StageState::Complete;
    }

    /// Fails `stage` with `cause`, and every stage downstream of it with a cause naming it.
    pub fn fail(&mut self, stage: usize, cause: &str) {
        self.states[stage] = StageState::Failed(cause.to_owned());
        let mut failed = vec![stage];
        while let Some(f) = failed.pop() {
            for s in 0..self.names.len() {
                if self.deps[s].contains(&f) && self.states[s] == StageState::Waiting {
                    self.states[s] = StageState::Failed(format!(
                        "its input stage {} failed: {}",
                        self.names[f],
                        self.failure(f)
                    ));
                    failed.push(s);
                }
            }
        }
    }

    fn failure(&self, stage: usize) -> &str {
        match &self.states[stage] {
            StageState::Failed(c) => c,
            _ => "",
        }
    }

    /// Every stage is complete or failed.
    pub fn is_finished(&self) -> bool {
        self.states
            .iter()
            .all(|s| matches!(s, StageState::Complete | StageState::Failed(_)))
    }
}

/// One cycle of the graph (stage indices, its first stage repeated at the end), if any.
fn find_cycle(deps: &[Vec<usize>]) -> Option<Vec<usize>> {
    // Iterative depth-first search: 0 unvisited, 1 on the current path, 2 finished.
    let mut mark = vec![0u8; deps.len()];
    for root in 0..deps.len() {
        if mark[root] != 0 {
            continue;
        }
        let mut path: Vec<(usize, usize)> = vec![(root, 0)];
        mark[root] = 1;
        while let Some(&mut (node, ref mut next)) = path.last_mut() {
            if let Some(&d) = deps[node].get(*next) {
                *next += 1;
                match mark[d] {
                    0 => {
                        mark[d] = 1;
                        path.push((d, 0));
                    }
                    1 => {
                        let from = path.iter().position(|&(n, _)| n == d).unwrap_or(0);
                        let mut cycle: Vec<usize> = path[from..].iter().map(|&(n, _)| n).collect();
                        cycle.push(d);
                        return Some(cycle);
                    }
                    _ => {}
                }
            } else {
                mark[node] = 2;
                path.pop();
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(stages: &[(&str, &[&str])]) -> Result<Plan, PlanError> {
        Plan::new(
            &stages
                .iter()
                .map(|(n, d)| (n.to_string(), d.iter().map(|s| s.to_string()).collect()))
                .collect(),
        )
    }

    #[test]
    fn independent_stages_are_ready_together_and_a_fan_in_waits_for_both() {
        let mut p = plan(&[("a", &[]), ("b", &[]), ("c", &["a", "b"])]).unwrap();
        assert_eq!(p.ready(), vec![0, 1]);
        p.start(0);
        p.start(1);
        assert!(p.ready().is_empty());
        p.complete(0);
        assert!(p.ready().is_empty(), "c waits for b");
        assert_eq!(p.waiting_on(2), vec!["b"]);
        p.complete(1);
        assert_eq!(p.ready(), vec![2]);
        p.start(2);
        p.complete(2);
        assert!(p.is_finished());
    }

    #[test]
    fn a_failed_stage_fails_its_dependents_with_the_cause_and_the_others_go_on() {
        let mut p = plan(&[("a", &[]), ("b", &["a"]), ("c", &["b"]), ("d", &[])]).unwrap();
        p.start(0);
        p.start(3);
        p.fail(0, "boom");
        assert_eq!(
            p.state(2),
            &StageState::Failed("its input stage b failed: its input stage a failed: boom".into())
        );
        assert!(!p.is_finished(), "d still runs");
        p.complete(3);
        assert!(p.is_finished());
    }

    #[test]
    fn cycles_unknown_stages_and_bad_names_are_refused() {
        let e = plan(&[("a", &["c"]), ("b", &["a"]), ("c", &["b"])]).unwrap_err();
        assert_eq!(
            e,
            PlanError::Cycle(vec!["a".into(), "c".into(), "b".into(), "a".into()])
        );
        assert!(e.to_string().contains("a -> c -> b -> a"), "{e}");
        assert_eq!(
            plan(&[("a", &["nope"])]).unwrap_err(),
            PlanError::UnknownStage {
                stage: "a".into(),
                named: "nope".into()
            }
        );
        assert_eq!(
            plan(&[("a", &["a"])]).unwrap_err(),
            PlanError::SelfInput("a".into())
        );
        assert!(matches!(plan(&[("a b", &[])]), Err(PlanError::BadName(_))));
        assert_eq!(plan(&[]).unwrap_err(), PlanError::Empty);
    }

    #[test]
    #[should_panic(expected = "before its inputs are complete")]
    fn starting_a_stage_early_is_a_bug() {
        let mut p = plan(&[("a", &[]), ("b", &["a"])]).unwrap();
        p.start(1);
    }
}
