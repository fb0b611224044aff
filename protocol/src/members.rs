//! The members of one job as one node sees them: who they are, what they offer, and whether
//! they are still there.
//!
//! A member is live while it keeps talking on the job's topic (every member pulses at least
//! once per pulse period). A member that was announced but not heard from yet counts as live
//! from the moment this node learnt of it, so that all members start from the same ranking and
//! a member that never shows up drops out after one TTL.

use crate::ids::{IdMap, Millis, NodeId};
use crate::view::{ME, PeerIx};

/// Most members one node tracks for one job: the announced ones and any other peer heard on
/// the job's topic.
pub const MAX_TRACKED: usize = 2 * crate::wire::MAX_MEMBERS;

#[derive(Debug, Clone)]
pub struct Member {
    pub ix: PeerIx,
    pub id: NodeId,
    /// Slots it offers the job (0: it takes no tasks).
    pub weight: u32,
    /// When it was last heard on the job's topic (or announced).
    pub heard: Millis,
    /// Whether it counted as live at the last check.
    pub live: bool,
    /// Tasks it said it is running, in its latest pulse.
    pub running: Vec<u32>,
    /// When it last sent a batch (0: never).
    pub last_batch: Millis,
    /// Named by the submitter's announcement, rather than only heard on the job's topic: only
    /// announced members are given the job's data.
    pub announced: bool,
}

/// What changed in the ranking: a candidate (weight above zero) came or went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RankChange {
    pub id: NodeId,
    pub weight: u32,
    pub joined: bool,
}

#[derive(Debug, Default)]
pub struct Members {
    list: Vec<Member>,
    slot: IdMap<PeerIx, usize>,
}

impl Members {
    pub fn get(&self, ix: PeerIx) -> Option<&Member> {
        self.slot.get(&ix).map(|&i| &self.list[i])
    }

    pub fn iter(&self) -> impl Iterator<Item = &Member> {
        self.list.iter()
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Whether `ix` is this node or a live member.
    pub fn is_live(&self, ix: PeerIx) -> bool {
        ix == ME || self.get(ix).is_some_and(|m| m.live)
    }

    /// Live members that take tasks, this node included.
    pub fn live_candidates(&self) -> usize {
        self.list.iter().filter(|m| m.live && m.weight > 0).count()
    }

    /// Adds `id` or updates its weight. Returns the ranking changes.
    pub fn announce(
        &mut self,
        ix: PeerIx,
        id: NodeId,
        weight: u32,
        now: Millis,
    ) -> Vec<RankChange> {
        match self.slot.get(&ix) {
            Some(&i) => {
                let m = &mut self.list[i];
                m.announced = true;
                if m.weight == weight {
                    return Vec::new();
                }
                let old = m.weight;
                m.weight = weight;
                if !m.live {
                    return Vec::new();
                }
                let mut changes = Vec::new();
                if old > 0 {
                    changes.push(RankChange {
                        id,
                        weight: old,
                        joined: false,
                    });
                }
                if weight > 0 {
                    changes.push(RankChange {
                        id,
                        weight,
                        joined: true,
                    });
                }
                changes
            }
            None => {
                if !self.insert(ix, id, weight, now, true) || weight == 0 {
                    return Vec::new();
                }
                vec![RankChange {
                    id,
                    weight,
                    joined: true,
                }]
            }
        }
    }

    fn insert(
        &mut self,
        ix: PeerIx,
        id: NodeId,
        weight: u32,
        now: Millis,
        announced: bool,
    ) -> bool {
        if self.list.len() >= MAX_TRACKED {
            return false;
        }
        self.slot.insert(ix, self.list.len());
        self.list.push(Member {
            ix,
            id,
            weight,
            heard: now,
            live: true,
            running: Vec::new(),
            last_batch: 0,
            announced,
        });
        true
    }

    /// `ix` spoke on the job's topic. A peer not announced as a member is tracked with no
    /// weight (its claims and results still count). Returns a ranking change if it came back.
    pub fn heard(&mut self, ix: PeerIx, id: NodeId, now: Millis) -> Option<RankChange> {
        let Some(&i) = self.slot.get(&ix) else {
            self.insert(ix, id, 0, now, false);
            return None;
        };
        let m = &mut self.list[i];
        m.heard = m.heard.max(now);
        if m.live {
            return None;
        }
        m.live = true;
        (m.weight > 0).then_some(RankChange {
            id,
            weight: m.weight,
            joined: true,
        })
    }

    /// `ix` sent a batch.
    pub fn sent_batch(&mut self, ix: PeerIx, now: Millis) {
        if let Some(&i) = self.slot.get(&ix) {
            self.list[i].last_batch = now;
        }
    }

    /// Members that sent a batch at or after `since`.
    pub fn senders_since(&self, since: Millis) -> usize {
        self.list
            .iter()
            .filter(|m| m.last_batch > 0 && m.last_batch >= since)
            .count()
    }

    /// Records the tasks `ix` says it runs.
    pub fn set_running(&mut self, ix: PeerIx, running: &[u32]) {
        if let Some(&i) = self.slot.get(&ix) {
            let m = &mut self.list[i];
            m.running.clear();
            m.running.extend_from_slice(running);
        }
    }

    /// Whether `ix` said, in its latest pulse, that it runs `task`.
    pub fn runs(&self, ix: PeerIx, task: u32) -> bool {
        self.get(ix).is_some_and(|m| m.running.contains(&task))
    }

    /// Marks members silent for `ttl` as gone. Returns them, with the ranking changes.
    pub fn expire(&mut self, now: Millis, ttl: Millis) -> (Vec<PeerIx>, Vec<RankChange>) {
        let mut gone = Vec::new();
        let mut changes = Vec::new();
        for m in &mut self.list {
            if m.ix != ME && m.live && now >= m.heard.saturating_add(ttl) {
                m.live = false;
                m.running.clear();
                gone.push(m.ix);
                if m.weight > 0 {
                    changes.push(RankChange {
                        id: m.id,
                        weight: m.weight,
                        joined: false,
                    });
                }
            }
        }
        (gone, changes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silent_member_expires_and_comes_back_when_heard() {
        let mut m = Members::default();
        let id = NodeId([2; 32]);
        assert_eq!(m.announce(1, id, 2, 0).len(), 1);
        assert!(m.is_live(1), "announced members start live");
        let (gone, changes) = m.expire(3_000, 3_500);
        assert!(gone.is_empty() && changes.is_empty());
        let (gone, changes) = m.expire(3_500, 3_500);
        assert_eq!(gone, vec![1]);
        assert!(!changes[0].joined);
        assert!(!m.is_live(1));
        let back = m.heard(1, id, 4_000).unwrap();
        assert!(back.joined && back.weight == 2);
        assert!(m.is_live(1));
    }

    #[test]
    fn strangers_heard_on_the_topic_are_tracked_without_weight() {
        let mut m = Members::default();
        assert_eq!(m.heard(3, NodeId([3; 32]), 10), None);
        assert!(m.is_live(3));
        assert_eq!(m.live_candidates(), 0);
    }
}
