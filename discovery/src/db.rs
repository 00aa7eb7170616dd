//! The persistent node database (redb).
//!
//! Stores every node that answered a ping, with the time of its last pong and its count of
//! unanswered pings since, plus our record's sequence number. Every write is one redb
//! transaction, committed with immediate durability, so a `kill -9` leaves either the old or
//! the new state, never a corrupt file.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::time::Duration;

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::node::{Node, NodeId};

/// Nodes used to seed the table on start (go-ethereum `seedCount`).
pub const SEED_COUNT: usize = 30;
/// Only nodes seen alive this recently seed the table (go-ethereum `seedMaxAge`, 5 days).
pub const SEED_MAX_AGE: Duration = Duration::from_secs(5 * 24 * 3600);

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

    /// Applies `updates` in one transaction.
    pub fn apply(&self, updates: &[Update]) -> Result<(), DbError> {
        if updates.is_empty() {
            return Ok(());
        }
        let w = self.db.begin_write().map_err(err)?;
        {
            let mut t = w.open_table(NODES).map_err(err)?;
            for u in updates {
                match u {
                    Update::Pong(node, at) => {
                        let rec = Record {
                            node: *node,
                            last_pong: *at,
                            fails: 0,
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
                        }
                    }
                }
            }
        }
        w.commit().map_err(err)
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
    /// most recent first.
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
        found.sort_by_key(|r| (std::cmp::Reverse(r.last_pong), r.fails));
        Ok(found.into_iter().take(n).map(|r| r.node).collect())
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

/// `ip-len(1) || ip || udp(2) || tcp(2) || last-pong(8) || fails(4)`, big endian.
fn encode(r: &Record) -> Vec<u8> {
    let mut v = Vec::with_capacity(33);
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
    Some(Record {
        node: Node {
            id: *id,
            ip,
            udp,
            tcp,
        },
        last_pong,
        fails,
    })
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
        assert_eq!(seeds[0], node(1));
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
        };
        assert_eq!(decode(&v6.id, &encode(&rec)), Some(rec));
    }
}
