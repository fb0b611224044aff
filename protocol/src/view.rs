//! The soft-state view of the mesh, built from capacity adverts.
//!
//! Peers are interned to small indices (index 0 is this node) so that per-task state stays
//! compact. A peer is live while its last advert is younger than the TTL; the set of live peers
//! with slots (the claim candidates) carries a version that changes whenever the set or a
//! weight changes, so that rank tables built from it know when they are stale.

use crate::ids::{IdMap, JobId, Millis, NodeId};
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

#[derive(Debug)]
pub struct View {
    ids: Vec<NodeId>,
    index: IdMap<NodeId, PeerIx>,
    info: Vec<Option<PeerInfo>>,
    /// A peer's TTL is this many of its advert periods, in tenths (35 = 3.5 periods).
    ttl_tenths: Millis,
    /// The TTL floor: adverts from peers that claim a shorter period still live this long.
    ttl_min: Millis,
    my_weight: u32,
    /// Live peers with slots, as (index, weight), this node included when it has slots.
    candidates: Vec<(PeerIx, u32)>,
    version: u64,
}

impl View {
    /// `ttl_min` is the TTL of a peer advertising every `period_min`; peers that advertise less
    /// often (large meshes) get proportionally longer TTLs.
    pub fn new(me: NodeId, my_slots: u32, ttl_min: Millis, period_min: Millis) -> Self {
        let mut view = Self {
            ids: vec![me],
            index: IdMap::from_iter([(me, ME)]),
            info: vec![None],
            ttl_tenths: (ttl_min * 10).div_ceil(period_min.max(1)),
            ttl_min,
            my_weight: my_slots,
            candidates: Vec::new(),
            version: 0,
        };
        view.rebuild_candidates(0);
        view
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
        self.info.push(None);
        Some(ix)
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

    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn candidates(&self) -> &[(PeerIx, u32)] {
        &self.candidates
    }

    pub fn info(&self, ix: PeerIx) -> Option<&PeerInfo> {
        self.info.get(ix as usize)?.as_ref()
    }

    /// Whether `ix` is this node or a peer whose advert has not expired.
    pub fn is_live(&self, ix: PeerIx, now: Millis) -> bool {
        ix == ME || self.info(ix).is_some_and(|p| p.live_at(now))
    }

    /// Whether `ix` listed `job` as active in its latest advert.
    pub fn lists_active(&self, ix: PeerIx, job: &JobId) -> bool {
        self.info(ix)
            .is_some_and(|p| p.advert.active_jobs.contains(job))
    }

    /// Records an advert.
    pub fn update(&mut self, ix: PeerIx, advert: Advert, now: Millis) {
        if ix == ME {
            return;
        }
        let was_live = self.is_live(ix, now);
        let old_weight = self.info(ix).map(|p| p.advert.slots_total);
        let new_weight = advert.slots_total;
        let ttl = (Millis::from(advert.interval_ms) * self.ttl_tenths / 10).max(self.ttl_min);
        self.info[ix as usize] = Some(PeerInfo {
            advert,
            last_seen: now,
            ttl,
        });
        if !was_live || old_weight != Some(new_weight) {
            self.rebuild_candidates(now);
        }
    }

    /// Drops expired peers from the candidate set. Returns whether any dropped out.
    pub fn expire(&mut self, now: Millis) -> bool {
        let stale = self
            .candidates
            .iter()
            .any(|&(ix, _)| !self.is_live(ix, now));
        if stale {
            self.rebuild_candidates(now);
        }
        stale
    }

    fn rebuild_candidates(&mut self, now: Millis) {
        let mut c: Vec<(PeerIx, u32)> = Vec::new();
        if self.my_weight > 0 {
            c.push((ME, self.my_weight));
        }
        for (ix, info) in self.info.iter().enumerate().skip(1) {
            if let Some(p) = info
                && p.live_at(now)
                && p.advert.slots_total > 0
            {
                c.push((ix as PeerIx, p.advert.slots_total));
            }
        }
        self.candidates = c;
        self.version += 1;
    }

    /// Live peers other than this node, with their latest advert.
    pub fn live_peers(&self, now: Millis) -> impl Iterator<Item = (NodeId, &PeerInfo)> {
        self.info
            .iter()
            .enumerate()
            .skip(1)
            .filter_map(move |(ix, info)| {
                let p = info.as_ref()?;
                p.live_at(now).then(|| (self.ids[ix], p))
            })
    }

    /// When the next live peer will expire, if any.
    pub fn next_expiry(&self, now: Millis) -> Option<Millis> {
        self.candidates
            .iter()
            .filter(|&&(ix, _)| ix != ME)
            .filter_map(|&(ix, _)| self.info(ix).map(|p| p.last_seen + p.ttl))
            .filter(|&t| t > now)
            .min()
    }
}
