//! Transaction propagation and the task driving the [`txfetch::Fetcher`].
//!
//! A transaction newly pooled (from a peer, an answer to our request, or
//! [`super::Handle::submit_transaction`]) is sent in full (`Transactions`) to ceil(sqrt(n))
//! of the n peers, chosen at random ([`super::fanout`]), and announced
//! (`NewPooledTransactionHashes`) to the others; blob transactions are only announced
//! (EIP-4844). It is never sent back to the peer it came from, and each peer's session
//! leaves out what its peer is known to have. Sends go through a bounded per-peer queue
//! the session drains in batches, so a burst of transactions costs a few messages, and a
//! slow peer loses transactions rather than holding memory. A peer that joins is first
//! told about what is already pooled ([`sync_pool`], go-ethereum's `syncTransactions`).

use std::sync::{Arc, Mutex, Weak};

use alloy_primitives::{B256, Bytes};
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

use super::messages::{self, Message, NewPooledTransactionHashes, Raw};
use super::peer::{Command, Knows};
use super::pool::Pooled;
use super::txfetch::{self, Fetcher, Meta};
use super::{PeerId, Shared, fanout};

/// Transactions queued for one peer in full, at most (go-ethereum `maxQueuedTxs`).
pub(super) const MAX_QUEUED_TXS: usize = 4096;
/// Bytes of transactions queued for one peer in full, at most.
pub(super) const MAX_QUEUED_BYTES: usize = 4 * 1024 * 1024;
/// Announcements queued for one peer, at most (go-ethereum `maxQueuedTxAnns`).
pub(super) const MAX_QUEUED_ANNOUNCES: usize = 4096;
/// Soft size of one Transactions message (go-ethereum `maxTxPacketSize`, 100 KiB).
pub(super) const MAX_TX_PACKET: usize = 100 * 1024;
/// Hashes per NewPooledTransactionHashes message (go-ethereum `maxTxAnnounces`... per packet).
pub(super) const MAX_ANNOUNCE_PACKET: usize = 4096;
/// Fetcher inputs buffered; beyond it announcements are dropped (they are hints).
pub(super) const FETCH_QUEUE: usize = 1024;

/// What is waiting to go to one peer.
#[derive(Default)]
struct Out {
    /// Transactions to send in full: hash and encoding.
    full: Vec<(B256, Bytes)>,
    full_bytes: usize,
    announce: Vec<(B256, Meta)>,
}

/// One peer's outbound transactions: broadcasts push here under a lock of this peer's
/// own (a few vector pushes), and its session drains them in batches when `notify`
/// wakes it, dropping what the peer already knows ([`Knows`]: the session checks its
/// own set). What does not fit is dropped: a slow peer loses transactions rather than
/// holding memory.
#[derive(Default)]
pub(super) struct TxQueue {
    out: Mutex<Out>,
    pub(super) notify: Notify,
}

impl TxQueue {
    fn out(&self) -> std::sync::MutexGuard<'_, Out> {
        self.out.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `txs` in full (`full`, blob transactions aside) or as announcements and
    /// wakes the session. What does not fit in the queue is dropped.
    fn push(&self, txs: &[Pooled], full: bool) {
        {
            let mut out = self.out();
            for tx in txs {
                if full && !tx.blob {
                    out.push_full(tx);
                } else {
                    out.push_announce(tx);
                }
            }
        }
        self.notify.notify_one();
    }

    /// Takes what is queued and not known to the peer (marking it known), as encoded
    /// messages `(code, payload)`. Called by the peer's session only.
    pub(super) fn drain(&self, knows: &Knows) -> Vec<(u8, bytes::Bytes)> {
        let (mut full, mut announce) = {
            let mut out = self.out();
            out.full_bytes = 0;
            (
                std::mem::take(&mut out.full),
                std::mem::take(&mut out.announce),
            )
        };
        {
            let mut known = knows.txs();
            full.retain(|(h, _)| known.insert(*h));
            announce.retain(|(h, _)| known.insert(*h));
        }
        let mut msgs = Vec::new();
        let mut batch: Vec<Raw> = Vec::new();
        let mut size = 0;
        for (_, tx) in full {
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

impl Out {
    /// Queues `tx` in full; false when the queue is full (the transaction is dropped).
    fn push_full(&mut self, tx: &Pooled) -> bool {
        if self.full.len() >= MAX_QUEUED_TXS
            || self.full_bytes + tx.encoded.len() > MAX_QUEUED_BYTES
        {
            return false;
        }
        self.full_bytes += tx.encoded.len();
        self.full.push((tx.hash, tx.encoded.clone()));
        true
    }

    /// Queues an announcement of `tx`; false when the queue is full.
    fn push_announce(&mut self, tx: &Pooled) -> bool {
        if self.announce.len() >= MAX_QUEUED_ANNOUNCES {
            return false;
        }
        self.announce.push((
            tx.hash,
            Meta {
                kind: tx.kind,
                size: u32::try_from(tx.size).unwrap_or(u32::MAX),
            },
        ));
        true
    }
}

/// A Transactions message of already-encoded transactions.
fn transactions(txs: &[Raw]) -> (u8, bytes::Bytes) {
    let mut out = Vec::with_capacity(alloy_rlp::list_length(txs));
    alloy_rlp::encode_list(txs, &mut out);
    (messages::code::TRANSACTIONS, out.into())
}

/// Sends newly pooled `txs` on: in full to sqrt(n) random peers ([`fanout::split`]),
/// announced to the rest, never to `from`; each session leaves out what its peer knows.
/// The table's read lock is held only to list the peers' queues; each queue is then
/// filled under its own lock.
pub(super) fn broadcast(shared: &Shared, from: Option<PeerId>, txs: &[Pooled]) {
    if txs.is_empty() {
        return;
    }
    let queues = shared.table.collect(from, |_, e| e.txs.clone());
    let (full, announce) = fanout::split(queues, |_| true, super::random);
    for q in &full {
        q.push(txs, true);
    }
    for q in &announce {
        q.push(txs, false);
    }
}

/// Announces the pool to a peer that just joined (go-ethereum `syncTransactions`): without
/// it a new peer would learn only of transactions pooled after it connected. At most
/// [`MAX_QUEUED_ANNOUNCES`], through the peer's own queue (so what it already knows is
/// left out and the announcements are paced like any others).
pub(super) fn sync_pool(shared: &Shared, queue: &TxQueue) {
    let txs = shared.pool.snapshot(MAX_QUEUED_ANNOUNCES);
    if !txs.is_empty() {
        queue.push(&txs, false);
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
            let commands = shared.table.get(&fetch.peer, |e| e.commands.clone());
            let sent = commands.is_some_and(|c| {
                c.try_send(Command::FetchPooled {
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
    shared.table.get(peer, |e| {
        e.closer.disconnect(rlpx::DisconnectReason::UselessPeer)
    });
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

#[cfg(test)]
mod tests {
    use super::*;

    fn tx(i: u8, blob: bool) -> Pooled {
        // An RLP string: it stands for a transaction's encoding in a Transactions list.
        let encoded = Bytes::from(alloy_rlp::encode(Bytes::from(vec![i; 99])));
        Pooled {
            hash: B256::repeat_byte(i),
            sender: Default::default(),
            nonce: 0,
            kind: if blob { 3 } else { 2 },
            size: encoded.len(),
            encoded,
            tip: 1,
            fee_cap: 1,
            blob,
        }
    }

    /// The hashes in `msgs`: `(sent in full, announced)`.
    fn hashes(msgs: &[(u8, bytes::Bytes)]) -> (usize, Vec<B256>) {
        let mut full = 0;
        let mut announced = Vec::new();
        for (c, data) in msgs {
            if *c == messages::code::TRANSACTIONS {
                let list: Vec<Bytes> = alloy_rlp::Decodable::decode(&mut &data[..]).expect("list");
                full += list.len();
                continue;
            }
            match Message::decode(super::super::ETH68, *c, data).expect("valid") {
                Message::NewPooledTransactionHashes(a) => announced.extend(a.hashes),
                other => panic!("unexpected {other:?}"),
            }
        }
        (full, announced)
    }

    #[test]
    fn the_session_sends_only_what_its_peer_does_not_know_and_once() {
        let (q, knows) = (TxQueue::default(), Knows::default());
        knows.mark_txs([B256::repeat_byte(1)]);
        q.push(&[tx(1, false), tx(2, false), tx(3, true)], false);
        // Pushed again (e.g. by a second broadcast): still announced once.
        q.push(&[tx(2, false)], false);
        let (full, announced) = hashes(&q.drain(&knows));
        assert_eq!(full, 0);
        assert_eq!(announced, vec![B256::repeat_byte(2), B256::repeat_byte(3)]);
        assert!(knows.tx(&B256::repeat_byte(3)));
        // Known now: a later broadcast sends nothing.
        q.push(&[tx(2, false), tx(3, true)], true);
        assert!(q.drain(&knows).is_empty());
    }

    #[test]
    fn blob_transactions_are_only_announced_and_the_queue_is_bounded() {
        let (q, knows) = (TxQueue::default(), Knows::default());
        q.push(&[tx(1, false), tx(2, true)], true);
        let (full, announced) = hashes(&q.drain(&knows));
        assert_eq!((full, announced), (1, vec![B256::repeat_byte(2)]));
        // Beyond MAX_QUEUED_ANNOUNCES, announcements are dropped.
        let many: Vec<_> = (0..MAX_QUEUED_ANNOUNCES + 10)
            .map(|i| Pooled {
                hash: B256::left_padding_from(&(i as u64 + 1000).to_be_bytes()),
                ..tx(0, false)
            })
            .collect();
        q.push(&many, false);
        let (_, announced) = hashes(&q.drain(&knows));
        assert_eq!(announced.len(), MAX_QUEUED_ANNOUNCES);
    }
}
