//! Import of the ethtest chain, export round trip, reopening, and a SIGKILL during import.

use std::path::PathBuf;

use alloy_primitives::b256;
use devp2p::chain::{Spec, Store, presets, store};
use devp2p::cmd::{export, import};

const CHAIN_RLP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/ethtest/chain.rlp");
const HEAD: alloy_primitives::B256 =
    b256!("44e3809c9a3cda717f00aea3a9da336d149612c8d5657fbc0028176ef8d94d2a");

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("chain-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn import_export_round_trip() {
    let dir = tempdir("import");
    let store = Store::open(&dir, presets::ethtest().unwrap()).unwrap();
    let summary = import::import_file(&store, CHAIN_RLP.as_ref()).unwrap();
    assert_eq!((summary.blocks, summary.imported), (600, 600));
    assert_eq!((summary.head_number, summary.head_hash), (600, HEAD));
    assert_eq!(store.head().unwrap().hash_slow(), HEAD);
    assert_eq!(store.canonical_hash(600).unwrap(), Some(HEAD));
    assert_eq!(
        store.header_by_number(0).unwrap().unwrap().hash_slow(),
        store.genesis_hash()
    );
    let headers = store.canonical_headers(600, 3, 1, true).unwrap();
    assert_eq!(
        headers.iter().map(|h| h.number).collect::<Vec<_>>(),
        [600, 598, 596]
    );
    assert!(store.body_by_hash(&HEAD).unwrap().is_some());

    // Export reproduces the file byte for byte.
    let mut out = Vec::new();
    let (blocks, _) = export::export(&store, &mut out, 1, u64::MAX).unwrap();
    assert_eq!(blocks, 600);
    assert!(
        out == std::fs::read(CHAIN_RLP).unwrap(),
        "export differs from chain.rlp"
    );

    // Importing again finds every block known.
    let again = import::import_file(&store, CHAIN_RLP.as_ref()).unwrap();
    assert_eq!((again.imported, again.head_number), (0, 600));
    drop(store);

    // Reopen: same head; another chain's genesis is refused.
    let store = Store::open(&dir, presets::ethtest().unwrap()).unwrap();
    assert_eq!(store.head_hash().unwrap(), HEAD);
    drop(store);
    let err = Store::open(&dir, Spec::load("mainnet").unwrap()).unwrap_err();
    assert!(matches!(err, store::Error::GenesisMismatch { .. }), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn truncated_file_is_an_error() {
    let dir = tempdir("truncated");
    let store = Store::open(&dir, presets::ethtest().unwrap()).unwrap();
    let bytes = std::fs::read(CHAIN_RLP).unwrap();
    let err = import::import(&store, &bytes[..bytes.len() - 10]).unwrap_err();
    assert!(matches!(err, import::Error::Decode { .. }), "{err}");
    let err = import::import(&store, &[0x01u8, 0x02][..]).unwrap_err();
    assert!(
        matches!(err, import::Error::Decode { offset: 0, .. }),
        "{err}"
    );
    // An absurd length is refused before allocating.
    let err = import::import(
        &store,
        &[0xffu8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff][..],
    );
    assert!(matches!(err, Err(import::Error::Decode { .. })));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `devp2p import` killed with SIGKILL mid-import reopens at a consistent head: every
/// canonical block up to the head has its header and body, and re-importing completes.
#[cfg(unix)]
#[test]
fn sigkill_during_import_reopens_consistent() {
    let bin = env!("CARGO_BIN_EXE_devp2p");
    let dir = tempdir("kill");
    // The whole import takes a few milliseconds: kill it at several points in time, so some
    // runs die before the first commit, some between batches and some during one.
    let mut heads = Vec::new();
    // Kills that landed mid-import: the process had created its store, and the head is
    // short of the last block.
    let mut mid_import = 0;
    for delay_ms in (0u64..=120).step_by(6) {
        let _ = std::fs::remove_dir_all(&dir);
        let mut child = std::process::Command::new(bin)
            .args(["import", CHAIN_RLP, "--chain", "ethtest", "--datadir"])
            .arg(&dir)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL on Unix.
        let _ = child.wait();
        let started = dir.exists();
        let store = Store::open(&dir, presets::ethtest().unwrap()).unwrap();
        let head = store.head().unwrap();
        heads.push(head.number);
        if started && head.number < 600 {
            mid_import += 1;
        }
        for n in 0..=head.number {
            let hash = store.canonical_hash(n).unwrap().unwrap();
            assert!(store.header_by_hash(&hash).unwrap().is_some());
            assert!(store.body_by_hash(&hash).unwrap().is_some());
        }
        let summary = import::import_file(&store, CHAIN_RLP.as_ref()).unwrap();
        assert_eq!(summary.head_hash, HEAD);
    }
    eprintln!("heads after SIGKILL: {heads:?}; {mid_import} kills landed mid-import");
    assert!(
        mid_import > 0,
        "no kill landed during the import: the test proved nothing ({heads:?})"
    );
    // Batches are 256 blocks: a consistent store has a head at a batch boundary or 600.
    assert!(
        heads.iter().all(|h| [0, 256, 512, 600].contains(h)),
        "{heads:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
