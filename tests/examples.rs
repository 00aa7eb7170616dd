//! The examples (`cargo run --example …`), run as tests between real nodes on loopback:
//! each example's `run`/`print_*` function against a local devnet of library nodes.

// The watching examples each include `examples/common/watch.rs`.
#![allow(clippy::duplicate_mod)]

#[path = "../examples/block_listener.rs"]
#[allow(dead_code)]
mod block_listener;
#[path = "../examples/full_node_with_custom_protocol.rs"]
#[allow(dead_code)]
mod full_node;
#[path = "../examples/tx_watcher.rs"]
#[allow(dead_code)]
mod tx_watcher;

use devp2p::node::{Config, Node};
use full_node::chain;
use std::path::PathBuf;
use std::time::Duration;

/// Bounds every example: they end by themselves well before.
const LIMIT: Duration = Duration::from_secs(60);

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("devp2p-ex-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A node holding blocks `1..=upto` of the bundled chain.
async fn node_with_chain(dir: &std::path::Path, upto: u64) -> Node {
    let node = Node::builder(Config::local(dir)).start().await.unwrap();
    let imported = node
        .importer()
        .unwrap()
        .import(chain::blocks(upto), None)
        .await;
    assert_eq!(imported.result.unwrap().head_number, upto);
    node
}

/// A node dialling `peer` (and taking its block gossip), once its eth session is up.
async fn follower(dir: &std::path::Path, peer: &Node) -> Node {
    let config = Config {
        static_nodes: vec![peer.enode()],
        block_sources: vec![peer.enode().id],
        ..Config::local(dir)
    };
    let node = Node::builder(config).start().await.unwrap();
    let mut joined = node.subscribe_eth_peers().unwrap();
    tokio::time::timeout(LIMIT, async {
        while node.eth().unwrap().peers().is_empty() {
            joined.recv().await.unwrap();
        }
    })
    .await
    .expect("eth session");
    node
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_node_with_custom_protocol_syncs_and_exchanges_kv_entries() {
    let dir = tempdir("full");
    let (head, value) = tokio::time::timeout(LIMIT, full_node::run(&dir, 600))
        .await
        .expect("ends")
        .unwrap();
    assert_eq!(head, 600);
    assert_eq!(&value[..], b"hello from A");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tx_watcher_prints_each_transaction_a_peer_sends() {
    let dir = tempdir("txw");
    let a = node_with_chain(&dir.join("a"), 400).await;
    let w = follower(&dir.join("w"), &a).await;
    // The next blocks' transactions, as a wallet would submit them to A.
    let txs: Vec<_> = chain::blocks(600)[400..]
        .iter()
        .flat_map(|b| b.body.transactions.iter().cloned())
        .filter_map(|t| t.try_into_pooled().ok())
        .take(10)
        .collect();
    assert_eq!(txs.len(), 10);
    let mut out = Vec::new();
    let submit = async {
        let mut hashes = Vec::new();
        for tx in txs {
            hashes.push(a.eth().unwrap().submit_transaction(tx).unwrap().hash);
        }
        hashes
    };
    let (printed, hashes) = tokio::time::timeout(LIMIT, async {
        tokio::join!(
            tx_watcher::print_transactions(&w, &mut out, Some(10)),
            submit
        )
    })
    .await
    .expect("the watcher sees every transaction");
    assert_eq!(printed, 10);
    let out = String::from_utf8(out).unwrap();
    for h in hashes {
        assert!(out.contains(&h.to_string()), "{h} missing from\n{out}");
    }
    assert!(
        out.lines()
            .all(|l| l.contains(" type ") && l.contains(" bytes")),
        "{out}"
    );
    w.shutdown().await;
    a.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_listener_prints_blocks_as_they_propagate() {
    let dir = tempdir("blk");
    let a = node_with_chain(&dir.join("a"), 500).await;
    let l = follower(&dir.join("l"), &a).await;
    let mut sync = l.sync().unwrap();
    tokio::time::timeout(LIMIT, sync.wait_for(|s| s.current >= 500))
        .await
        .expect("synced");
    let new = chain::blocks(510).split_off(500);
    let mut out = Vec::new();
    let produce = async {
        for b in new {
            a.propagator().unwrap().import_local(b).await.unwrap();
        }
    };
    let (printed, ()) = tokio::time::timeout(LIMIT, async {
        tokio::join!(
            block_listener::print_blocks(&l, &mut out, Some(10)),
            produce
        )
    })
    .await
    .expect("the listener sees every new block");
    assert_eq!(printed, 10);
    let out = String::from_utf8(out).unwrap();
    let a_id = rlpx::peer::short_id(&a.enode().id.public_key().unwrap()).to_string();
    for (line, n) in out.lines().zip(501..) {
        assert!(line.starts_with(&format!("block {n} ")), "{out}");
        // Propagation and sync race for each block (A's head moves, so L's sync starts a
        // round); only propagation knows the sender.
        assert!(
            line.ends_with(&format!("from {a_id}")) || line.ends_with("by sync or locally"),
            "{out}"
        );
    }
    l.shutdown().await;
    a.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
