//! Node Discovery v5 (`discv5/discv5-wire.md`, `discv5-theory.md`) beside v4, through sigp's
//! `discv5` crate: this module is only the glue between that crate and ours (our key and
//! record in, dialable [`Node`]s out).
//!
//! # A second UDP port, as reth does
//!
//! go-ethereum runs both protocols on one socket: its v4 code reads every datagram and
//! hands what it cannot parse to v5. The sigp crate can be given a socket we bound
//! (`ListenConfig::FromSockets`) and reports datagrams it cannot decode
//! (`Event::UnrecognizedFrame`), but it reads that socket itself and offers no way to send
//! through it: v4 would get its packets second-hand through the crate's event queue (100
//! entries, dropped when full, after its per-IP rate filter) and would have to answer from
//! a socket whose reader it does not own. So v5 gets a UDP socket of its own
//! ([`DEFAULT_PORT`], 9200 as in reth, unless told otherwise) and v4 keeps its socket
//! and code unchanged.
//!
//! # One identity, two records
//!
//! Both protocols sign with the node key, so the node id is the same. The v5 record is our
//! v4 record ([`crate::enr::LocalEnr`]) with the same sequence number, IP, `tcp` and `eth`
//! entries, and `udp` set to the v5 port: a v5 peer reaches us at the `udp` of the record it
//! holds, and v4 peers (and DNS lists) keep the v4 port in theirs. Changes to the address
//! (NAT, `--nat extip`) are applied to both ([`Handle::set_external_endpoint`]), and the
//! `eth` entry to both ([`Handle::set_eth_entry`]); each bumps its record's sequence.
//!
//! When the address is not fixed (bound to an unspecified address, no `--nat extip`), v4
//! learns it from its peers' PONG votes and v5 from its own (the crate's `enr_update`):
//! the two records may then differ in IP until both have learned it.
//!
//! # What reaches the dialer
//!
//! A lookup for a random target runs at most every [`Config::lookup_interval`] (sooner
//! while warming up: [`FIRST_LOOKUP_INTERVAL`]), and only while the dialer's channel has
//! room. Every record the lookup's NODES responses carry (the crate's `Discovered` events,
//! from a queue of 100 it drops from when full) is judged, at most [`MAX_FOUND_PER_LOOKUP`]
//! per lookup, and handed over without waiting: a full dialer drops it. Only records that
//! verify under our own ENR code, name an IPv4/IPv6 address fit to dial from here and a TCP
//! port, pass the `--netrestrict` list and (for the node) carry an `eth` entry become
//! candidates ([`candidate`]): the v5 network is shared with consensus-layer clients, whose
//! records have no `eth` entry and whose TCP ports speak libp2p, not RLPx. As for DNS lists
//! and v4, the fork id in the entry is not compared here; the eth handshake checks it.
//!
//! # Bounds
//!
//! Packet parsing, sessions, rate filtering and the table are the crate's. On our side: at
//! most [`MAX_BOOTNODES`] bootnodes, [`MAX_FOUND_PER_LOOKUP`] records per lookup (the rest
//! are read and dropped), one lookup in flight, a bounded channel to the dialer that is
//! never waited on, and TALKREQs answered with an empty TALKRESP (the crate does so when
//! the request is dropped; `discv5-wire.md` asks for that for an unknown protocol).

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use enr::{CombinedKey, NodeId as V5NodeId};
use secp256k1::SecretKey;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info};

use crate::cidr::NetRestrict;
use crate::enr::Enr;
use crate::node::{Node, canonical_ip, is_lan, is_special};

/// The default v5 UDP port (reth's; go-ethereum shares the v4 port, see the module doc).
pub const DEFAULT_PORT: u16 = 9200;

/// Most records taken from one lookup: the crate returns the 16 closest (a Kademlia bucket,
/// `discv5-theory.md`), which is what an honest lookup yields; more is never needed.
pub const MAX_FOUND_PER_LOOKUP: usize = 16;

/// Most v5 bootnodes used: go-ethereum ships 15; a list longer than this is a mistake.
pub const MAX_BOOTNODES: usize = 64;

/// Default longest pause between random lookups. v4 walks its table whenever the dialer
/// asks; here a lookup runs at most every 10 s once warmed up (at most 16 records each,
/// and only while the dialer takes them), about the rate the dialer (16 dials in flight,
/// 30 s history) can use.
pub const DEFAULT_LOOKUP_INTERVAL: Duration = Duration::from_secs(10);

/// First pause between lookups; it doubles after each lookup up to
/// [`Config::lookup_interval`]. A fresh node knows only its bootnodes, and one lookup asks
/// each peer for 3 of the 256 distances, so the first few come quickly.
pub const FIRST_LOOKUP_INTERVAL: Duration = Duration::from_secs(1);

/// v5 errors. None comes from a peer: the crate drops bad packets itself.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The socket could not be read (its local address).
    #[error("discv5 socket: {0}")]
    Io(#[from] std::io::Error),
    /// Our record could not be built or changed (a key or value the crate rejects).
    #[error("discv5 record: {0}")]
    Record(String),
    /// The service could not start.
    #[error("discv5 start: {0}")]
    Start(String),
    /// A request to a peer failed (timeout, no session, bad response).
    #[error("discv5 request: {0}")]
    Request(String),
    /// More bootnodes than [`MAX_BOOTNODES`].
    #[error("{0} discv5 bootnodes, at most {MAX_BOOTNODES} are used")]
    TooManyBootnodes(usize),
}

/// Settings of the v5 service.
#[derive(Clone, Debug)]
pub struct Config {
    /// Records to start from (their `udp` is the v5 port).
    pub bootnodes: Vec<Enr>,
    /// Least time between two random lookups.
    pub lookup_interval: Duration,
    /// Only candidates in these networks.
    pub netrestrict: Option<NetRestrict>,
    /// Only candidates whose record has an `eth` entry (EIP-2124): on for a node, whose
    /// dialer speaks eth; off to feed every found node (bootnode, tests).
    pub require_eth: bool,
    /// Let the crate update our record's address from peers' PONG votes (when no external
    /// address is fixed and the socket is bound to an unspecified address).
    pub learn_address: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bootnodes: Vec::new(),
            lookup_interval: DEFAULT_LOOKUP_INTERVAL,
            netrestrict: None,
            require_eth: true,
            learn_address: false,
        }
    }
}

/// What the v5 lookups have produced so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Status {
    /// Lookups run.
    pub lookups: u64,
    /// Records the lookups returned (after the per-lookup cap).
    pub found: u64,
    /// Nodes sent to the dialer.
    pub sent: u64,
    /// Records not sent ([`Reject`]).
    pub rejected: u64,
}

/// Why a found record is not a dial candidate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    /// It does not decode or verify under our ENR rules (size, signature, scheme).
    #[error("record does not verify")]
    Invalid,
    /// No IP address with a UDP port.
    #[error("no endpoint")]
    NoEndpoint,
    /// No TCP port (not an RLPx node).
    #[error("no TCP port")]
    NoTcp,
    /// An address no node should have (unspecified, multicast, broadcast, reserved).
    #[error("special address")]
    Special,
    /// A loopback or LAN address while we are not on one.
    #[error("address not reachable from here")]
    Unreachable,
    /// Outside `--netrestrict`.
    #[error("restricted network")]
    Restricted,
    /// No `eth` entry.
    #[error("no eth entry")]
    NotEth,
    /// Our own record.
    #[error("ourselves")]
    Ourselves,
}

/// The dial candidate a found record names, judged from `local` (the address we are bound
/// to or announce): the record must verify, have an address fit to dial from there and a
/// TCP port (and an `eth` entry if `config.require_eth`).
pub fn candidate(
    raw: &[u8],
    local: IpAddr,
    local_id: &crate::NodeId,
    config: &Config,
) -> Result<Node, Reject> {
    let enr = Enr::decode(raw).map_err(|_| Reject::Invalid)?;
    let node = enr.to_node().ok_or(Reject::NoEndpoint)?;
    if node.id == *local_id {
        return Err(Reject::Ourselves);
    }
    if node.tcp == 0 {
        return Err(Reject::NoTcp);
    }
    let ip = canonical_ip(node.ip);
    if is_special(ip) || node.udp == 0 {
        return Err(Reject::Special);
    }
    // As go-ethereum's `CheckRelayIP`, with our own address standing for the relaying
    // peer's: the crate does not say which peer named a record.
    let local = canonical_ip(local);
    let local_lan = is_lan(local) || local.is_unspecified();
    let local_loop = local.is_loopback() || local.is_unspecified();
    if (ip.is_loopback() && !local_loop) || (is_lan(ip) && !local_lan) {
        return Err(Reject::Unreachable);
    }
    if config
        .netrestrict
        .as_ref()
        .is_some_and(|r| !r.contains(node.ip))
    {
        return Err(Reject::Restricted);
    }
    if config.require_eth && enr.eth().is_none() {
        return Err(Reject::NotEth);
    }
    Ok(node)
}

/// A value already RLP-encoded (our `eth` entry), for the crate's `Encodable` inserts.
struct RawRlp<'a>(&'a [u8]);

impl alloy_rlp::Encodable for RawRlp<'_> {
    fn encode(&self, out: &mut dyn alloy_rlp::BufMut) {
        out.put_slice(self.0);
    }
    fn length(&self) -> usize {
        self.0.len()
    }
}

fn combined_key(key: &SecretKey) -> Result<CombinedKey, Error> {
    let mut bytes = key.secret_bytes();
    CombinedKey::secp256k1_from_bytes(&mut bytes).map_err(|e| Error::Record(e.to_string()))
}

/// Our v4 record `v4` with `udp` set to `port`, as the crate's record type.
fn v5_record(v4: &Enr, key: &CombinedKey, port: u16) -> Result<discv5::Enr, Error> {
    let mut b = enr::Enr::builder();
    b.seq(v4.seq());
    if let Some(ip) = v4.ip4() {
        b.ip4(ip);
        b.udp4(port);
        if let Some(tcp) = v4.tcp() {
            b.tcp4(tcp);
        }
    }
    if let Some(ip) = v4.ip6() {
        b.ip6(ip);
        b.udp6(port);
        if let Some(tcp) = v4.tcp() {
            b.tcp6(tcp);
        }
    }
    if v4.ip4().is_none() && v4.ip6().is_none() {
        // No address known yet: announce the ports; PONG votes may add the IP.
        b.udp4(port);
        if let Some(tcp) = v4.tcp() {
            b.tcp4(tcp);
        }
    }
    if let Some(eth) = v4.get_raw(b"eth") {
        b.add_value_rlp("eth", eth.to_vec().into());
    }
    b.build(key).map_err(|e| Error::Record(e.to_string()))
}

/// The crate's record in our type (re-verified by our code).
fn to_ours(enr: &discv5::Enr) -> Option<Enr> {
    Enr::decode(&alloy_rlp::encode(enr)).ok()
}

fn to_theirs(enr: &Enr) -> Result<discv5::Enr, Error> {
    alloy_rlp::Decodable::decode(&mut enr.encoded()).map_err(|e| Error::Record(e.to_string()))
}

/// A running v5 service. Dropping every clone stops it.
#[derive(Clone)]
pub struct Handle {
    inner: Arc<Inner>,
}

struct Inner {
    discv5: Arc<discv5::Discv5>,
    lookups: JoinHandle<()>,
    status: watch::Receiver<Status>,
    local_addr: SocketAddr,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.lookups.abort();
    }
}

/// Starts v5 on `socket` (its own port: see the module doc) with identity `key` and the
/// entries of our v4 record `v4`, and sends the dial candidates its lookups find to
/// `nodes`. Lookups stop when `nodes` closes; the service when the [`Handle`] is dropped.
pub async fn spawn(
    socket: UdpSocket,
    key: &SecretKey,
    v4: &Enr,
    config: Config,
    nodes: mpsc::Sender<Node>,
) -> Result<Handle, Error> {
    if config.bootnodes.len() > MAX_BOOTNODES {
        return Err(Error::TooManyBootnodes(config.bootnodes.len()));
    }
    let local_addr = socket.local_addr()?;
    let ckey = combined_key(key)?;
    let record = v5_record(v4, &ckey, local_addr.port())?;
    let listen = match local_addr {
        SocketAddr::V4(_) => discv5::ListenConfig::FromSockets {
            ipv4: Some(Arc::new(socket)),
            ipv6: None,
        },
        SocketAddr::V6(_) => discv5::ListenConfig::FromSockets {
            ipv4: None,
            ipv6: Some(Arc::new(socket)),
        },
    };
    let mut builder = discv5::ConfigBuilder::new(listen);
    if !config.learn_address {
        builder.disable_enr_update();
    }
    let mut d = discv5::Discv5::new(record, ckey, builder.build())
        .map_err(|e| Error::Start(e.to_string()))?;
    for b in &config.bootnodes {
        let enr = to_theirs(b)?;
        if let Err(e) = d.add_enr(enr) {
            debug!(target: "discv5", id = %b.node_id(), error = e, "bootnode not added");
        }
    }
    d.start().await.map_err(|e| Error::Start(e.to_string()))?;
    info!(target: "discv5", addr = %local_addr, id = %v4.node_id(), "discv5 started");
    let discv5 = Arc::new(d);
    let (status_tx, status) = watch::channel(Status::default());
    let local_id = v4.node_id();
    let local_ip = v4.ip4().map(IpAddr::V4).unwrap_or(local_addr.ip());
    let events = discv5
        .event_stream()
        .await
        .map_err(|e| Error::Start(e.to_string()))?;
    let lookups = tokio::spawn(lookup_loop(
        discv5.clone(),
        events,
        config,
        local_ip,
        local_id,
        nodes,
        status_tx,
    ));
    Ok(Handle {
        inner: Arc::new(Inner {
            discv5,
            lookups,
            status,
            local_addr,
        }),
    })
}

async fn lookup_loop(
    discv5: Arc<discv5::Discv5>,
    mut events: mpsc::Receiver<discv5::Event>,
    config: Config,
    local_ip: IpAddr,
    local_id: crate::NodeId,
    nodes: mpsc::Sender<Node>,
    status: watch::Sender<Status>,
) {
    let mut pause = FIRST_LOOKUP_INTERVAL.min(config.lookup_interval);
    let next = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(next);
    let mut lookup: Option<Pin<Box<dyn Future<Output = ()> + Send>>> = None;
    // Records still taken from the current lookup.
    let mut budget = 0usize;
    loop {
        tokio::select! {
            event = events.recv() => match event {
                None => return,
                Some(discv5::Event::Discovered(enr)) => {
                    if budget == 0 {
                        continue;
                    }
                    budget -= 1;
                    status.send_modify(|s| s.found += 1);
                    match candidate(&alloy_rlp::encode(&enr), local_ip, &local_id, &config) {
                        // A full dialer drops the candidate: it takes no more now.
                        Ok(node) => match nodes.try_send(node) {
                            Ok(()) => status.send_modify(|s| s.sent += 1),
                            Err(mpsc::error::TrySendError::Closed(_)) => return,
                            Err(mpsc::error::TrySendError::Full(_)) => {}
                        },
                        Err(why) => {
                            debug!(target: "discv5", id = %enr.node_id(), %why, "not a candidate");
                            status.send_modify(|s| s.rejected += 1);
                        }
                    }
                }
                // Dropping a TALKREQ answers it with an empty TALKRESP (the crate does so on
                // drop), as the spec asks for a protocol we do not speak.
                Some(_) => {}
            },
            () = &mut next, if lookup.is_none() => {
                if nodes.is_closed() {
                    return;
                }
                next.as_mut().reset(tokio::time::Instant::now() + pause);
                pause = (pause * 2).min(config.lookup_interval);
                // No lookups while the dialer takes nothing.
                if nodes.capacity() == 0 {
                    continue;
                }
                budget = MAX_FOUND_PER_LOOKUP;
                let query = discv5.find_node(V5NodeId::random());
                lookup = Some(Box::pin(async move {
                    if let Err(e) = query.await {
                        debug!(target: "discv5", error = %e, "lookup failed");
                    }
                }));
                status.send_modify(|s| s.lookups += 1);
            }
            () = async {
                match lookup.as_mut() {
                    Some(l) => l.await,
                    None => std::future::pending().await,
                }
            }, if lookup.is_some() => {
                lookup = None;
            }
        }
    }
}

impl Handle {
    /// The bound v5 socket's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// Our current v5 record.
    pub fn local_enr(&self) -> Result<Enr, Error> {
        to_ours(&self.inner.discv5.local_enr())
            .ok_or_else(|| Error::Record("our v5 record does not verify".into()))
    }

    /// What the lookups have produced.
    pub fn status(&self) -> watch::Receiver<Status> {
        self.inner.status.clone()
    }

    /// Nodes in the v5 table.
    pub fn table_len(&self) -> usize {
        self.inner.discv5.table_entries_id().len()
    }

    /// Adds a record to the table (as a bootnode is).
    pub fn add_enr(&self, enr: &Enr) -> Result<(), Error> {
        self.inner
            .discv5
            .add_enr(to_theirs(enr)?)
            .map_err(|e| Error::Record(e.into()))
    }

    /// Pings `enr`'s node; returns its record's sequence number.
    pub async fn ping(&self, enr: &Enr) -> Result<u64, Error> {
        let pong = self
            .inner
            .discv5
            .send_ping(to_theirs(enr)?)
            .await
            .map_err(|e| Error::Request(format!("{e:?}")))?;
        Ok(pong.enr_seq)
    }

    /// Asks `enr`'s node for the records at these log-distances from it (FINDNODE);
    /// at most [`MAX_FOUND_PER_LOOKUP`] per distance asked are kept, records that do not
    /// verify under our rules are dropped.
    pub async fn find_node_at(&self, enr: &Enr, distances: Vec<u64>) -> Result<Vec<Enr>, Error> {
        let cap = MAX_FOUND_PER_LOOKUP * distances.len().max(1);
        let found = self
            .inner
            .discv5
            .find_node_designated_peer(to_theirs(enr)?, distances)
            .await
            .map_err(|e| Error::Request(format!("{e:?}")))?;
        Ok(found.iter().take(cap).filter_map(to_ours).collect())
    }

    /// Puts the `eth` entry (raw RLP, as [`crate::enr::LocalEnr::set_eth`]) into the v5
    /// record (sequence bumped when it changes).
    pub fn set_eth_entry(&self, raw: &[u8]) -> Result<(), Error> {
        if self.inner.discv5.local_enr().get_raw_rlp("eth") == Some(raw) {
            return Ok(());
        }
        self.inner
            .discv5
            .enr_insert("eth", &RawRlp(raw))
            .map(|_| ())
            .map_err(|e| Error::Record(e.to_string()))
    }

    /// Puts our external endpoint into the v5 record: `ip`, the v5 UDP port and `tcp`.
    pub fn set_external_endpoint(&self, ip: IpAddr, tcp: u16) {
        let d = &self.inner.discv5;
        let port = self.inner.local_addr.port();
        d.update_local_enr_socket(SocketAddr::new(ip, port), false);
        d.update_local_enr_socket(SocketAddr::new(ip, tcp), true);
    }
}

#[cfg(test)]
#[path = "v5_tests.rs"]
mod tests;
