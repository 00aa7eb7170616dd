//! Unit tests of the eth wire types.
use super::*;

#[test]
fn item_bombs_are_refused_before_decoding() {
    // 10 MiB-class payloads of minimal items: refused by count, not decoded.
    let tiny_tx = [0xc9u8, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x1b, 0x80, 0x80];
    let mut txs = Vec::new();
    for _ in 0..200_000 {
        txs.extend_from_slice(&tiny_tx);
    }
    let mut payload = Vec::new();
    alloy_rlp::Header {
        list: true,
        payload_length: txs.len(),
    }
    .encode(&mut payload);
    payload.extend(txs);
    assert!(matches!(
        Message::decode(ETH68, code::TRANSACTIONS, &payload),
        Err(Error::TooManyItems { .. })
    ));
    // Deep nesting cannot overflow the walker's stack.
    let mut deep = vec![0xc0u8];
    for _ in 0..3_000 {
        let mut outer = Vec::new();
        alloy_rlp::Header {
            list: true,
            payload_length: deep.len(),
        }
        .encode(&mut outer);
        outer.extend(deep);
        deep = outer;
    }
    assert!(Message::decode(ETH68, code::BLOCK_HEADERS, &deep).is_err());
}
use alloy_primitives::hex;

#[test]
fn block_id_number_or_hash() {
    for id in [
        BlockId::Number(0),
        BlockId::Number(u64::MAX),
        BlockId::Hash(B256::repeat_byte(7)),
    ] {
        let enc = alloy_rlp::encode(id);
        assert_eq!(BlockId::decode(&mut enc.as_slice()), Ok(id));
    }
    // A 9-byte number overflows u64.
    let too_big = hex!("89010000000000000000");
    assert!(BlockId::decode(&mut &too_big[..]).is_err());
}

#[test]
fn eip2481_vectors() {
    let deadc0de = B256::from(hex!(
        "00000000000000000000000000000000000000000000000000000000deadc0de"
    ));
    let feedbeef = B256::from(hex!(
        "00000000000000000000000000000000000000000000000000000000feedbeef"
    ));
    let by_hash = Message::GetBlockHeaders(RequestPair {
        request_id: 1111,
        message: GetBlockHeaders {
            origin: BlockId::Hash(deadc0de),
            amount: 5,
            skip: 5,
            reverse: false,
        },
    });
    let by_number = Message::GetBlockHeaders(RequestPair {
        request_id: 1111,
        message: GetBlockHeaders {
            origin: BlockId::Number(9999),
            amount: 5,
            skip: 5,
            reverse: false,
        },
    });
    let bodies = Message::GetBlockBodies(RequestPair {
        request_id: 1111,
        message: vec![deadc0de, feedbeef],
    });
    let cases: [(Message, &[u8]); 3] = [
        (
            by_hash,
            &hex!(
                "e8820457e4a000000000000000000000000000000000000000000000000000000000deadc0de050580"
            ),
        ),
        (by_number, &hex!("ca820457c682270f050580")),
        (
            bodies,
            &hex!(
                "f847820457f842a000000000000000000000000000000000000000000000000000000000deadc0dea000000000000000000000000000000000000000000000000000000000feedbeef"
            ),
        ),
    ];
    for (m, want) in cases {
        assert_eq!(m.encode().as_ref(), want);
        assert_eq!(Message::decode(ETH68, m.code(), want), Ok(m));
    }
}

#[test]
fn unknown_and_version_specific_codes() {
    let empty_list = [0xc0];
    for c in [0x0b, 0x0c, 0x0d, 0x0e, 0x12, 0xff] {
        assert!(matches!(
            Message::decode(ETH69, c, &empty_list),
            Err(Error::UnknownCode { .. })
        ));
    }
    let bru = BlockRangeUpdate {
        earliest: 0,
        latest: 1,
        latest_hash: B256::repeat_byte(1),
    };
    let enc = alloy_rlp::encode(bru);
    assert!(Message::decode(ETH68, code::BLOCK_RANGE_UPDATE, &enc).is_err());
    assert!(Message::decode(ETH69, code::BLOCK_RANGE_UPDATE, &enc).is_ok());
    assert!(matches!(
        Message::decode(ETH69, code::NEW_BLOCK, &empty_list),
        Err(Error::UnknownCode { .. })
    ));
}

#[test]
fn trailing_bytes_and_garbage_rejected() {
    let mut enc = alloy_rlp::encode(BlockRangeUpdate {
        earliest: 0,
        latest: 1,
        latest_hash: B256::repeat_byte(1),
    });
    enc.push(0x80);
    assert_eq!(
        Message::decode(ETH69, code::BLOCK_RANGE_UPDATE, &enc),
        Err(Error::Trailing(code::BLOCK_RANGE_UPDATE))
    );
    for c in 0..=0x11 {
        assert!(Message::decode(ETH69, c, &[0xff, 0xff, 0xff]).is_err());
        assert!(Message::decode(ETH68, c, &[]).is_err());
    }
}

#[test]
fn new_block_encoded_from_a_borrow() {
    let block = Block::<TxEnvelope> {
        header: Header {
            number: 7,
            extra_data: Bytes::from_static(b"x"),
            ..Default::default()
        },
        body: Default::default(),
    };
    let td = U256::from(99);
    let whole = Message::NewBlock(Box::new(NewBlock {
        block: block.clone(),
        td,
    }));
    assert_eq!(encode_new_block(&block, td), whole.encode());
}

#[test]
fn raw_items_pass_through() {
    let items = [
        Raw(alloy_rlp::encode(1u64).into()),
        Raw(alloy_rlp::encode(B256::ZERO).into()),
    ];
    let enc = encode_raw_response(9, &items);
    let back: RequestPair<Vec<Raw>> = Decodable::decode(&mut enc.as_ref()).unwrap();
    assert_eq!(back.request_id, 9);
    assert_eq!(back.message, items);
    let empty = encode_raw_response(3, &[Raw(vec![0xc0].into()), Raw(vec![0xc0].into())]);
    assert_eq!(empty.as_ref(), &[0xc4, 0x03, 0xc2, 0xc0, 0xc0]);
}
