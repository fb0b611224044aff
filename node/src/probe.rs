//! `shoal probe blob MULTIADDR HASH`: asks one peer for one blob, as any other peer would, and
//! says what came back. For operators checking that a mesh is closed ("can this machine read
//! that chunk?") and for the tests that check it.

use crate::blob_proto::BlobResponse;
use crate::mesh_key::MeshKey;
use crate::net::{self, BehaviourEvent};
use futures::StreamExt;
use libp2p::request_response::{self, Message};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, multiaddr::Protocol};
use shoal_protocol::BlobHash;
use std::time::Duration;

/// What a probe found out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// The peer sent the blob; its length, and whether its bytes hash to what was asked.
    Found { len: usize, verified: bool },
    /// The peer answered that it will not or cannot give it.
    Missing,
    /// No connection could be made (the peer is down, or refused admission).
    NoConnection(String),
    /// The request failed on an open connection.
    Failed(String),
}

/// Connects to `addr` (which must end in `/p2p/PEER-ID`) with a throwaway identity and asks
/// for `hash`.
pub async fn blob(
    addr: Multiaddr,
    hash: BlobHash,
    mesh: Option<&MeshKey>,
    limit: Duration,
) -> anyhow::Result<Probe> {
    let (mut swarm, peer) = dial_as_stranger(addr, mesh, None)?;
    let run = async {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == peer => {
                    swarm.behaviour_mut().blobs.send_request(&peer, hash);
                }
                SwarmEvent::OutgoingConnectionError { error, .. } => {
                    return Probe::NoConnection(error.to_string());
                }
                SwarmEvent::ConnectionClosed { peer_id, cause, .. } if peer_id == peer => {
                    return Probe::NoConnection(format!(
                        "the peer closed the connection: {cause:?}"
                    ));
                }
                SwarmEvent::Behaviour(BehaviourEvent::Blobs(event)) => match event {
                    request_response::Event::Message {
                        message: Message::Response { response, .. },
                        ..
                    } => {
                        return match response {
                            BlobResponse::Found(bytes) => Probe::Found {
                                len: bytes.len(),
                                verified: BlobHash::of(&bytes) == hash,
                            },
                            BlobResponse::Missing => Probe::Missing,
                        };
                    }
                    request_response::Event::OutboundFailure { error, .. } => {
                        return Probe::Failed(error.to_string());
                    }
                    _ => {}
                },
                _ => {}
            }
        }
    };
    Ok(tokio::time::timeout(limit, run)
        .await
        .unwrap_or_else(|_| Probe::NoConnection(format!("no answer within {limit:?}"))))
}

/// Connects to `addr` (ending in `/p2p/PEER-ID`) with a throwaway identity, opens a direct
/// stream (`crate::direct`) and writes `bytes` to it as they are, frames or not, as a broken or
/// hostile peer would; then waits until the node closes the stream (as it does after a
/// malformed frame) or `limit` passes. For the tests of what a node does with such a peer.
pub async fn direct(
    addr: Multiaddr,
    bytes: &[u8],
    mesh: Option<&MeshKey>,
    limit: Duration,
) -> anyhow::Result<()> {
    use futures::{AsyncReadExt, AsyncWriteExt};
    let (mut swarm, peer) = dial_as_stranger(addr, mesh, None)?;
    let mut control = swarm.behaviour().direct.new_control();
    let write = async move {
        let mut stream = control
            .open_stream(peer, crate::direct::PROTOCOL)
            .await
            .map_err(|e| anyhow::anyhow!("cannot open a direct stream: {e}"))?;
        stream.write_all(bytes).await?;
        stream.flush().await?;
        // The node never writes on a direct stream: this read ends when it lets go of it.
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest).await;
        anyhow::Ok(())
    };
    let run = async {
        tokio::pin!(write);
        loop {
            tokio::select! {
                done = &mut write => return done,
                event = swarm.select_next_some() => {
                    if let SwarmEvent::OutgoingConnectionError { error, .. } = event {
                        anyhow::bail!("no connection: {error}");
                    }
                }
            }
        }
    };
    tokio::time::timeout(limit, run)
        .await
        .map_err(|_| anyhow::anyhow!("the node did not close the stream within {limit:?}"))?
}

/// A gossip peer that keeps its connection (and sends what it published) until dropped.
pub struct GossipProbe {
    task: tokio::task::JoinHandle<()>,
    peer_id: libp2p::PeerId,
}

impl GossipProbe {
    /// The probe's own (throwaway) peer id: the connection's, whatever author it names.
    pub fn peer_id(&self) -> libp2p::PeerId {
        self.peer_id
    }
}

impl Drop for GossipProbe {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Connects to `addr` with a throwaway identity, joins gossip topic `topic` and, once the node
/// is heard subscribed to it, publishes each of `payloads` as it is (no seal added), naming
/// `author` as their author (the probe's own id when `None`): what a hostile peer passing on
/// forged messages does. The probe goes on running (its messages go out) until the returned
/// [`GossipProbe`] is dropped. For the tests of what a node does with such a peer.
pub async fn gossip(
    addr: Multiaddr,
    topic: &str,
    payloads: Vec<Vec<u8>>,
    author: Option<libp2p::PeerId>,
    mesh: Option<&MeshKey>,
    limit: Duration,
) -> anyhow::Result<GossipProbe> {
    use libp2p::gossipsub;
    let (mut swarm, peer) = dial_as_stranger(addr, mesh, author)?;
    let topic = gossipsub::IdentTopic::new(topic);
    swarm.behaviour_mut().gossipsub.subscribe(&topic)?;
    let subscribed = async {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(
                    gossipsub::Event::Subscribed { peer_id, topic: t },
                )) if peer_id == peer && t == topic.hash() => return Ok(()),
                SwarmEvent::OutgoingConnectionError { error, .. } => {
                    anyhow::bail!("no connection: {error}")
                }
                _ => {}
            }
        }
    };
    tokio::time::timeout(limit, subscribed)
        .await
        .map_err(|_| anyhow::anyhow!("the node was not heard subscribed within {limit:?}"))??;
    for payload in payloads {
        swarm
            .behaviour_mut()
            .gossipsub
            .publish(topic.clone(), payload)
            .map_err(|e| anyhow::anyhow!("cannot publish: {e}"))?;
    }
    let peer_id = *swarm.local_peer_id();
    let task = tokio::spawn(async move {
        loop {
            swarm.select_next_some().await;
        }
    });
    Ok(GossipProbe { task, peer_id })
}

/// A swarm with a throwaway identity, dialling `addr` (which must end in `/p2p/PEER-ID`), and
/// that peer. Its gossip names `author` as the author of what it publishes (its own id when
/// `None`).
fn dial_as_stranger(
    addr: Multiaddr,
    mesh: Option<&MeshKey>,
    author: Option<libp2p::PeerId>,
) -> anyhow::Result<(libp2p::Swarm<net::Behaviour>, libp2p::PeerId)> {
    let Some(Protocol::P2p(peer)) = addr.iter().last() else {
        anyhow::bail!("{addr} does not end in /p2p/PEER-ID");
    };
    let key = libp2p::identity::Keypair::generate_ed25519();
    let author = author.unwrap_or_else(|| key.public().to_peer_id());
    let mut swarm = net::build_swarm_as(key, false, mesh, author)?;
    swarm.dial(addr)?;
    Ok((swarm, peer))
}
