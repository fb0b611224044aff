//! Shoal's protocol: wire messages, ids, job specs, partitioning and the whole coordination
//! logic as a pure state machine. What the tasks compute is another crate's (`shoal-ops`): the
//! machine coordinates work, it never does any.
//!
//! This crate does no I/O: no sockets, no tokio, no clock reads and no ambient randomness.
//! Events and time go in, messages, timers and effects come out. The `shoal` node drives it over
//! libp2p and the simulator drives it on virtual time: both run this very code.
//!
//! # Layout
//!
//! - [`ids`]: node, job and blob ids; [`codec`]: the one bincode module, with decode limits;
//!   [`bounded`]: the one bounded map, for every table a peer can make grow.
//! - [`job`]: job specs and their validation; [`schedule`]: priorities and needs; [`durable`]:
//!   the copies a job keeps of its input and output, and its successor coordinators; [`tree`]: the k-ary reduction tree;
//!   [`runs`]: many tiny tasks claimed a subtree at a time; [`partition`]: line-aligned chunking; [`dataset`]: shared datasets, read where they are
//!   held, with [`locality`] ranking a part's holders first for its tasks.
//! - [`wire`]: gossip messages; [`topic`]: where they go; [`rendezvous`]: weighted rendezvous
//!   hashing of (task, peer).
//! - [`node`]: the state machine, with [`view`] (the mesh as adverts describe it, bounded by
//!   [`coverage`]),
//!   [`job_state`] (one job's tasks), [`members`] (who works on a job, and who is still
//!   there) and [`ready`] (the ready tasks by this node's rank, from [`ranking`]); [`effects`]: what it asks of
//!   its driver; [`pacer`]: how batches are paced.
//! - [`harness`]: nodes on virtual time with an in-memory network, for the state-machine tests
//!   and the simulator.
#![forbid(unsafe_code)]

pub mod bounded;
pub mod codec;
pub mod coverage;
pub mod dataset;
pub mod durable;
pub mod effects;
pub mod harness;
pub mod ids;
pub mod job;
pub mod job_state;
pub mod local;
pub mod locality;
pub mod members;
pub mod node;
pub mod pacer;
pub mod partition;
pub mod pipeline;
pub mod quorum;
pub mod ranking;
pub mod ready;
pub mod rendezvous;
pub mod reuse;
pub mod runs;
pub mod schedule;
pub mod topic;
pub mod tree;
pub mod view;
pub mod wire;

pub use effects::{
    ChildInput, Effect, JobStatus, JobView, LocalTasks, MapSource, PeerStatus, TaskOutcome,
    TaskRun, Work,
};
pub use ids::{BlobHash, JobId, Millis, NodeId, ReuseKey};
pub use job::{Input, JobSpec, Operator, Trust};
pub use node::{Capacity, Config, Node, ResultStatus, Stats, SubmitError};
pub use topic::{Subscription, Topic};
pub use wire::ResultRef;
