//! `devp2p gen-chain`: writes a synthetic chain as an RLP block file (the format
//! `devp2p import` reads), for benchmarks and tests that need more blocks than the bundled
//! 600.
//!
//! The chain is valid under **our structural rules** ([`crate::chain::validate`]): parent
//! linkage, numbers, timestamps 12 s apart, gas limit bounds, gas used, the EIP-1559 base fee,
//! the EIP-4844 blob fields, each fork's header fields, the proof-of-stake constants and the
//! body roots. It is **not executable**: nothing is executed, so every block keeps its parent's
//! state root, the receipts root is the empty trie's and no sender holds any ether. (No
//! receipt list matches that root for a block with transactions, so a node holding such a
//! chain can never have its receipts: they stay "unavailable", which sync tolerates, see
//! [`crate::sync::receipts`].) The
//! transactions are real, though: signed (EIP-155 legacy before London, then a mix of legacy
//! and EIP-1559) by keys derived from the seed, with each sender's nonces increasing by one,
//! so bodies have a realistic size and shape. Gas used is the sum of the transactions'
//! intrinsic gas (21,000 plus calldata).
//!
//! The output is a function of the chain, the parent and [`Params`] only: the same seed gives
//! the same bytes.

use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use alloy_consensus::constants::{EMPTY_OMMER_ROOT_HASH, EMPTY_ROOT_HASH};
use alloy_consensus::{Header, SignableTransaction, TxEip1559, TxEnvelope, TxLegacy, proofs};
use alloy_eips::eip1559::{BaseFeeParams, INITIAL_BASE_FEE};
use alloy_eips::eip4895::Withdrawals;
use alloy_eips::eip7685::EMPTY_REQUESTS_HASH;
use alloy_primitives::{Address, B64, B256, Bytes, Signature, TxKind, U256, keccak256};
use alloy_rlp::Encodable;
use secp256k1::{Message, PublicKey, SECP256K1, SecretKey};

use super::import::{self, BlockReader};
use crate::chain::{self, Block, Body, Spec, presets, validate};

/// Seconds between blocks: the post-merge slot time.
pub const BLOCK_TIME: u64 = 12;
/// Gas of a plain transfer (Yellow Paper `G_transaction`).
pub const TX_GAS: u64 = 21_000;
/// Calldata gas per non-zero byte (EIP-2028) and per zero byte (Yellow Paper `G_txdatazero`).
const GAS_PER_NONZERO_BYTE: u64 = 16;
const GAS_PER_ZERO_BYTE: u64 = 4;
/// A chain whose gas limit is below this (mainnet's genesis has 5,000) is raised towards it as
/// fast as the `parent / 1024` rule allows, so blocks can hold transactions: mainnet's limit
/// for most of 2021–2024.
pub const RAISE_GAS_LIMIT_TO: u64 = 30_000_000;
/// Extra data of generated blocks (at most 32 bytes).
const EXTRA_DATA: &[u8] = b"devp2p gen-chain";
/// Priority fee of generated transactions: 1 gwei.
const TIP: u128 = 1_000_000_000;
/// ERC-20 `transfer(address,uint256)` selector: a third of the transactions carry such a
/// call's 68 bytes of calldata, as token transfers are a large share of mainnet transactions.
const TRANSFER_SELECTOR: [u8; 4] = [0xa9, 0x05, 0x9c, 0xbb];

/// Errors of `gen-chain`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The output file could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The chain could not be chosen.
    #[error(transparent)]
    Chain(#[from] chain::Error),
    /// The `--from` file could not be read.
    #[error(transparent)]
    Import(#[from] import::Error),
}

/// Arguments of `devp2p gen-chain`.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// The file to write (concatenated RLP blocks; replaced if it exists).
    pub file: PathBuf,
    /// The chain: a preset (ethtest, mainnet, sepolia, holesky, hoodi) or a genesis.json path.
    #[arg(long, value_name = "NAME|FILE", default_value = presets::DEFAULT)]
    pub chain: String,
    /// Blocks to generate.
    #[arg(long, default_value_t = 100_000)]
    pub blocks: u64,
    /// Transactions per block (fewer while the gas limit cannot hold them).
    #[arg(long, default_value_t = Params::default().txs_per_block)]
    pub txs_per_block: usize,
    /// Distinct sending accounts.
    #[arg(long, default_value_t = Params::default().senders)]
    pub senders: usize,
    /// Seed of the keys and of every random choice.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Start from the blocks of this RLP block file (copied to the output first) instead of
    /// the genesis. Use another seed than the one that generated it: nonces restart at 0.
    #[arg(long, value_name = "FILE")]
    pub from: Option<PathBuf>,
}

/// What to generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    /// Blocks to generate.
    pub blocks: u64,
    /// Transactions per block. Default 16: with the calldata mix, about 2 KB of body per
    /// block, the order of a quiet mainnet block's transactions.
    pub txs_per_block: usize,
    /// Distinct sending accounts. Default 256.
    pub senders: usize,
    /// Seed of the keys and of every random choice. Default 1.
    pub seed: u64,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            blocks: 100_000,
            txs_per_block: 16,
            senders: 256,
            seed: 1,
        }
    }
}

/// What a generation wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    /// Blocks written (including those copied from a `--from` file).
    pub blocks: u64,
    /// Transactions in the blocks written.
    pub txs: u64,
    /// Bytes written.
    pub bytes: u64,
    /// The last block's number.
    pub head_number: u64,
    /// The last block's hash.
    pub head_hash: B256,
    /// Time taken.
    pub elapsed: Duration,
}

/// splitmix64: a tiny deterministic generator, so the output depends on the seed alone
/// (and not on a `rand` version's algorithm).
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value below `n` (`n > 0`); the modulo bias is irrelevant here.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        for chunk in out.chunks_mut(8) {
            let word = self.next().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
        out
    }
}

/// A sending account.
struct Sender {
    key: SecretKey,
    nonce: u64,
}

/// The address of a secret key: the last 20 bytes of the Keccak of the public key.
pub fn address(key: &SecretKey) -> Address {
    let public = PublicKey::from_secret_key_global(key).serialize_uncompressed();
    Address::from_slice(&keccak256(&public[1..])[12..])
}

/// The `index`th sender key of `seed`: Keccak-256 of a label, the seed and the index, retried
/// with a counter in the (astronomically unlikely) case the hash is not a valid key.
pub fn sender_key(seed: u64, index: u64) -> SecretKey {
    (0u64..)
        .find_map(|attempt| {
            let mut input = b"devp2p gen-chain key".to_vec();
            input.extend_from_slice(&seed.to_be_bytes());
            input.extend_from_slice(&index.to_be_bytes());
            input.extend_from_slice(&attempt.to_be_bytes());
            SecretKey::from_byte_array(keccak256(&input).0).ok()
        })
        // ok: `(0u64..)` is unbounded and a Keccak output is a valid key with probability
        // 1 - 2^-128 per attempt; the iterator only ends after 2^64 failures.
        .unwrap_or_else(|| unreachable!("an unbounded search finds a key"))
}

/// Makes blocks on top of a parent, one at a time ([`Iterator`] of [`Block`]s, `blocks` long).
pub struct Generator {
    spec: Spec,
    params: Params,
    parent: Header,
    parent_hash: B256,
    senders: Vec<Sender>,
    rng: SplitMix,
    made: u64,
}

impl Generator {
    /// A generator of `params.blocks` blocks on top of `parent` under `spec`'s rules.
    pub fn new(spec: Spec, parent: Header, params: Params) -> Self {
        let senders = (0..params.senders.max(1) as u64)
            .map(|i| Sender {
                key: sender_key(params.seed, i),
                nonce: 0,
            })
            .collect();
        Self {
            parent_hash: parent.hash_slow(),
            rng: SplitMix(params.seed ^ 0x6765_6e2d_6368_6169),
            spec,
            params,
            parent,
            senders,
            made: 0,
        }
    }

    /// The gas limit of the next block: the parent's (doubled at the London fork, as the
    /// bound is), raised towards [`RAISE_GAS_LIMIT_TO`] by the largest step the bound allows.
    fn gas_limit(&self, number: u64) -> u64 {
        let mut parent_limit = self.parent.gas_limit;
        if self.spec.is_london(number) && !self.spec.is_london(self.parent.number) {
            parent_limit = parent_limit.saturating_mul(2);
        }
        let step = (parent_limit / validate::GAS_LIMIT_BOUND_DIVISOR).saturating_sub(1);
        let limit = if parent_limit < RAISE_GAS_LIMIT_TO {
            parent_limit.saturating_add(step).min(RAISE_GAS_LIMIT_TO)
        } else {
            parent_limit
        };
        limit.clamp(validate::MIN_GAS_LIMIT, validate::MAX_GAS_LIMIT)
    }

    /// The base fee of the next block, computed as [`validate`] checks it.
    fn base_fee(&self, number: u64) -> Option<u64> {
        if !self.spec.is_london(number) {
            None
        } else if !self.spec.is_london(self.parent.number) {
            Some(INITIAL_BASE_FEE)
        } else {
            self.parent.next_block_base_fee(BaseFeeParams::ethereum())
        }
    }

    /// One signed transaction from a random sender, and its intrinsic gas.
    fn transaction(&mut self, base_fee: Option<u64>) -> (TxEnvelope, u64) {
        let chain_id = self.spec.config.chain_id;
        let to = Address::from(self.rng.bytes::<20>());
        let value = U256::from(self.rng.below(1_000_000_000_000_000_000));
        let input = if self.rng.below(3) == 0 {
            let mut data = TRANSFER_SELECTOR.to_vec();
            data.extend_from_slice(&[0u8; 12]);
            data.extend_from_slice(&self.rng.bytes::<20>());
            data.extend_from_slice(&[0u8; 24]);
            data.extend_from_slice(&self.rng.bytes::<8>());
            Bytes::from(data)
        } else {
            Bytes::new()
        };
        let calldata_gas: u64 = input
            .iter()
            .map(|b| {
                if *b == 0 {
                    GAS_PER_ZERO_BYTE
                } else {
                    GAS_PER_NONZERO_BYTE
                }
            })
            .sum();
        let gas = TX_GAS + calldata_gas;
        // Token transfers get a gas limit covering their execution, as a wallet would set.
        let gas_limit = if input.is_empty() { TX_GAS } else { 65_000 };
        let who = self.rng.below(self.senders.len() as u64) as usize;
        let legacy = base_fee.is_none() || self.rng.below(4) == 0;
        let base = u128::from(base_fee.unwrap_or(1_000_000_000));
        let sender = &mut self.senders[who];
        let nonce = sender.nonce;
        sender.nonce += 1;
        let tx = if legacy {
            let tx = TxLegacy {
                chain_id: Some(chain_id),
                nonce,
                gas_price: base + TIP,
                gas_limit,
                to: TxKind::Call(to),
                value,
                input,
            };
            let sig = sign(&sender.key, tx.signature_hash());
            TxEnvelope::from(tx.into_signed(sig))
        } else {
            let tx = TxEip1559 {
                chain_id,
                nonce,
                gas_limit,
                max_fee_per_gas: 2 * base + TIP,
                max_priority_fee_per_gas: TIP,
                to: TxKind::Call(to),
                value,
                access_list: Default::default(),
                input,
            };
            let sig = sign(&sender.key, tx.signature_hash());
            TxEnvelope::from(tx.into_signed(sig))
        };
        (tx, gas)
    }

    /// The next block.
    pub fn next_block(&mut self) -> Block {
        let number = self.parent.number + 1;
        let timestamp = self.parent.timestamp + BLOCK_TIME;
        let gas_limit = self.gas_limit(number);
        let base_fee = self.base_fee(number);
        let mut transactions = Vec::with_capacity(self.params.txs_per_block);
        let mut gas_used = 0u64;
        for _ in 0..self.params.txs_per_block {
            // A token transfer's intrinsic gas is below 23,000: stop while one still fits.
            if gas_used + 2 * TX_GAS > gas_limit {
                break;
            }
            let (tx, gas) = self.transaction(base_fee);
            gas_used += gas;
            transactions.push(tx);
        }
        let shanghai = self.spec.is_shanghai(timestamp);
        let blob_params = self.spec.blob_params(timestamp);
        let body = Body {
            transactions,
            ommers: Vec::new(),
            withdrawals: shanghai.then(Withdrawals::default),
        };
        let excess_blob_gas = blob_params.map(|params| {
            params.next_block_excess_blob_gas_osaka(
                self.parent.excess_blob_gas.unwrap_or(0),
                self.parent.blob_gas_used.unwrap_or(0),
                self.parent.base_fee_per_gas.unwrap_or(0),
            )
        });
        let mut seeded = self.params.seed.to_be_bytes().to_vec();
        seeded.extend_from_slice(&number.to_be_bytes());
        let header = Header {
            parent_hash: self.parent_hash,
            ommers_hash: EMPTY_OMMER_ROOT_HASH,
            beneficiary: address(&self.senders[0].key),
            // Not executed: the state is the parent's.
            state_root: self.parent.state_root,
            transactions_root: proofs::calculate_transaction_root(&body.transactions),
            receipts_root: EMPTY_ROOT_HASH,
            logs_bloom: Default::default(),
            // Proof of stake (EIP-3675) from the first generated block on.
            difficulty: U256::ZERO,
            number,
            gas_limit,
            gas_used,
            timestamp,
            extra_data: Bytes::from_static(EXTRA_DATA),
            mix_hash: keccak256([b"randao".as_slice(), &seeded].concat()),
            nonce: B64::ZERO,
            base_fee_per_gas: base_fee,
            withdrawals_root: body.calculate_withdrawals_root(),
            blob_gas_used: blob_params.map(|_| 0),
            excess_blob_gas,
            parent_beacon_block_root: self
                .spec
                .is_cancun(timestamp)
                .then(|| keccak256([b"beacon".as_slice(), &seeded].concat())),
            requests_hash: self
                .spec
                .is_prague(timestamp)
                .then_some(EMPTY_REQUESTS_HASH),
            // Amsterdam (EIP-7928, EIP-7843) is scheduled on no chain we generate.
            block_access_list_hash: None,
            slot_number: None,
        };
        self.parent_hash = header.hash_slow();
        self.parent = header.clone();
        self.made += 1;
        body.into_block(header)
    }

    /// The hash of the last block made (or of the starting parent).
    pub fn head_hash(&self) -> B256 {
        self.parent_hash
    }
}

impl Iterator for Generator {
    type Item = Block;

    fn next(&mut self) -> Option<Block> {
        (self.made < self.params.blocks).then(|| self.next_block())
    }
}

/// Signs a transaction's signature hash.
fn sign(key: &SecretKey, hash: B256) -> Signature {
    let sig = SECP256K1.sign_ecdsa_recoverable(Message::from_digest(hash.0), key);
    let (recovery, bytes) = sig.serialize_compact();
    Signature::from_bytes_and_parity(&bytes, i32::from(recovery) == 1)
}

/// Writes `blocks` to `out` as concatenated RLP; the summary's elapsed time is zero (the
/// caller times what it wants).
pub fn write(
    blocks: impl Iterator<Item = Block>,
    out: &mut impl Write,
) -> std::io::Result<Summary> {
    let mut summary = Summary {
        blocks: 0,
        txs: 0,
        bytes: 0,
        head_number: 0,
        head_hash: B256::ZERO,
        elapsed: Duration::ZERO,
    };
    let mut buf = Vec::new();
    for block in blocks {
        buf.clear();
        block.encode(&mut buf);
        out.write_all(&buf)?;
        summary.blocks += 1;
        summary.txs += block.body.transactions.len() as u64;
        summary.bytes += buf.len() as u64;
        summary.head_number = block.header.number;
        summary.head_hash = block.header.hash_slow();
    }
    Ok(summary)
}

/// Generates `params.blocks` blocks of `spec`'s chain into the file at `path`: on top of the
/// genesis, or after the blocks of the RLP block file `from` (copied first).
pub fn generate_file(
    spec: &Spec,
    params: Params,
    from: Option<&Path>,
    path: &Path,
) -> Result<Summary, Error> {
    let start = Instant::now();
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let mut prefix = Vec::new();
    if let Some(from) = from {
        let file = std::fs::File::open(from).map_err(|source| Error::Io {
            path: from.to_owned(),
            source,
        })?;
        let mut reader = BlockReader::new(BufReader::with_capacity(1 << 20, file));
        while let Some(block) = reader.next_block().map_err(import::Error::from)? {
            prefix.push(block);
        }
    }
    let parent = prefix
        .last()
        .map_or_else(|| spec.genesis_header.clone(), |b| b.header.clone());
    let file = std::fs::File::create(path).map_err(io)?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let generator = Generator::new(spec.clone(), parent, params);
    let mut summary = write(prefix.into_iter().chain(generator), &mut out).map_err(io)?;
    out.flush().map_err(io)?;
    summary.elapsed = start.elapsed();
    Ok(summary)
}

/// Runs `devp2p gen-chain`.
pub fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let spec = Spec::load(&args.chain).map_err(Error::from)?;
    let params = Params {
        blocks: args.blocks,
        txs_per_block: args.txs_per_block,
        senders: args.senders,
        seed: args.seed,
    };
    let s = generate_file(&spec, params, args.from.as_deref(), &args.file)?;
    let secs = s.elapsed.as_secs_f64();
    eprintln!(
        "wrote {} blocks, {} txs, {} bytes to {} in {:.2}s ({:.0} blocks/s); head {} {}",
        s.blocks,
        s.txs,
        s.bytes,
        args.file.display(),
        secs,
        s.blocks as f64 / secs.max(1e-9),
        s.head_number,
        s.head_hash
    );
    Ok(())
}
