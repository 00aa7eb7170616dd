//! Ethereum Node Records (enr.md, EIP-778) with the "v4" identity scheme.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use secp256k1::ecdsa::Signature;
use secp256k1::{Message, PublicKey, SECP256K1, SecretKey};

use crate::node::{Node, NodeId, keccak256};
use crate::rlp;

/// Maximum encoded size of a record (enr.md "RLP Encoding").
pub const MAX_ENR_SIZE: usize = 300;

/// Why a record was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnrError {
    /// The encoding is over [`MAX_ENR_SIZE`] bytes.
    #[error("record is larger than 300 bytes")]
    TooLarge,
    /// Not an RLP list of `[signature, seq, k, v, ...]`.
    #[error("record is not valid RLP: {0}")]
    Rlp(#[from] alloy_rlp::Error),
    /// Keys are not sorted or a key appears twice.
    #[error("record keys are not sorted and unique")]
    KeyOrder,
    /// A key has no value.
    #[error("record has a key without a value")]
    MissingValue,
    /// The `id` key is missing or not "v4".
    #[error("record uses an unknown identity scheme")]
    Scheme,
    /// The `secp256k1` key is missing or not a compressed public key.
    #[error("record has no valid secp256k1 public key")]
    PublicKey,
    /// The signature does not verify against the record's public key.
    #[error("record signature is invalid")]
    Signature,
    /// The text form lacks the `enr:` prefix or is not base64url.
    #[error("record text is not enr:<base64url>")]
    Text,
    /// An entry value is not a single RLP item.
    #[error("record entry value is not a single RLP item")]
    Value,
}

/// A verified node record.
#[derive(Clone, PartialEq, Eq)]
pub struct Enr {
    raw: Vec<u8>,
    seq: u64,
    /// Keys with their values' RLP encodings, sorted by key.
    pairs: Vec<(Vec<u8>, Vec<u8>)>,
    id: NodeId,
}

impl Enr {
    /// Decodes and verifies a record from its RLP encoding. Trailing bytes are rejected.
    pub fn decode(bytes: &[u8]) -> Result<Self, EnrError> {
        if bytes.len() > MAX_ENR_SIZE {
            return Err(EnrError::TooLarge);
        }
        let mut buf = bytes;
        let mut payload = rlp::list(&mut buf)?;
        if !buf.is_empty() {
            return Err(EnrError::Rlp(alloy_rlp::Error::UnexpectedLength));
        }
        let sig = rlp::bytes(&mut payload)?;
        let content = payload;
        let seq: u64 = rlp::item(&mut payload)?;
        let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        while !payload.is_empty() {
            let key = rlp::bytes(&mut payload)?;
            if payload.is_empty() {
                return Err(EnrError::MissingValue);
            }
            let value = rlp::raw(&mut payload)?;
            if pairs.last().is_some_and(|(k, _)| k.as_slice() >= key) {
                return Err(EnrError::KeyOrder);
            }
            pairs.push((key.to_vec(), value.to_vec()));
        }
        let find = |k: &[u8]| {
            pairs
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_slice())
        };
        if find(b"id") != Some([0x82, b'v', b'4'].as_slice()) {
            return Err(EnrError::Scheme);
        }
        let key = find(b"secp256k1")
            .and_then(|mut v| rlp::bytes(&mut v).ok())
            .and_then(|k| PublicKey::from_slice(k).ok())
            .ok_or(EnrError::PublicKey)?;
        let sig = Signature::from_compact(sig).map_err(|_| EnrError::Signature)?;
        let mut signed = Vec::with_capacity(content.len() + 3);
        rlp::put_list(content, &mut signed);
        let msg = Message::from_digest(keccak256(&signed));
        SECP256K1
            .verify_ecdsa(msg, &sig, &key)
            .map_err(|_| EnrError::Signature)?;
        Ok(Enr {
            raw: bytes.to_vec(),
            seq,
            pairs,
            id: NodeId::from_public_key(&key),
        })
    }

    /// The canonical RLP encoding.
    pub fn encoded(&self) -> &[u8] {
        &self.raw
    }

    /// The sequence number.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The node id of the record's public key.
    pub fn node_id(&self) -> NodeId {
        self.id
    }

    /// The RLP encoding of the value stored under `key`.
    pub fn get_raw(&self, key: &[u8]) -> Option<&[u8]> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_slice())
    }

    fn get<T: alloy_rlp::Decodable>(&self, key: &[u8]) -> Option<T> {
        let mut v = self.get_raw(key)?;
        rlp::item(&mut v).ok()
    }

    fn get_bytes(&self, key: &[u8]) -> Option<&[u8]> {
        let mut v = self.get_raw(key)?;
        rlp::bytes(&mut v).ok()
    }

    /// The `ip` entry.
    pub fn ip4(&self) -> Option<Ipv4Addr> {
        <[u8; 4]>::try_from(self.get_bytes(b"ip")?)
            .ok()
            .map(Ipv4Addr::from)
    }

    /// The `ip6` entry.
    pub fn ip6(&self) -> Option<Ipv6Addr> {
        <[u8; 16]>::try_from(self.get_bytes(b"ip6")?)
            .ok()
            .map(Ipv6Addr::from)
    }

    /// The `tcp` entry.
    pub fn tcp(&self) -> Option<u16> {
        self.get(b"tcp")
    }

    /// The `udp` entry.
    pub fn udp(&self) -> Option<u16> {
        self.get(b"udp")
    }

    /// The raw RLP of the `eth` entry (EIP-2124 fork id list), when present.
    pub fn eth(&self) -> Option<&[u8]> {
        self.get_raw(b"eth")
    }

    /// The discovery endpoint: IPv4 with `udp`/`tcp`, else IPv6 with `udp6`/`tcp6` or the
    /// shared ports (enr.md). `None` without an address and UDP port.
    pub fn to_node(&self) -> Option<Node> {
        if let (Some(ip), Some(udp)) = (self.ip4(), self.udp()) {
            return Some(Node {
                id: self.id,
                ip: IpAddr::V4(ip),
                udp,
                tcp: self.tcp().unwrap_or(0),
            });
        }
        let ip = self.ip6()?;
        let udp = self.get(b"udp6").or_else(|| self.udp())?;
        let tcp = self.get(b"tcp6").or_else(|| self.tcp()).unwrap_or(0);
        Some(Node {
            id: self.id,
            ip: crate::node::canonical_ip(IpAddr::V6(ip)),
            udp,
            tcp,
        })
    }
}

impl fmt::Display for Enr {
    /// The text form `enr:<base64url, no padding>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "enr:{}", base64url_encode(&self.raw))
    }
}

impl fmt::Debug for Enr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Enr(seq={}, id={:?})", self.seq, self.id)
    }
}

impl FromStr for Enr {
    type Err = EnrError;
    fn from_str(s: &str) -> Result<Self, EnrError> {
        let b64 = s.trim().strip_prefix("enr:").ok_or(EnrError::Text)?;
        // Text longer than a maximal record is rejected before decoding.
        if b64.len() > MAX_ENR_SIZE * 4 / 3 + 4 {
            return Err(EnrError::TooLarge);
        }
        Enr::decode(&base64url_decode(b64).ok_or(EnrError::Text)?)
    }
}

/// Builds and signs a "v4" record.
#[derive(Clone, Debug, Default)]
pub struct Builder {
    pairs: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl Builder {
    /// An empty builder; `id` and `secp256k1` are added by [`Builder::build`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `ip` or `ip6`.
    pub fn ip(mut self, ip: IpAddr) -> Self {
        let mut v = Vec::new();
        match ip {
            IpAddr::V4(a) => {
                rlp::put(a.octets().as_slice(), &mut v);
                self.pairs.insert(b"ip".to_vec(), v);
            }
            IpAddr::V6(a) => {
                rlp::put(a.octets().as_slice(), &mut v);
                self.pairs.insert(b"ip6".to_vec(), v);
            }
        }
        self
    }

    /// Sets `tcp`.
    pub fn tcp(self, port: u16) -> Self {
        self.uint(b"tcp", port)
    }

    /// Sets `udp`.
    pub fn udp(self, port: u16) -> Self {
        self.uint(b"udp", port)
    }

    fn uint(mut self, key: &[u8], port: u16) -> Self {
        let mut v = Vec::new();
        rlp::put(&port, &mut v);
        self.pairs.insert(key.to_vec(), v);
        self
    }

    /// Sets `key` to an already RLP-encoded value (for example the `eth` entry).
    pub fn raw(mut self, key: &[u8], value: Vec<u8>) -> Result<Self, EnrError> {
        let mut b = value.as_slice();
        rlp::raw(&mut b).map_err(|_| EnrError::Value)?;
        if !b.is_empty() {
            return Err(EnrError::Value);
        }
        self.pairs.insert(key.to_vec(), value);
        Ok(self)
    }

    /// Signs the record with `key` at sequence number `seq`.
    pub fn build(mut self, seq: u64, key: &SecretKey) -> Result<Enr, EnrError> {
        let public = PublicKey::from_secret_key(SECP256K1, key);
        let mut v = Vec::new();
        rlp::put(public.serialize().as_slice(), &mut v);
        self.pairs.insert(b"secp256k1".to_vec(), v);
        self.pairs.insert(b"id".to_vec(), vec![0x82, b'v', b'4']);
        let mut content = Vec::with_capacity(256);
        rlp::put(&seq, &mut content);
        for (k, v) in &self.pairs {
            rlp::put(k.as_slice(), &mut content);
            content.extend_from_slice(v);
        }
        let mut signed = Vec::with_capacity(content.len() + 3);
        rlp::put_list(&content, &mut signed);
        let sig = SECP256K1.sign_ecdsa(Message::from_digest(keccak256(&signed)), key);
        let mut payload = Vec::with_capacity(content.len() + 66);
        rlp::put(sig.serialize_compact().as_slice(), &mut payload);
        payload.extend_from_slice(&content);
        let mut raw = Vec::with_capacity(payload.len() + 3);
        rlp::put_list(&payload, &mut raw);
        if raw.len() > MAX_ENR_SIZE {
            return Err(EnrError::TooLarge);
        }
        Ok(Enr {
            raw,
            seq,
            pairs: self.pairs.into_iter().collect(),
            id: NodeId::from_public_key(&public),
        })
    }
}

/// The local node's record: rebuilt with `seq + 1` whenever an entry changes.
///
/// It holds an address of each family: a dual-stack node (one socket bound to `::`) is
/// reachable at both, and the record carries `ip` and `ip6` with the shared `udp`/`tcp`
/// ports (enr.md: `udp6`/`tcp6` are needed only when the IPv6 ports differ).
#[derive(Clone, Debug)]
pub struct LocalEnr {
    key: SecretKey,
    ip4: Option<Ipv4Addr>,
    ip6: Option<Ipv6Addr>,
    udp: u16,
    tcp: u16,
    eth: Option<Vec<u8>>,
    record: Enr,
}

impl LocalEnr {
    /// Builds the first record at `seq` (persisted sequence numbers avoid reuse after restart).
    pub fn new(
        key: SecretKey,
        ip: Option<IpAddr>,
        udp: u16,
        tcp: u16,
        seq: u64,
    ) -> Result<Self, EnrError> {
        let (ip4, ip6) = with_ip((None, None), ip);
        let record = Self::build(&key, (ip4, ip6), udp, tcp, None, seq)?;
        Ok(LocalEnr {
            key,
            ip4,
            ip6,
            udp,
            tcp,
            eth: None,
            record,
        })
    }

    fn build(
        key: &SecretKey,
        (ip4, ip6): (Option<Ipv4Addr>, Option<Ipv6Addr>),
        udp: u16,
        tcp: u16,
        eth: Option<&Vec<u8>>,
        seq: u64,
    ) -> Result<Enr, EnrError> {
        let mut b = Builder::new().udp(udp);
        if tcp != 0 {
            b = b.tcp(tcp);
        }
        if let Some(ip) = ip4 {
            b = b.ip(IpAddr::V4(ip));
        }
        if let Some(ip) = ip6 {
            b = b.ip(IpAddr::V6(ip));
        }
        if let Some(eth) = eth {
            b = b.raw(b"eth", eth.clone())?;
        }
        b.build(seq, key)
    }

    /// The current signed record.
    pub fn record(&self) -> &Enr {
        &self.record
    }

    /// The advertised IP: the IPv4 address when there is one (what `to_node` of the
    /// record gives), else the IPv6 one.
    pub fn ip(&self) -> Option<IpAddr> {
        self.ip4.map(IpAddr::V4).or(self.ip6.map(IpAddr::V6))
    }

    /// The advertised IPv6 address (`ip6`), beside an IPv4 one or alone.
    pub fn ip6(&self) -> Option<Ipv6Addr> {
        self.ip6
    }

    /// Whether `ip` is the advertised address of its family.
    pub fn has_ip(&self, ip: IpAddr) -> bool {
        match crate::node::canonical_ip(ip) {
            IpAddr::V4(a) => self.ip4 == Some(a),
            IpAddr::V6(a) => self.ip6 == Some(a),
        }
    }

    /// The advertised UDP port.
    pub fn udp(&self) -> u16 {
        self.udp
    }

    /// The advertised TCP port.
    pub fn tcp(&self) -> u16 {
        self.tcp
    }

    fn rebuild(
        &mut self,
        ips: (Option<Ipv4Addr>, Option<Ipv6Addr>),
        udp: u16,
        tcp: u16,
        eth: Option<Vec<u8>>,
    ) -> Result<bool, EnrError> {
        if ips == (self.ip4, self.ip6) && udp == self.udp && tcp == self.tcp && eth == self.eth {
            return Ok(false);
        }
        let seq = self.record.seq.saturating_add(1);
        self.record = Self::build(&self.key, ips, udp, tcp, eth.as_ref(), seq)?;
        (self.ip4, self.ip6, self.udp, self.tcp, self.eth) = (ips.0, ips.1, udp, tcp, eth);
        Ok(true)
    }

    /// Changes the endpoint: `Some(ip)` replaces the address of `ip`'s family (the other
    /// family's stays), `None` removes both; bumps `seq` when anything differs. Returns
    /// whether it changed.
    pub fn set_endpoint(
        &mut self,
        ip: Option<IpAddr>,
        udp: u16,
        tcp: u16,
    ) -> Result<bool, EnrError> {
        let eth = self.eth.clone();
        let ips = match ip {
            Some(_) => with_ip((self.ip4, self.ip6), ip),
            None => (None, None),
        };
        self.rebuild(ips, udp, tcp, eth)
    }

    /// Sets the `eth` entry from the raw RLP of `[[fork-hash, fork-next], ...]` (EIP-2124),
    /// or removes it with `None`. Bumps `seq` when it differs.
    pub fn set_eth(&mut self, raw: Option<Vec<u8>>) -> Result<bool, EnrError> {
        self.rebuild((self.ip4, self.ip6), self.udp, self.tcp, raw)
    }
}

/// `ips` with `ip` (canonical form; unspecified addresses are not advertised) in its
/// family's slot.
fn with_ip(
    (ip4, ip6): (Option<Ipv4Addr>, Option<Ipv6Addr>),
    ip: Option<IpAddr>,
) -> (Option<Ipv4Addr>, Option<Ipv6Addr>) {
    match ip.map(crate::node::canonical_ip) {
        Some(IpAddr::V4(a)) if !a.is_unspecified() => (Some(a), ip6),
        Some(IpAddr::V6(a)) if !a.is_unspecified() => (ip4, Some(a)),
        _ => (ip4, ip6),
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// base64url without padding (RFC 4648 §5).
pub fn base64url_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]); // ok: [u8; 3]
        for i in 0..=chunk.len() {
            out.push(char::from(B64[(n >> (18 - 6 * i) & 63) as usize])); // ok: masked to 0..64
        }
    }
    out
}

/// Decodes base64url; padding is tolerated, other characters are rejected.
pub fn base64url_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // A single leftover character carries fewer than 8 bits: not valid base64.
    if bits >= 6 {
        return None;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // enr.md "Test Vectors" / EIP-778.
    const EXAMPLE: &str = "enr:-IS4QHCYrYZbAKWCBRlAy5zzaDZXJBGkcnh4MHcBFZntXNFrdvJjX04jRzjzCBOonrkTfj499SZuOh8R33Ls8RRcy5wBgmlkgnY0gmlwhH8AAAGJc2VjcDI1NmsxoQPKY0yuDUmstAHYpMa2_oxVtw0RW_QAdpzBQA8yWM0xOIN1ZHCCdl8";
    const KEY: &str = "b71c71a67e1177ad4e901695e1b4b9ee17ae16c6668d313eac2f96dbcda3f291";

    fn key() -> SecretKey {
        SecretKey::from_byte_array(hex::decode(KEY).unwrap().try_into().unwrap()).unwrap()
    }

    #[test]
    fn eip778_example_decodes() {
        let enr: Enr = EXAMPLE.parse().unwrap();
        assert_eq!(enr.seq(), 1);
        assert_eq!(enr.ip4(), Some(Ipv4Addr::LOCALHOST));
        assert_eq!(enr.udp(), Some(30303));
        assert_eq!(enr.tcp(), None);
        assert_eq!(
            hex::encode(enr.node_id().hash()),
            "a448f24c6d18e575453db13171562b71999873db5b286df957af199ec94617f7"
        );
        assert_eq!(enr.node_id(), NodeId::from_secret_key(&key()));
        assert_eq!(enr.to_string(), EXAMPLE);
        let node = enr.to_node().unwrap();
        assert_eq!(node.udp_addr(), "127.0.0.1:30303".parse().unwrap());
    }

    #[test]
    fn eip778_example_is_reproduced_by_builder() {
        let enr = Builder::new()
            .ip(Ipv4Addr::LOCALHOST.into())
            .udp(30303)
            .build(1, &key())
            .unwrap();
        assert_eq!(enr.to_string(), EXAMPLE);
    }

    #[test]
    fn rejects_tampering() {
        let enr: Enr = EXAMPLE.parse().unwrap();
        let mut raw = enr.encoded().to_vec();
        let last = raw.len() - 1;
        raw[last] ^= 1; // udp port changed: signature no longer matches
        assert_eq!(Enr::decode(&raw), Err(EnrError::Signature));
        assert_eq!(
            Enr::decode(&raw[..20]),
            Err(EnrError::Rlp(alloy_rlp::Error::InputTooShort))
        );
        assert!(matches!("enr:!!".parse::<Enr>(), Err(EnrError::Text)));
        assert!(matches!("enx:AA".parse::<Enr>(), Err(EnrError::Text)));
        let mut trailing = enr.encoded().to_vec();
        trailing.push(0);
        assert!(Enr::decode(&trailing).is_err());
    }

    #[test]
    fn rejects_oversized_and_unsorted() {
        let big = Builder::new().raw(b"zz", {
            let mut v = Vec::new();
            rlp::put(&[0u8; 250][..], &mut v);
            v
        });
        assert_eq!(big.unwrap().build(1, &key()), Err(EnrError::TooLarge));
        let mut bytes = vec![0xf9, 0x01, 0x40];
        bytes.resize(323, 0x80);
        assert_eq!(Enr::decode(&bytes), Err(EnrError::TooLarge));
        // Hand-made record with keys out of order.
        let mut content = Vec::new();
        rlp::put(&1u64, &mut content);
        for (k, v) in [
            ("udp", vec![0x82, 0x76, 0x5f]),
            ("id", vec![0x82, b'v', b'4']),
        ] {
            rlp::put(k.as_bytes(), &mut content);
            content.extend_from_slice(&v);
        }
        let mut payload = Vec::new();
        rlp::put(&[0u8; 64][..], &mut payload);
        payload.extend_from_slice(&content);
        let mut raw = Vec::new();
        rlp::put_list(&payload, &mut raw);
        assert_eq!(Enr::decode(&raw), Err(EnrError::KeyOrder));
    }

    #[test]
    fn local_record_bumps_seq() {
        let mut local =
            LocalEnr::new(key(), Some(Ipv4Addr::LOCALHOST.into()), 30303, 30303, 1).unwrap();
        assert!(
            !local
                .set_endpoint(Some(Ipv4Addr::LOCALHOST.into()), 30303, 30303)
                .unwrap()
        );
        assert_eq!(local.record().seq(), 1);
        assert!(
            local
                .set_endpoint(Some(Ipv4Addr::new(1, 2, 3, 4).into()), 30303, 30303)
                .unwrap()
        );
        assert_eq!(local.record().seq(), 2);
        // eth = [[fork-hash, fork-next]]
        let eth = vec![0xc7, 0xc6, 0x84, 0xfc, 0x64, 0xec, 0x04, 0x80];
        assert!(local.set_eth(Some(eth.clone())).unwrap());
        assert_eq!(local.record().seq(), 3);
        assert_eq!(local.record().eth(), Some(&eth[..]));
        let reparsed = Enr::decode(local.record().encoded()).unwrap();
        assert_eq!(reparsed.eth(), Some(&eth[..]));
        assert_eq!(reparsed.ip4(), Some(Ipv4Addr::new(1, 2, 3, 4)));
        assert_eq!(reparsed.tcp(), Some(30303));
        assert!(
            local.set_eth(Some(vec![0xc1])).is_err(),
            "truncated RLP rejected"
        );
    }

    #[test]
    fn base64_roundtrip() {
        for n in 0..10 {
            let data: Vec<u8> = (0..n).map(|i| (i * 37) as u8).collect();
            assert_eq!(base64url_decode(&base64url_encode(&data)).unwrap(), data);
        }
        assert_eq!(base64url_decode("A"), None);
    }
}
