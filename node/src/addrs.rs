//! Which of a peer's addresses are worth dialing.
//!
//! A node that listens on every interface (`0.0.0.0`, the default) reports, through identify
//! and Kademlia, each of its interface addresses, loopback included. A loopback address names
//! a peer only from its own machine: from any other, `127.0.0.1` is the dialer itself. libp2p
//! dials a peer's addresses side by side and takes the first connection made; the one to
//! loopback, to this node itself, is made first and fails the whole dial ("unexpected peer
//! id"). Nodes that joined through one bootstrap peer then never connected to each other, and
//! everything between them went through that peer (measured on the namespace LAN,
//! docs/BENCHMARKS.md). So a loopback address is kept only when the peer has no other.

use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;
use std::net::IpAddr;

/// The IP address `addr` starts with, if any (not a DNS name).
fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    match addr.iter().next()? {
        Protocol::Ip4(ip) => Some(ip.into()),
        Protocol::Ip6(ip) => Some(ip.into()),
        _ => None,
    }
}

/// The addresses of one peer worth dialing or passing on: never an unspecified one (`0.0.0.0`,
/// `::`: no machine), and the loopback ones only when the peer has no other (a mesh of one
/// machine).
pub(crate) fn dialable(addrs: impl IntoIterator<Item = Multiaddr>) -> Vec<Multiaddr> {
    let addrs: Vec<Multiaddr> = addrs
        .into_iter()
        .filter(|a| !ip_of(a).is_some_and(|ip| ip.is_unspecified()))
        .collect();
    let loopback = |a: &Multiaddr| ip_of(a).is_some_and(|ip| ip.is_loopback());
    if addrs.iter().all(loopback) {
        return addrs;
    }
    addrs.into_iter().filter(|a| !loopback(a)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(list: &[&str]) -> Vec<Multiaddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn loopback_goes_when_the_peer_has_another_address() {
        let got = dialable(addrs(&[
            "/ip4/127.0.0.1/udp/4001/quic-v1",
            "/ip4/10.79.0.2/udp/4001/quic-v1",
            "/ip6/::1/tcp/4001",
            "/dns4/node.lan/tcp/4001",
        ]));
        assert_eq!(
            got,
            addrs(&["/ip4/10.79.0.2/udp/4001/quic-v1", "/dns4/node.lan/tcp/4001"])
        );
    }

    #[test]
    fn loopback_stays_on_a_mesh_of_one_machine() {
        let only = addrs(&["/ip4/127.0.0.1/udp/4001/quic-v1", "/ip6/::1/tcp/4001"]);
        assert_eq!(dialable(only.clone()), only);
    }

    #[test]
    fn unspecified_addresses_are_never_dialed() {
        let got = dialable(addrs(&[
            "/ip4/0.0.0.0/udp/4001/quic-v1",
            "/ip6/::/tcp/4001",
            "/ip4/127.0.0.1/tcp/4001",
        ]));
        assert_eq!(got, addrs(&["/ip4/127.0.0.1/tcp/4001"]));
    }
}
