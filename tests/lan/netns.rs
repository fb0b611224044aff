//! Hosts as Linux network namespaces: a switch namespace holding one bridge per subnet, one
//! namespace per host joined to a bridge by a veth pair, an optional router namespace between
//! subnets, and nftables rules inside a host for partitions and loss.
//!
//! Every namespace is named `shoal-<test pid>-<lan>-<role>`. A LAN deletes its namespaces (and
//! kills what runs in them) when dropped, also when a test panics; a reaper process started once
//! per run (tests/lan/reaper.sh) does the same if the test process dies without unwinding.

use std::io::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};

/// The private range the hosts use; it exists only inside the test's namespaces.
pub(crate) fn subnet_addr(segment: u8, host: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 77, segment, host)
}

/// The address a subnet's router has in it.
const ROUTER_HOST: u8 = 254;

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/lan")
        .join(name)
}

/// Why the LAN tests cannot run here, if they cannot. Installs iproute2 and nftables when run
/// as root without them.
pub(crate) fn unavailable() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("unknown");
    if euid != "0" {
        return Some(format!(
            "creating network namespaces needs root (this process runs as uid {euid}); \
             run `cargo test --workspace` as root, as .ci/run does"
        ));
    }
    let setup = Command::new("sh").arg(script("setup.sh")).status();
    if !matches!(setup, Ok(s) if s.success()) {
        return Some("iproute2 and nftables are missing and could not be installed".into());
    }
    let probe = format!("{}probe", prefix());
    let created = Command::new("ip")
        .args(["netns", "add", &probe])
        .output()
        .map(|o| o.status.success());
    let _ = Command::new("ip").args(["netns", "del", &probe]).output();
    if !matches!(created, Ok(true)) {
        return Some("this machine refuses to create network namespaces".into());
    }
    None
}

/// `shoal-<pid>-`: the prefix of every namespace this test process creates.
fn prefix() -> &'static str {
    static PREFIX: OnceLock<String> = OnceLock::new();
    PREFIX.get_or_init(|| format!("shoal-{}-", std::process::id()))
}

/// Starts the reaper once: it cleans up after earlier runs, then waits for this process to end.
fn ensure_reaper() {
    // The child is kept, never waited for: the reaper outlives this process by design.
    static REAPER: OnceLock<Mutex<(Child, ChildStdin)>> = OnceLock::new();
    REAPER.get_or_init(|| {
        let _ = Command::new("sh")
            .arg(script("reaper.sh"))
            .arg("sweep")
            .status();
        // setsid: a Ctrl-C that kills the test must not kill the reaper too.
        let mut child = Command::new("setsid")
            .arg("sh")
            .arg(script("reaper.sh"))
            .args(["watch", prefix()])
            .stdin(Stdio::piped())
            .spawn()
            .expect("starting tests/lan/reaper.sh");
        // The write end stays open as long as this process lives; it is never written to.
        let stdin = child.stdin.take().expect("piped stdin");
        Mutex::new((child, stdin))
    });
}

/// Runs `ip ARGS`, panicking with its error output if it fails.
pub(crate) fn ip(args: &[&str]) {
    run(Command::new("ip").args(args));
}

/// Runs a command to success or panics with what it printed.
pub(crate) fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A command run inside namespace `ns`.
pub(crate) fn in_ns(ns: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns]).arg(program);
    cmd
}

/// Loads an nftables ruleset inside `ns`.
pub(crate) fn nft(ns: &str, ruleset: &str) {
    let mut child = in_ns(ns, "nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running nft");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(ruleset.as_bytes())
        .expect("writing the ruleset");
    let out = child.wait_with_output().expect("waiting for nft");
    assert!(
        out.status.success(),
        "nft rejected {ruleset}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A set of namespaces that disappears with this value.
pub(crate) struct Namespaces {
    base: String,
    names: Mutex<Vec<String>>,
}

impl Namespaces {
    pub(crate) fn new() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        ensure_reaper();
        let base = format!("{}{}-", prefix(), NEXT.fetch_add(1, Ordering::Relaxed));
        Self {
            base,
            names: Mutex::new(Vec::new()),
        }
    }

    /// Creates namespace `<base><role>` with its loopback up.
    pub(crate) fn add(&self, role: &str) -> String {
        let name = format!("{}{role}", self.base);
        ip(&["netns", "add", &name]);
        self.names.lock().unwrap().push(name.clone());
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        name
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in self.names.lock().unwrap().drain(..).rev() {
            let pids = Command::new("ip").args(["netns", "pids", &ns]).output();
            if let Ok(out) = pids {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            }
            let _ = Command::new("ip").args(["netns", "del", &ns]).status();
        }
    }
}

/// Subnets on bridges in one switch namespace, hosts on them, routers between them.
pub(crate) struct Switch {
    pub ns: String,
    segments: Vec<u8>,
    ports: u32,
}

impl Switch {
    pub(crate) fn new(namespaces: &Namespaces) -> Self {
        Self {
            ns: namespaces.add("sw"),
            segments: Vec::new(),
            ports: 0,
        }
    }

    /// Adds subnet 10.77.`segment`.0/24 as a bridge. Multicast (mDNS) floods across it.
    pub(crate) fn add_segment(&mut self, segment: u8) {
        let br = format!("br{segment}");
        ip(&[
            "-n",
            &self.ns,
            "link",
            "add",
            &br,
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ]);
        ip(&["-n", &self.ns, "link", "set", &br, "up"]);
        self.segments.push(segment);
    }

    /// Plugs namespace `ns` into `segment` as interface `iface` with `addr`/24.
    fn plug(&mut self, ns: &str, iface: &str, segment: u8, addr: Ipv4Addr) {
        assert!(self.segments.contains(&segment), "no segment {segment}");
        self.ports += 1;
        let port = format!("p{}", self.ports);
        ip(&[
            "-n", &self.ns, "link", "add", &port, "type", "veth", "peer", "name", iface, "netns",
            ns,
        ]);
        ip(&[
            "-n",
            &self.ns,
            "link",
            "set",
            &port,
            "master",
            &format!("br{segment}"),
            "up",
        ]);
        ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", iface]);
        ip(&["-n", ns, "link", "set", iface, "up"]);
    }

    /// Plugs a host into `segment` with address 10.77.`segment`.`host`; its default route
    /// goes through the segment's router, if it gets one.
    pub(crate) fn plug_host(&mut self, ns: &str, segment: u8, host: u8) -> Ipv4Addr {
        let addr = subnet_addr(segment, host);
        self.plug(ns, "eth0", segment, addr);
        let gateway = subnet_addr(segment, ROUTER_HOST).to_string();
        ip(&["-n", ns, "route", "add", "default", "via", &gateway]);
        addr
    }

    /// A router namespace with a leg in each segment. It forwards unicast only: multicast, and
    /// so mDNS, stays inside each subnet, as on a real routed network.
    pub(crate) fn add_router(&mut self, namespaces: &Namespaces, segments: &[u8]) {
        let ns = namespaces.add("router");
        for &segment in segments {
            let iface = format!("eth{segment}");
            self.plug(&ns, &iface, segment, subnet_addr(segment, ROUTER_HOST));
        }
        run(in_ns(&ns, "sysctl").args(["-q", "-w", "net.ipv4.ip_forward=1"]));
    }
}
