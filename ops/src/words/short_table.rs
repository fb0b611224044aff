//! Counts keyed by short packed words: a linear-probing table of 32-byte slots.
//!
//! It beats a general map here because a key is one integer, compared whole, with no control
//! bytes to read first, and the slot holding it also holds its count. Keys are packed words
//! (see `super::pack`), never zero, so a zero key marks an empty slot. (Looking keys up in
//! batches, so that their cache misses overlap, was measured and was slower.)

use std::collections::HashMap;

/// Probes after which a key goes to the overflow map instead: the hash is fixed and public, so
/// input crafted to collide must not turn counting quadratic.
const PROBE_LIMIT: usize = 64;

const MIN_BITS: u32 = 12;

#[derive(Clone, Copy, Default)]
struct Slot {
    key: u128,
    count: u64,
}

pub(super) struct ShortTable {
    slots: Vec<Slot>,
    bits: u32,
    len: usize,
    overflow: HashMap<u128, u64, foldhash::fast::FixedState>,
}

impl Default for ShortTable {
    fn default() -> Self {
        Self {
            slots: vec![Slot::default(); 1 << MIN_BITS],
            bits: MIN_BITS,
            len: 0,
            overflow: HashMap::default(),
        }
    }
}

impl ShortTable {
    /// The home slot of `key`: a multiplicative hash of both halves, top bits taken.
    fn home(&self, key: u128) -> usize {
        let (lo, hi) = (key as u64, (key >> 64) as u64);
        let h = lo.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ hi.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
        (h.wrapping_mul(0xFF51_AFD7_ED55_8CCD) >> (64 - self.bits)) as usize
    }

    /// Adds `n` to the count of `key` (not zero).
    #[inline]
    pub(super) fn add(&mut self, key: u128, n: u64) {
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let home = self.home(key);
        // Most lookups end at the home slot: a word seen before, with no collision.
        let slot = &mut self.slots[home];
        if slot.key == key {
            slot.count += n;
        } else {
            self.add_from(key, home, n);
        }
    }

    fn add_from(&mut self, key: u128, home: usize, n: u64) {
        let mask = self.slots.len() - 1;
        let mut at = home;
        for _ in 0..PROBE_LIMIT {
            let slot = &mut self.slots[at];
            if slot.key == key {
                slot.count += n;
                return;
            }
            if slot.key == 0 {
                *slot = Slot { key, count: n };
                self.len += 1;
                return;
            }
            at = (at + 1) & mask;
        }
        *self.overflow.entry(key).or_insert(0) += n;
    }

    fn grow(&mut self) {
        let old = std::mem::replace(&mut self.slots, vec![Slot::default(); 2 << self.bits]);
        self.bits += 1;
        self.len = 0;
        for slot in old.into_iter().filter(|s| s.key != 0) {
            self.add_from(slot.key, self.home(slot.key), slot.count);
        }
    }

    /// Every key with its count, in no particular order, each key once; empties the table
    /// (keeping its size for the next chunk).
    pub(super) fn drain(&mut self) -> Vec<(u128, u64)> {
        let mut out = Vec::with_capacity(self.len + self.overflow.len());
        for slot in self.slots.iter_mut().filter(|s| s.key != 0) {
            out.push((slot.key, slot.count));
            *slot = Slot::default();
        }
        self.len = 0;
        if !self.overflow.is_empty() {
            // A key may sit in both places: one that overflowed before the table grew.
            let mut merged: HashMap<u128, u64, foldhash::fast::FixedState> =
                self.overflow.drain().collect();
            for (key, count) in out.drain(..) {
                *merged.entry(key).or_insert(0) += count;
            }
            out.extend(merged);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn drained(table: &mut ShortTable) -> BTreeMap<u128, u64> {
        let pairs = table.drain();
        let map: BTreeMap<u128, u64> = pairs.iter().copied().collect();
        assert_eq!(map.len(), pairs.len(), "a key came out twice");
        map
    }

    #[test]
    fn counts_like_a_map_through_growth_and_reuse() {
        let mut table = ShortTable::default();
        let mut expected = BTreeMap::new();
        let mut rng = crate::rng::SplitMix64(3);
        for _ in 0..2 {
            expected.clear();
            let keys: Vec<u128> = (0..50_000)
                .map(|_| u128::from(rng.next_u64() % 20_000 + 1) << (rng.next_u64() % 64))
                .collect();
            for &k in &keys {
                table.add(k, 1);
                *expected.entry(k).or_insert(0) += 1;
            }
            assert_eq!(drained(&mut table), expected);
        }
    }

    #[test]
    fn colliding_keys_overflow_without_losing_counts() {
        let mut table = ShortTable::default();
        // Keys with equal home slots, found by search: far more than the probe limit.
        let target = table.home(1);
        let colliding: Vec<u128> = (1u128..)
            .filter(|&k| table.home(k) == target)
            .take(PROBE_LIMIT * 3)
            .collect();
        for _ in 0..3 {
            for &k in &colliding {
                table.add(k, 1);
            }
        }
        let counts = drained(&mut table);
        assert_eq!(counts.len(), colliding.len());
        assert!(counts.values().all(|&n| n == 3));
    }
}
