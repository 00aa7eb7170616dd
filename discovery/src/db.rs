//! The persistent node database (redb).
//!
//! Stores nodes that answered a ping (verified endpoints only), with the times of their
//! first and last pong, their count of pongs and of unanswered pings since the last, plus
//! our record's sequence number. Every write is one redb transaction, committed with
//! immediate durability, so a `kill -9` leaves either the old or the new state, never a
//! corrupt file.
//!
//! The database is bounded: at most [`MAX_NODES`] nodes and [`SUBNET_LIMIT`] per /24
//! (IPv6 /64; loopback and LAN exempt). A new node takes a place only when there is room
//! or when a failing or stale node gives up its own, so a flood of fresh identities cannot
//! push out nodes that have proven themselves. Restart seeds are chosen by proven liveness
//! (how long a node has kept answering), not by recency, which a flood controls.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::time::Duration;

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::node::{Node, NodeId, is_lan};
use crate::table::{Subnet, subnet};

/// Nodes used to seed the table on start (go-ethereum `seedCount`).
pub const SEED_COUNT: usize = 30;
/// Only nodes seen alive this recently seed the table (go-ethereum `seedMaxAge`, 5 days).
pub const SEED_MAX_AGE: Duration = Duration::from_secs(5 * 24 * 3600);
/// Most nodes stored: about twenty times the table and its replacement lists
/// (17 × (16 + 10) in use), room for days of churn at a few hundred bytes each.
pub const MAX_NODES: usize = 5000;
/// Most nodes stored per /24 (IPv6 /64): the table's own limit
/// ([`crate::table::TABLE_IP_LIMIT`]).
pub const SUBNET_LIMIT: usize = crate::table::TABLE_IP_LIMIT;
/// Most seeds per /24: a restart is not handed to one network
/// ([`crate::table::BUCKET_IP_LIMIT`]).
pub const SEED_SUBNET_LIMIT: usize = crate::table::BUCKET_IP_LIMIT;
/// A node not heard from for a day may give up its place to a new one (go-ethereum
/// forgets nodes after a day, `dbNodeExpiration`).
pub const STALE_AFTER: Duration = Duration::from_secs(24 * 3600);

const NODES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("nodes");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// Database failures. None is fatal to discovery: the service logs them and carries on.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// redb reported an error (I/O, corruption, lock held by another process).
    #[error("node database error: {0}")]
    Redb(#[from] redb::Error),
    /// Creating the database file failed.
    #[error("node database file: {0}")]
    Io(#[from] std::io::Error),
}

fn err<E: Into<redb::Error>>(e: E) -> DbError {
    DbError::Redb(e.into())
}

/// Opens the redb database at `path`, creating it crash-safely if it does not exist.
///
/// A kill while redb initialises a new file can leave it without its header, and such a
/// file never opens again. So a new database is built under a temporary name, given one
/// committed transaction, and renamed into place: the real path is either absent or valid.
pub fn create(path: &Path) -> Result<Database, DbError> {
    if !path.exists() {
        let tmp = path.with_extension("redb.tmp");
        let _ = std::fs::remove_file(&tmp);
        {
            let db = Database::create(&tmp).map_err(err)?;
            db.begin_write().map_err(err)?.commit().map_err(err)?;
        }
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // Make the rename itself durable (best effort: not every platform can).
            let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
        }
    }
    Database::create(path).map_err(err)
}

/// A stored node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The node.
    pub node: Node,
    /// UNIX time of its last pong.
    pub last_pong: u64,
    /// Pings it missed since its last pong.
    pub fails: u32,
    /// UNIX time of its first pong stored.
    pub first_pong: u64,
    /// Pongs stored.
    pub pongs: u32,
}

impl Record {
    /// Seconds over which the node has kept answering: what seeds are ranked by.
    pub fn proven(&self) -> u64 {
        self.last_pong.saturating_sub(self.first_pong)
    }
}

/// Whether a node's address counts against the per-subnet limits.
fn limited(ip: IpAddr) -> bool {
    !is_lan(ip)
}

/// A change to apply, as produced from protocol events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Update {
    /// The node answered a ping at this UNIX time.
    Pong(Node, u64),
    /// The node missed a ping.
    Failed(NodeId),
}

/// The node database.
pub struct NodeDb {
    db: Database,
}

impl NodeDb {
    /// Opens or creates the database file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, DbError> {
        Self::init(create(path.as_ref())?)
    }

    fn init(db: Database) -> Result<Self, DbError> {
        let w = db.begin_write().map_err(err)?;
        w.open_table(NODES).map_err(err)?;
        w.open_table(META).map_err(err)?;
        w.commit().map_err(err)?;
        Ok(NodeDb { db })
    }

    /// Applies `updates` in one transaction, within [`MAX_NODES`] and [`SUBNET_LIMIT`].
    pub fn apply(&self, updates: &[Update]) -> Result<(), DbError> {
        if updates.is_empty() {
            return Ok(());
        }
        let w = self.db.begin_write().map_err(err)?;
        {
            let mut t = w.open_table(NODES).map_err(err)?;
            // Loaded on the first new node only: refreshes of known nodes cost one lookup.
            let mut index: Option<Index> = None;
            for u in updates {
                match u {
                    Update::Pong(node, at) => {
                        let old = t
                            .get(node.id.0.as_slice())
                            .map_err(err)?
                            .and_then(|v| decode(&node.id, v.value()));
                        let rec = match old {
                            Some(old) => Record {
                                node: *node,
                                last_pong: *at,
                                fails: 0,
                                first_pong: old.first_pong.min(*at),
                                pongs: old.pongs.saturating_add(1),
                            },
                            None => {
                                let idx = match &mut index {
                                    Some(i) => i,
                                    None => index.insert(Index::load(&t)?),
                                };
                                match idx.admit(node, *at) {
                                    Admit::No => continue,
                                    Admit::Yes => {}
                                    Admit::Replacing(victim) => {
                                        t.remove(victim.0.as_slice()).map_err(err)?;
                                    }
                                }
                                Record {
                                    node: *node,
                                    last_pong: *at,
                                    fails: 0,
                                    first_pong: *at,
                                    pongs: 1,
                                }
                            }
                        };
                        t.insert(node.id.0.as_slice(), encode(&rec).as_slice())
                            .map_err(err)?;
                    }
                    Update::Failed(id) => {
                        let old = t
                            .get(id.0.as_slice())
                            .map_err(err)?
                            .and_then(|v| decode(id, v.value()));
                        if let Some(mut rec) = old {
                            rec.fails = rec.fails.saturating_add(1);
                            t.insert(id.0.as_slice(), encode(&rec).as_slice())
                                .map_err(err)?;
                            if let Some(i) = &mut index {
                                i.failed(id);
                            }
                        }
                    }
                }
            }
        }
        w.commit().map_err(err)
    }

    /// Number of stored nodes.
    pub fn len(&self) -> Result<usize, DbError> {
        let r = self.db.begin_read().map_err(err)?;
        let t = r.open_table(NODES).map_err(err)?;
        Ok(t.len().map_err(err)? as usize)
    }

    /// Whether no node is stored.
    pub fn is_empty(&self) -> Result<bool, DbError> {
        Ok(self.len()? == 0)
    }

    /// The stored record of `id`.
    pub fn get(&self, id: &NodeId) -> Result<Option<Record>, DbError> {
        let r = self.db.begin_read().map_err(err)?;
        let t = r.open_table(NODES).map_err(err)?;
        Ok(t.get(id.0.as_slice())
            .map_err(err)?
            .and_then(|v| decode(id, v.value())))
    }

    /// Up to `n` nodes that answered a ping within `max_age` before `now` (UNIX seconds),
    /// those that have kept answering longest first (none with missed pings before one
    /// without), at most [`SEED_SUBNET_LIMIT`] per /24.
    pub fn seeds(&self, now: u64, max_age: Duration, n: usize) -> Result<Vec<Node>, DbError> {
        let cutoff = now.saturating_sub(max_age.as_secs());
        let r = self.db.begin_read().map_err(err)?;
        let t = r.open_table(NODES).map_err(err)?;
        let mut found = Vec::new();
        for item in t.iter().map_err(err)? {
            let (k, v) = item.map_err(err)?;
            let Ok(id) = <[u8; 64]>::try_from(k.value()) else {
                continue;
            };
            if let Some(rec) = decode(&NodeId(id), v.value())
                && rec.last_pong >= cutoff
            {
                found.push(rec);
            }
        }
        found.sort_by_key(|r| {
            (
                r.fails,
                std::cmp::Reverse(r.proven()),
                std::cmp::Reverse(r.pongs),
                std::cmp::Reverse(r.last_pong),
            )
        });
        let mut per_net: HashMap<Subnet, usize> = HashMap::new();
        let picked = found.into_iter().filter(|r| {
            if !limited(r.node.ip) {
                return true;
            }
            let c = per_net.entry(subnet(r.node.ip)).or_insert(0);
            *c += 1;
            *c <= SEED_SUBNET_LIMIT
        });
        Ok(picked.take(n).map(|r| r.node).collect())
    }

    /// Deletes nodes whose last pong is older than `max_age`. Returns how many.
    pub fn expire(&self, now: u64, max_age: Duration) -> Result<usize, DbError> {
        let cutoff = now.saturating_sub(max_age.as_secs());
        let w = self.db.begin_write().map_err(err)?;
        let removed = {
            let mut t = w.open_table(NODES).map_err(err)?;
            let before = t.len().map_err(err)?;
            t.retain(|k, v| {
                <[u8; 64]>::try_from(k)
                    .ok()
                    .and_then(|id| decode(&NodeId(id), v))
                    .is_some_and(|r| r.last_pong >= cutoff)
            })
            .map_err(err)?;
            before.saturating_sub(t.len().map_err(err)?)
        };
        w.commit().map_err(err)?;
        Ok(removed as usize)
    }

    /// The stored sequence number of our record (0 if none).
    pub fn local_seq(&self) -> Result<u64, DbError> {
        let r = self.db.begin_read().map_err(err)?;
        let t = r.open_table(META).map_err(err)?;
        Ok(t.get("seq").map_err(err)?.map(|v| v.value()).unwrap_or(0))
    }

    /// Stores the sequence number of our record.
    pub fn set_local_seq(&self, seq: u64) -> Result<(), DbError> {
        let w = self.db.begin_write().map_err(err)?;
        w.open_table(META)
            .map_err(err)?
            .insert("seq", seq)
            .map_err(err)?;
        w.commit().map_err(err)
    }
}

/// `ip-len(1) || ip || udp(2) || tcp(2) || last-pong(8) || fails(4) || first-pong(8) ||
/// pongs(4)`, big endian. Records written before the last two fields existed decode with
/// `first-pong = last-pong` and one pong.
fn encode(r: &Record) -> Vec<u8> {
    let mut v = Vec::with_capacity(45);
    match r.node.ip {
        IpAddr::V4(a) => {
            v.push(4);
            v.extend_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            v.push(16);
            v.extend_from_slice(&a.octets());
        }
    }
    v.extend_from_slice(&r.node.udp.to_be_bytes());
    v.extend_from_slice(&r.node.tcp.to_be_bytes());
    v.extend_from_slice(&r.last_pong.to_be_bytes());
    v.extend_from_slice(&r.fails.to_be_bytes());
    v.extend_from_slice(&r.first_pong.to_be_bytes());
    v.extend_from_slice(&r.pongs.to_be_bytes());
    v
}

/// Inverse of [`encode`]; `None` for anything malformed (treated as absent).
fn decode(id: &NodeId, v: &[u8]) -> Option<Record> {
    let (&len, rest) = v.split_first()?;
    let (ip, rest) = rest.split_at_checked(usize::from(len))?;
    let ip = match len {
        4 => IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(ip).ok()?)),
        16 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(ip).ok()?)),
        _ => return None,
    };
    let (rest, extra) = match rest.len() {
        16 => (rest, None),
        28 => {
            let (a, b) = rest.split_at(16);
            (a, Some(b))
        }
        _ => return None,
    };
    let rest: [u8; 16] = rest.try_into().ok()?;
    let [
        u0,
        u1,
        t0,
        t1,
        p0,
        p1,
        p2,
        p3,
        p4,
        p5,
        p6,
        p7,
        f0,
        f1,
        f2,
        f3,
    ] = rest;
    let (udp, tcp) = (u16::from_be_bytes([u0, u1]), u16::from_be_bytes([t0, t1]));
    let last_pong = u64::from_be_bytes([p0, p1, p2, p3, p4, p5, p6, p7]);
    let fails = u32::from_be_bytes([f0, f1, f2, f3]);
    let (first_pong, pongs) = match extra {
        None => (last_pong, 1),
        Some(b) => {
            let b: [u8; 12] = b.try_into().ok()?;
            let [a0, a1, a2, a3, a4, a5, a6, a7, c0, c1, c2, c3] = b;
            (
                u64::from_be_bytes([a0, a1, a2, a3, a4, a5, a6, a7]),
                u32::from_be_bytes([c0, c1, c2, c3]),
            )
        }
    };
    Some(Record {
        node: Node {
            id: *id,
            ip,
            udp,
            tcp,
        },
        last_pong,
        fails,
        first_pong,
        pongs,
    })
}

/// What [`Index::admit`] decides for a new node.
enum Admit {
    Yes,
    No,
    /// Room is made by deleting this node.
    Replacing(NodeId),
}

/// A summary of every stored node, for the admission of new ones.
struct Index {
    nodes: HashMap<NodeId, (IpAddr, u64, u32)>,
    per_net: HashMap<Subnet, usize>,
}

impl Index {
    fn load(t: &impl ReadableTable<&'static [u8], &'static [u8]>) -> Result<Self, DbError> {
        let mut idx = Index {
            nodes: HashMap::new(),
            per_net: HashMap::new(),
        };
        for item in t.iter().map_err(err)? {
            let (k, v) = item.map_err(err)?;
            let Ok(id) = <[u8; 64]>::try_from(k.value()) else {
                continue;
            };
            if let Some(r) = decode(&NodeId(id), v.value()) {
                idx.add(r.node.id, r.node.ip, r.last_pong, r.fails);
            }
        }
        Ok(idx)
    }

    fn add(&mut self, id: NodeId, ip: IpAddr, last_pong: u64, fails: u32) {
        self.nodes.insert(id, (ip, last_pong, fails));
        if limited(ip) {
            *self.per_net.entry(subnet(ip)).or_insert(0) += 1;
        }
    }

    fn remove(&mut self, id: &NodeId) {
        if let Some((ip, ..)) = self.nodes.remove(id)
            && limited(ip)
            && let Some(c) = self.per_net.get_mut(&subnet(ip))
        {
            *c = c.saturating_sub(1);
        }
    }

    fn failed(&mut self, id: &NodeId) {
        if let Some(n) = self.nodes.get_mut(id) {
            n.2 = n.2.saturating_add(1);
        }
    }

    /// Whether `node`, verified at `at`, may be stored, and whom it replaces. Only a node
    /// that missed pings or is stale gives up its place: the worst of its subnet when the
    /// subnet is full, else the worst overall when the database is full.
    fn admit(&mut self, node: &Node, at: u64) -> Admit {
        let stale = at.saturating_sub(STALE_AFTER.as_secs());
        let net = limited(node.ip).then(|| subnet(node.ip));
        let net_full =
            net.is_some_and(|n| self.per_net.get(&n).copied().unwrap_or(0) >= SUBNET_LIMIT);
        let victim = if net_full {
            self.worst(|ip| Some(subnet(ip)) == net, stale)
        } else if self.nodes.len() >= MAX_NODES {
            self.worst(|_| true, stale)
        } else {
            self.add(node.id, node.ip, at, 0);
            return Admit::Yes;
        };
        let Some(victim) = victim else {
            return Admit::No;
        };
        self.remove(&victim);
        self.add(node.id, node.ip, at, 0);
        Admit::Replacing(victim)
    }

    /// The failing or stale node among those `pick` selects with the most missed pings,
    /// then the oldest last pong.
    fn worst(&self, pick: impl Fn(IpAddr) -> bool, stale: u64) -> Option<NodeId> {
        (self.nodes.iter())
            .filter(|(_, (ip, last, fails))| pick(*ip) && (*fails > 0 || *last < stale))
            .max_by_key(|(_, (_, last, fails))| (*fails, std::cmp::Reverse(*last)))
            .map(|(id, _)| *id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn temp_path(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("discv4-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("nodes.redb")
    }

    fn node(i: u8) -> Node {
        Node {
            id: NodeId([i; 64]),
            ip: [10, 0, 0, i].into(),
            udp: 30303,
            tcp: u16::from(i),
        }
    }

    #[test]
    fn seeds_recent_nodes_across_reopen() {
        let path = temp_path("seeds");
        let now = 1_700_000_000;
        {
            let db = NodeDb::open(&path).unwrap();
            let mut ups: Vec<Update> = (1..=40)
                .map(|i| Update::Pong(node(i), now - u64::from(i) * 60))
                .collect();
            ups.push(Update::Pong(node(41), now - 6 * 24 * 3600)); // too old
            ups.push(Update::Failed(node(1).id));
            ups.push(Update::Failed(NodeId([99; 64]))); // unknown: ignored
            db.apply(&ups).unwrap();
            db.set_local_seq(7).unwrap();
        }
        let db = NodeDb::open(&path).unwrap();
        assert_eq!(db.local_seq().unwrap(), 7);
        assert_eq!(db.get(&node(1).id).unwrap().unwrap().fails, 1);
        let seeds = db.seeds(now, SEED_MAX_AGE, SEED_COUNT).unwrap();
        assert_eq!(seeds.len(), SEED_COUNT);
        // Equal liveness: the most recent without missed pings first; node 1 missed one.
        assert_eq!(seeds[0], node(2));
        assert!(!seeds.contains(&node(1)));
        assert!(!seeds.contains(&node(41)));
        assert_eq!(db.expire(now, SEED_MAX_AGE).unwrap(), 1);
        assert!(db.get(&node(41).id).unwrap().is_none());
        assert_eq!(decode(&node(1).id, &[4, 1, 2]), None);
        let v6 = Node {
            ip: "::1".parse().unwrap(),
            ..node(3)
        };
        let rec = Record {
            node: v6,
            last_pong: 5,
            fails: 2,
            first_pong: 3,
            pongs: 9,
        };
        assert_eq!(decode(&v6.id, &encode(&rec)), Some(rec.clone()));
        // A record of the earlier format (without first pong and count) still reads.
        let old = &encode(&rec)[..33];
        let read = decode(&v6.id, old).unwrap();
        assert_eq!((read.first_pong, read.pongs), (5, 1));
    }

    fn public(i: u32, net: u32) -> Node {
        let mut id = [0u8; 64];
        id[..4].copy_from_slice(&i.to_be_bytes());
        id[4..8].copy_from_slice(&net.to_be_bytes());
        Node {
            id: NodeId(id),
            ip: std::net::Ipv4Addr::from(0x0800_0000 + (net << 8) + (i % 250) + 1).into(),
            udp: 30303,
            tcp: 30303,
        }
    }

    /// A flood of fresh verified identities from one /24, then from thousands of /24s,
    /// leaves the database bounded, and nodes that proved themselves stay.
    #[test]
    fn flood_of_fresh_nodes_is_bounded() {
        let path = temp_path("flood");
        let db = NodeDb::open(&path).unwrap();
        let now = 1_700_000_000;
        let keep = public(0, 1);
        db.apply(&[Update::Pong(keep, now - 3600)]).unwrap();
        db.apply(&[Update::Pong(keep, now)]).unwrap();
        let one_net: Vec<Update> = (1..1000).map(|i| Update::Pong(public(i, 1), now)).collect();
        db.apply(&one_net).unwrap();
        assert_eq!(db.len().unwrap(), SUBNET_LIMIT);
        assert!(db.get(&keep.id).unwrap().is_some(), "proven node kept");
        let many: Vec<Update> = (0..MAX_NODES as u32 + 500)
            .map(|net| Update::Pong(public(0, 1000 + net), now))
            .collect();
        db.apply(&many).unwrap();
        assert_eq!(db.len().unwrap(), MAX_NODES);
        assert!(db.get(&keep.id).unwrap().is_some(), "proven node kept");
        // A failing node gives up its place to a new one.
        db.apply(&[Update::Failed(public(0, 1000).id)]).unwrap();
        let fresh = public(0, 99_999);
        db.apply(&[Update::Pong(fresh, now + 1)]).unwrap();
        assert!(db.get(&fresh.id).unwrap().is_some());
        assert!(db.get(&public(0, 1000).id).unwrap().is_none());
        assert_eq!(db.len().unwrap(), MAX_NODES);
    }

    /// Restart seeds are the nodes that kept answering longest, not the newest entries a
    /// flood just wrote, and at most two per /24.
    #[test]
    fn seeds_prefer_proven_liveness() {
        let path = temp_path("liveness");
        let db = NodeDb::open(&path).unwrap();
        let now = 1_700_000_000;
        let proven: Vec<Node> = (0..40).map(|i| public(i, 10 + i / 2)).collect();
        let first: Vec<Update> = (proven.iter())
            .map(|n| Update::Pong(*n, now - 4 * 24 * 3600))
            .collect();
        db.apply(&first).unwrap();
        let again: Vec<Update> = (proven.iter())
            .map(|n| Update::Pong(*n, now - 7200))
            .collect();
        db.apply(&again).unwrap();
        let flood: Vec<Update> = (0..1000)
            .map(|net| Update::Pong(public(0, 5000 + net), now))
            .collect();
        db.apply(&flood).unwrap();
        let seeds = db.seeds(now, SEED_MAX_AGE, SEED_COUNT).unwrap();
        assert_eq!(seeds.len(), SEED_COUNT);
        assert!(seeds.iter().all(|s| proven.contains(s)), "{seeds:?}");
        // Three proven nodes in one /24: two of them seed.
        let crowded: Vec<Node> = (100..103).map(|i| public(i, 7)).collect();
        let path = temp_path("crowded");
        let db = NodeDb::open(&path).unwrap();
        let ups: Vec<Update> = crowded.iter().map(|n| Update::Pong(*n, now)).collect();
        db.apply(&ups).unwrap();
        assert_eq!(db.seeds(now, SEED_MAX_AGE, SEED_COUNT).unwrap().len(), 2);
    }
}
