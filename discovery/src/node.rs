//! Node identities, distances and `enode://` URLs.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use keccak_asm::Keccak256;
use secp256k1::{PublicKey, SECP256K1, SecretKey};

/// Errors from parsing the text forms this crate accepts (`enode://` URLs, CIDR lists, hex).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The URL does not start with `enode://`.
    #[error("enode URL must start with enode://")]
    Scheme,
    /// The node id is not 128 hex characters or not a curve point.
    #[error("node id must be 128 hex characters encoding a secp256k1 public key")]
    NodeId,
    /// The host part is not an IP address.
    #[error("invalid IP address")]
    Ip,
    /// A port is missing or not a number in 0..=65535.
    #[error("invalid port")]
    Port,
    /// A CIDR prefix length is missing or too long for the address family.
    #[error("invalid CIDR prefix length")]
    Prefix,
    /// An `enr:` record is invalid.
    #[error("invalid node record: {0}")]
    Enr(#[from] crate::enr::EnrError),
    /// An `enr:` record has no IP address and UDP port.
    #[error("node record has no UDP endpoint")]
    NoEndpoint,
}

/// Parses a node given as `enode://…` URL or `enr:…` record text (bootnode lists).
pub fn parse_node(s: &str) -> Result<Node, ParseError> {
    let s = s.trim();
    if s.starts_with("enr:") {
        let enr: crate::enr::Enr = s.parse()?;
        return enr.to_node().ok_or(ParseError::NoEndpoint);
    }
    s.parse()
}

/// keccak256 of `data`.
pub fn keccak256(data: &[u8]) -> [u8; 32] {
    Keccak256::digest(data).into()
}

/// A node id: the 64-byte uncompressed secp256k1 public key without the `04` prefix
/// (discv4.md "Node Identities").
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub [u8; 64]);

impl NodeId {
    /// The id of a public key.
    pub fn from_public_key(key: &PublicKey) -> Self {
        let full = key.serialize_uncompressed();
        let mut id = [0u8; 64];
        id.copy_from_slice(&full[1..]); // ok: serialize_uncompressed is always 65 bytes
        NodeId(id)
    }

    /// The id belonging to a secret key.
    pub fn from_secret_key(key: &SecretKey) -> Self {
        Self::from_public_key(&PublicKey::from_secret_key(SECP256K1, key))
    }

    /// The public key, or `None` when the bytes are not a point on the curve.
    pub fn public_key(&self) -> Option<PublicKey> {
        let mut full = [4u8; 65];
        full[1..].copy_from_slice(&self.0); // ok: 64 bytes into a 65-byte buffer at offset 1
        PublicKey::from_byte_array_uncompressed(full).ok()
    }

    /// keccak256 of the id: the Kademlia key distances are measured on (discv4.md).
    pub fn hash(&self) -> [u8; 32] {
        keccak256(&self.0)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Eight bytes identify a node well enough in logs.
        write!(f, "NodeId({}…)", hex::encode(&self.0[..8])) // ok: 64-byte array
    }
}

impl FromStr for NodeId {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let mut id = [0u8; 64];
        hex::decode_to_slice(s, &mut id).map_err(|_| ParseError::NodeId)?;
        let id = NodeId(id);
        id.public_key().ok_or(ParseError::NodeId)?;
        Ok(id)
    }
}

/// `log2(a XOR b)` plus one: 0 when equal, 256 when the top bit differs (discv4.md "Kademlia Table").
pub fn log_distance(a: &[u8; 32], b: &[u8; 32]) -> u32 {
    for (i, (x, y)) in a.iter().zip(b.iter()).enumerate() {
        let d = x ^ y;
        if d != 0 {
            return (32 - i as u32) * 8 - d.leading_zeros();
        }
    }
    0
}

/// Compares the XOR distance of `a` and `b` to `target`.
pub fn distance_cmp(target: &[u8; 32], a: &[u8; 32], b: &[u8; 32]) -> std::cmp::Ordering {
    for ((t, x), y) in target.iter().zip(a).zip(b) {
        let (da, db) = (t ^ x, t ^ y);
        if da != db {
            return da.cmp(&db);
        }
    }
    std::cmp::Ordering::Equal
}

/// A node as carried in Neighbors packets and `enode://` URLs: id and endpoint.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Node {
    /// The node's public key.
    pub id: NodeId,
    /// IP address.
    pub ip: IpAddr,
    /// Discovery (UDP) port.
    pub udp: u16,
    /// RLPx (TCP) port; 0 when the node does not listen.
    pub tcp: u16,
}

impl Node {
    /// The node's discovery address.
    pub fn udp_addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.udp)
    }

    /// The node's RLPx address.
    pub fn tcp_addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.tcp)
    }
}

impl fmt::Display for Node {
    /// `enode://<id>@<ip>:<tcp>[?discport=<udp>]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "enode://{}@{}",
            self.id,
            SocketAddr::new(self.ip, self.tcp)
        )?;
        if self.udp != self.tcp {
            write!(f, "?discport={}", self.udp)?;
        }
        Ok(())
    }
}

impl FromStr for Node {
    type Err = ParseError;
    /// Parses `enode://<128 hex>@<ip>:<tcp>[?discport=<udp>]`.
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let rest = s.strip_prefix("enode://").ok_or(ParseError::Scheme)?;
        let (id, addr) = rest.split_once('@').ok_or(ParseError::Ip)?;
        let id: NodeId = id.parse()?;
        let (addr, query) = match addr.split_once('?') {
            Some((a, q)) => (a, Some(q)),
            None => (addr, None),
        };
        let sock: SocketAddr = addr.parse().map_err(|_| {
            if addr
                .rsplit_once(':')
                .is_some_and(|(h, _)| h.trim_matches(['[', ']']).parse::<IpAddr>().is_ok())
            {
                ParseError::Port
            } else {
                ParseError::Ip
            }
        })?;
        let mut udp = sock.port();
        if let Some(q) = query {
            for pair in q.split('&') {
                if let Some(v) = pair.strip_prefix("discport=") {
                    udp = v.parse().map_err(|_| ParseError::Port)?;
                }
            }
        }
        Ok(Node {
            id,
            ip: sock.ip(),
            udp,
            tcp: sock.port(),
        })
    }
}

/// `ip` as the address it stands for: an IPv6 address that carries an IPv4 address
/// (IPv4-mapped `::ffff:a.b.c.d`, the deprecated IPv4-compatible `::a.b.c.d`, and the
/// NAT64 prefix `64:ff9b::/96`) is that IPv4 address, since a dual-stack socket or a NAT64
/// gateway delivers it there. Every address check judges the canonical form, so
/// `::ffff:127.0.0.1` counts as loopback and `::ffff:169.254.169.254` as link-local.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = ip else { return ip };
    if let Some(v4) = v6.to_ipv4_mapped() {
        return IpAddr::V4(v4);
    }
    let seg = v6.segments();
    let embedded = std::net::Ipv4Addr::from(v6.to_bits() as u32);
    let compatible = seg[..6] == [0; 6] && !v6.is_unspecified() && !v6.is_loopback();
    let nat64 = seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
    if compatible || nat64 {
        IpAddr::V4(embedded)
    } else {
        ip
    }
}

/// Whether `ip` is in a local-area network range (RFC 1918, link-local, ULA).
pub fn is_lan(ip: IpAddr) -> bool {
    match canonical_ip(ip) {
        IpAddr::V4(v4) => v4.is_private() || v4.is_link_local() || v4.is_loopback(),
        IpAddr::V6(v6) => {
            let seg = v6.segments()[0];
            v6.is_loopback() || (seg & 0xffc0) == 0xfe80 || (seg & 0xfe00) == 0xfc00
        }
    }
}

/// Whether `ip` is in a network no node should be announced in: unspecified, multicast,
/// broadcast, documentation and benchmarking ranges, carrier-grade NAT, `0.0.0.0/8`
/// (after go-ethereum's `IsSpecialNetwork`).
pub fn is_special(ip: IpAddr) -> bool {
    match canonical_ip(ip) {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // 100.64.0.0/10, CGN
                || (a == 192 && b == 0 && c == 0) // 192.0.0.0/24, IETF
                || (a == 192 && b == 0 && c == 2) // TEST-NET-1
                || (a == 198 && (b == 18 || b == 19)) // benchmarking
                || (a == 198 && b == 51 && c == 100) // TEST-NET-2
                || (a == 203 && b == 0 && c == 113) // TEST-NET-3
                || a >= 240 // reserved
        }
        IpAddr::V6(v6) => {
            let seg = v6.segments();
            v6.is_unspecified() || v6.is_multicast() || (seg[0] == 0x2001 && seg[1] == 0x0db8)
        }
    }
}

/// Whether `ip`, learned from (or told to) the node at `to`, may be relayed: never a
/// special address, a loopback address only between loopback hosts, and a LAN address
/// only from or to a LAN host (as go-ethereum's `CheckRelayIP`). Stops a public peer from
/// making us probe private networks.
pub fn relay_ok(to: IpAddr, ip: IpAddr) -> bool {
    let (to, ip) = (canonical_ip(to), canonical_ip(ip));
    if is_special(ip) {
        return false;
    }
    if ip.is_loopback() && !to.is_loopback() {
        return false;
    }
    if is_lan(ip) && !is_lan(to) {
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_rules() {
        let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
        let public = ip("8.8.4.4");
        assert!(relay_ok(public, ip("1.2.3.4")));
        assert!(!relay_ok(public, ip("10.0.0.1")), "LAN from a public node");
        assert!(!relay_ok(public, ip("192.168.1.1")));
        assert!(
            !relay_ok(public, ip("169.254.169.254")),
            "link-local metadata address"
        );
        assert!(relay_ok(ip("10.1.1.1"), ip("10.0.0.1")), "LAN within a LAN");
        assert!(!relay_ok(public, ip("127.0.0.1")));
        assert!(relay_ok(ip("127.0.0.1"), ip("127.0.0.2")));
        for special in [
            "0.1.2.3",
            "100.64.0.1",
            "192.0.2.7",
            "198.18.0.1",
            "240.0.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "2001:db8::1",
            "::",
        ] {
            assert!(!relay_ok(ip("10.0.0.1"), ip(special)), "{special}");
        }
        assert!(!relay_ok(public, ip("fc00::1")));
        assert!(relay_ok(ip("fd00::2"), ip("fc00::1")));
    }

    /// IPv6 forms of IPv4 addresses are judged as the IPv4 address they carry.
    #[test]
    fn mapped_addresses_are_judged_as_ipv4() {
        let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
        let public = ip("8.8.4.4");
        for hidden in [
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "::ffff:192.168.1.1",
            "::169.254.169.254",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert!(!relay_ok(public, ip(hidden)), "{hidden}");
            assert!(is_lan(ip(hidden)), "{hidden}");
        }
        assert!(!relay_ok(public, ip("::ffff:0.1.2.3")), "special");
        assert!(is_special(ip("::ffff:255.255.255.255")));
        assert!(relay_ok(public, ip("::ffff:1.2.3.4")));
        assert!(
            relay_ok(ip("::ffff:127.0.0.1"), ip("127.0.0.2")),
            "loopback peer"
        );
        assert_eq!(canonical_ip(ip("::ffff:1.2.3.4")), ip("1.2.3.4"));
        assert_eq!(canonical_ip(ip("::1")), ip("::1"));
        assert_eq!(canonical_ip(ip("::")), ip("::"));
        assert_eq!(canonical_ip(ip("2a00::1")), ip("2a00::1"));
    }

    #[test]
    fn enode_roundtrip() {
        let key = SecretKey::from_byte_array([7u8; 32]).unwrap();
        let id = NodeId::from_secret_key(&key);
        let url = format!("enode://{id}@10.3.58.6:30303?discport=30301");
        let n: Node = url.parse().unwrap();
        assert_eq!(n.udp, 30301);
        assert_eq!(n.tcp, 30303);
        assert_eq!(n.to_string(), url);
        let v6: Node = format!("enode://{id}@[::1]:30303").parse().unwrap();
        assert_eq!(v6.udp, 30303);
        assert_eq!(
            "enode://00@1.2.3.4:1".parse::<Node>(),
            Err(ParseError::NodeId)
        );
        assert_eq!(
            format!("enode://{id}@1.2.3.4:x").parse::<Node>(),
            Err(ParseError::Port)
        );
        assert_eq!(
            format!("enode://{id}@nope:1").parse::<Node>(),
            Err(ParseError::Ip)
        );
        assert_eq!("http://x".parse::<Node>(), Err(ParseError::Scheme));
        assert_eq!(parse_node(&url), Ok(n));
        let enr = "enr:-IS4QHCYrYZbAKWCBRlAy5zzaDZXJBGkcnh4MHcBFZntXNFrdvJjX04jRzjzCBOonrkTfj499SZuOh8R33Ls8RRcy5wBgmlkgnY0gmlwhH8AAAGJc2VjcDI1NmsxoQPKY0yuDUmstAHYpMa2_oxVtw0RW_QAdpzBQA8yWM0xOIN1ZHCCdl8";
        assert_eq!(
            parse_node(enr).unwrap().udp_addr(),
            "127.0.0.1:30303".parse().unwrap()
        );
        assert!(matches!(parse_node("enr:AAAA"), Err(ParseError::Enr(_))));
    }

    #[test]
    fn distances() {
        let a = [0u8; 32];
        let mut b = [0u8; 32];
        assert_eq!(log_distance(&a, &b), 0);
        b[31] = 1;
        assert_eq!(log_distance(&a, &b), 1);
        b[0] = 0x80;
        assert_eq!(log_distance(&a, &b), 256);
    }
}
