//! The peer's requests: each is charged to its request budget, then answered from the
//! chain or the pool ([`super::super::serve`] and [`super::super::cells`], capped in
//! items and bytes).

use alloy_primitives::B256;

use super::super::messages::{
    self, ETH72, GetBlockHeaders, GetCells, GetReceipts70, Message, RequestPair, code,
};
use super::super::{cells, serve};
use super::{Error, Session};

/// A request from the peer.
pub(super) enum Request {
    Headers(RequestPair<GetBlockHeaders>),
    Bodies(RequestPair<Vec<B256>>),
    Receipts(RequestPair<Vec<B256>>),
    /// eth/70 and later.
    Receipts70(GetReceipts70),
    Pooled(RequestPair<Vec<B256>>),
    /// eth/71 and later.
    AccessLists(RequestPair<Vec<B256>>),
    /// eth/72.
    Cells(GetCells),
}

impl Session {
    /// Answers `req`, or fails with [`Error::Budget`] if the peer is over its budget.
    pub(super) async fn on_request(&mut self, req: Request) -> Result<(), Error> {
        self.take_budget()?;
        let chain = &*self.shared.chain;
        let (c, out) = match req {
            Request::Headers(r) => {
                let headers = serve::headers(chain, &r.message);
                let out = messages::encode_raw_response(r.request_id, &headers);
                (code::BLOCK_HEADERS, out)
            }
            Request::Bodies(r) => {
                let bodies = serve::bodies(chain, &r.message);
                (
                    code::BLOCK_BODIES,
                    messages::encode_raw_response(r.request_id, &bodies),
                )
            }
            Request::Receipts(r) => {
                let lists = if self.version >= messages::ETH69 {
                    serve::receipts(chain, &r.message)
                } else {
                    serve::receipts68(chain, &r.message)
                };
                let out = messages::encode_raw_response(r.request_id, &lists);
                (code::RECEIPTS, out)
            }
            Request::Receipts70(r) => {
                let (receipts, last_block_incomplete) =
                    serve::receipts70(chain, r.first_block_receipt_index, &r.hashes);
                let m = Message::Receipts70(messages::Receipts70 {
                    request_id: r.request_id,
                    last_block_incomplete,
                    receipts,
                });
                (code::RECEIPTS, m.encode())
            }
            Request::Pooled(r) => {
                let elide = self.version >= ETH72;
                let txs = serve::pooled_transactions(&self.shared.pool, &r.message, elide);
                let out = messages::encode_raw_response(r.request_id, &txs);
                (code::POOLED_TRANSACTIONS, out)
            }
            Request::AccessLists(r) => {
                let bals = serve::block_access_lists(&r.message);
                let out = messages::encode_raw_response(r.request_id, &bals);
                (code::BLOCK_ACCESS_LISTS, out)
            }
            Request::Cells(r) => {
                let m = Message::Cells(cells::cells(&self.shared.pool, &r));
                (code::CELLS, m.encode())
            }
        };
        // A failed send means the session is closing; the receive side notices.
        self.send(c, out).await;
        Ok(())
    }

    fn take_budget(&mut self) -> Result<(), Error> {
        if self.budget.try_take(tokio::time::Instant::now().into_std()) {
            Ok(())
        } else {
            Err(Error::Budget)
        }
    }
}
