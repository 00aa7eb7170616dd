//! The node's settings: one plain struct, read from TOML (`devp2p node --config`) or built
//! in code, with every value typed and parsed once here for the CLI and the library.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use alloy_primitives::B256;
use discovery::{Enr, NetRestrict, Node, NodeId, parse_node};
use serde::{Deserialize, Deserializer};

use super::Error;

/// Settings of a [`super::Node`]. `Default` is a node on the bundled `ethtest` chain,
/// listening on port 30303 of every interface (IPv4 and IPv6), with discovery and 50
/// peers.
///
/// In TOML the names are the CLI flags' (`maxpeers = 25`, `no-discovery = true`,
/// `bootnodes = ["enode://…"]`, `static-nodes = ["enode://…"]`,
/// `required-blocks = "N=HASH,…"`).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// The chain: a preset name ([`crate::chain::presets::NAMES`]) or a genesis.json path.
    pub chain: String,
    /// Data directory for the node key and databases; `None` is [`default_datadir`].
    pub datadir: Option<PathBuf>,
    /// Address to listen on (TCP and UDP). `::` (the default) is dual-stack: IPv4 and
    /// IPv6 peers on one port, or IPv4 only on a machine without IPv6.
    pub addr: IpAddr,
    /// TCP port for RLPx; 0 picks a free port.
    pub port: u16,
    /// UDP port for discovery; `None` is the TCP port.
    pub discport: Option<u16>,
    /// Bootnodes; empty uses the chain preset's.
    #[serde(deserialize_with = "nodes")]
    pub bootnodes: Vec<Node>,
    /// Node key file (64 hex characters); with neither this nor `nodekeyhex` the
    /// datadir's `nodekey`, created on first start.
    pub nodekey: Option<PathBuf>,
    /// Node key as 64 hex characters.
    pub nodekeyhex: Option<String>,
    /// Most peers.
    pub maxpeers: usize,
    /// Nodes always kept connected (at most [`crate::server::dial::MAX_STATIC`]).
    #[serde(deserialize_with = "nodes")]
    pub static_nodes: Vec<Node>,
    /// Nodes admitted even when full (at most [`crate::server::MAX_TRUSTED`]); their
    /// block gossip is trusted on private chains.
    #[serde(deserialize_with = "nodes")]
    pub trusted_nodes: Vec<Node>,
    /// Only talk to these networks.
    #[serde(deserialize_with = "parsed_opt")]
    pub netrestrict: Option<NetRestrict>,
    /// How the external address is found.
    #[serde(deserialize_with = "parsed")]
    pub nat: Nat,
    /// No discovery (v4, nor DNS node lists): only static and trusted nodes, and inbound
    /// peers.
    pub no_discovery: bool,
    /// EIP-1459 node lists (`enrtree://KEY@DOMAIN`) to find peers in; empty uses the
    /// chain preset's (public networks).
    pub dns_discovery: Vec<String>,
    /// No DNS node lists (`no_discovery` turns them off too).
    pub no_dns_discovery: bool,
    /// The DNS server for the node lists, instead of the system's (tests, private
    /// networks).
    pub dns_resolver: Option<SocketAddr>,
    /// Node Discovery v5 beside v4, on a UDP port of its own (`discovery_v5_port`).
    /// `None`: on for the public presets and whenever v5 bootnodes are given, off
    /// otherwise (a local or private chain has nobody to find over v5). `no_discovery`
    /// turns it off too.
    pub discovery_v5: Option<bool>,
    /// UDP port for discovery v5; `None` is [`discovery::v5::DEFAULT_PORT`] (9200, as
    /// reth), or a free port when `port` is 0.
    pub discovery_v5_port: Option<u16>,
    /// Discovery v5 bootnodes (ENRs; `enr:` entries of `--bootnodes` land here too). Empty:
    /// the preset's (go-ethereum's v5 bootnodes) unless `bootnodes` is set.
    #[serde(deserialize_with = "enrs")]
    pub bootnodes_v5: Vec<Enr>,
    /// Serve Prometheus metrics at `http://ADDR/metrics`.
    pub metrics: Option<SocketAddr>,
    /// Serve JSON-RPC at `ADDR` (HTTP and WebSocket). A non-loopback address is refused
    /// unless `rpc_allow_remote`.
    pub rpc: Option<SocketAddr>,
    /// Allow `rpc` on a non-loopback address.
    pub rpc_allow_remote: bool,
    /// Seconds between status lines at info level; 0 logs none.
    pub status_interval: u32,
    /// Private chains: peers whose block gossip may move our head, besides trusted nodes.
    #[serde(deserialize_with = "peer_ids")]
    pub block_sources: Vec<NodeId>,
    /// Blocks every accepted chain must contain (number → hash), besides the chain's own.
    #[serde(deserialize_with = "required_blocks")]
    pub required_blocks: BTreeMap<u64, B256>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            chain: crate::chain::presets::DEFAULT.into(),
            datadir: None,
            addr: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            port: 30303,
            discport: None,
            bootnodes: Vec::new(),
            nodekey: None,
            nodekeyhex: None,
            maxpeers: 50,
            static_nodes: Vec::new(),
            trusted_nodes: Vec::new(),
            netrestrict: None,
            nat: Nat::None,
            no_discovery: false,
            dns_discovery: Vec::new(),
            no_dns_discovery: false,
            dns_resolver: None,
            discovery_v5: None,
            discovery_v5_port: None,
            bootnodes_v5: Vec::new(),
            metrics: None,
            rpc: None,
            rpc_allow_remote: false,
            status_interval: 30,
            block_sources: Vec::new(),
            required_blocks: BTreeMap::new(),
        }
    }
}

impl Config {
    /// A node for tests and local networks: a fresh port on 127.0.0.1, no discovery,
    /// data in `datadir`.
    pub fn local(datadir: impl Into<PathBuf>) -> Self {
        Self {
            datadir: Some(datadir.into()),
            addr: Ipv4Addr::LOCALHOST.into(),
            port: 0,
            no_discovery: true,
            status_interval: 0,
            ..Self::default()
        }
    }

    /// Reads a TOML file; unset settings keep their defaults.
    pub fn from_file(path: &Path) -> Result<Self, Error> {
        let config = |reason: String| Error::Config {
            path: path.into(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| config(e.to_string()))?;
        toml::from_str(&text).map_err(|e| config(e.to_string()))
    }

    /// The data directory in use.
    pub fn datadir(&self) -> PathBuf {
        self.datadir.clone().unwrap_or_else(default_datadir)
    }
}

/// How the external address is determined (`--nat`), as go-ethereum's flag.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Nat {
    /// `none`: advertise the bound address, or learn it from peers when bound to an
    /// unspecified address (`::`, the default, or `0.0.0.0`).
    #[default]
    None,
    /// `extip:IP`: always advertise this IP.
    ExtIp(IpAddr),
    /// `any`: map the ports with NAT-PMP or UPnP, whichever gateway answers.
    Any,
    /// `upnp`: map the ports with UPnP-IGD.
    Upnp,
    /// `pmp`, `pmp:IP` or `pmp:IP:PORT`: map the ports with NAT-PMP at the default
    /// route's gateway, or at this one (port 5351 unless given: tests, relays).
    Pmp(Option<SocketAddr>),
    /// `stun` or `stun:HOST[:PORT][,HOST[:PORT]...]`: advertise the IP STUN servers see
    /// us at (the public servers of [`crate::nat::stun::DEFAULT_SERVERS`] when none is
    /// given), with our own ports.
    Stun(Vec<String>),
}

impl FromStr for Nat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let ip = |ip: &str| {
            ip.parse::<IpAddr>()
                .map_err(|_| format!("invalid IP address {ip:.40}"))
        };
        let (kind, arg) = match s.split_once(':') {
            Some((k, a)) => (k, Some(a)),
            None => (s, None),
        };
        match (kind.to_ascii_lowercase().as_str(), arg) {
            ("none", None) => Ok(Nat::None),
            ("any", None) => Ok(Nat::Any),
            ("upnp", None) => Ok(Nat::Upnp),
            ("pmp", None) => Ok(Nat::Pmp(None)),
            ("pmp", Some(a)) => match a.parse::<SocketAddr>() {
                Ok(gw) => Ok(Nat::Pmp(Some(gw))),
                Err(_) => ip(a)
                    .map(|ip| Nat::Pmp(Some(SocketAddr::new(ip, crate::nat::pmp::GATEWAY_PORT)))),
            },
            ("extip", Some(a)) => ip(a).map(Nat::ExtIp),
            ("stun", None) => Ok(Nat::Stun(Vec::new())),
            ("stun", Some(list)) => {
                let servers = list
                    .split(',')
                    .map(crate::nat::stun::parse_server)
                    .collect::<Result<Vec<_>, _>>()?;
                if servers.len() > crate::nat::stun::MAX_SERVERS {
                    return Err(format!(
                        "at most {} STUN servers",
                        crate::nat::stun::MAX_SERVERS
                    ));
                }
                Ok(Nat::Stun(servers))
            }
            _ => Err(format!(
                "expected any, upnp, pmp[:IP], extip:IP, stun[:HOST:PORT,...] or none, got {s:.40}"
            )),
        }
    }
}

impl Nat {
    /// The IP to advertise, if fixed.
    pub fn external_ip(&self) -> Option<IpAddr> {
        match self {
            Nat::ExtIp(ip) => Some(*ip),
            _ => None,
        }
    }

    /// How to find a gateway that maps our ports, if port mapping is asked for.
    pub fn mapping(&self) -> Option<crate::nat::Method> {
        use crate::nat::{Method, SSDP_MULTICAST};
        match *self {
            Nat::None | Nat::ExtIp(_) => None,
            Nat::Stun(ref servers) => Some(Method::Stun {
                servers: if servers.is_empty() {
                    crate::nat::stun::DEFAULT_SERVERS
                        .iter()
                        .map(|s| s.to_string())
                        .collect()
                } else {
                    servers.clone()
                },
            }),
            Nat::Any => Some(Method::Any {
                ssdp: SSDP_MULTICAST,
                pmp: None,
            }),
            Nat::Upnp => Some(Method::Upnp {
                ssdp: SSDP_MULTICAST,
            }),
            Nat::Pmp(gateway) => Some(Method::Pmp { gateway }),
        }
    }
}

/// An enode URL or ENR (a `--bootnodes` entry).
pub fn parse_enode(s: &str) -> Result<Node, String> {
    parse_node(s).map_err(|e| format!("{s:.40}: {e}"))
}

/// An ENR (`enr:…`, a `--bootnodes.v5` entry), verified.
pub fn parse_enr(s: &str) -> Result<Enr, String> {
    s.parse::<Enr>().map_err(|e| format!("{s:.40}: {e}"))
}

/// A node id from 128 hex characters (optionally `0x`-prefixed), an enode URL or an ENR.
pub fn parse_node_id(s: &str) -> Result<NodeId, String> {
    let s = s.trim();
    let id = if s.starts_with("enode://") || s.starts_with("enr:") {
        parse_node(s).map_err(|e| format!("{s:.40}: {e}"))?.id
    } else {
        s.parse::<NodeId>().map_err(|e| format!("{s:.40}: {e}"))?
    };
    id.public_key()
        .ok_or_else(|| format!("{s:.40}: not a valid public key"))?;
    Ok(id)
}

/// The default data directory: `$XDG_DATA_HOME/devp2p`, else `~/.local/share/devp2p`,
/// else `./devp2p-data`.
pub fn default_datadir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("devp2p");
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(h) => PathBuf::from(h).join(".local/share/devp2p"),
        None => PathBuf::from("devp2p-data"),
    }
}

/// Reads a node list file: one enode URL (or ENR) per line, `#` comments, or a JSON array
/// of strings (geth's `static-nodes.json`).
pub fn read_node_list(path: &Path) -> Result<Vec<Node>, Error> {
    let config = |reason: String| Error::Config {
        path: path.into(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| config(e.to_string()))?;
    let entries: Vec<String> = if text.trim_start().starts_with('[') {
        serde_json::from_str(&text).map_err(|e| config(e.to_string()))?
    } else {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(String::from)
            .collect()
    };
    entries
        .iter()
        .map(|s| parse_node(s).map_err(|e| config(format!("{s:.40}…: {e}"))))
        .collect()
}

/// Takes the exclusive lock of `datadir` (an advisory lock on its `LOCK` file, released
/// when the returned file is closed or the process dies).
pub fn lock_datadir(datadir: &Path) -> Result<std::fs::File, Error> {
    let io = |source| Error::DataDir {
        path: datadir.into(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(datadir.join("LOCK"))
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::DataDirInUse {
            path: datadir.into(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(io(e)),
    }
}

fn parsed<'de, D: Deserializer<'de>, T: FromStr<Err: std::fmt::Display>>(
    d: D,
) -> Result<T, D::Error> {
    String::deserialize(d)?
        .parse()
        .map_err(serde::de::Error::custom)
}

fn parsed_opt<'de, D: Deserializer<'de>, T: FromStr<Err: std::fmt::Display>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    parsed(d).map(Some)
}

fn nodes<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Node>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|s| parse_node(s).map_err(|e| serde::de::Error::custom(format!("{s:.40}: {e}"))))
        .collect()
}

fn enrs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Enr>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|s| parse_enr(s).map_err(serde::de::Error::custom))
        .collect()
}

fn peer_ids<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<NodeId>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|s| parse_node_id(s).map_err(serde::de::Error::custom))
        .collect()
}

fn required_blocks<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<u64, B256>, D::Error> {
    crate::required::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v5_settings_and_preset_bootnodes_parse() {
        let v5 = crate::chain::presets::V5_BOOTNODES;
        assert!(!v5.is_empty());
        for s in v5 {
            parse_enr(s).unwrap();
        }
        let text = format!(
            "discovery-v5 = true\ndiscovery-v5-port = 9300\nbootnodes-v5 = [\"{}\"]\n",
            v5[0]
        );
        let c: Config = toml::from_str(&text).unwrap();
        assert_eq!(c.discovery_v5, Some(true));
        assert_eq!(c.discovery_v5_port, Some(9300));
        assert_eq!(c.bootnodes_v5.len(), 1);
    }

    #[test]
    fn toml_settings_are_typed() {
        let id = "ca634cae0d49acb401d8a4c6b6fe8c55b70d115bf400769cc1400f3258cd31387574077f301b421bc84df7266c44e9e6d569fc56be00812904767bf5ccd1fc7f";
        let text = format!(
            "maxpeers = 7\nnat = \"extip:1.2.3.4\"\nnetrestrict = \"10.0.0.0/8\"\n\
             bootnodes = [\"enode://{id}@127.0.0.1:30303\"]\nblock-sources = [\"{id}\"]\n\
             required-blocks = \"1=0x{h}\"\n",
            h = "ab".repeat(32)
        );
        let c: Config = toml::from_str(&text).unwrap();
        assert_eq!(c.maxpeers, 7);
        assert_eq!(c.nat, Nat::ExtIp("1.2.3.4".parse().unwrap()));
        assert!(c.netrestrict.unwrap().contains("10.1.2.3".parse().unwrap()));
        assert_eq!(c.bootnodes.len(), 1);
        assert_eq!(c.block_sources[0], c.bootnodes[0].id);
        assert_eq!(c.required_blocks.len(), 1);
        assert_eq!(c.port, 30303, "unset settings keep their defaults");
        let stun = |s: &str| s.parse::<Nat>();
        assert_eq!(stun("stun"), Ok(Nat::Stun(Vec::new())));
        assert_eq!(
            stun("stun:127.0.0.1:3478,stun.example.org"),
            Ok(Nat::Stun(vec![
                "127.0.0.1:3478".into(),
                "stun.example.org:3478".into()
            ]))
        );
        for bad in ["stun:", "stun:a,,b", "stun:h:0"] {
            assert!(stun(bad).is_err(), "{bad}");
        }
        assert!(stun(&format!("stun:{}", vec!["h"; 17].join(","))).is_err());
        assert!(Nat::Stun(Vec::new()).mapping().is_some(), "default servers");
        assert_eq!(c.discovery_v5, None);
        for bad in [
            "nat = \"upnp:1.2.3.4\"",
            "netrestrict = \"10.0.0.0/99\"",
            "bootnodes = [\"x\"]",
            "maxpeers = \"many\"",
            "unknown = 1",
            "bootnodes-v5 = [\"enode://x\"]",
        ] {
            assert!(toml::from_str::<Config>(bad).is_err(), "{bad}");
        }
    }
}
