//! The chain methods of the JSON-RPC API (`eth_*`) and the chain and sync metrics, over
//! real HTTP on loopback, against a node whose store imported the ethtest chain.

mod support;

use std::path::PathBuf;
use std::sync::Arc;

use devp2p::chain::eth::EthChain;
use devp2p::chain::{Store, presets};
use devp2p::cmd::import;
use devp2p::{metrics, rpc, server, sync};
use protocols::{Subprotocol, eth};
use secp256k1::SecretKey;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const CHAIN_RLP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/ethtest/chain.rlp");
const HEAD: &str = "0x44e3809c9a3cda717f00aea3a9da336d149612c8d5657fbc0028176ef8d94d2a";

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rpc-chain-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Sends raw bytes, reads until the server closes (bounded), returns (status, body).
async fn raw(addr: std::net::SocketAddr, request: &[u8]) -> (u16, String) {
    support::http_raw(addr, request).await
}

async fn call(addr: std::net::SocketAddr, method: &str, params: Value) -> Value {
    let body = json!({ "jsonrpc": "2.0", "id": 7, "method": method, "params": params }).to_string();
    let req = format!(
        "POST / HTTP/1.1\r\nConnection: close\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let (status, text) = raw(addr, req.as_bytes()).await;
    assert_eq!(status, 200, "{text}");
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["id"], 7, "{answer}");
    answer
}

async fn result(addr: std::net::SocketAddr, method: &str, params: Value) -> Value {
    let answer = call(addr, method, params).await;
    assert!(answer.get("error").is_none(), "{method}: {answer}");
    answer["result"].clone()
}

async fn error_code(addr: std::net::SocketAddr, method: &str, params: Value) -> i64 {
    let answer = call(addr, method, params.clone()).await;
    answer["error"]["code"]
        .as_i64()
        .unwrap_or_else(|| panic!("{method} {params}: want an error, got {answer}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eth_methods_and_chain_metrics_over_an_imported_store() {
    let dir = tempdir("node");
    let store = Arc::new(Store::open(&dir, presets::ethtest().unwrap()).unwrap());
    let summary = import::import_file(&store, CHAIN_RLP.as_ref()).unwrap();
    assert_eq!(summary.head_number, 600);
    let chain_id = store.spec().config.chain_id;

    let chain = Arc::new(EthChain::new(store.clone()));
    let mut config = eth::Config::default();
    config.pool.chain_id = Some(chain_id);
    let (proto, eth, _events) = eth::Eth::new(chain, config);
    let eth_handle = eth.clone();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let key = SecretKey::new(&mut rand::rng());
    let subs: Vec<Arc<dyn Subprotocol>> = vec![Arc::new(proto)];
    let server = server::start(server::Config::new(key), listener, None, subs).unwrap();
    // No peers: the sync task idles at the imported head.
    let importer = devp2p::chain::Importer::new(store.clone(), Some(eth.pool().clone()));
    let syncer = sync::spawn(eth, importer, sync::Config::default());

    let (stop, stopped) = oneshot::channel::<()>();
    let stopped = futures::FutureExt::shared(stopped);
    let m = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let r = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (maddr, raddr) = (m.local_addr().unwrap(), r.local_addr().unwrap());
    let source = metrics::Source::new(server.clone(), None)
        .with_chain(store.clone(), Some(syncer.handle()))
        .with_pool(eth_handle.pool().clone());
    let s = stopped.clone();
    tokio::spawn(metrics::serve(m, source, async move {
        let _ = s.await;
    }));
    let api = rpc::Api::new(server.clone(), None, rpc::Config::default())
        .with_chain(store.clone(), Some(syncer.handle()))
        .with_eth(eth_handle.clone());
    tokio::spawn(rpc::serve(r, api, async move {
        let _ = stopped.await;
    }));

    assert_eq!(result(raddr, "eth_blockNumber", json!([])).await, "0x258");
    assert_eq!(
        result(raddr, "eth_chainId", json!([])).await,
        format!("{chain_id:#x}")
    );
    assert_eq!(result(raddr, "eth_syncing", json!([])).await, false);
    assert_eq!(result(raddr, "rpc_modules", json!([])).await["eth"], "1.0");

    let parent = store.header_by_number(599).unwrap().unwrap();
    let head = store.head().unwrap();
    let block = result(raddr, "eth_getBlockByNumber", json!(["0x258", false])).await;
    assert_eq!(block["hash"], HEAD, "{block}");
    assert_eq!(block["number"], "0x258");
    assert_eq!(
        block["parentHash"],
        "0x7e80093a491eba0e5b2c1895837902f64f514100221801318fe391e1e09c96a6"
    );
    assert_eq!(block["timestamp"], "0x1770");
    assert_eq!(block["parentHash"], format!("{}", parent.hash_slow()));
    assert_eq!(block["timestamp"], format!("{:#x}", head.timestamp));
    assert_eq!(block["gasLimit"], format!("{:#x}", head.gas_limit));
    assert_eq!(block["stateRoot"], format!("{}", head.state_root));
    assert!(block["transactions"].is_array(), "{block}");
    assert_eq!(block["uncles"], json!([]));
    assert!(block["totalDifficulty"].is_string(), "{block}");
    let size = block["size"].as_str().unwrap();
    assert!(size.starts_with("0x") && size != "0x0", "{size}");
    if let Some(fee) = head.base_fee_per_gas {
        assert_eq!(block["baseFeePerGas"], format!("{fee:#x}"));
    }

    // The same block by tag, with full transactions asked for, and by hash.
    let latest = result(raddr, "eth_getBlockByNumber", json!(["latest", true])).await;
    assert_eq!(latest["hash"], HEAD);
    let by_hash = result(raddr, "eth_getBlockByHash", json!([HEAD, false])).await;
    assert_eq!(by_hash, block);
    let earliest = result(raddr, "eth_getBlockByNumber", json!(["earliest", false])).await;
    assert_eq!(earliest["number"], "0x0");
    assert_eq!(earliest["hash"], format!("{}", store.genesis_hash()));

    // A block with transactions lists their hashes.
    let with_txs = (1..=600)
        .find_map(|n| {
            let b = store.block_by_number(n).unwrap().unwrap();
            (!b.body.transactions.is_empty()).then_some(b)
        })
        .expect("the ethtest chain has transactions");
    let number = format!("{:#x}", with_txs.header.number);
    let b = result(raddr, "eth_getBlockByNumber", json!([number, false])).await;
    let hashes: Vec<String> = with_txs
        .body
        .transactions
        .iter()
        .map(|t| t.tx_hash().to_string())
        .collect();
    assert_eq!(b["transactions"], json!(hashes));

    // Transactions: one of the chain's, in its EIP-2718 form, is pooled and its hash
    // answered; again, it is known; garbage and another chain's are refused (-32000).
    let modules = result(raddr, "rpc_modules", json!([])).await;
    assert_eq!(modules["txpool"], "1.0");
    let tx = with_txs.body.transactions[0].clone();
    let raw_tx = format!(
        "0x{}",
        hex::encode(alloy_eips::eip2718::Encodable2718::encoded_2718(&tx))
    );
    let sent = result(raddr, "eth_sendRawTransaction", json!([raw_tx])).await;
    assert_eq!(sent, tx.tx_hash().to_string());
    assert!(eth_handle.pool().contains(tx.tx_hash()));
    let status = result(raddr, "txpool_status", json!([])).await;
    assert_eq!(status, json!({ "pending": "0x1", "queued": "0x0" }));
    let again = call(raddr, "eth_sendRawTransaction", json!([raw_tx])).await;
    assert_eq!(again["error"]["code"], -32000, "{again}");
    assert_eq!(again["error"]["message"], "already known", "{again}");
    for bad in ["0x01", "0xzz", "0x"] {
        let answer = call(raddr, "eth_sendRawTransaction", json!([bad])).await;
        assert!(
            answer["error"]["code"].as_i64().is_some(),
            "{bad}: {answer}"
        );
    }
    assert_eq!(
        error_code(raddr, "eth_sendRawTransaction", json!([])).await,
        -32602
    );

    // Unknown blocks are null.
    let unknown = result(raddr, "eth_getBlockByNumber", json!(["0x259", false])).await;
    assert_eq!(unknown, Value::Null);
    let zero = format!("0x{}", "00".repeat(32));
    let unknown = result(raddr, "eth_getBlockByHash", json!([zero, false])).await;
    assert_eq!(unknown, Value::Null);

    // Bad params.
    for (method, params) in [
        ("eth_getBlockByNumber", json!(["600", false])),
        ("eth_getBlockByNumber", json!(["0x", false])),
        ("eth_getBlockByNumber", json!(["0x258"])),
        ("eth_getBlockByNumber", json!(["0x258", "yes"])),
        ("eth_getBlockByNumber", json!([600, false])),
        ("eth_getBlockByHash", json!(["0x1234", false])),
        ("eth_getBlockByHash", json!([HEAD])),
        ("eth_blockNumber", json!([1])),
    ] {
        assert_eq!(error_code(raddr, method, params).await, -32602, "{method}");
    }

    // Metrics.
    let req = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    let (status, text) = raw(maddr, req.as_bytes()).await;
    assert_eq!(status, 200);
    let value = |series: &str| {
        text.lines().find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .parse::<u64>()
                .ok()
        })
    };
    assert_eq!(value("devp2p_chain_head_block"), Some(600), "{text}");
    assert_eq!(value("devp2p_sync_syncing"), Some(0), "{text}");
    assert_eq!(value("devp2p_sync_current_block"), Some(600), "{text}");
    assert!(value("devp2p_sync_highest_block").is_some(), "{text}");
    // The transaction sent above.
    assert_eq!(value("devp2p_txpool_transactions"), Some(1), "{text}");
    assert!(
        value("devp2p_txpool_bytes").is_some_and(|b| b > 100),
        "{text}"
    );

    drop(stop);
    syncer.shutdown().await;
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eth_methods_are_unknown_without_a_chain() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let key = SecretKey::new(&mut rand::rng());
    let server = server::start(server::Config::new(key), listener, None, Vec::new()).unwrap();
    let api = rpc::Api::new(server.clone(), None, rpc::Config::default());
    let err = api.call("eth_blockNumber", None).await.unwrap_err();
    assert_eq!(err.code(), -32601);
    let source = metrics::Source::new(server.clone(), None);
    assert!(!source.render().await.contains("devp2p_chain_head_block"));
    server.shutdown().await;
}
