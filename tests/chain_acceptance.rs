//! The store's acceptance rules (`docs/fork-choice.md`): reorg depth, side-chain bytes and
//! pruning, far-future timestamps and required blocks, on forged variants of the ethtest chain.

mod support;

use alloy_primitives::{B256, Bytes};
use devp2p::chain::store::{self, Limits, MAX_FUTURE_SECS, MAX_REORG_DEPTH};
use devp2p::chain::validate::Error;
use devp2p::chain::{Block, Store, presets};

/// A clock far past the ethtest chain's timestamps (which start at 0).
const NOW: u64 = 1_700_000_000;

/// `block` with other extra data (so another hash) on top of `parent`: still valid.
fn forge(block: &Block, parent: B256, tag: u32) -> Block {
    let mut b = block.clone();
    b.header.parent_hash = parent;
    b.header.extra_data = Bytes::from(tag.to_be_bytes().to_vec());
    b
}

/// A forged chain replacing `original` from its first block on, off `parent`.
fn forge_chain(original: &[Block], mut parent: B256, tag: u32) -> Vec<Block> {
    original
        .iter()
        .map(|b| {
            let f = forge(b, parent, tag);
            parent = f.header.hash_slow();
            f
        })
        .collect()
}

fn refused(store: &Store, blocks: &[Block]) -> Error {
    match store.insert_blocks_at(blocks, NOW) {
        Err(store::Error::BadBlock { reason, .. }) => reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn dir_size(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

#[test]
fn side_blocks_off_genesis_are_refused_and_store_stays_bounded() {
    let dir = support::tempdir("accept-genesis");
    let store = support::ethtest_store(&dir);
    let chain = support::chain_blocks(600);
    store.insert_blocks_at(&chain, NOW).unwrap();
    let genesis = store.genesis_hash();
    let before = dir_size(&dir);
    for tag in 0..1000u32 {
        let side = forge(&chain[0], genesis, tag);
        let reason = refused(&store, std::slice::from_ref(&side));
        assert!(
            matches!(reason, Error::ReorgTooDeep { head: 600, .. }),
            "{reason}"
        );
        assert!(!reason.is_permanent());
        assert!(
            store
                .header_by_hash(&side.header.hash_slow())
                .unwrap()
                .is_none()
        );
    }
    assert_eq!(store.side_bytes().unwrap(), 0);
    assert_eq!(store.head().unwrap().number, 600);
    // redb grows in pages; 1,000 refused blocks must not add their own bytes (each a few
    // hundred): allow one allocation step for the write transactions themselves.
    let after = dir_size(&dir);
    assert!(
        after <= before + (1 << 20),
        "store grew from {before} to {after} bytes"
    );
}

#[test]
fn a_fork_within_the_window_is_kept_then_pruned() {
    let dir = support::tempdir("accept-prune");
    let store = support::ethtest_store(&dir);
    let chain = support::chain_blocks(600);
    store.insert_blocks_at(&chain[..450], NOW).unwrap();
    // Three side blocks off 440 (blocks 441..443 forged): within the 128-block window.
    let fork_parent = chain[439].header.hash_slow();
    let side = forge_chain(&chain[440..443], fork_parent, 7);
    let inserted = store.insert_blocks_at(&side, NOW).unwrap();
    assert_eq!(inserted.imported, 3);
    assert_eq!(
        inserted.head_number, 450,
        "a shorter fork does not move the head"
    );
    let side_bytes = store.side_bytes().unwrap();
    assert!(side_bytes > 0);
    for b in &side {
        assert!(
            store
                .header_by_hash(&b.header.hash_slow())
                .unwrap()
                .is_some()
        );
    }
    // The head moves on past 441 + 128: the side blocks can never be canonical; deleted.
    store.insert_blocks_at(&chain[450..], NOW).unwrap();
    assert_eq!(store.head().unwrap().number, 600);
    const { assert!(600 - MAX_REORG_DEPTH > 443) };
    for b in &side {
        assert!(
            store
                .header_by_hash(&b.header.hash_slow())
                .unwrap()
                .is_none()
        );
    }
    assert_eq!(store.side_bytes().unwrap(), 0);
    // A child of a pruned side block is refused (its chain forks below the window).
    let orphan = forge(&chain[443], side[2].header.hash_slow(), 7);
    assert!(matches!(
        refused(&store, std::slice::from_ref(&orphan)),
        Error::UnknownParent(_)
    ));
}

#[test]
fn a_longer_fork_reorgs_and_the_old_branch_becomes_side() {
    let dir = support::tempdir("accept-reorg");
    let store = support::ethtest_store(&dir);
    let chain = support::chain_blocks(600);
    store.insert_blocks_at(&chain[..500], NOW).unwrap();
    let fork = forge_chain(&chain[480..505], chain[479].header.hash_slow(), 9);
    let inserted = store.insert_blocks_at(&fork, NOW).unwrap();
    assert_eq!(inserted.head_number, 505);
    assert_eq!(inserted.head_hash, fork[24].header.hash_slow());
    assert_eq!(
        store.canonical_hash(481).unwrap(),
        Some(fork[0].header.hash_slow())
    );
    // Blocks 481..=500 of the old branch are side blocks now, with their bytes counted.
    let old_bytes: usize = chain[480..500]
        .iter()
        .map(|b| alloy_rlp::Encodable::length(&b.header) + alloy_rlp::Encodable::length(&b.body))
        .sum();
    assert_eq!(store.side_bytes().unwrap(), old_bytes as u64);
    // And back: the original chain overtakes again; the forged branch becomes side.
    store.insert_blocks_at(&chain[500..510], NOW).unwrap();
    assert_eq!(store.head().unwrap().number, 510);
    assert_eq!(
        store.canonical_hash(481).unwrap(),
        Some(chain[480].header.hash_slow())
    );
    let fork_bytes: usize = fork
        .iter()
        .map(|b| alloy_rlp::Encodable::length(&b.header) + alloy_rlp::Encodable::length(&b.body))
        .sum();
    assert_eq!(store.side_bytes().unwrap(), fork_bytes as u64);
}

#[test]
fn a_reorg_deeper_than_the_window_is_refused() {
    let dir = support::tempdir("accept-deep");
    let store = support::ethtest_store(&dir);
    let chain = support::chain_blocks(600);
    store.insert_blocks_at(&chain[..400], NOW).unwrap();
    // A longer forged chain forking at 200: 200 blocks below the head of 400.
    let fork = forge_chain(&chain[200..450], chain[199].header.hash_slow(), 3);
    let reason = refused(&store, &fork);
    assert!(
        matches!(reason, Error::ReorgTooDeep { head: 400, .. }),
        "{reason}"
    );
    assert_eq!(
        store.head().unwrap().hash_slow(),
        chain[399].header.hash_slow()
    );
    assert_eq!(store.side_bytes().unwrap(), 0);
    // The same fork at 300 (100 below the head) is within the window.
    let fork = forge_chain(&chain[300..450], chain[299].header.hash_slow(), 3);
    assert_eq!(store.insert_blocks_at(&fork, NOW).unwrap().head_number, 450);
}

#[test]
fn the_side_chain_budget_is_enforced() {
    let dir = support::tempdir("accept-budget");
    let spec = presets::ethtest().unwrap();
    let limits = Limits {
        side_bytes: 4096,
        ..Limits::default()
    };
    let store = Store::open_with(&dir, spec, limits).unwrap();
    let chain = support::chain_blocks(100);
    store.insert_blocks_at(&chain, NOW).unwrap();
    let parent = chain[98].header.hash_slow();
    let mut stored = 0u32;
    let reason = loop {
        let side = forge(&chain[99], parent, stored);
        match store.insert_blocks_at(std::slice::from_ref(&side), NOW) {
            Ok(_) => stored += 1,
            Err(store::Error::BadBlock { reason, .. }) => break reason,
            Err(e) => panic!("{e}"),
        }
        assert!(stored < 1000, "the budget never filled");
    };
    assert_eq!(reason, Error::SideChainFull);
    assert!(!reason.is_permanent());
    assert!(stored > 0);
    assert!(store.side_bytes().unwrap() <= 4096);
}

#[test]
fn far_future_timestamps_are_refused_until_their_time() {
    let dir = support::tempdir("accept-future");
    let store = support::ethtest_store(&dir);
    let chain = support::chain_blocks(10);
    store.insert_blocks_at(&chain[..9], NOW).unwrap();
    let t = chain[9].header.timestamp;
    assert!(t > MAX_FUTURE_SECS);
    let now = t - MAX_FUTURE_SECS - 1;
    let reason = refused_at(&store, &chain[9..], now);
    assert!(matches!(reason, Error::FutureTimestamp { .. }), "{reason}");
    // Not remembered as bad: once our clock catches up the same block is accepted.
    assert!(store.bad_block(&chain[9].header.hash_slow()).is_none());
    store
        .insert_blocks_at(&chain[9..], t - MAX_FUTURE_SECS)
        .unwrap();
    assert_eq!(store.head().unwrap().number, 10);
}

fn refused_at(store: &Store, blocks: &[Block], now: u64) -> Error {
    match store.insert_blocks_at(blocks, now) {
        Err(store::Error::BadBlock { reason, .. }) => reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn required_blocks_pin_the_chain() {
    let chain = support::chain_blocks(20);
    let mut spec = presets::ethtest().unwrap();
    spec.required_blocks.insert(10, chain[9].header.hash_slow());
    let dir = support::tempdir("accept-required");
    let store = Store::open(&dir, spec).unwrap();
    let forged = forge_chain(&chain[5..12], chain[4].header.hash_slow(), 1);
    store.insert_blocks_at(&chain[..5], NOW).unwrap();
    let reason = refused(&store, &forged);
    assert_eq!(
        reason,
        Error::RequiredBlock {
            number: 10,
            expected: chain[9].header.hash_slow()
        }
    );
    assert!(reason.is_permanent());
    // Blocks before the contradiction were stored (as the head: nothing else was there),
    // but the chain stops short of the required height.
    assert_eq!(store.head().unwrap().number, 9);
    // The real chain passes, reorganising the forged blocks away.
    let inserted = store.insert_blocks_at(&chain[5..], NOW).unwrap();
    assert_eq!(inserted.head_number, 20);
    assert_eq!(
        store.canonical_hash(10).unwrap(),
        Some(chain[9].header.hash_slow())
    );
}
