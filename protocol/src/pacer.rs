//! Paces batch flushes with a token bucket: up to `burst` batches go out at once, then one per
//! `interval`. An isolated event (a claim, and its completion a millisecond later) leaves at
//! once, which keeps one-task jobs fast; a storm of events is batched, which keeps message
//! counts low.

use crate::ids::Millis;

#[derive(Debug, Clone)]
pub struct FlushPacer {
    interval: Millis,
    burst: u32,
    tokens: u32,
    /// Tokens are accounted up to this time.
    refilled_at: Millis,
}

impl FlushPacer {
    pub fn new(interval: Millis, burst: u32) -> Self {
        let burst = burst.max(1);
        Self {
            interval,
            burst,
            tokens: burst,
            refilled_at: 0,
        }
    }

    fn refill(&mut self, now: Millis) {
        if self.interval == 0 {
            self.tokens = self.burst;
            return;
        }
        let earned = now.saturating_sub(self.refilled_at) / self.interval;
        if earned > 0 {
            self.tokens = (u64::from(self.tokens) + earned).min(u64::from(self.burst)) as u32;
            self.refilled_at += earned * self.interval;
        }
        if self.tokens == self.burst {
            // A full bucket earns nothing more: start counting from now.
            self.refilled_at = now;
        }
    }

    /// Changes the interval between batches once the burst is spent.
    pub fn set_interval(&mut self, interval: Millis) {
        self.interval = interval;
    }

    /// Whether a batch may go out now; if so, it is counted.
    pub fn try_take(&mut self, now: Millis) -> bool {
        self.refill(now);
        if self.tokens > 0 {
            self.tokens -= 1;
            true
        } else {
            false
        }
    }

    /// When the next batch may go out, if none may now.
    pub fn next_at(&self) -> Millis {
        if self.tokens > 0 {
            self.refilled_at
        } else {
            self.refilled_at + self.interval
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_goes_out_at_once_then_one_per_interval() {
        let mut p = FlushPacer::new(5, 3);
        assert!(p.try_take(100));
        assert!(p.try_take(100));
        assert!(p.try_take(101));
        assert!(!p.try_take(102), "the burst is spent");
        assert_eq!(p.next_at(), 105);
        assert!(p.try_take(105));
        assert!(!p.try_take(106));
        assert!(p.try_take(110));
        // A quiet spell refills the whole burst, no more.
        assert!(p.try_take(1000) && p.try_take(1000) && p.try_take(1000));
        assert!(!p.try_take(1000));
    }
}
