use crate::eth::messages::PooledTransaction;
use alloy_consensus::{SignableTransaction, TxEip4844, TxEip4844WithSidecar};
use alloy_eips::eip2718::Encodable2718;
use alloy_eips::eip4844::{BYTES_PER_BLOB, Blob, BlobTransactionSidecar, Bytes48};
use alloy_eips::eip7594::{BlobTransactionSidecarEip7594, BlobTransactionSidecarVariant};
use alloy_primitives::{Address, B256, Signature, U256};

use super::*;
use crate::eth::messages::{CELLS_PER_BLOB, GetCells};
use crate::eth::pool::{Config, Origin, Pool};

fn sign(hash: B256, sender: u8) -> Signature {
    let k = secp256k1::SecretKey::from_byte_array([sender; 32]).unwrap();
    let sig =
        secp256k1::SECP256K1.sign_ecdsa_recoverable(secp256k1::Message::from_digest(hash.0), &k);
    let (id, bytes) = sig.serialize_compact();
    Signature::new(
        U256::from_be_slice(&bytes[..32]),
        U256::from_be_slice(&bytes[32..]),
        i32::from(id) != 0,
    )
}

/// Blob `b` of a transaction: each of its cells starts with `[b, index]`.
fn blob(b: u8) -> Blob {
    let mut data = vec![0u8; BYTES_PER_BLOB];
    for (i, cell) in data.chunks_mut(BYTES_PER_CELL).enumerate() {
        cell[0] = b;
        cell[1] = i as u8;
    }
    Blob::from_slice(&data)
}

/// A signed blob transaction from `sender` with `n` blobs, in the EIP-4844 or (with
/// `cell_proofs`) the EIP-7594 sidecar layout.
pub(crate) fn blob_tx(sender: u8, n: u8, cell_proofs: bool) -> PooledTransaction {
    let blobs: Vec<Blob> = (0..n).map(blob).collect();
    let commitments: Vec<Bytes48> = (0..n).map(|i| Bytes48::repeat_byte(i + 1)).collect();
    let sidecar = if cell_proofs {
        BlobTransactionSidecarVariant::Eip7594(BlobTransactionSidecarEip7594 {
            blobs,
            commitments,
            cell_proofs: vec![Bytes48::repeat_byte(9); n as usize * CELLS_PER_BLOB],
        })
    } else {
        BlobTransactionSidecarVariant::Eip4844(BlobTransactionSidecar {
            blobs,
            commitments,
            proofs: vec![Bytes48::repeat_byte(9); n as usize],
        })
    };
    let tx = TxEip4844 {
        chain_id: 1,
        nonce: 0,
        gas_limit: 21_000,
        max_fee_per_gas: 100,
        max_priority_fee_per_gas: 10,
        to: Address::repeat_byte(0x11),
        max_fee_per_blob_gas: 10,
        blob_versioned_hashes: sidecar.versioned_hashes().collect(),
        ..Default::default()
    };
    let sig = sign(tx.signature_hash(), sender);
    PooledTransaction::Eip4844(TxEip4844WithSidecar { tx, sidecar }.into_signed(sig))
}

fn pool_with(txs: &[PooledTransaction]) -> Pool {
    let pool = Pool::new(Config {
        chain_id: Some(1),
        ..Config::default()
    });
    for tx in txs {
        pool.add(tx.clone(), Origin::Remote).expect("pooled");
    }
    pool
}

#[test]
fn blobs_are_found_in_both_sidecar_layouts() {
    for cell_proofs in [false, true] {
        let tx = blob_tx(1, 2, cell_proofs);
        let pool = pool_with(std::slice::from_ref(&tx));
        let stored = pool.get(tx.hash()).unwrap();
        let found = blobs(&stored.encoded).unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(found[1], blob(1).as_slice());
    }
}

/// eth/72 PooledTransactions: the same transaction with an empty blob list, its size the
/// one announced to eth/72 peers; non-blob encodings are left alone.
#[test]
fn elided_encoding_keeps_all_but_the_blobs() {
    for cell_proofs in [false, true] {
        let tx = blob_tx(1, 2, cell_proofs);
        let pool = pool_with(std::slice::from_ref(&tx));
        let stored = pool.get(tx.hash()).unwrap();
        let elided = elide_blobs(&stored.encoded);
        let back: PooledTransaction = alloy_rlp::Decodable::decode(&mut elided.as_ref()).unwrap();
        let PooledTransaction::Eip4844(signed) = &back else {
            panic!("not a blob transaction")
        };
        assert_eq!(signed.hash(), tx.hash());
        assert_eq!(signed.tx().sidecar.commitments().len(), 2);
        assert!(match &signed.tx().sidecar {
            BlobTransactionSidecarVariant::Eip4844(s) => s.blobs.is_empty(),
            BlobTransactionSidecarVariant::Eip7594(s) => s.blobs.is_empty(),
        });
        assert_eq!(
            elided_size(&stored.encoded, stored.size),
            back.encode_2718_len()
        );
        assert!(elided.len() < stored.encoded.len() - 2 * BYTES_PER_BLOB);
    }
    let plain = Bytes::from_static(&[0xc3, 0x01, 0x02, 0x03]);
    assert_eq!(elide_blobs(&plain), plain);
    assert_eq!(elided_size(&plain, 4), 4);
}

/// Cells 0..64 are the blob's own chunks: served in index-then-blob order; the extension
/// cells are cleared from the answer's bitmap.
#[test]
fn data_cells_are_served_from_the_stored_blobs() {
    let tx = blob_tx(1, 2, true);
    let other = blob_tx(2, 1, false);
    let pool = pool_with(&[tx.clone(), other.clone()]);
    let mut wanted = CellMask::NONE;
    wanted.0[0] = 0b1000_0001; // cells 0 and 7
    wanted.0[15] = 0x80; // cell 127: extension
    let req = GetCells {
        request_id: 5,
        hashes: vec![B256::repeat_byte(0xee), *tx.hash(), *other.hash()],
        cells: wanted,
    };
    let res = cells(&pool, &req);
    assert_eq!(res.request_id, 5);
    assert_eq!(res.mask.indices().collect::<Vec<_>>(), vec![0, 7]);
    assert_eq!(res.hashes, vec![*tx.hash(), *other.hash()]);
    let heads: Vec<(u8, u8)> = res.cells[0].iter().map(|c| (c[0], c[1])).collect();
    assert_eq!(heads, vec![(0, 0), (1, 0), (0, 7), (1, 7)]);
    assert_eq!(res.cells[1].len(), 2);
    assert_eq!(
        res.check(&req, |h| if h == tx.hash() { 2 } else { 1 }),
        Ok(())
    );
    // Only extension cells asked for: nothing to serve.
    let ext = GetCells {
        cells: CellMask([0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]),
        ..req
    };
    let none = cells(&pool, &ext);
    assert!(none.hashes.is_empty() && none.cells.is_empty());
    assert_eq!(none.mask, CellMask::NONE);
}

/// A request over the soft limits is answered within them: at most 64 transactions and
/// 2 MiB of cells.
#[test]
fn answers_stay_within_the_soft_limits() {
    let txs: Vec<_> = (1..=4).map(|s| blob_tx(s, 6, false)).collect();
    let pool = pool_with(&txs);
    let req = GetCells {
        request_id: 1,
        hashes: txs.iter().map(|t| *t.hash()).collect(),
        cells: CellMask::DATA,
    };
    // 64 cells x 6 blobs x 2 KiB = 768 KiB per transaction: two fit in 2 MiB.
    let res = cells(&pool, &req);
    assert_eq!(res.hashes.len(), 2);
    let bytes: usize = res.cells.iter().map(|g| g.len() * BYTES_PER_CELL).sum();
    assert!(bytes <= SOFT_CELLS_LIMIT);
    // Hashes beyond the 64th are not looked at.
    let mut many = vec![B256::ZERO; MAX_CELL_TXS];
    many.push(*txs[0].hash());
    let late = GetCells {
        hashes: many,
        ..req
    };
    assert!(cells(&pool, &late).hashes.is_empty());
}

/// A transaction sent without blobs is rebuilt exactly from the data cells served for it.
#[test]
fn blobs_are_rebuilt_from_data_cells() {
    for cell_proofs in [false, true] {
        let tx = blob_tx(3, 3, cell_proofs);
        let pool = pool_with(std::slice::from_ref(&tx));
        let stored = pool.get(tx.hash()).unwrap();
        let bare: PooledTransaction =
            alloy_rlp::Decodable::decode(&mut elide_blobs(&stored.encoded).as_ref()).unwrap();
        assert!(lacks_blobs(&bare) && !lacks_blobs(&tx));
        assert_eq!(blob_count(&bare), 3);
        let req = GetCells {
            request_id: 1,
            hashes: vec![*tx.hash()],
            cells: CellMask::DATA,
        };
        let group = cells(&pool, &req).cells.remove(0);
        assert_eq!(assemble(bare.clone(), &group), Some(tx.clone()));
        assert_eq!(assemble(bare, &group[1..]), None);
        assert_eq!(assemble(tx, &group), None, "already whole");
    }
}
