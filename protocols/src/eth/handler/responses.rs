//! Answers to our requests: matched by request id to what we asked (an answer we did not
//! ask for, of another kind or with more items than asked is a breach), then handed to
//! the requester. Pooled transactions we fetched are checked against their
//! announcement and the peer's budget, verified off the runtime, pooled and passed on;
//! eth/72 blob transactions (which come without blobs) wait for their cells first
//! ([`super::cells`]).

use crate::eth::messages::PooledTransaction;
use alloy_consensus::{BlockBody, Header, TxEnvelope};
use alloy_primitives::B256;
use tokio::time::Instant;

use super::super::cells;
use super::super::messages::{Cells, Receipt69, Receipts70, RequestPair};
use super::super::pool::{self, Pooled};
use super::super::receipts;
use super::super::requests::{Kind, Match};
use super::super::txfetch::Meta;
use super::super::txs::{self, FetchInput};
use super::super::verify::{self, Verdict};
use super::{Error, Reply, Session};

/// An answer from the peer to one of our requests.
pub(super) enum Response {
    Headers(RequestPair<Vec<Header>>),
    Bodies(RequestPair<Vec<BlockBody<TxEnvelope>>>),
    Pooled(RequestPair<Vec<PooledTransaction>>),
    /// eth/72.
    Cells(Cells),
    /// Any version's Receipts, as eth/69 lists.
    Receipts(u64, super::super::receipts::Answer),
}

impl Response {
    pub(super) fn receipts68(r: RequestPair<Vec<Vec<alloy_consensus::ReceiptEnvelope>>>) -> Self {
        let lists = (r.message.iter())
            .map(|l| l.iter().map(receipts::from_envelope).collect())
            .collect();
        Self::receipts(r.request_id, lists, false)
    }
    pub(super) fn receipts69(r: RequestPair<Vec<Vec<Receipt69>>>) -> Self {
        Self::receipts(r.request_id, r.message, false)
    }
    pub(super) fn receipts70(r: Receipts70) -> Self {
        Self::receipts(r.request_id, r.receipts, r.last_block_incomplete)
    }
    fn receipts(id: u64, lists: Vec<Vec<Receipt69>>, last_block_incomplete: bool) -> Self {
        Self::Receipts(
            id,
            receipts::Answer {
                lists,
                last_block_incomplete,
            },
        )
    }
}

impl Session {
    /// Matches `res` (message code `c`) to our request and delivers it. A late answer
    /// (the request timed out) is dropped quietly.
    pub(super) async fn on_response(&mut self, c: u8, res: Response) -> Result<(), Error> {
        let (id, is_headers) = match &res {
            Response::Headers(r) => (r.request_id, true),
            Response::Bodies(r) => (r.request_id, false),
            Response::Pooled(r) => (r.request_id, false),
            Response::Cells(r) => (r.request_id, false),
            Response::Receipts(id, _) => (*id, false),
        };
        let (kind, reply) = match self.tracker.complete(id, is_headers) {
            Match::Answer { kind, reply, sent } => {
                // The tracker's clock (the runtime's, virtual in tests).
                let rtt = Instant::now().into_std().saturating_duration_since(sent);
                self.shared.metrics.observe_round_trip(&kind, rtt);
                (kind, reply)
            }
            Match::Late => {
                tracing::debug!(target: "eth", code = c, "late answer dropped");
                return Ok(());
            }
            _ => return Err(Error::Unsolicited { code: c }),
        };
        let too_many = Error::TooManyItems { code: c };
        match (res, kind, reply) {
            (Response::Headers(r), Kind::Headers { amount }, Reply::Headers(tx)) => {
                if r.message.len() as u64 > amount {
                    return Err(too_many);
                }
                let _ = tx.send(Ok(r.message));
            }
            (Response::Bodies(r), Kind::Bodies { count }, Reply::Bodies(tx)) => {
                if r.message.len() > count {
                    return Err(too_many);
                }
                let _ = tx.send(Ok(r.message));
            }
            (Response::Receipts(_, a), Kind::Receipts { count }, Reply::Receipts(tx)) => {
                // An incomplete list must be the last of a non-empty answer: the flag
                // on an empty one would have us ask forever.
                if a.lists.len() > count || (a.last_block_incomplete && a.lists.is_empty()) {
                    return Err(too_many);
                }
                let _ = tx.send(Ok(a));
            }
            (Response::Pooled(r), Kind::Pooled { count }, Reply::Pooled(id, asked)) => {
                if r.message.len() > count {
                    return Err(too_many);
                }
                self.on_pooled(id, &asked, r.message).await?;
            }
            (Response::Cells(r), Kind::Cells { .. }, Reply::Cells(req, txs)) => {
                self.on_cells(&req, txs, r).await?;
            }
            _ => return Err(Error::Unsolicited { code: c }),
        }
        Ok(())
    }

    /// Handles the answer to the fetcher's request `id` for `asked`.
    async fn on_pooled(
        &mut self,
        id: u64,
        asked: &[(B256, Meta)],
        txs: Vec<PooledTransaction>,
    ) -> Result<(), Error> {
        let now = Instant::now().into_std();
        let mut next = asked.iter();
        let mut delivered = Vec::with_capacity(txs.len());
        let mut admitted = Vec::with_capacity(txs.len());
        let mut flood = false;
        let mut lacking = Vec::new();
        for tx in txs {
            let hash = *tx.hash();
            // In request order, a subset of it (spec: unknown ones are left out).
            let meta = next
                .find(|(h, _)| *h == hash)
                .map(|(_, m)| *m)
                .ok_or(Error::Unrequested)?;
            if alloy_eips::Typed2718::ty(&tx) != meta.kind {
                return Err(Error::AnnouncedType);
            }
            self.knows.mark_txs([hash]);
            let size = alloy_eips::eip2718::Encodable2718::encode_2718_len(&tx);
            if size != meta.size as usize {
                // Not worth a disconnect (encodings of sidecars vary), nor pooling; not
                // counted as delivered, so another announcer is asked.
                tracing::debug!(target: "eth", %hash, size, announced = meta.size, "pooled transaction size differs from announcement");
                continue;
            }
            // Over budget: not checked and not counted as delivered (another announcer
            // is asked).
            match self.charge(now, &hash, size) {
                Verdict::Admit if cells::lacks_blobs(&tx) => {
                    delivered.push(hash);
                    lacking.push(tx);
                }
                Verdict::Admit => {
                    delivered.push(hash);
                    admitted.push(tx);
                }
                Verdict::Drop => {}
                Verdict::Offender => flood = true,
            }
        }
        let accepted = self.verify(admitted).await?;
        self.shared.fetcher(FetchInput::Delivered {
            peer: self.id,
            id,
            hashes: delivered,
        });
        txs::broadcast(&self.shared, Some(self.id), &accepted);
        if flood {
            return Err(Error::TxFlood);
        }
        if !lacking.is_empty() {
            self.fetch_cells(lacking).await;
        }
        Ok(())
    }

    /// Charges a new transaction to the peer's budget (see [`verify::charge`]).
    fn charge(&mut self, now: std::time::Instant, hash: &B256, size: usize) -> Verdict {
        verify::charge(&mut self.meter, &self.shared.pool, hash, size, now)
    }

    /// Checks `txs` (signature recovery) on the worker pool, [`verify::CHUNK`] at a time
    /// so that other peers' checks take turns with ours, and pools what is valid.
    pub(super) async fn verify(&self, txs: Vec<PooledTransaction>) -> Result<Vec<Pooled>, Error> {
        let mut accepted = Vec::new();
        let mut txs = txs.into_iter();
        loop {
            let chunk: Vec<_> = txs.by_ref().take(verify::CHUNK).collect();
            if chunk.is_empty() {
                return Ok(accepted);
            }
            let pool = self.shared.pool.clone();
            let job = move || {
                chunk
                    .into_iter()
                    .map(|tx| pool.add(tx, pool::Origin::Remote))
                    .collect::<Vec<_>>()
            };
            // `None`: the runtime is shutting down.
            let Some(results) = self.shared.workers.run(job).await else {
                return Ok(accepted);
            };
            for r in results {
                accepted.extend(self.pool_add(r)?);
            }
        }
    }

    /// The pool's verdict on a peer's transaction: pooled, or dropped (with the reason at
    /// trace level: peers relay transactions that became invalid, which is no offence),
    /// except a bad signature, which no transaction ever recovers from: an honest peer,
    /// having checked it, never relays one.
    fn pool_add(&self, result: Result<Pooled, pool::Error>) -> Result<Option<Pooled>, Error> {
        match result {
            Ok(p) => Ok(Some(p)),
            Err(pool::Error::Signature) => Err(Error::BadSignature),
            Err(pool::Error::Known) => Ok(None),
            Err(e) => {
                tracing::trace!(target: "eth", error = %e, "transaction not pooled");
                Ok(None)
            }
        }
    }
}
