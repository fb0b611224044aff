//! A userspace link emulator: this kernel has no `netem` qdisc, so latency, jitter and
//! duplication come from here. Each host's only interface is a TUN device whose other end is
//! this emulator; it reads every IPv4 packet a host sends, and delivers it to the host that owns
//! the destination address (multicast and broadcast to every other host) after a delay drawn
//! uniformly from latency ± jitter, sometimes twice. Reordering follows from the jitter; loss is
//! an nftables rule in the hosts ([`crate::host::Host::set_loss`]).
//!
//! Bounded: at most [`MAX_IN_FLIGHT`] packets wait at once (more are dropped, like a full
//! queue). The TUN devices belong to this process: they vanish when it ends, however it ends.

use crate::netns::ip;
use shoal_ops::SplitMix64;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_tun::Tun;

/// Packets held for delayed delivery at most.
const MAX_IN_FLIGHT: usize = 20_000;
/// Larger than any packet a host sends (the TUN MTU is 1500).
const BUFFER: usize = 2048;

/// What the emulator does to every packet.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Impairment {
    pub latency: Duration,
    pub jitter: Duration,
    /// Chance that a packet is delivered twice, in parts per thousand.
    pub duplicate_per_mille: u64,
}

/// What the emulator has done so far.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub delivered: AtomicU64,
    pub duplicated: AtomicU64,
    pub dropped_full: AtomicU64,
}

pub(crate) struct LinkEmulator {
    impairment: Arc<Mutex<Impairment>>,
    pub counters: Arc<Counters>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LinkEmulator {
    /// Gives each `(namespace, address)` a TUN device `eth0` with `address`/24 and starts
    /// forwarding between them, without impairment until [`LinkEmulator::set`].
    pub(crate) fn start(hosts: &[(String, Ipv4Addr)], seed: u64) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("emulator runtime");
        let mut ports = Vec::new();
        for (ns, addr) in hosts {
            // Created in this process's namespace under a unique name, then moved: the open
            // descriptor keeps working after the device changes namespace.
            let name = format!(
                "sh{}t{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            );
            let tun = {
                let _guard = runtime.enter();
                Tun::builder()
                    .name(&name)
                    .build()
                    .expect("creating a TUN device")
                    .pop()
                    .expect("one queue")
            };
            ip(&["link", "set", "dev", &name, "netns", ns]);
            ip(&["-n", ns, "link", "set", "dev", &name, "name", "eth0"]);
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                "eth0",
            ]);
            ip(&["-n", ns, "link", "set", "eth0", "multicast", "on", "up"]);
            ports.push((Arc::new(tun), *addr));
        }
        let impairment = Arc::new(Mutex::new(Impairment::default()));
        let counters = Arc::new(Counters::default());
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let shared = Shared {
            ports,
            impairment: impairment.clone(),
            counters: counters.clone(),
            rng: Mutex::new(SplitMix64(seed)),
            in_flight: AtomicUsize::new(0),
        };
        let thread = std::thread::spawn(move || {
            runtime.block_on(async move {
                let shared = Arc::new(shared);
                for from in 0..shared.ports.len() {
                    tokio::spawn(forward_from(shared.clone(), from));
                }
                let _ = stopped.await;
            });
        });
        Self {
            impairment,
            counters,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Changes what happens to packets from now on.
    pub(crate) fn set(&self, impairment: Impairment) {
        *self.impairment.lock().unwrap() = impairment;
    }
}

impl Drop for LinkEmulator {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Shared {
    ports: Vec<(Arc<Tun>, Ipv4Addr)>,
    impairment: Arc<Mutex<Impairment>>,
    counters: Arc<Counters>,
    rng: Mutex<SplitMix64>,
    in_flight: AtomicUsize,
}

impl Shared {
    /// The ports a packet to `dst`, sent by port `from`, goes to.
    fn destinations(&self, from: usize, dst: Ipv4Addr) -> Vec<usize> {
        let flood = dst.is_multicast() || dst.is_broadcast() || dst.octets()[3] == 255;
        (0..self.ports.len())
            .filter(|&to| to != from && (flood || self.ports[to].1 == dst))
            .collect()
    }

    /// One delay per copy to deliver: one copy, or two when the packet is duplicated.
    fn delays(&self) -> Vec<Duration> {
        let imp = *self.impairment.lock().unwrap();
        let mut rng = self.rng.lock().unwrap();
        let copies =
            if imp.duplicate_per_mille > 0 && rng.next_u64() % 1000 < imp.duplicate_per_mille {
                self.counters.duplicated.fetch_add(1, Ordering::Relaxed);
                2
            } else {
                1
            };
        (0..copies)
            .map(|_| {
                let jitter = imp.jitter.as_micros() as u64;
                let offset = if jitter == 0 {
                    0
                } else {
                    rng.next_u64() % (2 * jitter + 1)
                };
                (imp.latency + Duration::from_micros(offset)).saturating_sub(imp.jitter)
            })
            .collect()
    }
}

async fn forward_from(shared: Arc<Shared>, from: usize) {
    let mut buf = vec![0u8; BUFFER];
    loop {
        let Ok(n) = shared.ports[from].0.recv(&mut buf).await else {
            return;
        };
        let packet = &buf[..n];
        // IPv4 only (the hosts have no IPv6 addresses on this link).
        if n < 20 || packet[0] >> 4 != 4 {
            continue;
        }
        let dst = Ipv4Addr::new(packet[16], packet[17], packet[18], packet[19]);
        for to in shared.destinations(from, dst) {
            for delay in shared.delays() {
                if shared.in_flight.fetch_add(1, Ordering::Relaxed) >= MAX_IN_FLIGHT {
                    shared.in_flight.fetch_sub(1, Ordering::Relaxed);
                    shared.counters.dropped_full.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let shared = shared.clone();
                let packet = packet.to_vec();
                tokio::spawn(async move {
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    if shared.ports[to].0.send(&packet).await.is_ok() {
                        shared.counters.delivered.fetch_add(1, Ordering::Relaxed);
                    }
                    shared.in_flight.fetch_sub(1, Ordering::Relaxed);
                });
            }
        }
    }
}
