//! Shoal's protocol: wire messages, ids, job specs, partitioning, the built-in operators and the
//! whole coordination logic as a pure state machine.
//!
//! This crate does no I/O: no sockets, no tokio, no clock reads and no ambient randomness.
//! Events and time go in, messages, timers and effects come out. The `shoal` node drives it over
//! libp2p and the simulator drives it on virtual time: both run this very code.
//!
//! # Layout
//!
//! - [`ids`]: node, job and blob ids; [`codec`]: the one bincode module, with decode limits.
//! - [`job`]: job specs and their validation; [`tree`]: the k-ary reduction tree;
//!   [`partition`]: line-aligned chunking; [`ops`]: built-in operators and the reference
//!   implementations results are checked against.
//! - [`wire`]: gossip messages; [`topic`]: where they go; [`rendezvous`]: weighted rendezvous
//!   hashing of (task, peer).
//! - [`node`]: the state machine, with [`view`] (the mesh as adverts describe it, bounded by
//!   [`coverage`]),
//!   [`job_state`] (one job's tasks), [`members`] (who works on a job, and who is still
//!   there) and [`ready`] (the ready tasks by this node's rank, from [`ranking`]); [`effects`]: what it asks of
//!   its driver; [`pacer`]: how batches are paced.

pub mod codec;
pub mod coverage;
pub mod effects;
pub mod ids;
pub mod job;
pub mod job_state;
pub mod members;
pub mod node;
pub mod ops;
pub mod pacer;
pub mod partition;
pub mod ranking;
pub mod ready;
pub mod rendezvous;
pub mod topic;
pub mod tree;
pub mod view;
pub mod wire;
pub mod words;

pub use effects::{
    ChildInput, Effect, JobStatus, JobView, LocalTasks, MapSource, PeerStatus, TaskOutcome,
    TaskRun, Work,
};
pub use ids::{BlobHash, JobId, Millis, NodeId};
pub use job::{Input, JobSpec, Operator};
pub use node::{Capacity, Config, Node, Stats, SubmitError};
pub use topic::{Subscription, Topic};
pub use wire::ResultRef;
