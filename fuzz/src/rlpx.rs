//! Targets for the `rlpx` crate: handshake packets, ECIES, frames, p2p messages, snappy.
//!
//! Keys are fixed so that seeds decrypt: `auth` is read with EIP-8 key B and `ack` with
//! EIP-8 key A, exactly as in the EIP-8 test vectors, so those vectors decode fully.
//! Frames are read with [`frame_secrets`], derived from fixed keys and nonces.

use ::rlpx::codec::{FrameCodec, FrameDecoder, FrameEncoder, RawMessage};
use ::rlpx::ecies;
use ::rlpx::handshake::{self, Ack, Auth, Read, Role, Secrets};
use ::rlpx::p2p::{self, DisconnectReason, Hello, Snappy};
use bytes::BytesMut;
use rand::SeedableRng;
use secp256k1::{PublicKey, SecretKey};
use std::sync::OnceLock;

const fn unhex32(s: &str) -> [u8; 32] {
    const fn nibble(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => panic!("not lowercase hex"),
        }
    }
    let s = s.as_bytes();
    assert!(s.len() == 64);
    let mut out = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        out[i] = nibble(s[2 * i]) << 4 | nibble(s[2 * i + 1]);
        i += 1;
    }
    out
}

/// EIP-8 "Static Key A" (the initiator): `ack` packets are decrypted with it.
pub const KEY_A: [u8; 32] =
    unhex32("49a7b37aa6f6645917e7b807e9d1c00d4fa71f18343b0d4122a4d2df64dd6fee");
/// EIP-8 "Static Key B" (the recipient): `auth` packets are decrypted with it.
pub const KEY_B: [u8; 32] =
    unhex32("b71c71a67e1177ad4e901695e1b4b9ee17ae16c6668d313eac2f96dbcda3f291");

struct Keys {
    a: SecretKey,
    b: SecretKey,
    a_pub: PublicKey,
    b_pub: PublicKey,
    /// Ephemeral key for the ECIES re-encryption round trip.
    eph: SecretKey,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let a = SecretKey::from_byte_array(KEY_A).expect("valid key");
        let b = SecretKey::from_byte_array(KEY_B).expect("valid key");
        Keys {
            a,
            b,
            a_pub: PublicKey::from_secret_key_global(&a),
            b_pub: PublicKey::from_secret_key_global(&b),
            eph: SecretKey::from_byte_array([0x11; 32]).expect("valid key"),
        }
    })
}

/// The static key `auth` packets are read with (EIP-8 key B).
pub fn auth_key() -> SecretKey {
    keys().b
}

/// The static key `ack` packets are read with (EIP-8 key A).
pub fn ack_key() -> SecretKey {
    keys().a
}

/// Fixed session secrets `(initiator, recipient)` of one made-up handshake between EIP-8
/// keys A and B: the [`frame`] target decodes with the recipient's, seeds are encoded
/// with the initiator's.
pub fn frame_secrets() -> &'static (Secrets, Secrets) {
    static SECRETS: OnceLock<(Secrets, Secrets)> = OnceLock::new();
    SECRETS.get_or_init(|| {
        let k = keys();
        let eph_a = SecretKey::from_byte_array([0x11; 32]).expect("valid key");
        let eph_b = SecretKey::from_byte_array([0x22; 32]).expect("valid key");
        let (nonce_a, nonce_b) = ([0x33; 32], [0x44; 32]);
        let (auth, ack): (&[u8], &[u8]) = (b"fuzz auth packet", b"fuzz ack packet");
        let eph_a_pub = PublicKey::from_secret_key_global(&eph_a);
        let eph_b_pub = PublicKey::from_secret_key_global(&eph_b);
        let initiator = Secrets::derive(
            Role::Initiator,
            k.b_pub,
            &eph_a,
            &eph_b_pub,
            &nonce_a,
            &nonce_b,
            auth,
            ack,
        );
        let recipient = Secrets::derive(
            Role::Recipient,
            k.a_pub,
            &eph_b,
            &eph_a_pub,
            &nonce_b,
            &nonce_a,
            auth,
            ack,
        );
        (initiator, recipient)
    })
}

/// A fresh encoder whose frames the [`frame`] target's decoder accepts.
pub fn frame_encoder() -> FrameEncoder {
    FrameCodec::new(&frame_secrets().0).encoder
}

fn frame_decoder() -> FrameDecoder {
    FrameCodec::new(&frame_secrets().1).decoder
}

/// The outcome of offering a buffer to `read_auth`/`read_ack`, reduced to comparable parts.
#[derive(Debug, PartialEq, Eq)]
enum Outcome<T> {
    NeedMore(usize),
    Done(T, usize),
    Err(String),
}

/// Reads a handshake packet two ways and checks they agree: in one call over all of
/// `data`, and as a connection does, offering exactly the prefix the previous
/// `NeedMore` asked for (with `legacy_tried` carried along).
fn read_both<T, K: PartialEq + std::fmt::Debug>(
    data: &[u8],
    read: impl Fn(&[u8], &mut bool) -> Result<Read<T>, handshake::Error>,
    summary: impl Fn(&T) -> K,
    packet: impl Fn(&T) -> &[u8],
) -> Option<T> {
    let check = |buf: &[u8], r: Result<Read<T>, handshake::Error>| match r {
        Ok(Read::NeedMore(n)) => {
            assert!(
                n > buf.len(),
                "NeedMore({n}) with {} bytes buffered",
                buf.len()
            );
            assert!(
                n <= 2 + handshake::MAX_PACKET_SIZE,
                "NeedMore({n}) over the packet limit"
            );
            (Outcome::NeedMore(n), None)
        }
        Ok(Read::Done(t, used)) => {
            assert!(used <= buf.len(), "used {used} of {} bytes", buf.len());
            assert_eq!(packet(&t), &buf[..used], "packet is not the bytes consumed");
            (Outcome::Done(summary(&t), used), Some(t))
        }
        Err(e) => (Outcome::Err(e.to_string()), None),
    };

    let (one_shot, value) = check(data, read(data, &mut false));

    let mut legacy_tried = false;
    let mut len = data.len().min(2);
    let streamed = loop {
        let buf = &data[..len];
        let (outcome, _) = check(buf, read(buf, &mut legacy_tried));
        match outcome {
            Outcome::NeedMore(n) if n <= data.len() => len = n,
            outcome => break outcome,
        }
    };
    assert_eq!(one_shot, streamed, "one-shot and streamed reads disagree");
    value
}

fn auth_summary(a: &Auth) -> (PublicKey, PublicKey, [u8; 32], u64, bool) {
    (a.remote_id, a.remote_ephemeral, a.nonce, a.version, a.eip8)
}

fn ack_summary(a: &Ack) -> (PublicKey, [u8; 32], u64, bool) {
    (a.remote_ephemeral, a.nonce, a.version, a.eip8)
}

/// Checks the framing of a decoded handshake packet of `used` bytes.
fn check_packet_len(data: &[u8], used: usize, eip8: bool, legacy_len: usize) {
    if eip8 {
        assert_eq!(
            used,
            2 + usize::from(u16::from_be_bytes([data[0], data[1]]))
        );
    } else {
        assert_eq!((used, data[0]), (legacy_len, 0x04), "legacy packet framing");
    }
}

/// `auth` packets, read with EIP-8 key B: one-shot and streamed reads must agree, and an
/// accepted `auth` must be answerable with an `ack` that its sender (when it is EIP-8 key
/// A, as in the seeds) can read back.
pub fn auth(data: &[u8]) {
    let k = keys();
    let read = |buf: &[u8], tried: &mut bool| handshake::read_auth(&k.b, buf, tried);
    let Some(auth) = read_both(data, read, auth_summary, |a| &a.packet) else {
        return;
    };
    let used = auth.packet.len();
    check_packet_len(data, used, auth.eip8, handshake::LEGACY_AUTH_LEN);

    let mut rng = rand::rngs::StdRng::seed_from_u64(used as u64);
    let (ack, _secrets) = handshake::respond(&mut rng, &auth);
    if auth.remote_id == k.a_pub {
        match handshake::read_ack(&k.a, &ack, &mut false) {
            Ok(Read::Done(a, n)) => {
                assert_eq!(n, ack.len());
                assert_eq!(a.eip8, auth.eip8, "ack format differs from the auth's");
            }
            other => panic!("our own ack does not read back: {other:?}"),
        }
    }
}

/// `ack` packets, read with EIP-8 key A: one-shot and streamed reads must agree.
pub fn ack(data: &[u8]) {
    let k = keys();
    let read = |buf: &[u8], tried: &mut bool| handshake::read_ack(&k.a, buf, tried);
    let Some(ack) = read_both(data, read, ack_summary, |a| &a.packet) else {
        return;
    };
    check_packet_len(data, ack.packet.len(), ack.eip8, handshake::LEGACY_ACK_LEN);
}

/// Raw ECIES: `data` is tried as a whole ciphertext with no auth data (pre-EIP-8 form)
/// and as `size || ciphertext` with the size as auth data (EIP-8 form), under both keys.
/// A plaintext must re-encrypt and decrypt to itself.
pub fn ecies(data: &[u8]) {
    let k = keys();
    for (key, public) in [(&k.b, &k.b_pub), (&k.a, &k.a_pub)] {
        ecies_one(key, public, data, &[]);
        if let Some((ad, ct)) = data.split_at_checked(2) {
            ecies_one(key, public, ct, ad);
        }
    }
}

fn ecies_one(key: &SecretKey, public: &PublicKey, ct: &[u8], ad: &[u8]) {
    let Ok(plain) = ecies::decrypt(key, ct, ad) else {
        return;
    };
    assert_eq!(plain.len(), ct.len() - ecies::OVERHEAD);
    let iv: [u8; 16] = ct[65..81].try_into().expect("16 bytes");
    let again = ecies::encrypt_with(&keys().eph, iv, public, &plain, ad);
    assert_eq!(again.len(), ct.len());
    assert_eq!(ecies::decrypt(key, &again, ad).as_deref(), Ok(&plain[..]));
}

/// What a frame decoder made of a byte stream.
#[derive(Debug, PartialEq, Eq)]
struct Frames {
    messages: Vec<RawMessage>,
    /// The error that ended decoding, if any.
    error: Option<String>,
    /// Bytes left buffered when the input ran out (only without an error).
    leftover: usize,
}

fn decode_stream(stream: &[u8], chunk: usize, limit: Option<usize>) -> Frames {
    let mut dec = frame_decoder();
    if let Some(limit) = limit {
        dec.set_max_frame_size(limit);
    }
    let max = limit.unwrap_or(::rlpx::codec::MAX_FRAME_SIZE);
    let mut out = Frames {
        messages: Vec::new(),
        error: None,
        leftover: 0,
    };
    let mut buf = BytesMut::new();
    for piece in stream.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            let before = buf.len();
            match dec.decode_frame(&mut buf) {
                Ok(Some(msg)) => {
                    assert!(buf.len() < before, "a frame was decoded from no bytes");
                    assert!(
                        msg.data.len() < max,
                        "frame data of {} bytes",
                        msg.data.len()
                    );
                    out.messages.push(msg);
                }
                Ok(None) => break,
                Err(e) => {
                    out.error = Some(e.to_string());
                    return out;
                }
            }
        }
    }
    out.leftover = buf.len();
    out
}

/// Frames: `data[0]` sets the chunk size the rest is fed in (low 7 bits, 0 = all at once)
/// and, with its top bit, a 1 KiB frame limit. The stream is decoded in those chunks and
/// all at once, which must agree; every decoded message must survive an encode/decode.
pub fn frame(data: &[u8]) {
    let Some((&ctl, stream)) = data.split_first() else {
        return;
    };
    let limit = (ctl & 0x80 != 0).then_some(1024);
    let chunk = match usize::from(ctl & 0x7f) {
        0 => stream.len(),
        n => n,
    };
    let chunked = decode_stream(stream, chunk, limit);
    let whole = decode_stream(stream, stream.len(), limit);
    assert_eq!(chunked, whole, "chunked and one-shot decoding disagree");

    let mut enc = frame_encoder();
    let mut dec = frame_decoder();
    for msg in &whole.messages {
        let mut wire = BytesMut::new();
        enc.encode_frame(msg.id, &msg.data, &mut wire)
            .expect("decoded frame re-encodes");
        let back = dec
            .decode_frame(&mut wire)
            .expect("re-encoded frame decodes");
        assert_eq!(back.as_ref(), Some(msg));
        assert!(wire.is_empty());
    }
}

/// Hello bodies: a decoded Hello is within bounds and re-encodes to a body that decodes
/// to the same value and re-encodes to the same bytes.
pub fn hello(data: &[u8]) {
    let Ok(h) = Hello::decode(data) else { return };
    assert!(h.capabilities.len() <= p2p::MAX_CAPABILITIES);
    let _ = h.public_key();
    let body = h.encode_to_vec();
    match Hello::decode(&body) {
        Ok(again) => {
            assert_eq!(again, h);
            assert_eq!(again.encode_to_vec(), body);
        }
        // Names are bounded in bytes as received but stored lossily (each invalid UTF-8
        // byte becomes a 3-byte U+FFFD), so a re-encoded name can exceed its bound. Known
        // and harmless (received Hellos are never re-sent); anything else is a bug.
        Err(p2p::Error::TooLong(_))
            if h.client_id.len() > p2p::MAX_CLIENT_ID_LEN
                || h.capabilities
                    .iter()
                    .any(|c| c.name.len() > p2p::MAX_CAP_NAME_LEN) => {}
        Err(e) => panic!("re-encoded Hello does not decode: {e}"),
    }
}

/// Disconnect bodies: the reason's code maps back to it and its body decodes to it.
pub fn disconnect(data: &[u8]) {
    let Ok(r) = DisconnectReason::decode_body(data) else {
        return;
    };
    assert_eq!(DisconnectReason::from_code(r.code()), r);
    assert_eq!(DisconnectReason::decode_body(&r.encode_body()), Ok(r));
    let _ = r.to_string();
}

/// The length a snappy block declares (its leading varint), if well formed.
fn declared_len(data: &[u8]) -> Option<u64> {
    let mut n = 0u64;
    for (i, &b) in data.iter().take(10).enumerate() {
        n |= u64::from(b & 0x7f).checked_shl(7 * i as u32)?;
        if b & 0x80 == 0 {
            return Some(n);
        }
    }
    None
}

/// Snappy blocks: a declared size over 16 MiB is refused (libFuzzer's `-malloc_limit_mb`
/// / `-rss_limit_mb` catch an allocation before the check); output is at most 16 MiB
/// and the declared size, is the same from a reused decoder, and round-trips.
pub fn snappy(data: &[u8]) {
    let mut s = Snappy::default();
    let out = s.decompress(data);
    if declared_len(data).is_some_and(|n| n > p2p::MAX_MESSAGE_SIZE as u64) {
        assert!(out.is_err(), "declared size over 16 MiB accepted");
    }
    let Ok(out) = out else { return };
    assert!(out.len() <= p2p::MAX_MESSAGE_SIZE);
    assert!(declared_len(data).is_some_and(|n| out.len() as u64 <= n));
    assert_eq!(
        s.decompress(data).as_ref(),
        Ok(&out),
        "reused decoder differs"
    );
    let packed = s.compress(&out).expect("compresses");
    assert_eq!(s.decompress(&packed).as_ref(), Ok(&out), "round trip");
}
