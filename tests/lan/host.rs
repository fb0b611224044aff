//! A LAN of hosts, each a network namespace running at most one `shoal node`, driven through
//! the `shoal` CLI run inside the host (the node's API listens on the host's own loopback).

use crate::linkemu::LinkEmulator;
use crate::netns::{Namespaces, Switch, in_ns, nft};
use crate::support::{NodeProc, SHOAL};
use shoal_node::cli::rows::JobRow;
use shoal_node::cli::rows::PeerRow;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

pub(crate) struct Host {
    pub ns: String,
    pub ip: Ipv4Addr,
    pub data_dir: PathBuf,
    pub node: Option<NodeProc>,
}

impl Host {
    /// Starts `shoal node` here with its defaults (all interfaces, mDNS on, API on the host's
    /// 127.0.0.1:7070) and waits until it listens.
    pub(crate) fn start_node(&mut self, slots: u32, extra: &[&str]) {
        let mut cmd = in_ns(&self.ns, SHOAL);
        cmd.args(["node", "--slots", &slots.to_string(), "--data-dir"])
            .arg(&self.data_dir)
            .args(extra);
        self.node = Some(NodeProc::spawn(cmd, &self.data_dir));
    }

    /// SIGKILLs the node.
    pub(crate) fn kill_node(&mut self) {
        if let Some(mut node) = self.node.take() {
            node.kill();
        }
    }

    pub(crate) fn peer_id(&self) -> &str {
        &self.node.as_ref().expect("a running node").peer_id
    }

    /// The node's QUIC address on this host's LAN interface, for `--bootstrap`.
    pub(crate) fn quic_addr(&self) -> String {
        let node = self.node.as_ref().expect("a running node");
        let port = node
            .addrs
            .iter()
            .find_map(|a| {
                let rest = a.split("/udp/").nth(1)?;
                rest.strip_suffix(&format!("/quic-v1/p2p/{}", node.peer_id))
                    .map(str::to_string)
            })
            .expect("the node listens on QUIC");
        format!("/ip4/{}/udp/{port}/quic-v1/p2p/{}", self.ip, node.peer_id)
    }

    /// The data dir, as an argument: the CLI finds the node's API address and token there.
    pub(crate) fn dir_arg(&self) -> String {
        self.data_dir.display().to_string()
    }

    /// Runs `shoal ARGS` here to completion.
    pub(crate) fn shoal(&self, args: &[&str]) -> Output {
        in_ns(&self.ns, SHOAL)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("running shoal in a host")
    }

    /// The node's view (itself included); empty while the node does not answer.
    pub(crate) fn peers(&self) -> Vec<PeerRow> {
        let out = self.shoal(&["peers", "--json", "--data-dir", &self.dir_arg()]);
        serde_json::from_slice(&out.stdout).unwrap_or_default()
    }

    /// The protocol id of this host's node, as in a job's `spread`.
    pub(crate) fn node_id(&self) -> String {
        let rows = self.peers();
        let me = rows.iter().find(|p| p.is_self).expect("the node answers");
        me.node_id.clone()
    }

    /// The jobs the node knows; empty while the node does not answer.
    pub(crate) fn jobs(&self) -> Vec<JobRow> {
        let out = self.shoal(&["jobs", "--json", "--data-dir", &self.dir_arg()]);
        serde_json::from_slice(&out.stdout).unwrap_or_default()
    }

    /// Starts `shoal submit --json ARGS` here without waiting for it.
    pub(crate) fn submit(&self, args: &[&str]) -> Submission {
        let child = in_ns(&self.ns, SHOAL)
            .args(["submit", "--json", "--timeout", "180s", "--data-dir"])
            .arg(&self.data_dir)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting shoal submit");
        Submission {
            child: Some(child),
            started: Instant::now(),
        }
    }

    /// Drops every packet to and from `others` (one side of a partition).
    pub(crate) fn block(&self, others: &[Ipv4Addr]) {
        let set: Vec<String> = others.iter().map(Ipv4Addr::to_string).collect();
        let set = set.join(", ");
        nft(
            &self.ns,
            &format!(
                "table inet partition {{
                    chain input {{ type filter hook input priority 0; ip saddr {{ {set} }} drop; }}
                    chain output {{ type filter hook output priority 0; ip daddr {{ {set} }} drop; }}
                }}"
            ),
        );
    }

    /// Lifts [`Host::block`].
    pub(crate) fn unblock(&self) {
        nft(&self.ns, "delete table inet partition");
    }

    /// Drops `percent` % of the packets arriving at this host, at random.
    pub(crate) fn set_loss(&self, percent: u32) {
        nft(
            &self.ns,
            &format!(
                "table inet loss {{
                    chain input {{ type filter hook input priority 0; iifname != \"lo\" numgen random mod 100 < {percent} drop; }}
                }}"
            ),
        );
    }
}

/// A `shoal submit --json` running in a host.
pub(crate) struct Submission {
    child: Option<Child>,
    pub started: Instant,
}

impl Submission {
    /// Waits for the answer and returns it with the wall time since the submit started.
    pub(crate) fn finish(mut self) -> (serde_json::Value, Duration) {
        let out = self
            .child
            .take()
            .expect("not finished yet")
            .wait_with_output()
            .expect("waiting for shoal submit");
        let elapsed = self.started.elapsed();
        assert!(
            out.status.success(),
            "shoal submit failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let answer = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "shoal submit printed no JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        });
        (answer, elapsed)
    }

    /// Whether the submit has ended (then `finish` returns at once).
    pub(crate) fn ended(&mut self) -> bool {
        let child = self.child.as_mut().expect("not finished yet");
        matches!(child.try_wait(), Ok(Some(_)))
    }
}

impl Drop for Submission {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Hosts, the network between them and everything they run; all of it goes away on drop.
/// Fields drop in order: nodes first, then the emulator, then the namespaces.
pub(crate) struct Lan {
    pub hosts: Vec<Host>,
    emulator: Option<LinkEmulator>,
    switch: Option<Switch>,
    namespaces: Namespaces,
    pub dir: tempfile::TempDir,
}

impl Lan {
    fn empty() -> Self {
        Self {
            hosts: Vec::new(),
            emulator: None,
            switch: None,
            namespaces: Namespaces::new(),
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// Subnets 10.77.`s`.0/24, one bridge each, with `count` hosts on each: `&[(1, 5)]` is
    /// five hosts on one bridge.
    pub(crate) fn bridged(segments: &[(u8, usize)]) -> Self {
        let mut lan = Self::empty();
        let mut switch = Switch::new(&lan.namespaces);
        for &(segment, count) in segments {
            switch.add_segment(segment);
            for i in 1..=count {
                let ns = lan.namespaces.add(&format!("h{}", lan.hosts.len() + 1));
                let ip = switch.plug_host(&ns, segment, i as u8);
                lan.push_host(ns, ip);
            }
        }
        lan.switch = Some(switch);
        lan
    }

    /// Adds a router between the subnets: unicast crosses, multicast (mDNS) does not.
    pub(crate) fn add_router(&mut self, segments: &[u8]) {
        let switch = self.switch.as_mut().expect("a bridged LAN");
        switch.add_router(&self.namespaces, segments);
    }

    /// `count` hosts whose only link is a TUN device into a userspace link emulator, which can
    /// delay, jitter and duplicate their packets (see [`crate::linkemu`]).
    pub(crate) fn emulated(count: usize, seed: u64) -> Self {
        let mut lan = Self::empty();
        let hosts: Vec<(String, Ipv4Addr)> = (1..=count)
            .map(|i| {
                let ns = lan.namespaces.add(&format!("h{i}"));
                (ns, Ipv4Addr::new(10, 78, 0, i as u8))
            })
            .collect();
        lan.emulator = Some(LinkEmulator::start(&hosts, seed));
        for (ns, ip) in hosts {
            lan.push_host(ns, ip);
        }
        lan
    }

    pub(crate) fn emulator(&self) -> &LinkEmulator {
        self.emulator.as_ref().expect("an emulated LAN")
    }

    fn push_host(&mut self, ns: String, ip: Ipv4Addr) {
        let data_dir = self
            .dir
            .path()
            .join(format!("host-{}", self.hosts.len() + 1));
        self.hosts.push(Host {
            ns,
            ip,
            data_dir,
            node: None,
        });
    }

    /// Waits until every host in `hosts` that runs a node sees exactly `size` nodes (itself
    /// included); returns how long that took.
    pub(crate) fn await_views(&self, hosts: &[usize], size: usize, limit: Duration) -> Duration {
        let start = Instant::now();
        std::thread::scope(|s| {
            let waits: Vec<_> = hosts
                .iter()
                .map(|&i| {
                    let host = &self.hosts[i];
                    s.spawn(move || {
                        wait_until(
                            &format!("host {} to see {size} nodes", i + 1),
                            limit,
                            || (host.peers().len() == size).then_some(()),
                        );
                        start.elapsed()
                    })
                })
                .collect();
            waits
                .into_iter()
                .map(|w| w.join().expect("a view wait panicked"))
                .max()
                .unwrap_or_default()
        })
    }
}

/// Polls `check` every 50 ms until it gives a value, or panics after `limit` naming `what`.
pub(crate) fn wait_until<T>(
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "gave up after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
