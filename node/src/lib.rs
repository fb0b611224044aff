//! The `shoal` node: the libp2p swarm, the thin driver that feeds the protocol state machine,
//! executors, the blob store, the local control API and the CLI's building blocks.
//!
//! # Layout
//!
//! - [`launch`](mod@launch): starts a node (identity, swarm, listeners, driver, API, `node.json`).
//! - [`driver`]: the event loop, one task that owns the protocol machine and the swarm;
//!   [`handle`]: the [`Handle`] and its commands, the way in for everything else; [`fetch`]:
//!   getting blobs from peers, shared and verified; [`peers`]: the bounded peer table.
//! - [`net`]: the composed libp2p behaviour and transports; [`admission`]: the private mesh's
//!   handshake, with [`mesh_key`]; [`blob_proto`]: the blob request/response codec; [`serve`]:
//!   who may have which blob; [`probe`]: `shoal probe blob`.
//! - [`exec`]: runs tasks and collects results; [`store`]: content-addressed blobs;
//!   [`kept`]: the copies of durable jobs' inputs this node keeps; [`results`]: the outputs
//!   and endings of durable jobs it keeps, on disk, bounded;
//!   [`input`]: line-aligned chunking of input files; [`shares`]: the datasets this node
//!   shares (`--share NAME=DIR`), scanned again as they change; [`job_request`]: what users ask for,
//!   with [`needs`] (`--needs tag=NAME`, `mem=SIZE`).
//! - [`api`] and [`client`]: the local control API (JSON lines over TCP) and its client.
//! - [`cli`]: the `shoal` subcommands; [`demo`]: `shoal demo`.
#![forbid(unsafe_code)]

mod addrs;
pub mod admission;
pub mod api;
pub mod blob_proto;
pub mod cli;
pub mod client;
pub mod demo;
pub mod direct;
pub mod driver;
pub mod exec;
pub mod fault;
pub mod fetch;
pub mod gossip_score;
pub mod handle;
pub mod identity;
pub mod input;
pub mod job_request;
pub mod kept;
pub mod launch;
pub mod mesh_key;
pub mod metrics;
pub mod needs;
pub mod net;
pub mod peers;
pub mod pipeline_file;
pub mod probe;
pub mod result_lookup;
pub mod results;
pub mod reuse;
pub mod seal;
pub mod serve;
pub mod shares;
pub mod store;
pub mod suspects;
pub mod sysinfo;
pub mod wasm;

pub use handle::Handle;
pub use launch::{NodeOptions, RunningNode, launch};
