//! Getting blobs from peers: one transfer per blob however many tasks wait for it, every byte
//! checked against its hash, retries with back-off for transient failures, other sources when
//! the first cannot serve, and the manifests of file inputs kept decoded.

use crate::handle::{Command, Handle, NodeGone};
use shoal_protocol::job::Manifest;
use shoal_protocol::{BlobHash, NodeId, codec};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// Fetch attempts before an input counts as unavailable, and the first retry delay (doubling).
const FETCH_ATTEMPTS: u32 = 5;
const FETCH_RETRY_FIRST: Duration = Duration::from_millis(100);

/// Where a fetched blob (or why it could not be fetched) is sent.
pub(crate) type FetchReply = oneshot::Sender<Result<Arc<Vec<u8>>, FetchError>>;

/// Why a blob could not be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The holder answered that it does not hold the blob: asking it again will not help; the
    /// task that needed it reports its input lost.
    #[error("peer {holder} does not hold blob {hash}")]
    NotHeld { holder: String, hash: BlobHash },
    /// This node was named as the holder but no longer keeps the blob (it was dropped to stay
    /// within the memory budget): the blob must be computed again.
    #[error("this node ({me}) no longer holds blob {hash}")]
    NoLongerHere { me: NodeId, hash: BlobHash },
    /// The holder could not be reached, or answered wrong bytes: another try may work.
    #[error("{0}")]
    Failed(String),
    /// A blob arrived whole but is not what it should be (a manifest that does not decode, a
    /// chunk index past its end): the job's input is corrupt.
    #[error("{0}")]
    Corrupt(String),
    /// The node has shut down.
    #[error(transparent)]
    Gone(#[from] NodeGone),
}

impl FetchError {
    /// Whether trying again may help.
    pub fn is_transient(&self) -> bool {
        matches!(self, FetchError::Failed(_))
    }
}

/// Blobs being fetched, with whoever else waits for the same bytes: a prefetch and the task
/// that needs the chunk share one transfer.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    waiting: Mutex<HashMap<BlobHash, Vec<FetchReply>>>,
}

/// Removes a blob from the in-flight fetches when its fetch ends, however it ends, and hands
/// the outcome to the waiters (an abandoned fetch fails them rather than leaving them waiting).
struct FetchSlot<'a> {
    in_flight: &'a InFlight,
    hash: BlobHash,
    outcome: Option<Result<Arc<Vec<u8>>, FetchError>>,
}

impl Drop for FetchSlot<'_> {
    fn drop(&mut self) {
        let waiters = self
            .in_flight
            .waiting
            .lock()
            .expect("fetch table lock")
            .remove(&self.hash)
            .unwrap_or_default();
        let outcome = self
            .outcome
            .take()
            .unwrap_or_else(|| Err(FetchError::Failed("the fetch was abandoned".into())));
        for waiter in waiters {
            let _ = waiter.send(outcome.clone());
        }
    }
}

impl Handle {
    /// A blob by hash: from the local store, or fetched from `holder` and verified. Concurrent
    /// fetches of one blob share a transfer.
    pub async fn fetch(&self, holder: NodeId, hash: BlobHash) -> Result<Arc<Vec<u8>>, FetchError> {
        self.fetch_traced(holder, hash)
            .await
            .map(|(bytes, _)| bytes)
    }

    /// [`Handle::fetch`], saying whether this call moved the bytes over the network (a call
    /// that found them stored, or shared another call's transfer, did not).
    async fn fetch_traced(
        &self,
        holder: NodeId,
        hash: BlobHash,
    ) -> Result<(Arc<Vec<u8>>, bool), FetchError> {
        if let Some(bytes) = self.store().get(&hash) {
            return Ok((bytes, false));
        }
        if holder == self.id() {
            return Err(FetchError::NoLongerHere { me: holder, hash });
        }
        let waiting = {
            let mut waiting = self.in_flight.waiting.lock().expect("fetch table lock");
            match waiting.get_mut(&hash) {
                Some(waiters) => {
                    let (tx, rx) = oneshot::channel();
                    waiters.push(tx);
                    Some(rx)
                }
                None => {
                    waiting.insert(hash, Vec::new());
                    None
                }
            }
        };
        if let Some(rx) = waiting {
            return rx
                .await
                .unwrap_or_else(|_| Err(FetchError::Failed("the fetch was abandoned".into())))
                .map(|bytes| (bytes, false));
        }
        let mut slot = FetchSlot {
            in_flight: &self.in_flight,
            hash,
            outcome: None,
        };
        let outcome = self.fetch_once(holder, hash).await;
        slot.outcome = Some(outcome.clone());
        outcome.map(|bytes| (bytes, true))
    }

    /// One request to `holder`, and the check of what it sent.
    async fn fetch_once(&self, holder: NodeId, hash: BlobHash) -> Result<Arc<Vec<u8>>, FetchError> {
        let bytes = self
            .ask(|reply| Command::Fetch {
                holder,
                hash,
                reply,
            })
            .await??;
        // Hashing a large blob takes a while: done here, in the fetching task, not in the
        // driver that serves every other event.
        let verified = {
            let bytes = bytes.clone();
            tokio::task::spawn_blocking(move || BlobHash::of(&bytes) == hash)
                .await
                .unwrap_or(false)
        };
        if verified {
            self.metrics.fetched_bytes.inc_by(bytes.len() as u64);
            Ok(bytes)
        } else {
            Err(FetchError::Failed(format!(
                "peer {holder} sent bytes that do not hash to {hash}"
            )))
        }
    }

    /// Fetches a blob, retrying with back-off: a peer may be reachable only once discovery has
    /// found its address, and a busy peer may time out once. A holder that answers it does not
    /// hold the blob is not asked again.
    pub async fn fetch_retrying(
        &self,
        holder: NodeId,
        hash: BlobHash,
    ) -> Result<Arc<Vec<u8>>, FetchError> {
        let mut delay = FETCH_RETRY_FIRST;
        let mut attempt = 1;
        loop {
            match self.fetch(holder, hash).await {
                Ok(bytes) => return Ok(bytes),
                Err(e) if !e.is_transient() => return Err(e),
                Err(FetchError::Failed(e)) if attempt >= FETCH_ATTEMPTS => {
                    return Err(FetchError::Failed(format!(
                        "{e} (after {attempt} attempts)"
                    )));
                }
                Err(e) => tracing::debug!(%holder, "fetch attempt {attempt} failed: {e}"),
            }
            tokio::time::sleep(delay).await;
            delay *= 2;
            attempt += 1;
        }
    }

    /// Fetches a blob from `first` (with retries), else from any of `others` (one try each): a
    /// content-addressed blob is the same whoever serves it, and the bytes are verified.
    pub async fn fetch_from_any(
        &self,
        first: NodeId,
        others: &[NodeId],
        hash: BlobHash,
    ) -> Result<Arc<Vec<u8>>, FetchError> {
        let mut error = match self.fetch_retrying(first, hash).await {
            Ok(bytes) => return Ok(bytes),
            Err(e) => e,
        };
        for &peer in others {
            match self.fetch(peer, hash).await {
                Ok(bytes) => return Ok(bytes),
                Err(e) => error = e,
            }
        }
        Err(error)
    }

    /// Fetches a blob from whichever of `holders` can serve it (this node first if it holds
    /// it): one try each per round, rounds with back-off while some holder may still answer;
    /// a holder that says it does not hold the blob is not asked again.
    pub async fn fetch_from_holders(
        &self,
        holders: &[NodeId],
        hash: BlobHash,
    ) -> Result<Arc<Vec<u8>>, FetchError> {
        self.fetch_from_holders_traced(holders, hash)
            .await
            .map(|(bytes, _)| bytes)
    }

    /// [`Handle::fetch_from_holders`], saying whether this call moved the bytes over the
    /// network.
    async fn fetch_from_holders_traced(
        &self,
        holders: &[NodeId],
        hash: BlobHash,
    ) -> Result<(Arc<Vec<u8>>, bool), FetchError> {
        if let Some(bytes) = self.store().get(&hash) {
            return Ok((bytes, false));
        }
        let mut left: Vec<NodeId> = holders
            .iter()
            .copied()
            .filter(|h| *h != self.id())
            .collect();
        let mut error = FetchError::NoLongerHere {
            me: self.id(),
            hash,
        };
        let mut delay = FETCH_RETRY_FIRST;
        for attempt in 1..=FETCH_ATTEMPTS {
            let mut retry = Vec::new();
            for &holder in &left {
                match self.fetch_traced(holder, hash).await {
                    Ok(fetched) => return Ok(fetched),
                    Err(e) if e.is_transient() => {
                        retry.push(holder);
                        error = e;
                    }
                    Err(e) => error = e,
                }
            }
            left = retry;
            if left.is_empty() {
                break;
            }
            if attempt < FETCH_ATTEMPTS {
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
        Err(error)
    }

    /// The bytes of manifest `hash`, if this node has it: stored, or encoded again from the
    /// decoded copy kept for tasks (the encoding is canonical: checked against the hash).
    pub fn manifest_bytes(&self, hash: &BlobHash) -> Option<Arc<Vec<u8>>> {
        if let Some(bytes) = self.store().get(hash) {
            return Some(bytes);
        }
        let manifest = self
            .manifests
            .lock()
            .expect("manifest lock")
            .get(hash)?
            .clone();
        let bytes = codec::encode_blob(&*manifest);
        (BlobHash::of(&bytes) == *hash).then(|| Arc::new(bytes))
    }

    /// A file input's manifest, decoded (kept for the next task of the same job), from one of
    /// `holders`.
    pub async fn manifest(
        &self,
        holders: &[NodeId],
        hash: BlobHash,
    ) -> Result<Arc<Manifest>, FetchError> {
        if let Some(m) = self.manifests.lock().expect("manifest lock").get(&hash) {
            return Ok(m.clone());
        }
        let bytes = self.fetch_from_holders(holders, hash).await?;
        let manifest: Manifest = codec::decode_blob(&bytes)
            .map_err(|e| FetchError::Corrupt(format!("manifest {hash}: {e}")))?;
        // Kept at hand, in case this node comes to keep a copy of the job's input.
        self.store().put_verified(hash, bytes);
        let manifest = Arc::new(manifest);
        self.manifests
            .lock()
            .expect("manifest lock")
            .insert(hash, manifest.clone());
        Ok(manifest)
    }

    /// Chunk `index` of the manifest `manifest` (both held by each of `holders`), and its hash.
    pub async fn chunk(
        &self,
        holders: &[NodeId],
        manifest: BlobHash,
        index: u32,
    ) -> Result<(BlobHash, Arc<Vec<u8>>), FetchError> {
        self.chunk_traced(holders, manifest, index)
            .await
            .map(|(hash, bytes, _)| (hash, bytes))
    }

    /// [`Handle::chunk`], saying whether this call moved the chunk over the network (for a
    /// job's `bytes_moved`).
    pub async fn chunk_traced(
        &self,
        holders: &[NodeId],
        manifest: BlobHash,
        index: u32,
    ) -> Result<(BlobHash, Arc<Vec<u8>>, bool), FetchError> {
        let chunks = self.manifest(holders, manifest).await?;
        let chunk = *chunks.chunks.get(index as usize).ok_or_else(|| {
            FetchError::Corrupt(format!("manifest {manifest} has no chunk {index}"))
        })?;
        let (bytes, moved) = self.fetch_from_holders_traced(holders, chunk.hash).await?;
        Ok((chunk.hash, bytes, moved))
    }
}
