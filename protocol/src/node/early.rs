//! Batches that arrive before their job's announcement.
//!
//! A member hears of a job from the announcement (on the jobs topic, or forwarded) and of its
//! results from the other members' batches (on the job's topic, perhaps on a direct stream):
//! two paths, and nothing orders them. A member that reports results at once (results it kept
//! from an earlier run of the same job) can reach a slower member before the announcement
//! does. Dropped, those results were never heard there until the job's end (measured: a
//! member that kept a reduce's result never learned that its children were done, and another
//! member computed it again). So the results of a batch for a job this node does not know
//! are kept for a short while, and taken up once the job's announcement arrives. Bounded by
//! age, count and bytes: a peer that sends batches for jobs that never come only pushes out
//! older ones.

use super::{Node, result_entry_len};
use crate::ids::{JobId, Millis};
use crate::view::PeerIx;
use crate::wire::Batch;
use std::collections::VecDeque;

/// How long an early batch waits for its job's announcement.
const EARLY_TTL_MS: Millis = 2_000;

/// Most early batches kept (the oldest go first).
const EARLY_MAX: usize = 64;

/// Most bytes of early batches kept.
const EARLY_BYTES_MAX: usize = 4 << 20;

/// The batches kept, oldest first, with when each came, from whom and its size.
#[derive(Debug, Default)]
pub(super) struct EarlyBatches {
    kept: VecDeque<(Millis, PeerIx, Batch, usize)>,
    bytes: usize,
}

impl EarlyBatches {
    fn expire(&mut self, now: Millis) {
        while let Some((at, ..)) = self.kept.front()
            && (now.saturating_sub(*at) > EARLY_TTL_MS
                || self.kept.len() > EARLY_MAX
                || self.bytes > EARLY_BYTES_MAX)
        {
            if let Some((.., size)) = self.kept.pop_front() {
                self.bytes -= size;
            }
        }
    }

    fn keep(&mut self, now: Millis, from: PeerIx, batch: &Batch) {
        // Only results are kept: a task's result is a fact whenever it is heard (results are
        // deterministic, and a job's id is its content's, so a straggler of an earlier run of
        // the same job says the same). Claims, failures, losses and the rest are about the
        // moment they were sent: taken up late, a straggler's would hold a task or count a
        // failure against it in a later run.
        if batch.done.is_empty() {
            return;
        }
        let batch = Batch {
            job: batch.job,
            done: batch.done.clone(),
            reused: batch.reused.clone(),
            looked_up: batch.looked_up,
            ..Batch::default()
        };
        let size = 64
            + batch
                .done
                .iter()
                .map(|(_, r)| result_entry_len(r))
                .sum::<usize>()
            + 16 * batch.entries();
        if size > EARLY_BYTES_MAX {
            return;
        }
        self.bytes += size;
        self.kept.push_back((now, from, batch, size));
        self.expire(now);
    }

    fn take(&mut self, now: Millis, job: &JobId) -> Vec<(PeerIx, Batch)> {
        self.expire(now);
        if !self.kept.iter().any(|(_, _, b, _)| b.job == *job) {
            return Vec::new();
        }
        let mut taken = Vec::new();
        let mut rest = VecDeque::with_capacity(self.kept.len());
        for (at, from, batch, size) in self.kept.drain(..) {
            if batch.job == *job {
                self.bytes -= size;
                taken.push((from, batch));
            } else {
                rest.push_back((at, from, batch, size));
            }
        }
        self.kept = rest;
        taken
    }
}

impl Node {
    /// A batch for a job this node does not know (yet): kept for its announcement.
    pub(super) fn keep_early(&mut self, now: Millis, from: PeerIx, batch: &Batch) {
        self.early.keep(now, from, batch);
    }

    /// Takes up the batches for `job` that came before its announcement, in their order.
    pub(super) fn take_up_early(&mut self, now: Millis, job: JobId) {
        for (from, batch) in self.early.take(now, &job) {
            self.on_batch(now, from, &batch);
        }
    }
}
