//! Transaction propagation between in-process nodes at block 400 of the ethtest chain:
//! the transactions of blocks 401..600, submitted to one end of a line of six nodes, reach
//! every node's pool (in full to sqrt(n) peers, announced to the others and fetched); the
//! pools are emptied when the blocks including them are imported.

use devp2p::chain::Store;
use devp2p::cmd::import::BlockReader;
use devp2p::propagate::{self, Propagator};
use devp2p::protocols::eth::{self, Chain};
use std::io::BufReader;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod support;

use support::{EthNode, chain_rlp, ethtest_store, tempdir};

fn blocks() -> Vec<devp2p::chain::Block> {
    let file = std::fs::File::open(chain_rlp()).unwrap();
    let mut reader = BlockReader::new(BufReader::new(file));
    let mut blocks = Vec::new();
    while let Some(b) = reader.next_block().unwrap() {
        blocks.push(b);
    }
    blocks
}

struct Node {
    server: devp2p::server::Handle,
    eth: eth::Handle,
    store: Arc<Store>,
    propagator: Propagator,
    task: tokio::task::JoinHandle<()>,
    net: EthNode,
    dir: PathBuf,
}

async fn node(name: &str, blocks: &[devp2p::chain::Block], versions: Vec<u32>) -> Node {
    let dir = tempdir(&format!("txpool-{name}"));
    let store = ethtest_store(&dir);
    store.insert_blocks(blocks).unwrap();
    let chain_id = store.spec().config.chain_id;
    let chain: Arc<dyn Chain> = Arc::new(devp2p::chain::eth::EthChain::new(store.clone()));
    let mut config = eth::Config {
        versions,
        ..eth::Config::default()
    };
    config.pool.chain_id = Some(chain_id);
    let mut net = EthNode::start(chain, config).await;
    let (_, idle) = tokio::sync::mpsc::channel(1);
    let events = std::mem::replace(&mut net.events, idle);
    let (propagator, task) = Propagator::spawn(net.eth.clone(), store.clone(), events);
    Node {
        server: net.server.clone(),
        eth: net.eth.clone(),
        store,
        propagator,
        task,
        net,
        dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_reach_every_pool_and_leave_with_their_blocks() {
    let all = blocks();
    let mut nodes = Vec::new();
    // Mixed versions: transactions travel the same way on eth/68 and eth/69 links
    // (a-b and d-e speak eth/69, the rest eth/68).
    for (i, name) in ["a", "b", "c", "d", "e", "f"].iter().enumerate() {
        let versions = if i % 3 == 2 {
            vec![eth::ETH68]
        } else {
            vec![eth::ETH68, eth::ETH69]
        };
        nodes.push(node(name, &all[..400], versions).await);
    }
    // A line, plus a chord from a to c, so that b has a choice of full and announced.
    for i in 0..5 {
        nodes[i].server.add_peer(nodes[i + 1].net.node()).await;
    }
    nodes[0].server.add_peer(nodes[2].net.node()).await;
    let want = [2usize, 2, 3, 2, 2, 1];
    tokio::time::timeout(Duration::from_secs(10), async {
        while nodes.iter().zip(want).any(|(n, k)| n.eth.peers().len() < k) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("connected");

    let txs: Vec<_> = all[400..]
        .iter()
        .flat_map(|b| b.body.transactions.iter().cloned())
        .collect();
    assert!(txs.len() >= 50, "{} transactions in 401..600", txs.len());
    let mut submitted = Vec::new();
    let mut refused = 0;
    // Blob transactions travel with their sidecars, which blocks do not carry.
    for pooled in txs.into_iter().filter_map(|t| t.try_into_pooled().ok()) {
        match nodes[0].eth.submit_transaction(pooled) {
            Ok(p) => submitted.push(p.hash),
            // The chain's transactions come from one sender: the pool holds 64 of them
            // (`pool::Config::max_per_sender`) and refuses the rest.
            Err(e) => {
                assert_eq!(e, eth::pool::Error::SenderLimit);
                refused += 1;
            }
        }
    }
    eprintln!("{} submitted, {refused} refused", submitted.len());
    assert_eq!(submitted.len(), eth::pool::Config::default().max_per_sender);
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(30), async {
        while nodes
            .iter()
            .any(|n| submitted.iter().any(|h| !n.eth.pool().contains(h)))
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        let counts: Vec<_> = nodes.iter().map(|n| n.eth.pool().stats().count).collect();
        panic!("pools: {counts:?} of {}", submitted.len())
    });
    eprintln!("every pool has them after {:?}", started.elapsed());
    for n in &nodes {
        assert_eq!(n.eth.pool().stats().count, submitted.len());
    }

    // The blocks that include them empty every pool as they propagate.
    // 50 ms: the eth/69 links fetch each announced block (two requests), which at 20
    // blocks a second stays within a peer's request budget (64 requests/s).
    let imported = propagate::replay(
        &nodes[0].propagator,
        &chain_rlp(),
        Duration::from_millis(50),
    )
    .await
    .unwrap();
    assert_eq!(imported, 200);
    tokio::time::timeout(Duration::from_secs(30), async {
        while nodes
            .iter()
            .any(|n| n.store.head().unwrap().number < 600 || n.eth.pool().stats().count > 0)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        let state: Vec<_> = nodes
            .iter()
            .map(|n| (n.store.head().unwrap().number, n.eth.pool().stats().count))
            .collect();
        panic!("(head, pool) per node: {state:?}")
    });
    for n in nodes {
        n.task.abort();
        n.server.shutdown().await;
        drop(n.propagator);
        drop(n.store);
        let _ = std::fs::remove_dir_all(&n.dir);
    }
}
