//! `shoal-ops`: what Shoal computes. The built-in operators (word count, grep count, sum of
//! squares, Monte Carlo pi) as map, reduce and finalize over partial-result bytes, their
//! kernels, and the single-process reference implementations every mesh result is checked
//! against.
//!
//! This crate does not coordinate anything: the protocol state machine never calls it. The
//! node's executors and the simulator's task runner do. [`Operator`](shoal_protocol::Operator)
//! and [`JobSpec`](shoal_protocol::JobSpec) stay in `shoal-protocol`, because a spec is hashed
//! into its job's id and validated by every peer before anything runs.
//!
//! # Layout
//!
//! - [`run`]: map, reduce and finalize for each built-in operator, with checked sums over
//!   partial results that came from peers; [`runs`]: a run of tiny map tasks computed as the
//!   tasks it holds.
//! - [`words`]: the word definition and the fast word counter; [`grep`]: the line matcher;
//!   [`pi`]: the sampler, drawing from [`rng`].
//! - [`reference`](mod@reference): single-process implementations of every built-in job.
#![forbid(unsafe_code)]

pub mod grep;
pub mod lie;
pub mod pi;
pub mod reference;
pub mod rng;
pub mod run;
pub mod runs;
pub mod words;

pub use lie::plausible_lie;
pub use rng::SplitMix64;
pub use run::{MapInput, OpError, corrupt_input, finalize, map, reduce};
pub use runs::map_run;
