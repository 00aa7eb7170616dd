//! Blob cells from the pool (eth/72, EIP-8070), sans-IO.
//!
//! The pool keeps each blob transaction in its network encoding with its whole sidecar
//! ([`super::pool::Pooled::encoded`]). EIP-7594's erasure code is systematic: cells
//! `0..64` of an extended blob are the blob's own 2 KiB chunks, in order, and cells
//! `64..128` are the extension, which takes a KZG/FFT computation (c-kzg) we do not do.
//! So we hold, and announce ([`CellMask::DATA`]), exactly the data cells of every blob
//! we pool, and serve them by slicing the stored blobs: [`cells`] answers GetCells with
//! the requested indices among `0..64`, within [`MAX_CELL_TXS`] transactions and
//! [`SOFT_CELLS_LIMIT`] bytes.
//!
//! eth/72 also elides the blobs from PooledTransactions (spec, PooledTransactions: "the
//! blob data is elided from the response"; peers fetch cells instead): [`elide_blobs`]
//! rewrites a stored encoding with an empty blob list, and [`elided_size`] is the size
//! announced for it to eth/72 peers (as go-ethereum announces `SizeWithoutBlob`).
//!
//! All of this walks RLP headers only: no transaction is decoded.

use crate::eth::messages::PooledTransaction;
use alloy_eips::eip4844::Blob;
use alloy_eips::eip7594::BlobTransactionSidecarVariant as Sidecar;
use alloy_primitives::Bytes;

use super::messages::{BYTES_PER_CELL, Cell, CellMask, Cells, DATA_CELLS, GetCells};
use super::pool::Pool;

/// Transactions looked at per GetCells (spec: "the recommended soft limit for GetCells
/// requests is 64 hashes"). Further hashes are not served: a soft limit, because
/// go-ethereum asks for up to 128 at once, and "the recipient may enforce an arbitrary
/// limit on the response".
pub const MAX_CELL_TXS: usize = 64;
/// Bytes of cells per Cells answer, at most (spec: "the recommended soft limit for
/// Cells responses is 2 MiB"): a transaction whose cells would pass it is left out, and
/// so are the ones after it. The largest group, 64 cells of 6 blobs, is 768 KiB.
pub const SOFT_CELLS_LIMIT: usize = 2 * 1024 * 1024;

/// A blob transaction's network encoding, split around its blob list:
/// `0x03 || [tx, (version,) blobs, commitments, proofs]` inside an RLP string.
struct Split<'a> {
    /// The list payload before the blobs item.
    before: &'a [u8],
    /// The blobs item's payload (the blobs, each an RLP string).
    blobs: &'a [u8],
    /// The list payload after the blobs item.
    after: &'a [u8],
}

/// Splits `encoded`; `None` unless it is a blob transaction with its sidecar (EIP-4844's
/// four fields or EIP-7594's five, with a wrapper version).
fn split(encoded: &[u8]) -> Option<Split<'_>> {
    let mut buf = encoded;
    let outer = alloy_rlp::Header::decode(&mut buf).ok()?;
    if outer.list || buf.len() != outer.payload_length {
        return None;
    }
    let (&ty, mut body) = buf.split_first()?;
    if ty != alloy_consensus::constants::EIP4844_TX_TYPE_ID {
        return None;
    }
    let inner = alloy_rlp::Header::decode(&mut body).ok()?;
    if !inner.list || body.len() != inner.payload_length {
        return None;
    }
    // Item boundaries within the list payload.
    let mut bounds = Vec::with_capacity(5);
    let mut rest = body;
    while !rest.is_empty() && bounds.len() < 6 {
        let start = body.len() - rest.len();
        let h = alloy_rlp::Header::decode(&mut rest).ok()?;
        let payload_start = body.len() - rest.len();
        rest = rest.get(h.payload_length..)?;
        bounds.push((start, payload_start, body.len() - rest.len(), h.list));
    }
    let index = match bounds.len() {
        4 => 1,
        5 => 2,
        _ => return None,
    };
    let (start, payload_start, end, list) = bounds[index];
    if !list {
        return None;
    }
    Some(Split {
        before: &body[..start],
        blobs: &body[payload_start..end],
        after: &body[end..],
    })
}

/// The blobs of a stored blob transaction, each a `BYTES_PER_BLOB` slice; `None` if
/// `encoded` is not a blob transaction with its sidecar or a blob is malformed.
pub fn blobs(encoded: &[u8]) -> Option<Vec<&[u8]>> {
    let mut rest = split(encoded)?.blobs;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let h = alloy_rlp::Header::decode(&mut rest).ok()?;
        if h.list || h.payload_length != alloy_eips::eip4844::BYTES_PER_BLOB {
            return None;
        }
        let (blob, tail) = rest.split_at_checked(h.payload_length)?;
        out.push(blob);
        rest = tail;
    }
    Some(out)
}

/// The eth/72 encoding of a stored transaction: a blob transaction with an empty blob
/// list (commitments and proofs kept), anything else unchanged.
pub fn elide_blobs(encoded: &Bytes) -> Bytes {
    let Some(s) = split(encoded) else {
        return encoded.clone();
    };
    let inner_len = s.before.len() + 1 + s.after.len();
    let inner = alloy_rlp::Header {
        list: true,
        payload_length: inner_len,
    };
    let typed_len = 1 + inner.length() + inner_len;
    let outer = alloy_rlp::Header {
        list: false,
        payload_length: typed_len,
    };
    let mut out = Vec::with_capacity(outer.length() + typed_len);
    outer.encode(&mut out);
    out.push(alloy_consensus::constants::EIP4844_TX_TYPE_ID);
    inner.encode(&mut out);
    out.extend_from_slice(s.before);
    out.push(alloy_rlp::EMPTY_LIST_CODE);
    out.extend_from_slice(s.after);
    out.into()
}

/// The EIP-2718 size of [`elide_blobs`]'s result (what eth/72 announcements carry), or
/// `size` for anything but a blob transaction with its sidecar.
pub fn elided_size(encoded: &[u8], size: usize) -> usize {
    let Some(s) = split(encoded) else {
        return size;
    };
    let inner_len = s.before.len() + 1 + s.after.len();
    1 + alloy_rlp::length_of_length(inner_len) + inner_len
}

/// The answer to `req` from the blobs in `pool`: of the first [`MAX_CELL_TXS`] hashes,
/// each pooled blob transaction with the requested data cells (those of
/// [`CellMask::DATA`]), in request order, within [`SOFT_CELLS_LIMIT`]. The answer's
/// bitmap is the requested one cleared of the extension cells; with none left, no
/// transaction is returned (spec: "a peer may respond with an empty list if none of the
/// requested cells are available").
pub fn cells(pool: &Pool, req: &GetCells) -> Cells {
    let mask = req.cells.intersection(&CellMask::DATA);
    let mut out = Cells {
        request_id: req.request_id,
        hashes: Vec::new(),
        cells: Vec::new(),
        mask,
    };
    let per_blob = mask.count();
    if per_blob == 0 {
        return out;
    }
    let mut bytes = 0usize;
    for hash in req.hashes.iter().take(MAX_CELL_TXS) {
        let Some(tx) = pool.get(hash) else { continue };
        let Some(blobs) = blobs(&tx.encoded) else {
            continue;
        };
        let size = per_blob * blobs.len() * BYTES_PER_CELL;
        if bytes + size > SOFT_CELLS_LIMIT {
            break;
        }
        bytes += size;
        out.hashes.push(*hash);
        out.cells.push(group(&blobs, &mask));
    }
    out
}

/// The cells of `mask` (data cells only) of each blob: by ascending index, then blob
/// order (spec, Cells).
fn group(blobs: &[&[u8]], mask: &CellMask) -> Vec<Cell> {
    let mut out = Vec::with_capacity(mask.count() * blobs.len());
    for i in mask.indices().take_while(|&i| i < DATA_CELLS) {
        for blob in blobs {
            let chunk = &blob[i * BYTES_PER_CELL..(i + 1) * BYTES_PER_CELL]; // ok: a blob is 64 cells
            out.push(Cell::from_slice(chunk));
        }
    }
    out
}

/// Whether `tx` is a blob transaction that came without its blobs (eth/72
/// PooledTransactions), to be completed with its data cells.
pub fn lacks_blobs(tx: &PooledTransaction) -> bool {
    match tx {
        PooledTransaction::Eip4844(signed) => match &signed.tx().sidecar {
            Sidecar::Eip4844(s) => s.blobs.is_empty(),
            Sidecar::Eip7594(s) => s.blobs.is_empty(),
        },
        _ => false,
    }
}

/// The blobs a transaction's versioned hashes commit to (0 for other transactions).
pub fn blob_count(tx: &PooledTransaction) -> usize {
    alloy_consensus::Transaction::blob_versioned_hashes(tx).map_or(0, |h| h.len())
}

/// `tx` (without blobs) completed with its blobs rebuilt from `group`, the data cells
/// `0..64` of each of its blobs in a Cells answer's order (index, then blob): blob `j`
/// is cells `i * blobs + j` for `i` in `0..64`, concatenated. `None` if `tx` is not a
/// blob transaction lacking its blobs or `group` is not exactly those cells. The blobs
/// are checked against the commitments by nobody here: the pool checks the commitments
/// against the versioned hashes, as for any blob transaction (no KZG proof is verified).
pub fn assemble(tx: PooledTransaction, group: &[Cell]) -> Option<PooledTransaction> {
    if !lacks_blobs(&tx) {
        return None;
    }
    let n = blob_count(&tx);
    if n == 0 || group.len() != n * DATA_CELLS {
        return None;
    }
    let blobs: Vec<Blob> = (0..n)
        .map(|j| {
            let mut blob = Blob::ZERO;
            for (i, chunk) in blob.0.chunks_exact_mut(BYTES_PER_CELL).enumerate() {
                chunk.copy_from_slice(group[i * n + j].as_slice());
            }
            blob
        })
        .collect();
    let PooledTransaction::Eip4844(signed) = tx else {
        return None;
    };
    let (mut with_sidecar, sig, hash) = signed.into_parts();
    match &mut with_sidecar.sidecar {
        Sidecar::Eip4844(s) => s.blobs = blobs,
        Sidecar::Eip7594(s) => s.blobs = blobs,
    }
    Some(PooledTransaction::Eip4844(
        alloy_consensus::Signed::new_unchecked(with_sidecar, sig, hash),
    ))
}

#[cfg(test)]
#[path = "cells_tests.rs"]
mod tests;
