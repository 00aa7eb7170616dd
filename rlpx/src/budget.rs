//! What a session may hold and how fast a peer must take what it asked for.
//!
//! Every message a session holds (received and not yet taken by its protocol, or queued
//! for sending and not yet written) holds permits for its size from two pools: the peer's
//! own ([`crate::Config::inbound_budget`], [`crate::Config::outbound_budget`]) and the
//! node's ([`NodeBudget`], shared by every session started with the same
//! [`crate::Config`] or a clone of it). When either is spent, the reader stops reading that
//! peer and senders wait; nothing is dropped. Received messages take their permits on the
//! size a snappy body declares, before it is expanded.
//!
//! Waiting cannot deadlock: inbound permits are returned when a protocol takes a message,
//! outbound ones when the writer has written it, and the writer needs no permits. A peer
//! that does not read what it is sent is dropped by the [`Progress`] rule, which returns
//! its permits to the node.

use crate::buffers::{BufferPool, DEFAULT_BUFFER_POOL};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};
use tokio::time::Instant;

/// Default node-wide bytes of received messages: 128 MiB. An honest peer's answers stop at
/// the 2 MiB eth soft limit and are taken within milliseconds, so this is 64 answers
/// waiting at once across all peers, or 16 peers with a full 8 MiB receive budget.
pub const DEFAULT_NODE_INBOUND: usize = 128 * 1024 * 1024;
/// Default node-wide bytes queued for sending: 64 MiB, 32 eth answers of 2 MiB waiting
/// at once across all peers, or 16 peers with a full 4 MiB send queue.
pub const DEFAULT_NODE_OUTBOUND: usize = 64 * 1024 * 1024;

/// One pool of bytes.
#[derive(Clone)]
struct Pool {
    sem: Arc<Semaphore>,
    total: usize,
}

impl Pool {
    fn new(total: usize) -> Self {
        let total = total.clamp(1, u32::MAX as usize);
        Self {
            sem: Arc::new(Semaphore::new(total)),
            total,
        }
    }

    /// Permits for `len` bytes. A message larger than the whole pool takes all of it, so it
    /// is admitted alone instead of never.
    fn permits(&self, len: usize) -> u32 {
        len.clamp(1, self.total) as u32 // ok: total fits u32 (clamped in `new`)
    }

    fn in_use(&self) -> usize {
        self.total - self.sem.available_permits()
    }
}

/// Bytes of messages that all sessions sharing it may hold at once, per direction: the
/// node-wide cap on top of the per-peer budgets. Cheap to clone; clones share the pools.
#[derive(Clone)]
pub struct NodeBudget {
    inbound: Pool,
    outbound: Pool,
    /// Idle large buffers the node's sessions share ([`crate::buffers`]).
    pub(crate) buffers: BufferPool,
}

impl NodeBudget {
    /// A budget of `inbound` bytes of received messages and `outbound` bytes queued for
    /// sending (each at least 1 byte, at most 4 GiB).
    pub fn new(inbound: usize, outbound: usize) -> Self {
        Self {
            inbound: Pool::new(inbound),
            outbound: Pool::new(outbound),
            buffers: BufferPool::new(DEFAULT_BUFFER_POOL),
        }
    }

    /// Bytes of idle large buffers kept for the next large message, across all sessions:
    /// at most [`DEFAULT_BUFFER_POOL`].
    pub fn pooled_bytes(&self) -> usize {
        self.buffers.bytes()
    }

    /// Bytes of received messages held now, across all sessions.
    pub fn inbound_in_use(&self) -> usize {
        self.inbound.in_use()
    }

    /// Bytes queued for sending now, across all sessions.
    pub fn outbound_in_use(&self) -> usize {
        self.outbound.in_use()
    }
}

impl Default for NodeBudget {
    /// [`DEFAULT_NODE_INBOUND`] and [`DEFAULT_NODE_OUTBOUND`].
    fn default() -> Self {
        Self::new(DEFAULT_NODE_INBOUND, DEFAULT_NODE_OUTBOUND)
    }
}

impl std::fmt::Debug for NodeBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeBudget")
            .field("inbound", &self.inbound.total)
            .field("inbound_in_use", &self.inbound_in_use())
            .field("outbound", &self.outbound.total)
            .field("outbound_in_use", &self.outbound_in_use())
            .field("pooled_bytes", &self.pooled_bytes())
            .finish()
    }
}

/// One direction of one session: the peer's pool and the node's, and for the sending
/// direction a count of messages.
#[derive(Clone)]
pub(crate) struct Budget {
    peer: Pool,
    node: Pool,
    /// One permit per message ([`crate::Config::outbound_queue`]); the queue itself is
    /// unbounded, so that its slots, like its bytes, come back when the writer has
    /// flushed a whole batch, not one message at a time: a sender that filled the
    /// queue is woken once per batch instead of once per message.
    messages: Option<Arc<Semaphore>>,
}

/// The permits one message (or a batch of them, see [`Held::merge`]) holds until it is
/// taken or written.
pub(crate) struct Held {
    message: Option<OwnedSemaphorePermit>,
    peer: OwnedSemaphorePermit,
    node: OwnedSemaphorePermit,
}

impl Held {
    /// Adds `other`'s permits to these, so that they are released together. Both must
    /// come from the same [`Budget`] (or clones of it): the writer merges the messages of
    /// one session's batch.
    pub(crate) fn merge(&mut self, other: Held) {
        match (&mut self.message, other.message) {
            (Some(a), Some(b)) => a.merge(b),
            (a @ None, b) => *a = b,
            (Some(_), None) => {}
        }
        self.peer.merge(other.peer);
        self.node.merge(other.node);
    }
}

/// The pools are closed (never, in practice: they live as long as the session).
#[derive(Debug)]
pub(crate) struct Closed;

impl Budget {
    /// The receiving direction: `per_peer` bytes of this peer within `node`'s.
    pub(crate) fn inbound(per_peer: usize, node: &NodeBudget) -> Self {
        Self {
            peer: Pool::new(per_peer),
            node: node.inbound.clone(),
            messages: None,
        }
    }

    /// The sending direction: `per_peer` bytes of this peer within `node`'s, and at most
    /// `messages` messages (at least one).
    pub(crate) fn outbound(per_peer: usize, messages: usize, node: &NodeBudget) -> Self {
        Self {
            peer: Pool::new(per_peer),
            node: node.outbound.clone(),
            messages: Some(Arc::new(Semaphore::new(
                messages.clamp(1, Semaphore::MAX_PERMITS),
            ))),
        }
    }

    /// Waits for a message slot (sending direction) and `len` bytes of both pools: the
    /// peer's first, so a peer over its own budget waits without holding any of the
    /// node's.
    pub(crate) async fn acquire(&self, len: usize) -> Result<Held, Closed> {
        let message = match &self.messages {
            Some(m) => Some(m.clone().acquire_owned().await.map_err(|_| Closed)?),
            None => None,
        };
        let peer = self.peer.sem.clone();
        let peer = peer.acquire_many_owned(self.peer.permits(len)).await;
        let peer = peer.map_err(|_| Closed)?;
        let node = self.node.sem.clone();
        let node = node.acquire_many_owned(self.node.permits(len)).await;
        Ok(Held {
            message,
            peer,
            node: node.map_err(|_| Closed)?,
        })
    }

    /// Takes `len` bytes of both pools now, or fails without holding any.
    pub(crate) fn try_acquire(&self, len: usize) -> Result<Held, TryAcquireError> {
        let message = match &self.messages {
            Some(m) => Some(m.clone().try_acquire_owned()?),
            None => None,
        };
        let peer = self.peer.sem.clone();
        let peer = peer.try_acquire_many_owned(self.peer.permits(len))?;
        let node = self.node.sem.clone();
        let node = node.try_acquire_many_owned(self.node.permits(len))?;
        Ok(Held {
            message,
            peer,
            node,
        })
    }
}

/// The rule that a peer we owe data must keep taking it: while anything is queued for it
/// (messages in the queue, not senders waiting for permits, which may be the node's fault),
/// at least `min_bytes` must be written per `window`. The window starts when data becomes
/// owed and restarts only once `min_bytes` more have been written or nothing is owed, so a
/// trickle of small writes does not keep a peer alive; a peer that stops reading, or reads
/// a byte now and then, is dropped `window` after the writer started on what it owes.
/// Sans-IO: the writer feeds it `now` (and counts a message being written as owed).
#[derive(Debug)]
pub(crate) struct Progress {
    window: Duration,
    min_bytes: u64,
    /// When the current window started, and the bytes written by then.
    mark: Option<(Instant, u64)>,
}

impl Progress {
    pub(crate) fn new(window: Duration, min_bytes: usize) -> Self {
        Self {
            window,
            min_bytes: min_bytes as u64,
            mark: None,
        }
    }

    /// Updates the window with `written` (bytes written so far, ever) and whether data is
    /// `owed`; returns the deadline by which the window's bytes must have been written.
    pub(crate) fn deadline(&mut self, now: Instant, written: u64, owed: bool) -> Option<Instant> {
        if !owed {
            self.mark = None;
            return None;
        }
        let (start, base) = match self.mark {
            Some((start, base)) if written.saturating_sub(base) < self.min_bytes => (start, base),
            _ => (now, written),
        };
        self.mark = Some((start, base));
        Some(start + self.window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_window_restarts_only_on_enough_bytes_or_an_empty_queue() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut p = Progress::new(s(20), 1000);
        assert_eq!(p.deadline(t0, 0, false), None);
        assert_eq!(p.deadline(t0, 0, true), Some(t0 + s(20)));
        // Small writes do not move the deadline.
        assert_eq!(p.deadline(t0 + s(5), 400, true), Some(t0 + s(20)));
        assert_eq!(p.deadline(t0 + s(10), 999, true), Some(t0 + s(20)));
        // Enough bytes start a new window from now.
        assert_eq!(p.deadline(t0 + s(12), 1000, true), Some(t0 + s(32)));
        assert_eq!(p.deadline(t0 + s(13), 1500, true), Some(t0 + s(32)));
        // Nothing owed: no deadline; owing again starts afresh.
        assert_eq!(p.deadline(t0 + s(14), 1600, false), None);
        assert_eq!(p.deadline(t0 + s(40), 1600, true), Some(t0 + s(60)));
    }

    #[tokio::test]
    async fn a_message_larger_than_a_pool_takes_all_of_it() {
        let node = NodeBudget::new(100, 10);
        let b = Budget::outbound(4, 8, &node);
        let held = b.try_acquire(1000).unwrap();
        assert_eq!((b.peer.in_use(), node.outbound_in_use()), (4, 10));
        assert!(b.try_acquire(1).is_err());
        drop(held);
        assert_eq!((b.peer.in_use(), node.outbound_in_use()), (0, 0));
    }

    #[tokio::test]
    async fn outbound_messages_are_counted_as_well_as_bytes() {
        let node = NodeBudget::new(100, 100);
        let b = Budget::outbound(50, 2, &node);
        let held = [b.try_acquire(1).unwrap(), b.try_acquire(1).unwrap()];
        assert!(b.try_acquire(1).is_err(), "a third message waits");
        assert_eq!(b.peer.in_use(), 2, "and holds no bytes");
        drop(held);
        assert!(b.try_acquire(1).is_ok());
    }

    #[tokio::test]
    async fn a_merged_batch_is_released_at_once() {
        let node = NodeBudget::new(100, 100);
        let b = Budget::outbound(50, 4, &node);
        let mut batch = b.try_acquire(10).unwrap();
        batch.merge(b.try_acquire(20).unwrap());
        batch.merge(b.try_acquire(5).unwrap());
        assert_eq!((b.peer.in_use(), node.outbound_in_use()), (35, 35));
        assert!(b.try_acquire(1).is_ok(), "one message slot left");
        drop(batch);
        assert_eq!((b.peer.in_use(), node.outbound_in_use()), (0, 0));
        let four: Vec<_> = (0..4).map(|_| b.try_acquire(1).unwrap()).collect();
        assert!(
            b.try_acquire(1).is_err(),
            "all four slots came back, no more"
        );
        drop(four);
    }

    #[tokio::test]
    async fn sessions_share_the_node_pool() {
        let node = NodeBudget::new(10, 10);
        let (a, b) = (Budget::inbound(8, &node), Budget::inbound(8, &node));
        let held = a.acquire(6).await.unwrap();
        // b has its own 8 but the node only 4 left: refused, and nothing of b's kept.
        assert!(b.try_acquire(6).is_err());
        assert_eq!((b.peer.in_use(), node.inbound_in_use()), (0, 6));
        drop(held);
        assert!(b.try_acquire(6).is_ok());
    }
}
