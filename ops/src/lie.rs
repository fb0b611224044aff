//! Plausibly wrong partial results, the way a broken or dishonest machine would report them:
//! one count changed by one, or (for a WebAssembly module's opaque partials) one bit flipped.
//! Only the node's `fault-injection` feature and the tests use this: a wrong result that still
//! decodes is what replicated tasks must catch (one that does not decode fails on its own).

use crate::run::OpError;
use shoal_protocol::Operator;
use shoal_protocol::codec;

/// `partial` (a map or reduce result of `op`) with one count off by one.
pub fn plausible_lie(op: &Operator, partial: &[u8]) -> Result<Vec<u8>, OpError> {
    Ok(match op {
        Operator::WordCount => {
            let mut counts: Vec<(&str, u64)> = codec::decode_blob(partial)?;
            match counts.first_mut() {
                Some((_, n)) => *n += 1,
                None => counts.push(("shoal", 1)),
            }
            codec::encode_blob(&counts)
        }
        Operator::Grep { .. } => {
            let n: u64 = codec::decode_blob(partial)?;
            codec::encode_blob(&(n + 1))
        }
        Operator::SumSq => {
            let x: u128 = codec::decode_blob(partial)?;
            codec::encode_blob(&(x + 1))
        }
        Operator::Pi => {
            let (samples, hits): (u64, u64) = codec::decode_blob(partial)?;
            // A hit more, or one fewer when every sample hit; a partial of no samples gains one.
            let (samples, hits) = match hits.checked_sub(1) {
                _ if hits < samples => (samples, hits + 1),
                Some(fewer) => (samples, fewer),
                None => (samples.saturating_add(1), hits),
            };
            codec::encode_blob(&(samples, hits))
        }
        Operator::Wasm { .. } => {
            let mut out = partial.to_vec();
            match out.last_mut() {
                Some(b) => *b ^= 1,
                None => out.push(1),
            }
            out
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MapInput, finalize, map};

    #[test]
    fn every_built_in_lie_still_decodes_and_changes_the_final_result() {
        let text = b"alpha beta alpha\ngamma unsafe\n";
        let ops = [
            Operator::WordCount,
            Operator::Grep {
                pattern: "unsafe".into(),
            },
        ];
        for op in ops {
            let honest = map(&op, MapInput::Chunk(text)).unwrap();
            let lie = plausible_lie(&op, &honest).unwrap();
            assert_ne!(
                finalize(&op, &lie).unwrap(),
                finalize(&op, &honest).unwrap()
            );
        }
        let part = shoal_protocol::job::GeneratedPart::Samples {
            count: 1000,
            seed: 7,
        };
        let honest = map(&Operator::Pi, MapInput::Generated(part)).unwrap();
        let lie = plausible_lie(&Operator::Pi, &honest).unwrap();
        // Found by the fuzzer: a partial of no samples and no hits.
        let empty = shoal_protocol::codec::encode_blob(&(0u64, 0u64));
        assert_ne!(plausible_lie(&Operator::Pi, &empty).unwrap(), empty);
        assert_ne!(
            finalize(&Operator::Pi, &lie).unwrap(),
            finalize(&Operator::Pi, &honest).unwrap()
        );
    }
}
