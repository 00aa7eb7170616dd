//! Our Node Discovery v5 (sigp's `discv5` crate behind `discovery::v5`) against an
//! implementation written by others: `@chainsafe/discv5` 11.0.0 (Lodestar's, pinned in
//! `tests/interop/package-lock.json`), driven by `tests/interop/discv5_peer.mjs`, on
//! 127.0.0.1 only. Both directions: PING, FINDNODE by distance, lookups, and a TALKREQ to
//! us answered empty without effect. Then the "done when": a node finds peers
//! through its DNS list, discv4 and discv5 at once and dials one from each.

#[path = "../discovery/tests/support/dns_server.rs"]
mod dns_server;
mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use devp2p::discovery::dns::TreeUrl;
use devp2p::discovery::dns::publish::Tree;
use devp2p::node::{Config, Node};
use discovery::enr::Builder;
use discovery::node::log_distance;
use discovery::{Enr, v5};
use secp256k1::SecretKey;
use serde_json::json;
use support::JsPeer;
use tokio::sync::mpsc;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// An `eth` entry (`[[fork-hash, fork-next]]`): only its presence is judged.
const ETH: &[u8] = &[0xc7, 0xc6, 0x84, 1, 2, 3, 4, 0x80];

fn key() -> SecretKey {
    SecretKey::new(&mut rand::rng())
}

/// A signed loopback record with an `eth` entry.
fn record(key: &SecretKey, udp: u16, tcp: u16) -> Enr {
    Builder::new()
        .ip(LOCALHOST)
        .udp(udp)
        .tcp(tcp)
        .raw(b"eth", ETH.to_vec())
        .unwrap()
        .build(1, key)
        .unwrap()
}

fn enr_of(v: &serde_json::Value) -> Enr {
    v.as_str().unwrap().parse().unwrap()
}

fn distance(a: &Enr, b: &Enr) -> u64 {
    u64::from(log_distance(&a.node_id().hash(), &b.node_id().hash()))
}

/// A key whose node sits at log-distance 256 from `from`'s (the top bit differs). A random
/// lookup asks a peer for 3 of the 256 distances around its target, which covers 256
/// seven times in eight: the record is found within a few lookups, not left to chance.
fn key_far_from(from: &SecretKey) -> SecretKey {
    let a = discovery::NodeId::from_secret_key(from).hash();
    loop {
        let k = key();
        if log_distance(&a, &discovery::NodeId::from_secret_key(&k).hash()) == 256 {
            return k;
        }
    }
}

/// Waits (at most 10 s) until `h`'s v4 table holds a node: it bonded with someone.
async fn wait_bonded(h: &discovery::Handle, what: &str) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while h.table_len().await.unwrap() == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what}"));
}

/// The JS peer pings `enr`; returns the PONG's record sequence number.
async fn js_ping(js: &mut JsPeer, enr: &Enr) -> u64 {
    js.seen.clear();
    js.cmd(json!({"cmd": "ping", "enr": enr.to_string()})).await;
    let pong = js
        .wait(10, "pong", |v| {
            v["event"] == "pong" || v["event"] == "ping-failed"
        })
        .await;
    assert_eq!(pong["event"], "pong", "{pong}");
    // A bigint, written as a string.
    pong["enrSeq"].as_str().unwrap().parse().unwrap()
}

/// The JS peer sends FINDNODE to `enr` for `distances`; returns the records.
async fn js_findnode(js: &mut JsPeer, enr: &Enr, distances: &[u64]) -> Vec<Enr> {
    js.seen.clear();
    js.cmd(json!({"cmd": "findnode", "enr": enr.to_string(), "distances": distances}))
        .await;
    let nodes = js
        .wait(10, "nodes", |v| {
            v["event"] == "nodes" || v["event"] == "findnode-failed"
        })
        .await;
    assert_eq!(nodes["event"], "nodes", "{nodes}");
    nodes["enrs"]
        .as_array()
        .unwrap()
        .iter()
        .map(enr_of)
        .collect()
}

async fn js_peer(js_key: &SecretKey, extra: &[String]) -> (JsPeer, Enr) {
    let mut args = vec![
        "--timeout-ms".to_string(),
        "60000".into(),
        "--key".into(),
        support::key_hex(js_key),
    ];
    args.extend_from_slice(extra);
    let mut js = JsPeer::spawn("discv5_peer.mjs", &args);
    let ready = js.event("ready").await;
    let enr = enr_of(&ready["enr"]);
    (js, enr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_findnode_lookup_and_talkreq_both_ways() {
    // X: a record only the JS peer holds.
    let js_key = key();
    let x = record(&key_far_from(&js_key), 1, 2);
    let (mut js, js_enr) = js_peer(&js_key, &["--add".into(), x.to_string()]).await;
    assert_eq!(
        js_enr.node_id(),
        discovery::NodeId::from_secret_key(&js_key)
    );

    let k = key();
    let (tx, mut found) = mpsc::channel(16);
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let ours = v5::spawn(
        socket,
        &k,
        &record(&k, 1, 3000),
        v5::Config {
            bootnodes: vec![js_enr.clone()],
            ..v5::Config::default()
        },
        tx,
    )
    .await
    .unwrap();
    let our_enr = ours.local_enr().unwrap();

    // We ping the JS peer; it pings us.
    let seq = tokio::time::timeout(Duration::from_secs(10), ours.ping(&js_enr))
        .await
        .unwrap()
        .unwrap();
    assert!(seq >= 1);
    assert_eq!(js_ping(&mut js, &our_enr).await, our_enr.seq());

    // FINDNODE to the JS peer by distance: distance 0 is its own record, X's distance X.
    let own = ours.find_node_at(&js_enr, vec![0]).await.unwrap();
    assert_eq!(own.len(), 1);
    assert_eq!(own[0].node_id(), js_enr.node_id());
    let d = distance(&js_enr, &x);
    let at = ours.find_node_at(&js_enr, vec![d]).await.unwrap();
    assert!(
        at.iter().any(|e| e.node_id() == x.node_id()),
        "X at distance {d} from the JS peer"
    );

    // The JS peer asks us for our own record (distance 0).
    let got = js_findnode(&mut js, &our_enr, &[0]).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].node_id(), our_enr.node_id());
    assert_eq!(got[0].udp(), Some(ours.local_addr().port()));

    // A JS lookup for our id finds us.
    js.cmd(json!({"cmd": "lookup", "target": hex::encode(our_enr.node_id().hash())}))
        .await;
    let lookup = js.event("lookup").await;
    let ids: Vec<_> = lookup["enrs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| enr_of(e).node_id())
        .collect();
    assert!(ids.contains(&our_enr.node_id()), "JS lookup found us");

    // Our lookups reach X through the JS peer: it becomes a dial candidate.
    let cand = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let n = found.recv().await.unwrap();
            if n.id == x.node_id() {
                return n;
            }
        }
    })
    .await
    .expect("a lookup through the JS peer yields X");
    assert_eq!((cand.ip, cand.tcp), (LOCALHOST, 2));

    // A TALKREQ for a protocol we do not speak: an empty TALKRESP, nothing else changes.
    let table = ours.table_len();
    let before = ours.status().borrow().clone();
    for payload in ["hello", &"x".repeat(1000)] {
        js.cmd(json!({"cmd": "talkreq", "enr": our_enr.to_string(), "protocol": "nope", "payload": payload}))
            .await;
        let resp = js
            .wait(10, "talkresp", |v| {
                v["event"] == "talkresp" || v["event"] == "talkreq-failed"
            })
            .await;
        assert_eq!(resp["event"], "talkresp", "{resp}");
        assert_eq!(
            resp["payload"], "",
            "empty response (discv5-wire.md TALKRESP)"
        );
        js.seen.clear();
    }
    assert_eq!(ours.table_len(), table);
    assert_eq!(ours.status().borrow().sent, before.sent);
    assert_eq!(ours.local_enr().unwrap().seq(), our_enr.seq());
    // Still answering.
    ours.ping(&js_enr).await.unwrap();
    js.stop().await;
}

/// The "done when": a node with a DNS list, v4 bootnodes and v5 bootnodes uses all
/// three at once. Each source is the only way to one of our nodes (D only in the DNS list,
/// C4 only known to the v4 bootnode, C5 only to the JS discv5 peer); none of them
/// discovers or dials, so a connection to each is the node's own dial of what that source
/// found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_uses_its_dns_list_v4_and_v5_at_once() {
    let dir = support::tempdir("discv5-sources");
    let quiet = |name: &str| Config::local(dir.join(name));
    let start = |name: &str, key: SecretKey| {
        let c = quiet(name);
        async move { Node::builder(c).key(key).start().await.unwrap() }
    };
    let js_key = key();
    let (kd, k4, k5) = (key(), key(), key_far_from(&js_key));
    let d = start("d", kd).await;
    let c4 = start("c4", k4).await;
    let c5 = start("c5", k5).await;

    // DNS: a list naming D.
    let signer = key();
    let mut tree = Tree::build(&[record(&kd, d.enode().tcp, d.enode().tcp)], &[], 1);
    tree.sign(&signer);
    let dns = dns_server::Dns::start().await;
    dns.publish(&tree, "nodes.test").await;
    let url = TreeUrl::new(&signer, "nodes.test").unwrap();

    // v4: a bootnode that knows C4 (C4's discovery runs apart from its node, which dials
    // nobody).
    let v4cfg = || discovery::Config {
        rate_limit: 2_000,
        rate_burst: 2_000,
        external_ip: Some(LOCALHOST),
        ..discovery::Config::default()
    };
    let b4 = discovery::bind("127.0.0.1:0".parse().unwrap(), key(), v4cfg(), None)
        .await
        .unwrap();
    let c4_disc = discovery::bind(
        "127.0.0.1:0".parse().unwrap(),
        k4,
        discovery::Config {
            bootnodes: vec![b4.local_node()],
            tcp_port: c4.enode().tcp,
            ..v4cfg()
        },
        None,
    )
    .await
    .unwrap();
    wait_bonded(&b4, "C4 bonded with the v4 bootnode").await;

    // v5: the JS peer holds C5's record.
    let c5_enr = record(&k5, 1, c5.enode().tcp);
    let (js, js_enr) = js_peer(&js_key, &["--add".into(), c5_enr.to_string()]).await;

    let a = Node::builder(Config {
        no_discovery: false,
        dns_discovery: vec![url.to_string()],
        dns_resolver: Some(dns.addr),
        bootnodes: vec![b4.local_node()],
        bootnodes_v5: vec![js_enr],
        discovery_v5: Some(true),
        ..quiet("a")
    })
    .start()
    .await
    .unwrap();
    let v5 = a.discv5().expect("v5 runs").clone();
    let v5_enr = v5.local_enr().unwrap();
    assert_eq!(v5_enr.node_id(), a.enode().id, "one identity");
    assert_eq!(v5_enr.tcp(), Some(a.enode().tcp));
    assert!(v5_enr.eth().is_some(), "the eth entry is in the v5 record");
    let v4_enr = a.discovery().unwrap().local_enr().await.unwrap();
    assert_eq!(v4_enr.eth(), v5_enr.eth());
    assert_eq!(v4_enr.udp(), Some(a.enode().udp), "v4 keeps its port");

    let want = [
        ("dns", discovery::NodeId::from_secret_key(&kd)),
        ("v4", discovery::NodeId::from_secret_key(&k4)),
        ("v5", discovery::NodeId::from_secret_key(&k5)),
    ];
    let dialled = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let peers = a.server().peers();
            let out: Vec<_> = want
                .iter()
                .filter(|(_, id)| peers.iter().any(|p| p.id == *id && !p.inbound))
                .map(|(s, _)| *s)
                .collect();
            if out.len() == want.len() {
                return out;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        let peers = a.server().peers();
        let missing: Vec<_> = want
            .iter()
            .filter(|(_, id)| !peers.iter().any(|p| p.id == *id))
            .map(|(s, _)| *s)
            .collect();
        panic!(
            "not dialled: {missing:?}; v5 {:?}; dns {:?}",
            *v5.status().borrow(),
            a.dns_status().map(|s| s.borrow().clone())
        )
    });
    assert_eq!(dialled, ["dns", "v4", "v5"]);
    assert!(a.dns_status().unwrap().borrow().nodes >= 1);
    assert!(dns.queries().iter().any(|q| q == "nodes.test"));
    assert!(v5.status().borrow().sent >= 1);

    js.stop().await;
    a.shutdown().await;
    for n in [d, c4, c5] {
        n.shutdown().await;
    }
    c4_disc.shutdown().await;
    b4.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// `devp2p bootnode --v5` serves both protocols: a v4 node bonds with it through its enode,
/// and the JS discv5 peer pings it and finds its record through its v5 ENR.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootnode_v5_serves_v4_and_v5() {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_devp2p"))
        .args([
            "bootnode",
            "--addr",
            "127.0.0.1:0",
            "--v5",
            "--nat",
            "extip:127.0.0.1",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let lines = tokio::task::spawn_blocking(move || {
        std::io::BufReader::new(stdout)
            .lines()
            .take(3)
            .map(Result::unwrap)
            .collect::<Vec<_>>()
    });
    let lines = tokio::time::timeout(Duration::from_secs(20), lines)
        .await
        .expect("the bootnode prints its enode, ENR and v5 ENR")
        .unwrap();
    assert_eq!(lines.len(), 3, "{lines:?}");
    let enode = discovery::parse_node(&lines[0]).unwrap();
    let v4_enr: Enr = lines[1].parse().unwrap();
    let v5_enr: Enr = lines[2].parse().unwrap();
    assert_eq!(v5_enr.node_id(), v4_enr.node_id(), "one identity");
    assert_ne!(v5_enr.udp(), v4_enr.udp(), "v5 on its own port");

    // v4: a node that knows only the enode bonds with the bootnode.
    let v4 = discovery::bind(
        "127.0.0.1:0".parse().unwrap(),
        key(),
        discovery::Config {
            bootnodes: vec![enode],
            ..discovery::Config::default()
        },
        None,
    )
    .await
    .unwrap();
    wait_bonded(&v4, "v4 bonded with the bootnode").await;

    // v5: the JS peer pings it and gets its own record back at distance 0.
    let (mut js, _) = js_peer(&key(), &[]).await;
    assert_eq!(js_ping(&mut js, &v5_enr).await, v5_enr.seq());
    let got = js_findnode(&mut js, &v5_enr, &[0]).await;
    assert_eq!(got[0].node_id(), v5_enr.node_id());

    js.stop().await;
    v4.shutdown().await;
    let status = support::interrupt_and_wait(&mut child, 10);
    assert!(status.success(), "bootnode exit: {status}");
}
