//! Unit tests of `p2p`.
use super::*;

#[test]
fn eip8_hello_vector_with_version_22_and_extra_elements() {
    let raw = hex::decode(concat!(
        "f87137916b6e6574682f76302e39312f706c616e39cdc5836574683dc6846d6f726b1682270fb840",
        "fda1cff674c90c9a197539fe3dfb53086ace64f83ed7c6eabec741f7f381cc803e52ab2cd55d5569",
        "bce4347107a310dfd5f88a010cd2ffd1005ca406f1842877c883666f6f836261720304"
    ))
    .unwrap();
    let h = Hello::decode(&raw).unwrap();
    assert_eq!(h.protocol_version, 55);
    assert_eq!(h.client_id, "kneth/v0.91/plan9");
    assert_eq!(
        h.capabilities,
        vec![Capability::new("eth", 61), Capability::new("mork", 22)]
    );
    assert_eq!(h.listen_port, 9999);
    assert_eq!(h.id[..2], [0xfd, 0xa1]);
    // Re-encoding drops the extra elements but keeps every known field.
    assert_eq!(Hello::decode(&h.encode_to_vec()).unwrap(), h);
}

#[test]
fn hello_bounds() {
    let mut h = Hello {
        protocol_version: 5,
        client_id: "x".repeat(MAX_CLIENT_ID_LEN + 1),
        capabilities: vec![],
        listen_port: 0,
        id: [1; 64],
    };
    assert_eq!(
        Hello::decode(&h.encode_to_vec()),
        Err(Error::TooLong("client id"))
    );
    h.client_id = "ok".into();
    h.capabilities = vec![Capability::new("c", 1); MAX_CAPABILITIES + 1];
    assert_eq!(
        Hello::decode(&h.encode_to_vec()),
        Err(Error::TooLong("capability list"))
    );
    h.capabilities = vec![Capability::new("n".repeat(MAX_CAP_NAME_LEN + 1), 1)];
    assert_eq!(
        Hello::decode(&h.encode_to_vec()),
        Err(Error::TooLong("capability name"))
    );
    assert!(Hello::decode(&[0xc0]).is_err());
    assert!(Hello::decode(&[]).is_err());
}

#[test]
fn disconnect_forms() {
    for code in (0u8..=0x0b).chain([0x10]) {
        let r = DisconnectReason::from_code(code);
        assert_eq!(r.code(), code);
        assert!(!matches!(r, DisconnectReason::Unknown(_)));
        assert_eq!(DisconnectReason::decode_body(&r.encode_body()), Ok(r));
        // Bare byte form (as some clients send it).
        let mut bare = vec![];
        code.encode(&mut bare);
        assert_eq!(DisconnectReason::decode_body(&bare), Ok(r));
    }
    assert_eq!(
        DisconnectReason::decode_body(&[0xc0]),
        Ok(DisconnectReason::DisconnectRequested)
    );
    assert_eq!(
        DisconnectReason::decode_body(&[0x42]),
        Ok(DisconnectReason::Unknown(0x42))
    );
    assert!(DisconnectReason::decode_body(&[0xc5, 0x01]).is_err());
}

#[test]
fn snappy_rejects_huge_declared_length_before_allocating() {
    let mut s = Snappy::default();
    // Varint 200_000_000 followed by nothing.
    let mut bomb = vec![];
    let mut n: u64 = 200_000_000;
    while n >= 0x80 {
        bomb.push((n as u8) | 0x80);
        n >>= 7;
    }
    bomb.push(n as u8);
    assert!(matches!(s.decompress(&bomb), Err(Error::Snappy(m)) if m.contains("200000000")));
    let c = s.compress(b"hello hello hello hello").unwrap();
    assert_eq!(&s.decompress(&c).unwrap()[..], b"hello hello hello hello");
}

#[test]
fn invalid_utf8_cannot_inflate_past_the_bounds() {
    // A 1024-byte client id of 0xff is within the raw bound, but lossy decoding would
    // store 3 bytes per byte; it is refused rather than stored over the bound.
    let h = Hello {
        protocol_version: 5,
        client_id: "a".repeat(MAX_CLIENT_ID_LEN),
        capabilities: vec![],
        listen_port: 0,
        id: [1; 64],
    };
    let mut raw = h.encode_to_vec();
    let start = raw.windows(8).position(|w| w == b"aaaaaaaa").unwrap();
    raw[start..start + MAX_CLIENT_ID_LEN].fill(0xff);
    assert_eq!(Hello::decode(&raw), Err(Error::TooLong("client id")));
}
