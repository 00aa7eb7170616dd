//! A node finds its first peer through an EIP-1459 DNS node list: the list is published
//! (by the publisher `devp2p dns` uses) on a real DNS server on loopback, the node
//! resolves it, dials the node it names and completes the eth handshake with it.

#[path = "../discovery/tests/support/dns_server.rs"]
mod dns_server;

use std::time::Duration;

use devp2p::discovery::dns::TreeUrl;
use devp2p::discovery::dns::publish::Tree;
use devp2p::discovery::enr::Builder;
use devp2p::node::{Config, Node};
use secp256k1::SecretKey;

fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("devp2p-dnsdisc-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_dials_what_its_dns_list_names() {
    let dir = tempdir("node");
    // A: the node the list names (no discovery of its own: only the list leads to it).
    let key_a = SecretKey::new(&mut rand::rng());
    let a = Node::builder(Config::local(dir.join("a")))
        .key(key_a)
        .start()
        .await
        .unwrap();
    let record = Builder::new()
        .ip(a.enode().ip)
        .tcp(a.enode().tcp)
        .udp(a.enode().tcp)
        .build(1, &key_a)
        .unwrap();
    // The list, signed by its publisher's key, served for `nodes.test`.
    let signer = SecretKey::new(&mut rand::rng());
    let mut tree = Tree::build(&[record], &[], 1);
    tree.sign(&signer);
    let dns = dns_server::Dns::start().await;
    dns.publish(&tree, "nodes.test").await;
    let url = TreeUrl::new(&signer, "nodes.test").unwrap();
    // B: no bootnodes, no static nodes; discovery on (v4 finds nobody) with the list.
    let b = Node::builder(Config {
        no_discovery: false,
        dns_discovery: vec![url.to_string()],
        dns_resolver: Some(dns.addr),
        ..Config::local(dir.join("b"))
    })
    .start()
    .await
    .unwrap();
    let mut joined = b.subscribe_eth_peers().unwrap();
    tokio::time::timeout(Duration::from_secs(20), async {
        while b
            .eth()
            .unwrap()
            .peer(&key_a.public_key(secp256k1::SECP256K1))
            .is_none()
        {
            joined.recv().await.unwrap();
        }
    })
    .await
    .expect("B dials the node its DNS list names");
    assert!(
        dns.queries().iter().any(|q| q == "nodes.test"),
        "the root was resolved: {:?}",
        dns.queries()
    );
    b.shutdown().await;
    a.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
