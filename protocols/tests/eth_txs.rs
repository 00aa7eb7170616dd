//! Transactions against our node with a scripted raw peer: broadcasts are pooled,
//! announcements are fetched, GetPooledTransactions is served from the pool, local
//! transactions are sent on, and malformed exchanges disconnect with the right reason.

mod common;

use std::sync::Arc;
use std::time::Duration;

use alloy_consensus::{SignableTransaction, TxEnvelope};
use alloy_eips::eip2718::{Encodable2718, Typed2718};
use alloy_primitives::{B256, Bytes};
use common::*;
use protocols::Subprotocol;
use protocols::eth::messages::PooledTransaction;
use protocols::eth::messages::{Message, NewPooledTransactionHashes, RequestPair};
use protocols::eth::{self, ETH68, ETH69, Eth};
use rlpx::{DisconnectReason, ProtocolHandle};

/// The chain's transactions: (non-blob, blob-without-sidecar).
fn chain_txs() -> (Vec<TxEnvelope>, Vec<TxEnvelope>) {
    blocks()
        .into_iter()
        .flat_map(|b| b.body.transactions)
        .partition(|t| !t.is_eip4844())
}

fn config() -> eth::Config {
    let mut c = eth::Config::default();
    c.pool.chain_id = Some(NETWORK_ID);
    c.fetch.arrival_wait = Duration::from_millis(50);
    c
}

async fn served(version: u32) -> (Node, rlpx::Peer, ProtocolHandle) {
    let c = chain();
    let (node, raw_peer, mut raw) = eth_vs_raw(Arc::new(c.clone()), config(), version).await;
    handshake(&mut raw, &c, version).await;
    wait_connected(&node).await;
    (node, raw_peer, raw)
}

async fn wait_connected(node: &Node) {
    tokio::time::timeout(Duration::from_secs(5), async {
        while node.handle.peers().is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("handshaked");
}

async fn wait_pooled(node: &Node, hashes: &[B256]) {
    tokio::time::timeout(Duration::from_secs(5), async {
        while hashes.iter().any(|h| !node.handle.pool().contains(h)) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("pooled in time");
}

fn announce(txs: &[PooledTransaction], kind: Option<u8>) -> Message {
    Message::NewPooledTransactionHashes(NewPooledTransactionHashes {
        types: txs
            .iter()
            .map(|t| kind.unwrap_or(t.ty()))
            .collect::<Vec<_>>()
            .into(),
        sizes: txs.iter().map(|t| t.encode_2718_len() as u32).collect(),
        hashes: txs.iter().map(|t| *t.hash()).collect(),
    })
}

fn pooled(txs: &[TxEnvelope]) -> Vec<PooledTransaction> {
    txs.iter()
        .map(|t| t.clone().try_into_pooled().unwrap())
        .collect()
}

#[tokio::test]
async fn broadcasts_are_pooled_and_served() {
    for version in [ETH68, ETH69] {
        let (txs, _) = chain_txs();
        let (node, _raw_peer, mut raw) = served(version).await;
        let batch: Vec<TxEnvelope> = txs[..10].to_vec();
        send(&raw, &Message::Transactions(batch.clone())).await;
        let hashes: Vec<B256> = batch.iter().map(|t| *t.tx_hash()).collect();
        wait_pooled(&node, &hashes).await;
        // Known to the sender: not sent back to it.
        for h in &hashes {
            assert!(node.handle.knows_transaction(&node_id(&node), h));
        }
        // Served in request order, unknown hashes left out.
        let ask = vec![hashes[3], B256::repeat_byte(7), hashes[1]];
        send(
            &raw,
            &Message::GetPooledTransactions(RequestPair {
                request_id: 9,
                message: ask,
            }),
        )
        .await;
        match recv(&mut raw, version).await {
            Message::PooledTransactions(r) => {
                assert_eq!(r.request_id, 9);
                let got: Vec<B256> = r.message.iter().map(|t| *t.hash()).collect();
                assert_eq!(got, vec![hashes[3], hashes[1]]);
            }
            other => panic!("expected PooledTransactions, got {:#x}", other.code()),
        }
    }
}

/// The raw peer's node id as our node sees it.
fn node_id(node: &Node) -> eth::PeerId {
    node.handle.peers()[0].id
}

#[tokio::test]
async fn announcements_are_fetched() {
    let (txs, _) = chain_txs();
    let (node, _raw_peer, mut raw) = served(ETH68).await;
    let want = pooled(&txs[..5]);
    send(&raw, &announce(&want, None)).await;
    let req = match recv(&mut raw, ETH68).await {
        Message::GetPooledTransactions(r) => r,
        other => panic!("expected GetPooledTransactions, got {:#x}", other.code()),
    };
    let asked: Vec<B256> = want.iter().map(|t| *t.hash()).collect();
    assert_eq!(req.message, asked);
    // Answer with a subset, in order: those are pooled.
    send(
        &raw,
        &Message::PooledTransactions(RequestPair {
            request_id: req.request_id,
            message: vec![want[0].clone(), want[2].clone()],
        }),
    )
    .await;
    wait_pooled(&node, &[asked[0], asked[2]]).await;
    assert_eq!(node.handle.pool().stats().count, 2);
}

#[tokio::test]
async fn local_transactions_are_sent_to_peers() {
    let (txs, _) = chain_txs();
    let (node, _raw_peer, mut raw) = served(ETH69).await;
    let tx = pooled(&txs[..1]).remove(0);
    let hash = *tx.hash();
    node.handle.submit_transaction(tx.clone()).unwrap();
    // One peer: sqrt(1) = 1 gets it in full.
    match recv(&mut raw, ETH69).await {
        Message::Transactions(list) => {
            assert_eq!(list.len(), 1);
            assert_eq!(*list[0].tx_hash(), hash);
        }
        other => panic!("expected Transactions, got {:#x}", other.code()),
    }
    // Again: already pooled, and the peer knows it.
    assert_eq!(
        node.handle.submit_transaction(tx),
        Err(eth::pool::Error::Known)
    );
}

#[tokio::test]
async fn hostile_transaction_exchanges_disconnect() {
    let (txs, blobs) = chain_txs();
    assert!(!blobs.is_empty(), "the chain has blob transactions");

    // A blob transaction broadcast in full.
    let (mut node, raw_peer, raw) = served(ETH68).await;
    send(&raw, &Message::Transactions(vec![blobs[0].clone()])).await;
    let e = expect_disconnect(&mut node, &raw_peer, DisconnectReason::BreachOfProtocol).await;
    assert_eq!(e, eth::Error::BlobBroadcast);

    // An answer with a transaction we did not ask for.
    let (mut node, raw_peer, mut raw) = served(ETH68).await;
    let want = pooled(&txs[..2]);
    send(&raw, &announce(&want[..1], None)).await;
    let Message::GetPooledTransactions(req) = recv(&mut raw, ETH68).await else {
        panic!("expected GetPooledTransactions");
    };
    send(
        &raw,
        &Message::PooledTransactions(RequestPair {
            request_id: req.request_id,
            message: vec![want[1].clone()],
        }),
    )
    .await;
    let e = expect_disconnect(&mut node, &raw_peer, DisconnectReason::BreachOfProtocol).await;
    assert_eq!(e, eth::Error::Unrequested);
    assert_eq!(node.handle.pool().stats().count, 0);

    // A transaction of another type than announced.
    let (mut node, raw_peer, mut raw) = served(ETH69).await;
    let wrong = if want[0].ty() == 0 { 2 } else { 0 };
    send(&raw, &announce(&want[..1], Some(wrong))).await;
    let Message::GetPooledTransactions(req) = recv(&mut raw, ETH69).await else {
        panic!("expected GetPooledTransactions");
    };
    send(
        &raw,
        &Message::PooledTransactions(RequestPair {
            request_id: req.request_id,
            message: want[..1].to_vec(),
        }),
    )
    .await;
    let e = expect_disconnect(&mut node, &raw_peer, DisconnectReason::BreachOfProtocol).await;
    assert_eq!(e, eth::Error::AnnouncedType);

    // A transaction whose signature is not canonical (EIP-2 high s): never valid.
    let (mut node, raw_peer, raw) = served(ETH68).await;
    let n = alloy_primitives::U256::from_be_slice(&secp256k1::constants::CURVE_ORDER);
    let high = |sig: &alloy_primitives::Signature| {
        alloy_primitives::Signature::new(sig.r(), n - sig.s(), !sig.v())
    };
    let bad = match txs[0].clone() {
        TxEnvelope::Eip1559(t) => {
            let sig = high(t.signature());
            TxEnvelope::Eip1559(t.strip_signature().into_signed(sig))
        }
        TxEnvelope::Legacy(t) => {
            let sig = high(t.signature());
            TxEnvelope::Legacy(t.strip_signature().into_signed(sig))
        }
        other => panic!("unexpected first transaction type {}", other.ty()),
    };
    send(&raw, &Message::Transactions(vec![bad])).await;
    let e = expect_disconnect(&mut node, &raw_peer, DisconnectReason::BreachOfProtocol).await;
    assert_eq!(e, eth::Error::BadSignature);

    // Inconsistent announcement lists.
    let (mut node, raw_peer, raw) = served(ETH68).await;
    let bad = Message::NewPooledTransactionHashes(NewPooledTransactionHashes {
        types: Bytes::from(vec![2u8, 2]),
        sizes: vec![100],
        hashes: vec![B256::repeat_byte(1), B256::repeat_byte(2)],
    });
    send(&raw, &bad).await;
    let e = expect_disconnect(&mut node, &raw_peer, DisconnectReason::BreachOfProtocol).await;
    assert_eq!(e, eth::Error::Announcement);

    // Invalid transactions in a broadcast are dropped without a disconnect (a peer may
    // relay what became invalid): another chain's here.
    let mut cfg = config();
    cfg.pool.chain_id = Some(1);
    let c = chain();
    let (node, _raw_peer, mut raw) = eth_vs_raw(Arc::new(c.clone()), cfg, ETH68).await;
    handshake(&mut raw, &c, ETH68).await;
    wait_connected(&node).await;
    send(&raw, &Message::Transactions(txs[..3].to_vec())).await;
    // Once our node answers a request sent after the broadcast, it has handled it.
    barrier(&mut raw, ETH68, 0x7e57).await;
    assert_eq!(node.handle.pool().stats().count, 0);
    assert_eq!(node.handle.peers().len(), 1);
}

/// go-ethereum's `syncTransactions`: a peer that joins is told about everything already
/// pooled, not only what arrives after it connected. Node A pools 500 transactions with no
/// peer; B connects and ends with all 500, fetched through announcements.
#[tokio::test]
async fn a_new_peer_is_told_about_the_pool() {
    const N: usize = 500;
    let c = Arc::new(chain());
    let (a_eth, a_handle, _a_events) = Eth::new(c.clone(), config());
    let txs: Vec<PooledTransaction> = flood(N, 0x55)
        .into_iter()
        .map(|t| t.try_into_pooled().expect("no blobs"))
        .collect();
    for tx in &txs {
        a_handle.submit_transaction(tx.clone()).expect("pooled");
    }
    assert_eq!(a_handle.pool().stats().count, N);

    let (b_eth, b_handle, _b_events) = Eth::new(c, config());
    let (mut a, mut b) = spawn_pair(a_eth.protocols(), b_eth.protocols()).await;
    tokio::spawn(a_eth.handle(a.take_protocol("eth").expect("eth")));
    tokio::spawn(b_eth.handle(b.take_protocol("eth").expect("eth")));
    let hashes: Vec<B256> = txs.iter().map(|t| *t.hash()).collect();
    tokio::time::timeout(Duration::from_secs(10), async {
        while hashes.iter().any(|h| !b_handle.pool().contains(h)) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("B pooled all of A's transactions");
    assert_eq!(b_handle.pool().stats().count, N);
}
