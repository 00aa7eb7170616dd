//! One connection of an HTTP endpoint: its slot, and an IO wrapper that keeps a client
//! who sends faster than it reads from making the server hold more and more.
//!
//! A WebSocket client may send requests without ever reading the answers. jsonrpsee
//! reads every message as it arrives and answers it in a task of its own, so without a
//! bound the tasks (each holding its request) pile up. [`Guarded`] stops reading from the
//! socket while a write to it is stuck or while [`Conn::max_in_flight`] calls run (the
//! RPC middleware counts them with [`Conn::start_call`]), so the client's own TCP window
//! fills and it is the one that waits. A write that makes no progress for
//! [`super::http::Limits::write_timeout`] fails the connection.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

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

/// An IO stream that pauses reading as [`Conn`] says and fails writes stuck for longer
/// than its write timeout.
pub(crate) struct Guarded<T> {
    io: T,
    conn: Arc<Conn>,
    write_timeout: Duration,
    stall: Option<Pin<Box<Sleep>>>,
}

impl<T> Guarded<T> {
    pub(crate) fn new(io: T, conn: Arc<Conn>, write_timeout: Duration) -> Self {
        Self {
            io,
            conn,
            write_timeout,
            stall: None,
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
        Pin::new(&mut self.io).poll_read(cx, buf)
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
