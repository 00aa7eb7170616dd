//! What `eth` needs from the node's chain: the [`Chain`] trait, and [`MemoryChain`], an
//! in-memory implementation for tests and tools.
//!
//! Headers and bodies cross the trait as raw RLP ([`Raw`]): the store keeps them encoded,
//! and serving copies the bytes into the response without decoding and re-encoding.

use std::collections::HashMap;

use alloy_primitives::{B256, U256, keccak256};
use alloy_rlp::Decodable;

use super::forkid::{Filter, ForkId};
use super::messages::Raw;

/// The local head, as announced in Status and BlockRangeUpdate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    /// Block number.
    pub number: u64,
    /// Block hash.
    pub hash: B256,
    /// Block timestamp (for timestamp-scheduled forks in the fork id, EIP-6122).
    pub timestamp: u64,
    /// Total difficulty up to and including the head (eth/68 Status only; after the merge
    /// it stays at the terminal total difficulty).
    pub total_difficulty: U256,
}

/// The node's chain, as `eth` serves it. The node implements it over its block store.
///
/// Every method is called from per-peer tasks and must be cheap and non-blocking (an
/// in-memory index or a fast read transaction).
pub trait Chain: Send + Sync + 'static {
    /// The network id announced in Status.
    fn network_id(&self) -> u64;
    /// The genesis block hash.
    fn genesis_hash(&self) -> B256;
    /// The chain's fork schedule, used to compute our fork id and validate the peer's.
    fn fork_filter(&self) -> &Filter;
    /// The current canonical head.
    fn head(&self) -> Head;
    /// The earliest block whose body (and receipts) we serve (eth/69 Status and
    /// BlockRangeUpdate); 0 for a full archive.
    fn earliest(&self) -> u64;
    /// The canonical header at `number`, RLP-encoded.
    fn header_by_number(&self, number: u64) -> Option<Raw>;
    /// The number of block `hash` if it is canonical (non-canonical blocks are not served
    /// by header queries).
    fn canonical_number(&self, hash: &B256) -> Option<u64>;
    /// The body of block `hash` (`[transactions, ommers, withdrawals?]`), RLP-encoded.
    fn body_by_hash(&self, hash: &B256) -> Option<Raw>;
    /// The receipt list of block `hash` as stored: the RLP list of its receipts in the
    /// eth/69 layout ([`super::messages::Receipt69`], no bloom), checked against the
    /// block's receipts root when it was stored ([`super::receipts::verify`]). `None` if
    /// we do not hold them (unknown block, or receipts not fetched yet): GetReceipts ends
    /// its answer there (spec: "if the server does not have the receipts of a certain
    /// block in its storage, it should end the response at that block"). Default: the
    /// empty list for a known block without transactions, `None` otherwise.
    fn receipts_by_hash(&self, hash: &B256) -> Option<Raw> {
        self.body_by_hash(hash)
            .filter(|body| body_has_no_transactions(&body.0))
            .map(|_| {
                Raw(alloy_primitives::Bytes::from_static(
                    super::receipts::EMPTY_LIST,
                ))
            })
    }

    /// Whether we hold the receipts of block `hash` ([`Chain::receipts_by_hash`]).
    fn has_receipts(&self, hash: &B256) -> bool {
        self.receipts_by_hash(hash).is_some()
    }

    /// Our fork id at the current head.
    fn fork_id(&self) -> ForkId {
        let head = self.head();
        self.fork_filter().fork_id(head.number, head.timestamp)
    }
}

/// Whether an RLP block body `[transactions, ommers, withdrawals?]` has an empty
/// transaction list (false if malformed).
pub fn body_has_no_transactions(body: &[u8]) -> bool {
    let mut buf = body;
    let outer = alloy_rlp::Header::decode(&mut buf);
    let txs = alloy_rlp::Header::decode(&mut buf);
    matches!((outer, txs), (Ok(o), Ok(t)) if o.list && t.list && t.payload_length == 0)
}

/// Errors building a [`MemoryChain`].
#[derive(Debug, thiserror::Error)]
pub enum MemoryChainError {
    /// A block did not decode.
    #[error("block {index} is not valid RLP: {source}")]
    Rlp {
        /// Position in the input.
        index: usize,
        /// Decoder error.
        source: alloy_rlp::Error,
    },
    /// Blocks were not consecutive or did not link by parent hash.
    #[error("block {index} does not extend the previous one")]
    NotLinked {
        /// Position in the input.
        index: usize,
    },
    /// No blocks at all.
    #[error("no blocks")]
    Empty,
    /// A receipt list does not match its block.
    #[error("receipts of block {index}: {source}")]
    Receipts {
        /// Position of the block in the chain.
        index: usize,
        /// What is wrong.
        source: super::receipts::Error,
    },
}

/// One stored block.
#[derive(Clone, Debug)]
struct Stored {
    hash: B256,
    header: Raw,
    body: Raw,
}

/// A canonical chain held in memory: contiguous blocks from some first number (the
/// genesis or later), with their encoded headers and bodies.
#[derive(Clone, Debug)]
pub struct MemoryChain {
    network_id: u64,
    genesis_hash: B256,
    filter: Filter,
    first: u64,
    blocks: Vec<Stored>,
    by_hash: HashMap<B256, u64>,
    head: Head,
    /// Receipt lists by block hash (stored form, see [`Chain::receipts_by_hash`]).
    receipts: HashMap<B256, Raw>,
}

impl MemoryChain {
    /// A chain from concatenated RLP blocks (`[header, transactions, ommers,
    /// withdrawals?]` each, as in go-ethereum's `chain.rlp` export). The blocks must be
    /// consecutive and linked. `genesis_hash` is block 0's hash even when block 0 is not
    /// among them; `td_before` is the total difficulty before the first block.
    pub fn from_rlp(
        network_id: u64,
        genesis_hash: B256,
        filter: Filter,
        td_before: U256,
        mut data: &[u8],
    ) -> Result<Self, MemoryChainError> {
        let mut blocks: Vec<Stored> = Vec::new();
        let mut td = td_before;
        let mut first = 0;
        let mut head = None;
        let mut index = 0;
        while !data.is_empty() {
            let rlp = |source| MemoryChainError::Rlp { index, source };
            let outer = alloy_rlp::Header::decode(&mut data).map_err(rlp)?;
            if !outer.list || data.len() < outer.payload_length {
                return Err(rlp(alloy_rlp::Error::InputTooShort));
            }
            let (mut payload, rest) = data.split_at(outer.payload_length);
            data = rest;
            let header_raw = Raw::decode(&mut payload).map_err(rlp)?;
            let header =
                alloy_consensus::Header::decode(&mut header_raw.0.as_ref()).map_err(rlp)?;
            // The body is the rest of the block's payload, re-wrapped as a list.
            let mut body = Vec::with_capacity(payload.len() + 9);
            alloy_rlp::Header {
                list: true,
                payload_length: payload.len(),
            }
            .encode(&mut body);
            body.extend_from_slice(payload);
            let hash = keccak256(&header_raw.0);
            match blocks.last() {
                None => first = header.number,
                Some(prev) => {
                    let expected = first.saturating_add(blocks.len() as u64);
                    if header.number != expected || header.parent_hash != prev.hash {
                        return Err(MemoryChainError::NotLinked { index });
                    }
                }
            }
            td = td.saturating_add(header.difficulty);
            head = Some(Head {
                number: header.number,
                hash,
                timestamp: header.timestamp,
                total_difficulty: td,
            });
            blocks.push(Stored {
                hash,
                header: header_raw,
                body: Raw(body.into()),
            });
            index += 1;
        }
        let head = head.ok_or(MemoryChainError::Empty)?;
        let by_hash = blocks
            .iter()
            .enumerate()
            .map(|(i, b)| (b.hash, first + i as u64))
            .collect();
        Ok(Self {
            network_id,
            genesis_hash,
            filter,
            first,
            blocks,
            by_hash,
            head,
            receipts: HashMap::new(),
        })
    }

    /// Drops blocks above `number`, making it the head (for tests of peers behind us).
    pub fn truncate(&mut self, number: u64) {
        let keep = number.saturating_sub(self.first).saturating_add(1);
        let keep = usize::try_from(keep).unwrap_or(usize::MAX);
        if keep >= self.blocks.len() || number < self.first {
            return;
        }
        for b in self.blocks.drain(keep..) {
            self.by_hash.remove(&b.hash);
        }
        if let Some(last) = self.blocks.last()
            && let Ok(h) = alloy_consensus::Header::decode(&mut last.header.0.as_ref())
        {
            // Difficulty is zero after the merge; pre-merge truncation keeps the old TD
            // (tests only).
            self.head = Head {
                number: h.number,
                hash: last.hash,
                timestamp: h.timestamp,
                total_difficulty: self.head.total_difficulty,
            };
        }
    }

    /// The stored block at `number`.
    fn get(&self, number: u64) -> Option<&Stored> {
        let i = usize::try_from(number.checked_sub(self.first)?).ok()?;
        self.blocks.get(i)
    }

    /// The hash of the canonical block at `number`.
    pub fn hash_by_number(&self, number: u64) -> Option<B256> {
        self.get(number).map(|b| b.hash)
    }

    /// The first stored block number.
    pub fn first(&self) -> u64 {
        self.first
    }

    /// Adds receipt lists from a receipts file (one RLP list holding one eth/69 receipt
    /// list per block, from the first block on, as `testdata/ethtest/receipts.rlp`),
    /// each checked against its block ([`super::receipts::verify`]); returns how many.
    /// Lists past the last block are ignored.
    pub fn add_receipts(&mut self, mut file: &[u8]) -> Result<usize, MemoryChainError> {
        let lists: Vec<Vec<super::messages::Receipt69>> = Decodable::decode(&mut file)
            .map_err(|source| MemoryChainError::Rlp { index: 0, source })?;
        let mut added = 0;
        for (index, (list, block)) in lists.iter().zip(&self.blocks).enumerate() {
            let header = alloy_consensus::Header::decode(&mut block.header.0.as_ref())
                .map_err(|source| MemoryChainError::Rlp { index, source })?;
            let txs = tx_count(&block.body.0).ok_or(MemoryChainError::Rlp {
                index,
                source: alloy_rlp::Error::Custom("body"),
            })?;
            super::receipts::verify(&header, txs, list)
                .map_err(|e| MemoryChainError::Receipts { index, source: e })?;
            self.receipts
                .insert(block.hash, super::receipts::encode_stored(list));
            added += 1;
        }
        Ok(added)
    }
}

/// The number of transactions in an RLP block body (`None` if malformed).
fn tx_count(body: &[u8]) -> Option<usize> {
    let mut buf = body;
    let outer = alloy_rlp::Header::decode(&mut buf).ok()?;
    let txs = alloy_rlp::Header::decode(&mut buf).ok()?;
    let mut items = buf.get(..txs.payload_length)?;
    let mut n = 0;
    while !items.is_empty() {
        let h = alloy_rlp::Header::decode(&mut items).ok()?;
        items = items.get(h.payload_length..)?;
        n += 1;
    }
    (outer.list && txs.list).then_some(n)
}

impl Chain for MemoryChain {
    fn network_id(&self) -> u64 {
        self.network_id
    }
    fn genesis_hash(&self) -> B256 {
        self.genesis_hash
    }
    fn fork_filter(&self) -> &Filter {
        &self.filter
    }
    fn head(&self) -> Head {
        self.head
    }
    fn earliest(&self) -> u64 {
        self.first
    }
    fn header_by_number(&self, number: u64) -> Option<Raw> {
        self.get(number).map(|b| b.header.clone())
    }
    fn canonical_number(&self, hash: &B256) -> Option<u64> {
        self.by_hash.get(hash).copied()
    }
    fn body_by_hash(&self, hash: &B256) -> Option<Raw> {
        let n = self.canonical_number(hash)?;
        self.get(n).map(|b| b.body.clone())
    }
    fn receipts_by_hash(&self, hash: &B256) -> Option<Raw> {
        self.canonical_number(hash)?;
        if let Some(r) = self.receipts.get(hash) {
            return Some(r.clone());
        }
        self.body_by_hash(hash)
            .filter(|body| body_has_no_transactions(&body.0))
            .map(|_| {
                Raw(alloy_primitives::Bytes::from_static(
                    super::receipts::EMPTY_LIST,
                ))
            })
    }
}
