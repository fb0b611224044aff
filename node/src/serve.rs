//! Who gets a blob, and how many requests a peer may have in flight: the serving side of the
//! blob protocol, as policy the driver asks before it reads anything from the store.
//!
//! A blob goes only to a peer that may receive the data of a job that uses it (the job's
//! submitter or an announced member, `Node::may_receive`). Anything else is answered "missing"
//! and, where this node can judge the request, counted; a peer refused too often in a minute is
//! disconnected and kept out for a while. A request this node cannot judge (see
//! [`Access::Unknown`]) is answered "missing" without being held against the peer.
//! A peer with [`IN_FLIGHT_PER_PEER`] requests being served gets no more until one ends.

use libp2p::PeerId;
use shoal_protocol::bounded::BoundedMap;
use std::time::{Duration, Instant};

/// Blob requests served to one peer at once.
pub const IN_FLIGHT_PER_PEER: u32 = 32;
/// Refused requests a peer may make in [`REFUSAL_WINDOW`] before it is disconnected.
pub const REFUSALS_MAX: u32 = 64;
pub const REFUSAL_WINDOW: Duration = Duration::from_secs(60);
/// How long a disconnected peer is kept out.
pub const BAN: Duration = Duration::from_secs(300);
/// Peers tracked for in-flight requests and refusals (more than the connections allowed).
const PEERS_TRACKED: usize = 2048;

/// Whether a peer may receive a blob, as far as this node can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// A kept output, or the data of a job the peer may receive.
    Allowed,
    /// Held here for jobs this node tracks (or for none, as a shared part not granted yet),
    /// and the peer may receive none of them.
    Denied,
    /// Not held here, or held only for jobs this node has not heard of (yet): a node that
    /// just restarted is asked by the members of a running job for what its old process held,
    /// and must not ban them for it. Answering "missing" reads nothing and reveals nothing.
    Unknown,
}

/// What to do with one blob request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Read the blob and send it; call [`BlobServer::finished`] when the response is sent.
    Serve,
    /// Answer "missing" without reading anything: the peer may not have it.
    Refuse,
    /// Answer "missing", disconnect the peer and keep it out for [`BAN`].
    Ban,
    /// Too many requests of this peer in flight: drop this one (the peer sees a transient
    /// failure and may ask again).
    Busy,
}

/// Counters of the serving side, for `shoal peers` and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ServeStats {
    pub served: u64,
    pub refused: u64,
    pub busy: u64,
    pub banned: u64,
}

/// The serving policy's state. See the module docs.
#[derive(Debug)]
pub struct BlobServer {
    in_flight: BoundedMap<PeerId, u32>,
    refusals: BoundedMap<PeerId, (Instant, u32)>,
    pub stats: ServeStats,
}

impl Default for BlobServer {
    fn default() -> Self {
        Self {
            in_flight: BoundedMap::new(PEERS_TRACKED),
            refusals: BoundedMap::new(PEERS_TRACKED),
            stats: ServeStats::default(),
        }
    }
}

impl BlobServer {
    /// Decides a request of `peer` for a blob it has `access` to.
    pub fn request(&mut self, peer: PeerId, access: Access, now: Instant) -> Verdict {
        if access == Access::Unknown {
            self.stats.refused += 1;
            return Verdict::Refuse;
        }
        if access == Access::Denied {
            self.stats.refused += 1;
            let (since, count) = self.refusals.get_or_insert_with(peer, || (now, 0));
            if now.duration_since(*since) > REFUSAL_WINDOW {
                *since = now;
                *count = 0;
            }
            *count += 1;
            if *count > REFUSALS_MAX {
                self.refusals.remove(&peer);
                self.stats.banned += 1;
                return Verdict::Ban;
            }
            return Verdict::Refuse;
        }
        let n = self.in_flight.get_or_insert_with(peer, || 0);
        if *n >= IN_FLIGHT_PER_PEER {
            self.stats.busy += 1;
            return Verdict::Busy;
        }
        *n += 1;
        self.stats.served += 1;
        Verdict::Serve
    }

    /// A response to `peer` that [`Verdict::Serve`] allowed has gone out (or failed).
    pub fn finished(&mut self, peer: PeerId) {
        if let Some(n) = self.in_flight.get_mut(&peer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.in_flight.remove(&peer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_that_keeps_asking_for_what_it_may_not_have_is_banned() {
        let mut server = BlobServer::default();
        let peer = PeerId::random();
        let now = Instant::now();
        for _ in 0..REFUSALS_MAX {
            assert_eq!(server.request(peer, Access::Denied, now), Verdict::Refuse);
        }
        assert_eq!(server.request(peer, Access::Denied, now), Verdict::Ban);
        assert_eq!(server.stats.refused, u64::from(REFUSALS_MAX) + 1);
        // Refusals spread over more than the window are forgiven.
        let other = PeerId::random();
        for i in 0..3 * REFUSALS_MAX {
            let later = now + (REFUSAL_WINDOW + Duration::from_secs(1)) * (i / REFUSALS_MAX);
            assert_eq!(
                server.request(other, Access::Denied, later),
                Verdict::Refuse
            );
        }
    }

    #[test]
    fn requests_this_node_cannot_judge_are_refused_but_never_banned() {
        let mut server = BlobServer::default();
        let peer = PeerId::random();
        let now = Instant::now();
        for _ in 0..4 * REFUSALS_MAX {
            assert_eq!(server.request(peer, Access::Unknown, now), Verdict::Refuse);
        }
        assert_eq!(server.stats.refused, 4 * u64::from(REFUSALS_MAX));
        assert_eq!(server.stats.banned, 0);
        // Nor do they bring a ban nearer.
        for _ in 0..REFUSALS_MAX {
            assert_eq!(server.request(peer, Access::Denied, now), Verdict::Refuse);
        }
        assert_eq!(server.request(peer, Access::Denied, now), Verdict::Ban);
    }

    #[test]
    fn requests_in_flight_per_peer_are_bounded() {
        let mut server = BlobServer::default();
        let peer = PeerId::random();
        let now = Instant::now();
        for _ in 0..IN_FLIGHT_PER_PEER {
            assert_eq!(server.request(peer, Access::Allowed, now), Verdict::Serve);
        }
        assert_eq!(server.request(peer, Access::Allowed, now), Verdict::Busy);
        server.finished(peer);
        assert_eq!(server.request(peer, Access::Allowed, now), Verdict::Serve);
        // Other peers are not held up.
        assert_eq!(
            server.request(PeerId::random(), Access::Allowed, now),
            Verdict::Serve
        );
    }

    #[test]
    fn a_flood_of_peers_stays_within_the_tables_bound() {
        let mut server = BlobServer::default();
        let now = Instant::now();
        for _ in 0..PEERS_TRACKED + 100 {
            server.request(PeerId::random(), Access::Denied, now);
            server.request(PeerId::random(), Access::Allowed, now);
        }
        assert!(server.refusals.len() <= PEERS_TRACKED);
        assert!(server.in_flight.len() <= PEERS_TRACKED);
    }
}
