//! `devp2p crawl` and `devp2p census` against a network of our own nodes on loopback:
//! nodes on several chains with several client ids and eth versions, two that lie in
//! their Status, one that refuses RLPx and one that never answers it (slowloris). The
//! census must count exactly what was started.

#[path = "../discovery/tests/support/dns_server.rs"]
#[allow(dead_code)]
mod dns_server;

use std::sync::Arc;
use std::time::Duration;

use alloy_primitives::{B256, U256};
use devp2p::chain::Spec;
use devp2p::crawl::census::{self, lookup};
use devp2p::crawl::{driver, nodeset, probe::Prober};
use protocols::eth::forkid::Filter;
use protocols::eth::{Chain, Head};
use secp256k1::SecretKey;

/// Unix time of a fork scheduled a year from now: chain A's next fork.
fn future() -> u64 {
    now() + 365 * 86_400
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

const NET_A: u64 = 4_242;
const NET_B: u64 = 1_337;

/// A genesis with every block fork at 0, Shanghai at 0, Cancun at time 1000 and, when
/// given, Osaka at `osaka`; `extra` changes the genesis hash.
fn spec(name: &str, chain_id: u64, extra: &str, osaka: Option<u64>) -> Spec {
    let osaka = osaka.map_or(String::new(), |t| format!("\"osakaTime\": {t},"));
    let text = format!(
        r#"{{"config": {{"chainId": {chain_id}, "homesteadBlock": 0, "eip150Block": 0,
        "eip155Block": 0, "eip158Block": 0, "byzantiumBlock": 0, "constantinopleBlock": 0,
        "petersburgBlock": 0, "istanbulBlock": 0, "berlinBlock": 0, "londonBlock": 0,
        "mergeNetsplitBlock": 0, "terminalTotalDifficulty": 0, "shanghaiTime": 0,
        {osaka} "cancunTime": 1000}},
        "timestamp": "0x0", "extraData": "{extra}", "gasLimit": "0x1000000",
        "difficulty": "0x0", "alloc": {{}}}}"#
    );
    let genesis: alloy_genesis::Genesis = serde_json::from_str(&text).unwrap();
    Spec::from_genesis(name, &genesis)
}

/// What a test node claims in its Status: a network id, a genesis and a fork schedule,
/// which need not belong together (the liars).
struct Claim {
    network_id: u64,
    genesis: B256,
    filter: Filter,
}

impl Chain for Claim {
    fn network_id(&self) -> u64 {
        self.network_id
    }
    fn genesis_hash(&self) -> B256 {
        self.genesis
    }
    fn fork_filter(&self) -> &Filter {
        &self.filter
    }
    fn head(&self) -> Head {
        Head {
            number: 0,
            hash: self.genesis,
            timestamp: now(),
            total_difficulty: U256::ZERO,
        }
    }
    fn earliest(&self) -> u64 {
        0
    }
    fn header_by_number(&self, _: u64) -> Option<protocols::eth::messages::Raw> {
        None
    }
    fn canonical_number(&self, _: &B256) -> Option<u64> {
        None
    }
    fn body_by_hash(&self, _: &B256) -> Option<protocols::eth::messages::Raw> {
        None
    }
}

fn claim(spec: &Spec) -> Claim {
    Claim {
        network_id: spec.network_id,
        genesis: spec.genesis_hash,
        filter: spec.fork_filter(),
    }
}

/// A discovery service for `key` advertising `tcp`, joined to `boot`.
async fn discovery(key: SecretKey, tcp: u16, boot: &discovery::Handle) -> discovery::Handle {
    let config = discovery::Config {
        tcp_port: tcp,
        bootnodes: vec![boot.local_node()],
        ..discovery::Config::default()
    };
    discovery::bind("127.0.0.1:0".parse().unwrap(), key, config, None)
        .await
        .unwrap()
}

/// A node of ours: an RLPx server running eth with `versions` over `chain`, sending
/// `client_id`, and findable through discovery.
struct TestNode {
    server: devp2p::server::Handle,
    disc: discovery::Handle,
}

async fn eth_node(
    boot: &discovery::Handle,
    client_id: &str,
    versions: &[u32],
    chain: Claim,
) -> TestNode {
    let key = SecretKey::new(&mut rand::rng());
    let eth_config = protocols::eth::Config {
        versions: versions.to_vec(),
        ..protocols::eth::Config::default()
    };
    let (proto, _handle, _events) = protocols::eth::Eth::new(Arc::new(chain), eth_config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut config = devp2p::server::Config::new(key);
    config.rlpx.client_id = client_id.into();
    let server = devp2p::server::start(config, listener, None, vec![Arc::new(proto)]).unwrap();
    let disc = discovery(key, server.listen_addr().port(), boot).await;
    TestNode { server, disc }
}

/// A TCP listener that closes every connection at once (`slow` false) or holds it open
/// without a byte (`slow` true, a slowloris), findable through discovery. Returns the
/// discovery handle and the task.
async fn hostile_tcp(
    boot: &discovery::Handle,
    slow: bool,
) -> (discovery::Handle, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            if slow {
                held.push(s);
            }
        }
    });
    let disc = discovery(SecretKey::new(&mut rand::rng()), port, boot).await;
    (disc, task)
}

fn settings(boot: &discovery::Handle, timeout: Duration) -> driver::Settings {
    let mut s = driver::Settings::new(SecretKey::new(&mut rand::rng()));
    s.bind = "127.0.0.1:0".parse().unwrap();
    s.discovery.bootnodes = vec![boot.local_node()];
    s.timeout = timeout;
    s.progress_interval = Duration::ZERO;
    s
}

fn prober(spec: &Spec) -> Prober {
    let mut p = Prober::new(
        SecretKey::new(&mut rand::rng()),
        "crawler-test".into(),
        spec,
    );
    p.handshake_timeout = Duration::from_secs(1);
    p.status_timeout = Duration::from_secs(2);
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_census_counts_exactly_the_nodes_started() {
    let a = spec("chain-a", NET_A, "0x0a", Some(future()));
    let a_old = spec("chain-a", NET_A, "0x0a", None);
    let b = spec("chain-b", NET_B, "0x0b", None);
    assert_eq!(a.genesis_hash, a_old.genesis_hash);
    assert_ne!(a.genesis_hash, b.genesis_hash);
    let boot = discovery::bind(
        "127.0.0.1:0".parse().unwrap(),
        SecretKey::new(&mut rand::rng()),
        discovery::Config::default(),
        None,
    )
    .await
    .unwrap();

    let mut nodes = Vec::new();
    for _ in 0..3 {
        let id = "Geth/v1.14.0-stable/linux-amd64/go1.22";
        nodes.push(eth_node(&boot, id, &[68, 69], claim(&a)).await);
    }
    for _ in 0..2 {
        let id = "Nethermind/v1.25.4+20b10b35/linux-x64/dotnet8";
        nodes.push(eth_node(&boot, id, &[68], claim(&a_old)).await);
    }
    for _ in 0..2 {
        nodes.push(
            eth_node(
                &boot,
                "reth/v1.0.0/x86_64-unknown-linux-gnu",
                &[69],
                claim(&b),
            )
            .await,
        );
    }
    // Liar 1: chain A's network id with chain B's genesis.
    let liar = Claim {
        network_id: NET_A,
        ..claim(&b)
    };
    nodes.push(eth_node(&boot, "Liar/v0.1", &[68], liar).await);
    // Liar 2: chain A's network and genesis, with a fork at time 500 A never had.
    let forged = Claim {
        filter: Filter::new(a.genesis_hash, 0, [], [500, 1000, future()]),
        ..claim(&a)
    };
    nodes.push(eth_node(&boot, "Besu/v24.1.0/linux-x86_64/openjdk", &[68], forged).await);
    let (refuser, refuse_task) = hostile_tcp(&boot, false).await;
    let (slowloris, slow_task) = hostile_tcp(&boot, true).await;
    // Let every node bond with the bootnode (their first refresh).
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let mut geth_events = nodes[0].server.subscribe();
    let dir = std::env::temp_dir().join(format!("devp2p-crawl-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("nodes.json");
    let mut s = settings(&boot, Duration::from_secs(8));
    s.save = Some(out.clone());
    let outcome = driver::crawl(
        s,
        prober(&a),
        nodeset::NodeSet::new(),
        std::future::pending(),
    )
    .await
    .unwrap();
    nodeset::save(&out, &outcome.nodes).unwrap();

    let set = nodeset::load(&out).unwrap();
    assert_eq!(set, outcome.nodes, "the file reads back");
    let c = census::census(&set, &a, now());
    let probes: Vec<String> = set
        .values()
        .map(|e| {
            format!(
                "{:?} {:?} {:?}",
                e.hello.as_ref().map(|h| &h.client_id),
                e.status.as_ref().map(|s| s.network_id),
                e.dial_error
            )
        })
        .collect();
    let dump = format!("{}\n{probes:#?}", serde_json::to_string(&c).unwrap());
    assert_eq!(c.nodes, 12, "9 eth nodes, 2 hostile, the bootnode: {dump}");
    assert_eq!((c.with_hello, c.with_status), (9, 9), "{dump}");
    for (name, n) in [
        ("Geth", 3),
        ("Nethermind", 2),
        ("reth", 2),
        ("Liar", 1),
        ("Besu", 1),
    ] {
        assert_eq!(lookup(&c.clients, name), n, "{name}: {dump}");
    }
    assert_eq!(
        lookup(&c.client_versions, "Nethermind v1.25.4"),
        2,
        "{dump}"
    );
    assert_eq!(lookup(&c.eth_versions, "eth/68"), 7, "{dump}");
    assert_eq!(lookup(&c.eth_versions, "eth/69"), 5, "{dump}");
    assert_eq!(lookup(&c.networks, &NET_A.to_string()), 7, "{dump}");
    assert_eq!(lookup(&c.networks, &NET_B.to_string()), 2, "{dump}");
    let r = &c.readiness.counts;
    for (class, n) in [
        ("ready", 3),
        ("not ready", 2),
        ("other chain", 3),
        ("incompatible", 1),
        ("no fork id", 3),
    ] {
        assert_eq!(lookup(r, class), n, "{class}: {dump}");
    }
    assert_eq!(c.readiness.next_fork, Some(a.fork_filter().time_forks()[1]));
    assert_eq!(lookup(&c.ports, "none"), 1, "the bootnode: {dump}");
    assert_eq!(c.ports.iter().map(|r| r.count).sum::<usize>(), 12);
    assert!(c.seen.last().is_some_and(|s| s.found == 12), "{dump}");

    // The hostile nodes are in the set, with why their probe failed.
    for d in [&refuser, &slowloris] {
        let e = &set[&d.local_node().id];
        assert!(e.hello.is_none() && e.dial_error.is_some(), "{e:?}");
        assert!(e.score >= 1);
    }
    // The probe left politely.
    let mut quit = false;
    while let Ok(ev) = geth_events.try_recv() {
        if let devp2p::server::PeerEvent::Dropped { reason, .. } = ev {
            quit |= reason == rlpx::CloseReason::Remote(rlpx::DisconnectReason::ClientQuitting);
        }
    }
    assert!(quit, "the probe disconnects with ClientQuitting");

    // The census command writes the report and the plots.
    let report = dir.join("census");
    let written = devp2p::cmd::census::run(devp2p::cmd::census::Args {
        nodes: out.clone(),
        out: report.clone(),
        format: devp2p::cmd::census::Format::Md,
        chain: "mainnet".into(),
        at: None,
    })
    .unwrap();
    assert_eq!(written.nodes, 12);
    for f in [
        "census.md",
        "clients.svg",
        "fork-readiness.svg",
        "nodes-over-time.svg",
    ] {
        assert!(report.join(f).is_file(), "{f}");
    }
    if std::env::var_os("CRAWL_DOCS").is_some() {
        // `CRAWL_DOCS=1 cargo test --test crawl`: regenerate docs/census-sample/ from this
        // network, judged against chain A.
        let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/census-sample");
        std::fs::create_dir_all(&docs).unwrap();
        for (stem, title, rows) in c.tables() {
            let svg = devp2p::crawl::plot::bars(title, rows).unwrap();
            std::fs::write(docs.join(format!("{stem}.svg")), svg).unwrap();
        }
        let svg = devp2p::crawl::plot::over_time(&c.seen).unwrap();
        std::fs::write(docs.join("nodes-over-time.svg"), svg).unwrap();
        std::fs::write(docs.join("census.md"), c.to_markdown()).unwrap();
    }

    // Resuming: the set is revalidated, nothing is lost, scores grow.
    let mut s = settings(&boot, Duration::from_secs(3));
    s.crawl.revalidate = Duration::ZERO;
    let again = driver::crawl(s, prober(&a), set.clone(), std::future::pending())
        .await
        .unwrap();
    for (id, e) in &set {
        let now = again.nodes.get(id).unwrap_or_else(|| panic!("{id} lost"));
        assert!(now.score >= e.score, "{id}");
    }
    assert!(again.progress.updated >= 10, "{:?}", again.progress);

    refuse_task.abort();
    slow_task.abort();
    for n in nodes {
        n.server.shutdown().await;
        n.disc.shutdown().await;
    }
    boot.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// With discovery v4 off, a DNS node list (EIP-1459, served on loopback) alone feeds the
/// crawl: the node it names is checked over discv4 and probed over RLPx.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dns_list_alone_feeds_the_crawl() {
    let a = spec("chain-a", NET_A, "0x0a", Some(future()));
    // The listed node's discovery joins a bootnode the crawler is not told about.
    let boot = discovery::bind(
        "127.0.0.1:0".parse().unwrap(),
        SecretKey::new(&mut rand::rng()),
        discovery::Config::default(),
        None,
    )
    .await
    .unwrap();
    let node = eth_node(&boot, "Geth/v1.15.0/linux", &[69], claim(&a)).await;
    let record = node.disc.local_enr().await.unwrap();
    let signer = SecretKey::new(&mut rand::rng());
    let mut tree = discovery::dns::publish::Tree::build(&[record], &[], 1);
    tree.sign(&signer);
    let dns = dns_server::Dns::start().await;
    dns.publish(&tree, "nodes.test").await;
    let url = discovery::dns::TreeUrl::new(&signer, "nodes.test").unwrap();

    let mut s = settings(&boot, Duration::from_secs(4));
    s.v4 = false;
    s.dns = vec![url];
    s.dns_resolver = Some(dns.addr);
    let out = driver::crawl(
        s,
        prober(&a),
        nodeset::NodeSet::new(),
        std::future::pending(),
    )
    .await
    .unwrap();
    let ids: Vec<_> = out.nodes.keys().collect();
    assert_eq!(
        ids,
        vec![&node.disc.local_node().id],
        "only the listed node"
    );
    let e = &out.nodes[&node.disc.local_node().id];
    let hello = e.hello.as_ref().expect("probed");
    assert_eq!(hello.client_id, "Geth/v1.15.0/linux");
    assert_eq!(e.status.as_ref().map(|s| s.version), Some(69));
    node.server.shutdown().await;
    node.disc.shutdown().await;
    boot.shutdown().await;
}
