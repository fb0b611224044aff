//! A result reported lost: who takes the report as news.

use shoal_protocol::wire::{Announce, Batch, Envelope, Lost, Member, Message};
use shoal_protocol::*;

fn submitter() -> NodeId {
    NodeId::from_identity_bytes(b"submitter")
}

fn send(n: &mut Node, now: Millis, seq: u64, body: Message) {
    let bytes = Envelope { seq, body }.encode();
    n.handle_message(now, submitter(), &bytes).unwrap();
}

/// A node that joins a job of 8 map tasks whose first four the submitter's summary says are
/// done (as after a restart: this node knows they are done, not who holds them), then hears
/// that task 0's result is lost at `holder`. Returns how many tasks it counts done.
fn done_after_loss(holder: NodeId) -> u32 {
    let capacity = Capacity {
        slots: 2,
        cores: 2,
        mem_mb: 1024,
    };
    let mut n = Node::new(NodeId([9; 32]), capacity, Config::default(), 0);
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
    let job = spec.id();
    let mut members = vec![
        Member {
            id: n.id(),
            weight: 2,
        },
        Member {
            id: submitter(),
            weight: 2,
        },
    ];
    members.sort_unstable_by_key(|m| m.id);
    let announce = Announce {
        job,
        submitter: submitter(),
        spec,
        epoch: 1,
        members,
        done: vec![(0, 4)],
        own_topic: false,
    };
    send(&mut n, 1, 1, Message::Announce(announce));
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
