//! Receipts in the store: only lists matching their block are stored, atomically, and
//! they count towards side-block bounds and leave with pruned side blocks.

use alloy_primitives::B256;
use alloy_rlp::Decodable;
use protocols::eth::messages::Receipt69;
use protocols::eth::receipts::{self, encode_stored};

use super::ReceiptsError;
use crate::chain::Store;
use crate::chain::presets;
use crate::chain::reader::BlockReader;
use crate::cmd::import_receipts::import_receipts;

const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/ethtest");

fn store(name: &str, blocks: u64) -> (Store, std::path::PathBuf, Vec<B256>) {
    let dir = std::env::temp_dir().join(format!("receipts-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Store::open(&dir, presets::ethtest().unwrap()).unwrap();
    let data = std::fs::read(format!("{TESTDATA}/chain.rlp")).unwrap();
    let mut reader = BlockReader::new(data.as_slice());
    let mut v = Vec::new();
    while let Some(b) = reader.next_block().unwrap() {
        if b.header.number > blocks {
            break;
        }
        v.push(b);
    }
    store.insert_blocks_at(&v, u64::MAX / 2).unwrap();
    let hashes = v.iter().map(|b| b.header.hash_slow()).collect();
    (store, dir, hashes)
}

/// The test chain's receipt lists, block 1 first.
fn lists() -> Vec<Vec<Receipt69>> {
    let data = std::fs::read(format!("{TESTDATA}/receipts.rlp")).unwrap();
    Decodable::decode(&mut data.as_slice()).unwrap()
}

/// A batch holding one list that does not match its block stores nothing, and says
/// which block; the right lists are then stored and served as given.
#[test]
fn mismatched_receipts_store_nothing() {
    let (store, dir, hashes) = store("mismatch", 20);
    let lists = lists();
    assert!(!lists[0].is_empty() && !lists[1].is_empty());
    assert_eq!(store.missing_receipts(&hashes[..2]).unwrap(), hashes[..2]);

    let mut bad = lists[1].clone();
    bad[0].cumulative_gas -= 1;
    let batch = vec![(hashes[0], lists[0].clone()), (hashes[1], bad)];
    let refused = store.insert_receipts(&batch).unwrap();
    assert!(
        matches!(refused, Err(ReceiptsError::Mismatch { number: 2, .. })),
        "{refused:?}"
    );
    assert_eq!(store.missing_receipts(&hashes[..2]).unwrap(), hashes[..2]);
    assert_eq!(store.receipts_rlp(&hashes[0]).unwrap(), None);

    // Block 2's list for block 1 (same count and gas) is caught by the root.
    let swapped = vec![(hashes[0], lists[1].clone())];
    assert!(store.insert_receipts(&swapped).unwrap().is_err());

    let unknown = vec![(B256::repeat_byte(1), Vec::new())];
    assert_eq!(
        store.insert_receipts(&unknown).unwrap(),
        Err(ReceiptsError::UnknownBlock(B256::repeat_byte(1)))
    );

    let good: Vec<_> = hashes.iter().copied().zip(lists.iter().cloned()).collect();
    assert_eq!(
        store.insert_receipts(&good).unwrap(),
        Ok(good.len() - empty(&lists[..20]))
    );
    assert!(store.missing_receipts(&hashes).unwrap().is_empty());
    assert_eq!(
        store.receipts_rlp(&hashes[0]).unwrap().unwrap(),
        encode_stored(&lists[0]).0.to_vec()
    );
    // Stored again: nothing new.
    assert_eq!(store.insert_receipts(&good[..2]).unwrap(), Ok(0));
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Blocks without transactions need no stored receipts: their list is empty.
#[test]
fn blocks_without_transactions_have_empty_receipts() {
    let (store, dir, hashes) = store("empty", 20);
    let lists = lists();
    let i = lists[..20].iter().position(Vec::is_empty).unwrap();
    assert_eq!(
        store.receipts_rlp(&hashes[i]).unwrap().unwrap(),
        receipts::EMPTY_LIST
    );
    assert_eq!(store.receipts_rlp(&B256::ZERO).unwrap(), None);
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

fn empty(lists: &[Vec<Receipt69>]) -> usize {
    lists.iter().filter(|l| l.is_empty()).count()
}

/// `devp2p import --receipts`: the whole test chain's receipts verify and are stored; a
/// file whose lists are out of order is refused.
#[test]
fn receipts_file_import() {
    let (store, dir, hashes) = store("file", 600);
    let chain = std::path::Path::new(TESTDATA).join("chain.rlp");
    let file = std::path::Path::new(TESTDATA).join("receipts.rlp");

    let mut shuffled = lists();
    shuffled.swap(0, 1);
    let bad = dir.join("bad.rlp");
    std::fs::write(&bad, alloy_rlp::encode(&shuffled)).unwrap();
    assert!(import_receipts(&store, &chain, &bad).is_err());
    assert_eq!(
        store.missing_receipts(&hashes).unwrap().len(),
        600 - empty(&shuffled)
    );

    let n = import_receipts(&store, &chain, &file).unwrap();
    assert_eq!(n as usize, 600 - empty(&shuffled));
    assert!(store.missing_receipts(&hashes).unwrap().is_empty());
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}
