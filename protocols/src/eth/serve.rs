//! Answers to the peer's requests, sans-IO: pure functions over a [`Chain`].
//!
//! Every query is bounded before any lookup: at most [`MAX_HEADERS`] headers,
//! [`MAX_BODIES`] bodies, [`MAX_RECEIPTS`] receipt lists, [`MAX_BALS`] block access
//! lists and [`MAX_POOLED`] transactions (cells: [`super::cells`]),
//! and a response stops growing once it reaches [`SOFT_RESPONSE_LIMIT`] bytes (the item
//! that crosses it is included, as in go-ethereum). Header arithmetic is checked: an
//! origin, skip or amount near `u64::MAX`, or a reverse walk below block 0, ends the
//! response instead of wrapping, and nothing is ever allocated from a requested amount.
//! Unknown blocks give short or empty answers, never a disconnect. Receipts: a stored
//! list is decoded (eth/70) or re-encoded with blooms (eth/68) only up to the soft limit.

use alloy_primitives::B256;

use super::chain::Chain;
use super::messages::{self, BlockId, GetBlockHeaders, Raw};

/// Most headers served per request (go-ethereum `maxHeadersServe`).
pub const MAX_HEADERS: u64 = 1024;
/// Most bodies served per request (go-ethereum `maxBodiesServe`); further hashes are not
/// looked at.
pub const MAX_BODIES: usize = 1024;
/// Most receipt lists served per request (go-ethereum `maxReceiptsServe`).
pub const MAX_RECEIPTS: usize = 1024;
/// Most pooled transactions looked up per request (spec: recommended request limit of
/// 256 hashes).
pub const MAX_POOLED: usize = 256;
/// Soft limit on response size (spec: "the recommended soft limit for BlockHeaders /
/// BlockBodies / Receipts responses is 2 MiB").
pub const SOFT_RESPONSE_LIMIT: usize = 2 * 1024 * 1024;

/// The headers answering `req`, encoded.
pub fn headers(chain: &dyn Chain, req: &GetBlockHeaders) -> Vec<Raw> {
    let origin = match req.origin {
        BlockId::Number(n) => n,
        BlockId::Hash(h) => match chain.canonical_number(&h) {
            Some(n) => n,
            None => return Vec::new(),
        },
    };
    let amount = req.amount.min(MAX_HEADERS);
    // skip = u64::MAX makes the step overflow: only the origin can be served.
    let step = req.skip.checked_add(1);
    let mut out = Vec::new();
    let mut bytes = 0usize;
    let mut number = Some(origin);
    for _ in 0..amount {
        let Some(n) = number else { break };
        let Some(header) = chain.header_by_number(n) else {
            break;
        };
        bytes = bytes.saturating_add(header.0.len());
        out.push(header);
        if bytes >= SOFT_RESPONSE_LIMIT {
            break;
        }
        number = step.and_then(|s| {
            if req.reverse {
                n.checked_sub(s)
            } else {
                n.checked_add(s)
            }
        });
    }
    out
}

/// The bodies of the known blocks among the first [`MAX_BODIES`] hashes, in request
/// order (unknown ones are left out, as in go-ethereum).
pub fn bodies(chain: &dyn Chain, hashes: &[B256]) -> Vec<Raw> {
    within_limit(
        hashes
            .iter()
            .take(MAX_BODIES)
            .filter_map(|h| chain.body_by_hash(h)),
    )
}

/// Takes items (looked up lazily) until their total size reaches [`SOFT_RESPONSE_LIMIT`].
fn within_limit(items: impl Iterator<Item = Raw>) -> Vec<Raw> {
    within_limits(items, usize::MAX)
}

/// [`within_limit`], also ending before an item that would take the total past `hard`.
fn within_limits(items: impl Iterator<Item = Raw>, hard: usize) -> Vec<Raw> {
    let mut out = Vec::new();
    let mut bytes = 0usize;
    for item in items {
        bytes = bytes.saturating_add(item.0.len());
        if bytes > hard {
            break;
        }
        out.push(item);
        if bytes >= SOFT_RESPONSE_LIMIT {
            break;
        }
    }
    out
}

/// The stored receipt lists answering a GetReceipts (eth/68-69) for `hashes`, one per
/// block from the first, stopping at the first block whose receipts we do not hold
/// ([`Chain::receipts_by_hash`]; spec: "it should end the response at that block") and
/// once [`SOFT_RESPONSE_LIMIT`] is reached. Lists can be larger than a message: the answer
/// ends before one that would take it past [`RECEIPTS70_LIMIT`] (before eth/70 such a
/// block's receipts cannot be sent at all: go-ethereum's 10 MiB message limit would refuse
/// the message). Lists are in the stored eth/69 layout; eth/68 wants [`receipts68`].
pub fn receipts(chain: &dyn Chain, hashes: &[B256]) -> Vec<Raw> {
    within_limits(
        hashes
            .iter()
            .take(MAX_RECEIPTS)
            .map_while(|h| chain.receipts_by_hash(h)),
        RECEIPTS70_LIMIT,
    )
}

/// [`receipts`] for eth/68: each list re-encoded with blooms
/// ([`super::receipts::stored_to_eth68`]), the limits applied to the re-encoded size
/// (a bloom adds 259 bytes per receipt, so the lists read are bounded by the same limit).
/// A list read is re-encoded whole before its size is known: at most one list (bounded
/// by what the store accepted, a block's worth) is converted past the limit.
pub fn receipts68(chain: &dyn Chain, hashes: &[B256]) -> Vec<Raw> {
    within_limits(
        hashes
            .iter()
            .take(MAX_RECEIPTS)
            .map_while(|h| chain.receipts_by_hash(h))
            .map_while(|stored| super::receipts::stored_to_eth68(&stored)),
        RECEIPTS70_LIMIT,
    )
}

/// Bytes at which an eth/70 answer cuts the last block's list short and sets
/// `lastBlockIncomplete` (spec: "would overflow a message size of 10MB"), with 64 KiB
/// kept for the envelope and the current receipt so the message stays below
/// [`messages::MAX_MESSAGE_SIZE`].
pub const RECEIPTS70_LIMIT: usize = 10 * 1024 * 1024 - 64 * 1024;

/// The answer to an eth/70 GetReceipts: the receipt lists (the first starting at
/// `first_index`) and whether the last stops short. Whole lists are added while the
/// answer is under [`SOFT_RESPONSE_LIMIT`]; a list that alone would take the answer past
/// [`RECEIPTS70_LIMIT`] is cut there (at least one receipt, so the requester progresses)
/// and ends the answer with `lastBlockIncomplete`. A `first_index` beyond the first list
/// gives it empty.
pub fn receipts70(
    chain: &dyn Chain,
    first_index: u64,
    hashes: &[B256],
) -> (Vec<Vec<messages::Receipt69>>, bool) {
    let mut out = Vec::new();
    let mut bytes = 0usize;
    for (i, hash) in hashes.iter().take(MAX_RECEIPTS).enumerate() {
        let Some(stored) = chain.receipts_by_hash(hash) else {
            break;
        };
        let Ok(mut list) =
            <Vec<messages::Receipt69> as alloy_rlp::Decodable>::decode(&mut stored.0.as_ref())
        else {
            break;
        };
        let mut size = stored.0.len();
        if i == 0 && first_index > 0 {
            let skip = usize::try_from(first_index).unwrap_or(usize::MAX);
            list.drain(..skip.min(list.len()));
            size = alloy_rlp::list_length(&list);
        }
        if bytes.saturating_add(size) > RECEIPTS70_LIMIT {
            let mut partial = Vec::new();
            for r in list {
                let len = alloy_rlp::Encodable::length(&r);
                if !partial.is_empty() && bytes.saturating_add(len) > RECEIPTS70_LIMIT {
                    break;
                }
                bytes = bytes.saturating_add(len);
                partial.push(r);
            }
            out.push(partial);
            return (out, true);
        }
        bytes += size;
        out.push(list);
        if bytes >= SOFT_RESPONSE_LIMIT {
            break;
        }
    }
    (out, false)
}

/// Most block access lists answered per GetBlockAccessLists (eth/71); further hashes
/// are not answered. As [`MAX_RECEIPTS`]: EIP-8159 leaves the limit to implementations,
/// and 1024 entries of [`messages::BAL_UNAVAILABLE`] are a 3 KiB answer.
pub const MAX_BALS: usize = 1024;

/// The answer to a GetBlockAccessLists: one entry per hash (of the first [`MAX_BALS`]),
/// each [`messages::BAL_UNAVAILABLE`]. A block access list is the product of executing
/// the block (EIP-7928), which we never do, and a block does not carry it, so we hold
/// none, for any block; the spec's answer for "blocks where the BAL is unavailable" is
/// the RLP empty string.
pub fn block_access_lists(hashes: &[B256]) -> Vec<Raw> {
    let unavailable = Raw(alloy_primitives::Bytes::from_static(
        messages::BAL_UNAVAILABLE,
    ));
    vec![unavailable; hashes.len().min(MAX_BALS)]
}

/// The pooled transactions answering a GetPooledTransactions, in request order with
/// unknown ones left out, within the soft limit. With `elide_blobs` (eth/72) blob
/// transactions go without their blobs ([`super::cells::elide_blobs`]).
pub fn pooled_transactions(
    pool: &super::pool::Pool,
    hashes: &[B256],
    elide_blobs: bool,
) -> Vec<Raw> {
    let asked = hashes
        .get(..hashes.len().min(MAX_POOLED))
        .unwrap_or_default();
    within_limit(asked.iter().filter_map(|h| pool.get(h)).map(|p| {
        Raw(if elide_blobs && p.blob {
            super::cells::elide_blobs(&p.encoded)
        } else {
            p.encoded
        })
    }))
}
