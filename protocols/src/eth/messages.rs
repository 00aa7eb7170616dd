//! eth/68 to eth/72 wire types: message codes, payloads and the [`Message`] enum that
//! decodes a payload by version and code (spec: `caps/eth.md`; EIP-2481 request ids,
//! EIP-5793 announcement types, EIP-7642 eth/69; the eth/70-72 payloads are in
//! [`super::messages_v70`], re-exported here).
//!
//! | Version | Codes | Changes |
//! |---------|-------|---------|
//! | eth/68 | `0x00..=0x10` (17) | NewBlock, NewBlockHashes; Status with total difficulty |
//! | eth/69 | `0x00..=0x11` (18) | Status with the block range; BlockRangeUpdate; receipts without bloom; no NewBlock |
//! | eth/70 | `0x00..=0x11` (18) | GetReceipts/Receipts with partial receipt lists (EIP-7975) |
//! | eth/71 | `0x00..=0x13` (20) | GetBlockAccessLists/BlockAccessLists (EIP-8159) |
//! | eth/72 | `0x00..=0x15` (22) | cells bitmap in NewPooledTransactionHashes, GetCells/Cells, blobs elided from PooledTransactions (EIP-8070) |
//!
//! Transactions use alloy's network encoding (legacy as a list, typed as a byte string):
//! [`TxEnvelope`] where blocks carry them, [`PooledTransaction`] (EIP-4844 with its
//! sidecar) in `PooledTransactions`. Headers and bodies we serve are passed as [`Raw`]
//! RLP from the store, so the serving path never re-encodes them.

use alloy_consensus::{Block, BlockBody, Header, ReceiptEnvelope, TxEnvelope};
use alloy_primitives::{B256, Bytes, Log, U256};
use alloy_rlp::{BufMut, Decodable, Encodable, RlpDecodable, RlpEncodable};

use super::forkid::ForkId;

/// A transaction as the pool holds and exchanges it: blob transactions carry their sidecar,
/// in either form — EIP-4844 (one proof per blob, before Osaka) or EIP-7594 (cell proofs,
/// from Osaka on). alloy's own `PooledTransaction` takes only the EIP-7594 form, which would
/// refuse every blob transaction of a pre-Osaka chain.
pub type PooledTransaction = alloy_consensus::EthereumTxEnvelope<
    alloy_consensus::TxEip4844WithSidecar<alloy_eips::eip7594::BlobTransactionSidecarVariant>,
>;
pub use super::messages_v70::{
    BAL_UNAVAILABLE, BYTES_PER_CELL, CELLS_PER_BLOB, Cell, CellMask, Cells, CellsError, DATA_CELLS,
    GetCells, GetReceipts70, NewPooledTransactionHashes72, Receipts70, bal_matches,
};

/// `eth/68` (EIP-5793).
pub const ETH68: u32 = 68;
/// `eth/69` (EIP-7642).
pub const ETH69: u32 = 69;
/// Message codes used by eth/68: `0x00..=0x10` (0x0d/0x0e are retired GetNodeData/NodeData).
pub const ETH68_MESSAGES: u8 = 17;
/// Message codes used by eth/69: eth/68's plus BlockRangeUpdate (0x11).
pub const ETH69_MESSAGES: u8 = 18;
/// `eth/70` (EIP-7975).
pub const ETH70: u32 = 70;
/// `eth/71` (EIP-8159).
pub const ETH71: u32 = 71;
/// `eth/72` (EIP-8070).
pub const ETH72: u32 = 72;
/// Message codes used by eth/70: the same as eth/69 (only GetReceipts/Receipts changed).
pub const ETH70_MESSAGES: u8 = 18;
/// Message codes used by eth/71: eth/70's plus GetBlockAccessLists/BlockAccessLists
/// (0x12, 0x13).
pub const ETH71_MESSAGES: u8 = 20;
/// Message codes used by eth/72: eth/71's plus GetCells/Cells (0x14, 0x15).
pub const ETH72_MESSAGES: u8 = 22;

/// The number of message codes of eth `version`, `None` for a version we do not speak.
pub fn message_count(version: u32) -> Option<u8> {
    match version {
        ETH68 => Some(ETH68_MESSAGES),
        ETH69 => Some(ETH69_MESSAGES),
        ETH70 => Some(ETH70_MESSAGES),
        ETH71 => Some(ETH71_MESSAGES),
        ETH72 => Some(ETH72_MESSAGES),
        _ => None,
    }
}
/// Largest eth message accepted (spec: "the practical limits for the eth protocol are
/// lower, typically 10 MiB"); a larger one disconnects the peer (`BreachOfProtocol`).
pub const MAX_MESSAGE_SIZE: usize = 10 * 1024 * 1024;

/// Message codes, relative to the protocol's offset.
pub mod code {
    /// Status (0x00).
    pub const STATUS: u8 = 0x00;
    /// NewBlockHashes (0x01).
    pub const NEW_BLOCK_HASHES: u8 = 0x01;
    /// Transactions (0x02).
    pub const TRANSACTIONS: u8 = 0x02;
    /// GetBlockHeaders (0x03).
    pub const GET_BLOCK_HEADERS: u8 = 0x03;
    /// BlockHeaders (0x04).
    pub const BLOCK_HEADERS: u8 = 0x04;
    /// GetBlockBodies (0x05).
    pub const GET_BLOCK_BODIES: u8 = 0x05;
    /// BlockBodies (0x06).
    pub const BLOCK_BODIES: u8 = 0x06;
    /// NewBlock (0x07), eth/68 only here.
    pub const NEW_BLOCK: u8 = 0x07;
    /// NewPooledTransactionHashes (0x08).
    pub const NEW_POOLED_TRANSACTION_HASHES: u8 = 0x08;
    /// GetPooledTransactions (0x09).
    pub const GET_POOLED_TRANSACTIONS: u8 = 0x09;
    /// PooledTransactions (0x0a).
    pub const POOLED_TRANSACTIONS: u8 = 0x0a;
    /// GetReceipts (0x0f).
    pub const GET_RECEIPTS: u8 = 0x0f;
    /// Receipts (0x10).
    pub const RECEIPTS: u8 = 0x10;
    /// BlockRangeUpdate (0x11), eth/69.
    pub const BLOCK_RANGE_UPDATE: u8 = 0x11;
    /// GetBlockAccessLists (0x12), eth/71.
    pub const GET_BLOCK_ACCESS_LISTS: u8 = 0x12;
    /// BlockAccessLists (0x13), eth/71.
    pub const BLOCK_ACCESS_LISTS: u8 = 0x13;
    /// GetCells (0x14), eth/72.
    pub const GET_CELLS: u8 = 0x14;
    /// Cells (0x15), eth/72.
    pub const CELLS: u8 = 0x15;
}

/// Why a payload could not be decoded. The peer is disconnected with `BreachOfProtocol`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The RLP was malformed or did not match the message layout.
    #[error("malformed message {code:#04x}: {source}")]
    Rlp {
        /// The message code.
        code: u8,
        /// What the decoder found.
        source: alloy_rlp::Error,
    },
    /// The code is not a message of this protocol version.
    #[error("message code {code:#04x} is not part of eth/{version}")]
    UnknownCode {
        /// The message code.
        code: u8,
        /// The negotiated version.
        version: u32,
    },
    /// Bytes were left after the message.
    #[error("trailing bytes after message {0:#04x}")]
    Trailing(u8),
    /// Transactions that decode but do not line up with the message's RLP items (alloy
    /// accepts some such encodings; an honest peer's are canonical): the size estimate
    /// walked other items than were decoded, so the message is refused.
    #[error("transactions of message {0:#04x} do not match its RLP items")]
    Misaligned(u8),
    /// The message holds more RLP items than any honest message of its kind, checked
    /// before decoding: it bounds the decoder's work per message. (A typed transaction is
    /// one item however much it decodes to: the memory is bounded by
    /// [`Error::Amplified`].)
    #[error("message {code:#04x} has over {limit} RLP items")]
    TooManyItems {
        /// The message code.
        code: u8,
        /// The limit for that message.
        limit: usize,
    },
    /// The message would decode to more memory than [`super::size::allowance`] of its
    /// length (e.g. tiny typed transactions, each a whole `TxEnvelope`), estimated by
    /// [`super::size::estimate`] before decoding.
    #[error("message {code:#04x} would decode to {decoded} bytes, over {limit}")]
    Amplified {
        /// The message code.
        code: u8,
        /// The estimated decoded size.
        decoded: usize,
        /// What its length allows.
        limit: usize,
    },
}

/// Most RLP items (at every depth) a message of `code` may hold. Honest messages stay
/// far below: 1024 headers are ~20k items; a 2 MiB bodies response is a few hundred
/// thousand; announcements are capped at 4096 entries by the spec.
fn item_limit(code: u8) -> usize {
    match code {
        code::STATUS | code::BLOCK_RANGE_UPDATE => 64,
        code::BLOCK_HEADERS => 64 * 1024,
        // A BAL is one item per account, slot and change: ~33 bytes each at the least.
        code::BLOCK_BODIES | code::NEW_BLOCK | code::RECEIPTS | code::BLOCK_ACCESS_LISTS => 1 << 20,
        code::TRANSACTIONS | code::POOLED_TRANSACTIONS => 128 * 1024,
        _ => 16 * 1024,
    }
}

/// Counts the RLP items in `payload` (an explicit stack, so nesting depth cannot
/// overflow ours), failing once the count passes `limit`. Malformed input stops the walk;
/// the decoder then reports it.
fn within_item_limit(mut payload: &[u8], limit: usize) -> bool {
    let mut stack: Vec<&[u8]> = Vec::new();
    let mut count = 0usize;
    loop {
        if payload.is_empty() {
            match stack.pop() {
                Some(rest) => {
                    payload = rest;
                    continue;
                }
                None => return true,
            }
        }
        let Ok(h) = alloy_rlp::Header::decode(&mut payload) else {
            return true;
        };
        count += 1;
        if count > limit {
            return false;
        }
        let Some((inner, rest)) = payload.split_at_checked(h.payload_length) else {
            return true;
        };
        if h.list {
            stack.push(rest);
            payload = inner;
        } else {
            payload = rest;
        }
    }
}

/// One RLP item kept as its full encoding (header included), e.g. a stored header or
/// body: encoding writes it back unchanged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Raw(pub Bytes);

impl Encodable for Raw {
    fn encode(&self, out: &mut dyn BufMut) {
        out.put_slice(&self.0);
    }
    fn length(&self) -> usize {
        self.0.len()
    }
}

impl Decodable for Raw {
    fn decode(buf: &mut &[u8]) -> alloy_rlp::Result<Self> {
        let start = *buf;
        let header = alloy_rlp::Header::decode(buf)?;
        let len = header.payload_length;
        if buf.len() < len {
            return Err(alloy_rlp::Error::InputTooShort);
        }
        *buf = &buf[len..]; // ok: len <= buf.len() checked above
        let total = start.len() - buf.len();
        Ok(Raw(Bytes::copy_from_slice(&start[..total])))
    }
}

/// `[request-id, message]` (EIP-2481): every request and response carries its id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestPair<T> {
    /// Chosen by the requester, mirrored by the responder.
    pub request_id: u64,
    /// The request or response body.
    pub message: T,
}

impl<T: Encodable> Encodable for RequestPair<T> {
    fn encode(&self, out: &mut dyn BufMut) {
        let payload_length = self.request_id.length() + self.message.length();
        alloy_rlp::Header {
            list: true,
            payload_length,
        }
        .encode(out);
        self.request_id.encode(out);
        self.message.encode(out);
    }
    fn length(&self) -> usize {
        let payload_length = self.request_id.length() + self.message.length();
        payload_length + alloy_rlp::length_of_length(payload_length)
    }
}

impl<T: Decodable> Decodable for RequestPair<T> {
    fn decode(buf: &mut &[u8]) -> alloy_rlp::Result<Self> {
        let header = alloy_rlp::Header::decode(buf)?;
        if !header.list {
            return Err(alloy_rlp::Error::UnexpectedString);
        }
        if buf.len() < header.payload_length {
            return Err(alloy_rlp::Error::InputTooShort);
        }
        let (mut payload, rest) = buf.split_at(header.payload_length);
        let request_id = u64::decode(&mut payload)?;
        let message = T::decode(&mut payload)?;
        if !payload.is_empty() {
            return Err(alloy_rlp::Error::ListLengthMismatch {
                expected: header.payload_length,
                got: header.payload_length - payload.len(),
            });
        }
        *buf = rest;
        Ok(Self {
            request_id,
            message,
        })
    }
}

/// eth/68 Status: `[version, networkid, td, blockhash, genesis, forkid]`.
#[derive(Clone, Debug, PartialEq, Eq, RlpEncodable, RlpDecodable)]
pub struct Status68 {
    /// Protocol version (68).
    pub version: u32,
    /// Network id.
    pub network_id: u64,
    /// Total difficulty of the head block.
    pub total_difficulty: U256,
    /// Head block hash.
    pub head: B256,
    /// Genesis block hash.
    pub genesis: B256,
    /// Fork id at the head (EIP-2124).
    pub fork_id: ForkId,
}

/// eth/69 Status: `[version, networkid, genesis, forkid, earliest, latest, latestHash]`.
#[derive(Clone, Debug, PartialEq, Eq, RlpEncodable, RlpDecodable)]
pub struct Status69 {
    /// Protocol version (69).
    pub version: u32,
    /// Network id.
    pub network_id: u64,
    /// Genesis block hash.
    pub genesis: B256,
    /// Fork id at the head (EIP-2124).
    pub fork_id: ForkId,
    /// Earliest block whose body and receipts are available.
    pub earliest: u64,
    /// Latest available block.
    pub latest: u64,
    /// Hash of the latest available block.
    pub latest_hash: B256,
}

/// A Status message of either version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// eth/68 layout.
    V68(Status68),
    /// eth/69 layout.
    V69(Status69),
}

impl Status {
    /// The announced protocol version.
    pub fn version(&self) -> u32 {
        match self {
            Status::V68(s) => s.version,
            Status::V69(s) => s.version,
        }
    }
    /// The network id.
    pub fn network_id(&self) -> u64 {
        match self {
            Status::V68(s) => s.network_id,
            Status::V69(s) => s.network_id,
        }
    }
    /// The genesis hash.
    pub fn genesis(&self) -> B256 {
        match self {
            Status::V68(s) => s.genesis,
            Status::V69(s) => s.genesis,
        }
    }
    /// The fork id.
    pub fn fork_id(&self) -> ForkId {
        match self {
            Status::V68(s) => s.fork_id,
            Status::V69(s) => s.fork_id,
        }
    }
    /// The head (eth/68) or latest available block (eth/69) hash.
    pub fn head_hash(&self) -> B256 {
        match self {
            Status::V68(s) => s.head,
            Status::V69(s) => s.latest_hash,
        }
    }
}

/// One NewBlockHashes entry: `[hash, number]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, RlpEncodable, RlpDecodable)]
pub struct BlockHashNumber {
    /// Block hash.
    pub hash: B256,
    /// Block number.
    pub number: u64,
}

/// Where a header query starts: a block number or a block hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockId {
    /// By canonical number.
    Number(u64),
    /// By hash.
    Hash(B256),
}

impl Encodable for BlockId {
    fn encode(&self, out: &mut dyn BufMut) {
        match self {
            BlockId::Number(n) => n.encode(out),
            BlockId::Hash(h) => h.encode(out),
        }
    }
    fn length(&self) -> usize {
        match self {
            BlockId::Number(n) => n.length(),
            BlockId::Hash(h) => h.length(),
        }
    }
}

impl Decodable for BlockId {
    fn decode(buf: &mut &[u8]) -> alloy_rlp::Result<Self> {
        // A 32-byte string is a hash; anything else must be a number (at most 8 bytes).
        let mut peek = *buf;
        let header = alloy_rlp::Header::decode(&mut peek)?;
        if !header.list && header.payload_length == 32 {
            Ok(BlockId::Hash(B256::decode(buf)?))
        } else {
            Ok(BlockId::Number(u64::decode(buf)?))
        }
    }
}

/// GetBlockHeaders body: `[origin, amount, skip, reverse]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, RlpEncodable, RlpDecodable)]
pub struct GetBlockHeaders {
    /// First block.
    pub origin: BlockId,
    /// Most headers wanted.
    pub amount: u64,
    /// Blocks left out between two returned headers.
    pub skip: u64,
    /// Falling numbers when set.
    pub reverse: bool,
}

/// eth/68 NewPooledTransactionHashes: `[types, [size, ...], [hash, ...]]` (EIP-5793).
#[derive(Clone, Debug, PartialEq, Eq, RlpEncodable, RlpDecodable)]
pub struct NewPooledTransactionHashes {
    /// One transaction type byte per announced transaction.
    pub types: Bytes,
    /// Consensus-encoding sizes.
    pub sizes: Vec<u32>,
    /// Transaction hashes.
    pub hashes: Vec<B256>,
}

impl NewPooledTransactionHashes {
    /// Whether the three lists have the same length (a mismatch is a protocol breach).
    pub fn is_consistent(&self) -> bool {
        self.types.len() == self.sizes.len() && self.sizes.len() == self.hashes.len()
    }
}

/// NewBlock: `[block, td]` (pre-merge block propagation).
#[derive(Clone, Debug, PartialEq, Eq, RlpEncodable, RlpDecodable)]
pub struct NewBlock {
    /// The block.
    pub block: Block<TxEnvelope>,
    /// Its total difficulty.
    pub td: U256,
}

/// An eth/69 receipt: `[tx-type, post-state-or-status, cumulative-gas, logs]` (EIP-7642,
/// no bloom).
#[derive(Clone, Debug, PartialEq, Eq, RlpEncodable, RlpDecodable)]
pub struct Receipt69 {
    /// EIP-2718 type of the transaction (0 for legacy).
    pub tx_type: u8,
    /// Pre-Byzantium state root (32 bytes) or status (empty for 0, `0x01` for 1).
    pub post_state_or_status: Bytes,
    /// Gas used in the block up to and including this transaction.
    pub cumulative_gas: u64,
    /// Logs emitted.
    pub logs: Vec<Log>,
}

/// eth/69 BlockRangeUpdate: `[earliest, latest, latestHash]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, RlpEncodable, RlpDecodable)]
pub struct BlockRangeUpdate {
    /// Earliest block with body and receipts available.
    pub earliest: u64,
    /// Latest available block.
    pub latest: u64,
    /// Its hash.
    pub latest_hash: B256,
}

impl BlockRangeUpdate {
    /// Spec validity: `earliest <= latest` and a non-zero hash (as go-ethereum checks).
    pub fn is_valid(&self) -> bool {
        self.earliest <= self.latest && self.latest_hash != B256::ZERO
    }
}

/// Every eth/68 and eth/69 message, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)]
pub enum Message {
    /// 0x00.
    Status(Status),
    /// 0x01.
    NewBlockHashes(Vec<BlockHashNumber>),
    /// 0x02.
    Transactions(Vec<TxEnvelope>),
    /// 0x03.
    GetBlockHeaders(RequestPair<GetBlockHeaders>),
    /// 0x04.
    BlockHeaders(RequestPair<Vec<Header>>),
    /// 0x05.
    GetBlockBodies(RequestPair<Vec<B256>>),
    /// 0x06.
    BlockBodies(RequestPair<Vec<BlockBody<TxEnvelope>>>),
    /// 0x07 (eth/68 only).
    NewBlock(Box<NewBlock>),
    /// 0x08.
    NewPooledTransactionHashes(NewPooledTransactionHashes),
    /// 0x09.
    GetPooledTransactions(RequestPair<Vec<B256>>),
    /// 0x0a.
    PooledTransactions(RequestPair<Vec<PooledTransaction>>),
    /// 0x0f.
    GetReceipts(RequestPair<Vec<B256>>),
    /// 0x10, eth/68 layout: consensus-encoded receipts with bloom.
    Receipts68(RequestPair<Vec<Vec<ReceiptEnvelope>>>),
    /// 0x10, eth/69 layout: receipts without bloom.
    Receipts69(RequestPair<Vec<Vec<Receipt69>>>),
    /// 0x11 (eth/69 and later).
    BlockRangeUpdate(BlockRangeUpdate),
    /// 0x08, eth/72 layout: with the cells bitmap.
    NewPooledTransactionHashes72(NewPooledTransactionHashes72),
    /// 0x0f, eth/70 layout: with the first block's receipt offset.
    GetReceipts70(GetReceipts70),
    /// 0x10, eth/70 layout: with the last-block-incomplete flag.
    Receipts70(Receipts70),
    /// 0x12 (eth/71 and later).
    GetBlockAccessLists(RequestPair<Vec<B256>>),
    /// 0x13 (eth/71 and later): each BAL kept as its RLP ([`BAL_UNAVAILABLE`] when the
    /// server has none), to be checked against its header's hash ([`bal_matches`]).
    BlockAccessLists(RequestPair<Vec<Raw>>),
    /// 0x14 (eth/72).
    GetCells(GetCells),
    /// 0x15 (eth/72).
    Cells(Cells),
}

impl Message {
    /// The message code.
    pub fn code(&self) -> u8 {
        match self {
            Message::Status(_) => code::STATUS,
            Message::NewBlockHashes(_) => code::NEW_BLOCK_HASHES,
            Message::Transactions(_) => code::TRANSACTIONS,
            Message::GetBlockHeaders(_) => code::GET_BLOCK_HEADERS,
            Message::BlockHeaders(_) => code::BLOCK_HEADERS,
            Message::GetBlockBodies(_) => code::GET_BLOCK_BODIES,
            Message::BlockBodies(_) => code::BLOCK_BODIES,
            Message::NewBlock(_) => code::NEW_BLOCK,
            Message::NewPooledTransactionHashes(_) | Message::NewPooledTransactionHashes72(_) => {
                code::NEW_POOLED_TRANSACTION_HASHES
            }
            Message::GetPooledTransactions(_) => code::GET_POOLED_TRANSACTIONS,
            Message::PooledTransactions(_) => code::POOLED_TRANSACTIONS,
            Message::GetReceipts(_) | Message::GetReceipts70(_) => code::GET_RECEIPTS,
            Message::Receipts68(_) | Message::Receipts69(_) | Message::Receipts70(_) => {
                code::RECEIPTS
            }
            Message::BlockRangeUpdate(_) => code::BLOCK_RANGE_UPDATE,
            Message::GetBlockAccessLists(_) => code::GET_BLOCK_ACCESS_LISTS,
            Message::BlockAccessLists(_) => code::BLOCK_ACCESS_LISTS,
            Message::GetCells(_) => code::GET_CELLS,
            Message::Cells(_) => code::CELLS,
        }
    }

    /// The RLP payload.
    pub fn encode(&self) -> bytes::Bytes {
        let mut out = Vec::new();
        match self {
            Message::Status(Status::V68(s)) => s.encode(&mut out),
            Message::Status(Status::V69(s)) => s.encode(&mut out),
            Message::NewBlockHashes(m) => m.encode(&mut out),
            Message::Transactions(m) => m.encode(&mut out),
            Message::GetBlockHeaders(m) => m.encode(&mut out),
            Message::BlockHeaders(m) => m.encode(&mut out),
            Message::GetBlockBodies(m) => m.encode(&mut out),
            Message::BlockBodies(m) => m.encode(&mut out),
            Message::NewBlock(m) => m.encode(&mut out),
            Message::NewPooledTransactionHashes(m) => m.encode(&mut out),
            Message::GetPooledTransactions(m) => m.encode(&mut out),
            Message::PooledTransactions(m) => m.encode(&mut out),
            Message::GetReceipts(m) => m.encode(&mut out),
            Message::Receipts68(m) => m.encode(&mut out),
            Message::Receipts69(m) => m.encode(&mut out),
            Message::BlockRangeUpdate(m) => m.encode(&mut out),
            Message::NewPooledTransactionHashes72(m) => m.encode(&mut out),
            Message::GetReceipts70(m) => m.encode(&mut out),
            Message::Receipts70(m) => m.encode(&mut out),
            Message::GetBlockAccessLists(m) => m.encode(&mut out),
            Message::BlockAccessLists(m) => m.encode(&mut out),
            Message::GetCells(m) => m.encode(&mut out),
            Message::Cells(m) => m.encode(&mut out),
        }
        out.into()
    }

    /// Decodes the payload of message `code` for protocol `version`. Status, receipts and
    /// announcements are decoded in the layout of `version`; NewBlock exists only in
    /// eth/68, BlockRangeUpdate from eth/69, the BAL messages from eth/71 and the cell
    /// messages in eth/72. Before decoding, the payload's RLP items are counted and what it would
    /// decode to is estimated ([`super::size`]): the memory a decoded message holds is at
    /// most [`super::size::allowance`] of its length.
    pub fn decode(version: u32, code: u8, payload: &[u8]) -> Result<Self, Error> {
        let limit = item_limit(code);
        if !within_item_limit(payload, limit) {
            return Err(Error::TooManyItems { code, limit });
        }
        let decoded = super::size::estimate_versioned(version, code, payload);
        let allowed = super::size::allowance(payload.len());
        if decoded > allowed {
            return Err(Error::Amplified {
                code,
                decoded,
                limit: allowed,
            });
        }
        let mut buf = payload;
        let msg = Self::decode_inner(version, code, &mut buf)
            .map_err(|source| Error::Rlp { code, source })?
            .ok_or(Error::UnknownCode { code, version })?;
        if !buf.is_empty() {
            return Err(Error::Trailing(code));
        }
        let aligned = match &msg {
            Message::Transactions(txs) => items_match(payload, txs),
            Message::PooledTransactions(res) => {
                // `[request-id, [tx, ...]]`: the list is the second item.
                let mut buf = payload;
                let list = alloy_rlp::Header::decode(&mut buf).ok().and_then(|_| {
                    let mut rest = buf;
                    let id = alloy_rlp::Header::decode(&mut rest).ok()?;
                    rest.get(id.payload_length..)
                });
                list.is_some_and(|l| items_match(l, &res.message))
            }
            _ => true,
        };
        if !aligned {
            return Err(Error::Misaligned(code));
        }
        Ok(msg)
    }

    fn decode_inner(version: u32, c: u8, buf: &mut &[u8]) -> alloy_rlp::Result<Option<Self>> {
        let v69 = version >= ETH69;
        let (v70, v71, v72) = (version >= ETH70, version >= ETH71, version >= ETH72);
        Ok(Some(match c {
            code::STATUS if v69 => Message::Status(Status::V69(Decodable::decode(buf)?)),
            code::STATUS => Message::Status(Status::V68(Decodable::decode(buf)?)),
            code::NEW_BLOCK_HASHES => Message::NewBlockHashes(Decodable::decode(buf)?),
            code::TRANSACTIONS => Message::Transactions(Decodable::decode(buf)?),
            code::GET_BLOCK_HEADERS => Message::GetBlockHeaders(Decodable::decode(buf)?),
            code::BLOCK_HEADERS => Message::BlockHeaders(Decodable::decode(buf)?),
            code::GET_BLOCK_BODIES => Message::GetBlockBodies(Decodable::decode(buf)?),
            code::BLOCK_BODIES => Message::BlockBodies(Decodable::decode(buf)?),
            code::NEW_BLOCK if !v69 => Message::NewBlock(Box::new(Decodable::decode(buf)?)),
            code::NEW_POOLED_TRANSACTION_HASHES if v72 => {
                Message::NewPooledTransactionHashes72(Decodable::decode(buf)?)
            }
            code::NEW_POOLED_TRANSACTION_HASHES => {
                Message::NewPooledTransactionHashes(Decodable::decode(buf)?)
            }
            code::GET_POOLED_TRANSACTIONS => {
                Message::GetPooledTransactions(Decodable::decode(buf)?)
            }
            code::POOLED_TRANSACTIONS => Message::PooledTransactions(Decodable::decode(buf)?),
            code::GET_RECEIPTS if v70 => Message::GetReceipts70(Decodable::decode(buf)?),
            code::GET_RECEIPTS => Message::GetReceipts(Decodable::decode(buf)?),
            code::RECEIPTS if v70 => Message::Receipts70(Decodable::decode(buf)?),
            code::RECEIPTS if v69 => Message::Receipts69(Decodable::decode(buf)?),
            code::RECEIPTS => Message::Receipts68(Decodable::decode(buf)?),
            code::BLOCK_RANGE_UPDATE if v69 => Message::BlockRangeUpdate(Decodable::decode(buf)?),
            code::GET_BLOCK_ACCESS_LISTS if v71 => {
                Message::GetBlockAccessLists(Decodable::decode(buf)?)
            }
            code::BLOCK_ACCESS_LISTS if v71 => Message::BlockAccessLists(Decodable::decode(buf)?),
            code::GET_CELLS if v72 => Message::GetCells(Decodable::decode(buf)?),
            code::CELLS if v72 => Message::Cells(Decodable::decode(buf)?),
            _ => return Ok(None),
        }))
    }
}

/// Encodes `[request-id, [item, ...]]` from already-encoded items (the serving path).
pub fn encode_raw_response(request_id: u64, items: &[Raw]) -> bytes::Bytes {
    let list_length = alloy_rlp::list_length(items);
    let payload_length = request_id.length() + list_length;
    let mut out = Vec::with_capacity(payload_length + alloy_rlp::length_of_length(payload_length));
    alloy_rlp::Header {
        list: true,
        payload_length,
    }
    .encode(&mut out);
    request_id.encode(&mut out);
    alloy_rlp::encode_list(items, &mut out);
    out.into()
}

/// Encodes NewBlock `[block, td]` from a borrowed block (the same bytes as
/// [`Message::NewBlock`], without cloning a block of up to 10 MiB into one).
pub fn encode_new_block(block: &Block<TxEnvelope>, td: U256) -> bytes::Bytes {
    let payload_length = block.length() + td.length();
    let mut out = Vec::with_capacity(payload_length + alloy_rlp::length_of_length(payload_length));
    alloy_rlp::Header {
        list: true,
        payload_length,
    }
    .encode(&mut out);
    block.encode(&mut out);
    td.encode(&mut out);
    out.into()
}

/// Whether the RLP list `payload` has one item per element of `decoded`, each exactly as
/// long as that element's canonical encoding.
fn items_match<T: Encodable>(payload: &[u8], decoded: &[T]) -> bool {
    let mut buf = payload;
    let Ok(list) = alloy_rlp::Header::decode(&mut buf) else {
        return false;
    };
    let Some(mut items) = buf.get(..list.payload_length) else {
        return false;
    };
    for t in decoded {
        let before = items.len();
        let Ok(h) = alloy_rlp::Header::decode(&mut items) else {
            return false;
        };
        // A single byte below 0x80 is its own payload: the header read consumed nothing.
        let header_len = before - items.len();
        if header_len + h.payload_length != t.length() {
            return false;
        }
        let Some(rest) = items.get(h.payload_length..) else {
            return false;
        };
        items = rest;
    }
    items.is_empty()
}

#[cfg(test)]
#[path = "messages_tests.rs"]
mod tests;
