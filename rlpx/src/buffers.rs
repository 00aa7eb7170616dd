//! A node-wide pool of large buffers, for the buffers a session needs only while it sends
//! or receives a large message: the writer's compression scratch (above 256 KiB; a
//! session keeps a smaller one) and the expanded body of a received snappy message
//! (from 32 KiB).
//!
//! A session gives such buffers back after each large message, so that a peer that sent
//! one 10 MiB message does not keep 10 MiB. Allocating them afresh for every message cost
//! more than expanding the message itself: the allocation is zeroed (a 1 MiB `memset`),
//! and a fresh mapping page-faults once per 4 KiB page (125 faults per 1 MiB message were
//! measured). Bodies of 64 KiB are below glibc's mmap threshold, but a batch of them freed
//! at once shrinks the heap, which the next batch grows again: on a busy machine runs
//! with 34,000 page faults instead of 8,400 per 4,000 such messages used 1.6x the CPU.
//! The pool keeps such buffers for the next large message of any session of
//! the node, with their contents still initialised (so they are not zeroed again), up to
//! [`DEFAULT_BUFFER_POOL`] bytes in total for the node; what does not fit is freed.

use bytes::Bytes;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Bytes of idle large buffers a node keeps: 16 MiB, room for the compression scratch of a
/// few sessions sending 2 MiB eth answers and the bodies of several received ones being
/// handled at once (a received body returns to the pool when its protocol drops it).
pub const DEFAULT_BUFFER_POOL: usize = 16 * 1024 * 1024;

/// Buffers larger than this are not pooled: honest large messages are eth answers at the
/// 2 MiB soft limit (2.4 MiB when compression fails), and one buffer for a 16 MiB message
/// would crowd out all the others.
pub(crate) const POOLED_MAX: usize = 4 * 1024 * 1024;

/// Buffers smaller than this are not pooled: the allocator serves them cheaply from its
/// free lists, and for a message this small, lending a pooled buffer (a lock and a
/// small allocation) would cost more than it saves.
pub(crate) const POOLED_MIN: usize = 32 * 1024;

/// The pool; cheap to clone, clones share it.
#[derive(Clone)]
pub(crate) struct BufferPool {
    inner: Arc<Mutex<Inner>>,
    limit: usize,
}

struct Inner {
    /// Idle buffers by size class: `free[k]` holds capacities in `[2^k, 2^(k+1))`, so a
    /// buffer for `len` bytes is found in two classes.
    free: Vec<Vec<Vec<u8>>>,
    /// Sum of the capacities in `free`: at most `limit`.
    bytes: usize,
}

/// The size class of a capacity: its base-2 logarithm, rounded down.
fn class(capacity: usize) -> usize {
    (usize::BITS - 1 - capacity.max(1).leading_zeros()) as usize
}

impl BufferPool {
    /// A pool keeping at most `limit` bytes of idle buffers.
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                free: Vec::new(),
                bytes: 0,
            })),
            limit,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing panics while the lock is held, so a poisoned lock is still consistent.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The idle buffer that fits `len` bytes most tightly, holding at most a quarter more
    /// (a buffer lent out for a received message holds at most a quarter more than the
    /// budget counts for it), or an empty one. Its length is
    /// what was initialised before: a caller that needs `len` bytes resizes it, which
    /// zeroes only what was never written.
    pub(crate) fn take(&self, len: usize) -> Vec<u8> {
        let fits = |b: &Vec<u8>| b.capacity() >= len && b.capacity() - len <= len / 4;
        let mut inner = self.lock();
        let first = class(len);
        for k in first..=first + 1 {
            let Some(bucket) = inner.free.get_mut(k) else {
                break;
            };
            // The tightest fit, the last given back among equals; an exact fit ends the
            // search (the common case: a peer sending messages of one size).
            let mut best: Option<(usize, usize)> = None;
            for (i, b) in bucket.iter().enumerate().rev() {
                if fits(b) && best.is_none_or(|(_, cap)| b.capacity() < cap) {
                    best = Some((i, b.capacity()));
                    if b.capacity() == len {
                        break;
                    }
                }
            }
            if let Some((i, _)) = best {
                let buf = bucket.swap_remove(i);
                inner.bytes -= buf.capacity();
                return buf;
            }
        }
        Vec::new()
    }

    /// Keeps `buf` for a later large message if it is large and fits under the limit;
    /// frees it otherwise.
    pub(crate) fn give(&self, buf: Vec<u8>) {
        if !(POOLED_MIN..=POOLED_MAX).contains(&buf.capacity()) {
            return;
        }
        let mut inner = self.lock();
        if inner.bytes + buf.capacity() <= self.limit {
            let k = class(buf.capacity());
            if inner.free.len() <= k {
                inner.free.resize_with(k + 1, Vec::new);
            }
            inner.bytes += buf.capacity();
            inner.free[k].push(buf); // ok: resized above
        }
        // Otherwise `buf` is freed here, after the lock (declared later) is released.
    }

    /// Bytes of idle buffers held now.
    pub(crate) fn bytes(&self) -> usize {
        self.lock().bytes
    }

    /// `buf[..len]` as [`Bytes`] that give `buf` back to the pool when the last clone is
    /// dropped.
    pub(crate) fn bytes_of(&self, buf: Vec<u8>, len: usize) -> Bytes {
        Bytes::from_owner(Pooled {
            len: len.min(buf.len()),
            buf,
            pool: self.clone(),
        })
    }
}

/// A pooled buffer lent out as [`Bytes`].
struct Pooled {
    buf: Vec<u8>,
    len: usize,
    pool: BufferPool,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len] // ok: len <= buf.len() (clamped in `bytes_of`)
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        self.pool.give(std::mem::take(&mut self.buf));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_large_buffers_up_to_the_limit_and_reuses_them_initialised() {
        let pool = BufferPool::new(3 * POOLED_MIN);
        pool.give(vec![0u8; 1024]);
        assert_eq!(pool.bytes(), 0, "small buffers are not kept");
        pool.give(vec![0u8; POOLED_MAX + 1]);
        assert_eq!(pool.bytes(), 0, "nor very large ones");
        pool.give(vec![7u8; POOLED_MIN]);
        pool.give(vec![8u8; 2 * POOLED_MIN]);
        assert_eq!(pool.bytes(), 3 * POOLED_MIN);
        pool.give(vec![9u8; POOLED_MIN]);
        assert_eq!(pool.bytes(), 3 * POOLED_MIN, "over the limit: freed");
        assert!(pool.take(10).is_empty(), "far more than what is asked for");
        assert!(pool.take(POOLED_MIN + 1).is_empty(), "over a quarter more");
        let b = pool.take(2 * POOLED_MIN - 100);
        assert_eq!((b.len(), b[0]), (2 * POOLED_MIN, 8), "one that fits");
        let a = pool.take(POOLED_MIN);
        assert_eq!((a.len(), a[0]), (POOLED_MIN, 7), "an exact fit");
        assert!(pool.take(POOLED_MIN).is_empty(), "none left");
        assert_eq!(pool.bytes(), 0);
    }

    #[test]
    fn lent_bytes_come_back_when_the_last_clone_drops() {
        let pool = BufferPool::new(4 * POOLED_MIN);
        let bytes = pool.bytes_of(vec![5u8; POOLED_MIN], 100);
        assert_eq!(bytes.len(), 100);
        let clone = bytes.slice(10..20);
        drop(bytes);
        assert_eq!(pool.bytes(), 0);
        drop(clone);
        assert_eq!(pool.bytes(), POOLED_MIN);
    }
}
