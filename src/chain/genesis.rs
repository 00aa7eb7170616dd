//! Genesis blocks from go-ethereum `genesis.json` files.
//!
//! The header follows go-ethereum's `Genesis.ToBlock`: the state root is the Merkle-Patricia
//! root of the `alloc` accounts (balances, nonces, code hashes and storage roots), and the
//! fork-dependent fields appear when their fork is active at genesis: the base fee from London
//! (EIP-1559), the withdrawals root from Shanghai (EIP-4895), the blob gas fields and parent
//! beacon root from Cancun (EIP-4844, EIP-4788) and the requests hash from Prague (EIP-7685).

use std::path::{Path, PathBuf};

use alloy_consensus::Header;
use alloy_eips::eip1559::INITIAL_BASE_FEE;
use alloy_eips::eip7685::EMPTY_REQUESTS_HASH;
use alloy_genesis::Genesis;
use alloy_primitives::{B64, B256};
use alloy_trie::EMPTY_ROOT_HASH;

use super::forks;

/// go-ethereum's `params.GenesisGasLimit`, used when a genesis file gives a gas limit of 0.
pub const DEFAULT_GAS_LIMIT: u64 = 4_712_388;

/// Errors reading a genesis file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("genesis file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a valid go-ethereum genesis JSON document.
    #[error("genesis file {path} is not valid genesis JSON: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
}

/// Reads and parses a go-ethereum `genesis.json` file.
pub fn load(path: &Path) -> Result<Genesis, Error> {
    let text = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_slice(&text).map_err(|source| Error::Json {
        path: path.to_owned(),
        source,
    })
}

/// The state root of a genesis allocation: the Merkle-Patricia root over
/// `keccak(address) -> rlp([nonce, balance, storage_root, code_hash])`.
pub fn state_root(genesis: &Genesis) -> B256 {
    alloy_trie::root::state_root_ref_unhashed(&genesis.alloc)
}

/// The genesis header, with the state root computed from `alloc`.
pub fn header(genesis: &Genesis) -> Header {
    header_with_state_root(genesis, state_root(genesis))
}

/// The genesis header with a known state root (for presets whose allocation is not bundled).
pub fn header_with_state_root(genesis: &Genesis, state_root: B256) -> Header {
    let config = &genesis.config;
    let number = genesis.number.unwrap_or(0);
    let time = genesis.timestamp;
    let london = forks::active_block(config.london_block, number);
    let cancun = forks::active_time(config.cancun_time, time);
    let base_fee = london.then(|| {
        genesis
            .base_fee_per_gas
            .and_then(|fee| u64::try_from(fee).ok())
            .unwrap_or(INITIAL_BASE_FEE)
    });
    Header {
        parent_hash: genesis.parent_hash.unwrap_or_default(),
        beneficiary: genesis.coinbase,
        state_root,
        difficulty: genesis.difficulty,
        number,
        gas_limit: if genesis.gas_limit == 0 {
            DEFAULT_GAS_LIMIT
        } else {
            genesis.gas_limit
        },
        timestamp: time,
        extra_data: genesis.extra_data.clone(),
        mix_hash: genesis.mix_hash,
        nonce: B64::from(genesis.nonce),
        base_fee_per_gas: base_fee,
        withdrawals_root: forks::active_time(config.shanghai_time, time).then_some(EMPTY_ROOT_HASH),
        blob_gas_used: cancun.then(|| genesis.blob_gas_used.unwrap_or(0)),
        excess_blob_gas: cancun.then(|| genesis.excess_blob_gas.unwrap_or(0)),
        parent_beacon_block_root: cancun.then_some(B256::ZERO),
        requests_hash: forks::active_time(config.prague_time, time).then_some(EMPTY_REQUESTS_HASH),
        ..Header::default()
    }
}
