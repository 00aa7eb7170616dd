//! The block store: headers, bodies, total difficulty and the canonical chain in redb.
//!
//! Every write is one redb transaction that also moves the head, so a process killed at any
//! point (even `kill -9`) reopens at the head of the last committed batch with every canonical
//! block's header and body present. The database remembers its genesis hash; opening it with a
//! different chain is an error.
//!
//! Fork choice is "highest number wins": a valid block that is higher than the head becomes
//! the head, reorganising the canonical index back to the common ancestor. Post-merge that is
//! what importing a file or following a single peer needs; the consensus client's fork choice
//! is not modelled.
//!
//! Acceptance rules bound what anyone can make us store (`docs/fork-choice.md`), for every
//! path that writes (sync, propagation, import): a block may fork off the canonical chain at
//! most [`MAX_REORG_DEPTH`] blocks below the head; blocks off the canonical chain ("side
//! blocks") take at most [`MAX_SIDE_BYTES`] and are deleted once they fall out of the reorg
//! window; a timestamp more than [`MAX_FUTURE_SECS`] ahead of our clock is refused; and a
//! block contradicting [`Spec::required_blocks`] is refused.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use alloy_consensus::Header;
use alloy_primitives::{B256, U256};
use alloy_rlp::{Decodable, Encodable};
use redb::{Database, ReadableDatabase, ReadableTable, Table, TableDefinition};

use super::{Block, Body, Spec, validate};

mod receipts;
mod tables;
use receipts::RECEIPTS;
pub use receipts::ReceiptsError;
use tables::{Tables, side_key};

/// File name of the database inside the data directory.
pub const FILE_NAME: &str = "chain.redb";
/// How far below our head a block may fork off the canonical chain. The beacon chain
/// finalises after two epochs (64 slots, so at most 64 blocks) when healthy: a deeper reorg
/// of a post-merge chain means the peer is on another fork. Twice that for slack. Nothing
/// executes here and no consensus client bounds the fork choice, so this bound is ours.
pub const MAX_REORG_DEPTH: u64 = 128;
/// Bytes of side blocks (stored, not canonical) kept at most. An honest network makes a
/// few one- or two-block forks per day; 128 MiB holds a full reorg window of 1 MiB blocks.
pub const MAX_SIDE_BYTES: u64 = 128 << 20;
/// How far ahead of our clock a block's timestamp may be (go-ethereum's
/// `allowedFutureBlockTimeSeconds`).
pub const MAX_FUTURE_SECS: u64 = 15;
/// How many bad block hashes (with their reasons) are remembered.
pub const BAD_BLOCK_CACHE: usize = 256;

/// Block hash → RLP header.
const HEADERS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("headers");
/// Block hash → RLP body (`[transactions, ommers, withdrawals?]`).
const BODIES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("bodies");
/// Block hash → total difficulty (32 bytes big-endian).
const TD: TableDefinition<&[u8], &[u8]> = TableDefinition::new("td");
/// Block number → canonical block hash.
const CANONICAL: TableDefinition<u64, &[u8]> = TableDefinition::new("canonical");
/// `genesis` and `head` → block hash; `side_bytes` → 8 bytes big-endian.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Side blocks: number (8 bytes big-endian) ‖ hash → stored size (header + body bytes).
/// Ordered by number, so the ones below the reorg window are a prefix.
const SIDE: TableDefinition<&[u8], u64> = TableDefinition::new("side");

/// Block store errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The data directory could not be created.
    #[error("data directory {path}: {source}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The database failed.
    #[error("block database: {0}")]
    Db(#[from] redb::Error),
    /// A stored record does not decode: the database is damaged.
    #[error("block database is corrupt: {0}")]
    Corrupt(&'static str),
    /// The database belongs to another chain.
    #[error("database holds chain with genesis {stored}, not {expected}: use another --datadir")]
    GenesisMismatch {
        /// The genesis hash in the database.
        stored: B256,
        /// The genesis hash of the chosen chain.
        expected: B256,
    },
    /// A block failed validation (blocks before it in the same call were stored).
    #[error("bad block {number} {hash}: {reason}")]
    BadBlock {
        /// The block number.
        number: u64,
        /// The block hash.
        hash: B256,
        /// Why it is bad.
        reason: validate::Error,
    },
}

/// Seconds since the epoch by the system clock (what block timestamps are judged by).
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn db<E: Into<redb::Error>>(e: E) -> Error {
    Error::Db(e.into())
}

fn hash_from(bytes: &[u8]) -> Result<B256, Error> {
    B256::try_from(bytes).map_err(|_| Error::Corrupt("hash is not 32 bytes"))
}

fn decode<T: Decodable>(bytes: &[u8], what: &'static str) -> Result<T, Error> {
    T::decode(&mut &bytes[..]).map_err(|_| Error::Corrupt(what))
}

/// What [`Store::insert_blocks`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Inserted {
    /// Blocks validated and stored.
    pub imported: usize,
    /// Blocks skipped because they were already stored.
    pub known: usize,
    /// The head after the call.
    pub head_number: u64,
    /// The head hash after the call.
    pub head_hash: B256,
}

/// A bounded cache of bad block hashes and why they are bad (oldest evicted first).
#[derive(Debug, Default)]
pub struct BadBlocks {
    order: VecDeque<B256>,
    reasons: HashMap<B256, validate::Error>,
}

impl BadBlocks {
    /// Remembers a bad block.
    pub fn insert(&mut self, hash: B256, reason: validate::Error) {
        if self.reasons.insert(hash, reason).is_none() {
            self.order.push_back(hash);
        }
        while self.order.len() > BAD_BLOCK_CACHE {
            if let Some(old) = self.order.pop_front() {
                self.reasons.remove(&old);
            }
        }
    }

    /// Why a block is bad, if it is known to be.
    pub fn get(&self, hash: &B256) -> Option<&validate::Error> {
        self.reasons.get(hash)
    }
}

/// The acceptance bounds of a [`Store`] (defaults: [`MAX_REORG_DEPTH`],
/// [`MAX_SIDE_BYTES`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// How far below the head a block may fork off the canonical chain.
    pub reorg_depth: u64,
    /// Bytes of side blocks kept at most.
    pub side_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            reorg_depth: MAX_REORG_DEPTH,
            side_bytes: MAX_SIDE_BYTES,
        }
    }
}

/// The block store of one chain.
#[derive(Debug)]
pub struct Store {
    db: Database,
    spec: Spec,
    limits: Limits,
    bad: Mutex<BadBlocks>,
}

impl Store {
    /// Opens (or creates, with the genesis block) the store in `datadir` for `spec`'s chain.
    pub fn open(datadir: &Path, spec: Spec) -> Result<Self, Error> {
        Self::open_with(datadir, spec, Limits::default())
    }

    /// [`Store::open`] with other acceptance bounds.
    pub fn open_with(datadir: &Path, spec: Spec, limits: Limits) -> Result<Self, Error> {
        std::fs::create_dir_all(datadir).map_err(|source| Error::Io {
            path: datadir.to_owned(),
            source,
        })?;
        let path = datadir.join(FILE_NAME);
        let db = discovery::db::create(&path).map_err(|e| match e {
            discovery::db::DbError::Redb(e) => db(e),
            discovery::db::DbError::Io(source) => Error::Io {
                path: path.clone(),
                source,
            },
        })?;
        let store = Self {
            db,
            spec,
            limits,
            bad: Mutex::new(BadBlocks::default()),
        };
        store.init_genesis()?;
        // Databases written before receipts were stored lack the table; reads expect it.
        // Created only when missing: a write on every open would keep a store on a full
        // disk from opening at all, even to serve what it holds.
        let missing = match store
            .db
            .begin_read()
            .map_err(self::db)?
            .open_table(RECEIPTS)
        {
            Ok(_) => false,
            Err(redb::TableError::TableDoesNotExist(_)) => true,
            Err(e) => return Err(self::db(e)),
        };
        if missing {
            let w = store.db.begin_write().map_err(self::db)?;
            w.open_table(RECEIPTS).map_err(self::db)?;
            w.commit().map_err(self::db)?;
        }
        Ok(store)
    }

    /// Writes the genesis block on first open; checks it on later ones.
    fn init_genesis(&self) -> Result<(), Error> {
        let expected = self.spec.genesis_hash;
        let w = self.db.begin_write().map_err(db)?;
        {
            let mut meta = w.open_table(META).map_err(db)?;
            let stored = meta
                .get("genesis")
                .map_err(db)?
                .map(|v| hash_from(v.value()));
            if let Some(stored) = stored {
                let stored = stored?;
                if stored != expected {
                    return Err(Error::GenesisMismatch { stored, expected });
                }
                return Ok(());
            }
            let header = &self.spec.genesis_header;
            let body = Body {
                withdrawals: header.withdrawals_root.map(|_| Default::default()),
                ..Body::default()
            };
            let mut t = Tables::open(&w)?;
            t.put(expected, header, &body, header.difficulty)?;
            t.canonical.insert(0, expected.as_slice()).map_err(db)?;
            meta.insert("genesis", expected.as_slice()).map_err(db)?;
            meta.insert("head", expected.as_slice()).map_err(db)?;
        }
        w.commit().map_err(db)?;
        Ok(())
    }

    /// The chain this store holds.
    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    /// The genesis hash.
    pub fn genesis_hash(&self) -> B256 {
        self.spec.genesis_hash
    }

    /// The head block's hash.
    pub fn head_hash(&self) -> Result<B256, Error> {
        let r = self.db.begin_read().map_err(db)?;
        let meta = r.open_table(META).map_err(db)?;
        let head = meta
            .get("head")
            .map_err(db)?
            .ok_or(Error::Corrupt("no head"))?;
        hash_from(head.value())
    }

    /// The head block's header.
    pub fn head(&self) -> Result<Header, Error> {
        let hash = self.head_hash()?;
        self.header_by_hash(&hash)?
            .ok_or(Error::Corrupt("head header missing"))
    }

    /// A header by hash (canonical or not).
    pub fn header_by_hash(&self, hash: &B256) -> Result<Option<Header>, Error> {
        self.get(HEADERS, hash, "header")
    }

    /// A body by block hash.
    pub fn body_by_hash(&self, hash: &B256) -> Result<Option<Body>, Error> {
        self.get(BODIES, hash, "body")
    }

    /// A header by hash as stored: its RLP encoding, not decoded (for serving).
    pub fn header_rlp(&self, hash: &B256) -> Result<Option<Vec<u8>>, Error> {
        self.get_raw(HEADERS, hash)
    }

    /// A body by block hash as stored: `[transactions, ommers, withdrawals?]`, RLP.
    pub fn body_rlp(&self, hash: &B256) -> Result<Option<Vec<u8>>, Error> {
        self.get_raw(BODIES, hash)
    }

    fn get_raw(
        &self,
        table: TableDefinition<&[u8], &[u8]>,
        hash: &B256,
    ) -> Result<Option<Vec<u8>>, Error> {
        let r = self.db.begin_read().map_err(db)?;
        let t = r.open_table(table).map_err(db)?;
        let v = t.get(hash.as_slice()).map_err(db)?;
        Ok(v.map(|v| v.value().to_vec()))
    }

    /// The total difficulty up to and including a block.
    pub fn total_difficulty(&self, hash: &B256) -> Result<Option<U256>, Error> {
        let r = self.db.begin_read().map_err(db)?;
        let t = r.open_table(TD).map_err(db)?;
        let v = t.get(hash.as_slice()).map_err(db)?;
        Ok(v.map(|v| U256::from_be_slice(v.value())))
    }

    fn get<T: Decodable>(
        &self,
        table: TableDefinition<&[u8], &[u8]>,
        hash: &B256,
        what: &'static str,
    ) -> Result<Option<T>, Error> {
        let r = self.db.begin_read().map_err(db)?;
        let t = r.open_table(table).map_err(db)?;
        let v = t.get(hash.as_slice()).map_err(db)?;
        v.map(|v| decode(v.value(), what)).transpose()
    }

    /// The canonical block hash at a height.
    pub fn canonical_hash(&self, number: u64) -> Result<Option<B256>, Error> {
        let r = self.db.begin_read().map_err(db)?;
        let t = r.open_table(CANONICAL).map_err(db)?;
        let v = t.get(number).map_err(db)?;
        v.map(|v| hash_from(v.value())).transpose()
    }

    /// The canonical header at a height.
    pub fn header_by_number(&self, number: u64) -> Result<Option<Header>, Error> {
        match self.canonical_hash(number)? {
            Some(hash) => self.header_by_hash(&hash),
            None => Ok(None),
        }
    }

    /// The canonical block at a height.
    pub fn block_by_number(&self, number: u64) -> Result<Option<Block>, Error> {
        let Some(hash) = self.canonical_hash(number)? else {
            return Ok(None);
        };
        let header = self
            .header_by_hash(&hash)?
            .ok_or(Error::Corrupt("header missing"))?;
        let body = self
            .body_by_hash(&hash)?
            .ok_or(Error::Corrupt("body missing"))?;
        Ok(Some(body.into_block(header)))
    }

    /// Up to `count` canonical headers from `start`, stepping by `skip + 1`, downwards if
    /// `reverse` (the `GetBlockHeaders` query); stops at the first missing height.
    pub fn canonical_headers(
        &self,
        start: u64,
        count: usize,
        skip: u64,
        reverse: bool,
    ) -> Result<Vec<Header>, Error> {
        let step = skip.saturating_add(1);
        let mut out = Vec::new();
        let mut number = Some(start);
        while let Some(n) = number {
            if out.len() >= count {
                break;
            }
            let Some(header) = self.header_by_number(n)? else {
                break;
            };
            out.push(header);
            number = if reverse {
                n.checked_sub(step)
            } else {
                n.checked_add(step)
            };
        }
        Ok(out)
    }

    /// Why a block was rejected, if it is in the bad-block cache.
    pub fn bad_block(&self, hash: &B256) -> Option<validate::Error> {
        self.bad.lock().ok().and_then(|bad| bad.get(hash).cloned())
    }

    fn mark_bad(&self, hash: B256, reason: validate::Error) {
        if let Ok(mut bad) = self.bad.lock() {
            bad.insert(hash, reason);
        }
    }

    /// Bytes of side blocks stored (see [`MAX_SIDE_BYTES`]).
    pub fn side_bytes(&self) -> Result<u64, Error> {
        let r = self.db.begin_read().map_err(db)?;
        let meta = r.open_table(META).map_err(db)?;
        let v = meta.get("side_bytes").map_err(db)?;
        Ok(v.map_or(0, |v| side_bytes_from(v.value())))
    }

    /// Validates and stores blocks in one transaction (see [`Store::insert_blocks_at`]),
    /// judging timestamps by the system clock.
    pub fn insert_blocks(&self, blocks: &[Block]) -> Result<Inserted, Error> {
        self.insert_blocks_at(blocks, unix_now())
    }

    /// Validates and stores blocks in one transaction. Each block's parent must be stored or
    /// earlier in `blocks`. On the first invalid or refused block the blocks before it are
    /// committed and [`Error::BadBlock`] returned; a block that can never become valid
    /// ([`validate::Error::is_permanent`]) is remembered ([`Store::bad_block`]). `now` is
    /// the clock (seconds since the epoch) that timestamps are judged by.
    pub fn insert_blocks_at(&self, blocks: &[Block], now: u64) -> Result<Inserted, Error> {
        self.insert_noting(blocks, now, &mut Vec::new(), Bodies::Unchecked)
    }

    /// [`Store::insert_blocks`], with `bodies` saying whether they still need checking
    /// against their headers, also pushing onto `stored` the index in `blocks` of each
    /// block this call stored (not those already stored): valid whatever the result, as
    /// the blocks before a bad one are committed too.
    pub fn insert_blocks_noting(
        &self,
        blocks: &[Block],
        stored: &mut Vec<usize>,
        bodies: Bodies,
    ) -> Result<Inserted, Error> {
        let first = stored.len();
        let result = self.insert_noting(blocks, unix_now(), stored, bodies);
        if matches!(result, Err(ref e) if !matches!(e, Error::BadBlock { .. })) {
            // The write failed: nothing was committed.
            stored.truncate(first);
        }
        result
    }

    fn insert_noting(
        &self,
        blocks: &[Block],
        now: u64,
        stored: &mut Vec<usize>,
        bodies: Bodies,
    ) -> Result<Inserted, Error> {
        let w = self.db.begin_write().map_err(db)?;
        let mut failure = None;
        let inserted = {
            let mut t = Tables::open(&w)?;
            let mut meta = w.open_table(META).map_err(db)?;
            t.side_bytes = meta
                .get("side_bytes")
                .map_err(db)?
                .map_or(0, |v| side_bytes_from(v.value()));
            let head_hash = hash_from(
                meta.get("head")
                    .map_err(db)?
                    .ok_or(Error::Corrupt("no head"))?
                    .value(),
            )?;
            let mut head = t
                .header(&head_hash)?
                .ok_or(Error::Corrupt("head header missing"))?;
            let mut inserted = Inserted {
                imported: 0,
                known: 0,
                head_number: head.number,
                head_hash,
            };
            // The previous block of the batch: its child needs no database read.
            let mut last: Option<(B256, Header, U256)> = None;
            for (index, block) in blocks.iter().enumerate() {
                let hash = block.header.hash_slow();
                let number = block.header.number;
                if let Some(reason) = self.bad_block(&hash) {
                    failure = Some(Error::BadBlock {
                        number,
                        hash,
                        reason,
                    });
                    break;
                }
                if t.headers.get(hash.as_slice()).map_err(db)?.is_some() {
                    inserted.known += 1;
                    continue;
                }
                let parent_hash = block.header.parent_hash;
                let parent = match last.take() {
                    Some((h, header, td)) if h == parent_hash => Some((header, td)),
                    _ => match t.header(&parent_hash)? {
                        Some(header) => Some((header, t.td(&parent_hash)?)),
                        None => None,
                    },
                };
                let Some((parent, parent_td)) = parent else {
                    let reason = validate::Error::UnknownParent(parent_hash);
                    failure = Some(Error::BadBlock {
                        number,
                        hash,
                        reason,
                    });
                    break;
                };
                let size = (block.header.length() + block.body.length()) as u64;
                let checked = self
                    .refusal(&t, block, hash, &parent, head.number, size, now)
                    .and_then(|()| validate::header(&self.spec, &parent, &block.header))
                    .and_then(|()| match bodies {
                        Bodies::Unchecked => validate::body(&block.header, &block.body),
                        Bodies::Matched => Ok(()),
                    });
                if let Err(reason) = checked {
                    if reason.is_permanent() {
                        self.mark_bad(hash, reason.clone());
                    }
                    failure = Some(Error::BadBlock {
                        number,
                        hash,
                        reason,
                    });
                    break;
                }
                let td = parent_td.saturating_add(block.header.difficulty);
                t.put(hash, &block.header, &block.body, td)?;
                last = Some((hash, block.header.clone(), td));
                inserted.imported += 1;
                stored.push(index);
                if number > head.number {
                    t.set_canonical(hash, &block.header, head.number)?;
                    meta.insert("head", hash.as_slice()).map_err(db)?;
                    head = block.header.clone();
                    inserted.head_number = head.number;
                    inserted.head_hash = hash;
                } else {
                    t.add_side(number, hash, size)?;
                }
            }
            t.prune_side(head.number.saturating_sub(self.limits.reorg_depth))?;
            meta.insert("side_bytes", t.side_bytes.to_be_bytes().as_slice())
                .map_err(db)?;
            inserted
        };
        w.commit().map_err(db)?;
        match failure {
            Some(e) => Err(e),
            None => Ok(inserted),
        }
    }
}

impl Store {
    /// The acceptance rules of the module docs, checked before validation. `size` is the
    /// block's stored size; `head` our head's number.
    #[allow(clippy::too_many_arguments)]
    fn refusal(
        &self,
        t: &Tables<'_>,
        block: &Block,
        hash: B256,
        parent: &Header,
        head: u64,
        size: u64,
        now: u64,
    ) -> Result<(), validate::Error> {
        let number = block.header.number;
        if let Some(&expected) = self.spec.required_blocks.get(&number)
            && expected != hash
        {
            return Err(validate::Error::RequiredBlock { number, expected });
        }
        let timestamp = block.header.timestamp;
        if timestamp > now.saturating_add(MAX_FUTURE_SECS) {
            return Err(validate::Error::FutureTimestamp { timestamp, now });
        }
        let low = head.saturating_sub(self.limits.reorg_depth);
        let too_deep = |fork| validate::Error::ReorgTooDeep { fork, head };
        match t.fork_point(block.header.parent_hash, parent, low) {
            Ok(Some(fork)) if fork >= low => {}
            Ok(Some(fork)) => return Err(too_deep(fork)),
            Ok(None) => return Err(too_deep(low.saturating_sub(1))),
            // A damaged database shows up on the next read; refusing is the safe answer.
            Err(_) => return Err(too_deep(0)),
        }
        if number <= head && t.side_bytes.saturating_add(size) > self.limits.side_bytes {
            return Err(validate::Error::SideChainFull);
        }
        Ok(())
    }
}

fn side_bytes_from(v: &[u8]) -> u64 {
    <[u8; 8]>::try_from(v).map_or(0, u64::from_be_bytes)
}

/// Whether the bodies handed to [`Store::insert_blocks_noting`] were already matched to
/// their headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bodies {
    /// Not checked: the store checks each with [`validate::body`].
    Unchecked,
    /// Each body passed [`validate::body`] against the very header it is stored with
    /// (catch-up sync checks every body as it arrives, before the block is assembled):
    /// the store skips that check (the transaction, ommer and withdrawal roots, hashing
    /// every transaction again). Every other rule is checked as always.
    Matched,
}
