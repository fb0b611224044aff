//! Fixed-seed runs: bugs the simulator found stay fixed, and runs stay deterministic.

use shoal_netsim::{Faults, SimConfig, run};

fn config(nodes: usize, tasks: u32, seed: u64) -> SimConfig {
    SimConfig {
        nodes,
        tasks,
        seed,
        faults: Faults::all(),
        ..SimConfig::default()
    }
}

#[test]
fn seed_8_does_not_livelock_on_a_reduce_task_whose_child_result_is_unknown() {
    // Found by the sweep: a node made a reduce task ready while one child was known only as
    // "done elsewhere", claimed it, could not start it, let the claim lapse, and claimed it
    // again, forever; lost completions left every node missing some child.
    let report = run(config(200, 1000, 8));
    assert!(report.ok(), "{:?}", report.violations);
}

#[test]
fn a_small_sweep_with_every_fault_has_no_violations() {
    for seed in 1..=12 {
        let report = run(config(40, 300, seed));
        assert!(report.ok(), "seed {seed}: {:?}", report.violations);
    }
}

#[test]
fn clean_runs_finish_every_job_with_the_exact_result() {
    for seed in 1..=4 {
        let report = run(SimConfig {
            faults: Faults::default(),
            jobs: 3,
            ..config(30, 200, seed)
        });
        assert!(report.ok(), "seed {seed}: {:?}", report.violations);
        assert_eq!(report.completed_jobs, 3, "seed {seed}");
    }
}

#[test]
fn nodes_that_run_only_their_own_jobs_never_run_a_task_of_another_s() {
    for seed in 1..=6 {
        // Every fault but the submitter's departure, which may leave a job unable to finish.
        let report = run(SimConfig {
            restricted_pct: 30,
            faults: Faults::parse(
                "latency,loss,duplication,reordering,partitions,crashes,restarts,slow",
            )
            .unwrap(),
            ..config(40, 300, seed)
        });
        assert!(report.ok(), "seed {seed}: {:?}", report.violations);
        assert_eq!(report.completed_jobs, 1, "seed {seed}");
        assert!(
            report.messages_by_kind["decline"] > 0,
            "seed {seed}: nobody declined"
        );
    }
}

#[test]
fn the_same_seed_gives_the_same_trace_and_another_seed_does_not() {
    let a = run(config(30, 200, 5));
    let b = run(config(30, 200, 5));
    let c = run(config(30, 200, 6));
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_ne!(a.trace_hash, c.trace_hash);
}

#[test]
fn with_two_replicas_liars_never_change_a_result_and_with_one_they_do() {
    // Every fault but the submitter's departure, so that each job can finish.
    let faults =
        Faults::parse("latency,loss,duplication,reordering,partitions,crashes,restarts,slow")
            .unwrap();
    let mut corrupted = 0;
    for seed in 1..=6 {
        let byzantine = SimConfig {
            faults,
            byzantine_pct: 15,
            ..config(40, 300, seed)
        };
        let report = run(SimConfig {
            replicas: 2,
            ..byzantine.clone()
        });
        assert!(report.ok(), "seed {seed}: {:?}", report.violations);
        assert_eq!(report.completed_jobs, 1, "seed {seed}");
        corrupted += run(byzantine).corrupted_jobs;
    }
    assert!(
        corrupted > 0,
        "the liars never got a lie through one replica"
    );
}

#[test]
fn durable_jobs_survive_the_faults_the_sweeps_found() {
    // Jobs of 1000 tasks. 7610352: a holder crashed while the submitter was cut off, then the
    // submitter left (the detach point now counts copies besides the submitter). 7610769: a
    // holder restarted faster than the member TTL (its first advert now drops its old
    // copies). 7610649: an earlier way of forgetting a restarted peer's results as well broke
    // the tree's counters (its first advert now drops its results and claims too, through
    // the same path as a member that went silent).
    // Jobs of 100 tasks (found by 150 seeds from 16200). 16206: a successor took over while
    // the coordinator ended the job; it held the output and waited for a second keeper
    // forever. Fixed twice: an earlier run's end now ends its run too, and a node holding an
    // output whose end it has not heard asks for it; the seed fails without the asking (with
    // it alone the run takes another course, so this seed does not pin the first rule).
    // 16257: one node submitted both jobs and the simulator let it leave once the first was
    // held, before the second was (it now waits for every job of its own).
    let cases = [
        (1000, 7_610_352),
        (1000, 7_610_769),
        (1000, 7_610_649),
        (100, 16_206),
        (100, 16_257),
    ];
    for (tasks, seed) in cases {
        let report = run(SimConfig {
            jobs: 2,
            copies: 2,
            ..config(200, tasks, seed)
        });
        assert!(report.ok(), "seed {seed}: {:?}", report.violations);
        assert_eq!(report.completed_jobs, 2, "seed {seed}");
    }
}

#[test]
fn a_peer_that_restarts_within_the_member_ttl_has_its_old_results_computed_again() {
    // Scheduling sweep, seed 9059 (found when reduces were first taken before maps): node 4
    // restarted faster than the member TTL. The submitter still counted node 4's old result
    // for task 480 as held, so it saw the parent ready (and could not run it: its needs are
    // unmet), while every member, node 4 included, knew 480 only as done elsewhere and waited.
    let report = run(SimConfig {
        jobs: 8,
        scheduling: true,
        ..config(100, 400, 9059)
    });
    assert!(report.ok(), "{:?}", report.violations);
    assert_eq!(report.completed_jobs, 8);
}

#[test]
fn seed_18_of_the_dataset_sweep_recruits_holders_outside_the_coordinators_view() {
    // Found by the dataset sweep: a part's only holder was not in the submitter's view, so it
    // was never recruited, and every other member took its part's map tasks at once.
    let report = run(SimConfig {
        jobs: 4,
        datasets: true,
        ..config(100, 400, 18)
    });
    assert!(report.ok(), "{:?}", report.violations);
    assert_eq!(report.completed_jobs, 4);
}
