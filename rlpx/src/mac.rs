//! The RLPx frame MAC (spec: `rlpx.md`, "MAC"): a running Keccak-256 state per direction,
//! mixed with AES-256 of its own digest so that header and frame MACs are computed the same
//! way.

use aes::Aes256;
use cipher::{BlockCipherEncrypt, KeyInit};
use keccak_asm::{Digest, Keccak256};

/// One direction's MAC accumulator (`egress-mac` or `ingress-mac`).
#[derive(Clone)]
pub struct MacState {
    aes: Aes256,
    hash: Keccak256,
    /// The digest of `hash` as it stands, if computed since the last update. A frame's
    /// header MAC starts from the digest the previous frame MAC ended with, so caching it
    /// saves one Keccak permutation (of four) per frame.
    digest: Option<[u8; 16]>,
}

impl std::fmt::Debug for MacState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MacState(..)")
    }
}

impl MacState {
    /// A MAC keyed by `mac-secret`, starting from the handshake-initialised Keccak state.
    pub fn new(mac_secret: &[u8; 32], hash: Keccak256) -> Self {
        Self {
            aes: Aes256::new(mac_secret.into()),
            hash,
            digest: None,
        }
    }

    /// The first 16 bytes of the digest of everything absorbed so far.
    pub fn digest(&mut self) -> [u8; 16] {
        if let Some(d) = self.digest {
            return d;
        }
        let d = self.hash.clone().finalize();
        let mut out = [0u8; 16];
        out.copy_from_slice(&d[..16]);
        self.digest = Some(out);
        out
    }

    /// Absorbs raw bytes (used to initialise the state and in tests).
    pub fn update(&mut self, data: &[u8]) {
        self.digest = None;
        self.hash.update(data);
    }

    fn encrypt(&self, block: [u8; 16]) -> [u8; 16] {
        let mut b = block.into();
        self.aes.encrypt_block(&mut b);
        b.into()
    }

    /// `header-mac`: absorb `aes(mac-secret, digest) ^ header-ciphertext`, return the digest.
    pub fn header(&mut self, header_ciphertext: &[u8; 16]) -> [u8; 16] {
        let digest = self.digest();
        let mut seed = self.encrypt(digest);
        for (s, c) in seed.iter_mut().zip(header_ciphertext) {
            *s ^= c;
        }
        self.update(&seed);
        self.digest()
    }

    /// `frame-mac`: absorb the frame ciphertext, then `aes(mac-secret, digest) ^ digest`.
    pub fn frame(&mut self, frame_ciphertext: &[u8]) -> [u8; 16] {
        self.update(frame_ciphertext);
        let prev = self.digest();
        let mut seed = self.encrypt(prev);
        for (s, p) in seed.iter_mut().zip(prev) {
            *s ^= p;
        }
        self.update(&seed);
        self.digest()
    }
}
