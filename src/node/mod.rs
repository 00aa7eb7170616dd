//! The full node as a library: [`Node::builder`] wires the RLPx server, discovery, the
//! `eth` protocol, the block store, sync, block propagation and the HTTP endpoints, and
//! runs any other [`Subprotocol`] on the same connections.
//!
//! A "full node" here stores and serves full blocks and validates them structurally
//! (headers, roots, fork rules); it does not execute transactions.
//!
//! ```no_run
//! # async fn run() -> Result<(), devp2p::node::Error> {
//! use devp2p::node::{Config, Node};
//!
//! let node = Node::builder(Config::local("/tmp/devp2p-example")).start().await?;
//! println!("{}", node.enode());
//! let mut blocks = node.subscribe_blocks().expect("eth runs by default");
//! while let Ok(b) = blocks.recv().await {
//!     println!("block {} {}", b.block.header.number, b.hash);
//! }
//! node.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # Events
//!
//! Each kind of event is a tokio broadcast channel of its own, so a flood of one kind
//! never crowds out another: [`Node::subscribe_peers`], [`Node::subscribe_eth_peers`],
//! [`Node::subscribe_blocks`], [`Node::subscribe_transactions`], and
//! [`crate::sync::Handle`] for sync progress (a watch: always the latest). A subscriber
//! that falls behind loses the oldest events and its next `recv` returns
//! `RecvError::Lagged(n)` with how many it missed; it never slows the node. The node's own
//! sync and propagation subscribe the same way.

mod config;
mod discv5;
mod dualstack;

pub use config::{
    Config, Nat, default_datadir, lock_datadir, parse_enode, parse_enr, parse_node_id,
    read_node_list,
};
pub(crate) use discv5::{bind as discv5_bind, follow_nat as discv5_follow_nat};

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use discovery::{Node as Enode, NodeDb, NodeId};
use protocols::Subprotocol;
use protocols::eth::{self, PeerId};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tracing::info;

use crate::chain::{self, Importer, Spec, Store};
use crate::propagate::{Gossip, Propagator};
use crate::{key, server, sync};

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
    /// A DNS node list could not be used (a bad `enrtree://` URL, no resolver).
    #[error("DNS discovery: {0}")]
    Dns(#[from] discovery::dns::Error),
    /// The chain could not be loaded or its store opened.
    #[error(transparent)]
    Chain(#[from] chain::Error),
    /// The block store could not be opened.
    #[error(transparent)]
    Store(#[from] chain::store::Error),
}

/// Sets up a [`Node`]: start from a [`Config`], add protocols, then [`Builder::start`].
pub struct Builder {
    config: Config,
    spec: Option<Spec>,
    key: Option<secp256k1::SecretKey>,
    protocols: Vec<Arc<dyn Subprotocol>>,
    eth: Option<eth::Config>,
    sync: sync::Config,
}

impl Builder {
    /// The chain, instead of [`Config::chain`]'s preset or genesis file.
    pub fn chain(mut self, spec: Spec) -> Self {
        self.spec = Some(spec);
        self
    }

    /// The node key, instead of [`Config::nodekey`] or the datadir's `nodekey`.
    pub fn key(mut self, key: secp256k1::SecretKey) -> Self {
        self.key = Some(key);
        self
    }

    /// Runs `protocol` on every connection, beside `eth` (or instead of it, with
    /// [`Builder::without_eth`]). Call once per protocol.
    pub fn protocol(mut self, protocol: impl Subprotocol + 'static) -> Self {
        self.protocols.push(Arc::new(protocol));
        self
    }

    /// Settings of the `eth` protocol (chain id, gossip and block-source rules are set
    /// from the chain on top of them).
    pub fn eth(mut self, config: eth::Config) -> Self {
        self.eth = Some(config);
        self
    }

    /// No `eth`: no chain store, sync or propagation; only the given protocols run.
    pub fn without_eth(mut self) -> Self {
        self.eth = None;
        self
    }

    /// Settings of the downloader.
    pub fn sync(mut self, config: sync::Config) -> Self {
        self.sync = config;
        self
    }

    /// Discovery v4 on or off ([`Config::no_discovery`]).
    pub fn discovery(mut self, on: bool) -> Self {
        self.config.no_discovery = !on;
        self
    }

    /// Serves JSON-RPC at `addr` ([`Config::rpc`]).
    pub fn rpc(mut self, addr: SocketAddr) -> Self {
        self.config.rpc = Some(addr);
        self
    }

    /// Serves Prometheus metrics at `addr` ([`Config::metrics`]).
    pub fn metrics(mut self, addr: SocketAddr) -> Self {
        self.config.metrics = Some(addr);
        self
    }

    /// Binds, opens the store and starts every part; returns once the node listens.
    pub async fn start(self) -> Result<Node, Error> {
        start(self).await
    }
}

/// The parts that exist only with `eth`.
struct EthParts {
    handle: eth::Handle,
    store: Arc<Store>,
    importer: Importer,
    syncer: sync::Syncer,
    propagator: Propagator,
}

/// A running node. Stop it with [`Node::shutdown`]; dropping it stops the background
/// tasks abruptly.
pub struct Node {
    /// Our endpoint, moved by the NAT task when a mapping reports the external one.
    enode: watch::Receiver<Enode>,
    datadir: PathBuf,
    server: server::Handle,
    discovery: Option<discovery::Handle>,
    discv5: Option<discovery::v5::Handle>,
    dns: Option<discovery::dns::driver::Handle>,
    eth: Option<EthParts>,
    rpc_addr: Option<SocketAddr>,
    metrics_addr: Option<SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
    stop_http: watch::Sender<bool>,
    /// Port mapping (`--nat any|upnp|pmp`), unmapped at shutdown.
    nat: Option<crate::nat::Handle>,
    // Held while the node runs: a second node on the same datadir fails to start.
    _lock: std::fs::File,
}

impl Node {
    /// A node with `config`, the `eth` protocol and nothing else yet.
    pub fn builder(config: Config) -> Builder {
        Builder {
            config,
            spec: None,
            key: None,
            protocols: Vec::new(),
            eth: Some(eth::Config::default()),
            sync: sync::Config::default(),
        }
    }

    /// Our enode URL: the external address and ports once a NAT mapping (`--nat
    /// upnp|pmp|any`) reports them, `--nat extip:` or the bound address before.
    pub fn enode(&self) -> Enode {
        *self.enode.borrow()
    }

    /// Our enode URL, updated when a NAT mapping moves it.
    pub fn subscribe_enode(&self) -> watch::Receiver<Enode> {
        self.enode.clone()
    }

    /// The data directory.
    pub fn datadir(&self) -> &std::path::Path {
        &self.datadir
    }

    /// The RLPx server: peers, dialling, limits.
    pub fn server(&self) -> &server::Handle {
        &self.server
    }

    /// Discovery, unless off.
    pub fn discovery(&self) -> Option<&discovery::Handle> {
        self.discovery.as_ref()
    }

    /// Discovery v5, if it runs ([`Config::discovery_v5`]); its
    /// [`discovery::v5::Handle::status`] counts the nodes it handed to the dialer.
    pub fn discv5(&self) -> Option<&discovery::v5::Handle> {
        self.discv5.as_ref()
    }

    /// The DNS node lists' progress (trees synced, nodes found, errors), if any are used.
    pub fn dns_status(&self) -> Option<watch::Receiver<discovery::dns::driver::Status>> {
        self.dns.as_ref().map(|d| d.status())
    }

    /// The `eth` peers, requests to them and the transaction pool (`None` without eth).
    pub fn eth(&self) -> Option<&eth::Handle> {
        self.eth.as_ref().map(|e| &e.handle)
    }

    /// The block store (`None` without eth).
    pub fn chain(&self) -> Option<&Arc<Store>> {
        self.eth.as_ref().map(|e| &e.store)
    }

    /// Where blocks enter the store (`None` without eth).
    pub fn importer(&self) -> Option<&Importer> {
        self.eth.as_ref().map(|e| &e.importer)
    }

    /// Block propagation (`None` without eth): import and relay local blocks with
    /// [`Propagator::import_local`].
    pub fn propagator(&self) -> Option<&Propagator> {
        self.eth.as_ref().map(|e| &e.propagator)
    }

    /// Sync progress (`None` without eth).
    pub fn sync(&self) -> Option<sync::Handle> {
        self.eth.as_ref().map(|e| e.syncer.handle())
    }

    /// The bound JSON-RPC address, if serving.
    pub fn rpc_addr(&self) -> Option<SocketAddr> {
        self.rpc_addr
    }

    /// The bound metrics address, if serving.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Peers passing admission (with client id, capabilities and direction in
    /// [`server::PeerSummary::info`]) and leaving, with the reason.
    pub fn subscribe_peers(&self) -> broadcast::Receiver<server::PeerEvent> {
        self.server.subscribe()
    }

    /// `eth` peers completing the Status handshake, changing head and leaving.
    pub fn subscribe_eth_peers(&self) -> Option<broadcast::Receiver<eth::PeerEvent>> {
        self.eth().map(eth::Handle::subscribe)
    }

    /// Blocks the store accepted, with the peer each came from (sync, propagation and
    /// local imports alike).
    pub fn subscribe_blocks(&self) -> Option<broadcast::Receiver<chain::importer::Accepted>> {
        self.importer().map(Importer::subscribe)
    }

    /// Transactions entering the pool (hash, type, sender, size; the full transaction
    /// with [`eth::pool::Pooled::transaction`]).
    pub fn subscribe_transactions(&self) -> Option<broadcast::Receiver<eth::pool::Pooled>> {
        self.eth().map(|e| e.pool().subscribe())
    }

    /// Stops every part: sync and propagation first, then the HTTP endpoints, the
    /// server (peers are sent Disconnect) and discovery (its database is flushed).
    pub async fn shutdown(mut self) {
        info!(target: "p2p", "shutting down");
        for t in self.tasks.drain(..) {
            t.abort();
        }
        if let Some(e) = self.eth.take() {
            e.syncer.shutdown().await;
        }
        let _ = self.stop_http.send(true);
        self.server.shutdown().await;
        self.dns.take();
        self.discv5.take();
        if let Some(d) = self.discovery.take() {
            d.shutdown().await;
        }
        if let Some(n) = self.nat.take() {
            n.shutdown().await;
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn bind_tcp(what: &'static str, addr: SocketAddr) -> Result<tokio::net::TcpListener, Error> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { what, addr, source })
}

async fn start(b: Builder) -> Result<Node, Error> {
    let Builder {
        config,
        spec,
        key,
        protocols,
        eth: eth_config,
        sync: sync_config,
    } = b;
    if let Some(addr) = config.rpc
        && !discovery::node::canonical_ip(addr.ip()).is_loopback()
        && !config.rpc_allow_remote
    {
        return Err(Error::Invalid(format!(
            "--rpc {addr} is not a loopback address: anyone who can reach it could use the \
             API; use 127.0.0.1, or add --rpc-allow-remote"
        )));
    }
    check_count(
        "static nodes",
        config.static_nodes.len(),
        server::dial::MAX_STATIC,
    )?;
    check_count(
        "trusted nodes",
        config.trusted_nodes.len(),
        server::MAX_TRUSTED,
    )?;
    let datadir = config.datadir();
    std::fs::create_dir_all(&datadir).map_err(|source| Error::DataDir {
        path: datadir.clone(),
        source,
    })?;
    // Before the key is created, so a second node started on this directory stops here
    // instead of making or using a key of its own.
    let lock = lock_datadir(&datadir)?;
    let key = match key {
        Some(k) => k,
        None => key::resolve(
            config.nodekey.as_deref(),
            config.nodekeyhex.as_deref(),
            Some(&datadir),
        )?,
    };
    let mut spec = match spec {
        Some(s) => s,
        None => Spec::load(&config.chain)?,
    };
    spec.required_blocks
        .extend(config.required_blocks.iter().map(|(n, h)| (*n, *h)));
    let bootnodes = if config.bootnodes.is_empty() {
        spec.bootnodes
            .iter()
            .map(|s| discovery::parse_node(s))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::Invalid(format!("chain {} bootnodes: {e}", spec.name)))?
    } else {
        config.bootnodes.clone()
    };

    let spec_dns = chain::presets::dns_tree(&spec.name);
    let spec_v5 = chain::presets::v5_bootnodes(&spec.name);
    // `::` (the default) listens on both families where the machine has IPv6.
    let (listener, listen_ip) =
        dualstack::listen(config.addr, config.port).map_err(|source| Error::Bind {
            what: "TCP (RLPx)",
            addr: SocketAddr::new(config.addr, config.port),
            source,
        })?;
    let tcp_port = listener.local_addr().map_or(config.port, |a| a.port());
    let disc = if config.no_discovery {
        None
    } else {
        let udp_addr = SocketAddr::new(listen_ip, config.discport.unwrap_or(tcp_port));
        let socket = dualstack::udp(udp_addr).map_err(|source| Error::Bind {
            what: "UDP (discovery)",
            addr: udp_addr,
            source,
        })?;
        let dc = discovery::Config {
            bootnodes,
            netrestrict: config.netrestrict.clone(),
            external_ip: config.nat.external_ip(),
            tcp_port,
            ..discovery::Config::default()
        };
        let db = NodeDb::open(datadir.join("nodes.redb"))?;
        Some(discovery::Service::spawn(socket, key, dc, Some(db))?)
    };

    let enode = match &disc {
        Some(d) => d.local_node(),
        None => Enode {
            id: NodeId::from_secret_key(&key),
            ip: match config.nat.external_ip() {
                Some(ip) => ip,
                None if config.addr.is_unspecified() => Ipv4Addr::LOCALHOST.into(),
                None => config.addr,
            },
            udp: 0,
            tcp: tcp_port,
        },
    };
    let (enode_tx, enode_rx) = watch::channel(enode);
    let mut tasks = Vec::new();
    let nat = config.nat.mapping().map(|method| {
        let udp = disc.as_ref().map_or(0, |d| d.local_node().udp);
        let nat = crate::nat::spawn(crate::nat::Config::new(method, tcp_port, udp));
        tasks.push(tokio::spawn(follow_nat(
            nat.subscribe(),
            disc.clone(),
            enode_tx,
        )));
        nat
    });

    let mut sc = server::Config::new(key);
    sc.max_peers = config.maxpeers;
    sc.netrestrict = config.netrestrict.clone();
    sc.static_nodes = config.static_nodes.clone();
    sc.trusted_nodes = config.trusted_nodes.iter().map(|n| n.id).collect();
    let client_id = sc.rlpx.client_id.clone();

    let mut subprotocols = protocols;
    let mut eth_setup = None;
    let mut eth_entry = None;
    if let Some(mut ec) = eth_config {
        // Public networks: block gossip disconnects (docs/fork-choice.md).
        ec.block_gossip = !spec.public;
        ec.pool.chain_id = Some(spec.config.chain_id);
        let public = spec.public;
        let required = spec.required_blocks.clone();
        let store = Arc::new(Store::open(&datadir, spec)?);
        let chain = Arc::new(chain::eth::EthChain::new(store.clone()));
        let (eth, handle, events) = eth::Eth::new(chain.clone(), ec);
        subprotocols.insert(0, Arc::new(eth));
        eth_setup = Some((handle, store, chain, events, public, required));
    }
    let server =
        server::start(sc, listener, disc.clone(), subprotocols).map_err(|source| Error::Bind {
            what: "TCP (RLPx)",
            addr: SocketAddr::new(config.addr, tcp_port),
            source,
        })?;

    let dns = start_dns(&config, &spec_dns, &server)?;
    let eth_parts = match eth_setup {
        None => None,
        Some((handle, store, chain, events, public, required)) => {
            let importer = Importer::new(store.clone(), Some(handle.pool().clone()));
            let syncer = sync::spawn(
                handle.clone(),
                importer.clone(),
                sync::Config {
                    announce: !public,
                    ..sync_config
                },
            );
            // Gossip counts from the block sources and trusted nodes (private chains).
            let sources: Vec<PeerId> = config
                .block_sources
                .iter()
                .chain(config.trusted_nodes.iter().map(|n| &n.id))
                .filter_map(NodeId::public_key)
                .collect();
            if public && !config.block_sources.is_empty() {
                tracing::warn!(target: "sync", "--block-sources has no effect on a public network: blocks come by sync only");
            }
            // Propagation takes eth's gossip straight from the protocol and judges it.
            let (propagator, propagation) = Propagator::spawn(
                handle.clone(),
                importer.clone(),
                Gossip::for_chain(public, sources),
                events,
            );
            tasks.push(propagation);
            if let Some(t) = crate::required::spawn_watch(handle.clone(), required) {
                tasks.push(t);
            }
            // The `eth` ENR entry (EIP-2124): `[[fork-hash, fork-next]]`.
            let entry = alloy_rlp::encode(vec![eth::Chain::fork_id(chain.as_ref())]);
            eth_entry = Some(entry.clone());
            if let Some(d) = &disc
                && let Err(e) = d.set_eth_entry(Some(entry)).await
            {
                tracing::warn!(target: "p2p", error = %e, "could not set the eth ENR entry");
            }
            Some(EthParts {
                handle,
                store,
                importer,
                syncer,
                propagator,
            })
        }
    };

    let discv5 = discv5::start(
        &config,
        spec_v5,
        &key,
        disc.as_ref(),
        &server,
        eth_entry.as_deref(),
    )
    .await?;
    if let (Some(n), Some(v)) = (&nat, &discv5) {
        tasks.push(tokio::spawn(discv5::follow_nat(n.subscribe(), v.clone())));
    }

    // The HTTP endpoints stop when `stop_http` flips.
    let (stop_http, http_stopped) = watch::channel(false);
    let stopped = move || {
        let mut rx = http_stopped.clone();
        async move {
            let _ = rx.changed().await;
        }
    };
    let mut metrics_addr = None;
    if let Some(addr) = config.metrics {
        let listener = bind_tcp("TCP (metrics)", addr).await?;
        let mut source = crate::metrics::Source::new(server.clone(), disc.clone());
        if let Some(e) = &eth_parts {
            source = source
                .with_chain(e.store.clone(), Some(e.syncer.handle()))
                .with_pool(e.handle.pool().clone())
                .with_eth(e.handle.metrics().clone());
        }
        // The bound address: `--metrics 127.0.0.1:0` picks a free port.
        let bound = listener.local_addr().unwrap_or(addr);
        metrics_addr = Some(bound);
        info!(target: "p2p", url = %format!("http://{bound}/metrics"), "metrics");
        tasks.push(tokio::spawn(crate::metrics::serve(
            listener,
            source,
            stopped(),
        )));
    }
    let mut rpc_addr = None;
    if let Some(addr) = config.rpc {
        let listener = bind_tcp("TCP (JSON-RPC)", addr).await?;
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
        let mut api = crate::rpc::Api::new(server.clone(), disc.clone(), cfg);
        if let Some(e) = &eth_parts {
            api = api
                .with_chain(e.store.clone(), Some(e.syncer.handle()))
                .with_eth(e.handle.clone())
                .with_importer(e.importer.clone());
        }
        let bound = listener.local_addr().unwrap_or(addr);
        rpc_addr = Some(bound);
        info!(target: "p2p", url = %format!("http://{bound}"), "JSON-RPC");
        tasks.push(tokio::spawn(crate::rpc::serve(listener, api, stopped())));
    }

    if config.status_interval > 0 {
        let every = Duration::from_secs(u64::from(config.status_interval));
        tasks.push(tokio::spawn(log_status(
            every,
            server.clone(),
            disc.clone(),
            eth_parts
                .as_ref()
                .map(|e| (e.handle.clone(), e.store.clone(), e.syncer.handle())),
        )));
    }
    info!(target: "p2p", %enode, datadir = %datadir.display(), "node started");
    Ok(Node {
        enode: enode_rx,
        datadir,
        server,
        discovery: disc,
        discv5,
        dns,
        eth: eth_parts,
        rpc_addr,
        metrics_addr,
        tasks,
        stop_http,
        nat,
        _lock: lock,
    })
}

/// Starts resolving the DNS node lists (`config.dns_discovery`, else the preset's
/// `preset`) into the server's dial candidates, unless discovery is off.
fn start_dns(
    config: &Config,
    preset: &Option<String>,
    server: &server::Handle,
) -> Result<Option<discovery::dns::driver::Handle>, Error> {
    use discovery::dns::{Client, TreeUrl, driver};
    if config.no_discovery || config.no_dns_discovery {
        return Ok(None);
    }
    let urls = if config.dns_discovery.is_empty() {
        preset.iter().cloned().collect()
    } else {
        config.dns_discovery.clone()
    };
    if urls.is_empty() {
        return Ok(None);
    }
    let urls = urls
        .iter()
        .map(|u| u.parse::<TreeUrl>())
        .collect::<Result<Vec<_>, _>>()?;
    let resolver = match config.dns_resolver {
        Some(addr) => driver::Resolver::At(addr),
        None => driver::Resolver::System,
    };
    let client = Client::new(
        urls,
        discovery::dns::Config::default(),
        std::time::Instant::now(),
    );
    Ok(Some(driver::spawn(client, &resolver, server.candidates())?))
}

/// Puts each external endpoint the NAT task reports into our record (when discovery
/// runs) and our enode URL, and logs both: an operator reads there what to give peers.
pub(crate) async fn follow_nat(
    mut external: watch::Receiver<Option<crate::nat::External>>,
    disc: Option<discovery::Handle>,
    enode: watch::Sender<Enode>,
) {
    while external.changed().await.is_ok() {
        let Some(e) = *external.borrow_and_update() else {
            continue;
        };
        let mut record = None;
        if let Some(d) = &disc {
            match d.set_external_endpoint(e.ip, e.udp, e.tcp).await {
                Ok(()) => record = d.local_enr().await.ok(),
                Err(err) => {
                    tracing::warn!(target: "p2p", error = %err, "could not put the external address into the record")
                }
            }
        }
        // A port of 0 was not mapped: the node keeps its own there (as the record does).
        let nonzero = |mapped: u16, own: u16| if mapped == 0 { own } else { mapped };
        enode.send_modify(|n| {
            *n = Enode {
                ip: e.ip,
                tcp: nonzero(e.tcp, n.tcp),
                udp: nonzero(e.udp, n.udp),
                ..*n
            }
        });
        let url = *enode.borrow();
        match record {
            Some(r) => info!(target: "p2p", enode = %url, enr = %r, "external endpoint"),
            None => info!(target: "p2p", enode = %url, "external endpoint"),
        }
    }
}

fn check_count(what: &str, n: usize, max: usize) -> Result<(), Error> {
    if n > max {
        return Err(Error::Invalid(format!(
            "{n} {what}, at most {max} are kept"
        )));
    }
    Ok(())
}

/// Logs a status line every `every` (a timer: there is no event for "time passed").
async fn log_status(
    every: Duration,
    server: server::Handle,
    disc: Option<discovery::Handle>,
    eth: Option<(eth::Handle, Arc<Store>, sync::Handle)>,
) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        let (inbound, outbound) = server.peer_counts();
        let table = match &disc {
            Some(d) => d.table_len().await.unwrap_or(0),
            None => 0,
        };
        match &eth {
            Some((handle, store, sync)) => {
                let head = store.head().ok();
                let progress = sync.status();
                info!(
                    target: "p2p",
                    inbound,
                    outbound,
                    table,
                    eth_peers = handle.peers().len(),
                    head = head.as_ref().map_or(0, |h| h.number),
                    syncing = progress.syncing,
                    highest = progress.highest,
                    "status"
                );
            }
            None => info!(target: "p2p", inbound, outbound, table, "status"),
        }
    }
}
