//! Genesis headers and presets: computed hashes against the well-known values.

use alloy_consensus::Header;
use alloy_rlp::Decodable;
use devp2p::chain::{Block, Spec, presets};

const CHAIN_RLP: &[u8] = include_bytes!("../testdata/ethtest/chain.rlp");

#[test]
fn ethtest_genesis_is_parent_of_block_one() {
    let spec = presets::ethtest().unwrap();
    let block1 = Block::decode(&mut &CHAIN_RLP[..]).unwrap();
    assert_eq!(block1.header.number, 1);
    assert_eq!(spec.genesis_hash, block1.header.parent_hash);
    assert_eq!(spec.network_id, 3503995874084926);
    // Shanghai at genesis: withdrawals root; Cancun (time 60) and Prague (120) later.
    let h: &Header = &spec.genesis_header;
    assert!(h.withdrawals_root.is_some());
    assert_eq!(h.base_fee_per_gas, Some(1_000_000_000));
    assert!(h.blob_gas_used.is_none() && h.requests_hash.is_none());
}

#[test]
fn ethtest_from_file_matches_preset() {
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/ethtest/genesis.json");
    let spec = Spec::load(file).unwrap();
    assert_eq!(spec.genesis_hash, presets::ethtest().unwrap().genesis_hash);
    assert!(Spec::load("no-such-chain").is_err());
}

#[test]
fn public_presets_hash_to_known_genesis() {
    let cases = [
        ("mainnet", presets::MAINNET_GENESIS, 1),
        ("sepolia", presets::SEPOLIA_GENESIS, 11_155_111),
        ("holesky", presets::HOLESKY_GENESIS, 17_000),
        ("hoodi", presets::HOODI_GENESIS, 560_048),
    ];
    for (name, hash, network_id) in cases {
        let spec = Spec::load(name).unwrap();
        assert_eq!(spec.genesis_hash, hash, "{name}");
        assert_eq!(spec.network_id, network_id, "{name}");
        assert!(!spec.bootnodes.is_empty(), "{name}");
        assert!(spec.bootnodes.iter().all(|b| b.starts_with("enode://")));
    }
}

#[test]
fn preset_fork_ids() {
    // go-ethereum core/forkid tests: the current fork of each network.
    let cases = [
        ("mainnet", 24_000_000, 1_767_747_671, 0x07c9462e_u32, 0),
        (
            "mainnet",
            20_000_000,
            1_681_338_455,
            0xdce96c2d,
            1_710_338_135,
        ),
        (
            "mainnet",
            30_000_000,
            1_746_612_311,
            0xc376cf8b,
            1_764_798_551,
        ),
        ("sepolia", 1_735_372, 1_761_607_008, 0x268956b6, 0),
        ("holesky", 123, 1_760_389_824, 0x9bc6cb31, 0),
        ("hoodi", 0, 0, 0xbef71d30, 1_742_999_832),
        ("hoodi", 123, 1_762_955_544, 0x23aa1351, 0),
    ];
    for (name, head, time, hash, next) in cases {
        let id = Spec::load(name).unwrap().fork_id(head, time);
        assert_eq!(
            (id.hash, id.next),
            (hash.to_be_bytes(), next),
            "{name} {head} {time}"
        );
    }
}
