//! What the driver knows of peers on the libp2p side, bounded: which libp2p peer id is behind
//! a protocol id, which peers heard of only through gossip to look up in Kademlia (so that
//! blobs can travel over a direct connection), and which peers to dial again once their stale
//! connections are closed.

use libp2p::PeerId;
use shoal_protocol::NodeId;
use shoal_protocol::bounded::BoundedMap;
use std::time::{Duration, Instant};

/// Protocol ids mapped to libp2p peer ids: far more than a view holds, so a peer of the view
/// is always found; a flood of fresh ids only pushes out the oldest.
pub(crate) const PEER_BOOK_MAX: usize = 4096;
/// Peers looked up recently, and how soon one may be looked up again.
const LOOKUPS_MAX: usize = 256;
const LOOKUP_AGAIN: Duration = Duration::from_secs(30);
/// Most peers waiting to be dialled again.
const REDIAL_MAX: usize = 256;
/// How long a peer whose dial failed (unreachable, or it refused admission to a private mesh)
/// is not dialled again on discovery, and how many such peers are remembered.
pub(crate) const DIAL_BACKOFF: Duration = Duration::from_secs(10);
const FAILED_DIALS_MAX: usize = 1024;

/// The driver's peer table. See the module docs.
#[derive(Debug)]
pub(crate) struct PeerBook {
    ids: BoundedMap<NodeId, PeerId>,
    looked_up: BoundedMap<PeerId, Instant>,
    redial: BoundedMap<PeerId, ()>,
    failed_dials: BoundedMap<PeerId, Instant>,
    /// The transport of the connection to each connected peer (`quic`, `tcp`).
    connected: BoundedMap<PeerId, &'static str>,
}

impl Default for PeerBook {
    fn default() -> Self {
        Self {
            ids: BoundedMap::new(PEER_BOOK_MAX),
            looked_up: BoundedMap::new(LOOKUPS_MAX),
            redial: BoundedMap::new(REDIAL_MAX),
            failed_dials: BoundedMap::new(FAILED_DIALS_MAX),
            connected: BoundedMap::new(PEER_BOOK_MAX),
        }
    }
}

/// Derives the protocol's node id from a libp2p peer id.
pub fn node_id(peer: &PeerId) -> NodeId {
    NodeId::from_identity_bytes(&peer.to_bytes())
}

impl PeerBook {
    /// Remembers `peer`. Returns whether it should be looked up in Kademlia now: it was not
    /// known, it is not connected, and it was not looked up in the last half minute (a peer
    /// that keeps gossiping through others costs one lookup per period, not one per message).
    pub(crate) fn learn(&mut self, peer: PeerId, connected: bool, now: Instant) -> bool {
        let id = node_id(&peer);
        let new = !self.ids.contains_key(&id);
        self.ids.insert(id, peer);
        if connected || !new {
            return false;
        }
        if self
            .looked_up
            .get(&peer)
            .is_some_and(|at| now.duration_since(*at) < LOOKUP_AGAIN)
        {
            return false;
        }
        self.looked_up.insert(peer, now);
        true
    }

    /// A dial of `peer` failed: discovery will not dial it again for [`DIAL_BACKOFF`] (an
    /// intruder announcing itself over mDNS must not cost a handshake every half second).
    pub(crate) fn dial_failed(&mut self, peer: PeerId, now: Instant) {
        self.failed_dials.insert(peer, now);
    }

    /// Whether discovery may dial `peer` now.
    pub(crate) fn may_dial(&self, peer: &PeerId, now: Instant) -> bool {
        self.failed_dials
            .get(peer)
            .is_none_or(|at| now.duration_since(*at) >= DIAL_BACKOFF)
    }

    /// A connection to `peer` over `addr` is up.
    pub(crate) fn connected(&mut self, peer: PeerId, addr: &libp2p::Multiaddr) {
        let transport = if addr
            .iter()
            .any(|p| matches!(p, libp2p::multiaddr::Protocol::QuicV1))
        {
            "quic"
        } else {
            "tcp"
        };
        self.connected.insert(peer, transport);
    }

    /// The last connection to `peer` closed.
    pub(crate) fn disconnected(&mut self, peer: &PeerId) {
        self.connected.remove(peer);
    }

    /// How this node is connected to `peer`, if it is.
    pub(crate) fn connection(&self, peer: &PeerId) -> Option<&'static str> {
        self.connected.get(peer).copied()
    }

    /// The libp2p peer id behind a protocol id, if this node has heard of it.
    pub(crate) fn peer_id(&self, node: &NodeId) -> Option<PeerId> {
        self.ids.get(node).copied()
    }

    /// Marks `peer` to be dialled again once its last connection closes.
    pub(crate) fn redial_later(&mut self, peer: PeerId) {
        self.redial.insert(peer, ());
    }

    /// Whether `peer` was waiting to be dialled again (it no longer is).
    pub(crate) fn take_redial(&mut self, peer: &PeerId) -> bool {
        self.redial.remove(peer).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_peer_ids_stays_within_the_bound_and_keeps_the_newest() {
        let mut book = PeerBook::default();
        let now = Instant::now();
        let peers: Vec<PeerId> = (0..PEER_BOOK_MAX + 500).map(|_| PeerId::random()).collect();
        let mut lookups = 0;
        for p in &peers {
            lookups += usize::from(book.learn(*p, false, now));
        }
        assert_eq!(book.ids.len(), PEER_BOOK_MAX);
        assert_eq!(book.peer_id(&node_id(&peers[0])), None, "the oldest went");
        let last = peers.last().unwrap();
        assert_eq!(book.peer_id(&node_id(last)), Some(*last));
        assert!(book.looked_up.len() <= LOOKUPS_MAX);
        assert_eq!(
            lookups,
            peers.len(),
            "every new, unconnected peer is looked up once"
        );
    }

    #[test]
    fn a_peer_is_looked_up_once_per_period_and_never_when_connected() {
        let mut book = PeerBook::default();
        let now = Instant::now();
        let connected = PeerId::random();
        assert!(!book.learn(connected, true, now));
        let gossiper = PeerId::random();
        assert!(book.learn(gossiper, false, now));
        assert!(!book.learn(gossiper, false, now), "known now");
        for _ in 0..REDIAL_MAX + 10 {
            book.redial_later(PeerId::random());
        }
        assert!(book.redial.len() <= REDIAL_MAX);
    }

    #[test]
    fn a_peer_whose_dial_failed_is_left_alone_for_a_while() {
        let mut book = PeerBook::default();
        let now = Instant::now();
        let intruder = PeerId::random();
        assert!(book.may_dial(&intruder, now));
        book.dial_failed(intruder, now);
        assert!(!book.may_dial(&intruder, now + DIAL_BACKOFF / 2));
        assert!(book.may_dial(&intruder, now + DIAL_BACKOFF));
        for _ in 0..FAILED_DIALS_MAX + 10 {
            book.dial_failed(PeerId::random(), now);
        }
        assert!(book.failed_dials.len() <= FAILED_DIALS_MAX);
    }
}
