//! Interop of our Node Discovery v4 with a real implementation written by others: the `DPT`
//! of `@ethereumjs/devp2p` 10.0.0 (pinned in `tests/interop/package-lock.json`), driven by
//! `tests/interop/dpt_peer.mjs`, on 127.0.0.1 only. Both directions: bonding (Ping/Pong
//! endpoint proofs) and FindNode/Neighbours.

mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use discovery::{Config, Handle, Node, NodeId, Service};
use secp256k1::SecretKey;
use serde_json::{Value, json};
use support::{JsPeer, key_hex};
use tokio::time::Instant;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn config() -> Config {
    // All nodes share 127.0.0.1, so the per-IP rate limit is raised.
    Config {
        rate_limit: 2_000,
        rate_burst: 2_000,
        external_ip: Some(LOCALHOST),
        ..Config::default()
    }
}

/// A Rust node on 127.0.0.1:0; its advertised TCP port is its UDP port (nothing listens).
async fn spawn_rust(bootnodes: Vec<Node>) -> Handle {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = socket.local_addr().unwrap().port();
    let config = Config {
        bootnodes,
        tcp_port: port,
        ..config()
    };
    Service::spawn(socket, SecretKey::new(&mut rand::rng()), config, None).unwrap()
}

fn enode(n: &Node) -> String {
    format!("enode://{}@127.0.0.1:{}?discport={}", n.id, n.tcp, n.udp)
}

/// A JS `DPT` node; returns it with its `Node` (from its `listening` event).
async fn spawn_js(extra: &[String]) -> (JsPeer, Node) {
    let key = SecretKey::new(&mut rand::rng());
    let mut args = vec![
        "--key".to_string(),
        key_hex(&key),
        "--udp-port".into(),
        "0".into(),
        "--timeout-ms".into(),
        "60000".into(),
    ];
    args.extend_from_slice(extra);
    let mut js = JsPeer::spawn("dpt_peer.mjs", &args);
    let ev = js.event("listening").await;
    let port = ev["port"].as_u64().unwrap() as u16;
    let id: NodeId = ev["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(id, NodeId::from_secret_key(&key), "JS node id");
    let node = Node {
        id,
        ip: LOCALHOST,
        udp: port,
        tcp: 0,
    };
    (js, node)
}

async fn table_has(h: &Handle, id: NodeId) -> bool {
    h.table_nodes(1000)
        .await
        .unwrap()
        .iter()
        .any(|n| n.id == id)
}

/// Polls `h`'s table until it holds `id` (at most `secs`).
async fn wait_table(h: &Handle, id: NodeId, secs: u64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !table_has(h, id).await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn is_event_with_id(v: &Value, event: &str, id: NodeId) -> bool {
    v["event"] == event && v["id"] == id.to_string().as_str()
}

fn is_packet_from(v: &Value, typename: &str, udp: u16) -> bool {
    v["event"] == "packet"
        && v["typename"] == typename
        && v["address"] == "127.0.0.1"
        && v["udpPort"] == udp
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_interop_with_ethereumjs_dpt() {
    let start = Instant::now();

    // Rust A, and Rust B that knows A.
    let a = spawn_rust(Vec::new()).await;
    let an = a.local_node();
    assert_eq!(an.ip, LOCALHOST);
    let b = spawn_rust(vec![an]).await;
    let bn = b.local_node();
    wait_table(&a, bn.id, 10, "A to bond with B").await;
    wait_table(&b, an.id, 10, "B to bond with A").await;

    // (1) JS J1 bootstraps from A: both bond with each other.
    let (mut j1, j1n) = spawn_js(&["--bootnode".into(), enode(&an)]).await;
    j1.wait(20, "J1 peer:added A", |v| {
        is_event_with_id(v, "peer:added", an.id)
    })
    .await;
    // A answered J1's Ping and pinged J1's `from` endpoint back.
    j1.wait(20, "Ping from A", |v| is_packet_from(v, "ping", an.udp))
        .await;
    j1.wait(20, "Pong from A", |v| is_packet_from(v, "pong", an.udp))
        .await;
    wait_table(&a, j1n.id, 20, "A to bond with J1").await;

    // (3a) J1 asks A for neighbours and gets B (with the right endpoint), then bonds with B.
    j1.cmd(json!({"cmd": "findneighbours", "id": an.id.to_string(),
        "address": "127.0.0.1", "udpPort": an.udp}))
        .await;
    let ev = j1
        .wait(20, "Neighbours from A containing B", |v| {
            v["event"] == "neighbours"
                && v["peers"].as_array().unwrap().iter().any(|p| {
                    p["address"] == "127.0.0.1" && p["udpPort"] == bn.udp && p["tcpPort"] == bn.tcp
                })
        })
        .await;
    assert!(
        ev["peers"].as_array().unwrap().len() <= 16,
        "at most 16 neighbours: {ev}"
    );
    j1.wait(20, "J1 peer:added B", |v| {
        is_event_with_id(v, "peer:added", bn.id)
    })
    .await;
    wait_table(&b, j1n.id, 20, "B to bond with J1").await;

    // J2 is bonded with J1 (J1 adds J2 after J2's Ping, by pinging it back).
    let (mut j2, j2n) = spawn_js(&["--add".into(), enode(&j1n)]).await;
    j2.wait(20, "J2 add-ok", |v| v["event"] == "add-ok").await;
    j1.wait(20, "J1 peer:added J2", |v| {
        is_event_with_id(v, "peer:added", j2n.id)
    })
    .await;

    // (2) Rust C, whose only bootnode is J1, bonds with J1 both ways.
    let c = spawn_rust(vec![j1n]).await;
    let cn = c.local_node();
    j1.wait(20, "Ping from C", |v| is_packet_from(v, "ping", cn.udp))
        .await;
    j1.wait(20, "Pong from C", |v| is_packet_from(v, "pong", cn.udp))
        .await;
    j1.wait(20, "J1 peer:added C", |v| {
        is_event_with_id(v, "peer:added", cn.id)
    })
    .await;
    wait_table(&c, j1n.id, 20, "C to bond with J1").await;

    // (3b) C, knowing only J1, finds J2 (bonded with J1 only) by a lookup.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found = c.lookup(j2n.id).await.unwrap();
        if found.iter().any(|n| n.id == j2n.id && n.udp == j2n.udp) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "C's lookup did not find J2: {found:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // J2 got FindNode from C (it answers anyone), and C's table picked it up as well.
    j2.wait(20, "FindNode from C", |v| {
        is_packet_from(v, "findneighbours", cn.udp)
    })
    .await;
    wait_table(&c, j2n.id, 20, "C's table to get J2").await;

    // J1's table holds all of us; waiting for the reply also drains every earlier event.
    j1.cmd(json!({"cmd": "peers"})).await;
    let ev = j1.event("peers").await;
    for n in [&an, &bn, &cn, &j2n] {
        assert!(
            ev["peers"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["id"] == n.id.to_string().as_str() && p["udpPort"] == n.udp),
            "J1's table lacks {n}: {ev}"
        );
    }
    j2.cmd(json!({"cmd": "peers"})).await;
    j2.event("peers").await;

    // No errors from the JS side about our packets.
    for js in [&j1, &j2] {
        // INTEROP_DUMP=1 (with --nocapture) prints every JS event seen.
        if std::env::var_os("INTEROP_DUMP").is_some() {
            for v in &js.seen {
                eprintln!("{v}");
            }
        }
        let errs: Vec<&Value> = js
            .seen
            .iter()
            .filter(|v| v["event"] == "dpt-error" || v["event"] == "error")
            .collect();
        assert!(errs.is_empty(), "JS errors: {errs:?}");
    }

    j1.stop().await;
    j2.stop().await;
    for h in [&a, &b, &c] {
        h.shutdown().await;
    }
    eprintln!("discovery interop took {:?}", start.elapsed());
}
