//! Transaction propagation and the task driving the [`txfetch::Fetcher`].
//!
//! A transaction newly pooled (from a peer, an answer to our request, or
//! [`super::Handle::submit_transaction`]) is sent in full (`Transactions`) to ceil(sqrt(n))
//! random peers that do not know it and announced (`NewPooledTransactionHashes`) to the
//! others; blob transactions are only announced (EIP-4844). It is never sent back to the
//! peer it came from. Sends go through a bounded per-peer queue the peer's handler drains
//! in batches, so a burst of transactions costs a few messages, and a slow peer loses
//! transactions rather than holding memory.

use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex, Weak};

use alloy_primitives::{B256, Bytes};
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

use super::messages::{self, Message, NewPooledTransactionHashes, Raw};
use super::pool::Pooled;
use super::txfetch::{self, Fetcher, Meta};
use super::{Command, KNOWN_TXS, Known, PeerId, Shared};

/// Transactions queued for one peer in full, at most (go-ethereum `maxQueuedTxs`).
pub const MAX_QUEUED_TXS: usize = 4096;
/// Bytes of transactions queued for one peer in full, at most.
pub const MAX_QUEUED_BYTES: usize = 4 * 1024 * 1024;
/// Announcements queued for one peer, at most (go-ethereum `maxQueuedTxAnns`).
pub const MAX_QUEUED_ANNOUNCES: usize = 4096;
/// Soft size of one Transactions message (go-ethereum `maxTxPacketSize`, 100 KiB).
pub const MAX_TX_PACKET: usize = 100 * 1024;
/// Hashes per NewPooledTransactionHashes message (go-ethereum `maxTxAnnounces`... per packet).
pub const MAX_ANNOUNCE_PACKET: usize = 4096;
/// Fetcher inputs buffered; beyond it announcements are dropped (they are hints).
pub const FETCH_QUEUE: usize = 1024;

/// What is waiting to go to one peer, and what it knows.
#[derive(Default)]
struct Out {
    full: Vec<Bytes>,
    full_bytes: usize,
    announce: Vec<(B256, Meta)>,
    /// Transaction hashes the peer is known to have (it sent or announced them, or we did).
    known: Known<KNOWN_TXS>,
}

/// One peer's outbound transaction queue and known transactions, behind a lock of its
/// own; its handler waits on `notify`.
#[derive(Default)]
pub(super) struct TxQueue {
    out: Mutex<Out>,
    pub(super) notify: Notify,
}

impl TxQueue {
    fn out(&self) -> std::sync::MutexGuard<'_, Out> {
        self.out.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the peer is known to have `hash`.
    pub(super) fn knows(&self, hash: &B256) -> bool {
        self.out().known.contains(hash)
    }

    /// Remembers that the peer has `hashes`.
    pub(super) fn mark_known(&self, hashes: impl IntoIterator<Item = B256>) {
        let mut out = self.out();
        for h in hashes {
            out.known.insert(h);
        }
    }

    /// Queues those of `txs` the peer does not know, in full (`full`, blob transactions
    /// aside) or as announcements, marking them known; returns whether any was queued.
    /// What does not fit in the queue is dropped.
    fn push(&self, txs: &[Pooled], full: bool) -> bool {
        let mut out = self.out();
        let mut queued = false;
        for tx in txs {
            if out.known.contains(&tx.hash) {
                continue;
            }
            let ok = if full && !tx.blob {
                out.push_full(tx)
            } else {
                out.push_announce(tx)
            };
            if ok {
                out.known.insert(tx.hash);
                queued = true;
            }
        }
        queued
    }
}

impl Out {
    /// Queues `tx` in full; false when the queue is full (the transaction is dropped).
    fn push_full(&mut self, tx: &Pooled) -> bool {
        if self.full.len() >= MAX_QUEUED_TXS
            || self.full_bytes + tx.encoded.len() > MAX_QUEUED_BYTES
        {
            return false;
        }
        self.full_bytes += tx.encoded.len();
        self.full.push(tx.encoded.clone());
        true
    }

    /// Queues an announcement of `tx`; false when the queue is full.
    fn push_announce(&mut self, tx: &Pooled) -> bool {
        let out = self;
        if out.announce.len() >= MAX_QUEUED_ANNOUNCES {
            return false;
        }
        out.announce.push((
            tx.hash,
            Meta {
                kind: tx.kind,
                size: u32::try_from(tx.size).unwrap_or(u32::MAX),
            },
        ));
        true
    }
}

impl TxQueue {
    /// Takes what is queued, as encoded messages `(code, payload)`.
    pub(super) fn drain(&self) -> Vec<(u8, bytes::Bytes)> {
        let (full, announce) = {
            let mut out = self.out();
            out.full_bytes = 0;
            (
                std::mem::take(&mut out.full),
                std::mem::take(&mut out.announce),
            )
        };
        let mut msgs = Vec::new();
        let mut batch: Vec<Raw> = Vec::new();
        let mut size = 0;
        for tx in full {
            if size + tx.len() > MAX_TX_PACKET && !batch.is_empty() {
                msgs.push(transactions(&batch));
                batch.clear();
                size = 0;
            }
            size += tx.len();
            batch.push(Raw(tx));
        }
        if !batch.is_empty() {
            msgs.push(transactions(&batch));
        }
        for chunk in announce.chunks(MAX_ANNOUNCE_PACKET) {
            let m = Message::NewPooledTransactionHashes(NewPooledTransactionHashes {
                types: chunk.iter().map(|(_, m)| m.kind).collect::<Vec<_>>().into(),
                sizes: chunk.iter().map(|(_, m)| m.size).collect(),
                hashes: chunk.iter().map(|(h, _)| *h).collect(),
            });
            msgs.push((m.code(), m.encode()));
        }
        msgs
    }
}

/// A Transactions message of already-encoded transactions.
fn transactions(txs: &[Raw]) -> (u8, bytes::Bytes) {
    let mut out = Vec::with_capacity(alloy_rlp::list_length(txs));
    alloy_rlp::encode_list(txs, &mut out);
    (messages::code::TRANSACTIONS, out.into())
}

fn random() -> u64 {
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

/// Sends newly pooled `txs` on: in full to sqrt(n) random peers, announced to the rest,
/// never to `from` nor to a peer known to have them. The table lock is held only to list
/// the peers' queues; each queue is then filled under its own lock.
pub(super) fn broadcast(shared: &Shared, from: Option<PeerId>, txs: &[Pooled]) {
    if txs.is_empty() {
        return;
    }
    let mut queues: Vec<Arc<TxQueue>> = shared
        .peers()
        .iter()
        .filter(|(p, _)| Some(**p) != from)
        .map(|(_, e)| e.txq.clone())
        .collect();
    let fan_out = (queues.len() as f64).sqrt().ceil() as usize;
    // Partial Fisher-Yates: the first `fan_out` are a random choice.
    for i in 0..queues.len().min(fan_out) {
        let j = i + (random() as usize) % (queues.len() - i);
        queues.swap(i, j);
    }
    for (i, q) in queues.iter().enumerate() {
        if q.push(txs, i < fan_out) {
            q.notify.notify_one();
        }
    }
}

/// What the fetcher task is told.
pub(super) enum FetchInput {
    /// A peer announced transactions.
    Announce {
        peer: PeerId,
        items: Vec<(B256, Meta)>,
    },
    /// A peer answered request `id` with these hashes (empty: timed out or failed).
    Delivered {
        peer: PeerId,
        id: u64,
        hashes: Vec<B256>,
    },
    /// Transactions arrived by broadcast.
    Arrived(Vec<B256>),
    /// A peer left.
    PeerLeft(PeerId),
}

/// The fetcher task's inputs: hints (announcements, arrivals) on a bounded queue that
/// drops when full, and the ends of requests and sessions, which must not be lost (they
/// are at most one per request in flight and one per peer), on an unbounded one.
pub(super) struct FetchTx {
    hints: mpsc::Sender<FetchInput>,
    control: mpsc::UnboundedSender<FetchInput>,
}

impl FetchTx {
    /// Queues `input` for the fetcher task.
    pub(super) fn send(&self, input: FetchInput) {
        match input {
            FetchInput::Announce { .. } | FetchInput::Arrived(_) => {
                let _ = self.hints.try_send(input);
            }
            FetchInput::Delivered { .. } | FetchInput::PeerLeft(_) => {
                let _ = self.control.send(input);
            }
        }
    }
}

/// Starts the fetcher task; it ends when every sender is gone (the [`Shared`] state that
/// holds them was dropped).
pub(super) fn spawn_fetcher(shared: Weak<Shared>, config: txfetch::Config) -> FetchTx {
    let (hints, hints_rx) = mpsc::channel(FETCH_QUEUE);
    let (control, control_rx) = mpsc::unbounded_channel();
    tokio::spawn(drive(shared, hints_rx, control_rx, config));
    FetchTx { hints, control }
}

async fn drive(
    shared: Weak<Shared>,
    mut hints: mpsc::Receiver<FetchInput>,
    mut control: mpsc::UnboundedReceiver<FetchInput>,
    config: txfetch::Config,
) {
    let mut f = Fetcher::new(config);
    loop {
        let deadline = f.next_deadline().map(Instant::from_std);
        tokio::select! {
            input = control.recv() => {
                let Some(input) = input else { return };
                let Some(shared) = shared.upgrade() else { return };
                apply(&mut f, &shared, input);
            }
            input = hints.recv() => {
                let Some(input) = input else { return };
                let Some(shared) = shared.upgrade() else { return };
                apply(&mut f, &shared, input);
            }
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {}
        }
        let Some(shared) = shared.upgrade() else {
            return;
        };
        // Take whatever else is queued before scheduling, so one poll sees it all.
        while let Ok(input) = control.try_recv().or_else(|_| hints.try_recv()) {
            apply(&mut f, &shared, input);
        }
        let now = Instant::now().into_std();
        for peer in f.expire(now) {
            tracing::debug!(target: "eth", peer = %rlpx::peer::short_id(&peer), "pooled transactions request timed out");
        }
        for peer in f.take_useless() {
            disconnect_useless(&shared, &peer);
        }
        for mut fetch in f.poll(now) {
            // Some may have been pooled meanwhile (an arrival hint can be dropped).
            let (held, wanted): (Vec<_>, Vec<_>) = fetch
                .hashes
                .into_iter()
                .partition(|(h, _)| shared.pool.contains(h));
            fetch.hashes = wanted;
            if !held.is_empty() {
                f.arrived(held.into_iter().map(|(h, _)| h));
            }
            if fetch.hashes.is_empty() {
                f.delivered(fetch.peer, fetch.id, &[]);
                continue;
            }
            let sent = shared.peers().get(&fetch.peer).is_some_and(|e| {
                e.commands
                    .try_send(Command::FetchPooled {
                        id: fetch.id,
                        hashes: fetch.hashes.clone(),
                    })
                    .is_ok()
            });
            if !sent {
                f.delivered(fetch.peer, fetch.id, &[]);
            }
        }
    }
}

/// Disconnects an announcer that never delivers (`UselessPeer`, see [`txfetch`]).
fn disconnect_useless(shared: &Shared, peer: &PeerId) {
    tracing::debug!(target: "eth", peer = %rlpx::peer::short_id(peer), "announcer never delivers, disconnecting");
    // Closed at once through the session, not queued behind the handler's commands.
    if let Some(e) = shared.peers().get(peer) {
        e.closer.disconnect(rlpx::DisconnectReason::UselessPeer);
    }
}

fn apply(f: &mut Fetcher, shared: &Arc<Shared>, input: FetchInput) {
    let now = Instant::now().into_std();
    match input {
        FetchInput::Announce { peer, items } => {
            f.announce(peer, items, |h| shared.pool.contains(h), now)
        }
        FetchInput::Delivered { peer, id, hashes } => f.delivered(peer, id, &hashes),
        FetchInput::Arrived(hashes) => f.arrived(hashes),
        FetchInput::PeerLeft(peer) => f.peer_left(&peer),
    }
}
