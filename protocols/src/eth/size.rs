//! What a message costs in memory once decoded, known before decoding it.
//!
//! A typed transaction is one RLP string on the wire, so counting RLP items does not bound
//! what it decodes to: a 14-byte EIP-2930 transaction becomes a several-hundred-byte
//! [`TxEnvelope`], and a 10 MiB `NewBlock` (about 0.5 MB of snappy) could hold ~700k of
//! them. [`estimate`] walks the RLP of the messages that carry transactions, headers,
//! bodies or receipts with their layout in mind (transaction fields by position per
//! EIP-2718 type) and adds up what decoding them allocates: the inline size of every
//! element of every `Vec`, at the capacity a `Vec` grown by pushing reaches, and the heap
//! bytes of every `Bytes`. [`Message::decode`](super::messages::Message::decode) refuses a
//! payload whose estimate is over [`allowance`]: [`AMPLIFICATION`] times its length plus
//! [`SMALL_MESSAGE`].
//!
//! [`block_size`] measures the same thing on a decoded block (from the real capacities),
//! for queues that hold blocks and must be bounded in bytes (e.g. the node's orphan
//! queue): a block accepted by the decoder has `block_size(..) <= allowance(payload)`.

use std::mem::size_of;

use crate::eth::messages::PooledTransaction;
use alloy_consensus::{Block, BlockBody, Header, ReceiptEnvelope, Transaction, TxEnvelope};
use alloy_eips::eip2930::AccessListItem;
use alloy_eips::eip4844::Blob;
use alloy_eips::eip4895::Withdrawal;
use alloy_eips::eip7702::SignedAuthorization;
use alloy_primitives::{B256, Log};

use super::messages::{Cell, NewBlock, Raw, Receipt69, code};

/// Decoded bytes allowed per payload byte. Honest messages stay under 4: every block and
/// transaction of the ethtest chain (transfers, calls, access lists, blob and 7702
/// transactions; `Vec` capacities included) estimates at most 3.97 times its payload, as
/// this module's tests print; calldata and blobs are about 1, headers under 2. The
/// smallest decodable transactions (14 bytes, no real signature) are at 30-40 and are
/// refused. 8 leaves honest traffic twice its worst case while a 10 MiB message holds at
/// most 80 MiB decoded (instead of ~400 MiB).
pub const AMPLIFICATION: usize = 8;

/// Decoded bytes allowed whatever the payload size: answers to our own requests of many
/// small items are legitimately more amplified. The worst honest one is a full answer
/// ([`super::serve::MAX_BODIES`]) of bodies holding one transfer each (as a stretch of
/// early mainnet blocks): ~108 bytes each on the wire, ~1,690 decoded (the body, and a
/// transaction list of capacity 4), 1.7 MB from 110 KB, ~0.84 MB over 8 times the
/// payload (this module's tests print it). 1 MiB covers that down to one 85-byte
/// transaction a body; 1024 empty bodies (3 bytes each, 72 decoded) or receipt lists
/// need far less. It was 256 KiB, which refused (and dropped) an honest peer answering
/// more than ~300 such bodies.
pub const SMALL_MESSAGE: usize = 1024 * 1024;

/// What a payload of `len` bytes may decode to: `AMPLIFICATION * len + SMALL_MESSAGE`.
pub fn allowance(len: usize) -> usize {
    len.saturating_mul(AMPLIFICATION)
        .saturating_add(SMALL_MESSAGE)
}

/// Upper bound on the bytes decoding `payload` as message `code` allocates (see the module
/// documentation). Malformed RLP ends the walk where the decoder would fail too, so what
/// the decoder allocates before failing is counted. Messages not listed here (status,
/// announcements, requests) hold only hashes and numbers, which decode to at most about
/// 8 bytes per wire byte and are bounded by their RLP item limit; they count 0.
pub fn estimate(code: u8, payload: &[u8]) -> usize {
    estimate_versioned(super::messages::ETH69, code, payload)
}

/// [`estimate`] for the layouts of eth `version`: from eth/70 the receipt lists are the
/// third element of Receipts (after `lastBlockIncomplete`); eth/71 adds
/// BlockAccessLists (kept as raw bytes: about their length) and eth/72 Cells (2 KiB
/// cells in `Vec`s).
pub fn estimate_versioned(version: u32, code: u8, payload: &[u8]) -> usize {
    let Some(top) = Items(payload).next() else {
        return 0;
    };
    match code {
        code::RECEIPTS if version >= super::messages::ETH70 => {
            receipt_lists(field(top, 2).unwrap_or((true, &[])))
        }
        code::BLOCK_ACCESS_LISTS => {
            let list = response(top);
            vec(count(list), size_of::<Raw>()) + payload.len()
        }
        code::CELLS => {
            let groups = field(top, 2).unwrap_or((true, &[]));
            vec(count(groups), size_of::<Vec<Cell>>())
                + sum(groups, |g| vec(count(g), size_of::<Cell>()))
        }
        code::TRANSACTIONS => txs(top, size_of::<TxEnvelope>()),
        code::POOLED_TRANSACTIONS => txs(response(top), size_of::<PooledTransaction>()),
        code::BLOCK_HEADERS => {
            let list = response(top);
            vec(count(list), size_of::<Header>()) + sum(list, header)
        }
        code::BLOCK_BODIES => {
            let list = response(top);
            vec(count(list), size_of::<BlockBody<TxEnvelope>>()) + sum(list, body)
        }
        code::NEW_BLOCK => {
            let mut it = items(top);
            size_of::<NewBlock>() + it.next().map_or(0, block)
        }
        code::RECEIPTS => receipt_lists(response(top)),
        _ => 0,
    }
}

/// What a list of per-block receipt lists decodes to.
fn receipt_lists(list: Item<'_>) -> usize {
    vec(count(list), size_of::<Vec<()>>())
        + sum(list, |per_block| {
            let receipt = size_of::<ReceiptEnvelope>().max(size_of::<Receipt69>());
            vec(count(per_block), receipt) + sum(per_block, receipt_heap)
        })
}

/// Heap bytes of a decoded block, as allocated (capacities, not lengths), beyond its
/// inline `size_of::<Block<TxEnvelope>>()`. For byte bounds on queues of blocks: a
/// `NewBlock` whose payload passed [`Message::decode`](super::messages::Message::decode)
/// has `size_of::<Block<TxEnvelope>>() + block_size(&block)` within [`allowance`] of its
/// payload length (so at most ~80 MiB for a 10 MiB message; a typical mainnet block of
/// 100-200 KiB is 0.3-1 MiB).
pub fn block_size(block: &Block<TxEnvelope>) -> usize {
    let b = &block.body;
    block.header.extra_data.len()
        + b.transactions.capacity() * size_of::<TxEnvelope>()
        + b.transactions.iter().map(tx_size).sum::<usize>()
        + b.ommers.capacity() * size_of::<Header>()
        + b.ommers.iter().map(|h| h.extra_data.len()).sum::<usize>()
        + b.withdrawals
            .as_ref()
            .map_or(0, |w| w.capacity() * size_of::<Withdrawal>())
}

/// Heap bytes of a decoded transaction beyond its inline size (calldata, access list,
/// blob hashes, authorizations and a blob sidecar if it carries one).
pub fn tx_size(tx: &TxEnvelope) -> usize {
    use alloy_consensus::TxEip4844Variant;
    use alloy_eips::eip7594::BlobTransactionSidecarVariant as Sidecar;
    let sidecar = match tx {
        TxEnvelope::Eip4844(signed) => match signed.tx() {
            TxEip4844Variant::TxEip4844WithSidecar(t) => match &t.sidecar {
                Sidecar::Eip4844(s) => {
                    s.blobs.capacity() * size_of::<Blob>()
                        + (s.commitments.capacity() + s.proofs.capacity()) * 48
                }
                Sidecar::Eip7594(s) => {
                    s.blobs.capacity() * size_of::<Blob>()
                        + (s.commitments.capacity() + s.cell_proofs.capacity()) * 48
                }
            },
            TxEip4844Variant::TxEip4844(_) => 0,
        },
        _ => 0,
    };
    let access = tx.access_list().map_or(0, |l| {
        l.0.capacity() * size_of::<AccessListItem>()
            + l.0
                .iter()
                .map(|i| i.storage_keys.capacity() * size_of::<B256>())
                .sum::<usize>()
    });
    // Slices only: their capacity is what pushing `len` elements reaches.
    let blobs = tx
        .blob_versioned_hashes()
        .map_or(0, |h| vec(h.len(), size_of::<B256>()));
    let auths = tx
        .authorization_list()
        .map_or(0, |a| vec(a.len(), size_of::<SignedAuthorization>()));
    tx.input().len() + access + blobs + auths + sidecar
}

/// The RLP items of a payload, lenient: malformed input ends the iteration.
#[derive(Clone, Copy)]
struct Items<'a>(&'a [u8]);

/// One RLP item: whether it is a list, and its payload.
type Item<'a> = (bool, &'a [u8]);

impl<'a> Iterator for Items<'a> {
    type Item = Item<'a>;
    fn next(&mut self) -> Option<Item<'a>> {
        let mut buf = self.0;
        if buf.is_empty() {
            return None;
        }
        let h = alloy_rlp::Header::decode(&mut buf).ok()?;
        let (inner, rest) = buf.split_at_checked(h.payload_length)?;
        self.0 = rest;
        Some((h.list, inner))
    }
}

/// The elements of a list item (none for a string).
fn items(item: Item<'_>) -> Items<'_> {
    Items(if item.0 { item.1 } else { &[] })
}

fn count(item: Item<'_>) -> usize {
    items(item).count()
}

fn sum(item: Item<'_>, f: impl Fn(Item<'_>) -> usize) -> usize {
    items(item).map(f).fold(0, usize::saturating_add)
}

/// The element at `index` of a list item.
fn field(item: Item<'_>, index: usize) -> Option<Item<'_>> {
    items(item).nth(index)
}

/// The second element of `[request-id, list]`.
fn response(item: Item<'_>) -> Item<'_> {
    field(item, 1).unwrap_or((true, &[]))
}

/// Bytes a `Vec` of `len` elements of `elem` bytes allocates when grown by pushing, as
/// alloy-rlp decodes lists: Rust's `RawVec` starts at 4 elements (1 above 1 KiB, 8 for
/// bytes) and doubles.
fn vec(len: usize, elem: usize) -> usize {
    if len == 0 {
        return 0;
    }
    let min = match elem {
        1 => 8,
        2..=1024 => 4,
        _ => 1,
    };
    len.checked_next_power_of_two()
        .unwrap_or(usize::MAX)
        .max(min)
        .saturating_mul(elem)
}

/// A list of transactions whose inline size is `inline` each.
fn txs(list: Item<'_>, inline: usize) -> usize {
    vec(count(list), inline).saturating_add(sum(list, tx_heap))
}

/// Heap bytes of one transaction: a legacy list, or a string `type || rlp(fields)`, whose
/// blob variant may be the network form `[fields, (version,) blobs, commitments, proofs]`.
fn tx_heap(item: Item<'_>) -> usize {
    let (ty, fields) = if item.0 {
        (0, item)
    } else {
        let Some((&ty, rest)) = item.1.split_first() else {
            return 0;
        };
        let Some(fields) = Items(rest).next() else {
            return 0;
        };
        (ty, fields)
    };
    match items(fields).next() {
        // A blob transaction with its sidecar: the first element is the field list.
        Some(inner @ (true, _)) if ty == 3 => {
            let sidecar: usize = items(fields)
                .skip(1)
                .filter(|i| i.0)
                .enumerate()
                .map(|(n, list)| {
                    // Blobs first, then commitments and proofs (48 bytes each).
                    let elem = if n == 0 { size_of::<Blob>() } else { 48 };
                    vec(count(list), elem)
                })
                .sum();
            fields_heap(ty, inner).saturating_add(sidecar)
        }
        _ => fields_heap(ty, fields),
    }
}

/// Heap bytes of the field list of a transaction of type `ty` (EIP-2718 layouts:
/// legacy `[nonce, gasPrice, gas, to, value, data, v, r, s]`, EIP-2930 inserts chainId
/// first and the access list after data, EIP-1559 and later split gasPrice in two, then
/// EIP-4844 adds blob hashes at 10 and EIP-7702 the authorization list at 9).
fn fields_heap(ty: u8, fields: Item<'_>) -> usize {
    let (data, access, extra) = match ty {
        0 => (5, None, None),
        1 => (6, Some(7), None),
        2 => (7, Some(8), None),
        3 => (7, Some(8), Some((10, size_of::<B256>()))),
        4 => (7, Some(8), Some((9, size_of::<SignedAuthorization>()))),
        // Not a transaction the decoder accepts: it fails here.
        _ => return 0,
    };
    let bytes = |i| field(fields, i).map_or(0, |f: Item<'_>| f.1.len());
    let access = access.and_then(|i| field(fields, i)).map_or(0, |list| {
        vec(count(list), size_of::<AccessListItem>())
            + sum(list, |entry| {
                field(entry, 1).map_or(0, |keys| vec(count(keys), size_of::<B256>()))
            })
    });
    let extra = extra.map_or(0, |(i, elem)| {
        field(fields, i).map_or(0, |list| vec(count(list), elem))
    });
    bytes(data) + access + extra
}

/// Heap bytes of a header: its extra data (field 12).
fn header(item: Item<'_>) -> usize {
    field(item, 12).map_or(0, |f| f.1.len())
}

/// Heap bytes of `[transactions, ommers, withdrawals?]` from element `from` of a list
/// (0 for a body, 1 for a block after its header).
fn body_from(item: Item<'_>, from: usize) -> usize {
    let mut it = items(item).skip(from);
    let txs = it.next().map_or(0, |l| txs(l, size_of::<TxEnvelope>()));
    let ommers = it
        .next()
        .map_or(0, |l| vec(count(l), size_of::<Header>()) + sum(l, header));
    let withdrawals = it
        .next()
        .map_or(0, |l| vec(count(l), size_of::<Withdrawal>()));
    txs + ommers + withdrawals
}

fn body(item: Item<'_>) -> usize {
    body_from(item, 0)
}

fn block(item: Item<'_>) -> usize {
    items(item).next().map_or(0, header) + body_from(item, 1)
}

/// Heap bytes of a receipt: eth/69 `[type, status, gas, logs]`, eth/68 legacy `[status,
/// gas, bloom, logs]` or typed `type || rlp([status, gas, bloom, logs])`.
fn receipt_heap(item: Item<'_>) -> usize {
    let fields = if item.0 {
        item
    } else {
        match item.1.split_first().and_then(|(_, r)| Items(r).next()) {
            Some(f) => f,
            None => return 0,
        }
    };
    let status = field(fields, 1).map_or(0, |f| f.1.len());
    let logs = field(fields, 3).map_or(0, |logs| {
        vec(count(logs), size_of::<Log>())
            + sum(logs, |log| {
                field(log, 1).map_or(0, |t| vec(count(t), size_of::<B256>()))
                    + field(log, 2).map_or(0, |d| d.1.len())
            })
    });
    status + logs
}

#[cfg(test)]
#[path = "size_tests.rs"]
mod tests;
