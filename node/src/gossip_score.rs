//! How gossip treats a peer that sends what is not a Shoal message: every message is validated
//! by the protocol before gossipsub forwards it (`validate_messages`), an invalid one is
//! rejected (not forwarded, and held against the peer that sent it), and peer scoring turns
//! repeated offences into a graylist: below [`GRAYLIST`], gossipsub ignores the peer's traffic.
//!
//! Two penalties add up. Gossipsub's own (P4, invalid message deliveries) counts per topic, so
//! it is set for the fixed topics only (the jobs topic and the advert shards): a job's own
//! topic comes and goes, and gossipsub keeps the parameters of a topic forever. The
//! application score covers every topic: the driver counts each peer's invalid messages in a
//! bounded table ([`InvalidCounts`]), halves the counts every 10 s (its discovery tick), and
//! sets the score.
//! Scores are only ever negative: an honest peer scores 0 and is never graylisted by them;
//! gossipsub's positive rewards (time in mesh, first deliveries) are off, so no peer can buy
//! its way back by being chatty.

use libp2p::PeerId;
use libp2p::gossipsub::{self, PeerScoreParams, PeerScoreThresholds, TopicScoreParams};
use shoal_protocol::Topic;
use shoal_protocol::bounded::BoundedMap;

/// Application score per invalid message.
pub const PENALTY: f64 = -10.0;
/// Below this score a peer's gossip is ignored: nine invalid messages in a short while on a
/// job's own topic, three on a scored topic, where gossip's own penalty adds to this one.
pub const GRAYLIST: f64 = -80.0;
/// Below this score a peer is not sent this node's own messages.
pub const PUBLISH_THRESHOLD: f64 = -50.0;
/// Peers whose offences are remembered at once (the oldest forgotten first).
pub const OFFENDERS_MAX: usize = 4096;

/// The scoring parameters and thresholds.
pub fn params() -> (PeerScoreParams, PeerScoreThresholds) {
    let params = PeerScoreParams {
        app_specific_weight: 1.0,
        // Nodes of a LAN may share an address (containers, NAT): no penalty for that.
        ip_colocation_factor_weight: 0.0,
        ..PeerScoreParams::default()
    };
    let thresholds = PeerScoreThresholds {
        gossip_threshold: -20.0,
        publish_threshold: PUBLISH_THRESHOLD,
        graylist_threshold: GRAYLIST,
        accept_px_threshold: 10.0,
        opportunistic_graft_threshold: 20.0,
    };
    (params, thresholds)
}

/// The parameters of a fixed topic: only invalid messages count (P4, squared by gossipsub).
pub fn topic_params() -> TopicScoreParams {
    TopicScoreParams {
        topic_weight: 1.0,
        time_in_mesh_weight: 0.0,
        first_message_deliveries_weight: 0.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        invalid_message_deliveries_weight: -10.0,
        invalid_message_deliveries_decay: 0.5,
        ..TopicScoreParams::default()
    }
}

/// Whether a topic gets its own scoring parameters (see the module docs).
pub fn scored(topic: &Topic) -> bool {
    !matches!(topic, Topic::Job(_))
}

/// Invalid messages per peer, for the application score.
#[derive(Debug)]
pub struct InvalidCounts {
    counts: BoundedMap<PeerId, u32>,
}

impl Default for InvalidCounts {
    fn default() -> Self {
        Self {
            counts: BoundedMap::new(OFFENDERS_MAX),
        }
    }
}

impl InvalidCounts {
    /// `peer` sent an invalid message: its new application score.
    pub fn offence(&mut self, peer: PeerId) -> f64 {
        let n = self.counts.get_or_insert_with(peer, || 0);
        *n = n.saturating_add(1);
        PENALTY * f64::from(*n)
    }

    /// Halves every count (forgetting those at zero). Returns the peers with their new scores.
    pub fn decay(&mut self) -> Vec<(PeerId, f64)> {
        let peers: Vec<(PeerId, u32)> = self.counts.iter().map(|(p, n)| (*p, *n / 2)).collect();
        for (peer, n) in &peers {
            if *n == 0 {
                self.counts.remove(peer);
            } else {
                self.counts.insert(*peer, *n);
            }
        }
        peers
            .into_iter()
            .map(|(p, n)| (p, PENALTY * f64::from(n)))
            .collect()
    }
}

/// Sets the scores of `changes` on gossipsub.
pub fn apply(gossip: &mut gossipsub::Behaviour, changes: &[(PeerId, f64)]) {
    for (peer, score) in changes {
        gossip.set_application_score(peer, *score);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parameters_are_valid_and_eight_offences_graylist_a_peer() {
        let (params, thresholds) = params();
        params.validate().unwrap();
        thresholds.validate().unwrap();
        topic_params().validate().unwrap();
        let mut counts = InvalidCounts::default();
        let peer = PeerId::random();
        let scores: Vec<f64> = (0..8).map(|_| counts.offence(peer)).collect();
        assert!(scores[6] > GRAYLIST && scores[7] <= GRAYLIST, "{scores:?}");
        // Forgiven over time: the counts halve until they are gone.
        let mut decays = 0;
        while !counts.decay().is_empty() {
            decays += 1;
            assert!(decays < 8);
        }
    }
}
