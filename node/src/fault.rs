//! Fault injection for tests and benchmarks: a node that lies about a fraction of its task
//! results, plausibly (see [`shoal_ops::plausible_lie`]). Only a build with the
//! `fault-injection` feature can lie; in any other build [`Lies::apply`] returns the result
//! unchanged and `shoal node` has no `--lie-rate` flag.

use shoal_protocol::{JobId, NodeId, Operator};

/// Which results a lying node corrupts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lies {
    /// The fraction of results corrupted, 0 to 1.
    pub rate: f64,
    /// Decides which ones: the same seed, node, job and task lie alike in every run.
    pub seed: u64,
}

impl Lies {
    /// `bytes`, the result of task `task` of `job` computed by `me`, possibly corrupted.
    #[cfg_attr(not(feature = "fault-injection"), allow(unused_variables))]
    pub fn apply(
        &self,
        me: &NodeId,
        op: &Operator,
        job: &JobId,
        task: u32,
        bytes: Vec<u8>,
    ) -> Vec<u8> {
        #[cfg(feature = "fault-injection")]
        {
            let mut h = blake3::Hasher::new();
            h.update(&self.seed.to_le_bytes());
            h.update(&me.0);
            h.update(&job.0);
            h.update(&task.to_le_bytes());
            let draw = u64::from_le_bytes(h.finalize().as_bytes()[..8].try_into().expect("8"));
            // A uniform draw in [0, 1): the top 53 bits.
            let u = (draw >> 11) as f64 / (1u64 << 53) as f64;
            if u < self.rate {
                match shoal_ops::plausible_lie(op, &bytes) {
                    Ok(lie) => {
                        tracing::debug!(%job, task, "fault injection: reporting a wrong result");
                        return lie;
                    }
                    Err(e) => tracing::debug!(%job, task, "fault injection: cannot lie: {e}"),
                }
            }
        }
        bytes
    }
}
