//! Dial scheduling, sans-IO: which nodes to dial now, given the connected peers, the dials
//! in flight, the static nodes and the recent history. Time is passed in.
//!
//! Rules (go-ethereum `p2p/dial.go`): static nodes are always kept connected, redialled
//! after a failure with exponential backoff; dynamic dials from discovery fill the
//! outbound slots (`max_peers / dial_ratio`); at most `max_dials` dials run at once; a
//! node that failed or left is not dialled again for `history_ttl`; we never dial
//! ourselves or a node outside `netrestrict`.

use discovery::{NetRestrict, Node, NodeId};
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};
use tracing::debug;

/// Most static nodes: an operator pins a few dozen; each holds a redial timer and may be
/// added over the admin API.
pub const MAX_STATIC: usize = 256;

/// Dial limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Most dynamic outbound peers (geth: `MaxPeers / DialRatio`).
    pub max_dynamic: usize,
    /// Most dials in flight at once. Default 16 (geth `maxActiveDialTasks`).
    pub max_dials: usize,
    /// How long a node that failed or left is not dialled again. Default 30 s (geth
    /// `dialHistoryExpiration`).
    pub history_ttl: Duration,
    /// First static-node redial delay; doubles per failure up to `static_backoff_max`.
    pub static_backoff: Duration,
    /// Largest static-node redial delay.
    pub static_backoff_max: Duration,
    /// Most discovery candidates kept waiting for a slot.
    pub max_candidates: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_dynamic: 16,
            max_dials: 16,
            history_ttl: Duration::from_secs(30),
            static_backoff: Duration::from_secs(1),
            static_backoff_max: Duration::from_secs(30),
            max_candidates: 64,
        }
    }
}

/// Why a dial was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A configured static node.
    Static,
    /// A node found by discovery.
    Dynamic,
}

#[derive(Debug)]
struct StaticNode {
    node: Node,
    failures: u32,
    next: Instant,
}

/// The dial scheduler's state.
#[derive(Debug)]
pub struct Scheduler {
    self_id: NodeId,
    limits: Limits,
    netrestrict: Option<NetRestrict>,
    statics: HashMap<NodeId, StaticNode>,
    in_flight: HashMap<NodeId, Kind>,
    history: HashMap<NodeId, Instant>,
    candidates: VecDeque<Node>,
    connected: HashSet<NodeId>,
    dynamic_out: usize,
}

impl Scheduler {
    /// A scheduler for node `self_id`.
    pub fn new(self_id: NodeId, limits: Limits, netrestrict: Option<NetRestrict>) -> Self {
        Self {
            self_id,
            limits,
            netrestrict,
            statics: HashMap::new(),
            in_flight: HashMap::new(),
            history: HashMap::new(),
            candidates: VecDeque::new(),
            connected: HashSet::new(),
            dynamic_out: 0,
        }
    }

    fn allowed(&self, node: &Node) -> bool {
        node.id != self.self_id
            && node.tcp != 0
            && self
                .netrestrict
                .as_ref()
                .is_none_or(|r| r.contains(node.ip))
    }

    /// Adds a static node (kept connected). Returns false for ourselves, a restricted node,
    /// or a new node when [`MAX_STATIC`] are kept already.
    pub fn add_static(&mut self, node: Node, now: Instant) -> bool {
        if !self.allowed(&node) {
            return false;
        }
        if self.statics.len() >= MAX_STATIC && !self.statics.contains_key(&node.id) {
            debug!(target: "p2p", max = MAX_STATIC, "static node set full");
            return false;
        }
        self.statics.insert(
            node.id,
            StaticNode {
                node,
                failures: 0,
                next: now,
            },
        );
        true
    }

    /// Stops keeping `id` connected.
    pub fn remove_static(&mut self, id: &NodeId) {
        self.statics.remove(id);
    }

    /// Whether `id` is a static node.
    pub fn is_static(&self, id: &NodeId) -> bool {
        self.statics.contains_key(id)
    }

    /// Offers a discovery candidate; kept only while it could be dialled.
    pub fn offer(&mut self, node: Node, now: Instant) {
        if self.candidates.len() >= self.limits.max_candidates || !self.dialable(&node, now) {
            return;
        }
        self.candidates.push_back(node);
    }

    /// Whether more candidates are wanted now.
    pub fn wants_candidates(&self) -> bool {
        self.dynamic_out + self.dynamic_in_flight() < self.limits.max_dynamic
            && self.candidates.len() < self.limits.max_candidates
    }

    fn dynamic_in_flight(&self) -> usize {
        self.in_flight
            .values()
            .filter(|k| **k == Kind::Dynamic)
            .count()
    }

    fn dialable(&self, node: &Node, now: Instant) -> bool {
        self.allowed(node)
            && !self.connected.contains(&node.id)
            && !self.in_flight.contains_key(&node.id)
            && self.history.get(&node.id).is_none_or(|until| *until <= now)
    }

    /// The dials to start now; each is marked in flight until [`Scheduler::dial_done`].
    pub fn next_dials(&mut self, now: Instant) -> Vec<(Node, Kind)> {
        self.history.retain(|_, until| *until > now);
        let mut out = Vec::new();
        let due: Vec<Node> = self
            .statics
            .values()
            .filter(|s| s.next <= now)
            .map(|s| s.node)
            .collect();
        for node in due {
            if self.in_flight.len() >= self.limits.max_dials {
                return out;
            }
            if !self.connected.contains(&node.id) && !self.in_flight.contains_key(&node.id) {
                self.in_flight.insert(node.id, Kind::Static);
                out.push((node, Kind::Static));
            }
        }
        while self.in_flight.len() < self.limits.max_dials
            && self.dynamic_out + self.dynamic_in_flight() < self.limits.max_dynamic
        {
            let Some(node) = self.candidates.pop_front() else {
                break;
            };
            if self.dialable(&node, now) && !self.statics.contains_key(&node.id) {
                self.in_flight.insert(node.id, Kind::Dynamic);
                out.push((node, Kind::Dynamic));
            }
        }
        out
    }

    /// Records the end of a dial. `connected` is whether it produced a peer.
    pub fn dial_done(&mut self, id: &NodeId, connected: bool, now: Instant) {
        self.in_flight.remove(id);
        if connected {
            return;
        }
        self.history.insert(*id, now + self.limits.history_ttl);
        if let Some(s) = self.statics.get_mut(id) {
            s.failures = s.failures.saturating_add(1);
            let exp = s.failures.saturating_sub(1).min(16);
            let delay = self.limits.static_backoff.saturating_mul(1 << exp);
            s.next = now + delay.min(self.limits.static_backoff_max);
        }
    }

    /// A peer connected (either direction). `dynamic_out` is whether it counts against the
    /// dynamic outbound slots.
    pub fn peer_added(&mut self, id: NodeId, dynamic_out: bool) {
        self.connected.insert(id);
        if dynamic_out {
            self.dynamic_out += 1;
        }
        if let Some(s) = self.statics.get_mut(&id) {
            s.failures = 0;
        }
    }

    /// A peer left; it is not redialled for the history period (static nodes follow their
    /// own backoff, starting from the shortest delay).
    pub fn peer_removed(&mut self, id: &NodeId, dynamic_out: bool, now: Instant) {
        self.connected.remove(id);
        if dynamic_out {
            self.dynamic_out = self.dynamic_out.saturating_sub(1);
        }
        self.history.insert(*id, now + self.limits.history_ttl);
        if let Some(s) = self.statics.get_mut(id) {
            s.next = now + self.limits.static_backoff;
        }
    }

    /// Keeps `id` from being dialled until `until` (a peer we dropped for misbehaving).
    pub fn hold(&mut self, id: NodeId, until: Instant) {
        let slot = self.history.entry(id).or_insert(until);
        *slot = (*slot).max(until);
    }

    /// When [`Scheduler::next_dials`] next has a static node to dial if nothing else
    /// happens (a static node's backoff ending); `None` if only an event can make a dial
    /// due (a candidate offered, a dial ending, a peer leaving). The driver sleeps until
    /// then instead of polling.
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.in_flight.len() >= self.limits.max_dials {
            return None; // a dial ending is an event
        }
        self.statics
            .values()
            .filter(|s| {
                !self.connected.contains(&s.node.id) && !self.in_flight.contains_key(&s.node.id)
            })
            .map(|s| s.next)
            .min()
    }

    /// Number of dials in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }
}

#[cfg(test)]
#[path = "dial_tests.rs"]
mod tests;
