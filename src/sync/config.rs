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
    /// Distance between skeleton headers. Default 1024 (`eth::serve::MAX_HEADERS`, and
    /// what go-ethereum and reth serve): one gap is one header request, as long as peers
    /// answer it in full (1024 headers are ~600 KB, under the 2 MiB soft limit).
    pub span: u64,
    /// Skeleton points per round. Default 32: a round covers at most 32 × 1024 = 32,768
    /// blocks, and then the next one starts from the new head. That bounds the headers a
    /// round holds: ~0.9 KB each decoded (the header and its slot), ~30 MB at most,
    /// about what 128 points of 192 (go-ethereum's `MaxSkeletonSize` × `MaxHeaderFetch`,
    /// 24,576 headers) held before.
    pub max_skeleton: u64,
    /// Most bodies per request. Default 1024 (`eth::serve::MAX_BODIES`, go-ethereum's
    /// `maxBodiesServe`): with small blocks the request is bounded by this, with large
    /// ones by [`Config::response_bytes`].
    pub bodies_per_request: usize,
    /// Bytes of bodies to ask for per request. Default 2 MiB (`eth::serve::
    /// SOFT_RESPONSE_LIMIT`, the spec's recommended soft limit): the count is this over
    /// the bytes per body learned from delivered bodies (the median of the last 15
    /// answers), e.g. ~890 of the generated chain's 2.4 KB bodies (`benches/sync.rs`), ~14
    /// of 150 KB mainnet blocks. A peer that cuts an answer at its own limit answers a prefix; the rest is
    /// asked again, without fault.
    pub response_bytes: u64,
    /// Requests in flight per peer. Default 4: a header fill and bodies overlap, and the
    /// peer encodes one answer while we decode another; one slow peer holds at most 4
    /// requests' work (under eth's 16 per peer, `eth::Config::max_in_flight`).
    pub max_in_flight: usize,
    /// Bytes of bodies held above the import cursor (downloaded, plus requests in flight
    /// at their expected size), at most: no body request goes out beyond it. Default
    /// 64 MiB (RLP; decoded bodies take about twice that): ~28,000 of the generated chain's
    /// 2.4 KB bodies, ~440 mainnet blocks of 150 KB, while a request may still bring one more
    /// answer per request in flight (2 MiB each, plus the body crossing the limit).
    pub window_bytes: u64,
    /// Blocks per import (one store write transaction, one commit), at most. Default
    /// 1024: the commit is a large share of an import (18% of the samples of a profile of
    /// the sync bench at 256 a batch), so small blocks are imported four times as many a
    /// commit as `devp2p import` does (256); large ones are bounded by
    /// [`Config::import_bytes`].
    pub import_batch: usize,
    /// Bytes of bodies (RLP) per import: a batch ends once it reaches this. Default
    /// 32 MiB: ~220 mainnet blocks of 150 KB (about the 256 blocks a batch held before),
    /// ~14,000 of the generated chain's 2.4 KB bodies (so 1024 blocks bound those).
    pub import_bytes: u64,
    /// Time a peer has to answer before it is penalised. Default 12 s (above eth's 10 s
    /// request timeout, which usually reports first).
    pub request_timeout: Duration,
    /// Requests per second to one peer, sustained (a token bucket per peer). Default 48:
    /// three quarters of the 64/s a peer of ours allows (`eth::Config::
    /// requests_per_second`), the rest left for what else we ask of the same peer
    /// (receipts, pooled transactions, announced blocks), so our nodes never drop each
    /// other for syncing too fast. With 1024 headers and ~890 bodies of 2.4 KB a request
    /// it allows ~22,000 blocks/s from one peer, over twice the local import.
    pub requests_per_second: u32,
    /// Requests to one peer at once (the bucket's size). Default 16: a sixteenth of the
    /// 256 burst a peer of ours allows (`eth::Config::request_burst`).
    pub request_burst: u32,
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
            span: 1024,
            max_skeleton: 32,
            bodies_per_request: 1024,
            response_bytes: 2 * 1024 * 1024,
            max_in_flight: 4,
            window_bytes: 64 * 1024 * 1024,
            requests_per_second: 48,
            request_burst: 16,
            import_batch: 1024,
            import_bytes: 32 * 1024 * 1024,
            request_timeout: Duration::from_secs(12),
            retry_delay: Duration::from_secs(1),
            stall_timeout: Duration::from_secs(30),
            announce: true,
        }
    }
}
