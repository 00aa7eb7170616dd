//! The queue between a session's reader and one protocol's [`ProtocolHandle`]: bounded in
//! messages, filled a batch at a time.
//!
//! A `tokio::sync::mpsc` channel wakes its receiver on every send that finds it waiting.
//! When the receiver runs on its own thread (a `block_on` loop, or a handler on another
//! worker) and keeps up, it is parked again by the time the next message of a batch is
//! sent, so a batch of 64 small messages cost up to 64 thread wake-ups (a futex each, 2–5 µs
//! of CPU on both sides, more than the codec work of a compressible 1 KiB message). Here
//! the reader pushes a whole batch and wakes the handle once; the handle wakes a reader
//! that waits for room only when the queue has drained to half, again once per batch.
//!
//! [`ProtocolHandle`]: crate::ProtocolHandle

use futures::task::AtomicWaker;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

/// A bounded queue of at most `capacity` messages; the two ends.
pub(crate) fn inbox<T>(capacity: usize) -> (Producer<T>, Consumer<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            queue: VecDeque::new(),
            producer_gone: false,
            consumer_gone: false,
            producer_waiting: false,
        }),
        consumer: AtomicWaker::new(),
        producer: AtomicWaker::new(),
        capacity: capacity.max(1),
    });
    (Producer(shared.clone()), Consumer(shared))
}

struct Shared<T> {
    state: Mutex<State<T>>,
    consumer: AtomicWaker,
    producer: AtomicWaker,
    capacity: usize,
}

struct State<T> {
    queue: VecDeque<T>,
    producer_gone: bool,
    consumer_gone: bool,
    /// The producer found the queue full and waits for it to drain to half.
    producer_waiting: bool,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // Nothing panics while the lock is held (queue operations only), so a poisoned
        // lock still holds a consistent queue.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Why a message could not be queued.
pub(crate) enum PushError<T> {
    /// The queue holds `capacity` messages.
    Full(T),
    /// The consumer is gone.
    Closed,
}

/// The reader's end.
pub(crate) struct Producer<T>(Arc<Shared<T>>);

impl<T> Producer<T> {
    /// Queues `item` without waking the consumer (see [`Producer::wake`]).
    pub(crate) fn try_push(&self, item: T) -> Result<(), PushError<T>> {
        let mut s = self.0.lock();
        if s.consumer_gone {
            return Err(PushError::Closed);
        }
        if s.queue.len() >= self.0.capacity {
            return Err(PushError::Full(item));
        }
        s.queue.push_back(item);
        Ok(())
    }

    /// Wakes the consumer if it waits: once per batch pushed.
    pub(crate) fn wake(&self) {
        self.0.consumer.wake();
    }

    /// Waits until the queue has room (or the consumer is gone). The consumer wakes us
    /// when it has taken half of a full queue, so a slow consumer costs one wake-up per
    /// half queue, not one per message.
    pub(crate) async fn ready(&self) {
        std::future::poll_fn(|cx| self.poll_ready(cx)).await
    }

    fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.0.producer.register(cx.waker());
        let mut s = self.0.lock();
        if s.consumer_gone || s.queue.len() < self.0.capacity {
            s.producer_waiting = false;
            return Poll::Ready(());
        }
        s.producer_waiting = true;
        Poll::Pending
    }
}

impl<T> Drop for Producer<T> {
    fn drop(&mut self) {
        self.0.lock().producer_gone = true;
        self.0.consumer.wake();
    }
}

/// The protocol handle's end.
pub(crate) struct Consumer<T>(Arc<Shared<T>>);

impl<T> Consumer<T> {
    /// The next message, or `None` once the producer is gone and the queue is empty.
    pub(crate) async fn recv(&mut self) -> Option<T> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        if let Some(r) = self.try_take() {
            return Poll::Ready(r);
        }
        // Register, then look again: a batch pushed (and woken for) between the first
        // look and the registration is seen here.
        self.0.consumer.register(cx.waker());
        match self.try_take() {
            Some(r) => Poll::Ready(r),
            None => Poll::Pending,
        }
    }

    /// `Some(Some(item))`, `Some(None)` at the end, `None` when it must wait.
    fn try_take(&mut self) -> Option<Option<T>> {
        let mut s = self.0.lock();
        match s.queue.pop_front() {
            Some(item) => {
                let wake = s.producer_waiting && s.queue.len() <= self.0.capacity / 2;
                if wake {
                    s.producer_waiting = false;
                }
                drop(s);
                if wake {
                    self.0.producer.wake();
                }
                Some(Some(item))
            }
            None if s.producer_gone => Some(None),
            None => None,
        }
    }
}

impl<T> Drop for Consumer<T> {
    fn drop(&mut self) {
        // What was queued is dropped here, outside the lock (it gives back budget).
        let queued = {
            let mut s = self.0.lock();
            s.consumer_gone = true;
            std::mem::take(&mut s.queue)
        };
        drop(queued);
        self.0.producer.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    #[test]
    fn bounded_in_order_and_ends() {
        let (tx, mut rx) = inbox(2);
        assert!(tx.try_push(1).is_ok());
        assert!(tx.try_push(2).is_ok());
        assert!(matches!(tx.try_push(3), Err(PushError::Full(3))));
        assert_eq!(rx.recv().now_or_never(), Some(Some(1)));
        assert!(tx.try_push(3).is_ok());
        drop(tx);
        assert_eq!(rx.recv().now_or_never(), Some(Some(2)));
        assert_eq!(rx.recv().now_or_never(), Some(Some(3)));
        assert_eq!(rx.recv().now_or_never(), Some(None));
    }

    #[test]
    fn closed_when_consumer_dropped_and_queue_released() {
        let (tx, rx) = inbox(4);
        let item = Arc::new(());
        assert!(tx.try_push(item.clone()).is_ok());
        drop(rx);
        assert_eq!(
            Arc::strong_count(&item),
            1,
            "queued items are dropped with the consumer"
        );
        assert!(matches!(tx.try_push(item), Err(PushError::Closed)));
        assert_eq!(tx.ready().now_or_never(), Some(()));
    }

    #[tokio::test]
    async fn full_producer_waits_and_consumer_is_woken() {
        let (tx, mut rx) = inbox(4);
        for i in 0..4 {
            assert!(tx.try_push(i).is_ok());
        }
        let mut ready = Box::pin(tx.ready());
        assert!(ready.as_mut().now_or_never().is_none(), "full: waits");
        assert_eq!(rx.recv().await, Some(0));
        assert_eq!(ready.as_mut().now_or_never(), Some(()), "room for one");
        drop(ready);
        assert_eq!(rx.recv().await, Some(1));
        assert_eq!(rx.recv().await, Some(2));
        assert_eq!(rx.recv().await, Some(3));
        let waiting = tokio::spawn(async move { rx.recv().await });
        tokio::task::yield_now().await;
        assert!(tx.try_push(9).is_ok());
        tx.wake();
        assert_eq!(waiting.await.ok(), Some(Some(9)));
    }
}
