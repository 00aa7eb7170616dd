//! [`Fleet`]: many [`Protocol`]s addressed by index, driven over any simulated network.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use crate::node::Node;
use crate::packet::{Crypto, Secp256k1};
use crate::proto::{Event, LookupId, Protocol};

/// The network a [`Fleet`] runs over: it carries datagrams between node indices and
/// calls [`Fleet::deliver`] / [`Fleet::timer`] back at the right virtual time.
pub trait Wire {
    /// Queues `data` from node `from` to node `to`.
    fn send(&mut self, from: usize, to: usize, data: Vec<u8>);
    /// Asks for [`Fleet::timer`] on `node` at `at`.
    fn wake(&mut self, node: usize, at: Instant);
}

/// A finished user lookup.
#[derive(Clone, Debug)]
pub struct LookupResult {
    /// Up to 16 nodes, closest first.
    pub nodes: Vec<Node>,
    /// FindNode queries sent.
    pub queries: usize,
    /// Rounds ([`crate::lookup::Lookup::rounds`]).
    pub rounds: usize,
    /// When it finished.
    pub at: Instant,
    /// Datagrams the node had sent and received when it finished ([`Fleet::node_packets`]).
    pub packets: (u64, u64),
}

/// Simulated nodes: each a [`Protocol`] at its own address, online or gone.
///
/// After every input the fleet drains the node's datagrams (to the [`Wire`], when the
/// address belongs to a node; others are counted and lost, like packets to a host that
/// does not exist), keeps finished lookups, and asks the wire for a wake-up at the node's
/// next timeout when it is earlier than the one already asked for.
pub struct Fleet<C: Crypto = Secp256k1> {
    nodes: Vec<Option<Protocol<C>>>,
    addrs: Vec<SocketAddr>,
    by_addr: HashMap<SocketAddr, usize>,
    timers: Vec<Option<Instant>>,
    sent: Vec<u64>,
    received: Vec<u64>,
    done: HashMap<(usize, LookupId), LookupResult>,
    packets: u64,
}

impl<C: Crypto> Default for Fleet<C> {
    fn default() -> Self {
        Fleet {
            nodes: Vec::new(),
            addrs: Vec::new(),
            by_addr: HashMap::new(),
            timers: Vec::new(),
            sent: Vec::new(),
            received: Vec::new(),
            done: HashMap::new(),
            packets: 0,
        }
    }
}

impl<C: Crypto> Fleet<C> {
    /// An empty fleet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `proto`, reachable at its bound address, and returns its index (indices
    /// count up from 0 and are never reused). Its first timer is asked for at once.
    pub fn add(&mut self, wire: &mut impl Wire, addr: SocketAddr, proto: Protocol<C>) -> usize {
        let i = self.nodes.len();
        self.nodes.push(Some(proto));
        self.addrs.push(addr);
        self.by_addr.insert(addr, i);
        self.timers.push(None);
        self.sent.push(0);
        self.received.push(0);
        self.schedule(wire, i);
        i
    }

    /// Takes node `i` off the network for good: its state is dropped and datagrams to it
    /// are lost.
    pub fn remove(&mut self, i: usize) {
        if let Some(slot) = self.nodes.get_mut(i) {
            *slot = None;
        }
    }

    /// Number of nodes ever added.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether no node was ever added.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Node `i`, when online.
    pub fn get(&self, i: usize) -> Option<&Protocol<C>> {
        self.nodes.get(i).and_then(Option::as_ref)
    }

    /// Node `i` mutably, when online. Call [`Fleet::flush`] after acting on it.
    pub fn get_mut(&mut self, i: usize) -> Option<&mut Protocol<C>> {
        self.nodes.get_mut(i).and_then(Option::as_mut)
    }

    /// The online nodes with their indices.
    pub fn online(&self) -> impl Iterator<Item = (usize, &Protocol<C>)> {
        (self.nodes.iter().enumerate()).filter_map(|(i, p)| p.as_ref().map(|p| (i, p)))
    }

    /// Node `i`'s address.
    pub fn addr(&self, i: usize) -> Option<SocketAddr> {
        self.addrs.get(i).copied()
    }

    /// The node at `addr`, if any.
    pub fn index_of(&self, addr: &SocketAddr) -> Option<usize> {
        self.by_addr.get(addr).copied()
    }

    /// Datagrams sent by all nodes so far.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Datagrams node `i` sent and received so far.
    pub fn node_packets(&self, i: usize) -> (u64, u64) {
        let get = |v: &Vec<u64>| v.get(i).copied().unwrap_or(0);
        (get(&self.sent), get(&self.received))
    }

    /// Hands a datagram from node `from` to node `to` (dropped when `to` is gone).
    pub fn deliver(
        &mut self,
        wire: &mut impl Wire,
        now: Instant,
        from: usize,
        to: usize,
        data: &[u8],
    ) {
        let Some(src) = self.addrs.get(from).copied() else {
            return;
        };
        let Some(node) = self.nodes.get_mut(to).and_then(Option::as_mut) else {
            return;
        };
        node.handle_packet(now, src, data);
        if let Some(r) = self.received.get_mut(to) {
            *r += 1;
        }
        self.flush(wire, now, to);
    }

    /// A wake-up asked for at `at` fired at `now`: runs node `i`'s timers unless a later
    /// request superseded it.
    pub fn timer(&mut self, wire: &mut impl Wire, now: Instant, i: usize, at: Instant) {
        match self.timers.get_mut(i) {
            Some(t) if *t == Some(at) => *t = None,
            _ => return, // superseded by an earlier wake-up, or an unknown node
        }
        let Some(node) = self.nodes.get_mut(i).and_then(Option::as_mut) else {
            return;
        };
        if node.next_timeout().is_some_and(|t| t <= now) {
            node.handle_timeout(now);
        }
        self.flush(wire, now, i);
    }

    /// Drains node `i`'s datagrams and events and re-arms its timer. Call after acting on
    /// a node through [`Fleet::get_mut`].
    pub fn flush(&mut self, wire: &mut impl Wire, now: Instant, i: usize) {
        let Some(node) = self.nodes.get_mut(i).and_then(Option::as_mut) else {
            return;
        };
        while let Some(t) = node.poll_transmit() {
            self.packets += 1;
            if let Some(s) = self.sent.get_mut(i) {
                *s += 1;
            }
            if let Some(&to) = self.by_addr.get(&t.to) {
                wire.send(i, to, t.data);
            }
        }
        while let Some(e) = node.poll_event() {
            if let Event::LookupDone {
                id,
                nodes,
                queries,
                rounds,
                ..
            } = e
            {
                let sent = self.sent.get(i).copied().unwrap_or(0);
                let received = self.received.get(i).copied().unwrap_or(0);
                let r = LookupResult {
                    nodes,
                    queries,
                    rounds,
                    at: now,
                    packets: (sent, received),
                };
                self.done.insert((i, id), r);
            }
        }
        self.schedule(wire, i);
    }

    fn schedule(&mut self, wire: &mut impl Wire, i: usize) {
        let Some(t) = self.get(i).and_then(|n| n.next_timeout()) else {
            return;
        };
        if let Some(slot) = self.timers.get_mut(i)
            && slot.is_none_or(|s| t < s)
        {
            *slot = Some(t);
            wire.wake(i, t);
        }
    }

    /// Starts a lookup for `target` on node `i` (`None` when it is gone).
    pub fn start_lookup(
        &mut self,
        wire: &mut impl Wire,
        now: Instant,
        i: usize,
        target: crate::NodeId,
    ) -> Option<LookupId> {
        let id = self.get_mut(i)?.lookup(now, target);
        self.flush(wire, now, i);
        Some(id)
    }

    /// The result of a finished lookup, once.
    pub fn take_result(&mut self, i: usize, id: LookupId) -> Option<LookupResult> {
        self.done.remove(&(i, id))
    }

    /// Forgets finished lookups nobody asked for (refreshes and lookups of gone nodes).
    pub fn clear_results(&mut self) {
        self.done.clear();
    }
}
