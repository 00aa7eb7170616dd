//! Fuzz entry points for the discovery v4 decoders: packets (and the protocol state machine
//! consuming them) and node records.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::time::Instant;

use discovery::enr::Enr;
use discovery::packet::{self, MAX_PACKET_SIZE, Message};
use discovery::{Config, Protocol};
use secp256k1::SecretKey;

thread_local! {
    static PROTO: RefCell<Option<(Protocol, Instant)>> = const { RefCell::new(None) };
}

/// Decodes `data` as a discovery packet, checks decoder invariants, and feeds it to a
/// long-lived [`Protocol`] (which must never panic on any input).
pub fn packet(data: &[u8]) {
    if let Ok(p) = packet::decode(data) {
        assert!(data.len() <= MAX_PACKET_SIZE);
        assert_eq!(data.get(97).copied(), Some(p.message.kind()));
        if let Message::Neighbors(n) = &p.message {
            // Each node entry takes at least 70 bytes on the wire.
            assert!(n.nodes.len() * 70 <= data.len());
        }
        if let Message::EnrResponse(r) = &p.message {
            assert_eq!(Enr::decode(r.enr.encoded()).as_ref(), Ok(&r.enr));
        }
    }
    PROTO.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.is_none() {
            let Ok(key) = SecretKey::from_byte_array([0x11; 32]) else {
                return;
            };
            let addr = SocketAddr::from(([127, 0, 0, 1], 30303));
            let now = Instant::now();
            let rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(0);
            // Clock set just before the EIP-8 vectors' expiration, so seeds reach the handlers.
            let Ok(proto) = Protocol::new(key, addr, Config::default(), now, 1_136_239_000, rng, 1)
            else {
                return;
            };
            *cell = Some((proto, now));
        }
        let Some((proto, start)) = cell.as_mut() else {
            return;
        };
        proto.handle_packet(*start, SocketAddr::from(([127, 0, 0, 2], 30303)), data);
        while proto.poll_transmit().is_some() {}
        while proto.poll_event().is_some() {}
    });
}

/// Decodes `data` as an RLP node record (and, when it is text, as `enr:` text); a record
/// that verifies must round-trip through both encodings.
pub fn enr(data: &[u8]) {
    if let Ok(r) = Enr::decode(data) {
        assert_eq!(r.encoded(), data);
        let text = r.to_string();
        assert_eq!(text.parse::<Enr>().as_ref(), Ok(&r));
        let _ = (
            r.ip4(),
            r.ip6(),
            r.tcp(),
            r.udp(),
            r.eth(),
            r.to_node(),
            r.seq(),
        );
    }
    if let Ok(s) = std::str::from_utf8(data)
        && let Ok(r) = s.parse::<Enr>()
    {
        assert!(r.encoded().len() <= discovery::enr::MAX_ENR_SIZE);
    }
}
