//! [`FastCrypto`]: the simulator's stand-in for packet signatures.

use std::cell::RefCell;
use std::rc::Rc;

use crate::node::{NodeId, keccak256};
use crate::packet::{Crypto, PacketError};

/// The ids of one simulated network and the secret its stand-in signatures are keyed with.
///
/// Every simulated node registers its id here and gets the index its [`FastCrypto`]
/// signatures carry. Single-threaded (`Rc`), as the simulator is.
pub struct Registry {
    secret: [u8; 32],
    ids: RefCell<Vec<NodeId>>,
}

impl Registry {
    /// An empty registry whose tags are keyed with `secret` (drawn from the run's seed).
    pub fn new(secret: [u8; 32]) -> Rc<Registry> {
        Rc::new(Registry {
            secret,
            ids: RefCell::new(Vec::new()),
        })
    }

    /// Registers `id` and returns the signer for it.
    pub fn signer(self: &Rc<Registry>, id: NodeId) -> FastCrypto {
        let mut ids = self.ids.borrow_mut();
        let index = ids.len() as u32;
        ids.push(id);
        FastCrypto {
            index,
            registry: Rc::clone(self),
        }
    }

    fn tag(&self, index: u32, digest: &[u8; 32]) -> [u8; 32] {
        let mut buf = [0u8; 68];
        buf[..32].copy_from_slice(&self.secret); // ok: fixed layout
        buf[32..36].copy_from_slice(&index.to_be_bytes()); // ok: fixed layout
        buf[36..].copy_from_slice(digest); // ok: fixed layout
        keccak256(&buf)
    }
}

/// A cheap stand-in for secp256k1 packet signatures, for the simulator only.
///
/// Signing and recovering a secp256k1 signature cost about 50 µs each and dominate a
/// simulation of thousands of nodes. This "signature" is the same 65 bytes: the signer's
/// index in the run's [`Registry`] (4 bytes), `keccak256(secret || index || digest)`
/// (32 bytes) and zeros. Recovery checks the tag and returns the registered id.
///
/// What it changes: nothing the protocol can observe. Packets keep their sizes and
/// layout, the recovered sender is the same node id, and a packet whose bytes were
/// changed (or "signed" by a node for someone else's index) fails as a bad signature,
/// as it would with secp256k1: without the secret no simulated node can forge a tag.
/// What differs is cost (one keccak instead of an ECDSA operation) and that these
/// packets mean nothing outside the run.
///
/// A real node cannot use it: [`crate::Protocol::new`] and [`crate::Service`] are fixed
/// to [`crate::packet::Secp256k1`] by type; only [`crate::Protocol::with_crypto`], which
/// the simulator calls, takes another strategy, and no setting or packet reaches it.
pub struct FastCrypto {
    index: u32,
    registry: Rc<Registry>,
}

impl Crypto for FastCrypto {
    fn sign(&self, digest: &[u8; 32]) -> [u8; 65] {
        let mut sig = [0u8; 65];
        sig[..4].copy_from_slice(&self.index.to_be_bytes()); // ok: fixed layout
        sig[4..36].copy_from_slice(&self.registry.tag(self.index, digest)); // ok: fixed layout
        sig
    }

    fn recover(&self, sig: &[u8], digest: &[u8; 32]) -> Result<NodeId, PacketError> {
        let bad = || PacketError::BadSignature;
        let sig: &[u8; 65] = sig.try_into().map_err(|_| bad())?;
        let (index, rest) = sig.split_at(4); // ok: 65 bytes
        let index = u32::from_be_bytes(index.try_into().map_err(|_| bad())?);
        let (tag, zeros) = rest.split_at(32); // ok: 61 bytes
        if zeros.iter().any(|b| *b != 0) || tag != self.registry.tag(index, digest) {
            return Err(bad());
        }
        let ids = self.registry.ids.borrow();
        ids.get(index as usize).copied().ok_or_else(bad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{self, Endpoint, Message, Ping};

    fn ping() -> Message {
        let ep = Endpoint {
            ip: [10, 0, 0, 1].into(),
            udp: 30303,
            tcp: 0,
        };
        Message::Ping(Ping {
            from: ep,
            to: ep,
            expiration: 1,
            enr_seq: Some(1),
        })
    }

    #[test]
    fn same_size_same_sender_and_tamper_fails() {
        let reg = Registry::new([7; 32]);
        let (a, b) = (NodeId([1; 64]), NodeId([2; 64]));
        let (sa, sb) = (reg.signer(a), reg.signer(b));
        let key = secp256k1::SecretKey::from_byte_array([3; 32]).unwrap();
        let (fast, _) = ping().encode_with(&sa);
        assert_eq!(fast.len(), ping().encode(&key).0.len());
        // Any node's verifier recovers the signer.
        let p = packet::decode_with(&fast, &sb).unwrap();
        assert_eq!((p.node_id, p.message), (a, ping()));
        // Claiming b's index with a's tag fails; so does any changed byte.
        let mut forged = fast.clone();
        forged[35] = 1;
        let hash = keccak256(&forged[32..]);
        forged[..32].copy_from_slice(&hash);
        assert!(matches!(
            packet::decode_with(&forged, &sb),
            Err(PacketError::BadSignature)
        ));
        // A real node rejects a stand-in packet: it is not a secp256k1 signature.
        assert!(packet::decode(&fast).is_err());
        // And the stand-in rejects a real one.
        assert!(packet::decode_with(&ping().encode(&key).0, &sa).is_err());
    }
}
