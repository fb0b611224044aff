//! Control messages exchanged over gossip, and the checks every received message must pass.
//!
//! Each message goes to one [`crate::topic::Topic`]: adverts to the sender's advert shard,
//! announcements to every node, and everything about one job (claims, completions, failures,
//! pulses, the end of the job) to that job's members only. Each envelope carries the sender's
//! sequence number, which makes two otherwise identical messages distinct (gossip layers
//! deduplicate by content).

use crate::ids::{BlobHash, JobId, NodeId};
use crate::job::JobSpec;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Largest inline result carried inside a completion.
pub const INLINE_RESULT_MAX: usize = 1024;
/// Most members one announcement names (a job's members never exceed this).
pub const MAX_MEMBERS: usize = 512;
/// Most done-task ranges an announcement summarises.
pub const MAX_DONE_RANGES: usize = 4096;
/// Most task entries (claims, completions, failures, losses together) in one batch.
pub const MAX_BATCH_ENTRIES: usize = 100_000;
/// Most running tasks one pulse lists.
pub const MAX_PULSE_TASKS: usize = 1024;
/// Longest failure reason carried over the network.
pub const MAX_REASON_BYTES: usize = 1024;

/// One gossip message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub seq: u64,
    pub body: Message,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Message {
    /// Periodic capacity advert, in the sender's advert shard: keeps it in its peers' views.
    Advert(Advert),
    /// A job and its members, from the submitter to every node (again periodically, for
    /// members added later and for members that restarted).
    Announce(Announce),
    /// Claims, completions, failures and lost results of one job, batched.
    Batch(Batch),
    /// "I am still working on this job": keeps the sender live among the job's members and
    /// renews its claims on the tasks it is running.
    Pulse(Pulse),
    /// The submitter has the job's final result (or gave up): members drop the job.
    Finished(Finished),
    /// "I will not work on this job": a member that does not run jobs from its submitter
    /// (`--submitters`) says so once, so the submitter stops counting on it.
    Decline(Decline),
    /// "How did this job end?": on the jobs topic, from a node asked for a result it has not
    /// heard of; the nodes that keep its output (or its failure) answer with its `Finished`.
    Query(Query),
}

/// The kinds of message, by [`Message::kind`]: for counters and reports.
pub const MESSAGE_KINDS: [&str; 7] = [
    "advert", "announce", "batch", "pulse", "finished", "decline", "query",
];

impl Message {
    /// The index of this message's kind in [`MESSAGE_KINDS`].
    pub fn kind(&self) -> usize {
        match self {
            Message::Advert(_) => 0,
            Message::Announce(_) => 1,
            Message::Batch(_) => 2,
            Message::Pulse(_) => 3,
            Message::Finished(_) => 4,
            Message::Decline(_) => 5,
            Message::Query(_) => 6,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Advert {
    pub slots_total: u32,
    pub slots_free: u32,
    pub cores: u32,
    pub mem_mb: u64,
    /// One-minute load average times 1000.
    pub load_milli: u32,
    /// The sender's advert period: receivers expire it after a few of these.
    pub interval_ms: u32,
    /// The sender's first advert since it started: not part of its periodic stream, so a
    /// receiver estimating the mesh's size from the rate of adverts leaves it out.
    pub first: bool,
    /// Labels the sender's operator gave it (`shoal node --tag`), sorted: what jobs' tag
    /// needs are matched against.
    pub tags: Vec<String>,
    /// The parts of datasets the sender shares (`shoal node --share`): jobs over a dataset
    /// read each part where it is held ([`crate::dataset`]).
    pub shares: Vec<crate::dataset::Share>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Announce {
    /// Must equal `spec.id()` (checked on receipt).
    pub job: JobId,
    /// Who submitted it. The sender coordinates it: the submitter, or a successor that took
    /// over when the submitter went silent.
    pub submitter: NodeId,
    pub spec: JobSpec,
    /// Distinguishes a resubmission of the same job from stale copies of a finished one.
    pub epoch: u64,
    /// The nodes that work on the job (and the submitter), sorted by id, each with the slots
    /// it offers (0: it takes no tasks). Only members track the job.
    pub members: Vec<Member>,
    /// Task ranges `[a, b)` already done, so a member that joins late does not redo them.
    pub done: Vec<(u32, u32)>,
    /// Whether the job's traffic goes on its own topic. It does when the mesh has nodes that
    /// are not members; when every node is one (a small mesh), the jobs topic, which everyone
    /// has long joined, carries it: a new topic would cost each job a round of subscriptions,
    /// and messages sent before they arrive.
    pub own_topic: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub id: NodeId,
    pub weight: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    pub job: JobId,
    pub claims: Vec<u32>,
    pub done: Vec<(u32, ResultRef)>,
    pub failed: Vec<Failure>,
    pub lost: Vec<Lost>,
    /// From the submitter of a spot-checked job only: for tasks whose first result is in,
    /// whether a second member must compute them (`true`) or the first result stands.
    pub checks: Vec<(u32, bool)>,
    /// Tasks the sender claimed and gives back unstarted (to run a higher-priority job's
    /// tasks first): they are open again.
    pub released: Vec<u32>,
    /// Pieces of the job's input (see [`crate::durable::pieces`]) the sender now holds and
    /// serves for the job's life.
    pub held: Vec<u32>,
    /// The sender keeps the job's final output (see [`crate::durable`]).
    pub output: Option<crate::durable::OutputRef>,
    /// Tasks of `done` whose result the sender knew from an earlier job rather than computed
    /// (see [`crate::reuse`]): counted, and otherwise taken like any result of the sender's.
    pub reused: Vec<u32>,
    /// The sender has looked up the results it kept for this job's map tasks (those it found
    /// are in this batch or an earlier one): members hold off claiming until every live member
    /// has said so (see [`crate::reuse::LOOKUP_MAX_MS`]).
    pub looked_up: bool,
    /// Input bytes the sender fetched over the network for this job since its last batch
    /// (summed into the job's `bytes_moved`).
    pub moved: u64,
}

impl Batch {
    pub fn entries(&self) -> usize {
        usize::from(self.looked_up)
            + usize::from(self.moved > 0)
            + self.released.len()
            + self.reused.len()
            + self.held.len()
            + usize::from(self.output.is_some())
            + self.claims.len()
            + self.done.len()
            + self.failed.len()
            + self.lost.len()
            + self.checks.len()
    }
}

/// Where a task's result can be had: inline, or as a blob held by the completion's sender.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResultRef {
    /// Shared, because every member keeps a copy of every inline result it hears of.
    Inline(#[serde(with = "crate::codec::shared_bytes")] Arc<[u8]>),
    Blob {
        hash: BlobHash,
        len: u64,
    },
}

impl ResultRef {
    /// Approximate encoded size, for bounding batches.
    pub fn wire_len(&self) -> usize {
        match self {
            ResultRef::Inline(bytes) => bytes.len() + 3,
            ResultRef::Blob { .. } => 42,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    pub task: u32,
    pub reason: String,
    /// The input could not be fetched: retry later, do not count an attempt.
    pub transient: bool,
}

/// The result of `task` could not be fetched from `holder`: it must be computed again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lost {
    pub task: u32,
    pub holder: NodeId,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pulse {
    pub job: JobId,
    /// Tasks of the job the sender is running now: their claims stay valid however long
    /// they take.
    pub running: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// The end of a job, from its coordinator (on the job's topic and on the jobs topic, so that
/// every node can say how it ended), or from a keeper of its output answering a [`Query`].
pub struct Finished {
    pub job: JobId,
    pub epoch: u64,
    pub ending: crate::durable::Ending,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Query {
    pub job: JobId,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decline {
    pub job: JobId,
    pub epoch: u64,
}

/// Why a received message was dropped.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum InvalidMessage {
    #[error("undecodable: {0}")]
    Codec(#[from] crate::codec::CodecError),
    #[error("{what}: {got} exceeds the limit of {limit}")]
    OverLimit {
        what: &'static str,
        got: usize,
        limit: usize,
    },
    #[error("invalid job spec: {0}")]
    Spec(#[from] crate::job::SpecError),
    #[error("announcement names job {named} but its spec hashes to {actual}")]
    WrongJobId { named: JobId, actual: JobId },
    #[error("announcement members are not sorted by id without repeats")]
    UnsortedMembers,
    #[error("done range {0}..{1} is empty or reversed")]
    BadRange(u32, u32),
}

fn limit(what: &'static str, got: usize, limit: usize) -> Result<(), InvalidMessage> {
    if got > limit {
        Err(InvalidMessage::OverLimit { what, got, limit })
    } else {
        Ok(())
    }
}

impl Envelope {
    /// Decodes and checks a message received from the network.
    pub fn decode(bytes: &[u8]) -> Result<Self, InvalidMessage> {
        let env: Envelope = crate::codec::decode_message(bytes)?;
        env.validate()?;
        Ok(env)
    }

    /// Encodes for sending.
    pub fn encode(&self) -> Vec<u8> {
        crate::codec::encode_message(self)
    }

    /// Structural limits. Task indices are checked against each job's size where they are used.
    pub fn validate(&self) -> Result<(), InvalidMessage> {
        match &self.body {
            Message::Advert(a) => {
                crate::schedule::check_tags(&a.tags)
                    .map_err(|e| InvalidMessage::Spec(crate::job::SpecError::Needs(e)))?;
                crate::dataset::check_shares(&a.shares)
                    .map_err(|e| InvalidMessage::Spec(crate::job::SpecError::Dataset(e)))
            }
            Message::Finished(f) => match &f.ending {
                crate::durable::Ending::Done { holders, .. } => {
                    limit("holders", holders.len(), crate::durable::MAX_HOLDERS)
                }
                crate::durable::Ending::Failed { error } => {
                    limit("failure reason bytes", error.len(), MAX_REASON_BYTES)
                }
                crate::durable::Ending::Expired => Ok(()),
            },
            Message::Decline(_) | Message::Query(_) => Ok(()),
            Message::Announce(a) => {
                a.spec.validate()?;
                let actual = a.spec.id();
                if actual != a.job {
                    return Err(InvalidMessage::WrongJobId {
                        named: a.job,
                        actual,
                    });
                }
                limit("members", a.members.len(), MAX_MEMBERS)?;
                if a.members.windows(2).any(|w| w[0].id >= w[1].id) {
                    return Err(InvalidMessage::UnsortedMembers);
                }
                limit("done ranges", a.done.len(), MAX_DONE_RANGES)?;
                for &(lo, hi) in &a.done {
                    if lo >= hi {
                        return Err(InvalidMessage::BadRange(lo, hi));
                    }
                }
                Ok(())
            }
            Message::Batch(b) => {
                limit("batch entries", b.entries(), MAX_BATCH_ENTRIES)?;
                for f in &b.failed {
                    limit("failure reason bytes", f.reason.len(), MAX_REASON_BYTES)?;
                }
                for (_, r) in &b.done {
                    if let ResultRef::Inline(bytes) = r {
                        limit("inline result bytes", bytes.len(), INLINE_RESULT_MAX)?;
                    }
                }
                Ok(())
            }
            Message::Pulse(p) => limit("pulse tasks", p.running.len(), MAX_PULSE_TASKS),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{Input, Operator};

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bytes in [&b""[..], b"\xff\xff\xff\xff", b"\x00\x09", &[3u8; 100]] {
            assert!(Envelope::decode(bytes).is_err());
        }
    }

    #[test]
    fn oversized_inline_results_are_refused() {
        let env = Envelope {
            seq: 1,
            body: Message::Batch(Batch {
                job: JobId([0; 32]),
                done: vec![(0, ResultRef::Inline(vec![0; INLINE_RESULT_MAX + 1].into()))],
                ..Batch::default()
            }),
        };
        assert!(matches!(
            Envelope::decode(&env.encode()),
            Err(InvalidMessage::OverLimit { .. })
        ));
    }

    fn announce(job: JobId, members: Vec<Member>) -> Envelope {
        Envelope {
            seq: 1,
            body: Message::Announce(Announce {
                job,
                submitter: NodeId([9; 32]),
                spec: JobSpec {
                    op: Operator::SumSq,
                    input: Input::Range {
                        start: 0,
                        end: 10,
                        tasks: 2,
                    },
                    fanin: 2,
                    trust: Default::default(),
                    sched: Default::default(),
                    keep: Default::default(),
                    reuse: true,
                },
                epoch: 1,
                members,
                done: Vec::new(),
                own_topic: true,
            }),
        }
    }

    #[test]
    fn announcements_must_name_their_own_job_and_list_members_in_order() {
        let Message::Announce(a) = announce(JobId([0; 32]), Vec::new()).body else {
            unreachable!()
        };
        let job = a.spec.id();
        assert!(matches!(
            Envelope::decode(&announce(JobId([0; 32]), Vec::new()).encode()),
            Err(InvalidMessage::WrongJobId { .. })
        ));
        let m = |b: u8| Member {
            id: NodeId([b; 32]),
            weight: 1,
        };
        assert!(Envelope::decode(&announce(job, vec![m(1), m(2)]).encode()).is_ok());
        assert_eq!(
            Envelope::decode(&announce(job, vec![m(2), m(1)]).encode()),
            Err(InvalidMessage::UnsortedMembers)
        );
        assert_eq!(
            Envelope::decode(&announce(job, vec![m(1), m(1)]).encode()),
            Err(InvalidMessage::UnsortedMembers)
        );
    }
}
