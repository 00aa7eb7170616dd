//! `devp2p test eth`: the eth protocol cases of go-ethereum's
//! `cmd/devp2p/internal/ethtest` (`suite.go` `EthTests`, with `conn.go`'s peering), against
//! a node that has imported the test chain (`--chain DIR`).
//!
//! Our client offers eth/70 and eth/69 and sends the eth/69 Status, as go-ethereum's does.
//! The cases that need go-ethereum's engine API (to make the node accept and mine
//! transactions) or KZG blob sidecars are skipped with that reason; see
//! `docs/conformance.md`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use alloy_primitives::B256;
use alloy_rlp::{Decodable, Encodable, RlpDecodable, RlpEncodable};
use protocols::eth::messages::{
    BlockId, BlockRangeUpdate, GetBlockHeaders, Raw, RequestPair, Status69, code,
};
use rand::RngCore;

#[path = "eth_txs.rs"]
mod txs;

use super::chain::Chain;
use super::conn::{Conn, ConnError, DISC_MSG, ETH_OFFSET, PING_MSG, PONG_MSG, disconnect_reason};
use super::{Context, Outcome, Suite, Verdict, fail};

/// The cases, in go-ethereum's `EthTests` order.
pub const CASES: &[&str] = &[
    "Status",
    "MaliciousHandshake",
    "BlockRangeUpdateExpired",
    "BlockRangeUpdateFuture",
    "BlockRangeUpdateInvalid",
    "GetBlockHeaders",
    "GetNonexistentBlockHeaders",
    "SimultaneousRequests",
    "SameRequestID",
    "ZeroRequestID",
    "GetBlockBodies",
    "GetReceipts",
    "GetLargeReceipts",
    "LargeTxRequest",
    "Transaction",
    "InvalidTxs",
    "NewPooledTxs",
    "BlobViolations",
    "TestBlobTxWithoutSidecar",
    "TestBlobTxWithMismatchedSidecar",
];

/// Why InvalidTxs is skipped.
const NEEDS_STATE: &str = "needs the engine API (go-ethereum sends forkchoiceUpdated first) and \
     expects rejections that need the account state (nonce already used, value above balance): \
     a node that executes no transactions cannot make them";
/// Why the blob cases are skipped.
const NEEDS_KZG: &str = "needs KZG blob sidecars (commitments and cell proofs) and the engine \
     API; this build has no KZG library";

/// The eth suite against one node.
pub struct EthSuite {
    remote: discovery::Node,
    chain: Chain,
}

impl EthSuite {
    /// Loads the test chain from `dir` (`genesis.json`, `chain.rlp`, optional
    /// `accounts.json` and `txinfo.json`).
    pub fn new(remote: discovery::Node, dir: &Path) -> Result<Self, String> {
        Ok(Self {
            remote,
            chain: Chain::load(dir)?,
        })
    }
}

impl Suite for EthSuite {
    fn name(&self) -> &'static str {
        "eth"
    }
    fn cases(&self) -> &'static [&'static str] {
        CASES
    }
    fn case_timeout(&self) -> Duration {
        // The slowest case, MaliciousHandshake, may wait 2 s twice on five connections.
        Duration::from_secs(30)
    }
    async fn run_case(&self, name: &str) -> Outcome {
        match name {
            "Status" => self.status().await,
            "MaliciousHandshake" => super::rlpx::malicious_handshake(&self.remote).await,
            "BlockRangeUpdateExpired" => {
                let head = self.chain.head();
                let n = head.header.number;
                self.block_range_update_tolerated(n.saturating_sub(10), n, head.hash)
                    .await
            }
            "BlockRangeUpdateFuture" => {
                let n = self.chain.head().header.number;
                let mut hash = B256::ZERO;
                rand::rng().fill_bytes(hash.as_mut_slice());
                self.block_range_update_tolerated(n + 10, n + 50, hash)
                    .await
            }
            "BlockRangeUpdateInvalid" => self.block_range_update_invalid().await,
            "GetBlockHeaders" => self.get_block_headers().await,
            "GetNonexistentBlockHeaders" => self.get_nonexistent_block_headers().await,
            "SimultaneousRequests" => self.simultaneous_requests().await,
            "SameRequestID" => self.same_request_id().await,
            "ZeroRequestID" => self.zero_request_id().await,
            "GetBlockBodies" => self.get_block_bodies().await,
            "GetReceipts" => self.get_receipts().await,
            "GetLargeReceipts" => self.get_large_receipts().await,
            "LargeTxRequest" => self.large_tx_request().await,
            "Transaction" => self.transaction().await,
            "InvalidTxs" => Err(Verdict::Skip(NEEDS_STATE.into())),
            "NewPooledTxs" => self.new_pooled_txs().await,
            "BlobViolations" | "TestBlobTxWithoutSidecar" | "TestBlobTxWithMismatchedSidecar" => {
                Err(Verdict::Skip(NEEDS_KZG.into()))
            }
            other => fail!("unknown case {other}"),
        }
    }
}

fn rlp<T: Encodable>(v: &T) -> Vec<u8> {
    alloy_rlp::encode(v)
}

fn decode<T: Decodable>(data: &[u8], what: &str) -> Result<T, Verdict> {
    T::decode(&mut &data[..]).context(what)
}

/// eth/70 GetReceipts: `[request-id, first-block-receipt-index, [hash, ...]]`.
#[derive(RlpEncodable)]
struct GetReceipts70 {
    request_id: u64,
    first_block_receipt_index: u64,
    hashes: Vec<B256>,
}

/// eth/70 Receipts: `[request-id, last-block-incomplete, [receipts, ...]]`.
#[derive(RlpDecodable)]
struct Receipts70 {
    request_id: u64,
    _last_block_incomplete: bool,
    list: Vec<Raw>,
}

impl EthSuite {
    /// `dialAndPeer`: dial, Hello exchange, Status exchange.
    async fn dial_and_peer(&self) -> Result<Conn, Verdict> {
        let mut conn = Conn::dial(&self.remote)
            .await
            .map_err(|e| Verdict::Fail(format!("peering failed: {e}")))?;
        self.peer(&mut conn)
            .await
            .map_err(|e| Verdict::Fail(format!("peering failed: {e}")))?;
        Ok(conn)
    }

    /// The hash of test-chain block `n`; a chain too short for the case fails it.
    fn block_hash(&self, n: usize) -> Result<B256, Verdict> {
        match self.chain.blocks.get(n) {
            Some(b) => Ok(b.hash),
            None => fail!(
                "the test chain has {} blocks; the case needs block {n}",
                self.chain.len()
            ),
        }
    }

    /// `Conn.peer`: the Hello exchange, then the Status exchange.
    async fn peer(&self, conn: &mut Conn) -> Result<(), String> {
        conn.handshake()
            .await
            .map_err(|e| format!("handshake failed: {e}"))?;
        self.status_exchange(conn)
            .await
            .map_err(|e| format!("status exchange failed: {e}"))
    }

    /// `Conn.statusExchange`: their Status must name our chain's head, hash and fork id and
    /// a version we offered; then ours (eth/69 layout, network id = chain id).
    async fn status_exchange(&self, conn: &mut Conn) -> Result<(), String> {
        let chain = &self.chain;
        loop {
            let (id, data) = conn
                .read()
                .await
                .map_err(|e| format!("failed to read from connection: {e}"))?;
            match id {
                id if id == ETH_OFFSET + u64::from(code::STATUS) => {
                    let msg = Status69::decode(&mut &data[..])
                        .map_err(|e| format!("error decoding status packet: {e}"))?;
                    let head = chain.head();
                    if msg.latest != head.header.number {
                        return Err(format!(
                            "wrong head block in status, want: {}, have {}",
                            head.header.number, msg.latest
                        ));
                    }
                    if msg.latest_hash != head.hash {
                        return Err(format!(
                            "wrong head block in status, want: {} (block {}) have {}",
                            head.hash, head.header.number, msg.latest_hash
                        ));
                    }
                    if msg.fork_id != chain.fork_id() {
                        return Err(format!(
                            "wrong fork ID in status: have {:?}, want {:?}",
                            msg.fork_id,
                            chain.fork_id()
                        ));
                    }
                    if !conn
                        .caps
                        .iter()
                        .any(|(n, v)| n == b"eth" && *v == msg.version)
                    {
                        return Err(format!(
                            "wrong protocol version: have {}, want one of eth/70, eth/69",
                            msg.version
                        ));
                    }
                    break;
                }
                DISC_MSG => {
                    return Err(format!("disconnect received: {}", disconnect_reason(&data)));
                }
                PING_MSG => {
                    let _ = conn.write(PONG_MSG, &rlpx::p2p::EMPTY_LIST).await;
                }
                other => return Err(format!("bad status message: code {other}")),
            }
        }
        if conn.negotiated == 0 {
            return Err("eth protocol version must be set in Conn".into());
        }
        let head = chain.head();
        let status = Status69 {
            version: conn.negotiated,
            network_id: chain.spec.config.chain_id,
            genesis: chain.blocks[0].hash,
            fork_id: chain.fork_id(),
            earliest: 0,
            latest: head.header.number,
            latest_hash: head.hash,
        };
        conn.write_eth(code::STATUS, &rlp(&status))
            .await
            .map_err(|e| format!("write to connection failed: {e}"))
    }

    async fn status(&self) -> Outcome {
        self.dial_and_peer().await.map(drop)
    }

    /// Reads a BlockHeaders response: its request id and the headers' encodings.
    async fn read_headers(conn: &mut Conn) -> Result<RequestPair<Vec<Raw>>, Verdict> {
        let data = conn
            .read_msg(ETH_OFFSET + u64::from(code::BLOCK_HEADERS))
            .await
            .context("error reading msg")?;
        decode(&data, "invalid headers received")
    }

    /// `checkHeadersAgainstChain`: the response holds exactly the chain's headers for
    /// `req` (compared by their RLP, go-ethereum compares the decoded structs).
    fn check_headers(&self, req: &GetBlockHeaders, resp: &RequestPair<Vec<Raw>>) -> Outcome {
        let expected = self.chain.get_headers(req).map_err(|e| {
            Verdict::Fail(format!("test chain failed to get expected headers: {e}"))
        })?;
        let same = expected.len() == resp.message.len()
            && expected
                .iter()
                .zip(&resp.message)
                .all(|(want, got)| rlp(*want) == got.0.as_ref());
        if !same {
            fail!(
                "header mismatch for request ID {} ({} items): expected blocks {:?}",
                resp.request_id,
                resp.message.len(),
                expected.iter().map(|h| h.number).collect::<Vec<_>>()
            );
        }
        Ok(())
    }

    async fn send_headers_request(
        conn: &mut Conn,
        request_id: u64,
        req: GetBlockHeaders,
    ) -> Outcome {
        let pair = RequestPair {
            request_id,
            message: req,
        };
        conn.write_eth(code::GET_BLOCK_HEADERS, &rlp(&pair))
            .await
            .context("could not write to connection")
    }

    /// One request on a fresh connection; the response must carry its id and the chain's
    /// headers (GetBlockHeaders, ZeroRequestID).
    async fn headers_round_trip(&self, request_id: u64, req: GetBlockHeaders) -> Outcome {
        let mut conn = self.dial_and_peer().await?;
        Self::send_headers_request(&mut conn, request_id, req).await?;
        let resp = Self::read_headers(&mut conn).await?;
        if resp.request_id != request_id {
            fail!("unexpected request id");
        }
        self.check_headers(&req, &resp)
    }

    async fn get_block_headers(&self) -> Outcome {
        let req = GetBlockHeaders {
            origin: BlockId::Hash(self.block_hash(1)?),
            amount: 2,
            skip: 1,
            reverse: false,
        };
        self.headers_round_trip(33, req).await
    }

    async fn get_nonexistent_block_headers(&self) -> Outcome {
        let mut conn = self.dial_and_peer().await?;
        let req = GetBlockHeaders {
            origin: BlockId::Number(u64::MAX),
            amount: 1,
            skip: 0,
            reverse: false,
        };
        // Ten times: some clients are lenient on the first few invalid requests.
        for i in 0..10u64 {
            let pair = RequestPair {
                request_id: i,
                message: req,
            };
            if let Err(e) = conn.write_eth(code::GET_BLOCK_HEADERS, &rlp(&pair)).await {
                fail!("write failed after {} requests: {e}", i + 1);
            }
        }
        if let Ok((DISC_MSG, data)) = conn.read().await {
            fail!("peer improperly disconnected: {}", disconnect_reason(&data));
        }
        Ok(())
    }

    /// `collectHeaderResponses`: `n` BlockHeaders responses keyed by `identity`.
    async fn collect_header_responses(
        conn: &mut Conn,
        n: usize,
        identity: impl Fn(&RequestPair<Vec<Raw>>) -> Result<u64, Verdict>,
    ) -> Result<BTreeMap<u64, RequestPair<Vec<Raw>>>, Verdict> {
        let mut resp = BTreeMap::new();
        for _ in 0..n {
            let r = Self::read_headers(conn).await?;
            let id = identity(&r)?;
            if resp.contains_key(&id) {
                fail!("duplicate response {}", r.request_id);
            }
            resp.insert(id, r);
        }
        Ok(resp)
    }

    async fn simultaneous_requests(&self) -> Outcome {
        let mut conn = self.dial_and_peer().await?;
        let req1 = GetBlockHeaders {
            origin: BlockId::Hash(self.block_hash(1)?),
            amount: 2,
            skip: 1,
            reverse: false,
        };
        let req2 = GetBlockHeaders { amount: 4, ..req1 };
        Self::send_headers_request(&mut conn, 111, req1).await?;
        Self::send_headers_request(&mut conn, 222, req2).await?;
        // They may arrive in either order.
        let resp = Self::collect_header_responses(&mut conn, 2, |m| {
            if m.request_id != 111 && m.request_id != 222 {
                fail!("response with unknown request ID: {}", m.request_id);
            }
            Ok(m.request_id)
        })
        .await?;
        self.check_headers(&req1, &resp[&111])?;
        self.check_headers(&req2, &resp[&222])
    }

    async fn same_request_id(&self) -> Outcome {
        let mut conn = self.dial_and_peer().await?;
        let req_id = 1234;
        let request1 = GetBlockHeaders {
            origin: BlockId::Number(1),
            amount: 2,
            skip: 0,
            reverse: false,
        };
        let request2 = GetBlockHeaders {
            origin: BlockId::Number(33),
            amount: 3,
            skip: 0,
            reverse: false,
        };
        Self::send_headers_request(&mut conn, req_id, request1).await?;
        Self::send_headers_request(&mut conn, req_id, request2).await?;
        // Same id: tell the two responses apart by their length.
        let resp = Self::collect_header_responses(&mut conn, 2, |m| {
            let id = m.message.len() as u64;
            if id != 2 && id != 3 {
                fail!("invalid number of headers in response: {id}");
            }
            Ok(id)
        })
        .await?;
        self.check_headers(&request1, &resp[&2])?;
        self.check_headers(&request2, &resp[&3])
    }

    async fn zero_request_id(&self) -> Outcome {
        let req = GetBlockHeaders {
            origin: BlockId::Number(0),
            amount: 2,
            skip: 0,
            reverse: false,
        };
        self.headers_round_trip(0, req).await
    }

    async fn get_block_bodies(&self) -> Outcome {
        let mut conn = self.dial_and_peer().await?;
        let req = RequestPair {
            request_id: 55,
            message: vec![self.block_hash(54)?, self.block_hash(75)?],
        };
        conn.write_eth(code::GET_BLOCK_BODIES, &rlp(&req))
            .await
            .context("could not write to connection")?;
        let data = conn
            .read_msg(ETH_OFFSET + u64::from(code::BLOCK_BODIES))
            .await
            .context("error reading block bodies msg")?;
        let resp: RequestPair<Vec<Raw>> = decode(&data, "invalid block bodies")?;
        if resp.request_id != req.request_id {
            fail!(
                "unexpected request id in response: got {}, want {}",
                resp.request_id,
                req.request_id
            );
        }
        if resp.message.len() != req.message.len() {
            fail!(
                "wrong bodies in response: expected {} bodies, got {}",
                req.message.len(),
                resp.message.len()
            );
        }
        Ok(())
    }

    async fn get_receipts(&self) -> Outcome {
        let mut conn = self.dial_and_peer().await?;
        // Up to three blocks with transactions, not the large-receipt one.
        let hashes: Vec<B256> = self
            .chain
            .blocks
            .iter()
            .enumerate()
            .filter(|(i, b)| {
                Some(*i as u64) != self.chain.tx_info.large_receipt_block && b.tx_count > 0
            })
            .map(|(_, b)| b.hash)
            .take(3)
            .collect();
        let want = hashes.len();
        let (request_id, got_id, got) = if conn.negotiated < 70 {
            let req = RequestPair {
                request_id: 66,
                message: hashes,
            };
            conn.write_eth(code::GET_RECEIPTS, &rlp(&req))
                .await
                .context("could not write to connection")?;
            let data = conn
                .read_msg(ETH_OFFSET + u64::from(code::RECEIPTS))
                .await
                .context("error reading block receipts msg")?;
            let resp: RequestPair<Vec<Raw>> = decode(&data, "invalid receipts")?;
            (66, resp.request_id, resp.message.len())
        } else {
            let req = GetReceipts70 {
                request_id: 66,
                first_block_receipt_index: 0,
                hashes,
            };
            conn.write_eth(code::GET_RECEIPTS, &rlp(&req))
                .await
                .context("could not write to connection")?;
            let data = conn
                .read_msg(ETH_OFFSET + u64::from(code::RECEIPTS))
                .await
                .context("error reading block receipts msg")?;
            let resp: Receipts70 = decode(&data, "invalid receipts")?;
            (66, resp.request_id, resp.list.len())
        };
        if got_id != request_id {
            fail!("unexpected request id in response: got {got_id}, want {request_id}");
        }
        if got != want {
            fail!("wrong receipts in response: expected {want} receipts, got {got}");
        }
        Ok(())
    }

    async fn get_large_receipts(&self) -> Outcome {
        let conn = self.dial_and_peer().await?;
        if conn.negotiated < 70 || self.chain.tx_info.large_receipt_block.is_none() {
            // go-ethereum returns (passes) here; we say why nothing was checked.
            return Err(Verdict::Skip(format!(
                "meaningful only with eth/70 (negotiated eth/{}) and txinfo.json's \
                 tx-largereceipt ({})",
                conn.negotiated,
                if self.chain.tx_info.large_receipt_block.is_some() {
                    "present"
                } else {
                    "absent"
                }
            )));
        }
        Err(Verdict::Skip(
            "eth/70 partial receipt reassembly is not ported yet".into(),
        ))
    }

    /// BlockRangeUpdateExpired and BlockRangeUpdateFuture: an update the node must accept;
    /// then ten base-protocol pings 100 ms apart must not meet a disconnect.
    async fn block_range_update_tolerated(
        &self,
        earliest: u64,
        latest: u64,
        latest_hash: B256,
    ) -> Outcome {
        let mut conn = self.dial_and_peer().await?;
        let update = BlockRangeUpdate {
            earliest,
            latest,
            latest_hash,
        };
        let _ = conn
            .write_eth(code::BLOCK_RANGE_UPDATE, &rlp(&update))
            .await;
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            conn.write(PING_MSG, &rlpx::p2p::EMPTY_LIST)
                .await
                .context("write error")?;
            match conn.read().await {
                Err(e) => fail!("read error: {e}"),
                Ok((DISC_MSG, data)) => fail!("got disconnect: {}", disconnect_reason(&data)),
                Ok(_) => {}
            }
        }
        Ok(())
    }

    async fn block_range_update_invalid(&self) -> Outcome {
        let mut conn = self.dial_and_peer().await?;
        let update = BlockRangeUpdate {
            earliest: 10,
            latest: 8,
            latest_hash: self.block_hash(8)?,
        };
        let _ = conn
            .write_eth(code::BLOCK_RANGE_UPDATE, &rlp(&update))
            .await;
        match conn.read().await {
            Err(e) => fail!("expected disconnect, got err: {e}"),
            Ok((DISC_MSG, _)) => Ok(()),
            Ok((id, _)) => fail!("expected disconnect message, got msg code {id}"),
        }
    }
}

impl From<ConnError> for Verdict {
    fn from(e: ConnError) -> Self {
        Verdict::Fail(e.to_string())
    }
}
