//! The node-level peer table and the sessions behind it, against scripted raw peers: a
//! block goes to each peer at most once, block broadcast sends NewBlock to sqrt(n) eth/68
//! peers and NewBlockHashes to the rest, and `Handle::subscribe` reports joins, head
//! updates and departures.

mod common;

use std::sync::Arc;
use std::time::Duration;

use alloy_primitives::{B256, U256};
use common::*;
use protocols::Subprotocol;
use protocols::eth::messages::{
    BlockHashNumber, BlockId, BlockRangeUpdate, GetBlockHeaders, Message,
};
use protocols::eth::{self, ETH68, ETH69, Eth, PeerEvent};
use rlpx::{Protocol, ProtocolHandle};
use tokio::sync::broadcast;

/// One scripted peer of a [`Hub`].
struct Raw {
    /// Its id as the node sees it.
    id: eth::PeerId,
    version: u32,
    handle: ProtocolHandle,
    /// The node's side of the connection (kept open).
    _node_side: rlpx::Peer,
    _raw_side: rlpx::Peer,
}

/// Our Eth with several raw peers.
struct Hub {
    handle: eth::Handle,
    peers: Vec<Raw>,
    joined: broadcast::Receiver<PeerEvent>,
    events: tokio::sync::mpsc::Receiver<eth::Event>,
}

async fn hub(versions: &[u32]) -> Hub {
    let c = chain();
    let (eth, handle, events) = Eth::new(Arc::new(c.clone()), eth::Config::default());
    let mut joined = handle.subscribe();
    let mut peers = Vec::new();
    for &version in versions {
        let messages = if version >= ETH69 { 18 } else { 17 };
        let (mut a, mut b) = spawn_pair(
            eth.protocols(),
            vec![Protocol::new("eth", version, messages)],
        )
        .await;
        tokio::spawn(eth.handle(a.take_protocol("eth").expect("eth shared")));
        let mut raw = b.take_protocol("eth").expect("eth shared");
        handshake(&mut raw, &c, version).await;
        let id = *a.id();
        assert_eq!(next(&mut joined).await, joined_event(&handle, id));
        peers.push(Raw {
            id,
            version,
            handle: raw,
            _node_side: a,
            _raw_side: b,
        });
    }
    Hub {
        handle,
        peers,
        joined,
        events,
    }
}

fn joined_event(handle: &eth::Handle, id: eth::PeerId) -> PeerEvent {
    PeerEvent::Joined(handle.peer(&id).expect("in the table"))
}

async fn next(events: &mut broadcast::Receiver<PeerEvent>) -> PeerEvent {
    tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .expect("peer event in time")
        .expect("no lag")
}

/// What the node sent `raw` for its commands so far: asks for a header through the
/// node's handle (queued behind every earlier command of that session) and collects the
/// messages that arrive before the request.
async fn sent_so_far(handle: &eth::Handle, raw: &mut Raw) -> Vec<Message> {
    let (h, id) = (handle.clone(), raw.id);
    let ask = tokio::spawn(async move {
        let req = GetBlockHeaders {
            origin: BlockId::Number(0),
            amount: 1,
            skip: 0,
            reverse: false,
        };
        let _ = h.request_headers(&id, req).await;
    });
    let mut got = Vec::new();
    loop {
        match recv(&mut raw.handle, raw.version).await {
            Message::GetBlockHeaders(_) => break,
            m => got.push(m),
        }
    }
    ask.abort();
    got
}

/// The block messages among `msgs`: `(hash, in full)`.
fn blocks_in(msgs: &[Message]) -> Vec<(B256, bool)> {
    msgs.iter()
        .flat_map(|m| match m {
            Message::NewBlock(b) => vec![(b.block.header.hash_slow(), true)],
            Message::NewBlockHashes(h) => h.iter().map(|h| (h.hash, false)).collect(),
            _ => vec![],
        })
        .collect()
}

#[tokio::test]
async fn a_block_goes_to_a_peer_once() {
    let mut h = hub(&[ETH68]).await;
    let block = &blocks()[10];
    let hash = block.header.hash_slow();
    let id = h.peers[0].id;
    assert!(h.handle.send_new_block(&id, block, U256::from(7)));
    // Sent again, likely before the session marked it known: queued, and the session
    // drops the copies.
    h.handle.send_new_block(&id, block, U256::from(7));
    h.handle
        .send_new_block_hashes(&id, hash, block.header.number);
    let sent = sent_so_far(&h.handle, &mut h.peers[0]).await;
    assert_eq!(blocks_in(&sent), vec![(hash, true)]);
    // Now known: refused at once.
    assert!(h.handle.knows_block(&id, &hash));
    assert!(!h.handle.send_new_block(&id, block, U256::from(7)));
    assert!(
        !h.handle
            .send_new_block_hashes(&id, hash, block.header.number)
    );
    assert_eq!(h.handle.broadcast_block(block, U256::from(7), None), (0, 0));
    // A block the peer announced is never sent back to it.
    let other = &blocks()[11];
    let ann = vec![BlockHashNumber {
        hash: other.header.hash_slow(),
        number: other.header.number,
    }];
    send(&h.peers[0].handle, &Message::NewBlockHashes(ann)).await;
    barrier(&mut h.peers[0].handle, ETH68, 99).await;
    assert!(h.handle.knows_block(&id, &other.header.hash_slow()));
    assert_eq!(h.handle.broadcast_block(other, U256::ZERO, None), (0, 0));
}

#[tokio::test]
async fn block_broadcast_sends_sqrt_n_in_full_to_eth68_peers_only() {
    // 9 peers: 3 in full, chosen among the 5 eth/68 ones; the eth/69 ones get hashes.
    let versions = [
        ETH68, ETH69, ETH68, ETH69, ETH68, ETH69, ETH68, ETH69, ETH68,
    ];
    let mut h = hub(&versions).await;
    let block = &blocks()[20];
    let hash = block.header.hash_slow();
    assert_eq!(h.handle.broadcast_block(block, U256::from(1), None), (3, 6));
    let mut full = 0;
    for raw in &mut h.peers {
        let got = blocks_in(&sent_so_far(&h.handle, raw).await);
        assert_eq!(got.len(), 1, "one message per peer");
        assert_eq!(got[0].0, hash);
        if got[0].1 {
            assert_eq!(raw.version, ETH68, "NewBlock to an eth/69 peer");
            full += 1;
        }
    }
    assert_eq!(full, 3);
    // Everyone knows it now.
    assert_eq!(h.handle.broadcast_block(block, U256::from(1), None), (0, 0));
    // The sender is left out; 8 candidates make 3 in full.
    let next = &blocks()[21];
    let from = h.peers[0].id;
    assert_eq!(
        h.handle.broadcast_block(next, U256::ZERO, Some(from)),
        (3, 5)
    );
    let got = blocks_in(&sent_so_far(&h.handle, &mut h.peers[0]).await);
    assert!(got.is_empty(), "{got:?}");
    assert!(!h.handle.knows_block(&from, &next.header.hash_slow()));
}

#[tokio::test]
async fn peer_events_follow_joins_head_updates_and_departures() {
    let mut h = hub(&[ETH68, ETH69]).await;
    let (a, b) = (h.peers[0].id, h.peers[1].id);
    // A NewBlockHashes beyond the peer's head moves it.
    let before = h.handle.peer(&a).expect("a").status;
    let ann = |number| {
        vec![BlockHashNumber {
            hash: B256::repeat_byte(number as u8),
            number,
        }]
    };
    send(&h.peers[0].handle, &Message::NewBlockHashes(ann(5000))).await;
    let PeerEvent::Updated(info) = next(&mut h.joined).await else {
        panic!("expected an update");
    };
    assert_eq!(info.id, a);
    assert_eq!(info.status.head_number, Some(5000));
    assert_eq!(info.status.head_hash, B256::repeat_byte(5000u64 as u8));
    assert_eq!(info.status.fork_id, before.fork_id);
    assert_eq!(h.handle.peer(&a).expect("a"), info);
    // Not beyond it: no event, no change.
    send(&h.peers[0].handle, &Message::NewBlockHashes(ann(4000))).await;
    barrier(&mut h.peers[0].handle, ETH68, 1).await;
    // eth/69 BlockRangeUpdate.
    let range = BlockRangeUpdate {
        earliest: 0,
        latest: 6000,
        latest_hash: B256::repeat_byte(6),
    };
    send(&h.peers[1].handle, &Message::BlockRangeUpdate(range)).await;
    let PeerEvent::Updated(info) = next(&mut h.joined).await else {
        panic!("expected an update");
    };
    assert_eq!((info.id, info.status.head_number), (b, Some(6000)));
    assert_eq!(h.handle.peer(&a).expect("a").status.head_number, Some(5000));
    // The same range again changes nothing: no event.
    send(&h.peers[1].handle, &Message::BlockRangeUpdate(range)).await;
    barrier(&mut h.peers[1].handle, ETH69, 2).await;
    assert!(
        h.joined.try_recv().is_err(),
        "no event for what changed nothing"
    );
    // Departure.
    h.handle
        .disconnect(&a, rlpx::DisconnectReason::UselessPeer)
        .await
        .expect("a is there");
    assert_eq!(next(&mut h.joined).await, PeerEvent::Left(a));
    assert!(h.handle.peer(&a).is_none());
    assert_eq!(h.handle.peers().len(), 1);
}

/// A peer that changes its head thousands of times a second (eth/69 BlockRangeUpdate, 80
/// bytes each) does not flood the node's subscribers: its updates are coalesced, the last
/// one still arrives, and no subscriber lags (a lag makes the sync driver and the
/// required-block watcher re-read the whole table).
#[tokio::test]
async fn a_flood_of_head_updates_is_coalesced() {
    let mut h = hub(&[ETH69]).await;
    let b = h.peers[0].id;
    let last = 3 * eth::PEER_EVENT_BACKLOG as u64;
    for latest in 1..=last {
        let range = BlockRangeUpdate {
            earliest: 0,
            latest,
            latest_hash: B256::from(U256::from(latest)),
        };
        send(&h.peers[0].handle, &Message::BlockRangeUpdate(range)).await;
    }
    barrier(&mut h.peers[0].handle, ETH69, 1).await;
    let mut updates = 0;
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match h.joined.recv().await {
                Ok(PeerEvent::Updated(info)) => {
                    assert_eq!(info.id, b);
                    updates += 1;
                    if info.status.head_number == Some(last) {
                        break;
                    }
                }
                Ok(other) => panic!("unexpected {other:?}"),
                Err(e) => panic!("the subscriber lagged: {e}"),
            }
        }
    })
    .await
    .expect("the last head arrives");
    assert!(updates <= 3, "{updates} update events for one peer's burst");
    assert_eq!(h.handle.peer(&b).expect("b").status.head_number, Some(last));
}

/// NewBlockHashes with thousands of entries (the RLP item cap allows ~5,400) is cut to
/// [`eth::MAX_BLOCK_ANNOUNCE`] before it costs the node anything: the event carries that
/// many, and only those are marked known. (Uncut, the 1024 queued events could hold
/// 5.6 million entries.)
#[tokio::test]
async fn a_huge_block_announcement_is_cut() {
    let Hub {
        handle,
        mut peers,
        events: mut eth_events,
        ..
    } = hub(&[ETH68]).await;
    let mut raw = peers.pop().expect("a peer");
    let hashes: Vec<_> = (0..5_000u64)
        .map(|n| BlockHashNumber {
            hash: B256::from(U256::from(n + 1)),
            number: n + 1,
        })
        .collect();
    send(&raw.handle, &Message::NewBlockHashes(hashes.clone())).await;
    barrier(&mut raw.handle, ETH68, 1).await;
    let ev = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Some(eth::Event::NewBlockHashes { hashes, .. }) = eth_events.recv().await {
                return hashes;
            }
        }
    })
    .await
    .expect("the announcement event");
    assert_eq!(ev.len(), eth::MAX_BLOCK_ANNOUNCE);
    assert!(handle.knows_block(&raw.id, &hashes[0].hash));
    assert!(!handle.knows_block(&raw.id, &hashes[eth::MAX_BLOCK_ANNOUNCE].hash));
}
