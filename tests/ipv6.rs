//! IPv6 end to end on `::1`: an `enode://…@[::1]:port` static node is dialled and
//! handshakes `eth`; discovery v4 finds a node through a bootnode on `::1`, and the node
//! found is dialled over IPv6. Each test prints a note and passes when the machine has
//! no IPv6 loopback (checked by binding `[::1]:0`).

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use devp2p::node::{Config, Node};
use secp256k1::SecretKey;

/// Bounds each wait: loopback handshakes and lookups take well under a second.
const LIMIT: Duration = Duration::from_secs(30);
const LOOPBACK6: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);

fn has_ipv6_loopback(test: &str) -> bool {
    let ok = std::net::UdpSocket::bind(SocketAddr::new(LOOPBACK6, 0)).is_ok()
        && std::net::TcpListener::bind(SocketAddr::new(LOOPBACK6, 0)).is_ok();
    if !ok {
        println!("{test}: skipped, no IPv6 loopback (::1) on this machine");
    }
    ok
}

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("devp2p-ipv6-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn local6(dir: PathBuf) -> Config {
    Config {
        addr: LOOPBACK6,
        ..Config::local(dir)
    }
}

/// Waits until `node` has an eth session with `peer`.
async fn eth_session(node: &Node, peer: &Node) {
    let mut events = node.subscribe_eth_peers().unwrap();
    let want = peer.enode().id.public_key().unwrap();
    tokio::time::timeout(LIMIT, async {
        while !node.eth().unwrap().peers().iter().any(|p| p.id == want) {
            let _ = events.recv().await;
        }
    })
    .await
    .expect("eth session over IPv6");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_node_on_ipv6_loopback_is_dialled() {
    if !has_ipv6_loopback("static_node_on_ipv6_loopback_is_dialled") {
        return;
    }
    let dir = tempdir("static");
    let a = Node::builder(local6(dir.join("a"))).start().await.unwrap();
    let url = a.enode().to_string();
    assert!(url.contains("@[::1]:"), "{url}");
    // The URL form is what a user writes in --staticnodes.
    let config = Config {
        static_nodes: vec![devp2p::node::parse_enode(&url).unwrap()],
        ..local6(dir.join("b"))
    };
    let b = Node::builder(config).start().await.unwrap();
    eth_session(&b, &a).await;
    eth_session(&a, &b).await;
    let peer = b.server().peers().into_iter().next().expect("a peer");
    assert_eq!(peer.info.addr.map(|a| a.ip()), Some(LOOPBACK6), "{peer:?}");
    b.shutdown().await;
    a.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_over_ipv6_finds_and_dials_a_node() {
    if !has_ipv6_loopback("discovery_over_ipv6_finds_and_dials_a_node") {
        return;
    }
    let dir = tempdir("disc");
    let boot = discovery::bind(
        SocketAddr::new(LOOPBACK6, 0),
        SecretKey::new(&mut rand::rng()),
        discovery::Config::default(),
        None,
    )
    .await
    .unwrap();
    let enr = boot.local_enr().await.unwrap();
    assert_eq!(enr.ip6(), Some(Ipv6Addr::LOCALHOST), "{enr}");
    assert_eq!(enr.ip4(), None);
    let with_boot = |name: &str| Config {
        no_discovery: false,
        // The bootnode given as its record: `ip6` and `udp` make the endpoint.
        bootnodes: vec![devp2p::node::parse_enode(&enr.to_string()).unwrap()],
        ..local6(dir.join(name))
    };
    let a = Node::builder(with_boot("a")).start().await.unwrap();
    let a_enr = a.discovery().unwrap().local_enr().await.unwrap();
    assert_eq!(a_enr.ip6(), Some(Ipv6Addr::LOCALHOST), "{a_enr}");
    assert_eq!(a_enr.to_node().unwrap().tcp_addr().ip(), LOOPBACK6);
    let b = Node::builder(with_boot("b")).start().await.unwrap();
    let mut admitted = b.subscribe_peers();
    // B knows only the bootnode: it finds A by discovery and dials it (or A dials B).
    eth_session(&b, &a).await;
    // The connection's address: from B's peer list, or (when both dialled at once and the
    // connection the eth session saw was dropped as a duplicate) from the admission
    // event of the other one.
    let listed = b
        .server()
        .peers()
        .into_iter()
        .find(|p| p.id == a.enode().id);
    let peer = tokio::time::timeout(LIMIT, async {
        if let Some(p) = listed {
            return p;
        }
        loop {
            if let Ok(devp2p::server::PeerEvent::Added(p)) = admitted.recv().await
                && p.id == a.enode().id
            {
                return p;
            }
        }
    })
    .await
    .expect("A admitted by B");
    assert_eq!(peer.info.addr.map(|a| a.ip()), Some(LOOPBACK6), "{peer:?}");
    b.shutdown().await;
    a.shutdown().await;
    boot.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A node bound to `::` (dual-stack) takes peers over both families on one port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dual_stack_listener_takes_ipv4_and_ipv6_peers() {
    if !has_ipv6_loopback("dual_stack_listener_takes_ipv4_and_ipv6_peers") {
        return;
    }
    let dir = tempdir("dual");
    let a = Node::builder(Config {
        addr: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        ..Config::local(dir.join("a"))
    })
    .start()
    .await
    .unwrap();
    let at = |ip: IpAddr| discovery::Node { ip, ..a.enode() };
    let v4 = Node::builder(Config {
        static_nodes: vec![at([127, 0, 0, 1].into())],
        ..Config::local(dir.join("v4"))
    })
    .start()
    .await
    .unwrap();
    let v6 = Node::builder(Config {
        static_nodes: vec![at(LOOPBACK6)],
        ..local6(dir.join("v6"))
    })
    .start()
    .await
    .unwrap();
    eth_session(&a, &v4).await;
    eth_session(&a, &v6).await;
    let from = |n: &Node| {
        a.server()
            .peers()
            .into_iter()
            .find(|p| p.id == n.enode().id)
            .and_then(|p| p.info.addr)
            .map(|addr| discovery::node::canonical_ip(addr.ip()))
    };
    assert_eq!(from(&v4), Some([127, 0, 0, 1].into()));
    assert_eq!(from(&v6), Some(LOOPBACK6));
    for n in [v4, v6, a] {
        n.shutdown().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The default address `::` is dual-stack for discovery too: nodes on 127.0.0.1 and on
/// ::1 both bond with it and get answers through its one UDP socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dual_stack_discovery_answers_both_families() {
    if !has_ipv6_loopback("dual_stack_discovery_answers_both_families") {
        return;
    }
    let dir = tempdir("dualdisc");
    let a = Node::builder(Config {
        addr: Config::default().addr,
        no_discovery: false,
        ..Config::local(dir.join("a"))
    })
    .start()
    .await
    .unwrap();
    assert_eq!(
        a.discovery().unwrap().local_node().ip,
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    );
    let port = a.discovery().unwrap().local_node().udp;
    for ip in [IpAddr::from([127, 0, 0, 1]), LOOPBACK6] {
        let target = discovery::Node {
            ip,
            udp: port,
            ..a.enode()
        };
        let peer = discovery::bind(
            SocketAddr::new(ip, 0),
            SecretKey::new(&mut rand::rng()),
            discovery::Config {
                bootnodes: vec![target],
                ..discovery::Config::default()
            },
            None,
        )
        .await
        .unwrap();
        let found = tokio::time::timeout(LIMIT, async {
            loop {
                let nodes = peer
                    .lookup(discovery::NodeId(rand::random()))
                    .await
                    .unwrap();
                if nodes.iter().any(|n| n.id == target.id) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await;
        assert!(found.is_ok(), "no answer over {ip}");
        peer.shutdown().await;
    }
    a.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
