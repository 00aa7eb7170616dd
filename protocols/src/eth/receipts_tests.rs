//! Receipt checks against the bundled test chain, whose receipts were produced by an EVM
//! (`tests/interop/receipts/gen_receipts.mjs`).

use alloy_consensus::{Block, Header, TxEnvelope};
use alloy_primitives::{Bytes, Log, LogData};
use alloy_rlp::Decodable;

use super::*;

const CHAIN: &[u8] = include_bytes!("../../../testdata/ethtest/chain.rlp");
const RECEIPTS: &[u8] = include_bytes!("../../../testdata/ethtest/receipts.rlp");

/// (header, tx count, receipts) of every block of the test chain.
fn chain() -> Vec<(Header, usize, Vec<Receipt69>)> {
    let lists: Vec<Vec<Receipt69>> = Decodable::decode(&mut &RECEIPTS[..]).unwrap();
    let mut data = CHAIN;
    let mut out = Vec::new();
    for list in lists {
        let block = Block::<TxEnvelope>::decode(&mut data).unwrap();
        out.push((block.header, block.body.transactions.len(), list));
    }
    assert!(data.is_empty());
    out
}

/// The block with the most receipts, and at least one log in them.
fn busiest() -> (Header, usize, Vec<Receipt69>) {
    let all = chain();
    let with_logs = all
        .iter()
        .filter(|(_, _, l)| l.iter().any(|r| !r.logs.is_empty()));
    with_logs
        .max_by_key(|(_, _, l)| l.len())
        .cloned()
        .unwrap_or_else(|| all.into_iter().max_by_key(|(_, _, l)| l.len()).unwrap())
}

#[test]
fn every_block_of_the_test_chain_verifies() {
    let all = chain();
    assert_eq!(all.len(), 600);
    let mut receipts = 0;
    for (header, txs, list) in &all {
        verify(header, *txs, list).unwrap_or_else(|e| panic!("block {}: {e}", header.number));
        receipts += list.len();
    }
    assert!(receipts > 500, "{receipts}");
}

#[test]
fn tampered_receipts_are_refused() {
    let (header, txs, list) = busiest();
    assert!(!list.is_empty());
    let mut fewer = list.clone();
    fewer.pop();
    assert!(matches!(
        verify(&header, txs, &fewer),
        Err(Error::Count { .. })
    ));

    let mut status = list.clone();
    status[0].post_state_or_status = if status[0].post_state_or_status.is_empty() {
        Bytes::from_static(&[1])
    } else {
        Bytes::new()
    };
    assert!(matches!(
        verify(&header, txs, &status),
        Err(Error::Root { .. })
    ));

    let mut ty = list.clone();
    ty[0].tx_type = if ty[0].tx_type == 2 { 1 } else { 2 };
    assert!(matches!(verify(&header, txs, &ty), Err(Error::Root { .. })));

    let mut gas = list.clone();
    let last = gas.len() - 1;
    gas[last].cumulative_gas += 1;
    assert!(matches!(
        verify(&header, txs, &gas),
        Err(Error::GasUsed { .. })
    ));

    if list.len() > 1 {
        let mut order = list.clone();
        order[0].cumulative_gas = order[1].cumulative_gas + 1;
        assert!(matches!(
            verify(&header, txs, &order),
            Err(Error::GasDecreases { index: 1 })
        ));
    }

    let mut log = list.clone();
    log[0].logs.push(Log {
        address: [7u8; 20].into(),
        data: LogData::new_unchecked(vec![], Bytes::new()),
    });
    assert!(matches!(verify(&header, txs, &log), Err(Error::Bloom)));

    let mut unknown = list.clone();
    unknown[0].tx_type = 9;
    assert!(matches!(
        verify(&header, txs, &unknown),
        Err(Error::UnknownType {
            index: 0,
            tx_type: 9
        })
    ));
    let mut bad = list;
    bad[0].post_state_or_status = Bytes::from_static(&[2]);
    assert!(matches!(
        verify(&header, txs, &bad),
        Err(Error::Status { index: 0 })
    ));
}

/// eth/68's encoding carries the same receipts with blooms, and converts back.
#[test]
fn eth68_encoding_round_trips() {
    let (_, _, list) = busiest();
    let stored = encode_stored(&list);
    let eth68 = stored_to_eth68(&stored).unwrap();
    let envelopes: Vec<ReceiptEnvelope> = Decodable::decode(&mut eth68.0.as_ref()).unwrap();
    let back: Vec<Receipt69> = envelopes.iter().map(from_envelope).collect();
    assert_eq!(back, list);
    assert!(eth68.0.len() > stored.0.len() + 256 * list.len());
}
