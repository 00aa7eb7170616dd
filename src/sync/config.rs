//! Settings of catch-up sync ([`super::downloader::Downloader`] and its driver).

use std::time::Duration;

/// Settings of the downloader.
#[derive(Clone, Debug)]
pub struct Config {
    /// A round starts at once when a peer's head is more than this many blocks above
    /// ours. Default [`crate::propagate::MAX_FETCH_AHEAD`]: nearer blocks are what block
    /// propagation fetches and imports, and a round racing it would ask twice.
    pub threshold: u64,
    /// A peer ahead by 1..=`threshold` for this long starts a round all the same (a block
    /// announcement was missed). Default 5 s (go-ethereum forces a sync every 10 s).
    pub grace: Duration,
    /// Distance between skeleton headers. Default 192 (go-ethereum `MaxHeaderFetch`):
    /// one gap is one header request.
    pub span: u64,
    /// Skeleton points per round. Default 128 (go-ethereum `MaxSkeletonSize`): a round
    /// covers at most 24 576 blocks, and then the next one starts from the new head.
    pub max_skeleton: u64,
    /// Bodies per request. Default 256: twice go-ethereum's `MaxBlockFetch`, a quarter of
    /// what peers serve (1024); large blocks are cut by the peer's 2 MiB soft limit and
    /// the rest asked again. With requests paced, bigger requests are what speeds up a
    /// sync from one peer (docs/benchmarks.md: 3,636 → 5,014 blocks/s over 128).
    pub bodies_per_request: usize,
    /// Requests in flight per peer. Default 2: keeps a peer busy while bounding what one
    /// slow peer holds up.
    pub max_in_flight: usize,
    /// Bodies are only asked for blocks this far above the import cursor. Default 2048:
    /// bounds the blocks held in memory.
    pub window: u64,
    /// Blocks per import. Default 256.
    pub import_batch: usize,
    /// Time a peer has to answer before it is penalised. Default 12 s (above eth's 10 s
    /// request timeout, which usually reports first).
    pub request_timeout: Duration,
    /// Least time between two requests to one peer. Default 20 ms (50 requests/s): under
    /// the 64 requests/s a peer of ours allows (`eth::Config::requests_per_second`), so our
    /// nodes never drop each other for syncing too fast; at 128 bodies a request it still
    /// allows 6,400 blocks/s per peer.
    pub min_request_interval: Duration,
    /// Pause before a new round after one failed, and before a peer that answered empty
    /// or was busy is asked again. Default 1 s.
    pub retry_delay: Duration,
    /// A round whose peer has seen no progress (no gap filled, no body stored, no batch
    /// imported) for this long is dropped with its peer (`UselessPeer`). Default 30 s:
    /// every honest answer is progress, and the longest an honest round waits is a
    /// silent peer's request timing out ([`Config::request_timeout`], 12 s) and the next
    /// peer answering the same work (within another 12 s), plus a margin.
    pub stall_timeout: Duration,
    /// Whether a new head is announced (NewBlockHashes) to the peers behind us once a
    /// round is over. Default true; false on public networks, where block gossip is no
    /// longer part of the protocol and go-ethereum disconnects a peer that sends it
    /// (`docs/fork-choice.md`).
    pub announce: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            threshold: crate::propagate::MAX_FETCH_AHEAD,
            grace: Duration::from_secs(5),
            min_request_interval: Duration::from_millis(20),
            span: 192,
            max_skeleton: 128,
            bodies_per_request: 256,
            max_in_flight: 2,
            window: 2048,
            import_batch: 256,
            request_timeout: Duration::from_secs(12),
            retry_delay: Duration::from_secs(1),
            stall_timeout: Duration::from_secs(30),
            announce: true,
        }
    }
}
