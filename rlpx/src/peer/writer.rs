//! The writer task: drains the outbound queue in batches, compresses and encodes into one
//! buffer written out in chunks, pings, and enforces the progress rule.

use super::*;
use crate::buffers::BufferPool;
use crate::codec::{Frame, FrameEncoder};
use tokio::io::WriteHalf;
use tokio_util::codec::FramedWrite;

pub(super) struct Writer<S> {
    pub(super) sink: FramedWrite<WriteHalf<S>, FrameEncoder>,
    pub(super) info: Arc<Info>,
    pub(super) queue: mpsc::UnboundedReceiver<Outbound>,
    pub(super) control: mpsc::Receiver<Control>,
    pub(super) closed: watch::Receiver<Option<CloseReason>>,
    pub(super) snappy: p2p::Snappy,
    /// Where a message is compressed before it is framed: reused, so compressing costs
    /// no allocation (or zeroing) per message; given back after a batch if a large
    /// message grew it past [`KEEP_BUFFER`].
    pub(super) scratch: Vec<u8>,
    /// The node's large buffers: a scratch buffer grown for a large message goes back
    /// there after the batch, and comes from there for the next one.
    pub(super) buffers: BufferPool,
    pub(super) ping_interval: std::time::Duration,
    pub(super) write_timeout: std::time::Duration,
    /// The rule that a peer keeps taking what is queued for it.
    pub(super) progress: Progress,
    /// Payload bytes written (flushed) so far, for `progress`.
    pub(super) written: u64,
    pub(super) shutdown: Arc<Shutdown>,
}

/// Why a peer too slow to take what we send is dropped: go-ethereum closes with
/// `DiscNetworkError` (this code) when a write fails or times out.
const SLOW_PEER: CloseReason = CloseReason::Local(DisconnectReason::TcpSubsystemError);

impl<S: Io> Writer<S> {
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
            let mut wire = self.feed(id, data).await?;
            while wire < BATCH_BYTES {
                let Ok(m) = self.queue.try_recv() else {
                    break;
                };
                bytes += m.data.len() as u64;
                match &mut batch {
                    Some(b) => b.merge(m.budget),
                    None => batch = Some(m.budget),
                }
                wire += self.feed(m.id, m.data).await?;
            }
            SinkExt::<Frame<'_>>::flush(&mut self.sink).await
        };
        match tokio::time::timeout_at(by, fut).await {
            Ok(Ok(())) => {
                self.written += bytes;
                if self.sink.write_buffer().capacity() > KEEP_BUFFER {
                    // Flushed, so empty, but grown for a large message: let it go. (It
                    // holds at most `WRITE_CHUNK` and one frame otherwise.)
                    *self.sink.write_buffer_mut() = BytesMut::new();
                }
                if self.scratch.capacity() > KEEP_BUFFER {
                    self.buffers.give(std::mem::take(&mut self.scratch));
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

    /// Encodes one message into the sink's buffer (written out only when it fills up);
    /// the size of its `msg-data` on the wire.
    async fn feed(&mut self, id: u64, data: Bytes) -> Result<usize, crate::codec::Error> {
        let len = data.len() as u64;
        if self.info.snappy {
            let max = snap::raw::max_compress_len(data.len());
            if max > self.scratch.len() && max > KEEP_BUFFER {
                let pooled = self.buffers.take(max);
                if pooled.capacity() >= max {
                    self.scratch = pooled;
                }
            }
        }
        let body = wire_body(self.info.snappy, &mut self.snappy, &mut self.scratch, &data);
        let wire = body.len();
        self.sink.feed(Frame { id, data: body }).await?;
        if id >= p2p::BASE_OFFSET {
            self.info.stats.messages_out.fetch_add(1, Ordering::Relaxed);
            // Every id we send is within a shared protocol (`ProtocolSender` offsets it).
            let index = crate::caps::route(&self.info.shared, id).map_or(usize::MAX, |(i, _)| i);
            self.info.stats.count(index, len, false);
        }
        Ok(wire)
    }

    pub(super) async fn run(mut self) {
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
                let data = wire_body(self.info.snappy, &mut self.snappy, &mut self.scratch, &body);
                let _ = self
                    .sink
                    .send(Frame {
                        id: DISCONNECT,
                        data,
                    })
                    .await;
            })
            .await;
        }
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(1),
            SinkExt::<Frame<'_>>::close(&mut self.sink),
        )
        .await;
        debug!(target: "rlpx", ?reason, "session closed");
    }
}

/// `data` as it goes on the wire: compressed into `scratch` when snappy is in use.
fn wire_body<'a>(
    snappy: bool,
    codec: &mut p2p::Snappy,
    scratch: &'a mut Vec<u8>,
    data: &'a [u8],
) -> &'a [u8] {
    if snappy {
        // ok-by-construction: sizes are checked before queueing, so this cannot fail.
        codec.compress_into(data, scratch).unwrap_or_default()
    } else {
        data
    }
}
