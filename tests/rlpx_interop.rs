//! Interop with a real RLPx implementation written by others: `@ethereumjs/devp2p`
//! (pinned in `tests/interop/package-lock.json`), on 127.0.0.1, both directions: ECIES
//! handshake, Hello, snappy, Ping/Pong and eth subprotocol messages.

mod support;

use bytes::Bytes;
use rlpx::{CloseReason, Config, DisconnectReason, Peer, Protocol, conn};
use secp256k1::{PublicKey, SecretKey};
use serde_json::{Value, json};
use std::sync::atomic::Ordering;
use std::time::Duration;
use support::{JsPeer, id_hex, key_hex};

/// The dummy Status the harness sends in `raw` mode.
const JS_STATUS: &str = "f84e4482053901a01111111111111111111111111111111111111111111111111111111111111111a01111111111111111111111111111111111111111111111111111111111111111c684deadbeef80";

fn config() -> Config {
    Config {
        protocols: vec![Protocol::new("eth", 68, 17)],
        ..Config::default()
    }
}

/// A Status-shaped message of ours, distinct from the JS one.
fn our_status() -> Vec<u8> {
    let mut s = hex::decode(JS_STATUS).unwrap();
    let n = s.len();
    s[n - 3] = 0xaa; // change the fork hash's last-but-one byte
    s
}

/// Drives one connected session through the checks both directions share.
async fn exercise(mut peer: Peer, js: &mut JsPeer, our_id: &str) {
    let info = peer.info().clone();
    assert!(
        info.hello
            .client_id
            .starts_with("ethereumjs-devp2p-interop"),
        "{:?}",
        info.hello
    );
    assert!(info.snappy, "JS speaks p2p v5, so snappy must be on");
    assert_eq!(info.shared.len(), 1);
    assert_eq!(info.shared[0].cap.to_string(), "eth/68");

    let js_peer = js.event("peer").await;
    assert_eq!(js_peer["id"], our_id);
    assert_eq!(js_peer["snappy"], true);
    assert_eq!(js_peer["sharedCaps"], json!(["eth/68"]));

    let mut eth = peer.take_protocol("eth").unwrap();
    // Their Status reaches us, decompressed, as code 0.
    let (code, data) = tokio::time::timeout(Duration::from_secs(10), eth.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(code, 0);
    assert_eq!(hex::encode(&data), JS_STATUS);

    // Ours reaches them; then a large message (exercises snappy and multi-KB frames).
    eth.send(0, Bytes::from(our_status())).await.unwrap();
    let got = js
        .wait(10, "our status", |v| {
            v["event"] == "message" && v["code"] == 0
        })
        .await;
    assert_eq!(got["payload"], hex::encode(our_status()));
    // NewPooledTransactionHashes-shaped (code 8): [types, sizes, hashes] with 2000 hashes.
    let big = big_announcement(2000);
    eth.send(8, Bytes::from(big.clone())).await.unwrap();
    let got = js
        .wait(10, "big message", |v| {
            v["event"] == "message" && v["code"] == 8
        })
        .await;
    assert_eq!(got["payload"], hex::encode(&big));

    // Ping/Pong both ways: the harness pings after Hello and we answer; we ping and it answers.
    js.wait(10, "pong from us", |v| v["event"] == "pong").await;
    peer.ping();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while info.stats.pongs.load(Ordering::Relaxed) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no Pong from the JS peer"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A message from them mid-session.
    js.cmd(json!({"cmd": "send", "code": 3, "payload": "c6820539c20102"}))
        .await;
    let (code, data) = tokio::time::timeout(Duration::from_secs(10), eth.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (code, hex::encode(&data)),
        (3, "c6820539c20102".to_string())
    );

    peer.disconnect(DisconnectReason::ClientQuitting);
    assert_eq!(
        peer.closed().await,
        CloseReason::Local(DisconnectReason::ClientQuitting)
    );
    let got = js
        .wait(10, "disconnect", |v| v["event"] == "disconnect-received")
        .await;
    assert_eq!(got["reason"], 8);
}

fn big_announcement(n: usize) -> Vec<u8> {
    use alloy_rlp::Encodable;
    let types: Vec<u8> = (0..n).map(|i| (i % 3) as u8).collect();
    let sizes: Vec<u64> = (0..n as u64).map(|i| 100 + i).collect();
    let hashes: Vec<[u8; 32]> = (0..n).map(|i| [(i % 251) as u8; 32]).collect();
    let mut payload = Vec::new();
    types.as_slice().encode(&mut payload);
    sizes.encode(&mut payload);
    hashes.encode(&mut payload);
    let mut out = Vec::new();
    alloy_rlp::Header {
        list: true,
        payload_length: payload.len(),
    }
    .encode(&mut out);
    out.extend(payload);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn we_dial_ethereumjs() {
    let js_key = SecretKey::new(&mut rand::rng());
    let mut js = JsPeer::spawn(
        "rlpx_peer.mjs",
        &[
            "--key".into(),
            key_hex(&js_key),
            "--listen".into(),
            "--timeout-ms".into(),
            "40000".into(),
        ],
    );
    let listening: Value = js.event("listening").await;
    let port = listening["port"].as_u64().unwrap() as u16;
    let js_id = PublicKey::from_secret_key_global(&js_key);
    assert_eq!(listening["id"], id_hex(&js_id));

    let key = SecretKey::new(&mut rand::rng());
    let cfg = config();
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let hs = conn::connect_tcp(addr, &key, js_id, &cfg)
        .await
        .expect("handshake with ethereumjs");
    let peer = hs
        .hello(&key, &cfg)
        .await
        .expect("hello with ethereumjs")
        .start(&cfg);
    exercise(
        peer,
        &mut js,
        &id_hex(&PublicKey::from_secret_key_global(&key)),
    )
    .await;
    js.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ethereumjs_dials_us() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let key = SecretKey::new(&mut rand::rng());
    let our_id = id_hex(&PublicKey::from_secret_key_global(&key));
    let js_key = SecretKey::new(&mut rand::rng());
    let mut js = JsPeer::spawn(
        "rlpx_peer.mjs",
        &[
            "--key".into(),
            key_hex(&js_key),
            "--dial".into(),
            format!("enode://{our_id}@127.0.0.1:{port}"),
            "--timeout-ms".into(),
            "40000".into(),
        ],
    );
    let (stream, addr) = tokio::time::timeout(Duration::from_secs(20), listener.accept())
        .await
        .unwrap()
        .unwrap();
    let cfg = config();
    let hs = conn::accept(stream, Some(addr), &key, &cfg)
        .await
        .expect("handshake from ethereumjs");
    assert_eq!(hs.remote_id(), &PublicKey::from_secret_key_global(&js_key));
    let peer = hs
        .hello(&key, &cfg)
        .await
        .expect("hello from ethereumjs")
        .start(&cfg);
    exercise(peer, &mut js, &our_id).await;
    js.stop().await;
}
