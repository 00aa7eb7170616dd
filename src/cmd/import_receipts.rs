//! `devp2p import --receipts FILE`: stores the receipts of the blocks of an RLP block
//! file, each list checked against its block's receipts root first
//! ([`Store::insert_receipts`]).
//!
//! The receipts file is one RLP list with one entry per block of the block file, in the
//! same order, each the block's receipt list in the eth/69 layout (EIP-7642:
//! `[tx-type, status, cumulative-gas, logs]`, no bloom), as
//! `tests/interop/receipts/gen_receipts.mjs` writes `testdata/ethtest/receipts.rlp`.

use std::path::Path;

use alloy_primitives::B256;
use alloy_rlp::Decodable;
use protocols::eth::messages::Receipt69;

use super::import::{BATCH_BYTES, BlockReader, Error};
use crate::chain::Store;

/// Largest receipts file read (it is read whole): 4 GiB, far above the receipts of any
/// block file a test or devnet imports; a larger one is refused rather than exhausting
/// memory.
pub const MAX_RECEIPTS_FILE: u64 = 4 << 30;

/// Stores the receipts in `receipts` of the blocks in `blocks` (both files, paired by
/// position); returns how many lists were newly stored. Fails on the first list that
/// does not match its block, storing none of its batch.
pub fn import_receipts(store: &Store, blocks: &Path, receipts: &Path) -> Result<u64, Error> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Io { path, source }
    };
    let mut hashes = Vec::new();
    let file = std::fs::File::open(blocks).map_err(io(blocks))?;
    let mut reader = BlockReader::new(std::io::BufReader::with_capacity(1 << 20, file));
    while let Some(block) = reader.next_block()? {
        hashes.push(block.header.hash_slow());
    }
    let len = std::fs::metadata(receipts).map_err(io(receipts))?.len();
    if len > MAX_RECEIPTS_FILE {
        return Err(decode_error(0, format!("receipts file is {len} bytes")));
    }
    let data = std::fs::read(receipts).map_err(io(receipts))?;
    let mut buf = data.as_slice();
    let outer = alloy_rlp::Header::decode(&mut buf).map_err(|e| decode_error(0, e.to_string()))?;
    if !outer.list || outer.payload_length != buf.len() {
        return Err(decode_error(0, "not one RLP list".into()));
    }
    let mut batch: Vec<(B256, Vec<Receipt69>)> = Vec::new();
    let mut bytes = 0usize;
    let mut stored = 0u64;
    let mut hashes = hashes.into_iter();
    while !buf.is_empty() {
        let offset = (data.len() - buf.len()) as u64;
        let before = buf.len();
        let list =
            Vec::<Receipt69>::decode(&mut buf).map_err(|e| decode_error(offset, e.to_string()))?;
        let Some(hash) = hashes.next() else {
            return Err(decode_error(
                offset,
                "more receipt lists than blocks".into(),
            ));
        };
        bytes += before - buf.len();
        batch.push((hash, list));
        if bytes >= BATCH_BYTES || buf.is_empty() {
            stored += store_batch(store, &batch)?;
            batch.clear();
            bytes = 0;
        }
    }
    Ok(stored)
}

fn store_batch(store: &Store, batch: &[(B256, Vec<Receipt69>)]) -> Result<u64, Error> {
    match store.insert_receipts(batch)? {
        Ok(n) => Ok(n as u64),
        Err(e) => Err(Error::Receipts(e.to_string())),
    }
}

fn decode_error(offset: u64, reason: String) -> Error {
    Error::Receipts(format!("at byte {offset}: {reason}"))
}
