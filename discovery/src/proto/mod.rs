//! The sans-IO discovery v4 state machine.
//!
//! [`Protocol`] owns the table, bonds, pending requests and lookups. It never touches a
//! socket or a clock: the driver feeds it datagrams ([`Protocol::handle_packet`]) and time
//! ([`Protocol::handle_timeout`] at [`Protocol::next_timeout`]), then drains
//! [`Protocol::poll_transmit`] and [`Protocol::poll_event`] after every call.
//!
//! Its parts: `bonds` (endpoint proofs, bounded in total and per source IP) and
//! `lookups` (the [`Lookup`] state machines it drives, and refresh); the request
//! table, packet handling, revalidation and votes are here.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, RngCore};
use secp256k1::SecretKey;
use tracing::{debug, trace};

use crate::config::Config;
use crate::enr::{Enr, EnrError, LocalEnr};
use crate::limits::{RateLimiter, Votes};
use crate::lookup::{K, Lookup};
use crate::node::{Node, NodeId, canonical_ip, relay_ok};
use crate::packet::{
    self, Crypto, Endpoint, EnrRequest, EnrResponse, FindNode, Message, Packet, PacketError, Ping,
    Pong, Secp256k1,
};
use crate::table::Table;

mod bonds;
mod inbound;
mod lookups;
#[cfg(test)]
mod tests;

/// How long bonding state of a node that has not answered our ping (or pinged us
/// without bonding) is kept when the state map is full.
const UNVERIFIED_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// Live bonds (endpoint proofs) kept per source IP address. Several nodes behind one NAT
/// address need a few; the table takes at most 10 per /24 anyway
/// ([`crate::table::TABLE_IP_LIMIT`]). Past it the oldest bond of that address goes, so a
/// host with 10,000 node ids holds 10 bonds, not the whole map for the 12-hour bond
/// lifetime. Loopback and `--netrestrict` addresses are exempt, as in the table.
pub const BONDS_PER_IP: usize = 10;

/// A datagram to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Destination.
    pub to: SocketAddr,
    /// The packet (at most 1280 bytes).
    pub data: Vec<u8>,
}

/// Identifies a lookup started with [`Protocol::lookup`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct LookupId(pub u64);

/// Something the driver may act on (persisting, answering callers).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The node answered our ping: its endpoint is proven and it is in the table (or its
    /// bucket's replacement list).
    Bonded(Node),
    /// A ping to this node went unanswered.
    PingFailed(NodeId),
    /// The node failed revalidation and left the table.
    Removed(NodeId),
    /// A lookup started with [`Protocol::lookup`] finished with these nodes, closest first.
    LookupDone {
        /// The lookup.
        id: LookupId,
        /// Its target.
        target: NodeId,
        /// Up to 16 nodes that answered, closest to the target first.
        nodes: Vec<Node>,
        /// FindNode queries it sent.
        queries: usize,
        /// Rounds it took ([`Lookup::rounds`]).
        rounds: usize,
    },
    /// A record requested with [`Protocol::request_enr`] arrived and matches its sender.
    Enr(Enr),
    /// Our own record changed (new endpoint or entries) and was re-signed with a higher seq.
    LocalEnrUpdated(Enr),
}

/// Counters of sent, received and dropped packets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metrics {
    /// Packets handed to [`Protocol::handle_packet`].
    pub received: u64,
    /// Packets queued for sending.
    pub sent: u64,
    /// Dropped: the source IP was over its rate.
    pub rate_limited: u64,
    /// Dropped: from outside `--netrestrict`.
    pub restricted: u64,
    /// Dropped: bad size, hash, signature, type or RLP.
    pub malformed: u64,
    /// Dropped: expiration in the past.
    pub expired: u64,
    /// Dropped: a Pong, Neighbors or ENRResponse we did not ask for.
    pub unsolicited: u64,
    /// Dropped: FindNode/ENRRequest from a node without a valid endpoint proof.
    pub unbonded: u64,
}

#[derive(Clone, Copy, Debug, Default)]
struct PeerState {
    /// IP the endpoint proof was made from.
    ip: Option<IpAddr>,
    /// When it last answered our ping (it is verified to us).
    last_pong: Option<Instant>,
    /// When we last answered its ping (we are verified to it).
    last_ping: Option<Instant>,
}

#[derive(Clone, Copy, Debug)]
enum Request {
    Ping {
        hash: [u8; 32],
        revalidation: bool,
    },
    /// `received` is `None` until the first Neighbors packet.
    FindNode {
        lookup: LookupId,
        received: Option<usize>,
    },
    Enr {
        hash: [u8; 32],
    },
}

#[derive(Clone, Debug)]
struct Pending {
    node: Node,
    deadline: Instant,
    req: Request,
}

/// A FindNode held back until the remote has pinged us (so that it has our endpoint proof).
#[derive(Clone, Debug)]
struct Deferred {
    node: Node,
    lookup: LookupId,
    deadline: Instant,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Purpose {
    User,
    RefreshSelf,
    RefreshRandom,
}

struct Running {
    lookup: Lookup,
    purpose: Purpose,
}

/// The discovery v4 protocol state machine. See the [module docs](self).
///
/// `C` signs and verifies packets: the protocol's secp256k1 ([`Secp256k1`], the default and
/// the only one [`Protocol::new`] builds). The simulator alone substitutes a cheap stand-in
/// through [`Protocol::with_crypto`] (see [`crate::sim::FastCrypto`]).
pub struct Protocol<C: Crypto = Secp256k1> {
    crypto: C,
    id: NodeId,
    local_addr: SocketAddr,
    local: LocalEnr,
    config: Config,
    rng: StdRng,
    epoch: (Instant, u64),
    table: Table,
    peers: HashMap<NodeId, PeerState>,
    /// The ids in `peers` whose endpoint proof was made from each IP (at most
    /// [`BONDS_PER_IP`] + 1 per limited IP).
    by_ip: HashMap<IpAddr, Vec<NodeId>>,
    pending: Vec<Pending>,
    deferred: Vec<Deferred>,
    lookups: BTreeMap<LookupId, Running>,
    next_lookup: u64,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    revalidate_at: Instant,
    refresh_at: Instant,
    last_refresh: Option<Instant>,
    limiter: RateLimiter,
    /// Pong votes on our IPv4 and IPv6 address, counted apart: a dual-stack node has one
    /// of each.
    votes: [Votes; 2],
    metrics: Metrics,
}

impl Protocol {
    /// A protocol instance for the socket bound at `local_addr`.
    ///
    /// `now` and `unix_secs` anchor the clock (expiration fields are UNIX times), `rng`
    /// drives every random choice, and `enr_seq` is the first sequence number of our record
    /// (persist it to keep it increasing across restarts). Bootnodes go into the table and
    /// the first refresh runs at the first [`Protocol::handle_timeout`].
    pub fn new(
        key: SecretKey,
        local_addr: SocketAddr,
        config: Config,
        now: Instant,
        unix_secs: u64,
        rng: StdRng,
        enr_seq: u64,
    ) -> Result<Self, EnrError> {
        let crypto = Secp256k1(key);
        Protocol::with_crypto(
            key, crypto, local_addr, config, now, unix_secs, rng, enr_seq,
        )
    }
}

impl<C: Crypto> Protocol<C> {
    /// [`Protocol::new`] with packets signed and verified by `crypto` instead of
    /// secp256k1. Only the simulator calls it, with [`crate::sim::FastCrypto`]; `key`
    /// still makes the node id and signs the record.
    #[allow(clippy::too_many_arguments)] // ok: new's arguments plus the strategy
    pub fn with_crypto(
        key: SecretKey,
        crypto: C,
        local_addr: SocketAddr,
        config: Config,
        now: Instant,
        unix_secs: u64,
        mut rng: StdRng,
        enr_seq: u64,
    ) -> Result<Self, EnrError> {
        let mut config = config;
        for b in &mut config.bootnodes {
            b.ip = canonical_ip(b.ip);
        }
        let id = NodeId::from_secret_key(&key);
        let ip = config
            .external_ip
            .or(Some(local_addr.ip()).filter(|ip| !ip.is_unspecified()));
        let local = LocalEnr::new(key, ip, local_addr.port(), config.tcp_port, enr_seq.max(1))?;
        let mut table = Table::new(id, config.netrestrict.clone());
        for b in &config.bootnodes {
            table.add_seen(*b);
        }
        let limiter = RateLimiter::new(
            config.rate_limit,
            config.rate_burst,
            (rng.next_u64(), rng.next_u64()),
        );
        let revalidate_at = now + random_duration(&mut rng, config.revalidate_interval);
        Ok(Protocol {
            crypto,
            id,
            local_addr,
            local,
            config,
            rng,
            epoch: (now, unix_secs),
            table,
            peers: HashMap::new(),
            by_ip: HashMap::new(),
            pending: Vec::new(),
            deferred: Vec::new(),
            lookups: BTreeMap::new(),
            next_lookup: 0,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            revalidate_at,
            refresh_at: now,
            last_refresh: None,
            limiter,
            votes: [Votes::new(20), Votes::new(20)],
            metrics: Metrics::default(),
        })
    }

    /// Our node id.
    pub fn local_id(&self) -> NodeId {
        self.id
    }

    /// Our node as others should see it (record IP, or the bound address).
    pub fn local_node(&self) -> Node {
        Node {
            id: self.id,
            ip: self.local.ip().unwrap_or(self.local_addr.ip()),
            udp: self.local.udp(),
            tcp: self.local.tcp(),
        }
    }

    /// Our current signed record.
    pub fn local_enr(&self) -> &Enr {
        self.local.record()
    }

    /// Sets (or with `None` removes) the `eth` entry of our record from its raw RLP
    /// (`[[fork-hash, fork-next]]`, EIP-2124); the record's seq is bumped when it changes.
    pub fn set_eth_entry(&mut self, raw: Option<Vec<u8>>) -> Result<(), EnrError> {
        if self.local.set_eth(raw)? {
            self.events
                .push_back(Event::LocalEnrUpdated(self.local.record().clone()));
        }
        Ok(())
    }

    /// Fixes our advertised endpoint (a NAT port mapping: the gateway's external IP and
    /// the mapped ports); the record's seq is bumped when it changes. From then on Pong
    /// votes no longer move the address, as with `external_ip` in the config. A `udp` or
    /// `tcp` of 0 keeps the current port.
    pub fn set_external_endpoint(
        &mut self,
        ip: IpAddr,
        udp: u16,
        tcp: u16,
    ) -> Result<(), EnrError> {
        self.config.external_ip = Some(ip);
        let udp = if udp == 0 { self.local.udp() } else { udp };
        let tcp = if tcp == 0 { self.local.tcp() } else { tcp };
        if self.local.set_endpoint(Some(ip), udp, tcp)? {
            debug!(target: "discv4", %ip, udp, tcp, seq = self.local.record().seq(), "external endpoint set");
            self.events
                .push_back(Event::LocalEnrUpdated(self.local.record().clone()));
        }
        Ok(())
    }

    /// The routing table.
    pub fn table(&self) -> &Table {
        &self.table
    }

    /// Packet counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Adds a node we know of (database seeds, static lists) to the table, unverified.
    pub fn add_node(&mut self, mut node: Node) {
        node.ip = canonical_ip(node.ip);
        if self.allowed(node.ip) {
            self.table.add_seen(node);
        }
    }

    /// Up to `n` random nodes from the table.
    pub fn random_nodes(&mut self, n: usize) -> Vec<Node> {
        self.table.random_nodes(&mut self.rng, n)
    }

    /// A uniformly random 64-byte lookup target.
    pub fn random_target(&mut self) -> NodeId {
        let mut t = [0u8; 64];
        self.rng.fill_bytes(&mut t);
        NodeId(t)
    }

    /// Starts a lookup for `target`; its result arrives as [`Event::LookupDone`].
    pub fn lookup(&mut self, now: Instant, target: NodeId) -> LookupId {
        let id = self.start_lookup(target, Purpose::User);
        self.drive_lookups(now);
        id
    }

    /// Starts a table refresh now: a self lookup, then random lookups (unless one runs).
    pub fn refresh(&mut self, now: Instant) {
        self.refresh_at = now + self.config.refresh_interval;
        if self.lookups.values().any(|r| r.purpose != Purpose::User) {
            return;
        }
        self.last_refresh = Some(now);
        if self.table.is_empty() {
            for b in self.config.bootnodes.clone() {
                self.add_node(b);
            }
        }
        debug!(target: "discv4", table = self.table.len(), "refreshing table");
        self.start_lookup(self.id, Purpose::RefreshSelf);
        self.drive_lookups(now);
    }

    /// Pings `node` (a bond attempt). The answer arrives as [`Event::Bonded`].
    pub fn ping(&mut self, now: Instant, node: Node) {
        self.send_ping(now, node, false);
    }

    /// Asks `node` for its record; the answer arrives as [`Event::Enr`].
    pub fn request_enr(&mut self, now: Instant, node: Node) {
        if !self.allowed(node.ip) {
            return;
        }
        let msg = Message::EnrRequest(EnrRequest {
            expiration: self.expiration(now),
        });
        let (data, hash) = msg.encode_with(&self.crypto);
        self.pending.push(Pending {
            node,
            deadline: now + self.config.request_timeout,
            req: Request::Enr { hash },
        });
        self.send(node.udp_addr(), data);
    }

    /// Next outgoing datagram.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Protocol::handle_timeout`] must be called next.
    pub fn next_timeout(&self) -> Option<Instant> {
        let pending = self.pending.iter().map(|p| p.deadline);
        let deferred = self.deferred.iter().map(|d| d.deadline);
        let lookups = self
            .lookups
            .values()
            .filter_map(|r| r.lookup.next_deadline());
        pending
            .chain(deferred)
            .chain(lookups)
            .chain([self.revalidate_at, self.refresh_at])
            .min()
    }

    /// Runs timers due at `now`: request timeouts, revalidation, refresh.
    pub fn handle_timeout(&mut self, now: Instant) {
        let (expired, keep): (Vec<Pending>, Vec<Pending>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|p| p.deadline <= now);
        self.pending = keep;
        for p in expired {
            match p.req {
                Request::Ping { revalidation, .. } => {
                    trace!(target: "discv4", node = ?p.node.id, "ping timed out");
                    self.events.push_back(Event::PingFailed(p.node.id));
                    if revalidation && self.table.get(&p.node.id).is_some() {
                        let promoted = self.table.remove_dead(&p.node.id);
                        debug!(target: "discv4", node = ?p.node.id, promoted = ?promoted.map(|n| n.id), "revalidation failed");
                        self.events.push_back(Event::Removed(p.node.id));
                    }
                }
                Request::FindNode { lookup, received } => {
                    if received.is_none()
                        && let Some(r) = self.lookups.get_mut(&lookup)
                    {
                        r.lookup.on_timeout(&p.node.id);
                    }
                }
                Request::Enr { .. } => {}
            }
        }
        let (due, keep): (Vec<Deferred>, Vec<Deferred>) = std::mem::take(&mut self.deferred)
            .into_iter()
            .partition(|d| d.deadline <= now);
        self.deferred = keep;
        for d in due {
            self.send_findnode(now, d.lookup, d.node);
        }
        if now >= self.revalidate_at {
            self.revalidate_at =
                now + random_duration(&mut self.rng, self.config.revalidate_interval);
            if let Some(node) = self.table.revalidation_target(&mut self.rng) {
                self.send_ping(now, node, true);
            }
            let recently = self
                .last_refresh
                .is_some_and(|t| now < t + self.config.revalidate_interval);
            if self.table.len() < self.config.nearly_empty && !recently {
                self.refresh(now);
            }
        }
        if now >= self.refresh_at {
            self.refresh(now);
        }
        self.drive_lookups(now);
    }

    /// Handles one datagram from `from`. Invalid input is counted and dropped.
    pub fn handle_packet(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        self.metrics.received += 1;
        // A dual-stack socket reports IPv4 senders as `::ffff:a.b.c.d`: judge (and rate
        // limit, and bond) them as the IPv4 address.
        let from = SocketAddr::new(canonical_ip(from.ip()), from.port());
        if !self.allowed(from.ip()) {
            self.metrics.restricted += 1;
            return;
        }
        // Before the signature check, so a flood costs no more than a hash lookup.
        if !self.limiter.allow(from.ip(), now) {
            self.metrics.rate_limited += 1;
            return;
        }
        let packet = match packet::decode_with(data, &self.crypto) {
            Ok(p) => p,
            Err(e) => {
                self.metrics.malformed += 1;
                if !matches!(e, PacketError::UnknownType(_)) {
                    debug!(target: "discv4", %from, len = data.len(), error = %e, "dropping packet");
                }
                return;
            }
        };
        if packet.node_id == self.id {
            return;
        }
        let expiration = match &packet.message {
            Message::Ping(m) => Some(m.expiration),
            Message::Pong(m) => Some(m.expiration),
            Message::FindNode(m) => Some(m.expiration),
            Message::Neighbors(m) => Some(m.expiration),
            Message::EnrRequest(m) => Some(m.expiration),
            Message::EnrResponse(_) => None,
        };
        if expiration.is_some_and(|e| expired(e, self.unix(now))) {
            self.metrics.expired += 1;
            trace!(target: "discv4", %from, kind = packet.message.name(), "dropping expired packet");
            return;
        }
        trace!(target: "discv4", %from, kind = packet.message.name(), node = ?packet.node_id, "received");
        let Packet {
            hash,
            node_id,
            message,
        } = packet;
        match message {
            Message::Ping(m) => self.on_ping(now, from, node_id, hash, m),
            Message::Pong(m) => self.on_pong(now, from, node_id, m),
            Message::FindNode(m) => self.on_findnode(now, from, node_id, m),
            Message::Neighbors(m) => self.on_neighbors(from, node_id, m.nodes),
            Message::EnrRequest(_) => self.on_enr_request(now, from, node_id, hash),
            Message::EnrResponse(m) => self.on_enr_response(from, node_id, m),
        }
        self.drive_lookups(now);
    }

    fn send_ping(&mut self, now: Instant, node: Node, revalidation: bool) {
        if !self.allowed(node.ip) || node.id == self.id {
            return;
        }
        let existing = self
            .pending
            .iter_mut()
            .find(|p| p.node.id == node.id && matches!(p.req, Request::Ping { .. }));
        if let Some(p) = existing {
            if let Request::Ping {
                revalidation: r, ..
            } = &mut p.req
            {
                *r |= revalidation;
            }
            return;
        }
        let from_ip = self.local.ip().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let ping = Ping {
            from: Endpoint {
                ip: from_ip,
                udp: self.local.udp(),
                tcp: self.local.tcp(),
            },
            to: Endpoint {
                ip: node.ip,
                udp: node.udp,
                tcp: 0,
            },
            expiration: self.expiration(now),
            enr_seq: Some(self.local.record().seq()),
        };
        let (data, hash) = Message::Ping(ping).encode_with(&self.crypto);
        let deadline = now + self.config.request_timeout;
        self.pending.push(Pending {
            node,
            deadline,
            req: Request::Ping { hash, revalidation },
        });
        self.send(node.udp_addr(), data);
    }

    fn send(&mut self, to: SocketAddr, data: Vec<u8>) {
        self.metrics.sent += 1;
        self.transmits.push_back(Transmit { to, data });
    }

    /// Whether `id` proved its endpoint from `ip` within the bond lifetime.
    fn verified(&self, id: &NodeId, ip: IpAddr, now: Instant) -> bool {
        self.peers.get(id).is_some_and(|p| {
            p.ip == Some(ip)
                && p.last_pong
                    .is_some_and(|t| now < t + self.config.bond_expiration)
        })
    }

    /// Number of remote nodes with bonding state (bounded by [`Config::max_peers`]).
    pub fn tracked_peers(&self) -> usize {
        self.peers.len()
    }

    fn allowed(&self, ip: IpAddr) -> bool {
        self.config
            .netrestrict
            .as_ref()
            .is_none_or(|n| n.contains(ip))
    }

    fn unix(&self, now: Instant) -> u64 {
        self.epoch.1 + now.saturating_duration_since(self.epoch.0).as_secs()
    }

    fn expiration(&self, now: Instant) -> u64 {
        self.unix(now) + self.config.packet_lifetime.as_secs()
    }
}

/// Whether an `expiration` field lies before `unix`. go-ethereum reads the field as a
/// signed UNIX time (`v4wire.Expired` casts it to int64), so a value with the top bit set is
/// in the past, not centuries ahead: its `discv4 test` PastExpiration cases send exactly
/// that.
fn expired(expiration: u64, unix: u64) -> bool {
    i64::try_from(expiration).is_err() || expiration < unix
}

fn random_duration(rng: &mut StdRng, max: Duration) -> Duration {
    let ms = max.as_millis().max(1) as u64;
    Duration::from_millis(rng.random_range(0..ms))
}
