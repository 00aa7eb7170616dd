//! The records of a DNS node list (`dnsdisc.md` "DNS Record Structure"): `enrtree://` URLs,
//! the signed root, branches, ENR leaves and links, and the hashes that name them.

use std::fmt;
use std::str::FromStr;

use secp256k1::ecdsa::{RecoverableSignature, RecoveryId, Signature};
use secp256k1::{Message, PublicKey, SECP256K1, SecretKey};

use super::Error;
use crate::enr::{Enr, base64url_decode, base64url_encode};
use crate::node::keccak256;

/// Longest TXT content accepted. dnsdisc.md: "The content of any TXT record should be small
/// enough to fit into the 512 byte limit imposed on UDP DNS packets". The largest honest
/// entries are an ENR (`enr:` + 400 base64 characters for a 300-byte record) and a link
/// (~60 + a domain of up to 253 characters).
pub const MAX_RECORD_LEN: usize = 512;

/// Bytes of the keccak256 hash that name an entry (26 base32 characters), as go-ethereum
/// publishes them.
pub const HASH_LEN: usize = 16;

/// Shortest accepted child hash in bytes: shorter prefixes would make collisions cheap
/// (go-ethereum accepts 12 to 32 bytes).
const MIN_HASH_LEN: usize = 12;

/// Most hashes a published branch holds: `enrtree-branch:` (15 bytes) plus 13 × 27
/// (26 base32 characters and a comma) is 366 bytes, leaving the rest of a 512-byte UDP DNS
/// answer to the name and headers (go-ethereum's `maxChildren` is computed the same way
/// from a 370-byte budget). The client accepts any branch that fits [`MAX_RECORD_LEN`].
pub const MAX_CHILDREN: usize = 13;

const ROOT_PREFIX: &str = "enrtree-root:v1";
const BRANCH_PREFIX: &str = "enrtree-branch:";
const LINK_PREFIX: &str = "enrtree://";

const B32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// base32 (RFC 4648 §6) without padding, as dnsdisc.md requires.
pub fn base32_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(5) * 8);
    let (mut acc, mut bits) = (0u16, 0u32);
    for &b in data {
        acc = (acc << 8) | u16::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(B32[usize::from((acc >> bits) & 31)]));
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(char::from(B32[usize::from((acc << (5 - bits)) & 31)]));
    }
    out
}

/// Decodes unpadded upper-case base32; `None` for other characters or non-zero trailing bits.
pub fn base32_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 5 / 8);
    let (mut acc, mut bits) = (0u16, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            _ => return None,
        };
        acc = (acc << 5) | u16::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8); // ok: the 8 bits above `bits`
            acc &= (1 << bits) - 1;
        }
    }
    // Leftover bits are padding: fewer than 5 and all zero in a canonical encoding.
    (bits < 5 && acc == 0).then_some(out)
}

/// The subdomain naming an entry: base32 of the first [`HASH_LEN`] bytes of keccak256 of
/// its text.
pub fn entry_hash(text: &str) -> String {
    base32_encode(&keccak256(text.as_bytes())[..HASH_LEN])
}

/// Checks and decodes a child hash: base32 of 12 to 32 bytes.
pub(crate) fn decode_hash(hash: &str) -> Result<Vec<u8>, Error> {
    match base32_decode(hash) {
        Some(b) if (MIN_HASH_LEN..=32).contains(&b.len()) => Ok(b),
        _ => Err(Error::InvalidHash),
    }
}

/// Whether `text` is the content named by `hash` (a prefix of its keccak256).
pub(crate) fn hash_matches(hash: &[u8], text: &str) -> bool {
    keccak256(text.as_bytes()).starts_with(hash)
}

/// Checks a domain name: dot-separated labels of 1 to 63 letters, digits, `-` or `_`, at
/// most 253 characters. Keeps hostile link targets out of queries and logs.
fn valid_domain(d: &str) -> bool {
    !d.is_empty()
        && d.len() <= 253
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// `enrtree://<base32 compressed public key>@<domain>`: where a list lives and who signs it.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TreeUrl {
    /// The key that signs the list's root.
    pub key: PublicKey,
    /// The DNS name holding the root record.
    pub domain: String,
}

impl TreeUrl {
    /// The URL of the list at `domain` signed by `key`.
    pub fn new(key: &SecretKey, domain: &str) -> Result<Self, Error> {
        if !valid_domain(domain) {
            return Err(Error::InvalidUrl);
        }
        Ok(TreeUrl {
            key: PublicKey::from_secret_key(SECP256K1, key),
            domain: domain.to_owned(),
        })
    }
}

impl FromStr for TreeUrl {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let rest = s.strip_prefix(LINK_PREFIX).ok_or(Error::InvalidUrl)?;
        let (key, domain) = rest.split_once('@').ok_or(Error::InvalidUrl)?;
        let key = base32_decode(key)
            .and_then(|k| PublicKey::from_slice(&k).ok())
            .filter(|_| key.len() == 53)
            .ok_or(Error::InvalidUrl)?;
        if !valid_domain(domain) {
            return Err(Error::InvalidUrl);
        }
        Ok(TreeUrl {
            key,
            domain: domain.to_owned(),
        })
    }
}

impl fmt::Display for TreeUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = base32_encode(&self.key.serialize());
        write!(f, "{LINK_PREFIX}{key}@{}", self.domain)
    }
}

impl fmt::Debug for TreeUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The signed root record: `enrtree-root:v1 e=<enr-root> l=<link-root> seq=<n> sig=<sig>`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Root {
    /// Hash of the root of the ENR subtree.
    pub e: String,
    /// Hash of the root of the link subtree.
    pub l: String,
    /// Update sequence number; never decreases for an honest list.
    pub seq: u64,
    /// 65-byte `[R || S || V]` signature over keccak256 of [`Root::content`].
    pub sig: [u8; 65],
}

impl Root {
    /// The signed text: the record without ` sig=…`.
    pub fn content(&self) -> String {
        format!("{ROOT_PREFIX} e={} l={} seq={}", self.e, self.l, self.seq)
    }

    /// Signs the root with the list's key.
    pub fn sign(&mut self, key: &SecretKey) {
        let msg = Message::from_digest(keccak256(self.content().as_bytes()));
        let (id, rs) = SECP256K1
            .sign_ecdsa_recoverable(msg, key)
            .serialize_compact();
        self.sig[..64].copy_from_slice(&rs);
        self.sig[64] = i32::from(id) as u8; // ok: recovery ids are 0..=3
    }

    /// Checks the signature against the list's public key (low-S form, as go-ethereum).
    pub fn verify(&self, key: &PublicKey) -> Result<(), Error> {
        let msg = Message::from_digest(keccak256(self.content().as_bytes()));
        let sig = Signature::from_compact(&self.sig[..64]).map_err(|_| Error::BadSignature)?;
        // The recovery id must be well-formed even though verification does not need it.
        RecoveryId::try_from(i32::from(self.sig[64])).map_err(|_| Error::BadSignature)?;
        SECP256K1
            .verify_ecdsa(msg, &sig, key)
            .map_err(|_| Error::BadSignature)
    }

    /// Recovers the signer (for `dns to-txt`, which checks a stored signature).
    pub fn recover(&self) -> Option<PublicKey> {
        let msg = Message::from_digest(keccak256(self.content().as_bytes()));
        let id = RecoveryId::try_from(i32::from(self.sig[64])).ok()?;
        let sig = RecoverableSignature::from_compact(&self.sig[..64], id).ok()?;
        SECP256K1.recover_ecdsa(msg, &sig).ok()
    }
}

impl FromStr for Root {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        if s.len() > MAX_RECORD_LEN {
            return Err(Error::RecordTooLarge);
        }
        let mut parts = s.split(' ');
        let mut field = |name: &str| {
            parts
                .next()
                .and_then(|p| p.strip_prefix(name))
                .ok_or(Error::InvalidRoot)
        };
        if !field(ROOT_PREFIX)?.is_empty() {
            return Err(Error::InvalidRoot);
        }
        let e = field("e=")?.to_owned();
        let l = field("l=")?.to_owned();
        let seq = field("seq=")?.parse().map_err(|_| Error::InvalidRoot)?;
        let sig = base64url_decode(field("sig=")?)
            .and_then(|b| <[u8; 65]>::try_from(b).ok())
            .ok_or(Error::InvalidRoot)?;
        if parts.next().is_some() {
            return Err(Error::InvalidRoot);
        }
        decode_hash(&e)?;
        decode_hash(&l)?;
        Ok(Root { e, l, seq, sig })
    }
}

impl fmt::Display for Root {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} sig={}", self.content(), base64url_encode(&self.sig))
    }
}

/// A tree entry below the root.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Entry {
    /// `enrtree-branch:<h1>,<h2>,…`: hashes of child entries.
    Branch(Vec<String>),
    /// `enr:<base64url>`: a node record (ENR subtree only).
    Enr(Enr),
    /// `enrtree://<key>@<domain>`: another list (link subtree only).
    Link(TreeUrl),
}

impl FromStr for Entry {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        if s.len() > MAX_RECORD_LEN {
            return Err(Error::RecordTooLarge);
        }
        if let Some(list) = s.strip_prefix(BRANCH_PREFIX) {
            if list.is_empty() {
                return Ok(Entry::Branch(Vec::new()));
            }
            let hashes: Vec<String> = list.split(',').map(str::to_owned).collect();
            for h in &hashes {
                decode_hash(h)?;
            }
            Ok(Entry::Branch(hashes))
        } else if s.starts_with(LINK_PREFIX) {
            Ok(Entry::Link(s.parse()?))
        } else if s.starts_with("enr:") {
            Ok(Entry::Enr(s.parse()?))
        } else if s.starts_with(ROOT_PREFIX) {
            Err(Error::UnexpectedRoot)
        } else {
            Err(Error::UnknownEntry)
        }
    }
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Entry::Branch(h) => write!(f, "{BRANCH_PREFIX}{}", h.join(",")),
            Entry::Enr(e) => write!(f, "{e}"),
            Entry::Link(u) => write!(f, "{u}"),
        }
    }
}
