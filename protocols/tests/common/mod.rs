//! Shared harness for the eth integration tests: the ethtest chain, two RLPx peers over an
//! in-memory duplex, and a scripted raw peer.

#![allow(dead_code)]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy_primitives::{Address, B256, Signature, TxKind, U256};
use alloy_rlp::Decodable;
use bytes::Bytes;
use protocols::Subprotocol;
use protocols::eth::forkid::Filter;
use protocols::eth::messages::{Message, Status};
use protocols::eth::{self, Chain, Eth, MemoryChain};
use rlpx::{Config, Peer, Protocol, ProtocolHandle, conn};
use secp256k1::{PublicKey, SecretKey};
use tokio::sync::mpsc;

/// go-ethereum's hive `ethtest` chain (`testdata/ethtest`, see its `forkenv.json`).
pub(crate) const NETWORK_ID: u64 = 3_503_995_874_084_926;

/// The ethtest chain: blocks 1..=600 from `chain.rlp` (the genesis is not in the file;
/// its hash is block 1's parent), with their receipts from `receipts.rlp`.
pub(crate) fn chain() -> MemoryChain {
    static CHAIN: OnceLock<MemoryChain> = OnceLock::new();
    CHAIN
        .get_or_init(|| {
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/ethtest/chain.rlp");
            let data = std::fs::read(path).expect("testdata/ethtest/chain.rlp");
            let first =
                alloy_consensus::Block::<alloy_consensus::TxEnvelope>::decode(&mut data.as_slice())
                    .expect("first block");
            let genesis = first.header.parent_hash;
            // All block forks and Shanghai at genesis; Cancun at time 60, Prague at 120.
            let filter = Filter::new(genesis, 0, [], [0, 60, 120]);
            // Genesis difficulty 0x20000 = the terminal total difficulty.
            let mut chain =
                MemoryChain::from_rlp(NETWORK_ID, genesis, filter, U256::from(0x20000), &data)
                    .expect("chain.rlp");
            let path = concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../testdata/ethtest/receipts.rlp"
            );
            let receipts = std::fs::read(path).expect("testdata/ethtest/receipts.rlp");
            assert_eq!(chain.add_receipts(&receipts).expect("receipts.rlp"), 600);
            chain
        })
        .clone()
}

/// The decoded blocks of `chain.rlp`.
pub(crate) fn blocks() -> Vec<alloy_consensus::Block<alloy_consensus::TxEnvelope>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/ethtest/chain.rlp");
    let data = std::fs::read(path).expect("chain.rlp");
    let mut buf = data.as_slice();
    let mut out = Vec::new();
    while !buf.is_empty() {
        out.push(Decodable::decode(&mut buf).expect("block"));
    }
    out
}

fn key() -> SecretKey {
    SecretKey::new(&mut rand::rng())
}

/// Two peers over an in-memory duplex, offering `a` and `b`.
pub(crate) async fn spawn_pair(a: Vec<Protocol>, b: Vec<Protocol>) -> (Peer, Peer) {
    let a_cfg = Config {
        protocols: a,
        ..Config::default()
    };
    let b_cfg = Config {
        protocols: b,
        ..Config::default()
    };
    let (a_io, b_io) = tokio::io::duplex(1 << 20);
    let (a_key, b_key) = (key(), key());
    let b_id = PublicKey::from_secret_key_global(&b_key);
    let (a, b) = tokio::join!(
        conn::dial(a_io, None, &a_key, b_id, &a_cfg),
        conn::listen_one(b_io, None, &b_key, &b_cfg),
    );
    (a.expect("dial"), b.expect("accept"))
}

/// A node running `Eth` over `chain` on one side of a connection.
pub(crate) struct Node {
    pub handle: eth::Handle,
    pub events: mpsc::Receiver<eth::Event>,
    pub peer: Peer,
}

/// Our Eth on side A (over `chain`, `config`) against a raw eth/`version` handle on B.
pub(crate) async fn eth_vs_raw(
    chain: Arc<dyn Chain>,
    config: eth::Config,
    version: u32,
) -> (Node, Peer, ProtocolHandle) {
    let (eth, handle, events) = Eth::new(chain, config);
    let messages = eth::messages::message_count(version).expect("a version we speak");
    let (mut a, mut b) = spawn_pair(
        eth.protocols(),
        vec![Protocol::new("eth", version, messages)],
    )
    .await;
    let a_eth = a.take_protocol("eth").expect("eth shared");
    tokio::spawn(eth.handle(a_eth));
    let raw = b.take_protocol("eth").expect("eth shared");
    (
        Node {
            handle,
            events,
            peer: a,
        },
        b,
        raw,
    )
}

/// Our Eth on both sides.
pub(crate) async fn eth_pair(
    a_chain: Arc<dyn Chain>,
    a_config: eth::Config,
    b_chain: Arc<dyn Chain>,
    b_config: eth::Config,
) -> (Node, Node) {
    let (a_eth, a_handle, a_events) = Eth::new(a_chain, a_config);
    let (b_eth, b_handle, b_events) = Eth::new(b_chain, b_config);
    let (mut a, mut b) = spawn_pair(a_eth.protocols(), b_eth.protocols()).await;
    tokio::spawn(a_eth.handle(a.take_protocol("eth").expect("eth")));
    tokio::spawn(b_eth.handle(b.take_protocol("eth").expect("eth")));
    (
        Node {
            handle: a_handle,
            events: a_events,
            peer: a,
        },
        Node {
            handle: b_handle,
            events: b_events,
            peer: b,
        },
    )
}

/// Receives the next message within 5 s and decodes it for `version`.
pub(crate) async fn recv(raw: &mut ProtocolHandle, version: u32) -> Message {
    let (c, data) = tokio::time::timeout(Duration::from_secs(5), raw.recv())
        .await
        .expect("message in time")
        .expect("session open");
    Message::decode(version, c, &data).expect("valid message")
}

/// Sends `msg` on the raw handle.
pub(crate) async fn send(raw: &ProtocolHandle, msg: &Message) {
    raw.send(msg.code(), msg.encode()).await.expect("send");
}

/// Sends raw bytes with `c`.
pub(crate) async fn send_bytes(raw: &ProtocolHandle, c: u8, data: Vec<u8>) {
    raw.send(c, Bytes::from(data)).await.expect("send");
}

/// Completes the Status exchange on the raw side with a correct Status for `version`,
/// returning the Status our node sent.
pub(crate) async fn handshake(raw: &mut ProtocolHandle, chain: &dyn Chain, version: u32) -> Status {
    let Message::Status(theirs) = recv(raw, version).await else {
        panic!("first message is not Status");
    };
    let ours = protocols::eth::status::local(chain, version);
    send(raw, &Message::Status(ours)).await;
    theirs
}

/// The hash of the canonical block `n` of the test chain.
pub(crate) fn hash(n: u64) -> B256 {
    chain().hash_by_number(n).expect("block in chain")
}

/// Waits for our node to disconnect `raw_peer` with `want`, and returns the error its
/// `PeerDisconnected` event reports.
pub(crate) async fn expect_disconnect(
    node: &mut Node,
    raw_peer: &rlpx::Peer,
    want: rlpx::DisconnectReason,
) -> eth::Error {
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(5), raw_peer.closed())
            .await
            .expect("closed in time"),
        rlpx::CloseReason::Remote(want)
    );
    loop {
        match tokio::time::timeout(Duration::from_secs(5), node.events.recv())
            .await
            .expect("event")
            .expect("open")
        {
            eth::Event::PeerDisconnected { error: Some(e), .. } => return e,
            eth::Event::PeerConnected { .. } => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// An ordering barrier: asks our node for the genesis header with request id `id` and
/// waits for the answer, skipping anything else it sends meanwhile. Our node handles a
/// peer's messages in order, so once this returns it has handled every message sent
/// before; returns what it skipped.
pub(crate) async fn barrier(raw: &mut ProtocolHandle, version: u32, id: u64) -> Vec<Message> {
    use protocols::eth::messages::{BlockId, GetBlockHeaders, RequestPair};
    let ask = Message::GetBlockHeaders(RequestPair {
        request_id: id,
        message: GetBlockHeaders {
            origin: BlockId::Number(0),
            amount: 1,
            skip: 0,
            reverse: false,
        },
    });
    send(raw, &ask).await;
    let mut skipped = Vec::new();
    loop {
        match recv(raw, version).await {
            Message::BlockHeaders(r) if r.request_id == id => return skipped,
            other => skipped.push(other),
        }
    }
}

/// The x coordinate of secp256k1's generator: a valid `r`. With it any `s` recovers some
/// key, so an attacker needs no private key to make transactions with distinct senders
/// whose checking costs a full recovery each.
pub(crate) const GX: [u8; 32] = [
    0x79, 0xbe, 0x66, 0x7e, 0xf9, 0xdc, 0xbb, 0xac, 0x55, 0xa0, 0x62, 0x95, 0xce, 0x87, 0x0b, 0x07,
    0x02, 0x9b, 0xfc, 0xdb, 0x2d, 0xce, 0x28, 0xd9, 0x59, 0xf2, 0x81, 0x5b, 0x16, 0xf8, 0x17, 0x98,
];

/// `n` valid-looking EIP-1559 transfers with distinct random senders (`tag` keeps two
/// attackers' sets apart).
pub(crate) fn flood(n: usize, tag: u8) -> Vec<TxEnvelope> {
    (0..n)
        .map(|i| {
            let tx = TxEip1559 {
                chain_id: NETWORK_ID,
                nonce: i as u64,
                gas_limit: 21_000,
                max_fee_per_gas: 2,
                max_priority_fee_per_gas: 1,
                to: TxKind::Call(Address::repeat_byte(tag)),
                value: U256::ZERO,
                ..Default::default()
            };
            // s below n/2 (EIP-2), random: a distinct sender per transaction.
            let mut s: [u8; 32] = rand::random();
            s[0] &= 0x3f;
            let sig = Signature::new(
                U256::from_be_bytes(GX),
                U256::from_be_bytes(s),
                rand::random(),
            );
            TxEnvelope::Eip1559(tx.into_signed(sig))
        })
        .collect()
}
