//! ECIES as used by the RLPx handshake (spec: `rlpx.md`, "ECIES Encryption").
//!
//! A message for the holder of public key `K` is `R || iv || c || d` where `R` is a fresh
//! ephemeral public key (65 bytes, uncompressed), `iv` 16 random bytes, `c` the AES-128-CTR
//! ciphertext and `d` the HMAC-SHA-256 tag over `iv || c || auth_data`.
//!
//! Pure functions over byte slices; the ephemeral key and IV can be injected so that the
//! EIP-8 vectors are unit tests.

use aes::Aes128;
use cipher::{KeyIvInit, StreamCipher};
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use secp256k1::{PublicKey, SecretKey, ecdh};
use sha2::{Digest, Sha256};

type Aes128Ctr = ctr::Ctr128BE<Aes128>;

/// Length of an uncompressed secp256k1 public key with its `0x04` prefix.
const PUBKEY_LEN: usize = 65;
/// AES block / IV size.
const IV_LEN: usize = 16;
/// HMAC-SHA-256 tag size.
const TAG_LEN: usize = 32;

/// Bytes ECIES adds to a plaintext: `R` (65) + `iv` (16) + `d` (32).
pub const OVERHEAD: usize = PUBKEY_LEN + IV_LEN + TAG_LEN;

/// Errors from ECIES decryption. Any of them during the handshake ends the connection
/// before a session exists, so no `Disconnect` is sent (the peer could not read it).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// The ciphertext is shorter than [`OVERHEAD`].
    #[error("ciphertext of {0} bytes is shorter than the ECIES overhead")]
    TooShort(usize),
    /// The embedded ephemeral public key is not a valid curve point.
    #[error("invalid ephemeral public key")]
    InvalidPublicKey,
    /// The HMAC tag does not match: wrong recipient, or tampered data.
    #[error("message authentication tag mismatch")]
    TagMismatch,
}

/// The ECDH shared secret: the x coordinate of `secret * public`.
pub fn agree(secret: &SecretKey, public: &PublicKey) -> [u8; 32] {
    let point = ecdh::shared_secret_point(public, secret);
    let mut x = [0u8; 32];
    x.copy_from_slice(&point[..32]);
    x
}

/// NIST SP 800-56 concatenation KDF with SHA-256, for the 32 bytes RLPx needs (one round,
/// counter = 1, empty `OtherInfo`).
fn kdf(shared: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(1u32.to_be_bytes());
    h.update(shared);
    h.finalize().into()
}

/// Splits KDF output into the AES key and the (hashed) MAC key.
fn keys(shared: &[u8; 32]) -> ([u8; 16], [u8; 32]) {
    let k = kdf(shared);
    let mut ke = [0u8; 16];
    ke.copy_from_slice(&k[..16]);
    let km: [u8; 32] = Sha256::digest(&k[16..]).into();
    (ke, km)
}

fn tag(km: &[u8; 32], iv: &[u8], ciphertext: &[u8], auth_data: &[u8]) -> [u8; TAG_LEN] {
    // HMAC zero-pads keys shorter than the hash block, so padding by hand is the same key
    // and spares a fallible constructor.
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(km);
    let mut mac = <Hmac<Sha256> as KeyInit>::new(&block.into());
    mac.update(iv);
    mac.update(ciphertext);
    mac.update(auth_data);
    mac.finalize().into_bytes().into()
}

fn ctr(ke: &[u8; 16], iv: &[u8; IV_LEN], data: &mut [u8]) {
    let mut c = Aes128Ctr::new(ke.into(), iv.into());
    c.apply_keystream(data);
}

/// Encrypts `msg` for `remote` with a fresh ephemeral key and IV drawn from `rng`.
pub fn encrypt<R: rand::Rng + ?Sized>(
    rng: &mut R,
    remote: &PublicKey,
    msg: &[u8],
    auth_data: &[u8],
) -> Vec<u8> {
    let ephemeral = SecretKey::new(&mut *rng);
    let mut iv = [0u8; IV_LEN];
    rng.fill_bytes(&mut iv);
    encrypt_with(&ephemeral, iv, remote, msg, auth_data)
}

/// Encrypts with an injected ephemeral key and IV (deterministic; for tests and vectors).
pub fn encrypt_with(
    ephemeral: &SecretKey,
    iv: [u8; IV_LEN],
    remote: &PublicKey,
    msg: &[u8],
    auth_data: &[u8],
) -> Vec<u8> {
    let (ke, km) = keys(&agree(ephemeral, remote));
    let r = PublicKey::from_secret_key_global(ephemeral).serialize_uncompressed();
    let mut out = Vec::with_capacity(OVERHEAD + msg.len());
    out.extend_from_slice(&r);
    out.extend_from_slice(&iv);
    let start = out.len();
    out.extend_from_slice(msg);
    ctr(&ke, &iv, &mut out[start..]); // ok: start was out.len() before msg was appended
    let d = tag(&km, &iv, &out[start..], auth_data); // ok: as above
    out.extend_from_slice(&d);
    out
}

/// Decrypts `R || iv || c || d` with our static `secret`, checking the tag over
/// `iv || c || auth_data` before decrypting.
pub fn decrypt(secret: &SecretKey, data: &[u8], auth_data: &[u8]) -> Result<Vec<u8>, Error> {
    if data.len() < OVERHEAD {
        return Err(Error::TooShort(data.len()));
    }
    let (r, rest) = data.split_at(PUBKEY_LEN);
    let (iv, rest) = rest.split_at(IV_LEN);
    let (c, d) = rest.split_at(rest.len() - TAG_LEN);
    let r = PublicKey::from_slice(r).map_err(|_| Error::InvalidPublicKey)?;
    let (ke, km) = keys(&agree(secret, &r));
    let expected = tag(&km, iv, c, auth_data);
    if !constant_time_eq(&expected, d) {
        return Err(Error::TagMismatch);
    }
    let mut iv_arr = [0u8; IV_LEN];
    iv_arr.copy_from_slice(iv);
    let mut m = c.to_vec();
    ctr(&ke, &iv_arr, &mut m);
    Ok(m)
}

/// Compares two byte strings without an early exit, so tag checks leak no timing.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
#[path = "ecies_tests.rs"]
mod tests;
