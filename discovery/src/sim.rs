//! An in-memory packet network of [`Protocol`]s under virtual time, for tests and benchmarks.
//!
//! Node 0 is the bootnode; every other node knows only it. Each node gets its own /24
//! (`10.a.b.1`) so the table IP limits do not interfere. Datagrams arrive after a fixed
//! latency; everything is seeded, so runs are reproducible.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;
use secp256k1::SecretKey;

use crate::config::Config;
use crate::node::{Node, NodeId, distance_cmp};
use crate::proto::{Event, LookupId, Protocol};

enum Action {
    Deliver {
        to: usize,
        from: SocketAddr,
        data: Vec<u8>,
    },
    Timer(usize),
}

struct Scheduled {
    at: Instant,
    seq: u64,
    action: Action,
}

impl PartialEq for Scheduled {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, o: &Self) -> Ordering {
        // Reversed: BinaryHeap is a max-heap and we want the earliest first.
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

/// The simulated network.
pub struct Sim {
    /// The nodes; index 0 is the bootnode.
    pub nodes: Vec<Protocol>,
    addrs: Vec<SocketAddr>,
    by_addr: HashMap<SocketAddr, usize>,
    queue: BinaryHeap<Scheduled>,
    timers: Vec<Option<Instant>>,
    seq: u64,
    now: Instant,
    latency: Duration,
    packets: u64,
    done: HashMap<(usize, LookupId), Vec<Node>>,
}

impl Sim {
    /// `n` nodes; node `i` starts (runs its first refresh) at `i * stagger`.
    /// `n` must be at least 1.
    pub fn new(n: usize, seed: u64, stagger: Duration, config: impl Fn(usize) -> Config) -> Sim {
        let n = n.max(1);
        let mut rng = StdRng::seed_from_u64(seed);
        let start = Instant::now();
        let keys: Vec<SecretKey> = (0..n).map(|_| SecretKey::new(&mut rng)).collect();
        let addrs: Vec<SocketAddr> = (0..n)
            .map(|i| {
                SocketAddr::new(
                    IpAddr::V4(Ipv4Addr::new(10, (i >> 8) as u8, i as u8, 1)),
                    30303,
                )
            })
            .collect();
        let boot = Node {
            id: NodeId::from_secret_key(&keys[0]), // ok: node index < n, fixed at construction
            ip: addrs[0].ip(),                     // ok: node index < n, fixed at construction
            udp: 30303,
            tcp: 0,
        };
        let mut sim = Sim {
            nodes: Vec::with_capacity(n),
            by_addr: addrs.iter().enumerate().map(|(i, a)| (*a, i)).collect(),
            addrs,
            queue: BinaryHeap::new(),
            timers: vec![None; n],
            seq: 0,
            now: start,
            latency: Duration::from_millis(10),
            packets: 0,
            done: HashMap::new(),
        };
        for (i, key) in keys.into_iter().enumerate() {
            let mut c = config(i);
            if i > 0 {
                c.bootnodes = vec![boot];
            }
            let at = start + stagger * i as u32;
            let p = Protocol::new(
                key,
                sim.addrs[i], // ok: node index < n, fixed at construction
                c,
                at,
                1_700_000_000,
                StdRng::seed_from_u64(seed ^ i as u64),
                1,
            );
            sim.nodes
                .push(p.unwrap_or_else(|e| panic!("node {i}: {e}"))); // ok: test support; a fresh key and IPv4 endpoint always fit a record
            sim.schedule_timer(i);
        }
        sim
    }

    /// Current virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Datagrams sent so far.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// The one-way latency.
    pub fn latency(&self) -> Duration {
        self.latency
    }

    fn push(&mut self, at: Instant, action: Action) {
        self.seq += 1;
        self.queue.push(Scheduled {
            at,
            seq: self.seq,
            action,
        });
    }

    fn schedule_timer(&mut self, i: usize) {
        let Some(t) = self.nodes.get(i).and_then(|n| n.next_timeout()) else {
            return;
        };
        if self.timers.get(i).copied().flatten().is_none_or(|s| t < s) {
            self.timers[i] = Some(t); // ok: node index < n, fixed at construction
            self.push(t, Action::Timer(i));
        }
    }

    fn flush(&mut self, i: usize) {
        let from = self.addrs[i]; // ok: node index < n, fixed at construction
        let node = &mut self.nodes[i]; // ok: node index < n, fixed at construction
        let transmits: Vec<_> = std::iter::from_fn(|| node.poll_transmit()).collect();
        let events: Vec<_> = std::iter::from_fn(|| node.poll_event()).collect();
        for t in transmits {
            self.packets += 1;
            if let Some(&to) = self.by_addr.get(&t.to) {
                let data = t.data;
                self.push(self.now + self.latency, Action::Deliver { to, from, data });
            }
        }
        for e in events {
            if let Event::LookupDone { id, nodes, .. } = e {
                self.done.insert((i, id), nodes);
            }
        }
        self.schedule_timer(i);
    }

    /// Runs until virtual time `end`.
    pub fn run_until(&mut self, end: Instant) {
        while let Some(next) = self.queue.peek() {
            if next.at > end {
                break;
            }
            let Some(s) = self.queue.pop() else { break };
            self.now = self.now.max(s.at);
            match s.action {
                Action::Deliver { to, from, data } => {
                    self.nodes[to].handle_packet(self.now, from, &data); // ok: node index < n, fixed at construction
                    self.flush(to);
                }
                Action::Timer(i) => {
                    let timer = &mut self.timers[i]; // ok: node index < n, fixed at construction
                    if *timer != Some(s.at) {
                        continue; // superseded by an earlier timer
                    }
                    *timer = None;
                    let node = &mut self.nodes[i]; // ok: node index < n, fixed at construction
                    if node.next_timeout().is_some_and(|t| t <= self.now) {
                        node.handle_timeout(self.now);
                    }
                    self.flush(i);
                }
            }
        }
        self.now = self.now.max(end);
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        self.run_until(self.now + d);
    }

    /// Starts a refresh on every node.
    pub fn refresh_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.nodes[i].refresh(self.now); // ok: node index < n, fixed at construction
            self.flush(i);
        }
    }

    /// Starts a lookup on node `from`.
    pub fn start_lookup(&mut self, from: usize, target: NodeId) -> LookupId {
        let id = self.nodes[from].lookup(self.now, target); // ok: node index < n, fixed at construction
        self.flush(from);
        id
    }

    /// The result of a finished lookup.
    pub fn lookup_result(&mut self, from: usize, id: LookupId) -> Option<Vec<Node>> {
        self.done.remove(&(from, id))
    }

    /// Runs a lookup to completion (at most a minute of virtual time) and returns its
    /// result and duration.
    pub fn lookup(&mut self, from: usize, target: NodeId) -> Option<(Vec<Node>, Duration)> {
        let start = self.now;
        let id = self.start_lookup(from, target);
        for _ in 0..600 {
            if let Some(r) = self.lookup_result(from, id) {
                return Some((r, self.now - start));
            }
            self.run_for(Duration::from_millis(100));
        }
        None
    }

    /// The true `n` closest node ids to `target`, leaving out node `except`.
    pub fn closest(&self, target: &NodeId, n: usize, except: usize) -> Vec<NodeId> {
        let t = target.hash();
        let mut all: Vec<(NodeId, [u8; 32])> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != except)
            .map(|(_, p)| (p.local_id(), p.local_id().hash()))
            .collect();
        all.sort_by(|a, b| distance_cmp(&t, &a.1, &b.1));
        all.into_iter().take(n).map(|(id, _)| id).collect()
    }
}
