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
//! read (up to `reader::DELIVER_MESSAGES` / `DELIVER_BYTES`) before handing them to the
//! protocols, so a protocol that keeps up is woken once per batch; the writer encodes
//! what is queued into one buffer and writes it in [`WRITE_CHUNK`]s; the outbound queue's
//! slots and bytes come back when a batch has been written, so a sender that filled it
//! is woken once per batch; and queueing or delivering a message only registers a
//! wake-up (with the session's end, a semaphore, a channel) when it has to wait. Each
//! protocol's inbox (`crate::inbox`) takes a whole batch and wakes its handle once: a
//! channel woke a handle on its own thread once per message. Buffers for large messages
//! (compression scratch, expanded bodies) come from and go back to the node's
//! [`crate::buffers`] pool.
//!
//! The tasks live in the `reader` and `writer` submodules.

use crate::budget::{Budget, Held, Progress};
use crate::caps::Shared;
use crate::codec::RawMessage;
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
use tokio::io::AsyncReadExt;
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
    rx: crate::inbox::Consumer<Inbound>,
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
            let (tx, rx) = crate::inbox::inbox(config.protocol_queue);
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
            buffers: config.node_budget.buffers.clone(),
            idle_timeout: config.idle_timeout,
            ready: Vec::new(),
            ready_bytes: 0,
            ready_expanded: 0,
        };
        let writer = Writer {
            sink,
            info: info.clone(),
            queue: out_rx,
            control: ctrl_rx,
            closed: closed.clone(),
            snappy: p2p::Snappy::default(),
            scratch: Vec::new(),
            buffers: config.node_budget.buffers.clone(),
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

/// Most frame bytes (`msg-data` as sent, compressed) encoded per flush when draining a
/// burst of queued messages. Counted on the wire: a compressible 64 KiB message is ~3 KiB
/// there, and counting it expanded gave batches of 4 messages (a wake-up of the sender
/// and of the peer's reader per 4).
const BATCH_BYTES: usize = 256 * 1024;

/// Encoded bytes the writer holds before writing them out mid-batch. 32 KiB is 30 frames
/// of 1 KiB per write; the buffer only grows this large while a burst is being written.
const WRITE_CHUNK: usize = 32 * 1024;

/// Frame buffers that grew past this for one large message are given back afterwards, so
/// a session keeps at most this much allocated between large messages (instead of the
/// largest frame ever seen, up to 16 MiB each way). Small traffic never reallocates.
const KEEP_BUFFER: usize = BATCH_BYTES;

enum Control {
    Ping,
    Pong,
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

mod reader;
mod writer;
use reader::Reader;
use writer::Writer;
