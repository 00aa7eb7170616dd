//! A virtual-time network: nodes with a region and an upload link, messages that queue
//! behind the sender's link, travel the one-way latency between regions, and may be lost.
//!
//! The model, per message of `size` bytes from `a` to `b` sent at virtual time `now`:
//!
//! - it departs when `a`'s upload link is free (`max(now, link_free)`), occupies the link
//!   for `size / upload(a)` seconds, and arrives at `departure + size / upload(a) +
//!   one_way(region(a), region(b))`;
//! - messages between one pair of nodes arrive in the order they were sent (devp2p runs
//!   over TCP, and packets of one path rarely overtake each other): a message whose own
//!   jitter would bring it in before an earlier one arrives with that one instead;
//! - it is lost with probability [`Config::loss`] (decided when sent; it still uses the
//!   link), or when either end is offline at delivery time;
//! - download links are not modelled: a home connection's download is typically several
//!   times its upload, so the sender's upload is the bottleneck of a one-to-many gossip.
//!
//! Events ([`Event`]) come out of [`Net::next`] in time order, ties broken by insertion
//! sequence. A single [`StdRng`] seeded from the constructor's seed is the only source of
//! randomness, so the same seed and the same calls give the same events.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::latency::{RegionId, Regions};

/// Index of a node in a [`Net`], in the order of [`Net::add_node`].
pub type NodeIdx = usize;

/// Network parameters.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where nodes live and the latency between them.
    pub regions: Regions,
    /// Upload bandwidth range in bytes per second; each node draws log-uniformly from
    /// `[min, max]`. Default: 10–100 Mbit/s (1.25–12.5 MB/s), the span of residential
    /// fibre/cable uplinks at the low end and cloud VPS links at the high end, where most
    /// Ethereum nodes run.
    pub upload: (u64, u64),
    /// Probability that a message is lost. Default 0: devp2p runs over TCP, where loss
    /// shows up as delay, not as a missing message; set it to model broken connections.
    pub loss: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            regions: Regions::default_world(),
            upload: (10_000_000 / 8, 100_000_000 / 8),
            loss: 0.0,
        }
    }
}

/// Counters of one node's traffic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Bytes handed to [`Net::send`] by this node (lost ones included: they used the link).
    pub bytes_sent: u64,
    /// Messages handed to [`Net::send`] by this node.
    pub msgs_sent: u64,
    /// Bytes delivered to this node.
    pub bytes_received: u64,
    /// Messages delivered to this node.
    pub msgs_received: u64,
}

/// Something that happened, returned by [`Net::next`].
#[derive(Debug, Clone, PartialEq)]
pub enum Event<M> {
    /// A message arrived.
    Deliver {
        /// Sender.
        from: NodeIdx,
        /// Receiver.
        to: NodeIdx,
        /// The message.
        msg: M,
        /// Virtual time of arrival.
        at: Duration,
    },
    /// A timer set with [`Net::schedule`] fired (also for offline nodes: the scenario
    /// decides what an offline node's timer means).
    Timer {
        /// The node that set it.
        node: NodeIdx,
        /// The caller's token.
        token: u64,
        /// Virtual time it fired.
        at: Duration,
    },
}

impl<M> Event<M> {
    /// The virtual time of the event.
    pub fn at(&self) -> Duration {
        match self {
            Event::Deliver { at, .. } | Event::Timer { at, .. } => *at,
        }
    }
}

#[derive(Debug)]
struct Node {
    region: RegionId,
    /// Upload bandwidth, bytes per second (at least 1).
    upload: u64,
    /// When the upload link has sent everything queued so far.
    link_free: Duration,
    online: bool,
    stats: LinkStats,
}

enum Pending<M> {
    Deliver {
        from: NodeIdx,
        to: NodeIdx,
        size: u32,
        msg: M,
    },
    Timer {
        node: NodeIdx,
        token: u64,
    },
}

/// The network. `M` is the scenario's message type.
pub struct Net<M> {
    cfg: Config,
    rng: StdRng,
    now: Duration,
    nodes: Vec<Node>,
    /// (time, sequence) → slot in `pending`; the sequence breaks ties by insertion order.
    queue: BinaryHeap<Reverse<(Duration, u64, usize)>>,
    pending: Vec<Option<Pending<M>>>,
    free: Vec<usize>,
    seq: u64,
    /// Latest arrival time per (sender, receiver) still in the future: a later message of
    /// the pair arrives no earlier. Entries in the past constrain nothing and are pruned.
    last_arrival: HashMap<(NodeIdx, NodeIdx), Duration>,
}

/// Pairs remembered before the ones whose last arrival has passed are pruned.
const PRUNE_PAIRS_AT: usize = 1 << 16;

impl<M> std::fmt::Debug for Net<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Net")
            .field("now", &self.now)
            .field("nodes", &self.nodes.len())
            .field("queued", &self.queue.len())
            .finish()
    }
}

impl<M> Net<M> {
    /// An empty network at time zero.
    pub fn new(seed: u64, cfg: Config) -> Self {
        Net {
            cfg,
            rng: StdRng::seed_from_u64(seed),
            now: Duration::ZERO,
            nodes: Vec::new(),
            queue: BinaryHeap::new(),
            pending: Vec::new(),
            free: Vec::new(),
            last_arrival: HashMap::new(),
            seq: 0,
        }
    }

    /// Adds an online node with a region drawn by share and an upload bandwidth drawn from
    /// [`Config::upload`].
    pub fn add_node(&mut self) -> NodeIdx {
        let region = self.cfg.regions.assign(&mut self.rng);
        let (lo, hi) = self.cfg.upload;
        let (lo, hi) = (lo.max(1) as f64, hi.max(lo).max(1) as f64);
        // Log-uniform: as many nodes between 10 and 20 Mbit/s as between 50 and 100.
        let upload = (lo * (hi / lo).powf(self.rng.random::<f64>())) as u64;
        self.add_node_with(region, upload)
    }

    /// Adds an online node in `region` with `upload` bytes per second (for tests and for
    /// scenarios that pick these themselves).
    pub fn add_node_with(&mut self, region: RegionId, upload: u64) -> NodeIdx {
        self.nodes.push(Node {
            region,
            upload: upload.max(1),
            link_free: Duration::ZERO,
            online: true,
            stats: LinkStats::default(),
        });
        self.nodes.len() - 1
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True if there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Takes a node offline or brings it back. Messages to or from an offline node are
    /// dropped at delivery.
    pub fn set_online(&mut self, n: NodeIdx, online: bool) {
        self.nodes[n].online = online;
    }

    /// Whether `n` is online.
    pub fn is_online(&self, n: NodeIdx) -> bool {
        self.nodes[n].online
    }

    /// The region of `n`.
    pub fn region(&self, n: NodeIdx) -> RegionId {
        self.nodes[n].region
    }

    /// The upload bandwidth of `n`, bytes per second.
    pub fn upload(&self, n: NodeIdx) -> u64 {
        self.nodes[n].upload
    }

    /// The network's configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Virtual time since the start: the time of the last event returned by [`Net::next`].
    pub fn now(&self) -> Duration {
        self.now
    }

    /// The network's random number generator, for scenarios that need randomness (so that
    /// one seed determines everything).
    pub fn rng(&mut self) -> &mut StdRng {
        &mut self.rng
    }

    /// Sends `msg` of `size_bytes` from `from` to `to` now. See the module docs for timing
    /// and loss. A message from an offline node is not sent.
    pub fn send(&mut self, from: NodeIdx, to: NodeIdx, size_bytes: usize, msg: M) {
        self.send_after(from, to, Duration::ZERO, size_bytes, msg);
    }

    /// Like [`Net::send`], but the message is handed to the link `delay` from now (e.g.
    /// after a processing delay); the link is reserved in call order.
    pub fn send_after(
        &mut self,
        from: NodeIdx,
        to: NodeIdx,
        delay: Duration,
        size_bytes: usize,
        msg: M,
    ) {
        if !self.nodes[from].online {
            return;
        }
        let ready = self.now + delay;
        let node = &mut self.nodes[from];
        let departure = node.link_free.max(ready);
        let on_wire = Duration::from_secs_f64(size_bytes as f64 / node.upload as f64);
        node.link_free = departure + on_wire;
        node.stats.bytes_sent += size_bytes as u64;
        node.stats.msgs_sent += 1;
        let link_free = node.link_free;
        let (ra, rb) = (node.region, self.nodes[to].region);
        let latency = self.cfg.regions.one_way(ra, rb, &mut self.rng);
        let lost = self.cfg.loss > 0.0 && self.rng.random::<f64>() < self.cfg.loss;
        if !lost {
            let mut at = link_free + latency;
            if self.last_arrival.len() >= PRUNE_PAIRS_AT {
                let now = self.now;
                self.last_arrival.retain(|_, t| *t > now);
            }
            let last = self.last_arrival.entry((from, to)).or_default();
            at = at.max(*last);
            *last = at;
            let size = u32::try_from(size_bytes).unwrap_or(u32::MAX);
            let p = Pending::Deliver {
                from,
                to,
                size,
                msg,
            };
            self.push(at, p);
        }
    }

    /// Sets a timer for `node` at absolute virtual time `at` (now, if `at` is in the past).
    pub fn schedule(&mut self, node: NodeIdx, at: Duration, token: u64) {
        let at = at.max(self.now);
        self.push(at, Pending::Timer { node, token });
    }

    /// Traffic counters of `n`.
    pub fn stats(&self, n: NodeIdx) -> &LinkStats {
        &self.nodes[n].stats
    }

    /// Number of events still queued.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    fn push(&mut self, at: Duration, p: Pending<M>) {
        let slot = match self.free.pop() {
            Some(s) => {
                self.pending[s] = Some(p);
                s
            }
            None => {
                self.pending.push(Some(p));
                self.pending.len() - 1
            }
        };
        self.queue.push(Reverse((at, self.seq, slot)));
        self.seq += 1;
    }
}

/// Events in time order ([`Net::next`] is the API; an iterator so that a scenario can
/// also `for ev in &mut net`).
impl<M> Iterator for Net<M> {
    type Item = Event<M>;

    /// The next event in time order, or `None` when nothing is queued.
    fn next(&mut self) -> Option<Event<M>> {
        while let Some(Reverse((at, _, slot))) = self.queue.pop() {
            let pending = self.pending[slot].take();
            self.free.push(slot);
            self.now = at;
            match pending {
                Some(Pending::Timer { node, token }) => {
                    return Some(Event::Timer { node, token, at });
                }
                Some(Pending::Deliver {
                    from,
                    to,
                    size,
                    msg,
                }) => {
                    if !self.nodes[from].online || !self.nodes[to].online {
                        continue;
                    }
                    let stats = &mut self.nodes[to].stats;
                    stats.msgs_received += 1;
                    stats.bytes_received += u64::from(size);
                    return Some(Event::Deliver { from, to, msg, at });
                }
                None => continue,
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Back-to-back messages of one pair keep their order through the latency jitter (a
    /// TCP stream; discovery's Pong-then-FindNode depends on it), while another pair's
    /// are not held behind them.
    #[test]
    fn a_pair_receives_in_sending_order() {
        let mut net: Net<u32> = Net::new(3, Config::default());
        for _ in 0..3 {
            net.add_node();
        }
        for i in 0..2000 {
            net.send(0, 1, 1, i);
            net.send(2, 1, 1, 10_000 + i);
        }
        let mut got = (Vec::new(), Vec::new());
        for ev in net.by_ref() {
            if let Event::Deliver { from, msg, .. } = ev {
                if from == 0 {
                    got.0.push(msg)
                } else {
                    got.1.push(msg)
                }
            }
        }
        assert_eq!(got.0, (0..2000).collect::<Vec<_>>());
        assert_eq!(got.1, (10_000..12_000).collect::<Vec<_>>());
    }

    /// Two nodes in a uniform 100 ms-RTT world, 1 MB/s upload each.
    fn pair(loss: f64) -> Net<u32> {
        let cfg = Config {
            regions: Regions::uniform(100 * MS),
            upload: (1_000_000, 1_000_000),
            loss,
        };
        let mut net = Net::new(7, cfg);
        net.add_node();
        net.add_node();
        net
    }

    fn drain(net: &mut Net<u32>) -> Vec<Event<u32>> {
        std::iter::from_fn(|| net.next()).collect()
    }

    #[test]
    fn same_seed_same_events() {
        let run = |seed| {
            let mut net: Net<u32> = Net::new(seed, Config::default());
            for _ in 0..50 {
                net.add_node();
            }
            for i in 0..50 {
                for j in 0..50 {
                    if i != j {
                        net.send(i, j, 1000 + i * 10, (i * 50 + j) as u32);
                    }
                }
                net.schedule(i, 3 * MS, i as u64);
            }
            drain(&mut net)
        };
        let a = run(1);
        assert_eq!(a.len(), 50 * 49 + 50);
        assert_eq!(a, run(1));
        assert_ne!(a, run(2), "another seed gives other regions and jitter");
        assert!(a.windows(2).all(|w| w[0].at() <= w[1].at()), "time order");
    }

    #[test]
    fn messages_queue_behind_the_upload_link() {
        let mut net = pair(0.0);
        // 100 kB at 1 MB/s = 100 ms on the wire each, one-way latency 50..55 ms.
        net.send(0, 1, 100_000, 1);
        net.send(0, 1, 100_000, 2);
        let ev = drain(&mut net);
        let at: Vec<_> = ev.iter().map(|e| e.at()).collect();
        assert!(at[0] >= 150 * MS && at[0] <= 156 * MS, "{at:?}");
        assert!(
            at[1] >= 250 * MS && at[1] <= 256 * MS,
            "second waits: {at:?}"
        );
        assert_eq!(net.stats(0).bytes_sent, 200_000);
        assert_eq!(net.stats(1).bytes_received, 200_000);
        assert_eq!(net.stats(1).msgs_received, 2);
        // The other direction has its own link: not delayed by node 0's queue.
        net.send(1, 0, 1_000, 3);
        let t = net.now();
        let e = net.next().unwrap();
        assert!(e.at() - t <= 57 * MS, "{:?}", e.at() - t);
    }

    #[test]
    fn send_after_waits_for_processing() {
        let mut net = pair(0.0);
        net.send_after(0, 1, 200 * MS, 1_000, 1);
        let e = net.next().unwrap();
        assert!(e.at() >= 251 * MS && e.at() <= 257 * MS, "{:?}", e.at());
    }

    #[test]
    fn loss_drops_about_its_share() {
        let mut net = pair(0.25);
        for i in 0..4000 {
            net.send(0, 1, 10, i);
        }
        let n = drain(&mut net).len();
        assert!(
            (2800..3200).contains(&n),
            "{n} of 4000 delivered at 25% loss"
        );
        assert_eq!(
            net.stats(0).msgs_sent,
            4000,
            "lost messages still used the link"
        );
    }

    #[test]
    fn offline_nodes_neither_send_nor_receive() {
        let mut net = pair(0.0);
        net.send(0, 1, 10, 1);
        net.set_online(1, false);
        assert!(drain(&mut net).is_empty(), "receiver offline at delivery");
        net.set_online(1, true);
        net.set_online(0, false);
        net.send(0, 1, 10, 2);
        assert!(drain(&mut net).is_empty(), "offline sender sends nothing");
        assert_eq!(net.stats(0).msgs_sent, 1);
        // In flight while the sender goes offline: dropped too.
        net.set_online(0, true);
        net.send(0, 1, 10, 3);
        net.set_online(0, false);
        assert!(drain(&mut net).is_empty());
        // Timers still fire.
        net.schedule(0, Duration::from_secs(1), 9);
        assert!(matches!(
            net.next(),
            Some(Event::Timer {
                node: 0,
                token: 9,
                ..
            })
        ));
    }

    #[test]
    fn ties_keep_insertion_order() {
        let mut net = pair(0.0);
        for t in 0..10 {
            net.schedule(t % 2, 5 * MS, t as u64);
        }
        let tokens: Vec<_> = drain(&mut net)
            .into_iter()
            .map(|e| match e {
                Event::Timer { token, .. } => token,
                Event::Deliver { .. } => unreachable!(),
            })
            .collect();
        assert_eq!(tokens, (0..10).collect::<Vec<_>>());
    }
}
