//! The `shoal` command line: `node`, `submit`, `result`, `peers`, `jobs`, `why`, `run`, `demo`.
//!
//! `submit` lives in its own module; the rows and tables of `peers` and `jobs` in [`rows`].

pub mod progress;
pub mod result;
pub mod rows;
mod run;
mod submit;
pub mod submitters;
pub mod why;

use crate::api::token::ApiToken;
use crate::client::Client;
use crate::launch::{self, DEFAULT_API, NodeInfo, NodeOptions};
use crate::mesh_key::MeshKey;
use clap::{Args, Parser, Subcommand};
use libp2p::Multiaddr;
use shoal_protocol::job::{FANIN_DEFAULT, WasmLimits};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Exit code for a request the user must fix (nothing was submitted).
pub const EXIT_USAGE: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "shoal",
    version,
    about = "A serverless peer-to-peer compute mesh"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
// Parsed once per process: boxing the larger arguments would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Run a node: find peers, advertise capacity, claim and compute tasks.
    Node(NodeArgs),
    /// Submit a job through the local node (or --join the mesh just for this job).
    Submit(SubmitArgs),
    /// List the mesh as the local node sees it, with each node's capacity.
    Peers(QueryArgs),
    /// List the jobs the local node knows.
    Jobs(QueryArgs),
    /// List the datasets the mesh shares (`shoal node --share NAME=DIR`), with their parts,
    /// holders and sizes, as the local node knows them.
    Datasets(QueryArgs),
    /// A job's tasks by state and where they run, and why what is not moving is not moving
    /// (no free slot, a need nobody meets, higher-priority jobs, an unreachable input, ...).
    Why(WhyArgs),
    /// A job's result from any node of the mesh, by id: the output, or whether it is unknown,
    /// still running (with progress), failed (with the cause) or expired. Exit 0 done, 1
    /// failed, 3 unknown, 4 expired, 5 still running (without --wait), 2 usage.
    Result(ResultArgs),
    /// Run a pipeline: a DAG of stages (PIPELINE.toml, see the README), each a job whose
    /// inputs may be other stages' outputs; a stage starts when those are complete.
    Run(RunArgs),
    /// Start a 3-node mesh on loopback, run a sample job, print the result and the spread.
    Demo,
    /// Mesh keys: `shoal key new PATH` writes a new one.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Diagnostics: ask a peer for something, as any peer could.
    #[command(subcommand)]
    Probe(ProbeCommand),
}

#[derive(Debug, Subcommand)]
pub enum ProbeCommand {
    /// Ask the peer at MULTIADDR (ending in /p2p/PEER-ID) for the blob HASH with a throwaway
    /// identity. Exit 0: it sent the blob; 3: it refused ("missing"); 4: no connection (down,
    /// or it refused admission); 1: the request failed.
    Blob {
        #[arg(value_name = "MULTIADDR")]
        addr: Multiaddr,
        /// The blob's blake3 hash, 64 hex digits.
        #[arg(value_name = "HASH")]
        hash: String,
        /// Connect as a member of this private mesh.
        #[arg(long, value_name = "PATH", env = "SHOAL_MESH_KEY")]
        mesh_key: Option<PathBuf>,
        /// Give up after this long.
        #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
        timeout: Duration,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Write a new random mesh key to PATH (mode 0600; an existing file is never replaced).
    /// Give it to every node of the mesh with `shoal node --mesh-key PATH`.
    New {
        #[arg(value_name = "PATH")]
        path: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct NetArgs {
    /// Peer to join through (Kademlia); repeatable; with or without a /p2p/PEER-ID suffix.
    #[arg(long, value_name = "MULTIADDR")]
    pub bootstrap: Vec<Multiaddr>,
    /// Do not discover peers on the LAN with mDNS.
    #[arg(long)]
    pub no_mdns: bool,
    /// A private mesh: connect only with peers that hold this key (see `shoal key new`).
    #[arg(long, value_name = "PATH", env = "SHOAL_MESH_KEY")]
    pub mesh_key: Option<PathBuf>,
}

impl NetArgs {
    /// The mesh key named by --mesh-key, read.
    pub fn mesh_key(&self) -> anyhow::Result<Option<MeshKey>> {
        Ok(self.mesh_key.as_deref().map(MeshKey::read).transpose()?)
    }
}

#[derive(Debug, Args)]
pub struct NodeArgs {
    /// Address to listen on; repeatable [default: QUIC and TCP on every interface, any port].
    #[arg(long, value_name = "MULTIADDR")]
    pub listen: Vec<Multiaddr>,
    #[command(flatten)]
    pub net: NetArgs,
    /// Where the identity key and node.json live [default: the user's data dir, /shoal].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Task slots offered to the mesh [default: number of cores].
    #[arg(long)]
    pub slots: Option<u32>,
    /// Local control API address (port 0 picks a free one); loopback unless --api-public.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_API)]
    pub api: SocketAddr,
    /// Allow --api on a non-loopback address. Every request still needs the token from
    /// DATA-DIR/api.token.
    #[arg(long)]
    pub api_public: bool,
    /// Work only on jobs submitted by the peers listed in FILE (peer ids, one per line; `#`
    /// starts a comment); jobs from anyone else are declined. This node's own jobs always run.
    #[arg(long, value_name = "FILE")]
    pub submitters: Option<PathBuf>,
    /// Advertise the label NAME (repeatable): a GPU, a dataset, a site. Jobs submitted with
    /// `--needs tag=NAME` run only on nodes that have it. Letters, digits, '.', '_', ':', '-'.
    #[arg(long = "tag", value_name = "NAME")]
    pub tags: Vec<String>,
    /// Share the files under DIR as part of dataset NAME (repeatable, one DIR per NAME):
    /// `shoal submit JOB dataset:NAME` from any peer then computes each part where it is held.
    /// Several nodes may share parts of one NAME (the dataset is their union); identical
    /// folders on two nodes are one part held twice. DIR is scanned again every
    /// --share-rescan.
    #[arg(long = "share", value_name = "NAME=DIR")]
    pub shares: Vec<crate::shares::ShareSpec>,
    /// How often shared folders are scanned for changed files.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub share_rescan: Duration,
    /// Disk space for the outputs of durable jobs (`shoal submit --detach` / `--copies`) this
    /// node keeps in DATA-DIR/results; past it the oldest expire.
    #[arg(long, value_name = "SIZE", default_value = "1GiB", value_parser = crate::needs::parse_size)]
    pub result_budget: u64,
    /// How long a kept output stays before it expires (`shoal result` then says so).
    #[arg(long, value_name = "DURATION", default_value = "7days", value_parser = humantime::parse_duration)]
    pub result_retention: Duration,
    /// Disk space for the results of tasks this node computed, kept so that a later job with
    /// the same task (the same operator over an unchanged chunk, or the same reduce) takes the
    /// result instead of computing it again (DATA-DIR/reuse; the least recently used go
    /// first). 0 keeps none.
    #[arg(long, value_name = "SIZE", default_value = "512MiB", value_parser = crate::needs::parse_size)]
    pub reuse_budget: u64,
    /// Memory for the pieces of durable jobs' inputs (`--copies`) this node keeps for other
    /// members; past it they are written to DATA-DIR/kept. Either way they are dropped once no
    /// durable job runs here.
    #[arg(long, value_name = "SIZE", default_value = "512MiB", value_parser = crate::needs::parse_size)]
    pub kept_memory: u64,
    /// Fault injection: corrupt this fraction (0 to 1) of the node's task results, plausibly.
    #[cfg(feature = "fault-injection")]
    #[arg(long, value_name = "P")]
    pub lie_rate: Option<f64>,
    /// Fault injection: which results --lie-rate corrupts.
    #[cfg(feature = "fault-injection")]
    #[arg(long, value_name = "S", default_value_t = 0, requires = "lie_rate")]
    pub lie_seed: u64,
}

impl NodeArgs {
    /// The results to corrupt, if this is a fault-injection build asked to lie.
    fn lies(&self) -> anyhow::Result<Option<crate::fault::Lies>> {
        #[cfg(feature = "fault-injection")]
        if let Some(rate) = self.lie_rate {
            if !(0.0..=1.0).contains(&rate) {
                anyhow::bail!("--lie-rate must be between 0 and 1, not {rate}");
            }
            return Ok(Some(crate::fault::Lies {
                rate,
                seed: self.lie_seed,
            }));
        }
        Ok(None)
    }
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    /// The node's API address [default: from DATA-DIR/node.json, else 127.0.0.1:7070].
    #[arg(long, value_name = "ADDR")]
    pub api: Option<String>,
    /// Data dir of the local node whose node.json names the API.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct WhyArgs {
    #[command(flatten)]
    pub query: QueryArgs,
    /// The job id, or the start of it as `shoal jobs` shows it.
    #[arg(value_name = "JOB")]
    pub job: String,
}

#[derive(Debug, Args)]
pub struct ResultArgs {
    #[command(flatten)]
    pub query: QueryArgs,
    /// Wait for a running (or not yet heard of) job to end.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up after this long.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Write the output bytes to FILE instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// The job id (64 hex digits, as `shoal submit` prints it), or the start of one this
    /// node knows.
    #[arg(value_name = "JOB_ID")]
    pub job: String,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub query: QueryArgs,
    /// Give up on what is not done after this long (e.g. 30s, 10m), for the whole pipeline.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// The pipeline file: one [stages.NAME] table per stage.
    #[arg(value_name = "PIPELINE.toml")]
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct SubmitArgs {
    #[command(flatten)]
    pub query: QueryArgs,
    /// Reduction tree fan-in.
    #[arg(long, default_value_t = FANIN_DEFAULT)]
    pub fanin: u32,
    /// Give up waiting after this long (e.g. 30s, 10m).
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Target bytes per input chunk: small files are packed several to a chunk, large ones
    /// cut at line ends; by default about 1/128 of the input rounded up to a power of two or 1.5
    /// times one, between 1 MiB and 8 MiB.
    #[arg(long, value_name = "BYTES")]
    pub chunk_size: Option<u64>,
    /// Leave out input files and directories matching GLOB (repeatable): a pattern with a `/`
    /// matches paths from the input root given, one without a name at any depth (`*.log`,
    /// `target`).
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Number of map tasks for generated inputs (sumsq, pi).
    #[arg(long)]
    pub tasks: Option<u32>,
    /// Distinct members whose results must agree for each task, 1 to 5: a task is accepted
    /// when N results agree (compared by hash), and run again on further members until a
    /// strict majority of at least two agree if they do not. Members whose results lose are
    /// suspects and get no more work from this node for a while.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub replicas: u8,
    /// With one replica: have a random, unguessable fraction F (0 to 1) of the tasks checked by
    /// a second member (those the submitter computes itself are not; see docs/security.md for
    /// the detection odds).
    #[arg(long, value_name = "F", default_value_t = 0.0)]
    pub verify_fraction: f64,
    /// Higher runs first (default 0; negative for background work): a member with a free
    /// slot starts the ready tasks of its highest-priority job first, then the earliest
    /// submitted. Running tasks are not preempted.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        allow_hyphen_values = true
    )]
    pub priority: i32,
    /// What a node must have to run the job's tasks (repeatable): `tag=NAME` (advertised with
    /// `shoal node --tag NAME`) or `mem=SIZE` (memory per task, e.g. `4GiB`). A job no live
    /// node can satisfy waits, says which need nobody meets, and fails at --timeout.
    #[arg(long, value_name = "NEED")]
    pub needs: Vec<String>,
    /// Start a temporary peer in this process that joins the mesh, submits, contributes no
    /// slots, and exits with the result.
    #[arg(long)]
    pub join: bool,
    /// Return once the job's input is held by --copies live peers, printing the job's id,
    /// and exit 0: the job runs on without this node (close the laptop), and `shoal result
    /// JOB_ID` on any node of the mesh gives its result.
    #[arg(long, conflicts_with = "join")]
    pub detach: bool,
    /// Live peers that keep each piece of the job's input and its output, 1 to 8, at most the
    /// mesh size [default: 2 with --detach, else 1 (the input stays on this node only)].
    #[arg(long, value_name = "K")]
    pub copies: Option<u8>,
    /// Compute every task, even those whose result a member kept from an earlier job (the
    /// same operator over an unchanged chunk, or the same reduce); by default such a task
    /// takes the kept result (`reused` in --json).
    #[arg(long)]
    pub no_reuse: bool,
    #[command(flatten)]
    pub net: NetArgs,
    /// Write the job's output bytes to FILE instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub wasm: WasmArgs,
    /// The job: wordcount PATH... | grep PATTERN PATH... | sumsq A B | pi SAMPLES; with --wasm,
    /// the input paths.
    #[arg(value_name = "JOB")]
    pub job: Option<String>,
    /// The job's arguments (put `--` before a grep pattern that starts with '-').
    #[arg(value_name = "ARGS")]
    pub args: Vec<String>,
}

/// A WebAssembly job: the module and its sandbox limits (docs/wasm-abi.md).
#[derive(Debug, Args)]
pub struct WasmArgs {
    /// Run this WebAssembly module (wasm32-unknown-unknown) over the inputs.
    #[arg(long, value_name = "FILE")]
    pub wasm: Option<PathBuf>,
    /// With --wasm: a generated range input [START, END) instead of files.
    #[arg(long, num_args = 2, value_names = ["START", "END"], requires = "wasm")]
    pub range: Option<Vec<u64>>,
    /// With --wasm: fuel (about one unit per instruction) per map or reduce call.
    #[arg(long, requires = "wasm")]
    pub fuel: Option<u64>,
    /// With --wasm: wall-clock deadline per call.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, requires = "wasm")]
    pub call_deadline: Option<Duration>,
    /// With --wasm: linear memory cap in bytes.
    #[arg(long, value_name = "BYTES", requires = "wasm")]
    pub memory_limit: Option<u64>,
    /// With --wasm: largest output of one call, in bytes.
    #[arg(long, value_name = "BYTES", requires = "wasm")]
    pub output_limit: Option<u64>,
}

impl WasmArgs {
    fn limits(&self) -> WasmLimits {
        let d = WasmLimits::default();
        WasmLimits {
            fuel: self.fuel.unwrap_or(d.fuel),
            deadline_ms: self
                .call_deadline
                .map_or(d.deadline_ms, |t| t.as_millis() as u64),
            memory_bytes: self.memory_limit.unwrap_or(d.memory_bytes),
            output_bytes: self.output_limit.unwrap_or(d.output_bytes),
        }
    }
}

/// Runs the CLI.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("SHOAL_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("warn,shoal_node=info,libp2p_kad=error")
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Node(args) => run_node(args).await,
            Command::Submit(args) => submit::submit(args).await,
            Command::Peers(args) => peers(args).await,
            Command::Jobs(args) => jobs(args).await,
            Command::Datasets(args) => datasets(args).await,
            Command::Why(args) => why::why(args.query, args.job).await,
            Command::Result(args) => result::result(args).await,
            Command::Run(args) => run::run(args.query, &args.file, args.timeout).await,
            Command::Demo => crate::demo::run().await,
            Command::Key(KeyCommand::New { path }) => new_key(&path),
            Command::Probe(ProbeCommand::Blob {
                addr,
                hash,
                mesh_key,
                timeout,
                json,
            }) => probe_blob(addr, &hash, mesh_key.as_deref(), timeout, json).await,
        }
    });
    // Background tasks (API connections, the driver) end with the runtime.
    runtime.shutdown_timeout(Duration::from_millis(200));
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn probe_blob(
    addr: Multiaddr,
    hash: &str,
    mesh_key: Option<&std::path::Path>,
    timeout: Duration,
    json: bool,
) -> anyhow::Result<ExitCode> {
    use crate::probe::Probe;
    let Some(hash) = shoal_protocol::BlobHash::from_hex(hash) else {
        eprintln!("error: '{hash}' is not a blob hash (64 hex digits)");
        return Ok(ExitCode::from(EXIT_USAGE));
    };
    let key = mesh_key.map(MeshKey::read).transpose()?;
    let probe = crate::probe::blob(addr, hash, key.as_ref(), timeout).await?;
    let (outcome, code, detail) = match &probe {
        Probe::Found { len, verified } => (
            "found",
            0,
            format!(
                "{len} bytes{}",
                if *verified {
                    ", verified"
                } else {
                    " that do not match the hash"
                }
            ),
        ),
        Probe::Missing => (
            "missing",
            3,
            "the peer refused or does not hold it".to_string(),
        ),
        Probe::NoConnection(e) => ("no-connection", 4, e.clone()),
        Probe::Failed(e) => ("failed", 1, e.clone()),
    };
    if json {
        println!(
            "{}",
            serde_json::json!({ "outcome": outcome, "detail": detail })
        );
    } else {
        println!("{outcome}: {detail}");
    }
    Ok(ExitCode::from(code))
}

fn new_key(path: &std::path::Path) -> anyhow::Result<ExitCode> {
    let key = MeshKey::write_new(path)?;
    println!(
        "wrote a new mesh key to {} (fingerprint {}); start every node of the mesh with --mesh-key {}",
        path.display(),
        key.fingerprint(),
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

async fn run_node(args: NodeArgs) -> anyhow::Result<ExitCode> {
    let lies = args.lies()?;
    if let Some(l) = &lies {
        println!(
            "fault injection: this node corrupts {:.0}% of its results (seed {})",
            l.rate * 100.0,
            l.seed
        );
    }
    let data_dir = args.data_dir.unwrap_or_else(launch::default_data_dir);
    let slots = args.slots.unwrap_or_else(crate::sysinfo::cores);
    let mesh_key = args.net.mesh_key()?;
    let submitters = args
        .submitters
        .as_deref()
        .map(submitters::read)
        .transpose()?;
    let mut node = launch::launch(NodeOptions {
        listen: args.listen,
        bootstrap: args.net.bootstrap,
        data_dir: data_dir.clone(),
        slots,
        api: Some(args.api),
        mdns: !args.net.no_mdns,
        write_info: true,
        mesh_key: mesh_key.clone(),
        submitters: submitters.clone(),
        api_public: args.api_public,
        lies,
        tags: args.tags.clone(),
        shares: args.shares.clone(),
        share_rescan: args.share_rescan,
        result_budget: args.result_budget,
        result_retention: args.result_retention,
        reuse_budget: args.reuse_budget,
        kept_memory: args.kept_memory,
    })
    .await?;
    println!("peer id: {}", node.peer_id);
    match &mesh_key {
        Some(key) => println!(
            "private mesh: only peers holding the key with fingerprint {} can connect",
            key.fingerprint()
        ),
        None => println!(
            "open mesh: anyone on the network can join and see the jobs; --mesh-key closes it"
        ),
    }
    if let Some(list) = &submitters {
        println!(
            "running jobs only from this node and {} listed submitter(s)",
            list.len()
        );
    }
    for addr in node.dial_addrs().await {
        println!("listening on {addr}");
    }
    if let Some(api) = node.api {
        println!("local api: {api}");
    }
    if let Some(client) = node.client() {
        println!("dashboard: {}", client.dashboard_url(None));
    }
    println!("slots: {slots}; data dir: {}", data_dir.display());
    if !args.tags.is_empty() {
        println!("tags: {}", args.tags.join(", "));
    }
    for s in &args.shares {
        println!("sharing {} as dataset {}", s.dir.display(), s.name);
    }
    wait_for_signal().await;
    node.handle.shutdown().await;
    let _ = std::fs::remove_file(NodeInfo::path(&data_dir));
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// A client of the local node: its address from --api, else node.json in the data dir, else
/// the default; its token from SHOAL_API_TOKEN, else the data dir's api.token.
fn client(q: &QueryArgs) -> anyhow::Result<Client> {
    let dir = q.data_dir.clone().unwrap_or_else(launch::default_data_dir);
    let token = ApiToken::find(&dir)?;
    Ok(Client::new(api_addr(q, &dir)?, token))
}

fn api_addr(q: &QueryArgs, dir: &std::path::Path) -> anyhow::Result<SocketAddr> {
    let text = match &q.api {
        Some(a) => a.clone(),
        None => NodeInfo::read(dir)
            .and_then(|i| i.api)
            .unwrap_or_else(|| DEFAULT_API.to_string()),
    };
    let trimmed = text
        .trim_start_matches("http://")
        .trim_start_matches("tcp://")
        .trim_end_matches('/');
    trimmed
        .parse()
        .map_err(|_| anyhow::anyhow!("--api '{text}' is not an address like 127.0.0.1:7070"))
}

async fn peers(args: QueryArgs) -> anyhow::Result<ExitCode> {
    let rows = client(&args)?.peers().await?;
    if args.json {
        println!("{}", serde_json::to_string(&rows)?);
    } else {
        print!("{}", rows::peers_table(&rows));
    }
    Ok(ExitCode::SUCCESS)
}

async fn datasets(args: QueryArgs) -> anyhow::Result<ExitCode> {
    let rows = client(&args)?.datasets().await?;
    if args.json {
        println!("{}", serde_json::to_string(&rows)?);
    } else {
        print!("{}", crate::api::datasets::table(&rows));
    }
    Ok(ExitCode::SUCCESS)
}

async fn jobs(args: QueryArgs) -> anyhow::Result<ExitCode> {
    let rows = client(&args)?.jobs().await?;
    if args.json {
        println!("{}", serde_json::to_string(&rows)?);
    } else {
        print!("{}", rows::jobs_table(&rows));
    }
    Ok(ExitCode::SUCCESS)
}
