//! Catch-up sync between in-process nodes on loopback: a fresh node downloads the
//! ethtest chain (600 blocks) from one serving node, from three where one serves
//! corrupt bodies (it is dropped and the sync still completes), and from two where one
//! claims head `u64::MAX` and withholds the gaps (issue 11: it is dropped).

use alloy_primitives::B256;
use devp2p::chain::Store;
use devp2p::chain::eth::EthChain;
use devp2p::protocols::eth::messages::Raw;
use devp2p::protocols::eth::{self, Chain, Head, forkid::Filter};
use devp2p::{server, sync};
use secp256k1::PublicKey;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

const HEAD: &str = "0x44e3809c9a3cda717f00aea3a9da336d149612c8d5657fbc0028176ef8d94d2a";

mod support;

use support::{EthNode, chain_rlp, ethtest_store, tempdir};

/// How a test node serves its chain.
#[derive(Clone, Copy, PartialEq)]
enum Serve {
    Honest,
    /// Bodies with one transaction dropped (or an ommer added to bodies without
    /// transactions): they no longer match their headers.
    CorruptBodies,
    /// The attack of issue 11 item 3: claims head `u64::MAX` (a forged header it shows
    /// when asked), serves only skeleton points (every 192nd header: real up to 600,
    /// forged above), no header ranges and no bodies.
    HugeHeadLiar,
    /// Honest blocks, receipts that do not match them (the last receipt's cumulative gas
    /// off by one).
    WrongReceipts,
    /// Honest blocks, no receipts (but the empty lists of blocks without transactions).
    WithheldReceipts,
}

/// The store's chain, served as [`Serve`] says.
struct Served(EthChain, Serve);

const SKELETON_SPAN: u64 = 192;

fn forged(number: u64) -> alloy_consensus::Header {
    alloy_consensus::Header {
        number,
        parent_hash: B256::repeat_byte(0xee),
        extra_data: alloy_primitives::Bytes::from_static(b"forged"),
        ..Default::default()
    }
}

impl Chain for Served {
    fn network_id(&self) -> u64 {
        self.0.network_id()
    }
    fn genesis_hash(&self) -> B256 {
        self.0.genesis_hash()
    }
    fn fork_filter(&self) -> &Filter {
        self.0.fork_filter()
    }
    fn head(&self) -> Head {
        match self.1 {
            Serve::HugeHeadLiar => Head {
                number: u64::MAX,
                hash: forged(u64::MAX).hash_slow(),
                ..self.0.head()
            },
            _ => self.0.head(),
        }
    }
    fn fork_id(&self) -> eth::forkid::ForkId {
        self.0.fork_id()
    }
    fn earliest(&self) -> u64 {
        self.0.earliest()
    }
    fn header_by_number(&self, number: u64) -> Option<Raw> {
        if self.1 != Serve::HugeHeadLiar {
            return self.0.header_by_number(number);
        }
        if number != u64::MAX && !number.is_multiple_of(SKELETON_SPAN) {
            return None; // a gap's first header: the range ends before it starts
        }
        match self.0.header_by_number(number) {
            Some(raw) => Some(raw),
            None => Some(Raw(alloy_rlp::encode(forged(number)).into())),
        }
    }
    fn canonical_number(&self, hash: &B256) -> Option<u64> {
        if self.1 == Serve::HugeHeadLiar && *hash == forged(u64::MAX).hash_slow() {
            return Some(u64::MAX);
        }
        self.0.canonical_number(hash)
    }
    fn receipts_by_hash(&self, hash: &B256) -> Option<Raw> {
        match self.1 {
            Serve::Honest => self.0.receipts_by_hash(hash),
            Serve::WrongReceipts => {
                let raw = self.0.receipts_by_hash(hash)?;
                let mut list: Vec<eth::messages::Receipt69> =
                    alloy_rlp::Decodable::decode(&mut &raw.0[..]).ok()?;
                if let Some(last) = list.last_mut() {
                    last.cumulative_gas += 1;
                }
                Some(eth::receipts::encode_stored(&list))
            }
            // Withheld: only the empty lists of blocks without transactions.
            _ => self
                .0
                .body_by_hash(hash)
                .filter(|b| eth::chain::body_has_no_transactions(&b.0))
                .map(|_| {
                    Raw(alloy_primitives::Bytes::from_static(
                        eth::receipts::EMPTY_LIST,
                    ))
                }),
        }
    }
    fn body_by_hash(&self, hash: &B256) -> Option<Raw> {
        match self.1 {
            Serve::Honest | Serve::WrongReceipts | Serve::WithheldReceipts => {
                self.0.body_by_hash(hash)
            }
            Serve::CorruptBodies => {
                let raw = self.0.body_by_hash(hash)?;
                let mut body: devp2p::chain::Body =
                    alloy_rlp::Decodable::decode(&mut &raw.0[..]).ok()?;
                if body.transactions.pop().is_none() {
                    body.ommers.push(Default::default());
                }
                Some(Raw(alloy_rlp::encode(&body).into()))
            }
            Serve::HugeHeadLiar => None,
        }
    }
}

struct Node {
    net: EthNode,
    eth: eth::Handle,
    server: server::Handle,
    store: Arc<Store>,
    id: PublicKey,
    dir: PathBuf,
}

impl Node {
    fn node(&self) -> discovery::Node {
        self.net.node()
    }

    async fn stop(self) {
        self.server.shutdown().await;
        drop(self.store);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A node over a fresh store in `name`; with the ethtest chain imported if `full`,
/// serving it as `serve` says.
async fn node(name: &str, full: bool, serve: Serve) -> Node {
    let dir = tempdir(&format!("sync-{name}"));
    let store = ethtest_store(&dir);
    if full {
        devp2p::cmd::import::import_file(&store, &chain_rlp()).unwrap();
        let receipts = chain_rlp().with_file_name("receipts.rlp");
        devp2p::cmd::import_receipts::import_receipts(&store, &chain_rlp(), &receipts).unwrap();
    }
    let chain: Arc<dyn Chain> = Arc::new(Served(EthChain::new(store.clone()), serve));
    let net = EthNode::start(chain, eth::Config::default()).await;
    Node {
        eth: net.eth.clone(),
        server: net.server.clone(),
        id: net.id(),
        net,
        store,
        dir,
    }
}

/// Connects `b` to `peers` and waits until all of them are its eth peers (so that each
/// is sure to be given work once the sync starts).
async fn connect(b: &Node, peers: &[&Node]) {
    let mut events = b.eth.subscribe();
    for n in peers {
        b.server.add_peer(n.node()).await;
    }
    tokio::time::timeout(Duration::from_secs(10), async {
        while b.eth.peers().len() < peers.len() {
            let _ = events.recv().await; // a join, or lagged: look again
        }
    })
    .await
    .expect("all eth peers");
}

/// Waits until `b` has dropped `id` (the disconnect is asynchronous).
async fn wait_dropped(b: &Node, id: &PublicKey) {
    let mut events = b.eth.subscribe();
    tokio::time::timeout(Duration::from_secs(5), async {
        while b.eth.peer(id).is_some() {
            let _ = events.recv().await;
        }
    })
    .await
    .expect("peer dropped");
}

/// The importer sync uses on `b` (dropping included transactions from its pool).
fn importer(b: &Node) -> devp2p::chain::Importer {
    devp2p::chain::Importer::new(b.store.clone(), Some(b.eth.pool().clone()))
}

async fn wait_synced(s: &sync::Syncer, secs: u64) {
    let mut h = s.handle();
    tokio::time::timeout(Duration::from_secs(secs), h.wait_for(|s| s.current >= 600))
        .await
        .unwrap_or_else(|_| panic!("not synced in {secs} s: {:?}", s.handle().status()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_node_syncs_from_one_peer() {
    let a = node("one-a", true, Serve::Honest).await;
    let b = node("one-b", false, Serve::Honest).await;
    let syncer = sync::spawn(b.eth.clone(), importer(&b), sync::Config::default());
    b.server.add_peer(a.node()).await;
    wait_synced(&syncer, 25).await;
    let head = b.store.head().unwrap();
    assert_eq!(head.number, 600);
    assert_eq!(head.hash_slow().to_string(), HEAD);
    let status = syncer.handle().status();
    assert_eq!(
        (status.starting, status.current, status.highest),
        (0, 600, 600)
    );
    syncer.shutdown().await;
    b.stop().await;
    a.stop().await;
}

/// The syncer hears of a peer from its join event: the peer's head is asked for and
/// shown without the (paused) clock moving, where reading the peer table every half
/// second took up to 500 ms.
#[tokio::test(start_paused = true)]
async fn joining_peer_is_picked_up_at_once() {
    let a = node("join-a", true, Serve::Honest).await;
    let b = node("join-b", false, Serve::Honest).await;
    let syncer = sync::spawn(b.eth.clone(), importer(&b), sync::Config::default());
    // Let the syncer read the (empty) table and wait for events.
    tokio::task::yield_now().await;
    connect(&b, &[&a]).await;
    let joined = tokio::time::Instant::now();
    let mut h = syncer.handle();
    tokio::time::timeout(Duration::from_secs(5), h.wait_for(|s| s.highest == 600))
        .await
        .expect("the peer's head shown");
    let waited = joined.elapsed();
    assert!(
        waited < Duration::from_millis(100),
        "the syncer took {waited:?} (virtual) to pick up a joined peer"
    );
    syncer.shutdown().await;
    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_body_peer_is_dropped_and_sync_completes() {
    let good1 = node("three-g1", true, Serve::Honest).await;
    let good2 = node("three-g2", true, Serve::Honest).await;
    let bad = node("three-bad", true, Serve::CorruptBodies).await;
    let b = node("three-b", false, Serve::Honest).await;
    // All three handshaked first, so the corrupt peer is sure to be given bodies.
    connect(&b, &[&good1, &good2, &bad]).await;
    // Small body requests, so that the 600 blocks take several, spread over the peers
    // (by default the first 32 bodies give their size and the other 568 fit one request).
    let config = sync::Config {
        bodies_per_request: 64,
        ..sync::Config::default()
    };
    let syncer = sync::spawn(b.eth.clone(), importer(&b), config);
    wait_synced(&syncer, 25).await;
    let head = b.store.head().unwrap();
    assert_eq!(head.number, 600);
    assert_eq!(head.hash_slow().to_string(), HEAD);
    wait_dropped(&b, &bad.id).await;
    assert!(b.eth.peer(&good1.id).is_some() && b.eth.peer(&good2.id).is_some());
    syncer.shutdown().await;
    b.stop().await;
    for n in [good1, good2, bad] {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_claiming_a_huge_head_and_withholding_gaps_is_dropped() {
    // Before issue 11 this liar led the round to u64::MAX and the gap above 600, which
    // only it claimed, was asked of it forever.
    let good = node("huge-good", true, Serve::Honest).await;
    let liar = node("huge-liar", true, Serve::HugeHeadLiar).await;
    let b = node("huge-b", false, Serve::Honest).await;
    connect(&b, &[&good, &liar]).await;
    let syncer = sync::spawn(b.eth.clone(), importer(&b), sync::Config::default());
    wait_synced(&syncer, 25).await;
    let head = b.store.head().unwrap();
    assert_eq!(head.hash_slow().to_string(), HEAD);
    wait_dropped(&b, &liar.id).await;
    assert!(b.eth.peer(&good.id).is_some());
    // The forged head was reported while the liar was connected, not after.
    let status = syncer.handle().status();
    assert_eq!((status.current, status.highest), (600, 600));
    syncer.shutdown().await;
    b.stop().await;
    for n in [good, liar] {
        n.stop().await;
    }
}

/// The 600 canonical block hashes of `store`.
fn hashes(store: &Store) -> Vec<B256> {
    (1..=600)
        .map(|n| store.canonical_hash(n).unwrap().unwrap())
        .collect()
}

/// Waits until `b` holds the receipts of every block.
async fn wait_receipts(b: &Node, secs: u64) {
    let all = hashes(&b.store);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let missing = b.store.missing_receipts(&all).unwrap();
        if missing.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "receipts of {} blocks missing after {secs} s",
            missing.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// After a sync, the receipts of every block (block 11's 10.6 MB list in eth/70 parts)
/// are fetched, checked and stored: the synced node serves what its source serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synced_node_fetches_and_serves_the_same_receipts() {
    let a = node("rcpt-a", true, Serve::Honest).await;
    let b = node("rcpt-b", false, Serve::Honest).await;
    let syncer = sync::spawn(b.eth.clone(), importer(&b), sync::Config::default());
    b.server.add_peer(a.node()).await;
    wait_synced(&syncer, 25).await;
    wait_receipts(&b, 30).await;
    let (ca, cb) = (
        EthChain::new(a.store.clone()),
        EthChain::new(b.store.clone()),
    );
    let all = hashes(&a.store);
    for h in &all {
        assert_eq!(cb.receipts_by_hash(h), ca.receipts_by_hash(h), "{h}");
    }
    assert_eq!(
        eth::serve::receipts(&cb, &all[..64]),
        eth::serve::receipts(&ca, &all[..64])
    );
    syncer.shutdown().await;
    b.stop().await;
    a.stop().await;
}

/// A peer serving receipts that do not match the blocks is dropped and nothing of its is
/// stored; the blocks are imported all the same, and the honest peer supplies the
/// receipts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_receipts_are_penalised_and_do_not_stall_import() {
    let liar = node("rcpt-liar", true, Serve::WrongReceipts).await;
    let honest = node("rcpt-honest", true, Serve::Honest).await;
    let b = node("rcpt-b2", false, Serve::Honest).await;
    let syncer = sync::spawn(b.eth.clone(), importer(&b), sync::Config::default());
    connect(&b, &[&liar, &honest]).await;
    wait_synced(&syncer, 25).await;
    wait_dropped(&b, &liar.id).await;
    wait_receipts(&b, 30).await;
    let (ch, cb) = (
        EthChain::new(honest.store.clone()),
        EthChain::new(b.store.clone()),
    );
    for h in hashes(&b.store) {
        assert_eq!(cb.receipts_by_hash(&h), ch.receipts_by_hash(&h), "{h}");
    }
    syncer.shutdown().await;
    b.stop().await;
    honest.stop().await;
    liar.stop().await;
}

/// Peers that withhold receipts (they serve blocks only) do not hold up the sync: the
/// blocks are imported and their receipts stay unavailable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withheld_receipts_do_not_stall_import() {
    let good = node("rcpt-withhold-g", true, Serve::WithheldReceipts).await;
    let b = node("rcpt-withhold-b", false, Serve::Honest).await;
    let syncer = sync::spawn(b.eth.clone(), importer(&b), sync::Config::default());
    connect(&b, &[&good]).await;
    wait_synced(&syncer, 25).await;
    let all = hashes(&b.store);
    assert!(!b.store.missing_receipts(&all).unwrap().is_empty());
    syncer.shutdown().await;
    b.stop().await;
    good.stop().await;
}
