//! The tokio driver: runs a [`Protocol`] over a bound UDP socket and persists to a
//! [`NodeDb`].

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use secp256k1::SecretKey;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::db::{self, DbError, NodeDb, Update};
use crate::enr::{Enr, EnrError};
use crate::node::{Node, NodeId};
use crate::packet::MAX_PACKET_SIZE;
use crate::proto::{Event, LookupId, Metrics, Protocol};

/// How often nodes not seen for [`db::SEED_MAX_AGE`] are deleted from the node database
/// (go-ethereum expires hourly too), so it cannot grow without bound.
const DB_EXPIRE_INTERVAL: Duration = Duration::from_secs(3600);
/// Buffered database updates beyond which the oldest are dropped while the writer is
/// behind (a slow disk): a few minutes of bonds at a busy node's rate; the database is a
/// cache of good nodes, losing some updates costs nothing but seeds.
const MAX_PENDING_DB: usize = 4096;
/// Writes queued to the database thread; more wait in the driver's buffer.
const DB_QUEUE: usize = 4;

/// Errors of the service layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The socket failed (binding, local address).
    #[error("discovery socket error: {0}")]
    Io(#[from] std::io::Error),
    /// Our record could not be built or changed.
    #[error("local node record: {0}")]
    Enr(#[from] EnrError),
    /// The node database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The service task has stopped.
    #[error("the discovery service has stopped")]
    Closed,
}

enum Command {
    TableLen(oneshot::Sender<usize>),
    Lookup(NodeId, oneshot::Sender<Vec<Node>>),
    TableNodes(usize, oneshot::Sender<Vec<Node>>),
    SetEth(Option<Vec<u8>>, oneshot::Sender<Result<(), EnrError>>),
    SetEndpoint(IpAddr, u16, u16, oneshot::Sender<Result<(), EnrError>>),
    LocalEnr(oneshot::Sender<Enr>),
    AddNode(Node),
    Metrics(oneshot::Sender<Metrics>),
    Shutdown(oneshot::Sender<()>),
}

/// Spawns discovery tasks.
pub struct Service;

impl Service {
    /// Starts discovery on `socket` with identity `key` on the current tokio runtime.
    ///
    /// With a database, the table is seeded with up to 30 nodes seen alive in the last
    /// 5 days, those that kept answering longest first (before the bootnodes), bonds are
    /// recorded (on a blocking thread: redb commits fsync), and our record's sequence
    /// number keeps increasing across restarts.
    pub fn spawn(
        socket: UdpSocket,
        key: SecretKey,
        config: Config,
        db: Option<NodeDb>,
    ) -> Result<Handle, Error> {
        let local_addr = socket.local_addr()?;
        let unix = unix_now();
        let flush_interval = config.db_flush_interval;
        let seq = match &db {
            Some(db) => db.local_seq()?.saturating_add(1),
            None => 1,
        };
        let mut proto = Protocol::new(
            key,
            local_addr,
            config,
            Instant::now().into_std(),
            unix,
            StdRng::from_os_rng(),
            seq,
        )?;
        if let Some(db) = &db {
            db.set_local_seq(seq)?;
            for n in db.seeds(unix, db::SEED_MAX_AGE, db::SEED_COUNT)? {
                proto.add_node(n);
            }
        }
        let local = proto.local_node();
        info!(target: "discv4", node = %local, table = proto.table().len(), "discovery started");
        let (tx, rx) = mpsc::channel(64);
        let driver = Driver {
            proto,
            socket: Arc::new(socket),
            db: db.map(DbWriter::spawn),
            pending_seq: None,
            flush_interval,
            v6_socket: local_addr.is_ipv6(),
            rx,
            pending_db: Vec::new(),
            lookups: HashMap::new(),
        };
        tokio::spawn(driver.run());
        Ok(Handle { tx, local })
    }
}

/// A cloneable handle to a running service.
#[derive(Clone)]
pub struct Handle {
    tx: mpsc::Sender<Command>,
    local: Node,
}

impl Handle {
    async fn ask<T>(&self, cmd: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, Error> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(cmd(tx)).await.map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)
    }

    /// Our node (as of start; see [`Handle::local_enr`] for the current record).
    pub fn local_node(&self) -> Node {
        self.local
    }

    /// Our current signed record.
    pub async fn local_enr(&self) -> Result<Enr, Error> {
        self.ask(Command::LocalEnr).await
    }

    /// Entries in the routing table.
    pub async fn table_len(&self) -> Result<usize, Error> {
        self.ask(Command::TableLen).await
    }

    /// Up to `n` random nodes from the table.
    pub async fn table_nodes(&self, n: usize) -> Result<Vec<Node>, Error> {
        self.ask(|tx| Command::TableNodes(n, tx)).await
    }

    /// Runs a lookup for `target` and returns up to 16 closest nodes that answered.
    pub async fn lookup(&self, target: NodeId) -> Result<Vec<Node>, Error> {
        self.ask(|tx| Command::Lookup(target, tx)).await
    }

    /// Sets (or removes) the `eth` entry of our record from its raw RLP encoding.
    pub async fn set_eth_entry(&self, raw: Option<Vec<u8>>) -> Result<(), Error> {
        Ok(self.ask(|tx| Command::SetEth(raw, tx)).await??)
    }

    /// Fixes the endpoint of our record to `ip` with the given ports (0 keeps a port),
    /// bumping its seq when it changes: what a NAT port mapping reports. Pong votes no
    /// longer move the address afterwards.
    pub async fn set_external_endpoint(&self, ip: IpAddr, udp: u16, tcp: u16) -> Result<(), Error> {
        Ok(self
            .ask(|tx| Command::SetEndpoint(ip, udp, tcp, tx))
            .await??)
    }

    /// Adds a known node to the table (unverified).
    pub async fn add_node(&self, node: Node) -> Result<(), Error> {
        self.tx
            .send(Command::AddNode(node))
            .await
            .map_err(|_| Error::Closed)
    }

    /// Packet counters.
    pub async fn metrics(&self) -> Result<Metrics, Error> {
        self.ask(Command::Metrics).await
    }

    /// An endless supply of random nodes for a dialer: table entries first, then the results
    /// of random lookups.
    pub fn random_nodes(&self) -> RandomNodes {
        RandomNodes {
            handle: self.clone(),
            buf: Vec::new(),
            seen: HashSet::new(),
        }
    }

    /// Stops the service and flushes the node database. Idempotent.
    pub async fn shutdown(&self) {
        let _ = self.ask(Command::Shutdown).await;
    }
}

/// Random nodes from the table and from random lookups; see [`Handle::random_nodes`].
pub struct RandomNodes {
    handle: Handle,
    buf: Vec<Node>,
    seen: HashSet<NodeId>,
}

impl RandomNodes {
    /// The next node not returned recently; `None` once the service stopped.
    pub async fn next(&mut self) -> Option<Node> {
        loop {
            if let Some(n) = self.buf.pop() {
                return Some(n);
            }
            let mut found = self.handle.table_nodes(16).await.ok()?;
            if found.iter().all(|n| self.seen.contains(&n.id)) {
                let mut target = [0u8; 64];
                rand::rng().fill_bytes(&mut target);
                found = self.handle.lookup(NodeId(target)).await.ok()?;
            }
            found.retain(|n| !self.seen.contains(&n.id));
            if found.is_empty() {
                // Everything reachable was handed out: start over after a pause.
                self.seen.clear();
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            if self.seen.len() > 10_000 {
                self.seen.clear();
            }
            self.seen.extend(found.iter().map(|n| n.id));
            self.buf = found;
        }
    }
}

/// Work for the database thread.
enum DbJob {
    Apply(Vec<Update>),
    Expire(u64),
    SetSeq(u64),
    /// Closes the database, then acknowledges.
    Close(oneshot::Sender<()>),
}

/// The node database on a blocking thread of its own: redb commits fsync, which must not
/// stall the packet loop (and every peer's lookups with it).
struct DbWriter {
    jobs: mpsc::Sender<DbJob>,
}

impl DbWriter {
    fn spawn(db: NodeDb) -> Self {
        let (jobs, mut rx) = mpsc::channel(DB_QUEUE);
        tokio::task::spawn_blocking(move || {
            while let Some(job) = rx.blocking_recv() {
                match job {
                    DbJob::Apply(updates) if updates.is_empty() => {}
                    DbJob::Apply(updates) => {
                        // Both lines mark the commit for the crash tests
                        // (`tests/discovery_kill.rs`).
                        debug!(target: "discv4", updates = updates.len(), "writing node database");
                        match db.apply(&updates) {
                            Ok(()) => {
                                debug!(target: "discv4", updates = updates.len(), "node database written")
                            }
                            Err(e) => {
                                warn!(target: "discv4", error = %e, updates = updates.len(), "writing node database failed")
                            }
                        }
                    }
                    DbJob::Expire(now) => match db.expire(now, db::SEED_MAX_AGE) {
                        Ok(n) if n > 0 => {
                            debug!(target: "discv4", removed = n, "expired old nodes");
                        }
                        Ok(_) => {}
                        Err(e) => {
                            warn!(target: "discv4", error = %e, "expiring the node database failed");
                        }
                    },
                    DbJob::SetSeq(seq) => {
                        if let Err(e) = db.set_local_seq(seq) {
                            warn!(target: "discv4", error = %e, "storing record seq failed");
                        }
                    }
                    DbJob::Close(ack) => {
                        drop(db);
                        let _ = ack.send(());
                        return;
                    }
                }
            }
        });
        DbWriter { jobs }
    }

    /// Hands `pending` updates and a pending record seq to the writer without waiting;
    /// what it has no room for stays buffered, the oldest updates dropped past
    /// [`MAX_PENDING_DB`].
    fn hand_over(&self, pending: &mut Vec<Update>, seq: &mut Option<u64>) {
        if let Some(s) = *seq
            && self.jobs.try_send(DbJob::SetSeq(s)).is_ok()
        {
            *seq = None;
        }
        if pending.is_empty() {
            return;
        }
        let updates = std::mem::take(pending);
        if let Err(e) = self.jobs.try_send(DbJob::Apply(updates)) {
            let (mpsc::error::TrySendError::Full(DbJob::Apply(mut back))
            | mpsc::error::TrySendError::Closed(DbJob::Apply(mut back))) = e
            else {
                return;
            };
            let over = back.len().saturating_sub(MAX_PENDING_DB);
            if over > 0 {
                debug!(target: "discv4", dropped = over, "node database behind, dropping updates");
                back.drain(..over);
            }
            *pending = back;
        }
    }
}

struct Driver {
    proto: Protocol,
    socket: Arc<UdpSocket>,
    db: Option<DbWriter>,
    /// A record seq the writer had no room for yet.
    pending_seq: Option<u64>,
    /// [`Config::db_flush_interval`].
    flush_interval: Duration,
    /// The socket is IPv6 (dual-stack): IPv4 destinations go out in mapped form, since
    /// the protocol sees every address in canonical form (`node::canonical_ip`).
    v6_socket: bool,
    rx: mpsc::Receiver<Command>,
    pending_db: Vec<Update>,
    lookups: HashMap<LookupId, oneshot::Sender<Vec<Node>>>,
}

impl Driver {
    async fn run(mut self) {
        let mut buf = vec![0u8; MAX_PACKET_SIZE * 2];
        let mut flush_at = Instant::now() + self.flush_interval;
        let mut expire_at = Instant::now();
        let mut shutdown = None;
        loop {
            self.drain().await;
            if shutdown.is_some() {
                break;
            }
            let timeout = self
                .proto
                .next_timeout()
                .map(Instant::from_std)
                .unwrap_or(flush_at)
                .min(flush_at);
            tokio::select! {
                r = self.socket.recv_from(&mut buf) => match r {
                    Ok((n, from)) => {
                        let data = buf.get(..n).unwrap_or_default();
                        self.proto.handle_packet(Instant::now().into_std(), from, data);
                    }
                    Err(e) => debug!(target: "discv4", error = %e, "receive failed"),
                },
                _ = tokio::time::sleep_until(timeout) => {
                    let now = Instant::now();
                    self.proto.handle_timeout(now.into_std());
                    if now >= flush_at {
                        self.flush_db();
                        flush_at = now + self.flush_interval;
                        if now >= expire_at {
                            self.expire_db();
                            expire_at = now + DB_EXPIRE_INTERVAL;
                        }
                    }
                }
                cmd = self.rx.recv() => match cmd {
                    Some(Command::Shutdown(ack)) => shutdown = Some(ack),
                    Some(cmd) => self.command(cmd),
                    None => break,
                },
            }
        }
        self.close_db().await;
        info!(target: "discv4", "discovery stopped");
        if let Some(ack) = shutdown {
            let _ = ack.send(());
        }
    }

    fn command(&mut self, cmd: Command) {
        let now = Instant::now().into_std();
        match cmd {
            Command::TableLen(tx) => {
                let _ = tx.send(self.proto.table().len());
            }
            Command::TableNodes(n, tx) => {
                let _ = tx.send(self.proto.random_nodes(n));
            }
            Command::Lookup(target, tx) => {
                let id = self.proto.lookup(now, target);
                self.lookups.insert(id, tx);
            }
            Command::SetEth(raw, tx) => {
                let _ = tx.send(self.proto.set_eth_entry(raw));
            }
            Command::SetEndpoint(ip, udp, tcp, tx) => {
                let _ = tx.send(self.proto.set_external_endpoint(ip, udp, tcp));
            }
            Command::LocalEnr(tx) => {
                let _ = tx.send(self.proto.local_enr().clone());
            }
            Command::AddNode(n) => self.proto.add_node(n),
            Command::Metrics(tx) => {
                let _ = tx.send(self.proto.metrics().clone());
            }
            Command::Shutdown(_) => {}
        }
    }

    async fn drain(&mut self) {
        while let Some(t) = self.proto.poll_transmit() {
            let to = match t.to {
                SocketAddr::V4(v4) if self.v6_socket => {
                    SocketAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port())
                }
                to => to,
            };
            if let Err(e) = self.socket.send_to(&t.data, to).await {
                debug!(target: "discv4", to = %t.to, error = %e, "send failed");
            }
        }
        while let Some(e) = self.proto.poll_event() {
            match e {
                Event::Bonded(n) => {
                    debug!(target: "discv4", node = %n.id, "bonded");
                    self.pending_db.push(Update::Pong(n, unix_now()));
                }
                Event::PingFailed(id) => self.pending_db.push(Update::Failed(id)),
                Event::LookupDone { id, nodes, .. } => {
                    if let Some(tx) = self.lookups.remove(&id) {
                        let _ = tx.send(nodes);
                    }
                }
                Event::LocalEnrUpdated(enr) => {
                    info!(target: "discv4", seq = enr.seq(), "local record updated");
                    self.pending_seq = Some(enr.seq());
                    self.flush_db();
                }
                Event::Removed(_) | Event::Enr(_) => {}
            }
        }
        if self.pending_db.len() >= 1000 {
            self.flush_db();
        }
    }

    /// Queues deletion of nodes not seen for [`db::SEED_MAX_AGE`]; skipped when the
    /// writer is busy (the next hour's run catches up).
    fn expire_db(&self) {
        if let Some(db) = &self.db {
            let _ = db.jobs.try_send(DbJob::Expire(unix_now()));
        }
    }

    /// Hands buffered updates to the writer without waiting; when it is behind they stay
    /// buffered, the oldest dropped past [`MAX_PENDING_DB`].
    fn flush_db(&mut self) {
        match &self.db {
            Some(db) => db.hand_over(&mut self.pending_db, &mut self.pending_seq),
            None => self.pending_db.clear(),
        }
    }

    /// Writes everything buffered and closes the database, waiting for both, so the
    /// caller may reopen it at once.
    async fn close_db(&mut self) {
        let Some(db) = self.db.take() else { return };
        let mut jobs = Vec::new();
        if let Some(seq) = self.pending_seq.take() {
            jobs.push(DbJob::SetSeq(seq));
        }
        jobs.push(DbJob::Apply(std::mem::take(&mut self.pending_db)));
        for job in jobs {
            if db.jobs.send(job).await.is_err() {
                return;
            }
        }
        let (ack, done) = oneshot::channel();
        if db.jobs.send(DbJob::Close(ack)).await.is_ok() {
            let _ = done.await;
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Binds a UDP socket at `addr` and spawns the service (a convenience over [`Service::spawn`]).
pub async fn bind(
    addr: SocketAddr,
    key: SecretKey,
    config: Config,
    db: Option<NodeDb>,
) -> Result<Handle, Error> {
    let socket = UdpSocket::bind(addr).await?;
    Service::spawn(socket, key, config, db)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pong(i: u32) -> Update {
        let mut id = [1u8; 64];
        id[..4].copy_from_slice(&i.to_be_bytes());
        let node = Node {
            id: NodeId(id),
            ip: [8, 8, 8, 8].into(),
            udp: 1,
            tcp: 1,
        };
        Update::Pong(node, u64::from(i))
    }

    /// A database that does not keep up (here: a writer that never reads) neither stalls
    /// the packet loop nor lets the buffer grow: handing over returns at once and keeps
    /// at most [`MAX_PENDING_DB`] updates, the newest.
    #[test]
    fn a_stuck_database_never_blocks_the_driver() {
        let (jobs, _stuck) = mpsc::channel(DB_QUEUE);
        let writer = DbWriter { jobs };
        let mut pending = Vec::new();
        let mut seq = Some(5);
        let mut next = 0u32;
        for _ in 0..DB_QUEUE + 20 {
            pending.extend((0..1000).map(|_| {
                next += 1;
                pong(next)
            }));
            writer.hand_over(&mut pending, &mut seq);
        }
        assert!(pending.len() <= MAX_PENDING_DB, "{}", pending.len());
        assert_eq!(pending.last(), Some(&pong(next)), "the newest are kept");
        assert_eq!(seq, None, "the seq went first");
    }
}
