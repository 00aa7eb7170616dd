//! The discovery scenario's event loop: real [`Protocol`]s in a [`Fleet`] over a [`Net`],
//! with joins, churn, table samples and measured lookups driven by control timers.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use discovery::node::{Node, NodeId};
use discovery::packet::Crypto;
use discovery::proto::LookupId;
use discovery::sim::{Fleet, Wire, true_closest};
use discovery::{Config, Protocol};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use secp256k1::SecretKey;

use super::Params;
use super::fifo::Fifo;
use super::garbage::Garbage;
use crate::sim::net::{self, Event, Net};

/// The UNIX time virtual time zero stands for (any fixed value: only differences count).
pub(crate) const UNIX_START: u64 = 1_700_000_000;
/// IPv4 + UDP header bytes added to every datagram's size on the link.
const UDP_OVERHEAD: usize = 28;
/// Nodes joined less than this long ago are left out of the table-fill minimum: a node
/// that has just started has an empty table by definition.
pub(crate) const SETTLE: Duration = Duration::from_secs(30);

/// No measured lookup starts later than this before the end of the run: a lookup that
/// meets only unresponsive nodes takes `ALPHA`-wide rounds of 1 s timeouts (bond wait plus
/// request timeout), and 20 s covers sixteen failed candidates plus the answering ones.
const LOOKUP_MARGIN: Duration = Duration::from_secs(20);

/// Control timers (on the bootnode, which never leaves): the top 4 bits of a token.
const WAKE: u64 = 0;
const JOIN: u64 = 1;
const CHURN: u64 = 2;
const SAMPLE: u64 = 3;
const LOOKUP: u64 = 4;
const PAYLOAD: u64 = (1 << 60) - 1;

fn token(kind: u64, payload: u64) -> u64 {
    (kind << 60) | (payload & PAYLOAD)
}

/// What the world knows of each node it ever started.
pub(crate) struct Info {
    pub(crate) node: Node,
    pub(crate) hash: [u8; 32],
    pub(crate) garbage: bool,
    pub(crate) joined: Duration,
    pub(crate) online: bool,
}

/// One sample of the honest nodes' tables.
pub(crate) struct FillRow {
    pub(crate) t: Duration,
    pub(crate) online: usize,
    /// Honest nodes sampled (online for at least [`SETTLE`]).
    pub(crate) sampled: usize,
    pub(crate) avg_entries: f64,
    pub(crate) min_entries: usize,
    pub(crate) avg_buckets: f64,
    pub(crate) min_buckets: usize,
    /// Share of honest table entries that are garbage nodes.
    pub(crate) garbage_share: f64,
    /// Share of honest table entries that are nodes no longer online.
    pub(crate) dead_share: f64,
}

/// One measured lookup.
pub(crate) struct LookupRow {
    pub(crate) start: Duration,
    pub(crate) node: usize,
    /// `None` when the node left before it finished or the run ended first.
    pub(crate) done: Option<LookupDone>,
}

pub(crate) struct LookupDone {
    pub(crate) took: Duration,
    pub(crate) queries: usize,
    pub(crate) rounds: usize,
    pub(crate) packets: u64,
    /// How many of the true 16 closest (at the start) it returned.
    pub(crate) found: usize,
    /// Nodes returned.
    pub(crate) returned: usize,
    /// Garbage nodes among the returned.
    pub(crate) garbage: usize,
}

struct Running {
    row: usize,
    node: usize,
    id: LookupId,
    packets: u64,
    truth: Vec<NodeId>,
}

/// Everything a run measured.
pub(crate) struct Outcome {
    pub(crate) fill: Vec<FillRow>,
    pub(crate) lookups: Vec<LookupRow>,
    pub(crate) packets: u64,
    pub(crate) bytes: u64,
    pub(crate) started: usize,
    pub(crate) garbage_started: usize,
    pub(crate) left: usize,
    /// Packet counters summed over the nodes online at the end.
    pub(crate) metrics: discovery::proto::Metrics,
}

/// Makes a node's packet crypto from its key and id.
pub(crate) type MakeCrypto<C> = Box<dyn FnMut(&SecretKey, NodeId) -> C>;

/// The simulated network of one run. `C` is the packet crypto (real or stand-in).
pub(crate) struct World<C: Crypto> {
    p: Params,
    net: Net<(u32, Vec<u8>)>,
    fifo: Fifo,
    fleet: Fleet<C>,
    base: Instant,
    info: Vec<Info>,
    make: MakeCrypto<C>,
    garbage: Garbage<C>,
    rng: StdRng,
    running: Vec<Running>,
    out: Outcome,
}

/// [`Wire`] over the [`Net`]: datagram sizes plus UDP/IP headers, wake-ups as tokens,
/// and garbage nodes' Neighbors replaced on the way out.
struct NetWire<'a, C: Crypto> {
    net: &'a mut Net<(u32, Vec<u8>)>,
    fifo: &'a mut Fifo,
    base: Instant,
    garbage: &'a mut Garbage<C>,
    info: &'a [Info],
}

impl<C: Crypto> Wire for NetWire<'_, C> {
    fn send(&mut self, from: usize, to: usize, mut data: Vec<u8>) {
        if self.info.get(from).is_some_and(|i| i.garbage) {
            let unix = UNIX_START + self.net.now().as_secs();
            if let Some(bad) = self.garbage.answer(from, &data, self.info, unix) {
                data = bad;
            }
        }
        let size = data.len() + UDP_OVERHEAD;
        if let Some(seq) = self.fifo.send(from, to) {
            self.net.send(from, to, size, (seq, data));
        }
    }

    fn wake(&mut self, node: usize, at: Instant) {
        let at = at.saturating_duration_since(self.base);
        self.net
            .schedule(node, at, token(WAKE, at.as_nanos() as u64));
    }
}

impl<C: Crypto> World<C> {
    pub(crate) fn new(p: Params, make: MakeCrypto<C>) -> Self {
        // Loss is drawn by the Fifo (see there).
        let cfg = net::Config {
            loss: 0.0,
            ..net::Config::default()
        };
        let mut net = Net::new(p.seed, cfg);
        let rng = StdRng::seed_from_u64(net.rng().next_u64());
        let fifo = Fifo::new(p.loss, StdRng::seed_from_u64(net.rng().next_u64()));
        let garbage = Garbage::new(StdRng::seed_from_u64(net.rng().next_u64()));
        World {
            p,
            net,
            fifo,
            fleet: Fleet::new(),
            base: Instant::now(),
            info: Vec::new(),
            make,
            garbage,
            rng,
            running: Vec::new(),
            out: Outcome {
                fill: Vec::new(),
                lookups: Vec::new(),
                packets: 0,
                bytes: 0,
                started: 0,
                garbage_started: 0,
                left: 0,
                metrics: Default::default(),
            },
        }
    }

    /// The fleet and a [`NetWire`] over the rest of the world, borrowed apart.
    fn split(&mut self) -> (&mut Fleet<C>, NetWire<'_, C>) {
        let wire = NetWire {
            net: &mut self.net,
            fifo: &mut self.fifo,
            base: self.base,
            garbage: &mut self.garbage,
            info: &self.info,
        };
        (&mut self.fleet, wire)
    }

    fn addr(&self, i: usize) -> SocketAddr {
        let per = self.p.per_subnet.clamp(1, 250);
        let (s, h) = (i / per, i % per);
        let ip = Ipv4Addr::new(10, (s >> 8) as u8, s as u8, h as u8 + 1);
        SocketAddr::new(IpAddr::V4(ip), 30303)
    }

    /// Starts one more node (the first is the bootnode; the others know only it).
    fn join(&mut self, garbage: bool) {
        let key = SecretKey::new(&mut self.rng);
        let id = NodeId::from_secret_key(&key);
        let i = self.net.add_node();
        let addr = self.addr(i);
        let now = self.net.now();
        let mut config = Config::default();
        if let Some(boot) = self.info.first() {
            config.bootnodes = vec![boot.node];
        }
        let crypto = (self.make)(&key, id);
        if garbage {
            let signer = (self.make)(&key, id);
            self.garbage.add(i, id, signer);
        }
        let unix = UNIX_START + now.as_secs();
        let rng = StdRng::seed_from_u64(self.rng.next_u64());
        let at = self.base + now;
        let proto = Protocol::with_crypto(key, crypto, addr, config, at, unix, rng, 1);
        let Ok(proto) = proto else {
            return; // a fresh key and an IPv4 endpoint always make a record
        };
        let node = proto.local_node();
        self.info.push(Info {
            node,
            hash: id.hash(),
            garbage,
            joined: now,
            online: true,
        });
        let (fleet, mut wire) = self.split();
        fleet.add(&mut wire, addr, proto);
        self.out.started += 1;
        self.out.garbage_started += usize::from(garbage);
    }

    fn is_garbage_slot(&mut self) -> bool {
        self.rng.random::<f64>() < self.p.garbage
    }

    /// Runs the scenario to its end and returns what it measured.
    pub(crate) fn run(mut self) -> Outcome {
        let p = self.p.clone();
        self.join(false);
        // Initial joins spread evenly over the join window.
        let n = p.nodes.max(2);
        for k in 1..n {
            let at = p.join * k as u32 / n as u32;
            self.net.schedule(0, at, token(JOIN, 0));
        }
        // Churn: `churn * nodes` replacements spread evenly after the join window.
        let churn = (p.churn * n as f64).round() as u64;
        let span = p.duration.saturating_sub(p.join);
        for k in 0..churn {
            let at = p.join + span.mul_f64((k as f64 + 0.5) / churn as f64);
            self.net.schedule(0, at, token(CHURN, 0));
        }
        let mut t = Duration::ZERO;
        while t <= p.duration {
            self.net.schedule(0, t, token(SAMPLE, 0));
            t += p.sample;
        }
        if p.lookups > 0 {
            // Lookups end LOOKUP_MARGIN before the run does, so that each can finish.
            let first = p.join + SETTLE;
            let span = p.duration.saturating_sub(first + LOOKUP_MARGIN);
            let gap = span / (p.lookups as u32 + 1);
            for k in 1..=p.lookups {
                self.net
                    .schedule(0, first + gap * k as u32, token(LOOKUP, 0));
            }
        }
        while let Some(ev) = self.net.next() {
            if ev.at() > p.duration {
                break;
            }
            let base = self.base;
            let (fleet, mut wire) = self.split();
            match ev {
                Event::Deliver { from, to, msg, at } => {
                    for data in wire.fifo.arrive(from, to, msg.0, msg.1) {
                        fleet.deliver(&mut wire, base + at, from, to, &data);
                    }
                }
                Event::Timer { node, token, at } => match token >> 60 {
                    WAKE => {
                        let asked = base + Duration::from_nanos(token & PAYLOAD);
                        fleet.timer(&mut wire, base + at, node, asked);
                    }
                    JOIN => {
                        let g = self.is_garbage_slot();
                        self.join(g);
                    }
                    CHURN => self.churn(),
                    SAMPLE => self.sample(),
                    LOOKUP => self.start_lookup(),
                    _ => {}
                },
            }
            self.collect();
        }
        for i in 0..self.net.len() {
            let s = self.net.stats(i);
            self.out.bytes += s.bytes_sent;
        }
        self.out.packets = self.fleet.packets();
        for (_, p) in self.fleet.online() {
            let (m, t) = (p.metrics(), &mut self.out.metrics);
            t.malformed += m.malformed;
            t.unbonded += m.unbonded;
            t.unsolicited += m.unsolicited;
            t.rate_limited += m.rate_limited;
            t.expired += m.expired;
        }
        self.out
    }

    /// A random online node other than the bootnode, honest only when `honest`.
    fn pick(&mut self, honest: bool) -> Option<usize> {
        let live: Vec<usize> = (self.info.iter().enumerate().skip(1))
            .filter(|(_, i)| i.online && !(honest && i.garbage))
            .map(|(k, _)| k)
            .collect();
        if live.is_empty() {
            return None;
        }
        live.get(self.rng.random_range(0..live.len())).copied()
    }

    fn churn(&mut self) {
        if let Some(k) = self.pick(false) {
            self.fleet.remove(k);
            self.net.set_online(k, false);
            if let Some(i) = self.info.get_mut(k) {
                i.online = false;
            }
            self.out.left += 1;
        }
        let g = self.is_garbage_slot();
        self.join(g);
    }

    fn sample(&mut self) {
        let net = &self.net;
        self.fifo.prune(|i| i < net.len() && net.is_online(i));
        let now = self.net.now();
        let garbage: HashSet<NodeId> = (self.info.iter())
            .filter(|i| i.garbage)
            .map(|i| i.node.id)
            .collect();
        let gone: HashSet<NodeId> = (self.info.iter())
            .filter(|i| !i.online)
            .map(|i| i.node.id)
            .collect();
        let (mut n, mut entries, mut buckets) = (0usize, 0usize, 0usize);
        let (mut min_e, mut min_b) = (usize::MAX, usize::MAX);
        let (mut bad, mut dead) = (0usize, 0usize);
        let mut online = 0;
        for (k, p) in self.fleet.online() {
            online += 1;
            let Some(info) = self.info.get(k) else {
                continue;
            };
            if info.garbage || now < info.joined + SETTLE {
                continue;
            }
            let t = p.table();
            let b = (0..=256u32).filter(|d| t.bucket_len(*d) > 0).count();
            for e in t.entries() {
                bad += usize::from(garbage.contains(&e.node.id));
                dead += usize::from(gone.contains(&e.node.id));
            }
            n += 1;
            entries += t.len();
            buckets += b;
            min_e = min_e.min(t.len());
            min_b = min_b.min(b);
        }
        let avg = |x: usize| if n == 0 { 0.0 } else { x as f64 / n as f64 };
        let share = |x: usize| {
            if entries == 0 {
                0.0
            } else {
                x as f64 / entries as f64
            }
        };
        self.out.fill.push(FillRow {
            t: now,
            online,
            sampled: n,
            avg_entries: avg(entries),
            min_entries: if n == 0 { 0 } else { min_e },
            avg_buckets: avg(buckets),
            min_buckets: if n == 0 { 0 } else { min_b },
            garbage_share: share(bad),
            dead_share: share(dead),
        });
    }

    fn start_lookup(&mut self) {
        let Some(node) = self.pick(true) else {
            return;
        };
        let mut t = [0u8; 64];
        self.rng.fill_bytes(&mut t);
        let target = NodeId(t);
        let ids: Vec<(NodeId, [u8; 32])> = (self.info.iter().enumerate())
            .filter(|(k, i)| i.online && *k != node)
            .map(|(_, i)| (i.node.id, i.hash))
            .collect();
        let truth = true_closest(&ids, &target, discovery::lookup::K);
        let now = self.net.now();
        let (s, r) = self.fleet.node_packets(node);
        let at = self.base + now;
        let (fleet, mut wire) = self.split();
        let Some(id) = fleet.start_lookup(&mut wire, at, node, target) else {
            return;
        };
        self.out.lookups.push(LookupRow {
            start: now,
            node,
            done: None,
        });
        self.running.push(Running {
            row: self.out.lookups.len() - 1,
            node,
            id,
            packets: s + r,
            truth,
        });
    }

    /// Moves finished lookups into their rows.
    fn collect(&mut self) {
        if self.running.is_empty() {
            return;
        }
        let mut keep = Vec::with_capacity(self.running.len());
        for r in std::mem::take(&mut self.running) {
            let Some(res) = self.fleet.take_result(r.node, r.id) else {
                if self.info.get(r.node).is_some_and(|i| i.online) {
                    keep.push(r);
                }
                continue;
            };
            let Some(row) = self.out.lookups.get_mut(r.row) else {
                continue;
            };
            let got: HashSet<NodeId> = res.nodes.iter().map(|n| n.id).collect();
            let found = r.truth.iter().filter(|id| got.contains(id)).count();
            let garbage = (res.nodes.iter())
                .filter(|n| self.garbage.contains(&n.id))
                .count();
            row.done = Some(LookupDone {
                took: res.at.saturating_duration_since(self.base + row.start),
                queries: res.queries,
                rounds: res.rounds,
                packets: (res.packets.0 + res.packets.1).saturating_sub(r.packets),
                found,
                returned: res.nodes.len(),
                garbage,
            });
        }
        self.running = keep;
    }
}
