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

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use alloy_consensus::Header;
use alloy_primitives::{B256, U256};
use alloy_rlp::{Decodable, Encodable};
use redb::{Database, ReadableDatabase, ReadableTable, Table, TableDefinition};

use super::{Block, Body, Spec, validate};

/// File name of the database inside the data directory.
pub const FILE_NAME: &str = "chain.redb";
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
/// `genesis` and `head` → block hash.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

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

/// The block store of one chain.
#[derive(Debug)]
pub struct Store {
    db: Database,
    spec: Spec,
    bad: Mutex<BadBlocks>,
}

impl Store {
    /// Opens (or creates, with the genesis block) the store in `datadir` for `spec`'s chain.
    pub fn open(datadir: &Path, spec: Spec) -> Result<Self, Error> {
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
            bad: Mutex::new(BadBlocks::default()),
        };
        store.init_genesis()?;
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

    /// Validates and stores blocks in one transaction. Each block's parent must be stored or
    /// earlier in `blocks`. On the first invalid block the blocks before it are committed and
    /// [`Error::BadBlock`] returned; the bad block is remembered ([`Store::bad_block`]).
    pub fn insert_blocks(&self, blocks: &[Block]) -> Result<Inserted, Error> {
        let w = self.db.begin_write().map_err(db)?;
        let mut failure = None;
        let inserted = {
            let mut t = Tables::open(&w)?;
            let mut meta = w.open_table(META).map_err(db)?;
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
            for block in blocks {
                let hash = block.header.hash_slow();
                if let Some(reason) = self.bad_block(&hash) {
                    failure = Some(Error::BadBlock {
                        number: block.header.number,
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
                let (parent, parent_td) = match last.take() {
                    Some((h, header, td)) if h == parent_hash => (header, td),
                    _ => match t.header(&parent_hash)? {
                        Some(header) => (header, t.td(&parent_hash)?),
                        None => {
                            let reason = validate::Error::UnknownParent(parent_hash);
                            let number = block.header.number;
                            failure = Some(Error::BadBlock {
                                number,
                                hash,
                                reason,
                            });
                            break;
                        }
                    },
                };
                let checked = validate::header(&self.spec, &parent, &block.header)
                    .and_then(|()| validate::body(&block.header, &block.body));
                if let Err(reason) = checked {
                    self.mark_bad(hash, reason.clone());
                    failure = Some(Error::BadBlock {
                        number: block.header.number,
                        hash,
                        reason,
                    });
                    break;
                }
                let td = parent_td.saturating_add(block.header.difficulty);
                t.put(hash, &block.header, &block.body, td)?;
                inserted.imported += 1;
                if block.header.number > head.number {
                    t.set_canonical(hash, &block.header, head.number)?;
                    meta.insert("head", hash.as_slice()).map_err(db)?;
                    head = block.header.clone();
                    inserted.head_number = head.number;
                    inserted.head_hash = hash;
                }
                last = Some((hash, block.header.clone(), td));
            }
            inserted
        };
        w.commit().map_err(db)?;
        match failure {
            Some(e) => Err(e),
            None => Ok(inserted),
        }
    }
}

/// The block tables opened in one write transaction.
struct Tables<'txn> {
    headers: Table<'txn, &'static [u8], &'static [u8]>,
    bodies: Table<'txn, &'static [u8], &'static [u8]>,
    td: Table<'txn, &'static [u8], &'static [u8]>,
    canonical: Table<'txn, u64, &'static [u8]>,
}

impl<'txn> Tables<'txn> {
    fn open(w: &'txn redb::WriteTransaction) -> Result<Self, Error> {
        Ok(Self {
            headers: w.open_table(HEADERS).map_err(db)?,
            bodies: w.open_table(BODIES).map_err(db)?,
            td: w.open_table(TD).map_err(db)?,
            canonical: w.open_table(CANONICAL).map_err(db)?,
        })
    }

    fn put(&mut self, hash: B256, header: &Header, body: &Body, td: U256) -> Result<(), Error> {
        let mut buf = Vec::with_capacity(header.length());
        header.encode(&mut buf);
        self.headers
            .insert(hash.as_slice(), buf.as_slice())
            .map_err(db)?;
        buf.clear();
        body.encode(&mut buf);
        self.bodies
            .insert(hash.as_slice(), buf.as_slice())
            .map_err(db)?;
        self.td
            .insert(hash.as_slice(), td.to_be_bytes::<32>().as_slice())
            .map_err(db)?;
        Ok(())
    }

    fn header(&self, hash: &B256) -> Result<Option<Header>, Error> {
        let v = self.headers.get(hash.as_slice()).map_err(db)?;
        v.map(|v| decode(v.value(), "header")).transpose()
    }

    fn td(&self, hash: &B256) -> Result<U256, Error> {
        let v = self.td.get(hash.as_slice()).map_err(db)?;
        Ok(v.map(|v| U256::from_be_slice(v.value()))
            .unwrap_or_default())
    }

    /// Makes `hash` the canonical block at its height and rewrites the index back to the
    /// common ancestor; heights above it (left from a higher old head) are removed.
    fn set_canonical(&mut self, hash: B256, header: &Header, old_head: u64) -> Result<(), Error> {
        for n in header.number.saturating_add(1)..=old_head {
            self.canonical.remove(n).map_err(db)?;
        }
        let (mut number, mut hash, mut parent) = (header.number, hash, header.parent_hash);
        loop {
            self.canonical.insert(number, hash.as_slice()).map_err(db)?;
            let Some(below) = number.checked_sub(1) else {
                return Ok(());
            };
            let current = self
                .canonical
                .get(below)
                .map_err(db)?
                .map(|v| hash_from(v.value()));
            if current.transpose()? == Some(parent) {
                return Ok(());
            }
            let header = self
                .header(&parent)?
                .ok_or(Error::Corrupt("ancestor header missing"))?;
            (number, hash, parent) = (below, parent, header.parent_hash);
        }
    }
}
