//! Block propagation (eth/68 NewBlock and NewBlockHashes): blocks that arrive from peers,
//! or that the node imports itself (`devp2p node --replay`), are validated, imported and
//! passed on: the full block to sqrt(n) random eth/68 peers that do not know it, the hash
//! to the others. A block whose parent we lack is queued (at most [`MAX_QUEUED`], up to
//! [`MAX_QUEUE_DIST`] ahead of our head) until its parent arrives or our head passes it;
//! the missing blocks of a block or announcement up to [`MAX_FETCH_AHEAD`] ahead are
//! fetched from its sender, and if that fails from the next peer that announced it (at
//! most [`MAX_FETCHING`] fetches at once, [`MAX_FETCHING_PER_PEER`] started by one
//! announcer). Farther gaps are the downloader's. Transactions an imported block includes
//! leave the pool.
//!
//! Who may move our head by gossip is the [`Gossip`] policy (`docs/fork-choice.md`): on the
//! public post-merge networks nobody (blocks come from the consensus layer; a peer sending
//! NewBlock or NewBlockHashes is disconnected, as go-ethereum does), on private networks
//! only the peers the operator names (producers and their relays). Everything else a peer
//! sends is dropped before it costs a queue slot, a fetch or an import, and nothing is
//! relayed before the store accepted it.
//!
//! Layers:
//! - [`Core`] ([`core`]): the sans-IO state machine — policy, orphan queue, fetches,
//!   penalties — driven by inputs and `now`, asking for [`Action`]s;
//! - [`Propagator`]: the tokio task carrying those out through [`eth::Handle`] and the
//!   chain [`crate::chain::Importer`] (shared with sync), fed the eth event stream.
//!
//! # Example
//!
//! ```no_run
//! use std::sync::Arc;
//! use devp2p::chain::{Importer, Store};
//! use devp2p::propagate::{Gossip, Propagator};
//! use devp2p::protocols::eth;
//!
//! # async fn node(chain: Arc<dyn eth::Chain>, store: Arc<Store>, producer: eth::PeerId) {
//! let (eth, handle, events) = eth::Eth::new(chain, eth::Config::default());
//! let importer = Importer::new(store, Some(handle.pool().clone()));
//! let gossip = Gossip::From([producer].into());
//! let (propagator, task) = Propagator::spawn(handle, importer, gossip, events);
//! # let _ = (eth, propagator, task);
//! # }
//! ```

use std::collections::HashSet;

use protocols::eth::{self, PeerId};

use crate::chain::Block;

pub mod core;
mod driver;
mod queue;

pub use self::core::{Action, Core, Failure, ImportResult, Local};
pub use driver::Propagator;

/// How far ahead of our head an announced block may be for us to fetch it.
pub const MAX_FETCH_AHEAD: u64 = 4;

/// How far ahead of our head a block whose parent we lack may be to be queued
/// (go-ethereum's fetcher `maxQueueDist`).
pub const MAX_QUEUE_DIST: u64 = 32;
/// Blocks queued waiting for their parent, at most: bounds memory against a peer sending
/// orphans (go-ethereum allows 64 per peer; this is for all peers).
pub const MAX_QUEUED: usize = 64;
/// Estimated memory of the queued blocks, at most ([`block_memory`]): 64 mainnet blocks
/// take a few MiB; 32 MiB leaves room for large ones without letting orphans hold much.
pub const MAX_QUEUED_BYTES: usize = 32 << 20;
/// Queued blocks from one peer, at most: an honest peer is at most a few blocks ahead of
/// us ([`MAX_QUEUE_DIST`] for one that raced ahead), so others keep their share.
pub const MAX_QUEUED_PER_PEER: usize = 16;
/// Fetches one announcer may have started and not finished: an honest peer announces the
/// next block or the few it knows we lack ([`MAX_FETCH_AHEAD`]).
pub const MAX_FETCHING_PER_PEER: usize = MAX_FETCH_AHEAD as usize;

/// Announced blocks fetched at once, at most: bounds the tasks a peer announcing made-up
/// hashes can start.
pub const MAX_FETCHING: usize = 64;
/// Announcers remembered per block being fetched (alternatives if the first fails).
const MAX_ANNOUNCERS: usize = 8;

/// Who may move our head through block gossip (NewBlock, NewBlockHashes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Gossip {
    /// Nobody: the public post-merge networks, where the eth spec leaves block propagation
    /// to the consensus layer. A peer that sends NewBlock or NewBlockHashes is disconnected
    /// with `SubprotocolError` (go-ethereum's answer since it dropped pre-merge support),
    /// and we send none.
    Refused,
    /// These peers (the producers, and the relays between them and us): their blocks are
    /// validated, imported and relayed; the gossip of any other peer is ignored.
    From(HashSet<PeerId>),
}

impl Gossip {
    /// The policy for a chain: [`Gossip::Refused`] on public presets, else blocks from
    /// `sources` only.
    pub fn for_chain(public: bool, sources: impl IntoIterator<Item = PeerId>) -> Self {
        if public {
            Gossip::Refused
        } else {
            Gossip::From(sources.into_iter().collect())
        }
    }
}

/// What the policy says of one peer's block gossip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Handle it.
    Accept,
    /// Drop it quietly (not a source of ours; relaying is no offence).
    Ignore,
    /// Drop it and disconnect the peer (block gossip on a network without it).
    Disconnect,
}

/// The memory a decoded block holds (its struct and heap, by the decoded capacities:
/// [`eth::size::block_size`]); a 14-byte typed transaction decodes into a few hundred bytes
/// of structure, so this, not the wire size, is what the queue is bounded by.
pub fn block_memory(block: &Block) -> usize {
    std::mem::size_of::<Block>() + eth::size::block_size(block)
}

/// What happened to a block handed to [`Propagator::import_local`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Imported and propagated.
    Imported,
    /// Already stored.
    Known,
    /// Its parent is not stored.
    UnknownParent,
}
