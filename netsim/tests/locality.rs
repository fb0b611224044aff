//! Reduces placed near their inputs, in the simulator: in jobs over shared datasets, the
//! partial results of a part's maps are combined on the part's holder rather than fetched by
//! whichever member ranks first for the reduce.

use shoal_netsim::{Faults, Report, SimConfig, run};

/// Four jobs of 64 map tasks over datasets of 2 to 8 parts on a 16-node mesh, no faults.
fn dataset_jobs(seed: u64, near_inputs: bool) -> Report {
    run(SimConfig {
        nodes: 16,
        tasks: 64,
        jobs: 4,
        seed,
        faults: Faults::default(),
        datasets: true,
        reuse: false,
        reduce_near_inputs: near_inputs,
        ..SimConfig::default()
    })
}

#[test]
fn reduces_near_their_inputs_fetch_fewer_partial_results_and_stay_exact() {
    let mut seeds = 0;
    for seed in 1..=12 {
        let near = dataset_jobs(seed, true);
        assert!(near.ok(), "seed {seed}: {:?}", near.violations);
        assert_eq!(near.completed_jobs, 4, "seed {seed}");
        if near.reduce_inputs_local + near.reduce_inputs_fetched == 0 {
            // This seed's results were small enough to travel inline: nothing to fetch.
            continue;
        }
        seeds += 1;
        let by_rank = dataset_jobs(seed, false);
        assert!(by_rank.ok(), "seed {seed}: {:?}", by_rank.violations);
        assert_eq!(by_rank.completed_jobs, 4, "seed {seed}");
        assert!(
            near.reduce_inputs_fetched * 2 < by_rank.reduce_inputs_fetched,
            "seed {seed}: {} fetched near the inputs, {} by rank alone",
            near.reduce_inputs_fetched,
            by_rank.reduce_inputs_fetched
        );
    }
    assert!(seeds >= 3, "only {seeds} seeds kept results as blobs");
}
