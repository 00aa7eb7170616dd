use super::*;
use alloy_consensus::{SignableTransaction, TxEip1559, TxLegacy};
use alloy_primitives::{Signature, TxKind};

/// A deterministic key per sender index.
fn key(i: u8) -> secp256k1::SecretKey {
    secp256k1::SecretKey::from_byte_array([i.max(1); 32]).unwrap()
}

fn sign(hash: B256, k: &secp256k1::SecretKey) -> Signature {
    let sig =
        secp256k1::SECP256K1.sign_ecdsa_recoverable(secp256k1::Message::from_digest(hash.0), k);
    let (id, bytes) = sig.serialize_compact();
    Signature::new(
        U256::from_be_slice(&bytes[..32]),
        U256::from_be_slice(&bytes[32..]),
        i32::from(id) != 0,
    )
}

fn address(k: &secp256k1::SecretKey) -> Address {
    let pk = secp256k1::PublicKey::from_secret_key(secp256k1::SECP256K1, k);
    Address::from_slice(&alloy_primitives::keccak256(&pk.serialize_uncompressed()[1..])[12..])
}

fn tx1559(sender: u8, nonce: u64, tip: u128, fee: u128) -> PooledTransaction {
    let tx = TxEip1559 {
        chain_id: 1,
        nonce,
        gas_limit: 21_000,
        max_fee_per_gas: fee,
        max_priority_fee_per_gas: tip,
        to: TxKind::Call(Address::repeat_byte(0x11)),
        ..Default::default()
    };
    let sig = sign(tx.signature_hash(), &key(sender));
    PooledTransaction::Eip1559(tx.into_signed(sig))
}

fn legacy(sender: u8, chain_id: Option<u64>, gas_limit: u64, input: Vec<u8>) -> PooledTransaction {
    let tx = TxLegacy {
        chain_id,
        nonce: 0,
        gas_price: 10,
        gas_limit,
        to: TxKind::Call(Address::repeat_byte(0x22)),
        input: input.into(),
        ..Default::default()
    };
    let sig = sign(tx.signature_hash(), &key(sender));
    PooledTransaction::Legacy(tx.into_signed(sig))
}

fn config() -> Config {
    Config {
        chain_id: Some(1),
        ..Config::default()
    }
}

#[test]
fn accepts_and_recovers_sender() {
    let pool = Pool::new(config());
    let tx = tx1559(1, 0, 5, 10);
    let p = pool.add(tx.clone(), Origin::Remote).unwrap();
    assert_eq!(p.sender, address(&key(1)));
    assert_eq!(p.kind, 2);
    assert_eq!(p.size, tx.encode_2718_len());
    assert_eq!(p.tip, 5);
    assert!(pool.contains(tx.hash()));
    assert_eq!(pool.add(tx, Origin::Remote), Err(Error::Known));
    assert_eq!(pool.stats().count, 1);
    // The stored encoding decodes back to the same transaction.
    let back: PooledTransaction = alloy_rlp::Decodable::decode(&mut &p.encoded[..]).unwrap();
    assert_eq!(back.hash(), &p.hash);
}

#[test]
fn rejects_invalid() {
    let pool = Pool::new(config());
    // Wrong chain.
    let other = {
        let tx = TxEip1559 {
            chain_id: 5,
            gas_limit: 21_000,
            max_fee_per_gas: 2,
            max_priority_fee_per_gas: 1,
            ..Default::default()
        };
        let sig = sign(tx.signature_hash(), &key(1));
        PooledTransaction::Eip1559(tx.into_signed(sig))
    };
    assert_eq!(
        pool.add(other, Origin::Remote),
        Err(Error::ChainId { ours: 1, got: 5 })
    );
    // Tip above the fee cap, and under the minimum.
    assert_eq!(
        pool.add(tx1559(1, 0, 11, 10), Origin::Remote),
        Err(Error::TipAboveFeeCap)
    );
    assert_eq!(
        pool.add(tx1559(1, 0, 0, 10), Origin::Remote),
        Err(Error::Underpriced)
    );
    // Intrinsic gas: 21000 + 16 per non-zero byte + 4 per zero byte.
    assert_eq!(
        pool.add(legacy(1, Some(1), 21_000, vec![1, 0]), Origin::Remote),
        Err(Error::IntrinsicGas {
            limit: 21_000,
            intrinsic: 21_020
        })
    );
    assert!(
        pool.add(legacy(1, Some(1), 21_020, vec![1, 0]), Origin::Remote)
            .is_ok()
    );
    assert_eq!(
        pool.add(legacy(2, Some(1), MAX_TX_GAS + 1, vec![]), Origin::Remote),
        Err(Error::GasCap(MAX_TX_GAS + 1))
    );
    // Too large.
    let big = vec![1u8; MAX_TX_SIZE];
    assert!(matches!(
        pool.add(legacy(3, Some(1), MAX_TX_GAS, big), Origin::Remote),
        Err(Error::TooLarge(_))
    ));
    // Unprotected: fine from a peer, refused over RPC.
    assert_eq!(
        pool.add(legacy(4, None, 21_000, vec![]), Origin::Local),
        Err(Error::Unprotected)
    );
    assert!(
        pool.add(legacy(4, None, 21_000, vec![]), Origin::Remote)
            .is_ok()
    );
}

#[test]
fn rejects_bad_signatures() {
    let tx = TxEip1559 {
        chain_id: 1,
        gas_limit: 21_000,
        max_fee_per_gas: 2,
        max_priority_fee_per_gas: 1,
        to: TxKind::Call(Address::repeat_byte(1)),
        ..Default::default()
    };
    let good = sign(tx.signature_hash(), &key(1));
    // High s (EIP-2): n - s with the parity flipped is the same point, not canonical.
    let n = U256::from_be_slice(&secp256k1::constants::CURVE_ORDER);
    let high = Signature::new(good.r(), n - good.s(), !good.v());
    let pool = Pool::new(config());
    let high = PooledTransaction::Eip1559(tx.clone().into_signed(high));
    assert_eq!(pool.add(high, Origin::Remote), Err(Error::Signature));
    // r = 0 recovers nothing.
    let zero = Signature::new(U256::ZERO, good.s(), good.v());
    let zero = PooledTransaction::Eip1559(tx.into_signed(zero));
    assert_eq!(pool.add(zero, Origin::Remote), Err(Error::Signature));
}

#[test]
fn replacement_needs_a_price_bump() {
    let pool = Pool::new(config());
    let first = pool.add(tx1559(1, 7, 100, 1000), Origin::Remote).unwrap();
    assert_eq!(
        pool.add(tx1559(1, 7, 105, 1100), Origin::Remote),
        Err(Error::ReplacementUnderpriced)
    );
    let second = pool.add(tx1559(1, 7, 110, 1100), Origin::Remote).unwrap();
    assert!(!pool.contains(&first.hash));
    assert!(pool.contains(&second.hash));
    assert_eq!(pool.stats().count, 1);
    assert_eq!(pool.stats().bytes, second.encoded.len());
}

#[test]
fn bounded_per_sender_count_and_bytes() {
    let pool = Pool::new(Config {
        max_count: 4,
        max_per_sender: 2,
        max_run_per_sender: 2,
        ..config()
    });
    pool.add(tx1559(1, 0, 10, 100), Origin::Remote).unwrap();
    pool.add(tx1559(1, 1, 10, 100), Origin::Remote).unwrap();
    assert_eq!(
        pool.add(tx1559(1, 2, 10, 100), Origin::Remote),
        Err(Error::SenderLimit)
    );
    let cheap = pool.add(tx1559(2, 0, 5, 100), Origin::Remote).unwrap();
    pool.add(tx1559(3, 0, 20, 100), Origin::Remote).unwrap();
    // Full: a transaction paying no more than the lowest is refused...
    assert_eq!(
        pool.add(tx1559(4, 0, 5, 100), Origin::Remote),
        Err(Error::Full)
    );
    // ...one paying more evicts the lowest.
    let rich = pool.add(tx1559(4, 0, 6, 100), Origin::Remote).unwrap();
    assert!(!pool.contains(&cheap.hash));
    assert!(pool.contains(&rich.hash));
    assert_eq!(pool.stats().count, 4);

    // The byte bound: room for two transactions only.
    let one = tx1559(9, 0, 1, 100);
    let len = pool.get(&rich.hash).unwrap().encoded.len();
    let pool = Pool::new(Config {
        max_bytes: 2 * len + len / 2,
        ..config()
    });
    pool.add(one, Origin::Remote).unwrap();
    pool.add(tx1559(8, 0, 3, 100), Origin::Remote).unwrap();
    pool.add(tx1559(7, 0, 2, 100), Origin::Remote).unwrap();
    assert_eq!(pool.stats().count, 2);
    assert!(pool.stats().bytes <= 2 * len + len / 2);
}

#[test]
fn removes_included() {
    let pool = Pool::new(config());
    let a = pool.add(tx1559(1, 0, 10, 100), Origin::Remote).unwrap();
    let b = pool.add(tx1559(2, 0, 10, 100), Origin::Remote).unwrap();
    assert_eq!(pool.remove([a.hash, B256::repeat_byte(9)]), 1);
    assert!(!pool.contains(&a.hash));
    assert!(pool.contains(&b.hash));
    assert_eq!(pool.stats().bytes, b.encoded.len());
    // The sender's nonce slot is free again.
    pool.add(tx1559(1, 0, 10, 100), Origin::Remote).unwrap();
}

#[test]
fn envelope_without_sidecar_is_refused() {
    let tx = alloy_consensus::TxEip4844 {
        chain_id: 1,
        gas_limit: 21_000,
        max_fee_per_gas: 2,
        max_priority_fee_per_gas: 1,
        max_fee_per_blob_gas: 1,
        blob_versioned_hashes: vec![B256::repeat_byte(1)],
        ..Default::default()
    };
    let sig = sign(tx.signature_hash(), &key(1));
    let env = TxEnvelope::Eip4844(tx.into_signed(sig).into());
    let pool = Pool::new(config());
    assert_eq!(
        pool.add_envelope(env, Origin::Remote),
        Err(Error::NoSidecar)
    );
}

#[test]
fn refused_transactions_are_remembered() {
    let pool = Pool::new(config());
    let tx = tx1559(1, 0, 11, 10);
    assert_eq!(
        pool.add(tx.clone(), Origin::Remote),
        Err(Error::TipAboveFeeCap)
    );
    // Again: refused without being checked.
    assert_eq!(pool.add(tx, Origin::Remote), Err(Error::Rejected));
    // The memory is bounded.
    for i in 0..REJECTED_MEMORY as u64 + 1 {
        let _ = pool.add(tx1559(2, i, 11, 10), Origin::Remote);
    }
    assert_eq!(
        pool.add(tx1559(1, 0, 11, 10), Origin::Remote),
        Err(Error::TipAboveFeeCap)
    );
}

/// Beyond `max_per_sender`, a sender may only extend an unbroken nonce run (what a real
/// sender's burst is, e.g. go-ethereum's conformance `LargeTxRequest`), up to
/// `max_run_per_sender`; scattered nonces stay capped.
#[test]
fn an_unbroken_nonce_run_may_exceed_the_per_sender_cap() {
    let pool = Pool::new(Config {
        max_per_sender: 2,
        max_run_per_sender: 4,
        ..config()
    });
    for nonce in 0..2 {
        pool.add(tx1559(1, nonce, 10, 100), Origin::Remote).unwrap();
    }
    // A gap is refused; the next nonce extends the run, up to four.
    assert_eq!(
        pool.add(tx1559(1, 5, 10, 100), Origin::Remote),
        Err(Error::SenderLimit)
    );
    pool.add(tx1559(1, 2, 10, 100), Origin::Remote).unwrap();
    pool.add(tx1559(1, 3, 10, 100), Origin::Remote).unwrap();
    assert_eq!(
        pool.add(tx1559(1, 4, 10, 100), Origin::Remote),
        Err(Error::SenderLimit)
    );
    // A sender whose two nonces have a gap gets nothing more.
    pool.add(tx1559(2, 0, 10, 100), Origin::Remote).unwrap();
    pool.add(tx1559(2, 2, 10, 100), Origin::Remote).unwrap();
    assert_eq!(
        pool.add(tx1559(2, 3, 10, 100), Origin::Remote),
        Err(Error::SenderLimit)
    );
}
