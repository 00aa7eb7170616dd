//! Transaction propagation between in-process nodes at block 400 of the ethtest chain:
//! the transactions of blocks 401..600, submitted to one end of a line of six nodes, reach
//! every node's pool (in full to sqrt(n) peers, announced to the others and fetched); the
//! pools are emptied when the blocks including them are imported.

use devp2p::protocols::eth;
use std::time::{Duration, Instant};

mod support;

use support::{Propagating, chain_blocks, chain_rlp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_reach_every_pool_and_leave_with_their_blocks() {
    let all = chain_blocks(u64::MAX);
    let mut nodes = Vec::new();
    // Mixed versions: transactions travel the same way on eth/68 and eth/69 links
    // (a-b and d-e speak eth/69, the rest eth/68).
    for (i, name) in ["a", "b", "c", "d", "e", "f"].iter().enumerate() {
        let versions = if i % 3 == 2 {
            vec![eth::ETH68]
        } else {
            vec![eth::ETH68, eth::ETH69]
        };
        let config = eth::Config {
            versions,
            ..eth::Config::default()
        };
        nodes.push(Propagating::start(&format!("tx-{name}"), &all[..400], config).await);
    }
    // A line, plus a chord from a to c, so that b has a choice of full and announced.
    for i in 0..5 {
        nodes[i].server.add_peer(nodes[i + 1].node()).await;
    }
    nodes[0].server.add_peer(nodes[2].node()).await;
    support::allow_all(&nodes.iter().collect::<Vec<_>>());
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
            // The chain's transactions come from one sender; leaving the blob ones out
            // breaks its nonce run, and past that the pool holds at most
            // `pool::Config::max_per_sender` of them.
            Err(e) => {
                assert_eq!(e, eth::pool::Error::SenderLimit);
                refused += 1;
            }
        }
    }
    eprintln!("{} submitted, {refused} refused", submitted.len());
    assert!(submitted.len() >= eth::pool::Config::default().max_per_sender);
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
    let imported = devp2p::cmd::replay::replay(
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
        n.stop().await;
    }
}
