//! `devp2p export`: writes canonical blocks as an RLP block file (concatenated RLP blocks, the
//! format `devp2p import` and go-ethereum's `geth import` read).

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use alloy_rlp::Encodable;

use super::import::Error;
use crate::chain::{Store, store};

/// Arguments of `devp2p export`.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// The file to write.
    pub file: PathBuf,
    /// Where the chain lives.
    #[command(flatten)]
    pub store: super::import::StoreArgs,
    /// First block to export. Defaults to 1: the genesis comes from `--chain` on import.
    #[arg(long, default_value_t = 1)]
    pub from: u64,
    /// Last block to export (default: the head).
    #[arg(long)]
    pub to: Option<u64>,
}

/// Writes canonical blocks `from..=to` (clamped to the head) to `out`; returns the number of
/// blocks and transactions written.
pub fn export(
    store: &Store,
    out: &mut impl Write,
    from: u64,
    to: u64,
) -> Result<(u64, u64), Error> {
    let to = to.min(store.head()?.number);
    let (mut blocks, mut txs) = (0, 0);
    let mut buf = Vec::new();
    for number in from..=to {
        let block = store
            .block_by_number(number)?
            .ok_or(store::Error::Corrupt("canonical block missing"))?;
        buf.clear();
        block.encode(&mut buf);
        out.write_all(&buf).map_err(|source| Error::Io {
            path: PathBuf::from("<output>"),
            source,
        })?;
        blocks += 1;
        txs += block.body.transactions.len() as u64;
    }
    Ok((blocks, txs))
}

/// Exports to a file.
pub fn export_file(store: &Store, path: &Path, from: u64, to: u64) -> Result<(u64, u64), Error> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let mut out = BufWriter::new(std::fs::File::create(path).map_err(io)?);
    let counts = export(store, &mut out, from, to)?;
    out.flush().map_err(io)?;
    Ok(counts)
}

/// Runs `devp2p export`.
pub fn run(args: Args) -> Result<(), Error> {
    let start = Instant::now();
    let store = args.store.open()?;
    let to = args.to.unwrap_or(u64::MAX);
    let (blocks, txs) = export_file(&store, &args.file, args.from, to)?;
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "exported {blocks} blocks, {txs} txs to {} in {secs:.2}s ({:.0} blocks/s)",
        args.file.display(),
        blocks as f64 / secs.max(1e-9)
    );
    Ok(())
}
