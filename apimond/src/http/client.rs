//! Who the client is: the socket peer, unless the peer is a trusted proxy, in which
//! case `X-Forwarded-For` is read right to left, skipping trusted hops. A client can
//! put anything in the header; only hops added by proxies we trust are believed.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

fn parse_hop(raw: &str) -> Option<IpAddr> {
    let raw = raw.trim();
    if let Ok(ip) = raw.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    // Some proxies add a port: `1.2.3.4:5678` or `[2001:db8::1]:5678`.
    raw.parse::<SocketAddr>()
        .ok()
        .map(|s| s.ip().to_canonical())
}

pub fn client_ip(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[IpNet]) -> IpAddr {
    let peer = peer.to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let Some(header) = forwarded_for else {
        return peer;
    };
    let mut client = peer;
    for hop in header.rsplit(',') {
        match parse_hop(hop) {
            Some(ip) => {
                client = ip;
                if !is_trusted(&ip) {
                    return ip;
                }
            }
            // An unreadable hop: stop at the last one we could trust.
            None => return client,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(s: &[&str]) -> Vec<IpNet> {
        s.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let t = nets(&["10.0.0.0/8"]);
        assert_eq!(
            client_ip(ip("203.0.113.9"), Some("1.1.1.1"), &t),
            ip("203.0.113.9")
        );
        assert_eq!(
            client_ip(ip("127.0.0.1"), Some("1.1.1.1"), &[]),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn a_trusted_peer_is_read_right_to_left_skipping_trusted_hops() {
        let t = nets(&["10.0.0.0/8"]);
        // The client forged the first entry; the proxies appended the rest.
        let xff = "6.6.6.6, 198.51.100.7, 10.1.1.1";
        assert_eq!(client_ip(ip("10.0.0.2"), Some(xff), &t), ip("198.51.100.7"));
        assert_eq!(client_ip(ip("10.0.0.2"), None, &t), ip("10.0.0.2"));
        assert_eq!(
            client_ip(ip("10.0.0.2"), Some("10.3.3.3, 10.2.2.2"), &t),
            ip("10.3.3.3")
        );
        assert_eq!(
            client_ip(ip("10.0.0.2"), Some("garbage, 10.2.2.2"), &t),
            ip("10.2.2.2")
        );
        assert_eq!(
            client_ip(ip("10.0.0.2"), Some("[2001:db8::1]:443"), &t),
            ip("2001:db8::1")
        );
        assert_eq!(
            client_ip(ip("::ffff:10.0.0.2"), Some("192.0.2.1:80"), &t),
            ip("192.0.2.1")
        );
    }
}
