//! DNS discovery against a real DNS server on loopback: an in-process `hickory-server`
//! serving trees built by the publisher, resolved by the driver through `hickory-resolver`.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use discovery::Node;
use discovery::dns::driver::{self, Resolver, Status};
use discovery::dns::publish::Tree;
use discovery::dns::{Client, Config, Error, TreeUrl};
use discovery::enr::{Builder, Enr};
use secp256k1::SecretKey;
use tokio::sync::{mpsc, watch};
use tokio::time::timeout;

/// Bound on every wait: loopback answers take milliseconds.
const WAIT: Duration = Duration::from_secs(20);

#[path = "support/dns_server.rs"]
mod dns_server;

use dns_server::Dns;

fn key(n: u8) -> SecretKey {
    SecretKey::from_byte_array([n; 32]).unwrap()
}

fn record(n: u8, seq: u64) -> Enr {
    Builder::new()
        .ip(IpAddr::V4(Ipv4Addr::new(10, 0, seq as u8, n)))
        .tcp(30303)
        .udp(30303)
        .build(seq, &key(n))
        .unwrap()
}

fn signed(records: &[Enr], links: &[TreeUrl], seq: u64, signer: &SecretKey) -> Tree {
    let mut t = Tree::build(records, links, seq);
    t.sign(signer);
    t
}

fn config() -> Config {
    Config {
        recheck_interval: Duration::from_millis(300),
        retry_delay: Duration::from_millis(100),
        queries_per_window: 100,
        ..Config::default()
    }
}

fn start(dns: &Dns, urls: Vec<TreeUrl>) -> (driver::Handle, mpsc::Receiver<Node>) {
    start_with(dns, urls, config())
}

fn start_with(
    dns: &Dns,
    urls: Vec<TreeUrl>,
    config: Config,
) -> (driver::Handle, mpsc::Receiver<Node>) {
    let (tx, rx) = mpsc::channel(64);
    let client = Client::new(urls, config, std::time::Instant::now());
    let handle = driver::spawn(client, &Resolver::At(dns.addr), tx).unwrap();
    (handle, rx)
}

async fn wait_for(status: &mut watch::Receiver<Status>, f: impl Fn(&Status) -> bool) -> Status {
    timeout(WAIT, status.wait_for(|s| f(s)))
        .await
        .expect("timed out")
        .unwrap()
        .clone()
}

async fn collect(rx: &mut mpsc::Receiver<Node>, n: usize) -> HashSet<Node> {
    let mut found = HashSet::new();
    while found.len() < n {
        found.insert(timeout(WAIT, rx.recv()).await.expect("timed out").unwrap());
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolves_tree_and_follows_link() {
    let dns = Dns::start().await;
    let (ka, kb) = (key(101), key(102));
    let ub = TreeUrl::new(&kb, "b.test").unwrap();
    let a: Vec<Enr> = (1..=20).map(|n| record(n, 1)).collect();
    let b: Vec<Enr> = (21..=23).map(|n| record(n, 1)).collect();
    dns.publish(&signed(&a, &[ub], 1, &ka), "a.test").await;
    dns.publish(&signed(&b, &[], 1, &kb), "b.test").await;

    let (handle, mut rx) = start(&dns, vec![TreeUrl::new(&ka, "a.test").unwrap()]);
    let found = collect(&mut rx, 23).await;
    let want: HashSet<Node> = a.iter().chain(&b).map(|e| e.to_node().unwrap()).collect();
    assert_eq!(found, want);
    let mut status = handle.status();
    let s = wait_for(&mut status, |s| s.synced.len() == 2).await;
    assert_eq!(s.errors, 0, "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_bad_signature() {
    let dns = Dns::start().await;
    dns.publish(&signed(&[record(1, 1)], &[], 1, &key(9)), "a.test")
        .await;
    let (handle, mut rx) = start(&dns, vec![TreeUrl::new(&key(8), "a.test").unwrap()]);
    let mut status = handle.status();
    let s = wait_for(&mut status, |s| s.errors >= 2).await;
    assert_eq!(s.last_error, Some(Error::BadSignature));
    assert!(s.synced.is_empty());
    assert!(rx.try_recv().is_err());
    // Only the root was asked for: nothing below an unverified root is fetched.
    assert!(
        dns.queries().iter().all(|q| q == "a.test"),
        "{:?}",
        dns.queries()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_wrong_hash_and_oversized_records() {
    let dns = Dns::start().await;
    let signer = key(7);
    let records: Vec<Enr> = (1..=3).map(|n| record(n, 1)).collect();
    let tree = signed(&records, &[], 1, &signer);
    dns.publish(&tree, "a.test").await;
    let mut leaves = tree.entries().iter().filter(|(_, t)| t.starts_with("enr:"));
    let (swapped, _) = leaves.next().unwrap();
    let (oversized, _) = leaves.next().unwrap();
    dns.set(&format!("{swapped}.a.test"), &record(4, 1).to_string())
        .await;
    dns.set(
        &format!("{oversized}.a.test"),
        &format!("enr:{}", "A".repeat(700)),
    )
    .await;

    // No re-check during the test: each sync reports the two bad records again.
    let config = Config {
        recheck_interval: WAIT * 2,
        ..config()
    };
    let (handle, mut rx) = start_with(&dns, vec![TreeUrl::new(&signer, "a.test").unwrap()], config);
    assert_eq!(collect(&mut rx, 1).await.len(), 1);
    let mut status = handle.status();
    wait_for(&mut status, |s| s.synced.contains_key("a.test")).await;
    let s = status.borrow().clone();
    assert_eq!(s.nodes, 1);
    assert_eq!(s.errors, 2, "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_fetches_only_changed_entries() {
    let dns = Dns::start().await;
    let signer = key(7);
    let mut records: Vec<Enr> = (1..=30).map(|n| record(n, 1)).collect();
    dns.publish(&signed(&records, &[], 1, &signer), "a.test")
        .await;
    let (handle, mut rx) = start(&dns, vec![TreeUrl::new(&signer, "a.test").unwrap()]);
    collect(&mut rx, 30).await;
    let mut status = handle.status();
    wait_for(&mut status, |s| s.synced.get("a.test") == Some(&1)).await;
    // 30 leaves, 3 branches and their parent, the empty link branch, the root.
    let first = dns.queries();
    assert_eq!(
        first.iter().filter(|q| *q != "a.test").count(),
        35,
        "{first:?}"
    );

    records[5] = record(6, 2);
    let v2 = signed(&records, &[], 2, &signer);
    let before = dns.queries().len();
    dns.publish(&v2, "a.test").await;
    wait_for(&mut status, |s| s.synced.get("a.test") == Some(&2)).await;
    let entries: Vec<String> = dns.queries()[before..]
        .iter()
        .filter(|q| *q != "a.test")
        .cloned()
        .collect();
    // The new top branch, the one 13-leaf branch holding the change, and the new leaf.
    assert_eq!(entries.len(), 3, "{entries:?}");
    let node = record(6, 2).to_node().unwrap();
    timeout(WAIT, async { while rx.recv().await != Some(node) {} })
        .await
        .expect("updated record not sent");
}
