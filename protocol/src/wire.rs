//! Control messages exchanged over gossip, and the checks every received message must pass.
//!
//! All control traffic is broadcast. Each envelope carries the sender's sequence number, which
//! makes two otherwise identical messages distinct (gossip layers deduplicate by content).

use crate::ids::{BlobHash, JobId};
use crate::job::JobSpec;
use serde::{Deserialize, Serialize};

/// Largest inline result carried inside a completion.
pub const INLINE_RESULT_MAX: usize = 1024;
/// Most jobs a node lists as active in its advert.
pub const MAX_ACTIVE_JOBS: usize = 64;
/// Most done-task ranges an announcement summarises.
pub const MAX_DONE_RANGES: usize = 4096;
/// Most task entries (claims, completions, failures, losses together) in one batch.
pub const MAX_BATCH_ENTRIES: usize = 100_000;
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
    /// Periodic capacity advert: keeps the sender in every view and renews its claims.
    Advert(Advert),
    /// A job, announced by its submitter (again periodically, for late joiners).
    Announce(Announce),
    /// Claims, completions, failures and lost results, batched.
    Batch(Batch),
    /// The submitter has the job's final result (or gave up): peers drop the job.
    Finished(Finished),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Advert {
    pub slots_total: u32,
    pub slots_free: u32,
    pub cores: u32,
    pub mem_mb: u64,
    /// One-minute load average times 1000.
    pub load_milli: u32,
    /// Jobs in which the sender holds claims: renews all its claims in them.
    pub active_jobs: Vec<JobId>,
    /// The sender's advert period: receivers expire it after a few of these.
    pub interval_ms: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Announce {
    pub spec: JobSpec,
    /// Distinguishes a resubmission of the same job from stale copies of a finished one.
    pub epoch: u64,
    /// Task ranges `[a, b)` already done, so a late joiner does not redo them.
    pub done: Vec<(u32, u32)>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    pub claims: Vec<JobTasks>,
    pub done: Vec<JobResults>,
    pub failed: Vec<Failure>,
    pub lost: Vec<Lost>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobTasks {
    pub job: JobId,
    pub tasks: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobResults {
    pub job: JobId,
    pub results: Vec<(u32, ResultRef)>,
}

/// Where a task's result can be had: inline, or as a blob held by the completion's sender.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResultRef {
    Inline(#[serde(with = "crate::codec::bytes")] Vec<u8>),
    Blob { hash: BlobHash, len: u64 },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    pub job: JobId,
    pub task: u32,
    pub reason: String,
    /// The input could not be fetched: retry later, do not count an attempt.
    pub transient: bool,
}

/// The result of `task` could not be fetched from `holder`: it must be computed again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lost {
    pub job: JobId,
    pub task: u32,
    pub holder: crate::ids::NodeId,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finished {
    pub job: JobId,
    pub epoch: u64,
    pub ok: bool,
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
            Message::Advert(a) => limit("active jobs", a.active_jobs.len(), MAX_ACTIVE_JOBS),
            Message::Announce(a) => {
                a.spec.validate()?;
                limit("done ranges", a.done.len(), MAX_DONE_RANGES)?;
                for &(lo, hi) in &a.done {
                    if lo >= hi {
                        return Err(InvalidMessage::BadRange(lo, hi));
                    }
                }
                Ok(())
            }
            Message::Batch(b) => {
                let entries = b.claims.iter().map(|c| c.tasks.len()).sum::<usize>()
                    + b.done.iter().map(|d| d.results.len()).sum::<usize>()
                    + b.failed.len()
                    + b.lost.len();
                limit("batch entries", entries, MAX_BATCH_ENTRIES)?;
                for f in &b.failed {
                    limit("failure reason bytes", f.reason.len(), MAX_REASON_BYTES)?;
                }
                for d in &b.done {
                    for (_, r) in &d.results {
                        if let ResultRef::Inline(bytes) = r {
                            limit("inline result bytes", bytes.len(), INLINE_RESULT_MAX)?;
                        }
                    }
                }
                Ok(())
            }
            Message::Finished(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
                done: vec![JobResults {
                    job: JobId([0; 32]),
                    results: vec![(0, ResultRef::Inline(vec![0; INLINE_RESULT_MAX + 1]))],
                }],
                ..Batch::default()
            }),
        };
        assert!(matches!(
            Envelope::decode(&env.encode()),
            Err(InvalidMessage::OverLimit { .. })
        ));
    }
}
