//! Byzantine nodes: members that run the real protocol but lie. Each one
//!
//! - corrupts every result it computes, plausibly and differently from every other liar (its
//!   counts off by its own ordinal, so liars never agree with each other by accident: they
//!   would have to collude);
//! - forges, with each batch it publishes, a claim and a completion (an inline result of
//!   random bytes) for tasks it never ran;
//! - replays messages it saw earlier (others', and old ones), seconds late;
//! - sends malformed bytes to its neighbours.
//!
//! The invariant it checks (`World::check`): with `--replicas 2` or more, every job that
//! finishes is exact, and no liar's vote ever wins.

use shoal_ops::{self as ops};
use shoal_protocol::Operator;
use shoal_protocol::harness::Published;
use shoal_protocol::wire::{Batch, Envelope, Message, ResultRef};
use std::collections::VecDeque;
use std::rc::Rc;

/// Messages kept for replaying.
pub const REPLAY_POOL: usize = 64;

/// A liar's result: the honest one, off by `ordinal + 1` counts.
pub fn corrupt(op: &Operator, honest: Vec<u8>, ordinal: u32) -> Vec<u8> {
    let mut bytes = honest;
    for _ in 0..=ordinal {
        match ops::plausible_lie(op, &bytes) {
            Ok(lie) => bytes = lie,
            Err(_) => break,
        }
    }
    bytes
}

/// A batch a liar sends alongside `real` (its own batch of the same job): a claim of
/// `claim` and a completion of `done` with `junk` as its result.
pub fn forged_batch(real: &Batch, claim: u32, done: u32, junk: [u8; 8]) -> Message {
    Message::Batch(Batch {
        job: real.job,
        claims: vec![claim],
        done: vec![(done, ResultRef::Inline(junk.to_vec().into()))],
        ..Batch::default()
    })
}

/// Wraps a forged message as a publication of `from`.
pub fn publication(id: u64, from: u32, real: &Published, body: Message) -> Rc<Published> {
    let env = Envelope {
        seq: real.env.seq ^ 0xF0_0D,
        body,
    };
    let len = env.encode().len();
    Rc::new(Published {
        id,
        from,
        from_id: real.from_id,
        topic: real.topic,
        env,
        len,
    })
}

/// The recent publications liars replay.
#[derive(Debug, Default)]
pub struct ReplayPool {
    seen: VecDeque<Rc<Published>>,
}

impl ReplayPool {
    pub fn remember(&mut self, msg: &Rc<Published>) {
        if self.seen.len() >= REPLAY_POOL {
            self.seen.pop_front();
        }
        self.seen.push_back(msg.clone());
    }

    /// The `i`-th remembered publication (modulo the pool), if any.
    pub fn pick(&self, i: u64) -> Option<Rc<Published>> {
        if self.seen.is_empty() {
            return None;
        }
        self.seen
            .get((i % self.seen.len() as u64) as usize)
            .cloned()
    }
}
