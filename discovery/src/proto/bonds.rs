//! Bonding state of remote nodes: endpoint proofs, bounded in total and per source IP.

use std::net::IpAddr;
use std::time::Instant;

use tracing::trace;

use super::{BONDS_PER_IP, PeerState, Protocol, UNVERIFIED_TTL};
use crate::node::NodeId;
use crate::packet::Crypto;

impl<C: Crypto> Protocol<C> {
    /// Bonding state for `id`, creating it (and making room, see [`Self::make_room`]);
    /// `None` when the map is full and `bond` is false.
    pub(super) fn peer_mut(
        &mut self,
        id: NodeId,
        now: Instant,
        bond: bool,
    ) -> Option<&mut PeerState> {
        if !self.peers.contains_key(&id)
            && self.peers.len() >= self.config.max_peers
            && !self.make_room(now, bond)
        {
            return None;
        }
        Some(self.peers.entry(id).or_default())
    }

    /// Frees a slot of the full state map; false if none could be freed. Stale entries
    /// go first; a ping-only entry matters only while its round trip can complete, so it is
    /// kept a minute and a flood of unanswered pings from fresh ids cannot hold the map.
    /// Still full, the oldest unverified entry goes, or, to make room for a new bond
    /// (`bond`), the least recently proven bond: newcomers can always bond (an evicted node
    /// simply bonds again), a mere ping never costs a bond, and with [`BONDS_PER_IP`]
    /// filling the map takes a thousand addresses.
    fn make_room(&mut self, now: Instant, bond: bool) -> bool {
        let exp = self.config.bond_expiration;
        let bonded = |p: &PeerState| p.last_pong.is_some_and(|t| now < t + exp);
        let pinging = |p: &PeerState| p.last_ping.is_some_and(|t| now < t + UNVERIFIED_TTL);
        let stale: Vec<NodeId> = (self.peers.iter())
            .filter(|(_, p)| !bonded(p) && !pinging(p))
            .map(|(k, _)| *k)
            .collect();
        for k in stale {
            self.remove_peer(&k);
        }
        if self.peers.len() < self.config.max_peers {
            return true;
        }
        let victim = (self.peers.iter())
            .filter(|(_, p)| bond || !bonded(p))
            .min_by_key(|(_, p)| (bonded(p), p.last_pong, p.last_ping))
            .map(|(k, _)| *k);
        match victim {
            Some(k) => {
                self.remove_peer(&k);
                true
            }
            None => false,
        }
    }

    fn remove_peer(&mut self, id: &NodeId) {
        if let Some(ip) = self.peers.remove(id).and_then(|p| p.ip) {
            self.unindex(id, ip);
        }
    }

    fn unindex(&mut self, id: &NodeId, ip: IpAddr) {
        if let Some(ids) = self.by_ip.get_mut(&ip) {
            ids.retain(|k| k != id);
            if ids.is_empty() {
                self.by_ip.remove(&ip);
            }
        }
    }

    /// Records that `id` answered our ping from `ip`, dropping the oldest bond of `ip`
    /// when it has [`BONDS_PER_IP`] already.
    pub(super) fn record_bond(&mut self, id: NodeId, ip: IpAddr, now: Instant) {
        let old_ip = self.peers.get(&id).and_then(|p| p.ip);
        if old_ip != Some(ip) {
            if let Some(old) = old_ip {
                self.unindex(&id, old);
            }
            if self.ip_limited(ip) {
                let ids = self.by_ip.get(&ip).map(Vec::as_slice).unwrap_or_default();
                if ids.len() >= BONDS_PER_IP {
                    let oldest = (ids.iter())
                        .min_by_key(|k| self.peers.get(k).and_then(|p| p.last_pong))
                        .copied();
                    if let Some(k) = oldest {
                        trace!(target: "discv4", %ip, "bonds per IP reached, dropping the oldest");
                        self.remove_peer(&k);
                    }
                }
            }
        }
        let Some(peer) = self.peer_mut(id, now, true) else {
            return;
        };
        peer.last_pong = Some(now);
        peer.ip = Some(ip);
        if old_ip != Some(ip) {
            self.by_ip.entry(ip).or_default().push(id);
        }
    }

    /// Whether `ip` counts against [`BONDS_PER_IP`] (exempt as in the table's IP limits).
    fn ip_limited(&self, ip: IpAddr) -> bool {
        !(ip.is_loopback()
            || self
                .config
                .netrestrict
                .as_ref()
                .is_some_and(|n| n.contains(ip)))
    }

    /// Live bonds made from `ip`.
    pub fn bonds_from(&self, ip: IpAddr, now: Instant) -> usize {
        let exp = self.config.bond_expiration;
        (self.peers.values())
            .filter(|p| p.ip == Some(ip) && p.last_pong.is_some_and(|t| now < t + exp))
            .count()
    }
}
