//! Results computed once, in the state machine: who is asked to look results up, and a reused
//! result as evidence (one vote of its reporter, never two, and said to be reused).

mod support;

use shoal_protocol::wire::{Batch, Envelope, Message};
use shoal_protocol::*;
use support::{files, from_submitter, node, spec};

/// Announces `spec` to `n` from the submitter, with `n` a member; returns the job id and the
/// effects `n` emitted.
fn join(n: &mut Node, spec: JobSpec, seq: u64) -> (JobId, Vec<Effect>) {
    let job = support::announce(n, spec, Vec::new(), seq);
    (job, std::iter::from_fn(|| n.poll_effect()).collect())
}

/// The batches `n` sends for `job` within the next 50 ms.
fn batches(n: &mut Node, job: JobId, now: Millis) -> Vec<Batch> {
    n.handle_timeout(now + 50);
    support::sent_batches(n, job)
}

#[test]
fn only_jobs_over_files_that_allow_reuse_ask_for_a_lookup() {
    let mut n = node();
    n.handle_timeout(0);
    let asks = |effects: &[Effect], job: JobId| {
        effects
            .iter()
            .filter(|e| matches!(e, Effect::ReuseMaps { job: j, .. } if *j == job))
            .count()
    };
    let (job, effects) = join(&mut n, spec(files(4), 1, true), 1);
    assert_eq!(asks(&effects, job), 1);
    let (job, effects) = join(&mut n, spec(files(5), 1, false), 2);
    assert_eq!(asks(&effects, job), 0, "--no-reuse");
    let (job, effects) = join(&mut n, support::sumsq(100, 4, true), 3);
    assert_eq!(asks(&effects, job), 0, "a generated input is not looked up");
}

#[test]
fn a_reused_result_is_one_vote_said_to_be_reused_and_never_counted_twice() {
    let mut n = node();
    n.handle_timeout(0);
    let (job, _) = join(&mut n, spec(files(4), 2, true), 1);
    let result = ResultRef::Inline(b"partial".to_vec().into());
    n.task_reused(20, job, 0, result.clone());
    let sent = batches(&mut n, job, 20);
    assert!(
        sent.iter()
            .any(|b| b.reused == [0] && b.done.iter().any(|(t, _)| *t == 0)),
        "the reuse goes out as a completion marked reused: {sent:?}"
    );
    assert_eq!(n.job_status(&job).unwrap().done, 0, "one vote of two");
    // The same node reporting it again is no second vote.
    n.task_reused(100, job, 0, result.clone());
    assert!(batches(&mut n, job, 100).iter().all(|b| b.done.is_empty()));
    assert_eq!(n.job_status(&job).unwrap().done, 0);
    // Another member's agreeing result settles it; the settling vote was computed.
    let agree = Batch {
        job,
        done: vec![(0, result.clone()), (1, result.clone())],
        ..Batch::default()
    };
    from_submitter(&mut n, 200, 7, Message::Batch(agree));
    let view = n.job_status(&job).unwrap();
    assert_eq!((view.done, view.reused), (1, 0));
    // Task 1: the other member computed it first; this node's reused result settles it.
    n.task_reused(300, job, 1, result);
    let view = n.job_status(&job).unwrap();
    assert_eq!((view.done, view.reused), (2, 1));
}

#[test]
fn a_member_claims_nothing_until_every_members_lookup_is_over_or_its_bound_passes() {
    let claims = |sent: &[Batch]| sent.iter().map(|b| b.claims.len()).sum::<usize>();
    let mut n = node();
    n.handle_timeout(0);
    let (job, _) = join(&mut n, spec(files(8), 1, true), 1);
    assert_eq!(claims(&batches(&mut n, job, 10)), 0, "looking up");
    n.reuse_looked_up(70, job);
    let sent = batches(&mut n, job, 70);
    assert!(
        sent.iter().any(|b| b.looked_up),
        "the members hear that this node's lookup is over: {sent:?}"
    );
    assert_eq!(claims(&sent), 0, "the submitter is still looking up");
    // The submitter's lookup is over too (it found nothing): the tasks are claimed.
    let over = Batch {
        job,
        looked_up: true,
        ..Batch::default()
    };
    from_submitter(&mut n, 80, 8, Message::Batch(over));
    assert!(
        claims(&batches(&mut n, job, 80)) > 0,
        "claims once every lookup is over"
    );
    // A driver that never answers holds its claims back for a bounded time only.
    let mut n = node();
    n.handle_timeout(0);
    let (job, _) = join(&mut n, spec(files(8), 1, true), 1);
    assert_eq!(claims(&batches(&mut n, job, 10)), 0);
    let later = 10 + shoal_protocol::reuse::LOOKUP_MAX_MS;
    assert!(claims(&batches(&mut n, job, later)) > 0);
}

/// When `n` first claims `task` of `job`, probing every millisecond from `from` to `until`
/// (`None`: not within it).
fn claimed_at(n: &mut Node, job: JobId, task: u32, from: Millis, until: Millis) -> Option<Millis> {
    (from..until).find(|&t| {
        n.handle_timeout(t);
        std::iter::from_fn(|| n.poll_transmit())
            .filter_map(|(_, bytes)| match Envelope::decode(&bytes).ok()?.body {
                Message::Batch(b) if b.job == job => Some(b),
                _ => None,
            })
            .any(|b| b.claims.contains(&task))
    })
}

#[test]
fn a_reduce_over_reused_results_waits_briefly_for_the_member_that_kept_it() {
    // Four maps under one reduce (task 4), every lookup over at 20; the submitter settles the
    // maps at 30, as computed results or as reused ones.
    let run = |reused: bool, reduce_reported: bool| {
        let mut n = node();
        n.handle_timeout(0);
        let (job, _) = join(&mut n, spec(files(4), 1, true), 1);
        n.reuse_looked_up(20, job);
        let result = ResultRef::Inline(b"partial".to_vec().into());
        let maps = Batch {
            job,
            looked_up: true,
            done: (0..4).map(|t| (t, result.clone())).collect(),
            reused: if reused { (0..4).collect() } else { Vec::new() },
            ..Batch::default()
        };
        from_submitter(&mut n, 30, 8, Message::Batch(maps));
        if reduce_reported {
            // The member that kept the reduce's result reports it within the wait.
            let reduce = Batch {
                job,
                done: vec![(4, result.clone())],
                reused: vec![4],
                ..Batch::default()
            };
            from_submitter(&mut n, 35, 9, Message::Batch(reduce));
        }
        claimed_at(&mut n, job, 4, 30, 2_000)
    };
    let computed = run(false, false).expect("a reduce over computed results is claimed");
    let reused = run(true, false).expect("one nobody reports is claimed after the wait");
    assert_eq!(reused, computed + shoal_protocol::reuse::REDUCE_LOOKUP_MS);
    assert_eq!(
        run(true, true),
        None,
        "reported within the wait: never computed here"
    );
}

/// A node that hears `early(job)` from the submitter before the announcement of `spec`'s job,
/// then the announcement; with the job's id.
fn announced_after(spec: JobSpec, early: impl FnOnce(JobId) -> Batch) -> (Node, JobId) {
    let mut n = node();
    n.handle_timeout(0);
    let job = spec.id();
    from_submitter(&mut n, 5, 1, Message::Batch(early(job)));
    assert!(n.job_status(&job).is_none());
    support::announce(&mut n, spec, Vec::new(), 2);
    (n, job)
}

#[test]
fn a_batch_that_comes_before_its_job_s_announcement_is_taken_up_with_it() {
    // A member that kept its results reports them at once; its batch may overtake the
    // announcement on its way to another member.
    let result = ResultRef::Inline(b"partial".to_vec().into());
    let (mut n, job) = announced_after(spec(files(4), 1, true), |job| Batch {
        job,
        looked_up: true,
        done: (0..4).map(|t| (t, result.clone())).collect(),
        reused: (0..4).collect(),
        ..Batch::default()
    });
    assert_eq!(
        n.job_status(&job).unwrap().done,
        4,
        "the early results count"
    );
    // The reduce over them is ready here, every child reused: this node looks up whether it
    // kept the reduce's result (it would report it rather than leave it to be computed again).
    let effects: Vec<Effect> = std::iter::from_fn(|| n.poll_effect()).collect();
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::ReuseReduce { task: 4, .. })),
        "{effects:?}"
    );
}

#[test]
fn of_an_early_batch_only_the_results_are_taken_up() {
    // A straggler of an earlier run of the same job (same spec, same id) claimed every task:
    // taken up in the new run, its claims would hold the tasks for a claim's lifetime.
    let (mut n, job) = announced_after(spec(files(4), 1, false), |job| Batch {
        job,
        claims: (0..4).collect(),
        done: vec![(3, ResultRef::Inline(b"partial".to_vec().into()))],
        ..Batch::default()
    });
    assert_eq!(
        n.job_status(&job).unwrap().done,
        1,
        "its result is taken up"
    );
    let sent = batches(&mut n, job, 2_000);
    assert!(
        sent.iter().any(|b| !b.claims.is_empty()),
        "its claims are not: {sent:?}"
    );
}
