//! A running RLPx session: one reader task that routes incoming messages by id into one
//! bounded channel per shared protocol, and one writer task that drains a single outbound
//! queue (btcd-style: callers enqueue and never touch the socket). The reader answers
//! Ping, handles Disconnect, and drops a peer that sends nothing for
//! [`Config::idle_timeout`]; the writer pings every [`Config::ping_interval`].
//!
//! Each message held (received and not yet taken, or queued and not yet written) holds
//! its size in the peer's and the node's [`budget`](crate::budget). A protocol that stops
//! taking messages stops the reader (back-pressure on the peer's TCP stream), and a
//! protocol blocked sending to a peer that does not read is released when the writer's
//! progress rule drops that peer: no wait in the session is unbounded.
//!
//! Small messages cost little more than their codec work because nothing is done per
//! message that can be done per batch: the reader takes every frame it has already
//! read (up to [`DELIVER_MESSAGES`] / [`DELIVER_BYTES`]) before handing them to the
//! protocols, so a protocol that keeps up is woken once per batch; the writer encodes
//! what is queued into one buffer and writes it in [`WRITE_CHUNK`]s; the outbound queue's
//! slots and bytes come back when a batch has been written, so a sender that filled it
//! is woken once per batch; and queueing or delivering a message only registers a
//! wake-up (with the session's end, a semaphore, a channel) when it has to wait.

use crate::budget::{Budget, Held, Progress};
use crate::caps::Shared;
use crate::codec::{FrameDecoder, FrameEncoder, RawMessage};
use crate::conn::{Established, Io};
use crate::handshake::Role;
use crate::p2p::{self, DISCONNECT, DisconnectReason, EMPTY_LIST, MAX_MESSAGE_SIZE, PING, PONG};
use crate::{Config, Error};
use bytes::{Bytes, BytesMut};
use futures::{FutureExt, SinkExt, StreamExt};
use secp256k1::PublicKey;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::{AsyncReadExt, ReadHalf, WriteHalf};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::codec::{FramedRead, FramedWrite};
use tracing::{Instrument, debug, trace};

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// We disconnected, with this reason (sent to the peer when still possible).
    Local(DisconnectReason),
    /// The peer sent `Disconnect` with this reason.
    Remote(DisconnectReason),
    /// The connection failed (I/O error, corrupt frame, EOF); the text says how.
    Failed(String),
}

/// Traffic counters of one peer, for metrics.
#[derive(Debug, Default)]
pub struct Stats {
    /// Messages received.
    pub messages_in: AtomicU64,
    /// Messages sent.
    pub messages_out: AtomicU64,
    /// Uncompressed payload bytes received.
    pub bytes_in: AtomicU64,
    /// Uncompressed payload bytes sent.
    pub bytes_out: AtomicU64,
    /// Pongs received (answers to our keepalive or [`Peer::ping`]).
    pub pongs: AtomicU64,
    /// The same traffic split by subprotocol, in the order of [`Info::shared`] (base
    /// protocol messages are in the totals only).
    pub protocols: Box<[ProtocolStats]>,
}

/// Traffic counters of one subprotocol on one peer.
#[derive(Debug, Default)]
pub struct ProtocolStats {
    /// Messages received.
    pub messages_in: AtomicU64,
    /// Messages sent.
    pub messages_out: AtomicU64,
    /// Uncompressed payload bytes received.
    pub bytes_in: AtomicU64,
    /// Uncompressed payload bytes sent.
    pub bytes_out: AtomicU64,
}

impl Stats {
    /// Counters for a peer sharing `protocols` subprotocols.
    fn for_protocols(protocols: usize) -> Self {
        Self {
            protocols: (0..protocols).map(|_| ProtocolStats::default()).collect(),
            ..Self::default()
        }
    }

    /// Counts one subprotocol message of `len` bytes in (`inbound`) or out, for the
    /// protocol at `index` of [`Info::shared`].
    fn count(&self, index: usize, len: u64, inbound: bool) {
        let per = self.protocols.get(index);
        let (total, per) = if inbound {
            (&self.bytes_in, per.map(|p| (&p.messages_in, &p.bytes_in)))
        } else {
            (
                &self.bytes_out,
                per.map(|p| (&p.messages_out, &p.bytes_out)),
            )
        };
        total.fetch_add(len, Ordering::Relaxed);
        if let Some((m, b)) = per {
            m.fetch_add(1, Ordering::Relaxed);
            b.fetch_add(len, Ordering::Relaxed);
        }
    }
}

/// What is known about a connected peer.
#[derive(Debug)]
pub struct Info {
    /// The remote node id.
    pub id: PublicKey,
    /// The remote socket address, when the transport has one.
    pub addr: Option<SocketAddr>,
    /// Whether we dialled or accepted.
    pub role: Role,
    /// The remote's Hello (client id, capabilities, version).
    pub hello: p2p::Hello,
    /// The negotiated protocols in message-id order.
    pub shared: Vec<Shared>,
    /// Whether snappy is in use.
    pub snappy: bool,
    /// Traffic counters.
    pub stats: Stats,
}

/// An incoming subprotocol message, holding its share of the receive budget until it is
/// taken with [`ProtocolHandle::recv`].
struct Inbound {
    code: u8,
    data: Bytes,
    _budget: Held,
}

/// A message queued for sending, holding its share of the send budget until written.
struct Outbound {
    id: u64,
    data: Bytes,
    budget: Held,
}

/// Errors sending on a peer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SendError {
    /// The session has ended.
    #[error("peer disconnected")]
    Closed,
    /// The code is outside the protocol's message count.
    #[error("message code {0} outside the protocol's range")]
    InvalidCode(u8),
    /// The payload is over the 16 MiB message limit.
    #[error("message of {0} bytes exceeds the 16 MiB limit")]
    TooLarge(usize),
    /// `try_send` only: the outbound queue is full.
    #[error("outbound queue full")]
    Full,
}

struct Shutdown {
    state: watch::Sender<Option<CloseReason>>,
}

/// Held by the [`Peer`] and every [`ProtocolHandle`]: when the last of them is dropped,
/// nobody can read the session any more, so it is closed (`DisconnectRequested`) instead
/// of being kept alive by keepalive pings.
struct Owner(Arc<Shutdown>);

impl Drop for Owner {
    fn drop(&mut self) {
        self.0
            .close(CloseReason::Local(DisconnectReason::DisconnectRequested));
    }
}

impl Shutdown {
    /// Records the first reason the session ends for; later ones are ignored.
    fn close(&self, reason: CloseReason) -> bool {
        self.state.send_if_modified(|s| {
            if s.is_none() {
                *s = Some(reason);
                true
            } else {
                false
            }
        })
    }
}

/// Sends on one protocol of one peer; cheap to clone.
#[derive(Clone)]
pub struct ProtocolSender {
    offset: u64,
    messages: u8,
    /// Unbounded itself: what it may hold is bounded by `budget`, in messages and bytes.
    queue: mpsc::UnboundedSender<Outbound>,
    budget: Budget,
    shutdown: Arc<Shutdown>,
}

impl ProtocolSender {
    fn check(&self, code: u8, len: usize) -> Result<(), SendError> {
        if code >= self.messages {
            return Err(SendError::InvalidCode(code));
        }
        if len > MAX_MESSAGE_SIZE {
            return Err(SendError::TooLarge(len));
        }
        Ok(())
    }

    /// Queues a message (code relative to the protocol), waiting while the peer's outbound
    /// queue or budget, or the node's, is full. Never waits on the socket itself, and
    /// returns [`SendError::Closed`] as soon as the session ends (e.g. because the peer
    /// did not read what was queued for it).
    pub async fn send(&self, code: u8, data: Bytes) -> Result<(), SendError> {
        self.check(code, data.len())?;
        if self.is_closed() {
            return Err(SendError::Closed);
        }
        // With room in the budget (the common case) nothing waits, so no wake-up is
        // registered with the session's end or the semaphores: that costs more than the
        // rest of queueing a small message.
        let budget = match self.budget.try_acquire(data.len()) {
            Ok(b) => b,
            Err(tokio::sync::TryAcquireError::Closed) => return Err(SendError::Closed),
            Err(tokio::sync::TryAcquireError::NoPermits) => {
                let mut closed = self.shutdown.state.subscribe();
                tokio::select! {
                    biased;
                    _ = until_closed(&mut closed) => return Err(SendError::Closed),
                    b = self.budget.acquire(data.len()) => b.map_err(|_| SendError::Closed)?,
                }
            }
        };
        self.enqueue(code, data, budget)
    }

    /// Queues a message that holds its budget (the queue has no bound of its own).
    fn enqueue(&self, code: u8, data: Bytes, budget: Held) -> Result<(), SendError> {
        let msg = Outbound {
            id: self.offset + u64::from(code),
            data,
            budget,
        };
        self.queue.send(msg).map_err(|_| SendError::Closed)
    }

    /// Queues a message without waiting; [`SendError::Full`] when the queue is full.
    pub fn try_send(&self, code: u8, data: Bytes) -> Result<(), SendError> {
        self.check(code, data.len())?;
        if self.is_closed() {
            return Err(SendError::Closed);
        }
        let budget = self.budget.try_acquire(data.len()).map_err(|e| match e {
            tokio::sync::TryAcquireError::Closed => SendError::Closed,
            tokio::sync::TryAcquireError::NoPermits => SendError::Full,
        })?;
        self.enqueue(code, data, budget)
    }

    /// Disconnects the whole peer with `reason`. The reason is recorded as the session's
    /// [`CloseReason`] at once (unless it has already ended), ahead of anything queued and
    /// without waiting for a blocked sender, so a penalty is never lost to a later failure.
    pub fn disconnect(&self, reason: DisconnectReason) {
        self.shutdown.close(CloseReason::Local(reason));
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        self.shutdown.state.borrow().is_some()
    }
}

/// One shared protocol's view of a peer: receive its messages, send, disconnect.
pub struct ProtocolHandle {
    /// The negotiated capability and its offset.
    pub shared: Shared,
    _owner: Arc<Owner>,
    info: Arc<Info>,
    rx: mpsc::Receiver<Inbound>,
    sender: ProtocolSender,
}

impl ProtocolHandle {
    /// The next message as `(code relative to the protocol, payload)`, or `None` once the
    /// session has ended. A message arriving for a dropped handle disconnects the peer
    /// (`DisconnectRequested`), as a protocol that stopped reading can no longer serve it;
    /// so does dropping the [`Peer`] and all its handles.
    pub async fn recv(&mut self) -> Option<(u8, Bytes)> {
        self.rx.recv().await.map(|m| (m.code, m.data))
    }

    /// A sender for this protocol.
    pub fn sender(&self) -> ProtocolSender {
        self.sender.clone()
    }

    /// Queues a message, see [`ProtocolSender::send`].
    pub async fn send(&self, code: u8, data: Bytes) -> Result<(), SendError> {
        self.sender.send(code, data).await
    }

    /// Disconnects the peer with `reason`, see [`ProtocolSender::disconnect`].
    pub fn disconnect(&self, reason: DisconnectReason) {
        self.sender.disconnect(reason)
    }

    /// What is known about the peer.
    pub fn info(&self) -> &Arc<Info> {
        &self.info
    }
}

/// A running session: its info, one [`ProtocolHandle`] per shared protocol, and its end.
pub struct Peer {
    _owner: Arc<Owner>,
    info: Arc<Info>,
    handles: Vec<Option<ProtocolHandle>>,
    shutdown: Arc<Shutdown>,
    closed: watch::Receiver<Option<CloseReason>>,
    control: mpsc::Sender<Control>,
}

impl Peer {
    /// Sends a Ping now (besides the periodic keepalive); the answer shows in
    /// [`Stats::pongs`]. Skipped if the control queue is full.
    pub fn ping(&self) {
        let _ = self.control.try_send(Control::Ping);
    }

    /// What is known about the peer.
    pub fn info(&self) -> &Arc<Info> {
        &self.info
    }

    /// The remote node id.
    pub fn id(&self) -> &PublicKey {
        &self.info.id
    }

    /// Takes the handle of the shared protocol called `name` (once).
    pub fn take_protocol(&mut self, name: &str) -> Option<ProtocolHandle> {
        let i = self.info.shared.iter().position(|s| s.cap.name == name)?;
        self.handles.get_mut(i)?.take()
    }

    /// Takes all remaining protocol handles.
    pub fn take_all(&mut self) -> Vec<ProtocolHandle> {
        self.handles.iter_mut().filter_map(Option::take).collect()
    }

    /// Disconnects with `reason`.
    pub fn disconnect(&self, reason: DisconnectReason) {
        self.shutdown.close(CloseReason::Local(reason));
    }

    /// A future that resolves when the session ends, with the reason.
    pub fn closed(&self) -> impl Future<Output = CloseReason> + Send + 'static {
        let mut rx = self.closed.clone();
        async move {
            until_closed(&mut rx).await;
            let reason = rx.borrow().clone();
            reason.unwrap_or(CloseReason::Failed("closed".into()))
        }
    }
}

impl<S: Io> Established<S> {
    /// Starts the reader and writer tasks on the current tokio runtime.
    pub fn start(self, config: &Config) -> Peer {
        let info = Arc::new(Info {
            id: self.remote_id,
            addr: self.addr,
            role: self.role,
            hello: self.hello,
            stats: Stats::for_protocols(self.shared.len()),
            shared: self.shared,
            snappy: self.snappy,
        });
        let (state, closed) = watch::channel(None);
        let shutdown = Arc::new(Shutdown { state });
        let owner = Arc::new(Owner(shutdown.clone()));
        let (queue, out_rx) = mpsc::unbounded_channel();
        let (ctrl_tx, ctrl_rx) = mpsc::channel(CONTROL_QUEUE);
        let out_budget = Budget::outbound(
            config.outbound_budget,
            config.outbound_queue,
            &config.node_budget,
        );
        let in_budget = Budget::inbound(config.inbound_budget, &config.node_budget);
        let mut handles = Vec::new();
        let mut routes = Vec::new();
        for s in &info.shared {
            let (tx, rx) = mpsc::channel(config.protocol_queue);
            routes.push(tx);
            let sender = ProtocolSender {
                offset: s.offset,
                messages: s.messages,
                queue: queue.clone(),
                budget: out_budget.clone(),
                shutdown: shutdown.clone(),
            };
            handles.push(Some(ProtocolHandle {
                shared: s.clone(),
                _owner: owner.clone(),
                info: info.clone(),
                rx,
                sender,
            }));
        }
        drop(queue);
        // Separate read and write halves, so each task owns (and can shrink) its buffer.
        let parts = self.framed.into_parts();
        let (rd, wr) = tokio::io::split(parts.io);
        // Bytes read past the Hello are fed through the reader: a `FramedRead` given them
        // in its buffer would not decode them before the socket is readable again.
        let rd = std::io::Cursor::new(parts.read_buf).chain(rd);
        let stream = FramedRead::new(rd, parts.codec.decoder);
        let mut sink = FramedWrite::new(wr, parts.codec.encoder);
        // Written out when a batch ends or this much is encoded, not every 8 KiB (the
        // default): a burst of small messages is a few large writes, each waking the
        // peer's reader once.
        sink.set_backpressure_boundary(WRITE_CHUNK);
        sink.write_buffer_mut().extend_from_slice(&parts.write_buf);
        let span = tracing::debug_span!(target: "rlpx", "peer", id = %short_id(&info.id));
        let reader = Reader {
            stream,
            info: info.clone(),
            routes,
            control: ctrl_tx.clone(),
            budget: in_budget,
            shutdown: shutdown.clone(),
            snappy: p2p::Snappy::default(),
            idle_timeout: config.idle_timeout,
            ready: Vec::new(),
            ready_bytes: 0,
        };
        let writer = Writer {
            sink,
            info: info.clone(),
            queue: out_rx,
            control: ctrl_rx,
            closed: closed.clone(),
            snappy: p2p::Snappy::default(),
            ping_interval: config.ping_interval,
            write_timeout: config.write_timeout,
            progress: Progress::new(config.write_timeout, config.min_write_progress),
            written: 0,
            shutdown: shutdown.clone(),
        };
        tokio::spawn(reader.run().instrument(span.clone()));
        tokio::spawn(writer.run().instrument(span));
        Peer {
            _owner: owner,
            info,
            handles,
            shutdown,
            closed,
            control: ctrl_tx,
        }
    }
}

/// The first 8 bytes of a node id in hex, for logs.
pub fn short_id(id: &PublicKey) -> String {
    hex::encode(&crate::handshake::id_bytes(id)[..8])
}

/// Control messages (Pong replies) queued by the reader. Small: a peer that floods Pings
/// faster than we can write Pongs loses Pongs, not our memory.
const CONTROL_QUEUE: usize = 16;

/// Most payload bytes written per flush when draining a burst of queued messages.
const BATCH_BYTES: usize = 256 * 1024;

/// Encoded bytes the writer holds before writing them out mid-batch. 32 KiB is 30 frames
/// of 1 KiB per write; the buffer only grows this large while a burst is being written.
const WRITE_CHUNK: usize = 32 * 1024;

/// Frame buffers that grew past this for one large message are given back afterwards, so
/// a session keeps at most this much allocated between large messages (instead of the
/// largest frame ever seen, up to 16 MiB each way). Small traffic never reallocates.
const KEEP_BUFFER: usize = BATCH_BYTES;

/// A fresh read buffer's size: `tokio_util`'s initial frame buffer capacity.
const FRESH_BUFFER: usize = 8 * 1024;

/// Most messages the reader takes from what it has already read before handing them to
/// the protocols together. A protocol that keeps up with its peer would otherwise be
/// woken (often on another thread) once per message; 64 is the default protocol queue.
const DELIVER_MESSAGES: usize = 64;

/// Most uncompressed bytes taken before handing them over: keeps the first message of a
/// batch from waiting on the decryption of many large ones (64 KiB decrypt in ~0.2 ms).
const DELIVER_BYTES: usize = 64 * 1024;

enum Control {
    Ping,
    Pong,
}

/// The reader's byte source: what was read past the Hello, then the socket.
type ReadIo<S> = tokio::io::Chain<std::io::Cursor<BytesMut>, ReadHalf<S>>;

struct Reader<S> {
    stream: FramedRead<ReadIo<S>, FrameDecoder>,
    info: Arc<Info>,
    routes: Vec<mpsc::Sender<Inbound>>,
    control: mpsc::Sender<Control>,
    budget: Budget,
    shutdown: Arc<Shutdown>,
    snappy: p2p::Snappy,
    idle_timeout: std::time::Duration,
    /// Messages taken (budget held, expanded) and not yet handed to their protocol, with
    /// the index of the protocol, in arrival order: at most [`DELIVER_MESSAGES`].
    ready: Vec<(usize, Inbound)>,
    /// Their uncompressed bytes.
    ready_bytes: usize,
}

impl<S: Io> Reader<S> {
    async fn run(mut self) {
        let mut closed = self.shutdown.state.subscribe();
        let reason = loop {
            let next = tokio::time::timeout(self.idle_timeout, self.stream.next());
            let msg = tokio::select! {
                _ = until_closed(&mut closed) => return,
                r = next => r,
            };
            let mut end = match msg {
                Err(_) => Some(CloseReason::Local(DisconnectReason::PingTimeout)),
                Ok(None) => Some(CloseReason::Failed("connection closed by peer".into())),
                Ok(Some(Err(e))) => Some(close_for(&Error::from(e))),
                Ok(Some(Ok(m))) => self.handle(m, &mut closed).await.err(),
            };
            // Then the frames already read (no waiting on the socket), handed over
            // together below: one wake-up of each protocol per batch, not per message.
            while end.is_none()
                && self.ready.len() < DELIVER_MESSAGES
                && self.ready_bytes < DELIVER_BYTES
                && closed.borrow().is_none()
            {
                let Some(next) = self.stream.next().now_or_never() else {
                    break;
                };
                end = match next {
                    None => Some(CloseReason::Failed("connection closed by peer".into())),
                    Some(Err(e)) => Some(close_for(&Error::from(e))),
                    Some(Ok(m)) => self.handle(m, &mut closed).await.err(),
                };
            }
            // What arrived before a failure or a Disconnect is still delivered.
            if let Err(r) = self.deliver(&mut closed).await {
                break r;
            }
            if let Some(r) = end {
                break r;
            }
        };
        debug!(target: "rlpx", ?reason, "reader stopped");
        self.shutdown.close(reason);
    }

    /// What `data` will occupy once expanded, known before expanding it.
    fn declared_len(&self, data: &[u8]) -> Result<usize, Error> {
        if self.info.snappy {
            Ok(p2p::decompressed_len(data)?)
        } else if data.len() > MAX_MESSAGE_SIZE {
            Err(Error::MessageTooLarge(data.len()))
        } else {
            Ok(data.len())
        }
    }

    fn decompress(&mut self, data: &Bytes) -> Result<Bytes, Error> {
        if self.info.snappy {
            Ok(self.snappy.decompress(data)?)
        } else if data.len() > MAX_MESSAGE_SIZE {
            Err(Error::MessageTooLarge(data.len()))
        } else {
            Ok(data.clone())
        }
    }

    /// Takes one message: answers p2p ones, and expands a subprotocol one into
    /// [`Reader::ready`] once the budget holds it.
    async fn handle(
        &mut self,
        msg: RawMessage,
        closed: &mut watch::Receiver<Option<CloseReason>>,
    ) -> Result<(), CloseReason> {
        if msg.data.len() > KEEP_BUFFER {
            // The buffer grew to hold this frame and would keep that allocation for
            // the rest of the session (it still shares it): move what is left of it
            // (the start of the next frame) to a fresh one.
            let buf = self.stream.read_buffer_mut();
            let mut fresh = BytesMut::with_capacity(buf.len().max(FRESH_BUFFER));
            fresh.extend_from_slice(buf);
            *buf = fresh;
        }
        self.info.stats.messages_in.fetch_add(1, Ordering::Relaxed);
        if msg.id < p2p::BASE_OFFSET {
            return self.handle_p2p(msg);
        }
        let Some((index, code)) = crate::caps::route(&self.info.shared, msg.id) else {
            debug!(target: "rlpx", id = msg.id, "message id outside every shared protocol");
            return Err(CloseReason::Local(DisconnectReason::BreachOfProtocol));
        };
        // Back-pressure: wait for the protocol to consume, bounded by count and bytes. The
        // budget is taken on the size the body declares (or on the frame, if larger)
        // before expanding it, so a peer cannot make us hold more than the budget plus
        // the one frame being read.
        let declared = self.declared_len(&msg.data).map_err(|e| close_for(&e))?;
        let want = declared.max(msg.data.len());
        let budget = match self.budget.try_acquire(want) {
            Ok(b) => b,
            Err(_) => {
                // What is ready may be what holds the budget: hand it over, then wait.
                self.deliver(closed).await?;
                let budget = tokio::select! {
                    _ = until_closed(closed) => return Ok(()),
                    p = self.budget.acquire(want) => p,
                };
                let Ok(budget) = budget else { return Ok(()) };
                budget
            }
        };
        let data = self.decompress(&msg.data).map_err(|e| close_for(&e))?;
        let id = msg.id;
        drop(msg);
        self.info.stats.count(index, data.len() as u64, true);
        trace!(target: "rlpx", id, len = data.len(), "message");
        self.ready_bytes += data.len();
        let inbound = Inbound {
            code,
            data,
            _budget: budget,
        };
        self.ready.push((index, inbound));
        Ok(())
    }

    /// Hands the ready messages to their protocols in order, waiting (until the session
    /// ends) while a protocol's queue is full.
    async fn deliver(
        &mut self,
        closed: &mut watch::Receiver<Option<CloseReason>>,
    ) -> Result<(), CloseReason> {
        self.ready_bytes = 0;
        for (index, m) in self.ready.drain(..) {
            let route = &self.routes[index]; // ok: index comes from `route` over the same list
            let m = match route.try_send(m) {
                Ok(()) => continue,
                Err(mpsc::error::TrySendError::Full(m)) => m,
                Err(mpsc::error::TrySendError::Closed(_)) => return Err(handle_dropped()),
            };
            let sent = tokio::select! {
                _ = until_closed(closed) => return Ok(()),
                r = route.send(m) => r,
            };
            if sent.is_err() {
                return Err(handle_dropped());
            }
        }
        Ok(())
    }

    fn handle_p2p(&mut self, msg: RawMessage) -> Result<(), CloseReason> {
        match msg.id {
            PING => {
                // A full control queue means the peer pings faster than we write: skip.
                let _ = self.control.try_send(Control::Pong);
                Ok(())
            }
            PONG => {
                self.info.stats.pongs.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            DISCONNECT => {
                // Some clients send Disconnect uncompressed even on v5 sessions. A real
                // body is 2 bytes: one declaring more is not expanded.
                let small = p2p::decompressed_len(&msg.data).is_ok_and(|n| n <= 16);
                let expanded = if small {
                    self.decompress(&msg.data).ok()
                } else {
                    None
                };
                let reason = expanded
                    .and_then(|d| DisconnectReason::decode_body(&d).ok())
                    .or_else(|| DisconnectReason::decode_body(&msg.data).ok())
                    .unwrap_or(DisconnectReason::DisconnectRequested);
                Err(CloseReason::Remote(reason))
            }
            // A second Hello, or an undefined p2p code.
            _ => Err(CloseReason::Local(DisconnectReason::BreachOfProtocol)),
        }
    }
}

/// Resolves once the session has a close reason. (`watch::Receiver::wait_for` holds a
/// non-`Send` guard across its await, which `tokio::spawn` rejects.)
async fn until_closed(rx: &mut watch::Receiver<Option<CloseReason>>) {
    loop {
        if rx.borrow_and_update().is_some() {
            return;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// A message arrived for a protocol whose handle is gone: nobody can serve the peer.
fn handle_dropped() -> CloseReason {
    debug!(target: "rlpx", "protocol handle dropped; disconnecting");
    CloseReason::Local(DisconnectReason::DisconnectRequested)
}

fn close_for(e: &Error) -> CloseReason {
    match e.disconnect_reason() {
        Some(r) => CloseReason::Local(r),
        None => CloseReason::Failed(e.to_string()),
    }
}

struct Writer<S> {
    sink: FramedWrite<WriteHalf<S>, FrameEncoder>,
    info: Arc<Info>,
    queue: mpsc::UnboundedReceiver<Outbound>,
    control: mpsc::Receiver<Control>,
    closed: watch::Receiver<Option<CloseReason>>,
    snappy: p2p::Snappy,
    ping_interval: std::time::Duration,
    write_timeout: std::time::Duration,
    /// The rule that a peer keeps taking what is queued for it.
    progress: Progress,
    /// Payload bytes written (flushed) so far, for `progress`.
    written: u64,
    shutdown: Arc<Shutdown>,
}

/// Why a peer too slow to take what we send is dropped: go-ethereum closes with
/// `DiscNetworkError` (this code) when a write fails or times out.
const SLOW_PEER: CloseReason = CloseReason::Local(DisconnectReason::TcpSubsystemError);

impl<S: Io> Writer<S> {
    fn compress(&mut self, data: &[u8]) -> Bytes {
        if self.info.snappy {
            // ok-by-construction: sizes are checked before queueing, so this cannot fail.
            self.snappy.compress(data).unwrap_or_default()
        } else {
            Bytes::copy_from_slice(data)
        }
    }

    /// Writes one message and then whatever else is already queued, up to
    /// [`BATCH_BYTES`], with one flush: a burst of small messages costs one socket write
    /// instead of one each. The batch must be written within the write timeout and by the
    /// progress rule's deadline; the messages keep their budget until it is.
    async fn write(&mut self, id: u64, data: Bytes, held: Option<Held>) -> Result<(), CloseReason> {
        let now = Instant::now();
        let progress = self.progress.deadline(now, self.written, true);
        let by = progress.map_or(now + self.write_timeout, |p| {
            p.min(now + self.write_timeout)
        });
        // The batch's budget, given back at once when it is flushed (one release per
        // semaphore, not one per message).
        let mut batch = held;
        let mut bytes = data.len() as u64;
        let fut = async {
            self.feed(id, data).await?;
            while bytes < BATCH_BYTES as u64 {
                let Ok(m) = self.queue.try_recv() else {
                    break;
                };
                bytes += m.data.len() as u64;
                match &mut batch {
                    Some(b) => b.merge(m.budget),
                    None => batch = Some(m.budget),
                }
                self.feed(m.id, m.data).await?;
            }
            self.sink.flush().await
        };
        match tokio::time::timeout_at(by, fut).await {
            Ok(Ok(())) => {
                self.written += bytes;
                if self.sink.write_buffer().capacity() > KEEP_BUFFER {
                    // Flushed, so empty, but grown for a large message: let it go. (It
                    // holds at most `WRITE_CHUNK` and one frame otherwise.)
                    *self.sink.write_buffer_mut() = BytesMut::new();
                }
                drop(batch);
                Ok(())
            }
            Ok(Err(e)) => Err(CloseReason::Failed(e.to_string())),
            Err(_) => {
                debug!(target: "rlpx", written = self.written, "peer is not taking what it is sent");
                Err(SLOW_PEER)
            }
        }
    }

    /// Encodes one message into the sink's buffer (written out only when it fills up).
    async fn feed(&mut self, id: u64, data: Bytes) -> Result<(), crate::codec::Error> {
        let len = data.len() as u64;
        let body = if self.info.snappy {
            self.compress(&data)
        } else {
            data
        };
        self.sink.feed(RawMessage { id, data: body }).await?;
        if id >= p2p::BASE_OFFSET {
            self.info.stats.messages_out.fetch_add(1, Ordering::Relaxed);
            // Every id we send is within a shared protocol (`ProtocolSender` offsets it).
            let index = crate::caps::route(&self.info.shared, id).map_or(usize::MAX, |(i, _)| i);
            self.info.stats.count(index, len, false);
        }
        Ok(())
    }

    async fn run(mut self) {
        let mut ping = tokio::time::interval_at(
            tokio::time::Instant::now() + self.ping_interval,
            self.ping_interval,
        );
        let mut closed = self.closed.clone();
        let failure = loop {
            let owed = !self.queue.is_empty();
            let deadline = self.progress.deadline(Instant::now(), self.written, owed);
            let step = tokio::select! {
                biased;
                _ = until_closed(&mut closed) => break None,
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                    debug!(target: "rlpx", written = self.written, "peer is not taking what it is sent");
                    Err(SLOW_PEER)
                }
                Some(c) = self.control.recv() => {
                    let id = match c { Control::Ping => PING, Control::Pong => PONG };
                    self.write(id, Bytes::from_static(&EMPTY_LIST), None).await
                }
                _ = ping.tick() => self.write(PING, Bytes::from_static(&EMPTY_LIST), None).await,
                Some(m) = self.queue.recv() => self.write(m.id, m.data, Some(m.budget)).await,
            };
            if let Err(reason) = step {
                break Some(reason);
            }
        };
        if let Some(reason) = failure {
            self.shutdown.close(reason);
        }
        // Give the queued messages' budget back to the node now, not after the goodbye.
        self.queue.close();
        while self.queue.try_recv().is_ok() {}
        let reason = { self.closed.borrow().clone() };
        if let Some(CloseReason::Local(r)) = reason {
            // Best effort: tell the peer why, then close.
            let body = r.encode_body();
            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), async {
                let body = if self.info.snappy {
                    self.compress(&body)
                } else {
                    body.into()
                };
                let _ = self
                    .sink
                    .send(RawMessage {
                        id: DISCONNECT,
                        data: body,
                    })
                    .await;
            })
            .await;
        }
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), self.sink.close()).await;
        debug!(target: "rlpx", ?reason, "session closed");
    }
}
