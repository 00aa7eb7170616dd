//! Header and body validation that needs no transaction execution.
//!
//! Checked: parent linkage, number, timestamp, gas limit bounds, gas used, extra data size,
//! the EIP-1559 base fee, the EIP-4844 blob gas fields, the presence of each fork's header
//! fields (withdrawals root from Shanghai, beacon root from Cancun, requests hash from Prague),
//! the proof-of-stake constants after the merge (EIP-3675), and that a body matches its
//! header's transactions root, ommers hash, withdrawals root and blob gas.
//!
//! Not checked: state, receipts and logs (they need execution), transaction signatures, and the
//! ethash seal of proof-of-work blocks.

use alloy_consensus::constants::EMPTY_OMMER_ROOT_HASH;
use alloy_consensus::{Header, Transaction, proofs};
use alloy_eips::eip1559::{BaseFeeParams, INITIAL_BASE_FEE};
use alloy_eips::eip4844::DATA_GAS_PER_BLOB;
use alloy_primitives::{B64, B256};

use super::{Body, Spec};

/// Minimum gas limit (Yellow Paper, go-ethereum `params.MinGasLimit`).
pub const MIN_GAS_LIMIT: u64 = 5000;
/// Maximum gas limit (go-ethereum `params.MaxGasLimit`, 2^63 - 1).
pub const MAX_GAS_LIMIT: u64 = 0x7fff_ffff_ffff_ffff;
/// A block's gas limit may move by less than `parent / 1024` (Yellow Paper eq. 47).
pub const GAS_LIMIT_BOUND_DIVISOR: u64 = 1024;
/// Maximum extra data size (Yellow Paper, go-ethereum `params.MaximumExtraDataSize`).
pub const MAX_EXTRA_DATA: usize = 32;
/// Base fees above this could overflow the EIP-1559 update; no real chain comes close.
const MAX_SANE_BASE_FEE: u64 = u64::MAX / 4;

/// Why a block was rejected. Any of these means the block (and its sender) is bad: the `eth`
/// protocol disconnects a peer that sends one with `DisconnectReason::UselessPeer`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The parent is unknown.
    #[error("unknown parent {0}")]
    UnknownParent(B256),
    /// The header's parent hash is not the given parent.
    #[error("parent hash {got} is not the parent {expected}")]
    ParentHash {
        /// The parent's hash.
        expected: B256,
        /// The header's parent hash.
        got: B256,
    },
    /// The number is not the parent's plus one.
    #[error("block number {got}, expected {expected}")]
    Number {
        /// Parent number + 1.
        expected: u64,
        /// The header's number.
        got: u64,
    },
    /// The timestamp is not after the parent's.
    #[error("timestamp {got} is not after the parent's {parent}")]
    Timestamp {
        /// The parent's timestamp.
        parent: u64,
        /// The header's timestamp.
        got: u64,
    },
    /// The gas limit is below the minimum or above the maximum.
    #[error("gas limit {0} out of range [{MIN_GAS_LIMIT}, {MAX_GAS_LIMIT}]")]
    GasLimitRange(u64),
    /// The gas limit moved by `parent / 1024` or more.
    #[error("gas limit {got} moved too far from the parent's {parent}")]
    GasLimitBound {
        /// The parent's gas limit (doubled at the London transition).
        parent: u64,
        /// The header's gas limit.
        got: u64,
    },
    /// More gas used than the limit.
    #[error("gas used {used} exceeds the gas limit {limit}")]
    GasUsed {
        /// Gas used.
        used: u64,
        /// Gas limit.
        limit: u64,
    },
    /// Extra data longer than 32 bytes.
    #[error("extra data of {0} bytes exceeds {MAX_EXTRA_DATA}")]
    ExtraData(usize),
    /// The base fee is not the EIP-1559 value (or missing, or present before London).
    #[error("base fee {got:?}, expected {expected:?}")]
    BaseFee {
        /// The expected base fee (`None` before London).
        expected: Option<u64>,
        /// The header's base fee.
        got: Option<u64>,
    },
    /// A header field is present before its fork or missing after it.
    #[error("header field {field} is {}", if *.present { "present before its fork" } else { "missing" })]
    Field {
        /// The field's name.
        field: &'static str,
        /// Whether the field was present (before the fork) or missing (after it).
        present: bool,
    },
    /// Blob gas used above the maximum or not a multiple of the gas per blob.
    #[error("blob gas used {0} is above the maximum or not a whole number of blobs")]
    BlobGasUsed(u64),
    /// Excess blob gas is not the EIP-4844 value.
    #[error("excess blob gas {got}, expected {expected}")]
    ExcessBlobGas {
        /// The computed excess blob gas.
        expected: u64,
        /// The header's excess blob gas.
        got: u64,
    },
    /// A proof-of-stake block with non-zero difficulty, a non-zero nonce or ommers (EIP-3675).
    #[error("proof-of-stake block with {0}")]
    ProofOfStake(&'static str),
    /// The transactions do not match the header's transactions root.
    #[error("transactions root {got} does not match the header's {expected}")]
    TransactionsRoot {
        /// The header's root.
        expected: B256,
        /// The body's root.
        got: B256,
    },
    /// The ommers do not match the header's ommers hash.
    #[error("ommers hash {got} does not match the header's {expected}")]
    OmmersHash {
        /// The header's hash.
        expected: B256,
        /// The body's hash.
        got: B256,
    },
    /// The withdrawals do not match the header's withdrawals root.
    #[error("withdrawals root {got:?} does not match the header's {expected:?}")]
    WithdrawalsRoot {
        /// The header's root.
        expected: Option<B256>,
        /// The body's root.
        got: Option<B256>,
    },
    /// The blob transactions carry a different amount of blob gas than the header says.
    #[error("blob transactions use {got} blob gas, the header says {expected}")]
    BodyBlobGas {
        /// The header's blob gas used.
        expected: u64,
        /// The body's blob gas.
        got: u64,
    },
    /// Acceptance policy (`docs/fork-choice.md`): the timestamp is more than
    /// [`super::store::MAX_FUTURE_SECS`] ahead of our clock. Not remembered as bad: it may
    /// become acceptable later.
    #[error("timestamp {timestamp} is in the future (now {now})")]
    FutureTimestamp {
        /// The header's timestamp.
        timestamp: u64,
        /// Our clock (seconds since the epoch).
        now: u64,
    },
    /// Acceptance policy: the block forks off our canonical chain more than
    /// [`super::store::MAX_REORG_DEPTH`] blocks below our head (or off a side chain that
    /// was pruned). Not remembered as bad.
    #[error("forks off our chain at {fork}, too far below our head {head}")]
    ReorgTooDeep {
        /// The highest canonical ancestor found (0 if none within the limit).
        fork: u64,
        /// Our head's number.
        head: u64,
    },
    /// Acceptance policy: the block contradicts a required block (`--required-blocks`).
    #[error("block {number} is not the required {expected}")]
    RequiredBlock {
        /// The height.
        number: u64,
        /// The required hash there.
        expected: B256,
    },
    /// Acceptance policy: storing this side block would exceed
    /// [`super::store::MAX_SIDE_BYTES`]. Not remembered as bad.
    #[error("side-chain budget full")]
    SideChainFull,
}

impl Error {
    /// Whether the block can never become valid, so its hash is remembered as bad: false
    /// for the acceptance-policy refusals that depend on our clock, head or free budget.
    pub fn is_permanent(&self) -> bool {
        !matches!(
            self,
            Error::FutureTimestamp { .. } | Error::ReorgTooDeep { .. } | Error::SideChainFull
        )
    }
}

/// Checks that `field` is present exactly when its fork is active.
fn presence<T>(field: &'static str, value: &Option<T>, active: bool) -> Result<(), Error> {
    match (value.is_some(), active) {
        (true, true) | (false, false) => Ok(()),
        (present, _) => Err(Error::Field { field, present }),
    }
}

/// Validates `header` as the child of `parent` under `spec`'s rules.
pub fn header(spec: &Spec, parent: &Header, header: &Header) -> Result<(), Error> {
    let parent_hash = parent.hash_slow();
    if header.parent_hash != parent_hash {
        return Err(Error::ParentHash {
            expected: parent_hash,
            got: header.parent_hash,
        });
    }
    let expected = parent.number.saturating_add(1);
    if header.number != expected {
        return Err(Error::Number {
            expected,
            got: header.number,
        });
    }
    if header.timestamp <= parent.timestamp {
        return Err(Error::Timestamp {
            parent: parent.timestamp,
            got: header.timestamp,
        });
    }
    if header.extra_data.len() > MAX_EXTRA_DATA {
        return Err(Error::ExtraData(header.extra_data.len()));
    }
    gas_limit(spec, parent, header)?;
    if header.gas_used > header.gas_limit {
        return Err(Error::GasUsed {
            used: header.gas_used,
            limit: header.gas_limit,
        });
    }
    base_fee(spec, parent, header)?;
    let time = header.timestamp;
    presence(
        "withdrawalsRoot",
        &header.withdrawals_root,
        spec.is_shanghai(time),
    )?;
    presence(
        "parentBeaconBlockRoot",
        &header.parent_beacon_block_root,
        spec.is_cancun(time),
    )?;
    presence("requestsHash", &header.requests_hash, spec.is_prague(time))?;
    // eth spec, "Block Encoding and Validity". EIP-7843's `slot_number`, which alloy decodes
    // after it, is not in the eth spec's header and is left unchecked.
    presence(
        "blockAccessListHash",
        &header.block_access_list_hash,
        spec.is_amsterdam(time),
    )?;
    blob_gas(spec, parent, header)?;
    proof_of_stake(spec, parent, header)
}

/// Gas limit range and the `parent / 1024` bound (doubled parent limit at the London fork,
/// EIP-1559's elasticity multiplier).
fn gas_limit(spec: &Spec, parent: &Header, header: &Header) -> Result<(), Error> {
    let limit = header.gas_limit;
    if !(MIN_GAS_LIMIT..=MAX_GAS_LIMIT).contains(&limit) {
        return Err(Error::GasLimitRange(limit));
    }
    let mut parent_limit = parent.gas_limit;
    if spec.is_london(header.number) && !spec.is_london(parent.number) {
        parent_limit = parent_limit.saturating_mul(2);
    }
    if limit.abs_diff(parent_limit) >= parent_limit / GAS_LIMIT_BOUND_DIVISOR {
        return Err(Error::GasLimitBound {
            parent: parent_limit,
            got: limit,
        });
    }
    Ok(())
}

/// The EIP-1559 base fee: 1 gwei at the fork block, then the parent's updated by its gas use
/// (elasticity 2, change denominator 8).
fn base_fee(spec: &Spec, parent: &Header, header: &Header) -> Result<(), Error> {
    let got = header.base_fee_per_gas;
    let expected = if !spec.is_london(header.number) {
        None
    } else if !spec.is_london(parent.number) {
        Some(INITIAL_BASE_FEE)
    } else {
        match parent.base_fee_per_gas {
            // Guards the unchecked arithmetic of the EIP-1559 update.
            Some(fee) if fee <= MAX_SANE_BASE_FEE && parent.gas_limit >= MIN_GAS_LIMIT => {
                parent.next_block_base_fee(BaseFeeParams::ethereum())
            }
            _ => {
                return Err(Error::BaseFee {
                    expected: None,
                    got,
                });
            }
        }
    };
    if got != expected {
        return Err(Error::BaseFee { expected, got });
    }
    Ok(())
}

/// EIP-4844 blob gas: both fields from Cancun, blob gas used a whole number of blobs up to
/// the fork's maximum, excess blob gas computed from the parent with the header's fork params.
fn blob_gas(spec: &Spec, parent: &Header, header: &Header) -> Result<(), Error> {
    let params = spec.blob_params(header.timestamp);
    presence("blobGasUsed", &header.blob_gas_used, params.is_some())?;
    presence("excessBlobGas", &header.excess_blob_gas, params.is_some())?;
    let (Some(params), Some(used), Some(excess)) =
        (params, header.blob_gas_used, header.excess_blob_gas)
    else {
        return Ok(());
    };
    if used > params.max_blob_gas_per_block() || used % DATA_GAS_PER_BLOB != 0 {
        return Err(Error::BlobGasUsed(used));
    }
    // Before Cancun the parent counts as zero excess and zero used.
    let parent_excess = parent.excess_blob_gas.unwrap_or(0);
    let parent_used = parent.blob_gas_used.unwrap_or(0);
    let parent_base_fee = parent.base_fee_per_gas.unwrap_or(0);
    // The parent was validated, but guard the unchecked sum inside the calculation anyway.
    if parent_excess
        .checked_add(parent_used)
        .is_none_or(|sum| sum > u64::MAX / 2)
    {
        return Err(Error::ExcessBlobGas {
            expected: 0,
            got: excess,
        });
    }
    let expected =
        params.next_block_excess_blob_gas_osaka(parent_excess, parent_used, parent_base_fee);
    if excess != expected {
        return Err(Error::ExcessBlobGas {
            expected,
            got: excess,
        });
    }
    Ok(())
}

/// After the merge (EIP-3675): difficulty 0, nonce 0 and no ommers. A block is past the merge
/// when its parent is (difficulty 0 after genesis), or when Shanghai is active.
fn proof_of_stake(spec: &Spec, parent: &Header, header: &Header) -> Result<(), Error> {
    let parent_pos = parent.difficulty.is_zero() && parent.number > 0;
    let pos = parent_pos || spec.is_shanghai(header.timestamp) || header.difficulty.is_zero();
    if !pos {
        return Ok(());
    }
    if !header.difficulty.is_zero() {
        return Err(Error::ProofOfStake("non-zero difficulty"));
    }
    if header.nonce != B64::ZERO {
        return Err(Error::ProofOfStake("non-zero nonce"));
    }
    if header.ommers_hash != EMPTY_OMMER_ROOT_HASH {
        return Err(Error::ProofOfStake("ommers"));
    }
    Ok(())
}

/// Validates that `body` belongs to `header`: transactions root, ommers hash, withdrawals root
/// and the blob gas of its blob transactions.
pub fn body(header: &Header, body: &Body) -> Result<(), Error> {
    let tx_root = proofs::calculate_transaction_root(&body.transactions);
    if tx_root != header.transactions_root {
        return Err(Error::TransactionsRoot {
            expected: header.transactions_root,
            got: tx_root,
        });
    }
    let ommers = proofs::calculate_ommers_root(&body.ommers);
    if ommers != header.ommers_hash {
        return Err(Error::OmmersHash {
            expected: header.ommers_hash,
            got: ommers,
        });
    }
    let withdrawals = body.calculate_withdrawals_root();
    if withdrawals != header.withdrawals_root {
        return Err(Error::WithdrawalsRoot {
            expected: header.withdrawals_root,
            got: withdrawals,
        });
    }
    if let Some(expected) = header.blob_gas_used {
        let blobs: u64 = body
            .transactions
            .iter()
            .filter_map(|tx| tx.blob_versioned_hashes())
            .map(|hashes| hashes.len() as u64)
            .fold(0u64, u64::saturating_add);
        let got = blobs.saturating_mul(DATA_GAS_PER_BLOB);
        if got != expected {
            return Err(Error::BodyBlobGas { expected, got });
        }
    }
    Ok(())
}
