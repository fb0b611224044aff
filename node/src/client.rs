//! A client for a node's local API (see [`crate::api`]): what `shoal submit`, `shoal peers`
//! and `shoal jobs` use, and what Rust programs can use to drive a node.

use crate::api::{ApiRequest, ApiResponse};
use crate::cli::rows::{JobRow, PeerRow};
use crate::job_request::JobRequest;
use std::net::SocketAddr;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Longest response line accepted (a word count result can be large).
const MAX_RESPONSE_BYTES: usize = 512 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "no shoal node answers at {addr} ({source}); start one with `shoal node`, or use `shoal submit --join`"
    )]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("lost the connection to the node: {0}")]
    Io(#[from] std::io::Error),
    #[error("the node sent something unexpected: {0}")]
    Protocol(String),
    #[error("{0}")]
    Rejected(String),
    #[error("job {job} failed: {error}")]
    Failed { job: String, error: String },
}

/// The end of a successful job.
#[derive(Debug, Clone)]
pub struct Finished {
    pub job: JobRow,
    /// The job's output, byte for byte.
    pub output: Vec<u8>,
    pub elapsed_ms: u64,
}

impl Finished {
    /// The output as JSON, when it is JSON (every built-in job's output is).
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.output).ok()
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Client {
    addr: SocketAddr,
}

struct Conn {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    /// Held open until the answer is read: dropping it would half-close the connection.
    _write: tokio::net::tcp::OwnedWriteHalf,
}

impl Conn {
    async fn next(&mut self) -> Result<ApiResponse, ClientError> {
        let mut line = String::new();
        let limit = MAX_RESPONSE_BYTES as u64 + 1;
        let n = (&mut self.reader).take(limit).read_line(&mut line).await?;
        if n == 0 {
            return Err(ClientError::Protocol(
                "the node closed the connection".into(),
            ));
        }
        if n as u64 == limit {
            return Err(ClientError::Protocol("response too large".into()));
        }
        serde_json::from_str(&line).map_err(|e| ClientError::Protocol(e.to_string()))
    }
}

impl Client {
    pub fn new(addr: SocketAddr) -> Self {
        Self { addr }
    }

    async fn request(&self, request: &ApiRequest) -> Result<Conn, ClientError> {
        let stream =
            TcpStream::connect(self.addr)
                .await
                .map_err(|source| ClientError::Connect {
                    addr: self.addr,
                    source,
                })?;
        stream.set_nodelay(true)?;
        let (read, mut write) = stream.into_split();
        let mut line =
            serde_json::to_vec(request).map_err(|e| ClientError::Protocol(e.to_string()))?;
        line.push(b'\n');
        write.write_all(&line).await?;
        Ok(Conn {
            reader: BufReader::new(read),
            _write: write,
        })
    }

    pub async fn peers(&self) -> Result<Vec<PeerRow>, ClientError> {
        match self.request(&ApiRequest::Peers).await?.next().await? {
            ApiResponse::Peers(p) => Ok(p),
            other => Err(ClientError::Protocol(format!("{other:?}"))),
        }
    }

    pub async fn jobs(&self) -> Result<Vec<JobRow>, ClientError> {
        match self.request(&ApiRequest::Jobs).await?.next().await? {
            ApiResponse::Jobs(j) => Ok(j),
            other => Err(ClientError::Protocol(format!("{other:?}"))),
        }
    }

    /// Submits a job and waits for its result, calling `progress` with each update.
    pub async fn submit(
        &self,
        request: JobRequest,
        mut progress: impl FnMut(&ApiResponse),
    ) -> Result<Finished, ClientError> {
        let mut conn = self.request(&ApiRequest::Submit(request)).await?;
        loop {
            let response = conn.next().await?;
            match response {
                ApiResponse::Done {
                    job,
                    output_b64,
                    elapsed_ms,
                } => {
                    use base64::Engine as _;
                    let output = base64::engine::general_purpose::STANDARD
                        .decode(output_b64)
                        .map_err(|e| ClientError::Protocol(format!("bad output encoding: {e}")))?;
                    return Ok(Finished {
                        job,
                        output,
                        elapsed_ms,
                    });
                }
                ApiResponse::Failed { job, error } => {
                    return Err(ClientError::Failed { job, error });
                }
                ApiResponse::Rejected { error } => return Err(ClientError::Rejected(error)),
                other => progress(&other),
            }
        }
    }
}
