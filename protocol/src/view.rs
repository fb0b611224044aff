//! The soft-state view of the mesh, built from capacity adverts, and the table of every peer
//! this node has heard from.
//!
//! Peers are interned to small indices (index 0 is this node) so that per-task state stays
//! compact. A peer is *in the view* while its last advert is younger than its TTL. The view is
//! bounded: a node listens to the adverts of a block of advert shards wide enough to see about
//! `target` peers ([`crate::coverage`]), so in a small mesh it sees everyone and in a large
//! one a sample of a few hundred. Job members outside the view are tracked by their jobs.

use crate::coverage::Coverage;
use crate::ids::{IdMap, Millis, NodeId};
use crate::wire::Advert;

/// Most distinct peers a node remembers. Bounds the interning table.
pub const MAX_PEERS: usize = 100_000;

/// A small index standing for a [`NodeId`] inside one node.
pub type PeerIx = u32;

/// This node's own index.
pub const ME: PeerIx = 0;

#[derive(Debug, Clone)]
pub struct PeerInfo {
    pub advert: Advert,
    pub last_seen: Millis,
    /// How long after `last_seen` the peer counts as gone: a few of its advert periods.
    pub ttl: Millis,
}

impl PeerInfo {
    fn live_at(&self, now: Millis) -> bool {
        now < self.last_seen.saturating_add(self.ttl)
    }
}

#[derive(Debug, Default, Clone)]
struct Peer {
    advert: Option<PeerInfo>,
    /// Until when something this peer sent (an advert, a job message) vouches for it.
    heard_until: Millis,
}

#[derive(Debug)]
pub struct View {
    ids: Vec<NodeId>,
    index: IdMap<NodeId, PeerIx>,
    peers: Vec<Peer>,
    /// A peer's TTL is this many of its advert periods, in tenths (35 = 3.5 periods).
    ttl_tenths: Millis,
    /// The TTL floor: adverts from peers that claim a shorter period still live this long.
    ttl_min: Millis,
    my_weight: u32,
    coverage: Coverage,
}

impl View {
    /// `ttl_min` is the TTL of a peer advertising every `period_min`; peers that advertise less
    /// often get proportionally longer TTLs.
    pub fn new(
        me: NodeId,
        my_slots: u32,
        ttl_min: Millis,
        period_min: Millis,
        target: usize,
    ) -> Self {
        Self {
            ids: vec![me],
            index: IdMap::from_iter([(me, ME)]),
            peers: vec![Peer::default()],
            ttl_tenths: (ttl_min * 10).div_ceil(period_min.max(1)),
            ttl_min,
            my_weight: my_slots,
            coverage: Coverage::new(&me, target),
        }
    }

    /// The index of `id`, adding it if there is room.
    pub fn intern(&mut self, id: NodeId) -> Option<PeerIx> {
        if let Some(&ix) = self.index.get(&id) {
            return Some(ix);
        }
        if self.ids.len() >= MAX_PEERS {
            return None;
        }
        let ix = self.ids.len() as PeerIx;
        self.ids.push(id);
        self.index.insert(id, ix);
        self.peers.push(Peer::default());
        Some(ix)
    }

    /// Peers interned so far.
    pub fn interned(&self) -> usize {
        self.ids.len()
    }

    pub fn lookup(&self, id: &NodeId) -> Option<PeerIx> {
        self.index.get(id).copied()
    }

    pub fn id(&self, ix: PeerIx) -> NodeId {
        self.ids[ix as usize]
    }

    pub fn my_weight(&self) -> u32 {
        self.my_weight
    }

    pub fn info(&self, ix: PeerIx) -> Option<&PeerInfo> {
        self.peers.get(ix as usize)?.advert.as_ref()
    }

    /// Whether `ix` is this node or a peer in the view (its advert has not expired).
    pub fn is_live(&self, ix: PeerIx, now: Millis) -> bool {
        ix == ME || self.info(ix).is_some_and(|p| p.live_at(now))
    }

    /// Notes that `ix` said something that vouches for it until `until`.
    pub fn heard(&mut self, ix: PeerIx, until: Millis) {
        if let Some(p) = self.peers.get_mut(ix as usize) {
            p.heard_until = p.heard_until.max(until);
        }
    }

    /// Whether `ix` was heard from once and has been silent since long enough to count as gone:
    /// asking it for anything is futile. A peer never heard from is not "gone".
    pub fn gone(&self, ix: PeerIx, now: Millis) -> bool {
        ix != ME
            && self.peers.get(ix as usize).is_some_and(|p| {
                p.heard_until > 0
                    && now >= p.heard_until
                    && !p.advert.as_ref().is_some_and(|a| a.live_at(now))
            })
    }

    /// Records an advert. Returns whether the peer was new to the view.
    pub fn update(&mut self, ix: PeerIx, advert: Advert, now: Millis) -> bool {
        if ix == ME || !self.coverage.covers(&self.id(ix)) {
            return false;
        }
        let was_live = self.is_live(ix, now);
        let interval = advert.interval_ms;
        let periodic = !advert.first;
        let ttl = (Millis::from(interval) * self.ttl_tenths / 10).max(self.ttl_min);
        let peer = &mut self.peers[ix as usize];
        peer.advert = Some(PeerInfo {
            advert,
            last_seen: now,
            ttl,
        });
        peer.heard_until = peer.heard_until.max(now + ttl);
        self.coverage.heard(now, interval, !was_live, periodic);
        !was_live
    }

    /// Whether `id`'s adverts are in the shards this node listens to.
    pub fn covers(&self, id: &NodeId) -> bool {
        self.coverage.covers(id)
    }

    /// The advert shards listened to now.
    pub fn shards(&self) -> impl Iterator<Item = u8> {
        self.coverage.shards()
    }

    pub fn home_shard(&self) -> u8 {
        self.coverage.home()
    }

    /// Whether coverage should be checked before the next advert.
    pub fn coverage_due(&self) -> bool {
        self.coverage.due()
    }

    /// How many peers the view will hold once every peer of its shards has spoken.
    pub fn expected_size(&self, now: Millis) -> u64 {
        self.coverage
            .expected_view(self.live_peers(now).count(), now)
    }

    /// The mesh's estimated size.
    pub fn mesh_estimate(&self, now: Millis) -> u64 {
        self.coverage
            .mesh_estimate(self.live_peers(now).count(), now)
    }

    /// Narrows or widens the shards listened to ([`Coverage::check`]). Returns whether the
    /// coverage changed; peers outside a narrowed coverage leave the view.
    pub fn adjust_coverage(&mut self, now: Millis) -> bool {
        let live = self.live_peers(now).count();
        if self.coverage.check(live, now).is_none() {
            return false;
        }
        for ix in 1..self.peers.len() {
            if !self.coverage.covers(&self.ids[ix]) {
                self.peers[ix].advert = None;
            }
        }
        let live = self.live_peers(now).count();
        self.coverage.set_live(live);
        true
    }

    /// Live peers other than this node, with their latest advert.
    pub fn live_peers(&self, now: Millis) -> impl Iterator<Item = (NodeId, &PeerInfo)> {
        self.peers
            .iter()
            .enumerate()
            .skip(1)
            .filter_map(move |(ix, p)| {
                let info = p.advert.as_ref()?;
                info.live_at(now).then(|| (self.ids[ix], info))
            })
    }

    /// Live peers that offer slots, as (index, slots), and this node first if it offers any.
    pub fn candidates(&self, now: Millis) -> Vec<(PeerIx, u32)> {
        let mut c = Vec::new();
        if self.my_weight > 0 {
            c.push((ME, self.my_weight));
        }
        for (ix, p) in self.peers.iter().enumerate().skip(1) {
            if let Some(info) = &p.advert
                && info.live_at(now)
                && info.advert.slots_total > 0
            {
                c.push((ix as PeerIx, info.advert.slots_total));
            }
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn advert(interval_ms: u32) -> Advert {
        Advert {
            slots_total: 1,
            slots_free: 1,
            cores: 1,
            mem_mb: 1,
            load_milli: 0,
            interval_ms,
            first: false,
            tags: Vec::new(),
            shares: Vec::new(),
        }
    }

    #[test]
    fn narrowing_drops_the_peers_of_the_shards_left() {
        let mut view = View::new(NodeId([1; 32]), 1, 3_500, 1_000, 10);
        for i in 0..100u32 {
            let ix = view
                .intern(NodeId::from_identity_bytes(&i.to_le_bytes()))
                .unwrap();
            view.update(ix, advert(1_000), Millis::from(i) * 10);
        }
        assert!(view.coverage_due());
        assert!(view.adjust_coverage(1_000));
        // 100 peers at a target of 10 call for 64 x 10 / 101, so 8, of the 64 shards.
        assert_eq!(view.shards().count(), 8);
        let kept = view.live_peers(1_000).count();
        assert!(kept < 30, "{kept} peers kept");
        assert!(view.live_peers(1_000).all(|(id, _)| view.covers(&id)));
    }

    #[test]
    fn a_peer_heard_from_then_silent_is_gone() {
        let mut view = View::new(NodeId([1; 32]), 1, 3_500, 1_000, 256);
        let ix = view.intern(NodeId([2; 32])).unwrap();
        assert!(!view.gone(ix, 100), "never heard from");
        view.heard(ix, 3_600);
        assert!(!view.gone(ix, 3_000));
        assert!(view.gone(ix, 3_600));
    }
}
