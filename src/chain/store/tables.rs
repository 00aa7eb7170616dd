//! The block tables of one write transaction ([`Tables`]): what a block insert reads and
//! writes, fork points, side-chain accounting.

use super::*;

/// The [`SIDE`] key of a block: number (big-endian) ‖ hash.
pub(super) fn side_key(number: u64, hash: &B256) -> [u8; 40] {
    let mut key = [0u8; 40];
    key[..8].copy_from_slice(&number.to_be_bytes());
    key[8..].copy_from_slice(hash.as_slice());
    key
}

/// The block tables opened in one write transaction.
pub(super) struct Tables<'txn> {
    pub(super) headers: Table<'txn, &'static [u8], &'static [u8]>,
    pub(super) bodies: Table<'txn, &'static [u8], &'static [u8]>,
    pub(super) td: Table<'txn, &'static [u8], &'static [u8]>,
    pub(super) receipts: Table<'txn, &'static [u8], &'static [u8]>,
    pub(super) canonical: Table<'txn, u64, &'static [u8]>,
    pub(super) side: Table<'txn, &'static [u8], u64>,
    /// The running total of [`SIDE`]'s sizes (written back to `META` by the caller).
    pub(super) side_bytes: u64,
}

impl<'txn> Tables<'txn> {
    pub(super) fn open(w: &'txn redb::WriteTransaction) -> Result<Self, Error> {
        Ok(Self {
            headers: w.open_table(HEADERS).map_err(db)?,
            bodies: w.open_table(BODIES).map_err(db)?,
            td: w.open_table(TD).map_err(db)?,
            receipts: w.open_table(RECEIPTS).map_err(db)?,
            canonical: w.open_table(CANONICAL).map_err(db)?,
            side: w.open_table(SIDE).map_err(db)?,
            side_bytes: 0,
        })
    }

    pub(super) fn is_canonical(&self, number: u64, hash: &B256) -> Result<bool, Error> {
        let v = self.canonical.get(number).map_err(db)?;
        Ok(v.is_some_and(|v| v.value() == hash.as_slice()))
    }

    /// The height where the chain ending in `parent` (hash `parent_hash`) joins the
    /// canonical chain, if it does at `low` or above (walking at most the reorg window).
    pub(super) fn fork_point(
        &self,
        parent_hash: B256,
        parent: &Header,
        low: u64,
    ) -> Result<Option<u64>, Error> {
        let (mut hash, mut number, mut up) = (parent_hash, parent.number, parent.parent_hash);
        loop {
            if self.is_canonical(number, &hash)? {
                return Ok(Some(number));
            }
            if number <= low {
                return Ok(None);
            }
            let Some(header) = self.header(&up)? else {
                // Its ancestor was pruned: it forked below the window.
                return Ok(None);
            };
            (hash, number, up) = (up, header.number, header.parent_hash);
        }
    }

    pub(super) fn add_side(&mut self, number: u64, hash: B256, size: u64) -> Result<(), Error> {
        let key = side_key(number, &hash);
        if self
            .side
            .insert(key.as_slice(), size)
            .map_err(db)?
            .is_none()
        {
            self.side_bytes = self.side_bytes.saturating_add(size);
        }
        Ok(())
    }

    pub(super) fn remove_side(&mut self, number: u64, hash: &B256) -> Result<(), Error> {
        let key = side_key(number, hash);
        if let Some(size) = self.side.remove(key.as_slice()).map_err(db)? {
            self.side_bytes = self.side_bytes.saturating_sub(size.value());
        }
        Ok(())
    }

    /// The stored size of a block (header + body + receipts bytes).
    pub(super) fn stored_size(&self, hash: &B256) -> Result<u64, Error> {
        let h = self.headers.get(hash.as_slice()).map_err(db)?;
        let b = self.bodies.get(hash.as_slice()).map_err(db)?;
        let r = self.receipts.get(hash.as_slice()).map_err(db)?;
        let len = |v: Option<redb::AccessGuard<'_, &[u8]>>| v.map_or(0, |v| v.value().len());
        Ok((len(h) + len(b) + len(r)) as u64)
    }

    /// Deletes the side blocks below height `low`: they fork off below the reorg window, so
    /// they can never become canonical.
    pub(super) fn prune_side(&mut self, low: u64) -> Result<(), Error> {
        let end = side_key(low, &B256::ZERO);
        let stale: Vec<(Vec<u8>, u64)> = self
            .side
            .range(..end.as_slice())
            .map_err(db)?
            .map(|e| e.map(|(k, v)| (k.value().to_vec(), v.value())))
            .collect::<Result<_, _>>()
            .map_err(db)?;
        for (key, size) in stale {
            let hash = key.get(8..).map(B256::from_slice);
            let number = key
                .get(..8)
                .and_then(|n| <[u8; 8]>::try_from(n).ok())
                .map(u64::from_be_bytes);
            self.side.remove(key.as_slice()).map_err(db)?;
            self.side_bytes = self.side_bytes.saturating_sub(size);
            let (Some(hash), Some(number)) = (hash, number) else {
                continue;
            };
            if self.is_canonical(number, &hash)? {
                continue;
            }
            self.headers.remove(hash.as_slice()).map_err(db)?;
            self.bodies.remove(hash.as_slice()).map_err(db)?;
            self.td.remove(hash.as_slice()).map_err(db)?;
            self.receipts.remove(hash.as_slice()).map_err(db)?;
        }
        Ok(())
    }

    pub(super) fn put(
        &mut self,
        hash: B256,
        header: &Header,
        body: &Body,
        td: U256,
    ) -> Result<(), Error> {
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

    pub(super) fn header(&self, hash: &B256) -> Result<Option<Header>, Error> {
        let v = self.headers.get(hash.as_slice()).map_err(db)?;
        v.map(|v| decode(v.value(), "header")).transpose()
    }

    pub(super) fn td(&self, hash: &B256) -> Result<U256, Error> {
        let v = self.td.get(hash.as_slice()).map_err(db)?;
        Ok(v.map(|v| U256::from_be_slice(v.value()))
            .unwrap_or_default())
    }

    /// Makes `hash` the canonical block at its height and rewrites the index back to the
    /// common ancestor; heights above it (left from a higher old head) are removed.
    /// The blocks that leave the canonical chain become side blocks; those that join it
    /// stop being side blocks.
    pub(super) fn set_canonical(
        &mut self,
        hash: B256,
        header: &Header,
        old_head: u64,
    ) -> Result<(), Error> {
        for n in header.number.saturating_add(1)..=old_head {
            let removed = self.canonical.remove(n).map_err(db)?;
            let removed = removed.map(|v| hash_from(v.value())).transpose()?;
            if let Some(old) = removed {
                let size = self.stored_size(&old)?;
                self.add_side(n, old, size)?;
            }
        }
        let (mut number, mut hash, mut parent) = (header.number, hash, header.parent_hash);
        loop {
            let replaced = self.canonical.insert(number, hash.as_slice()).map_err(db)?;
            let replaced = replaced.map(|v| hash_from(v.value())).transpose()?;
            if let Some(old) = replaced
                && old != hash
            {
                let size = self.stored_size(&old)?;
                self.add_side(number, old, size)?;
            }
            self.remove_side(number, &hash)?;
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
