//! The reader task: decodes frames, answers p2p messages, and hands subprotocol messages
//! to their protocols' inboxes a batch at a time.

use super::*;
use crate::buffers::{BufferPool, POOLED_MIN};
use crate::codec::FrameDecoder;
use crate::inbox::{Producer, PushError};
use tokio::io::ReadHalf;

/// A fresh read buffer's size: `tokio_util`'s initial frame buffer capacity.
const FRESH_BUFFER: usize = 8 * 1024;

/// Most messages the reader takes from what it has already read before handing them to
/// the protocols together. A protocol that keeps up with its peer would otherwise be
/// woken (often on another thread) once per message; 64 is the default protocol queue.
const DELIVER_MESSAGES: usize = 64;

/// Most frame bytes decoded before handing them over: keeps the first message of a batch
/// from waiting on the decryption of many large ones (64 KiB of frames decrypt and MAC in
/// ~0.3 ms). Counted on the wire, not expanded: a compressible 64 KiB message is a ~3 KiB
/// frame, and counting it as 64 KiB made every such message a batch of its own (a
/// wake-up of the protocol each).
const DELIVER_BYTES: usize = 64 * 1024;

/// Most expanded bytes taken before handing them over: expanding runs at ~14 GB/s, so
/// this adds at most ~75 µs to the first message's wait (and the receive budget, 8 MiB
/// per peer by default, bounds what a batch holds in any case).
const DELIVER_EXPANDED: usize = 1024 * 1024;

/// The reader's byte source: what was read past the Hello, then the socket.
type ReadIo<S> = tokio::io::Chain<std::io::Cursor<BytesMut>, ReadHalf<S>>;

pub(super) struct Reader<S> {
    pub(super) stream: FramedRead<ReadIo<S>, FrameDecoder>,
    pub(super) info: Arc<Info>,
    /// One inbox per shared protocol, in [`Info::shared`]'s order.
    pub(super) routes: Vec<Producer<Inbound>>,
    pub(super) control: mpsc::Sender<Control>,
    pub(super) budget: Budget,
    pub(super) shutdown: Arc<Shutdown>,
    pub(super) snappy: p2p::Snappy,
    /// The node's large buffers: a large message is expanded into one.
    pub(super) buffers: BufferPool,
    pub(super) idle_timeout: std::time::Duration,
    /// Messages taken (budget held, expanded) and not yet handed to their protocol, with
    /// the index of the protocol, in arrival order: at most [`DELIVER_MESSAGES`].
    pub(super) ready: Vec<(usize, Inbound)>,
    /// Their frame bytes.
    pub(super) ready_bytes: usize,
    /// Their expanded bytes.
    pub(super) ready_expanded: usize,
}

impl<S: Io> Reader<S> {
    pub(super) async fn run(mut self) {
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
                && self.ready_expanded < DELIVER_EXPANDED
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
            let len = p2p::decompressed_len(data)?;
            if len < POOLED_MIN {
                return Ok(self.snappy.decompress(data)?);
            }
            // Into a buffer from the node's pool, which goes back there when the protocol
            // drops the message: no zeroing or page faults per large message.
            let mut buf = self.buffers.take(len);
            if buf.len() < len {
                buf.resize(len, 0);
            }
            let n = self.snappy.decompress_into(data, &mut buf[..len])?; // ok: buf.len() >= len
            Ok(self.buffers.bytes_of(buf, n))
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
        self.ready_bytes += msg.data.len();
        let id = msg.id;
        drop(msg);
        self.info.stats.count(index, data.len() as u64, true);
        trace!(target: "rlpx", id, len = data.len(), "message");
        self.ready_expanded += data.len();
        let inbound = Inbound {
            code,
            data,
            _budget: budget,
        };
        self.ready.push((index, inbound));
        Ok(())
    }

    /// Hands the ready messages to their protocols in order, waiting (until the session
    /// ends) while a protocol's inbox is full, and wakes each protocol once per batch.
    async fn deliver(
        &mut self,
        closed: &mut watch::Receiver<Option<CloseReason>>,
    ) -> Result<(), CloseReason> {
        self.ready_bytes = 0;
        self.ready_expanded = 0;
        let routes = &self.routes;
        let wake_all = || routes.iter().for_each(Producer::wake);
        for (index, mut m) in self.ready.drain(..) {
            let route = &routes[index]; // ok: index comes from `route` over the same list
            loop {
                match route.try_push(m) {
                    Ok(()) => break,
                    Err(PushError::Closed) => return Err(handle_dropped()),
                    Err(PushError::Full(back)) => m = back,
                }
                // Let the protocols have what is queued, then wait for room.
                wake_all();
                tokio::select! {
                    _ = until_closed(closed) => return Ok(()),
                    _ = route.ready() => {}
                }
            }
        }
        wake_all();
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
