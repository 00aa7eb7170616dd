//! Answering each verified packet: Ping with Pong (and a bond), Pong against our Ping,
//! FindNode and ENRRequest only from bonded nodes, Neighbors and ENRResponse only as
//! answers to our requests.

use super::*;

impl<C: Crypto> Protocol<C> {
    pub(super) fn on_ping(
        &mut self,
        now: Instant,
        from: SocketAddr,
        id: NodeId,
        hash: [u8; 32],
        ping: Ping,
    ) {
        let to = Endpoint {
            ip: from.ip(),
            udp: from.port(),
            tcp: ping.from.tcp,
        };
        let pong = Pong {
            to,
            ping_hash: hash,
            expiration: self.expiration(now),
            enr_seq: Some(self.local.record().seq()),
        };
        self.send(from, Message::Pong(pong).encode_with(&self.crypto).0);
        let node = Node {
            id,
            ip: from.ip(),
            udp: from.port(),
            tcp: ping.from.tcp,
        };
        if let Some(peer) = self.peer_mut(id, now, false) {
            peer.last_ping = Some(now);
        }
        // The remote now has our endpoint proof: held-back FindNodes can go.
        let (ready, keep): (Vec<Deferred>, Vec<Deferred>) = std::mem::take(&mut self.deferred)
            .into_iter()
            .partition(|d| d.node.id == id);
        self.deferred = keep;
        for d in ready {
            self.send_findnode(now, d.lookup, d.node);
        }
        if self.verified(&id, from.ip(), now) {
            self.table.add_verified(node, now);
        } else {
            // discv4.md "Ping Packet": ping back to obtain an endpoint proof.
            self.send_ping(now, node, false);
        }
    }

    pub(super) fn on_pong(&mut self, now: Instant, from: SocketAddr, id: NodeId, pong: Pong) {
        let pos = self.pending.iter().position(|p| {
            p.node.id == id
                && p.node.ip == from.ip()
                && matches!(p.req, Request::Ping { hash, .. } if hash == pong.ping_hash)
        });
        let Some(pos) = pos else {
            self.metrics.unsolicited += 1;
            trace!(target: "discv4", %from, "dropping unsolicited pong");
            return;
        };
        let p = self.pending.swap_remove(pos);
        self.record_bond(id, from.ip(), now);
        let node = Node {
            id,
            ip: from.ip(),
            udp: from.port(),
            tcp: p.node.tcp,
        };
        self.table.add_verified(node, now);
        self.events.push_back(Event::Bonded(node));
        if self.config.external_ip.is_none()
            && !pong.to.ip.is_unspecified()
            && let Some(ip) = self.votes[usize::from(canonical_ip(pong.to.ip).is_ipv6())].add(
                from,
                canonical_ip(pong.to.ip),
                self.config.min_votes,
            )
            && !self.local.has_ip(ip)
        {
            let (udp, tcp) = (self.local.udp(), self.local.tcp());
            if let Ok(true) = self.local.set_endpoint(Some(ip), udp, tcp) {
                debug!(target: "discv4", %ip, seq = self.local.record().seq(), "external address changed");
                self.events
                    .push_back(Event::LocalEnrUpdated(self.local.record().clone()));
            }
        }
    }

    pub(super) fn on_findnode(
        &mut self,
        now: Instant,
        from: SocketAddr,
        id: NodeId,
        req: FindNode,
    ) {
        if !self.verified(&id, from.ip(), now) {
            self.metrics.unbonded += 1;
            trace!(target: "discv4", %from, "findnode from unbonded node");
            return;
        }
        let nodes: Vec<Node> = self
            .table
            .closest(&req.target.hash(), K)
            .into_iter()
            .filter(|n| n.id != id && relay_ok(from.ip(), n.ip))
            .collect();
        let exp = self.expiration(now);
        let mut packets = packet::encode_neighbors_with(&nodes, exp, &self.crypto);
        if packets.is_empty() {
            // An empty answer still tells the lookup that we are alive.
            let empty = Message::Neighbors(packet::Neighbors {
                nodes: Vec::new(),
                expiration: exp,
            });
            packets.push(empty.encode_with(&self.crypto).0);
        }
        for p in packets {
            self.send(from, p);
        }
    }

    pub(super) fn on_neighbors(&mut self, from: SocketAddr, id: NodeId, nodes: Vec<Node>) {
        // A request not answered yet takes precedence over one whose first packet arrived
        // (which stays pending for a possible second packet).
        let matching = |p: &Pending, fresh: bool| {
            p.node.id == id
                && p.node.ip == from.ip()
                && matches!(p.req, Request::FindNode { received, .. } if received.is_none() == fresh)
        };
        let pos = (self.pending.iter().position(|p| matching(p, true)))
            .or_else(|| self.pending.iter().position(|p| matching(p, false)));
        let Some(pos) = pos else {
            self.metrics.unsolicited += 1;
            trace!(target: "discv4", %from, "dropping unsolicited neighbors");
            return;
        };
        let Some(p) = self.pending.get_mut(pos) else {
            return;
        };
        let Request::FindNode { lookup, received } = &mut p.req else {
            return;
        };
        let lookup = *lookup;
        let total = received.unwrap_or(0) + nodes.len();
        *received = Some(total);
        if total >= K {
            self.pending.swap_remove(pos);
        }
        let nodes: Vec<Node> = nodes
            .into_iter()
            .filter(|n| {
                n.id != self.id && n.udp != 0 && relay_ok(from.ip(), n.ip) && self.allowed(n.ip)
            })
            .take(K)
            .collect();
        for n in &nodes {
            self.table.add_seen(*n);
        }
        if let Some(r) = self.lookups.get_mut(&lookup) {
            r.lookup.on_response(&id, &nodes);
        }
    }

    pub(super) fn on_enr_request(
        &mut self,
        now: Instant,
        from: SocketAddr,
        id: NodeId,
        hash: [u8; 32],
    ) {
        if !self.verified(&id, from.ip(), now) {
            self.metrics.unbonded += 1;
            return;
        }
        let resp = EnrResponse {
            request_hash: hash,
            enr: self.local.record().clone(),
        };
        self.send(from, Message::EnrResponse(resp).encode_with(&self.crypto).0);
    }

    pub(super) fn on_enr_response(&mut self, from: SocketAddr, id: NodeId, resp: EnrResponse) {
        let pos = self.pending.iter().position(|p| {
            p.node.id == id
                && p.node.ip == from.ip()
                && matches!(p.req, Request::Enr { hash } if hash == resp.request_hash)
        });
        match pos {
            Some(pos) if resp.enr.node_id() == id => {
                self.pending.swap_remove(pos);
                self.events.push_back(Event::Enr(resp.enr));
            }
            _ => self.metrics.unsolicited += 1,
        }
    }
}
