//! `eth` interop with real code written by others: a peer built on `@ethereumjs/devp2p`
//! (`tests/interop/eth_peer.mjs`) with the ethtest genesis completes the Status handshake
//! with our node and fetches all headers and bodies from it, checking hashes and roots;
//! and our node fetches the whole chain from such a peer, validating every block.

mod support;

use devp2p::chain::eth::EthChain;
use protocols::eth::{self, BlockId, GetBlockHeaders};
use secp256k1::{PublicKey, SecretKey};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use support::{EthNode, JsPeer, chain_rlp, ethtest_store, id_hex, key_hex, tempdir};

const HEAD: &str = "0x44e3809c9a3cda717f00aea3a9da336d149612c8d5657fbc0028176ef8d94d2a";

/// Our node serving (and storing into) `store`.
async fn node(store: &Arc<devp2p::chain::Store>) -> EthNode {
    EthNode::start(
        Arc::new(EthChain::new(store.clone())),
        eth::Config::default(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ethereumjs_fetches_the_chain_from_us() {
    let dir = tempdir("serve");
    let store = ethtest_store(&dir);
    devp2p::cmd::import::import_file(&store, &chain_rlp()).unwrap();
    let n = node(&store).await;
    let enode = format!(
        "enode://{}@{}",
        id_hex(&PublicKey::from_secret_key_global(&n.key)),
        n.server.listen_addr()
    );
    let js_key = SecretKey::new(&mut rand::rng());
    let mut js = JsPeer::spawn(
        "eth_peer.mjs",
        &[
            "--key".into(),
            key_hex(&js_key),
            "--dial".into(),
            enode,
            "--mode".into(),
            "fetch".into(),
            "--timeout-ms".into(),
            "40000".into(),
        ],
    );
    let status = js.wait(20, "status", |v| v["event"] == "status").await;
    assert_eq!(
        status["head"].as_str().map(|h| h.trim_start_matches("0x")),
        Some(&HEAD[2..])
    );
    let done = js
        .wait(40, "fetched", |v| {
            v["event"] == "fetched" || v["event"] == "fetch-error"
        })
        .await;
    assert_eq!(done["event"], "fetched", "{done}");
    assert_eq!(done["blocks"].as_u64(), Some(600), "{done}");
    let head: &Value = &done["head"];
    assert_eq!(
        head.as_str().map(|h| h.trim_start_matches("0x")),
        Some(&HEAD[2..])
    );
    js.stop().await;
    n.server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn we_fetch_the_chain_from_ethereumjs() {
    let js_key = SecretKey::new(&mut rand::rng());
    let mut js = JsPeer::spawn(
        "eth_peer.mjs",
        &[
            "--key".into(),
            key_hex(&js_key),
            "--listen".into(),
            "--mode".into(),
            "serve".into(),
            "--timeout-ms".into(),
            "40000".into(),
        ],
    );
    let listening = js.event("listening").await;
    let port = listening["port"].as_u64().unwrap() as u16;
    let dir = tempdir("fetch");
    let store = ethtest_store(&dir);
    let mut n = node(&store).await;
    let js_id = discovery::NodeId::from_public_key(&PublicKey::from_secret_key_global(&js_key));
    n.server
        .add_peer(discovery::Node {
            id: js_id,
            ip: [127, 0, 0, 1].into(),
            udp: 0,
            tcp: port,
        })
        .await;
    let peer = loop {
        match tokio::time::timeout(Duration::from_secs(20), n.events.recv())
            .await
            .unwrap()
        {
            Some(eth::Event::PeerConnected { peer, status }) => {
                assert_eq!(status.head_hash.to_string(), HEAD);
                break peer;
            }
            Some(eth::Event::StatusFailed { reason, .. }) => panic!("status failed: {reason}"),
            _ => {}
        }
    };
    // Headers in batches by number, then bodies by hash; every block validated on insert.
    let mut next = 1u64;
    while next <= 600 {
        let req = GetBlockHeaders {
            origin: BlockId::Number(next),
            amount: 128,
            skip: 0,
            reverse: false,
        };
        let headers = n.eth.request_headers(&peer, req).await.unwrap();
        assert!(!headers.is_empty(), "no headers from {next}");
        let hashes: Vec<_> = headers.iter().map(|h| h.hash_slow()).collect();
        let bodies = n.eth.request_bodies(&peer, hashes).await.unwrap();
        assert_eq!(bodies.len(), headers.len());
        let blocks: Vec<devp2p::chain::Block> = headers
            .into_iter()
            .zip(bodies)
            .map(|(header, body)| devp2p::chain::Block { header, body })
            .collect();
        next += blocks.len() as u64;
        store.insert_blocks(&blocks).unwrap();
    }
    let head = store.head().unwrap();
    assert_eq!(head.number, 600);
    assert_eq!(head.hash_slow().to_string(), HEAD);
    js.stop().await;
    n.server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
