//! `gen-chain`: a generated chain imports into a fresh store (so it passes our structural
//! validation), the output is a function of the seed, and `--from` continues a chain file.

use std::path::PathBuf;

use alloy_consensus::Transaction;
use devp2p::chain::{Store, presets};
use devp2p::cmd::gen_chain::{self, Params};
use devp2p::cmd::import;
use devp2p::protocols::eth::pool;

const CHAIN_RLP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/ethtest/chain.rlp");

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gen-chain-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn generated_chain_imports_and_is_deterministic() {
    let dir = tempdir("import");
    let spec = presets::ethtest().unwrap();
    let params = Params {
        blocks: 2000,
        txs_per_block: 12,
        ..Params::default()
    };
    let file = dir.join("chain.rlp");
    let made = gen_chain::generate_file(&spec, params, None, &file).unwrap();
    assert_eq!(
        (made.blocks, made.txs, made.head_number),
        (2000, 24_000, 2000)
    );
    assert_eq!(made.bytes, std::fs::metadata(&file).unwrap().len());

    let store = Store::open(&dir.join("db"), spec.clone()).unwrap();
    let imported = import::import_file(&store, &file).unwrap();
    assert_eq!((imported.imported, imported.txs), (2000, 24_000));
    assert_eq!(
        (imported.head_number, imported.head_hash),
        (2000, made.head_hash)
    );
    assert_eq!(store.head_hash().unwrap(), made.head_hash);

    // Every fork field of the ethtest schedule (Shanghai at 0, Cancun at 60 s, Prague at
    // 120 s) is exercised, and each sender's nonces run 0, 1, 2, ... in chain order.
    let head = store.head().unwrap();
    assert!(head.requests_hash.is_some() && head.parent_beacon_block_root.is_some());
    let mut next_nonce = std::collections::HashMap::new();
    for n in 1..=200 {
        let block = store.block_by_number(n).unwrap().unwrap();
        for tx in &block.body.transactions {
            let sender = pool::recover(tx.signature(), tx.signature_hash()).expect("signed");
            let expected = next_nonce.entry(sender).or_insert(0u64);
            assert_eq!(tx.nonce(), *expected, "sender {sender} in block {n}");
            *expected += 1;
            assert_eq!(tx.chain_id(), Some(spec.config.chain_id));
        }
    }
    drop(store);

    // Same seed, same bytes; another seed, another chain.
    let again = dir.join("again.rlp");
    gen_chain::generate_file(&spec, params, None, &again).unwrap();
    assert!(std::fs::read(&file).unwrap() == std::fs::read(&again).unwrap());
    let other = Params { seed: 2, ..params };
    let other = gen_chain::generate_file(&spec, other, None, &again).unwrap();
    assert_ne!(other.head_hash, made.head_hash);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn from_continues_the_bundled_chain() {
    let dir = tempdir("from");
    let spec = presets::ethtest().unwrap();
    let params = Params {
        blocks: 300,
        ..Params::default()
    };
    let file = dir.join("chain.rlp");
    let made = gen_chain::generate_file(&spec, params, Some(CHAIN_RLP.as_ref()), &file).unwrap();
    assert_eq!((made.blocks, made.head_number), (900, 900));
    let store = Store::open(&dir.join("db"), spec).unwrap();
    let imported = import::import_file(&store, &file).unwrap();
    assert_eq!(
        (imported.head_number, imported.head_hash),
        (900, made.head_hash)
    );
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}
