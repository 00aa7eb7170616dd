//! Block and transaction propagation over a simulated network, with the node's real cores:
//!
//! - who gets a block or transaction in full and who an announcement:
//!   [`protocols::eth::fanout::split`] (strategy [`Strategy::Sqrt`]; [`Strategy::Flood`]
//!   sends everything in full, [`Strategy::Announce`] only announces, for comparison);
//! - blocks: the propagation core [`crate::propagate::Core`] of every node (NewBlock,
//!   NewBlockHashes, its header and body fetches, its orphan queue, its penalties), its
//!   actions carried out over the [`Net`] as the node's driver carries them out over eth;
//! - transactions: the pooled-transaction fetcher [`protocols::eth::txfetch::Fetcher`] of
//!   every node (announcement wait, one request per peer, timeouts), with the pool's
//!   known-hash set as its `have`.
//!
//! Stand-ins (documented in docs/simulation.md): the block store is a set of hashes and an
//! import takes [`Config::import_delay`] (validation and storage; no execution, as in the
//! node); signatures are never checked (nothing here recovers a sender); what a peer knows
//! is tracked per peer like eth's session `knows` sets, without their size bound.

mod engine;
mod output;
mod world;

use std::time::Duration;

pub use engine::{Outcome, run};
pub use output::{Item, Means, Summary, means, summarize, table, target, write_outputs};
pub use world::{BlockIdx, TxIdx, World, wire};

use protocols::eth::GetBlockHeaders;

use super::net;

/// Request id carried by every request and answer (its encoded size is what matters; the
/// sim matches answers by content).
const REQUEST_ID: u64 = 0x1234_5678;

/// Who gets a new block or transaction in full.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Strategy {
    /// The eth spec's: in full to √n peers, announced to the rest (the real
    /// [`protocols::eth::fanout::split`]).
    Sqrt,
    /// In full to every peer that lacks it.
    Flood,
    /// Announced to every peer that lacks it, fetched on demand.
    Announce,
}

impl Strategy {
    /// Lower-case name, as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Sqrt => "sqrt",
            Strategy::Flood => "flood",
            Strategy::Announce => "announce",
        }
    }
}

/// What hostile nodes do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostileMode {
    /// Take everything, relay nothing, announce nothing.
    Withhold,
    /// Announce everything they hear of to every peer, never deliver (ignore every request).
    AnnounceNeverDeliver,
}

/// A propagation run.
#[derive(Clone, Debug)]
pub struct Config {
    /// Seed of all randomness.
    pub seed: u64,
    /// Nodes.
    pub nodes: usize,
    /// Peers each node dials (the graph's degree is about twice this... see
    /// [`engine`]: each node dials this many random others; connections are undirected).
    pub peers: usize,
    /// Fan-out strategy.
    pub strategy: Strategy,
    /// Blocks produced, one every [`Config::block_interval`].
    pub blocks: usize,
    /// Transactions gossiped, created at random nodes at even intervals over the run.
    pub txs: usize,
    /// Size of a block's body, about. Default 100 KiB (mainnet's typical block in 2024 was
    /// 100–150 kB, per etherscan's average block size chart).
    pub block_bytes: usize,
    /// Transaction size range. Default 200–500 B (mainnet transfers and simple calls).
    pub tx_bytes: (usize, usize),
    /// Time between blocks. Default 12 s (a mainnet slot).
    pub block_interval: Duration,
    /// Time a node takes to import a block before it relays it. Default 100 ms: the
    /// order of go-ethereum's block processing on mainnet, which a real node spends
    /// before announcing (our node validates structurally only, which is faster; this
    /// keeps the comparison with measured networks honest).
    pub import_delay: Duration,
    /// Time a node takes to handle a transaction before passing it on. Default 1 ms
    /// (sender recovery and pool checks).
    pub tx_delay: Duration,
    /// Share of nodes that are hostile (never the producer).
    pub hostile: f64,
    /// What the hostile nodes do.
    pub hostile_mode: HostileMode,
    /// Share of nodes offline during each block interval (re-drawn per block: nodes
    /// leaving and coming back, as churn).
    pub churn: f64,
    /// The network.
    pub net: net::Config,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            seed: 1,
            nodes: 1000,
            peers: 25,
            strategy: Strategy::Sqrt,
            blocks: 5,
            txs: 50,
            block_bytes: 100 * 1024,
            tx_bytes: (200, 500),
            block_interval: Duration::from_secs(12),
            import_delay: Duration::from_millis(100),
            tx_delay: Duration::from_millis(1),
            hostile: 0.0,
            hostile_mode: HostileMode::Withhold,
            churn: 0.0,
            net: net::Config::default(),
        }
    }
}

/// A message between simulated nodes: the eth/68 message it stands for, by index into the
/// [`World`] (the size on the wire is the real message's, [`World::size`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Msg {
    /// NewBlock.
    NewBlock(BlockIdx),
    /// NewBlockHashes with one entry.
    NewBlockHashes(BlockIdx),
    /// GetBlockHeaders for the fetch of block `fetch`.
    GetBlockHeaders {
        /// The announced block being fetched.
        fetch: BlockIdx,
        /// The request.
        req: GetBlockHeaders,
    },
    /// BlockHeaders answering a fetch.
    BlockHeaders {
        /// The announced block being fetched.
        fetch: BlockIdx,
        /// The headers, newest first.
        headers: Vec<BlockIdx>,
    },
    /// GetBlockBodies for a fetch.
    GetBlockBodies {
        /// The announced block being fetched.
        fetch: BlockIdx,
        /// The blocks.
        blocks: Vec<BlockIdx>,
    },
    /// BlockBodies answering a fetch.
    BlockBodies {
        /// The announced block being fetched.
        fetch: BlockIdx,
        /// The blocks whose bodies these are.
        blocks: Vec<BlockIdx>,
    },
    /// Transactions.
    Transactions(Vec<TxIdx>),
    /// NewPooledTransactionHashes.
    TxHashes(Vec<TxIdx>),
    /// GetPooledTransactions (fetcher request `id`).
    GetPooledTxs {
        /// The fetcher's request id.
        id: u64,
        /// The transactions.
        txs: Vec<TxIdx>,
    },
    /// PooledTransactions answering request `id`.
    PooledTxs {
        /// The fetcher's request id.
        id: u64,
        /// The transactions delivered.
        txs: Vec<TxIdx>,
    },
}
