//! The real-time path in the simulator: what one-task jobs cost on the wire with it and without.

use shoal_netsim::{Faults, Report, SimConfig, run};

/// Twenty one-task jobs without result lookups, from random submitters of a 12-node mesh.
fn one_task_jobs(seed: u64, local_path: bool) -> Report {
    run(SimConfig {
        nodes: 12,
        tasks: 1,
        jobs: 20,
        seed,
        faults: Faults::default(),
        reuse: false,
        local_path,
        ..SimConfig::default()
    })
}

/// Messages published for the jobs: everything but the capacity adverts every node sends
/// whether or not jobs run.
fn job_messages(r: &Report) -> u64 {
    r.messages - r.messages_by_kind["advert"]
}

#[test]
fn one_task_jobs_on_the_real_time_path_publish_nothing_and_stay_exact() {
    for seed in 1..=3 {
        let alone = one_task_jobs(seed, true);
        assert!(alone.ok(), "seed {seed}: {:?}", alone.violations);
        assert_eq!(alone.completed_jobs, 20, "seed {seed}");
        assert_eq!(
            job_messages(&alone),
            0,
            "seed {seed}: {:?}",
            alone.messages_by_kind
        );

        // The same jobs on the mesh path: an announcement, a claim and a completion at least.
        let mesh = one_task_jobs(seed, false);
        assert!(mesh.ok(), "seed {seed}: {:?}", mesh.violations);
        assert_eq!(mesh.completed_jobs, 20, "seed {seed}");
        assert!(
            job_messages(&mesh) >= 3 * 20,
            "seed {seed}: {:?}",
            mesh.messages_by_kind
        );
        // Members do not pulse on joining: a job that ends within a pulse period sends
        // none (before, every member pulsed each job it joined: 226-230 here).
        assert!(
            mesh.messages_by_kind["pulse"] < 20,
            "seed {seed}: {:?}",
            mesh.messages_by_kind
        );
    }
}

#[test]
fn a_job_that_looks_up_earlier_results_takes_the_mesh_path() {
    // Reuse is on by default.
    let report = run(SimConfig {
        nodes: 12,
        tasks: 1,
        jobs: 5,
        seed: 1,
        faults: Faults::default(),
        ..SimConfig::default()
    });
    assert!(report.ok(), "{:?}", report.violations);
    assert!(
        report.messages_by_kind["announce"] >= 5,
        "{:?}",
        report.messages_by_kind
    );
}

/// One job of 100,000 map tasks on a 12-node mesh, no faults, tasks that take no time: tiny
/// (a sum of squares, one number a task, claimed in runs) or over file chunks (one by one).
fn hundred_thousand_tasks(seed: u64, tiny: bool) -> Report {
    run(SimConfig {
        nodes: 12,
        tasks: 100_000,
        jobs: 1,
        seed,
        faults: Faults::default(),
        task_ms: 0,
        tiny,
        ..SimConfig::default()
    })
}

#[test]
fn tiny_tasks_claimed_in_runs_move_a_fraction_of_the_bytes_and_stay_exact() {
    let runs = hundred_thousand_tasks(1, true);
    assert!(runs.ok(), "{:?}", runs.violations);
    assert_eq!(runs.completed_jobs, 1);
    // The same tree of tasks claimed one by one: each claim and completion is a batch entry.
    let one_by_one = hundred_thousand_tasks(1, false);
    assert!(one_by_one.ok(), "{:?}", one_by_one.violations);
    assert_eq!(runs.tree_tasks, one_by_one.tree_tasks);
    assert!(
        runs.bytes * 100 < one_by_one.bytes,
        "{} bytes in runs, {} one by one",
        runs.bytes,
        one_by_one.bytes
    );
    assert!(job_messages(&runs) < job_messages(&one_by_one));
}
