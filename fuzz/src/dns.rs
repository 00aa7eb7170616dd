//! Fuzz entry points for the DNS node list (EIP-1459) record parsers of
//! `discovery::dns::tree`: the signed root, and the entries below it (branches, `enr:`
//! leaves, `enrtree://` links). Every TXT record a list serves is an attacker's text.

use discovery::dns::tree::{MAX_RECORD_LEN, base32_decode, base32_encode, entry_hash};
use discovery::dns::{Entry, Root, TreeUrl};
use secp256k1::{PublicKey, SECP256K1, SecretKey};

/// The key the root signatures are checked against: fixed, so a seed signed with it
/// (`[0x22; 32]`) reaches the end of [`Root::verify`] and mutations stop at its check.
fn list_key() -> Option<PublicKey> {
    SecretKey::from_byte_array([0x22; 32])
        .ok()
        .map(|k| PublicKey::from_secret_key(SECP256K1, &k))
}

/// Parses `data` as a root record. One that parses is within the record limit, prints
/// back to a record that parses to the same root, and can be verified and recovered
/// without panicking (a recovered signer verifies it).
pub fn root(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(root) = text.parse::<Root>() else {
        return;
    };
    assert!(text.len() <= MAX_RECORD_LEN);
    let printed = root.to_string();
    assert_eq!(printed.parse::<Root>().as_ref(), Ok(&root), "{printed}");
    if let Some(key) = list_key() {
        let _ = root.verify(&key);
    }
    if let Some(signer) = root.recover() {
        // A recoverable signature may still be high-S, which verify refuses (as geth).
        let _ = root.verify(&signer);
    }
}

/// Parses `data` as an entry below the root (branch, ENR leaf or link). One that parses
/// is within the record limit and prints back to an entry that parses to the same value;
/// its hash name is 26 base32 characters; a link's key survives base32.
pub fn entry(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(entry) = text.parse::<Entry>() else {
        return;
    };
    assert!(text.len() <= MAX_RECORD_LEN);
    let printed = entry.to_string();
    assert_eq!(printed.parse::<Entry>().as_ref(), Ok(&entry), "{printed}");
    assert_eq!(entry_hash(text).len(), 26);
    match &entry {
        Entry::Branch(children) => {
            // Each child is a hash of 12 to 32 bytes: at least 20 base32 characters.
            assert!(children.len() * 20 <= text.len());
        }
        Entry::Enr(record) => {
            let _ = (record.to_node(), record.seq(), record.eth());
        }
        Entry::Link(url) => {
            let key = url.key.serialize();
            assert_eq!(
                base32_decode(&base32_encode(&key)).as_deref(),
                Some(&key[..])
            );
            let printed = url.to_string();
            assert_eq!(printed.parse::<TreeUrl>().as_ref(), Ok(url));
        }
    }
}
