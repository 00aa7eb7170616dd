//! EIP-706's test vectors: Rinkeby block 272621 (about 1.5 MB of RLP) compressed by Go's
//! and by Python's snappy library (`tests/data/eip706-block.{go,py}.snappy`, the EIP's
//! hex files decoded to bytes, as linked from it and kept in other clients'
//! test suites). Both must decompress to the same block, whose header hashes to the
//! block's known hash; and what we compress must decompress to it again.

use alloy_primitives::{b256, keccak256};
use alloy_rlp::Header;
use rlpx::p2p::Snappy;

const GO: &[u8] = include_bytes!("data/eip706-block.go.snappy");
const PY: &[u8] = include_bytes!("data/eip706-block.py.snappy");

/// The RLP items of the list at the start of `data`: (the whole list encoding, its items).
fn list_items(data: &[u8]) -> (&[u8], Vec<&[u8]>) {
    let mut rest = data;
    let h = Header::decode(&mut rest).expect("an RLP header");
    assert!(h.list, "not a list");
    let whole = &data[..data.len() - rest.len() + h.payload_length];
    let mut payload = &rest[..h.payload_length];
    let mut items = Vec::new();
    while !payload.is_empty() {
        let before = payload;
        let item = Header::decode(&mut payload).expect("an RLP item");
        payload = &payload[item.payload_length..];
        items.push(&before[..before.len() - payload.len()]);
    }
    (whole, items)
}

#[test]
fn go_and_python_encodings_decompress_to_rinkeby_block_272621() {
    let mut snappy = Snappy::default();
    assert_ne!(GO, PY, "two encodings of the same input");
    let from_go = snappy.decompress(GO).expect("Go's encoding decompresses");
    let from_py = snappy
        .decompress(PY)
        .expect("Python's encoding decompresses");
    assert_eq!(from_go, from_py);
    assert!(from_go.len() > 1_000_000, "{} bytes", from_go.len());

    // A block: [header, transactions, uncles], exactly the decompressed bytes.
    let (whole, block) = list_items(&from_go);
    assert_eq!(whole.len(), from_go.len(), "trailing bytes after the block");
    assert_eq!(block.len(), 3);
    let header = block[0];
    assert_eq!(
        keccak256(header),
        b256!("bd64134a158aa767120725614026cc5e614dd67a2cbbcdf72823c97981a08620")
    );
    // The header's 9th field is the block number.
    let (_, fields) = list_items(header);
    let mut number = fields[8];
    let number: u64 = alloy_rlp::Decodable::decode(&mut number).unwrap();
    assert_eq!(number, 272_621);

    // Our own encoding (another valid one) round-trips.
    let ours = snappy.compress(&from_go).unwrap();
    assert!(
        ours.len() < from_go.len() / 4,
        "{} of {} bytes",
        ours.len(),
        from_go.len()
    );
    assert_eq!(snappy.decompress(&ours).unwrap(), from_go);
}
