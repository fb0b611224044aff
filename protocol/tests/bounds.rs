//! Every table a peer can make grow has a bound: flooded past it, it stays there, and the
//! node keeps working.

use shoal_protocol::view::MAX_PEERS;
use shoal_protocol::wire::{Announce, Envelope, Finished, Member, Message};
use shoal_protocol::*;

fn node() -> Node {
    Node::new(
        NodeId([9; 32]),
        Capacity {
            slots: 1,
            cores: 1,
            mem_mb: 1,
        },
        Config::default(),
        0,
    )
}

fn send(node: &mut Node, now: Millis, from: NodeId, seq: u64, body: Message) {
    let bytes = Envelope { seq, body }.encode();
    node.handle_message(now, from, &bytes).unwrap();
}

fn peer(i: u64) -> NodeId {
    NodeId::from_identity_bytes(&i.to_le_bytes())
}

#[test]
fn ends_of_unknown_jobs_from_a_hundred_thousand_peers_fill_the_tables_only_to_their_bounds() {
    let mut n = node();
    n.handle_timeout(0);
    let flood = MAX_PEERS as u64 + 1_000;
    for i in 0..flood {
        let end = Finished {
            job: JobId::from_hex(&format!("{i:064x}")).unwrap(),
            epoch: 1,
            ending: shoal_protocol::durable::Ending::Expired,
        };
        send(&mut n, 10, peer(i), i, Message::Finished(end));
    }
    let sizes = n.table_sizes();
    assert_eq!(sizes.peers_interned, MAX_PEERS);
    assert_eq!(sizes.finished, 1024);
    assert_eq!(sizes.jobs, 0);
}

#[test]
fn announcements_of_more_jobs_than_a_node_tracks_are_refused_and_counted() {
    let mut n = node();
    n.handle_timeout(0);
    let submitter = peer(1);
    let me = n.id();
    let max = Config::default().max_jobs;
    for j in 0..max as u64 + 50 {
        let spec = JobSpec {
            op: Operator::SumSq,
            input: Input::Range {
                start: 0,
                end: 1_000 + j,
                tasks: 1,
            },
            fanin: 4,
            trust: Default::default(),
            sched: Default::default(),
            keep: Default::default(),
            reuse: true,
        };
        let mut members = vec![
            Member { id: me, weight: 1 },
            Member {
                id: submitter,
                weight: 1,
            },
        ];
        members.sort_unstable_by_key(|m| m.id);
        let announce = Announce {
            job: spec.id(),
            submitter,
            spec,
            epoch: 1,
            members,
            done: Vec::new(),
            own_topic: false,
        };
        send(&mut n, 10, submitter, j, Message::Announce(announce));
        while n.poll_effect().is_some() {}
    }
    assert_eq!(n.table_sizes().jobs, max);
    assert_eq!(n.stats().jobs_refused, 50);
}

#[test]
fn unheard_messages_are_kept_up_to_their_bound_and_expire() {
    let mut n = node();
    let topic = Topic::Job(JobId([3; 32]));
    for i in 0..2_000u64 {
        n.handle_unheard(10, topic, i.to_le_bytes().to_vec());
    }
    n.handle_unheard(10, Topic::Jobs, vec![1]);
    assert_eq!(n.table_sizes().unheard, node::UNHEARD_MAX);
    while n.poll_transmit().is_some() {}
    // A subscriber arrives: the newest kept messages go out again, in order.
    n.handle_peer_subscribed(20, topic);
    let resent: Vec<Vec<u8>> = std::iter::from_fn(|| n.poll_transmit().map(|(_, b)| b)).collect();
    assert_eq!(resent.len(), node::UNHEARD_MAX);
    assert_eq!(resent[0], (2_000 - node::UNHEARD_MAX as u64).to_le_bytes());
    // Past their time to live they are gone.
    n.handle_unheard(100, topic, vec![7]);
    n.handle_peer_subscribed(100 + Config::default().unheard_ttl_ms + 1, topic);
    assert!(n.poll_transmit().is_none());
    assert_eq!(n.table_sizes().unheard, 0);
}
