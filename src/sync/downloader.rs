//! The catch-up downloader as a sans-IO state machine.
//!
//! Inputs: [`Downloader::peer_joined`] / [`Downloader::peer_left`], the answers
//! ([`Downloader::on_headers`], [`Downloader::on_bodies`]), the import results
//! ([`Downloader::on_imported`]) and [`Downloader::handle_timeout`] at `now`. Outputs:
//! [`Downloader::poll_action`] ([`Action`]s to carry out) and
//! [`Downloader::next_timeout`]. After every input the caller drains `poll_action`.
//!
//! One sync *round* goes from a common ancestor to a target:
//!
//! 1. `Ancestor`: entered when the best peer is ahead of our head by more than
//!    [`Config::threshold`]. The header at `min(our head, its head)` is asked from that
//!    peer; if its hash is our canonical hash there, that is the ancestor; otherwise a
//!    binary search over block numbers (at most 64 steps) finds the highest block both
//!    chains share.
//! 2. `Skeleton`: every [`Config::span`]th header after the ancestor is asked from the
//!    same peer (one request, up to [`Config::max_skeleton`] points); the peer's head is
//!    the last point.
//! 3. `Fill`: the gaps between points are asked from all peers in parallel; each filled
//!    gap must run from the point below (by parent hash) to the point above (by hash).
//!    A gap that does not link, filled by a peer other than the skeleton's, is asked
//!    again from the skeleton peer: if that links, the first peer lied and is penalised;
//!    if not, the skeleton peer is penalised and the round starts over. Bodies are asked
//!    for filled headers from all peers (at most [`Config::max_in_flight`] requests per
//!    peer, within [`Config::window`] blocks of the import cursor), checked against the
//!    header roots before anything is imported, and contiguous blocks are imported in
//!    order, one batch at a time. The round ends when its last block is imported.
//!
//! A peer that times out, answers with headers that do not link or bodies that do not
//! match their headers, or whose block the store rejects is penalised ([`Action::Penalise`])
//! and its work goes back to the queue.
//!
//! Side chains: the store stores a block whose parent it has and makes it canonical when
//! it is higher than the head, so a longer chain diverging after the common ancestor is
//! imported like any other (blocks at or below our head wait off the canonical chain until
//! one is higher).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use alloy_consensus::Header;
use alloy_primitives::B256;
use protocols::eth::{BlockId, GetBlockHeaders, PeerId};
use rlpx::DisconnectReason;

use crate::chain::{Block, Body, validate};

/// Settings of the downloader.
#[derive(Clone, Debug)]
pub struct Config {
    /// A round starts when a peer's head is more than this many blocks above ours.
    /// Default 0: any peer ahead of us (post-merge there is no block propagation to
    /// wait for).
    pub threshold: u64,
    /// Distance between skeleton headers. Default 192 (go-ethereum `MaxHeaderFetch`):
    /// one gap is one header request.
    pub span: u64,
    /// Skeleton points per round. Default 128 (go-ethereum `MaxSkeletonSize`): a round
    /// covers at most 24 576 blocks, and then the next one starts from the new head.
    pub max_skeleton: u64,
    /// Bodies per request. Default 128 (go-ethereum `MaxBlockFetch`).
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
    /// Pause before a new round after one failed. Default 1 s.
    pub retry_delay: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            threshold: 0,
            span: 192,
            max_skeleton: 128,
            bodies_per_request: 128,
            max_in_flight: 2,
            window: 2048,
            import_batch: 256,
            request_timeout: Duration::from_secs(12),
            retry_delay: Duration::from_secs(1),
        }
    }
}

/// The local chain, read-only: what the downloader compares peers' headers with.
pub trait Local {
    /// The head's number and hash.
    fn head(&self) -> (u64, B256);
    /// The canonical hash at `number`, if any.
    fn canonical_hash(&self, number: u64) -> Option<B256>;
}

/// Identifies one request, to match its answer.
pub type RequestId = u64;

/// What the caller is asked to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send a GetBlockHeaders; report with [`Downloader::on_headers`].
    Headers {
        /// The request.
        id: RequestId,
        /// To whom.
        peer: PeerId,
        /// What.
        req: GetBlockHeaders,
    },
    /// Send a GetBlockBodies; report with [`Downloader::on_bodies`].
    Bodies {
        /// The request.
        id: RequestId,
        /// To whom.
        peer: PeerId,
        /// The block hashes.
        hashes: Vec<B256>,
    },
    /// Import these blocks (in order, each the parent of the next); report with
    /// [`Downloader::on_imported`]. Only one import is outstanding at a time.
    Import {
        /// The blocks.
        blocks: Vec<Block>,
    },
    /// Disconnect the peer with this reason (the server bans `BreachOfProtocol` and
    /// `UselessPeer` peers for a while).
    Penalise {
        /// The peer.
        peer: PeerId,
        /// Why.
        reason: DisconnectReason,
    },
}

/// Why a request got no usable answer (from the transport, not the data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The peer did not answer in time: it is penalised.
    Timeout,
    /// The peer left, or was busy: the work is reassigned.
    Gone,
}

/// The result of an [`Action::Import`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Imported {
    /// All blocks stored; the new head.
    Ok {
        /// Head number.
        number: u64,
        /// Head hash.
        hash: B256,
    },
    /// The store rejected this block (blocks before it were stored).
    Bad {
        /// The rejected block.
        hash: B256,
    },
    /// The store failed (not the peers' fault): the round is dropped and retried later.
    Failed,
}

/// Sync progress, for `eth_syncing`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncStatus {
    /// Our head when the current sync began.
    pub starting: u64,
    /// Our head.
    pub current: u64,
    /// The highest head a peer announced.
    pub highest: u64,
    /// Whether a round is under way.
    pub syncing: bool,
}

/// A peer's announced head (eth/68 gives only the hash; the number is then fetched).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerHead {
    /// The head hash.
    pub hash: B256,
    /// The head number, if known.
    pub number: Option<u64>,
}

#[derive(Debug)]
struct Peer {
    head: PeerHead,
    /// Pause after an empty answer: the peer lacks what we asked.
    idle_until: Option<Instant>,
}

#[derive(Debug)]
enum Kind {
    /// The header of a peer's head, by hash, to learn its number (eth/68).
    Probe {
        hash: B256,
    },
    /// One header during the ancestor search.
    Ancestor {
        number: u64,
    },
    Skeleton,
    Fill {
        gap: usize,
    },
    Bodies {
        numbers: Vec<u64>,
    },
}

#[derive(Debug)]
struct Request {
    peer: PeerId,
    deadline: Instant,
    kind: Kind,
}

#[derive(Debug)]
enum Phase {
    /// Searching `(lo, hi)`: `lo` is shared, `hi` is not (or not yet checked if `first`).
    Ancestor {
        lo: u64,
        hi: u64,
        first: bool,
    },
    Skeleton,
    Fill,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GapState {
    Pending,
    InFlight,
    Done,
}

#[derive(Debug)]
struct Gap {
    /// First block of the gap.
    start: u64,
    /// The point below (`start - 1`).
    parent: B256,
    /// The point above (`end`, the last block of the gap).
    end: u64,
    end_hash: B256,
    state: GapState,
    /// A peer other than the skeleton's whose fill did not link.
    disputed_by: Option<PeerId>,
}

#[derive(Debug)]
struct Slot {
    header: Header,
    hash: B256,
    header_from: PeerId,
    body: Option<Body>,
    in_flight: bool,
}

#[derive(Debug)]
struct Round {
    peer: PeerId,
    target: u64,
    target_hash: B256,
    phase: Phase,
    gaps: Vec<Gap>,
    blocks: BTreeMap<u64, Slot>,
    /// Numbers whose header is known and body is needed, not in flight.
    want_bodies: BTreeSet<u64>,
    /// Next block to import.
    cursor: u64,
    /// Last block of an outstanding import.
    importing: Option<u64>,
    /// Last block of the round.
    end: u64,
    /// Whether the round goes up to the target (else to the last skeleton point).
    with_target: bool,
}

/// The downloader (see the module docs).
pub struct Downloader<L> {
    config: Config,
    local: L,
    peers: HashMap<PeerId, Peer>,
    requests: HashMap<RequestId, Request>,
    next_id: RequestId,
    round: Option<Round>,
    actions: VecDeque<Action>,
    status: SyncStatus,
    retry_at: Option<Instant>,
}

impl<L: Local> Downloader<L> {
    /// A downloader over `local`.
    pub fn new(config: Config, local: L) -> Self {
        let current = local.head().0;
        Self {
            config,
            local,
            peers: HashMap::new(),
            requests: HashMap::new(),
            next_id: 0,
            round: None,
            actions: VecDeque::new(),
            status: SyncStatus {
                starting: current,
                current,
                highest: current,
                syncing: false,
            },
            retry_at: None,
        }
    }

    /// The local chain view.
    pub fn local(&self) -> &L {
        &self.local
    }

    /// Progress so far.
    pub fn status(&self) -> SyncStatus {
        self.status
    }

    /// The next action to carry out.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`Downloader::handle_timeout`] should next be called.
    pub fn next_timeout(&self) -> Option<Instant> {
        let requests = self.requests.values().map(|r| r.deadline);
        let idle = self.peers.values().filter_map(|p| p.idle_until);
        requests.chain(idle).chain(self.retry_at).min()
    }

    /// A peer joined, or announced a new head.
    pub fn peer_joined(&mut self, peer: PeerId, head: PeerHead, now: Instant) {
        let known = self.peers.get(&peer).map(|p| p.head);
        if known == Some(head) {
            return;
        }
        // Keep a number we learned for the same hash (eth/68 re-announcing).
        let head = match known {
            Some(k) if k.hash == head.hash && head.number.is_none() => k,
            _ => head,
        };
        let entry = self.peers.entry(peer).or_insert(Peer {
            head,
            idle_until: None,
        });
        entry.head = head;
        match head.number {
            Some(n) => self.status.highest = self.status.highest.max(n),
            None => {
                let req = GetBlockHeaders {
                    origin: BlockId::Hash(head.hash),
                    amount: 1,
                    skip: 0,
                    reverse: false,
                };
                self.send_headers(peer, req, Kind::Probe { hash: head.hash }, now);
            }
        }
        self.schedule(now);
    }

    /// A peer left: its requests are reassigned.
    pub fn peer_left(&mut self, peer: &PeerId, now: Instant) {
        if self.peers.remove(peer).is_none() {
            return;
        }
        self.drop_requests_of(peer, now);
        if self.round.as_ref().is_some_and(|r| &r.peer == peer) {
            self.on_round_peer_lost(now);
        }
        self.schedule(now);
    }

    /// Expires requests and pauses at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let expired: Vec<RequestId> = self
            .requests
            .iter()
            .filter(|(_, r)| r.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(r) = self.requests.get(&id) {
                let peer = r.peer;
                tracing::debug!(target: "sync", peer = %rlpx::peer::short_id(&peer), "request timed out");
                self.penalise(peer, DisconnectReason::UselessPeer, now);
            }
        }
        for p in self.peers.values_mut() {
            if p.idle_until.is_some_and(|t| t <= now) {
                p.idle_until = None;
            }
        }
        if self.retry_at.is_some_and(|t| t <= now) {
            self.retry_at = None;
        }
        self.schedule(now);
    }

    /// The answer to an [`Action::Headers`].
    pub fn on_headers(
        &mut self,
        id: RequestId,
        answer: Result<Vec<Header>, Failure>,
        now: Instant,
    ) {
        let Some(req) = self.requests.remove(&id) else {
            return; // late, or from an abandoned round
        };
        let peer = req.peer;
        match answer {
            Err(Failure::Timeout) => self.penalise(peer, DisconnectReason::UselessPeer, now),
            Err(Failure::Gone) => self.requeue(req.kind, now),
            Ok(headers) => self.headers_arrived(peer, req.kind, headers, now),
        }
        self.schedule(now);
    }

    /// The answer to an [`Action::Bodies`].
    pub fn on_bodies(&mut self, id: RequestId, answer: Result<Vec<Body>, Failure>, now: Instant) {
        let Some(req) = self.requests.remove(&id) else {
            return;
        };
        let peer = req.peer;
        match answer {
            Err(Failure::Timeout) => self.penalise(peer, DisconnectReason::UselessPeer, now),
            Err(Failure::Gone) => self.requeue(req.kind, now),
            Ok(bodies) => {
                if let Kind::Bodies { numbers } = req.kind {
                    self.bodies_arrived(peer, numbers, bodies, now);
                }
            }
        }
        self.schedule(now);
    }

    /// The result of the outstanding [`Action::Import`].
    pub fn on_imported(&mut self, result: Imported, now: Instant) {
        let Some(round) = self.round.as_mut() else {
            return;
        };
        let Some(last) = round.importing.take() else {
            return;
        };
        match result {
            Imported::Ok { number, .. } => {
                for n in round.cursor..=last {
                    round.blocks.remove(&n);
                }
                round.cursor = last + 1;
                self.status.current = number;
            }
            Imported::Bad { hash } => {
                let culprit = round
                    .blocks
                    .values()
                    .find(|s| s.hash == hash)
                    .map(|s| s.header_from);
                self.status.current = self.local.head().0;
                tracing::warn!(target: "sync", %hash, "store rejected a downloaded block");
                self.abort(now);
                if let Some(p) = culprit {
                    self.penalise(p, DisconnectReason::BreachOfProtocol, now);
                }
            }
            Imported::Failed => self.abort(now),
        }
        self.schedule(now);
    }

    fn next_request_id(&mut self) -> RequestId {
        self.next_id += 1;
        self.next_id
    }

    fn send_headers(&mut self, peer: PeerId, req: GetBlockHeaders, kind: Kind, now: Instant) {
        let id = self.next_request_id();
        let deadline = now + self.config.request_timeout;
        self.requests.insert(
            id,
            Request {
                peer,
                deadline,
                kind,
            },
        );
        self.actions.push_back(Action::Headers { id, peer, req });
    }

    fn in_flight(&self, peer: &PeerId) -> usize {
        self.requests.values().filter(|r| &r.peer == peer).count()
    }

    /// Peers that can take work up to block `need`, least busy first.
    fn idle_peers(&self, need: u64, now: Instant) -> Vec<PeerId> {
        let mut v: Vec<(usize, PeerId)> = self
            .peers
            .iter()
            .filter(|(_, p)| p.head.number.is_some_and(|n| n >= need))
            .filter(|(_, p)| p.idle_until.is_none_or(|t| t <= now))
            .map(|(id, _)| (self.in_flight(id), *id))
            .filter(|(n, _)| *n < self.config.max_in_flight)
            .collect();
        v.sort();
        v.into_iter().map(|(_, id)| id).collect()
    }

    fn drop_requests_of(&mut self, peer: &PeerId, now: Instant) {
        let ids: Vec<RequestId> = self
            .requests
            .iter()
            .filter(|(_, r)| &r.peer == peer)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            if let Some(r) = self.requests.remove(&id) {
                self.requeue(r.kind, now);
            }
        }
    }

    /// Puts the work of an unanswered request back.
    fn requeue(&mut self, kind: Kind, now: Instant) {
        let Some(round) = self.round.as_mut() else {
            return;
        };
        match kind {
            Kind::Probe { .. } => {}
            Kind::Ancestor { .. } | Kind::Skeleton => {
                // Only the round's peer answers these: start over.
                self.abort(now);
            }
            Kind::Fill { gap } => {
                if let Some(g) = round.gaps.get_mut(gap)
                    && g.state == GapState::InFlight
                {
                    g.state = GapState::Pending;
                }
            }
            Kind::Bodies { numbers } => {
                for n in numbers {
                    if let Some(s) = round.blocks.get_mut(&n)
                        && s.in_flight
                    {
                        s.in_flight = false;
                        round.want_bodies.insert(n);
                    }
                }
            }
        }
    }

    /// Disconnects `peer` and reassigns its work.
    fn penalise(&mut self, peer: PeerId, reason: DisconnectReason, now: Instant) {
        if self.peers.remove(&peer).is_none() {
            return;
        }
        tracing::info!(target: "sync", peer = %rlpx::peer::short_id(&peer), ?reason, "dropping peer");
        self.actions.push_back(Action::Penalise { peer, reason });
        self.drop_requests_of(&peer, now);
        if self.round.as_ref().is_some_and(|r| r.peer == peer) {
            self.on_round_peer_lost(now);
        }
    }

    /// The round's peer is gone: without it, a disputed gap cannot be settled, nor can
    /// the ancestor search or skeleton go on.
    fn on_round_peer_lost(&mut self, now: Instant) {
        let Some(round) = self.round.as_ref() else {
            return;
        };
        let needed = !matches!(round.phase, Phase::Fill)
            || round.gaps.iter().any(|g| g.disputed_by.is_some());
        if needed {
            self.abort(now);
        }
    }

    /// Drops the round (keeping what was imported) and retries after a pause.
    fn abort(&mut self, now: Instant) {
        if self.round.take().is_some() {
            tracing::debug!(target: "sync", "sync round abandoned");
            self.requests
                .retain(|_, r| matches!(r.kind, Kind::Probe { .. }));
            self.retry_at = Some(now + self.config.retry_delay);
            self.status.syncing = false;
        }
    }

    fn headers_arrived(&mut self, peer: PeerId, kind: Kind, headers: Vec<Header>, now: Instant) {
        match kind {
            Kind::Probe { hash } => {
                match headers.first() {
                    Some(h) if headers.len() == 1 && h.hash_slow() == hash => {
                        if let Some(p) = self.peers.get_mut(&peer) {
                            p.head.number = Some(h.number);
                            self.status.highest = self.status.highest.max(h.number);
                        }
                    }
                    // A peer that cannot give its own head is no use for syncing.
                    _ => self.penalise(peer, DisconnectReason::UselessPeer, now),
                }
            }
            Kind::Ancestor { number } => self.ancestor_step(peer, number, headers, now),
            Kind::Skeleton => self.skeleton_arrived(peer, headers, now),
            Kind::Fill { gap } => self.fill_arrived(peer, gap, headers, now),
            Kind::Bodies { .. } => {}
        }
    }

    fn ancestor_step(&mut self, peer: PeerId, number: u64, headers: Vec<Header>, now: Instant) {
        let Some(h) = headers
            .first()
            .filter(|h| headers.len() == 1 && h.number == number)
        else {
            self.penalise(peer, DisconnectReason::UselessPeer, now);
            return;
        };
        let same = self.local.canonical_hash(number) == Some(h.hash_slow());
        let Some(round) = self.round.as_mut() else {
            return;
        };
        let Phase::Ancestor { lo, hi, .. } = round.phase else {
            return;
        };
        let (lo, hi) = if same { (number, hi) } else { (lo, number) };
        if same && number == hi || hi - lo <= 1 {
            let ancestor = if same && number == hi { hi } else { lo };
            let hash = if ancestor == number {
                h.hash_slow()
            } else {
                match self.local.canonical_hash(ancestor) {
                    Some(hash) => hash,
                    None => return self.abort(now),
                }
            };
            self.start_skeleton(ancestor, hash, now);
        } else {
            round.phase = Phase::Ancestor {
                lo,
                hi,
                first: false,
            };
        }
    }

    fn start_skeleton(&mut self, ancestor: u64, ancestor_hash: B256, now: Instant) {
        let span = self.config.span.max(1);
        let max = self.config.max_skeleton.max(1);
        let Some(round) = self.round.as_mut() else {
            return;
        };
        tracing::debug!(target: "sync", ancestor, target = round.target, "common ancestor found");
        round.cursor = ancestor + 1;
        round.gaps.push(Gap {
            start: ancestor + 1,
            parent: ancestor_hash,
            end: 0,
            end_hash: B256::ZERO,
            state: GapState::Pending,
            disputed_by: None,
        });
        // Points strictly below the target; the target itself is the last point.
        let below = (round.target - ancestor - 1) / span;
        let points = below.min(max);
        round.with_target = below <= max;
        if points == 0 {
            self.finish_skeleton(Vec::new(), now);
            return;
        }
        round.phase = Phase::Skeleton;
        let req = GetBlockHeaders {
            origin: BlockId::Number(ancestor + span),
            amount: points,
            skip: span - 1,
            reverse: false,
        };
        let peer = round.peer;
        self.send_headers(peer, req, Kind::Skeleton, now);
    }

    fn skeleton_arrived(&mut self, peer: PeerId, headers: Vec<Header>, now: Instant) {
        let span = self.config.span.max(1);
        let Some(round) = self.round.as_ref() else {
            return;
        };
        let first = round.cursor;
        let ok = !headers.is_empty()
            && headers
                .iter()
                .enumerate()
                .all(|(i, h)| h.number == first - 1 + span * (i as u64 + 1));
        if !ok {
            self.penalise(peer, DisconnectReason::UselessPeer, now);
            return;
        }
        let all = (round.cursor - 1 + span * headers.len() as u64) + span > round.target
            || headers.len() as u64 == self.config.max_skeleton.max(1);
        if !all {
            // A short skeleton: this round ends at its last point, not the target.
            if let Some(r) = self.round.as_mut() {
                r.with_target = false;
            }
        }
        let points = headers.iter().map(|h| (h.number, h.hash_slow())).collect();
        self.finish_skeleton(points, now);
    }

    /// Lays out the gaps between the ancestor, `points` and the target.
    fn finish_skeleton(&mut self, mut points: Vec<(u64, B256)>, _now: Instant) {
        let Some(round) = self.round.as_mut() else {
            return;
        };
        if round.with_target || points.is_empty() {
            points.push((round.target, round.target_hash));
        }
        let Some(first) = round.gaps.pop() else {
            return;
        };
        let (mut start, mut parent) = (first.start, first.parent);
        for (end, end_hash) in points {
            round.gaps.push(Gap {
                start,
                parent,
                end,
                end_hash,
                state: GapState::Pending,
                disputed_by: None,
            });
            (start, parent) = (end + 1, end_hash);
        }
        round.end = start - 1;
        round.phase = Phase::Fill;
    }

    fn fill_arrived(&mut self, peer: PeerId, gap: usize, headers: Vec<Header>, now: Instant) {
        let retry_delay = self.config.retry_delay;
        let Some(round) = self.round.as_mut() else {
            return;
        };
        let round_peer = round.peer;
        let Some(g) = round.gaps.get_mut(gap) else {
            return;
        };
        if headers.is_empty() {
            // Not necessarily malice (a peer may lack the range): pause it, retry elsewhere.
            g.state = GapState::Pending;
            if let Some(p) = self.peers.get_mut(&peer) {
                p.idle_until = Some(now + retry_delay);
            }
            return;
        }
        let mut hashes = Vec::with_capacity(headers.len());
        let mut linked = headers.len() as u64 == g.end - g.start + 1;
        let mut parent = g.parent;
        for (i, h) in headers.iter().enumerate() {
            if !linked || h.number != g.start + i as u64 || h.parent_hash != parent {
                linked = false;
                break;
            }
            parent = h.hash_slow();
            hashes.push(parent);
        }
        linked &= parent == g.end_hash;
        if !linked {
            g.state = GapState::Pending;
            if peer == round_peer {
                // The round's own peer cannot fill its skeleton: it is the liar.
                tracing::debug!(target: "sync", gap = g.start, "skeleton peer's gap does not link");
                self.abort(now);
                self.penalise(peer, DisconnectReason::BreachOfProtocol, now);
            } else {
                g.disputed_by = Some(peer);
            }
            return;
        }
        let liar = g.disputed_by.take();
        g.state = GapState::Done;
        for (header, hash) in headers.into_iter().zip(hashes) {
            round.want_bodies.insert(header.number);
            round.blocks.insert(
                header.number,
                Slot {
                    header,
                    hash,
                    header_from: peer,
                    body: None,
                    in_flight: false,
                },
            );
        }
        if let Some(liar) = liar {
            // The skeleton peer filled what `liar` could not: `liar` sent a broken gap.
            self.penalise(liar, DisconnectReason::BreachOfProtocol, now);
        }
    }

    fn bodies_arrived(&mut self, peer: PeerId, numbers: Vec<u64>, bodies: Vec<Body>, now: Instant) {
        let Some(round) = self.round.as_mut() else {
            return;
        };
        let mut bad = false;
        let got = bodies.len();
        let mut bodies = bodies.into_iter();
        for n in &numbers {
            let Some(slot) = round.blocks.get_mut(n) else {
                continue;
            };
            slot.in_flight = false;
            match bodies.next() {
                Some(body) if !bad => {
                    if validate::body(&slot.header, &body).is_ok() {
                        slot.body = Some(body);
                    } else {
                        bad = true;
                        round.want_bodies.insert(*n);
                    }
                }
                _ => {
                    round.want_bodies.insert(*n);
                }
            }
        }
        if bad {
            tracing::debug!(target: "sync", peer = %rlpx::peer::short_id(&peer), "body does not match its header");
            self.penalise(peer, DisconnectReason::BreachOfProtocol, now);
        } else if got == 0
            && let Some(p) = self.peers.get_mut(&peer)
        {
            p.idle_until = Some(now + self.config.retry_delay);
        }
    }

    /// Issues whatever work can go out now.
    fn schedule(&mut self, now: Instant) {
        if self.round.is_none() {
            self.maybe_start(now);
        }
        let Some(round) = self.round.as_mut() else {
            return;
        };
        let busy = |reqs: &HashMap<RequestId, Request>, k: fn(&Kind) -> bool| {
            reqs.values().any(|r| k(&r.kind))
        };
        match round.phase {
            Phase::Ancestor { lo, hi, first } => {
                if busy(&self.requests, |k| matches!(k, Kind::Ancestor { .. })) {
                    return;
                }
                let number = if first { hi } else { lo + (hi - lo) / 2 };
                let peer = round.peer;
                let req = GetBlockHeaders {
                    origin: BlockId::Number(number),
                    amount: 1,
                    skip: 0,
                    reverse: false,
                };
                self.send_headers(peer, req, Kind::Ancestor { number }, now);
            }
            Phase::Skeleton => {}
            Phase::Fill => self.schedule_fill(now),
        }
    }

    fn maybe_start(&mut self, now: Instant) {
        if self.retry_at.is_some_and(|t| t > now) {
            return;
        }
        let (head, _) = self.local.head();
        self.status.current = head;
        let best = self
            .peers
            .iter()
            .filter_map(|(id, p)| Some((p.head.number?, *id, p.head.hash)))
            .max_by_key(|(n, id, _)| (*n, id.serialize()));
        let Some((target, peer, target_hash)) = best else {
            return;
        };
        if target <= head.saturating_add(self.config.threshold) {
            if self.status.syncing {
                self.status.syncing = false;
            }
            return;
        }
        if !self.status.syncing {
            self.status.starting = head;
        }
        self.status.syncing = true;
        tracing::debug!(target: "sync", peer = %rlpx::peer::short_id(&peer), head, target, "sync round starting");
        let hi = head.min(target);
        self.round = Some(Round {
            peer,
            target,
            target_hash,
            phase: Phase::Ancestor {
                lo: 0,
                hi,
                first: true,
            },
            gaps: Vec::new(),
            blocks: BTreeMap::new(),
            want_bodies: BTreeSet::new(),
            cursor: 1,
            importing: None,
            end: 0,
            with_target: true,
        });
        if hi == 0 {
            let genesis = self.local.canonical_hash(0).unwrap_or_default();
            self.start_skeleton(0, genesis, now);
        }
    }

    fn schedule_fill(&mut self, now: Instant) {
        self.assign_gaps(now);
        self.assign_bodies(now);
        self.import_ready(now);
    }

    fn assign_gaps(&mut self, now: Instant) {
        let Some(round) = self.round.as_ref() else {
            return;
        };
        let pending: Vec<(usize, u64, bool)> = round
            .gaps
            .iter()
            .enumerate()
            .filter(|(_, g)| g.state == GapState::Pending)
            .map(|(i, g)| (i, g.end, g.disputed_by.is_some()))
            .collect();
        let round_peer = round.peer;
        for (i, end, disputed) in pending {
            let candidates = self.idle_peers(end, now);
            let peer = if disputed {
                candidates.into_iter().find(|p| *p == round_peer)
            } else {
                candidates.into_iter().next()
            };
            let Some(peer) = peer else {
                continue;
            };
            let Some(g) = self.round.as_mut().and_then(|r| r.gaps.get_mut(i)) else {
                return;
            };
            g.state = GapState::InFlight;
            let req = GetBlockHeaders {
                origin: BlockId::Number(g.start),
                amount: g.end - g.start + 1,
                skip: 0,
                reverse: false,
            };
            self.send_headers(peer, req, Kind::Fill { gap: i }, now);
        }
    }

    fn assign_bodies(&mut self, now: Instant) {
        loop {
            let Some(round) = self.round.as_ref() else {
                return;
            };
            let limit = round.cursor.saturating_add(self.config.window);
            let chunk: Vec<u64> = round
                .want_bodies
                .iter()
                .copied()
                .take_while(|n| *n < limit)
                .take(self.config.bodies_per_request.max(1))
                .collect();
            let Some(&top) = chunk.last() else {
                return;
            };
            let Some(peer) = self.idle_peers(top, now).into_iter().next() else {
                return;
            };
            let Some(round) = self.round.as_mut() else {
                return;
            };
            let mut hashes = Vec::with_capacity(chunk.len());
            for n in &chunk {
                round.want_bodies.remove(n);
                if let Some(s) = round.blocks.get_mut(n) {
                    s.in_flight = true;
                    hashes.push(s.hash);
                }
            }
            let id = self.next_request_id();
            let deadline = now + self.config.request_timeout;
            let kind = Kind::Bodies { numbers: chunk };
            self.requests.insert(
                id,
                Request {
                    peer,
                    deadline,
                    kind,
                },
            );
            self.actions.push_back(Action::Bodies { id, peer, hashes });
        }
    }

    fn import_ready(&mut self, now: Instant) {
        let Some(round) = self.round.as_mut() else {
            return;
        };
        if round.importing.is_some() {
            return;
        }
        if round.cursor > round.end {
            tracing::debug!(target: "sync", head = round.end, "sync round done");
            self.round = None;
            self.status.syncing = false;
            // The next round, if a peer is still ahead.
            self.maybe_start(now);
            if self.round.is_some() {
                self.schedule(now);
            }
            return;
        }
        let mut blocks = Vec::new();
        let mut n = round.cursor;
        while blocks.len() < self.config.import_batch.max(1) {
            let Some(slot) = round.blocks.get_mut(&n) else {
                break;
            };
            let Some(body) = slot.body.clone() else {
                break;
            };
            blocks.push(Block {
                header: slot.header.clone(),
                body,
            });
            n += 1;
        }
        if blocks.is_empty() {
            return;
        }
        round.importing = Some(n - 1);
        self.actions.push_back(Action::Import { blocks });
    }
}

#[cfg(test)]
#[path = "downloader_tests.rs"]
mod tests;
