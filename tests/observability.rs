//! The metrics endpoint and the admin JSON-RPC API over real HTTP on loopback, against a
//! live pair of servers, and their resilience to hostile HTTP clients.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use devp2p::{metrics, rpc, server};
use discovery::Node;
use protocols::{Handler, Subprotocol};
use secp256k1::SecretKey;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// Sends one message when a peer connects, then drains: both sides count traffic.
struct Greet;

impl Subprotocol for Greet {
    fn protocols(&self) -> Vec<rlpx::Protocol> {
        vec![rlpx::Protocol::new("greet", 1, 1)]
    }
    fn handle(&self, mut peer: rlpx::ProtocolHandle) -> Handler {
        Box::pin(async move {
            let _ = peer.send(0, bytes::Bytes::from_static(&[0xc0])).await;
            while peer.recv().await.is_some() {}
        })
    }
}

const CLIENT_ID: &str = "devp2p-test/v1";

/// A server with its metrics and RPC endpoints; dropping it stops the endpoints.
struct TestNode {
    server: server::Handle,
    disc: Option<discovery::Handle>,
    metrics: std::net::SocketAddr,
    rpc: std::net::SocketAddr,
    _stop: oneshot::Sender<()>,
}

impl TestNode {
    fn enode(&self) -> String {
        let addr = self.server.listen_addr();
        let udp = self.disc.as_ref().map_or(0, |d| d.local_node().udp);
        let node = Node {
            id: self.server.local_id(),
            ip: addr.ip(),
            udp,
            tcp: addr.port(),
        };
        node.to_string()
    }
}

async fn spawn(with_discovery: bool, rpc_config: rpc::Config) -> TestNode {
    let key = SecretKey::new(&mut rand::rng());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let disc = if with_discovery {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let config = discovery::Config {
            tcp_port: port,
            external_ip: Some([127, 0, 0, 1].into()),
            ..discovery::Config::default()
        };
        Some(discovery::Service::spawn(socket, key, config, None).unwrap())
    } else {
        None
    };
    let mut config = server::Config::new(key);
    config.rlpx.client_id = CLIENT_ID.into();
    let subs: Vec<Arc<dyn Subprotocol>> = vec![Arc::new(Greet)];
    let server = server::start(config, listener, disc.clone(), subs).unwrap();

    let (stop, stopped) = oneshot::channel::<()>();
    let stopped = futures::FutureExt::shared(stopped);
    let m = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let r = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (metrics, rpc) = (m.local_addr().unwrap(), r.local_addr().unwrap());
    let source = metrics::Source::new(server.clone(), disc.clone());
    let s = stopped.clone();
    tokio::spawn(metrics::serve(m, source, async move {
        let _ = s.await;
    }));
    let api = rpc::Api::new(server.clone(), disc.clone(), rpc_config);
    tokio::spawn(rpc::serve(r, api, async move {
        let _ = stopped.await;
    }));
    TestNode {
        server,
        disc,
        metrics,
        rpc,
        _stop: stop,
    }
}

/// The admin secret of the test nodes (`devp2p node` writes a fresh one to rpc.cookie).
const TOKEN: &str = "5ec7e7";

fn rpc_config() -> rpc::Config {
    rpc::Config {
        client_id: CLIENT_ID.into(),
        admin_token: Some(TOKEN.into()),
        ..rpc::Config::default()
    }
}

/// Sends raw bytes, reads until the server closes (bounded), returns (status, body).
async fn raw(addr: std::net::SocketAddr, request: &[u8]) -> (u16, String) {
    support::http_raw(addr, request).await
}

async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    raw(addr, req.as_bytes()).await
}

async fn post(addr: std::net::SocketAddr, headers: &str, body: &str) -> (u16, String) {
    let req = format!(
        "POST / HTTP/1.1\r\nConnection: close\r\n{headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    raw(addr, req.as_bytes()).await
}

/// Posts a JSON-RPC body and parses the answer.
async fn rpc_raw(addr: std::net::SocketAddr, body: &str) -> Value {
    let headers = format!(
        "Host: localhost:8545\r\nContent-Type: application/json\r\nAuthorization: Bearer {TOKEN}\r\n"
    );
    let (status, text) = post(addr, &headers, body).await;
    assert_eq!(status, 200, "{text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

async fn call(addr: std::net::SocketAddr, method: &str, params: Value) -> Value {
    let body = json!({ "jsonrpc": "2.0", "id": 7, "method": method, "params": params });
    let answer = rpc_raw(addr, &body.to_string()).await;
    assert_eq!(answer["id"], 7, "{answer}");
    answer
}

async fn result(addr: std::net::SocketAddr, method: &str, params: Value) -> Value {
    let answer = call(addr, method, params).await;
    assert!(answer.get("error").is_none(), "{method}: {answer}");
    answer["result"].clone()
}

/// The value of the sample `series` (name with labels, exactly as rendered).
async fn scrape(addr: std::net::SocketAddr, series: &str) -> Option<u64> {
    let (status, text) = get(addr, "/metrics").await;
    assert_eq!(status, 200);
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

async fn until(secs: u64, what: &str, mut f: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f().await {
        assert!(Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_admin_api_follow_a_live_pair() {
    let a = spawn(true, rpc_config()).await;
    let b = spawn(false, rpc_config()).await;
    let a_id = a.server.local_id().to_string();
    let b_id = b.server.local_id().to_string();

    // B adds A through the API; A sees B inbound.
    let added = result(b.rpc, "admin_addPeer", json!([a.enode()])).await;
    assert_eq!(added, true);
    until(10, "peers connect", async || {
        a.server.peer_counts() == (1, 0) && b.server.peer_counts() == (0, 1)
    })
    .await;
    assert_eq!(result(a.rpc, "net_peerCount", json!([])).await, "0x1");
    assert_eq!(result(a.rpc, "net_listening", json!([])).await, true);
    assert_eq!(
        result(a.rpc, "web3_clientVersion", json!([])).await,
        CLIENT_ID
    );
    assert_eq!(
        result(a.rpc, "rpc_modules", json!([])).await["admin"],
        "1.0"
    );

    let peers = result(a.rpc, "admin_peers", json!([])).await;
    let p = &peers[0];
    assert_eq!(peers.as_array().map(Vec::len), Some(1));
    let enode = p["enode"].as_str().unwrap();
    assert!(
        enode.starts_with(&format!("enode://{b_id}@127.0.0.1:")),
        "{p}"
    );
    assert_eq!(
        p["id"].as_str().map(str::len),
        Some(64),
        "keccak256 of the key"
    );
    assert_eq!(p["name"], CLIENT_ID);
    assert_eq!(p["caps"], json!(["greet/1"]));
    assert_eq!(p["protocols"]["greet"]["version"], 1);
    assert_eq!(p["network"]["inbound"], true);
    assert_eq!(p["network"]["static"], false);
    assert!(
        p["network"]["remoteAddress"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    let b_peers = result(b.rpc, "admin_peers", json!([])).await;
    assert_eq!(b_peers[0]["network"]["inbound"], false);
    assert_eq!(b_peers[0]["network"]["static"], true, "added with addPeer");
    assert_eq!(b_peers[0]["network"]["localAddress"], Value::Null);

    let info = result(a.rpc, "admin_nodeInfo", json!([])).await;
    let port = a.server.listen_addr().port();
    let udp = a.disc.as_ref().unwrap().local_node().udp;
    assert_eq!(
        info["enode"],
        format!("enode://{a_id}@127.0.0.1:{port}?discport={udp}")
    );
    assert_eq!(info["ip"], "127.0.0.1");
    assert_eq!(info["ports"], json!({ "discovery": udp, "listener": port }));
    assert_eq!(info["listenAddr"], format!("127.0.0.1:{port}"));
    assert_eq!(info["name"], CLIENT_ID);
    assert_eq!(info["protocols"]["greet"]["version"], 1);
    let enr: discovery::Enr = info["enr"].as_str().unwrap().parse().unwrap();
    assert_eq!(enr.node_id(), a.server.local_id());
    let b_info = result(b.rpc, "admin_nodeInfo", json!([])).await;
    assert_eq!(b_info["enr"], "", "no discovery, no record");
    assert_eq!(b_info["ports"]["discovery"], 0);

    // Metrics: peers, dials, discovery, and the greeting counted per protocol.
    let inbound = "devp2p_peers{direction=\"inbound\"}";
    assert_eq!(scrape(a.metrics, inbound).await, Some(1));
    assert_eq!(
        scrape(b.metrics, "devp2p_peers{direction=\"outbound\"}").await,
        Some(1)
    );
    assert_eq!(
        scrape(b.metrics, "devp2p_dials_total{outcome=\"ok\"}").await,
        Some(1)
    );
    assert!(scrape(b.metrics, "devp2p_dials_started_total").await >= Some(1));
    // A discovery node that bootstraps from A: A receives its Ping and FindNode and puts it
    // in its table, which A's metrics must show.
    let probe = discovery::bind(
        "127.0.0.1:0".parse().unwrap(),
        SecretKey::new(&mut rand::rng()),
        discovery::Config {
            bootnodes: vec![a.disc.as_ref().unwrap().local_node()],
            ..discovery::Config::default()
        },
        None,
    )
    .await
    .unwrap();
    let disc_in = "devp2p_discovery_packets_total{direction=\"in\"}";
    until(10, "discovery packets counted", async || {
        scrape(a.metrics, disc_in).await >= Some(1)
    })
    .await;
    until(10, "the probe in A's table", async || {
        scrape(a.metrics, "devp2p_discovery_table_nodes").await >= Some(1)
    })
    .await;
    probe.shutdown().await;
    assert_eq!(
        scrape(b.metrics, "devp2p_discovery_table_nodes").await,
        None
    );
    let out = "devp2p_protocol_messages_total{protocol=\"greet\",direction=\"out\"}";
    until(10, "greeting counted", async || {
        scrape(a.metrics, out).await >= Some(1)
    })
    .await;
    let bytes_in = "devp2p_protocol_bytes_total{protocol=\"greet\",direction=\"in\"}";
    until(10, "greeting received", async || {
        scrape(a.metrics, bytes_in).await >= Some(1)
    })
    .await;
    let (_, text) = get(a.metrics, "/metrics").await;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').unwrap();
        // Integers, but for a histogram's sum of seconds.
        let ok = value.parse::<u64>().is_ok()
            || (series.contains("_seconds_sum") && value.parse::<f64>().is_ok_and(f64::is_finite));
        assert!(ok, "sample line: {line}");
    }
    // Each side timed its handshake: A accepted B's dial.
    let timed = "devp2p_handshake_seconds_count{direction=\"inbound\"}";
    assert!(scrape(a.metrics, timed).await >= Some(1));
    let timed = "devp2p_handshake_seconds_count{direction=\"outbound\"}";
    assert!(scrape(b.metrics, timed).await >= Some(1));
    let before = scrape(a.metrics, out).await;

    // Errors.
    let e = call(a.rpc, "admin_addPeer", json!(["enode://zz@1.2.3.4:1"])).await;
    assert_eq!(e["error"]["code"], -32602, "{e}");
    let e = call(a.rpc, "admin_addPeer", json!({ "url": a.enode() })).await;
    assert_eq!(e["error"]["code"], -32602, "{e}");
    let e = call(a.rpc, "admin_addPeer", json!([])).await;
    assert_eq!(e["error"]["code"], -32602, "{e}");
    let e = call(a.rpc, "net_peerCount", json!([1])).await;
    assert_eq!(e["error"]["code"], -32602, "{e}");
    let e = call(a.rpc, "eth_sendTransaction", json!([])).await;
    assert_eq!(e["error"]["code"], -32601, "{e}");
    assert_eq!(rpc_raw(a.rpc, "{not json").await["error"]["code"], -32700);
    assert_eq!(rpc_raw(a.rpc, "[]").await["error"]["code"], -32600);
    assert_eq!(rpc_raw(a.rpc, "5").await["error"]["code"], -32600);
    let e = rpc_raw(
        a.rpc,
        r#"{"jsonrpc":"1.0","id":1,"method":"net_listening"}"#,
    )
    .await;
    assert_eq!(e["error"]["code"], -32600);
    let batch = r#"[{"jsonrpc":"2.0","id":1,"method":"net_listening"},
        {"jsonrpc":"2.0","method":"net_listening"}, 3,
        {"jsonrpc":"2.0","id":"x","method":"web3_clientVersion"}]"#;
    let answers = rpc_raw(a.rpc, batch).await;
    assert_eq!(
        answers.as_array().map(Vec::len),
        Some(3),
        "notification unanswered"
    );
    assert_eq!(answers[0]["result"], true);
    assert_eq!(answers[1]["error"]["code"], -32600);
    assert_eq!(answers[2]["result"], CLIENT_ID);
    let many = format!(
        "[{}]",
        vec![r#"{"jsonrpc":"2.0","id":1,"method":"net_listening"}"#; 101].join(",")
    );
    assert_eq!(rpc_raw(a.rpc, &many).await["error"]["code"], -32600);
    let note = r#"{"jsonrpc":"2.0","method":"net_listening"}"#;
    let json_type = "Host: localhost\r\nContent-Type: application/json\r\n";
    assert_eq!(post(a.rpc, json_type, note).await, (200, String::new()));

    // HTTP-level refusals.
    assert_eq!(get(a.metrics, "/").await.0, 404);
    let post_metrics =
        b"POST /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
    assert_eq!(raw(a.metrics, post_metrics).await.0, 405);
    assert_eq!(get(a.rpc, "/").await.0, 405);
    let evil = "Host: evil.example\r\nContent-Type: application/json\r\n";
    assert_eq!(post(a.rpc, evil, note).await.0, 403, "DNS rebinding guard");
    let form = "Host: localhost\r\nContent-Type: text/plain\r\n";
    assert_eq!(post(a.rpc, form, note).await.0, 415);
    let untyped = "Host: 127.0.0.1\r\n";
    assert_eq!(
        post(a.rpc, untyped, note).await.0,
        415,
        "no Content-Type: CSRF guard"
    );
    let cross_site =
        "Host: 127.0.0.1\r\nContent-Type: application/json\r\nOrigin: https://evil.example\r\n";
    assert_eq!(
        post(a.rpc, cross_site, note).await.0,
        403,
        "cross-site Origin"
    );
    let huge = "Host: localhost\r\nContent-Length: 3000000\r\n\r\n";
    assert_eq!(
        raw(a.rpc, format!("POST / HTTP/1.1\r\n{huge}").as_bytes())
            .await
            .0,
        413
    );

    // Trusted, then removal: B drops A, A's counters stay.
    assert_eq!(
        result(a.rpc, "admin_addTrustedPeer", json!([b.enode()])).await,
        true
    );
    assert_eq!(
        result(b.rpc, "admin_removePeer", json!([a.enode()])).await,
        true
    );
    until(10, "peers disconnect", async || {
        a.server.peer_counts() == (0, 0) && b.server.peer_counts() == (0, 0)
    })
    .await;
    assert_eq!(result(a.rpc, "net_peerCount", json!([])).await, "0x0");
    assert_eq!(result(a.rpc, "admin_peers", json!([])).await, json!([]));
    assert_eq!(scrape(a.metrics, inbound).await, Some(0));
    assert!(
        scrape(a.metrics, out).await >= before,
        "counter kept after the peer left"
    );
    let (_, text) = get(a.metrics, "/metrics").await;
    assert!(
        text.contains("devp2p_disconnects_total{reason=\"remote: "),
        "{text}"
    );

    a.server.shutdown().await;
    b.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_http_clients_do_not_take_the_endpoints_down() {
    let mut config = rpc_config();
    config.limits.header_timeout = Duration::from_millis(500);
    config.limits.body_timeout = Duration::from_millis(500);
    config.limits.max_connections = 8;
    let n = spawn(false, config).await;
    let ok = async |n: &TestNode| {
        assert_eq!(result(n.rpc, "net_listening", json!([])).await, true);
        assert_eq!(get(n.metrics, "/metrics").await.0, 200);
    };

    // Oversized headers: 431 (or a close), never a crash.
    for addr in [n.rpc, n.metrics] {
        let big = format!(
            "GET /metrics HTTP/1.1\r\nX-Pad: {}\r\n\r\n",
            "a".repeat(20_000)
        );
        let (status, _) = raw(addr, big.as_bytes()).await;
        assert!(status == 431 || status == 0, "status {status}");
        let many: String = (0..100).map(|i| format!("X-{i}: 1\r\n")).collect();
        let (status, _) = raw(addr, format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes()).await;
        assert!(status == 431 || status == 0, "status {status}");
        // Garbage.
        let (status, _) = raw(addr, b"\x00\xff\x16\x03 GARBAGE\r\n\r\n").await;
        assert!(status == 400 || status == 0, "status {status}");
    }
    ok(&n).await;

    // Slowloris: stalled headers and a stalled body are cut after the timeouts, and more
    // stalled clients than connection slots only delay a good client.
    let mut stalled = Vec::new();
    for i in 0..12 {
        let mut s = TcpStream::connect(n.rpc).await.unwrap();
        let part: &[u8] = if i % 2 == 0 {
            b"POST / HTTP/1.1\r\nHost: loc"
        } else {
            b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n{\"json"
        };
        s.write_all(part).await.unwrap();
        stalled.push(s);
    }
    ok(&n).await;
    // The timeouts are 500 ms; 30 s is only a bound for a server that never cuts them.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    for mut s in stalled {
        let mut buf = Vec::new();
        let r = tokio::time::timeout_at(deadline, s.read_to_end(&mut buf)).await;
        assert!(r.is_ok(), "stalled connection closed by the server");
    }
    // A metrics client that stalls does not block a scrape.
    let mut s = TcpStream::connect(n.metrics).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\n").await.unwrap();
    ok(&n).await;
    drop(s);

    // Shutdown stops both endpoints.
    drop(n._stop);
    until(10, "rpc listener closed", async || {
        TcpStream::connect(n.rpc).await.is_err()
    })
    .await;
    until(10, "metrics listener closed", async || {
        TcpStream::connect(n.metrics).await.is_err()
    })
    .await;
    n.server.shutdown().await;
}

/// One client holding idle keep-alive connections cannot lock others out: past its
/// per-address share it is answered 503 and closed, and a client from another address is
/// served at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_cannot_hold_every_http_connection() {
    let mut config = rpc_config();
    config.limits.max_connections = 8;
    config.limits.max_connections_per_ip = 3;
    config.limits.reserved_local = 1;
    let n = spawn(false, config).await;
    let mut hog = Vec::new();
    for _ in 0..8 {
        hog.push(TcpStream::connect(n.rpc).await.unwrap());
    }
    let mut refused = 0;
    for s in &mut hog {
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_millis(500), s.read(&mut buf)).await;
        if let Ok(Ok(len)) = read {
            assert!(buf[..len].starts_with(b"HTTP/1.1 503"), "{len}");
            refused += 1;
        }
    }
    assert_eq!(refused, 5, "connections past the per-address share");
    let started = Instant::now();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(([127, 0, 0, 2], 0).into()).unwrap();
    let mut other = tokio::time::timeout(Duration::from_secs(1), socket.connect(n.rpc))
        .await
        .unwrap()
        .unwrap();
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"net_listening"}"#;
    let req = format!(
        "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    other.write_all(req.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(1), other.read_to_end(&mut answer))
        .await
        .expect("another address is served at once")
        .unwrap();
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    drop(hog);
    n.server.shutdown().await;
}

/// Admin methods need the secret; Host and Origin headers that are duplicated or not
/// ASCII are refused instead of read as absent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_needs_the_secret_and_odd_headers_are_refused() {
    let n = spawn(false, rpc_config()).await;
    let add = json!({ "jsonrpc": "2.0", "id": 1, "method": "admin_addTrustedPeer",
        "params": [n.enode()] })
    .to_string();
    let json_type = "Host: localhost\r\nContent-Type: application/json\r\n";
    let (status, text) = post(n.rpc, json_type, &add).await;
    assert_eq!(status, 200);
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["error"]["code"], -32001, "{answer}");
    let info = r#"{"jsonrpc":"2.0","id":1,"method":"admin_nodeInfo"}"#;
    let (_, text) = post(n.rpc, json_type, info).await;
    assert!(text.contains("-32001"), "{text}");
    let listening = r#"{"jsonrpc":"2.0","id":1,"method":"net_listening"}"#;
    let (_, text) = post(n.rpc, json_type, listening).await;
    assert!(
        text.contains("true"),
        "other methods need no secret: {text}"
    );
    let wrong = format!("{json_type}Authorization: Bearer 5ec7e8\r\n");
    assert_eq!(post(n.rpc, &wrong, &add).await.0, 401);
    let right = format!("{json_type}Authorization: Bearer {TOKEN}\r\n");
    let (status, text) = post(n.rpc, &right, &add).await;
    assert_eq!((status, text.contains("true")), (200, true), "{text}");

    let hostile = [
        "Host: localhost\r\nHost: evil.example\r\nContent-Type: application/json\r\n",
        "Host: evil.example\r\nHost: localhost\r\nContent-Type: application/json\r\n",
        "Host: ev\u{e9}l.example\r\nContent-Type: application/json\r\n",
        "Host: localhost\r\nContent-Type: application/json\r\nOrigin: https://\u{e9}vil.example\r\n",
        "Host: localhost\r\nContent-Type: application/json\r\nOrigin: null\r\nOrigin: x\r\n",
    ];
    for headers in hostile {
        let req = format!(
            "POST / HTTP/1.1\r\nConnection: close\r\n{headers}Content-Length: {}\r\n\r\n{listening}",
            listening.len()
        );
        // Latin-1 bytes, as a hostile client sends them (not UTF-8).
        let bytes: Vec<u8> = req.chars().map(|c| c as u32 as u8).collect();
        let (status, _) = raw(n.rpc, &bytes).await;
        assert!(status == 403 || status == 400, "{status} for {headers:?}");
    }
    n.server.shutdown().await;
}
