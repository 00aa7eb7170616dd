//! Block receipts: checking a block's receipt list against its header, and converting
//! between the eth/69 wire layout (EIP-7642, no bloom) we store and the consensus
//! encoding (with bloom) that eth/68 sends and the header's `receipts_root` commits to.
//!
//! We execute nothing, so receipts come from peers or a receipts file; [`verify`] is what
//! makes them trustworthy: the list must hash to the header's receipts root (the trie of
//! the consensus-encoded receipts, bloom included), have one receipt per transaction,
//! cumulative gas that never decreases and ends at the header's gas used, and logs whose
//! blooms OR to the header's bloom. The root alone binds everything; the cheaper checks
//! run first and name what is wrong.

use alloy_consensus::{
    Eip658Value, Header, Receipt, ReceiptEnvelope, ReceiptWithBloom, TxReceipt,
    proofs::calculate_receipt_root,
};
use alloy_primitives::{B256, Bloom, Bytes};

use super::messages::{Raw, Receipt69};

/// Why a receipt list does not belong to a block. Any of these from a peer is a breach
/// of protocol (the caller disconnects it): an honest peer serves the receipts the
/// header commits to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A receipt names a transaction type we cannot encode (so cannot hash).
    #[error("receipt {index} has unknown transaction type {tx_type}")]
    UnknownType {
        /// Position in the list.
        index: usize,
        /// The type byte.
        tx_type: u8,
    },
    /// The status field is neither empty, `0x01`, nor a 32-byte state root.
    #[error("receipt {index} has a malformed status")]
    Status {
        /// Position in the list.
        index: usize,
    },
    /// Not one receipt per transaction.
    #[error("{got} receipts for {expected} transactions")]
    Count {
        /// Transactions in the block.
        expected: usize,
        /// Receipts given.
        got: usize,
    },
    /// Cumulative gas went down.
    #[error("receipt {index}: cumulative gas decreases")]
    GasDecreases {
        /// Position in the list.
        index: usize,
    },
    /// The last cumulative gas is not the header's gas used.
    #[error("receipts use {got} gas, header says {expected}")]
    GasUsed {
        /// The header's gas used.
        expected: u64,
        /// The last receipt's cumulative gas (0 for none).
        got: u64,
    },
    /// The logs' bloom is not the header's.
    #[error("logs bloom does not match the header")]
    Bloom,
    /// The receipts hash to another root.
    #[error("receipts root {got} does not match the header's {expected}")]
    Root {
        /// The header's receipts root.
        expected: B256,
        /// The root of the receipts given.
        got: B256,
    },
}

/// The consensus form of an eth/69 receipt (computes its bloom).
pub fn to_envelope(index: usize, r: &Receipt69) -> Result<ReceiptEnvelope, Error> {
    let status = match r.post_state_or_status.as_ref() {
        [] => Eip658Value::Eip658(false),
        [1] => Eip658Value::Eip658(true),
        root if root.len() == 32 => Eip658Value::PostState(B256::from_slice(root)),
        _ => return Err(Error::Status { index }),
    };
    let receipt = Receipt {
        status,
        cumulative_gas_used: r.cumulative_gas,
        logs: r.logs.clone(),
    };
    let with_bloom: ReceiptWithBloom<Receipt> = receipt.into_with_bloom();
    Ok(match r.tx_type {
        0 => ReceiptEnvelope::Legacy(with_bloom),
        1 => ReceiptEnvelope::Eip2930(with_bloom),
        2 => ReceiptEnvelope::Eip1559(with_bloom),
        3 => ReceiptEnvelope::Eip4844(with_bloom),
        4 => ReceiptEnvelope::Eip7702(with_bloom),
        tx_type => return Err(Error::UnknownType { index, tx_type }),
    })
}

/// The eth/69 form of a consensus receipt (drops the bloom).
pub fn from_envelope(e: &ReceiptEnvelope) -> Receipt69 {
    let post_state_or_status = match e.status_or_post_state() {
        Eip658Value::Eip658(true) => Bytes::from_static(&[1]),
        Eip658Value::Eip658(false) => Bytes::new(),
        Eip658Value::PostState(root) => Bytes::copy_from_slice(root.as_slice()),
    };
    Receipt69 {
        tx_type: e.tx_type() as u8,
        post_state_or_status,
        cumulative_gas: e.cumulative_gas_used(),
        logs: e.logs().to_vec(),
    }
}

/// The consensus forms of a list (see [`to_envelope`]).
pub fn to_envelopes(list: &[Receipt69]) -> Result<Vec<ReceiptEnvelope>, Error> {
    list.iter()
        .enumerate()
        .map(|(i, r)| to_envelope(i, r))
        .collect()
}

/// Checks that `list` is the receipt list of the block with `header` and `tx_count`
/// transactions (module docs). Costs a bloom and a trie hash per receipt: run it off the
/// async workers for large lists.
pub fn verify(header: &Header, tx_count: usize, list: &[Receipt69]) -> Result<(), Error> {
    if list.len() != tx_count {
        return Err(Error::Count {
            expected: tx_count,
            got: list.len(),
        });
    }
    let mut gas = 0u64;
    for (index, r) in list.iter().enumerate() {
        if r.cumulative_gas < gas {
            return Err(Error::GasDecreases { index });
        }
        gas = r.cumulative_gas;
    }
    if gas != header.gas_used {
        return Err(Error::GasUsed {
            expected: header.gas_used,
            got: gas,
        });
    }
    let envelopes = to_envelopes(list)?;
    let bloom = envelopes
        .iter()
        .fold(Bloom::ZERO, |acc, e| acc | *e.logs_bloom());
    if bloom != header.logs_bloom {
        return Err(Error::Bloom);
    }
    let got = calculate_receipt_root(&envelopes);
    if got != header.receipts_root {
        return Err(Error::Root {
            expected: header.receipts_root,
            got,
        });
    }
    Ok(())
}

/// A stored receipt list (RLP of eth/69 receipts) as eth/68 sends it: consensus receipts
/// with bloom, typed ones wrapped as byte strings. `None` if the stored list does not
/// decode (a damaged store; the caller ends its answer there).
pub fn stored_to_eth68(stored: &Raw) -> Option<Raw> {
    let list: Vec<Receipt69> = alloy_rlp::Decodable::decode(&mut stored.0.as_ref()).ok()?;
    let envelopes = to_envelopes(&list).ok()?;
    Some(Raw(alloy_rlp::encode(&envelopes).into()))
}

/// The stored form (RLP of eth/69 receipts) of a list.
pub fn encode_stored(list: &[Receipt69]) -> Raw {
    let mut out = Vec::new();
    alloy_rlp::encode_list(list, &mut out);
    Raw(out.into())
}

/// A peer's answer to GetReceipts, in the eth/69 layout whatever the version (eth/68
/// blooms are dropped: [`verify`] recomputes them from the logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// One list per block, in request order, ending where the peer lacks receipts; the
    /// first starts at the request's `firstBlockReceiptIndex` (eth/70).
    pub lists: Vec<Vec<Receipt69>>,
    /// eth/70 `lastBlockIncomplete`: the last list stops short (ask again from where it
    /// ends). Always false before eth/70.
    pub last_block_incomplete: bool,
}

/// The empty receipt list, stored form: the receipts of a block without transactions.
pub const EMPTY_LIST: &[u8] = &[alloy_rlp::EMPTY_LIST_CODE];

#[cfg(test)]
#[path = "receipts_tests.rs"]
mod tests;
