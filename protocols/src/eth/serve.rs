//! Answers to the peer's requests, sans-IO: pure functions over a [`Chain`].
//!
//! Every query is bounded before any lookup: at most [`MAX_HEADERS`] headers,
//! [`MAX_BODIES`] bodies, [`MAX_RECEIPTS`] receipt lists and [`MAX_POOLED`] transactions,
//! and a response stops growing once it reaches [`SOFT_RESPONSE_LIMIT`] bytes (the item
//! that crosses it is included, as in go-ethereum). Header arithmetic is checked: an
//! origin, skip or amount near `u64::MAX`, or a reverse walk below block 0, ends the
//! response instead of wrapping, and nothing is ever allocated from a requested amount.
//! Unknown blocks give short or empty answers, never a disconnect.

use alloy_primitives::B256;

use super::chain::Chain;
use super::messages::{BlockId, GetBlockHeaders, Raw};

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
    let mut out = Vec::new();
    let mut bytes = 0usize;
    for item in items {
        bytes = bytes.saturating_add(item.0.len());
        out.push(item);
        if bytes >= SOFT_RESPONSE_LIMIT {
            break;
        }
    }
    out
}

/// How many receipt lists answer a GetReceipts for `hashes`: one (empty, we do not
/// execute) per known block, stopping at the first unknown one (spec: "it should end the
/// response at that block").
pub fn receipts(chain: &dyn Chain, hashes: &[B256]) -> usize {
    hashes
        .iter()
        .take(MAX_RECEIPTS)
        .take_while(|h| chain.has_receipts(h))
        .count()
}

/// The pooled transactions answering a GetPooledTransactions, in request order with
/// unknown ones left out, within the soft limit.
pub fn pooled_transactions(pool: &super::pool::Pool, hashes: &[B256]) -> Vec<Raw> {
    let asked = hashes
        .get(..hashes.len().min(MAX_POOLED))
        .unwrap_or_default();
    within_limit(
        asked
            .iter()
            .filter_map(|h| pool.get(h))
            .map(|p| Raw(p.encoded)),
    )
}
