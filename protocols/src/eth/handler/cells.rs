//! eth/72 blob transactions: PooledTransactions carries them without blobs (EIP-8070), so
//! their data cells `0..64` are asked from the same peer (GetCells), checked against the
//! request, put back together into blobs ([`super::super::cells::assemble`]) and the
//! transactions pooled and passed on like any other. We always fetch the full blobs
//! (the spec's full-fetch strategy; we have no custody set), and only the data cells:
//! the extension cells would need KZG/FFT to be of any use.

use crate::eth::messages::PooledTransaction;
use tokio::time::Instant;

use super::super::cells;
use super::super::messages::{CellMask, Cells, GetCells, Message};
use super::super::requests::Kind;
use super::super::txs;
use super::{Error, Reply, Session};

/// Blobs whose data cells one GetCells asks for: 16 x 64 cells x 2 KiB = 2 MiB, the
/// spec's soft limit on a Cells answer (a peer may cut a larger answer short).
const BLOBS_PER_REQUEST: usize = 16;
/// GetCells sent per PooledTransactions answer, at most: 8 x 2 MiB of cells. A fetch of
/// go-ethereum's size (a few blob transactions of up to 6 blobs) needs one or two.
const REQUESTS_PER_ANSWER: usize = 8;

impl Session {
    /// Asks the peer for the data cells of `txs` (blob transactions it sent without
    /// blobs): one GetCells per [`BLOBS_PER_REQUEST`] blobs (and at most
    /// [`cells::MAX_CELL_TXS`] transactions), so that each answer fits the spec's 2 MiB,
    /// and at most [`REQUESTS_PER_ANSWER`] of them; the transactions beyond are dropped
    /// (another peer may send them whole). Not counted against `max_in_flight`: the
    /// fetcher keeps at most one PooledTransactions request per peer.
    pub(super) async fn fetch_cells(&mut self, txs: Vec<PooledTransaction>) {
        let mut batch = Vec::new();
        let mut blobs = 0;
        let mut sent = 0;
        for tx in txs {
            let n = cells::blob_count(&tx);
            if !batch.is_empty()
                && (blobs + n > BLOBS_PER_REQUEST || batch.len() == cells::MAX_CELL_TXS)
            {
                if sent == REQUESTS_PER_ANSWER {
                    break;
                }
                self.request_cells(std::mem::take(&mut batch)).await;
                sent += 1;
                blobs = 0;
            }
            blobs += n;
            batch.push(tx);
        }
        if !batch.is_empty() && sent < REQUESTS_PER_ANSWER {
            self.request_cells(batch).await;
        }
    }

    /// Sends one GetCells for the data cells of `txs`.
    async fn request_cells(&mut self, txs: Vec<PooledTransaction>) {
        let now = Instant::now().into_std();
        let timeout = self.shared.config.request_timeout;
        let req = GetCells {
            request_id: 0,
            hashes: txs.iter().map(|t| *t.hash()).collect(),
            cells: CellMask::DATA,
        };
        let kind = Kind::Cells {
            count: req.hashes.len(),
        };
        let request_id = self
            .tracker
            .start(kind, now, timeout, Reply::Cells(req.clone(), txs));
        let m = Message::GetCells(GetCells { request_id, ..req });
        // A failed send means the session is closing; the receive side notices.
        self.send(m.code(), m.encode()).await;
    }

    /// The peer's answer to [`Session::fetch_cells`]: an answer that does not fit the
    /// request disconnects ([`Error::Cells`]); transactions whose data cells are all
    /// there are completed and pooled, the others dropped (the peer may hold only some
    /// cells: no offence).
    pub(super) async fn on_cells(
        &mut self,
        req: &GetCells,
        txs: Vec<PooledTransaction>,
        res: Cells,
    ) -> Result<(), Error> {
        res.check(req, |h| {
            txs.iter()
                .find(|t| t.hash() == h)
                .map_or(0, cells::blob_count)
        })?;
        if res.mask != CellMask::DATA {
            tracing::debug!(target: "eth", cells = res.mask.count(), "not all data cells: blob transactions dropped");
            return Ok(());
        }
        let mut txs = txs;
        let mut complete = Vec::with_capacity(res.hashes.len());
        for (hash, group) in res.hashes.iter().zip(&res.cells) {
            let Some(at) = txs.iter().position(|t| t.hash() == hash) else {
                continue;
            };
            complete.extend(cells::assemble(txs.swap_remove(at), group));
        }
        let accepted = self.verify(complete).await?;
        txs::broadcast(&self.shared, Some(self.id), &accepted);
        Ok(())
    }
}
