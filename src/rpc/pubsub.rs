//! `eth_subscribe` / `eth_unsubscribe` over WebSocket (go-ethereum's `newHeads` and
//! `newPendingTransactions`), fed by the chain [`Importer`](crate::chain::Importer) and
//! the eth pool's broadcasts.
//!
//! Bounds, per WebSocket connection: at most [`Config::max_subscriptions`] subscriptions
//! (more are refused with -32006), and one outgoing queue of
//! [`Config::max_queued_messages`] messages shared by answers and notifications.
//!
//! A slow client loses notifications, it never slows the node: each subscription reads
//! its own receiver of a broadcast channel, and
//! - when the connection's queue is full, the notification is dropped (and not even
//!   built); the subscription goes on with the next event;
//! - when the subscription falls behind the broadcast's backlog (the client, or this
//!   task, is slower than events arrive), the missed events are skipped;
//! - a client that stops reading altogether is disconnected once a write has made no
//!   progress for [`Limits::write_timeout`](super::http::Limits::write_timeout), or when it
//!   misses WebSocket pings.
//!
//! Both losses are counted and logged at debug level when the subscription ends.
//!
//! [`Config::max_subscriptions`]: super::Config::max_subscriptions
//! [`Config::max_queued_messages`]: super::Config::max_queued_messages

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use alloy_primitives::B256;
use serde_json::value::RawValue;

use alloy_consensus::Transaction as _;
use alloy_eips::Typed2718 as _;
use jsonrpsee::server::{IdProvider, PendingSubscriptionSink, SubscriptionSink};
use jsonrpsee::types::{ErrorObjectOwned, SubscriptionId};
use jsonrpsee::{RpcModule, SubscriptionMessage};
use protocols::eth::messages::PooledTransaction;
use protocols::eth::pool::Pooled;
use serde_json::{Value, json};
use tokio::sync::broadcast::{self, error::RecvError};
use tracing::debug;

use super::eth::{header_fields, quantity, u256};
use super::{Api, Error};
use crate::chain::importer::Accepted;

/// Registers `eth_subscribe`, its notifications (`eth_subscription`) and
/// `eth_unsubscribe`.
pub(super) fn register(module: &mut RpcModule<Api>) {
    let registered = module.register_subscription(
        "eth_subscribe",
        "eth_subscription",
        "eth_unsubscribe",
        |params, pending, api, _| async move {
            let args: Vec<Value> = match params.parse::<Option<Vec<Value>>>() {
                Ok(a) => a.unwrap_or_default(),
                Err(_) => return reject(pending, "expected positional parameters").await,
            };
            let kind = args.first().and_then(Value::as_str).unwrap_or_default();
            match (kind, args.len()) {
                ("newHeads", 1) => {
                    let Some(importer) = &api.importer else {
                        return reject(pending, "newHeads needs a chain").await;
                    };
                    let rx = importer.subscribe();
                    let store = importer.store().clone();
                    if let Ok(sink) = pending.accept().await {
                        let render = |a: Accepted| raw(&head(&store, a)?);
                        forward(sink, rx, "newHeads", render).await;
                    }
                }
                ("newPendingTransactions", 1 | 2) => {
                    let full = match args.get(1) {
                        None => false,
                        Some(v) => match v.as_bool() {
                            Some(b) => b,
                            None => return reject(pending, "argument 1 must be a bool").await,
                        },
                    };
                    let Some(eth) = &api.eth else {
                        return reject(pending, "newPendingTransactions needs a pool").await;
                    };
                    let rx = eth.pool().subscribe();
                    if let Ok(sink) = pending.accept().await {
                        let render = |p: Pooled| match full {
                            true => api.rendered.get(&p),
                            false => raw(&Value::String(p.hash.to_string())),
                        };
                        forward(sink, rx, "newPendingTransactions", render).await;
                    }
                }
                _ => reject(pending, "unknown subscription or wrong arguments").await,
            }
        },
    );
    // The names are distinct constants.
    debug_assert!(registered.is_ok());
}

async fn reject(pending: PendingSubscriptionSink, why: &str) {
    pending
        .reject(ErrorObjectOwned::from(Error::InvalidParams(why.into())))
        .await;
}

/// Sends `render(event)` for each event of `rx` until the client unsubscribes or leaves,
/// dropping what does not fit the connection's queue and skipping what `rx` lost.
async fn forward<T: Clone>(
    mut sink: SubscriptionSink,
    mut rx: broadcast::Receiver<T>,
    kind: &'static str,
    render: impl Fn(T) -> Option<Box<RawValue>>,
) {
    let (mut sent, mut dropped, mut lagged) = (0u64, 0u64, 0u64);
    loop {
        let event = tokio::select! {
            _ = sink.closed() => break,
            e = rx.recv() => e,
        };
        let event = match event {
            Ok(e) => e,
            Err(RecvError::Lagged(n)) => {
                lagged += n;
                continue;
            }
            Err(RecvError::Closed) => break,
        };
        if sink.capacity() == 0 {
            dropped += 1;
            continue;
        }
        let Some(raw) = render(event) else { continue };
        match sink.try_send(SubscriptionMessage::from(raw)) {
            Ok(()) => sent += 1,
            Err(jsonrpsee::core::server::TrySendError::Full(_)) => dropped += 1,
            Err(jsonrpsee::core::server::TrySendError::Closed(_)) => break,
        }
    }
    debug!(target: "rpc", kind, sent, dropped, lagged, "subscription ended");
}

/// A `newHeads` notification: the block's header if it is canonical after its import.
fn head(store: &crate::chain::Store, a: Accepted) -> Option<Value> {
    let number = a.block.header.number;
    // A side-chain block, or one already replaced: not a head (go-ethereum sends
    // chain-head events only). The lookup is one indexed read.
    if store.canonical_hash(number).ok().flatten() != Some(a.hash) {
        return None;
    }
    Some(Value::Object(header_fields(&a.block.header, a.hash)))
}

fn raw(v: &Value) -> Option<Box<RawValue>> {
    serde_json::value::to_raw_value(v).ok()
}

/// Transaction objects recently rendered for `newPendingTransactions` with `true`,
/// shared by all subscriptions of the node: each pooled transaction is decoded (blob
/// sidecar included) and rendered once, not once per subscription (64 connections × 64
/// subscriptions would otherwise repeat it 4096 times).
#[derive(Debug, Default)]
pub(super) struct Rendered {
    recent: Mutex<VecDeque<(B256, Arc<Slot>)>>,
    renders: AtomicU64,
}

/// One transaction's object, once rendered (`None`: its encoding did not decode).
type Slot = OnceLock<Option<Box<RawValue>>>;

/// Transactions kept rendered: subscribers a few events apart still share the work; a
/// transaction object is at most about 260 KiB, so this holds at most about 2 MiB.
const RENDERED: usize = 8;

impl Rendered {
    /// `p` as a transaction object, rendered by the first subscriber that asks.
    fn get(&self, p: &Pooled) -> Option<Box<RawValue>> {
        let slot = {
            let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
            match recent.iter().find(|(h, _)| *h == p.hash) {
                Some((_, slot)) => slot.clone(),
                None => {
                    if recent.len() == RENDERED {
                        recent.pop_front();
                    }
                    let slot = Arc::new(OnceLock::new());
                    recent.push_back((p.hash, slot.clone()));
                    slot
                }
            }
        };
        // Rendered outside the lock; a second subscriber asking meanwhile waits for it.
        slot.get_or_init(|| {
            self.renders.fetch_add(1, Ordering::Relaxed);
            // The encoding was validated when pooled; a failure here is not the client's.
            let tx = p.transaction().ok()?;
            raw(&tx_object(p, &tx))
        })
        .clone()
    }
}

/// go-ethereum's `RPCTransaction` of a pending transaction (no block fields).
fn tx_object(p: &Pooled, tx: &PooledTransaction) -> Value {
    let sig = tx.signature();
    let ty = tx.ty();
    let mut o = json!({
        "blockHash": null,
        "blockNumber": null,
        "transactionIndex": null,
        "hash": p.hash.to_string(),
        "from": p.sender.to_string().to_lowercase(),
        "type": quantity(ty),
        "nonce": quantity(tx.nonce()),
        "gas": quantity(tx.gas_limit()),
        "to": tx.to().map(|a| a.to_string().to_lowercase()),
        "value": u256(tx.value()),
        "input": tx.input().to_string(),
        "r": u256(sig.r()),
        "s": u256(sig.s()),
    });
    let parity = u64::from(sig.v());
    let v = match (ty, tx.chain_id()) {
        // EIP-155.
        (0, Some(id)) => quantity(u128::from(id) * 2 + 35 + u128::from(parity)),
        (0, None) => quantity(27 + parity),
        _ => quantity(parity),
    };
    o["v"] = v;
    if ty != 0 {
        o["yParity"] = quantity(parity);
    }
    if let Some(id) = tx.chain_id() {
        o["chainId"] = quantity(id);
    }
    match tx.gas_price() {
        Some(price) => o["gasPrice"] = quantity(price),
        None => {
            // go-ethereum shows a pending dynamic-fee transaction's fee cap as its price.
            o["gasPrice"] = quantity(tx.max_fee_per_gas());
            o["maxFeePerGas"] = quantity(tx.max_fee_per_gas());
            o["maxPriorityFeePerGas"] = quantity(tx.max_priority_fee_per_gas().unwrap_or(0));
        }
    }
    if let Some(list) = tx.access_list() {
        o["accessList"] = serde_json::to_value(list).unwrap_or(Value::Array(Vec::new()));
    }
    if let Some(fee) = tx.max_fee_per_blob_gas() {
        o["maxFeePerBlobGas"] = quantity(fee);
    }
    if let Some(hashes) = tx.blob_versioned_hashes() {
        let list = hashes
            .iter()
            .map(|h| Value::String(h.to_string()))
            .collect();
        o["blobVersionedHashes"] = Value::Array(list);
    }
    if let Some(auths) = tx.authorization_list() {
        o["authorizationList"] = serde_json::to_value(auths).unwrap_or(Value::Array(Vec::new()));
    }
    o
}

/// Subscription ids as go-ethereum writes them: `0x` and 32 hex digits, unguessable
/// (std's randomly keyed SipHash over a counter) though ids only ever name the
/// connection's own subscriptions.
#[derive(Debug, Default)]
pub(super) struct HexIds {
    next: AtomicU64,
}

impl IdProvider for HexIds {
    fn next_id(&self) -> SubscriptionId<'static> {
        use std::hash::{BuildHasher, Hasher};
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let word = |salt: u64| {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(n);
            h.write_u64(salt);
            h.finish()
        };
        SubscriptionId::Str(format!("0x{:016x}{:016x}", word(1), word(2)).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_consensus::{Signed, TxLegacy};
    use alloy_eips::eip2718::Encodable2718 as _;

    fn pooled(nonce: u64) -> Pooled {
        let tx = TxLegacy {
            nonce,
            gas_limit: 21_000,
            ..TxLegacy::default()
        };
        let sig = alloy_primitives::Signature::test_signature();
        let tx = PooledTransaction::Legacy(Signed::new_unhashed(tx, sig));
        let encoded = tx.encoded_2718();
        Pooled {
            hash: *tx.hash(),
            sender: alloy_primitives::Address::ZERO,
            nonce,
            kind: 0,
            size: encoded.len(),
            encoded: encoded.into(),
            tip: 0,
            fee_cap: 0,
            blob: false,
        }
    }

    /// Many subscriptions asking for the same transaction share one decode and render.
    #[test]
    fn each_transaction_is_rendered_once() {
        let rendered = Rendered::default();
        let (a, b) = (pooled(1), pooled(2));
        for _ in 0..64 {
            let v = rendered.get(&a).expect("rendered");
            let v: Value = serde_json::from_str(v.get()).unwrap();
            assert_eq!(v["hash"], a.hash.to_string());
        }
        assert_eq!(rendered.renders.load(Ordering::Relaxed), 1);
        for _ in 0..64 {
            rendered.get(&a);
            rendered.get(&b);
        }
        assert_eq!(rendered.renders.load(Ordering::Relaxed), 2);
    }
}
