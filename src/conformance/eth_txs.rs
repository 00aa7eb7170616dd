//! The eth suite's transaction cases (go-ethereum's `suite.go` TestTransaction,
//! TestLargeTxRequest, TestNewPooledTxs and `transaction.go`'s `sendTxs`).
//!
//! go-ethereum first sends `engine_forkchoiceUpdated` to take its node out of sync mode so
//! it accepts pending transactions; we have no engine API client and skip that call (a
//! node that needs it fails these cases). Transactions are signed by the funded accounts of
//! `accounts.json` as go-ethereum's are (`GetSender(i)`: the i-th address in order), or by
//! a fresh key when the chain directory has none: a node that checks balances will then
//! refuse them, one that executes nothing cannot tell.

use std::collections::HashSet;

use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, B256, Bytes, Signature, TxKind, U256};
use protocols::eth::messages::{
    GetBlockHeaders, Message, NewPooledTransactionHashes, RequestPair, code,
};
use secp256k1::{Message as SecpMessage, SECP256K1, SecretKey};
use tokio::time::Instant;

use super::super::conn::TIMEOUT;
use super::super::{Context, Outcome, Verdict, fail};
use super::{EthSuite, decode, rlp};

/// Signs a transaction's signature hash.
fn sign(key: &SecretKey, hash: B256) -> Signature {
    let sig = SECP256K1.sign_ecdsa_recoverable(SecpMessage::from_digest(hash.0), key);
    let (recovery, bytes) = sig.serialize_compact();
    Signature::from_bytes_and_parity(&bytes, i32::from(recovery) == 1)
}

/// The message version our decoder reads a negotiated version's messages in (eth/70
/// changed only the receipts messages, which these cases do not read).
fn decode_version(negotiated: u32) -> u32 {
    negotiated.min(protocols::eth::ETH69)
}

impl EthSuite {
    /// `GetSender(i)`: the key and pending nonce of the i-th funded account, or a fresh key.
    fn sender(&self, i: usize) -> (SecretKey, u64) {
        match self.chain.senders.get(i) {
            Some((_, key, nonce)) => (*key, *nonce),
            None => (SecretKey::new(&mut rand::rng()), 0),
        }
    }

    /// A signed DynamicFeeTx: tip 1 wei, fee cap the head's base fee.
    fn dynamic_fee_tx(
        &self,
        key: &SecretKey,
        nonce: u64,
        gas_limit: u64,
        to: TxKind,
        value: U256,
    ) -> TxEnvelope {
        let tx = TxEip1559 {
            chain_id: self.chain.spec.config.chain_id,
            nonce,
            gas_limit,
            max_fee_per_gas: u128::from(self.chain.head().header.base_fee_per_gas.unwrap_or(0)),
            max_priority_fee_per_gas: 1,
            to,
            value,
            access_list: Default::default(),
            input: Bytes::new(),
        };
        let sig = sign(key, tx.signature_hash());
        TxEnvelope::from(tx.into_signed(sig))
    }

    /// `sendTxs`: `txs` in a Transactions message on one connection must all reach a
    /// second one (in full or announced) within 2 s; header requests on the second are
    /// answered from the chain meanwhile.
    async fn send_txs(&self, txs: &[TxEnvelope]) -> Outcome {
        let mut send = self.dial_and_peer().await?;
        let mut recv = self.dial_and_peer().await?;
        send.write_eth(code::TRANSACTIONS, &rlp(&txs.to_vec()))
            .await
            .context("failed to write message to connection")?;
        let mut missing: HashSet<B256> = txs.iter().map(|t| *t.tx_hash()).collect();
        let end = Instant::now() + TIMEOUT;
        while Instant::now() < end {
            let (c, data) = match recv.read_eth().await {
                Ok(m) => m,
                Err(None) => fail!(
                    "failed to read from connection: disconnect ({} of {} txs seen)",
                    txs.len() - missing.len(),
                    txs.len()
                ),
                Err(Some(e)) => fail!(
                    "failed to read from connection: {e} ({} of {} txs seen)",
                    txs.len() - missing.len(),
                    txs.len()
                ),
            };
            match c {
                code::TRANSACTIONS => {
                    let v = decode_version(recv.negotiated);
                    if let Ok(Message::Transactions(got)) = Message::decode(v, c, &data) {
                        for t in got {
                            missing.remove(t.tx_hash());
                        }
                    }
                }
                code::NEW_POOLED_TRANSACTION_HASHES => {
                    let ann: NewPooledTransactionHashes =
                        decode(&data, "unable to decode eth msg")?;
                    for h in ann.hashes {
                        missing.remove(&h);
                    }
                }
                code::GET_BLOCK_HEADERS => {
                    let req: RequestPair<GetBlockHeaders> =
                        decode(&data, "unable to decode eth msg")?;
                    let headers: Vec<_> = self
                        .chain
                        .get_headers(&req.message)
                        .map(|h| h.into_iter().cloned().collect())
                        .unwrap_or_default();
                    let resp = RequestPair {
                        request_id: req.request_id,
                        message: headers,
                    };
                    let _ = recv.write_eth(code::BLOCK_HEADERS, &rlp(&resp)).await;
                }
                other => fail!("unexpected eth wire msg {other:#04x}"),
            }
            if missing.is_empty() {
                return Ok(());
            }
        }
        fail!(
            "timed out waiting for txs ({} of {} not seen)",
            missing.len(),
            txs.len()
        )
    }

    /// TestTransaction: one valid transaction is propagated.
    pub(super) async fn transaction(&self) -> Outcome {
        let (key, nonce) = self.sender(0);
        let mut to = Address::ZERO;
        to.0[0] = 0xaa; // go-ethereum's `common.Address{0xaa}`
        let tx = self.dynamic_fee_tx(&key, nonce, 30_000, TxKind::Call(to), U256::from(1));
        self.send_txs(&[tx]).await
    }

    /// TestLargeTxRequest: 2000 transactions sent (and propagated), then all requested on
    /// another connection with one GetPooledTransactions; every one returned must be one
    /// of them.
    pub(super) async fn large_tx_request(&self) -> Outcome {
        let count = 2000;
        let (key, nonce) = self.sender(1);
        let txs: Vec<TxEnvelope> = (0..count)
            .map(|i| self.dynamic_fee_tx(&key, nonce + i, 75_000, TxKind::Create, U256::ZERO))
            .collect();
        let hashes: Vec<B256> = txs.iter().map(|t| *t.tx_hash()).collect();
        let set: HashSet<B256> = hashes.iter().copied().collect();
        self.send_txs(&txs).await.map_err(|e| match e {
            Verdict::Fail(r) => Verdict::Fail(format!("failed to send txs: {r}")),
            other => other,
        })?;
        let mut conn = self.dial_and_peer().await?;
        let req = RequestPair {
            request_id: 1234,
            message: hashes,
        };
        conn.write_eth(code::GET_POOLED_TRANSACTIONS, &rlp(&req))
            .await
            .context("could not write to conn")?;
        let data = conn
            .read_msg(super::ETH_OFFSET + u64::from(code::POOLED_TRANSACTIONS))
            .await
            .context("error reading from connection")?;
        let v = decode_version(conn.negotiated);
        let Message::PooledTransactions(resp) =
            Message::decode(v, code::POOLED_TRANSACTIONS, &data)
                .context("invalid transactions in response")?
        else {
            fail!("invalid transactions in response");
        };
        if resp.request_id != req.request_id {
            fail!(
                "unexpected request id in response: got {}, want {}",
                resp.request_id,
                req.request_id
            );
        }
        for got in &resp.message {
            if !set.contains(got.hash()) {
                fail!("unexpected tx received: {}", got.hash());
            }
        }
        Ok(())
    }

    /// TestNewPooledTxs: announce 50 transactions; the node must ask for all 50 in one
    /// GetPooledTransactions (its own announcements and transactions may come first).
    pub(super) async fn new_pooled_txs(&self) -> Outcome {
        let count = 50;
        let (key, nonce) = self.sender(1);
        let txs: Vec<TxEnvelope> = (0..count)
            .map(|i| self.dynamic_fee_tx(&key, nonce + i, 75_000, TxKind::Create, U256::ZERO))
            .collect();
        let ann = NewPooledTransactionHashes {
            types: txs
                .iter()
                .map(|t| t.tx_type() as u8)
                .collect::<Vec<u8>>()
                .into(),
            sizes: txs
                .iter()
                .map(|t| u32::try_from(t.encode_2718_len()).unwrap_or(u32::MAX))
                .collect(),
            hashes: txs.iter().map(|t| *t.tx_hash()).collect(),
        };
        let mut conn = self.dial_and_peer().await?;
        conn.write_eth(code::NEW_POOLED_TRANSACTION_HASHES, &rlp(&ann))
            .await
            .context("failed to write to connection")?;
        loop {
            let (c, data) = match conn.read_eth().await {
                Ok(m) => m,
                Err(None) => fail!("failed to read eth msg: disconnect"),
                Err(Some(e)) => fail!("failed to read eth msg: {e}"),
            };
            match c {
                code::GET_POOLED_TRANSACTIONS => {
                    let req: RequestPair<Vec<B256>> = decode(&data, "unable to decode eth msg")?;
                    if req.message.len() != ann.hashes.len() {
                        fail!(
                            "unexpected number of txs requested: wanted {}, got {}",
                            ann.hashes.len(),
                            req.message.len()
                        );
                    }
                    return Ok(());
                }
                code::NEW_POOLED_TRANSACTION_HASHES | code::TRANSACTIONS => {}
                other => fail!("unexpected eth message {other:#04x}"),
            }
        }
    }
}
