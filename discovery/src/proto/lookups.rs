//! Lookups driven by the [`Protocol`]: starting them, feeding them FindNode results,
//! bonding before queries, and the refresh that chains a self lookup into bucket lookups.

use std::time::Instant;

use tracing::trace;

use super::{Deferred, Pending, Protocol, Purpose, Request, Running};
use crate::lookup::{K, Lookup, State};
use crate::node::{Node, NodeId, log_distance};
use crate::packet::{Crypto, FindNode, Message};
use crate::proto::{Event, LookupId};
use crate::table::BUCKET_SIZE;

impl<C: Crypto> Protocol<C> {
    pub(super) fn start_lookup(&mut self, target: NodeId, purpose: Purpose) -> LookupId {
        let mut seeds = self.table.closest(&target.hash(), K);
        if seeds.is_empty() {
            seeds = self.config.bootnodes.clone();
        }
        let timeout = self.config.bond_wait + self.config.request_timeout * 2;
        let id = LookupId(self.next_lookup);
        self.next_lookup += 1;
        self.lookups.insert(
            id,
            Running {
                lookup: Lookup::new(self.id, target, seeds, timeout),
                purpose,
            },
        );
        id
    }

    pub(super) fn drive_lookups(&mut self, now: Instant) {
        loop {
            let before = self.next_lookup;
            let ids: Vec<LookupId> = self.lookups.keys().copied().collect();
            for lid in ids {
                while let Some(r) = self.lookups.get_mut(&lid) {
                    match r.lookup.next(now) {
                        State::Query(node) => self.query(now, lid, node),
                        State::Waiting => break,
                        State::Finished => {
                            if let Some(r) = self.lookups.remove(&lid) {
                                self.lookup_done(lid, r);
                            }
                            break;
                        }
                    }
                }
            }
            if self.next_lookup == before {
                break;
            }
        }
    }

    fn lookup_done(&mut self, id: LookupId, r: Running) {
        let nodes = r.lookup.result();
        trace!(target: "discv4", lookup = id.0, queries = r.lookup.queries(), found = nodes.len(), "lookup done");
        match r.purpose {
            Purpose::User => {
                self.events.push_back(Event::LookupDone {
                    id,
                    target: r.lookup.target(),
                    nodes,
                    queries: r.lookup.queries(),
                    rounds: r.lookup.rounds(),
                });
            }
            Purpose::RefreshSelf => {
                for target in self.refresh_targets(&nodes) {
                    self.start_lookup(target, Purpose::RefreshRandom);
                }
            }
            Purpose::RefreshRandom => {}
        }
    }

    /// Random targets for the refresh after the self lookup: one inside each of the farthest
    /// buckets that are not full yet (Kademlia bucket refresh), so each lookup fills a bucket
    /// instead of mostly the farthest one; uniformly random targets when all are full.
    /// Buckets closer than our closest neighbours (`self_result`) cannot be filled and are
    /// skipped.
    fn refresh_targets(&mut self, self_result: &[Node]) -> Vec<NodeId> {
        let me = *self.table.local_hash();
        let near = self_result
            .last()
            .map_or(256, |n| log_distance(&me, &n.id.hash()));
        let mut targets = Vec::new();
        for d in (near.saturating_add(1)..=256).rev() {
            if targets.len() >= self.config.refresh_random_lookups {
                break;
            }
            if self.table.bucket_len(d) >= BUCKET_SIZE {
                continue;
            }
            // A random id lands at distance d with probability 2^(d-257): grind a little.
            for _ in 0..4096 {
                let t = self.random_target();
                if log_distance(&me, &t.hash()) == d {
                    targets.push(t);
                    break;
                }
            }
        }
        while targets.len() < self.config.refresh_random_lookups {
            targets.push(self.random_target());
        }
        targets
    }

    /// Sends FindNode for a lookup, bonding first when the remote may not know us.
    fn query(&mut self, now: Instant, lookup: LookupId, node: Node) {
        if !self.allowed(node.ip) {
            if let Some(r) = self.lookups.get_mut(&lookup) {
                r.lookup.on_timeout(&node.id);
            }
            return;
        }
        let known = self
            .peers
            .get(&node.id)
            .and_then(|p| p.last_ping)
            .is_some_and(|t| now < t + self.config.bond_expiration);
        if known {
            self.send_findnode(now, lookup, node);
        } else {
            self.send_ping(now, node, false);
            self.deferred.push(Deferred {
                node,
                lookup,
                deadline: now + self.config.bond_wait,
            });
        }
    }

    pub(super) fn send_findnode(&mut self, now: Instant, lookup: LookupId, node: Node) {
        let Some(r) = self.lookups.get(&lookup) else {
            return;
        };
        let msg = Message::FindNode(FindNode {
            target: r.lookup.target(),
            expiration: self.expiration(now),
        });
        let deadline = now + self.config.request_timeout;
        self.pending.push(Pending {
            node,
            deadline,
            req: Request::FindNode {
                lookup,
                received: None,
            },
        });
        self.send(node.udp_addr(), msg.encode_with(&self.crypto).0);
    }
}
