//! The block store as the `eth` protocol sees it: [`protocols::eth::Chain`] over
//! [`Store`]. Headers, bodies and (eth/69) receipts are served as the RLP the store keeps,
//! without decoding.

use super::Store;
use alloy_primitives::{B256, Bytes, U256};
use protocols::eth::forkid::Filter;
use protocols::eth::messages::Raw;
use protocols::eth::{Chain, Head};
use std::sync::Arc;
use tracing::warn;

/// [`Chain`] over a [`Store`]. A storage error reads as "not found" (and is logged): a
/// peer gets an empty answer rather than a disconnect for our own disk trouble.
pub struct EthChain {
    store: Arc<Store>,
    filter: Filter,
}

impl EthChain {
    /// The `eth` view of `store`.
    pub fn new(store: Arc<Store>) -> Self {
        let filter = store.spec().fork_filter();
        Self { store, filter }
    }

    fn ok<T>(&self, what: &str, r: Result<Option<T>, super::store::Error>) -> Option<T> {
        r.unwrap_or_else(|e| {
            warn!(target: "eth", error = %e, what, "store read failed");
            None
        })
    }
}

impl Chain for EthChain {
    fn network_id(&self) -> u64 {
        self.store.spec().network_id
    }

    fn genesis_hash(&self) -> B256 {
        self.store.genesis_hash()
    }

    fn fork_filter(&self) -> &Filter {
        &self.filter
    }

    fn head(&self) -> Head {
        let genesis = &self.store.spec().genesis_header;
        let fallback = Head {
            number: 0,
            hash: self.store.genesis_hash(),
            timestamp: genesis.timestamp,
            total_difficulty: genesis.difficulty,
        };
        let Ok(header) = self.store.head() else {
            return fallback;
        };
        let hash = header.hash_slow();
        let total_difficulty = self
            .ok("total difficulty", self.store.total_difficulty(&hash))
            .unwrap_or(U256::ZERO);
        Head {
            number: header.number,
            hash,
            timestamp: header.timestamp,
            total_difficulty,
        }
    }

    fn earliest(&self) -> u64 {
        0
    }

    fn header_by_number(&self, number: u64) -> Option<Raw> {
        let hash = self.ok("canonical hash", self.store.canonical_hash(number))?;
        self.ok("header", self.store.header_rlp(&hash))
            .map(|b| Raw(Bytes::from(b)))
    }

    fn canonical_number(&self, hash: &B256) -> Option<u64> {
        let header = self.ok("header", self.store.header_by_hash(hash))?;
        let canonical = self.ok("canonical hash", self.store.canonical_hash(header.number))?;
        (canonical == *hash).then_some(header.number)
    }

    fn body_by_hash(&self, hash: &B256) -> Option<Raw> {
        self.ok("body", self.store.body_rlp(hash))
            .map(|b| Raw(Bytes::from(b)))
    }

    fn receipts_by_hash(&self, hash: &B256) -> Option<Raw> {
        self.ok("receipts", self.store.receipts_rlp(hash))
            .map(|b| Raw(Bytes::from(b)))
    }
}
