//! Receipts in the block store: one list per block hash, in the eth/69 layout (no bloom;
//! blooms are derived from the logs when eth/68 or the receipts root needs them), stored
//! only after [`protocols::eth::receipts::verify`] matched them to the block's header.
//!
//! We execute nothing, so a block's receipts arrive after the block (from peers, or a
//! receipts file): a block without stored receipts is "receipts unavailable", which
//! GetReceipts answers by ending its response there. A block without transactions needs
//! nothing stored: its list is empty ([`Store::receipts_rlp`]).

use alloy_primitives::B256;
use protocols::eth::messages::Receipt69;
use protocols::eth::receipts::{self, encode_stored};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use super::{Error, META, db};

/// Block hash → RLP list of the block's receipts (eth/69 layout).
pub(super) const RECEIPTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("receipts");

/// Receipts refused by [`Store::insert_receipts`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptsError {
    /// The block is not stored (its header and body are needed to check the list).
    #[error("receipts for unknown block {0}")]
    UnknownBlock(B256),
    /// The list does not belong to the block.
    #[error("receipts of block {number} {hash}: {reason}")]
    Mismatch {
        /// The block number.
        number: u64,
        /// The block hash.
        hash: B256,
        /// What is wrong.
        reason: receipts::Error,
    },
}

impl super::Store {
    /// Checks every list against its block (header and body must be stored) and, if all
    /// match, stores them in one transaction; returns how many were new (empty lists are
    /// implied by the block and not stored). On the first
    /// list that does not match, nothing is stored and [`ReceiptsError`] says which (a
    /// peer that sent it is to be penalised). Hashes every receipt: call it off the async
    /// workers.
    pub fn insert_receipts(
        &self,
        lists: &[(B256, Vec<Receipt69>)],
    ) -> Result<Result<usize, ReceiptsError>, Error> {
        let mut encoded = Vec::with_capacity(lists.len());
        for (hash, list) in lists {
            let (Some(header), Some(body)) = (self.header_by_hash(hash)?, self.body_by_hash(hash)?)
            else {
                return Ok(Err(ReceiptsError::UnknownBlock(*hash)));
            };
            if let Err(reason) = receipts::verify(&header, body.transactions.len(), list) {
                return Ok(Err(ReceiptsError::Mismatch {
                    number: header.number,
                    hash: *hash,
                    reason,
                }));
            }
            // An empty list (a block without transactions) is implied, not stored.
            if !list.is_empty() {
                encoded.push((header.number, hash, encode_stored(list)));
            }
        }
        let w = self.db.begin_write().map_err(db)?;
        let mut new = 0;
        {
            let mut t = w.open_table(RECEIPTS).map_err(db)?;
            let mut side = w.open_table(super::SIDE).map_err(db)?;
            let mut meta = w.open_table(META).map_err(db)?;
            let mut side_total = side_bytes(&meta)?;
            for (number, hash, raw) in &encoded {
                if t.insert(hash.as_slice(), raw.0.as_ref())
                    .map_err(db)?
                    .is_some()
                {
                    continue;
                }
                new += 1;
                // A side block's receipts count towards its stored size (and
                // [`super::MAX_SIDE_BYTES`]), and leave with it when it is pruned.
                let key = super::side_key(*number, hash);
                let size = side.get(key.as_slice()).map_err(db)?.map(|v| v.value());
                if let Some(size) = size {
                    let len = raw.0.len() as u64;
                    side.insert(key.as_slice(), size.saturating_add(len))
                        .map_err(db)?;
                    side_total = side_total.saturating_add(len);
                }
            }
            meta.insert("side_bytes", side_total.to_be_bytes().as_slice())
                .map_err(db)?;
        }
        w.commit().map_err(db)?;
        Ok(Ok(new))
    }

    /// The receipts of block `hash` as stored (RLP list of eth/69 receipts): the stored
    /// list, or the empty list for a stored block without transactions; `None` if they
    /// are unavailable (unknown block, or receipts not fetched).
    pub fn receipts_rlp(&self, hash: &B256) -> Result<Option<Vec<u8>>, Error> {
        if let Some(raw) = self.get_raw(RECEIPTS, hash)? {
            return Ok(Some(raw));
        }
        let empty = self
            .body_rlp(hash)?
            .is_some_and(|b| protocols::eth::chain::body_has_no_transactions(&b));
        Ok(empty.then(|| receipts::EMPTY_LIST.to_vec()))
    }

    /// Whether receipts for block `hash` are stored or need none (see
    /// [`Store::receipts_rlp`]).
    pub fn has_receipts(&self, hash: &B256) -> Result<bool, Error> {
        Ok(self.receipts_rlp(hash)?.is_some())
    }

    /// Of `hashes`, those whose receipts are unavailable (the blocks sync still has to
    /// fetch receipts for), in order.
    pub fn missing_receipts(&self, hashes: &[B256]) -> Result<Vec<B256>, Error> {
        let r = self.db.begin_read().map_err(db)?;
        let t = match r.open_table(RECEIPTS) {
            Ok(t) => Some(t),
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(db(e)),
        };
        let mut out = Vec::new();
        for hash in hashes {
            let stored = match &t {
                Some(t) => t.get(hash.as_slice()).map_err(db)?.is_some(),
                None => false,
            };
            if !stored && !self.has_receipts(hash)? {
                out.push(*hash);
            }
        }
        Ok(out)
    }
}

fn side_bytes(meta: &redb::Table<'_, &str, &[u8]>) -> Result<u64, Error> {
    let v = meta.get("side_bytes").map_err(db)?;
    Ok(v.map_or(0, |v| super::side_bytes_from(v.value())))
}

#[cfg(test)]
#[path = "receipts_tests.rs"]
mod tests;
