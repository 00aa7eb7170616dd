//! The node-level table of handshaked peers, and what each peer's session shares with it.
//!
//! A peer's eth state lives in its session (the handler task): its status, the hashes
//! it knows, its request tracker and budgets, its queues. The table keeps only what
//! reaches the session (its typed [`Command`] queue, its transaction mailbox, the closer
//! and the negotiated version) and what the session publishes for the node to read
//! without asking it: a snapshot of its status (a `watch`) and the hashes the peer is
//! known to have ([`Knows`], one per peer, which only its session fills, besides
//! [`super::Handle::mark_block_known`]).
//!
//! The table is written only when a peer joins or leaves; everything else takes its read
//! lock just long enough to clone what it needs. Broadcasts never hold it (or any other
//! peer's lock) while encoding or queueing: they collect the recipients' queues, then
//! send to each, and each session checks its own known set.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use alloy_consensus::{BlockBody, Header, TxEnvelope};
use alloy_primitives::B256;
use tokio::sync::{mpsc, oneshot, watch};

use super::messages::GetBlockHeaders;
use super::{PeerId, PeerStatus, RequestError, txfetch, txs};

/// Block hashes remembered per peer as known to it.
pub const KNOWN_BLOCKS: usize = 1024;
/// Transaction hashes remembered per peer as known to it (go-ethereum `maxKnownTxs`).
pub const KNOWN_TXS: usize = 32768;

/// What the node asks of one peer's session.
pub(super) enum Command {
    /// Ask the peer for headers.
    Headers {
        req: GetBlockHeaders,
        reply: oneshot::Sender<Result<Vec<Header>, RequestError>>,
    },
    /// Ask the peer for block bodies.
    Bodies {
        hashes: Vec<B256>,
        reply: oneshot::Sender<Result<Vec<BlockBody<TxEnvelope>>, RequestError>>,
    },
    /// Ask the peer for receipt lists (eth/70: from `first_index` in the first).
    Receipts {
        hashes: Vec<B256>,
        first_index: u64,
        reply: oneshot::Sender<Result<super::receipts::Answer, RequestError>>,
    },
    /// Propagate block `hash` (number `number`) unless the peer knows it: `new_block`
    /// (an encoded NewBlock, the same bytes for every recipient) to an eth/68 peer,
    /// NewBlockHashes otherwise. The session checks and marks its known set.
    SendBlock {
        hash: B256,
        number: u64,
        new_block: Option<bytes::Bytes>,
    },
    /// Ask for announced pooled transactions (the fetcher's request `id`).
    FetchPooled {
        id: u64,
        hashes: Vec<(B256, txfetch::Meta)>,
    },
}

/// A bounded set of hashes (oldest forgotten first).
///
/// It holds a 64-bit keyed digest of each hash (SipHash under a key drawn per set), not the
/// hash: a quarter of the memory, and one hash computation per insert, none to forget the
/// oldest (the set's own hasher passes digests through). Every pooled transaction is
/// marked in every peer's set, so this is per transaction times peers: it was a tenth of
/// the node's CPU in the transaction ingest bench. Two hashes share a digest with
/// probability 2^-64 per pair, and the key is secret, so nobody can make them: at worst,
/// once in about 2^49 lookups against a full set, a peer is not sent a transaction it
/// lacks (this is a hint; it would get it from another peer or by announcement).
pub(super) struct Known<const N: usize> {
    order: VecDeque<u64>,
    set: HashSet<u64, BuildHasherDefault<Digest>>,
    key: RandomState,
}

impl<const N: usize> Default for Known<N> {
    fn default() -> Self {
        Self {
            order: VecDeque::new(),
            set: HashSet::default(),
            key: RandomState::new(),
        }
    }
}

/// The hasher of [`Known`]'s set: its keys are keyed digests already, uniformly spread and
/// out of an attacker's control, so they are used as they are.
#[derive(Default)]
pub(super) struct Digest(u64);

impl Hasher for Digest {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used (the set's keys are u64); fold anything else in.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

impl<const N: usize> Known<N> {
    fn digest(&self, hash: &B256) -> u64 {
        self.key.hash_one(hash)
    }

    /// Remembers `hash`; returns whether it was new.
    pub(super) fn insert(&mut self, hash: B256) -> bool {
        let d = self.digest(&hash);
        if !self.set.insert(d) {
            return false;
        }
        self.order.push_back(d);
        while self.order.len() > N {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }

    pub(super) fn contains(&self, hash: &B256) -> bool {
        self.set.contains(&self.digest(hash))
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.set.len()
    }
}

/// The block and transaction hashes one peer is known to have (it sent or announced
/// them, or we sent them). Filled by its session (and the worker jobs the session waits
/// for); read by [`super::Handle::knows_block`] and
/// [`super::Handle::knows_transaction`]. Per peer, so no other peer ever waits on it.
#[derive(Default)]
pub(super) struct Knows {
    blocks: Mutex<Known<KNOWN_BLOCKS>>,
    txs: Mutex<Known<KNOWN_TXS>>,
}

impl Knows {
    /// Whether the peer knows block `hash`.
    pub(super) fn block(&self, hash: &B256) -> bool {
        lock(&self.blocks).contains(hash)
    }

    /// Marks block `hash` known; returns whether it was new.
    pub(super) fn mark_block(&self, hash: B256) -> bool {
        lock(&self.blocks).insert(hash)
    }

    /// Marks blocks known.
    pub(super) fn mark_blocks(&self, hashes: impl IntoIterator<Item = B256>) {
        let mut known = lock(&self.blocks);
        for h in hashes {
            known.insert(h);
        }
    }

    /// Whether the peer knows transaction `hash`.
    pub(super) fn tx(&self, hash: &B256) -> bool {
        lock(&self.txs).contains(hash)
    }

    /// Marks transactions known.
    pub(super) fn mark_txs(&self, hashes: impl IntoIterator<Item = B256>) {
        let mut known = lock(&self.txs);
        for h in hashes {
            known.insert(h);
        }
    }

    /// The transaction set, for a session filtering a whole queue at once.
    pub(super) fn txs(&self) -> MutexGuard<'_, Known<KNOWN_TXS>> {
        lock(&self.txs)
    }
}

/// A poisoned per-peer lock is still usable: every update is a single insert.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// How the node reaches one handshaked peer's session.
pub(super) struct Entry {
    /// Which session of the peer this is (a reconnect replaces the entry).
    pub(super) session: u64,
    /// The negotiated eth version.
    pub(super) version: u32,
    /// Typed commands to the session.
    pub(super) commands: mpsc::Sender<Command>,
    /// Closes the session directly: a penalty must not queue behind a blocked handler.
    pub(super) closer: rlpx::ProtocolSender,
    /// Transactions to broadcast to the peer, which its session drains in batches.
    pub(super) txs: Arc<txs::TxQueue>,
    /// The session's latest view of the peer's status.
    pub(super) status: watch::Receiver<PeerStatus>,
    /// What the peer is known to have.
    pub(super) knows: Arc<Knows>,
}

/// The handshaked peers.
#[derive(Default)]
pub(super) struct Table {
    peers: RwLock<HashMap<PeerId, Entry>>,
}

impl Table {
    // A panic while holding the lock cannot leave the map inconsistent (single
    // insert/remove operations), so a poisoned lock is still usable.
    pub(super) fn read(&self) -> RwLockReadGuard<'_, HashMap<PeerId, Entry>> {
        self.peers.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<PeerId, Entry>> {
        self.peers.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds (or replaces) the peer's entry.
    /// Adds (or replaces) the peer's entry, then runs `then` under the lock (to announce
    /// it: no other change of the table can come between; keep it short).
    pub(super) fn insert(&self, id: PeerId, entry: Entry, then: impl FnOnce()) {
        let mut peers = self.write();
        peers.insert(id, entry);
        then();
    }

    /// Removes the peer if its entry is still `session`'s, then runs `then` under the
    /// lock; returns whether it did.
    pub(super) fn remove(&self, id: &PeerId, session: u64, then: impl FnOnce()) -> bool {
        let mut peers = self.write();
        if peers.get(id).is_some_and(|e| e.session == session) {
            peers.remove(id);
            then();
            return true;
        }
        false
    }

    /// Runs `f` under the read lock if `session` is the peer's entry (a change of the
    /// table waits for it); returns whether it ran.
    pub(super) fn if_current(&self, id: &PeerId, session: u64, f: impl FnOnce()) -> bool {
        let peers = self.read();
        if peers.get(id).is_some_and(|e| e.session == session) {
            f();
            return true;
        }
        false
    }

    /// `f` of the peer's entry (keep `f` short: it runs under the read lock).
    pub(super) fn get<T>(&self, id: &PeerId, f: impl FnOnce(&Entry) -> T) -> Option<T> {
        self.read().get(id).map(f)
    }

    /// `f` of every entry but `except`'s (keep `f` short: it runs under the read lock).
    pub(super) fn collect<T>(
        &self,
        except: Option<PeerId>,
        mut f: impl FnMut(&PeerId, &Entry) -> T,
    ) -> Vec<T> {
        self.read()
            .iter()
            .filter(|(id, _)| Some(**id) != except)
            .map(|(id, e)| f(id, e))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(i: u64) -> B256 {
        B256::left_padding_from(&i.to_be_bytes())
    }

    #[test]
    fn known_sets_are_bounded_and_forget_the_oldest() {
        let mut k = Known::<4>::default();
        for i in 0..10 {
            assert!(k.insert(hash(i)));
        }
        assert_eq!(k.len(), 4);
        assert!(!k.contains(&hash(5)));
        assert!((6..10).all(|i| k.contains(&hash(i))));
        // A repeat is not new and does not refresh its age.
        assert!(!k.insert(hash(6)));
        assert!(k.insert(hash(10)));
        assert!(!k.contains(&hash(6)));
    }

    #[test]
    fn per_peer_sets_hold_at_most_their_bound() {
        let knows = Knows::default();
        knows.mark_txs((0..KNOWN_TXS as u64 + 100).map(hash));
        assert_eq!(knows.txs().len(), KNOWN_TXS);
        assert!(!knows.tx(&hash(99)));
        assert!(knows.tx(&hash(100)));
        for i in 0..KNOWN_BLOCKS as u64 * 2 {
            assert!(knows.mark_block(hash(i)));
        }
        assert!(!knows.mark_block(hash(KNOWN_BLOCKS as u64 * 2 - 1)));
        assert!(!knows.block(&hash(0)));
        assert_eq!(lock(&knows.blocks).len(), KNOWN_BLOCKS);
    }
}
