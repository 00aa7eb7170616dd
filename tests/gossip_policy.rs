//! Who may move our head by block gossip (`docs/fork-choice.md`): a stranger's forged
//! block is neither imported nor relayed on a private network, and block gossip on a public
//! network costs the sender its connection.

mod support;

use std::sync::Arc;
use std::time::Duration;

use alloy_primitives::{Bytes, U256};
use devp2p::chain::Block;
use devp2p::propagate::Gossip;
use devp2p::protocols::eth::{self, BlockId, ETH68, GetBlockHeaders};
use support::{EthNode, Propagating, chain_blocks};

fn config() -> eth::Config {
    eth::Config {
        versions: vec![ETH68],
        ..eth::Config::default()
    }
}

/// A structurally valid child of `parent`'s parent that is not the real block.
fn forged(real: &Block) -> Block {
    let mut b = real.clone();
    b.header.extra_data = Bytes::from_static(b"forged by a stranger");
    b
}

async fn until(secs: u64, what: &str, cond: impl Fn() -> bool) {
    tokio::time::timeout(Duration::from_secs(secs), async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("after {secs} s: {what}"));
}

/// Waits until `from`'s earlier messages to `to` were handled: eth handles a peer's
/// messages in order, so an answered request means the NewBlock before it was read and
/// its event queued.
async fn barrier(from: &eth::Handle, to: &eth::PeerId) {
    let req = GetBlockHeaders {
        origin: BlockId::Number(0),
        amount: 1,
        skip: 0,
        reverse: false,
    };
    from.request_headers(to, req)
        .await
        .expect("barrier answered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strangers_forged_block_is_neither_imported_nor_relayed() {
    let all = chain_blocks(401);
    // P produces; A trusts P; B trusts A; E is a stranger connected to A.
    let p = Propagating::start("gossip-p", &all[..400], config()).await;
    let a = Propagating::start("gossip-a", &all[..400], config()).await;
    let b = Propagating::start("gossip-b", &all[..400], config()).await;
    let e = EthNode::start(
        Arc::new(devp2p::chain::eth::EthChain::new(p.store.clone())),
        config(),
    )
    .await;
    a.allow(p.net.id());
    b.allow(a.net.id());
    a.server.add_peer(p.node()).await;
    a.server.add_peer(b.node()).await;
    a.server.add_peer(e.node()).await;
    until(10, "A has 3 eth peers", || a.eth.peers().len() == 3).await;
    until(10, "E sees A", || e.eth.peer(&a.net.id()).is_some()).await;

    let fake = forged(&all[400]);
    let fake_hash = fake.header.hash_slow();
    assert!(e.eth.send_new_block(&a.net.id(), &fake, U256::ZERO));
    barrier(&e.eth, &a.net.id()).await;

    // The producer's real 401, queued after the forgery: once B has it, A's propagator
    // handled the forgery first.
    p.propagator.import_local(all[400].clone()).await.unwrap();
    let real = all[400].header.hash_slow();
    until(10, "B at the real 401", || b.head() == (401, real)).await;
    assert_eq!(a.head(), (401, real));
    for n in [&a, &b] {
        assert!(n.store.header_by_hash(&fake_hash).unwrap().is_none());
        assert_eq!(n.propagator.full_blocks_received(&fake_hash), 0);
    }
    assert!(!b.eth.knows_block(&a.net.id(), &fake_hash));
    // Relaying is no offence: the stranger stays connected.
    assert!(a.eth.peer(&e.id()).is_some());

    e.server.shutdown().await;
    for n in [p, a, b] {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_gossip_on_a_public_network_disconnects_the_sender() {
    let all = chain_blocks(401);
    let a = Propagating::start_with("gossip-public", &all[..400], config(), Gossip::Refused).await;
    let e = EthNode::start(
        Arc::new(devp2p::chain::eth::EthChain::new(a.store.clone())),
        config(),
    )
    .await;
    a.server.add_peer(e.node()).await;
    until(10, "connected", || e.eth.peer(&a.net.id()).is_some()).await;
    // Even the real next block: on a public network blocks come by sync only.
    assert!(e.eth.send_new_block(&a.net.id(), &all[400], U256::ZERO));
    until(10, "E disconnected", || a.eth.peer(&e.id()).is_none()).await;
    assert_eq!(a.head().0, 400);
    e.server.shutdown().await;
    a.stop().await;
}

/// Orphans (blocks whose parent we lack) wait in a queue bounded per peer and in
/// estimated memory, however many transactions each carries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphans_are_bounded_in_memory_and_per_peer() {
    use devp2p::propagate::{MAX_QUEUED_BYTES, MAX_QUEUED_PER_PEER, block_memory};
    let all = chain_blocks(402);
    let n = Propagating::start("gossip-orphans", &all[..400], config()).await;
    let tx = all
        .iter()
        .find_map(|b| b.body.transactions.first().cloned())
        .expect("a transaction in the chain");
    let senders: Vec<_> = (0..4)
        .map(|_| {
            let key = secp256k1::SecretKey::new(&mut rand::rng());
            secp256k1::PublicKey::from_secret_key_global(&key)
        })
        .collect();
    for s in &senders {
        n.allow(*s);
    }
    // Block 402 (parent 401 missing) stuffed with 5,000 transactions: ~2 MB each in memory.
    let mut sent = 0usize;
    for (i, s) in senders.iter().enumerate() {
        for k in 0..MAX_QUEUED_PER_PEER + 4 {
            let mut b = all[401].clone();
            b.header.extra_data = Bytes::from(vec![i as u8, k as u8]);
            b.body.transactions = vec![tx.clone(); 5000];
            sent += block_memory(&b);
            n.propagator
                .on_event(eth::Event::NewBlock {
                    peer: *s,
                    block: Box::new(b),
                    td: U256::ZERO,
                    held: Default::default(),
                })
                .await;
        }
    }
    assert!(sent > 2 * MAX_QUEUED_BYTES, "the attack sent {sent} bytes");
    let queued = n.propagator.queued_bytes();
    eprintln!("orphans sent: {sent} bytes estimated; queued: {queued}");
    assert!(queued <= MAX_QUEUED_BYTES, "{queued} bytes queued");
    assert!(n.propagator.queued() > 0);
    assert!(n.propagator.queued() <= 4 * MAX_QUEUED_PER_PEER);
    n.stop().await;
}

/// With eth's own switch off (what `devp2p node` does on public presets) the handler
/// refuses block gossip before it becomes an event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_eth_handler_refuses_block_gossip_when_told_to() {
    let all = chain_blocks(401);
    let no_gossip = eth::Config {
        block_gossip: false,
        ..config()
    };
    // The propagator would accept anything from E: only the handler stands in the way.
    let a = Propagating::start("gossip-handler", &all[..400], no_gossip).await;
    let e = EthNode::start(
        Arc::new(devp2p::chain::eth::EthChain::new(a.store.clone())),
        config(),
    )
    .await;
    a.allow(e.id());
    a.server.add_peer(e.node()).await;
    until(10, "connected", || e.eth.peer(&a.net.id()).is_some()).await;
    assert!(
        e.eth
            .send_new_block_hashes(&a.net.id(), all[400].header.hash_slow(), 401)
    );
    until(10, "E disconnected", || a.eth.peer(&e.id()).is_none()).await;
    assert_eq!(a.propagator.fetching(), 0);
    assert_eq!(a.head().0, 400);
    e.server.shutdown().await;
    a.stop().await;
}
