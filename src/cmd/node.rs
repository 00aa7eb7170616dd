//! `devp2p node`: the full node ([`crate::node`]) from the command line.
//!
//! Every flag can also come from a TOML file given with `--config` (the same names, with
//! dashes: `maxpeers = 25`, `bootnodes = ["enode://..."]`; see [`Config`]); flags on the
//! command line win.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use alloy_primitives::B256;
use discovery::{Enr, NetRestrict, NodeId};
use tracing::info;

pub use crate::node::{Config, Error, Nat, default_datadir, lock_datadir, read_node_list};

/// Arguments of `devp2p node`. Unset flags fall back to `--config`, then to the defaults
/// shown.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Args {
    /// TOML file with any of these settings (flags given here override it).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The chain: a preset (ethtest, mainnet, sepolia, holesky, hoodi) or a genesis.json
    /// path [default: ethtest, bundled].
    #[arg(long, value_name = "NAME|FILE")]
    pub chain: Option<String>,
    /// Data directory for the node key and databases [default: $XDG_DATA_HOME/devp2p or
    /// ~/.local/share/devp2p].
    #[arg(long, value_name = "DIR")]
    pub datadir: Option<PathBuf>,
    /// TCP port for RLPx [default: 30303; 0 picks a free port].
    #[arg(long)]
    pub port: Option<u16>,
    /// UDP port for discovery [default: the TCP port].
    #[arg(long)]
    pub discport: Option<u16>,
    /// Address to listen on [default: ::, IPv4 and IPv6 on one port; 0.0.0.0 on a machine
    /// without IPv6].
    #[arg(long, value_name = "IP")]
    pub addr: Option<IpAddr>,
    /// Bootnodes: comma-separated enode URLs or ENRs [default: the chain preset's]. ENRs
    /// serve discovery v5 too.
    #[arg(long, value_delimiter = ',', value_parser = parse_bootnode)]
    pub bootnodes: Vec<String>,
    /// Discovery v5 bootnodes only: comma-separated ENRs [default: the `enr:` entries of
    /// --bootnodes, else go-ethereum's v5 bootnodes on public presets].
    #[arg(long = "bootnodes.v5", value_name = "ENRS", value_delimiter = ',', value_parser = crate::node::parse_enr)]
    pub bootnodes_v5: Vec<Enr>,
    /// Run Node Discovery v5 beside v4 (on its own UDP port) [default: on for the public
    /// presets and when v5 bootnodes are given].
    #[arg(
        long = "discovery.v5",
        visible_alias = "discv5",
        conflicts_with = "no_discovery_v5"
    )]
    pub discovery_v5: bool,
    /// Do not run discovery v5.
    #[arg(long = "no-discovery.v5")]
    pub no_discovery_v5: bool,
    /// UDP port for discovery v5 [default: 9200; a free port when --port is 0].
    #[arg(long = "discovery.v5.port", value_name = "PORT")]
    pub discovery_v5_port: Option<u16>,
    /// Node key file (64 hex characters).
    #[arg(long, value_name = "FILE")]
    pub nodekey: Option<PathBuf>,
    /// Node key as 64 hex characters.
    #[arg(long, value_name = "HEX")]
    pub nodekeyhex: Option<String>,
    /// Most peers [default: 50].
    #[arg(long)]
    pub maxpeers: Option<usize>,
    /// File with static nodes (one enode URL per line, or a JSON array as geth writes it):
    /// always kept connected.
    #[arg(long, value_name = "FILE")]
    pub static_nodes: Option<PathBuf>,
    /// File with trusted nodes (same format): admitted even when full.
    #[arg(long, value_name = "FILE")]
    pub trusted_nodes: Option<PathBuf>,
    /// Only talk to these networks (comma-separated CIDRs).
    #[arg(long, value_name = "CIDRS")]
    pub netrestrict: Option<NetRestrict>,
    /// External address: `any`, `upnp`, `pmp[:GATEWAY]` (map the ports on the router),
    /// `extip:IP`, `stun[:HOST:PORT,...]` (the IP STUN servers see us at; public servers
    /// when none is given) or `none` [default: none].
    #[arg(long, value_name = "NAT")]
    pub nat: Option<Nat>,
    /// Disable discovery: only static and trusted nodes, and inbound peers.
    #[arg(long)]
    pub no_discovery: bool,
    /// EIP-1459 DNS node lists to find peers in, comma-separated `enrtree://KEY@DOMAIN`
    /// [default: the preset's, `all.<network>.ethdisco.net` on public networks].
    #[arg(long, value_name = "URLS", value_delimiter = ',')]
    pub dns_discovery: Vec<String>,
    /// Do not use DNS node lists (--no-discovery turns them off too).
    #[arg(long)]
    pub no_dns_discovery: bool,
    /// The DNS server for the node lists, `IP:PORT` [default: the system's].
    #[arg(long, value_name = "ADDR")]
    pub dns_resolver: Option<SocketAddr>,
    /// Serve Prometheus metrics at http://ADDR/metrics.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
    /// Serve the JSON-RPC API at http://ADDR (and WebSocket on the same port). Port 0
    /// picks a free port; the node prints `rpc http://<bound address>` on stdout after its
    /// enode. `admin_*` calls need the token written to DATADIR/rpc.cookie
    /// (`Authorization: Bearer <token>`). A non-loopback address is refused unless
    /// --rpc-allow-remote is given.
    #[arg(long, value_name = "ADDR")]
    pub rpc: Option<SocketAddr>,
    /// Allow --rpc on a non-loopback address: anyone who reaches it can read the node's
    /// state and submit transactions (admin calls still need the cookie).
    #[arg(long)]
    pub rpc_allow_remote: bool,
    /// Seconds between the status lines logged at info level [default: 30].
    #[arg(long, value_name = "SECS")]
    pub status_interval: Option<u32>,
    /// Import the blocks of this RLP file one at a time (skipping known ones) and
    /// propagate them like new blocks.
    // Boxed, and the interval kept in milliseconds, so `Args` stays small (clippy's
    // large_enum_variant on the CLI's command enum).
    #[arg(long, value_name = "FILE", value_parser = parse_boxed_path)]
    pub replay: Option<Box<PathBuf>>,
    /// Pause between replayed blocks, e.g. `2s` or `500ms` [default: 1s].
    #[arg(long, value_name = "DUR", value_parser = parse_interval_ms)]
    pub interval: Option<u32>,
    /// Private networks: the peers (comma-separated node ids or enode URLs) whose
    /// NewBlock/NewBlockHashes may move our head, besides the trusted nodes; other peers'
    /// block gossip is ignored. Public presets take blocks by sync only.
    #[arg(long, value_name = "IDS", value_delimiter = ',', value_parser = crate::node::parse_node_id)]
    pub block_sources: Vec<NodeId>,
    /// Blocks every accepted chain must contain, `NUMBER=HASH,...` (go-ethereum's
    /// `--eth.requiredblocks`): a peer that has another block there is dropped, and no
    /// chain that contradicts them is stored.
    #[arg(long, value_name = "N=HASH,...", value_parser = parse_required)]
    pub required_blocks: Option<BTreeMap<u64, B256>>,
}

/// A `--bootnodes` entry: an enode URL or an ENR, checked here and kept as text (an ENR
/// also serves discovery v5).
fn parse_bootnode(s: &str) -> Result<String, String> {
    crate::node::parse_enode(s)?;
    Ok(s.trim().to_owned())
}

fn parse_required(s: &str) -> Result<BTreeMap<u64, B256>, String> {
    crate::required::parse(s)
}

fn parse_boxed_path(s: &str) -> Result<Box<PathBuf>, String> {
    Ok(Box::new(PathBuf::from(s)))
}

/// `--interval`: a duration like `2s` or `500ms`, in milliseconds.
fn parse_interval_ms(s: &str) -> Result<u32, String> {
    super::replay::parse_duration(s)
        .and_then(|d| u32::try_from(d.as_millis()).ok())
        .ok_or_else(|| format!("{s:.20}: expected a duration such as 2s or 500ms"))
}

impl Args {
    /// The node's settings: `--config` (or the defaults), then every flag given.
    pub fn config(&self) -> Result<Config, Error> {
        let mut c = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        let a = self.clone();
        macro_rules! set {
            ($($field:ident),*) => {$(
                if let Some(v) = a.$field {
                    c.$field = v;
                }
            )*};
        }
        set!(
            chain,
            port,
            addr,
            maxpeers,
            nat,
            status_interval,
            required_blocks
        );
        macro_rules! set_opt {
            ($($field:ident),*) => {$(
                if a.$field.is_some() {
                    c.$field = a.$field;
                }
            )*};
        }
        set_opt!(
            datadir,
            discport,
            nodekey,
            nodekeyhex,
            netrestrict,
            metrics,
            rpc
        );
        if !a.bootnodes.is_empty() {
            c.bootnodes = a
                .bootnodes
                .iter()
                .map(|s| crate::node::parse_enode(s))
                .collect::<Result<_, _>>()
                .map_err(Error::Invalid)?;
            let enrs: Vec<Enr> = a
                .bootnodes
                .iter()
                .filter(|s| s.starts_with("enr:"))
                .map(|s| crate::node::parse_enr(s))
                .collect::<Result<_, _>>()
                .map_err(Error::Invalid)?;
            if !enrs.is_empty() {
                c.bootnodes_v5 = enrs;
            }
        }
        if !a.bootnodes_v5.is_empty() {
            c.bootnodes_v5 = a.bootnodes_v5;
        }
        if a.discovery_v5 {
            c.discovery_v5 = Some(true);
        }
        if a.no_discovery_v5 {
            c.discovery_v5 = Some(false);
        }
        if a.discovery_v5_port.is_some() {
            c.discovery_v5_port = a.discovery_v5_port;
        }
        if !a.block_sources.is_empty() {
            c.block_sources = a.block_sources;
        }
        if let Some(p) = &a.static_nodes {
            c.static_nodes = read_node_list(p)?;
        }
        if let Some(p) = &a.trusted_nodes {
            c.trusted_nodes = read_node_list(p)?;
        }
        c.no_discovery |= a.no_discovery;
        c.no_dns_discovery |= a.no_dns_discovery;
        c.rpc_allow_remote |= a.rpc_allow_remote;
        Ok(c)
    }
}

/// Runs the node until `shutdown` completes. Prints the enode URL on stdout, then
/// `rpc http://ADDR` if serving JSON-RPC (how a parent that passed port 0, such as
/// `devp2p devnet`, finds it).
pub async fn run(args: Args, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    let node = crate::node::Node::builder(args.config()?).start().await?;
    println!("{}", node.enode());
    if let Some(bound) = node.rpc_addr() {
        println!("rpc http://{bound}");
    }
    let replay = match (&args.replay, node.propagator()) {
        (Some(path), Some(p)) => {
            let (p, path) = (p.clone(), path.clone());
            let interval = Duration::from_millis(args.interval.map_or(1000, u64::from));
            Some(tokio::spawn(async move {
                match super::replay::replay(&p, &path, interval).await {
                    Ok(n) => info!(target: "sync", blocks = n, "replay done"),
                    Err(e) => tracing::warn!(target: "sync", error = %e, "replay failed"),
                }
            }))
        }
        _ => None,
    };
    shutdown.await;
    if let Some(r) = replay {
        r.abort();
    }
    node.shutdown().await;
    Ok(())
}
