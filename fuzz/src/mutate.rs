//! A small mutation engine: each input is a seed (a valid encoding) with a few random edits,
//! or plain random bytes, drawn from a seeded generator so that any crash replays.
//!
//! The edits are the ones that find decoder bugs in practice: a byte flipped or set to a
//! boundary value (0, 0x7f, 0x80, 0xff: varint and length edges), a run inserted or removed,
//! a truncation, a slice copied elsewhere, and a splice of two seeds.

use shoal_ops::SplitMix64;

/// Longest input tried.
pub const MAX_LEN: usize = 4096;

/// Draws fuzz inputs from seeds.
#[derive(Debug)]
pub struct Mutator {
    rng: SplitMix64,
}

impl Mutator {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: SplitMix64(seed),
        }
    }

    fn below(&mut self, n: usize) -> usize {
        (self.rng.next_u64() % n.max(1) as u64) as usize
    }

    /// The next input.
    pub fn next(&mut self, seeds: &[Vec<u8>]) -> Vec<u8> {
        if seeds.is_empty() || self.below(16) == 0 {
            let len = self.below(256);
            return (0..len).map(|_| self.rng.next_u64() as u8).collect();
        }
        let mut out = seeds[self.below(seeds.len())].clone();
        let edits = 1 + self.below(4);
        for _ in 0..edits {
            self.edit(&mut out, seeds);
        }
        out.truncate(MAX_LEN);
        out
    }

    fn edit(&mut self, out: &mut Vec<u8>, seeds: &[Vec<u8>]) {
        let at = self.below(out.len() + 1);
        match self.below(7) {
            0 if !out.is_empty() => {
                let i = at.min(out.len() - 1);
                out[i] ^= 1 << self.below(8);
            }
            1 if !out.is_empty() => {
                let i = at.min(out.len() - 1);
                out[i] = [0, 0x7f, 0x80, 0xff, 0xfb, 0xfc, 0xfd][self.below(7)];
            }
            2 => {
                let n = 1 + self.below(16);
                let run: Vec<u8> = (0..n).map(|_| self.rng.next_u64() as u8).collect();
                out.splice(at..at, run);
            }
            3 if at < out.len() => {
                let end = (at + 1 + self.below(16)).min(out.len());
                out.drain(at..end);
            }
            4 => out.truncate(at),
            5 if !out.is_empty() => {
                let from = self.below(out.len());
                let end = (from + 1 + self.below(32)).min(out.len());
                let copy = out[from..end].to_vec();
                out.splice(at..at, copy);
            }
            _ => {
                let other = &seeds[self.below(seeds.len())];
                let cut = self.below(other.len() + 1);
                out.truncate(at);
                out.extend_from_slice(&other[cut..]);
            }
        }
    }
}
