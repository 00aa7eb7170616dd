//! Round trips of every eth/68 and eth/69 message, with real typed transactions (legacy,
//! EIP-2930, EIP-1559, EIP-4844, EIP-7702) from `chain.rlp`, and the EIP-4844 network
//! form with its sidecar in PooledTransactions.

mod common;

use alloy_consensus::{
    Blob, BlobTransactionSidecar, BlobTransactionSidecarVariant, Bytes48, Receipt, ReceiptEnvelope,
    ReceiptWithBloom, Signed, TxEip4844Variant, TxEip4844WithSidecar, TxEnvelope,
};
use alloy_primitives::{Address, B256, Bytes, Log, U256};
use common::*;
use protocols::eth::forkid::ForkId;
use protocols::eth::messages::PooledTransaction;
use protocols::eth::messages::*;

fn round_trip(version: u32, m: Message) {
    let enc = m.encode();
    assert!(enc.len() <= MAX_MESSAGE_SIZE);
    let back = Message::decode(version, m.code(), &enc)
        .unwrap_or_else(|e| panic!("message {:#x} on eth/{version}: {e}", m.code()));
    assert_eq!(back, m);
    assert_eq!(back.encode(), enc, "canonical re-encoding");
}

fn txs() -> Vec<TxEnvelope> {
    blocks()
        .into_iter()
        .flat_map(|b| b.body.transactions)
        .collect()
}

/// One transaction per type present in the chain.
fn one_of_each() -> Vec<TxEnvelope> {
    let mut out: Vec<TxEnvelope> = Vec::new();
    for tx in txs() {
        if !out.iter().any(|t| t.tx_type() == tx.tx_type()) {
            out.push(tx);
        }
    }
    assert_eq!(
        out.len(),
        5,
        "legacy, 2930, 1559, 4844 and 7702 in chain.rlp"
    );
    out
}

fn pooled() -> Vec<PooledTransaction> {
    one_of_each()
        .into_iter()
        .map(|tx| match tx {
            TxEnvelope::Eip4844(signed) => {
                let (tx, sig, hash) = signed.into_parts();
                let TxEip4844Variant::TxEip4844(tx) = tx else {
                    panic!("block transactions carry no sidecar");
                };
                let sidecar = BlobTransactionSidecarVariant::Eip4844(BlobTransactionSidecar {
                    blobs: vec![Blob::repeat_byte(1)],
                    commitments: vec![Bytes48::repeat_byte(2)],
                    proofs: vec![Bytes48::repeat_byte(3)],
                });
                PooledTransaction::Eip4844(Signed::new_unchecked(
                    TxEip4844WithSidecar { tx, sidecar },
                    sig,
                    hash,
                ))
            }
            other => other
                .try_into_pooled()
                .expect("non-blob transactions pool as is"),
        })
        .collect()
}

#[test]
fn every_message_round_trips() {
    let blocks = blocks();
    let block = blocks
        .iter()
        .find(|b| b.body.transactions.len() > 3)
        .expect("a full block")
        .clone();
    let fork_id = ForkId {
        hash: [1, 2, 3, 4],
        next: 120,
    };
    let log = Log::new_unchecked(
        Address::repeat_byte(5),
        vec![B256::repeat_byte(6)],
        Bytes::from_static(b"data"),
    );
    let receipt = Receipt {
        status: true.into(),
        cumulative_gas_used: 21_000,
        logs: vec![log.clone()],
    };
    let r68 = vec![
        ReceiptEnvelope::Legacy(ReceiptWithBloom::from(receipt.clone())),
        ReceiptEnvelope::Eip1559(ReceiptWithBloom::from(receipt.clone())),
        ReceiptEnvelope::Eip4844(ReceiptWithBloom::from(receipt)),
    ];
    let r69 = vec![
        Receipt69 {
            tx_type: 0,
            post_state_or_status: Bytes::from_static(&[1]),
            cumulative_gas: 21_000,
            logs: vec![log.clone()],
        },
        Receipt69 {
            tx_type: 2,
            post_state_or_status: Bytes::new(),
            cumulative_gas: 42_000,
            logs: vec![],
        },
    ];
    let common = vec![
        Message::NewBlockHashes(vec![BlockHashNumber {
            hash: B256::repeat_byte(1),
            number: 9,
        }]),
        Message::Transactions(one_of_each()),
        Message::Transactions(txs()),
        Message::GetBlockHeaders(RequestPair {
            request_id: 0,
            message: GetBlockHeaders {
                origin: BlockId::Number(u64::MAX),
                amount: u64::MAX,
                skip: 0,
                reverse: true,
            },
        }),
        Message::BlockHeaders(RequestPair {
            request_id: u64::MAX,
            message: blocks.iter().take(20).map(|b| b.header.clone()).collect(),
        }),
        Message::GetBlockBodies(RequestPair {
            request_id: 1,
            message: vec![B256::repeat_byte(1), B256::ZERO],
        }),
        Message::BlockBodies(RequestPair {
            request_id: 2,
            message: blocks.iter().take(50).map(|b| b.body.clone()).collect(),
        }),
        Message::NewPooledTransactionHashes(NewPooledTransactionHashes {
            types: Bytes::from_static(&[0, 1, 2, 3, 4]),
            sizes: vec![100, 200, 300, 131_400, 500],
            hashes: one_of_each().iter().map(|t| *t.tx_hash()).collect(),
        }),
        Message::GetPooledTransactions(RequestPair {
            request_id: 3,
            message: vec![B256::repeat_byte(3)],
        }),
        Message::PooledTransactions(RequestPair {
            request_id: 4,
            message: pooled(),
        }),
        Message::GetReceipts(RequestPair {
            request_id: 5,
            message: vec![B256::repeat_byte(5)],
        }),
    ];
    for m in common {
        round_trip(ETH68, m.clone());
        round_trip(ETH69, m);
    }
    round_trip(
        ETH68,
        Message::Status(Status::V68(Status68 {
            version: 68,
            network_id: NETWORK_ID,
            total_difficulty: U256::from(0x20000),
            head: B256::repeat_byte(1),
            genesis: B256::repeat_byte(2),
            fork_id,
        })),
    );
    round_trip(
        ETH69,
        Message::Status(Status::V69(Status69 {
            version: 69,
            network_id: 1,
            genesis: B256::repeat_byte(2),
            fork_id,
            earliest: 0,
            latest: 600,
            latest_hash: B256::repeat_byte(3),
        })),
    );
    round_trip(
        ETH68,
        Message::NewBlock(Box::new(NewBlock {
            block,
            td: U256::from(0x20000),
        })),
    );
    round_trip(
        ETH68,
        Message::Receipts68(RequestPair {
            request_id: 6,
            message: vec![r68, vec![]],
        }),
    );
    round_trip(
        ETH69,
        Message::Receipts69(RequestPair {
            request_id: 7,
            message: vec![r69, vec![]],
        }),
    );
    round_trip(
        ETH69,
        Message::BlockRangeUpdate(BlockRangeUpdate {
            earliest: 1,
            latest: 600,
            latest_hash: B256::repeat_byte(4),
        }),
    );
}

#[test]
fn blob_transaction_network_form_requires_the_sidecar() {
    // A block's blob transaction (no sidecar) is not a valid pooled transaction.
    let blob_tx = one_of_each()
        .into_iter()
        .find(|t| t.is_eip4844())
        .expect("blob transaction");
    let as_response = alloy_rlp::encode(RequestPair {
        request_id: 1,
        message: vec![blob_tx.clone()],
    });
    assert!(Message::decode(ETH68, code::POOLED_TRANSACTIONS, &as_response).is_err());
    // ... while it is one in a Transactions message or a block body.
    let m = Message::Transactions(vec![blob_tx]);
    assert!(Message::decode(ETH68, code::TRANSACTIONS, &m.encode()).is_ok());
    // Unknown transaction types do not decode (the spec says to disconnect for them).
    let unknown_type = alloy_rlp::encode(vec![Bytes::from_static(&[0x7f, 0xc0])]);
    assert!(Message::decode(ETH68, code::TRANSACTIONS, &unknown_type).is_err());
}

#[test]
fn status_layouts_differ_by_version() {
    let s69 = Message::Status(Status::V69(Status69 {
        version: 69,
        network_id: 1,
        genesis: B256::ZERO,
        fork_id: ForkId {
            hash: [0; 4],
            next: 0,
        },
        earliest: 0,
        latest: 0,
        latest_hash: B256::ZERO,
    }));
    assert!(Message::decode(ETH68, code::STATUS, &s69.encode()).is_err());
}
