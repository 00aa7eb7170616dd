//! One connection of an HTTP endpoint: its slot, and an IO wrapper that keeps a client
//! who sends faster than it reads from making the server hold more and more.
//!
//! A WebSocket client may send requests without ever reading the answers. jsonrpsee
//! reads every message as it arrives and answers it in a task of its own, so without a
//! bound the tasks (each holding its request, then its answer) pile up. [`Guarded`] stops
//! reading from the socket while a write to it is stuck or while [`Conn::max_in_flight`]
//! calls are open (the RPC middleware counts them with [`Conn::start_call`]), so the
//! client's own TCP window fills and it is the one that waits. A write that makes no
//! progress for [`super::http::Limits::write_timeout`] fails the connection.
//!
//! A call is open until its answer is in the connection's queue, not only while it
//! runs: jsonrpsee sends the answer from the call's task after the middleware returns,
//! waiting for a place in the queue; a client reading slowly makes a little write
//! progress now and then (so the socket is not "stuck" for long) and, were answers not
//! counted, each bit of progress would let more requests in, each a task holding its
//! answer. [`Handoff`] passes the middleware's [`Call`] to the method, which keeps it
//! until jsonrpsee reports the answer queued ([`answer`]).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use jsonrpsee::ResponsePayload;
use jsonrpsee::types::ErrorObjectOwned;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// Most bytes taken from the socket at once: past the call limit, at most this much more
/// is parsed into calls before reading pauses (about 45 typical 90-byte requests; each
/// read also yields first so the calls already read count themselves). A 2 MiB
/// WebSocket message takes 512 reads of it.
const MAX_READ: usize = 4096;

/// A connection's shared state; the last reference gives its slot back.
#[derive(Debug)]
pub(crate) struct Conn {
    /// Held for the connection's lifetime (returned to the pool on drop).
    _slot: Box<dyn std::fmt::Debug + Send + Sync>,
    in_flight: AtomicUsize,
    max_in_flight: usize,
    write_stuck: AtomicBool,
    reader: Mutex<Option<Waker>>,
}

impl Conn {
    /// A connection holding `slot`, reading while fewer than `max_in_flight` calls run.
    pub(crate) fn new(
        slot: impl std::fmt::Debug + Send + Sync + 'static,
        max_in_flight: usize,
    ) -> Self {
        Self {
            _slot: Box::new(slot),
            in_flight: AtomicUsize::new(0),
            max_in_flight: max_in_flight.max(1),
            write_stuck: AtomicBool::new(false),
            reader: Mutex::new(None),
        }
    }

    /// Counts a call until the returned guard drops.
    pub(crate) fn start_call(self: &Arc<Self>) -> Call {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        Call(self.clone())
    }

    fn paused(&self) -> bool {
        self.write_stuck.load(Ordering::Acquire)
            || self.in_flight.load(Ordering::Acquire) >= self.max_in_flight
    }

    fn wake_reader(&self) {
        let waker = self
            .reader
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// A running call (see [`Conn::start_call`]).
#[derive(Debug)]
pub(crate) struct Call(Arc<Conn>);

impl Drop for Call {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.0.wake_reader();
    }
}

/// The middleware's [`Call`], for the method to take and keep until its answer is
/// queued (see [`answer`]); if no method takes it (a refused or unknown call), it ends
/// when the middleware returns.
#[derive(Debug, Clone, Default)]
pub(crate) struct Handoff(Arc<Mutex<Option<Call>>>);

impl Handoff {
    /// A hand-off of `call`.
    pub(crate) fn new(call: Option<Call>) -> Self {
        Self(Arc::new(Mutex::new(call)))
    }

    /// The call, if not taken yet.
    pub(crate) fn take(&self) -> Option<Call> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

/// A method's answer that keeps `call` open until jsonrpsee has put it in the
/// connection's queue (or dropped it: connection closed, a notification's answer, or an
/// entry of a batch, which is built before it is queued).
pub(crate) fn answer(
    call: Option<Call>,
    result: Result<serde_json::Value, ErrorObjectOwned>,
) -> ResponsePayload<'static, serde_json::Value> {
    let payload = match result {
        Ok(v) => ResponsePayload::success(v),
        Err(e) => ResponsePayload::error(e),
    };
    let Some(call) = call else { return payload };
    let (payload, queued) = payload.notify_on_completion();
    // One small task per open call, bounded as the calls are.
    tokio::spawn(async move {
        let _ = queued.await;
        drop(call);
    });
    payload
}

/// An IO stream that pauses reading as [`Conn`] says and fails writes stuck for longer
/// than its write timeout.
pub(crate) struct Guarded<T> {
    io: T,
    conn: Arc<Conn>,
    write_timeout: Duration,
    stall: Option<Pin<Box<Sleep>>>,
    /// The last read returned data: the next one yields first.
    read_last: bool,
}

impl<T> Guarded<T> {
    pub(crate) fn new(io: T, conn: Arc<Conn>, write_timeout: Duration) -> Self {
        Self {
            io,
            conn,
            write_timeout,
            stall: None,
            read_last: false,
        }
    }

    /// Tracks a write's progress: pending arms the stall timer, anything else clears it.
    fn track<R>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        match r {
            Poll::Pending => {
                self.conn.write_stuck.store(true, Ordering::Release);
                let timeout = self.write_timeout;
                let stall = self
                    .stall
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                if stall.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "client stopped reading",
                    )));
                }
                Poll::Pending
            }
            ready => {
                self.stall = None;
                if self.conn.write_stuck.swap(false, Ordering::AcqRel) {
                    self.conn.wake_reader();
                }
                ready
            }
        }
    }
}

use std::future::Future as _;

impl<T: AsyncRead + Unpin> AsyncRead for Guarded<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.read_last {
            // Let the tasks of the calls just read start (and count themselves) first.
            self.read_last = false;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        if self.conn.paused() {
            *self
                .conn
                .reader
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(cx.waker().clone());
            // The state may have changed before the waker was stored.
            if self.conn.paused() {
                return Poll::Pending;
            }
        }
        // Whatever is read is parsed into calls without looking at the pause again, so
        // a read is kept small: past the limit, at most one read's worth of calls start.
        let before = buf.filled().len();
        let r = if buf.remaining() <= MAX_READ {
            Pin::new(&mut self.io).poll_read(cx, buf)
        } else {
            // Through a small buffer of our own (a 4 KiB copy is nothing next to parsing
            // the JSON), so no unsafe is needed to hand the bytes on.
            let mut tmp = [0u8; MAX_READ];
            let mut small = ReadBuf::new(&mut tmp);
            let r = Pin::new(&mut self.io).poll_read(cx, &mut small);
            buf.put_slice(small.filled());
            r
        };
        self.read_last = buf.filled().len() > before;
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Guarded<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        self.track(cx, r)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_flush(cx);
        self.track(cx, r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.track(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// While a call runs at the limit, nothing more is read; when it ends, reading goes on.
    #[tokio::test]
    async fn reading_pauses_while_calls_are_at_the_limit() {
        let (a, mut b) = tokio::io::duplex(64);
        let conn = Arc::new(Conn::new((), 1));
        let mut g = Guarded::new(a, conn.clone(), Duration::from_secs(1));
        b.write_all(b"x").await.unwrap();
        let call = conn.start_call();
        let mut buf = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_millis(50), g.read(&mut buf)).await;
        assert!(read.is_err(), "read while paused");
        drop(call);
        assert_eq!(g.read(&mut buf).await.unwrap(), 1);
    }

    /// A client that never reads fails the connection after the write timeout.
    #[tokio::test]
    async fn stuck_write_times_out() {
        let (a, _b) = tokio::io::duplex(16);
        let conn = Arc::new(Conn::new((), 4));
        let mut g = Guarded::new(a, conn, Duration::from_millis(50));
        let e = g.write_all(&[0u8; 64]).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }
}
