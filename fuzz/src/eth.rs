//! Fuzz entry point for the `eth` wire messages (`protocols::eth::messages`).

use protocols::eth::messages::Message;
use protocols::eth::size;

/// `data[0]` picks the version (eth/68 + `data[0] % 5`: 68 to 72), `data[1]` the message code,
/// the rest is the payload. Decoding must never panic; a decoded message must re-encode
/// to something that decodes to the same message; what a decoded block or transaction
/// list holds must be within the size estimate made before decoding.
pub fn message(data: &[u8]) {
    let [v, code, payload @ ..] = data else {
        return;
    };
    let version = version(*v);
    let Ok(msg) = Message::decode(version, *code, payload) else {
        return;
    };
    assert_eq!(msg.code(), *code);
    let estimate = size::estimate_versioned(version, *code, payload);
    let held = match &msg {
        Message::NewBlock(nb) => Some(std::mem::size_of_val(&**nb) + size::block_size(&nb.block)),
        Message::Transactions(txs) => Some(
            txs.first()
                .map_or(0, |t| txs.capacity() * std::mem::size_of_val(t))
                + txs.iter().map(size::tx_size).sum::<usize>(),
        ),
        _ => None,
    };
    if let Some(held) = held {
        assert!(
            held <= estimate,
            "decoded {held} bytes, estimated {estimate}"
        );
    }
    let again = Message::decode(version, *code, &msg.encode())
        .unwrap_or_else(|e| panic!("re-encoded eth message does not decode: {e}"));
    assert_eq!(again, msg, "eth message round trip");
}

/// The eth version a seed's first byte selects.
fn version(v: u8) -> u32 {
    68 + u32::from(v % 5)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-made seeds are valid messages, so fuzzing starts past the decoder's
    /// first checks.
    #[test]
    fn seeds_decode() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/corpus/eth_message");
        for name in [
            "status68",
            "get_headers",
            "get_headers_hash_huge",
            "pooled_hashes",
            "block_range",
            "get_receipts70",
            "receipts70",
            "get_block_access_lists",
            "block_access_lists",
            "pooled_hashes72",
            "get_cells",
            "cells",
        ] {
            let data = std::fs::read(format!("{dir}/{name}")).unwrap();
            let version = version(data[0]);
            let decoded = Message::decode(version, data[1], &data[2..]);
            assert!(decoded.is_ok(), "{name}: {decoded:?}");
            message(&data);
        }
    }
}
