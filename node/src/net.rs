//! The libp2p side: one composed behaviour (connection limits, mDNS, Kademlia, gossipsub,
//! identify, blob request/response) over QUIC and TCP (Noise + yamux), and the swarm built
//! from it. In a private mesh every connection passes [`crate::admission`] inside the transport
//! before the behaviour sees it.

use crate::admission;
use crate::blob_proto::{self, BlobCodec};
use crate::mesh_key::MeshKey;
use futures::future::Either;
use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::{Boxed, Transport};
use libp2p::core::upgrade::Version;
use libp2p::{
    PeerId, StreamProtocol, Swarm, allow_block_list, connection_limits, gossipsub, identify,
    identity, kad, mdns, noise, quic, request_response, swarm::NetworkBehaviour,
    swarm::behaviour::toggle::Toggle, tcp, yamux,
};
use std::time::Duration;

/// Connection limits (documented in docs/protocol.md): connections still in their handshake
/// (admission included) per direction, established ones per peer and in total.
pub const PENDING_CONNECTIONS_MAX: u32 = 64;
pub const CONNECTIONS_PER_PEER_MAX: u32 = 4;
pub const CONNECTIONS_MAX: u32 = 1024;
/// Blob streams one connection may have open at once, each way.
pub const BLOB_STREAMS_MAX: usize = 256;

const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/shoal/kad/1");
const IDENTIFY_PROTOCOL: &str = "/shoal/id/1";

#[derive(NetworkBehaviour)]
pub struct Behaviour {
    pub limits: connection_limits::Behaviour,
    /// Peers kept out for abusing the blob protocol (see `crate::serve`).
    pub blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    pub gossipsub: gossipsub::Behaviour,
    pub kad: kad::Behaviour<kad::store::MemoryStore>,
    pub identify: identify::Behaviour,
    pub mdns: Toggle<mdns::tokio::Behaviour>,
    pub blobs: request_response::Behaviour<BlobCodec>,
    /// Direct streams to a small mesh's peers (see `crate::direct`).
    pub direct: libp2p_stream::Behaviour,
}

/// QUIC first, TCP (Noise + yamux) as fallback; with a mesh key, every connection on either
/// must pass the admission exchange before it is handed on.
fn transport(
    key: &identity::Keypair,
    mesh: Option<&MeshKey>,
) -> Result<Boxed<(PeerId, StreamMuxerBox)>, noise::Error> {
    let mut quic_config = quic::Config::new(key);
    // A peer that dies without closing its connections (kill -9, a cut cable) is noticed after
    // the idle timeout; keep it below the protocol's advert TTL.
    quic_config.max_idle_timeout = 3_000;
    quic_config.keep_alive_interval = Duration::from_secs(1);
    let quic = quic::tokio::Transport::new(quic_config);
    let tcp = tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
        .upgrade(Version::V1Lazy)
        .authenticate(noise::Config::new(key)?)
        .multiplex(yamux::Config::default())
        .timeout(Duration::from_secs(20));
    let both = quic.or_transport(tcp).map(|either, _| match either {
        Either::Left((peer, muxer)) => (peer, StreamMuxerBox::new(muxer)),
        Either::Right((peer, muxer)) => (peer, StreamMuxerBox::new(muxer)),
    });
    let Some(mesh) = mesh else {
        return Ok(both.boxed());
    };
    let local = key.public().to_peer_id();
    let admission_key = mesh.admission_key();
    Ok(both
        .and_then(move |(remote, muxer), endpoint| {
            admission::admit(muxer, local, remote, endpoint.is_dialer(), admission_key)
        })
        .boxed())
}

/// Builds the swarm. `mdns` turns local discovery on; `mesh` makes the mesh private.
pub fn build_swarm(
    key: identity::Keypair,
    mdns_on: bool,
    mesh: Option<&MeshKey>,
) -> anyhow::Result<Swarm<Behaviour>> {
    let author = key.public().to_peer_id();
    build_swarm_as(key, mdns_on, mesh, author)
}

/// [`build_swarm`], its gossip naming `author` as the author of what it publishes: a node's
/// own id, or (for `crate::probe::gossip`, playing a forger) someone else's.
pub(crate) fn build_swarm_as(
    key: identity::Keypair,
    mdns_on: bool,
    mesh: Option<&MeshKey>,
    author: libp2p::PeerId,
) -> anyhow::Result<Swarm<Behaviour>> {
    let transport = transport(&key, mesh)?;
    let swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_other_transport(|_| transport)?
        .with_behaviour(|key| {
            let peer_id = key.public().to_peer_id();
            let gossip_config = gossipsub::ConfigBuilder::default()
                .heartbeat_interval(Duration::from_millis(500))
                // Messages carry their author's seal instead of gossipsub's signature (see
                // `crate::seal`): the author is named, and nothing is checked in the decoder.
                .validation_mode(gossipsub::ValidationMode::Permissive)
                // Nothing is forwarded before the protocol has checked it (see
                // `crate::gossip_score`).
                .validate_messages()
                // Every control message carries a sequence number, so hashing the content
                // gives each message its own id.
                .message_id_fn(|m: &gossipsub::Message| {
                    gossipsub::MessageId::from(blake3::hash(&m.data).as_bytes().to_vec())
                })
                .max_transmit_size(shoal_protocol::codec::MAX_MESSAGE_BYTES + 4096)
                .build()
                .map_err(|e| anyhow::anyhow!("gossipsub config: {e}"))?;
            let mut gossipsub = gossipsub::Behaviour::new(
                gossipsub::MessageAuthenticity::Author(author),
                gossip_config,
            )
            .map_err(|e| anyhow::anyhow!("gossipsub: {e}"))?;
            let (params, thresholds) = crate::gossip_score::params();
            gossipsub
                .with_peer_score(params, thresholds)
                .map_err(|e| anyhow::anyhow!("gossipsub peer scoring: {e}"))?;
            let mut kad_config = kad::Config::new(KAD_PROTOCOL);
            kad_config.set_query_timeout(Duration::from_secs(30));
            let mut kad = kad::Behaviour::with_config(
                peer_id,
                kad::store::MemoryStore::new(peer_id),
                kad_config,
            );
            // LAN and loopback addresses are never "confirmed external", so force server mode
            // or nodes would never answer each other's lookups.
            kad.set_mode(Some(kad::Mode::Server));
            let identify = identify::Behaviour::new(identify::Config::new(
                IDENTIFY_PROTOCOL.to_string(),
                key.public(),
            ));
            let mdns = if mdns_on {
                let config = mdns::Config {
                    // Short enough that a new node is found within about a second.
                    query_interval: Duration::from_millis(500),
                    ttl: Duration::from_secs(30),
                    ..Default::default()
                };
                Some(mdns::tokio::Behaviour::new(config, peer_id)?)
            } else {
                None
            };
            let blobs = request_response::Behaviour::with_codec(
                BlobCodec,
                [(
                    blob_proto::PROTOCOL,
                    request_response::ProtocolSupport::Full,
                )],
                request_response::Config::default()
                    .with_request_timeout(Duration::from_secs(60))
                    .with_max_concurrent_streams(BLOB_STREAMS_MAX),
            );
            let limits = connection_limits::Behaviour::new(
                connection_limits::ConnectionLimits::default()
                    .with_max_pending_incoming(Some(PENDING_CONNECTIONS_MAX))
                    .with_max_pending_outgoing(Some(PENDING_CONNECTIONS_MAX))
                    .with_max_established_per_peer(Some(CONNECTIONS_PER_PEER_MAX))
                    .with_max_established(Some(CONNECTIONS_MAX)),
            );
            Ok(Behaviour {
                limits,
                blocked: allow_block_list::Behaviour::default(),
                gossipsub,
                kad,
                identify,
                mdns: Toggle::from(mdns),
                blobs,
                direct: libp2p_stream::Behaviour::new(),
            })
        })?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(300)))
        .build();
    Ok(swarm)
}
