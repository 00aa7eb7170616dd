//! `devp2p import`: validates and stores blocks from an RLP block file (concatenated RLP
//! blocks, the format of go-ethereum's `geth export`).
//!
//! Blocks are stored in batches of at most [`BATCH`] blocks and [`BATCH_BYTES`] encoded
//! bytes, one database transaction each, so an interrupted import keeps every committed
//! batch and resumes by skipping known blocks.

use std::io::{BufReader, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::chain::{self, Spec, Store, reader, store};

/// Blocks per write transaction. 1024, as sync imports (`sync::Config::import_batch`): the
/// commit is a large share of an import (18% of a profile at 256), and the sync benchmark
/// takes this import as its bound, so both commit alike.
pub const BATCH: usize = 1024;
/// Encoded bytes per write transaction: a batch is flushed once it holds this much, so
/// what a batch keeps in memory is bounded by bytes, not only by count (1024 hostile blocks
/// of [`MAX_BLOCK_BYTES`] would be 32 GiB). Today's mainnet blocks (about 150 KB each)
/// flush by bytes, about 450 per batch; small blocks by count.
pub const BATCH_BYTES: usize = 64 * 1024 * 1024;
pub use crate::chain::reader::{BlockReader, MAX_BLOCK_BYTES};

/// Import and export errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The block file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A block in the file is not valid RLP, or too large.
    #[error("block file: invalid block at byte {offset}: {reason}")]
    Decode {
        /// Offset of the block in the file.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A receipts file is malformed, or a list in it does not match its block (nothing of
    /// that list's batch was stored).
    #[error("receipts file: {0}")]
    Receipts(String),
    /// The chain could not be chosen.
    #[error(transparent)]
    Chain(#[from] chain::Error),
    /// The store failed or rejected a block.
    #[error(transparent)]
    Store(#[from] store::Error),
}

impl From<reader::Error> for Error {
    fn from(e: reader::Error) -> Self {
        Error::Decode {
            offset: e.offset,
            reason: e.reason,
        }
    }
}

/// Where the chain lives: shared by `import` and `export`.
#[derive(clap::Args, Debug, Clone)]
pub struct StoreArgs {
    /// Data directory of the chain database [default: the node's, $XDG_DATA_HOME/devp2p or
    /// ~/.local/share/devp2p].
    #[arg(long, value_name = "DIR")]
    pub datadir: Option<PathBuf>,
    /// The chain: a preset (ethtest, mainnet, sepolia, holesky, hoodi) or a genesis.json path.
    #[arg(long, value_name = "NAME|FILE", default_value = chain::presets::DEFAULT)]
    pub chain: String,
}

impl StoreArgs {
    /// Opens the store these arguments name.
    pub fn open(&self) -> Result<Store, Error> {
        let spec = Spec::load(&self.chain)?;
        let datadir = self
            .datadir
            .clone()
            .unwrap_or_else(crate::node::default_datadir);
        Ok(Store::open(&datadir, spec)?)
    }
}

/// Arguments of `devp2p import`.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// The RLP block file.
    pub file: PathBuf,
    /// Where the chain lives.
    #[command(flatten)]
    pub store: StoreArgs,
    /// Also store these receipts of the file's blocks (one RLP list, one eth/69 receipt
    /// list per block in file order, as testdata/ethtest/receipts.rlp), each checked
    /// against its block's receipts root.
    #[arg(long, value_name = "FILE")]
    pub receipts: Option<PathBuf>,
}

/// What an import did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    /// Blocks read from the file.
    pub blocks: u64,
    /// Blocks newly stored.
    pub imported: u64,
    /// Transactions in the blocks read.
    pub txs: u64,
    /// The head afterwards.
    pub head_number: u64,
    /// The head hash afterwards.
    pub head_hash: alloy_primitives::B256,
    /// Time taken.
    pub elapsed: Duration,
}

/// A progress line on stderr: redrawn every second on a terminal, one line every 10 s
/// otherwise (logs stay short).
struct Progress {
    tty: bool,
    start: Instant,
    last: Instant,
}

impl Progress {
    fn new() -> Self {
        let now = Instant::now();
        Self {
            tty: std::io::stderr().is_terminal(),
            start: now,
            last: now,
        }
    }

    fn update(&mut self, blocks: u64, txs: u64, head: u64) {
        let every = if self.tty {
            Duration::from_secs(1)
        } else {
            Duration::from_secs(10)
        };
        if self.last.elapsed() < every {
            return;
        }
        self.last = Instant::now();
        let rate = blocks as f64 / self.start.elapsed().as_secs_f64().max(1e-9);
        let line =
            format!("importing: {blocks} blocks, {txs} txs, head {head}, {rate:.0} blocks/s");
        let mut err = std::io::stderr().lock();
        let _ = if self.tty {
            write!(err, "\r{line}")
        } else {
            writeln!(err, "{line}")
        };
    }

    fn finish(&self) {
        if self.tty {
            let _ = writeln!(std::io::stderr().lock());
        }
    }
}

/// Imports every block of `reader` into `store`, in batches of at most [`BATCH`] blocks
/// and [`BATCH_BYTES`] bytes.
pub fn import(store: &Store, reader: impl Read) -> Result<Summary, Error> {
    import_with(store, reader, BATCH_BYTES, |_, _, _| {})
}

/// [`import`] with batches flushed at `batch_bytes` encoded bytes; `progress` is called
/// after every flush with (blocks read, transactions, head number).
fn import_with(
    store: &Store,
    reader: impl Read,
    batch_bytes: usize,
    mut progress: impl FnMut(u64, u64, u64),
) -> Result<Summary, Error> {
    let start = Instant::now();
    let mut reader = BlockReader::new(reader);
    let head = store.head()?;
    let mut summary = Summary {
        blocks: 0,
        imported: 0,
        txs: 0,
        head_number: head.number,
        head_hash: head.hash_slow(),
        elapsed: Duration::ZERO,
    };
    let mut batch = Vec::with_capacity(BATCH);
    let mut bytes = 0usize;
    loop {
        let next = reader.next_block()?;
        let done = next.is_none();
        if let Some(block) = next {
            summary.blocks += 1;
            summary.txs += block.body.transactions.len() as u64;
            bytes = bytes.saturating_add(reader.last_len());
            batch.push(block);
        }
        if batch.len() >= BATCH || bytes >= batch_bytes || (done && !batch.is_empty()) {
            let inserted = store.insert_blocks(&batch)?;
            batch.clear();
            bytes = 0;
            summary.imported += inserted.imported as u64;
            summary.head_number = inserted.head_number;
            summary.head_hash = inserted.head_hash;
            progress(summary.blocks, summary.txs, summary.head_number);
        }
        if done {
            summary.elapsed = start.elapsed();
            return Ok(summary);
        }
    }
}

/// Imports a file into a store.
pub fn import_file(store: &Store, path: &Path) -> Result<Summary, Error> {
    let file = std::fs::File::open(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    import(store, BufReader::with_capacity(1 << 20, file))
}

/// Runs `devp2p import`.
pub fn run(args: Args) -> Result<(), Error> {
    let store = args.store.open()?;
    let file = std::fs::File::open(&args.file).map_err(|source| Error::Io {
        path: args.file.clone(),
        source,
    })?;
    let mut progress = Progress::new();
    let result = import_with(
        &store,
        BufReader::with_capacity(1 << 20, file),
        BATCH_BYTES,
        |b, t, h| progress.update(b, t, h),
    );
    progress.finish();
    let s = result?;
    if let Some(receipts) = &args.receipts {
        let n = super::import_receipts::import_receipts(&store, &args.file, receipts)?;
        eprintln!("stored the receipts of {n} blocks");
    }
    let secs = s.elapsed.as_secs_f64();
    eprintln!(
        "imported {} blocks ({} new), {} txs in {:.2}s ({:.0} blocks/s); head {} {}",
        s.blocks,
        s.imported,
        s.txs,
        secs,
        s.blocks as f64 / secs.max(1e-9),
        s.head_number,
        s.head_hash
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file of large blocks is flushed by bytes: no batch holds more than the byte
    /// budget plus one block, however few blocks that is.
    #[test]
    fn batches_flush_by_bytes() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/ethtest/chain.rlp");
        let data = std::fs::read(path).unwrap();
        let mut sizes = Vec::new();
        let mut reader = BlockReader::new(data.as_slice());
        while reader.next_block().unwrap().is_some() {
            sizes.push(reader.last_len());
        }
        let largest = sizes.iter().copied().max().unwrap();
        // A budget of a few blocks stands for BATCH_BYTES against 32 MiB blocks.
        let budget = 4 * largest;
        let dir = std::env::temp_dir().join(format!("import-bytes-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir, crate::chain::presets::ethtest().unwrap()).unwrap();
        let mut flushed_at = vec![0u64];
        let summary = import_with(&store, data.as_slice(), budget, |blocks, _, _| {
            flushed_at.push(blocks)
        })
        .unwrap();
        assert_eq!(summary.imported as usize, sizes.len());
        for w in flushed_at.windows(2) {
            let held: usize = sizes[w[0] as usize..w[1] as usize].iter().sum();
            assert!(held < budget + largest, "a batch held {held} bytes");
        }
        assert!(flushed_at.len() > sizes.len() / BATCH + 2, "{flushed_at:?}");
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
