//! The p2p server: listens for RLPx connections, dials static, trusted and discovered
//! peers, enforces peer limits, and runs every registered [`Subprotocol`] on each peer.
//!
//! Shape (go-ethereum `p2p.Server`): one server task owns the peer set and the dial
//! scheduler ([`dial::Scheduler`], sans-IO); a listener task admits inbound connections
//! (pending-handshake cap, per-IP throttle and per-subnet pending slots, `netrestrict`;
//! see [`limits`]); each handshake and each dial
//! runs in its own task and reports back; each peer is an [`rlpx::Peer`] (reader + writer
//! task) plus one handler task per shared subprotocol.
//!
//! Admission after Hello, with the `Disconnect` reason sent:
//! ourselves → `ConnectedToSelf`; already connected → `AlreadyConnected`; recently
//! disconnected for a protocol breach, as useless or as incompatible (`eth` Status on
//! another network: `SubprotocolError`) → `UselessPeer`, and not dialled for `ban_duration`; no shared capability →
//! `UselessPeer` (in [`rlpx::Handshaked::hello`]); over `max_peers`, or over the inbound
//! share for an inbound peer, or over the per-IP or per-subnet inbound caps
//! ([`limits`]) → `TooManyPeers` (trusted peers are exempt). Shutdown sends
//! `ClientQuitting` to every peer.
//!
//! A ban is decided on the reason the session records when it closes. A protocol that
//! penalises a peer ([`rlpx::ProtocolSender::disconnect`], e.g. eth's `Handle::disconnect`)
//! records its reason at once, even while that peer's handler is blocked sending, so the
//! penalty is never lost to a later write failure. A peer dropped for not taking what it is
//! sent (`Local(TcpSubsystemError)`) is not banned: it may just be slow.

pub mod dial;
pub mod limits;
mod pending;
mod stats;

pub use stats::Stats;

use discovery::{NetRestrict, Node, NodeId};
use protocols::Subprotocol;
use rlpx::{CloseReason, DisconnectReason, Established};
use secp256k1::{PublicKey, SecretKey};
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::{Instrument, debug, info, warn};

/// Server settings. Defaults follow go-ethereum.
#[derive(Debug, Clone)]
pub struct Config {
    /// Our node key.
    pub key: SecretKey,
    /// Most peers in total. Default 50.
    pub max_peers: usize,
    /// One in `dial_ratio` peer slots is for outbound dynamic dials. Default 3.
    pub dial_ratio: usize,
    /// Most inbound connections in the handshake at once; more are dropped unread.
    /// Default 50 (geth `maxPendingPeers`).
    pub max_pending_inbound: usize,
    /// One inbound attempt per IP per this period (loopback exempt). Default 30 s (geth
    /// `inboundThrottleTime`).
    pub inbound_throttle: Duration,
    /// Nodes kept connected, redialled with backoff.
    pub static_nodes: Vec<Node>,
    /// Nodes admitted even when we are full.
    pub trusted_nodes: Vec<NodeId>,
    /// Only talk to these networks, if set.
    pub netrestrict: Option<NetRestrict>,
    /// How long a peer we dropped for a protocol breach is refused. Default 10 min.
    pub ban_duration: Duration,
    /// RLPx session settings; `protocols` is filled from the registered subprotocols.
    /// Every peer of this server shares its `node_budget` (by default 128 MiB of received
    /// and 64 MiB of queued outgoing messages across all peers, on top of 8 MiB and 4 MiB
    /// per peer).
    pub rlpx: rlpx::Config,
    /// Dial limits; `max_dynamic` is derived from `max_peers / dial_ratio`.
    pub dial: dial::Limits,
    /// Inbound peers from one IP address. Default [`limits::MAX_INBOUND_PER_IP`] (2).
    pub max_inbound_per_ip: usize,
    /// Inbound peers from one /24 (IPv6 /64). Default [`limits::MAX_INBOUND_PER_SUBNET`] (4).
    pub max_inbound_per_subnet: usize,
    /// Inbound handshakes in progress from one /24 (IPv6 /64). Default
    /// [`limits::MAX_PENDING_PER_SUBNET`] (5).
    pub max_pending_per_subnet: usize,
    /// Sources exempt from the per-IP and per-subnet limits. Default loopback
    /// (`127.0.0.0/8, ::1/128`): local networks run many nodes on one host.
    pub ip_limit_exempt: Option<NetRestrict>,
}

impl Config {
    /// Defaults around `key`.
    pub fn new(key: SecretKey) -> Self {
        Self {
            key,
            max_peers: 50,
            dial_ratio: 3,
            max_pending_inbound: 50,
            inbound_throttle: Duration::from_secs(30),
            static_nodes: Vec::new(),
            trusted_nodes: Vec::new(),
            netrestrict: None,
            ban_duration: Duration::from_secs(600),
            rlpx: rlpx::Config::default(),
            dial: dial::Limits::default(),
            max_inbound_per_ip: limits::MAX_INBOUND_PER_IP,
            max_inbound_per_subnet: limits::MAX_INBOUND_PER_SUBNET,
            max_pending_per_subnet: limits::MAX_PENDING_PER_SUBNET,
            ip_limit_exempt: "127.0.0.0/8,::1/128".parse().ok(),
        }
    }

    /// Whether `ip` is exempt from the per-IP and per-subnet limits.
    fn ip_exempt(&self, ip: IpAddr) -> bool {
        self.ip_limit_exempt
            .as_ref()
            .is_some_and(|n| n.contains(ip))
    }

    fn max_dynamic(&self) -> usize {
        self.max_peers / self.dial_ratio.max(1)
    }

    fn max_inbound(&self) -> usize {
        self.max_peers.saturating_sub(self.max_dynamic())
    }
}

/// A peer joining or leaving.
#[derive(Debug, Clone)]
pub enum PeerEvent {
    /// A peer passed admission and its protocols are running.
    Added(Arc<PeerSummary>),
    /// A peer left, and why.
    Dropped {
        /// The peer.
        id: NodeId,
        /// Why the session ended.
        reason: CloseReason,
    },
}

/// What the server knows about a connected peer.
#[derive(Debug)]
pub struct PeerSummary {
    /// Node id.
    pub id: NodeId,
    /// Session info: address, Hello, shared capabilities, traffic counters.
    pub info: Arc<rlpx::Info>,
    /// Whether the peer dialled us.
    pub inbound: bool,
    /// Whether the peer is trusted.
    pub trusted: bool,
    /// Whether the peer is a static node.
    pub is_static: bool,
}

/// Most trusted nodes: an operator trusts a few dozen; the set is checked on every
/// admission and may be grown over the admin API.
pub const MAX_TRUSTED: usize = 256;

enum Command {
    AddPeer(Node, oneshot::Sender<bool>),
    RemovePeer(NodeId),
    AddTrusted(NodeId, oneshot::Sender<bool>),
    Shutdown(oneshot::Sender<()>),
}

enum Internal {
    Established {
        est: Box<Established<TcpStream>>,
        inbound: bool,
        dial: Option<dial::Kind>,
        /// The source address of an inbound connection.
        remote: Option<IpAddr>,
    },
    DialFailed {
        id: NodeId,
        error: String,
    },
    Closed {
        id: NodeId,
        reason: CloseReason,
    },
}

struct Shared {
    peers: RwLock<HashMap<NodeId, Arc<PeerSummary>>>,
    events: broadcast::Sender<PeerEvent>,
    stats: Stats,
    local_id: NodeId,
    listen_addr: SocketAddr,
    protocols: Vec<rlpx::Protocol>,
}

/// Controls a running server; cheap to clone.
#[derive(Clone)]
pub struct Handle {
    commands: mpsc::Sender<Command>,
    shared: Arc<Shared>,
    candidates: mpsc::Sender<Node>,
}

impl Handle {
    /// Our node id.
    pub fn local_id(&self) -> NodeId {
        self.shared.local_id
    }

    /// The TCP address we listen on.
    pub fn listen_addr(&self) -> SocketAddr {
        self.shared.listen_addr
    }

    /// The capabilities we offer.
    pub fn protocols(&self) -> &[rlpx::Protocol] {
        &self.shared.protocols
    }

    /// The connected peers.
    pub fn peers(&self) -> Vec<Arc<PeerSummary>> {
        self.shared
            .peers
            .read()
            .map(|p| p.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Number of connected peers as (inbound, outbound).
    pub fn peer_counts(&self) -> (usize, usize) {
        let peers = self.peers();
        let inbound = peers.iter().filter(|p| p.inbound).count();
        (inbound, peers.len() - inbound)
    }

    /// Server counters, for metrics.
    pub fn stats(&self) -> &Stats {
        &self.shared.stats
    }

    /// Where other sources of dynamic dial candidates (DNS node lists) send them, beside
    /// discovery. The queue is short and the server takes from it only while it wants
    /// more peers: a sender waits, so a source never outruns the dialer.
    pub fn candidates(&self) -> mpsc::Sender<Node> {
        self.candidates.clone()
    }

    /// Peer join/leave events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<PeerEvent> {
        self.shared.events.subscribe()
    }

    /// Adds a static node: dialled now and kept connected. False when it is refused
    /// (`netrestrict`, our own id, or [`dial::MAX_STATIC`] static nodes already).
    pub async fn add_peer(&self, node: Node) -> bool {
        let (tx, rx) = oneshot::channel();
        let _ = self.commands.send(Command::AddPeer(node, tx)).await;
        rx.await.unwrap_or(false)
    }

    /// Forgets a static node and disconnects it if connected.
    pub async fn remove_peer(&self, id: NodeId) {
        let _ = self.commands.send(Command::RemovePeer(id)).await;
    }

    /// Marks a node as trusted: admitted even when we are full. False when
    /// [`MAX_TRUSTED`] nodes are trusted already.
    pub async fn add_trusted(&self, id: NodeId) -> bool {
        let (tx, rx) = oneshot::channel();
        let _ = self.commands.send(Command::AddTrusted(id, tx)).await;
        rx.await.unwrap_or(false)
    }

    /// Disconnects every peer with `ClientQuitting` and stops the server.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

struct Entry {
    peer: rlpx::Peer,
    summary: Arc<PeerSummary>,
    dynamic_out: bool,
}

struct Server {
    config: Config,
    subprotocols: Vec<Arc<dyn Subprotocol>>,
    shared: Arc<Shared>,
    peers: HashMap<NodeId, Entry>,
    trusted: HashSet<NodeId>,
    banned: HashMap<NodeId, Instant>,
    scheduler: dial::Scheduler,
    internal: mpsc::Sender<Internal>,
}

/// Starts a server on a bound TCP listener, with discovery as the source of dynamic dial
/// candidates when given.
pub fn start(
    mut config: Config,
    listener: TcpListener,
    discovery: Option<discovery::Handle>,
    subprotocols: Vec<Arc<dyn Subprotocol>>,
) -> std::io::Result<Handle> {
    let listen_addr = listener.local_addr()?;
    config.rlpx.protocols = subprotocols.iter().flat_map(|s| s.protocols()).collect();
    config.rlpx.listen_port = listen_addr.port();
    config.dial.max_dynamic = config.max_dynamic();
    let local_id = NodeId::from_secret_key(&config.key);
    let (events, _) = broadcast::channel(256);
    let shared = Arc::new(Shared {
        peers: RwLock::new(HashMap::new()),
        events,
        stats: Stats::default(),
        local_id,
        listen_addr,
        protocols: config.rlpx.protocols.clone(),
    });
    let (cmd_tx, cmd_rx) = mpsc::channel(64);
    let (int_tx, int_rx) = mpsc::channel(256);
    let now = Instant::now();
    let mut scheduler =
        dial::Scheduler::new(local_id, config.dial.clone(), config.netrestrict.clone());
    for n in &config.static_nodes {
        scheduler.add_static(*n, now);
    }
    let (cand_tx, cand_rx) = mpsc::channel(16);
    let mut tasks = vec![tokio::spawn(listen(
        listener,
        config.clone(),
        int_tx.clone(),
        shared.clone(),
    ))];
    let candidates = cand_tx.clone();
    if let Some(d) = discovery {
        tasks.push(tokio::spawn(async move {
            let mut nodes = d.random_nodes();
            while let Some(n) = nodes.next().await {
                if cand_tx.send(n).await.is_err() {
                    break;
                }
            }
        }));
    }
    let server = Server {
        trusted: config
            .trusted_nodes
            .iter()
            .take(MAX_TRUSTED)
            .copied()
            .collect(),
        config,
        subprotocols,
        shared: shared.clone(),
        peers: HashMap::new(),
        banned: HashMap::new(),
        scheduler,
        internal: int_tx,
    };
    tokio::spawn(server.run(cmd_rx, int_rx, cand_rx, tasks));
    Ok(Handle {
        commands: cmd_tx,
        shared,
        candidates,
    })
}

fn node_id(key: &PublicKey) -> NodeId {
    NodeId::from_public_key(key)
}

async fn listen(
    listener: TcpListener,
    config: Config,
    internal: mpsc::Sender<Internal>,
    shared: Arc<Shared>,
) {
    let pending = pending::Table::new(config.max_pending_inbound);
    let mut throttle = limits::Throttle::new(config.inbound_throttle, limits::MAX_THROTTLED);
    let subnet_slots = limits::PendingSlots::default();
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                warn!(target: "p2p", error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // A dual-stack listener reports IPv4 clients as `::ffff:a.b.c.d`.
        let ip = discovery::node::canonical_ip(addr.ip());
        if config.netrestrict.as_ref().is_some_and(|r| !r.contains(ip)) {
            shared.stats.inbound_rejected("netrestrict");
            continue;
        }
        let exempt = config.ip_exempt(ip);
        if !ip.is_loopback() && !throttle.allow(ip, Instant::now()) {
            shared.stats.inbound_rejected("throttled");
            continue;
        }
        let subnet_slot = if exempt {
            None
        } else {
            match subnet_slots.try_take(ip, config.max_pending_per_subnet) {
                Some(slot) => Some(slot),
                None => {
                    shared
                        .stats
                        .inbound_rejected("too many pending from subnet");
                    continue;
                }
            }
        };
        // Fair between subnets: a full table gives way to a lighter subnet (`pending`).
        let Some(ticket) = pending.admit(limits::subnet(ip)) else {
            shared.stats.inbound_rejected("too many pending");
            continue;
        };
        let (config, internal, shared) = (config.clone(), internal.clone(), shared.clone());
        let ticket_id = ticket.id();
        let guard = (ticket, subnet_slot);
        let task = tokio::spawn(async move {
            let guard = guard;
            let _ = stream.set_nodelay(true);
            let started = Instant::now();
            let result = async {
                rlpx::conn::accept_hello(stream, Some(addr), &config.key, &config.rlpx).await
            }
            .await;
            match result {
                Ok(est) => {
                    shared.stats.handshake_inbound.observe(started.elapsed());
                    let msg = Internal::Established {
                        est: Box::new(est),
                        inbound: true,
                        dial: None,
                        remote: Some(ip),
                    };
                    let _ = internal.send(msg).await;
                }
                Err(e) => {
                    debug!(target: "p2p", %addr, error = %e, "inbound handshake failed");
                    shared.stats.handshake_failed(&e);
                }
            }
            drop(guard);
        });
        // Named before the next accept could evict it (this loop is the only admitter).
        pending.set_task(ticket_id, task.abort_handle());
    }
}

/// Sleeps until `deadline` (forever if `None`; the select guards that case).
async fn sleep_until(deadline: Option<Instant>) {
    if let Some(d) = deadline {
        tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await;
    }
}

impl Server {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut internal: mpsc::Receiver<Internal>,
        mut candidates: mpsc::Receiver<Node>,
        tasks: Vec<tokio::task::JoinHandle<()>>,
    ) {
        let done = loop {
            // Static redials fall due by time; everything else is an event below.
            let deadline = self.scheduler.next_deadline();
            tokio::select! {
                Some(cmd) = commands.recv() => {
                    if let Command::Shutdown(done) = cmd {
                        break Some(done);
                    }
                    self.command(cmd);
                }
                Some(msg) = internal.recv() => self.internal(msg),
                Some(node) = candidates.recv(), if self.scheduler.wants_candidates() => {
                    self.scheduler.offer(node, Instant::now());
                }
                _ = sleep_until(deadline), if deadline.is_some() => {}
                else => break None,
            }
            self.dial();
        };
        for t in tasks {
            t.abort();
        }
        for e in self.peers.values() {
            e.peer.disconnect(DisconnectReason::ClientQuitting);
        }
        // Give the writers a moment to send the Disconnects.
        let closes: Vec<_> = self.peers.values().map(|e| e.peer.closed()).collect();
        let _ =
            tokio::time::timeout(Duration::from_secs(2), futures::future::join_all(closes)).await;
        info!(target: "p2p", peers = self.peers.len(), "server stopped");
        if let Some(done) = done {
            let _ = done.send(());
        }
    }

    fn command(&mut self, cmd: Command) {
        let now = Instant::now();
        match cmd {
            Command::AddPeer(node, done) => {
                let _ = done.send(self.scheduler.add_static(node, now));
            }
            Command::RemovePeer(id) => {
                self.scheduler.remove_static(&id);
                if let Some(e) = self.peers.get(&id) {
                    e.peer.disconnect(DisconnectReason::DisconnectRequested);
                }
            }
            Command::AddTrusted(id, done) => {
                let room = self.trusted.len() < MAX_TRUSTED || self.trusted.contains(&id);
                if room {
                    self.trusted.insert(id);
                } else {
                    warn!(target: "p2p", max = MAX_TRUSTED, "trusted node set full");
                }
                let _ = done.send(room);
            }
            Command::Shutdown(_) => {}
        }
    }

    fn dial(&mut self) {
        for (node, kind) in self.scheduler.next_dials(Instant::now()) {
            self.shared.stats.dial_started();
            let (config, internal) = (self.config.clone(), self.internal.clone());
            let shared = self.shared.clone();
            let span = tracing::debug_span!(target: "p2p", "dial", node = %short(&node.id));
            tokio::spawn(
                async move {
                    let Some(key) = node.id.public_key() else {
                        let error = "invalid node id".to_string();
                        let _ = internal
                            .send(Internal::DialFailed { id: node.id, error })
                            .await;
                        return;
                    };
                    let started = Instant::now();
                    let result = async {
                        let hs = rlpx::conn::connect_tcp(
                            node.tcp_addr(),
                            &config.key,
                            key,
                            &config.rlpx,
                        )
                        .await?;
                        hs.hello(&config.key, &config.rlpx).await
                    }
                    .await;
                    if result.is_ok() {
                        shared.stats.handshake_outbound.observe(started.elapsed());
                    }
                    let msg = match result {
                        Ok(est) => Internal::Established {
                            est: Box::new(est),
                            inbound: false,
                            dial: Some(kind),
                            remote: None,
                        },
                        Err(e) => Internal::DialFailed {
                            id: node.id,
                            error: e.to_string(),
                        },
                    };
                    let _ = internal.send(msg).await;
                }
                .instrument(span),
            );
        }
    }

    fn internal(&mut self, msg: Internal) {
        let now = Instant::now();
        match msg {
            Internal::DialFailed { id, error } => {
                debug!(target: "p2p", node = %short(&id), %error, "dial failed");
                self.shared.stats.dial_finished(false);
                self.scheduler.dial_done(&id, false, now);
            }
            Internal::Established {
                est,
                inbound,
                dial,
                remote,
            } => {
                let id = node_id(est.remote_id());
                if dial.is_some() {
                    self.shared.stats.dial_finished(true);
                }
                match self
                    .admit(&id, inbound)
                    .and_then(|()| self.admit_address(&id, remote))
                {
                    Ok(()) => {
                        if dial.is_some() {
                            self.scheduler.dial_done(&id, true, now);
                        }
                        self.add_peer(id, *est, inbound, dial == Some(dial::Kind::Dynamic));
                    }
                    Err(reason) => {
                        debug!(target: "p2p", node = %short(&id), %reason, inbound, "rejected");
                        self.shared.stats.rejected(reason);
                        if dial.is_some() {
                            self.scheduler.dial_done(&id, false, now);
                        }
                        tokio::spawn(est.disconnect(reason));
                    }
                }
            }
            Internal::Closed { id, reason } => {
                let Some(e) = self.peers.remove(&id) else {
                    return;
                };
                if let Ok(mut p) = self.shared.peers.write() {
                    p.remove(&id);
                }
                self.scheduler.peer_removed(&id, e.dynamic_out, now);
                // A breach, or a peer a protocol found useless (request floods) or
                // incompatible (wrong network, fork, genesis: `SubprotocolError`, as
                // go-ethereum sends), is refused and not dialled for a while.
                if matches!(
                    reason,
                    CloseReason::Local(
                        DisconnectReason::BreachOfProtocol
                            | DisconnectReason::UselessPeer
                            | DisconnectReason::SubprotocolError
                    )
                ) {
                    let until = now + self.config.ban_duration;
                    self.banned.insert(id, until);
                    self.scheduler.hold(id, until);
                }
                self.shared.stats.disconnected(&reason);
                debug!(target: "p2p", node = %short(&id), ?reason, "peer dropped");
                let _ = self.shared.events.send(PeerEvent::Dropped { id, reason });
            }
        }
    }

    fn admit(&mut self, id: &NodeId, inbound: bool) -> Result<(), DisconnectReason> {
        let now = Instant::now();
        self.banned.retain(|_, until| *until > now);
        if *id == self.shared.local_id {
            return Err(DisconnectReason::ConnectedToSelf);
        }
        if self.peers.contains_key(id) {
            return Err(DisconnectReason::AlreadyConnected);
        }
        if self.banned.contains_key(id) {
            return Err(DisconnectReason::UselessPeer);
        }
        if self.trusted.contains(id) {
            return Ok(());
        }
        if self.peers.len() >= self.config.max_peers {
            return Err(DisconnectReason::TooManyPeers);
        }
        let inbound_count = self.peers.values().filter(|e| e.summary.inbound).count();
        if inbound && inbound_count >= self.config.max_inbound() {
            return Err(DisconnectReason::TooManyPeers);
        }
        Ok(())
    }

    /// The per-IP and per-subnet caps on inbound peers ([`limits::check_inbound`]);
    /// trusted peers and exempt sources pass.
    fn admit_address(&self, id: &NodeId, remote: Option<IpAddr>) -> Result<(), DisconnectReason> {
        let Some(ip) = remote.filter(|ip| !self.config.ip_exempt(*ip)) else {
            return Ok(());
        };
        if self.trusted.contains(id) {
            return Ok(());
        }
        let inbound = (self.peers.values())
            .filter(|e| e.summary.inbound)
            .filter_map(|e| e.summary.info.addr.map(|a| a.ip()));
        let (per_ip, per_net) = (
            self.config.max_inbound_per_ip,
            self.config.max_inbound_per_subnet,
        );
        limits::check_inbound(ip, inbound, per_ip, per_net).map_err(|over| {
            debug!(target: "p2p", node = %short(id), ?over, "inbound address cap reached");
            DisconnectReason::TooManyPeers
        })
    }

    fn add_peer(
        &mut self,
        id: NodeId,
        est: Established<TcpStream>,
        inbound: bool,
        dynamic_out: bool,
    ) {
        let mut peer = est.start(&self.config.rlpx);
        let summary = Arc::new(PeerSummary {
            id,
            info: peer.info().clone(),
            inbound,
            trusted: self.trusted.contains(&id),
            is_static: self.scheduler.is_static(&id),
        });
        let span = tracing::debug_span!(target: "p2p", "peer", node = %short(&id));
        for handle in peer.take_all() {
            let name = handle.shared.cap.name.clone();
            let owner = self
                .subprotocols
                .iter()
                .find(|s| s.protocols().iter().any(|p| p.cap.name == name));
            if let Some(owner) = owner {
                tokio::spawn(owner.handle(handle).instrument(span.clone()));
            }
        }
        let closed = peer.closed();
        let internal = self.internal.clone();
        tokio::spawn(async move {
            let reason = closed.await;
            let _ = internal.send(Internal::Closed { id, reason }).await;
        });
        self.scheduler.peer_added(id, dynamic_out);
        if let Ok(mut p) = self.shared.peers.write() {
            p.insert(id, summary.clone());
        }
        debug!(target: "p2p", node = %short(&id), inbound, client = %bounded(&summary.info.hello.client_id), "peer added");
        let _ = self.shared.events.send(PeerEvent::Added(summary.clone()));
        self.peers.insert(
            id,
            Entry {
                peer,
                summary,
                dynamic_out,
            },
        );
    }
}

/// The first 8 bytes of a node id in hex, for logs.
pub fn short(id: &NodeId) -> String {
    hex::encode(&id.0[..8])
}

/// Attacker-controlled text, bounded and escaped for logs.
fn bounded(s: &str) -> String {
    s.chars().take(64).flat_map(char::escape_default).collect()
}
