//! DNS node lists (EIP-1459, `dnsdisc.md`): signed merkle trees of ENRs published as TXT
//! records.
//!
//! # Layers
//!
//! - Records: [`tree`] parses and verifies `enrtree://` URLs, the signed root and the
//!   branch, ENR and link entries, and computes the hashes that name them.
//! - Sans-IO client: [`Client`] walks trees (roots, then subtrees in random order, then
//!   linked trees), verifies every record, and re-checks roots periodically; a new root
//!   only costs queries for the entries whose hashes changed. The caller performs the TXT
//!   lookups it asks for ([`Client::poll_query`]) and hands back the answers
//!   ([`Client::on_answer`]), with the time injected.
//! - Publisher: [`publish::Tree`] builds a deterministic tree from ENRs and links, signs it
//!   and lists its TXT records (what `devp2p dns sign` / `to-txt` write).
//! - Driver: [`driver::spawn`] runs a `Client` on tokio with `hickory-resolver`, sending the
//!   nodes found to an `mpsc` channel (the system resolver or a given `IP:PORT`).
//!
//! # Example
//!
//! Publish a list of one node and resolve it from its TXT records (here a map standing in
//! for DNS).
//!
//! ```
//! use discovery::dns::{publish::Tree, Client, Config, Event, TreeUrl};
//! use discovery::enr::Builder;
//! use secp256k1::SecretKey;
//! use std::time::Instant;
//!
//! let node_key = SecretKey::from_byte_array([1; 32]).unwrap();
//! let enr = Builder::new().ip([10, 0, 0, 1].into()).tcp(30303).udp(30303).build(1, &node_key).unwrap();
//! let list_key = SecretKey::from_byte_array([2; 32]).unwrap();
//! let mut tree = Tree::build(&[enr.clone()], &[], 1);
//! tree.sign(&list_key);
//! let zone = tree.to_txt("nodes.example.org");
//!
//! let url = TreeUrl::new(&list_key, "nodes.example.org").unwrap();
//! let now = Instant::now();
//! let mut client = Client::new(vec![url], Config::default(), now);
//! while let Some(name) = client.poll_query(now) {
//!     client.on_answer(&name, Ok(vec![zone[&name].clone()]), now);
//! }
//! assert!(std::iter::from_fn(|| client.poll_event())
//!     .any(|e| matches!(e, Event::Enr { enr: found, .. } if found == enr)));
//! ```
//!
//! # Errors
//!
//! Every [`Error`] concerns one record or one tree: the client reports it as
//! [`Event::Error`], drops that record (or, for a root, keeps the last good one) and goes
//! on with the rest. Nothing here disconnects a peer.

mod client;
pub mod driver;
pub mod publish;
pub mod tree;

use std::time::Duration;

pub use client::{Client, Event};
pub use tree::{Entry, Root, TreeUrl};

use crate::enr::EnrError;

/// Why a record, a tree or a lookup was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Not `enrtree://<53 base32 characters of a compressed key>@<domain>`.
    #[error("invalid enrtree:// URL")]
    InvalidUrl,
    /// The root record does not have the form `enrtree-root:v1 e= l= seq= sig=`.
    #[error("invalid enrtree-root record")]
    InvalidRoot,
    /// A hash is not base32 of 12 to 32 bytes.
    #[error("invalid entry hash")]
    InvalidHash,
    /// The root's signature does not verify against the URL's key.
    #[error("root signature does not verify against the tree's key")]
    BadSignature,
    /// A TXT record is longer than [`tree::MAX_RECORD_LEN`].
    #[error("TXT record is longer than 512 bytes")]
    RecordTooLarge,
    /// A root record appeared where an entry was expected.
    #[error("root record below the root")]
    UnexpectedRoot,
    /// The TXT record is none of the entry types.
    #[error("unknown entry type")]
    UnknownEntry,
    /// An `enr:` entry does not decode or verify.
    #[error("invalid node record: {0}")]
    Enr(#[from] EnrError),
    /// No TXT record at the name hashes to the name.
    #[error("no TXT record matches its hash")]
    HashMismatch,
    /// The tree's domain has no `enrtree-root:v1` record.
    #[error("no enrtree-root record")]
    NoRoot,
    /// The root's sequence number is lower than one seen before (a replayed old root).
    #[error("root sequence {new} is below the known {known}")]
    StaleSeq {
        /// The sequence number already verified.
        known: u64,
        /// The lower number just received.
        new: u64,
    },
    /// A hash appears twice in one tree (a loop, or a shared subtree walked once).
    #[error("hash appears twice in the tree")]
    Loop,
    /// Branches nest deeper than [`Config::max_depth`].
    #[error("tree is deeper than the limit")]
    TooDeep,
    /// A link entry in the ENR subtree.
    #[error("link entry in the ENR subtree")]
    LinkInEnrTree,
    /// An ENR entry in the link subtree.
    #[error("ENR entry in the link subtree")]
    EnrInLinkTree,
    /// The trees hold more entries than [`Config::max_entries`].
    #[error("tree has more entries than the limit")]
    TooManyEntries,
    /// Links lead to more trees than [`Config::max_trees`].
    #[error("links lead to more trees than the limit")]
    TooManyTrees,
    /// The TXT lookup failed (the resolver's message, truncated).
    #[error("lookup failed: {0}")]
    Lookup(String),
}

/// Client limits and timers.
#[derive(Clone, Debug)]
pub struct Config {
    /// How often a synced tree's root is fetched again. Default 30 minutes (go-ethereum's
    /// `RecheckInterval`): lists change slowly and roots carry a short TTL.
    pub recheck_interval: Duration,
    /// Queries allowed per [`Config::query_window`]. Default 10 per second: a mainnet list of
    /// a few thousand nodes syncs in minutes while its first nodes arrive within a second
    /// (go-ethereum allows 3 per second and fetches lazily).
    pub queries_per_window: u32,
    /// The window of [`Config::queries_per_window`]. Default 1 second.
    pub query_window: Duration,
    /// Queries outstanding at once. Default 8.
    pub max_in_flight: usize,
    /// Entries cached over all trees (a few hundred bytes each). Default 20 000: the public
    /// `all.<network>.ethdisco.net` lists hold a few thousand nodes, and an update holds old
    /// and new entries until it completes.
    pub max_entries: usize,
    /// Trees followed, the given URLs and the trees their links lead to. Default 16.
    pub max_trees: usize,
    /// Deepest branch nesting. Default 16: 13-way branches reach 13^16 leaves long before.
    pub max_depth: usize,
    /// Delay after a failed lookup, doubled per consecutive failure of a root up to
    /// [`Config::recheck_interval`]. Default 5 seconds.
    pub retry_delay: Duration,
    /// Attempts per entry before a sync gives up on it. Default 3.
    pub max_attempts: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            recheck_interval: Duration::from_secs(30 * 60),
            queries_per_window: 10,
            query_window: Duration::from_secs(1),
            max_in_flight: 8,
            max_entries: 20_000,
            max_trees: 16,
            max_depth: 16,
            retry_delay: Duration::from_secs(5),
            max_attempts: 3,
        }
    }
}

#[cfg(test)]
mod tests;
