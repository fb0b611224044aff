//! What each node sends and receives stays bounded as the mesh grows: checked on a mesh much
//! larger than a job's members.

use shoal_netsim::{Faults, SimConfig, run};

fn large_mesh() -> shoal_netsim::Report {
    run(SimConfig {
        nodes: 2_000,
        tasks: 2_000,
        seed: 11,
        faults: Faults::default(),
        // Let the views settle, so that what is measured is the mesh's upkeep, not its boot.
        settle_ms: 15_000,
        ..SimConfig::default()
    })
}

#[test]
fn in_a_large_mesh_a_job_s_traffic_reaches_its_members_only_and_views_stay_bounded() {
    let report = large_mesh();
    assert!(report.ok(), "{:?}", report.violations);
    assert_eq!(report.completed_jobs, 1);
    // Each batch goes to the job's members (at most 256, plus copies in flight to members
    // that just left), not to the 2000 nodes of the mesh.
    let fan_out =
        report.deliveries_by_kind["batch"] as f64 / report.messages_by_kind["batch"] as f64;
    assert!(fan_out <= 260.0, "a batch reached {fan_out:.0} nodes");
    // Every node hears about 30 adverts a second, not one from each of 2000 peers.
    assert!(
        report.adverts_per_node_s < 45.0,
        "{:.1} adverts per node per second",
        report.adverts_per_node_s
    );
}
