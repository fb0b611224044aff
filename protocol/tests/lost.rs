//! A result reported lost: who takes the report as news.

mod support;

use shoal_protocol::wire::{Batch, Lost, Message};
use shoal_protocol::*;
use support::{files, from_submitter, node, spec};

/// A node that joins a job of 8 map tasks whose first four the submitter's summary says are
/// done (as after a restart: this node knows they are done, not who holds them), then hears
/// that task 0's result is lost at `holder`. Returns how many tasks it counts done.
fn done_after_loss(holder: NodeId) -> u32 {
    let mut n = node();
    n.handle_timeout(0);
    let job = support::announce(&mut n, spec(files(8), 1, false), vec![(0, 4)], 1);
    assert_eq!(n.job_status(&job).unwrap().done, 4);
    let lost = Batch {
        job,
        lost: vec![Lost { task: 0, holder }],
        ..Batch::default()
    };
    from_submitter(&mut n, 10, 2, Message::Batch(lost));
    n.job_status(&job).unwrap().done
}

#[test]
fn a_node_named_as_the_holder_of_a_result_it_knows_only_as_done_redoes_it() {
    // Named: it has no copy it knows of, so the task is back in play.
    assert_eq!(done_after_loss(NodeId([9; 32])), 3);
    // Another node named: this one does not know who held it, and changes nothing.
    assert_eq!(done_after_loss(NodeId::from_identity_bytes(b"someone")), 4);
}
