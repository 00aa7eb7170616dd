//! The payloads eth/70, eth/71 and eth/72 added or changed (spec `caps/eth.md`, change
//! log; EIP-7975, EIP-8159, EIP-8070), re-exported by [`super::messages`]:
//!
//! | Code | Message | Versions | Layout |
//! |------|---------|----------|--------|
//! | 0x08 | NewPooledTransactionHashes | 72 | `[types, [size, ...], [hash, ...], cells: B_16]` ([`NewPooledTransactionHashes72`]) |
//! | 0x0f | GetReceipts | 70+ | `[request-id, firstBlockReceiptIndex, [hash, ...]]` ([`GetReceipts70`]) |
//! | 0x10 | Receipts | 70+ | `[request-id, lastBlockIncomplete, [[receipt, ...], ...]]` ([`Receipts70`], eth/69 receipts) |
//! | 0x12 | GetBlockAccessLists | 71+ | `[request-id, [hash, ...]]` |
//! | 0x13 | BlockAccessLists | 71+ | `[request-id, [bal, ...]]`, `0x80` for an unavailable BAL |
//! | 0x14 | GetCells | 72 | `[request-id, [hash, ...], cells: B_16]` ([`GetCells`]) |
//! | 0x15 | Cells | 72 | `[request-id, [hash, ...], [[cell: B_2048, ...], ...], cells: B_16]` ([`Cells`]) |

use alloy_primitives::{B256, Bytes, FixedBytes, keccak256};
use alloy_rlp::{BufMut, Decodable, Encodable, RlpDecodable, RlpEncodable};

use super::messages::{NewPooledTransactionHashes, Raw, Receipt69};

/// Cells per extended blob (EIP-7594 `CELLS_PER_EXT_BLOB`): the bits of a [`CellMask`].
pub const CELLS_PER_BLOB: usize = 128;
/// Cells that hold the blob itself (EIP-7594's extension is systematic: the blob is its
/// first 64 cells concatenated, the other 64 are the Reed-Solomon extension).
pub const DATA_CELLS: usize = 64;
/// Bytes per cell (EIP-7594 `BYTES_PER_CELL`: 64 field elements of 32 bytes).
pub const BYTES_PER_CELL: usize = 2048;

/// One cell of an extended blob.
pub type Cell = FixedBytes<BYTES_PER_CELL>;

/// The `cells: B_16` bitmap of cell indices (EIP-8070): bit `i` is bit `i % 8` of byte
/// `i / 8` (little endian, as go-ethereum's `CustodyBitmap`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CellMask(pub [u8; 16]);

impl CellMask {
    /// No cell.
    pub const NONE: CellMask = CellMask([0; 16]);
    /// The data cells `0..64`: what a node holding whole blobs can serve without
    /// computing the extension.
    pub const DATA: CellMask = CellMask([
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0,
    ]);

    /// Whether cell `i` is set.
    pub fn is_set(&self, i: usize) -> bool {
        i < CELLS_PER_BLOB && self.0[i / 8] >> (i % 8) & 1 == 1
    }
    /// How many cells are set.
    pub fn count(&self) -> usize {
        self.0.iter().map(|b| b.count_ones() as usize).sum()
    }
    /// The set indices, ascending.
    pub fn indices(&self) -> impl Iterator<Item = usize> + '_ {
        (0..CELLS_PER_BLOB).filter(|&i| self.is_set(i))
    }
    /// The cells set in both.
    pub fn intersection(&self, other: &CellMask) -> CellMask {
        CellMask(std::array::from_fn(|i| self.0[i] & other.0[i]))
    }
    /// Whether every cell set here is set in `other`.
    pub fn is_subset_of(&self, other: &CellMask) -> bool {
        self.intersection(other) == *self
    }
}

impl Encodable for CellMask {
    fn encode(&self, out: &mut dyn BufMut) {
        FixedBytes(self.0).encode(out)
    }
    fn length(&self) -> usize {
        FixedBytes(self.0).length()
    }
}

impl Decodable for CellMask {
    fn decode(buf: &mut &[u8]) -> alloy_rlp::Result<Self> {
        Ok(CellMask(FixedBytes::<16>::decode(buf)?.0))
    }
}

/// Encodes the fields `f` writes as one RLP list of `payload_length` bytes.
fn list(out: &mut dyn BufMut, payload_length: usize, f: impl FnOnce(&mut dyn BufMut)) {
    alloy_rlp::Header {
        list: true,
        payload_length,
    }
    .encode(out);
    f(out)
}

/// Decodes one RLP list with `f`, which must consume it exactly.
fn unlist<T>(
    buf: &mut &[u8],
    f: impl FnOnce(&mut &[u8]) -> alloy_rlp::Result<T>,
) -> alloy_rlp::Result<T> {
    let header = alloy_rlp::Header::decode(buf)?;
    if !header.list {
        return Err(alloy_rlp::Error::UnexpectedString);
    }
    let (mut payload, rest) = buf
        .split_at_checked(header.payload_length)
        .ok_or(alloy_rlp::Error::InputTooShort)?;
    let t = f(&mut payload)?;
    if !payload.is_empty() {
        return Err(alloy_rlp::Error::ListLengthMismatch {
            expected: header.payload_length,
            got: header.payload_length - payload.len(),
        });
    }
    *buf = rest;
    Ok(t)
}

/// eth/72 NewPooledTransactionHashes: the eth/68 lists plus the cells the sender holds of
/// every blob of the announced blob transactions (EIP-8070).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewPooledTransactionHashes72 {
    /// Types, sizes and hashes, as in eth/68.
    pub announcement: NewPooledTransactionHashes,
    /// Cells available from the sender.
    pub cells: CellMask,
}

impl NewPooledTransactionHashes72 {
    fn payload_length(&self) -> usize {
        let a = &self.announcement;
        a.types.length() + a.sizes.length() + a.hashes.length() + self.cells.length()
    }
}

impl Encodable for NewPooledTransactionHashes72 {
    fn encode(&self, out: &mut dyn BufMut) {
        list(out, self.payload_length(), |out| {
            let a = &self.announcement;
            a.types.encode(out);
            a.sizes.encode(out);
            a.hashes.encode(out);
            self.cells.encode(out);
        })
    }
    fn length(&self) -> usize {
        let p = self.payload_length();
        p + alloy_rlp::length_of_length(p)
    }
}

impl Decodable for NewPooledTransactionHashes72 {
    fn decode(buf: &mut &[u8]) -> alloy_rlp::Result<Self> {
        unlist(buf, |b| {
            Ok(Self {
                announcement: NewPooledTransactionHashes {
                    types: Bytes::decode(b)?,
                    sizes: Decodable::decode(b)?,
                    hashes: Decodable::decode(b)?,
                },
                cells: CellMask::decode(b)?,
            })
        })
    }
}

/// eth/70 GetReceipts: `[request-id, firstBlockReceiptIndex, [hash, ...]]` (EIP-7975).
#[derive(Clone, Debug, PartialEq, Eq, RlpEncodable, RlpDecodable)]
pub struct GetReceipts70 {
    /// Chosen by the requester, mirrored in the answer.
    pub request_id: u64,
    /// Receipts of the first block to leave out (the part an earlier, incomplete answer
    /// already delivered).
    pub first_block_receipt_index: u64,
    /// Blocks whose receipts are wanted.
    pub hashes: Vec<B256>,
}

/// eth/70 Receipts: `[request-id, lastBlockIncomplete, [[receipt, ...], ...]]`, receipts in
/// the eth/69 encoding (EIP-7975).
#[derive(Clone, Debug, PartialEq, Eq, RlpEncodable, RlpDecodable)]
pub struct Receipts70 {
    /// The request's id.
    pub request_id: u64,
    /// The last list stops short (it would have made the message over 10 MiB); its rest
    /// is asked for with `firstBlockReceiptIndex`.
    pub last_block_incomplete: bool,
    /// One receipt list per block, in request order, ending at the first block the server
    /// has no receipts for.
    pub receipts: Vec<Vec<Receipt69>>,
}

/// eth/72 GetCells: `[request-id, [hash, ...], cells]` (EIP-8070).
#[derive(Clone, Debug, PartialEq, Eq, RlpEncodable, RlpDecodable)]
pub struct GetCells {
    /// Chosen by the requester, mirrored in the answer.
    pub request_id: u64,
    /// Blob transactions whose cells are wanted.
    pub hashes: Vec<B256>,
    /// Cell indices wanted, of every blob of every transaction.
    pub cells: CellMask,
}

/// eth/72 Cells: `[request-id, [hash, ...], [[cell, ...], ...], cells]` (EIP-8070). For each
/// returned transaction, its group holds, for each index set in `cells` (ascending), that
/// cell of each of its blobs (in blob order).
#[derive(Clone, Debug, PartialEq, Eq, RlpEncodable, RlpDecodable)]
pub struct Cells {
    /// The request's id.
    pub request_id: u64,
    /// The transactions answered (a subset of the request, in its order).
    pub hashes: Vec<B256>,
    /// One group of cells per transaction.
    pub cells: Vec<Vec<Cell>>,
    /// The indices returned: a subset of the request's.
    pub mask: CellMask,
}

/// Why a [`Cells`] answer does not fit its request (spec: "peers sending invalid or not
/// requested element must be disconnected").
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CellsError {
    /// The bitmap has an index the request did not.
    #[error("cells bitmap is not a subset of the request's")]
    Mask,
    /// A transaction not asked for, asked twice, or out of request order.
    #[error("cells of a transaction not requested")]
    Unrequested,
    /// A group whose size is not (set indices) × (the transaction's blobs).
    #[error("cells inconsistent with the bitmap")]
    Inconsistent,
}

impl Cells {
    /// Checks the answer against `req`: a subset of its transactions in its order, a
    /// subset of its bitmap, and for each transaction exactly one cell per set index per
    /// blob, its blob count given by `blobs` (what its announcement or pool entry says).
    pub fn check(&self, req: &GetCells, blobs: impl Fn(&B256) -> usize) -> Result<(), CellsError> {
        if !self.mask.is_subset_of(&req.cells) {
            return Err(CellsError::Mask);
        }
        if self.hashes.len() != self.cells.len() {
            return Err(CellsError::Inconsistent);
        }
        let mut asked = req.hashes.iter();
        let per_blob = self.mask.count();
        for (hash, group) in self.hashes.iter().zip(&self.cells) {
            if !asked.any(|h| h == hash) {
                return Err(CellsError::Unrequested);
            }
            if group.len() != per_blob.saturating_mul(blobs(hash)) {
                return Err(CellsError::Inconsistent);
            }
        }
        Ok(())
    }
}

/// The RLP empty string: a BlockAccessLists entry for a block whose BAL is unavailable
/// (EIP-8159; an empty list is a valid, empty BAL).
pub const BAL_UNAVAILABLE: &[u8] = &[alloy_rlp::EMPTY_STRING_CODE];

/// Whether a BlockAccessLists entry is the BAL committed to by a header's
/// `block-access-list-hash` (`keccak256(rlp(bal))`, spec "Block Access List Encoding").
/// The "unavailable" marker matches no hash.
pub fn bal_matches(entry: &Raw, block_access_list_hash: &B256) -> bool {
    entry.0.as_ref() != BAL_UNAVAILABLE && keccak256(&entry.0) == *block_access_list_hash
}

#[cfg(test)]
#[path = "messages_v70_tests.rs"]
mod tests;
