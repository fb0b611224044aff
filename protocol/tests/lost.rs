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

#[test]
fn a_holder_that_lost_one_needed_result_has_its_other_needed_results_redone() {
    let mut n = node();
    n.handle_timeout(0);
    // 16 maps of fan-in 4: tasks 0-3 feed reduce 16, 4-7 reduce 17, and so on.
    let job = support::announce(&mut n, spec(files(16), 1, false), Vec::new(), 1);
    let blob = |t: u8| ResultRef::Blob {
        hash: BlobHash([t; 32]),
        len: 4096,
    };
    // The submitter computed and holds maps 0-5 as blobs, map 6 inline (nothing to lose).
    let done = Batch {
        job,
        done: (0..6u32)
            .map(|t| (t, blob(t as u8)))
            .chain([(6, ResultRef::Inline(vec![6; 8].into()))])
            .collect(),
        ..Batch::default()
    };
    from_submitter(&mut n, 10, 2, Message::Batch(done));
    assert_eq!(n.job_status(&job).unwrap().done, 7);
    // Reduce 16 over maps 0-3 is done (it holds their combination): they are no longer needed.
    let reduced = Batch {
        job,
        done: vec![(16, blob(16))],
        ..Batch::default()
    };
    from_submitter(&mut n, 20, 3, Message::Batch(reduced));
    assert_eq!(n.job_status(&job).unwrap().done, 8);
    // Map 4's result is lost at the submitter, named twice in one batch: map 5's blob goes back
    // in play with it, and so does reduce 16's (needed by the reduce above it); maps 0-3, no
    // longer needed, and map 6, inline, stay done.
    let lost = Batch {
        job,
        lost: vec![
            Lost {
                task: 4,
                holder: support::submitter(),
            },
            Lost {
                task: 4,
                holder: support::submitter(),
            },
        ],
        ..Batch::default()
    };
    from_submitter(&mut n, 30, 4, Message::Batch(lost));
    assert_eq!(n.job_status(&job).unwrap().done, 5);
}
