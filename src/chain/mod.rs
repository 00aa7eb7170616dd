//! The chain: genesis, network presets, header and body validation, and the block store.
//!
//! - [`Spec`]: a chain's identity and rules (network id, genesis header, fork schedule,
//!   bootnodes), from a [`presets`] name or a go-ethereum `genesis.json` ([`genesis`]);
//! - [`validate`]: header and body checks that need no transaction execution;
//! - [`Store`]: headers, bodies and the canonical chain in a redb database ([`store`]);
//! - [`Importer`]: the one way blocks from the network enter the store ([`importer`]);
//! - [`reader::BlockReader`]: blocks from an RLP block file.
//!
//! Fork ids for the `eth` handshake come from [`Spec::fork_filter`].

pub mod eth;
pub mod forks;
pub mod genesis;
pub mod importer;
pub mod presets;
pub mod reader;
pub mod store;
pub mod validate;

use std::path::Path;

use alloy_consensus::{Header, TxEnvelope};
use alloy_eips::eip7840::BlobParams;
use alloy_eips::eip7892::BlobScheduleBlobParams;
use alloy_genesis::{ChainConfig, Genesis};
use alloy_primitives::B256;
use protocols::eth::forkid::{Filter, ForkId};

pub use importer::Importer;
pub use store::Store;

/// A block with its transactions decoded (any EIP-2718 type).
pub type Block = alloy_consensus::Block<TxEnvelope>;
/// A block body: transactions, ommers and withdrawals.
pub type Body = alloy_consensus::BlockBody<TxEnvelope>;

/// Errors choosing a chain.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The name is no preset and no readable genesis file.
    #[error("unknown chain {0:?}: expected one of {names} or a genesis.json path", names = presets::NAMES.join(", "))]
    Unknown(String),
    /// The genesis file could not be loaded.
    #[error(transparent)]
    Genesis(#[from] genesis::Error),
}

/// A chain's identity and consensus rules.
#[derive(Clone, Debug)]
pub struct Spec {
    /// A short name (`mainnet`, `ethtest`, or the genesis file name).
    pub name: String,
    /// The devp2p network id announced in the `eth` Status message.
    pub network_id: u64,
    /// The fork schedule and chain id (go-ethereum `config` object).
    pub config: ChainConfig,
    /// The genesis header.
    pub genesis_header: Header,
    /// The genesis hash (the hash of `genesis_header`).
    pub genesis_hash: B256,
    /// Public bootstrap nodes as enode URLs (empty for private chains).
    pub bootnodes: Vec<String>,
    /// Whether this is a public network preset (mainnet, sepolia, holesky, hoodi): post-merge
    /// networks where blocks come from the consensus layer, so `eth` block gossip
    /// (NewBlock, NewBlockHashes) is refused as go-ethereum refuses it
    /// (`docs/fork-choice.md`).
    pub public: bool,
    /// Blocks every chain we accept must contain (`--required-blocks`, go-ethereum's
    /// `--eth.requiredblocks`): number → hash. The store refuses a block at such a height
    /// with another hash, and peers that disagree are dropped on connect.
    pub required_blocks: std::collections::BTreeMap<u64, B256>,
    /// Blob parameters per fork, from the config's `blobSchedule` over the defaults.
    blob_schedule: BlobScheduleBlobParams,
}

impl Spec {
    /// A chain from a genesis file's contents: the network id is the chain id, no bootnodes.
    pub fn from_genesis(name: impl Into<String>, genesis: &Genesis) -> Self {
        Self::with_header(
            name,
            genesis.config.chain_id,
            genesis.config.clone(),
            genesis::header(genesis),
            Vec::new(),
        )
    }

    /// A chain from its parts (the genesis hash is computed from the header).
    pub fn with_header(
        name: impl Into<String>,
        network_id: u64,
        config: ChainConfig,
        genesis_header: Header,
        bootnodes: Vec<String>,
    ) -> Self {
        let blob_schedule = config.blob_schedule_blob_params();
        Self {
            name: name.into(),
            network_id,
            genesis_hash: genesis_header.hash_slow(),
            config,
            genesis_header,
            bootnodes,
            public: false,
            required_blocks: Default::default(),
            blob_schedule,
        }
    }

    /// A preset by name ([`presets::NAMES`]), or else a go-ethereum genesis file at that path.
    pub fn load(name_or_path: &str) -> Result<Self, Error> {
        if let Some(spec) = presets::by_name(name_or_path)? {
            return Ok(spec);
        }
        let path = Path::new(name_or_path);
        if !path.is_file() {
            return Err(Error::Unknown(name_or_path.to_owned()));
        }
        let genesis = genesis::load(path)?;
        let name = path
            .file_stem()
            .map_or_else(|| "custom".into(), |s| s.to_string_lossy().into_owned());
        Ok(Self::from_genesis(name, &genesis))
    }

    /// The fork id filter of this chain (EIP-2124, EIP-6122).
    pub fn fork_filter(&self) -> Filter {
        Filter::new(
            self.genesis_hash,
            self.genesis_header.timestamp,
            forks::block_forks(&self.config),
            forks::time_forks(&self.config),
        )
    }

    /// The local fork id at a head.
    pub fn fork_id(&self, head_number: u64, head_time: u64) -> ForkId {
        self.fork_filter().fork_id(head_number, head_time)
    }

    /// Whether London (EIP-1559 base fee) is active at block `number`.
    pub fn is_london(&self, number: u64) -> bool {
        forks::active_block(self.config.london_block, number)
    }

    /// Whether Shanghai (EIP-4895 withdrawals) is active at `time`.
    pub fn is_shanghai(&self, time: u64) -> bool {
        forks::active_time(self.config.shanghai_time, time)
    }

    /// Whether Cancun (EIP-4844 blobs, EIP-4788 beacon root) is active at `time`.
    pub fn is_cancun(&self, time: u64) -> bool {
        forks::active_time(self.config.cancun_time, time)
    }

    /// Whether Prague (EIP-7685 requests) is active at `time`.
    pub fn is_prague(&self, time: u64) -> bool {
        forks::active_time(self.config.prague_time, time)
    }

    /// Whether Amsterdam (EIP-7928 block access lists) is active at `time`.
    pub fn is_amsterdam(&self, time: u64) -> bool {
        forks::active_time(self.config.amsterdam_time, time)
    }

    /// The blob parameters at `time`, `None` before Cancun.
    pub fn blob_params(&self, time: u64) -> Option<BlobParams> {
        forks::blob_params(&self.config, &self.blob_schedule, time)
    }
}
