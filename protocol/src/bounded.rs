//! The one way Shoal bounds a map: [`BoundedMap`], a map that remembers insertion order and
//! forgets its oldest entry when a new one would take it past its capacity.
//!
//! Every table keyed by something a peer controls (job ids, peer ids, blob hashes) must stop
//! growing somewhere; caches and memories of past events are the common case. A capacity is
//! always explicit, and what is forgotten first is always the oldest insertion, so a peer that
//! floods a table only pushes out its own earlier entries and old ones.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hash};

/// A map of at most `capacity` entries; inserting a new key into a full map evicts the oldest.
/// Re-inserting a key that is present replaces its value and keeps its place. `S` hashes the
/// keys: the protocol passes its fixed hasher (it draws no ambient randomness); the default is
/// std's.
#[derive(Debug, Clone)]
pub struct BoundedMap<K, V, S = std::collections::hash_map::RandomState> {
    entries: HashMap<K, (V, u64), S>,
    /// Keys in insertion order with the stamp they were inserted under: a key removed (or
    /// removed and inserted again) leaves a stale stamp here, skipped when it comes up.
    order: VecDeque<(K, u64)>,
    capacity: usize,
    stamp: u64,
}

impl<K: Hash + Eq + Clone, V, S: BuildHasher + Default> BoundedMap<K, V, S> {
    /// An empty map that holds at most `capacity` entries (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::default(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
            stamp: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, key: &K) -> Option<&V> {
        self.entries.get(key).map(|(v, _)| v)
    }

    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.entries.get_mut(key).map(|(v, _)| v)
    }

    pub fn contains_key(&self, key: &K) -> bool {
        self.entries.contains_key(key)
    }

    /// Inserts or replaces. Returns the entry evicted to make room, if one was.
    pub fn insert(&mut self, key: K, value: V) -> Option<(K, V)> {
        if let Some(slot) = self.entries.get_mut(&key) {
            slot.0 = value;
            return None;
        }
        let evicted = if self.entries.len() >= self.capacity {
            self.pop_oldest()
        } else {
            None
        };
        self.stamp += 1;
        self.order.push_back((key.clone(), self.stamp));
        self.entries.insert(key, (value, self.stamp));
        self.compact();
        evicted
    }

    /// The value under `key`, inserted with `make` first if absent (evicting the oldest entry
    /// of a full map).
    pub fn get_or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        if !self.entries.contains_key(&key) {
            self.insert(key.clone(), make());
        }
        &mut self
            .entries
            .get_mut(&key)
            .expect("present: found or inserted just above")
            .0
    }

    pub fn remove(&mut self, key: &K) -> Option<V> {
        let (value, _) = self.entries.remove(key)?;
        self.compact();
        Some(value)
    }

    /// Removes and returns the oldest entry.
    pub fn pop_oldest(&mut self) -> Option<(K, V)> {
        while let Some((key, stamp)) = self.order.pop_front() {
            if self.entries.get(&key).is_some_and(|(_, s)| *s == stamp) {
                let (value, _) = self.entries.remove(&key).expect("checked just above");
                return Some((key, value));
            }
        }
        None
    }

    /// Keeps only the entries for which `keep` holds.
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &mut V) -> bool) {
        self.entries.retain(|k, (v, _)| keep(k, v));
        self.compact();
    }

    /// Entries, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.order.iter().filter_map(|(key, stamp)| {
            let (k, (v, s)) = self.entries.get_key_value(key)?;
            (s == stamp).then_some((k, v))
        })
    }

    /// Entries in no particular order (cheaper than [`BoundedMap::iter`]).
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.entries.values_mut().map(|(v, _)| v)
    }

    /// Drops stale stamps once they outnumber live entries, so the order list stays within
    /// twice the capacity however keys come and go.
    fn compact(&mut self) {
        if self.order.len() > 2 * self.entries.len().max(self.capacity) {
            let entries = &self.entries;
            self.order
                .retain(|(key, stamp)| entries.get(key).is_some_and(|(_, s)| s == stamp));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filling_past_the_capacity_forgets_the_oldest_first() {
        let mut map: BoundedMap<u32, u32> = BoundedMap::new(3);
        for k in 0..10u32 {
            map.insert(k, k * 10);
        }
        assert_eq!(map.len(), 3);
        let kept: Vec<(u32, u32)> = map.iter().map(|(k, v)| (*k, *v)).collect();
        assert_eq!(kept, vec![(7, 70), (8, 80), (9, 90)]);
    }

    #[test]
    fn replacing_a_value_keeps_its_place_and_evicts_nothing() {
        let mut map: BoundedMap<&str, u32> = BoundedMap::new(2);
        map.insert("a", 1);
        map.insert("b", 2);
        assert!(map.insert("a", 3).is_none());
        assert_eq!(map.insert("c", 4), Some(("a", 3)));
        assert_eq!(map.get(&"b"), Some(&2));
    }

    #[test]
    fn keys_removed_and_inserted_again_do_not_grow_the_order_list() {
        let mut map: BoundedMap<u32, u32> = BoundedMap::new(4);
        for round in 0..10_000u32 {
            map.insert(round % 8, round);
            map.remove(&((round + 3) % 8));
        }
        assert!(map.len() <= 4);
        assert!(map.order.len() <= 8, "{} stale stamps", map.order.len());
        let oldest_first: Vec<u32> = map.iter().map(|(_, v)| *v).collect();
        let mut sorted = oldest_first.clone();
        sorted.sort();
        assert_eq!(oldest_first, sorted);
    }

    #[test]
    fn pop_oldest_skips_removed_keys() {
        let mut map: BoundedMap<u32, ()> = BoundedMap::new(5);
        map.insert(1, ());
        map.insert(2, ());
        map.remove(&1);
        map.insert(1, ());
        assert_eq!(map.pop_oldest().map(|(k, _)| k), Some(2));
        assert_eq!(map.pop_oldest().map(|(k, _)| k), Some(1));
        assert!(map.pop_oldest().is_none());
    }
}
