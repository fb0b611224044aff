//! Admission to a private mesh: a challenge-response on the first stream of every new
//! connection, inside the transport, before the swarm (and so gossipsub, Kademlia, identify and
//! the blob protocol) ever sees the connection.
//!
//! Why here: libp2p's `pnet` wraps raw TCP only and cannot protect QUIC, and an allow-list
//! rejects a peer only after its protocols may already have run. Running the check as the last
//! step of the transport upgrade (`Transport::and_then`) gives one rule for QUIC and TCP alike:
//! a connection either proves the key or never exists for the node.
//!
//! The exchange, on a raw stream the dialer opens (nonces are 32 random bytes; `K` is the
//! admission key derived from the mesh key; `D` and `L` are the dialer's and the listener's peer
//! ids, authenticated by the Noise or TLS handshake below):
//!
//! 1. dialer → listener: `MAGIC ‖ nonce_d`
//! 2. listener → dialer: `nonce_l ‖ mac(K, "listener" ‖ nonce_d ‖ nonce_l ‖ D ‖ L)`
//! 3. dialer → listener: `mac(K, "dialer" ‖ nonce_d ‖ nonce_l ‖ D ‖ L)`
//!
//! Each side checks the other's MAC (keyed blake3, compared in constant time). The nonces make
//! every exchange fresh (no replay); binding both peer ids stops a relay between two
//! connections; the key never crosses the wire. A peer without the key learns nothing but that
//! the node wants an answer it cannot give.

use futures::{AsyncReadExt, AsyncWriteExt, future};
use libp2p::PeerId;
use libp2p::core::muxing::{StreamMuxerBox, StreamMuxerExt};
use std::task::Poll;
use std::time::Duration;

/// How long a new connection may take to prove the key.
pub const ADMISSION_TIMEOUT: Duration = Duration::from_secs(5);
/// Opens the exchange; also tells a peer that speaks something else what it is talking to.
const MAGIC: &[u8; 16] = b"shoal-admit/v1\0\0";

/// Why a connection was not admitted. The connection is closed in every case.
#[derive(Debug, thiserror::Error)]
pub enum AdmissionError {
    /// The peer answered, but not with proof of this mesh's key: it holds another key, or none.
    #[error("the peer does not hold this mesh's key")]
    WrongKey,
    /// The peer did not complete the exchange in time (it may not be in a private mesh at all).
    #[error("the peer did not prove the mesh key within {0:?}")]
    Timeout(Duration),
    /// The connection failed during the exchange.
    #[error("admission failed: {0}")]
    Io(#[from] std::io::Error),
    /// No randomness for a nonce.
    #[error("no randomness for the admission nonce: {0}")]
    Random(String),
}

fn mac(
    key: &[u8; 32],
    role: &[u8],
    nonces: (&[u8; 32], &[u8; 32]),
    dialer: &PeerId,
    listener: &PeerId,
) -> blake3::Hash {
    let mut h = blake3::Hasher::new_keyed(key);
    h.update(role);
    h.update(nonces.0);
    h.update(nonces.1);
    h.update(&dialer.to_bytes());
    h.update(&listener.to_bytes());
    h.finalize()
}

fn nonce() -> Result<[u8; 32], AdmissionError> {
    let mut n = [0u8; 32];
    getrandom::fill(&mut n).map_err(|e| AdmissionError::Random(e.to_string()))?;
    Ok(n)
}

/// Runs the exchange on a connection just secured and multiplexed: hands it on if the peer
/// proved the key, or fails (and so closes) it.
pub async fn admit(
    mut muxer: StreamMuxerBox,
    local: PeerId,
    remote: PeerId,
    dialer: bool,
    key: [u8; 32],
) -> Result<(PeerId, StreamMuxerBox), AdmissionError> {
    let exchange = async {
        // The stream, while the connection is driven (yamux makes progress only when polled).
        let mut stream = future::poll_fn(|cx| {
            if let Poll::Ready(e) = drive(&mut muxer, cx) {
                return Poll::Ready(Err(e));
            }
            let stream = if dialer {
                muxer.poll_outbound_unpin(cx)
            } else {
                muxer.poll_inbound_unpin(cx)
            };
            stream.map_err(std::io::Error::other)
        })
        .await?;
        let talk = async {
            if dialer {
                let ours = nonce()?;
                let mut hello = MAGIC.to_vec();
                hello.extend_from_slice(&ours);
                stream.write_all(&hello).await?;
                stream.flush().await?;
                let mut answer = [0u8; 64];
                stream.read_exact(&mut answer).await?;
                let theirs: [u8; 32] = answer[..32].try_into().expect("32 of 64 bytes");
                let proof: [u8; 32] = answer[32..].try_into().expect("32 of 64 bytes");
                let nonces = (&ours, &theirs);
                if blake3::Hash::from(proof) != mac(&key, b"listener", nonces, &local, &remote) {
                    return Err(AdmissionError::WrongKey);
                }
                let ours_proof = mac(&key, b"dialer", nonces, &local, &remote);
                stream.write_all(ours_proof.as_bytes()).await?;
                stream.flush().await?;
                let _ = stream.close().await;
            } else {
                let mut hello = [0u8; 48];
                stream.read_exact(&mut hello).await?;
                if hello[..16] != MAGIC[..] {
                    return Err(AdmissionError::WrongKey);
                }
                let theirs: [u8; 32] = hello[16..].try_into().expect("32 of 48 bytes");
                let ours = nonce()?;
                let nonces = (&theirs, &ours);
                let mut answer = ours.to_vec();
                answer
                    .extend_from_slice(mac(&key, b"listener", nonces, &remote, &local).as_bytes());
                stream.write_all(&answer).await?;
                stream.flush().await?;
                let mut proof = [0u8; 32];
                stream.read_exact(&mut proof).await?;
                if blake3::Hash::from(proof) != mac(&key, b"dialer", nonces, &remote, &local) {
                    return Err(AdmissionError::WrongKey);
                }
                let _ = stream.close().await;
            }
            Ok::<(), AdmissionError>(())
        };
        let driving = future::poll_fn(|cx| drive(&mut muxer, cx));
        futures::pin_mut!(talk, driving);
        match future::select(talk, driving).await {
            future::Either::Left((outcome, _)) => outcome,
            future::Either::Right((e, _)) => Err(AdmissionError::Io(e)),
        }
    };
    match tokio::time::timeout(ADMISSION_TIMEOUT, exchange).await {
        Ok(Ok(())) => Ok((remote, muxer)),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(AdmissionError::Timeout(ADMISSION_TIMEOUT)),
    }
}

/// Lets the connection make progress: pending until the connection fails, then its error.
fn drive(muxer: &mut StreamMuxerBox, cx: &mut std::task::Context<'_>) -> Poll<std::io::Error> {
    loop {
        match muxer.poll_unpin(cx) {
            Poll::Pending => return Poll::Pending,
            // An address change of a QUIC path: nothing to do with it before admission.
            Poll::Ready(Ok(_)) => continue,
            Poll::Ready(Err(e)) => return Poll::Ready(std::io::Error::other(e)),
        }
    }
}
