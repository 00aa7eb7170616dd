//! CIDR ranges and the `--netrestrict` list.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::node::ParseError;

/// An IP network such as `10.0.0.0/8` or `fd00::/8`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// A network from an address and prefix length; `None` when the prefix is too long.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Self> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(Cidr { addr, prefix })
    }

    /// Whether `ip` is inside the network. IPv4-mapped IPv6 addresses match IPv4 networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => prefix_eq(&n.octets(), &a.octets(), self.prefix),
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(&n.octets(), &a.octets(), self.prefix),
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let full = usize::from(bits / 8);
    let (Some(af), Some(bf)) = (a.get(..full), b.get(..full)) else {
        return false;
    };
    if af != bf {
        return false;
    }
    let rem = bits % 8;
    if rem == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rem);
    match (a.get(full), b.get(full)) {
        (Some(x), Some(y)) => x & mask == y & mask,
        _ => false,
    }
}

impl FromStr for Cidr {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let (ip, prefix) = s.trim().split_once('/').ok_or(ParseError::Prefix)?;
        let addr: IpAddr = ip.parse().map_err(|_| ParseError::Ip)?;
        let prefix: u8 = prefix.parse().map_err(|_| ParseError::Prefix)?;
        Cidr::new(addr, prefix).ok_or(ParseError::Prefix)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// A list of networks (`--netrestrict 10.0.0.0/8,192.168.0.0/16`): when configured, discovery
/// talks only to addresses inside one of them.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct NetRestrict(pub Vec<Cidr>);

impl NetRestrict {
    /// Whether `ip` is inside any of the networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }
}

impl FromStr for NetRestrict {
    type Err = ParseError;
    /// Parses a comma-separated CIDR list.
    fn from_str(s: &str) -> Result<Self, ParseError> {
        s.split(',')
            .filter(|p| !p.trim().is_empty())
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map(NetRestrict)
    }
}

#[cfg(test)]
#[path = "cidr_tests.rs"]
mod tests;
