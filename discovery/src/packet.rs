//! Discovery v4 wire packets (discv4.md "Wire Protocol", EIP-8, EIP-868).
//!
//! `packet = hash || signature || packet-type || packet-data`, where
//! `hash = keccak256(signature || packet-type || packet-data)` and the 65-byte recoverable
//! signature covers `keccak256(packet-type || packet-data)`.
//!
//! Decoding is lenient as EIP-8 requires: the Ping version is not checked, extra list
//! elements and data after the list are ignored.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use secp256k1::ecdsa::{RecoverableSignature, RecoveryId};
use secp256k1::{Message as SecpMessage, SECP256K1, SecretKey};

use crate::enr::{Enr, EnrError};
use crate::node::{Node, NodeId, keccak256};
use crate::rlp;

/// Maximum size of any discovery packet (discv4.md "Wire Protocol", EIP-8).
pub const MAX_PACKET_SIZE: usize = 1280;
/// hash (32) + signature (65) + type (1).
pub const HEADER_SIZE: usize = 32 + 65 + 1;
/// Ping `version` field value (discv4.md "Ping Packet").
pub const VERSION: u64 = 4;

/// Why an incoming packet was dropped. No variant is fatal: the packet is counted and ignored.
#[derive(Debug, thiserror::Error)]
pub enum PacketError {
    /// Shorter than the header plus one byte of data.
    #[error("packet is too short")]
    TooShort,
    /// Larger than [`MAX_PACKET_SIZE`].
    #[error("packet exceeds 1280 bytes")]
    TooLarge,
    /// The leading hash does not match the rest of the packet.
    #[error("packet hash does not match its contents")]
    BadHash,
    /// The signature is malformed or does not recover to a public key.
    #[error("packet signature is invalid")]
    BadSignature,
    /// A packet type this implementation does not know (EIP-8: discard silently).
    #[error("unknown packet type {0}")]
    UnknownType(u8),
    /// The packet data is not the RLP structure its type requires.
    #[error("malformed packet data: {0}")]
    Rlp(#[from] alloy_rlp::Error),
    /// An ENRResponse carried an invalid record.
    #[error("invalid node record in ENRResponse: {0}")]
    Enr(#[from] EnrError),
}

/// An endpoint as carried in Ping/Pong: `[ip, udp-port, tcp-port]`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Endpoint {
    /// IP address; unspecified when the sender sent neither 4 nor 16 bytes.
    pub ip: IpAddr,
    /// UDP port.
    pub udp: u16,
    /// TCP port.
    pub tcp: u16,
}

/// Ping (0x01): `[version, from, to, expiration, enr-seq ...]`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Ping {
    /// The sender's endpoint as it believes it to be (informational).
    pub from: Endpoint,
    /// The recipient's endpoint as the sender sees it.
    pub to: Endpoint,
    /// Absolute UNIX time after which the packet must be ignored.
    pub expiration: u64,
    /// The sender's ENR sequence number (EIP-868), when present.
    pub enr_seq: Option<u64>,
}

/// Pong (0x02): `[to, ping-hash, expiration, enr-seq ...]`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Pong {
    /// Our endpoint as the pinged node sees it: votes for our external address.
    pub to: Endpoint,
    /// Hash of the Ping being answered.
    pub ping_hash: [u8; 32],
    /// Absolute UNIX expiration.
    pub expiration: u64,
    /// The sender's ENR sequence number, when present.
    pub enr_seq: Option<u64>,
}

/// FindNode (0x03): `[target, expiration ...]`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct FindNode {
    /// The 64-byte public key whose neighbourhood is requested.
    pub target: NodeId,
    /// Absolute UNIX expiration.
    pub expiration: u64,
}

/// Neighbors (0x04): `[[[ip, udp, tcp, id], ...], expiration ...]`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Neighbors {
    /// Nodes close to the requested target. Entries with malformed fields are skipped.
    pub nodes: Vec<Node>,
    /// Absolute UNIX expiration.
    pub expiration: u64,
}

/// ENRRequest (0x05): `[expiration ...]` (EIP-868).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct EnrRequest {
    /// Absolute UNIX expiration.
    pub expiration: u64,
}

/// ENRResponse (0x06): `[request-hash, ENR ...]` (EIP-868).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct EnrResponse {
    /// Hash of the ENRRequest being answered.
    pub request_hash: [u8; 32],
    /// The signature-checked record. Whether it belongs to the sender is checked by the caller.
    pub enr: Enr,
}

/// A discovery message.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Message {
    /// 0x01.
    Ping(Ping),
    /// 0x02.
    Pong(Pong),
    /// 0x03.
    FindNode(FindNode),
    /// 0x04.
    Neighbors(Neighbors),
    /// 0x05.
    EnrRequest(EnrRequest),
    /// 0x06.
    EnrResponse(EnrResponse),
}

/// A decoded and signature-checked packet.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Packet {
    /// The packet hash (what Pong and ENRResponse echo).
    pub hash: [u8; 32],
    /// The signer.
    pub node_id: NodeId,
    /// The message.
    pub message: Message,
}

impl Message {
    /// The packet-type byte.
    pub fn kind(&self) -> u8 {
        match self {
            Message::Ping(_) => 1,
            Message::Pong(_) => 2,
            Message::FindNode(_) => 3,
            Message::Neighbors(_) => 4,
            Message::EnrRequest(_) => 5,
            Message::EnrResponse(_) => 6,
        }
    }

    /// A short name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Message::Ping(_) => "ping",
            Message::Pong(_) => "pong",
            Message::FindNode(_) => "findnode",
            Message::Neighbors(_) => "neighbors",
            Message::EnrRequest(_) => "enrrequest",
            Message::EnrResponse(_) => "enrresponse",
        }
    }

    fn encode_data(&self, out: &mut Vec<u8>) {
        let mut p = Vec::with_capacity(128);
        match self {
            Message::Ping(m) => {
                rlp::put(&VERSION, &mut p);
                put_endpoint(&m.from, &mut p);
                put_endpoint(&m.to, &mut p);
                rlp::put(&m.expiration, &mut p);
                if let Some(seq) = m.enr_seq {
                    rlp::put(&seq, &mut p);
                }
            }
            Message::Pong(m) => {
                put_endpoint(&m.to, &mut p);
                rlp::put(&m.ping_hash, &mut p);
                rlp::put(&m.expiration, &mut p);
                if let Some(seq) = m.enr_seq {
                    rlp::put(&seq, &mut p);
                }
            }
            Message::FindNode(m) => {
                rlp::put(&m.target.0, &mut p);
                rlp::put(&m.expiration, &mut p);
            }
            Message::Neighbors(m) => {
                let mut nodes = Vec::with_capacity(m.nodes.len() * 90);
                for n in &m.nodes {
                    put_node(n, &mut nodes);
                }
                rlp::put_list(&nodes, &mut p);
                rlp::put(&m.expiration, &mut p);
            }
            Message::EnrRequest(m) => rlp::put(&m.expiration, &mut p),
            Message::EnrResponse(m) => {
                rlp::put(&m.request_hash, &mut p);
                p.extend_from_slice(m.enr.encoded());
            }
        }
        rlp::put_list(&p, out);
    }

    /// Signs and encodes the message; returns the packet and its hash.
    ///
    /// The caller keeps packets under [`MAX_PACKET_SIZE`]; [`encode_neighbors`] splits
    /// Neighbors so they fit.
    pub fn encode(&self, key: &SecretKey) -> (Vec<u8>, [u8; 32]) {
        self.encode_with(&Secp256k1(*key))
    }

    /// [`Message::encode`] with the signature made by `crypto`.
    pub fn encode_with<C: Crypto>(&self, crypto: &C) -> (Vec<u8>, [u8; 32]) {
        let mut out = vec![0u8; HEADER_SIZE];
        out[HEADER_SIZE - 1] = self.kind(); // ok: HEADER_SIZE > 0
        self.encode_data(&mut out);
        let sighash = keccak256(&out[HEADER_SIZE - 1..]); // ok: out.len() >= HEADER_SIZE
        out[32..97].copy_from_slice(&crypto.sign(&sighash)); // ok: fixed header layout
        let hash = keccak256(&out[32..]); // ok: fixed header layout
        out[..32].copy_from_slice(&hash); // ok: fixed header layout
        (out, hash)
    }
}

/// How packets are signed and their signer recovered.
///
/// [`Secp256k1`] is the protocol's (discv4.md "Wire Protocol"): a recoverable secp256k1
/// signature whose public key is the sender's node id. It is what every
/// [`Protocol`](crate::Protocol) built by [`Protocol::new`](crate::Protocol::new) (and so
/// every [`Service`](crate::Service)) uses, fixed by its type: no setting or packet can
/// switch a running node to anything else. The only other implementation is the
/// simulator's stand-in [`crate::sim::FastCrypto`], which the simulator alone constructs.
pub trait Crypto {
    /// The 65-byte signature field over `digest` (`keccak256(packet-type || packet-data)`).
    fn sign(&self, digest: &[u8; 32]) -> [u8; 65];
    /// The node id that made `sig` over `digest`, or [`PacketError::BadSignature`].
    fn recover(&self, sig: &[u8], digest: &[u8; 32]) -> Result<NodeId, PacketError>;
}

/// The protocol's signatures: recoverable secp256k1 ECDSA made with the node key.
#[derive(Clone, Copy)]
pub struct Secp256k1(pub SecretKey);

impl std::fmt::Debug for Secp256k1 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.write_str("Secp256k1(..)")
    }
}

impl Crypto for Secp256k1 {
    #[inline]
    fn sign(&self, digest: &[u8; 32]) -> [u8; 65] {
        let sig = SECP256K1.sign_ecdsa_recoverable(SecpMessage::from_digest(*digest), &self.0);
        let (recid, rs) = sig.serialize_compact();
        let mut out = [0u8; 65];
        out[..64].copy_from_slice(&rs); // ok: 64-byte compact form
        out[64] = i32::from(recid) as u8; // ok: recovery ids are 0..=3
        out
    }

    #[inline]
    fn recover(&self, sig: &[u8], digest: &[u8; 32]) -> Result<NodeId, PacketError> {
        recover(sig, digest)
    }
}

fn put_endpoint(e: &Endpoint, out: &mut Vec<u8>) {
    let mut p = Vec::with_capacity(24);
    put_ip(e.ip, &mut p);
    rlp::put(&e.udp, &mut p);
    rlp::put(&e.tcp, &mut p);
    rlp::put_list(&p, out);
}

fn put_ip(ip: IpAddr, out: &mut Vec<u8>) {
    match ip {
        IpAddr::V4(v4) => rlp::put(v4.octets().as_slice(), out),
        IpAddr::V6(v6) => rlp::put(v6.octets().as_slice(), out),
    }
}

fn put_node(n: &Node, out: &mut Vec<u8>) {
    let mut p = Vec::with_capacity(96);
    put_ip(n.ip, &mut p);
    rlp::put(&n.udp, &mut p);
    rlp::put(&n.tcp, &mut p);
    rlp::put(&n.id.0, &mut p);
    rlp::put_list(&p, out);
}

/// Encodes `nodes` into as many signed Neighbors packets as needed so that each stays within
/// [`MAX_PACKET_SIZE`].
pub fn encode_neighbors(nodes: &[Node], expiration: u64, key: &SecretKey) -> Vec<Vec<u8>> {
    encode_neighbors_with(nodes, expiration, &Secp256k1(*key))
}

/// [`encode_neighbors`] with the signatures made by `crypto`.
pub fn encode_neighbors_with<C: Crypto>(
    nodes: &[Node],
    expiration: u64,
    crypto: &C,
) -> Vec<Vec<u8>> {
    // Fixed part: header, outer list header (3), nodes list header (3), expiration (9).
    const BUDGET: usize = MAX_PACKET_SIZE - HEADER_SIZE - 3 - 3 - 9;
    let mut packets = Vec::new();
    let mut chunk = Vec::new();
    let mut size = 0;
    let mut scratch = Vec::with_capacity(100);
    for n in nodes {
        scratch.clear();
        put_node(n, &mut scratch);
        if size + scratch.len() > BUDGET && !chunk.is_empty() {
            let msg = Message::Neighbors(Neighbors {
                nodes: std::mem::take(&mut chunk),
                expiration,
            });
            packets.push(msg.encode_with(crypto).0);
            size = 0;
        }
        size += scratch.len();
        chunk.push(*n);
    }
    if !chunk.is_empty() {
        let msg = Message::Neighbors(Neighbors {
            nodes: chunk,
            expiration,
        });
        packets.push(msg.encode_with(crypto).0);
    }
    packets
}

/// Decodes and verifies a packet: hash, signature (recovering the sender) and RLP data.
/// Expiration is checked by the caller, which knows the time.
pub fn decode(packet: &[u8]) -> Result<Packet, PacketError> {
    decode_with(packet, &Secp256k1Verify)
}

/// Recovery-only [`Crypto`] for [`decode`], which has no key (signing is never called).
struct Secp256k1Verify;

impl Crypto for Secp256k1Verify {
    fn sign(&self, _: &[u8; 32]) -> [u8; 65] {
        [0; 65]
    }

    #[inline]
    fn recover(&self, sig: &[u8], digest: &[u8; 32]) -> Result<NodeId, PacketError> {
        recover(sig, digest)
    }
}

/// [`decode`] with the signer recovered by `crypto`.
pub fn decode_with<C: Crypto>(packet: &[u8], crypto: &C) -> Result<Packet, PacketError> {
    if packet.len() > MAX_PACKET_SIZE {
        return Err(PacketError::TooLarge);
    }
    if packet.len() <= HEADER_SIZE {
        return Err(PacketError::TooShort);
    }
    let (hash, rest) = packet.split_at(32); // ok: len > HEADER_SIZE checked above
    if keccak256(rest) != hash {
        return Err(PacketError::BadHash);
    }
    let (sig, signed) = rest.split_at(65); // ok: len > HEADER_SIZE checked above
    let (&kind, mut data) = signed.split_first().ok_or(PacketError::TooShort)?;
    if !(1..=6).contains(&kind) {
        return Err(PacketError::UnknownType(kind));
    }
    let node_id = crypto.recover(sig, &keccak256(signed))?;
    let message = decode_message(kind, &mut data)?;
    let mut h = [0u8; 32];
    h.copy_from_slice(hash); // ok: split_at(32)
    Ok(Packet {
        hash: h,
        node_id,
        message,
    })
}

fn recover(sig: &[u8], digest: &[u8; 32]) -> Result<NodeId, PacketError> {
    let (&v, rs) = sig.split_last().ok_or(PacketError::BadSignature)?;
    let recid = RecoveryId::try_from(i32::from(v)).map_err(|_| PacketError::BadSignature)?;
    let sig =
        RecoverableSignature::from_compact(rs, recid).map_err(|_| PacketError::BadSignature)?;
    let msg = SecpMessage::from_digest(*digest);
    let key = SECP256K1
        .recover_ecdsa(msg, &sig)
        .map_err(|_| PacketError::BadSignature)?;
    Ok(NodeId::from_public_key(&key))
}

fn decode_message(kind: u8, data: &mut &[u8]) -> Result<Message, PacketError> {
    let mut p = rlp::list(data)?;
    Ok(match kind {
        1 => {
            rlp::raw(&mut p)?; // version: not validated (EIP-8)
            let from = endpoint(&mut p)?;
            let to = endpoint(&mut p)?;
            let expiration = rlp::item(&mut p)?;
            Message::Ping(Ping {
                from,
                to,
                expiration,
                enr_seq: opt_seq(&mut p),
            })
        }
        2 => {
            let to = endpoint(&mut p)?;
            let ping_hash = rlp::item(&mut p)?;
            let expiration = rlp::item(&mut p)?;
            Message::Pong(Pong {
                to,
                ping_hash,
                expiration,
                enr_seq: opt_seq(&mut p),
            })
        }
        3 => {
            let target = NodeId(rlp::item(&mut p)?);
            Message::FindNode(FindNode {
                target,
                expiration: rlp::item(&mut p)?,
            })
        }
        4 => {
            let mut list = rlp::list(&mut p)?;
            let mut nodes = Vec::new();
            while !list.is_empty() {
                // A malformed entry is skipped rather than failing the packet.
                let mut entry = rlp::list(&mut list)?;
                if let Ok(n) = node(&mut entry) {
                    nodes.push(n);
                }
            }
            Message::Neighbors(Neighbors {
                nodes,
                expiration: rlp::item(&mut p)?,
            })
        }
        5 => Message::EnrRequest(EnrRequest {
            expiration: rlp::item(&mut p)?,
        }),
        6 => {
            let request_hash = rlp::item(&mut p)?;
            let enr = Enr::decode(rlp::raw(&mut p)?)?;
            Message::EnrResponse(EnrResponse { request_hash, enr })
        }
        other => return Err(PacketError::UnknownType(other)),
    })
}

/// The optional EIP-868 `enr-seq`; anything not a u64 in that position is treated as absent.
fn opt_seq(p: &mut &[u8]) -> Option<u64> {
    if p.is_empty() {
        None
    } else {
        rlp::item::<u64>(p).ok()
    }
}

fn ip(b: &[u8]) -> IpAddr {
    if let Ok(v4) = <[u8; 4]>::try_from(b) {
        IpAddr::V4(Ipv4Addr::from(v4))
    } else if let Ok(v6) = <[u8; 16]>::try_from(b) {
        // A mapped address is the IPv4 address it carries (`node::canonical_ip`).
        crate::node::canonical_ip(IpAddr::V6(Ipv6Addr::from(v6)))
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    }
}

fn endpoint(buf: &mut &[u8]) -> Result<Endpoint, PacketError> {
    let mut p = rlp::list(buf)?;
    let ip = ip(rlp::bytes(&mut p)?);
    let udp = rlp::item(&mut p)?;
    let tcp = rlp::item(&mut p)?;
    Ok(Endpoint { ip, udp, tcp })
}

fn node(p: &mut &[u8]) -> Result<Node, PacketError> {
    let ip = ip(rlp::bytes(p)?);
    let udp = rlp::item(p)?;
    let tcp = rlp::item(p)?;
    let id = NodeId(rlp::item(p)?);
    Ok(Node { id, ip, udp, tcp })
}

#[cfg(test)]
#[path = "packet_tests.rs"]
mod tests;
