//! Serving: go-ethereum's eth conformance cases (cmd/devp2p/internal/ethtest) as tests,
//! against our node with a scripted raw peer.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use alloy_consensus::{BlockBody, Header, TxEnvelope};
use alloy_primitives::{B256, Bytes, keccak256};
use alloy_rlp::Decodable;
use common::*;
use protocols::eth::forkid::Filter;
use protocols::eth::messages::{
    BlockId, GetBlockHeaders, Message, Raw, Receipt69, RequestPair, code,
};
use protocols::eth::receipts;
use protocols::eth::{self, Chain, ETH68, ETH69, Event, Head, serve};
use rlpx::{DisconnectReason, ProtocolHandle};

/// A node serving the test chain and a raw peer past the handshake.
async fn served(version: u32, config: eth::Config) -> (Node, rlpx::Peer, ProtocolHandle) {
    let c = chain();
    let (node, raw_peer, mut raw) = eth_vs_raw(Arc::new(c.clone()), config, version).await;
    handshake(&mut raw, &c, version).await;
    (node, raw_peer, raw)
}

fn get_headers(id: u64, origin: BlockId, amount: u64, skip: u64, reverse: bool) -> Message {
    Message::GetBlockHeaders(RequestPair {
        request_id: id,
        message: GetBlockHeaders {
            origin,
            amount,
            skip,
            reverse,
        },
    })
}

async fn headers(raw: &mut ProtocolHandle, version: u32, req: Message) -> (u64, Vec<Header>) {
    send(raw, &req).await;
    match recv(raw, version).await {
        Message::BlockHeaders(r) => (r.request_id, r.message),
        other => panic!("expected BlockHeaders, got {:#x}", other.code()),
    }
}

fn numbers(h: &[Header]) -> Vec<u64> {
    h.iter().map(|h| h.number).collect()
}

#[tokio::test]
async fn headers_by_number_and_hash_with_skip_and_reverse() {
    for version in [ETH68, ETH69] {
        let (_node, _p, mut raw) = served(version, eth::Config::default()).await;
        let cases: [(BlockId, u64, u64, bool, Vec<u64>); 7] = [
            (BlockId::Number(1), 5, 0, false, vec![1, 2, 3, 4, 5]),
            (BlockId::Number(10), 4, 2, false, vec![10, 13, 16, 19]),
            (BlockId::Number(10), 4, 2, true, vec![10, 7, 4, 1]),
            (BlockId::Hash(hash(600)), 3, 0, true, vec![600, 599, 598]),
            (BlockId::Hash(hash(595)), 10, 1, false, vec![595, 597, 599]),
            (BlockId::Hash(hash(100)), 3, 98, true, vec![100, 1]),
            (BlockId::Number(590), 100, 0, false, (590..=600).collect()),
        ];
        for (i, (origin, amount, skip, reverse, want)) in cases.into_iter().enumerate() {
            let (id, got) = headers(
                &mut raw,
                version,
                get_headers(i as u64 + 1, origin, amount, skip, reverse),
            )
            .await;
            assert_eq!(id, i as u64 + 1);
            assert_eq!(numbers(&got), want, "case {i}");
            for h in &got {
                assert_eq!(h.hash_slow(), hash(h.number));
            }
            if skip == 0 {
                // Consecutive headers link by parent hash.
                for w in got.windows(2) {
                    let (lo, hi) = if reverse {
                        (&w[1], &w[0])
                    } else {
                        (&w[0], &w[1])
                    };
                    assert_eq!(hi.parent_hash, lo.hash_slow());
                }
            }
        }
    }
}

#[tokio::test]
async fn nonexistent_ranges_get_empty_answers() {
    let (mut node, _p, mut raw) = served(ETH69, eth::Config::default()).await;
    for (i, (origin, amount, skip, reverse)) in [
        (BlockId::Number(601), 10, 0, false),
        (BlockId::Number(1_000_000), 1, 0, true),
        (BlockId::Hash(B256::repeat_byte(0x42)), 10, 0, false),
        (BlockId::Number(0), 1, 0, false), // genesis is not stored in this chain
        (BlockId::Number(5), 0, 0, false),
    ]
    .into_iter()
    .enumerate()
    {
        let (id, got) = headers(
            &mut raw,
            ETH69,
            get_headers(i as u64, origin, amount, skip, reverse),
        )
        .await;
        assert_eq!(id, i as u64);
        assert!(got.is_empty(), "case {i}");
    }
    // Bodies and receipts of unknown blocks: empty too, and the peer stays connected.
    send(
        &raw,
        &Message::GetBlockBodies(RequestPair {
            request_id: 7,
            message: vec![B256::ZERO; 3],
        }),
    )
    .await;
    let Message::BlockBodies(b) = recv(&mut raw, ETH69).await else {
        panic!()
    };
    assert_eq!((b.request_id, b.message.len()), (7, 0));
    send(
        &raw,
        &Message::GetReceipts(RequestPair {
            request_id: 8,
            message: vec![B256::ZERO],
        }),
    )
    .await;
    let Message::Receipts69(r) = recv(&mut raw, ETH69).await else {
        panic!()
    };
    assert_eq!((r.request_id, r.message.len()), (8, 0));
    assert_eq!(node.handle.peers().len(), 1);
    assert!(matches!(
        node.events.try_recv(),
        Ok(Event::PeerConnected { .. })
    ));
    assert!(node.events.try_recv().is_err(), "no disconnect");
}

#[tokio::test]
async fn simultaneous_requests_same_id_twice_and_id_zero() {
    let (_node, _p, mut raw) = served(ETH68, eth::Config::default()).await;
    // Several in flight at once, including id 0 and a repeated id.
    let reqs = [
        (0u64, 1u64),
        (u64::MAX, 100),
        (7, 200),
        (7, 300),
        (12345, 400),
    ];
    for (id, from) in reqs {
        send(&raw, &get_headers(id, BlockId::Number(from), 2, 0, false)).await;
    }
    let mut got: HashMap<u64, Vec<Vec<u64>>> = HashMap::new();
    for _ in reqs {
        let Message::BlockHeaders(r) = recv(&mut raw, ETH68).await else {
            panic!()
        };
        got.entry(r.request_id)
            .or_default()
            .push(numbers(&r.message));
    }
    assert_eq!(got[&0], vec![vec![1, 2]]);
    assert_eq!(got[&u64::MAX], vec![vec![100, 101]]);
    assert_eq!(got[&7], vec![vec![200, 201], vec![300, 301]]);
    assert_eq!(got[&12345], vec![vec![400, 401]]);
}

/// The test chain, counting header lookups: the work a request costs.
struct Counting {
    inner: eth::MemoryChain,
    lookups: Arc<AtomicU64>,
}

impl Chain for Counting {
    fn network_id(&self) -> u64 {
        self.inner.network_id()
    }
    fn genesis_hash(&self) -> B256 {
        self.inner.genesis_hash()
    }
    fn fork_filter(&self) -> &Filter {
        self.inner.fork_filter()
    }
    fn head(&self) -> Head {
        self.inner.head()
    }
    fn earliest(&self) -> u64 {
        self.inner.earliest()
    }
    fn header_by_number(&self, number: u64) -> Option<Raw> {
        self.lookups.fetch_add(1, Ordering::Relaxed);
        self.inner.header_by_number(number)
    }
    fn canonical_number(&self, hash: &B256) -> Option<u64> {
        self.lookups.fetch_add(1, Ordering::Relaxed);
        self.inner.canonical_number(hash)
    }
    fn body_by_hash(&self, hash: &B256) -> Option<Raw> {
        self.inner.body_by_hash(hash)
    }
}

#[tokio::test]
async fn huge_skip_amount_and_origin_are_clamped() {
    let lookups = Arc::new(AtomicU64::new(0));
    let counting = Counting {
        inner: chain(),
        lookups: lookups.clone(),
    };
    let (_node, _p, mut raw) = eth_vs_raw(Arc::new(counting), eth::Config::default(), ETH69).await;
    handshake(&mut raw, &chain(), ETH69).await;
    let cases: [(BlockId, u64, u64, bool, Vec<u64>); 8] = [
        (BlockId::Number(1), u64::MAX, 0, false, (1..=600).collect()),
        (BlockId::Number(1), u64::MAX, u64::MAX, false, vec![1]),
        (BlockId::Number(600), u64::MAX, u64::MAX, true, vec![600]),
        (BlockId::Number(5), u64::MAX, u64::MAX - 1, true, vec![5]),
        (BlockId::Number(3), 10, 0, true, vec![3, 2, 1]),
        (BlockId::Number(u64::MAX), u64::MAX, u64::MAX, false, vec![]),
        (BlockId::Number(u64::MAX - 1), 5, 1, false, vec![]),
        (BlockId::Hash(hash(2)), u64::MAX, 1, true, vec![2]),
    ];
    for (i, (origin, amount, skip, reverse, want)) in cases.into_iter().enumerate() {
        let before = lookups.load(Ordering::Relaxed);
        let (_, got) = headers(
            &mut raw,
            ETH69,
            get_headers(i as u64, origin, amount, skip, reverse),
        )
        .await;
        assert_eq!(numbers(&got), want, "case {i}");
        // Work bounded by the answer, not by the amount or skip asked for: a lookup per
        // header served, plus the origin and the one that ends the walk.
        let cost = lookups.load(Ordering::Relaxed) - before;
        assert!(
            cost <= want.len() as u64 + 2,
            "case {i}: {cost} lookups for {} headers",
            want.len()
        );
    }
}

#[tokio::test]
async fn bodies_match_header_roots() {
    let (_node, _p, mut raw) = served(ETH69, eth::Config::default()).await;
    let blocks = blocks();
    // Blocks with every transaction type (legacy, 2930, 1559, 4844, 7702), plus an
    // unknown hash in the middle, which is left out.
    let picks: Vec<&alloy_consensus::Block<TxEnvelope>> = blocks
        .iter()
        .enumerate()
        .filter(|(i, b)| {
            let rare = b
                .body
                .transactions
                .iter()
                .any(|t| t.is_eip4844() || t.is_eip7702());
            !b.body.transactions.is_empty() && (i % 7 == 0 || rare)
        })
        .map(|(_, b)| b)
        .collect();
    for ty in [0u8, 1, 2, 3, 4] {
        let has = |b: &&alloy_consensus::Block<TxEnvelope>| {
            b.body.transactions.iter().any(|t| alloy_eips_ty(t) == ty)
        };
        assert!(picks.iter().any(has), "no transaction of type {ty}");
    }
    let mut hashes: Vec<B256> = picks.iter().map(|b| b.header.hash_slow()).collect();
    hashes.insert(3, B256::repeat_byte(9));
    send(
        &raw,
        &Message::GetBlockBodies(RequestPair {
            request_id: 99,
            message: hashes,
        }),
    )
    .await;
    let Message::BlockBodies(r) = recv(&mut raw, ETH69).await else {
        panic!()
    };
    assert_eq!(r.request_id, 99);
    assert_eq!(r.message.len(), picks.len());
    for (body, block) in r.message.iter().zip(&picks) {
        let root = alloy_consensus::proofs::calculate_transaction_root(&body.transactions);
        assert_eq!(root, block.header.transactions_root);
        assert_eq!(
            keccak256(alloy_rlp::encode(&body.ommers)),
            block.header.ommers_hash
        );
        assert_eq!(body, &block.body);
    }
}

/// The receipts the test chain's block `n` has (`testdata/ethtest/receipts.rlp`).
fn receipts_of(n: u64) -> Vec<Receipt69> {
    let stored = chain().receipts_by_hash(&hash(n)).expect("receipts");
    alloy_rlp::Decodable::decode(&mut stored.0.as_ref()).unwrap()
}

#[tokio::test]
async fn receipts_are_served_up_to_the_first_unknown_block() {
    // eth/68 sends them with blooms, eth/69 without; the answer ends at the first block
    // whose receipts we lack (here: unknown), and before block 11, whose 10.6 MB of
    // receipts no eth/68-69 message can carry.
    let want: Vec<Vec<Receipt69>> = (1..=3).map(receipts_of).collect();
    assert!(want.iter().all(|l| !l.is_empty()));
    for version in [ETH68, ETH69] {
        let (_node, _p, mut raw) = served(version, eth::Config::default()).await;
        for (hashes, n) in [
            (vec![hash(1), hash(2), hash(3), B256::ZERO, hash(4)], 3),
            (vec![hash(1), hash(2), hash(3), hash(11), hash(12)], 3),
        ] {
            send(
                &raw,
                &Message::GetReceipts(RequestPair {
                    request_id: 5,
                    message: hashes,
                }),
            )
            .await;
            match recv(&mut raw, version).await {
                Message::Receipts68(r) => {
                    let got: Vec<Vec<Receipt69>> = r
                        .message
                        .iter()
                        .map(|l| l.iter().map(receipts::from_envelope).collect())
                        .collect();
                    assert_eq!((r.request_id, got), (5, want[..n].to_vec()));
                    // Blooms are the receipts' own.
                    let e = receipts::to_envelopes(&want[0]).unwrap();
                    assert_eq!(r.message[0], e);
                }
                Message::Receipts69(r) => {
                    assert_eq!((r.request_id, r.message), (5, want[..n].to_vec()))
                }
                other => panic!("expected Receipts, got {:#x}", other.code()),
            }
        }
        // No pool yet: pooled transactions are answered with an empty list.
        send(
            &raw,
            &Message::GetPooledTransactions(RequestPair {
                request_id: 6,
                message: vec![B256::ZERO],
            }),
        )
        .await;
        let Message::PooledTransactions(p) = recv(&mut raw, version).await else {
            panic!()
        };
        assert_eq!((p.request_id, p.message.len()), (6, 0));
    }
}

/// A chain of huge headers and bodies (100 KiB each, not valid blocks: serving never
/// decodes them), counting lookups.
struct Huge {
    filter: Filter,
    lookups: AtomicU64,
}

const ITEM: usize = 100 * 1024;

fn huge_item() -> Raw {
    let mut v = Vec::new();
    alloy_rlp::Header {
        list: false,
        payload_length: ITEM,
    }
    .encode(&mut v);
    v.resize(v.len() + ITEM, 0xaa);
    Raw(Bytes::from(v))
}

impl Chain for Huge {
    fn network_id(&self) -> u64 {
        NETWORK_ID
    }
    fn genesis_hash(&self) -> B256 {
        chain().genesis_hash()
    }
    fn fork_filter(&self) -> &Filter {
        &self.filter
    }
    fn head(&self) -> Head {
        chain().head()
    }
    fn earliest(&self) -> u64 {
        0
    }
    fn header_by_number(&self, _: u64) -> Option<Raw> {
        self.lookups.fetch_add(1, Ordering::Relaxed);
        Some(huge_item())
    }
    fn canonical_number(&self, _: &B256) -> Option<u64> {
        Some(1)
    }
    fn body_by_hash(&self, _: &B256) -> Option<Raw> {
        self.lookups.fetch_add(1, Ordering::Relaxed);
        Some(huge_item())
    }
}

#[tokio::test]
async fn soft_response_limit_of_2_mib() {
    let huge = Arc::new(Huge {
        filter: chain().fork_filter().clone(),
        lookups: AtomicU64::new(0),
    });
    let (_node, _p, mut raw) = eth_vs_raw(huge.clone(), eth::Config::default(), ETH69).await;
    handshake(&mut raw, &chain(), ETH69).await;
    let limit_items = serve::SOFT_RESPONSE_LIMIT.div_ceil(ITEM + 4);
    send(
        &raw,
        &get_headers(1, BlockId::Number(0), u64::MAX, 0, false),
    )
    .await;
    let (c, data) = raw.recv().await.expect("answer");
    assert_eq!(c, code::BLOCK_HEADERS);
    let r: RequestPair<Vec<Raw>> = Decodable::decode(&mut data.as_ref()).expect("list");
    assert_eq!(r.message.len(), limit_items);
    assert!(data.len() < serve::SOFT_RESPONSE_LIMIT + ITEM + 64);
    assert_eq!(huge.lookups.swap(0, Ordering::Relaxed), limit_items as u64);

    send(
        &raw,
        &Message::GetBlockBodies(RequestPair {
            request_id: 2,
            message: vec![B256::ZERO; 5000],
        }),
    )
    .await;
    let (c, data) = raw.recv().await.expect("answer");
    assert_eq!(c, code::BLOCK_BODIES);
    let r: RequestPair<Vec<Raw>> = Decodable::decode(&mut data.as_ref()).expect("list");
    assert_eq!(r.message.len(), limit_items);
    assert_eq!(huge.lookups.load(Ordering::Relaxed), limit_items as u64);
}

#[tokio::test]
async fn unsolicited_responses_disconnect() {
    let header = blocks()[0].header.clone();
    let cases: Vec<(u32, Message)> = vec![
        (
            ETH68,
            Message::BlockHeaders(RequestPair {
                request_id: 1,
                message: vec![header],
            }),
        ),
        (
            ETH69,
            Message::BlockBodies(RequestPair {
                request_id: 0,
                message: vec![BlockBody::<TxEnvelope>::default()],
            }),
        ),
        (
            ETH69,
            Message::Receipts69(RequestPair {
                request_id: 3,
                message: vec![],
            }),
        ),
        (
            ETH68,
            Message::PooledTransactions(RequestPair {
                request_id: 4,
                message: vec![],
            }),
        ),
    ];
    for (version, msg) in cases {
        let (mut node, raw_peer, raw) = served(version, eth::Config::default()).await;
        send(&raw, &msg).await;
        let e = expect_disconnect(&mut node, &raw_peer, DisconnectReason::BreachOfProtocol).await;
        assert!(matches!(e, eth::Error::Unsolicited { .. }), "{e}");
        assert!(node.handle.peers().is_empty());
    }
}

#[tokio::test]
async fn request_flood_beyond_budget_disconnects() {
    let cfg = eth::Config {
        request_burst: 20,
        requests_per_second: 1,
        ..eth::Config::default()
    };
    let (mut node, raw_peer, raw) = served(ETH69, cfg).await;
    for i in 0..40 {
        if raw
            .send(
                code::GET_BLOCK_HEADERS,
                get_headers(i, BlockId::Number(1), 1, 0, false).encode(),
            )
            .await
            .is_err()
        {
            break;
        }
    }
    let e = expect_disconnect(&mut node, &raw_peer, DisconnectReason::UselessPeer).await;
    assert_eq!(e, eth::Error::Budget);
}

#[tokio::test]
async fn malformed_oversized_and_second_status_disconnect() {
    // Over the 10 MiB eth limit (under RLPx's 16 MiB).
    let (mut node, raw_peer, raw) = served(ETH69, eth::Config::default()).await;
    send_bytes(&raw, code::TRANSACTIONS, vec![0; 11 * 1024 * 1024]).await;
    let e = expect_disconnect(&mut node, &raw_peer, DisconnectReason::BreachOfProtocol).await;
    assert!(matches!(e, eth::Error::TooLarge { .. }), "{e}");

    let (mut node, raw_peer, raw) = served(ETH68, eth::Config::default()).await;
    send_bytes(&raw, code::GET_BLOCK_BODIES, vec![0xc2, 0x01]).await;
    let e = expect_disconnect(&mut node, &raw_peer, DisconnectReason::BreachOfProtocol).await;
    assert!(matches!(e, eth::Error::Decode(_)), "{e}");

    let c = chain();
    let (mut node, raw_peer, raw) = served(ETH68, eth::Config::default()).await;
    send(&raw, &Message::Status(eth::status::local(&c, ETH68))).await;
    let e = expect_disconnect(&mut node, &raw_peer, DisconnectReason::BreachOfProtocol).await;
    assert_eq!(e, eth::Error::UnexpectedStatus);

    // NewBlock (eth/68 only) on eth/69: not a message of the version. (The reverse,
    // BlockRangeUpdate on eth/68, is outside eth/68's 17 codes and rejected by RLPx.)
    let (mut node, raw_peer, raw) = served(ETH69, eth::Config::default()).await;
    let block = blocks().swap_remove(0);
    let new_block = Message::NewBlock(Box::new(protocols::eth::messages::NewBlock {
        block,
        td: Default::default(),
    }));
    send_bytes(&raw, code::NEW_BLOCK, new_block.encode().to_vec()).await;
    let e = expect_disconnect(&mut node, &raw_peer, DisconnectReason::BreachOfProtocol).await;
    assert!(matches!(e, eth::Error::Decode(_)), "{e}");
}

#[tokio::test]
async fn block_range_update_is_tracked_and_checked() {
    let (mut node, raw_peer, raw) = served(ETH69, eth::Config::default()).await;
    let bru = protocols::eth::messages::BlockRangeUpdate {
        earliest: 10,
        latest: 700,
        latest_hash: B256::repeat_byte(7),
    };
    send(&raw, &Message::BlockRangeUpdate(bru)).await;
    let mut seen = false;
    for _ in 0..100 {
        let p = node.handle.peers();
        if p.first().is_some_and(|p| p.status.head_number == Some(700)) {
            assert_eq!(p[0].status.earliest, Some(10));
            assert_eq!(p[0].status.head_hash, B256::repeat_byte(7));
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(seen, "range update applied");
    let bad = protocols::eth::messages::BlockRangeUpdate {
        earliest: 701,
        latest: 700,
        latest_hash: B256::repeat_byte(7),
    };
    send(&raw, &Message::BlockRangeUpdate(bad)).await;
    let e = expect_disconnect(&mut node, &raw_peer, DisconnectReason::BreachOfProtocol).await;
    assert_eq!(e, eth::Error::Range);
}

fn alloy_eips_ty(t: &TxEnvelope) -> u8 {
    t.tx_type() as u8
}
