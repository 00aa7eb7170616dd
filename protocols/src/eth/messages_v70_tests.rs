use alloy_primitives::{B256, Bytes, keccak256};

use super::*;
use crate::eth::messages::{
    ETH68, ETH69, ETH70, ETH71, ETH72, Error, Message, RequestPair, code, message_count,
};

fn hash(i: u8) -> B256 {
    B256::repeat_byte(i)
}

fn announcement() -> NewPooledTransactionHashes {
    NewPooledTransactionHashes {
        types: Bytes::from_static(&[2, 3]),
        sizes: vec![120, 700],
        hashes: vec![hash(1), hash(2)],
    }
}

fn receipt() -> Receipt69 {
    Receipt69 {
        tx_type: 2,
        post_state_or_status: Bytes::from_static(&[1]),
        cumulative_gas: 21_000,
        logs: Vec::new(),
    }
}

/// Every new message decodes back to itself in the version that has it.
#[test]
fn new_messages_round_trip() {
    let bal = Raw(Bytes::from_static(&[0xc0]));
    let cases = [
        (
            ETH72,
            Message::NewPooledTransactionHashes72(NewPooledTransactionHashes72 {
                announcement: announcement(),
                cells: CellMask::DATA,
            }),
        ),
        (
            ETH70,
            Message::GetReceipts70(GetReceipts70 {
                request_id: 7,
                first_block_receipt_index: 3,
                hashes: vec![hash(1), hash(2)],
            }),
        ),
        (
            ETH70,
            Message::Receipts70(Receipts70 {
                request_id: 7,
                last_block_incomplete: true,
                receipts: vec![vec![receipt()], vec![receipt(), receipt()]],
            }),
        ),
        (
            ETH71,
            Message::GetBlockAccessLists(RequestPair {
                request_id: 9,
                message: vec![hash(3)],
            }),
        ),
        (
            ETH71,
            Message::BlockAccessLists(RequestPair {
                request_id: 9,
                message: vec![Raw(Bytes::from_static(BAL_UNAVAILABLE)), bal],
            }),
        ),
        (
            ETH72,
            Message::GetCells(GetCells {
                request_id: 11,
                hashes: vec![hash(4)],
                cells: CellMask::DATA,
            }),
        ),
        (
            ETH72,
            Message::Cells(Cells {
                request_id: 11,
                hashes: vec![hash(4)],
                cells: vec![vec![Cell::repeat_byte(5); 2]],
                mask: CellMask([3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            }),
        ),
    ];
    for (version, m) in cases {
        let enc = m.encode();
        assert_eq!(Message::decode(version, m.code(), &enc), Ok(m.clone()));
        // Later versions keep the layout (eth/72 is the last we speak).
        for later in version..=ETH72 {
            assert!(
                Message::decode(later, m.code(), &enc).is_ok(),
                "{later} {m:?}"
            );
        }
    }
}

/// Each version decodes exactly its own message codes.
#[test]
fn codes_belong_to_their_versions() {
    let get_bals = Message::GetBlockAccessLists(RequestPair {
        request_id: 1,
        message: vec![hash(1)],
    })
    .encode();
    let get_cells = Message::GetCells(GetCells {
        request_id: 1,
        hashes: vec![hash(1)],
        cells: CellMask::NONE,
    })
    .encode();
    for v in [ETH68, ETH69, ETH70] {
        assert!(matches!(
            Message::decode(v, code::GET_BLOCK_ACCESS_LISTS, &get_bals),
            Err(Error::UnknownCode { .. })
        ));
    }
    assert!(Message::decode(ETH71, code::GET_BLOCK_ACCESS_LISTS, &get_bals).is_ok());
    assert!(matches!(
        Message::decode(ETH71, code::GET_CELLS, &get_cells),
        Err(Error::UnknownCode { .. })
    ));
    assert!(Message::decode(ETH72, code::GET_CELLS, &get_cells).is_ok());
    // Message counts: the highest code of each version plus one.
    assert_eq!(message_count(ETH68), Some(code::RECEIPTS + 1));
    assert_eq!(message_count(ETH69), Some(code::BLOCK_RANGE_UPDATE + 1));
    assert_eq!(message_count(ETH70), Some(code::BLOCK_RANGE_UPDATE + 1));
    assert_eq!(message_count(ETH71), Some(code::BLOCK_ACCESS_LISTS + 1));
    assert_eq!(message_count(ETH72), Some(code::CELLS + 1));
    assert_eq!(message_count(73), None);
}

/// The announcement codec depends on the version: no bitmap before eth/72, a 16-byte
/// bitmap in eth/72; either layout in the other version is malformed.
#[test]
fn announcement_layout_is_versioned() {
    let v68 = Message::NewPooledTransactionHashes(announcement()).encode();
    let v72 = Message::NewPooledTransactionHashes72(NewPooledTransactionHashes72 {
        announcement: announcement(),
        cells: CellMask::DATA,
    })
    .encode();
    for v in [ETH68, ETH69, ETH70, ETH71] {
        assert!(Message::decode(v, code::NEW_POOLED_TRANSACTION_HASHES, &v68).is_ok());
        assert!(Message::decode(v, code::NEW_POOLED_TRANSACTION_HASHES, &v72).is_err());
    }
    assert!(Message::decode(ETH72, code::NEW_POOLED_TRANSACTION_HASHES, &v68).is_err());
    // A bitmap of another length than 16 bytes is malformed.
    let mut short = v72.to_vec();
    let at = short.len() - 17;
    assert_eq!(short[at], 0x90);
    short[at] = 0x8f;
    short.pop();
    short[0] -= 1;
    assert!(Message::decode(ETH72, code::NEW_POOLED_TRANSACTION_HASHES, &short).is_err());
}

/// eth/70 receipts: the flag is a 0/1 integer, the list the third element.
#[test]
fn receipts70_flag_is_zero_or_one() {
    let m = Receipts70 {
        request_id: 1,
        last_block_incomplete: false,
        receipts: vec![Vec::new()],
    };
    let enc = Message::Receipts70(m).encode();
    // [id=1, flag=0x80, [[]]]: flag 2 is malformed.
    let mut bad = enc.to_vec();
    let at = bad.iter().position(|&b| b == 0x80).unwrap();
    bad[at] = 0x02;
    assert!(Message::decode(ETH70, code::RECEIPTS, &bad).is_err());
    // The eth/69 layout is not an eth/70 message.
    let v69 = Message::Receipts69(RequestPair {
        request_id: 1,
        message: vec![vec![receipt()]],
    })
    .encode();
    assert!(Message::decode(ETH70, code::RECEIPTS, &v69).is_err());
}

#[test]
fn cell_mask_bits_are_little_endian() {
    let mut m = CellMask::NONE;
    m.0[0] = 0b0000_0101;
    m.0[15] = 0x80;
    assert_eq!(m.indices().collect::<Vec<_>>(), vec![0, 2, 127]);
    assert_eq!(m.count(), 3);
    assert!(!m.is_subset_of(&CellMask::DATA));
    assert_eq!(
        m.intersection(&CellMask::DATA)
            .indices()
            .collect::<Vec<_>>(),
        vec![0, 2]
    );
    assert_eq!(
        CellMask::DATA.indices().collect::<Vec<_>>(),
        (0..64).collect::<Vec<_>>()
    );
    assert!(!m.is_set(128));
}

/// A Cells answer must fit its request: bitmap subset, requested transactions in order,
/// one cell per set index per blob.
#[test]
fn cells_answer_is_checked_against_its_request() {
    let req = GetCells {
        request_id: 1,
        hashes: vec![hash(1), hash(2)],
        cells: CellMask([0b11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
    };
    let two_blobs = |_: &B256| 2;
    let ok = Cells {
        request_id: 1,
        hashes: vec![hash(2)],
        cells: vec![vec![Cell::ZERO; 4]],
        mask: req.cells,
    };
    assert_eq!(ok.check(&req, two_blobs), Ok(()));
    let fewer = Cells {
        mask: CellMask([0b10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        cells: vec![vec![Cell::ZERO; 2]],
        ..ok.clone()
    };
    assert_eq!(fewer.check(&req, two_blobs), Ok(()));
    let wider = Cells {
        mask: CellMask([0b111, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        cells: vec![vec![Cell::ZERO; 6]],
        ..ok.clone()
    };
    assert_eq!(wider.check(&req, two_blobs), Err(CellsError::Mask));
    let short = Cells {
        cells: vec![vec![Cell::ZERO; 3]],
        ..ok.clone()
    };
    assert_eq!(short.check(&req, two_blobs), Err(CellsError::Inconsistent));
    let other = Cells {
        hashes: vec![hash(3)],
        ..ok.clone()
    };
    assert_eq!(other.check(&req, two_blobs), Err(CellsError::Unrequested));
    let reordered = Cells {
        hashes: vec![hash(2), hash(1)],
        cells: vec![vec![Cell::ZERO; 4]; 2],
        ..ok
    };
    assert_eq!(
        reordered.check(&req, two_blobs),
        Err(CellsError::Unrequested)
    );
}

#[test]
fn bals_are_checked_against_the_header_hash() {
    let bal = Raw(Bytes::from_static(&[0xc0]));
    assert!(bal_matches(&bal, &keccak256([0xc0])));
    assert!(!bal_matches(&bal, &keccak256([0xc1])));
    let unavailable = Raw(Bytes::from_static(BAL_UNAVAILABLE));
    assert!(!bal_matches(&unavailable, &keccak256(BAL_UNAVAILABLE)));
}

/// An Amsterdam header is a Prague header with `block-access-list-hash` appended as the
/// 22nd field (eth spec, "Block Encoding and Validity"): built that way from raw bytes, it
/// decodes with the hash in place and re-encodes to the same bytes.
#[test]
fn amsterdam_headers_decode_with_the_block_access_list_hash() {
    use alloy_rlp::{Decodable, Encodable};
    let header = alloy_consensus::Header {
        base_fee_per_gas: Some(7),
        withdrawals_root: Some(hash(1)),
        blob_gas_used: Some(0),
        excess_blob_gas: Some(0),
        parent_beacon_block_root: Some(hash(2)),
        requests_hash: Some(hash(3)),
        ..Default::default()
    };
    let mut prague = Vec::new();
    header.encode(&mut prague);
    let decoded = alloy_consensus::Header::decode(&mut prague.as_slice()).unwrap();
    assert_eq!(decoded.block_access_list_hash, None);
    // Append the field: re-frame the list with 33 more bytes.
    let mut h = prague.as_slice();
    let outer = alloy_rlp::Header::decode(&mut h).unwrap();
    let mut fields = h.to_vec();
    hash(9).encode(&mut fields);
    let mut amsterdam = Vec::new();
    alloy_rlp::Header {
        list: true,
        payload_length: outer.payload_length + 33,
    }
    .encode(&mut amsterdam);
    amsterdam.extend_from_slice(&fields);
    let decoded = alloy_consensus::Header::decode(&mut amsterdam.as_slice()).unwrap();
    assert_eq!(decoded.block_access_list_hash, Some(hash(9)));
    assert_eq!(decoded.requests_hash, Some(hash(3)));
    let mut again = Vec::new();
    decoded.encode(&mut again);
    assert_eq!(again, amsterdam);
    // Cut short inside the new field: an error, not a Prague header.
    assert!(alloy_consensus::Header::decode(&mut &amsterdam[..amsterdam.len() - 1]).is_err());
}
