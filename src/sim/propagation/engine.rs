//! The event loop: every node's cores fed by the [`Net`]'s deliveries and timers, their
//! actions turned back into messages, as the node's drivers do over eth.
//!
//! Topology: each node dials `peers / 2` random others and accepts every dial, so a node
//! has `peers` connections on average (a random graph about as dense as a node with
//! `--maxpeers` = `peers`). A penalised peer is disconnected, as the node's server does.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy_primitives::B256;
use protocols::eth::txfetch::Fetcher;
use protocols::eth::{self, BlockId, PeerId, fanout};
use rand::Rng;
use secp256k1::{PublicKey, SecretKey};

use super::output::Outcome;
use super::{Config, HostileMode, Msg, Strategy, TxIdx, World};
use crate::chain::Block;
use crate::propagate::{Action, Core, Failure, Gossip, ImportResult, Local};
use crate::sim::net::{Event, Net};

/// Timer kinds (low byte of a token; the index is above it).
const TICK: u64 = 0;
const IMPORT: u64 = 1;
const NEW_BLOCK: u64 = 2;
const NEW_TX: u64 = 3;

/// How long the run goes on after the last block, for fetches, retries and their
/// timeouts to play out: above the core's 25 s fetch timeout and a second announcer's.
const SETTLE: Duration = Duration::from_secs(60);

mod deliver;

/// The stored chain of a node: hashes and the head number (the stand-in for the block
/// store; the core only asks these two things).
#[derive(Debug, Default)]
struct Stored {
    head: u64,
    has: HashSet<B256>,
}

#[derive(Debug, Clone, Default)]
struct Chain(Rc<RefCell<Stored>>);

impl Local for Chain {
    fn head_number(&self) -> u64 {
        self.0.borrow().head
    }
    fn has_block(&self, hash: &B256) -> bool {
        self.0.borrow().has.contains(hash)
    }
}

impl Chain {
    fn store(&self, number: u64, hash: B256) {
        let mut s = self.0.borrow_mut();
        s.head = s.head.max(number);
        s.has.insert(hash);
    }
}

struct Node {
    /// Connected peers, sorted.
    peers: Vec<u32>,
    /// (peer, item) pairs the peer is known to have: eth's per-session `knows` sets.
    knows: HashSet<u64>,
    chain: Chain,
    core: Core<Chain>,
    importing: Option<(Option<PeerId>, B256, Box<Block>)>,
    /// Block requests in flight, reported to the core as failed when they time out or
    /// the peer goes (eth's request tracking).
    requests: Vec<BlockReq>,
    fetcher: Fetcher,
    pool: HashSet<TxIdx>,
    hostile: bool,
    /// Items a hostile node has heard of (it announces each once).
    heard: HashSet<u64>,
    timer_at: Option<Duration>,
}

/// A header or body request in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BlockReq {
    deadline: Duration,
    peer: u32,
    fetch: u32,
    bodies: bool,
}

/// An item in a `knows` key: blocks as their index, transactions above bit 32.
fn block_item(b: u32) -> u64 {
    u64::from(b)
}
fn tx_item(t: u32) -> u64 {
    (1 << 32) | u64::from(t)
}
fn knows_key(peer: u32, item: u64) -> u64 {
    (u64::from(peer) << 40) | item
}

struct Sim<'a> {
    cfg: &'a Config,
    world: &'a World,
    net: Net<Msg>,
    nodes: Vec<Node>,
    ids: Vec<PeerId>,
    by_id: HashMap<PeerId, u32>,
    base: Instant,
    /// eth's request timeout ([`eth::Config::request_timeout`]).
    request_timeout: Duration,
    out: Outcome,
}

/// Runs one propagation of `world` under `cfg` and returns what it measured.
pub fn run(cfg: &Config, world: &World) -> Outcome {
    let mut sim = Sim::new(cfg, world);
    sim.run();
    let stats = (0..cfg.nodes).map(|n| *sim.net.stats(n)).collect();
    sim.out.stats = stats;
    sim.out
}

/// A deterministic node key for index `i` (valid: 1 ≤ i + 1 < the curve order).
fn node_id(i: usize) -> PeerId {
    let mut b = [0u8; 32];
    b[24..].copy_from_slice(&(i as u64 + 1).to_be_bytes());
    b[0] = 0x42;
    // ok: the scalar is non-zero (b[0] = 0x42) and below the curve order (0xffff...), so
    // it is a valid secret key.
    let key = SecretKey::from_byte_array(b).expect("0x42.. is a valid secret key");
    PublicKey::from_secret_key_global(&key)
}

impl<'a> Sim<'a> {
    fn new(cfg: &'a Config, world: &'a World) -> Self {
        let n = cfg.nodes.max(2);
        let mut net = Net::new(cfg.seed, cfg.net.clone());
        for _ in 0..n {
            net.add_node();
        }
        // Topology.
        let mut adj: Vec<HashSet<u32>> = vec![HashSet::new(); n];
        let dials = cfg.peers.div_ceil(2).min(n - 1);
        for a in 0..n {
            let mut made = 0;
            let mut tries = 0;
            while made < dials && tries < 100 * dials {
                tries += 1;
                let b = net.rng().random_range(0..n);
                if b != a && adj[a].insert(b as u32) {
                    adj[b].insert(a as u32);
                    made += 1;
                }
            }
        }
        let ids: Vec<PeerId> = (0..n).map(node_id).collect();
        let by_id = ids
            .iter()
            .enumerate()
            .map(|(i, p)| (*p, i as u32))
            .collect();
        // Hostile nodes; the producers are drawn among the others.
        let hostile: Vec<bool> = (0..n)
            .map(|_| net.rng().random::<f64>() < cfg.hostile)
            .collect();
        let nodes = adj
            .into_iter()
            .zip(&hostile)
            .map(|(set, &hostile)| {
                let mut peers: Vec<u32> = set.into_iter().collect();
                peers.sort_unstable();
                let chain = Chain::default();
                chain.store(0, world.hashes[0]);
                let sources = peers.iter().map(|&p| ids[p as usize]).collect();
                Node {
                    core: Core::new(chain.clone(), Gossip::From(sources)),
                    chain,
                    peers,
                    knows: HashSet::new(),
                    importing: None,
                    requests: Vec::new(),
                    fetcher: Fetcher::new(eth::txfetch::Config::default()),
                    pool: HashSet::new(),
                    hostile,
                    heard: HashSet::new(),
                    timer_at: None,
                }
            })
            .collect();
        let (nb, nt) = (world.blocks.len(), world.txs.len());
        let out = Outcome {
            strategy: cfg.strategy,
            region: (0..n).map(|i| net.region(i)).collect(),
            upload: (0..n).map(|i| net.upload(i)).collect(),
            hostile,
            block_created: vec![(Duration::ZERO, 0); nb],
            block_online: vec![vec![true; n]; nb],
            block_arrival: vec![vec![None; n]; nb],
            block_full: vec![vec![0; n]; nb],
            block_ann: vec![vec![0; n]; nb],
            block_bytes: vec![0; nb],
            tx_created: vec![(Duration::ZERO, 0); nt],
            tx_online: vec![vec![true; n]; nt],
            tx_arrival: vec![vec![None; n]; nt],
            tx_full: vec![vec![0; n]; nt],
            tx_ann: vec![vec![0; n]; nt],
            tx_bytes: vec![0; nt],
            stats: Vec::new(),
            disconnects: 0,
            events: 0,
        };
        Sim {
            cfg,
            world,
            net,
            nodes,
            ids,
            by_id,
            base: Instant::now(),
            request_timeout: eth::Config::default().request_timeout,
            out,
        }
    }

    fn now(&self) -> Instant {
        self.base + self.net.now()
    }

    fn honest_node(&mut self) -> u32 {
        let n = self.nodes.len();
        for _ in 0..10 * n {
            let i = self.net.rng().random_range(0..n);
            if !self.nodes[i].hostile {
                return i as u32;
            }
        }
        0
    }

    fn run(&mut self) {
        let start = Duration::from_secs(1);
        let blocks = self.world.blocks.len() - 1;
        for b in 1..=blocks {
            let at = start + self.cfg.block_interval * (b as u32 - 1);
            let origin = self.honest_node();
            self.out.block_created[b] = (at, origin);
            self.net
                .schedule(origin as usize, at, NEW_BLOCK | ((b as u64) << 8));
        }
        let span = self.cfg.block_interval * blocks.max(1) as u32;
        let txs = self.world.txs.len();
        for t in 0..txs {
            let at = start + span.mul_f64(t as f64 / txs as f64);
            let origin = self.honest_node();
            self.out.tx_created[t] = (at, origin);
            self.net
                .schedule(origin as usize, at, NEW_TX | ((t as u64) << 8));
        }
        let end = start + span + SETTLE;
        while let Some(ev) = self.net.next() {
            if ev.at() > end {
                break;
            }
            self.out.events += 1;
            match ev {
                Event::Deliver { from, to, msg, .. } => self.deliver(from as u32, to as u32, msg),
                Event::Timer { node, token, at } => self.timer(node as u32, token, at),
            }
        }
    }

    fn timer(&mut self, n: u32, token: u64, at: Duration) {
        let idx = (token >> 8) as u32;
        match token & 0xff {
            TICK => {
                let node = &mut self.nodes[n as usize];
                if node.timer_at == Some(at) {
                    node.timer_at = None;
                }
                self.tick(n);
            }
            IMPORT => self.imported(n),
            NEW_BLOCK => self.produce(n, idx),
            NEW_TX => {
                // A user sends through a node that is up: an origin gone offline by churn
                // hands over to a random online honest node.
                let mut origin = n;
                for _ in 0..10 * self.nodes.len() {
                    if self.net.is_online(origin as usize) {
                        break;
                    }
                    origin = self.honest_node();
                }
                let online = (0..self.nodes.len())
                    .map(|i| self.net.is_online(i))
                    .collect();
                self.out.tx_online[idx as usize] = online;
                self.out.tx_created[idx as usize] = (at, origin);
                self.pool_txs(origin, vec![idx], None);
            }
            _ => {}
        }
    }

    /// `n` produces block `b` (it has every block before it: a producer is synced).
    fn produce(&mut self, n: u32, b: u32) {
        self.churn(n, b);
        let w = self.world;
        let node = &self.nodes[n as usize];
        for k in 0..=b as usize {
            node.chain.store(k as u64, w.hashes[k]);
        }
        let now = self.now();
        self.out.block_arrival[b as usize][n as usize] = Some(self.net.now());
        let block = Arc::new(w.blocks[b as usize].clone());
        let hash = w.hashes[b as usize];
        let result = ImportResult::Stored(block);
        self.nodes[n as usize]
            .core
            .on_imported(None, hash, u64::from(b), result, now);
        self.drive(n, false);
    }

    /// Churn: before block `b`, a new random share of the nodes (never its producer) is
    /// offline for the block's interval.
    fn churn(&mut self, origin: u32, b: u32) {
        if self.cfg.churn <= 0.0 {
            return;
        }
        for i in 0..self.nodes.len() {
            let online = i == origin as usize || self.net.rng().random::<f64>() >= self.cfg.churn;
            self.net.set_online(i, online);
            self.out.block_online[b as usize][i] = online;
        }
    }

    fn connected(&self, a: u32, b: u32) -> bool {
        self.nodes[a as usize].peers.binary_search(&b).is_ok()
    }

    fn learn(&mut self, n: u32, peer: u32, item: u64) {
        self.nodes[n as usize].knows.insert(knows_key(peer, item));
    }

    fn send(&mut self, from: u32, to: u32, delay: Duration, msg: Msg) {
        let size = self.world.size(&msg);
        let s = size as u64;
        match &msg {
            Msg::NewBlock(b) | Msg::NewBlockHashes(b) => self.out.block_bytes[*b as usize] += s,
            Msg::GetBlockHeaders { fetch, .. }
            | Msg::BlockHeaders { fetch, .. }
            | Msg::GetBlockBodies { fetch, .. }
            | Msg::BlockBodies { fetch, .. } => self.out.block_bytes[*fetch as usize] += s,
            Msg::Transactions(txs)
            | Msg::TxHashes(txs)
            | Msg::GetPooledTxs { txs, .. }
            | Msg::PooledTxs { txs, .. } => {
                let each = s / txs.len().max(1) as u64;
                for &t in txs {
                    self.out.tx_bytes[t as usize] += each;
                }
            }
        }
        self.net
            .send_after(from as usize, to as usize, delay, size, msg);
    }

    /// A hostile node heard of `item`: in [`HostileMode::AnnounceNeverDeliver`] it
    /// announces it, once, to every peer not known to have it.
    fn heard(&mut self, n: u32, item: u64) {
        let node = &mut self.nodes[n as usize];
        if self.cfg.hostile_mode != HostileMode::AnnounceNeverDeliver || !node.heard.insert(item) {
            return;
        }
        let peers: Vec<u32> = node
            .peers
            .iter()
            .copied()
            .filter(|&p| node.knows.insert(knows_key(p, item)))
            .collect();
        for p in peers {
            let msg = if item >> 32 == 0 {
                Msg::NewBlockHashes(item as u32)
            } else {
                Msg::TxHashes(vec![item as u32])
            };
            self.send(n, p, Duration::ZERO, msg);
        }
    }

    /// The peers of `n` but `except` not known to have `item`, split by the strategy into
    /// (in full, announced); marks them as knowing it.
    fn fan_out(&mut self, n: u32, except: Option<u32>, item: u64) -> (Vec<u32>, Vec<u32>) {
        let node = &mut self.nodes[n as usize];
        let candidates: Vec<u32> = node
            .peers
            .iter()
            .copied()
            .filter(|&p| Some(p) != except && node.knows.insert(knows_key(p, item)))
            .collect();
        match self.cfg.strategy {
            Strategy::Sqrt => {
                let rng = self.net.rng();
                fanout::split(candidates, |_| true, || rng.random())
            }
            Strategy::Flood => (candidates, Vec::new()),
            Strategy::Announce => (Vec::new(), candidates),
        }
    }

    fn relay(&mut self, n: u32, b: u32, except: Option<u32>) {
        let (full, announce) = self.fan_out(n, except, block_item(b));
        for p in full {
            self.send(n, p, Duration::ZERO, Msg::NewBlock(b));
        }
        for p in announce {
            self.send(n, p, Duration::ZERO, Msg::NewBlockHashes(b));
        }
    }

    /// `n` pools `txs` (new to it) and passes them on after its handling delay.
    fn pool_txs(&mut self, n: u32, txs: Vec<TxIdx>, from: Option<u32>) {
        let now = self.net.now();
        for &t in &txs {
            self.nodes[n as usize].pool.insert(t);
            self.out.tx_arrival[t as usize][n as usize].get_or_insert(now);
        }
        // One message per peer with the transactions it lacks (eth's per-session queues
        // leave out what the peer knows); √n of the peers get them in full.
        let mut full: HashMap<u32, Vec<TxIdx>> = HashMap::new();
        let mut ann: HashMap<u32, Vec<TxIdx>> = HashMap::new();
        for &t in &txs {
            let (f, a) = self.fan_out(n, from, tx_item(t));
            f.into_iter()
                .for_each(|p| full.entry(p).or_default().push(t));
            a.into_iter()
                .for_each(|p| ann.entry(p).or_default().push(t));
        }
        let delay = self.cfg.tx_delay;
        let mut sends: Vec<(u32, bool, Vec<TxIdx>)> = full
            .into_iter()
            .map(|(p, v)| (p, true, v))
            .chain(ann.into_iter().map(|(p, v)| (p, false, v)))
            .collect();
        sends.sort_unstable(); // HashMap order is not deterministic
        for (p, in_full, v) in sends {
            let msg = if in_full {
                Msg::Transactions(v)
            } else {
                Msg::TxHashes(v)
            };
            self.send(n, p, delay, msg);
        }
    }

    /// The import `n` was busy with is done: stored, reported to the core.
    fn imported(&mut self, n: u32) {
        let node = &mut self.nodes[n as usize];
        let Some((from, hash, block)) = node.importing.take() else {
            return;
        };
        let number = block.header.number;
        node.chain.store(number, hash);
        if let Some(&b) = self.world.by_hash.get(&hash) {
            let at = self.net.now();
            self.out.block_arrival[b as usize][n as usize].get_or_insert(at);
        }
        let now = self.now();
        let result = ImportResult::Stored(Arc::new(*block));
        let node = &mut self.nodes[n as usize];
        node.core.on_imported(from, hash, number, result, now);
        self.drive(n, false);
    }

    /// Carries out the core's actions. `sort`: they came from a timeout sweep over the
    /// core's HashMap, so put them in a fixed order first (determinism).
    fn drive(&mut self, n: u32, sort: bool) {
        let w = self.world;
        let mut actions: Vec<Action> =
            std::iter::from_fn(|| self.nodes[n as usize].core.poll_action()).collect();
        let idx = |by_id: &HashMap<PeerId, u32>, p: &PeerId| by_id.get(p).copied();
        if sort {
            actions.sort_by_key(|a| match a {
                Action::Penalise { peer, .. } => (0, idx(&self.by_id, peer), B256::ZERO),
                Action::FetchHeaders { peer, hash, .. } => (1, idx(&self.by_id, peer), *hash),
                Action::FetchBodies { peer, hash, .. } => (2, idx(&self.by_id, peer), *hash),
                Action::Relay { hash, .. } => (3, None, *hash),
                Action::Import { hash, .. } => (4, None, *hash),
            });
        }
        for a in actions {
            match a {
                Action::Import { from, hash, block } => {
                    self.nodes[n as usize].importing = Some((from, hash, block));
                    let at = self.net.now() + self.cfg.import_delay;
                    self.net.schedule(n as usize, at, IMPORT);
                }
                Action::Relay { hash, except, .. } => {
                    if let Some(&b) = w.by_hash.get(&hash) {
                        let except = except.and_then(|p| idx(&self.by_id, &p));
                        self.relay(n, b, except);
                    }
                }
                Action::Penalise { peer, .. } => {
                    if let Some(p) = idx(&self.by_id, &peer) {
                        self.disconnect(n, p);
                    }
                }
                Action::FetchHeaders { peer, hash, req } => {
                    if let (Some(p), Some(&fetch)) = (idx(&self.by_id, &peer), w.by_hash.get(&hash))
                    {
                        self.track(n, p, fetch, false);
                        let msg = Msg::GetBlockHeaders { fetch, req };
                        self.send(n, p, Duration::ZERO, msg);
                    }
                }
                Action::FetchBodies { peer, hash, hashes } => {
                    if let (Some(p), Some(&fetch)) = (idx(&self.by_id, &peer), w.by_hash.get(&hash))
                    {
                        self.track(n, p, fetch, true);
                        let blocks = hashes.iter().filter_map(|h| w.by_hash.get(h).copied());
                        let msg = Msg::GetBlockBodies {
                            fetch,
                            blocks: blocks.collect(),
                        };
                        self.send(n, p, Duration::ZERO, msg);
                    }
                }
            }
        }
        self.schedule_tick(n);
    }

    /// The core's and the fetcher's timers are due: expire, retry, request.
    fn tick(&mut self, n: u32) {
        let now = self.now();
        let node = &mut self.nodes[n as usize];
        if node.hostile {
            return;
        }
        node.core.handle_timeout(now);
        let at = self.net.now();
        let (late, left): (Vec<BlockReq>, Vec<BlockReq>) =
            node.requests.iter().partition(|r| r.deadline <= at);
        node.requests = left;
        for r in late {
            self.fail(n, r, Failure::Timeout);
        }
        let node = &mut self.nodes[n as usize];
        node.fetcher.expire(now);
        let mut useless: Vec<u32> = node
            .fetcher
            .take_useless()
            .iter()
            .filter_map(|p| self.by_id.get(p).copied())
            .collect();
        useless.sort_unstable();
        let requests = self.nodes[n as usize].fetcher.poll(now);
        for f in requests {
            let Some(&p) = self.by_id.get(&f.peer) else {
                continue;
            };
            let txs = f
                .hashes
                .iter()
                .filter_map(|(h, _)| self.world.tx_by_hash.get(h).copied())
                .collect();
            self.send(n, p, Duration::ZERO, Msg::GetPooledTxs { id: f.id, txs });
        }
        for p in useless {
            self.disconnect(n, p);
        }
        self.drive(n, true);
    }

    /// Sets `n`'s timer for the earliest deadline of its core and fetcher.
    fn schedule_tick(&mut self, n: u32) {
        let now = self.net.now();
        let node = &mut self.nodes[n as usize];
        if node.hostile {
            return;
        }
        let request = node.requests.iter().map(|r| self.base + r.deadline).min();
        let due = [
            node.core.next_timeout(),
            node.fetcher.next_deadline(),
            request,
        ]
        .into_iter()
        .flatten()
        .min();
        let Some(due) = due else {
            return;
        };
        // A deadline already past (work left that a poll could not place) is retried
        // a millisecond later, never in a loop at one instant.
        let at = due
            .saturating_duration_since(self.base)
            .max(now + Duration::from_millis(1));
        if node.timer_at.is_some_and(|t| t > now && t <= at) {
            return;
        }
        node.timer_at = Some(at);
        self.net.schedule(n as usize, at, TICK);
    }

    /// Closes the connection between `a` and `b` (a penalty): requests between them fail
    /// as `Gone`, as eth reports a request to a peer that left.
    fn disconnect(&mut self, a: u32, b: u32) {
        for (x, y) in [(a, b), (b, a)] {
            let node = &mut self.nodes[x as usize];
            if let Ok(i) = node.peers.binary_search(&y) {
                node.peers.remove(i);
                node.fetcher.peer_left(&self.ids[y as usize]);
            }
            let (gone, left): (Vec<BlockReq>, Vec<BlockReq>) =
                node.requests.iter().partition(|r| r.peer == y);
            node.requests = left;
            for r in gone {
                self.fail(x, r, Failure::Gone);
            }
        }
        self.out.disconnects += 1;
        self.drive(a, true);
        self.drive(b, true);
    }

    /// `n` asked `peer` for the headers or bodies of fetch `fetch`: the answer is due
    /// within eth's request timeout.
    fn track(&mut self, n: u32, peer: u32, fetch: u32, bodies: bool) {
        let deadline = self.net.now() + self.request_timeout;
        self.nodes[n as usize].requests.push(BlockReq {
            deadline,
            peer,
            fetch,
            bodies,
        });
    }

    /// An answer arrived: its request is no longer in flight.
    fn answered(&mut self, n: u32, peer: u32, fetch: u32, bodies: bool) {
        let reqs = &mut self.nodes[n as usize].requests;
        if let Some(i) = reqs
            .iter()
            .position(|r| (r.peer, r.fetch, r.bodies) == (peer, fetch, bodies))
        {
            reqs.remove(i);
        }
    }

    /// Reports a failed request to the core (the caller drives it).
    fn fail(&mut self, n: u32, r: BlockReq, failure: Failure) {
        let (now, hash) = (self.now(), self.world.hashes[r.fetch as usize]);
        let peer = self.ids[r.peer as usize];
        let core = &mut self.nodes[n as usize].core;
        if r.bodies {
            core.on_bodies(peer, hash, Err(failure), now);
        } else {
            core.on_headers(peer, hash, Err(failure), now);
        }
    }
}
