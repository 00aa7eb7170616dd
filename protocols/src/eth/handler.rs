//! The per-peer task: Status handshake, then serving the peer's requests, sending ours
//! (from the [`super::Handle`]) and matching the answers.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use rlpx::{DisconnectReason, ProtocolHandle};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::Instrument;

use super::messages::{self, BlockRangeUpdate, ETH69, Message, RequestPair, code};
use super::pool::{self, Pooled};
use super::requests::{Budget, Kind, Match, Tracker};
use super::txfetch::Meta;
use super::txs::{self, FetchInput};
use super::verify::{self, Meter, Verdict};
use super::{
    Command, Entry, Event, PeerEvent, PeerId, PeerInfo, PeerStatus, RequestError, Shared, serve,
    status,
};

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
    /// a response type we never request): `BreachOfProtocol`.
    #[error("unsolicited response {code:#04x}")]
    Unsolicited {
        /// Message code.
        code: u8,
    },
    /// A response with more items than asked for: `BreachOfProtocol`.
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
    shared
        .fetch
        .get_or_init(|| txs::spawn_fetcher(Arc::downgrade(&shared), shared.config.fetch.clone()));
    shared.peers().insert(
        id,
        Entry {
            session,
            status,
            version,
            commands: tx,
            closer: peer.sender(),
            known: Default::default(),
            txq: txq.clone(),
        },
    );
    shared.peer_event(PeerEvent::Joined(PeerInfo { id, status }));
    shared.emit(Event::PeerConnected { peer: id, status });

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
        txq: txq.clone(),
        block_bytes: Default::default(),
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
    shared.fetcher(FetchInput::PeerLeft(id));
    {
        let mut peers = shared.peers();
        if peers.get(&id).is_some_and(|e| e.session == session) {
            peers.remove(&id);
            shared.peer_event(PeerEvent::Left(id));
        }
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
    /// The fetcher's request `id` for these announced transactions.
    Pooled(u64, Vec<(alloy_primitives::B256, Meta)>),
}

impl Reply {
    fn fail(self, e: RequestError) {
        // The requester may have given up; nothing to do then.
        match self {
            Reply::Headers(tx) => drop(tx.send(Err(e))),
            Reply::Bodies(tx) => drop(tx.send(Err(e))),
            // The fetcher has its own (shorter) timeout and hears of disconnects.
            Reply::Pooled(..) => {}
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
    announced: alloy_primitives::B256,
    /// The peer's transaction budget.
    meter: Meter,
    /// Its outbound transactions and known hashes.
    txq: Arc<txs::TxQueue>,
    /// Bytes of the blocks of its NewBlock events the node still holds.
    block_bytes: Arc<std::sync::atomic::AtomicUsize>,
}

/// The session ended: `None` when the connection closed, `Some` when we end it.
type Outcome = Option<Error>;

impl Session {
    async fn run(&mut self, mut commands: mpsc::Receiver<Command>, txq: &txs::TxQueue) -> Outcome {
        let period = self.shared.config.range_update_interval;
        let mut range_tick = tokio::time::interval_at(Instant::now() + period, period);
        loop {
            let deadline = self.tracker.next_deadline().map(Instant::from_std);
            tokio::select! {
                msg = self.peer.recv() => {
                    let (c, data) = msg?;
                    if let Err(e) = self.on_message(c, data).await {
                        return Some(e);
                    }
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
                    for (c, data) in txq.drain() {
                        if !self.send(c, data).await {
                            return None;
                        }
                    }
                }
                _ = range_tick.tick(), if self.version >= ETH69 => {
                    if !self.announce_range().await {
                        return None;
                    }
                }
            }
        }
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
        let cmd = match cmd {
            Command::Send(c, data) => return self.send(c, data).await,
            Command::FetchPooled { id, hashes } => return self.fetch_pooled(id, hashes).await,
            other => other,
        };
        if self.tracker.in_flight() >= self.shared.config.max_in_flight {
            match cmd {
                Command::Headers { reply, .. } => Reply::Headers(reply).fail(RequestError::Busy),
                Command::Bodies { reply, .. } => Reply::Bodies(reply).fail(RequestError::Busy),
                Command::Send(..) | Command::FetchPooled { .. } => {}
            }
            return true;
        }
        let now = Instant::now().into_std();
        let timeout = self.shared.config.request_timeout;
        let msg = match cmd {
            Command::Headers { req, reply } => {
                let kind = Kind::Headers { amount: req.amount };
                let request_id = self
                    .tracker
                    .start(kind, now, timeout, Reply::Headers(reply));
                Message::GetBlockHeaders(RequestPair {
                    request_id,
                    message: req,
                })
            }
            Command::Bodies { hashes, reply } => {
                let kind = Kind::Bodies {
                    count: hashes.len(),
                };
                let request_id = self.tracker.start(kind, now, timeout, Reply::Bodies(reply));
                Message::GetBlockBodies(RequestPair {
                    request_id,
                    message: hashes,
                })
            }
            Command::Send(..) | Command::FetchPooled { .. } => {
                return true;
            }
        };
        self.send(msg.code(), msg.encode()).await
    }

    /// Sends the fetcher's GetPooledTransactions (not counted against `max_in_flight`:
    /// the fetcher keeps at most one per peer).
    async fn fetch_pooled(&mut self, id: u64, hashes: Vec<(alloy_primitives::B256, Meta)>) -> bool {
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

    /// Handles the answer to the fetcher's request `id` for `asked`.
    async fn on_pooled(
        &mut self,
        id: u64,
        asked: &[(alloy_primitives::B256, Meta)],
        txs: Vec<alloy_consensus::transaction::PooledTransaction>,
    ) -> Result<(), Error> {
        let now = Instant::now().into_std();
        let mut next = asked.iter();
        let mut delivered = Vec::with_capacity(txs.len());
        let mut admitted = Vec::with_capacity(txs.len());
        let mut flood = false;
        for tx in txs {
            let hash = *tx.hash();
            // In request order, a subset of it (spec: unknown ones are left out).
            let meta = next
                .find(|(h, _)| *h == hash)
                .map(|(_, m)| *m)
                .ok_or(Error::Unrequested)?;
            if alloy_eips::Typed2718::ty(&tx) != meta.kind {
                return Err(Error::AnnouncedType);
            }
            self.txq.mark_known([hash]);
            let size = alloy_eips::eip2718::Encodable2718::encode_2718_len(&tx);
            if size != meta.size as usize {
                // Not worth a disconnect (encodings of sidecars vary), nor pooling; not
                // counted as delivered, so another announcer is asked.
                tracing::debug!(target: "eth", %hash, size, announced = meta.size, "pooled transaction size differs from announcement");
                continue;
            }
            // Over budget: not checked and not counted as delivered (another announcer
            // is asked).
            match self.charge(now, &hash, size) {
                Verdict::Admit => {
                    delivered.push(hash);
                    admitted.push(tx);
                }
                Verdict::Drop => {}
                Verdict::Offender => flood = true,
            }
        }
        let accepted = self.verify(admitted).await?;
        self.shared.fetcher(FetchInput::Delivered {
            peer: self.id,
            id,
            hashes: delivered,
        });
        txs::broadcast(&self.shared, Some(self.id), &accepted);
        if flood {
            return Err(Error::TxFlood);
        }
        Ok(())
    }

    /// Charges a new transaction to the peer's budget (see [`verify::charge`]).
    fn charge(
        &mut self,
        now: std::time::Instant,
        hash: &alloy_primitives::B256,
        size: usize,
    ) -> Verdict {
        verify::charge(&mut self.meter, &self.shared.pool, hash, size, now)
    }

    /// Checks `txs` (signature recovery) on the worker pool, [`verify::CHUNK`] at a time
    /// so that other peers' checks take turns with ours, and pools what is valid.
    async fn verify(
        &self,
        txs: Vec<alloy_consensus::transaction::PooledTransaction>,
    ) -> Result<Vec<Pooled>, Error> {
        let mut accepted = Vec::new();
        let mut txs = txs.into_iter();
        loop {
            let chunk: Vec<_> = txs.by_ref().take(verify::CHUNK).collect();
            if chunk.is_empty() {
                return Ok(accepted);
            }
            let pool = self.shared.pool.clone();
            let job = move || {
                chunk
                    .into_iter()
                    .map(|tx| pool.add(tx, pool::Origin::Remote))
                    .collect::<Vec<_>>()
            };
            // `None`: the runtime is shutting down.
            let Some(results) = self.shared.workers.run(job).await else {
                return Ok(accepted);
            };
            for r in results {
                accepted.extend(self.pool_add(r)?);
            }
        }
    }

    /// The pool's verdict on a peer's transaction: pooled, or dropped (with the reason at
    /// trace level: peers relay transactions that became invalid, which is no offence),
    /// except a bad signature, which no transaction ever recovers from: an honest peer,
    /// having checked it, never relays one.
    fn pool_add(&self, result: Result<Pooled, pool::Error>) -> Result<Option<Pooled>, Error> {
        match result {
            Ok(p) => Ok(Some(p)),
            Err(pool::Error::Signature) => Err(Error::BadSignature),
            Err(pool::Error::Known) => Ok(None),
            Err(e) => {
                tracing::trace!(target: "eth", error = %e, "transaction not pooled");
                Ok(None)
            }
        }
    }

    fn take_budget(&mut self) -> Result<(), Error> {
        if self.budget.try_take(Instant::now().into_std()) {
            Ok(())
        } else {
            Err(Error::Budget)
        }
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
        let chain = self.shared.chain.clone();
        match msg {
            Message::Status(_) => return Err(Error::UnexpectedStatus),
            Message::GetBlockHeaders(req) => {
                self.take_budget()?;
                let headers = serve::headers(&*chain, &req.message);
                let out = messages::encode_raw_response(req.request_id, &headers);
                self.send(code::BLOCK_HEADERS, out).await;
            }
            Message::GetBlockBodies(req) => {
                self.take_budget()?;
                let bodies = serve::bodies(&*chain, &req.message);
                let out = messages::encode_raw_response(req.request_id, &bodies);
                self.send(code::BLOCK_BODIES, out).await;
            }
            Message::GetReceipts(req) => {
                self.take_budget()?;
                let n = serve::receipts(&*chain, &req.message);
                let out = messages::encode_empty_receipts(req.request_id, n);
                self.send(code::RECEIPTS, out).await;
            }
            Message::GetPooledTransactions(req) => {
                self.take_budget()?;
                let txs = serve::pooled_transactions(&self.shared.pool, &req.message);
                let out = messages::encode_raw_response(req.request_id, &txs);
                self.send(code::POOLED_TRANSACTIONS, out).await;
            }
            Message::BlockHeaders(res) => match self.tracker.complete(res.request_id, true) {
                Match::Answer {
                    kind: Kind::Headers { amount },
                    reply: Reply::Headers(tx),
                } => {
                    if res.message.len() as u64 > amount {
                        return Err(Error::TooManyItems { code: c });
                    }
                    let _ = tx.send(Ok(res.message));
                }
                Match::Late => tracing::debug!(target: "eth", "late headers dropped"),
                _ => return Err(Error::Unsolicited { code: c }),
            },
            Message::BlockBodies(res) => match self.tracker.complete(res.request_id, false) {
                Match::Answer {
                    kind: Kind::Bodies { count },
                    reply: Reply::Bodies(tx),
                } => {
                    if res.message.len() > count {
                        return Err(Error::TooManyItems { code: c });
                    }
                    let _ = tx.send(Ok(res.message));
                }
                Match::Late => tracing::debug!(target: "eth", "late bodies dropped"),
                _ => return Err(Error::Unsolicited { code: c }),
            },
            Message::PooledTransactions(res) => {
                match self.tracker.complete(res.request_id, false) {
                    Match::Answer {
                        kind: Kind::Pooled { count },
                        reply: Reply::Pooled(id, asked),
                    } => {
                        if res.message.len() > count {
                            return Err(Error::TooManyItems { code: c });
                        }
                        self.on_pooled(id, &asked, res.message).await?;
                    }
                    Match::Late => {
                        tracing::debug!(target: "eth", "late pooled transactions dropped")
                    }
                    _ => return Err(Error::Unsolicited { code: c }),
                }
            }
            // We never ask for receipts (we do not execute, so could not check them).
            Message::Receipts68(_) | Message::Receipts69(_) => {
                return Err(Error::Unsolicited { code: c });
            }
            Message::NewPooledTransactionHashes(a) => {
                if !a.is_consistent() {
                    return Err(Error::Announcement);
                }
                // Beyond the spec's soft limit of 4096 hashes per message the rest is
                // ignored: it would only cost time under the peer-table lock.
                let n = a.hashes.len().min(txs::MAX_ANNOUNCE_PACKET);
                self.txq.mark_known(a.hashes.iter().take(n).copied());
                let items = a
                    .hashes
                    .iter()
                    .take(n)
                    .zip(a.types.iter().zip(&a.sizes))
                    .map(|(h, (&kind, &size))| (*h, Meta { kind, size }))
                    .collect();
                self.shared.fetcher(FetchInput::Announce {
                    peer: self.id,
                    items,
                });
            }
            Message::BlockRangeUpdate(r) => {
                if !r.is_valid() {
                    return Err(Error::Range);
                }
                self.update_range(r);
            }
            Message::NewBlockHashes(_) | Message::NewBlock(_)
                if !self.shared.config.block_gossip =>
            {
                return Err(Error::BlockGossip);
            }
            Message::NewBlockHashes(a) => {
                let hashes: Vec<_> = a.iter().map(|h| (h.hash, h.number)).collect();
                self.mark_known(hashes.iter().map(|h| h.0));
                if let Some(&(hash, number)) = hashes.iter().max_by_key(|h| h.1) {
                    self.update_head(hash, number, None);
                }
                self.shared.emit(Event::NewBlockHashes {
                    peer: self.id,
                    hashes,
                });
            }
            Message::NewBlock(nb) => {
                let nb = *nb;
                let hash = nb.block.header.hash_slow();
                self.mark_known([hash]);
                self.update_head(hash, nb.block.header.number, Some(nb.td));
                let bytes =
                    std::mem::size_of::<alloy_consensus::Block<alloy_consensus::TxEnvelope>>()
                        + super::size::block_size(&nb.block);
                match self.shared.hold(&self.block_bytes, bytes) {
                    Some(held) => self.shared.emit(Event::NewBlock {
                        peer: self.id,
                        block: Box::new(nb.block),
                        td: nb.td,
                        held,
                    }),
                    None => {
                        tracing::debug!(target: "eth", bytes, "block events over their byte budget, NewBlock dropped")
                    }
                }
            }
            Message::Transactions(list) => self.on_transactions(list).await?,
        }
        Ok(())
    }

    /// A broadcast: check what is new within the peer's budget (dropping the excess),
    /// pool what validates and pass it on. Sorting a large broadcast against the budget
    /// is itself work (a hash lookup per transaction), done on the worker pool too.
    async fn on_transactions(
        &mut self,
        list: Vec<alloy_consensus::TxEnvelope>,
    ) -> Result<(), Error> {
        let now = Instant::now().into_std();
        let (meter, pool, txq) = (
            self.meter.clone(),
            self.shared.pool.clone(),
            self.txq.clone(),
        );
        let job = move || verify::admit(list, meter, &pool, &txq, now);
        let Some(admitted) = self.shared.workers.run(job).await else {
            return Ok(());
        };
        let verify::Admitted {
            txs,
            dropped,
            flood,
            blob,
            meter,
        } = admitted;
        self.meter = meter;
        if blob {
            return Err(Error::BlobBroadcast);
        }
        if dropped > 0 || flood {
            tracing::debug!(target: "eth", dropped, flood, "transactions over the peer's budget");
        }
        // Only what was checked has arrived: the fetcher may still ask others for the rest.
        let hashes: Vec<_> = txs.iter().map(|t| *t.hash()).collect();
        let accepted = self.verify(txs).await?;
        self.shared.fetcher(FetchInput::Arrived(hashes));
        txs::broadcast(&self.shared, Some(self.id), &accepted);
        if flood {
            return Err(Error::TxFlood);
        }
        Ok(())
    }

    fn mark_known(&self, hashes: impl IntoIterator<Item = alloy_primitives::B256>) {
        let mut peers = self.shared.peers();
        if let Some(e) = peers.get_mut(&self.id)
            && e.session == self.session
        {
            for h in hashes {
                e.known.insert(h);
            }
        }
    }

    /// The peer announced (or sent) block `hash` number `number`: if it is beyond the
    /// head we knew of, it is the peer's new head (go-ethereum's `SetHead` on NewBlock),
    /// which the downloader follows.
    fn update_head(
        &self,
        hash: alloy_primitives::B256,
        number: u64,
        td: Option<alloy_primitives::U256>,
    ) {
        let mut peers = self.shared.peers();
        if let Some(e) = peers.get_mut(&self.id)
            && e.session == self.session
            && e.status.head_number.is_none_or(|n| n < number)
        {
            e.status.head_hash = hash;
            e.status.head_number = Some(number);
            if td.is_some() {
                e.status.total_difficulty = td;
            }
            self.shared.peer_event(PeerEvent::Updated(PeerInfo {
                id: self.id,
                status: e.status,
            }));
        }
    }

    fn update_range(&self, r: BlockRangeUpdate) {
        let mut peers = self.shared.peers();
        if let Some(e) = peers.get_mut(&self.id)
            && e.session == self.session
        {
            e.status = PeerStatus {
                head_hash: r.latest_hash,
                head_number: Some(r.latest),
                earliest: Some(r.earliest),
                ..e.status
            };
            self.shared.peer_event(PeerEvent::Updated(PeerInfo {
                id: self.id,
                status: e.status,
            }));
        }
    }
}
