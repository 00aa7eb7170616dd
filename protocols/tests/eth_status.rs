//! The Status handshake between two `Eth` nodes and against a scripted raw peer.

mod common;

use std::sync::Arc;
use std::time::Duration;

use alloy_primitives::B256;
use common::*;
use protocols::eth::forkid::{self, ForkId};
use protocols::eth::messages::{Message, Status, code};
use protocols::eth::{self, Chain, ETH68, ETH69, Event, status};
use rlpx::{CloseReason, DisconnectReason};

async fn next_event(node: &mut Node) -> Event {
    tokio::time::timeout(Duration::from_secs(5), node.events.recv())
        .await
        .expect("event in time")
        .expect("events open")
}

async fn both_versions(a_versions: Vec<u32>, b_versions: Vec<u32>, want: u32) {
    let c: Arc<dyn Chain> = Arc::new(chain());
    let cfg = |versions| eth::Config {
        versions,
        ..eth::Config::default()
    };
    let (mut a, mut b) = eth_pair(c.clone(), cfg(a_versions), c.clone(), cfg(b_versions)).await;
    for node in [&mut a, &mut b] {
        let Event::PeerConnected { status, .. } = next_event(node).await else {
            panic!("expected PeerConnected");
        };
        assert_eq!(status.version, want);
        assert_eq!(status.head_hash, hash(600));
        assert_eq!(status.fork_id, c.fork_id());
        if want == ETH69 {
            assert_eq!(status.head_number, Some(600));
            assert_eq!(status.earliest, Some(1));
            assert_eq!(status.total_difficulty, None);
        } else {
            assert_eq!(status.head_number, None);
            assert!(status.total_difficulty.is_some());
        }
        let peers = node.handle.peers();
        assert_eq!(peers.len(), 1);
        assert_eq!(peers[0].status, status);
    }
    let a_id = *b.peer.id();
    assert!(b.handle.peer(&a_id).is_some());
    a.peer.disconnect(DisconnectReason::ClientQuitting);
    let Event::PeerDisconnected { error: None, .. } = next_event(&mut b).await else {
        panic!("expected a clean PeerDisconnected");
    };
    assert!(b.handle.peers().is_empty());
}

#[tokio::test]
async fn handshake_eth69_between_two_nodes() {
    both_versions(vec![ETH68, ETH69], vec![ETH68, ETH69], ETH69).await;
}

#[tokio::test]
async fn handshake_eth68_when_one_side_offers_only_68() {
    both_versions(vec![ETH68, ETH69], vec![ETH68], ETH68).await;
}

/// Runs our node against a raw peer that answers with `status` (built from our correct
/// one by `edit`) and expects the handshake to fail with `reason`.
async fn rejected(
    version: u32,
    edit: impl FnOnce(&mut Status),
    want: DisconnectReason,
) -> status::Error {
    let c: Arc<dyn Chain> = Arc::new(chain());
    let (mut node, raw_peer, mut raw) =
        eth_vs_raw(c.clone(), eth::Config::default(), version).await;
    let Message::Status(_) = recv(&mut raw, version).await else {
        panic!("node did not send Status first");
    };
    let mut theirs = eth::status::local(&*c, version);
    edit(&mut theirs);
    send(&raw, &Message::Status(theirs)).await;
    assert_eq!(raw_peer.closed().await, CloseReason::Remote(want));
    let Event::StatusFailed { reason, .. } = next_event(&mut node).await else {
        panic!("expected StatusFailed");
    };
    assert_eq!(reason.disconnect_reason(), want);
    assert!(node.handle.peers().is_empty());
    reason
}

#[tokio::test]
async fn wrong_network_id() {
    for v in [ETH68, ETH69] {
        let e = rejected(
            v,
            |s| match s {
                Status::V68(s) => s.network_id = 1,
                Status::V69(s) => s.network_id = 1,
            },
            DisconnectReason::SubprotocolError,
        )
        .await;
        assert!(matches!(e, status::Error::Network { theirs: 1, .. }), "{e}");
        assert!(e.is_incompatible());
    }
}

#[tokio::test]
async fn wrong_genesis() {
    let e = rejected(
        ETH69,
        |s| {
            if let Status::V69(s) = s {
                s.genesis = B256::repeat_byte(0xab);
            }
        },
        DisconnectReason::SubprotocolError,
    )
    .await;
    assert!(matches!(e, status::Error::Genesis { .. }), "{e}");
}

#[tokio::test]
async fn incompatible_fork_id() {
    let e = rejected(
        ETH68,
        |s| {
            if let Status::V68(s) = s {
                s.fork_id = ForkId {
                    hash: [0xde, 0xad, 0xbe, 0xef],
                    next: 0,
                };
            }
        },
        DisconnectReason::SubprotocolError,
    )
    .await;
    assert_eq!(
        e,
        status::Error::ForkId(forkid::Error::LocalIncompatibleOrStale)
    );
}

#[tokio::test]
async fn stale_fork_id() {
    // The Cancun-era fork hash with no knowledge of Prague: stale (EIP-2124 rule 2).
    let cancun = chain().fork_filter().fork_id(0, 60);
    let e = rejected(
        ETH69,
        |s| {
            if let Status::V69(s) = s {
                s.fork_id = ForkId {
                    hash: cancun.hash,
                    next: 0,
                };
            }
        },
        DisconnectReason::SubprotocolError,
    )
    .await;
    assert_eq!(e, status::Error::ForkId(forkid::Error::RemoteStale));
}

#[tokio::test]
async fn version_mismatch_and_invalid_range() {
    let e = rejected(
        ETH69,
        |s| {
            if let Status::V69(s) = s {
                s.version = 68;
            }
        },
        DisconnectReason::SubprotocolError,
    )
    .await;
    assert!(matches!(
        e,
        status::Error::Version {
            ours: 69,
            theirs: 68
        }
    ));
    let e = rejected(
        ETH69,
        |s| {
            if let Status::V69(s) = s {
                s.earliest = s.latest + 1;
            }
        },
        DisconnectReason::BreachOfProtocol,
    )
    .await;
    assert_eq!(e, status::Error::Range);
}

#[tokio::test]
async fn non_status_first_message() {
    let c: Arc<dyn Chain> = Arc::new(chain());
    let (mut node, raw_peer, mut raw) = eth_vs_raw(c, eth::Config::default(), ETH68).await;
    let _ = recv(&mut raw, ETH68).await;
    // A perfectly valid GetBlockHeaders, but before Status.
    send_bytes(
        &raw,
        code::GET_BLOCK_HEADERS,
        vec![0xc7, 0x01, 0xc5, 0x01, 0x01, 0x80, 0x80],
    )
    .await;
    assert_eq!(
        raw_peer.closed().await,
        CloseReason::Remote(DisconnectReason::BreachOfProtocol)
    );
    let Event::StatusFailed { reason, .. } = next_event(&mut node).await else {
        panic!("expected StatusFailed");
    };
    assert_eq!(reason, status::Error::NotStatus(code::GET_BLOCK_HEADERS));
}

#[tokio::test]
async fn garbage_status() {
    let c: Arc<dyn Chain> = Arc::new(chain());
    let (mut node, raw_peer, mut raw) = eth_vs_raw(c, eth::Config::default(), ETH69).await;
    let _ = recv(&mut raw, ETH69).await;
    send_bytes(&raw, code::STATUS, vec![0xc3, 0x45, 0x01, 0x02]).await;
    assert_eq!(
        raw_peer.closed().await,
        CloseReason::Remote(DisconnectReason::BreachOfProtocol)
    );
    let Event::StatusFailed { reason, .. } = next_event(&mut node).await else {
        panic!("expected StatusFailed");
    };
    assert!(matches!(reason, status::Error::Malformed(_)), "{reason}");
}

#[tokio::test]
async fn status_timeout() {
    let c: Arc<dyn Chain> = Arc::new(chain());
    let cfg = eth::Config {
        handshake_timeout: Duration::from_millis(300),
        ..eth::Config::default()
    };
    let started = std::time::Instant::now();
    let (mut node, raw_peer, mut raw) = eth_vs_raw(c, cfg, ETH69).await;
    let _ = recv(&mut raw, ETH69).await;
    // Say nothing.
    assert_eq!(
        raw_peer.closed().await,
        CloseReason::Remote(DisconnectReason::PingTimeout)
    );
    assert!(started.elapsed() >= Duration::from_millis(300));
    let Event::StatusFailed { reason, .. } = next_event(&mut node).await else {
        panic!("expected StatusFailed");
    };
    assert_eq!(reason, status::Error::Timeout);
}
