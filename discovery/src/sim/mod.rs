//! Simulating many [`Protocol`]s in virtual time, for tests, benchmarks and `devp2p sim`.
//!
//! - [`Fleet`] holds the nodes and drives each over a [`Wire`]: whatever network model
//!   carries its datagrams and wake-ups (the root crate's `sim::net::Net` for
//!   `devp2p sim discovery`: regions, bandwidth, loss, churn).
//! - [`Sim`] is the small model used by this crate's tests and benchmark: node 0 is the
//!   bootnode and every other node knows only it; each node has its own /24
//!   (`10.a.b.1`) so the table IP limits do not interfere; datagrams arrive after a fixed
//!   latency; everything is seeded, so runs are reproducible.
//! - [`FastCrypto`] replaces secp256k1 packet signatures with a keyed hash so that
//!   thousands of nodes run in minutes; see its docs for what that does (and does not)
//!   change.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;
use secp256k1::SecretKey;

use crate::config::Config;
use crate::node::{Node, NodeId, distance_cmp};
use crate::proto::{LookupId, Protocol};

mod crypto;
mod fleet;

pub use crypto::{FastCrypto, Registry};
pub use fleet::{Fleet, LookupResult, Wire};

/// The true `n` closest of `ids` to `target`, by the discv4 distance of their hashes.
/// `ids` pairs each id with its `keccak256` hash (computed once by the caller).
pub fn true_closest(ids: &[(NodeId, [u8; 32])], target: &NodeId, n: usize) -> Vec<NodeId> {
    let t = target.hash();
    let mut all: Vec<&(NodeId, [u8; 32])> = ids.iter().collect();
    let n = n.min(all.len());
    if n == 0 {
        return Vec::new();
    }
    all.select_nth_unstable_by(n - 1, |a, b| distance_cmp(&t, &a.1, &b.1));
    all.truncate(n);
    all.sort_by(|a, b| distance_cmp(&t, &a.1, &b.1));
    all.into_iter().map(|(id, _)| *id).collect()
}

enum Action {
    Deliver {
        to: usize,
        from: usize,
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

/// A fixed-latency [`Wire`]: an event queue in time order.
struct Queue {
    heap: BinaryHeap<Scheduled>,
    seq: u64,
    now: Instant,
    latency: Duration,
}

impl Queue {
    fn push(&mut self, at: Instant, action: Action) {
        self.seq += 1;
        self.heap.push(Scheduled {
            at,
            seq: self.seq,
            action,
        });
    }
}

impl Wire for Queue {
    fn send(&mut self, from: usize, to: usize, data: Vec<u8>) {
        let at = self.now + self.latency;
        self.push(at, Action::Deliver { to, from, data });
    }

    fn wake(&mut self, node: usize, at: Instant) {
        self.push(at, Action::Timer(node));
    }
}

/// The fixed-latency simulated network. See the [module docs](self).
pub struct Sim {
    fleet: Fleet,
    queue: Queue,
}

impl Sim {
    /// `n` nodes; node `i` starts (runs its first refresh) at `i * stagger`.
    /// `n` must be at least 1.
    pub fn new(n: usize, seed: u64, stagger: Duration, config: impl Fn(usize) -> Config) -> Sim {
        let n = n.max(1);
        let mut rng = StdRng::seed_from_u64(seed);
        let start = Instant::now();
        let keys: Vec<SecretKey> = (0..n).map(|_| SecretKey::new(&mut rng)).collect();
        let addr = |i: usize| {
            SocketAddr::new(
                IpAddr::V4(Ipv4Addr::new(10, (i >> 8) as u8, i as u8, 1)),
                30303,
            )
        };
        let boot = Node {
            id: NodeId::from_secret_key(&keys[0]), // ok: n >= 1
            ip: addr(0).ip(),
            udp: 30303,
            tcp: 0,
        };
        let mut sim = Sim {
            fleet: Fleet::new(),
            queue: Queue {
                heap: BinaryHeap::new(),
                seq: 0,
                now: start,
                latency: Duration::from_millis(10),
            },
        };
        for (i, key) in keys.into_iter().enumerate() {
            let mut c = config(i);
            if i > 0 {
                c.bootnodes = vec![boot];
            }
            let at = start + stagger * i as u32;
            let p = Protocol::new(
                key,
                addr(i),
                c,
                at,
                1_700_000_000,
                StdRng::seed_from_u64(seed ^ i as u64),
                1,
            );
            let p = p.unwrap_or_else(|e| panic!("node {i}: {e}")); // ok: test support; a fresh key and IPv4 endpoint always fit a record
            sim.fleet.add(&mut sim.queue, addr(i), p);
        }
        sim
    }

    /// The nodes; index 0 is the bootnode.
    pub fn nodes(&self) -> impl Iterator<Item = &Protocol> {
        self.fleet.online().map(|(_, p)| p)
    }

    /// Node `i`.
    pub fn node(&self, i: usize) -> Option<&Protocol> {
        self.fleet.get(i)
    }

    /// Current virtual time.
    pub fn now(&self) -> Instant {
        self.queue.now
    }

    /// Datagrams sent so far.
    pub fn packets(&self) -> u64 {
        self.fleet.packets()
    }

    /// The one-way latency.
    pub fn latency(&self) -> Duration {
        self.queue.latency
    }

    /// Runs until virtual time `end`.
    pub fn run_until(&mut self, end: Instant) {
        while let Some(next) = self.queue.heap.peek() {
            if next.at > end {
                break;
            }
            let Some(s) = self.queue.heap.pop() else {
                break;
            };
            self.queue.now = self.queue.now.max(s.at);
            let now = self.queue.now;
            match s.action {
                Action::Deliver { to, from, data } => {
                    self.fleet.deliver(&mut self.queue, now, from, to, &data);
                }
                Action::Timer(i) => self.fleet.timer(&mut self.queue, now, i, s.at),
            }
        }
        self.queue.now = self.queue.now.max(end);
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        self.run_until(self.queue.now + d);
    }

    /// Starts a refresh on every node.
    pub fn refresh_all(&mut self) {
        let now = self.queue.now;
        for i in 0..self.fleet.len() {
            if let Some(p) = self.fleet.get_mut(i) {
                p.refresh(now);
                self.fleet.flush(&mut self.queue, now, i);
            }
        }
    }

    /// Starts a lookup on node `from`.
    pub fn start_lookup(&mut self, from: usize, target: NodeId) -> Option<LookupId> {
        let now = self.queue.now;
        self.fleet.start_lookup(&mut self.queue, now, from, target)
    }

    /// The result of a finished lookup.
    pub fn lookup_result(&mut self, from: usize, id: LookupId) -> Option<LookupResult> {
        self.fleet.take_result(from, id)
    }

    /// Runs a lookup to completion (at most a minute of virtual time) and returns its
    /// result and duration.
    pub fn lookup(&mut self, from: usize, target: NodeId) -> Option<(Vec<Node>, Duration)> {
        let start = self.queue.now;
        let id = self.start_lookup(from, target)?;
        for _ in 0..600 {
            if let Some(r) = self.lookup_result(from, id) {
                return Some((r.nodes, r.at - start));
            }
            self.run_for(Duration::from_millis(100));
        }
        None
    }

    /// The true `n` closest node ids to `target`, leaving out node `except`.
    pub fn closest(&self, target: &NodeId, n: usize, except: usize) -> Vec<NodeId> {
        let ids: Vec<(NodeId, [u8; 32])> = (self.fleet.online())
            .filter(|(i, _)| *i != except)
            .map(|(_, p)| (p.local_id(), p.local_id().hash()))
            .collect();
        true_closest(&ids, target, n)
    }
}
