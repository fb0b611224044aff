//! The libp2p side: one composed behaviour (mDNS, Kademlia, gossipsub, identify, blob
//! request/response) over QUIC and TCP (Noise + yamux), and the swarm built from it.

use crate::blob_proto::{self, BlobCodec};
use libp2p::{
    StreamProtocol, Swarm, gossipsub, identify, identity, kad, mdns, noise, request_response,
    swarm::NetworkBehaviour, swarm::behaviour::toggle::Toggle, tcp, yamux,
};
use std::time::Duration;

const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/shoal/kad/1");
const IDENTIFY_PROTOCOL: &str = "/shoal/id/1";

#[derive(NetworkBehaviour)]
pub struct Behaviour {
    pub gossipsub: gossipsub::Behaviour,
    pub kad: kad::Behaviour<kad::store::MemoryStore>,
    pub identify: identify::Behaviour,
    pub mdns: Toggle<mdns::tokio::Behaviour>,
    pub blobs: request_response::Behaviour<BlobCodec>,
}

/// Builds the swarm. `mdns` turns local discovery on.
pub fn build_swarm(key: identity::Keypair, mdns_on: bool) -> anyhow::Result<Swarm<Behaviour>> {
    let swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )?
        // A peer that dies without closing its connections (kill -9, a cut cable) is noticed
        // after the idle timeout; keep it below the protocol's advert TTL.
        .with_quic_config(|mut c| {
            c.max_idle_timeout = 3_000;
            c.keep_alive_interval = Duration::from_secs(1);
            c
        })
        .with_behaviour(|key| {
            let peer_id = key.public().to_peer_id();
            let gossip_config = gossipsub::ConfigBuilder::default()
                .heartbeat_interval(Duration::from_millis(500))
                .validation_mode(gossipsub::ValidationMode::Strict)
                // Every control message carries a sequence number, so hashing the content
                // gives each message its own id.
                .message_id_fn(|m: &gossipsub::Message| {
                    gossipsub::MessageId::from(blake3::hash(&m.data).as_bytes().to_vec())
                })
                .max_transmit_size(shoal_protocol::codec::MAX_MESSAGE_BYTES + 4096)
                .build()
                .map_err(|e| anyhow::anyhow!("gossipsub config: {e}"))?;
            let gossipsub = gossipsub::Behaviour::new(
                gossipsub::MessageAuthenticity::Signed(key.clone()),
                gossip_config,
            )
            .map_err(|e| anyhow::anyhow!("gossipsub: {e}"))?;
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
                    .with_max_concurrent_streams(256),
            );
            Ok(Behaviour {
                gossipsub,
                kad,
                identify,
                mdns: Toggle::from(mdns),
                blobs,
            })
        })?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(300)))
        .build();
    Ok(swarm)
}
