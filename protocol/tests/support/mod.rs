//! Shared by the protocol's integration tests: a node, and a job announced to it.

use shoal_protocol::wire::{Announce, Batch, Envelope, Member, Message};
use shoal_protocol::*;

/// A node of two slots.
pub(crate) fn node() -> Node {
    let capacity = Capacity {
        slots: 2,
        cores: 2,
        mem_mb: 1024,
    };
    Node::new(NodeId([9; 32]), capacity, Config::default(), 0)
}

pub(crate) fn submitter() -> NodeId {
    NodeId::from_identity_bytes(b"submitter")
}

/// A word count of fan-in 4 over `input`.
pub(crate) fn spec(input: Input, replicas: u8, reuse: bool) -> JobSpec {
    JobSpec {
        op: Operator::WordCount,
        input,
        fanin: 4,
        trust: Trust {
            replicas,
            verify_ppm: 0,
        },
        sched: Default::default(),
        keep: Default::default(),
        reuse,
    }
}

/// A sum of squares over `0..end` in `tasks` tasks (a generated input).
#[allow(dead_code)] // Each test file includes this module; not every one sums squares.
pub(crate) fn sumsq(end: u64, tasks: u32, reuse: bool) -> JobSpec {
    let range = Input::Range {
        start: 0,
        end,
        tasks,
    };
    JobSpec {
        op: Operator::SumSq,
        ..spec(range, 1, reuse)
    }
}

/// A submission's files, cut into `chunks` chunks.
pub(crate) fn files(chunks: u32) -> Input {
    Input::Chunks {
        manifest: BlobHash([1; 32]),
        chunks,
        bytes: 100 * u64::from(chunks),
    }
}

/// Delivers `body` from the submitter to `n` at `now`.
pub(crate) fn from_submitter(n: &mut Node, now: Millis, seq: u64, body: Message) {
    let bytes = Envelope { seq, body }.encode();
    n.handle_message(now, submitter(), &bytes).unwrap();
}

/// Announces `spec` to `n` from the submitter at 10, with `n` and the submitter its members
/// and the task ranges `done` already done; returns the job id.
pub(crate) fn announce(n: &mut Node, spec: JobSpec, done: Vec<(u32, u32)>, seq: u64) -> JobId {
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
    let job = spec.id();
    let announce = Announce {
        job,
        submitter: submitter(),
        spec,
        epoch: 1,
        members,
        done,
        own_topic: false,
    };
    from_submitter(n, 10, seq, Message::Announce(announce));
    job
}

/// The batches for `job` that `n` has queued to send (its other messages are dropped).
#[allow(dead_code)] // Each test file includes this module; not every one reads batches.
pub(crate) fn sent_batches(n: &mut Node, job: JobId) -> Vec<Batch> {
    std::iter::from_fn(|| n.poll_transmit())
        .filter_map(|(_, bytes)| match Envelope::decode(&bytes).ok()?.body {
            Message::Batch(b) if b.job == job => Some(b),
            _ => None,
        })
        .collect()
}
