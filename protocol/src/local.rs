//! The real-time path: a small job its submitter can start at once runs there alone, with no
//! announcement, no claim and no completion on the wire (as Ray's local scheduling keeps a
//! task on the node that submitted it while that node has room).
//!
//! Two gossip hops are the least a job run by another member costs (the announcement out, the
//! result back), ~0.5 ms each on a loopback mesh; a job whose every task starts on the
//! submitter's idle slots the moment it is submitted gains nothing from the mesh and loses
//! those hops. Only jobs that ask nothing of other members qualify: one replica and no spot
//! checks (trust needs a second member), one copy (durability needs other holders), input
//! the submitter holds (a dataset's parts are elsewhere) and no result reuse (its lookups ask
//! the members). Whatever does not qualify takes the mesh path, unchanged.

use crate::job::{Input, JobSpec};

/// Whether a job of `spec` with `maps` map tasks runs on its submitter alone: the submitter
/// meets its needs (`weight`, its slots for the job, is above 0), every map task starts at
/// once on its `idle_slots`, and the job asks nothing of other members.
pub fn runs_alone(spec: &JobSpec, maps: u32, weight: u32, idle_slots: u32) -> bool {
    weight > 0
        && maps <= idle_slots.min(weight)
        && spec.trust.replicas <= 1
        && spec.trust.verify_ppm == 0
        && spec.keep.copies <= 1
        && !matches!(spec.input, Input::Dataset(_))
        && !crate::reuse::applies(spec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{Operator, Trust};

    fn pi(tasks: u32) -> JobSpec {
        JobSpec {
            op: Operator::Pi,
            input: Input::Samples { total: 1000, tasks },
            fanin: 4,
            trust: Trust {
                replicas: 1,
                verify_ppm: 0,
            },
            sched: Default::default(),
            keep: Default::default(),
            reuse: true,
        }
    }

    #[test]
    fn a_job_that_fits_the_idle_slots_runs_alone() {
        assert!(runs_alone(&pi(1), 1, 2, 2));
        assert!(runs_alone(&pi(2), 2, 2, 2));
    }

    #[test]
    fn a_job_wider_than_the_idle_slots_or_the_submitter_s_weight_takes_the_mesh() {
        assert!(!runs_alone(&pi(3), 3, 4, 2));
        assert!(!runs_alone(&pi(3), 3, 2, 4));
        assert!(
            !runs_alone(&pi(1), 1, 0, 2),
            "the submitter lacks the job's needs"
        );
        assert!(!runs_alone(&pi(1), 1, 2, 0), "every slot is busy");
    }

    #[test]
    fn a_job_that_asks_other_members_for_anything_takes_the_mesh() {
        let mut replicated = pi(1);
        replicated.trust.replicas = 2;
        assert!(!runs_alone(&replicated, 1, 2, 2));
        let mut checked = pi(1);
        checked.trust.verify_ppm = 100_000;
        assert!(!runs_alone(&checked, 1, 2, 2));
        let mut durable = pi(1);
        durable.keep.copies = 2;
        assert!(!runs_alone(&durable, 1, 2, 2));
    }
}
