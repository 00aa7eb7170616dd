//! Spec vectors that are whole eth messages or whole fork schedules, as unit tests of the
//! public API: every EIP-2481 packet (request ids on every request and response) and the
//! Ropsten, Rinkeby and Görli tables of EIP-2124 (the mainnet table, the validation cases
//! and the RLP encodings are in `src/eth/forkid.rs`). The vectors are copied from the
//! EIPs in `shared/spec/eips/`.

use alloy_primitives::{B256, Bytes, b256, hex};
use protocols::eth::forkid::{Filter, ForkId};
use protocols::eth::messages::{Message, RequestPair, code};
use protocols::eth::{ETH68, ETH69};

/// `GetBlockHeadersPacket66`.
const GET_HEADERS_BY_HASH: &str =
    "e8820457e4a000000000000000000000000000000000000000000000000000000000deadc0de050580";
/// `GetBlockHeadersPacket66`.
const GET_HEADERS_BY_NUMBER: &str = "ca820457c682270f050580";
/// `BlockHeadersPacket66`.
const BLOCK_HEADERS: &str = concat!(
    "f90202820457f901fcf901f9a000000000000000000000000000000000000000000000000000000000000000",
    "00a0000000000000000000000000000000000000000000000000000000000000000094000000000000000000",
    "0000000000000000000000a00000000000000000000000000000000000000000000000000000000000000000",
    "a00000000000000000000000000000000000000000000000000000000000000000a000000000000000000000",
    "00000000000000000000000000000000000000000000b9010000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "00000000000000000000000000000000008208ae820d0582115c8215b3821a0a827788a00000000000000000",
    "000000000000000000000000000000000000000000000000880000000000000000",
);
/// `GetBlockBodiesPacket66`.
const GET_BLOCK_BODIES: &str = concat!(
    "f847820457f842a000000000000000000000000000000000000000000000000000000000deadc0dea0000000",
    "00000000000000000000000000000000000000000000000000feedbeef",
);
/// `BlockBodiesPacket66`.
const BLOCK_BODIES: &str = concat!(
    "f902dc820457f902d6f902d3f8d2f867088504a817c8088302e2489435353535353535353535353535353535",
    "353535358202008025a064b1702d9298fee62dfeccc57d322a463ad55ca201256d01f62b45b2e1c21c12a064",
    "b1702d9298fee62dfeccc57d322a463ad55ca201256d01f62b45b2e1c21c10f867098504a817c80983033450",
    "9435353535353535353535353535353535353535358202d98025a052f8f61201b2b11a78d6e866abc9c3db2a",
    "e8631fa656bfe5cb53668255367afba052f8f61201b2b11a78d6e866abc9c3db2ae8631fa656bfe5cb536682",
    "55367afbf901fcf901f9a00000000000000000000000000000000000000000000000000000000000000000a0",
    "0000000000000000000000000000000000000000000000000000000000000000940000000000000000000000",
    "000000000000000000a00000000000000000000000000000000000000000000000000000000000000000a000",
    "00000000000000000000000000000000000000000000000000000000000000a0000000000000000000000000",
    "0000000000000000000000000000000000000000b90100000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000008208ae820d0582115c8215b3821a0a827788a000000000000000000000",
    "00000000000000000000000000000000000000000000880000000000000000",
);
/// `GetNodeDataPacket66`.
const GET_NODE_DATA: &str = concat!(
    "f847820457f842a000000000000000000000000000000000000000000000000000000000deadc0dea0000000",
    "00000000000000000000000000000000000000000000000000feedbeef",
);
/// `NodeDataPacket66`.
const NODE_DATA: &str = "ce820457ca84deadc0de84feedbeef";
/// `GetReceiptsPacket66`.
const GET_RECEIPTS: &str = concat!(
    "f847820457f842a000000000000000000000000000000000000000000000000000000000deadc0dea0000000",
    "00000000000000000000000000000000000000000000000000feedbeef",
);
/// `ReceiptsPacket66`.
const RECEIPTS: &str = concat!(
    "f90172820457f9016cf90169f901668001b90100000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000f85ff85d940000000000000000000000000000000000000011f842a000000000",
    "0000000000000000000000000000000000000000000000000000deada0000000000000000000000000000000",
    "000000000000000000000000000000beef830100ff",
);
/// `GetPooledTransactionsPacket66`.
const GET_POOLED_TRANSACTIONS: &str = concat!(
    "f847820457f842a000000000000000000000000000000000000000000000000000000000deadc0dea0000000",
    "00000000000000000000000000000000000000000000000000feedbeef",
);
/// `PooledTransactionsPacket66`.
const POOLED_TRANSACTIONS: &str = concat!(
    "f8d7820457f8d2f867088504a817c8088302e248943535353535353535353535353535353535353535820200",
    "8025a064b1702d9298fee62dfeccc57d322a463ad55ca201256d01f62b45b2e1c21c12a064b1702d9298fee6",
    "2dfeccc57d322a463ad55ca201256d01f62b45b2e1c21c10f867098504a817c8098303345094353535353535",
    "35353535353535353535353535358202d98025a052f8f61201b2b11a78d6e866abc9c3db2ae8631fa656bfe5",
    "cb53668255367afba052f8f61201b2b11a78d6e866abc9c3db2ae8631fa656bfe5cb53668255367afb",
);

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).expect("vector is hex")
}

/// Decodes `vector` as eth/68 message `c`, checks it re-encodes to the same bytes and
/// returns it.
fn round_trip(c: u8, vector: &str) -> Message {
    let bytes = unhex(vector);
    let m = Message::decode(ETH68, c, &bytes).unwrap_or_else(|e| panic!("code {c}: {e}"));
    assert_eq!(m.code(), c);
    assert_eq!(hex::encode(m.encode()), vector, "code {c} re-encoded");
    m
}

const DEADC0DE: B256 = b256!("00000000000000000000000000000000000000000000000000000000deadc0de");
const FEEDBEEF: B256 = b256!("00000000000000000000000000000000000000000000000000000000feedbeef");

#[test]
fn eip2481_requests() {
    let Message::GetBlockHeaders(r) = round_trip(code::GET_BLOCK_HEADERS, GET_HEADERS_BY_HASH)
    else {
        panic!("not GetBlockHeaders")
    };
    assert_eq!(r.request_id, 1111);
    assert_eq!(
        r.message.origin,
        protocols::eth::messages::BlockId::Hash(DEADC0DE)
    );
    assert_eq!(
        (r.message.amount, r.message.skip, r.message.reverse),
        (5, 5, false)
    );
    let Message::GetBlockHeaders(r) = round_trip(code::GET_BLOCK_HEADERS, GET_HEADERS_BY_NUMBER)
    else {
        panic!("not GetBlockHeaders")
    };
    assert_eq!(r.request_id, 1111);
    assert_eq!(
        r.message.origin,
        protocols::eth::messages::BlockId::Number(9999)
    );
    assert_eq!(
        (r.message.amount, r.message.skip, r.message.reverse),
        (5, 5, false)
    );
    for (c, vector) in [
        (code::GET_BLOCK_BODIES, GET_BLOCK_BODIES),
        (code::GET_RECEIPTS, GET_RECEIPTS),
        (code::GET_POOLED_TRANSACTIONS, GET_POOLED_TRANSACTIONS),
    ] {
        let want = RequestPair {
            request_id: 1111,
            message: vec![DEADC0DE, FEEDBEEF],
        };
        let got = match round_trip(c, vector) {
            Message::GetBlockBodies(r)
            | Message::GetReceipts(r)
            | Message::GetPooledTransactions(r) => r,
            other => panic!("code {c} decoded as {other:?}"),
        };
        assert_eq!(got, want, "code {c}");
    }
}

#[test]
fn eip2481_responses() {
    let Message::BlockHeaders(r) = round_trip(code::BLOCK_HEADERS, BLOCK_HEADERS) else {
        panic!("not BlockHeaders")
    };
    assert_eq!(r.request_id, 1111);
    let [h] = r.message.as_slice() else {
        panic!("{} headers", r.message.len())
    };
    assert_eq!(
        (
            h.difficulty.to::<u64>(),
            h.number,
            h.gas_limit,
            h.gas_used,
            h.timestamp
        ),
        (0x8ae, 0xd05, 0x115c, 0x15b3, 0x1a0a)
    );
    assert_eq!(h.extra_data, Bytes::from_static(&[0x77, 0x88]));
    assert_eq!(
        h.hash_slow(),
        b256!("8c2f2af15b7b563b6ab1e09bed0e9caade7ed730aec98b70a993597a797579a9")
    );

    let tx_hashes = [
        b256!("588df025c4c2d757d3e314bd3dfbfe352687324e6b8557ad1731585e96928aed"),
        b256!("f39c7dac06a9f3abf09faf5e30439a349d3717611b3ed337cd52b0d192bc72da"),
    ];
    let Message::BlockBodies(r) = round_trip(code::BLOCK_BODIES, BLOCK_BODIES) else {
        panic!("not BlockBodies")
    };
    assert_eq!(r.request_id, 1111);
    let [body] = r.message.as_slice() else {
        panic!("{} bodies", r.message.len())
    };
    let hashes: Vec<B256> = body.transactions.iter().map(|t| *t.tx_hash()).collect();
    assert_eq!(hashes, tx_hashes);
    assert_eq!(body.ommers.len(), 1);
    assert_eq!(
        body.ommers[0].hash_slow(),
        h.hash_slow(),
        "the uncle is that header"
    );

    let Message::PooledTransactions(r) = round_trip(code::POOLED_TRANSACTIONS, POOLED_TRANSACTIONS)
    else {
        panic!("not PooledTransactions")
    };
    assert_eq!(r.request_id, 1111);
    let hashes: Vec<B256> = r.message.iter().map(|t| *t.hash()).collect();
    assert_eq!(hashes, tx_hashes);

    let Message::Receipts68(r) = round_trip(code::RECEIPTS, RECEIPTS) else {
        panic!("not Receipts")
    };
    assert_eq!(r.request_id, 1111);
    let [block] = r.message.as_slice() else {
        panic!("{} blocks of receipts", r.message.len())
    };
    let [receipt] = block.as_slice() else {
        panic!("{} receipts", block.len())
    };
    assert!(!receipt.status());
    assert_eq!(receipt.cumulative_gas_used(), 1);
    let [log] = receipt.logs() else {
        panic!("{} logs", receipt.logs().len())
    };
    assert_eq!(
        log.address,
        alloy_primitives::address!("0000000000000000000000000000000000000011")
    );
    assert_eq!(
        log.data.topics(),
        [
            b256!("000000000000000000000000000000000000000000000000000000000000dead"),
            b256!("000000000000000000000000000000000000000000000000000000000000beef"),
        ]
    );
    assert_eq!(log.data.data, Bytes::from_static(&[0x01, 0x00, 0xff]));
}

/// GetNodeData (0x0d) and NodeData (0x0e) were retired in eth/67: both codes are unknown
/// to us, but their EIP-2481 layout is the same `[request-id, [...]]`.
#[test]
fn eip2481_node_data_layout() {
    for (c, vector) in [(0x0d, GET_NODE_DATA), (0x0e, NODE_DATA)] {
        for version in [ETH68, ETH69] {
            assert!(
                Message::decode(version, c, &unhex(vector)).is_err(),
                "code {c:#x} is retired"
            );
        }
    }
    let bytes = unhex(GET_NODE_DATA);
    let r: RequestPair<Vec<B256>> = alloy_rlp::decode_exact(&bytes).unwrap();
    assert_eq!(
        (r.request_id, r.message.clone()),
        (1111, vec![DEADC0DE, FEEDBEEF])
    );
    assert_eq!(alloy_rlp::encode(&r), bytes);
    let bytes = unhex(NODE_DATA);
    let r: RequestPair<Vec<Bytes>> = alloy_rlp::decode_exact(&bytes).unwrap();
    assert_eq!(r.request_id, 1111);
    assert_eq!(
        r.message,
        [
            Bytes::from_static(&[0xde, 0xad, 0xc0, 0xde]),
            Bytes::from_static(&[0xfe, 0xed, 0xbe, 0xef])
        ]
    );
    assert_eq!(alloy_rlp::encode(&r), bytes);
}

fn check(filter: &Filter, table: &[(u64, u32, u64)]) {
    for &(head, hash, next) in table {
        assert_eq!(
            filter.fork_id(head, 0),
            ForkId {
                hash: hash.to_be_bytes(),
                next
            },
            "head {head}"
        );
    }
}

/// EIP-2124: Ropsten (Homestead and Tangerine at genesis, Spurious 10, Byzantium
/// 1700000, Constantinople 4230000, Petersburg 4939394, Istanbul 6485846).
#[test]
fn eip2124_ropsten() {
    let genesis = b256!("41941023680923e0fe4d74a34bdac8141f2540e3ae90623718e47d66d1ca4a2d");
    let blocks = [0, 0, 10, 10, 1700000, 4230000, 4939394, 6485846];
    check(
        &Filter::new(genesis, 0, blocks, []),
        &[
            (0, 0x30c7ddbc, 10),
            (9, 0x30c7ddbc, 10),
            (10, 0x63760190, 1700000),
            (1699999, 0x63760190, 1700000),
            (1700000, 0x3ea159c7, 4230000),
            (4229999, 0x3ea159c7, 4230000),
            (4230000, 0x97b544f3, 4939394),
            (4939393, 0x97b544f3, 4939394),
            (4939394, 0xd6e2149b, 6485846),
            (6485845, 0xd6e2149b, 6485846),
            (6485846, 0x4bc66396, 0),
            (7500000, 0x4bc66396, 0),
        ],
    );
}

/// EIP-2124: Rinkeby (Homestead 1, Tangerine 2, Spurious 3, Byzantium 1035301,
/// Constantinople 3660663, Petersburg 4321234, Istanbul 5435345).
#[test]
fn eip2124_rinkeby() {
    let genesis = b256!("6341fd3daf94b748c72ced5a5b26028f2474f5f00d824504e4fa37a75767e177");
    let blocks = [1, 2, 3, 3, 1035301, 3660663, 4321234, 5435345];
    check(
        &Filter::new(genesis, 0, blocks, []),
        &[
            (0, 0x3b8e0691, 1),
            (1, 0x60949295, 2),
            (2, 0x8bde40dd, 3),
            (3, 0xcb3a64bb, 1035301),
            (1035300, 0xcb3a64bb, 1035301),
            (1035301, 0x8d748b57, 3660663),
            (3660662, 0x8d748b57, 3660663),
            (3660663, 0xe49cab14, 4321234),
            (4321233, 0xe49cab14, 4321234),
            (4321234, 0xafec6b27, 5435345),
            (5435344, 0xafec6b27, 5435345),
            (5435345, 0xcbdb8838, 0),
            (6000000, 0xcbdb8838, 0),
        ],
    );
}

/// EIP-2124: Görli (every fork to Petersburg at genesis, Istanbul 1561651).
#[test]
fn eip2124_goerli() {
    let genesis = b256!("bf7e331f7f7c1dd2e05159666b3bf8bc7a8a3a9eb1d518969eab529dd9b88c1a");
    check(
        &Filter::new(genesis, 0, [0, 1561651], []),
        &[
            (0, 0xa3f5ab08, 1561651),
            (1561650, 0xa3f5ab08, 1561651),
            (1561651, 0xc25efa5c, 0),
            (2000000, 0xc25efa5c, 0),
        ],
    );
}
