//! What the peer tells us unasked: transaction announcements (for the fetcher) and
//! broadcasts (checked within the peer's budget, pooled and passed on), block
//! announcements and blocks (events for the node; they also move the peer's head), and
//! eth/69 BlockRangeUpdate. Each marks what the peer knows.

use alloy_consensus::TxEnvelope;
use alloy_primitives::{B256, U256};
use tokio::time::Instant;

use super::super::messages::{
    BlockHashNumber, BlockRangeUpdate, NewBlock, NewPooledTransactionHashes,
};
use super::super::txfetch::Meta;
use super::super::txs::{self, FetchInput};
use super::super::{Event, MAX_BLOCK_ANNOUNCE, PeerStatus, size, verify};
use super::{Error, Session};

/// A message the peer sends unasked.
pub(super) enum Announcement {
    /// NewPooledTransactionHashes.
    TxHashes(NewPooledTransactionHashes),
    /// Transactions.
    Txs(Vec<TxEnvelope>),
    /// NewBlockHashes.
    BlockHashes(Vec<BlockHashNumber>),
    /// NewBlock.
    Block(Box<NewBlock>),
    /// BlockRangeUpdate (eth/69).
    Range(BlockRangeUpdate),
}

impl Session {
    /// Handles `a`; block gossip was refused before (see [`super::super::Config::block_gossip`]).
    pub(super) async fn on_announcement(&mut self, a: Announcement) -> Result<(), Error> {
        match a {
            Announcement::TxHashes(a) => self.on_tx_hashes(a),
            Announcement::Txs(list) => self.on_transactions(list).await,
            Announcement::BlockHashes(a) => {
                let hashes: Vec<_> = a
                    .iter()
                    .take(MAX_BLOCK_ANNOUNCE)
                    .map(|h| (h.hash, h.number))
                    .collect();
                self.knows.mark_blocks(hashes.iter().map(|h| h.0));
                if let Some(&(hash, number)) = hashes.iter().max_by_key(|h| h.1) {
                    self.update_head(hash, number, None);
                }
                self.shared.emit(Event::NewBlockHashes {
                    peer: self.id,
                    hashes,
                });
                Ok(())
            }
            Announcement::Block(nb) => {
                self.on_new_block(*nb);
                Ok(())
            }
            Announcement::Range(r) => {
                if !r.is_valid() {
                    return Err(Error::Range);
                }
                self.update_status(|s| {
                    let new = PeerStatus {
                        head_hash: r.latest_hash,
                        head_number: Some(r.latest),
                        earliest: Some(r.earliest),
                        ..*s
                    };
                    std::mem::replace(s, new) != new
                });
                Ok(())
            }
        }
    }

    /// Transaction hashes for the fetcher (which asks for those we lack).
    fn on_tx_hashes(&mut self, a: NewPooledTransactionHashes) -> Result<(), Error> {
        if !a.is_consistent() {
            return Err(Error::Announcement);
        }
        // Beyond the spec's soft limit of 4096 hashes per message the rest is ignored:
        // it would only cost the fetcher time.
        let n = a.hashes.len().min(txs::MAX_ANNOUNCE_PACKET);
        self.knows.mark_txs(a.hashes.iter().take(n).copied());
        // The cells on offer (eth/72) are not looked at: we ask the announcer for the data
        // cells of the blob transactions it sends us (see `cells`).
        let items = a
            .hashes
            .iter()
            .take(n)
            .zip(a.types.iter().zip(&a.sizes))
            .map(|(h, (&kind, &size))| (*h, Meta { kind, size }))
            .collect();
        self.shared.fetcher(FetchInput::Announce {
            peer: self.id,
            items,
        });
        Ok(())
    }

    /// A block in full: counted against the block-event budget ([`super::super::Held`])
    /// and handed to the node, or dropped if over it.
    fn on_new_block(&mut self, nb: NewBlock) {
        let hash = nb.block.header.hash_slow();
        self.knows.mark_block(hash);
        self.update_head(hash, nb.block.header.number, Some(nb.td));
        let bytes =
            std::mem::size_of::<alloy_consensus::Block<TxEnvelope>>() + size::block_size(&nb.block);
        match self.shared.hold(&self.block_bytes, bytes) {
            Some(held) => self.shared.emit(Event::NewBlock {
                peer: self.id,
                block: Box::new(nb.block),
                td: nb.td,
                held,
            }),
            None => {
                tracing::debug!(target: "eth", bytes, "block events over their byte budget, NewBlock dropped")
            }
        }
    }

    /// A broadcast: check what is new within the peer's budget (dropping the excess),
    /// pool what validates and pass it on. Sorting a large broadcast against the budget
    /// is itself work (a hash lookup per transaction), done on the worker pool too.
    async fn on_transactions(&mut self, list: Vec<TxEnvelope>) -> Result<(), Error> {
        let now = Instant::now().into_std();
        let (meter, pool, knows) = (
            self.meter.clone(),
            self.shared.pool.clone(),
            self.knows.clone(),
        );
        let job = move || verify::admit(list, meter, &pool, &knows, now);
        let Some(admitted) = self.shared.workers.run(job).await else {
            return Ok(());
        };
        let verify::Admitted {
            txs,
            dropped,
            flood,
            blob,
            meter,
        } = admitted;
        self.meter = meter;
        if blob {
            return Err(Error::BlobBroadcast);
        }
        if dropped > 0 || flood {
            tracing::debug!(target: "eth", dropped, flood, "transactions over the peer's budget");
        }
        // Only what was checked has arrived: the fetcher may still ask others for the rest.
        let hashes: Vec<_> = txs.iter().map(|t| *t.hash()).collect();
        let accepted = self.verify(txs).await?;
        self.shared.fetcher(FetchInput::Arrived(hashes));
        txs::broadcast(&self.shared, Some(self.id), &accepted);
        if flood {
            return Err(Error::TxFlood);
        }
        Ok(())
    }

    /// The peer announced (or sent) block `hash` number `number`: if it is beyond the
    /// head we knew of, it is the peer's new head (go-ethereum's `SetHead` on NewBlock),
    /// which the downloader follows.
    fn update_head(&mut self, hash: B256, number: u64, td: Option<U256>) {
        self.update_status(|s| {
            if s.head_number.is_some_and(|n| n >= number) {
                return false;
            }
            s.head_hash = hash;
            s.head_number = Some(number);
            if td.is_some() {
                s.total_difficulty = td;
            }
            true
        });
    }
}
