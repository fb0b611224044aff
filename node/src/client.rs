//! A client for a node's HTTP API ([`crate::api`], docs/api.md): what `shoal submit`,
//! `shoal peers` and `shoal jobs` use, and what Rust programs can use to drive a node.

use crate::api::jobs::{Accepted, Done, Failed, JobDetailRow, Outcome, Progress};
use crate::api::node::NodeRow;
use crate::api::token::ApiToken;
use crate::cli::rows::{JobRow, PeerRow};
use crate::job_request::JobRequest;
use futures::StreamExt;
use std::net::SocketAddr;

/// Largest result accepted (a word count result can be large).
const MAX_RESPONSE_BYTES: usize = 512 << 20;
/// Largest single server-sent event accepted.
const MAX_EVENT_BYTES: usize = 4 << 20;

/// Why a call to the node failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing answers at the address: start a node, or point at the right one.
    #[error(
        "no shoal node answers at {addr} ({source}); start one with `shoal node`, or use `shoal submit --join`"
    )]
    Connect {
        addr: SocketAddr,
        source: reqwest::Error,
    },
    /// The node refused the token (401): use the token of that node's data directory.
    #[error("the node refused the request: {0}")]
    Unauthorized(String),
    /// The node refused the request as it is (4xx): fix it; nothing was submitted.
    #[error("{0}")]
    Rejected(String),
    /// The node cannot take the request now (503): try again later.
    #[error("{0}")]
    Unavailable(String),
    /// The job ran and failed.
    #[error("job {job} failed: {error}")]
    Failed { job: String, error: String },
    /// The connection broke, or the node answered something this client does not understand.
    #[error("the node's answer could not be read: {0}")]
    Protocol(String),
}

/// The end of a successful job.
#[derive(Debug, Clone)]
pub struct Finished {
    pub job: JobRow,
    /// The job's output, byte for byte.
    pub output: Vec<u8>,
    pub elapsed_ms: u64,
    /// Special files in the input that were passed over.
    pub skipped: Vec<String>,
}

impl Finished {
    /// The output as JSON, when it is JSON (every built-in job's output is).
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.output).ok()
    }
}

/// What a submission hears before the job ends.
#[derive(Debug, Clone)]
// One value at a time, read from a stream and handed on at once: boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Update {
    Accepted(Accepted),
    Progress(Progress),
}

/// A handle on one node's API.
#[derive(Debug, Clone)]
pub struct Client {
    addr: SocketAddr,
    base: String,
    token: ApiToken,
    http: reqwest::Client,
}

impl Client {
    pub fn new(addr: SocketAddr, token: ApiToken) -> Self {
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .no_proxy()
            .build()
            .expect("a client without TLS or proxies always builds");
        Self {
            addr,
            base: format!("http://{addr}"),
            token,
            http,
        }
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ClientError> {
        let response = request
            .bearer_auth(self.token.as_str())
            .send()
            .await
            .map_err(|source| {
                if source.is_connect() {
                    ClientError::Connect {
                        addr: self.addr,
                        source,
                    }
                } else {
                    ClientError::Protocol(source.to_string())
                }
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or(text);
        Err(match status.as_u16() {
            401 => ClientError::Unauthorized(message),
            503 => ClientError::Unavailable(message),
            _ => ClientError::Rejected(message),
        })
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let response = self
            .send(self.http.get(format!("{}{path}", self.base)))
            .await?;
        response
            .json()
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))
    }

    pub async fn peers(&self) -> Result<Vec<PeerRow>, ClientError> {
        self.get_json("/api/v1/peers").await
    }

    /// How many nodes of the mesh the node sees, itself included: its peers without the
    /// strangers listed for their gossip score.
    pub async fn node_count(&self) -> Result<usize, ClientError> {
        Ok(self.peers().await?.iter().filter(|p| !p.stranger).count())
    }

    pub async fn jobs(&self) -> Result<Vec<JobRow>, ClientError> {
        self.get_json("/api/v1/jobs").await
    }

    pub async fn datasets(&self) -> Result<Vec<crate::api::datasets::DatasetRow>, ClientError> {
        self.get_json("/api/v1/datasets").await
    }

    /// The dashboard's address, with the token (for a browser), at job `job`'s page if given.
    pub fn dashboard_url(&self, job: Option<&str>) -> String {
        let page = job.map(|j| format!("#/jobs/{j}")).unwrap_or_default();
        format!("{}/?token={}{page}", self.base, self.token.as_str())
    }

    /// The node's own figures.
    pub async fn node(&self) -> Result<NodeRow, ClientError> {
        self.get_json("/api/v1/node").await
    }

    /// One job in detail.
    pub async fn job(&self, id: &str) -> Result<JobDetailRow, ClientError> {
        self.get_json(&format!("/api/v1/jobs/{id}")).await
    }

    /// A finished job's output bytes.
    pub async fn result(&self, id: &str) -> Result<Vec<u8>, ClientError> {
        let url = format!("{}/api/v1/jobs/{id}/result", self.base);
        let mut response = self.send(self.http.get(url)).await?;
        let mut out = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))?
        {
            if out.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(ClientError::Protocol("the result is too large".into()));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// What the node can say about a job's result, from anywhere in the mesh.
    pub async fn lookup(&self, id: &str) -> Result<crate::api::results::ResultAnswer, ClientError> {
        self.get_json(&format!("/api/v1/results/{id}")).await
    }

    /// Submits a job and waits for its result in one request (no progress on the way).
    pub async fn run(&self, request: JobRequest) -> Result<Finished, ClientError> {
        let url = format!("{}/api/v1/jobs?wait=true", self.base);
        let outcome: Outcome = self
            .send(self.http.post(url).json(&request))
            .await?
            .json()
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        if let Some(error) = outcome.error {
            return Err(ClientError::Failed {
                job: outcome.job.id,
                error,
            });
        }
        use base64::Engine as _;
        let output = base64::engine::general_purpose::STANDARD
            .decode(outcome.output_b64.unwrap_or_default())
            .map_err(|e| ClientError::Protocol(format!("bad output encoding: {e}")))?;
        Ok(Finished {
            job: outcome.job,
            output,
            elapsed_ms: outcome.elapsed_ms,
            skipped: outcome.skipped,
        })
    }

    /// Submits a job and returns as soon as the node accepted it.
    pub async fn start(&self, request: JobRequest) -> Result<Accepted, ClientError> {
        let url = format!("{}/api/v1/jobs", self.base);
        self.send(self.http.post(url).json(&request))
            .await?
            .json()
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// Submits a job and waits for its result, calling `progress` with each update.
    pub async fn submit(
        &self,
        request: JobRequest,
        mut progress: impl FnMut(&Update),
    ) -> Result<Finished, ClientError> {
        let accepted = self.start(request).await?;
        let id = accepted.job.clone();
        let skipped = accepted.skipped.clone();
        progress(&Update::Accepted(accepted));
        let url = format!("{}/api/v1/jobs/{id}/events", self.base);
        let mut events = self.send(self.http.get(url)).await?.bytes_stream();
        let mut buffer: Vec<u8> = Vec::new();
        loop {
            while let Some(end) = find_event_end(&buffer) {
                let block: Vec<u8> = buffer.drain(..end).collect();
                let (name, data) = parse_event(&block);
                match name.as_str() {
                    "progress" => progress(&Update::Progress(decode(&data)?)),
                    "done" => {
                        let done: Done = decode(&data)?;
                        let output = self.result(&id).await?;
                        return Ok(Finished {
                            job: done.job,
                            output,
                            elapsed_ms: done.elapsed_ms,
                            skipped,
                        });
                    }
                    "failed" => {
                        let failed: Failed = decode(&data)?;
                        return Err(ClientError::Failed {
                            job: failed.job,
                            error: failed.error,
                        });
                    }
                    // Keep-alive comments and unknown events.
                    _ => {}
                }
            }
            match events.next().await {
                Some(Ok(chunk)) => {
                    if buffer.len() + chunk.len() > MAX_EVENT_BYTES {
                        return Err(ClientError::Protocol("an event is too large".into()));
                    }
                    buffer.extend_from_slice(&chunk);
                }
                Some(Err(e)) => return Err(ClientError::Protocol(e.to_string())),
                None => {
                    return Err(ClientError::Protocol(
                        "the node ended the event stream before the job ended".into(),
                    ));
                }
            }
        }
    }
}

fn decode<T: serde::de::DeserializeOwned>(data: &str) -> Result<T, ClientError> {
    serde_json::from_str(data).map_err(|e| ClientError::Protocol(format!("bad event: {e}")))
}

/// Where the first complete event in `buffer` ends (just after its blank line).
fn find_event_end(buffer: &[u8]) -> Option<usize> {
    buffer.windows(2).position(|w| w == b"\n\n").map(|i| i + 2)
}

/// The name and data of one event block (`event:` and `data:` lines; data lines joined).
fn parse_event(block: &[u8]) -> (String, String) {
    let text = String::from_utf8_lossy(block);
    let mut name = String::from("message");
    let mut data: Vec<&str> = Vec::new();
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("event:") {
            name = v.trim().to_string();
        } else if let Some(v) = line.strip_prefix("data:") {
            data.push(v.strip_prefix(' ').unwrap_or(v));
        }
    }
    (name, data.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_split_at_blank_lines_and_their_data_joined() {
        let stream =
            b"event: progress\ndata: {\"a\":\ndata: 1}\n\n: keep-alive\n\nevent: done\ndata: x\n\n";
        let first = find_event_end(stream).unwrap();
        assert_eq!(
            parse_event(&stream[..first]),
            ("progress".into(), "{\"a\":\n1}".into())
        );
        let rest = &stream[first..];
        let second = find_event_end(rest).unwrap();
        assert_eq!(parse_event(&rest[..second]).0, "message");
        let rest = &rest[second..];
        assert_eq!(parse_event(rest), ("done".into(), "x".into()));
        assert!(find_event_end(b"event: partial\ndata: {").is_none());
    }
}
