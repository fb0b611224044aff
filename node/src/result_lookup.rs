//! Finding a job's result from any node (`shoal result`, `GET /api/v1/results/{id}`): the
//! outputs this node keeps, then what the protocol knows (asking the mesh when it knows
//! nothing), then the output fetched by hash from a node that keeps it.

use crate::handle::{Handle, JobError, NodeGone};
use shoal_protocol::durable::Ending;
use shoal_protocol::{JobId, NodeId, ResultStatus};
use std::sync::Arc;
use std::time::Duration;

/// How long a node that has not heard of a job waits for the mesh's answer to its query.
pub const QUERY_WAIT: Duration = Duration::from_millis(2_500);
const QUERY_POLL: Duration = Duration::from_millis(100);

/// What a node can say about a job's result.
#[derive(Debug, Clone)]
pub enum ResultLookup {
    /// The output, and the nodes that keep it.
    Done {
        output: Arc<Vec<u8>>,
        holders: Vec<NodeId>,
    },
    Running {
        done: u32,
        total: u32,
        coordinator: NodeId,
    },
    Queued,
    Failed(String),
    Expired,
    /// It finished, but none of the nodes that keep its output could serve it.
    Unreachable {
        holders: Vec<NodeId>,
        error: String,
    },
    Unknown,
}

impl Handle {
    /// Looks up job `job`'s result wherever it is (see the module docs).
    pub async fn lookup_result(&self, job: JobId) -> Result<ResultLookup, NodeGone> {
        if let Some(record) = self.results().record_of(&job) {
            match record.ending {
                Ending::Done { mut holders, .. } => {
                    if let Some(output) = self.results().output(&job) {
                        // The coordinator named the keepers it had heard from when it ended
                        // the job; this node keeps the output too, named or not.
                        if !holders.contains(&self.id()) {
                            holders.push(self.id());
                        }
                        return Ok(ResultLookup::Done { output, holders });
                    }
                }
                Ending::Failed { error } => return Ok(ResultLookup::Failed(error)),
                Ending::Expired => return Ok(ResultLookup::Expired),
            }
        }
        // A job submitted here ends here too, kept or not.
        match self.outcome(job).await? {
            Some(Ok(output)) => {
                return Ok(ResultLookup::Done {
                    output,
                    holders: vec![self.id()],
                });
            }
            Some(Err(JobError::Failed(error))) => return Ok(ResultLookup::Failed(error)),
            _ => {}
        }
        let mut status = self.result_status(job, false).await?;
        if status == ResultStatus::Unknown {
            status = self.result_status(job, true).await?;
            let deadline = tokio::time::Instant::now() + QUERY_WAIT;
            while status == ResultStatus::Unknown && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(QUERY_POLL).await;
                status = self.result_status(job, false).await?;
            }
        }
        Ok(match status {
            ResultStatus::Unknown => ResultLookup::Unknown,
            ResultStatus::Queued => ResultLookup::Queued,
            ResultStatus::Running {
                done,
                total,
                coordinator,
            } => ResultLookup::Running {
                done,
                total,
                coordinator,
            },
            ResultStatus::Failed { error } => ResultLookup::Failed(error),
            ResultStatus::Expired => ResultLookup::Expired,
            ResultStatus::Done { output, holders } => {
                match self.fetch_from_holders(&holders, output.hash).await {
                    Ok(bytes) => ResultLookup::Done {
                        output: bytes,
                        holders,
                    },
                    Err(e) => ResultLookup::Unreachable {
                        holders,
                        error: e.to_string(),
                    },
                }
            }
        })
    }
}
