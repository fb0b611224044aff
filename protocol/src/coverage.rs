//! Which advert shards a node listens to: enough to see about `target` peers.
//!
//! A node listens to an aligned block of `width` of the [`SHARDS`] advert shards (see
//! [`crate::topic`]). The right width follows from the mesh's size N: a block of width w holds
//! about N·w/64 peers. The node estimates N from what it hears:
//!
//! - once its count is complete (it has listened for longer than the longest advert period it
//!   has heard, so every peer of its block has spoken), from its view: live peers · 64 / w;
//! - before that (a newcomer), from the rate of adverts: a peer that advertises every I
//!   seconds stands for I / Δt peers when one of its adverts arrives in a window of Δt seconds
//!   (the Horvitz-Thompson estimator), so N ≈ Σ (64 / w) · I / Δt, each advert scaled by the
//!   share of shards listened to when it arrived, over the node's whole life so far. A newcomer to a large mesh
//!   narrows after a few dozen adverts instead of listening to every shard for a whole period.
//!   Such an estimate only narrows a view it says would hold over twice the target: in a mesh
//!   that boots all at once a short window counts the joins as well and overestimates.
//!
//! Besides the estimate, two rules of observation hold: a view of twice the target narrows at
//! least one step, and a view of over half the target never widens.

use crate::ids::{Millis, NodeId};
use crate::topic::{SHARDS, covered_shards, shard_of};

/// Coverage is checked again after this many first contacts.
const CONTACTS_PER_CHECK: usize = 32;
/// Adverts, and time, a rate estimate needs before it counts.
const RATE_SAMPLE_MIN: u32 = 16;
const RATE_WINDOW_MIN_MS: Millis = 100;
/// Longest advert period counted in a rate estimate, so that a few peers claiming absurd
/// periods cannot inflate it much.
const RATE_INTERVAL_CAP_MS: Millis = 60_000;

#[derive(Debug)]
pub struct Coverage {
    home: u8,
    width: u32,
    target: usize,
    /// Live peers at the last check plus first contacts since: an upper bound of the view's
    /// size, so that a crowding view narrows at once rather than at the next advert.
    live_bound: usize,
    /// First contacts since the last check.
    contacts_since_check: usize,
    /// From when the node's own count is complete; set at the first check and after widening.
    settled_at: Option<Millis>,
    /// The longest advert period any peer has announced.
    longest_interval: Millis,
    /// Adverts heard since `window_start` (the first), and the sum of their periods, each
    /// scaled by the share of shards listened to when it arrived.
    window_start: Option<Millis>,
    window_adverts: u32,
    window_weighted_sum: u64,
}

impl Coverage {
    /// A node of shard `home` starts out listening to every shard.
    pub fn new(me: &NodeId, target: usize) -> Self {
        Self {
            home: shard_of(me),
            width: SHARDS,
            target: target.max(2),
            live_bound: 0,
            contacts_since_check: 0,
            settled_at: None,
            longest_interval: 0,
            window_start: None,
            window_adverts: 0,
            window_weighted_sum: 0,
        }
    }

    /// Whether `id`'s adverts are in the shards listened to.
    pub fn covers(&self, id: &NodeId) -> bool {
        let block = !(self.width - 1);
        u32::from(shard_of(id)) & block == u32::from(self.home) & block
    }

    /// The shards listened to now.
    pub fn shards(&self) -> impl Iterator<Item = u8> {
        covered_shards(self.home, self.width)
    }

    pub fn home(&self) -> u8 {
        self.home
    }

    /// An advert from a covered peer, announcing `interval_ms`; `first_contact` if the peer
    /// was not in the view; `periodic` unless it is the peer's first advert (a join, not a
    /// sample of the periodic stream the rate estimate measures: counting joins would
    /// overestimate a growing mesh many times over).
    pub fn heard(&mut self, now: Millis, interval_ms: u32, first_contact: bool, periodic: bool) {
        let interval = Millis::from(interval_ms);
        self.longest_interval = self.longest_interval.max(interval);
        self.window_start.get_or_insert(now);
        if periodic {
            self.window_adverts += 1;
            self.window_weighted_sum +=
                interval.min(RATE_INTERVAL_CAP_MS) * u64::from(SHARDS / self.width);
        }
        if first_contact {
            self.live_bound += 1;
            self.contacts_since_check += 1;
        }
    }

    /// Whether a check is due before the next advert: the view may have grown past twice its
    /// target, or enough new peers spoke to say more about the mesh's size.
    pub fn due(&self) -> bool {
        self.width > 1
            && (self.live_bound >= 2 * self.target
                || self.contacts_since_check >= CONTACTS_PER_CHECK)
    }

    fn settled(&self, now: Millis) -> bool {
        self.settled_at.is_some_and(|t| now >= t)
    }

    /// Starts the wait until the node's own count is complete: the longest advert period heard
    /// so far, and a fifth more for jitter. (A node that never heard a peer, the first of a
    /// mesh, knows at once.)
    fn unsettle(&mut self, now: Millis) {
        self.settled_at = Some(now + self.longest_interval * 6 / 5);
    }

    /// The mesh's size, given `live` peers in the view (see the module docs).
    pub fn mesh_estimate(&self, live: usize, now: Millis) -> u64 {
        let scale = u64::from(SHARDS / self.width);
        let counted = (live as u64 + 1) * scale;
        if self.settled(now) {
            return counted;
        }
        let rate = match self.window_start {
            Some(start)
                if self.window_adverts >= RATE_SAMPLE_MIN && now >= start + RATE_WINDOW_MIN_MS =>
            {
                self.window_weighted_sum / (now - start)
            }
            _ => 0,
        };
        counted.max(rate)
    }

    /// How many nodes hear this node's adverts, as far as it can tell: its own view's size,
    /// or, if more, what a view sized for the estimated mesh holds (the mesh itself in a small
    /// mesh, the target to twice the target in a large one). A node whose own view is narrower
    /// than its listeners' (a newcomer, or after a misestimate) still paces its adverts for
    /// them.
    pub fn expected_view(&self, live: usize, now: Millis) -> u64 {
        let mesh = self.mesh_estimate(live, now).max(1);
        let width = self.fitting_width(mesh);
        (live as u64).max(mesh * u64::from(width) / u64::from(SHARDS))
    }

    /// The narrowest block whose share of a mesh of `mesh` nodes holds the target.
    fn fitting_width(&self, mesh: u64) -> u32 {
        (self.target as u64 * u64::from(SHARDS))
            .div_ceil(mesh)
            .next_power_of_two()
            .clamp(1, u64::from(SHARDS)) as u32
    }

    /// Decides the width for a view of `live` peers. Returns the new width if it changed.
    pub fn check(&mut self, live: usize, now: Millis) -> Option<u32> {
        self.contacts_since_check = 0;
        self.live_bound = live;
        if self.settled_at.is_none() {
            self.unsettle(now);
        }
        let mesh = self.mesh_estimate(live, now).max(1);
        let mut width = self.fitting_width(mesh);
        let crowding = mesh * u64::from(self.width) / u64::from(SHARDS) >= 2 * self.target as u64;
        if !self.settled(now) && width < self.width && !crowding {
            width = self.width;
        }
        if live >= 2 * self.target {
            width = width.min(self.width / 2).max(1);
        }
        if width > self.width && live >= self.target / 2 {
            width = self.width;
        }
        if width == self.width {
            return None;
        }
        if width > self.width {
            // The new shards' peers are yet to be heard from.
            self.unsettle(now);
        }
        self.width = width;
        Some(width)
    }

    /// Corrects the bound on the view's size after peers left it.
    pub fn set_live(&mut self, live: usize) {
        self.live_bound = live;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newcomer_to_a_large_mesh_narrows_from_the_rate_of_adverts() {
        let mut c = Coverage::new(&NodeId([0; 32]), 256);
        // 10,000 peers advertising every 20 s reach a full-width listener at 500 adverts/s:
        // 150 of them in 300 ms.
        for i in 0..150 {
            c.heard(i * 2, 20_000, true, true);
        }
        assert!(c.due());
        let estimate = c.mesh_estimate(150, 300);
        assert!((5_000..20_000).contains(&estimate), "{estimate}");
        // 256 peers of 10,000 need 2 of the 64 shards.
        assert_eq!(c.check(150, 300), Some(2));
    }

    #[test]
    fn a_small_mesh_keeps_every_shard() {
        let mut c = Coverage::new(&NodeId([0; 32]), 256);
        for i in 0..30 {
            c.heard(i * 30, 1_000, i < 5, true);
        }
        assert_eq!(c.check(5, 900), None);
        assert_eq!(c.shards().count(), 64);
    }

    #[test]
    fn a_crowded_view_narrows_and_an_empty_one_widens_all_the_way() {
        let mut c = Coverage::new(&NodeId([0; 32]), 10);
        c.check(0, 0);
        // A settled count of 100 peers at full width calls for 64 x 10 / 101 shards.
        assert_eq!(c.check(100, 1), Some(8));
        assert!(c.covers(&NodeId([0; 32])));
        assert_eq!(c.check(0, 2), Some(64));
    }
}
