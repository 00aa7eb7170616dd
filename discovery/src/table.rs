//! The Kademlia routing table (discv4.md "Kademlia Table").
//!
//! Nodes are bucketed by the log distance between `keccak256(id)` and our own hash. Each
//! bucket holds [`BUCKET_SIZE`] entries ordered least-recently-seen first, plus a
//! replacement list used when an entry fails revalidation. IP limits per /24 keep a single
//! network from filling the table (eclipse protection).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

use rand::Rng;

use crate::cidr::NetRestrict;
use crate::node::{Node, NodeId, distance_cmp, log_distance};

/// Entries per bucket: Kademlia `k` (discv4.md: "k = 16").
pub const BUCKET_SIZE: usize = 16;
/// Replacement list length per bucket (go-ethereum `maxReplacements`).
pub const MAX_REPLACEMENTS: usize = 10;
/// Nodes per /24 in one bucket (go-ethereum `bucketIPLimit`).
pub const BUCKET_IP_LIMIT: usize = 2;
/// Nodes per /24 in the whole table (go-ethereum `tableIPLimit`).
pub const TABLE_IP_LIMIT: usize = 10;
const N_BUCKETS: usize = 256;

/// A table entry.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The node.
    pub node: Node,
    /// `keccak256(node.id)`.
    pub hash: [u8; 32],
    /// When the node last answered a ping of ours; `None` if only heard of.
    pub last_pong: Option<Instant>,
}

#[derive(Default)]
struct Bucket {
    entries: Vec<Entry>,
    replacements: Vec<Entry>,
}

/// The outcome of an insertion.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Insert {
    /// Appended to its bucket.
    Added,
    /// Already present; liveness (and endpoint, for verified inserts) updated.
    Updated,
    /// The bucket is full; kept on the replacement list.
    Replacement,
    /// Rejected by the /24 limits.
    IpLimit,
    /// Our own id, or an address outside `--netrestrict`.
    Rejected,
}

/// A /24 (IPv4) or /64 (IPv6) network, the unit of the IP limits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) enum Subnet {
    V4([u8; 3]),
    V6([u8; 8]),
}

pub(crate) fn subnet(ip: IpAddr) -> Subnet {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            Subnet::V4([o[0], o[1], o[2]]) // ok: [u8; 4]
        }
        IpAddr::V6(a) => {
            let o = a.octets();
            let mut s = [0u8; 8];
            s.copy_from_slice(&o[..8]); // ok: 16-byte array
            Subnet::V6(s)
        }
    }
}

/// The routing table.
pub struct Table {
    local: [u8; 32],
    local_id: NodeId,
    buckets: Vec<Bucket>,
    ips: HashMap<Subnet, usize>,
    netrestrict: Option<NetRestrict>,
    len: usize,
}

impl Table {
    /// An empty table for `local`. Addresses inside `netrestrict` and loopback addresses are
    /// exempt from the IP limits; nothing outside `netrestrict` is ever added.
    pub fn new(local: NodeId, netrestrict: Option<NetRestrict>) -> Self {
        Table {
            local: local.hash(),
            local_id: local,
            buckets: (0..N_BUCKETS).map(|_| Bucket::default()).collect(),
            ips: HashMap::new(),
            netrestrict,
            len: 0,
        }
    }

    /// Number of entries (replacements not included).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the table has no entries.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn bucket_index(&self, hash: &[u8; 32]) -> Option<usize> {
        log_distance(&self.local, hash)
            .checked_sub(1)
            .map(|d| d as usize)
    }

    fn limited(&self, ip: IpAddr) -> bool {
        !(ip.is_loopback() || self.netrestrict.as_ref().is_some_and(|n| n.contains(ip)))
    }

    /// The entry for `id`, if in a bucket.
    pub fn get(&self, id: &NodeId) -> Option<&Entry> {
        let b = self.bucket_index(&id.hash())?;
        self.buckets
            .get(b)?
            .entries
            .iter()
            .find(|e| e.node.id == *id)
    }

    /// All bucket entries.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.buckets.iter().flat_map(|b| b.entries.iter())
    }

    /// Entries in the bucket at log distance `d` (1..=256).
    pub fn bucket_len(&self, d: u32) -> usize {
        d.checked_sub(1)
            .and_then(|i| self.buckets.get(i as usize))
            .map_or(0, |b| b.entries.len())
    }

    /// Our own hash (`keccak256` of our id).
    pub fn local_hash(&self) -> &[u8; 32] {
        &self.local
    }

    /// Number of replacement-list entries across all buckets.
    pub fn replacements_len(&self) -> usize {
        self.buckets.iter().map(|b| b.replacements.len()).sum()
    }

    fn ip_ok(&self, bucket: &Bucket, ip: IpAddr) -> bool {
        if !self.limited(ip) {
            return true;
        }
        let net = subnet(ip);
        let in_bucket = bucket
            .entries
            .iter()
            .filter(|e| subnet(e.node.ip) == net)
            .count();
        in_bucket < BUCKET_IP_LIMIT && self.ips.get(&net).copied().unwrap_or(0) < TABLE_IP_LIMIT
    }

    fn count_ip(&mut self, ip: IpAddr, add: bool) {
        if !self.limited(ip) {
            return;
        }
        let c = self.ips.entry(subnet(ip)).or_insert(0);
        if add {
            *c += 1;
        } else {
            *c = c.saturating_sub(1);
            if *c == 0 {
                self.ips.remove(&subnet(ip));
            }
        }
    }

    /// Adds a node we heard of (Neighbors, bootnodes, database) without proof it is alive.
    /// An existing entry is left untouched.
    pub fn add_seen(&mut self, node: Node) -> Insert {
        self.insert(node, None)
    }

    /// Adds or refreshes a node that just answered our ping: it moves to the bucket's tail
    /// (most recently seen) and its endpoint is updated.
    pub fn add_verified(&mut self, node: Node, now: Instant) -> Insert {
        self.insert(node, Some(now))
    }

    fn insert(&mut self, node: Node, live: Option<Instant>) -> Insert {
        if node.id == self.local_id
            || self
                .netrestrict
                .as_ref()
                .is_some_and(|n| !n.contains(node.ip))
        {
            return Insert::Rejected;
        }
        let hash = node.id.hash();
        let Some(b) = self.bucket_index(&hash) else {
            return Insert::Rejected;
        };
        let Some(bucket) = self.buckets.get(b) else {
            return Insert::Rejected;
        };
        if let Some(pos) = bucket.entries.iter().position(|e| e.node.id == node.id) {
            let Some(now) = live else {
                return Insert::Updated;
            };
            let old_ip = bucket.entries.get(pos).map(|e| e.node.ip);
            if old_ip != Some(node.ip) {
                // Endpoint moved: re-check the limits for the new address.
                let Some(mut e) = self.remove_at(b, pos) else {
                    return Insert::Rejected;
                };
                let ok = self
                    .buckets
                    .get(b)
                    .is_some_and(|bk| self.ip_ok(bk, node.ip));
                if !ok {
                    return Insert::IpLimit;
                }
                e.node = node;
                e.last_pong = Some(now);
                self.count_ip(node.ip, true);
                self.len += 1;
                if let Some(bk) = self.buckets.get_mut(b) {
                    bk.entries.push(e);
                }
                return Insert::Updated;
            }
            if let Some(bk) = self.buckets.get_mut(b) {
                let mut e = bk.entries.remove(pos);
                e.node = node;
                e.last_pong = Some(now);
                bk.entries.push(e);
            }
            return Insert::Updated;
        }
        let entry = Entry {
            node,
            hash,
            last_pong: live,
        };
        if bucket.entries.len() >= BUCKET_SIZE {
            if let Some(bk) = self.buckets.get_mut(b) {
                bk.replacements.retain(|e| e.node.id != node.id);
                if bk.replacements.len() >= MAX_REPLACEMENTS {
                    bk.replacements.remove(0);
                }
                bk.replacements.push(entry);
            }
            return Insert::Replacement;
        }
        if !self.ip_ok(bucket, node.ip) {
            return Insert::IpLimit;
        }
        self.count_ip(node.ip, true);
        self.len += 1;
        if let Some(bk) = self.buckets.get_mut(b) {
            bk.replacements.retain(|e| e.node.id != node.id);
            bk.entries.push(entry);
        }
        Insert::Added
    }

    fn remove_at(&mut self, b: usize, pos: usize) -> Option<Entry> {
        let bucket = self.buckets.get_mut(b)?;
        if pos >= bucket.entries.len() {
            return None;
        }
        let e = bucket.entries.remove(pos);
        self.len -= 1;
        self.count_ip(e.node.ip, false);
        Some(e)
    }

    /// Removes a node that failed revalidation and promotes the most recent replacement
    /// that fits the IP limits. Returns the promoted node.
    pub fn remove_dead(&mut self, id: &NodeId) -> Option<Node> {
        let b = self.bucket_index(&id.hash())?;
        let pos = self
            .buckets
            .get(b)?
            .entries
            .iter()
            .position(|e| e.node.id == *id)?;
        self.remove_at(b, pos)?;
        let bucket = self.buckets.get(b)?;
        let pick = bucket
            .replacements
            .iter()
            .rposition(|r| self.ip_ok(bucket, r.node.ip))?;
        let bucket = self.buckets.get_mut(b)?;
        let r = bucket.replacements.remove(pick);
        let node = r.node;
        bucket.entries.push(r);
        self.len += 1;
        self.count_ip(node.ip, true);
        Some(node)
    }

    /// The least recently seen entry of a random non-empty bucket: the next node to
    /// revalidate (discv4.md "Kademlia Table").
    pub fn revalidation_target<R: Rng>(&self, rng: &mut R) -> Option<Node> {
        let nonempty: Vec<&Bucket> = self
            .buckets
            .iter()
            .filter(|b| !b.entries.is_empty())
            .collect();
        if nonempty.is_empty() {
            return None;
        }
        let b = nonempty.get(rng.random_range(0..nonempty.len()))?;
        b.entries.first().map(|e| e.node)
    }

    /// Up to `n` entries closest to `target` (a `keccak256` of an id), closest first.
    pub fn closest(&self, target: &[u8; 32], n: usize) -> Vec<Node> {
        let mut all: Vec<&Entry> = self.entries().collect();
        all.sort_unstable_by(|a, b| distance_cmp(target, &a.hash, &b.hash));
        all.into_iter().take(n).map(|e| e.node).collect()
    }

    /// Up to `n` distinct random entries.
    pub fn random_nodes<R: Rng>(&self, rng: &mut R, n: usize) -> Vec<Node> {
        let mut all: Vec<Node> = self.entries().map(|e| e.node).collect();
        let n = n.min(all.len());
        for i in 0..n {
            let j = rng.random_range(i..all.len());
            all.swap(i, j);
        }
        all.truncate(n);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn id(rng: &mut StdRng) -> NodeId {
        let mut b = [0u8; 64];
        rng.fill(&mut b[..]);
        NodeId(b)
    }

    fn node(rng: &mut StdRng, ip: &str) -> Node {
        Node {
            id: id(rng),
            ip: ip.parse().unwrap(),
            udp: 30303,
            tcp: 30303,
        }
    }

    #[test]
    fn ip_limits() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut t = Table::new(id(&mut rng), None);
        let mut added = 0;
        for i in 0..100 {
            if t.add_seen(node(&mut rng, &format!("1.2.3.{i}"))) == Insert::Added {
                added += 1;
            }
        }
        assert_eq!(added, TABLE_IP_LIMIT, "10 per /24 in the table");
        // Per bucket: nodes in the farthest bucket (~half of all ids) hit the limit of 2.
        let mut t = Table::new(id(&mut rng), None);
        let mut far = 0;
        for i in 0..200 {
            let n = node(&mut rng, &format!("5.6.7.{i}"));
            if log_distance(&t.local, &n.id.hash()) == 256 && t.add_seen(n) == Insert::Added {
                far += 1;
            }
        }
        assert_eq!(far, BUCKET_IP_LIMIT);
        // Loopback and netrestrict members are exempt.
        let mut t = Table::new(id(&mut rng), Some("10.0.0.0/8".parse().unwrap()));
        for i in 0..50 {
            t.add_seen(node(&mut rng, &format!("10.0.0.{i}")));
            assert_eq!(
                t.add_seen(node(&mut rng, "8.8.8.8")),
                Insert::Rejected,
                "outside netrestrict"
            );
        }
        assert!(t.len() > TABLE_IP_LIMIT);
        let mut t = Table::new(id(&mut rng), None);
        for _ in 0..50 {
            t.add_seen(node(&mut rng, "127.0.0.1"));
        }
        assert!(t.len() > TABLE_IP_LIMIT);
    }

    #[test]
    fn buckets_replacements_and_revalidation() {
        let mut rng = StdRng::seed_from_u64(2);
        let mut t = Table::new(id(&mut rng), None);
        let now = Instant::now();
        let mut far = Vec::new();
        let mut i = 0u32;
        while far.len() < BUCKET_SIZE + 5 {
            i += 1;
            let n = node(
                &mut rng,
                &format!("{}.{}.{}.1", 1 + i / 65536, (i / 256) % 256, i % 256),
            );
            if log_distance(&t.local, &n.id.hash()) == 256 {
                far.push(n);
            }
        }
        for n in &far {
            t.add_seen(*n);
        }
        assert_eq!(t.len(), BUCKET_SIZE);
        assert_eq!(t.replacements_len(), 5);
        // The head is the least recently seen; a pong moves it to the tail.
        let head = far[0];
        assert_eq!(t.add_verified(head, now), Insert::Updated);
        assert_eq!(t.revalidation_target(&mut rng), Some(far[1]));
        // A dead node is replaced by the newest replacement.
        assert_eq!(t.remove_dead(&far[1].id), Some(far[BUCKET_SIZE + 4]));
        assert_eq!(t.len(), BUCKET_SIZE);
        assert!(t.get(&far[1].id).is_none());
        let c = t.closest(&far[5].id.hash(), 3);
        assert_eq!(c[0], far[5]);
        assert_eq!(t.random_nodes(&mut rng, 100).len(), BUCKET_SIZE);
    }
}
