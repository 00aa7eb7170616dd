//! `devp2p node`: the full p2p node — RLPx server, discovery, peer limits, and (when set)
//! the metrics and admin RPC endpoints.
//!
//! Every flag can also come from a TOML file given with `--config` (same names, with
//! dashes: `maxpeers = 25`, `bootnodes = ["enode://..."]`); flags on the command line win.

use super::bootnode::Nat;
use super::key;
use crate::server::{self, PeerEvent};
use discovery::{NetRestrict, Node, NodeDb, NodeId, parse_node};
use serde::Deserialize;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tracing::{debug, info};

/// Node errors: each says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The config file could not be read or parsed.
    #[error("config file {path}: {reason}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A setting is invalid.
    #[error("{0}")]
    Invalid(String),
    /// The node key could not be read, parsed or stored.
    #[error(transparent)]
    Key(#[from] key::Error),
    /// The data directory could not be created.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Another process holds the data directory's lock (another node runs on it).
    #[error("data directory {path} is in use by another process")]
    DataDirInUse {
        /// The directory.
        path: PathBuf,
    },
    /// A socket could not be bound.
    #[error("cannot listen on {what} {addr}: {source}")]
    Bind {
        /// TCP or UDP, and for what.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The node database could not be opened.
    #[error(transparent)]
    Db(#[from] discovery::db::DbError),
    /// Discovery failed to start.
    #[error(transparent)]
    Discovery(#[from] discovery::service::Error),
    /// The chain could not be loaded or its store opened.
    #[error(transparent)]
    Chain(#[from] crate::chain::Error),
    /// The block store could not be opened.
    #[error(transparent)]
    Store(#[from] crate::chain::store::Error),
}

/// Arguments of `devp2p node`. Unset flags fall back to `--config`, then to the defaults
/// shown.
#[derive(clap::Args, Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Args {
    /// TOML file with any of these settings (flags given here override it).
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
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
    /// Address to listen on [default: 0.0.0.0].
    #[arg(long, value_name = "IP")]
    pub addr: Option<IpAddr>,
    /// Bootnodes: comma-separated enode URLs or ENRs.
    #[arg(long, value_delimiter = ',')]
    #[serde(default)]
    pub bootnodes: Vec<String>,
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
    pub netrestrict: Option<String>,
    /// External address: `extip:IP` or `none` [default: none].
    #[arg(long, value_name = "NAT")]
    pub nat: Option<String>,
    /// Disable discovery: only static and trusted nodes, and inbound peers.
    #[arg(long)]
    #[serde(default)]
    pub no_discovery: bool,
    /// Serve Prometheus metrics at http://ADDR/metrics.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
    /// Serve the JSON-RPC API at http://ADDR. Port 0 picks a free port; the node prints
    /// `rpc http://<bound address>` on stdout after its enode. `admin_*` calls need the
    /// token written to DATADIR/rpc.cookie (`Authorization: Bearer <token>`). A
    /// non-loopback address is refused unless --rpc-allow-remote is given.
    #[arg(long, value_name = "ADDR")]
    pub rpc: Option<SocketAddr>,
    /// Allow --rpc on a non-loopback address: anyone who reaches it can read the node's
    /// state and submit transactions (admin calls still need the cookie).
    #[arg(long)]
    #[serde(default)]
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
    #[serde(default, deserialize_with = "deserialize_interval_ms")]
    pub interval: Option<u32>,
    /// Private networks: the peers (comma-separated node ids or enode URLs) whose
    /// NewBlock/NewBlockHashes may move our head, besides the trusted nodes; other peers'
    /// block gossip is ignored. Public presets take blocks by sync only.
    #[arg(long, value_name = "IDS", value_delimiter = ',')]
    #[serde(default)]
    pub block_sources: Vec<String>,
    /// Blocks every accepted chain must contain, `NUMBER=HASH,...` (go-ethereum's
    /// `--eth.requiredblocks`): a peer that has another block there is dropped, and no
    /// chain that contradicts them is stored.
    #[arg(long, value_name = "N=HASH,...")]
    pub required_blocks: Option<String>,
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

fn deserialize_interval_ms<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<u32>, D::Error> {
    let s = String::deserialize(d)?;
    parse_interval_ms(&s)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

impl Args {
    /// Fills unset fields from `--config`, if given.
    fn merged(self) -> Result<Args, Error> {
        let Some(path) = self.config.clone() else {
            return Ok(self);
        };
        let text = std::fs::read_to_string(&path).map_err(|e| Error::Config {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let file: Args = toml::from_str(&text).map_err(|e| Error::Config {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        Ok(Args {
            config: self.config,
            chain: self.chain.or(file.chain),
            datadir: self.datadir.or(file.datadir),
            port: self.port.or(file.port),
            discport: self.discport.or(file.discport),
            addr: self.addr.or(file.addr),
            bootnodes: if self.bootnodes.is_empty() {
                file.bootnodes
            } else {
                self.bootnodes
            },
            nodekey: self.nodekey.or(file.nodekey),
            nodekeyhex: self.nodekeyhex.or(file.nodekeyhex),
            maxpeers: self.maxpeers.or(file.maxpeers),
            static_nodes: self.static_nodes.or(file.static_nodes),
            trusted_nodes: self.trusted_nodes.or(file.trusted_nodes),
            netrestrict: self.netrestrict.or(file.netrestrict),
            nat: self.nat.or(file.nat),
            no_discovery: self.no_discovery || file.no_discovery,
            metrics: self.metrics.or(file.metrics),
            rpc: self.rpc.or(file.rpc),
            rpc_allow_remote: self.rpc_allow_remote || file.rpc_allow_remote,
            status_interval: self.status_interval.or(file.status_interval),
            replay: self.replay.or(file.replay),
            interval: self.interval.or(file.interval),
            block_sources: if self.block_sources.is_empty() {
                file.block_sources
            } else {
                self.block_sources
            },
            required_blocks: self.required_blocks.or(file.required_blocks),
        })
    }
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
    let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
        path: path.into(),
        reason: e.to_string(),
    })?;
    let entries: Vec<String> = if text.trim_start().starts_with('[') {
        serde_json::from_str(&text).map_err(|e| Error::Config {
            path: path.into(),
            reason: e.to_string(),
        })?
    } else {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(String::from)
            .collect()
    };
    entries
        .iter()
        .map(|s| {
            parse_node(s).map_err(|e| Error::Config {
                path: path.into(),
                reason: format!("{s:.40}…: {e}"),
            })
        })
        .collect()
}

/// A peer's node id from 128 hex characters (optionally `0x`-prefixed) or an enode URL.
fn parse_peer_id(s: &str) -> Result<protocols::eth::PeerId, String> {
    let s = s.trim();
    let id = if s.starts_with("enode://") || s.starts_with("enr:") {
        parse_node(s).map_err(|e| format!("{s:.40}: {e}"))?.id
    } else {
        s.parse::<NodeId>().map_err(|e| format!("{s:.40}: {e}"))?
    };
    id.public_key()
        .ok_or_else(|| format!("{s:.40}: not a valid public key"))
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

/// Runs the node until `shutdown` completes.
pub async fn run(args: Args, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    let args = args.merged()?;
    if let Some(addr) = args.rpc
        && !discovery::node::canonical_ip(addr.ip()).is_loopback()
        && !args.rpc_allow_remote
    {
        return Err(Error::Invalid(format!(
            "--rpc {addr} is not a loopback address: anyone who can reach it could use the \
             API; use 127.0.0.1, or add --rpc-allow-remote"
        )));
    }
    let datadir = args.datadir.clone().unwrap_or_else(default_datadir);
    std::fs::create_dir_all(&datadir).map_err(|source| Error::DataDir {
        path: datadir.clone(),
        source,
    })?;
    // Held until we return: before the key is created, so a second node started on this
    // directory stops here instead of making or using a key of its own.
    let _lock = lock_datadir(&datadir)?;
    let key = key::resolve(
        args.nodekey.as_deref(),
        args.nodekeyhex.as_deref(),
        Some(&datadir),
    )?;
    let nat: Nat = args
        .nat
        .as_deref()
        .unwrap_or("none")
        .parse()
        .map_err(Error::Invalid)?;
    let netrestrict: Option<NetRestrict> = match &args.netrestrict {
        Some(s) => Some(
            s.parse()
                .map_err(|e| Error::Invalid(format!("--netrestrict: {e}")))?,
        ),
        None => None,
    };
    let interval = Duration::from_millis(args.interval.map_or(1000, u64::from));
    let mut spec = crate::chain::Spec::load(
        args.chain
            .as_deref()
            .unwrap_or(crate::chain::presets::DEFAULT),
    )?;
    if let Some(s) = &args.required_blocks {
        let pins = crate::required::parse(s)
            .map_err(|e| Error::Invalid(format!("--required-blocks {e}")))?;
        spec.required_blocks.extend(pins);
    }
    let required = spec.required_blocks.clone();
    let public = spec.public;
    let mut block_sources = args
        .block_sources
        .iter()
        .map(|s| parse_peer_id(s).map_err(|e| Error::Invalid(format!("--block-sources {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    // A preset's public bootnodes are used unless --bootnodes names others.
    let bootnode_list = if args.bootnodes.is_empty() {
        spec.bootnodes.clone()
    } else {
        args.bootnodes.clone()
    };
    let mut eth_config = protocols::eth::Config {
        // Public networks: block gossip disconnects (docs/fork-choice.md).
        block_gossip: !spec.public,
        ..protocols::eth::Config::default()
    };
    eth_config.pool.chain_id = Some(spec.config.chain_id);
    let store = Arc::new(crate::chain::Store::open(&datadir, spec)?);
    let chain = Arc::new(crate::chain::eth::EthChain::new(store.clone()));
    let (eth, eth_handle, mut eth_events) = protocols::eth::Eth::new(chain.clone(), eth_config);
    let bootnodes = bootnode_list
        .iter()
        .map(|s| parse_node(s).map_err(|e| Error::Invalid(format!("--bootnodes {s:.40}: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let ip = args.addr.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let tcp_addr = SocketAddr::new(ip, args.port.unwrap_or(30303));
    let listener = tokio::net::TcpListener::bind(tcp_addr)
        .await
        .map_err(|source| Error::Bind {
            what: "TCP (RLPx)",
            addr: tcp_addr,
            source,
        })?;
    let tcp_port = listener
        .local_addr()
        .map(|a| a.port())
        .unwrap_or(tcp_addr.port());

    let disc = if args.no_discovery {
        None
    } else {
        let udp_addr = SocketAddr::new(ip, args.discport.unwrap_or(tcp_port));
        let socket = tokio::net::UdpSocket::bind(udp_addr)
            .await
            .map_err(|source| Error::Bind {
                what: "UDP (discovery)",
                addr: udp_addr,
                source,
            })?;
        let config = discovery::Config {
            bootnodes,
            netrestrict: netrestrict.clone(),
            external_ip: match nat {
                Nat::ExtIp(ip) => Some(ip),
                Nat::None => None,
            },
            tcp_port,
            ..discovery::Config::default()
        };
        let db = NodeDb::open(datadir.join("nodes.redb"))?;
        Some(discovery::Service::spawn(socket, key, config, Some(db))?)
    };

    let mut config = server::Config::new(key);
    config.max_peers = args.maxpeers.unwrap_or(config.max_peers);
    config.netrestrict = netrestrict;
    let capped = |path: &PathBuf, max: usize| -> Result<Vec<Node>, Error> {
        let nodes = read_node_list(path)?;
        if nodes.len() > max {
            return Err(Error::Config {
                path: path.clone(),
                reason: format!("{} nodes, at most {max} are kept", nodes.len()),
            });
        }
        Ok(nodes)
    };
    if let Some(p) = &args.static_nodes {
        config.static_nodes = capped(p, server::dial::MAX_STATIC)?;
    }
    if let Some(p) = &args.trusted_nodes {
        let trusted = capped(p, server::MAX_TRUSTED)?;
        config.trusted_nodes = trusted.into_iter().map(|n| n.id).collect();
    }
    // Trusted peers are block sources too (the operator vouches for them).
    block_sources.extend(config.trusted_nodes.iter().filter_map(|id| id.public_key()));
    if public && !block_sources.is_empty() {
        tracing::warn!(target: "sync", "--block-sources has no effect on a public network: blocks come by sync only");
    }
    let gossip = crate::propagate::Gossip::for_chain(public, block_sources);
    let client_id = config.rlpx.client_id.clone();
    let subprotocols: Vec<Arc<dyn protocols::Subprotocol>> = vec![Arc::new(eth)];
    let server = server::start(config, listener, disc.clone(), subprotocols).map_err(|source| {
        Error::Bind {
            what: "TCP (RLPx)",
            addr: tcp_addr,
            source,
        }
    })?;

    // Catch-up sync from the eth peers; stopped before the server on shutdown.
    // One importer for sync and propagation: one pool clean-up, one accepted-block feed.
    let importer = crate::chain::Importer::new(store.clone(), Some(eth_handle.pool().clone()));
    let syncer = crate::sync::spawn(
        eth_handle.clone(),
        importer.clone(),
        crate::sync::Config {
            announce: !public,
            ..crate::sync::Config::default()
        },
    );

    // Block propagation, fed the block events below; and the replay source, if any.
    let (block_events, block_rx) = tokio::sync::mpsc::channel(256);
    let (propagator, propagation) =
        crate::propagate::Propagator::spawn(eth_handle.clone(), importer.clone(), gossip, block_rx);
    let replay = args.replay.clone().map(|path| {
        let p = propagator.clone();
        tokio::spawn(async move {
            match super::replay::replay(&p, &path, interval).await {
                Ok(n) => info!(target: "sync", blocks = n, "replay done"),
                Err(e) => tracing::warn!(target: "sync", error = %e, "replay failed"),
            }
        })
    });

    // The HTTP endpoints stop when `stop_http` flips.
    let (stop_http, http_stopped) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = http_stopped.clone();
        async move {
            let _ = rx.changed().await;
        }
    };
    if let Some(addr) = args.metrics {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind {
                what: "TCP (metrics)",
                addr,
                source,
            })?;
        let source = crate::metrics::Source::new(server.clone(), disc.clone())
            .with_chain(store.clone(), Some(syncer.handle()))
            .with_pool(eth_handle.pool().clone());
        // The bound address: `--metrics 127.0.0.1:0` picks a free port.
        let bound = listener.local_addr().unwrap_or(addr);
        info!(target: "p2p", url = %format!("http://{bound}/metrics"), "metrics");
        tokio::spawn(crate::metrics::serve(listener, source, stopped()));
    }
    // Where the JSON-RPC endpoint listens, printed after the enode URL.
    let mut rpc_bound = None;
    if let Some(addr) = args.rpc {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind {
                what: "TCP (JSON-RPC)",
                addr,
                source,
            })?;
        // A fresh admin token per start, readable only by the data directory's owner.
        let token = hex::encode(secp256k1::rand::random::<[u8; 32]>());
        let cookie = datadir.join("rpc.cookie");
        key::write_private(&cookie, token.as_bytes())?;
        info!(target: "p2p", cookie = %cookie.display(), "JSON-RPC admin token written");
        let cfg = crate::rpc::Config {
            client_id,
            admin_token: Some(token),
            ..crate::rpc::Config::default()
        };
        let api = crate::rpc::Api::new(server.clone(), disc.clone(), cfg)
            .with_chain(store.clone(), Some(syncer.handle()))
            .with_eth(eth_handle.clone());
        let bound = listener.local_addr().unwrap_or(addr);
        rpc_bound = Some(bound);
        info!(target: "p2p", url = %format!("http://{bound}"), "JSON-RPC");
        tokio::spawn(crate::rpc::serve(listener, api, stopped()));
    }

    let enode = match &disc {
        Some(d) => d.local_node(),
        None => Node {
            id: NodeId::from_secret_key(&key),
            ip: match nat {
                Nat::ExtIp(ip) => ip,
                Nat::None if ip.is_unspecified() => Ipv4Addr::LOCALHOST.into(),
                Nat::None => ip,
            },
            udp: 0,
            tcp: tcp_port,
        },
    };
    if let Some(d) = &disc {
        // The `eth` ENR entry (EIP-2124): `[[fork-hash, fork-next]]`.
        let entry = alloy_rlp::encode(vec![protocols::eth::Chain::fork_id(chain.as_ref())]);
        if let Err(e) = d.set_eth_entry(Some(entry)).await {
            tracing::warn!(target: "p2p", error = %e, "could not set the eth ENR entry");
        }
    }
    println!("{enode}");
    if let Some(bound) = rpc_bound {
        // Second stdout line: how a parent that passed port 0 (`devp2p devnet`) finds it.
        println!("rpc http://{bound}");
    }
    info!(target: "p2p", %enode, datadir = %datadir.display(), "node started");

    let mut events = server.subscribe();
    let status_every = Duration::from_secs(u64::from(args.status_interval.unwrap_or(30).max(1)));
    let mut status = tokio::time::interval(status_every);
    status.tick().await;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
                    _ = &mut shutdown => break,
                    ev = events.recv() => match ev {
                        Ok(PeerEvent::Added(p)) => debug!(target: "p2p", peer = %server::short(&p.id), inbound = p.inbound, "peer joined"),
                        Ok(PeerEvent::Dropped { id, reason }) => debug!(target: "p2p", peer = %server::short(&id), ?reason, "peer left"),
                        Err(_) => {}
                    },
                    Some(ev) = eth_events.recv() => match ev {
                        protocols::eth::Event::PeerConnected { peer, status } => {
                            debug!(target: "eth", peer = %rlpx::peer::short_id(&peer), version = status.version, "eth peer");
                            crate::required::spawn_check(eth_handle.clone(), peer, required.clone());
                        }
                        protocols::eth::Event::StatusFailed { peer, reason } => {
                            debug!(target: "eth", peer = %rlpx::peer::short_id(&peer), %reason, "eth status failed")
                        }
                        protocols::eth::Event::PeerDisconnected { .. } => {}
                        ev @ (protocols::eth::Event::NewBlock { .. } | protocols::eth::Event::NewBlockHashes { .. }) => {
                            // The policy first: gossip it would drop costs no queue slot.
                            let Some(ev) = propagator.admit(ev) else { continue };
                            if block_events.try_send(ev).is_err() {
                                debug!(target: "eth", "block event dropped (propagation busy)");
                            }
                        }
                    },
                    _ = status.tick() => {
                        let (inbound, outbound) = server.peer_counts();
                        let table = match &disc {
                            Some(d) => d.table_len().await.unwrap_or(0),
                            None => 0,
                        };
        let head = protocols::eth::Chain::head(chain.as_ref());
                        let eth_peers = eth_handle.peers().len();
                        let progress = syncer.handle().status();
                        info!(
                            target: "p2p",
                            inbound,
                            outbound,
                            table,
                            eth_peers,
                            head = head.number,
                            hash = %head.hash,
                            syncing = progress.syncing,
                            highest = progress.highest,
                            "status"
                        );
                    }
                }
    }
    info!(target: "p2p", "shutting down");
    if let Some(r) = replay {
        r.abort();
    }
    drop(block_events);
    propagation.abort();
    syncer.shutdown().await;
    let _ = stop_http.send(true);
    server.shutdown().await;
    if let Some(d) = disc {
        d.shutdown().await;
    }
    Ok(())
}
