//! How batches are sent and applied: a member applies a peer's completions before its claims,
//! so that a member that completed a reduce's last child and claimed the reduce in the same
//! batch (as the holder of a reduce's inputs does, to combine them where they are) has its
//! claim taken; and a driver's turn sends the claims and completions it made in one batch.

mod support;

use shoal_protocol::wire::{Batch, Message};
use shoal_protocol::*;
use support::{announce, files, from_submitter, node, spec, submitter};

#[test]
fn a_claim_of_a_reduce_in_the_batch_that_completes_its_last_child_is_taken() {
    let mut n = node();
    n.handle_timeout(0);
    // Four maps and their root reduce (task 4).
    let job = announce(&mut n, spec(files(4), 1, false), Vec::new(), 1);
    let result = |t: u8| ResultRef::Inline(vec![t; 8].into());
    let batch = Batch {
        job,
        claims: vec![4],
        done: (0..4).map(|t| (t, result(t as u8))).collect(),
        ..Batch::default()
    };
    from_submitter(&mut n, 20, 2, Message::Batch(batch));
    let detail = n.job_detail(&job).expect("a member tracks the job");
    assert_eq!(detail.tasks.done, 4);
    let by_submitter = detail
        .placement
        .iter()
        .find(|p| p.node == submitter())
        .expect("the submitter appears in the placement");
    assert_eq!(
        by_submitter.claimed + by_submitter.running,
        1,
        "the root is the submitter's: {:?}",
        detail.placement
    );
}

/// Announces a one-task job to `n` and, if `turn`, does it within a driver's turn in which the
/// task also runs and finishes; returns the batches `n` sent for the job.
fn one_task_job(turn: bool) -> Vec<Batch> {
    let mut n = node();
    n.handle_timeout(0);
    if turn {
        n.begin_turn();
    }
    let job = announce(&mut n, support::sumsq(10, 1, false), Vec::new(), 1);
    // Past any rank's steal delay: the member claims the task whoever ranks first.
    n.handle_timeout(2_000);
    let runs: Vec<TaskRun> = std::iter::from_fn(|| n.poll_effect())
        .filter_map(|e| match e {
            Effect::Run(run) => Some(run),
            _ => None,
        })
        .collect();
    assert_eq!(runs.len(), 1, "the member claims and starts the one task");
    let done = TaskOutcome::Done(ResultRef::Inline(vec![1; 8].into()));
    n.task_finished(2_001, job, runs[0].task, done, 5);
    if turn {
        n.end_turn(2_001);
    }
    support::sent_batches(&mut n, job)
}

#[test]
fn a_turn_sends_a_tiny_task_s_claim_and_completion_in_one_batch() {
    let batches = one_task_job(true);
    assert_eq!(batches.len(), 1, "{batches:?}");
    assert_eq!(batches[0].claims, [0]);
    assert_eq!(batches[0].done.len(), 1);
    // Outside a turn (the simulator), each step sends its own.
    assert_eq!(one_task_job(false).len(), 2);
}
