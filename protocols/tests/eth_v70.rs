//! eth/70, eth/71 and eth/72 against our node: negotiation, the new requests it serves
//! (partial receipts, block access lists, cells), the eth/72 transaction exchange, and
//! the hostile cases that disconnect.

mod common;

use std::sync::Arc;
use std::time::Duration;

use alloy_consensus::{SignableTransaction, TxEip4844, TxEip4844WithSidecar};
use alloy_eips::eip2718::Encodable2718;
use alloy_eips::eip4844::{BYTES_PER_BLOB, Blob, BlobTransactionSidecar, Bytes48};
use alloy_eips::eip7594::BlobTransactionSidecarVariant;
use alloy_primitives::{Address, B256, Signature, U256};
use common::*;
use protocols::eth::messages::PooledTransaction;
use protocols::eth::messages::{
    BAL_UNAVAILABLE, CellMask, Cells, GetCells, GetReceipts70, Message, NewPooledTransactionHashes,
    NewPooledTransactionHashes72, Raw, Receipt69, Receipts70, RequestPair, code,
};
use protocols::eth::{self, ETH68, ETH69, ETH70, ETH71, ETH72, pool, serve};
use rlpx::{DisconnectReason, ProtocolHandle};

/// A node serving the test chain and a raw peer of `version` past the handshake.
async fn served(version: u32) -> (Node, rlpx::Peer, ProtocolHandle) {
    let c = chain();
    let (node, raw_peer, mut raw) =
        eth_vs_raw(Arc::new(c.clone()), eth::Config::default(), version).await;
    handshake(&mut raw, &c, version).await;
    (node, raw_peer, raw)
}

/// A blob transaction with `n` blobs whose cells each start with `[blob, index]`. The
/// signature is r = G.x with a random s: it recovers to some sender.
fn blob_tx(n: u8) -> PooledTransaction {
    let blobs = (0..n)
        .map(|b| {
            let mut data = vec![0u8; BYTES_PER_BLOB];
            for (i, cell) in data.chunks_mut(2048).enumerate() {
                cell[..2].copy_from_slice(&[b, i as u8]);
            }
            Blob::from_slice(&data)
        })
        .collect();
    let sidecar = BlobTransactionSidecarVariant::Eip4844(BlobTransactionSidecar {
        blobs,
        commitments: (0..n).map(|i| Bytes48::repeat_byte(i + 1)).collect(),
        proofs: vec![Bytes48::repeat_byte(9); n as usize],
    });
    let tx = TxEip4844 {
        chain_id: NETWORK_ID,
        gas_limit: 21_000,
        max_fee_per_gas: 2,
        max_priority_fee_per_gas: 1,
        to: Address::repeat_byte(7),
        max_fee_per_blob_gas: 1,
        blob_versioned_hashes: sidecar.versioned_hashes().collect(),
        ..Default::default()
    };
    let mut s: [u8; 32] = rand::random();
    s[0] &= 0x3f;
    let sig = Signature::new(U256::from_be_bytes(GX), U256::from_be_bytes(s), false);
    PooledTransaction::Eip4844(TxEip4844WithSidecar { tx, sidecar }.into_signed(sig))
}

#[tokio::test]
async fn two_of_our_nodes_speak_eth72_and_a_68_only_peer_still_works() {
    let c = Arc::new(chain());
    let (a, b) = eth_pair(
        c.clone(),
        eth::Config::default(),
        c.clone(),
        eth::Config::default(),
    )
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while a.handle.peers().is_empty() || b.handle.peers().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no eth session");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for node in [&a, &b] {
        let peer = node.handle.peers()[0].clone();
        assert_eq!(peer.status.version, ETH72);
        assert_eq!(node.handle.version(&peer.id), Some(ETH72));
    }
    // A peer offering only eth/68 gets eth/68 from a node offering 68-72, and is served.
    let (_node, _p, mut raw) = served(ETH68).await;
    assert!(barrier(&mut raw, ETH68, 1).await.is_empty());
}

/// The receipts the test chain's block `n` has (`testdata/ethtest/receipts.rlp`).
fn receipts_of(n: u64) -> Vec<Receipt69> {
    let stored = eth::Chain::receipts_by_hash(&chain(), &hash(n)).expect("receipts");
    alloy_rlp::Decodable::decode(&mut stored.0.as_ref()).unwrap()
}

/// eth/70 GetReceipts: the lists from `firstBlockReceiptIndex` on, ending at the first
/// block whose receipts we lack.
#[tokio::test]
async fn partial_receipt_requests_end_at_the_first_block_we_lack() {
    let (_node, _p, mut raw) = served(ETH70).await;
    let hashes: Vec<B256> = (1..=5).map(hash).chain([B256::ZERO, hash(6)]).collect();
    let full: Vec<Vec<Receipt69>> = (1..=5).map(receipts_of).collect();
    for first in [0, 1, 3] {
        let req = Message::GetReceipts70(GetReceipts70 {
            request_id: 8 + first,
            first_block_receipt_index: first,
            hashes: hashes.clone(),
        });
        send(&raw, &req).await;
        let Message::Receipts70(r) = recv(&mut raw, ETH70).await else {
            panic!("expected Receipts")
        };
        let mut want = full.clone();
        let skip = (first as usize).min(want[0].len());
        want[0].drain(..skip);
        assert_eq!(
            r,
            Receipts70 {
                request_id: 8 + first,
                last_block_incomplete: false,
                receipts: want,
            }
        );
    }
}

/// Block 11's receipts (56 of ~190 KB each, 10.6 MB) overflow a message: the answer cuts
/// the list short with `lastBlockIncomplete`, and the requester fetches the rest with
/// `firstBlockReceiptIndex`; the two parts make the whole list, and the next block follows.
#[tokio::test]
async fn a_receipt_list_over_10_mib_is_reassembled_from_two_answers() {
    let (_node, _p, mut raw) = served(ETH70).await;
    let full = receipts_of(11);
    assert!(alloy_rlp::encode(&full).len() > 10 << 20);
    let mut got: Vec<Receipt69> = Vec::new();
    let mut answers = Vec::new();
    for id in 0..4u64 {
        let req = Message::GetReceipts70(GetReceipts70 {
            request_id: id,
            first_block_receipt_index: got.len() as u64,
            hashes: vec![hash(11), hash(12)],
        });
        send(&raw, &req).await;
        let Message::Receipts70(r) = recv(&mut raw, ETH70).await else {
            panic!("expected Receipts")
        };
        assert_eq!(r.request_id, id);
        assert!(
            !r.receipts.is_empty() && !r.receipts[0].is_empty(),
            "answer {id}: {} lists, {:?}, {answers:?}",
            r.receipts.len(),
            r.receipts.first().map(Vec::len)
        );
        answers.push((r.last_block_incomplete, r.receipts.len()));
        let mut lists = r.receipts.into_iter();
        got.extend(lists.next().unwrap());
        if !r.last_block_incomplete {
            assert_eq!(lists.next(), Some(receipts_of(12)));
            break;
        }
        assert_eq!(lists.next(), None);
    }
    assert_eq!(answers, [(true, 1), (false, 2)]);
    assert_eq!(got, full);
}

#[tokio::test]
async fn block_access_lists_are_answered_unavailable() {
    let (_node, _p, mut raw) = served(ETH71).await;
    for (id, n, want) in [(1, 3, 3), (2, 5000, serve::MAX_BALS)] {
        let req = Message::GetBlockAccessLists(RequestPair {
            request_id: id,
            message: vec![hash(1); n],
        });
        send(&raw, &req).await;
        let Message::BlockAccessLists(r) = recv(&mut raw, ETH71).await else {
            panic!("expected BlockAccessLists")
        };
        assert_eq!(r.request_id, id);
        assert_eq!(r.message.len(), want);
        assert!(r.message.iter().all(|b| b.0.as_ref() == BAL_UNAVAILABLE));
    }
}

/// eth/72: a pooled blob transaction is announced with the data-cell bitmap and its size
/// without blobs, served without blobs, and its data cells are served by GetCells.
#[tokio::test]
async fn blob_transactions_over_eth72() {
    let c = chain();
    let (node, _p, mut raw) = eth_vs_raw(Arc::new(c.clone()), eth::Config::default(), ETH72).await;
    let tx = blob_tx(2);
    let full_size = tx.encode_2718_len();
    node.handle
        .pool()
        .add(tx.clone(), pool::Origin::Remote)
        .expect("pooled");
    // A peer that joins is told about the pool.
    handshake(&mut raw, &c, ETH72).await;
    let ann = loop {
        if let Message::NewPooledTransactionHashes72(a) = recv(&mut raw, ETH72).await {
            break a;
        }
    };
    assert_eq!(ann.announcement.hashes, vec![*tx.hash()]);
    assert_eq!(ann.cells, CellMask::DATA);
    let announced = ann.announcement.sizes[0] as usize;
    assert!(announced < full_size - 2 * BYTES_PER_BLOB);

    send(
        &raw,
        &Message::GetPooledTransactions(RequestPair {
            request_id: 3,
            message: vec![*tx.hash()],
        }),
    )
    .await;
    let Message::PooledTransactions(p) = recv(&mut raw, ETH72).await else {
        panic!("expected PooledTransactions")
    };
    assert_eq!(p.message.len(), 1);
    assert_eq!(p.message[0].hash(), tx.hash());
    assert_eq!(p.message[0].encode_2718_len(), announced);

    let mut wanted = CellMask::NONE;
    wanted.0[0] = 0b10; // cell 1
    wanted.0[8] = 1; // cell 64: extension, not held
    let req = GetCells {
        request_id: 4,
        hashes: vec![*tx.hash()],
        cells: wanted,
    };
    send(&raw, &Message::GetCells(req.clone())).await;
    let Message::Cells(c) = recv(&mut raw, ETH72).await else {
        panic!("expected Cells")
    };
    assert_eq!(c.check(&req, |_| 2), Ok(()));
    assert_eq!(c.mask.indices().collect::<Vec<_>>(), vec![1]);
    let heads: Vec<_> = c.cells[0].iter().map(|x| (x[0], x[1])).collect();
    assert_eq!(heads, vec![(0, 1), (1, 1)]);
}

/// A GetCells over the spec's soft limit of 64 hashes is answered within it (go-ethereum
/// asks for up to 128); one past the decoder's item limit disconnects.
#[tokio::test]
async fn oversized_get_cells() {
    let (mut node, raw_peer, mut raw) = served(ETH72).await;
    let req = GetCells {
        request_id: 1,
        hashes: vec![B256::ZERO; 128],
        cells: CellMask::DATA,
    };
    send(&raw, &Message::GetCells(req)).await;
    let Message::Cells(c) = recv(&mut raw, ETH72).await else {
        panic!("expected Cells")
    };
    assert!(c.hashes.is_empty());
    let huge = GetCells {
        request_id: 2,
        hashes: vec![B256::ZERO; 20_000],
        cells: CellMask::DATA,
    };
    send(&raw, &Message::GetCells(huge)).await;
    let e = expect_disconnect(&mut node, &raw_peer, DisconnectReason::BreachOfProtocol).await;
    assert!(matches!(e, eth::Error::Decode(_)), "{e}");
}

/// Answers we never asked for (we request no receipts, BALs or cells), including a
/// "partial" receipt list and cells whose bitmap fits no request, disconnect with
/// BreachOfProtocol; so does an eth/72 announcement without its bitmap.
#[tokio::test]
async fn hostile_eth70_to_72_messages_disconnect() {
    let mut mask = CellMask::NONE;
    mask.0[15] = 0xff;
    let cases: Vec<(u32, u8, bytes::Bytes, &str)> = vec![
        (
            ETH70,
            code::RECEIPTS,
            Message::Receipts70(Receipts70 {
                request_id: 1,
                last_block_incomplete: true,
                receipts: vec![Vec::new()],
            })
            .encode(),
            "unsolicited",
        ),
        (
            ETH71,
            code::BLOCK_ACCESS_LISTS,
            Message::BlockAccessLists(RequestPair {
                request_id: 2,
                message: vec![Raw(BAL_UNAVAILABLE.to_vec().into())],
            })
            .encode(),
            "unsolicited",
        ),
        (
            ETH72,
            code::CELLS,
            Message::Cells(Cells {
                request_id: 3,
                hashes: vec![B256::ZERO],
                cells: vec![Vec::new()],
                mask,
            })
            .encode(),
            "unsolicited",
        ),
        (
            ETH72,
            code::NEW_POOLED_TRANSACTION_HASHES,
            Message::NewPooledTransactionHashes(NewPooledTransactionHashes {
                types: vec![2].into(),
                sizes: vec![100],
                hashes: vec![B256::ZERO],
            })
            .encode(),
            "decode",
        ),
    ];
    for (version, c, data, kind) in cases {
        let (mut node, raw_peer, raw) = served(version).await;
        send_bytes(&raw, c, data.to_vec()).await;
        let e = expect_disconnect(&mut node, &raw_peer, DisconnectReason::BreachOfProtocol).await;
        match kind {
            "unsolicited" => assert!(matches!(e, eth::Error::Unsolicited { .. }), "{e}"),
            _ => assert!(matches!(e, eth::Error::Decode(_)), "{e}"),
        }
    }
}

/// `tx` as an eth/72 peer sends it in PooledTransactions: without blobs.
fn elided(tx: &PooledTransaction) -> PooledTransaction {
    let mut full = Vec::new();
    alloy_rlp::Encodable::encode(tx, &mut full);
    let out = eth::cells::elide_blobs(&full.into());
    alloy_rlp::Decodable::decode(&mut out.as_ref()).expect("decodes")
}

/// A raw eth/72 peer announces `txs` and answers our GetPooledTransactions without their
/// blobs; returns our first GetCells.
async fn offer_blob_txs(raw: &mut ProtocolHandle, txs: &[PooledTransaction]) -> GetCells {
    let ann = Message::NewPooledTransactionHashes72(NewPooledTransactionHashes72 {
        announcement: NewPooledTransactionHashes {
            types: vec![3; txs.len()].into(),
            sizes: txs
                .iter()
                .map(|t| elided(t).encode_2718_len() as u32)
                .collect(),
            hashes: txs.iter().map(|t| *t.hash()).collect(),
        },
        cells: CellMask::DATA,
    });
    send(raw, &ann).await;
    let asked = loop {
        if let Message::GetPooledTransactions(r) = recv(raw, ETH72).await {
            break r;
        }
    };
    assert_eq!(asked.message.len(), txs.len());
    let answer = Message::PooledTransactions(RequestPair {
        request_id: asked.request_id,
        message: asked
            .message
            .iter()
            .map(|h| elided(txs.iter().find(|t| t.hash() == h).unwrap()))
            .collect(),
    });
    send(raw, &answer).await;
    loop {
        if let Message::GetCells(r) = recv(raw, ETH72).await {
            break r;
        }
    }
}

async fn offer_blob_tx(raw: &mut ProtocolHandle, tx: &PooledTransaction) -> GetCells {
    offer_blob_txs(raw, std::slice::from_ref(tx)).await
}

/// Cells are asked for at most 16 blobs per GetCells, so that each answer fits 2 MiB.
#[tokio::test]
async fn cell_requests_fit_the_soft_response_limit() {
    let (_node, _p, mut raw) = served(ETH72).await;
    let txs: Vec<_> = (0..3).map(|_| blob_tx(6)).collect();
    let first = offer_blob_txs(&mut raw, &txs).await;
    let second = loop {
        if let Message::GetCells(r) = recv(&mut raw, ETH72).await {
            break r;
        }
    };
    assert_eq!((first.hashes.len(), second.hashes.len()), (2, 1));
}

/// An eth/72 blob transaction is completed from its data cells: we ask the peer that
/// sent it without blobs for cells 0..64 of each blob and pool it whole.
#[tokio::test]
async fn eth72_blob_transactions_are_completed_from_their_cells() {
    let (node, _p, mut raw) = served(ETH72).await;
    let tx = blob_tx(2);
    let req = offer_blob_tx(&mut raw, &tx).await;
    assert_eq!(
        (req.hashes.clone(), req.cells),
        (vec![*tx.hash()], CellMask::DATA)
    );
    // The cells, as our own node serves them from a pool holding the transaction.
    let holder = pool::Pool::new(pool::Config::default());
    holder
        .add(tx.clone(), pool::Origin::Remote)
        .expect("pooled");
    let cells = eth::cells::cells(&holder, &req);
    assert_eq!(cells.hashes.len(), 1);
    send(&raw, &Message::Cells(cells)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !node.handle.pool().contains(tx.hash()) {
        assert!(tokio::time::Instant::now() < deadline, "not pooled");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let pooled = node.handle.pool().get(tx.hash()).unwrap();
    assert_eq!(pooled.transaction().unwrap(), tx, "blobs rebuilt exactly");
}

/// Cells whose bitmap is not a subset of our request, or inconsistent with it,
/// disconnect with BreachOfProtocol.
#[tokio::test]
async fn cells_not_matching_our_request_disconnect() {
    for case in ["wider bitmap", "short group", "other transaction"] {
        let (mut node, raw_peer, mut raw) = served(ETH72).await;
        let tx = blob_tx(1);
        let req = offer_blob_tx(&mut raw, &tx).await;
        let holder = pool::Pool::new(pool::Config::default());
        holder
            .add(tx.clone(), pool::Origin::Remote)
            .expect("pooled");
        let mut cells = eth::cells::cells(&holder, &req);
        match case {
            "wider bitmap" => cells.mask.0[15] = 0x80,
            "short group" => drop(cells.cells[0].pop()),
            _ => cells.hashes[0] = B256::repeat_byte(0xaa),
        }
        send(&raw, &Message::Cells(cells)).await;
        let e = expect_disconnect(&mut node, &raw_peer, DisconnectReason::BreachOfProtocol).await;
        assert!(matches!(e, eth::Error::Cells(_)), "{case}: {e}");
    }
}

/// Two of our nodes on eth/72 relay a blob transaction: announced with the data-cell
/// bitmap, fetched without blobs, completed from cells.
#[tokio::test]
async fn our_nodes_relay_blob_transactions_over_eth72() {
    let c = Arc::new(chain());
    let tx = blob_tx(3);
    let (a_eth, a_handle, _a_events) = eth::Eth::new(c.clone(), eth::Config::default());
    a_handle
        .pool()
        .add(tx.clone(), pool::Origin::Remote)
        .expect("pooled");
    let (b_eth, b_handle, _b_events) = eth::Eth::new(c.clone(), eth::Config::default());
    use protocols::Subprotocol;
    let (mut a, mut b) = spawn_pair(a_eth.protocols(), b_eth.protocols()).await;
    tokio::spawn(a_eth.handle(a.take_protocol("eth").expect("eth")));
    tokio::spawn(b_eth.handle(b.take_protocol("eth").expect("eth")));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !b_handle.pool().contains(tx.hash()) {
        assert!(tokio::time::Instant::now() < deadline, "not relayed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(b_handle.peers()[0].status.version, ETH72);
    let got = b_handle.pool().get(tx.hash()).unwrap();
    assert_eq!(got.encoded, a_handle.pool().get(tx.hash()).unwrap().encoded);
}

/// An eth/72 announcement with a bitmap is taken (the bitmap not looked at) and its
/// transactions fetched.
#[tokio::test]
async fn eth72_announcements_are_fetched() {
    let (_node, _p, mut raw) = served(ETH72).await;
    let blob = B256::repeat_byte(0xb0);
    let plain = B256::repeat_byte(0x1e);
    let ann = Message::NewPooledTransactionHashes72(NewPooledTransactionHashes72 {
        announcement: NewPooledTransactionHashes {
            types: vec![3, 2].into(),
            sizes: vec![1000, 110],
            hashes: vec![blob, plain],
        },
        cells: CellMask::NONE,
    });
    send(&raw, &ann).await;
    let asked = loop {
        if let Message::GetPooledTransactions(r) = recv(&mut raw, ETH72).await {
            break r.message;
        }
    };
    assert_eq!(asked, vec![blob, plain]);
}

/// Our node asks another for receipts at each version: eth/68 (with blooms) and eth/69
/// give whole lists and stop before block 11's 10.6 MB; eth/70 cuts block 11 short and
/// the rest comes with `firstBlockReceiptIndex`. Every list verifies against its header.
#[tokio::test]
async fn our_nodes_exchange_receipts_at_every_version() {
    let c = Arc::new(chain());
    let want: Vec<Vec<Receipt69>> = (10..=12).map(receipts_of).collect();
    let hashes: Vec<B256> = (10..=12).map(hash).collect();
    for version in [ETH68, ETH69, ETH70] {
        let config = eth::Config {
            versions: vec![version],
            ..eth::Config::default()
        };
        let (a, _b) = eth_pair(c.clone(), config.clone(), c.clone(), config).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while a.handle.peers().is_empty() {
            assert!(tokio::time::Instant::now() < deadline, "no eth session");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let peer = a.handle.peers()[0].id;
        let first = a
            .handle
            .request_receipts(&peer, hashes.clone(), 0)
            .await
            .unwrap();
        if version < ETH70 {
            assert_eq!(first.lists, want[..1], "eth/{version}");
            assert!(!first.last_block_incomplete);
            continue;
        }
        assert!(first.last_block_incomplete);
        assert_eq!(first.lists.len(), 2);
        assert_eq!(first.lists[0], want[0]);
        let part = first.lists[1].len();
        assert!(part > 0 && part < want[1].len());
        let rest = a
            .handle
            .request_receipts(&peer, hashes[1..].to_vec(), part as u64)
            .await
            .unwrap();
        assert!(!rest.last_block_incomplete);
        let mut whole = first.lists[1].clone();
        whole.extend(rest.lists[0].iter().cloned());
        assert_eq!(whole, want[1]);
        assert_eq!(rest.lists[1], want[2]);
    }
}
