//! The one way blocks from the network enter the [`Store`]: sync and propagation both
//! import through an [`Importer`], which validates and stores off the runtime, drops the
//! included transactions from the pool, and tells subscribers which blocks were accepted
//! and from whom.

use std::sync::{Arc, Mutex};

use alloy_primitives::B256;
use protocols::eth::{PeerId, pool::Pool};
use tokio::sync::broadcast;

use super::Block;
use super::store::{self, Bodies, Inserted, Store};

/// Accepted blocks a [`Importer::subscribe`]r may fall behind by before it loses the
/// oldest (and is told how many). Each holds its block (an `Arc`) until every subscriber
/// has seen it or it is overwritten: 64 blocks is 13 minutes of mainnet blocks and
/// ~10 MB of typical ones (~150 KB each), and at worst 64 blocks at the store's size
/// limit for a subscriber that stopped reading. During a sync, batches arrive much
/// faster; a slow subscriber then lags rather than holding them.
pub const SUBSCRIBER_BACKLOG: usize = 64;

/// A block the store accepted (validated and stored; on the canonical chain or a side
/// chain, see [`Store::canonical_hash`]).
#[derive(Clone, Debug)]
pub struct Accepted {
    /// The block.
    pub block: Arc<Block>,
    /// Its hash.
    pub hash: B256,
    /// The peer that propagated it (`None` for blocks from sync, which assembles a batch
    /// from several peers' answers, and for local imports and replays).
    pub from: Option<PeerId>,
}

/// What [`Importer::import`] did.
#[derive(Debug)]
pub struct Imported {
    /// The store's answer. On [`store::Error::BadBlock`] the blocks before the bad one
    /// were stored all the same (they are in `accepted`).
    pub result: Result<Inserted, store::Error>,
    /// The blocks stored by this call, in order, as subscribers were told of them
    /// (blocks that were already stored are left out).
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
        self.import_bodies(blocks, from, Bodies::Unchecked).await
    }

    /// [`Importer::import`] of blocks whose bodies were already matched to their
    /// headers ([`Bodies::Matched`]: catch-up sync checks each as it arrives), which the
    /// store then does not check again.
    pub async fn import_matched(&self, blocks: Vec<Block>) -> Imported {
        self.import_bodies(blocks, None, Bodies::Matched).await
    }

    async fn import_bodies(
        &self,
        blocks: Vec<Block>,
        from: Option<PeerId>,
        bodies: Bodies,
    ) -> Imported {
        let inner = self.inner.clone();
        let run = tokio::task::spawn_blocking(move || {
            let _serial = inner.serial.lock().unwrap_or_else(|e| e.into_inner());
            // The store says which blocks it stored: no read per block to tell.
            let mut stored = Vec::new();
            let result = inner
                .store
                .insert_blocks_noting(&blocks, &mut stored, bodies);
            if let Some(pool) = &inner.pool
                && !stored.is_empty()
                && pool.stats().count > 0
            {
                pool.remove(
                    stored
                        .iter()
                        .flat_map(|&i| blocks[i].body.transactions.iter().map(|t| *t.tx_hash())),
                );
            }
            let mut blocks: Vec<Option<Block>> = blocks.into_iter().map(Some).collect();
            // Told while still serialised: another import's blocks cannot be told between
            // (a child before its parent).
            let accepted: Vec<Arc<Block>> = stored
                .into_iter()
                .filter_map(|i| blocks.get_mut(i).and_then(Option::take))
                .map(|block| {
                    let block = Arc::new(block);
                    // No subscriber is not an error.
                    let _ = inner.accepted.send(Accepted {
                        hash: block.header.hash_slow(),
                        block: block.clone(),
                        from,
                    });
                    block
                })
                .collect();
            Imported { result, accepted }
        });
        run.await.unwrap_or_else(|_| Imported {
            result: Err(store::Error::Corrupt("import task failed")),
            accepted: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::presets;
    use crate::chain::reader::BlockReader;
    use protocols::eth::pool;

    fn blocks(n: u64) -> Vec<Block> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/ethtest/chain.rlp");
        let data = std::fs::read(path).unwrap();
        let mut reader = BlockReader::new(data.as_slice());
        let mut v = Vec::new();
        while let Some(b) = reader.next_block().unwrap() {
            if b.header.number > n {
                break;
            }
            v.push(b);
        }
        v
    }

    fn store(name: &str) -> (Arc<Store>, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("importer-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir, presets::ethtest().unwrap()).unwrap();
        (Arc::new(store), dir)
    }

    /// Blocks are announced once, with their sender, in order; the pool loses the
    /// transactions they include; a batch with a bad block keeps (and announces) the
    /// blocks before it only.
    #[tokio::test]
    async fn accepted_blocks_are_announced_once_and_leave_the_pool() {
        let (store, dir) = store("accepted");
        let all = blocks(20);
        let chain_id = store.spec().config.chain_id;
        let pool = Arc::new(pool::Pool::new(pool::Config {
            chain_id: Some(chain_id),
            ..pool::Config::default()
        }));
        let tx = all
            .iter()
            .take(10)
            .find_map(|b| b.body.transactions.first().cloned())
            .expect("a transaction in blocks 1..=10");
        pool.add_envelope(tx, pool::Origin::Remote).unwrap();
        assert_eq!(pool.stats().count, 1);
        let importer = Importer::new(store.clone(), Some(pool.clone()));
        let mut events = importer.subscribe();
        let from = secp256k1::PublicKey::from_secret_key_global(
            &secp256k1::SecretKey::from_byte_array([7; 32]).unwrap(),
        );

        let first = importer.import(all[..10].to_vec(), Some(from)).await;
        assert_eq!(first.result.unwrap().imported, 10);
        assert_eq!(first.accepted.len(), 10);
        assert_eq!(pool.stats().count, 0, "included transaction dropped");
        for b in &all[..10] {
            let ev = events.try_recv().unwrap();
            assert_eq!((ev.hash, ev.from), (b.header.hash_slow(), Some(from)));
        }
        // Known blocks again, then new ones: only the new ones are accepted.
        let again = importer.import(all[5..15].to_vec(), None).await;
        assert_eq!(again.result.as_ref().unwrap().known, 5);
        let numbers: Vec<u64> = again.accepted.iter().map(|b| b.header.number).collect();
        assert_eq!(numbers, (11..=15).collect::<Vec<_>>());
        for n in 11..=15 {
            assert_eq!(events.try_recv().unwrap().block.header.number, n);
        }
        // Block 17 forged: 16 is kept, 17 refused, 18 never tried.
        let mut batch = all[15..18].to_vec();
        batch[1].header.gas_used = batch[1].header.gas_limit + 1;
        let bad = importer.import(batch, None).await;
        assert!(matches!(
            bad.result,
            Err(store::Error::BadBlock { number: 17, .. })
        ));
        assert_eq!(bad.accepted.len(), 1);
        assert_eq!(events.try_recv().unwrap().block.header.number, 16);
        assert!(events.try_recv().is_err());
        assert_eq!(store.head().unwrap().number, 16);
        drop((importer, store));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Sync and propagation handed the same blocks at once: each is stored once and
    /// announced once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn racing_imports_of_the_same_blocks_announce_them_once() {
        let (store, dir) = store("race");
        let all = blocks(64);
        let importer = Importer::new(store.clone(), None);
        let mut events = importer.subscribe();
        let runs: Vec<_> = (0..4)
            .map(|_| {
                let (importer, batch) = (importer.clone(), all.clone());
                tokio::spawn(async move { importer.import(batch, None).await })
            })
            .collect();
        let mut accepted = 0;
        for r in runs {
            accepted += r.await.unwrap().accepted.len();
        }
        assert_eq!(accepted, 64);
        let mut seen = 0;
        while events.try_recv().is_ok() {
            seen += 1;
        }
        assert_eq!(seen, 64);
        drop((importer, store));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
