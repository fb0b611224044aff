//! A result reported lost: who takes the report as news.

mod support;

use shoal_protocol::wire::{Batch, Envelope, Lost, Message};
use shoal_protocol::*;
use support::{node, submitter};

fn send(n: &mut Node, now: Millis, seq: u64, body: Message) {
    let bytes = Envelope { seq, body }.encode();
    n.handle_message(now, submitter(), &bytes).unwrap();
}

/// A node that joins a job of 8 map tasks whose first four the submitter's summary says are
/// done (as after a restart: this node knows they are done, not who holds them), then hears
/// that task 0's result is lost at `holder`. Returns how many tasks it counts done.
fn done_after_loss(holder: NodeId) -> u32 {
    let mut n = node();
    n.handle_timeout(0);
    let spec = JobSpec {
        op: Operator::WordCount,
        input: Input::Chunks {
            manifest: BlobHash([1; 32]),
            chunks: 8,
            bytes: 800,
        },
        fanin: 8,
        trust: Trust {
            replicas: 1,
            verify_ppm: 0,
        },
        sched: Default::default(),
        keep: Default::default(),
        reuse: false,
    };
    let job = support::announce(&mut n, spec, vec![(0, 4)], 1);
    assert_eq!(n.job_status(&job).unwrap().done, 4);
    let lost = Batch {
        job,
        lost: vec![Lost { task: 0, holder }],
        ..Batch::default()
    };
    send(&mut n, 10, 2, Message::Batch(lost));
    n.job_status(&job).unwrap().done
}

#[test]
fn a_node_named_as_the_holder_of_a_result_it_knows_only_as_done_redoes_it() {
    // Named: it has no copy it knows of, so the task is back in play.
    assert_eq!(done_after_loss(NodeId([9; 32])), 3);
    // Another node named: this one does not know who held it, and changes nothing.
    assert_eq!(done_after_loss(NodeId::from_identity_bytes(b"someone")), 4);
}
