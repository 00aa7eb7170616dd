//! Unit tests of `codec`.
use super::*;
use crate::handshake::{Initiator, Read, read_ack, read_auth, respond};
use rand::SeedableRng;
use secp256k1::{PublicKey, SecretKey};

/// A matched pair of codecs from a real handshake.
pub(crate) fn pair(seed: u64) -> (FrameCodec, FrameCodec) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let a = SecretKey::new(&mut rng);
    let b = SecretKey::new(&mut rng);
    let init = Initiator::new(&mut rng, a, PublicKey::from_secret_key_global(&b));
    let Ok(Read::Done(auth, _)) = read_auth(&b, init.auth(), &mut false) else {
        panic!()
    };
    let (ack, sb) = respond(&mut rng, &auth);
    let Ok(Read::Done(ack, _)) = read_ack(&a, &ack, &mut false) else {
        panic!()
    };
    let sa = init.finish(&ack);
    (FrameCodec::new(&sa), FrameCodec::new(&sb))
}

#[test]
fn frames_round_trip_at_every_split() {
    let (mut a, mut b) = pair(3);
    // Every chunk size from 1 to 40 bytes puts the cuts at every offset inside the 32-byte
    // header block and the 16-byte body blocks; 7919 (a prime) cuts big frames unevenly.
    let cases = [0usize, 1, 15, 16, 17, 1000, 70_000]
        .into_iter()
        .flat_map(|len| (1..=40).chain([7919]).map(move |chunk| (len, chunk)));
    for (len, chunk_size) in cases {
        let data = Bytes::from((0..len).map(|i| (i * 7 + len) as u8).collect::<Vec<_>>());
        let mut wire = BytesMut::new();
        a.encode(
            RawMessage {
                id: 0x10 + len as u64 % 5,
                data: data.clone(),
            },
            &mut wire,
        )
        .unwrap();
        // Feed the frame in chunks: Ok(None) until it is complete, then the message.
        let full = wire.clone();
        let mut buf = BytesMut::new();
        let mut got = None;
        for chunk in full.chunks(chunk_size) {
            assert!(got.is_none());
            buf.extend_from_slice(chunk);
            got = b.decode(&mut buf).unwrap();
        }
        let msg = got.unwrap_or_else(|| panic!("{len} bytes in {chunk_size}-byte chunks"));
        assert_eq!(msg.id, 0x10 + len as u64 % 5);
        assert_eq!(msg.data, data, "{len} bytes in {chunk_size}-byte chunks");
        assert!(buf.is_empty());
    }
}

#[test]
fn corrupted_mac_or_body_is_an_error() {
    for pos in [0usize, 20, 40, 60] {
        let (mut a, mut b) = pair(4);
        let mut wire = BytesMut::new();
        a.encode(
            RawMessage {
                id: 2,
                data: Bytes::from_static(&[0xc0; 20]),
            },
            &mut wire,
        )
        .unwrap();
        wire[pos] ^= 0x80;
        let err = b.decode(&mut wire).unwrap_err();
        if pos < 32 {
            assert!(matches!(err, Error::HeaderMac));
        } else {
            assert!(matches!(err, Error::FrameMac));
        }
    }
}

#[test]
fn oversized_frame_rejected_on_header() {
    let (mut a, mut b) = pair(5);
    b.set_max_frame_size(1024);
    let mut wire = BytesMut::new();
    a.encode(
        RawMessage {
            id: 0,
            data: Bytes::from(vec![0; 2000]),
        },
        &mut wire,
    )
    .unwrap();
    wire.truncate(HEADER_LEN);
    assert!(matches!(
        b.decode(&mut wire),
        Err(Error::TooLarge {
            size: 2001,
            limit: 1024
        })
    ));
}
