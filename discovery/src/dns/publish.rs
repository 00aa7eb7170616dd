//! Building and signing a DNS node list (the publisher's side, `devp2p dns`).
//!
//! The tree is deterministic: the same records, links and sequence number give the same
//! entries and root, so a signature made by `dns sign` can be checked again by `dns to-txt`
//! after rebuilding the tree from the same files.

use std::collections::BTreeMap;

use secp256k1::{PublicKey, SecretKey};

use super::Error;
use super::tree::{Entry, MAX_CHILDREN, Root, TreeUrl, entry_hash};
use crate::enr::Enr;

/// A built tree: its root and every entry by hash.
#[derive(Clone, Debug)]
pub struct Tree {
    root: Root,
    entries: BTreeMap<String, String>,
}

impl Tree {
    /// Builds the tree of `enrs` (sorted by node id, duplicates dropped) and `links`
    /// (sorted), with an unsigned root at `seq`.
    pub fn build(enrs: &[Enr], links: &[TreeUrl], seq: u64) -> Self {
        let mut enrs: Vec<&Enr> = enrs.iter().collect();
        enrs.sort_by_key(|e| e.node_id().0);
        enrs.dedup_by_key(|e| e.node_id());
        let mut links: Vec<&TreeUrl> = links.iter().collect();
        links.sort_by_key(|u| u.to_string());
        links.dedup();
        let mut entries = BTreeMap::new();
        let e = subtree(enrs.iter().map(|e| e.to_string()).collect(), &mut entries);
        let l = subtree(links.iter().map(|u| u.to_string()).collect(), &mut entries);
        Tree {
            root: Root {
                e,
                l,
                seq,
                sig: [0; 65],
            },
            entries,
        }
    }

    /// Signs the root with the list's key.
    pub fn sign(&mut self, key: &SecretKey) {
        self.root.sign(key);
    }

    /// Sets a signature made earlier, checking it against `key`.
    pub fn set_signature(&mut self, key: &PublicKey, sig: [u8; 65]) -> Result<(), Error> {
        let mut root = self.root.clone();
        root.sig = sig;
        root.verify(key)?;
        self.root = root;
        Ok(())
    }

    /// The root record.
    pub fn root(&self) -> &Root {
        &self.root
    }

    /// Entries below the root by hash (their subdomain).
    pub fn entries(&self) -> &BTreeMap<String, String> {
        &self.entries
    }

    /// The TXT records to publish under `domain`: the root at `domain`, each entry at
    /// `<hash>.<domain>`.
    pub fn to_txt(&self, domain: &str) -> BTreeMap<String, String> {
        let mut out: BTreeMap<String, String> = self
            .entries
            .iter()
            .map(|(h, t)| (format!("{h}.{domain}"), t.clone()))
            .collect();
        out.insert(domain.to_owned(), self.root.to_string());
        out
    }

    /// The node records the tree holds, in hash order.
    pub fn enrs(&self) -> Vec<Enr> {
        self.entries
            .values()
            .filter_map(|t| match t.parse() {
                Ok(Entry::Enr(e)) => Some(e),
                _ => None,
            })
            .collect()
    }
}

/// Stores `leaves` (and the branches above them) in `entries`; returns the subtree's root
/// hash. One leaf is its own root; up to [`MAX_CHILDREN`] hang from one branch; more are
/// split into runs of that many, each made a subtree, and the subtrees joined the same way.
fn subtree(leaves: Vec<String>, entries: &mut BTreeMap<String, String>) -> String {
    let mut level: Vec<String> = leaves
        .into_iter()
        .map(|text| {
            let h = entry_hash(&text);
            entries.insert(h.clone(), text);
            h
        })
        .collect();
    loop {
        if level.len() == 1 {
            return level.remove(0);
        }
        let parents: Vec<String> = level
            .chunks(MAX_CHILDREN)
            .map(|run| {
                let text = Entry::Branch(run.to_vec()).to_string();
                let h = entry_hash(&text);
                entries.insert(h.clone(), text);
                h
            })
            .collect();
        if level.len() <= MAX_CHILDREN {
            return parents.into_iter().next().unwrap_or_else(|| {
                // No leaves: an empty branch.
                let text = Entry::Branch(Vec::new()).to_string();
                let h = entry_hash(&text);
                entries.insert(h.clone(), text);
                h
            });
        }
        level = parents;
    }
}
