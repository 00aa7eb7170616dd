//! The bundled test chain (`testdata/ethtest`, blocks 1..600), for the examples.

use devp2p::chain::Block;

/// Blocks `1..=upto` of the bundled chain (all 600 if `upto` is larger).
pub(crate) fn blocks(upto: u64) -> Vec<Block> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/ethtest/chain.rlp");
    let data = std::fs::read(path).expect("the bundled chain.rlp");
    let mut rest = data.as_slice();
    let mut out = Vec::new();
    while !rest.is_empty() {
        let block: Block = alloy_rlp::Decodable::decode(&mut rest).expect("a valid chain file");
        if block.header.number > upto {
            break;
        }
        out.push(block);
    }
    out
}
