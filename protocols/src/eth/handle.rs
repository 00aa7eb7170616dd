//! [`Handle`]: the node's view of the eth peers, and its way to reach their sessions.

use std::sync::Arc;

use alloy_consensus::{Block, BlockBody, Header, TxEnvelope};
use alloy_primitives::{B256, U256};
use tokio::sync::{mpsc, oneshot};

use super::peer::{Command, Knows};
use super::{
    ETH69, GetBlockHeaders, PeerEvent, PeerId, PeerInfo, RequestError, Shared, fanout, messages,
    pool, serve, txs,
};

/// The node's view of the `eth` peers: list them, and send them requests (for the
/// downloader). Cheap to clone.
#[derive(Clone)]
pub struct Handle {
    pub(super) shared: Arc<Shared>,
}

impl Handle {
    /// Peers joining, changing head and leaving, from now on. Subscribe first, then read
    /// [`Handle::peers`] for the peers already there. A subscriber that falls
    /// [`super::PEER_EVENT_BACKLOG`] behind gets `RecvError::Lagged` and should re-read
    /// [`Handle::peers`]; it never slows the peers.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<PeerEvent> {
        self.shared.peer_events.subscribe()
    }

    /// The handshaked peers.
    pub fn peers(&self) -> Vec<PeerInfo> {
        self.shared.table.collect(None, |id, e| PeerInfo {
            id: *id,
            status: *e.status.borrow(),
        })
    }

    /// One handshaked peer.
    pub fn peer(&self, id: &PeerId) -> Option<PeerInfo> {
        self.shared.table.get(id, |e| PeerInfo {
            id: *id,
            status: *e.status.borrow(),
        })
    }

    fn commands(&self, id: &PeerId) -> Result<mpsc::Sender<Command>, RequestError> {
        (self.shared.table)
            .get(id, |e| e.commands.clone())
            .ok_or(RequestError::UnknownPeer)
    }

    /// Asks `peer` for headers; resolves with its answer (possibly fewer headers than
    /// asked, or none), unchecked beyond its count: linking them is the caller's job.
    pub async fn request_headers(
        &self,
        peer: &PeerId,
        req: GetBlockHeaders,
    ) -> Result<Vec<Header>, RequestError> {
        if req.amount > serve::MAX_HEADERS {
            return Err(RequestError::TooLarge);
        }
        self.request(peer, |reply| Command::Headers { req, reply })
            .await
    }

    /// Asks `peer` for the bodies of `hashes`; resolves with its answer, in request order
    /// with unknown blocks left out (matching them to headers is the caller's job).
    pub async fn request_bodies(
        &self,
        peer: &PeerId,
        hashes: Vec<B256>,
    ) -> Result<Vec<BlockBody<TxEnvelope>>, RequestError> {
        if hashes.len() > serve::MAX_BODIES {
            return Err(RequestError::TooLarge);
        }
        self.request(peer, |reply| Command::Bodies { hashes, reply })
            .await
    }

    /// Asks `peer` for the receipts of `hashes` (eth/70: the first list from
    /// `first_index`; ignored before eth/70); resolves with its answer, unchecked beyond
    /// its count: matching the lists to the blocks' receipts roots is the caller's job
    /// ([`super::receipts::verify`]), as is asking again for an incomplete last list.
    pub async fn request_receipts(
        &self,
        peer: &PeerId,
        hashes: Vec<B256>,
        first_index: u64,
    ) -> Result<super::receipts::Answer, RequestError> {
        if hashes.len() > serve::MAX_RECEIPTS {
            return Err(RequestError::TooLarge);
        }
        self.request(peer, |reply| Command::Receipts {
            hashes,
            first_index,
            reply,
        })
        .await
    }

    /// Disconnects `peer` with `reason` (e.g. the downloader dropping a peer that sent bad
    /// data or timed out: `BreachOfProtocol` and `UselessPeer` make the server ban it for a
    /// while). Requests waiting on the peer fail with [`RequestError::Disconnected`].
    pub async fn disconnect(
        &self,
        peer: &PeerId,
        reason: rlpx::DisconnectReason,
    ) -> Result<(), RequestError> {
        // Closed at once, bypassing the handler's queue (it may be blocked sending to this
        // very peer): the session records `reason` now, so the server bans on it.
        let closer = (self.shared.table)
            .get(peer, |e| e.closer.clone())
            .ok_or(RequestError::UnknownPeer)?;
        tracing::debug!(target: "eth", peer = %rlpx::peer::short_id(peer), ?reason, "disconnecting on the node's request");
        closer.disconnect(reason);
        Ok(())
    }

    /// The negotiated eth version of `peer`.
    pub fn version(&self, peer: &PeerId) -> Option<u32> {
        self.shared.table.get(peer, |e| e.version)
    }

    /// What `peer` is known to have, as its session last recorded.
    fn knows(&self, peer: &PeerId) -> Option<Arc<Knows>> {
        self.shared.table.get(peer, |e| e.knows.clone())
    }

    /// Whether `peer` is known to have block `hash` (it sent or announced it, or we sent
    /// it; the last [`super::KNOWN_BLOCKS`] per peer are remembered).
    pub fn knows_block(&self, peer: &PeerId, hash: &B256) -> bool {
        self.knows(peer).is_some_and(|k| k.block(hash))
    }

    /// Remembers that `peer` has block `hash`.
    pub fn mark_block_known(&self, peer: &PeerId, hash: B256) {
        if let Some(k) = self.knows(peer) {
            k.mark_block(hash);
        }
    }

    /// Sends NewBlock to `peer` (eth/68 only) unless it knows the block. Returns whether
    /// it was queued (a full command queue drops it: propagation is best effort). The
    /// message is encoded once per block, outside every lock, and the same bytes are
    /// queued for every peer it is sent to. Prefer [`Handle::broadcast_block`] to send a
    /// block to all peers.
    pub fn send_new_block(&self, peer: &PeerId, block: &Block<TxEnvelope>, td: U256) -> bool {
        let Some(to) = self.reach(peer) else {
            return false;
        };
        let hash = block.header.hash_slow();
        if to.version >= ETH69 || to.knows.block(&hash) {
            return false;
        }
        let new_block = Some(self.new_block_message(hash, block, td));
        to.send_block(hash, block.header.number, new_block)
    }

    /// Announces block `hash` number `number` to `peer` with NewBlockHashes unless it
    /// knows it. Returns whether it was queued.
    pub fn send_new_block_hashes(&self, peer: &PeerId, hash: B256, number: u64) -> bool {
        self.reach(peer)
            .is_some_and(|to| !to.knows.block(&hash) && to.send_block(hash, number, None))
    }

    /// Propagates `block` (total difficulty `td`) to every peer but `except` that is not
    /// known to have it: NewBlock in full to ceil(sqrt(n)) of the n, chosen at random
    /// among the eth/68 ones ([`fanout::split`]; eth/69 has no NewBlock), NewBlockHashes
    /// to the rest. NewBlock is encoded once, outside every lock. Returns how many were
    /// queued `(in full, announced)`; a peer whose command queue is full is skipped
    /// (propagation is best effort), and a session that learnt of the block meanwhile
    /// sends nothing.
    pub fn broadcast_block(
        &self,
        block: &Block<TxEnvelope>,
        td: U256,
        except: Option<PeerId>,
    ) -> (usize, usize) {
        let hash = block.header.hash_slow();
        let number = block.header.number;
        // The table's read lock is held only to clone the handles; each peer's known
        // set is then read under its own lock.
        let peers = self.shared.table.collect(except, |_, e| Reach::of(e));
        let candidates: Vec<_> = peers
            .into_iter()
            .filter(|p| !p.knows.block(&hash))
            .collect();
        let (full, announce) = fanout::split(candidates, |p| p.version < ETH69, super::random);
        let new_block = (!full.is_empty()).then(|| self.new_block_message(hash, block, td));
        let sent_full = full
            .iter()
            .filter(|p| p.send_block(hash, number, new_block.clone()))
            .count();
        let announced = announce
            .iter()
            .filter(|p| p.send_block(hash, number, None))
            .count();
        tracing::debug!(target: "eth", number, %hash, full = sent_full, announced, "block broadcast");
        (sent_full, announced)
    }

    /// How to reach `peer`'s session, if handshaked.
    fn reach(&self, peer: &PeerId) -> Option<Reach> {
        self.shared.table.get(peer, Reach::of)
    }

    /// The encoded NewBlock for `block` (hash `hash`): the last one encoded if it is the
    /// same block and total difficulty, else encoded now (outside every lock) and kept.
    fn new_block_message(&self, hash: B256, block: &Block<TxEnvelope>, td: U256) -> bytes::Bytes {
        let last = || {
            self.shared
                .last_new_block
                .lock()
                .unwrap_or_else(|e| e.into_inner())
        };
        if let Some((h, t, data)) = &*last()
            && (*h, *t) == (hash, td)
        {
            return data.clone();
        }
        let data = messages::encode_new_block(block, td);
        *last() = Some((hash, td, data.clone()));
        data
    }

    /// The transaction pool.
    pub fn pool(&self) -> &Arc<pool::Pool> {
        &self.shared.pool
    }

    /// Latency histograms of every session: message handling and request round trips.
    pub fn metrics(&self) -> &Arc<super::metrics::Metrics> {
        &self.shared.metrics
    }

    /// Validates a local transaction (`eth_sendRawTransaction`), pools it and sends it to
    /// the peers (in full to sqrt(n), announced to the rest).
    pub fn submit_transaction(
        &self,
        tx: crate::eth::messages::PooledTransaction,
    ) -> Result<pool::Pooled, pool::Error> {
        let pooled = self.shared.pool.add(tx, pool::Origin::Local)?;
        txs::broadcast(&self.shared, None, std::slice::from_ref(&pooled));
        Ok(pooled)
    }

    /// Drops the transactions of an imported block from the pool; returns how many were
    /// pooled.
    pub fn remove_transactions(&self, hashes: impl IntoIterator<Item = B256>) -> usize {
        self.shared.pool.remove(hashes)
    }

    /// Whether `peer` is known to have transaction `hash` (it sent or announced it, or
    /// we did; the last [`super::KNOWN_TXS`] per peer are remembered).
    pub fn knows_transaction(&self, peer: &PeerId, hash: &B256) -> bool {
        self.knows(peer).is_some_and(|k| k.tx(hash))
    }

    /// Queues a command for `peer`'s handler and waits for its answer.
    async fn request<T>(
        &self,
        peer: &PeerId,
        command: impl FnOnce(oneshot::Sender<Result<T, RequestError>>) -> Command,
    ) -> Result<T, RequestError> {
        let commands = self.commands(peer)?;
        let (reply, rx) = oneshot::channel();
        // The peer's handler enforces `request_timeout` itself, but only while it is not
        // blocked sending to a slow-reading peer; this outer deadline (twice that, for the
        // queueing) bounds the caller's wait either way.
        let deadline = self.shared.config.request_timeout.saturating_mul(2);
        let run = async {
            commands
                .send(command(reply))
                .await
                .map_err(|_| RequestError::Disconnected)?;
            rx.await.unwrap_or(Err(RequestError::Disconnected))
        };
        tokio::time::timeout(deadline, run)
            .await
            .unwrap_or(Err(RequestError::Timeout))
    }
}

/// What block propagation needs of one peer, cloned out of the table.
struct Reach {
    version: u32,
    commands: mpsc::Sender<Command>,
    knows: Arc<Knows>,
}

impl Reach {
    fn of(e: &super::peer::Entry) -> Self {
        Reach {
            version: e.version,
            commands: e.commands.clone(),
            knows: e.knows.clone(),
        }
    }

    /// Queues [`Command::SendBlock`]; false if the session's queue is full or closed.
    fn send_block(&self, hash: B256, number: u64, new_block: Option<bytes::Bytes>) -> bool {
        let c = Command::SendBlock {
            hash,
            number,
            new_block,
        };
        self.commands.try_send(c).is_ok()
    }
}
