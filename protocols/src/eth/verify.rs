//! Transaction checks off the async runtime, within a per-peer budget.
//!
//! Checking a transaction costs a signature recovery (tens of microseconds), and one
//! `Transactions` message can carry ~90k transfers whose signatures recover to distinct
//! random senders (an attacker needs no key for that: any `s` with a valid `r` recovers
//! some key). Two defences:
//!
//! - [`Meter`] (sans-IO, time passed in): each peer's new transactions are metered in
//!   count and bytes against [`Budget`]; what is over budget is dropped unchecked, and a
//!   peer that keeps sending while over budget (a whole burst of debt) is disconnected with
//!   `UselessPeer`: sending transactions is no breach of the protocol, which sets no rate,
//!   but a peer flooding us is of no use.
//! - `Workers`: the recoveries (and the decoding of large messages) run on tokio's
//!   blocking pool, at most [`super::Config::verify_threads`] jobs at once, in chunks of
//!   [`CHUNK`]. The permits are handed out first come first served, and each peer's handler
//!   waits for its chunk before queueing the next, so peers with work take turns: one peer
//!   cannot starve the others' share, and the runtime threads stay free for everyone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::eth::messages::PooledTransaction;
use alloy_consensus::TxEnvelope;
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::B256;
use tokio::sync::Semaphore;

use super::peer::Knows;
use super::pool::Pool;

/// Transactions per job on the worker pool: ~64 recoveries are a few milliseconds, short
/// enough that a peer queued behind another gets its turn soon, long enough that the
/// hand-off costs little.
pub const CHUNK: usize = 64;

/// What one peer may make us check. An honest peer relays each new transaction once:
/// mainnet sees ~15-30 new transactions a second network-wide (~1.2-2M a day, ~200-300
/// per 12 s block), and blob transactions (~128 KiB per blob) at most 9 blobs per block. The
/// defaults leave a sustained 3-6 times that and bursts of a whole relay queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Transactions per second, sustained. Default 100.
    pub txs_per_second: u32,
    /// Transactions at once. Default 4096 (go-ethereum `maxQueuedTxs`: what a peer may
    /// have queued for us and send in one go, e.g. after a stall).
    pub tx_burst: u32,
    /// Bytes per second, sustained. Default 1 MiB: ~8 blobs a second, over 10 times the
    /// network's blob rate, and ~2,000 plain transfers.
    pub bytes_per_second: u32,
    /// Bytes at once. Default 16 MiB: twenty full six-blob transactions.
    pub byte_burst: u32,
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            txs_per_second: 100,
            tx_burst: 4096,
            bytes_per_second: 1 << 20,
            byte_burst: 16 << 20,
        }
    }
}

/// What to do with one transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Within budget: check it.
    Admit,
    /// Over budget: drop it unchecked.
    Drop,
    /// Over budget by a whole burst: disconnect the peer (`UselessPeer`).
    Offender,
}

/// A token bucket that may go into debt down to `-burst`.
#[derive(Clone, Debug)]
struct Bucket {
    level: f64,
    rate: f64,
    burst: f64,
    last: Instant,
}

impl Bucket {
    fn new(rate: u32, burst: u32, now: Instant) -> Self {
        Self {
            level: f64::from(burst),
            rate: f64::from(rate),
            burst: f64::from(burst),
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.level = (self.level + dt * self.rate).min(self.burst);
    }

    fn has(&self, cost: f64) -> bool {
        self.level >= cost
    }

    /// Takes `cost`; returns whether the debt reached a whole burst.
    fn take(&mut self, cost: f64) -> bool {
        self.level = (self.level - cost).max(-self.burst);
        self.level <= -self.burst
    }
}

/// One peer's transaction budget (sans-IO).
#[derive(Clone, Debug)]
pub struct Meter {
    txs: Bucket,
    bytes: Bucket,
}

impl Meter {
    /// A full budget at `now`.
    pub fn new(budget: &Budget, now: Instant) -> Self {
        Self {
            txs: Bucket::new(budget.txs_per_second, budget.tx_burst, now),
            bytes: Bucket::new(budget.bytes_per_second, budget.byte_burst, now),
        }
    }

    /// Charges one new transaction of `bytes` bytes received at `now`. A dropped
    /// transaction is charged too: a peer that keeps sending over budget goes into debt,
    /// and one burst of debt makes it an [`Verdict::Offender`]. An honest peer slightly
    /// over budget loses a few transactions (another peer relays them) and is back within
    /// budget after `debt / rate` seconds.
    pub fn charge(&mut self, now: Instant, bytes: usize) -> Verdict {
        self.txs.refill(now);
        self.bytes.refill(now);
        let size = bytes as f64;
        let admit = self.txs.has(1.0) && self.bytes.has(size);
        let broke = self.txs.take(1.0) | self.bytes.take(size);
        match (admit, broke) {
            (true, _) => Verdict::Admit,
            (false, true) => Verdict::Offender,
            (false, false) => Verdict::Drop,
        }
    }

    /// How long until `n` transactions fit again (for tests and logs).
    pub fn wait_for(&self, n: u32) -> Duration {
        let missing = (f64::from(n) - self.txs.level).max(0.0);
        Duration::from_secs_f64(missing / self.txs.rate.max(f64::MIN_POSITIVE))
    }
}

/// Charges a new transaction of `size` bytes to `meter`; one the pool holds or refused a
/// moment ago costs nothing to check again and is admitted free.
pub(super) fn charge(
    meter: &mut Meter,
    pool: &Pool,
    hash: &B256,
    size: usize,
    now: Instant,
) -> Verdict {
    if pool.seen(hash) {
        return Verdict::Admit;
    }
    meter.charge(now, size)
}

/// A broadcast sorted against the sender's budget by [`admit`].
pub(super) struct Admitted {
    /// What to check, in order.
    pub(super) txs: Vec<PooledTransaction>,
    /// How many were over budget and dropped.
    pub(super) dropped: usize,
    /// The sender went a whole burst over budget: disconnect it.
    pub(super) flood: bool,
    /// A blob transaction was broadcast in full (EIP-4844 forbids it).
    pub(super) blob: bool,
    /// The sender's budget, updated.
    pub(super) meter: Meter,
}

/// Sorts a `Transactions` broadcast against the sender's `meter` (marking every hash as
/// known to the sender in `knows`): the work a large broadcast costs before any signature
/// is checked, for the worker pool. Stops at an offence.
pub(super) fn admit(
    list: Vec<TxEnvelope>,
    mut meter: Meter,
    pool: &Pool,
    knows: &Knows,
    now: Instant,
) -> Admitted {
    knows.mark_txs(list.iter().map(|t| *t.tx_hash()));
    let mut txs = Vec::new();
    let (mut dropped, mut flood, mut blob) = (0, false, false);
    for tx in list {
        let Ok(tx) = tx.try_into_pooled() else {
            blob = true;
            break;
        };
        match charge(&mut meter, pool, tx.hash(), tx.encode_2718_len(), now) {
            Verdict::Admit => txs.push(tx),
            Verdict::Drop => dropped += 1,
            Verdict::Offender => {
                flood = true;
                break;
            }
        }
    }
    Admitted {
        txs,
        dropped,
        flood,
        blob,
        meter,
    }
}

/// The bounded pool that runs expensive checks off the runtime (see the module docs).
#[derive(Clone, Debug)]
pub(super) struct Workers {
    permits: Arc<Semaphore>,
}

impl Workers {
    /// At most `threads` jobs at once (at least one).
    pub(super) fn new(threads: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(threads.max(1))),
        }
    }

    /// Runs `f` on the blocking pool once a permit is free (first come first served).
    /// `None` if the runtime is shutting down. A panic in `f` is resumed here.
    pub(super) async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let permit = self.permits.clone().acquire_owned().await.ok()?;
        let job = tokio::task::spawn_blocking(move || {
            // Held until the job ends, even if the caller stops waiting.
            let _permit = permit;
            f()
        });
        match job.await {
            Ok(v) => Some(v),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => None,
        }
    }
}

/// Default [`super::Config::verify_threads`]: half the cores (at least one), leaving the
/// rest to the runtime and the other peers' I/O.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget() -> Budget {
        Budget {
            txs_per_second: 10,
            tx_burst: 100,
            bytes_per_second: 10_000,
            byte_burst: 1_000_000,
        }
    }

    fn run(m: &mut Meter, now: Instant, n: usize, bytes: usize) -> [usize; 3] {
        let mut out = [0; 3];
        for _ in 0..n {
            out[m.charge(now, bytes) as usize] += 1;
        }
        out
    }

    #[test]
    fn burst_then_rate_then_offender() {
        let t0 = Instant::now();
        let mut m = Meter::new(&budget(), t0);
        // A burst is admitted, the excess dropped.
        assert_eq!(run(&mut m, t0, 150, 100), [100, 50, 0]);
        // Debt of 50 at 10/s: nothing fits for 5 s, one after 5.1 s.
        assert_eq!(m.wait_for(1), Duration::from_millis(5100));
        assert_eq!(run(&mut m, t0 + Duration::from_secs(5), 1, 100), [0, 1, 0]);
        let t1 = t0 + Duration::from_millis(5200);
        assert_eq!(run(&mut m, t1, 1, 100), [1, 0, 0]);
        // Keeping on while over budget: a whole burst of debt makes an offender.
        let [_, dropped, offender] = run(&mut m, t1, 200, 100);
        assert_eq!((dropped, offender > 0), (99, true));
    }

    #[test]
    fn sustained_honest_rate_is_never_dropped() {
        let t0 = Instant::now();
        let mut m = Meter::new(&budget(), t0);
        // 10 per second for ten minutes, in bursts of 50 every 5 s.
        for i in 0..120u64 {
            let now = t0 + Duration::from_secs(5 * i);
            assert_eq!(run(&mut m, now, 50, 100), [50, 0, 0], "round {i}");
        }
    }

    #[test]
    fn bytes_are_budgeted_too() {
        let t0 = Instant::now();
        let mut m = Meter::new(&budget(), t0);
        // Ten 100 kB transactions fill the byte burst; the eleventh waits.
        assert_eq!(run(&mut m, t0, 10, 100_000), [10, 0, 0]);
        assert_eq!(run(&mut m, t0, 1, 100_000), [0, 1, 0]);
        // 10 kB/s: 100 kB of debt is paid back, and another 100 kB earned, in 20 s.
        assert_eq!(
            run(&mut m, t0 + Duration::from_secs(20), 1, 100_000),
            [1, 0, 0]
        );
    }

    /// One peer with a long queue of chunks and another with one: the second runs next,
    /// not after the first's whole queue.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn peers_take_turns_on_the_workers() {
        type Order = Arc<std::sync::Mutex<Vec<&'static str>>>;
        let workers = Workers::new(1);
        let order: Order = Default::default();
        let job =
            |who: &'static str, order: &Order, started: Option<std::sync::mpsc::Sender<()>>| {
                let order = order.clone();
                move || {
                    if let Some(s) = started {
                        let _ = s.send(());
                    }
                    std::thread::sleep(Duration::from_millis(100));
                    order.lock().unwrap().push(who);
                }
            };
        let (w, o) = (workers.clone(), order.clone());
        let (started_tx, started) = std::sync::mpsc::channel();
        let greedy = tokio::spawn(async move {
            let mut started_tx = Some(started_tx);
            for _ in 0..5 {
                w.run(job("greedy", &o, started_tx.take())).await.unwrap();
            }
        });
        // The greedy peer's first chunk holds the only permit when the other one asks.
        tokio::task::spawn_blocking(move || started.recv().unwrap())
            .await
            .unwrap();
        workers.run(job("other", &order, None)).await.unwrap();
        greedy.await.unwrap();
        let order = order.lock().unwrap().clone();
        assert_eq!(
            order.iter().position(|w| *w == "other"),
            Some(1),
            "{order:?}"
        );
    }

    #[test]
    fn time_going_backwards_is_harmless() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let mut m = Meter::new(&budget(), t0);
        assert_eq!(
            run(&mut m, t0 - Duration::from_secs(5), 100, 1),
            [100, 0, 0]
        );
        assert_eq!(run(&mut m, t0, 1, 1), [0, 1, 0]);
    }
}
