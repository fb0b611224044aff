//! The event queue: a timing wheel of one-millisecond slots, with a heap for events beyond its
//! horizon.
//!
//! Events come out ordered by (time, insertion order), exactly like a heap keyed on
//! (time, sequence number) would give them, but pushing and popping an event costs O(1) for
//! the near future, where nearly all of a simulation's events land (message deliveries a few
//! milliseconds ahead). Determinism rests on that order alone.

use crate::ids::Millis;
use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};

/// Slots of the wheel: events up to this far ahead go straight into their slot.
const HORIZON: Millis = 4096;

struct Far<E> {
    at: Millis,
    seq: u64,
    event: E,
}

impl<E> PartialEq for Far<E> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl<E> Eq for Far<E> {}
impl<E> PartialOrd for Far<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<E> Ord for Far<E> {
    // Reversed: BinaryHeap is a max-heap and the earliest event must come first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

pub struct EventQueue<E> {
    /// The slot being drained: no event is ever scheduled before it.
    cursor: Millis,
    wheel: Vec<VecDeque<E>>,
    in_wheel: usize,
    far: BinaryHeap<Far<E>>,
    seq: u64,
}

impl<E> std::fmt::Debug for EventQueue<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventQueue")
            .field("cursor", &self.cursor)
            .field("events", &(self.in_wheel + self.far.len()))
            .finish()
    }
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        Self {
            cursor: 0,
            wheel: (0..HORIZON).map(|_| VecDeque::new()).collect(),
            in_wheel: 0,
            far: BinaryHeap::new(),
            seq: 0,
        }
    }
}

impl<E> EventQueue<E> {
    /// Schedules `event` at `at` (an event in the past is due now).
    pub fn push(&mut self, at: Millis, event: E) {
        let at = at.max(self.cursor);
        if at < self.cursor + HORIZON {
            self.wheel[(at % HORIZON) as usize].push_back(event);
            self.in_wheel += 1;
        } else {
            self.seq += 1;
            self.far.push(Far {
                at,
                seq: self.seq,
                event,
            });
        }
    }

    /// The next event and its time.
    pub fn pop(&mut self) -> Option<(Millis, E)> {
        self.pop_until(Millis::MAX)
    }

    /// The next event, if it is due at or before `limit`. Otherwise none, and nothing is
    /// consumed: the queue's clock stops before the next event (or at `limit`).
    pub fn pop_until(&mut self, limit: Millis) -> Option<(Millis, E)> {
        loop {
            if let Some(event) = self.wheel[(self.cursor % HORIZON) as usize].pop_front() {
                self.in_wheel -= 1;
                return Some((self.cursor, event));
            }
            // Nothing near: jump to the first far event.
            let next = if self.in_wheel == 0 {
                self.far.peek()?.at
            } else {
                self.cursor + 1
            };
            if next > limit {
                return None;
            }
            self.cursor = next;
            // Far events entering the horizon go in before anything can be pushed to their
            // slot directly, so they keep their place in the order.
            while self
                .far
                .peek()
                .is_some_and(|f| f.at < self.cursor + HORIZON)
            {
                let f = self.far.pop().expect("peeked");
                self.wheel[(f.at % HORIZON) as usize].push_back(f.event);
                self.in_wheel += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_come_out_by_time_then_insertion_order() {
        let mut q = EventQueue::default();
        let mut reference = Vec::new();
        // A small xorshift: the order must hold for any pattern of times.
        let mut state = 3u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut n = 0u64;
        let mut now = 0;
        let mut out = Vec::new();
        for round in 0..2_000 {
            for _ in 0..3 {
                let at = now + next() % if round % 7 == 0 { 20_000 } else { 50 };
                q.push(at, n);
                reference.push((at, n));
                n += 1;
            }
            if round % 2 == 0
                && let Some((t, e)) = q.pop()
            {
                now = t;
                out.push((t, e));
            }
        }
        while let Some(x) = q.pop() {
            out.push(x);
        }
        reference.sort();
        assert_eq!(out, reference);
    }

    #[test]
    fn pop_until_leaves_later_events_in_place() {
        let mut q = EventQueue::default();
        q.push(5, "a");
        q.push(9000, "far");
        q.push(7, "b");
        assert_eq!(q.pop_until(4), None);
        assert_eq!(q.pop_until(6), Some((5, "a")));
        assert_eq!(q.pop_until(6), None);
        q.push(6, "pushed at the limit");
        assert_eq!(q.pop(), Some((6, "pushed at the limit")));
        assert_eq!(q.pop_until(8000), Some((7, "b")));
        assert_eq!(q.pop_until(8000), None);
        assert_eq!(q.pop(), Some((9000, "far")));
        assert_eq!(q.pop(), None);
    }
}
