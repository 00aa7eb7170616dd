//! Block propagation between in-process eth/68 nodes at block 400 of the ethtest chain:
//! a line of six where the first replays blocks 401..600 and every node reaches the head
//! through NewBlock relays, none receiving a full block from both of its neighbours; a
//! star where announced blocks are fetched; and the queue of blocks ahead of their parent.

use devp2p::protocols::eth::{self, ETH68};
use std::sync::Arc;
use std::time::{Duration, Instant};

const HEAD: &str = "0x44e3809c9a3cda717f00aea3a9da336d149612c8d5657fbc0028176ef8d94d2a";

mod support;

use support::{EthNode, Propagating, allow_all, chain_blocks, chain_rlp as chain_file};

async fn node(name: &str, blocks: &[devp2p::chain::Block]) -> Propagating {
    let config = eth::Config {
        versions: vec![ETH68],
        ..eth::Config::default()
    };
    Propagating::start(name, blocks, config).await
}

/// A peer id whose block gossip `n` takes (a node of its own, not connected to `n`: its
/// gossip is handed to the propagator directly).
async fn allowed_sender(n: &Propagating) -> eth::PeerId {
    let sender = EthNode::start(
        Arc::new(devp2p::chain::eth::EthChain::new(n.store.clone())),
        eth::Config::default(),
    )
    .await
    .id();
    n.allow(sender);
    sender
}

/// The first node replays blocks 401..600, 20 ms apart; waits (30 s at most) until every
/// node is at 600.
async fn replay_until_all_at_600(nodes: &[Propagating]) {
    let imported = devp2p::cmd::replay::replay(
        &nodes[0].propagator,
        &chain_file(),
        Duration::from_millis(20),
    )
    .await
    .unwrap();
    assert_eq!(imported, 200);
    tokio::time::timeout(Duration::from_secs(30), async {
        while nodes.iter().any(|n| n.head().0 < 600) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        let heads: Vec<_> = nodes.iter().map(|n| n.head().0).collect();
        panic!("not all at 600: {heads:?}")
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_propagate_along_a_line() {
    let blocks = chain_blocks(400);
    assert_eq!(blocks.len(), 400);
    let mut nodes = Vec::new();
    for name in ["a", "b", "c", "d", "e", "f"] {
        nodes.push(node(name, &blocks).await);
    }
    for i in 0..5 {
        nodes[i].server.add_peer(nodes[i + 1].node()).await;
    }
    allow_all(&nodes.iter().collect::<Vec<_>>());
    let neighbours = [1usize, 2, 2, 2, 2, 1];
    tokio::time::timeout(Duration::from_secs(10), async {
        while nodes
            .iter()
            .zip(neighbours)
            .any(|(n, k)| n.eth.peers().len() < k)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("line connected");

    let started = Instant::now();
    replay_until_all_at_600(&nodes).await;
    eprintln!("propagated 200 blocks in {:?}", started.elapsed());

    let all = chain_blocks(600);
    for (i, n) in nodes.iter().enumerate() {
        let head = n.store.head().unwrap();
        assert_eq!(head.number, 600);
        assert_eq!(head.hash_slow().to_string(), HEAD);
        let limit = (neighbours[i] as f64).sqrt().ceil() as u32;
        let mut full = 0;
        for b in &all[400..] {
            let got = n.propagator.full_blocks_received(&b.header.hash_slow());
            // At most sqrt(neighbours), and never from both sides of the line: the sender
            // is not echoed to and the other side already knows the block.
            assert!(
                got <= limit && got <= 1,
                "node {i} block {}: {got}",
                b.header.number
            );
            full += got;
        }
        if i > 0 {
            // Each block reached every other node as a full block (one candidate: sqrt(1)).
            assert_eq!(full, 200, "node {i} full blocks");
        } else {
            assert_eq!(full, 0);
        }
    }
    for n in nodes {
        n.stop().await;
    }
}

/// A star: A with four leaves. Each block goes in full to ceil(sqrt(4)) = 2 of them and
/// as a hash to the other two, which fetch it from A.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announced_blocks_are_fetched() {
    let blocks = chain_blocks(400);
    let mut nodes = Vec::new();
    for name in ["s-a", "s-b", "s-c", "s-d", "s-e"] {
        nodes.push(node(name, &blocks).await);
    }
    for i in 1..5 {
        nodes[0].server.add_peer(nodes[i].node()).await;
    }
    allow_all(&nodes.iter().collect::<Vec<_>>());
    tokio::time::timeout(Duration::from_secs(10), async {
        while nodes[0].eth.peers().len() < 4 || nodes[1..].iter().any(|n| n.eth.peers().is_empty())
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("star connected");
    replay_until_all_at_600(&nodes).await;
    let all = chain_blocks(600);
    for b in &all[400..] {
        let hash = b.header.hash_slow();
        let full: u32 = nodes[1..]
            .iter()
            .map(|n| n.propagator.full_blocks_received(&hash))
            .sum();
        assert_eq!(
            full, 2,
            "block {} sent in full to {full} leaves",
            b.header.number
        );
    }
    for n in &nodes {
        assert_eq!(n.store.head().unwrap().hash_slow().to_string(), HEAD);
    }
    for n in nodes {
        n.stop().await;
    }
}

/// A NewBlock whose parent we lack waits in the queue (bounded, near blocks only) and is
/// imported when the parent arrives; one far ahead or behind is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_ahead_wait_for_their_parent() {
    let all = chain_blocks(600);
    let n = node("queue", &all[..400]).await;
    let sender = allowed_sender(&n).await;
    let new_block = |i: usize| eth::Event::NewBlock {
        peer: sender,
        block: Box::new(all[i].clone()),
        td: Default::default(),
        held: Default::default(),
    };
    // Blocks 405 and 403 arrive before 401, 402 and 404; 500 is too far ahead and 300
    // is behind.
    for i in [404, 402, 499, 299] {
        n.propagator.on_event(new_block(i)).await;
    }
    assert_eq!(n.propagator.queued(), 2);
    assert_eq!(n.store.head().unwrap().number, 400);
    for i in [400, 401] {
        n.propagator.import_local(all[i].clone()).await.unwrap();
    }
    // 403 came out of the queue with its parent 402; 405 still waits for 404.
    assert_eq!(n.store.head().unwrap().number, 403);
    assert_eq!(n.propagator.queued(), 1);
    n.propagator.on_event(new_block(403)).await;
    assert_eq!(n.store.head().unwrap().number, 405);
    assert_eq!(n.propagator.queued(), 0);
    n.stop().await;
}

/// A block waiting for its parent follows it when the parent is stored by anything else
/// (sync imports through the same importer): propagation subscribes to accepted blocks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_blocks_follow_a_parent_stored_by_sync() {
    let all = chain_blocks(402);
    let n = node("by-sync", &all[..400]).await;
    let sender = allowed_sender(&n).await;
    let mut accepted = n.importer.subscribe();
    n.propagator
        .on_event(eth::Event::NewBlock {
            peer: sender,
            block: Box::new(all[401].clone()),
            td: Default::default(),
            held: Default::default(),
        })
        .await;
    assert_eq!(n.propagator.queued(), 1);
    // Block 401 arrives by sync.
    let r = n.importer.import(vec![all[400].clone()], None).await;
    assert_eq!(r.result.unwrap().head_number, 401);
    tokio::time::timeout(Duration::from_secs(10), async {
        while accepted.recv().await.unwrap().block.header.number != 402 {}
    })
    .await
    .expect("the queued block 402 is imported after its parent");
    assert_eq!(n.store.head().unwrap().number, 402);
    assert_eq!(n.propagator.queued(), 0);
    n.stop().await;
}

/// An announced block that its first announcer cannot deliver is fetched from the next
/// peer that announced it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_fetch_tries_the_next_announcer() {
    let all = chain_blocks(401);
    let a = node("retry-a", &all[..400]).await;
    // B lacks block 401 (it answers with nothing); C has it.
    let b = node("retry-b", &all[..400]).await;
    let c = node("retry-c", &all).await;
    a.server.add_peer(b.node()).await;
    a.server.add_peer(c.node()).await;
    a.allow(b.net.id());
    a.allow(c.net.id());
    tokio::time::timeout(Duration::from_secs(10), async {
        while a.eth.peers().len() < 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("connected");
    let hash = all[400].header.hash_slow();
    // Both announcements arrive before B's (empty) answer can: C's waits as the
    // alternative.
    for peer in [b.net.id(), c.net.id()] {
        a.propagator
            .on_event(eth::Event::NewBlockHashes {
                peer,
                hashes: vec![(hash, 401)],
            })
            .await;
    }
    tokio::time::timeout(Duration::from_secs(10), async {
        while a.store.head().unwrap().number < 401 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("401 fetched from C after B had nothing");
    assert_eq!(a.head().1, hash);
    for n in [a, b, c] {
        n.stop().await;
    }
}

/// A peer whose announced block does not connect to our chain within the fetch window
/// (a fork below our head) costs one fetch, not a loop of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unconnected_announcement_is_fetched_once() {
    let all = chain_blocks(400);
    let a = node("fork-a", &all).await;
    // B's chain leaves ours after block 396: 397'..402'.
    let b = node("fork-b", &all[..396]).await;
    let spec = devp2p::chain::presets::ethtest().unwrap();
    let params = devp2p::cmd::gen_chain::Params {
        blocks: 6,
        txs_per_block: 1,
        senders: 1,
        seed: 7,
    };
    let mut generator =
        devp2p::cmd::gen_chain::Generator::new(spec, all[395].header.clone(), params);
    let fork: Vec<_> = (0..6).map(|_| generator.next_block()).collect();
    b.store.insert_blocks(&fork).unwrap();
    assert_eq!(b.head().0, 402);
    a.server.add_peer(b.node()).await;
    a.allow(b.net.id());
    tokio::time::timeout(Duration::from_secs(10), async {
        while a.eth.peers().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("connected");
    let tip = fork[5].header.hash_slow();
    a.propagator
        .on_event(eth::Event::NewBlockHashes {
            peer: b.net.id(),
            hashes: vec![(tip, 402)],
        })
        .await;
    // The fetch gets 401' and 402', whose parents we lack: it gives up, once.
    tokio::time::timeout(Duration::from_secs(10), async {
        while a.propagator.fetching() > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the fetch ended");
    assert_eq!(a.head().0, 400);
    assert_eq!(
        a.propagator.queued(),
        2,
        "401' and 402' wait for their parents"
    );
    assert_eq!(a.eth.peers().len(), 1, "an honest fork is no offence");
    for n in [a, b] {
        n.stop().await;
    }
}
