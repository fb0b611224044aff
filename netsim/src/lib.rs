//! `shoal-netsim`: a deterministic simulator that runs many Shoal protocol nodes in one process,
//! on virtual time, from one seed, with faults, and checks invariants after every run.
//!
//! It drives the very same `shoal_protocol::Node` as the real node: there is no second
//! implementation of the protocol.
//!
//! # Layout
//!
//! - [`config`]: run sizes, timing and the fault switches.
//! - [`sim`]: the environment of the shared harness (`shoal_protocol::harness`, which holds
//!   the nodes, the clock, the event queue and the topics): the network model, task execution,
//!   the fault schedule, and the checks (result equals the reference, each partition counted
//!   exactly once, liveness after faults stop).
//! - [`gossip`]: the hops and copies a message costs.
//! - [`byzantine`]: what lying nodes do (corrupt results, forged claims and completions,
//!   replays, malformed messages).
//! - [`scheduling`]: the `--scheduling` mode: tags, memory, priorities, needs, pipeline
//!   stages, and the checks of what a node starts.
//! - [`datasets`]: the `--datasets` mode: jobs over shared datasets whose parts other nodes
//!   hold, and the checks of locality and of failures for lost parts.
//! - [`report`]: what a run reports, with cost per task and per node and the cost models.
//!
//! Determinism: all randomness comes from one seeded generator; events are ordered by
//! (virtual time, insertion order); the trace hash covers every message and delivery.
#![forbid(unsafe_code)]

pub mod byzantine;
pub mod config;
pub mod datasets;
pub mod gossip;
pub mod report;
pub mod scheduling;
pub mod sim;

pub use config::{Faults, SimConfig};
pub use report::Report;
pub use sim::Sim;

/// Runs one seed.
pub fn run(cfg: SimConfig) -> Report {
    Sim::new(cfg).run()
}
