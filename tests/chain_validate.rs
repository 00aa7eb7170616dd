//! Each validation rule rejects a mutated block of the ethtest chain.

use alloy_consensus::Header;
use alloy_primitives::{B64, B256, Bytes, U256};
use alloy_rlp::Decodable;
use devp2p::chain::validate::{self, Error};
use devp2p::chain::{Block, Spec, Store, presets, store};

const CHAIN_RLP: &[u8] = include_bytes!("../testdata/ethtest/chain.rlp");

fn blocks() -> Vec<Block> {
    let mut buf = CHAIN_RLP;
    let mut out = Vec::new();
    while !buf.is_empty() {
        out.push(Block::decode(&mut buf).unwrap());
    }
    out
}

fn spec() -> Spec {
    presets::ethtest().unwrap()
}

/// Parent and child headers at `number` (Cancun from time 60 = block 6, Prague from block 12).
fn pair(blocks: &[Block], number: usize) -> (Header, Header) {
    let parent = match number {
        1 => spec().genesis_header,
        n => blocks[n - 2].header.clone(),
    };
    (parent, blocks[number - 1].header.clone())
}

fn rejects(number: usize, mutate: impl FnOnce(&mut Header), check: impl Fn(&Error) -> bool) {
    let blocks = blocks();
    let (parent, mut header) = pair(&blocks, number);
    validate::header(&spec(), &parent, &header).expect("unmodified header is valid");
    mutate(&mut header);
    let err = validate::header(&spec(), &parent, &header).unwrap_err();
    assert!(check(&err), "unexpected error: {err}");
}

#[test]
fn whole_chain_is_valid() {
    let blocks = blocks();
    let spec = spec();
    let mut parent = spec.genesis_header.clone();
    for b in &blocks {
        validate::header(&spec, &parent, &b.header).unwrap();
        validate::body(&b.header, &b.body).unwrap();
        parent = b.header.clone();
    }
    assert_eq!(parent.number, 600);
}

#[test]
fn parent_hash() {
    rejects(
        3,
        |h| h.parent_hash = B256::repeat_byte(1),
        |e| matches!(e, Error::ParentHash { .. }),
    );
}

#[test]
fn number() {
    rejects(3, |h| h.number += 1, |e| matches!(e, Error::Number { .. }));
}

#[test]
fn timestamp() {
    rejects(
        3,
        |h| h.timestamp -= 10,
        |e| matches!(e, Error::Timestamp { .. }),
    );
}

#[test]
fn gas_limit_bound() {
    rejects(
        3,
        |h| h.gas_limit += h.gas_limit / 1000,
        |e| matches!(e, Error::GasLimitBound { .. }),
    );
}

#[test]
fn gas_limit_minimum() {
    rejects(
        3,
        |h| h.gas_limit = 4999,
        |e| matches!(e, Error::GasLimitRange(4999)),
    );
}

#[test]
fn gas_used() {
    rejects(
        3,
        |h| h.gas_used = h.gas_limit + 1,
        |e| matches!(e, Error::GasUsed { .. }),
    );
}

#[test]
fn extra_data() {
    rejects(
        3,
        |h| h.extra_data = Bytes::from(vec![0; 33]),
        |e| matches!(e, Error::ExtraData(33)),
    );
}

#[test]
fn base_fee() {
    rejects(
        3,
        |h| h.base_fee_per_gas = h.base_fee_per_gas.map(|f| f + 1),
        |e| matches!(e, Error::BaseFee { .. }),
    );
    rejects(
        3,
        |h| h.base_fee_per_gas = None,
        |e| matches!(e, Error::BaseFee { .. }),
    );
}

#[test]
fn withdrawals_root_from_shanghai() {
    rejects(
        3,
        |h| h.withdrawals_root = None,
        |e| {
            matches!(
                e,
                Error::Field {
                    field: "withdrawalsRoot",
                    present: false
                }
            )
        },
    );
}

#[test]
fn beacon_root_from_cancun() {
    rejects(
        7,
        |h| h.parent_beacon_block_root = None,
        |e| {
            matches!(
                e,
                Error::Field {
                    field: "parentBeaconBlockRoot",
                    present: false
                }
            )
        },
    );
    rejects(
        3,
        |h| h.parent_beacon_block_root = Some(B256::ZERO),
        |e| {
            matches!(
                e,
                Error::Field {
                    field: "parentBeaconBlockRoot",
                    present: true
                }
            )
        },
    );
}

#[test]
fn requests_hash_from_prague() {
    rejects(
        20,
        |h| h.requests_hash = None,
        |e| {
            matches!(
                e,
                Error::Field {
                    field: "requestsHash",
                    present: false
                }
            )
        },
    );
    rejects(
        3,
        |h| h.requests_hash = Some(B256::ZERO),
        |e| {
            matches!(
                e,
                Error::Field {
                    field: "requestsHash",
                    present: true
                }
            )
        },
    );
}

/// The test chain does not reach Amsterdam: a `block-access-list-hash` is one field too many.
#[test]
fn block_access_list_hash_only_from_amsterdam() {
    rejects(
        20,
        |h| h.block_access_list_hash = Some(B256::ZERO),
        |e| {
            matches!(
                e,
                Error::Field {
                    field: "blockAccessListHash",
                    present: true
                }
            )
        },
    );
}

#[test]
fn blob_gas_fields() {
    rejects(
        7,
        |h| h.blob_gas_used = None,
        |e| {
            matches!(
                e,
                Error::Field {
                    field: "blobGasUsed",
                    present: false
                }
            )
        },
    );
    rejects(
        3,
        |h| h.excess_blob_gas = Some(0),
        |e| {
            matches!(
                e,
                Error::Field {
                    field: "excessBlobGas",
                    present: true
                }
            )
        },
    );
    rejects(
        7,
        |h| h.blob_gas_used = Some(1),
        |e| matches!(e, Error::BlobGasUsed(1)),
    );
    // Cancun allows 6 blobs, Prague 9.
    rejects(
        7,
        |h| h.blob_gas_used = Some(7 * 131072),
        |e| matches!(e, Error::BlobGasUsed(_)),
    );
    rejects(
        20,
        |h| h.blob_gas_used = Some(10 * 131072),
        |e| matches!(e, Error::BlobGasUsed(_)),
    );
}

#[test]
fn excess_blob_gas() {
    rejects(
        20,
        |h| h.excess_blob_gas = h.excess_blob_gas.map(|x| x + 131072),
        |e| matches!(e, Error::ExcessBlobGas { .. }),
    );
}

#[test]
fn proof_of_stake_constants() {
    rejects(
        3,
        |h| h.difficulty = U256::from(1),
        |e| matches!(e, Error::ProofOfStake(_)),
    );
    rejects(
        3,
        |h| h.nonce = B64::from(1u64),
        |e| matches!(e, Error::ProofOfStake(_)),
    );
    rejects(
        3,
        |h| h.ommers_hash = B256::repeat_byte(7),
        |e| matches!(e, Error::ProofOfStake(_)),
    );
}

#[test]
fn body_transactions_root() {
    let blocks = blocks();
    let mut block = blocks
        .iter()
        .find(|b| !b.body.transactions.is_empty())
        .unwrap()
        .clone();
    block.body.transactions.pop();
    let err = validate::body(&block.header, &block.body).unwrap_err();
    assert!(matches!(err, Error::TransactionsRoot { .. }), "{err}");
}

#[test]
fn body_ommers_and_withdrawals() {
    let blocks = blocks();
    let mut block = blocks[2].clone();
    block.body.ommers.push(blocks[0].header.clone());
    assert!(matches!(
        validate::body(&block.header, &block.body),
        Err(Error::OmmersHash { .. })
    ));
    let mut block = blocks[2].clone();
    block.body.withdrawals = None;
    let err = validate::body(&block.header, &block.body).unwrap_err();
    assert!(matches!(err, Error::WithdrawalsRoot { .. }), "{err}");
}

#[test]
fn store_rejects_and_remembers_bad_blocks() {
    let dir = std::env::temp_dir().join(format!("chain-validate-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Store::open(&dir, spec()).unwrap();
    let blocks = blocks();
    // Unknown parent.
    let err = store.insert_blocks(&blocks[5..6]).unwrap_err();
    assert!(matches!(
        err,
        store::Error::BadBlock {
            reason: Error::UnknownParent(_),
            ..
        }
    ));
    // Blocks before a bad one are committed; the bad one is cached with its reason.
    let mut batch = blocks[..4].to_vec();
    batch[3].header.gas_used = batch[3].header.gas_limit + 1;
    let bad_hash = batch[3].header.hash_slow();
    let err = store.insert_blocks(&batch).unwrap_err();
    assert!(
        matches!(err, store::Error::BadBlock { number: 4, .. }),
        "{err}"
    );
    assert_eq!(store.head().unwrap().number, 3);
    assert!(matches!(
        store.bad_block(&bad_hash),
        Some(Error::GasUsed { .. })
    ));
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}
