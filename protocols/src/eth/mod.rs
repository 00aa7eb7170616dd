//! The `eth` wire protocol and the chain facts it exchanges.
//!
//! - [`forkid`]: EIP-2124/EIP-6122 fork identifiers and the peer filter.
//! - [`messages`]: eth/68 to eth/72 wire types (wire format only; the eth/70-72
//!   payloads in [`messages_v70`]).
//! - [`size`]: what a message decodes to, checked before decoding it.
//! - [`chain`]: the [`Chain`] trait the node implements over its store, and
//!   [`MemoryChain`] for tests.
//! - [`status`]: the Status handshake checks (sans-IO).
//! - [`serve`]: answers to header, body, receipt, block-access-list and pooled-transaction
//!   queries (sans-IO); [`cells`]: blob cells from the pool for eth/72 (sans-IO).
//! - [`metrics`]: latency histograms of message handling and of our requests' round
//!   trips, by type ([`Handle::metrics`]).
//! - [`requests`]: request-id matching and the per-peer request budget (sans-IO).
//! - [`pool`]: the transaction pool (stateless validation, bounded, lowest tip evicted).
//! - [`txfetch`]: which announced transactions to fetch from which peer, when (sans-IO).
//! - [`verify`]: the per-peer transaction budget and the worker pool that checks
//!   signatures off the runtime.
//! - [`fanout`]: who gets a broadcast in full (sqrt(n) peers) and who an announcement
//!   (sans-IO), for blocks and transactions alike.
//! - `txs`: transaction propagation and the task driving the fetcher.
//! - `handler`: the per-peer task (session) tying them together; it owns the peer's
//!   state: status, known hashes, requests in flight, budgets. Its `answer`,
//!   `responses` and `announce` parts handle the peer's requests, the answers to ours
//!   and its announcements and broadcasts.
//! - `peer`: the node-level table of sessions, reached through typed commands.
//!
//! [`Eth`] is the node-level object: it implements [`Subprotocol`] (offering eth/68 to
//! eth/72), runs one handler per peer, keeps the table of handshaked peers behind
//! [`Handle`] (only what reaches each session, and the status and known hashes the
//! session publishes) and reports [`Event`]s. It only uses the public API of `rlpx` and
//! [`crate::api`].
//!
//! # Example
//!
//! ```no_run
//! use std::sync::Arc;
//! use protocols::eth::{self, Chain, Eth};
//!
//! # fn node(chain: Arc<dyn Chain>) {
//! let (eth, handle, mut events) = Eth::new(chain, eth::Config::default());
//! // Register `eth` with the server (`Vec<Arc<dyn Subprotocol>>`), keep `handle` for the
//! // downloader and drain `events` (e.g. to avoid redialling incompatible peers).
//! let subprotocols: Vec<Arc<dyn protocols::Subprotocol>> = vec![Arc::new(eth)];
//! # let _ = (subprotocols, handle, events.try_recv());
//! # }
//! ```
//!
//! # What eth/70-72 change for a node that executes nothing
//!
//! - Receipts: we serve what [`Chain::receipts_by_hash`] holds (the node stores lists it
//!   checked against the receipts root, [`receipts::verify`]); an answer ends at the first
//!   block we lack them for. eth/68 gets them with blooms, eth/69 without, eth/70 cuts a
//!   list at 10 MiB and sets `lastBlockIncomplete` ([`serve::receipts70`]).
//!   [`Handle::request_receipts`] asks a peer for them at any version.
//! - Block access lists (eth/71): produced by execution (EIP-7928) and not part of a
//!   block, so we never hold one: every entry is answered "unavailable" (`0x80`), at most
//!   [`serve::MAX_BALS`] per answer. We never request BALs; one received is checked
//!   against its header's `block_access_list_hash` with [`messages::bal_matches`]. Headers
//!   decode up to Amsterdam's `block-access-list-hash` (none of our presets schedules
//!   Amsterdam yet).
//! - Cells (eth/72): we pool whole blob transactions, which hold the data cells `0..64`
//!   (EIP-7594's extension is systematic), and serve and announce exactly those
//!   ([`cells`]); the extension cells need KZG/FFT (c-kzg), which we do not link.
//!   PooledTransactions to eth/72 peers go without blobs, as the spec says; a blob
//!   transaction an eth/72 peer sends us that way is completed with its data cells,
//!   asked of the same peer (the spec's full-blob fetch, data cells only), and pooled.
//!   The announced cell bitmaps are not looked at (we keep no custody set).
//!
//! # Errors and disconnects
//!
//! [`messages::Error`] → [`status::Error`] → [`Error`]; [`Error::disconnect_reason`]
//! says which reason each case is sent with. In short: malformed, oversized (over
//! [`messages::MAX_MESSAGE_SIZE`]), out-of-order or unsolicited messages are
//! `BreachOfProtocol` (a message code outside the negotiated version's count is refused
//! by `rlpx` before it reaches us; an eth/72 announcement without its cells bitmap, or an
//! earlier version's with one, does not decode; Receipts, BlockAccessLists and Cells are
//! always unsolicited: we never ask for them), and so are a message that would decode to more than
//! [`size::allowance`] of its length, a blob transaction broadcast in full, a transaction
//! with an invalid signature, a pooled transaction we did not ask for or of another type
//! than its sender announced; another chain (network, genesis, fork id, version) is
//! `SubprotocolError`, as go-ethereum sends; a peer exceeding its request budget or
//! its transaction budget ([`verify`]), or one that announces transactions and never
//! delivers them ([`txfetch`]), is `UselessPeer`; a missing Status is `PingTimeout`
//! (go-ethereum's `DiscReadTimeout`). Transactions the pool refuses (invalid, underpriced,
//! another chain's) are dropped without a disconnect: a peer may relay what became
//! invalid.

pub mod cells;
pub mod chain;
pub mod fanout;
pub mod forkid;
mod handle;
mod handler;
pub mod messages;
pub mod messages_v70;
pub mod metrics;
mod peer;
pub mod pool;
pub mod receipts;
pub mod requests;
pub mod serve;
pub mod size;
pub mod status;
pub mod txfetch;
mod txs;
pub mod verify;

use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use alloy_consensus::TxEnvelope;
use alloy_primitives::B256;
use tokio::sync::mpsc;

pub use chain::{Chain, Head, MemoryChain};
pub use handle::Handle;
pub use handler::Error;
pub use messages::{BlockId, ETH68, ETH69, ETH70, ETH71, ETH72, GetBlockHeaders};
pub use peer::{KNOWN_BLOCKS, KNOWN_TXS};
pub use status::PeerStatus;

use crate::api::{Handler, Subprotocol};

/// A peer's node id.
pub type PeerId = secp256k1::PublicKey;

/// Settings of the `eth` protocol.
#[derive(Clone, Debug)]
pub struct Config {
    /// Versions offered. Default eth/68 to eth/72 (the highest shared one is used;
    /// versions we do not speak are left out).
    pub versions: Vec<u32>,
    /// Time for the peer's Status to arrive. Default 5 s (go-ethereum `handshakeTimeout`).
    pub handshake_timeout: Duration,
    /// Time for the peer to answer one of our requests. Default 10 s: generous for a
    /// 2 MiB answer on a slow link; the caller gets [`RequestError::Timeout`] and a late
    /// answer is dropped quietly.
    pub request_timeout: Duration,
    /// Our requests in flight per peer. Default 16: enough to keep a peer busy, few enough
    /// that one slow peer does not hold much of the downloader's work.
    pub max_in_flight: usize,
    /// Requests (headers, bodies, receipts, pooled transactions) a peer may make in a
    /// burst. Default 256.
    pub request_burst: u32,
    /// Requests per second a peer may sustain. Default 64: at 2 MiB per answer that is
    /// far more than we want to upload to one peer, while an honest syncing client (which
    /// waits for answers, a few in flight) stays well below. A peer beyond it is
    /// disconnected with `UselessPeer`.
    pub requests_per_second: u32,
    /// How often (eth/69) we check our head and send BlockRangeUpdate if it moved.
    /// Default 120 s (spec: "about once every two minutes").
    pub range_update_interval: Duration,
    /// Events buffered for the node; when full, further events are dropped (the peer
    /// table behind [`Handle`] stays exact). Default 1024.
    pub event_queue: usize,
    /// Decoded bytes of the blocks of [`Event::NewBlock`]s the node holds (their
    /// [`Held`] not dropped yet), at most; beyond it NewBlock events are dropped (block
    /// propagation is best effort). Default 256 MiB: dozens of the largest honest blocks
    /// (a 36M-gas block of calldata is ~2 MB on the wire, under 8 MiB decoded), while the
    /// 1024 queued events could otherwise hold 1024 blocks of up to 80 MiB
    /// ([`size::allowance`] of a 10 MiB message). One peer's blocks may take a quarter
    /// of it.
    pub block_event_bytes: usize,
    /// Whether peers may send NewBlock and NewBlockHashes. Default true. Off on public
    /// post-merge networks, where block propagation belongs to the consensus layer (eth
    /// spec, "Block Propagation"): such a message then disconnects its sender with
    /// `SubprotocolError` before it costs an event.
    pub block_gossip: bool,
    /// The transaction pool's limits and chain id (set `chain_id`: the default checks
    /// none).
    pub pool: pool::Config,
    /// The pooled-transaction fetcher's limits.
    pub fetch: txfetch::Config,
    /// What each peer may make us check, in transactions and bytes (see [`verify`]).
    pub tx_budget: verify::Budget,
    /// Signature checks (and decodes of large messages) running at once, off the runtime.
    /// Default [`verify::default_threads`]: half the cores.
    pub verify_threads: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            versions: vec![ETH68, ETH69, ETH70, ETH71, ETH72],
            handshake_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            max_in_flight: 16,
            request_burst: 256,
            requests_per_second: 64,
            range_update_interval: Duration::from_secs(120),
            event_queue: 1024,
            block_event_bytes: 256 << 20,
            block_gossip: true,
            pool: pool::Config::default(),
            fetch: txfetch::Config::default(),
            tx_budget: verify::Budget::default(),
            verify_threads: verify::default_threads(),
        }
    }
}

/// What happened to peers, for the node (e.g. to avoid redialling incompatible ones).
#[derive(Debug)]
pub enum Event {
    /// The Status exchange succeeded; the peer is in the [`Handle`] table.
    PeerConnected {
        /// The peer.
        peer: PeerId,
        /// What it announced.
        status: PeerStatus,
    },
    /// The Status exchange failed and the peer was disconnected with
    /// [`status::Error::disconnect_reason`]. [`status::Error::is_incompatible`] says
    /// whether it is on another chain.
    StatusFailed {
        /// The peer.
        peer: PeerId,
        /// Why.
        reason: status::Error,
    },
    /// A handshaked peer left: the session ended (`error` is `None`) or we disconnected
    /// it for `error`.
    PeerDisconnected {
        /// The peer.
        peer: PeerId,
        /// Our reason, if we ended it.
        error: Option<Error>,
    },
    /// A peer sent a full block (NewBlock, eth/68). The handler checked only its
    /// encoding: validating and importing it is the node's job.
    NewBlock {
        /// The sender.
        peer: PeerId,
        /// The block.
        block: Box<alloy_consensus::Block<TxEnvelope>>,
        /// The total difficulty the peer claims for it.
        td: alloy_primitives::U256,
        /// The block's memory, counted against [`Config::block_event_bytes`] until
        /// dropped: keep it with the block (e.g. in a queue) to keep the count exact.
        held: Held,
    },
    /// A peer announced blocks (NewBlockHashes): `(hash, number)` pairs.
    NewBlockHashes {
        /// The announcer.
        peer: PeerId,
        /// The announced blocks.
        hashes: Vec<(B256, u64)>,
    },
}

/// Memory held by the block of an [`Event::NewBlock`], counted against
/// [`Config::block_event_bytes`] until this is dropped. `Default` counts nothing (for
/// events made elsewhere, e.g. in tests).
#[derive(Debug, Default)]
pub struct Held {
    /// The node-wide count and the sending peer's.
    counters: Vec<Arc<std::sync::atomic::AtomicUsize>>,
    bytes: usize,
}

impl Held {
    /// The bytes counted ([`size::block_size`] and the block's inline size).
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        for c in &self.counters {
            c.fetch_sub(self.bytes, std::sync::atomic::Ordering::AcqRel);
        }
    }
}

/// Why a request through [`Handle`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// No handshaked peer with that id.
    #[error("no such eth peer")]
    UnknownPeer,
    /// The peer left before answering.
    #[error("peer disconnected")]
    Disconnected,
    /// No answer within [`Config::request_timeout`].
    #[error("request timed out")]
    Timeout,
    /// [`Config::max_in_flight`] requests are already waiting on this peer.
    #[error("too many requests in flight")]
    Busy,
    /// The request is over the serving limits ([`serve::MAX_HEADERS`],
    /// [`serve::MAX_BODIES`]): no peer would answer it fully.
    #[error("request too large")]
    TooLarge,
}

/// A handshaked peer, as listed by [`Handle::peers`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    /// Node id.
    pub id: PeerId,
    /// Status (and later BlockRangeUpdate) facts.
    pub status: PeerStatus,
}

/// A change in the table of handshaked peers, for [`Handle::subscribe`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerEvent {
    /// A peer completed the Status exchange and joined the table.
    Joined(PeerInfo),
    /// A peer's head moved: it announced or sent a block beyond it, or sent
    /// BlockRangeUpdate (eth/69).
    Updated(PeerInfo),
    /// A handshaked peer left the table.
    Left(PeerId),
}

/// Peer events a [`Handle::subscribe`]r may fall behind by before it loses the oldest
/// (and is told how many, then should re-read [`Handle::peers`]). Each is ~200 bytes;
/// 1024 is several times a full table joining at once.
pub const PEER_EVENT_BACKLOG: usize = 1024;

/// Entries of one NewBlockHashes that are heeded; the rest are ignored. An honest peer
/// announces the one new block, or the few its peer lacks (go-ethereum's fetcher keeps at
/// most 256 announcements per peer in all); without a cap a 10 MiB message is ~244,000
/// entries, held in an event and looked up one by one.
pub const MAX_BLOCK_ANNOUNCE: usize = 32;

/// Shortest time between two [`PeerEvent::Updated`] of one peer: changes within it are
/// coalesced into one event carrying the latest status, sent when it ends. Honest heads
/// move once per slot (12 s); a peer sending thousands of BlockRangeUpdates a second then
/// costs subscribers two events a second at most, never a lag.
pub const UPDATE_EVENT_INTERVAL: std::time::Duration = std::time::Duration::from_millis(500);

/// State shared by [`Eth`], [`Handle`] and the handlers.
struct Shared {
    chain: Arc<dyn Chain>,
    config: Config,
    /// The handshaked peers: how to reach each one's session.
    table: peer::Table,
    events: mpsc::Sender<Event>,
    /// Joins, head updates and departures, for [`Handle::subscribe`].
    peer_events: tokio::sync::broadcast::Sender<PeerEvent>,
    sessions: std::sync::atomic::AtomicU64,
    pool: Arc<pool::Pool>,
    /// The fetcher task's input, started with the first peer (it needs a runtime).
    fetch: OnceLock<txs::FetchTx>,
    /// The last NewBlock encoded `(hash, td, payload)`: propagating a block sends the same
    /// bytes to sqrt(n) peers, encoded once.
    last_new_block: Mutex<Option<(B256, alloy_primitives::U256, bytes::Bytes)>>,
    /// Where signatures are checked, off the runtime.
    workers: verify::Workers,
    /// Bytes of the blocks of NewBlock events not dropped yet (see [`Held`]).
    block_bytes: Arc<std::sync::atomic::AtomicUsize>,
    /// Handling and round-trip latencies of every session.
    metrics: Arc<metrics::Metrics>,
}

impl Shared {
    /// Tells the fetcher task something (hints are dropped if its queue is full).
    fn fetcher(&self, input: txs::FetchInput) {
        if let Some(tx) = self.fetch.get() {
            tx.send(input);
        }
    }

    /// Counts `bytes` of a block from a peer whose own count is `peer` against
    /// [`Config::block_event_bytes`], and against a quarter of it for the peer (so one
    /// peer cannot take all the room: honest peers send a block per slot at most);
    /// `None` if they do not fit.
    fn hold(&self, peer: &Arc<std::sync::atomic::AtomicUsize>, bytes: usize) -> Option<Held> {
        use std::sync::atomic::Ordering;
        let total = self.config.block_event_bytes;
        let mut held = Held {
            counters: Vec::with_capacity(2),
            bytes,
        };
        for (counter, cap) in [(&self.block_bytes, total), (peer, total / 4)] {
            // Counted first, so a failed check is undone by dropping `held`.
            let before = counter.fetch_add(bytes, Ordering::AcqRel);
            held.counters.push(counter.clone());
            if before.saturating_add(bytes) > cap {
                return None;
            }
        }
        Some(held)
    }

    /// Tells [`Handle::subscribe`]rs (none is not an error).
    fn peer_event(&self, event: PeerEvent) {
        let _ = self.peer_events.send(event);
    }

    fn emit(&self, event: Event) {
        if self.events.try_send(event).is_err() {
            tracing::debug!(target: "eth", "event queue full or closed, event dropped");
        }
    }
}

/// The `eth` subprotocol: register it with the node's server.
pub struct Eth {
    shared: Arc<Shared>,
}

impl Eth {
    /// The protocol over `chain`, with the [`Handle`] for the node and the event stream.
    pub fn new(chain: Arc<dyn Chain>, config: Config) -> (Eth, Handle, mpsc::Receiver<Event>) {
        let (events, rx) = mpsc::channel(config.event_queue.max(1));
        let shared = Arc::new(Shared {
            chain,
            pool: Arc::new(pool::Pool::new(config.pool.clone())),
            fetch: OnceLock::new(),
            last_new_block: Mutex::new(None),
            workers: verify::Workers::new(config.verify_threads),
            block_bytes: Default::default(),
            metrics: Default::default(),
            config,
            table: Default::default(),
            events,
            peer_events: tokio::sync::broadcast::channel(PEER_EVENT_BACKLOG).0,
            sessions: Default::default(),
        });
        let handle = Handle {
            shared: shared.clone(),
        };
        (Eth { shared }, handle, rx)
    }

    /// Another [`Handle`] on the peer table (named so as not to shadow
    /// [`Subprotocol::handle`]).
    pub fn node_handle(&self) -> Handle {
        Handle {
            shared: self.shared.clone(),
        }
    }
}

impl Subprotocol for Eth {
    fn protocols(&self) -> Vec<rlpx::Protocol> {
        self.shared
            .config
            .versions
            .iter()
            .filter_map(|&v| messages::message_count(v).map(|n| rlpx::Protocol::new("eth", v, n)))
            .collect()
    }

    fn handle(&self, peer: rlpx::ProtocolHandle) -> Handler {
        Box::pin(handler::run(self.shared.clone(), peer))
    }
}

/// A random `u64` from the OS-seeded hasher keys (for the broadcasts' fan-out choice).
fn random() -> u64 {
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}
