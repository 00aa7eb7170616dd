//! The RLPx cryptographic handshake (spec: `rlpx.md`, "Initial Handshake"; EIP-8), sans-IO.
//!
//! The initiator builds `auth` with [`Initiator::new`], sends it, feeds the recipient's reply
//! to [`read_ack`] and calls [`Initiator::finish`]. The recipient feeds incoming bytes to
//! [`read_auth`] and answers with [`respond`]. Both end with [`Secrets`], from which the
//! frame codec is built. Randomness (ephemeral keys, nonces, padding) is injectable through
//! the `*_with` variants so the EIP-8 vectors run as tests.
//!
//! We always send EIP-8 packets; on receipt both EIP-8 and the pre-EIP-8 fixed-size format
//! are accepted, and a pre-EIP-8 `auth` is answered with a pre-EIP-8 `ack`, as EIP-8 says.

use crate::ecies;
use alloy_rlp::{Decodable, Encodable, Header};
use keccak_asm::{Digest, Keccak256};
use secp256k1::{
    Message, PublicKey, SECP256K1, SecretKey,
    ecdsa::{RecoverableSignature, RecoveryId},
};

/// Largest EIP-8 `auth`/`ack` body we accept, checked on the 2-byte size prefix before
/// reading or allocating the body. Real packets are 300-800 bytes (body ≈ 170 + 100..300
/// padding + ECIES overhead); 2 KiB leaves room for future list elements.
pub const MAX_PACKET_SIZE: usize = 2048;
/// Size of a pre-EIP-8 `auth`: ECIES(sig 65 || keccak(ephemeral) 32 || pubkey 64 || nonce 32 || 0).
pub const LEGACY_AUTH_LEN: usize = 194 + ecies::OVERHEAD;
/// Size of a pre-EIP-8 `ack`: ECIES(ephemeral pubkey 64 || nonce 32 || 0).
pub const LEGACY_ACK_LEN: usize = 97 + ecies::OVERHEAD;
/// `auth-vsn` and `ack-vsn` we send.
pub const VERSION: u64 = 4;
/// EIP-8: "pad auth-body with at least 100 bytes of junk data ... [100, 300] is recommended".
const PADDING: std::ops::RangeInclusive<usize> = 100..=300;

/// Handshake failures. Each one closes the TCP connection without a `Disconnect`: no
/// session keys exist yet, so the peer could not read one.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// ECIES decryption failed (wrong key, tampered or garbage bytes).
    #[error("handshake decryption failed: {0}")]
    Ecies(#[from] ecies::Error),
    /// The EIP-8 size prefix is over [`MAX_PACKET_SIZE`].
    #[error("handshake packet of {0} bytes exceeds the {MAX_PACKET_SIZE} byte limit")]
    TooLarge(usize),
    /// The decrypted body is not the RLP (or legacy layout) the spec requires.
    #[error("malformed handshake body: {0}")]
    Malformed(&'static str),
    /// The auth signature does not recover to a valid ephemeral key.
    #[error("invalid handshake signature")]
    InvalidSignature,
    /// A public key in the body is not a valid curve point.
    #[error("invalid public key in handshake")]
    InvalidPublicKey,
    /// The remote did not finish the handshake in time.
    #[error("handshake timed out")]
    Timeout,
    /// The remote closed the connection during the handshake.
    #[error("connection closed during handshake")]
    Closed,
    /// Reading or writing the socket failed.
    #[error("handshake i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// Which side of the connection we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// We opened the connection and sent `auth`.
    Initiator,
    /// We accepted the connection and sent `ack`.
    Recipient,
}

/// The session secrets and initial MAC states derived from a completed handshake.
#[derive(Clone)]
pub struct Secrets {
    /// The remote node's static public key (its node id).
    pub remote_id: PublicKey,
    /// `aes-secret`: the AES-256-CTR key for frames in both directions.
    pub aes: [u8; 32],
    /// `mac-secret`: the AES-256 key used inside the frame MAC.
    pub mac: [u8; 32],
    /// `egress-mac` Keccak state.
    pub egress_mac: Keccak256,
    /// `ingress-mac` Keccak state.
    pub ingress_mac: Keccak256,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field("remote_id", &self.remote_id)
            .finish_non_exhaustive()
    }
}

fn keccak(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Keccak256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

fn xor32(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    std::array::from_fn(|i| a[i] ^ b[i])
}

/// The 64-byte node id form of a public key (uncompressed, without the `0x04` prefix).
pub fn id_bytes(key: &PublicKey) -> [u8; 64] {
    let full = key.serialize_uncompressed();
    let mut out = [0u8; 64];
    out.copy_from_slice(&full[1..]);
    out
}

/// How many static keys [`static_id`] remembers: one per node in the process (tests and
/// simulations run a few dozen nodes in one process; a miss only costs the derivation).
const STATIC_IDS: usize = 64;

/// The node id of our static `key`. Every auth and every Hello names it, and deriving it
/// is a quarter of an ECDH's work per handshake, so it is derived once per key and
/// remembered (the last [`STATIC_IDS`] keys of this process).
pub fn static_id(key: &SecretKey) -> [u8; 64] {
    static CACHE: std::sync::Mutex<Vec<(SecretKey, [u8; 64])>> = std::sync::Mutex::new(Vec::new());
    let lock = || CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, id)) = lock().iter().find(|(k, _)| k == key) {
        return *id;
    }
    let id = id_bytes(&PublicKey::from_secret_key_global(key));
    let mut cache = lock();
    if cache.len() >= STATIC_IDS {
        cache.remove(0);
    }
    cache.push((*key, id));
    id
}

/// Parses a 64-byte node id into a public key.
pub fn id_to_key(id: &[u8]) -> Option<PublicKey> {
    if id.len() != 64 {
        return None;
    }
    let mut full = [4u8; 65];
    full[1..].copy_from_slice(id);
    PublicKey::from_slice(&full).ok()
}

impl Secrets {
    /// Derives the secrets (spec "Secrets generated following the exchange").
    /// `auth` and `ack` are the whole packets as sent, size prefix included.
    #[allow(clippy::too_many_arguments)]
    pub fn derive(
        role: Role,
        remote_id: PublicKey,
        ephemeral: &SecretKey,
        remote_ephemeral: &PublicKey,
        nonce: &[u8; 32],
        remote_nonce: &[u8; 32],
        auth: &[u8],
        ack: &[u8],
    ) -> Self {
        let ephemeral_key = ecies::agree(ephemeral, remote_ephemeral);
        let (initiator_nonce, recipient_nonce) = match role {
            Role::Initiator => (nonce, remote_nonce),
            Role::Recipient => (remote_nonce, nonce),
        };
        let shared = keccak(&[&ephemeral_key, &keccak(&[recipient_nonce, initiator_nonce])]);
        let aes = keccak(&[&ephemeral_key, &shared]);
        let mac = keccak(&[&ephemeral_key, &aes]);
        let mut from_recipient_nonce = Keccak256::new();
        from_recipient_nonce.update(xor32(&mac, recipient_nonce));
        from_recipient_nonce.update(auth);
        let mut from_initiator_nonce = Keccak256::new();
        from_initiator_nonce.update(xor32(&mac, initiator_nonce));
        from_initiator_nonce.update(ack);
        let (egress_mac, ingress_mac) = match role {
            Role::Initiator => (from_recipient_nonce, from_initiator_nonce),
            Role::Recipient => (from_initiator_nonce, from_recipient_nonce),
        };
        Self {
            remote_id,
            aes,
            mac,
            egress_mac,
            ingress_mac,
        }
    }
}

/// A decrypted `auth` packet.
#[derive(Debug, Clone)]
pub struct Auth {
    /// The initiator's static public key.
    pub remote_id: PublicKey,
    /// The initiator's ephemeral key, recovered from the signature.
    pub remote_ephemeral: PublicKey,
    /// `initiator-nonce`.
    pub nonce: [u8; 32],
    /// `auth-vsn` (0 for pre-EIP-8 packets).
    pub version: u64,
    /// Whether the packet used the EIP-8 format.
    pub eip8: bool,
    /// The whole packet as received (needed for the MAC initialisation).
    pub packet: Vec<u8>,
}

/// A decrypted `ack` packet.
#[derive(Debug, Clone)]
pub struct Ack {
    /// The recipient's ephemeral public key.
    pub remote_ephemeral: PublicKey,
    /// `recipient-nonce`.
    pub nonce: [u8; 32],
    /// `ack-vsn` (0 for pre-EIP-8 packets).
    pub version: u64,
    /// Whether the packet used the EIP-8 format.
    pub eip8: bool,
    /// The whole packet as received.
    pub packet: Vec<u8>,
}

/// The initiator's side: holds what it needs until the `ack` arrives.
pub struct Initiator {
    key: SecretKey,
    remote_id: PublicKey,
    ephemeral: SecretKey,
    nonce: [u8; 32],
    auth: Vec<u8>,
}

/// Wraps an RLP body in EIP-8 form: `size || ecies(remote, body || padding, size)`.
fn seal_eip8<R: rand::Rng + ?Sized>(
    rng: &mut R,
    remote: &PublicKey,
    mut body: Vec<u8>,
    padding: usize,
) -> Vec<u8> {
    let start = body.len();
    body.resize(start + padding, 0);
    rng.fill_bytes(&mut body[start..]); // ok: start ≤ len after the resize
    let size = (body.len() + ecies::OVERHEAD) as u16;
    let prefix = size.to_be_bytes();
    let mut out = prefix.to_vec();
    out.extend(ecies::encrypt(rng, remote, &body, &prefix));
    out
}

fn rlp_list(fields: &[&dyn Encodable]) -> Vec<u8> {
    let payload_length = fields.iter().map(|f| f.length()).sum();
    let mut out = Vec::with_capacity(payload_length + 3);
    Header {
        list: true,
        payload_length,
    }
    .encode(&mut out);
    for f in fields {
        f.encode(&mut out);
    }
    out
}

impl Initiator {
    /// Starts a handshake with `remote_id`, drawing the ephemeral key, nonce and padding
    /// from `rng`. The `auth` packet to send is [`Initiator::auth`].
    pub fn new<R: rand::Rng + ?Sized>(rng: &mut R, key: SecretKey, remote_id: PublicKey) -> Self {
        let ephemeral = SecretKey::new(&mut *rng);
        let mut nonce = [0u8; 32];
        rng.fill_bytes(&mut nonce);
        let padding = rng.random_range(PADDING);
        Self::with(rng, key, remote_id, ephemeral, nonce, padding)
    }

    /// Like [`Initiator::new`] with the ephemeral key, nonce and padding length given; `rng`
    /// only fills the padding and the ECIES ephemeral key and IV.
    pub fn with<R: rand::Rng + ?Sized>(
        rng: &mut R,
        key: SecretKey,
        remote_id: PublicKey,
        ephemeral: SecretKey,
        nonce: [u8; 32],
        padding: usize,
    ) -> Self {
        let shared = ecies::agree(&key, &remote_id);
        let msg = Message::from_digest(xor32(&shared, &nonce));
        let (recid, rs) = SECP256K1
            .sign_ecdsa_recoverable(msg, &ephemeral)
            .serialize_compact();
        let mut sig = [0u8; 65];
        sig[..64].copy_from_slice(&rs);
        sig[64] = i32::from(recid) as u8;
        let pubk = static_id(&key);
        let body = rlp_list(&[&sig, &pubk, &nonce, &VERSION]);
        let auth = seal_eip8(rng, &remote_id, body, padding);
        Self {
            key,
            remote_id,
            ephemeral,
            nonce,
            auth,
        }
    }

    /// The `auth` packet to send.
    pub fn auth(&self) -> &[u8] {
        &self.auth
    }

    /// Our static key, for decrypting the `ack`.
    pub fn key(&self) -> &SecretKey {
        &self.key
    }

    /// Completes the handshake with the decrypted `ack`.
    pub fn finish(self, ack: &Ack) -> Secrets {
        Secrets::derive(
            Role::Initiator,
            self.remote_id,
            &self.ephemeral,
            &ack.remote_ephemeral,
            &self.nonce,
            &ack.nonce,
            &self.auth,
            &ack.packet,
        )
    }
}

/// Answers a decrypted `auth` with fresh randomness: returns the `ack` packet to send and
/// the session secrets.
pub fn respond<R: rand::Rng + ?Sized>(rng: &mut R, auth: &Auth) -> (Vec<u8>, Secrets) {
    let ephemeral = SecretKey::new(&mut *rng);
    let mut nonce = [0u8; 32];
    rng.fill_bytes(&mut nonce);
    let padding = rng.random_range(PADDING);
    respond_with(rng, auth, &ephemeral, nonce, padding)
}

/// [`respond`] with the ephemeral key, nonce and padding length given.
pub fn respond_with<R: rand::Rng + ?Sized>(
    rng: &mut R,
    auth: &Auth,
    ephemeral: &SecretKey,
    nonce: [u8; 32],
    padding: usize,
) -> (Vec<u8>, Secrets) {
    let eph_id = id_bytes(&PublicKey::from_secret_key_global(ephemeral));
    let ack = if auth.eip8 {
        seal_eip8(
            rng,
            &auth.remote_id,
            rlp_list(&[&eph_id, &nonce, &VERSION]),
            padding,
        )
    } else {
        let mut body = Vec::with_capacity(97);
        body.extend_from_slice(&eph_id);
        body.extend_from_slice(&nonce);
        body.push(0);
        ecies::encrypt(rng, &auth.remote_id, &body, &[])
    };
    let secrets = Secrets::derive(
        Role::Recipient,
        auth.remote_id,
        ephemeral,
        &auth.remote_ephemeral,
        &nonce,
        &auth.nonce,
        &auth.packet,
        &ack,
    );
    (ack, secrets)
}

/// Outcome of offering buffered bytes to [`read_auth`] / [`read_ack`].
#[derive(Debug)]
pub enum Read<T> {
    /// At least this many bytes in total are needed before the packet can be decoded.
    NeedMore(usize),
    /// The packet, and how many bytes of the buffer it used.
    Done(T, usize),
}

/// Locates and decrypts one handshake packet at the start of `buf`: pre-EIP-8 packets are
/// exactly `legacy_len` bytes starting with `0x04` (an uncompressed key); otherwise the
/// first two bytes are the EIP-8 size. `legacy_tried` remembers a failed legacy attempt so
/// a trickling peer cannot make us repeat the ECDH on every read.
fn read_packet(
    key: &SecretKey,
    buf: &[u8],
    legacy_len: usize,
    legacy_tried: &mut bool,
) -> Result<Read<(Vec<u8>, bool)>, Error> {
    if buf.len() < 2 {
        return Ok(Read::NeedMore(2));
    }
    if buf[0] == 0x04 && !*legacy_tried {
        // An EIP-8 packet starting with 0x04 declares ≥ 1024 bytes, so waiting for
        // `legacy_len` bytes never waits for bytes the peer will not send.
        if buf.len() < legacy_len {
            return Ok(Read::NeedMore(legacy_len));
        }
        *legacy_tried = true;
        if let Ok(plain) = ecies::decrypt(key, &buf[..legacy_len], &[]) {
            return Ok(Read::Done((plain, false), legacy_len));
        }
    }
    let size = u16::from_be_bytes([buf[0], buf[1]]) as usize;
    if size > MAX_PACKET_SIZE {
        return Err(Error::TooLarge(size));
    }
    if buf.len() < 2 + size {
        return Ok(Read::NeedMore(2 + size));
    }
    let plain = ecies::decrypt(key, &buf[2..2 + size], &buf[..2])?;
    Ok(Read::Done((plain, true), 2 + size))
}

/// Reads the fields of an EIP-8 body list, ignoring extra elements and trailing padding.
fn rlp_fields(plain: &[u8]) -> Result<&[u8], Error> {
    let mut buf = plain;
    let h = Header::decode(&mut buf).map_err(|_| Error::Malformed("body is not RLP"))?;
    if !h.list || h.payload_length > buf.len() {
        return Err(Error::Malformed("body is not an RLP list"));
    }
    Ok(&buf[..h.payload_length])
}

fn field<T: Decodable>(buf: &mut &[u8], what: &'static str) -> Result<T, Error> {
    T::decode(buf).map_err(|_| Error::Malformed(what))
}

/// The version element is optional in practice; a missing one reads as 0.
fn version(buf: &mut &[u8]) -> Result<u64, Error> {
    if buf.is_empty() {
        Ok(0)
    } else {
        field(buf, "version")
    }
}

fn recover_ephemeral(
    key: &SecretKey,
    remote_id: &PublicKey,
    sig: &[u8; 65],
    nonce: &[u8; 32],
) -> Result<PublicKey, Error> {
    let shared = ecies::agree(key, remote_id);
    let msg = Message::from_digest(xor32(&shared, nonce));
    let recid = RecoveryId::try_from(i32::from(sig[64])).map_err(|_| Error::InvalidSignature)?;
    let sig = RecoverableSignature::from_compact(&sig[..64], recid)
        .map_err(|_| Error::InvalidSignature)?;
    SECP256K1
        .recover_ecdsa(msg, &sig)
        .map_err(|_| Error::InvalidSignature)
}

/// Decodes the `auth` packet at the start of `buf` with our static `key`.
pub fn read_auth(
    key: &SecretKey,
    buf: &[u8],
    legacy_tried: &mut bool,
) -> Result<Read<Auth>, Error> {
    let (plain, eip8, used) = match read_packet(key, buf, LEGACY_AUTH_LEN, legacy_tried)? {
        Read::NeedMore(n) => return Ok(Read::NeedMore(n)),
        Read::Done((plain, eip8), used) => (plain, eip8, used),
    };
    let (sig, pubk, nonce, version): ([u8; 65], [u8; 64], [u8; 32], u64) = if eip8 {
        let mut f = rlp_fields(&plain)?;
        (
            field(&mut f, "signature")?,
            field(&mut f, "public key")?,
            field(&mut f, "nonce")?,
            version(&mut f)?,
        )
    } else {
        // sig(65) || keccak(ephemeral)(32) || pubkey(64) || nonce(32) || token flag(1)
        let mut sig = [0u8; 65];
        let mut pubk = [0u8; 64];
        let mut nonce = [0u8; 32];
        let body = plain
            .get(..194)
            .ok_or(Error::Malformed("short legacy auth"))?;
        sig.copy_from_slice(&body[..65]);
        pubk.copy_from_slice(&body[97..161]);
        nonce.copy_from_slice(&body[161..193]);
        (sig, pubk, nonce, 0)
    };
    let remote_id = id_to_key(&pubk).ok_or(Error::InvalidPublicKey)?;
    let remote_ephemeral = recover_ephemeral(key, &remote_id, &sig, &nonce)?;
    let packet = buf[..used].to_vec();
    Ok(Read::Done(
        Auth {
            remote_id,
            remote_ephemeral,
            nonce,
            version,
            eip8,
            packet,
        },
        used,
    ))
}

/// Decodes the `ack` packet at the start of `buf` with our static `key`.
pub fn read_ack(key: &SecretKey, buf: &[u8], legacy_tried: &mut bool) -> Result<Read<Ack>, Error> {
    let (plain, eip8, used) = match read_packet(key, buf, LEGACY_ACK_LEN, legacy_tried)? {
        Read::NeedMore(n) => return Ok(Read::NeedMore(n)),
        Read::Done((plain, eip8), used) => (plain, eip8, used),
    };
    let (eph, nonce, version): ([u8; 64], [u8; 32], u64) = if eip8 {
        let mut f = rlp_fields(&plain)?;
        (
            field(&mut f, "ephemeral key")?,
            field(&mut f, "nonce")?,
            version(&mut f)?,
        )
    } else {
        let body = plain
            .get(..97)
            .ok_or(Error::Malformed("short legacy ack"))?;
        let mut eph = [0u8; 64];
        let mut nonce = [0u8; 32];
        eph.copy_from_slice(&body[..64]);
        nonce.copy_from_slice(&body[64..96]);
        (eph, nonce, 0)
    };
    let remote_ephemeral = id_to_key(&eph).ok_or(Error::InvalidPublicKey)?;
    let packet = buf[..used].to_vec();
    Ok(Read::Done(
        Ack {
            remote_ephemeral,
            nonce,
            version,
            eip8,
            packet,
        },
        used,
    ))
}

#[cfg(test)]
#[path = "handshake_tests.rs"]
mod tests;
