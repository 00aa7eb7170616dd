//! The one way blocks from the network enter the [`Store`]: sync and propagation both
//! import through an [`Importer`], which validates and stores off the runtime, drops the
//! included transactions from the pool, and tells subscribers which blocks were accepted
//! and from whom.

use std::sync::{Arc, Mutex};

use alloy_primitives::B256;
use protocols::eth::{PeerId, pool::Pool};
use tokio::sync::broadcast;

use super::Block;
use super::store::{self, Inserted, Store};

/// Accepted blocks a [`Importer::subscribe`]r may fall behind by before it loses the
/// oldest (and is told how many). Each holds its block (an `Arc`) until every subscriber
/// has seen it: 256 blocks is ~30 minutes of mainnet blocks, and tens of MB of typical
/// ones. During a sync, batches arrive much faster; a slow subscriber then lags.
pub const SUBSCRIBER_BACKLOG: usize = 256;

/// A block the store accepted (validated and stored; on the canonical chain or a side
/// chain, see [`Store::canonical_hash`]).
#[derive(Clone, Debug)]
pub struct Accepted {
    /// The block.
    pub block: Arc<Block>,
    /// Its hash.
    pub hash: B256,
    /// The peer it came from (`None` for local imports and replays).
    pub from: Option<PeerId>,
}

/// What [`Importer::import`] did.
#[derive(Debug)]
pub struct Imported {
    /// The store's answer. On [`store::Error::BadBlock`] the blocks before the bad one
    /// were stored all the same (they are in `accepted`).
    pub result: Result<Inserted, store::Error>,
    /// The blocks stored by this call, in order, as subscribers were told of them. While
    /// someone subscribes, blocks that were already stored are left out; with no
    /// subscriber they are not told apart (that costs a read per block) and every block
    /// the call kept is here. [`Inserted::imported`] and [`Inserted::known`] count them
    /// exactly either way.
    pub accepted: Vec<Arc<Block>>,
}

/// Imports blocks into the store; cheap to clone.
#[derive(Clone)]
pub struct Importer {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<Store>,
    pool: Option<Arc<Pool>>,
    accepted: broadcast::Sender<Accepted>,
    /// Held (on the blocking thread) for the whole of one import.
    serial: Mutex<()>,
}

impl Importer {
    /// Imports into `store`, dropping included transactions from `pool` if given.
    pub fn new(store: Arc<Store>, pool: Option<Arc<Pool>>) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                pool,
                accepted: broadcast::channel(SUBSCRIBER_BACKLOG).0,
                serial: Mutex::new(()),
            }),
        }
    }

    /// The store imported into.
    pub fn store(&self) -> &Arc<Store> {
        &self.inner.store
    }

    /// Every block accepted from now on, in import order. A subscriber that falls
    /// [`SUBSCRIBER_BACKLOG`] behind loses the oldest and gets `RecvError::Lagged(n)`
    /// first: it never slows imports.
    pub fn subscribe(&self) -> broadcast::Receiver<Accepted> {
        self.inner.accepted.subscribe()
    }

    /// Validates and stores `blocks` (each one's parent stored or earlier in `blocks`) on
    /// a blocking thread: validation hashes every transaction and the commit fsyncs.
    /// Then drops their transactions from the pool (on that thread too: a batch holds
    /// tens of thousands) and tells subscribers.
    ///
    /// Imports are serialised: the store takes one write at a time anyway, and telling
    /// new blocks from known ones must not race another import of the same blocks (sync
    /// and propagation may both be handed a block), or both would report it accepted.
    pub async fn import(&self, blocks: Vec<Block>, from: Option<PeerId>) -> Imported {
        let inner = self.inner.clone();
        // Which blocks are new is only worth a read per block for a subscriber.
        let watched = inner.accepted.receiver_count() > 0;
        let run = tokio::task::spawn_blocking(move || {
            let _serial = inner.serial.lock().unwrap_or_else(|e| e.into_inner());
            let hashes: Vec<B256> = blocks.iter().map(|b| b.header.hash_slow()).collect();
            let fresh: Vec<bool> = hashes
                .iter()
                .map(|h| !watched || matches!(inner.store.header_rlp(h), Ok(None)))
                .collect();
            let result = inner.store.insert_blocks(&blocks);
            let stored = stored(&result, &hashes, blocks.len());
            if let Some(pool) = &inner.pool
                && stored > 0
                && pool.stats().count > 0
            {
                pool.remove(
                    blocks[..stored]
                        .iter()
                        .flat_map(|b| b.body.transactions.iter().map(|t| *t.tx_hash())),
                );
            }
            (blocks, hashes, fresh, result, stored)
        });
        let (blocks, hashes, fresh, result, stored) = match run.await {
            Ok(r) => r,
            Err(_) => {
                return Imported {
                    result: Err(store::Error::Corrupt("import task failed")),
                    accepted: Vec::new(),
                };
            }
        };
        let accepted: Vec<Arc<Block>> = blocks
            .into_iter()
            .zip(hashes)
            .zip(fresh)
            .take(stored)
            .filter(|(_, fresh)| *fresh)
            .map(|((block, hash), _)| {
                let block = Arc::new(block);
                // No subscriber is not an error.
                let _ = self.inner.accepted.send(Accepted {
                    block: block.clone(),
                    hash,
                    from,
                });
                block
            })
            .collect();
        Imported { result, accepted }
    }
}

/// How many of the `len` blocks (with `hashes`) the store kept: all, those before the bad
/// one, or none (the write failed and nothing was committed).
fn stored(result: &Result<Inserted, store::Error>, hashes: &[B256], len: usize) -> usize {
    match result {
        Ok(_) => len,
        // The bad block is in `hashes` (the store names the block it was given); were it
        // not, keeping none is the safe answer (no pool clean-up, nothing announced).
        Err(store::Error::BadBlock { hash, .. }) => {
            hashes.iter().position(|h| h == hash).unwrap_or(0)
        }
        Err(_) => 0,
    }
}
