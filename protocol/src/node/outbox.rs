//! Batching, pacing and publishing.
//!
//! Claims, completions, failures and losses wait in one batch per job; batches leave through
//! a token bucket ([`crate::pacer::FlushPacer`]), so a lone event goes out at once and a storm
//! of them travels in few messages.

use super::Node;
use crate::ids::{JobId, Millis};
use crate::topic::Topic;
use crate::wire::{Batch, Envelope, Message};

impl Node {
    /// Adds an entry to `job`'s pending batch; `bytes` estimates its encoded size.
    pub(super) fn queue_entry(&mut self, job: JobId, bytes: usize, f: impl FnOnce(&mut Batch)) {
        if self.jobs.get(&job).is_some_and(|j| j.alone) {
            // Nobody else runs or waits for a job its submitter runs alone.
            return;
        }
        let batch = match self.pending.iter().position(|b| b.job == job) {
            Some(i) => &mut self.pending[i],
            None => {
                self.pending.push(Batch {
                    job,
                    ..Batch::default()
                });
                self.pending.last_mut().expect("just pushed")
            }
        };
        f(batch);
        self.pending_bytes += bytes;
    }

    /// Sends the pending batches if the pacer allows it, or if they have grown large.
    pub(super) fn maybe_flush(&mut self, now: Millis) {
        if self.pending.is_empty() {
            return;
        }
        let full = self.pending_bytes >= self.cfg.batch_bytes_max;
        // The members busy sending on the job's topic (all of them until counted).
        let senders = self
            .pending
            .iter()
            .filter_map(|b| self.jobs.get(&b.job))
            .map(|j| j.senders.map_or(j.members.len() as u32 + 1, |n| n))
            .max()
            .unwrap_or(1);
        let spaced =
            Millis::from(senders) * 1000 / Millis::from(self.cfg.job_batch_rate_max.max(1));
        self.flush_pacer
            .set_interval(spaced.max(self.cfg.flush_interval_ms));
        if self.flush_pacer.try_take(now) || full {
            self.pending_bytes = 0;
            for batch in std::mem::take(&mut self.pending) {
                let topic = self.topic_of(&batch.job);
                self.publish(topic, Message::Batch(batch));
            }
        }
    }

    /// Encodes `body` and queues it for `topic`.
    pub(super) fn publish(&mut self, topic: Topic, body: Message) {
        self.stats.out_by_kind[body.kind()] += 1;
        self.seq += 1;
        let bytes = Envelope {
            seq: self.seq,
            body,
        }
        .encode();
        self.outbox.push_back((topic, bytes));
    }
}
