//! The client side for the future downloader: requests through `eth::Handle`, matched by
//! request id, with timeouts.

mod common;

use std::sync::Arc;
use std::time::Duration;

use alloy_primitives::B256;
use common::*;
use protocols::eth::messages::{BlockId, GetBlockHeaders, Message, RequestPair};
use protocols::eth::{self, ETH68, ETH69, RequestError};
use rlpx::{CloseReason, DisconnectReason};

async fn wait_peers(node: &Node, n: usize) {
    for _ in 0..200 {
        if node.handle.peers().len() == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("expected {n} peers");
}

fn req(origin: BlockId, amount: u64, skip: u64, reverse: bool) -> GetBlockHeaders {
    GetBlockHeaders {
        origin,
        amount,
        skip,
        reverse,
    }
}

#[tokio::test]
async fn headers_and_bodies_between_two_nodes() {
    let full = chain();
    let mut behind = chain();
    behind.truncate(100);
    let (a, b) = eth_pair(
        Arc::new(full.clone()),
        eth::Config::default(),
        Arc::new(behind),
        eth::Config::default(),
    )
    .await;
    wait_peers(&a, 1).await;
    wait_peers(&b, 1).await;
    let a_id = *b.peer.id();
    let b_id = *a.peer.id();
    // B sees A's head; A sees B's (eth/69: with numbers).
    assert_eq!(b.handle.peer(&a_id).unwrap().status.head_number, Some(600));
    assert_eq!(a.handle.peer(&b_id).unwrap().status.head_number, Some(100));

    // B fetches a skeleton and a run of headers from A, several requests at once.
    let (skeleton, run, tail) = tokio::join!(
        b.handle
            .request_headers(&a_id, req(BlockId::Number(101), 5, 99, false)),
        b.handle
            .request_headers(&a_id, req(BlockId::Hash(hash(150)), 50, 0, true)),
        b.handle
            .request_headers(&a_id, req(BlockId::Number(590), 20, 0, false)),
    );
    let nums = |h: Vec<alloy_consensus::Header>| h.iter().map(|h| h.number).collect::<Vec<_>>();
    assert_eq!(nums(skeleton.unwrap()), vec![101, 201, 301, 401, 501]);
    let run = run.unwrap();
    assert_eq!(nums(run.clone()), (101..=150).rev().collect::<Vec<_>>());
    assert_eq!(run.last().unwrap().parent_hash, hash(100));
    assert_eq!(nums(tail.unwrap()), (590..=600).collect::<Vec<_>>());

    let hashes: Vec<B256> = (101..=120).map(hash).collect();
    let bodies = b.handle.request_bodies(&a_id, hashes).await.unwrap();
    let want = blocks();
    assert_eq!(bodies.len(), 20);
    for (i, body) in bodies.iter().enumerate() {
        assert_eq!(body, &want[100 + i].body);
    }
    // A asks B beyond B's head: empty, not an error.
    let none = a
        .handle
        .request_headers(&b_id, req(BlockId::Number(101), 10, 0, false))
        .await;
    assert_eq!(none, Ok(vec![]));

    // Both sides timed it: B the round trips of its 3 header and 1 body requests, A the
    // handling of each request it answered before answering the next thing (labelled by
    // message name, nothing else). Each side records a round trip before handing the
    // answer over, and a message's handling before taking the next one.
    let rtt = |n: &Node| -> Vec<(&str, u64)> {
        n.handle
            .metrics()
            .round_trips()
            .map(|(k, h)| (k, h.count()))
            .collect()
    };
    let handled = |n: &Node, name: &str| {
        let m = n.handle.metrics();
        m.handling()
            .find(|(k, _)| *k == name)
            .map(|(_, h)| h.count())
    };
    assert_eq!(
        rtt(&b),
        vec![
            ("headers", 3),
            ("bodies", 1),
            ("pooled_transactions", 0),
            ("cells", 0),
            ("receipts", 0)
        ]
    );
    assert_eq!(rtt(&a)[0], ("headers", 1));
    assert_eq!(handled(&a, "GetBlockHeaders"), Some(3));
    assert_eq!(handled(&a, "GetBlockBodies"), Some(1));
    assert_eq!(handled(&b, "BlockHeaders"), Some(3));
}

// Virtual time: the timeout below fires when everything else is idle, never early on a
// busy machine and without a real wait.
#[tokio::test(start_paused = true)]
async fn request_errors() {
    let cfg = eth::Config {
        request_timeout: Duration::from_secs(10),
        max_in_flight: 1,
        ..eth::Config::default()
    };
    let (node, raw_peer, mut raw) = eth_vs_raw(Arc::new(chain()), cfg, ETH68).await;
    handshake(&mut raw, &chain(), ETH68).await;
    wait_peers(&node, 1).await;
    let id = *node.peer.id();
    let unknown = *raw_peer.id();
    assert_eq!(
        node.handle
            .request_headers(&unknown, req(BlockId::Number(1), 1, 0, false))
            .await,
        Err(RequestError::UnknownPeer)
    );
    assert_eq!(
        node.handle
            .request_headers(&id, req(BlockId::Number(1), 1025, 0, false))
            .await,
        Err(RequestError::TooLarge)
    );
    assert_eq!(
        node.handle
            .request_bodies(&id, vec![B256::ZERO; 1025])
            .await,
        Err(RequestError::TooLarge)
    );

    // The raw peer does not answer: the first request times out, the second (sent while
    // the first is in flight) is refused as Busy.
    let h = node.handle.clone();
    let first = tokio::spawn(async move {
        h.request_headers(&id, req(BlockId::Number(1), 2, 0, false))
            .await
    });
    let Message::GetBlockHeaders(asked) = recv(&mut raw, ETH68).await else {
        panic!("expected GetBlockHeaders");
    };
    assert_eq!(
        node.handle.request_bodies(&id, vec![B256::ZERO]).await,
        Err(RequestError::Busy)
    );
    assert_eq!(first.await.unwrap(), Err(RequestError::Timeout));

    // The late answer is dropped quietly: the peer stays.
    let late = Message::BlockHeaders(RequestPair {
        request_id: asked.request_id,
        message: vec![],
    });
    send(&raw, &late).await;
    // Our node answering a later request shows it handled the late answer (in order).
    barrier(&mut raw, ETH68, 0x7e57).await;
    assert_eq!(node.handle.peers().len(), 1);

    // A matching answer resolves the request; the id is mirrored from the request.
    let h = node.handle.clone();
    let second = tokio::spawn(async move {
        h.request_headers(&id, req(BlockId::Number(5), 1, 0, false))
            .await
    });
    let Message::GetBlockHeaders(asked) = recv(&mut raw, ETH68).await else {
        panic!("expected GetBlockHeaders");
    };
    let header = blocks()[4].header.clone();
    send(
        &raw,
        &Message::BlockHeaders(RequestPair {
            request_id: asked.request_id,
            message: vec![header.clone()],
        }),
    )
    .await;
    assert_eq!(second.await.unwrap(), Ok(vec![header.clone()]));

    // The same answer again is unsolicited now.
    send(
        &raw,
        &Message::BlockHeaders(RequestPair {
            request_id: asked.request_id,
            message: vec![header],
        }),
    )
    .await;
    assert_eq!(
        raw_peer.closed().await,
        CloseReason::Remote(DisconnectReason::BreachOfProtocol)
    );
}

#[tokio::test]
async fn more_items_than_requested_disconnects_and_fails_pending() {
    let (node, raw_peer, mut raw) =
        eth_vs_raw(Arc::new(chain()), eth::Config::default(), ETH69).await;
    handshake(&mut raw, &chain(), ETH69).await;
    wait_peers(&node, 1).await;
    let id = *node.peer.id();
    let h = node.handle.clone();
    let pending = tokio::spawn(async move {
        h.request_headers(&id, req(BlockId::Number(1), 1, 0, false))
            .await
    });
    let Message::GetBlockHeaders(asked) = recv(&mut raw, ETH69).await else {
        panic!("expected GetBlockHeaders");
    };
    let two: Vec<_> = blocks().into_iter().take(2).map(|b| b.header).collect();
    send(
        &raw,
        &Message::BlockHeaders(RequestPair {
            request_id: asked.request_id,
            message: two,
        }),
    )
    .await;
    assert_eq!(
        raw_peer.closed().await,
        CloseReason::Remote(DisconnectReason::BreachOfProtocol)
    );
    assert_eq!(pending.await.unwrap(), Err(RequestError::Disconnected));
    wait_peers(&node, 0).await;
}

/// Receipts answers are held to what was asked: more lists than blocks, or an empty
/// eth/70 answer flagged incomplete (asking again from it would never end), disconnect
/// with `BreachOfProtocol`.
#[tokio::test]
async fn receipts_answers_beyond_the_request_disconnect() {
    use protocols::eth::ETH70;
    use protocols::eth::messages::Receipts70;
    for (version, incomplete, lists) in [(ETH69, false, 2), (ETH70, true, 0)] {
        let (node, raw_peer, mut raw) =
            eth_vs_raw(Arc::new(chain()), eth::Config::default(), version).await;
        handshake(&mut raw, &chain(), version).await;
        wait_peers(&node, 1).await;
        let id = *node.peer.id();
        let h = node.handle.clone();
        let pending =
            tokio::spawn(async move { h.request_receipts(&id, vec![B256::ZERO], 0).await });
        let request_id = match recv(&mut raw, version).await {
            Message::GetReceipts(r) => r.request_id,
            Message::GetReceipts70(r) => r.request_id,
            other => panic!("expected GetReceipts, got {:#x}", other.code()),
        };
        let answer = if version >= ETH70 {
            Message::Receipts70(Receipts70 {
                request_id,
                last_block_incomplete: incomplete,
                receipts: vec![Vec::new(); lists],
            })
        } else {
            Message::Receipts69(RequestPair {
                request_id,
                message: vec![Vec::new(); lists],
            })
        };
        send(&raw, &answer).await;
        let closed = tokio::time::timeout(Duration::from_secs(5), raw_peer.closed()).await;
        assert_eq!(
            closed,
            Ok(CloseReason::Remote(DisconnectReason::BreachOfProtocol)),
            "eth/{version}"
        );
        assert_eq!(pending.await.unwrap(), Err(RequestError::Disconnected));
    }
}
