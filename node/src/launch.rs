//! Starting a node: identity, swarm, listeners, protocol machine, driver, local API and its
//! token, node.json.

use crate::api::token::{ApiToken, Gate};
use crate::client::Client;
use crate::driver::{self, DriverParts};
use crate::handle::Handle;
use crate::mesh_key::MeshKey;
use crate::{api, identity, net, store::BlobStore, sysinfo};
use anyhow::Context;
use libp2p::{Multiaddr, PeerId};
use shoal_protocol::{Capacity, Config, Node};
use std::net::SocketAddr;
use std::path::PathBuf;
use tokio::sync::watch;

/// Default address of the local control API.
pub const DEFAULT_API: &str = "127.0.0.1:7070";

/// How to start a node.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    pub listen: Vec<Multiaddr>,
    pub bootstrap: Vec<Multiaddr>,
    pub data_dir: PathBuf,
    pub slots: u32,
    /// Local API address; `None` for no API.
    pub api: Option<SocketAddr>,
    pub mdns: bool,
    /// Write `<data-dir>/node.json` once listening.
    pub write_info: bool,
    /// Run a private mesh: admit only peers holding this key.
    pub mesh_key: Option<MeshKey>,
    /// Work only on jobs submitted by these peers (and this node); `None`: anyone's.
    pub submitters: Option<Vec<PeerId>>,
    /// Allow the API on a non-loopback address (it still requires the token).
    pub api_public: bool,
    /// Corrupt a fraction of this node's results (fault injection for tests; only a build
    /// with the `fault-injection` feature acts on it).
    pub lies: Option<crate::fault::Lies>,
    /// Labels advertised to the mesh (`--tag`): jobs that need a tag run only on nodes that
    /// have it.
    pub tags: Vec<String>,
    /// Folders shared as parts of datasets (`--share NAME=DIR`), scanned every `share_rescan`.
    pub shares: Vec<crate::shares::ShareSpec>,
    pub share_rescan: std::time::Duration,
    /// Disk budget and retention of the outputs of durable jobs this node keeps
    /// (`--result-budget`, `--result-retention`; see [`crate::results`]).
    pub result_budget: u64,
    pub result_retention: std::time::Duration,
    /// Disk budget for the results of computed tasks kept for later jobs (`--reuse-budget`;
    /// see [`crate::reuse`]; 0: none kept).
    pub reuse_budget: u64,
    /// Memory for the pieces of durable jobs' inputs this node keeps (`--kept-memory`; see
    /// [`crate::kept`]): past it they go to the data dir.
    pub kept_memory: u64,
}

impl NodeOptions {
    /// A node on 127.0.0.1 with everything else at its default: for the demo and for
    /// programs that embed nodes.
    pub fn loopback(data_dir: PathBuf, slots: u32) -> Self {
        Self {
            listen: vec![
                "/ip4/127.0.0.1/udp/0/quic-v1"
                    .parse()
                    .expect("valid multiaddr"),
            ],
            bootstrap: Vec::new(),
            data_dir,
            slots,
            api: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            mdns: false,
            write_info: false,
            mesh_key: None,
            submitters: None,
            api_public: false,
            lies: None,
            tags: Vec::new(),
            shares: Vec::new(),
            share_rescan: crate::shares::DEFAULT_RESCAN,
            result_budget: crate::results::DEFAULT_BUDGET,
            result_retention: crate::results::DEFAULT_RETENTION,
            reuse_budget: crate::reuse::DEFAULT_BUDGET,
            kept_memory: crate::kept::DEFAULT_MEMORY,
        }
    }
}

/// Why a node could not start with the options given.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The API would be open to the network without the operator saying so.
    #[error(
        "refusing to open the API on {0}: it would be reachable from other machines; use a \
         loopback address (127.0.0.1:PORT), or pass --api-public (every request still needs the token)"
    )]
    PublicApi(SocketAddr),
}

impl NodeOptions {
    /// The listen addresses used when none are given: QUIC first, TCP as fallback, all interfaces.
    pub fn default_listen() -> Vec<Multiaddr> {
        vec![
            "/ip4/0.0.0.0/udp/0/quic-v1"
                .parse()
                .expect("valid multiaddr"),
            "/ip4/0.0.0.0/tcp/0".parse().expect("valid multiaddr"),
        ]
    }
}

/// The default data directory: the user's data directory, or ./.shoal.
pub fn default_data_dir() -> PathBuf {
    dirs::data_dir().map_or_else(|| PathBuf::from(".shoal"), |d| d.join("shoal"))
}

/// `<data-dir>/node.json`: where a running node says how to reach it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct NodeInfo {
    pub peer_id: String,
    pub listen_addrs: Vec<String>,
    pub api: Option<String>,
}

impl NodeInfo {
    pub fn path(data_dir: &std::path::Path) -> PathBuf {
        data_dir.join("node.json")
    }

    pub fn read(data_dir: &std::path::Path) -> Option<Self> {
        serde_json::from_slice(&std::fs::read(Self::path(data_dir)).ok()?).ok()
    }
}

/// A started node.
pub struct RunningNode {
    pub handle: Handle,
    pub peer_id: PeerId,
    pub api: Option<SocketAddr>,
    /// The API's token (also in `<data-dir>/api.token`).
    pub token: Option<ApiToken>,
    /// Current listen addresses.
    pub listen: watch::Receiver<Vec<Multiaddr>>,
    pub task: tokio::task::JoinHandle<()>,
}

impl RunningNode {
    /// A client of this node's API, if it has one.
    pub fn client(&self) -> Option<Client> {
        Some(Client::new(self.api?, self.token.clone()?))
    }

    /// Waits until every listener has its first address and returns them with `/p2p/<id>`.
    pub async fn dial_addrs(&mut self) -> Vec<Multiaddr> {
        let addrs = self
            .listen
            .wait_for(|a| !a.is_empty())
            .await
            .map(|a| a.clone())
            .unwrap_or_default();
        let mut addrs: Vec<Multiaddr> = addrs
            .into_iter()
            .map(|a| a.with(libp2p::multiaddr::Protocol::P2p(self.peer_id)))
            .collect();
        // QUIC first: it is the preferred transport, TCP the fallback.
        addrs.sort_by_key(|a| {
            !a.iter()
                .any(|p| matches!(p, libp2p::multiaddr::Protocol::QuicV1))
        });
        addrs
    }
}

/// Starts a node on the current tokio runtime.
pub async fn launch(opts: NodeOptions) -> anyhow::Result<RunningNode> {
    crate::shares::check_all(&opts.shares)?;
    if let Some(addr) = opts.api
        && !addr.ip().is_loopback()
        && !opts.api_public
    {
        return Err(LaunchError::PublicApi(addr).into());
    }
    let key = identity::load_or_create(&opts.data_dir)?;
    let peer_id = key.public().to_peer_id();
    let mut swarm = net::build_swarm(key.clone(), opts.mdns, opts.mesh_key.as_ref())?;
    let listen = if opts.listen.is_empty() {
        NodeOptions::default_listen()
    } else {
        opts.listen.clone()
    };
    let mut listeners = Vec::new();
    for addr in &listen {
        listeners.push(
            swarm
                .listen_on(addr.clone())
                .with_context(|| format!("cannot listen on {addr}"))?,
        );
    }
    let api_listener = match opts.api {
        Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.with_context(|| {
            format!("cannot open the local API on {addr} (is another node using it? pass --api 127.0.0.1:0 to pick a free port)")
        })?),
        None => None,
    };
    let api_addr = match &api_listener {
        Some(l) => Some(l.local_addr()?),
        None => None,
    };
    let capacity = Capacity {
        slots: opts.slots,
        cores: sysinfo::cores(),
        mem_mb: sysinfo::mem_mb(),
    };
    let me = crate::peers::node_id(&peer_id);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut protocol = Node::new(me, capacity, Config::default(), seed);
    protocol
        .set_tags(opts.tags.clone())
        .map_err(|e| anyhow::anyhow!("--tag: {e}"))?;
    protocol.set_submitters(
        opts.submitters
            .as_ref()
            .map(|peers| peers.iter().map(crate::peers::node_id).collect()),
    );
    let (listen_tx, listen_rx) = watch::channel(Vec::new());
    let info_path = opts.write_info.then(|| NodeInfo::path(&opts.data_dir));
    let on_listen = Box::new(move |addrs: &[Multiaddr]| {
        let _ = listen_tx.send(addrs.to_vec());
        if let Some(path) = &info_path {
            let info = NodeInfo {
                peer_id: peer_id.to_string(),
                listen_addrs: addrs.iter().map(|a| a.to_string()).collect(),
                api: api_addr.map(|a| a.to_string()),
            };
            let tmp = path.with_extension("json.tmp");
            let bytes = serde_json::to_vec_pretty(&info).expect("serializable");
            if std::fs::write(&tmp, bytes)
                .and_then(|_| std::fs::rename(&tmp, path))
                .is_err()
            {
                tracing::warn!(path = %path.display(), "cannot write node.json");
            }
        }
    });
    let (handle, task) = driver::spawn(DriverParts {
        swarm,
        protocol,
        store: BlobStore::new(crate::store::DEFAULT_MEMORY_BUDGET),
        bootstrap: opts.bootstrap.clone(),
        listeners,
        on_listen,
        data_dir: Some(opts.data_dir.clone()),
        lies: opts.lies,
        results: crate::results::ResultStore::open(
            Some(&opts.data_dir),
            opts.result_budget,
            opts.result_retention,
        ),
        reuse: crate::reuse::ReuseCache::open(Some(&opts.data_dir), opts.reuse_budget),
        kept: crate::kept::KeptInputs::open(Some(&opts.data_dir), opts.kept_memory),
        key,
    });
    if !opts.shares.is_empty() {
        tokio::spawn(crate::shares::run(
            handle.clone(),
            opts.shares.clone(),
            opts.data_dir.clone(),
            opts.share_rescan,
        ));
    }
    let mut token = None;
    if let (Some(listener), Some(addr)) = (api_listener, api_addr) {
        let t = ApiToken::generate()?;
        t.write(&opts.data_dir)?;
        let fingerprint = opts.mesh_key.as_ref().map(MeshKey::fingerprint);
        let router = api::router(
            handle.clone(),
            Gate::new(t.clone(), addr.port()),
            fingerprint,
        );
        tokio::spawn(api::serve(listener, router));
        token = Some(t);
    }
    Ok(RunningNode {
        handle,
        peer_id,
        api: api_addr,
        token,
        listen: listen_rx,
        task,
    })
}
