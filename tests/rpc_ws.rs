//! JSON-RPC over WebSocket on the HTTP port, with a real WebSocket client
//! (tokio-tungstenite): `eth_subscribe` to new heads and pending transactions, their
//! notifications as blocks are imported and transactions sent, `eth_unsubscribe`, the
//! per-connection subscription limit, and the `Origin` check on the upgrade.

mod support;

use std::sync::Arc;
use std::time::Duration;

use devp2p::chain::Importer;
use devp2p::chain::eth::EthChain;
use devp2p::{rpc, server};
use futures::{SinkExt, StreamExt};
use protocols::{Subprotocol, eth};
use secp256k1::SecretKey;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

/// Bound on every wait for the server.
const WAIT: Duration = Duration::from_secs(10);

async fn connect(addr: std::net::SocketAddr) -> Ws {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/"), stream)
        .await
        .unwrap();
    ws
}

async fn next(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a message in time")
            .expect("connection open")
            .unwrap();
        if let Message::Text(text) = msg {
            return serde_json::from_str(text.as_str()).unwrap();
        }
    }
}

/// Sends a call and returns its answer; notifications arriving first are kept in `held`.
async fn call(ws: &mut Ws, held: &mut Vec<Value>, id: u64, method: &str, params: Value) -> Value {
    let req = json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params });
    ws.send(Message::text(req.to_string())).await.unwrap();
    loop {
        let v = next(ws).await;
        if v["id"] == id {
            return v;
        }
        held.push(v);
    }
}

/// The next notification of subscription `sub` (from `held` first).
async fn notification(ws: &mut Ws, held: &mut Vec<Value>, sub: &Value) -> Value {
    if let Some(i) = held
        .iter()
        .position(|v| &v["params"]["subscription"] == sub)
    {
        return held.remove(i)["params"]["result"].clone();
    }
    loop {
        let v = next(ws).await;
        assert_eq!(v["method"], "eth_subscription", "{v}");
        if &v["params"]["subscription"] == sub {
            return v["params"]["result"].clone();
        }
        held.push(v);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_over_websocket_beside_http() {
    let dir = support::tempdir("rpc-ws");
    let store = support::ethtest_store(&dir);
    let blocks = support::chain_blocks(600);
    store.insert_blocks(&blocks[..590]).unwrap();
    let chain_id = store.spec().config.chain_id;

    let mut config = eth::Config::default();
    config.pool.chain_id = Some(chain_id);
    let (proto, eth, _events) = eth::Eth::new(Arc::new(EthChain::new(store.clone())), config);
    let key = SecretKey::new(&mut rand::rng());
    let subs: Vec<Arc<dyn Subprotocol>> = vec![Arc::new(proto)];
    let p2p = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = server::start(server::Config::new(key), p2p, None, subs).unwrap();
    let importer = Importer::new(store.clone(), Some(eth.pool().clone()));

    let rpc_config = rpc::Config {
        max_subscriptions: 4,
        ..rpc::Config::default()
    };
    let api = rpc::Api::new(server.clone(), None, rpc_config)
        .with_chain(store.clone(), None)
        .with_eth(eth.clone())
        .with_importer(importer.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(rpc::serve(listener, api, async move {
        let _ = stopped.await;
    }));

    let mut ws = connect(addr).await;
    let held = &mut Vec::new();
    // Plain calls work over the socket too.
    let n = call(&mut ws, held, 1, "eth_blockNumber", json!([])).await;
    assert_eq!(n["result"], "0x24e", "{n}");
    let heads =
        call(&mut ws, held, 2, "eth_subscribe", json!(["newHeads"])).await["result"].clone();
    let hashes = call(
        &mut ws,
        held,
        3,
        "eth_subscribe",
        json!(["newPendingTransactions"]),
    )
    .await["result"]
        .clone();
    let full = call(
        &mut ws,
        held,
        4,
        "eth_subscribe",
        json!(["newPendingTransactions", true]),
    )
    .await["result"]
        .clone();
    for id in [&heads, &hashes, &full] {
        let s = id.as_str().unwrap_or_else(|| panic!("an id: {id}"));
        assert!(s.starts_with("0x") && s.len() == 34, "{s}");
    }
    let bad = call(&mut ws, held, 5, "eth_subscribe", json!(["logs"])).await;
    assert_eq!(bad["error"]["code"], -32602, "{bad}");

    // Imported blocks arrive as heads, in order, in the header shape of eth_getBlockByNumber.
    let imported = importer.import(blocks[590..593].to_vec(), None).await;
    assert!(imported.result.is_ok());
    for b in &blocks[590..593] {
        let head = notification(&mut ws, held, &heads).await;
        assert_eq!(head["number"], format!("{:#x}", b.header.number), "{head}");
        assert_eq!(head["hash"], b.header.hash_slow().to_string());
        assert_eq!(head["parentHash"], b.header.parent_hash.to_string());
        assert_eq!(head["stateRoot"], b.header.state_root.to_string());
    }

    // A transaction sent over HTTP on the same port: its hash, and the full object.
    let tx = blocks[593..]
        .iter()
        .flat_map(|b| b.body.transactions.iter())
        .find_map(|t| t.clone().try_into_pooled().ok())
        .expect("a transaction after block 593");
    let raw_tx = format!(
        "0x{}",
        hex::encode(alloy_eips::eip2718::Encodable2718::encoded_2718(&tx))
    );
    let body = json!({ "jsonrpc": "2.0", "id": 9, "method": "eth_sendRawTransaction",
        "params": [raw_tx] })
    .to_string();
    let req = format!(
        "POST / HTTP/1.1\r\nConnection: close\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let (status, text) = support::http_raw(addr, req.as_bytes()).await;
    assert_eq!(status, 200, "{text}");
    let hash = tx.tx_hash().to_string();
    assert!(text.contains(&hash), "{text}");
    assert_eq!(notification(&mut ws, held, &hashes).await, hash);
    let object = notification(&mut ws, held, &full).await;
    assert_eq!(object["hash"], hash, "{object}");
    assert_eq!(
        object["nonce"],
        format!("{:#x}", alloy_consensus::Transaction::nonce(&tx))
    );
    assert_eq!(object["blockHash"], Value::Null);
    assert!(
        object["from"].as_str().is_some_and(|f| f.len() == 42),
        "{object}"
    );
    assert_eq!(
        object["input"],
        alloy_consensus::Transaction::input(&tx).to_string()
    );

    // Unsubscribing: true once, then false; the limit (4) counts live subscriptions.
    let un = call(&mut ws, held, 10, "eth_unsubscribe", json!([hashes])).await;
    assert_eq!(un["result"], true, "{un}");
    let again = call(&mut ws, held, 11, "eth_unsubscribe", json!([hashes])).await;
    assert_eq!(again["result"], false, "{again}");
    for id in 12..14 {
        let ok = call(&mut ws, held, id, "eth_subscribe", json!(["newHeads"])).await;
        assert!(ok["result"].is_string(), "{ok}");
    }
    let refused = call(&mut ws, held, 14, "eth_subscribe", json!(["newHeads"])).await;
    assert_eq!(refused["error"]["code"], -32006, "{refused}");
    // Another connection has its own allowance.
    let mut other = connect(addr).await;
    let ok = call(
        &mut other,
        &mut Vec::new(),
        1,
        "eth_subscribe",
        json!(["newHeads"]),
    )
    .await;
    assert!(ok["result"].is_string(), "{ok}");

    // admin_* over a socket opened without the secret: refused as over HTTP.
    let admin = call(&mut ws, held, 15, "admin_nodeInfo", json!([])).await;
    assert_eq!(admin["error"]["code"], -32001, "{admin}");
    // Subscriptions over plain HTTP are not possible.
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"eth_subscribe","params":["newHeads"]}"#;
    let req = format!(
        "POST / HTTP/1.1\r\nConnection: close\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let (status, text) = support::http_raw(addr, req.as_bytes()).await;
    assert_eq!(status, 200);
    assert!(text.contains("\"error\""), "{text}");

    // The upgrade is refused with an Origin (any web page) or a foreign Host.
    for (name, value) in [("Origin", "https://evil.example"), ("Host", "evil.example")] {
        let mut req = format!("ws://{addr}/").into_client_request().unwrap();
        req.headers_mut().insert(name, value.parse().unwrap());
        let stream = TcpStream::connect(addr).await.unwrap();
        match tokio_tungstenite::client_async(req, stream).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
                assert_eq!(res.status(), 403, "{name}")
            }
            other => panic!("{name}: want 403, got {:?}", other.map(|(_, r)| r.status())),
        }
    }

    // Shutdown closes the sockets.
    drop(stop);
    tokio::time::timeout(WAIT, served).await.unwrap().unwrap();
    let end = tokio::time::timeout(WAIT, async {
        while let Some(Ok(m)) = ws.next().await {
            if m.is_close() {
                break;
            }
        }
    })
    .await;
    assert!(end.is_ok(), "socket closed on shutdown");
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A client that sends calls freely but reads their answers slowly (a small receive
/// window, one message every few milliseconds) must not make the server hold more and
/// more answers: each is a task waiting for a place in the connection's queue. The
/// server's tasks stay within the call limit plus the queue plus a few per connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_reader_does_not_pile_up_answers() {
    let dir = support::tempdir("rpc-ws-slow");
    let store = support::ethtest_store(&dir);
    store
        .insert_blocks(&support::chain_blocks(600)[..590])
        .unwrap();
    let key = SecretKey::new(&mut rand::rng());
    let p2p = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = server::start(server::Config::new(key), p2p, None, Vec::new()).unwrap();
    let rpc_config = rpc::Config::default();
    let bound = rpc_config.max_calls_in_flight + rpc_config.max_queued_messages;
    let api = rpc::Api::new(server.clone(), None, rpc_config).with_chain(store.clone(), None);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(rpc::serve(listener, api, async move {
        let _ = stopped.await;
    }));

    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let (ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/"), stream)
        .await
        .unwrap();
    let (mut tx, mut rx) = ws.split();
    // The runtime's tasks before the flood: the server's listener, this test's, ...
    let metrics = tokio::runtime::Handle::current().metrics();
    let baseline = metrics.num_alive_tasks();
    let writer = tokio::spawn(async move {
        for id in 0..20_000u64 {
            let req = json!({ "jsonrpc": "2.0", "id": id, "method": "eth_getBlockByNumber",
                "params": ["latest", true] });
            if tx.send(Message::text(req.to_string())).await.is_err() {
                break;
            }
        }
    });
    let (mut peak, mut answers) = (0, 0u64);
    let until = tokio::time::Instant::now() + Duration::from_secs(3);
    while tokio::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(2)).await;
        peak = peak.max(metrics.num_alive_tasks().saturating_sub(baseline));
        match tokio::time::timeout(WAIT, rx.next()).await {
            Ok(Some(Ok(_))) => answers += 1,
            other => panic!("connection failed after {answers} answers: {other:?}"),
        }
    }
    eprintln!("peak {peak} tasks over {baseline}, {answers} answers read");
    // One read's worth of calls starts before the pause is looked at again (reads are
    // at most 4 KiB, each call ~95 bytes here), plus the writer task and the
    // connection's own tasks (reader, sender, pings). Without the bound the peak was
    // 18,212.
    let request_len = json!({ "jsonrpc": "2.0", "id": 19_999, "method": "eth_getBlockByNumber",
        "params": ["latest", true] })
    .to_string()
    .len();
    let slack = 4096 / request_len + 16;
    assert!(
        peak <= bound + slack,
        "{peak} tasks over the {baseline} before, want at most {bound} + {slack} \
         ({answers} answers read)"
    );
    writer.abort();
    drop(rx);
    drop(stop);
    tokio::time::timeout(WAIT, served).await.unwrap().unwrap();
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
