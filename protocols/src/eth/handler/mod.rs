//! The per-peer task: Status handshake, then the session, which owns the peer's state
//! (its status, the hashes it knows, our requests in flight, its budgets and queues) and
//! handles the peer's messages: its requests ([`answer`]), the answers to ours
//! ([`responses`]) and its announcements and broadcasts ([`announce`]); and the node's
//! typed [`Command`]s (from the [`super::Handle`] and the fetcher). It publishes the
//! peer's status and known hashes to the node-level table ([`super::peer`]).

mod announce;
mod answer;
mod cells;
mod responses;

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::eth::messages::PooledTransaction;
use alloy_primitives::B256;
use rlpx::{DisconnectReason, ProtocolHandle};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::Instrument;

use super::messages::{self, BlockRangeUpdate, ETH69, Message, RequestPair, code};
use super::peer::{Command, Entry, Knows};
use super::requests::{Budget, Kind, Tracker};
use super::txfetch::Meta;
use super::txs::{self, FetchInput};
use super::verify::Meter;
use super::{
    Event, PeerEvent, PeerId, PeerInfo, PeerStatus, RequestError, Shared, UPDATE_EVENT_INTERVAL,
    status,
};
use announce::Announcement;
use answer::Request;
use responses::Response;

/// Why we disconnected a peer after the handshake. [`Error::disconnect_reason`] gives
/// the reason sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The Status exchange failed (see [`status::Error::disconnect_reason`]).
    #[error("status: {0}")]
    Status(#[from] status::Error),
    /// A message over [`messages::MAX_MESSAGE_SIZE`]: `BreachOfProtocol`.
    #[error("message {code:#04x} of {len} bytes is over the eth limit")]
    TooLarge {
        /// Message code.
        code: u8,
        /// Its size.
        len: usize,
    },
    /// A message that does not decode, or is not part of the version: `BreachOfProtocol`.
    #[error(transparent)]
    Decode(#[from] messages::Error),
    /// A second Status: `BreachOfProtocol`.
    #[error("status after the handshake")]
    UnexpectedStatus,
    /// A response to a request we did not make (unknown id, or an id of another kind, or
    /// a response type we never request: BlockAccessLists):
    /// `BreachOfProtocol`.
    #[error("unsolicited response {code:#04x}")]
    Unsolicited {
        /// Message code.
        code: u8,
    },
    /// A response with more items than asked for (or Receipts flagging an incomplete last
    /// list while holding none): `BreachOfProtocol`.
    #[error("response {code:#04x} has more items than requested")]
    TooManyItems {
        /// Message code.
        code: u8,
    },
    /// A NewPooledTransactionHashes whose three lists differ in length: `BreachOfProtocol`.
    #[error("inconsistent transaction announcement")]
    Announcement,
    /// A blob transaction broadcast in Transactions (EIP-4844: they are only announced):
    /// `BreachOfProtocol`.
    #[error("blob transaction broadcast")]
    BlobBroadcast,
    /// A PooledTransactions answer with a transaction we did not ask for, or out of
    /// order: `BreachOfProtocol`.
    #[error("unrequested pooled transaction")]
    Unrequested,
    /// A transaction with an invalid signature: `BreachOfProtocol`.
    #[error("transaction with an invalid signature")]
    BadSignature,
    /// A pooled transaction of another type than announced (EIP-5793): `BreachOfProtocol`.
    #[error("pooled transaction type differs from its announcement")]
    AnnouncedType,
    /// A Cells answer that does not fit our GetCells (bitmap not a subset, transactions
    /// not asked for, cells inconsistent with the bitmap): `BreachOfProtocol` (spec:
    /// "peers sending invalid or not requested element must be disconnected").
    #[error("cells answer: {0}")]
    Cells(#[from] messages::CellsError),
    /// A BlockRangeUpdate with earliest > latest or a zero hash: `BreachOfProtocol`.
    #[error("invalid block range update")]
    Range,
    /// More requests than [`super::Config::requests_per_second`] allows: `UselessPeer`.
    #[error("request budget exceeded")]
    Budget,
    /// New transactions beyond [`super::Config::tx_budget`] by a whole burst (see
    /// [`super::verify`]): `UselessPeer`. The protocol sets no rate, so this is no
    /// breach, but a peer flooding us is of no use.
    #[error("transaction budget exceeded")]
    TxFlood,
    /// NewBlock or NewBlockHashes while [`super::Config::block_gossip`] is off (public
    /// post-merge networks): `SubprotocolError`, as go-ethereum answers block gossip
    /// since it dropped pre-merge support.
    #[error("block gossip is not part of this network's protocol")]
    BlockGossip,
}

impl Error {
    /// The reason the peer is disconnected with.
    pub fn disconnect_reason(&self) -> DisconnectReason {
        match self {
            Error::Status(e) => e.disconnect_reason(),
            Error::Budget | Error::TxFlood => DisconnectReason::UselessPeer,
            Error::BlockGossip => DisconnectReason::SubprotocolError,
            _ => DisconnectReason::BreachOfProtocol,
        }
    }
}

/// Commands queued per peer before [`super::Handle`] callers wait.
const COMMAND_QUEUE: usize = 16;

/// Messages larger than this are decoded on the worker pool, not on the runtime: a
/// 10 MiB message takes tens of milliseconds to walk and decode, while a 64 KiB one (a
/// typical block or batch of transactions) takes well under one.
const DECODE_INLINE: usize = 64 * 1024;

/// Runs one peer: handshake, register, serve until the session ends, unregister.
pub(super) async fn run(shared: Arc<Shared>, peer: ProtocolHandle) {
    let id = peer.info().id;
    let version = peer.shared.cap.version;
    let span = tracing::debug_span!(
        target: "eth",
        "eth",
        peer = %rlpx::peer::short_id(&id),
        version
    );
    run_inner(shared, peer, id, version).instrument(span).await
}

async fn run_inner(shared: Arc<Shared>, mut peer: ProtocolHandle, id: PeerId, version: u32) {
    let ours = status::local(&*shared.chain, version);
    if peer
        .send(code::STATUS, Message::Status(ours).encode())
        .await
        .is_err()
    {
        return;
    }
    let first = tokio::time::timeout(shared.config.handshake_timeout, peer.recv()).await;
    let checked = match first {
        Err(_) => Err(status::Error::Timeout),
        Ok(None) => return,
        Ok(Some((c, data))) => status::validate(&*shared.chain, version, c, &data),
    };
    let status = match checked {
        Ok(s) => s,
        Err(reason) => {
            tracing::debug!(target: "eth", %reason, "status handshake failed");
            peer.disconnect(reason.disconnect_reason());
            shared.emit(Event::StatusFailed { peer: id, reason });
            return;
        }
    };
    tracing::debug!(target: "eth", head = %status.head_hash, number = ?status.head_number, "eth peer connected");

    let session = shared.sessions.fetch_add(1, Ordering::Relaxed);
    let (tx, commands) = mpsc::channel(COMMAND_QUEUE);
    let txq = Arc::new(txs::TxQueue::default());
    let knows = Arc::new(Knows::default());
    let (status_tx, status_rx) = watch::channel(status);
    shared
        .fetch
        .get_or_init(|| txs::spawn_fetcher(Arc::downgrade(&shared), shared.config.fetch.clone()));
    let entry = Entry {
        session,
        version,
        commands: tx,
        closer: peer.sender(),
        txs: txq.clone(),
        status: status_rx,
        knows: knows.clone(),
    };
    // Announced under the table's lock: events come in the table's order.
    shared.table.insert(id, entry, || {
        shared.peer_event(PeerEvent::Joined(PeerInfo { id, status }))
    });
    shared.emit(Event::PeerConnected { peer: id, status });
    txs::sync_pool(&shared, &txq);

    let now = Instant::now().into_std();
    let mut s = Session {
        budget: Budget::new(
            shared.config.request_burst,
            shared.config.requests_per_second,
            now,
        ),
        tracker: Tracker::new(
            std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish(),
        ),
        announced: shared.chain.head().hash,
        meter: Meter::new(&shared.config.tx_budget, now),
        knows,
        status: status_tx,
        block_bytes: Default::default(),
        last_update: None,
        update_pending: false,
        shared: shared.clone(),
        peer,
        id,
        session,
        version,
    };
    let error = s.run(commands, &txq).await;
    for reply in s.tracker.drain() {
        reply.fail(RequestError::Disconnected);
    }
    // A stale session (the peer is back in a new one) leaves the table and the fetcher's
    // state alone: they are the new session's.
    if shared
        .table
        .remove(&id, session, || shared.peer_event(PeerEvent::Left(id)))
    {
        shared.fetcher(FetchInput::PeerLeft(id));
    }
    if let Some(e) = &error {
        tracing::debug!(target: "eth", error = %e, "disconnecting eth peer");
        s.peer.disconnect(e.disconnect_reason());
    }
    shared.emit(Event::PeerDisconnected { peer: id, error });
}

/// Where an answer to one of our requests goes.
#[derive(Debug)]
enum Reply {
    Headers(oneshot::Sender<Result<Vec<alloy_consensus::Header>, RequestError>>),
    Bodies(
        oneshot::Sender<
            Result<Vec<alloy_consensus::BlockBody<alloy_consensus::TxEnvelope>>, RequestError>,
        >,
    ),
    Receipts(oneshot::Sender<Result<super::receipts::Answer, RequestError>>),
    /// The fetcher's request `id` for these announced transactions.
    Pooled(u64, Vec<(B256, Meta)>),
    /// The data cells of these eth/72 blob transactions, which came without blobs.
    Cells(messages::GetCells, Vec<PooledTransaction>),
}

impl Reply {
    fn fail(self, e: RequestError) {
        // The requester may have given up; nothing to do then.
        match self {
            Reply::Headers(tx) => drop(tx.send(Err(e))),
            Reply::Bodies(tx) => drop(tx.send(Err(e))),
            Reply::Receipts(tx) => drop(tx.send(Err(e))),
            // The fetcher has its own (shorter) timeout and hears of disconnects; blob
            // transactions whose cells do not come are dropped (others may announce them).
            Reply::Pooled(..) | Reply::Cells(..) => {}
        }
    }
}

/// Per-peer state after the handshake.
struct Session {
    shared: Arc<Shared>,
    peer: ProtocolHandle,
    id: PeerId,
    session: u64,
    version: u32,
    budget: Budget,
    tracker: Tracker<Reply>,
    /// Head hash last announced to the peer (eth/69 BlockRangeUpdate).
    announced: B256,
    /// The peer's transaction budget.
    meter: Meter,
    /// The block and transaction hashes the peer is known to have; this session fills
    /// it, the node reads it.
    knows: Arc<Knows>,
    /// The peer's status as we know it (Status, then its announcements), published to
    /// the node's table.
    status: watch::Sender<PeerStatus>,
    /// Bytes of the blocks of its NewBlock events the node still holds.
    block_bytes: Arc<std::sync::atomic::AtomicUsize>,
    /// When the last [`PeerEvent::Updated`] was published.
    last_update: Option<Instant>,
    /// A status change waits for [`UPDATE_EVENT_INTERVAL`] to pass to be published.
    update_pending: bool,
}

/// The session ended: `None` when the connection closed, `Some` when we end it.
type Outcome = Option<Error>;

impl Session {
    async fn run(&mut self, mut commands: mpsc::Receiver<Command>, txq: &txs::TxQueue) -> Outcome {
        let period = self.shared.config.range_update_interval;
        let mut range_tick = tokio::time::interval_at(Instant::now() + period, period);
        loop {
            let deadline = self.tracker.next_deadline().map(Instant::from_std);
            let (update_pending, update_due) = (self.update_pending, self.update_due());
            tokio::select! {
                msg = self.peer.recv() => {
                    let (c, data) = msg?;
                    let started = std::time::Instant::now();
                    if let Err(e) = self.on_message(c, data).await {
                        return Some(e);
                    }
                    self.shared.metrics.observe_handling(c, started.elapsed());
                }
                Some(cmd) = commands.recv() => {
                    if !self.on_command(cmd).await {
                        return None;
                    }
                }
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                    for reply in self.tracker.expire(Instant::now().into_std()) {
                        tracing::debug!(target: "eth", "request timed out");
                        reply.fail(RequestError::Timeout);
                    }
                }
                _ = txq.notify.notified() => {
                    for (c, data) in txq.drain(&self.knows, self.version) {
                        if !self.send(c, data).await {
                            return None;
                        }
                    }
                }
                _ = tokio::time::sleep_until(update_due), if update_pending => {
                    self.publish_update(Instant::now());
                }
                _ = range_tick.tick(), if self.version >= ETH69 => {
                    if !self.announce_range().await {
                        return None;
                    }
                }
            }
        }
    }

    /// When a coalesced status change is due to be published.
    fn update_due(&self) -> Instant {
        self.last_update
            .map_or_else(Instant::now, |t| t + UPDATE_EVENT_INTERVAL)
    }

    /// Sends BlockRangeUpdate if our head moved since the last announcement.
    async fn announce_range(&mut self) -> bool {
        let chain = &self.shared.chain;
        let head = chain.head();
        if head.hash == self.announced {
            return true;
        }
        self.announced = head.hash;
        let m = Message::BlockRangeUpdate(BlockRangeUpdate {
            earliest: chain.earliest().min(head.number),
            latest: head.number,
            latest_hash: head.hash,
        });
        self.send(m.code(), m.encode()).await
    }

    async fn send(&self, c: u8, data: bytes::Bytes) -> bool {
        self.peer.send(c, data).await.is_ok()
    }

    async fn on_command(&mut self, cmd: Command) -> bool {
        let (kind, out) = match cmd {
            Command::SendBlock {
                hash,
                number,
                new_block,
            } => return self.send_block(hash, number, new_block).await,
            Command::FetchPooled { id, hashes } => return self.fetch_pooled(id, hashes).await,
            Command::Headers { req, reply } => (
                Kind::Headers { amount: req.amount },
                Outgoing::Headers(req, Reply::Headers(reply)),
            ),
            Command::Bodies { hashes, reply } => (
                Kind::Bodies {
                    count: hashes.len(),
                },
                Outgoing::Bodies(hashes, Reply::Bodies(reply)),
            ),
            Command::Receipts {
                hashes,
                first_index,
                reply,
            } => (
                Kind::Receipts {
                    count: hashes.len(),
                },
                Outgoing::Receipts(hashes, first_index, Reply::Receipts(reply)),
            ),
        };
        if self.tracker.in_flight() >= self.shared.config.max_in_flight {
            out.into_reply().fail(RequestError::Busy);
            return true;
        }
        let now = Instant::now().into_std();
        let timeout = self.shared.config.request_timeout;
        let msg = match out {
            Outgoing::Headers(req, reply) => Message::GetBlockHeaders(RequestPair {
                request_id: self.tracker.start(kind, now, timeout, reply),
                message: req,
            }),
            Outgoing::Bodies(hashes, reply) => Message::GetBlockBodies(RequestPair {
                request_id: self.tracker.start(kind, now, timeout, reply),
                message: hashes,
            }),
            Outgoing::Receipts(hashes, first_block_receipt_index, reply) => {
                let request_id = self.tracker.start(kind, now, timeout, reply);
                if self.version >= messages::ETH70 {
                    Message::GetReceipts70(messages::GetReceipts70 {
                        request_id,
                        first_block_receipt_index,
                        hashes,
                    })
                } else {
                    Message::GetReceipts(RequestPair {
                        request_id,
                        message: hashes,
                    })
                }
            }
        };
        self.send(msg.code(), msg.encode()).await
    }

    /// Sends block `hash` unless the peer knows it (then marks it known): `new_block` in
    /// full to an eth/68 peer, else NewBlockHashes. False if the session closed.
    async fn send_block(
        &mut self,
        hash: B256,
        number: u64,
        new_block: Option<bytes::Bytes>,
    ) -> bool {
        if !self.knows.mark_block(hash) {
            return true;
        }
        match new_block {
            Some(data) if self.version < ETH69 => self.send(code::NEW_BLOCK, data).await,
            _ => {
                let m = Message::NewBlockHashes(vec![messages::BlockHashNumber { hash, number }]);
                self.send(m.code(), m.encode()).await
            }
        }
    }

    /// Sends the fetcher's GetPooledTransactions (not counted against `max_in_flight`:
    /// the fetcher keeps at most one per peer).
    async fn fetch_pooled(&mut self, id: u64, hashes: Vec<(B256, Meta)>) -> bool {
        let now = Instant::now().into_std();
        let kind = Kind::Pooled {
            count: hashes.len(),
        };
        let list: Vec<_> = hashes.iter().map(|h| h.0).collect();
        let timeout = self.shared.config.request_timeout;
        let request_id = self
            .tracker
            .start(kind, now, timeout, Reply::Pooled(id, hashes));
        let msg = Message::GetPooledTransactions(RequestPair {
            request_id,
            message: list,
        });
        self.send(msg.code(), msg.encode()).await
    }

    async fn on_message(&mut self, c: u8, data: bytes::Bytes) -> Result<(), Error> {
        if data.len() > messages::MAX_MESSAGE_SIZE {
            return Err(Error::TooLarge {
                code: c,
                len: data.len(),
            });
        }
        let len = data.len();
        let msg = if len > DECODE_INLINE {
            let version = self.version;
            let job = move || Message::decode(version, c, &data);
            match self.shared.workers.run(job).await {
                Some(m) => m?,
                // The runtime is shutting down.
                None => return Ok(()),
            }
        } else {
            Message::decode(self.version, c, &data)?
        };
        tracing::trace!(target: "eth", code = c, len, "message");
        match msg {
            Message::Status(_) => Err(Error::UnexpectedStatus),
            Message::GetBlockHeaders(r) => self.on_request(Request::Headers(r)).await,
            Message::GetBlockBodies(r) => self.on_request(Request::Bodies(r)).await,
            Message::GetReceipts(r) => self.on_request(Request::Receipts(r)).await,
            Message::GetReceipts70(r) => self.on_request(Request::Receipts70(r)).await,
            Message::GetBlockAccessLists(r) => self.on_request(Request::AccessLists(r)).await,
            Message::GetCells(r) => self.on_request(Request::Cells(r)).await,
            Message::GetPooledTransactions(r) => self.on_request(Request::Pooled(r)).await,
            Message::BlockHeaders(r) => self.on_response(c, Response::Headers(r)).await,
            Message::BlockBodies(r) => self.on_response(c, Response::Bodies(r)).await,
            Message::PooledTransactions(r) => self.on_response(c, Response::Pooled(r)).await,
            Message::Cells(r) => self.on_response(c, Response::Cells(r)).await,
            Message::Receipts68(r) => self.on_response(c, Response::receipts68(r)).await,
            Message::Receipts69(r) => self.on_response(c, Response::receipts69(r)).await,
            Message::Receipts70(r) => self.on_response(c, Response::receipts70(r)).await,
            // We never ask for block access lists (nor use them).
            Message::BlockAccessLists(_) => Err(Error::Unsolicited { code: c }),
            Message::NewBlockHashes(_) | Message::NewBlock(_)
                if !self.shared.config.block_gossip =>
            {
                Err(Error::BlockGossip)
            }
            Message::NewBlockHashes(a) => self.on_announcement(Announcement::BlockHashes(a)).await,
            Message::NewBlock(b) => self.on_announcement(Announcement::Block(b)).await,
            Message::NewPooledTransactionHashes(a) => {
                self.on_announcement(Announcement::TxHashes(a)).await
            }
            // The cells on offer are of no use to us: we do not fetch cells (EIP-8070
            // leaves fetching to the node).
            Message::NewPooledTransactionHashes72(a) => {
                self.on_announcement(Announcement::TxHashes(a.announcement))
                    .await
            }
            Message::Transactions(l) => self.on_announcement(Announcement::Txs(l)).await,
            Message::BlockRangeUpdate(r) => self.on_announcement(Announcement::Range(r)).await,
        }
    }

    /// Changes the peer's status with `f` and, if `f` says it changed, publishes it: the
    /// table's snapshot, and [`PeerEvent::Updated`] while this session is the peer's
    /// entry (not a stale one ending after a reconnect).
    /// Changes within [`UPDATE_EVENT_INTERVAL`] of the last event are coalesced: the
    /// session publishes the latest status when it ends ([`Session::publish_update`]).
    fn update_status(&mut self, f: impl FnOnce(&mut PeerStatus) -> bool) {
        if !self.status.send_if_modified(f) {
            return;
        }
        let now = Instant::now();
        match self.last_update {
            Some(t) if now < t + UPDATE_EVENT_INTERVAL => self.update_pending = true,
            _ => self.publish_update(now),
        }
    }

    /// Publishes the current status as [`PeerEvent::Updated`].
    fn publish_update(&mut self, now: Instant) {
        self.last_update = Some(now);
        self.update_pending = false;
        let info = PeerInfo {
            id: self.id,
            status: *self.status.borrow(),
        };
        // Under the table's lock, so it cannot pass a rejoin's `Joined`.
        self.shared.table.if_current(&self.id, self.session, || {
            self.shared.peer_event(PeerEvent::Updated(info))
        });
    }
}

/// One of our requests, before it gets its id.
enum Outgoing {
    Headers(messages::GetBlockHeaders, Reply),
    Bodies(Vec<B256>, Reply),
    /// Hashes and eth/70 `firstBlockReceiptIndex`.
    Receipts(Vec<B256>, u64, Reply),
}

impl Outgoing {
    fn into_reply(self) -> Reply {
        match self {
            Outgoing::Headers(_, r) | Outgoing::Bodies(_, r) | Outgoing::Receipts(_, _, r) => r,
        }
    }
}
