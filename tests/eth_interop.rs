//! `eth` interop with real code written by others: a peer built on `@ethereumjs/devp2p`
//! (`tests/interop/eth_peer.mjs`) with the ethtest genesis completes the Status handshake
//! with our node and fetches all headers and bodies from it, checking hashes and roots;
//! and our node syncs blocks 1..599 from such a peer with the downloader, then takes
//! block 600 announced by it (as a NewBlock, or as a NewBlockHashes it fetches) and
//! propagates it to a second node of ours, without sending it back to the JS peer.

mod support;

use alloy_primitives::B256;
use devp2p::chain::Block;
use devp2p::chain::eth::EthChain;
use protocols::eth::{self, ETH68};
use secp256k1::{PublicKey, SecretKey};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use support::{
    EthNode, JsPeer, Propagating, chain_blocks, chain_rlp, ethtest_store, id_hex, key_hex, tempdir,
};

const HEAD: &str = "0x44e3809c9a3cda717f00aea3a9da336d149612c8d5657fbc0028176ef8d94d2a";

/// Our node serving (and storing into) `store`.
async fn node(store: &Arc<devp2p::chain::Store>) -> EthNode {
    EthNode::start(
        Arc::new(EthChain::new(store.clone())),
        eth::Config::default(),
    )
    .await
}

/// The events in which the JS peer reports a problem with us.
const TROUBLE: [&str; 8] = [
    "protocol-error",
    "status-mismatch",
    "peer-error",
    "disconnect",
    "unsolicited",
    "fetch-error",
    "error",
    "timeout",
];

/// Every trouble event the JS peer printed so far.
fn trouble(js: &JsPeer) -> Vec<&Value> {
    js.seen
        .iter()
        .filter(|v| TROUBLE.iter().any(|e| v["event"] == *e))
        .collect()
}

/// A JS peer speaking eth/`eth` fetches the whole chain from our node and verifies it.
async fn ethereumjs_fetches_the_chain(eth: u32) {
    let dir = tempdir(&format!("serve-{eth}"));
    let store = ethtest_store(&dir);
    devp2p::cmd::import::import_file(&store, &chain_rlp()).unwrap();
    let txs: usize = chain_blocks(u64::MAX)
        .iter()
        .map(|b| b.body.transactions.len())
        .sum();
    assert!(txs > 0, "the ethtest chain has transactions");
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
            "--eth".into(),
            eth.to_string(),
            "--timeout-ms".into(),
            "40000".into(),
        ],
    );
    let peer = js.event("peer").await;
    assert_eq!(peer["sharedCaps"], json!([format!("eth/{eth}")]), "{peer}");
    let status = js.wait(20, "status", |v| v["event"] == "status").await;
    assert_eq!(status["version"], eth, "{status}");
    assert_eq!(
        status["head"].as_str().map(|h| h.trim_start_matches("0x")),
        Some(&HEAD[2..])
    );
    if eth >= 69 {
        assert_eq!(status["latest"], "600", "{status}");
        assert_eq!(status["earliest"], "0", "{status}");
    }
    let done = js
        .wait(40, "fetched", |v| {
            v["event"] == "fetched" || v["event"] == "fetch-error"
        })
        .await;
    assert_eq!(done["event"], "fetched", "{done}");
    assert_eq!(done["blocks"].as_u64(), Some(600), "{done}");
    assert_eq!(done["txs"].as_u64(), Some(txs as u64), "{done}");
    assert_eq!(done["reachedStatusHead"], true, "{done}");
    let head: &Value = &done["head"];
    assert_eq!(
        head.as_str().map(|h| h.trim_start_matches("0x")),
        Some(&HEAD[2..])
    );
    barrier(&mut js).await;
    assert!(
        trouble(&js).is_empty(),
        "JS peer reported {:?}",
        trouble(&js)
    );
    js.stop().await;
    n.server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ethereumjs_fetches_the_chain_from_us() {
    ethereumjs_fetches_the_chain(68).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ethereumjs_fetches_the_chain_from_us_over_eth69() {
    ethereumjs_fetches_the_chain(69).await;
}

/// `0x`-less lower-case hex of a hash, as the JS peer prints them.
fn bare(h: &B256) -> String {
    hex::encode(h.as_slice())
}

/// Polls `cond` every 20 ms for up to `secs`; panics with `what()` if it never holds.
async fn until(secs: u64, cond: impl Fn() -> bool, what: impl FnOnce() -> String) {
    let ok = tokio::time::timeout(Duration::from_secs(secs), async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .is_ok();
    assert!(ok, "after {secs} s: {}", what());
}

/// An eth/68-only node of ours whose eth events feed a block propagator.
async fn propagating(name: &str, blocks: &[Block]) -> Propagating {
    let config = eth::Config {
        versions: vec![ETH68],
        ..eth::Config::default()
    };
    Propagating::start(&format!("eth-interop-{name}"), blocks, config).await
}

/// Reads every event the JS peer printed before this call into `js.seen`: sends
/// `{"cmd":"peers"}` and waits for the `peers` event it answers with (stdout is in
/// order). Returns that event.
async fn barrier(js: &mut JsPeer) -> Value {
    let before = js.seen.iter().filter(|v| v["event"] == "peers").count();
    js.cmd(json!({"cmd": "peers"})).await;
    let count = std::cell::Cell::new(0);
    js.wait(10, "peers (barrier)", |v| {
        if v["event"] != "peers" {
            return false;
        }
        count.set(count.get() + 1);
        count.get() > before
    })
    .await
}

/// A request for the one header `number`.
fn one_header(number: u64) -> eth::messages::GetBlockHeaders {
    eth::messages::GetBlockHeaders {
        origin: eth::messages::BlockId::Number(number),
        amount: 1,
        skip: 0,
        reverse: false,
    }
}

/// Whether a JS event reports receiving block `number` (NewBlock or NewBlockHashes).
fn js_got_block(v: &Value, number: u64) -> bool {
    (v["event"] == "new-block" && v["number"].as_u64() == Some(number))
        || (v["event"] == "new-block-hashes"
            && v["hashes"]
                .as_array()
                .is_some_and(|hs| hs.iter().any(|h| h["number"].as_u64() == Some(number))))
}

/// A JS peer speaking eth/`eth`, listening and serving blocks 0..=599 of the chain file.
async fn js_serving_599(eth: u32) -> (JsPeer, SecretKey) {
    let js_key = SecretKey::new(&mut rand::rng());
    let js = JsPeer::spawn(
        "eth_peer.mjs",
        &[
            "--key".into(),
            key_hex(&js_key),
            "--listen".into(),
            "--mode".into(),
            "serve".into(),
            "--eth".into(),
            eth.to_string(),
            "--serve-upto".into(),
            "599".into(),
            "--timeout-ms".into(),
            "90000".into(),
        ],
    );
    (js, js_key)
}

/// Node `a` syncs blocks 1..=599 from the JS peer (its only peer) with the real
/// downloader; returns the syncer and A's id as the JS peer prints it.
async fn sync_599_from(
    a: &Propagating,
    js: &mut JsPeer,
    js_key: &SecretKey,
    eth: u32,
) -> (devp2p::sync::Syncer, String) {
    let listening = js.event("listening").await;
    let js_node = discovery::Node {
        id: discovery::NodeId::from_public_key(&PublicKey::from_secret_key_global(js_key)),
        ip: [127, 0, 0, 1].into(),
        udp: 0,
        tcp: listening["port"].as_u64().unwrap() as u16,
    };
    let a_id = id_hex(&a.net.id());
    // The JS peer produces block 600: A's block source; A is B's.
    a.allow(PublicKey::from_secret_key_global(js_key));
    let syncer = devp2p::sync::spawn(
        a.net.eth.clone(),
        devp2p::chain::Importer::new(a.store.clone(), Some(a.net.eth.pool().clone())),
        devp2p::sync::Config::default(),
    );
    a.net.server.add_peer(js_node).await;
    let status = js.wait(20, "status", |v| v["event"] == "status").await;
    assert_eq!(status["id"], a_id.as_str(), "{status}");
    assert_eq!(status["version"], eth, "{status}");
    let mut progress = syncer.handle();
    let synced = tokio::time::timeout(
        Duration::from_secs(60),
        progress.wait_for(|s| s.current >= 599),
    )
    .await
    .unwrap_or_else(|_| {
        panic!(
            "A not synced to 599 in 60 s: {:?}, head {:?}",
            syncer.handle().status(),
            a.head()
        )
    });
    let hash_599 = chain_blocks(599)[598].header.hash_slow();
    assert_eq!(a.head(), (599, hash_599), "{synced:?}");
    (syncer, a_id)
}

/// Node A syncs 1..599 with the downloader from a JS peer serving up to 599; the JS peer
/// then announces block 600 (`full`: NewBlock, else NewBlockHashes which A fetches from
/// it) and A's propagator passes it on to node B (ours, at 599, connected only to A).
async fn sync_then_propagate(name: &str, full: bool) {
    let started = std::time::Instant::now();
    let chain = chain_blocks(600);
    assert_eq!(chain.len(), 600);
    let hash_599 = chain[598].header.hash_slow();
    let hash_600 = chain[599].header.hash_slow();
    assert_eq!(hash_600.to_string(), HEAD);

    let (mut js, js_key) = js_serving_599(68).await;

    // 1. A syncs from the JS peer with the real downloader.
    let a = propagating(&format!("{name}-a"), &[]).await;
    let (syncer, a_id) = sync_599_from(&a, &mut js, &js_key, 68).await;
    let sync_time = started.elapsed();
    // The blocks came from the JS peer (the only peer A has had so far).
    barrier(&mut js).await;
    let bodies: u64 = js
        .seen
        .iter()
        .filter(|v| v["event"] == "served" && v["what"] == "bodies")
        .map(|v| v["count"].as_u64().unwrap_or(0))
        .sum();
    assert!(bodies >= 599, "JS served {bodies} bodies");

    // 2. B at 599, connected only to A.
    let b = propagating(&format!("{name}-b"), &chain[..599]).await;
    b.allow(a.net.id());
    assert_eq!(b.head(), (599, hash_599));
    a.net.server.add_peer(b.net.node()).await;
    until(
        20,
        || a.net.eth.peers().len() == 2 && b.net.eth.peers().len() == 1,
        || {
            format!(
                "A has {} peers, B {} (want 2 and 1)",
                a.net.eth.peers().len(),
                b.net.eth.peers().len()
            )
        },
    )
    .await;

    // 3. The JS peer announces block 600.
    js.cmd(json!({"cmd": "announce", "number": 600, "full": full}))
        .await;
    let announced = js
        .wait(10, "announced", |v| {
            v["event"] == "announced" || v["event"] == "error"
        })
        .await;
    assert_eq!(announced["event"], "announced", "{announced}");
    assert_eq!(announced["hash"], bare(&hash_600).as_str(), "{announced}");
    assert_eq!(announced["sent"], json!([a_id]), "{announced}");

    until(
        20,
        || b.head().0 >= 600,
        || format!("B at {:?}, A at {:?}", b.head(), a.head()),
    )
    .await;
    assert_eq!(b.head(), (600, hash_600));
    assert_eq!(a.head(), (600, hash_600));
    if full {
        assert_eq!(a.propagator.full_blocks_received(&hash_600), 1);
    } else {
        assert_eq!(a.propagator.full_blocks_received(&hash_600), 0);
        // A fetched the announced block from the JS peer: its header by hash, then its body.
        let header = js
            .wait(5, "served header 600", |v| {
                v["event"] == "served" && v["what"] == "headers" && v["origin"] == bare(&hash_600)
            })
            .await;
        assert_eq!(header["count"], 1, "{header}");
        js.wait(5, "served body 600", |v| {
            v["event"] == "served"
                && v["what"] == "bodies"
                && v["count"].as_u64() == Some(1)
                && v["requested"].as_u64() == Some(1)
        })
        .await;
    }
    let b_full = b.propagator.full_blocks_received(&hash_600);

    // 4. No echo: A does not send block 600 back to the JS peer. A sent its announcements
    // of block 600 when it took it in (it has, see above); a request A sends the JS peer
    // now goes down the same connection after them, so once A has the answer the JS peer
    // has received everything A announced. A command round trip then reads the JS peer's
    // events up to that point.
    let js_id = PublicKey::from_secret_key_global(&js_key);
    a.net
        .eth
        .request_headers(&js_id, one_header(1))
        .await
        .expect("the JS peer answers A");
    let peers = barrier(&mut js).await;
    assert_eq!(peers["peers"], json!([a_id]), "{peers}");
    assert!(
        trouble(&js).is_empty(),
        "JS peer reported {:?}",
        trouble(&js)
    );
    let echoed: Vec<&Value> = js.seen.iter().filter(|v| js_got_block(v, 600)).collect();
    assert!(
        echoed.is_empty(),
        "block 600 sent back to the JS peer: {echoed:?}"
    );
    let announced_to_js: Vec<String> = js
        .seen
        .iter()
        .filter(|v| v["event"] == "new-block" || v["event"] == "new-block-hashes")
        .map(|v| {
            if v["event"] == "new-block" {
                format!("NewBlock {}", v["number"])
            } else {
                format!("NewBlockHashes {}", v["hashes"])
            }
        })
        .collect();
    eprintln!(
        "{name}: synced 599 blocks in {sync_time:?}; B got block 600 in full {b_full} time(s); \
         the JS peer received from A: {announced_to_js:?}; total {:?}",
        started.elapsed()
    );

    syncer.shutdown().await;
    js.stop().await;
    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn we_sync_from_ethereumjs_and_relay_its_new_block() {
    sync_then_propagate("full", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn we_sync_from_ethereumjs_and_fetch_and_relay_its_announced_block() {
    sync_then_propagate("hashes", false).await;
}

/// Node A (eth/69 only) syncs 1..599 with the downloader from a JS peer serving up to 599
/// over eth/69; the JS peer then moves its head to 600 and tells A with a BlockRangeUpdate
/// (eth/69 has no block announcements), and A follows it to 600.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn we_sync_from_ethereumjs_over_eth69_and_follow_its_range_update() {
    let chain = chain_blocks(600);
    let hash_600 = chain[599].header.hash_slow();

    let (mut js, js_key) = js_serving_599(69).await;
    let config = eth::Config {
        versions: vec![eth::ETH69],
        ..eth::Config::default()
    };
    let a = Propagating::start("eth-interop-69", &[], config).await;
    let (syncer, a_id) = sync_599_from(&a, &mut js, &js_key, 69).await;
    let mut progress = syncer.handle();

    js.cmd(json!({"cmd": "announce", "number": 600})).await;
    let announced = js
        .wait(10, "announced", |v| {
            v["event"] == "announced" || v["event"] == "error"
        })
        .await;
    assert_eq!(announced["event"], "announced", "{announced}");
    assert_eq!(announced["rangeUpdates"], json!([a_id]), "{announced}");
    assert_eq!(announced["sent"], json!([]), "{announced}");
    tokio::time::timeout(
        Duration::from_secs(30),
        progress.wait_for(|s| s.current >= 600),
    )
    .await
    .unwrap_or_else(|_| panic!("A did not follow the range update: {:?}", a.head()));
    // From the JS peer, A's only peer.
    assert_eq!(a.head(), (600, hash_600));
    barrier(&mut js).await;
    assert!(
        trouble(&js).is_empty(),
        "JS peer reported {:?}",
        trouble(&js)
    );
    let announcements: Vec<&Value> = js
        .seen
        .iter()
        .filter(|v| v["event"] == "new-block" || v["event"] == "new-block-hashes")
        .collect();
    assert!(
        announcements.is_empty(),
        "eth/69 has no block announcements: {announcements:?}"
    );

    syncer.shutdown().await;
    js.stop().await;
    a.stop().await;
}
