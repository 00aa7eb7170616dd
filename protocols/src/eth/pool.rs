//! The transaction pool: transactions waiting for a block, kept to serve
//! `GetPooledTransactions` and to pass on to peers.
//!
//! We do not execute transactions and keep no state, so validation is what can be checked
//! from the transaction alone ([`Pool::add`]): it decodes, its signature is canonical
//! (EIP-2 low `s`) and yields a sender, its chain id is ours, its network encoding is at
//! most [`MAX_TX_SIZE`] (blob data aside), its gas limit covers the intrinsic gas and stays
//! under [`MAX_TX_GAS`], its fees are consistent, its cost does not overflow, and a blob
//! transaction carries a sidecar whose commitments match its versioned hashes (the KZG
//! proofs are not verified: that needs the trusted setup). Balances and account nonces are
//! not checked: a pooled transaction may never be includable. What bounds the harm is the
//! pool's size: [`Config::max_count`] transactions and [`Config::max_bytes`] bytes, the
//! lowest-paying evicted first, at most [`Config::max_per_sender`] per sender (more for an
//! unbroken nonce run, [`Config::max_run_per_sender`]), and a
//! replacement (same sender and nonce) must pay [`PRICE_BUMP_PERCENT`] more.
//!
//! The pool is a plain data structure behind a mutex; the `eth` handlers feed it from
//! their signature workers ([`super::verify`], off the runtime and within each peer's
//! budget) and propagate what it accepts.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use crate::eth::messages::PooledTransaction;
use alloy_consensus::{Transaction, TxEnvelope};
use alloy_eips::eip2718::{Encodable2718, Typed2718};
use alloy_primitives::{Address, B256, Bytes, U256};

/// Largest network encoding of a transaction, blob data aside (go-ethereum `txMaxSize`,
/// 4 slots of 32 KiB; the "size ≤ 128 KiB").
pub const MAX_TX_SIZE: usize = 128 * 1024;
/// Highest gas limit a transaction may have (EIP-7825: 2^24).
pub const MAX_TX_GAS: u64 = 1 << 24;
/// Most blobs in one transaction (EIP-7594's per-transaction cap).
pub const MAX_BLOBS_PER_TX: usize = 6;
/// A replacement must raise the fee cap and tip by this much (go-ethereum `PriceBump`).
pub const PRICE_BUMP_PERCENT: u128 = 10;

/// Where a transaction came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A peer: unprotected (pre-EIP-155) legacy transactions are accepted, as go-ethereum does.
    Remote,
    /// The local RPC (`eth_sendRawTransaction`): unprotected transactions are refused, as
    /// go-ethereum does by default, since they can be replayed on any chain.
    Local,
}

/// Pool limits and the chain's facts.
#[derive(Clone, Debug)]
pub struct Config {
    /// The chain id transactions must carry (`None`: not checked).
    pub chain_id: Option<u64>,
    /// Most transactions held. Default 5120 (go-ethereum's 4096 pending + 1024 queued).
    pub max_count: usize,
    /// Most bytes of network encoding held. Default 64 MiB: bounds memory whatever the mix.
    pub max_bytes: usize,
    /// Most transactions per sender in any nonce order. Default 64 (go-ethereum
    /// `AccountQueue`, its cap on a sender's non-executable transactions).
    pub max_per_sender: usize,
    /// Most transactions per sender when they form one unbroken nonce run, each extending
    /// it. Default 4096 (go-ethereum's `GlobalSlots`: it caps a sender's executable
    /// transactions only by the pool's pending size). Stateless, we cannot tell which
    /// transactions are executable; a run is what an honest sender's burst looks like (the
    /// conformance suite's `LargeTxRequest` sends 2,000). What bounds an attacker is the
    /// pool's size and eviction, not this: senders cost nothing to make.
    pub max_run_per_sender: usize,
    /// Lowest tip (legacy: gas price) accepted, in wei. Default 1 (go-ethereum `PriceLimit`).
    pub min_tip: u128,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            chain_id: None,
            max_count: 5120,
            max_bytes: 64 * 1024 * 1024,
            max_per_sender: 64,
            max_run_per_sender: 4096,
            min_tip: 1,
        }
    }
}

/// Why a transaction was not pooled. None of these disconnects the sender by itself
/// (a peer may relay a transaction that became invalid); the `eth` handler decides.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Already pooled.
    #[error("already known")]
    Known,
    /// The signature is not canonical or recovers no key.
    #[error("invalid signature")]
    Signature,
    /// Another chain's transaction.
    #[error("chain id {got}, ours is {ours}")]
    ChainId {
        /// Ours.
        ours: u64,
        /// The transaction's.
        got: u64,
    },
    /// A pre-EIP-155 transaction from the local RPC.
    #[error("unprotected transactions are not accepted over RPC")]
    Unprotected,
    /// Over [`MAX_TX_SIZE`].
    #[error("transaction of {0} bytes is too large")]
    TooLarge(usize),
    /// Gas limit under the intrinsic gas.
    #[error("intrinsic gas too low: {limit} < {intrinsic}")]
    IntrinsicGas {
        /// The limit.
        limit: u64,
        /// What it must at least be.
        intrinsic: u64,
    },
    /// Gas limit over [`MAX_TX_GAS`].
    #[error("gas limit {0} is over the cap")]
    GasCap(u64),
    /// The tip is over the fee cap.
    #[error("max priority fee per gas higher than max fee per gas")]
    TipAboveFeeCap,
    /// The tip is under [`Config::min_tip`].
    #[error("transaction underpriced")]
    Underpriced,
    /// gas * fee + value overflows 256 bits.
    #[error("cost overflows")]
    Overflow,
    /// The nonce is at the maximum (EIP-2681).
    #[error("nonce too high")]
    NonceMax,
    /// A blob transaction without blobs, with too many, or whose sidecar does not match.
    #[error("invalid blob transaction: {0}")]
    Blob(&'static str),
    /// A blob transaction without its sidecar (e.g. broadcast in `Transactions`).
    #[error("blob transaction without sidecar")]
    NoSidecar,
    /// A transaction with the same sender and nonce is pooled and this one does not pay
    /// [`PRICE_BUMP_PERCENT`] more.
    #[error("replacement transaction underpriced")]
    ReplacementUnderpriced,
    /// The sender has [`Config::max_per_sender`] transactions pooled.
    #[error("sender has too many pooled transactions")]
    SenderLimit,
    /// The pool is full of transactions paying at least as much.
    #[error("pool full")]
    Full,
    /// Refused a moment ago (one of the errors above); not checked again while it is
    /// among the last [`REJECTED_MEMORY`] refused, so a repeated transaction costs no
    /// signature recovery.
    #[error("recently rejected")]
    Rejected,
}

/// Refused transaction hashes remembered (go-ethereum keeps a similar cache of underpriced
/// ones).
pub const REJECTED_MEMORY: usize = 4096;

/// A pooled transaction, with what the pool and the announcements need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pooled {
    /// Transaction hash.
    pub hash: B256,
    /// Recovered sender.
    pub sender: Address,
    /// Its nonce.
    pub nonce: u64,
    /// EIP-2718 type byte (0 for legacy).
    pub kind: u8,
    /// EIP-2718 encoded size (with the sidecar for blob transactions), as announced in
    /// NewPooledTransactionHashes (EIP-5793).
    pub size: usize,
    /// The network encoding (with the sidecar), as sent in Transactions / PooledTransactions.
    pub encoded: Bytes,
    /// The tip it pays at most (legacy: gas price): what eviction orders by.
    pub tip: u128,
    /// Its fee cap (legacy: gas price).
    pub fee_cap: u128,
    /// A blob transaction: announced, never broadcast in full (EIP-4844).
    pub blob: bool,
}

impl Pooled {
    /// The full transaction, decoded from [`Pooled::encoded`] (for subscribers that want
    /// more than the summary; the pool keeps only the encoding).
    pub fn transaction(&self) -> Result<PooledTransaction, alloy_rlp::Error> {
        alloy_rlp::Decodable::decode(&mut self.encoded.as_ref())
    }
}

/// Counts the pool reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Transactions held.
    pub count: usize,
    /// Bytes of network encoding held.
    pub bytes: usize,
}

/// The pool. Cheap operations under one mutex; share it in an `Arc`.
pub struct Pool {
    config: Config,
    inner: Mutex<Inner>,
    /// Every transaction pooled, for [`Pool::subscribe`].
    added: tokio::sync::broadcast::Sender<Pooled>,
}

/// Pooled transactions a [`Pool::subscribe`]r may fall behind by before it loses the
/// oldest (and is told how many). Each holds a reference to the transaction's encoding
/// (at most [`MAX_TX_SIZE`] plus a blob sidecar), shared with the pool while pooled: 4096
/// covers more than a second of mainnet's busiest gossip.
pub const SUBSCRIBER_BACKLOG: usize = 4096;

#[derive(Default)]
struct Inner {
    /// Recently refused hashes, oldest first.
    rejected: std::collections::VecDeque<B256>,
    rejected_set: std::collections::HashSet<B256>,
    by_hash: HashMap<B256, Pooled>,
    by_sender: HashMap<Address, BTreeMap<u64, B256>>,
    /// Eviction order: lowest tip first, then oldest.
    by_tip: BTreeSet<(u128, u64, B256)>,
    /// Insertion sequence per hash (the middle of the `by_tip` key).
    seq: HashMap<B256, u64>,
    next_seq: u64,
    bytes: usize,
}

impl Inner {
    fn remove(&mut self, hash: &B256) -> Option<Pooled> {
        let tx = self.by_hash.remove(hash)?;
        let seq = self.seq.remove(hash).unwrap_or_default();
        self.by_tip.remove(&(tx.tip, seq, *hash));
        if let Some(nonces) = self.by_sender.get_mut(&tx.sender) {
            nonces.remove(&tx.nonce);
            if nonces.is_empty() {
                self.by_sender.remove(&tx.sender);
            }
        }
        self.bytes -= tx.encoded.len();
        Some(tx)
    }

    fn reject(&mut self, hash: B256) {
        if self.rejected_set.insert(hash) {
            self.rejected.push_back(hash);
            if self.rejected.len() > REJECTED_MEMORY
                && let Some(old) = self.rejected.pop_front()
            {
                self.rejected_set.remove(&old);
            }
        }
    }

    fn insert(&mut self, tx: Pooled) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.by_tip.insert((tx.tip, seq, tx.hash));
        self.seq.insert(tx.hash, seq);
        self.by_sender
            .entry(tx.sender)
            .or_default()
            .insert(tx.nonce, tx.hash);
        self.bytes += tx.encoded.len();
        self.by_hash.insert(tx.hash, tx);
    }
}

impl Pool {
    /// An empty pool.
    pub fn new(config: Config) -> Self {
        Self {
            config,
            inner: Mutex::new(Inner::default()),
            added: tokio::sync::broadcast::channel(SUBSCRIBER_BACKLOG).0,
        }
    }

    /// Every transaction pooled from now on (from peers and local submissions), in the
    /// order pooled. A subscriber that falls [`SUBSCRIBER_BACKLOG`] behind loses the
    /// oldest and gets `RecvError::Lagged(n)` first: it never slows the pool. The full
    /// transaction is [`Pooled::encoded`] (decode it with [`Pooled::transaction`]).
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Pooled> {
        self.added.subscribe()
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Every mutation keeps the maps consistent before it can panic (none does), so a
        // poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The limits in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Whether `hash` is pooled.
    pub fn contains(&self, hash: &B256) -> bool {
        self.inner().by_hash.contains_key(hash)
    }

    /// Whether `hash` is pooled or was refused a moment ago (see [`Error::Rejected`]):
    /// offering it again costs no signature recovery.
    pub fn seen(&self, hash: &B256) -> bool {
        let inner = self.inner();
        inner.by_hash.contains_key(hash) || inner.rejected_set.contains(hash)
    }

    /// A pooled transaction.
    pub fn get(&self, hash: &B256) -> Option<Pooled> {
        self.inner().by_hash.get(hash).cloned()
    }

    /// Count and bytes held.
    pub fn stats(&self) -> Stats {
        let inner = self.inner();
        Stats {
            count: inner.by_hash.len(),
            bytes: inner.bytes,
        }
    }

    /// The hashes of every pooled transaction (unordered).
    pub fn hashes(&self) -> Vec<B256> {
        self.inner().by_hash.keys().copied().collect()
    }

    /// Up to `limit` pooled transactions, each sender's in nonce order: what a newly joined
    /// peer is told about (go-ethereum's `syncTransactions`). Cheap: the encodings are
    /// shared, not copied.
    pub fn snapshot(&self, limit: usize) -> Vec<Pooled> {
        let inner = self.inner();
        inner
            .by_sender
            .values()
            .flat_map(|nonces| nonces.values())
            .filter_map(|h| inner.by_hash.get(h).cloned())
            .take(limit)
            .collect()
    }

    /// Validates a transaction broadcast in `Transactions` (which cannot carry blob
    /// sidecars) and pools it.
    pub fn add_envelope(&self, tx: TxEnvelope, origin: Origin) -> Result<Pooled, Error> {
        let tx = tx.try_into_pooled().map_err(|_| Error::NoSidecar)?;
        self.add(tx, origin)
    }

    /// Validates `tx` and pools it, evicting lower-paying transactions if the pool is
    /// full. Returns what was pooled.
    pub fn add(&self, tx: PooledTransaction, origin: Origin) -> Result<Pooled, Error> {
        let hash = *tx.hash();
        {
            let inner = self.inner();
            if inner.by_hash.contains_key(&hash) {
                return Err(Error::Known);
            }
            if inner.rejected_set.contains(&hash) {
                return Err(Error::Rejected);
            }
        }
        let result = self.add_new(hash, &tx, origin);
        // Not remembered: duplicates, and what depends on who submits it.
        if let Err(e) = &result
            && !matches!(e, Error::Known | Error::Unprotected)
        {
            self.inner().reject(hash);
        }
        result
    }

    /// Whether a sender holding `nonces` may pool one more, at `nonce`. Up to
    /// [`Config::max_per_sender`] in any order; beyond that only a transaction that
    /// extends an unbroken run (its nonces contiguous, this one next), up to
    /// [`Config::max_run_per_sender`]. Without account state this is how we tell a sender's
    /// likely-executable sequence (what go-ethereum keeps without a per-account cap) from
    /// scattered future nonces (what it caps at 64, `AccountQueue`).
    fn sender_has_room(&self, nonces: &BTreeMap<u64, B256>, nonce: u64) -> bool {
        let held = nonces.len();
        if held < self.config.max_per_sender {
            return true;
        }
        let (Some((&first, _)), Some((&last, _))) =
            (nonces.first_key_value(), nonces.last_key_value())
        else {
            return true;
        };
        let unbroken = last - first + 1 == held as u64;
        unbroken && last.checked_add(1) == Some(nonce) && held < self.config.max_run_per_sender
    }

    fn add_new(&self, hash: B256, tx: &PooledTransaction, origin: Origin) -> Result<Pooled, Error> {
        // The expensive checks (signature recovery) run outside the lock.
        let pooled = validate(&self.config, tx, origin)?;
        let mut inner = self.inner();
        if inner.by_hash.contains_key(&hash) {
            return Err(Error::Known);
        }
        // Same sender and nonce: a replacement, if it pays enough more.
        let replaced = inner
            .by_sender
            .get(&pooled.sender)
            .and_then(|n| n.get(&pooled.nonce))
            .copied();
        if let Some(old) = replaced.and_then(|h| inner.by_hash.get(&h)) {
            let bump = |x: u128| x.saturating_add(x.saturating_mul(PRICE_BUMP_PERCENT) / 100);
            if pooled.tip < bump(old.tip) || pooled.fee_cap < bump(old.fee_cap) {
                return Err(Error::ReplacementUnderpriced);
            }
        } else if inner
            .by_sender
            .get(&pooled.sender)
            .is_some_and(|n| !self.sender_has_room(n, pooled.nonce))
        {
            return Err(Error::SenderLimit);
        }
        // Room: evict the lowest-paying while they pay less than this one.
        let freed = replaced
            .and_then(|h| inner.by_hash.get(&h))
            .map_or(0, |t| t.encoded.len());
        let mut victims = Vec::new();
        let (mut count, mut bytes) = (
            inner.by_hash.len() - usize::from(replaced.is_some()),
            inner.bytes - freed,
        );
        let mut lowest = inner.by_tip.iter();
        while count + 1 > self.config.max_count
            || bytes + pooled.encoded.len() > self.config.max_bytes
        {
            let Some(&(tip, _, victim)) = lowest.next() else {
                return Err(Error::Full);
            };
            if Some(victim) == replaced {
                continue;
            }
            if tip >= pooled.tip {
                return Err(Error::Full);
            }
            let len = inner.by_hash.get(&victim).map_or(0, |t| t.encoded.len());
            victims.push(victim);
            count -= 1;
            bytes -= len;
        }
        for v in victims.iter().chain(replaced.iter()) {
            inner.remove(v);
        }
        inner.insert(pooled.clone());
        drop(inner);
        // No subscriber is not an error.
        let _ = self.added.send(pooled.clone());
        Ok(pooled)
    }

    /// Drops the transactions of `hashes` (e.g. included in an imported block); returns
    /// how many were pooled.
    pub fn remove(&self, hashes: impl IntoIterator<Item = B256>) -> usize {
        let mut inner = self.inner();
        if inner.by_hash.is_empty() {
            return 0;
        }
        hashes
            .into_iter()
            .filter(|h| inner.remove(h).is_some())
            .count()
    }
}

/// The half order of secp256k1: signatures with a higher `s` are not canonical (EIP-2).
const SECP256K1N_HALF: U256 = U256::from_be_slice(&[
    0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0x5d, 0x57, 0x6e, 0x73, 0x57, 0xa4, 0x50, 0x1d, 0xdf, 0xe9, 0x2f, 0x46, 0x68, 0x1b, 0x20, 0xa0,
]);

/// Checks `tx` on its own (no state) and describes it for the pool.
pub fn validate(config: &Config, tx: &PooledTransaction, origin: Origin) -> Result<Pooled, Error> {
    let encoded_len = tx.encode_2718_len();
    let blob_bytes = match tx {
        PooledTransaction::Eip4844(signed) => {
            let sidecar = &signed.tx().sidecar;
            let hashes = &signed.tx().tx.blob_versioned_hashes;
            if hashes.is_empty() {
                return Err(Error::Blob("no blobs"));
            }
            if hashes.len() > MAX_BLOBS_PER_TX {
                return Err(Error::Blob("too many blobs"));
            }
            if sidecar.commitments().len() != hashes.len() {
                return Err(Error::Blob(
                    "commitment count differs from versioned hashes",
                ));
            }
            if !sidecar.versioned_hashes().eq(hashes.iter().copied()) {
                return Err(Error::Blob("commitments do not match versioned hashes"));
            }
            let blobs = match sidecar {
                alloy_eips::eip7594::BlobTransactionSidecarVariant::Eip4844(s) => {
                    if s.blobs.len() != hashes.len() || s.proofs.len() != hashes.len() {
                        return Err(Error::Blob("sidecar lengths differ"));
                    }
                    s.blobs.len()
                }
                alloy_eips::eip7594::BlobTransactionSidecarVariant::Eip7594(s) => {
                    if s.blobs.len() != hashes.len()
                        || s.cell_proofs.len()
                            != hashes.len() * alloy_eips::eip7594::CELLS_PER_EXT_BLOB
                    {
                        return Err(Error::Blob("sidecar lengths differ"));
                    }
                    s.blobs.len()
                }
            };
            // Blob contents and their commitments/proofs are bounded by the blob count.
            blobs * (alloy_eips::eip4844::BYTES_PER_BLOB + 48 * 130)
        }
        _ => 0,
    };
    if encoded_len.saturating_sub(blob_bytes) > MAX_TX_SIZE {
        return Err(Error::TooLarge(encoded_len));
    }
    match (tx.chain_id(), config.chain_id) {
        (Some(got), Some(ours)) if got != ours => return Err(Error::ChainId { ours, got }),
        (None, _) if origin == Origin::Local => return Err(Error::Unprotected),
        _ => {}
    }
    if tx.nonce() == u64::MAX {
        return Err(Error::NonceMax);
    }
    let gas = tx.gas_limit();
    if gas > MAX_TX_GAS {
        return Err(Error::GasCap(gas));
    }
    let intrinsic = intrinsic_gas(tx);
    if gas < intrinsic {
        return Err(Error::IntrinsicGas {
            limit: gas,
            intrinsic,
        });
    }
    let fee_cap = tx.max_fee_per_gas();
    let tip = tx.max_priority_fee_per_gas().unwrap_or(fee_cap);
    if tip > fee_cap {
        return Err(Error::TipAboveFeeCap);
    }
    if tip < config.min_tip {
        return Err(Error::Underpriced);
    }
    U256::from(fee_cap)
        .checked_mul(U256::from(gas))
        .and_then(|c| c.checked_add(tx.value()))
        .ok_or(Error::Overflow)?;
    let sender = recover(tx.signature(), tx.signature_hash()).ok_or(Error::Signature)?;
    let mut encoded = Vec::with_capacity(encoded_len + 8);
    alloy_rlp::Encodable::encode(tx, &mut encoded);
    Ok(Pooled {
        hash: *tx.hash(),
        sender,
        nonce: tx.nonce(),
        kind: tx.ty(),
        size: encoded_len,
        encoded: encoded.into(),
        tip,
        fee_cap,
        blob: blob_bytes > 0,
    })
}

/// The address that signed `hash`, if the signature is canonical (EIP-2: low `s`) and
/// recovers a key. Uses the secp256k1 C library, the fastest recovery measured here.
pub fn recover(sig: &alloy_primitives::Signature, hash: B256) -> Option<Address> {
    if sig.s() > SECP256K1N_HALF {
        return None;
    }
    // r || s, without slicing (no index to get wrong on network input).
    let (r, s) = (sig.r().to_be_bytes::<32>(), sig.s().to_be_bytes::<32>());
    let mut compact = [0u8; 64];
    for (d, b) in compact.iter_mut().zip(r.iter().chain(s.iter())) {
        *d = *b;
    }
    let id = secp256k1::ecdsa::RecoveryId::try_from(i32::from(sig.v())).ok()?;
    let sig = secp256k1::ecdsa::RecoverableSignature::from_compact(&compact, id).ok()?;
    let key = secp256k1::SECP256K1
        .recover_ecdsa(secp256k1::Message::from_digest(hash.0), &sig)
        .ok()?;
    // The address is the last 20 bytes of keccak256(x || y), the point without its
    // 0x04 prefix.
    let point = key.serialize_uncompressed();
    let (_, xy) = point.split_first()?;
    Some(Address::from_word(alloy_primitives::keccak256(xy)))
}

/// Intrinsic gas (Yellow Paper g0 with EIP-2028 calldata, EIP-2930 access lists, EIP-3860
/// initcode words and EIP-7702 authorizations). The EIP-7623 calldata floor is not
/// applied: it depends on the fork, which the pool does not know.
pub fn intrinsic_gas(tx: &PooledTransaction) -> u64 {
    let input = tx.input();
    let zeros = input.iter().filter(|&&b| b == 0).count() as u64;
    let nonzeros = input.len() as u64 - zeros;
    let mut gas: u64 = 21_000 + zeros * 4 + nonzeros * 16;
    if tx.kind().is_create() {
        gas += 32_000 + 2 * (input.len() as u64).div_ceil(32);
    }
    if let Some(list) = tx.access_list() {
        for item in list.iter() {
            gas += 2_400 + 1_900 * item.storage_keys.len() as u64;
        }
    }
    if let Some(auths) = tx.authorization_list() {
        gas += 25_000 * auths.len() as u64;
    }
    gas
}

#[cfg(test)]
#[path = "pool_tests.rs"]
mod tests;
