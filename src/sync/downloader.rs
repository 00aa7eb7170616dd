//! The catch-up downloader as a sans-IO state machine.
//!
//! Inputs: [`Downloader::peer_joined`] / [`Downloader::peer_left`], the answers
//! ([`Downloader::on_headers`], [`Downloader::on_bodies`]), the import results
//! ([`Downloader::on_imported`]) and [`Downloader::handle_timeout`] at `now`. Outputs:
//! [`Downloader::poll_action`] ([`Action`]s to carry out) and
//! [`Downloader::next_timeout`]. After every input the caller drains `poll_action`.
//!
//! One sync *round* (`super::round::Round`, which checks answers against the round's
//! state and says who is at fault; the downloader owns it with the peers and requests)
//! goes from a common ancestor to a target:
//!
//! 0. A peer's claimed head is believed once the peer shows its header (see
//!    [`super::trust`]); only proven heads lead rounds, and work goes to a peer only up
//!    to its proven head.
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
//!    A gap that does not link, filled by a peer other than the skeleton's, is disputed
//!    and asked again from the skeleton peer, or another peer that did not dispute it: if
//!    that links, the disputers lied and are penalised; if the skeleton peer's answer
//!    does not link, or it cannot fill it, it is penalised and the round starts over.
//!    Empty or short fills count against the peer (strikes). Bodies are asked
//!    for filled headers from all peers (at most [`Config::max_in_flight`] requests per
//!    peer, paced and sized by bytes (`super::pacing`), within [`Config::window_bytes`]
//!    of bodies above the import cursor), checked against the
//!    header roots before anything is imported, and contiguous blocks are imported in
//!    order, one batch at a time. The round ends when its last block is imported.
//!
//! A peer that times out, answers with headers that do not link or bodies that do not
//! match their headers, withholds what it claimed ([`super::trust::MAX_STRIKES`]), or
//! whose block the store rejects is penalised ([`Action::Penalise`]) and its work goes
//! back to the queue. A round without progress for [`Config::stall_timeout`] drops its
//! peer, and a round whose peer is penalised starts over without it.
//!
//! Side chains: the store stores a block whose parent it has and makes it canonical when
//! it is higher than the head, so a longer chain diverging after the common ancestor is
//! imported like any other (blocks at or below our head wait off the canonical chain until
//! one is higher).

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Instant;

use alloy_consensus::Header;
use alloy_primitives::B256;
use protocols::eth::{BlockId, GetBlockHeaders, PeerId};
use rlpx::DisconnectReason;

pub use super::config::Config;
use super::pacing::{BodySize, Pacer};
use super::round::{Answer, NextImport, Round, Verdict};
use crate::chain::{Block, Body};

/// The local chain, read-only: what the downloader compares peers' headers with.
pub trait Local {
    /// The head's number and hash.
    fn head(&self) -> (u64, B256);
    /// The canonical hash at `number`, if any.
    fn canonical_hash(&self, number: u64) -> Option<B256>;
}

/// How many of `bodies`, from the first, match their `headers` (in the same order, as
/// [`Action::Bodies`] gives them): what [`Downloader::on_checked_bodies`] takes.
pub fn matched_bodies(headers: &[Header], bodies: &[Body]) -> usize {
    bodies
        .iter()
        .zip(headers)
        .take_while(|(b, h)| crate::chain::validate::body(h, b).is_ok())
        .count()
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
    /// Send a GetBlockBodies; report with [`Downloader::on_bodies`], or
    /// [`Downloader::on_checked_bodies`] after checking the bodies against `headers`.
    Bodies {
        /// The request.
        id: RequestId,
        /// To whom.
        peer: PeerId,
        /// The block hashes.
        hashes: Vec<B256>,
        /// Their headers, in the same order: what the bodies must match. Checking them
        /// hashes every transaction and builds the roots, which the caller can do off
        /// the thread that feeds the downloader.
        headers: Vec<Header>,
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
    /// The highest head a connected peer announced and showed the header of (at least
    /// `current`).
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
pub(super) struct Peer {
    /// The head it claims: believed once `proven`.
    pub(super) head: PeerHead,
    /// The latest head whose header the peer showed (number, hash): what its rounds
    /// target and how far it is given work.
    pub(super) proven: Option<(u64, B256)>,
    /// Empty or short answers in a row for ranges it claimed ([`super::trust`]).
    pub(super) strikes: u32,
    /// Pause after an empty answer: the peer lacks what we asked.
    pub(super) idle_until: Option<Instant>,
    /// The requests it may be sent ([`super::pacing`]).
    pub(super) pacer: Pacer,
}

impl Peer {
    /// Its claimed head, if proven.
    pub(super) fn claim_proven(&self) -> Option<(u64, B256)> {
        self.proven
            .filter(|(n, h)| *h == self.head.hash && self.head.number.is_none_or(|c| c == *n))
    }
}

#[derive(Debug)]
pub(super) enum Kind {
    /// The header of a peer's claimed head, by hash: proves the claim, and gives its
    /// number if unknown (eth/68).
    Probe {
        hash: B256,
        number: Option<u64>,
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
pub(super) struct Request {
    pub(super) peer: PeerId,
    pub(super) deadline: Instant,
    pub(super) kind: Kind,
}

/// The downloader (see the module docs).
pub struct Downloader<L> {
    pub(super) config: Config,
    pub(super) local: L,
    pub(super) peers: HashMap<PeerId, Peer>,
    pub(super) requests: HashMap<RequestId, Request>,
    pub(super) next_id: RequestId,
    pub(super) round: Option<Round>,
    pub(super) actions: VecDeque<Action>,
    pub(super) status: SyncStatus,
    pub(super) retry_at: Option<Instant>,
    /// Bytes per body, learned from answers: sizes body requests and the window.
    pub(super) body_size: BodySize,
    /// Since when a peer has been a little ahead of us (within the threshold), and our
    /// head then: a head that moves means propagation is working, and restarts the wait.
    behind_since: Option<(Instant, u64)>,
    /// The grace since `behind_since` is over: a round is due as soon as a head above ours
    /// is shown (its timer no longer needs waking).
    grace_over: bool,
    /// The peer leading the rounds and when they last made progress ([`super::trust`]).
    pub(super) stall: Option<(PeerId, Instant)>,
    /// Peers penalised and not yet gone: their announcements are ignored meanwhile
    /// (bounded by the peers connected; cleared by [`Downloader::peer_left`]).
    penalised: HashSet<PeerId>,
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
            body_size: BodySize::default(),
            behind_since: None,
            grace_over: false,
            stall: None,
            penalised: HashSet::new(),
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
        let paced = self.peers.values().filter_map(|p| p.pacer.ready_at());
        let grace = self
            .behind_since
            .filter(|_| self.round.is_none() && !self.grace_over)
            .map(|(t, _)| t + self.config.grace);
        requests
            .chain(idle)
            .chain(paced)
            .chain(self.retry_at)
            .chain(grace)
            .chain(self.stall_deadline())
            .min()
    }

    /// A peer joined, or announced a new head (a claim, proven before it is used).
    pub fn peer_joined(&mut self, peer: PeerId, head: PeerHead, now: Instant) {
        if self.penalised.contains(&peer) {
            return;
        }
        let (rate, burst) = (self.config.requests_per_second, self.config.request_burst);
        let entry = self.peers.entry(peer).or_insert_with(|| Peer {
            head,
            proven: None,
            strikes: 0,
            idle_until: None,
            pacer: Pacer::new(rate, burst, now),
        });
        // A head announced lower than the one it showed (a reorg to a shorter chain, or a
        // BlockRangeUpdate): what it showed may no longer be its chain; show it again.
        if let (Some(n), Some((shown, _))) = (head.number, entry.proven)
            && n < shown
        {
            entry.proven = None;
        }
        // Keep a number we learned for the same hash (eth/68 re-announcing).
        let head = match entry.proven {
            Some((n, h)) if h == head.hash && head.number.is_none() => PeerHead {
                hash: h,
                number: Some(n),
            },
            _ => head,
        };
        entry.head = head;
        self.refresh_highest();
        self.schedule(now);
    }

    /// A peer left: its requests are reassigned.
    pub fn peer_left(&mut self, peer: &PeerId, now: Instant) {
        self.penalised.remove(peer);
        if self.peers.remove(peer).is_none() {
            return;
        }
        self.refresh_highest();
        self.drop_requests_of(peer, now);
        if self.round.as_ref().is_some_and(|r| r.peer() == *peer) || self.peers.is_empty() {
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
            p.pacer.settle(now);
        }
        if self.retry_at.is_some_and(|t| t <= now) {
            self.retry_at = None;
        }
        self.check_stall(now);
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
            Err(Failure::Gone) => {
                self.pause(&peer, now);
                self.requeue(req.kind, now);
            }
            Ok(headers) => self.headers_arrived(peer, req.kind, headers, now),
        }
        self.schedule(now);
    }

    /// The answer to an [`Action::Bodies`]; each body is checked against its header here.
    pub fn on_bodies(&mut self, id: RequestId, answer: Result<Vec<Body>, Failure>, now: Instant) {
        self.bodies_arrived(id, answer, None, now);
    }

    /// The answer to an [`Action::Bodies`] whose first `matched` bodies the caller found
    /// to match the action's headers ([`crate::chain::validate::body`]), and the next one,
    /// if any, not: they are not checked again.
    pub fn on_checked_bodies(
        &mut self,
        id: RequestId,
        answer: Result<Vec<Body>, Failure>,
        matched: usize,
        now: Instant,
    ) {
        self.bodies_arrived(id, answer, Some(matched), now);
    }

    fn bodies_arrived(
        &mut self,
        id: RequestId,
        answer: Result<Vec<Body>, Failure>,
        matched: Option<usize>,
        now: Instant,
    ) {
        let Some(req) = self.requests.remove(&id) else {
            return;
        };
        let peer = req.peer;
        match answer {
            Err(Failure::Timeout) => self.penalise(peer, DisconnectReason::UselessPeer, now),
            Err(Failure::Gone) => {
                self.pause(&peer, now);
                self.requeue(req.kind, now);
            }
            Ok(bodies) => {
                if let (Kind::Bodies { numbers }, Some(round)) = (req.kind, self.round.as_mut()) {
                    let v = round.on_bodies(peer, &numbers, bodies, matched);
                    self.body_size.record(v.bodies.0, v.bodies.1);
                    self.apply(Some(peer), v, now);
                }
            }
        }
        self.schedule(now);
    }

    /// The result of the outstanding [`Action::Import`].
    pub fn on_imported(&mut self, result: Imported, now: Instant) {
        let Some(verdict) = self.round.as_mut().and_then(|r| r.on_imported(&result)) else {
            return;
        };
        match result {
            Imported::Ok { number, .. } => self.status.current = number,
            Imported::Bad { hash } => {
                self.status.current = self.local.head().0;
                tracing::warn!(target: "sync", %hash, "store rejected a downloaded block");
            }
            // The store's fault, not the round peer's: its stall clock starts over.
            Imported::Failed => self.stall = None,
        }
        self.apply(None, verdict, now);
        self.schedule(now);
    }

    /// Carries out what the round made of an answer from `peer` (or of an import).
    fn apply(&mut self, peer: Option<PeerId>, verdict: Verdict, now: Instant) {
        if verdict.abort {
            self.abort(now);
        }
        if verdict.progress {
            self.progress(now);
        }
        match (peer, verdict.answer) {
            (Some(p), Some(Answer::Delivered)) => self.delivered(&p),
            (Some(p), Some(Answer::Strike)) => self.strike(p, now),
            (Some(p), Some(Answer::Pause)) => self.pause(&p, now),
            _ => {}
        }
        for (p, reason) in verdict.penalise {
            self.penalise(p, reason, now);
        }
    }

    pub(super) fn next_request_id(&mut self) -> RequestId {
        self.next_id += 1;
        self.next_id
    }

    pub(super) fn send_headers(
        &mut self,
        peer: PeerId,
        req: GetBlockHeaders,
        kind: Kind,
        now: Instant,
    ) {
        let id = self.start_request(peer, kind, now);
        self.actions.push_back(Action::Headers { id, peer, req });
    }

    pub(super) fn drop_requests_of(&mut self, peer: &PeerId, now: Instant) {
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
    pub(super) fn requeue(&mut self, kind: Kind, now: Instant) {
        let Some(round) = self.round.as_mut() else {
            return;
        };
        match kind {
            Kind::Probe { .. } => {}
            // Only the round's peer answers these: start over.
            Kind::Ancestor { .. } | Kind::Skeleton => self.abort(now),
            Kind::Fill { gap } => round.requeue_gap(gap),
            Kind::Bodies { numbers } => round.requeue_bodies(numbers),
        }
    }

    /// Disconnects `peer` and reassigns its work. A round it leads starts over: its
    /// skeleton came from a peer found wanting.
    pub(super) fn penalise(&mut self, peer: PeerId, reason: DisconnectReason, now: Instant) {
        if self.peers.remove(&peer).is_none() {
            return;
        }
        self.penalised.insert(peer);
        self.refresh_highest();
        tracing::info!(target: "sync", peer = %rlpx::peer::short_id(&peer), ?reason, "dropping peer");
        self.actions.push_back(Action::Penalise { peer, reason });
        self.drop_requests_of(&peer, now);
        if self.round.as_ref().is_some_and(|r| r.peer() == peer) {
            self.abort(now);
        } else if self.peers.is_empty() {
            self.on_round_peer_lost(now);
        }
    }

    /// The round's peer (or every peer) is gone: without it, a disputed gap cannot be
    /// settled, nor can the ancestor search or skeleton go on.
    pub(super) fn on_round_peer_lost(&mut self, now: Instant) {
        let Some(round) = self.round.as_ref() else {
            return;
        };
        // With no peers at all the round cannot go on either (and is not "syncing").
        if self.peers.is_empty() || round.needs_its_peer() {
            self.abort(now);
        }
    }

    /// Drops the round (keeping what was imported) and retries after a pause.
    pub(super) fn abort(&mut self, now: Instant) {
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
            Kind::Probe { hash, number } => self.probe_arrived(peer, hash, number, headers, now),
            Kind::Ancestor { number } => self.ancestor_arrived(peer, number, headers, now),
            Kind::Skeleton => {
                let (span, max) = self.skeleton_shape();
                let ok = self
                    .round
                    .as_mut()
                    .is_none_or(|r| r.on_skeleton(&headers, span, max));
                if !ok {
                    self.penalise(peer, DisconnectReason::UselessPeer, now);
                }
            }
            Kind::Fill { gap } => {
                if let Some(v) = self.round.as_mut().map(|r| r.on_fill(peer, gap, headers)) {
                    self.apply(Some(peer), v, now);
                }
            }
            Kind::Bodies { .. } => {}
        }
    }

    /// The skeleton's span and most points, as configured (at least 1 each, at most
    /// what a peer serves in one answer: a gap and the skeleton are one request each).
    fn skeleton_shape(&self) -> (u64, u64) {
        let most = protocols::eth::serve::MAX_HEADERS;
        let clamp = |n: u64| n.clamp(1, most);
        (clamp(self.config.span), clamp(self.config.max_skeleton))
    }

    /// One step of the ancestor search: the peer's header at `number`.
    fn ancestor_arrived(&mut self, peer: PeerId, number: u64, headers: Vec<Header>, now: Instant) {
        let Some(h) = headers
            .first()
            .filter(|h| headers.len() == 1 && h.number == number)
        else {
            self.penalise(peer, DisconnectReason::UselessPeer, now);
            return;
        };
        let hash = h.hash_slow();
        let same = self.local.canonical_hash(number) == Some(hash);
        let Some(ancestor) = self
            .round
            .as_mut()
            .and_then(|r| r.on_ancestor(number, same))
        else {
            return;
        };
        let ancestor_hash = if ancestor == number {
            Some(hash)
        } else {
            self.local.canonical_hash(ancestor)
        };
        match ancestor_hash {
            Some(hash) => self.start_skeleton(ancestor, hash, now),
            None => self.abort(now),
        }
    }

    /// The common ancestor is found: the skeleton is asked of the round's peer.
    fn start_skeleton(&mut self, ancestor: u64, ancestor_hash: B256, now: Instant) {
        let (span, max) = self.skeleton_shape();
        let Some(round) = self.round.as_mut() else {
            return;
        };
        if let Some(req) = round.start_skeleton(ancestor, ancestor_hash, span, max) {
            let peer = round.peer();
            self.send_headers(peer, req, Kind::Skeleton, now);
        }
    }

    /// Fill phase: hands out gaps and bodies to idle peers and imports what is ready.
    fn schedule_fill(&mut self, now: Instant) {
        // Gaps, to the idle peers that reach their end.
        let pending = self
            .round
            .as_ref()
            .map(Round::pending_gaps)
            .unwrap_or_default();
        for (gap, end) in pending {
            let candidates = self.idle_peers(end, now);
            let Some(round) = self.round.as_mut() else {
                return;
            };
            if let Some((peer, req)) = round.assign_gap(gap, &candidates) {
                self.send_headers(peer, req, Kind::Fill { gap }, now);
            }
        }
        self.schedule_bodies(now);
        self.import_ready(now);
    }

    /// Starts the next import, or ends the round when all of it is imported.
    fn import_ready(&mut self, now: Instant) {
        let Some(round) = self.round.as_mut() else {
            return;
        };
        let (blocks, bytes) = (self.config.import_batch.max(1), self.config.import_bytes);
        match round.next_import(blocks, bytes) {
            NextImport::Wait => {}
            NextImport::Blocks(blocks) => self.actions.push_back(Action::Import { blocks }),
            NextImport::Done => {
                self.round = None;
                self.stall = None;
                self.status.syncing = false;
                // The next round, if a peer is still ahead.
                self.maybe_start(now);
                if self.round.is_some() {
                    self.schedule(now);
                }
            }
        }
    }

    /// Issues whatever work can go out now.
    pub(super) fn schedule(&mut self, now: Instant) {
        if self.round.is_none() {
            self.maybe_start(now);
        }
        // Heads without a number, and during a round any unproven head above ours.
        self.probe_heads(self.round.is_some(), now);
        let Some(round) = self.round.as_ref() else {
            return;
        };
        if let Some(number) = round.ancestor_query() {
            let busy = self
                .requests
                .values()
                .any(|r| matches!(r.kind, Kind::Ancestor { .. }));
            if !busy {
                let req = GetBlockHeaders {
                    origin: BlockId::Number(number),
                    amount: 1,
                    skip: 0,
                    reverse: false,
                };
                self.send_headers(round.peer(), req, Kind::Ancestor { number }, now);
            }
        } else if round.filling() {
            self.schedule_fill(now);
        }
    }

    pub(super) fn maybe_start(&mut self, now: Instant) {
        if self.retry_at.is_some_and(|t| t > now) {
            return;
        }
        let (head, _) = self.local.head();
        self.status.current = head;
        // Whether a round is due follows the claims; who leads it, the proven heads.
        let claimed = self.peers.values().filter_map(|p| p.head.number).max();
        let Some(claimed) = claimed.filter(|n| *n > head) else {
            self.behind_since = None;
            self.status.syncing = false;
            self.stall = None;
            return;
        };
        if claimed <= head.saturating_add(self.config.threshold) {
            let since = match self.behind_since {
                Some((t, h)) if h == head => t,
                _ => {
                    self.behind_since = Some((now, head));
                    self.grace_over = false;
                    now
                }
            };
            if now < since + self.config.grace {
                self.status.syncing = false;
                return;
            }
            self.grace_over = true;
        }
        self.probe_heads(true, now);
        let (target, target_hash, peer) = loop {
            let best = self
                .peers
                .iter()
                .filter_map(|(id, p)| Some((p.proven?, *id, p.pacer.ready(now))))
                .filter(|((n, _), _, _)| *n > head)
                .max_by_key(|((n, _), id, _)| (*n, id.serialize()));
            let Some(((target, target_hash), peer, ready)) = best else {
                return; // until a head above ours is shown
            };
            if !ready {
                return; // its first request waits for a token (`next_timeout` wakes us)
            }
            if self.stall_clock_for(peer, now) {
                break (target, target_hash, peer);
            }
        };
        self.behind_since = None;
        if !self.status.syncing {
            self.status.starting = head;
        }
        self.status.syncing = true;
        tracing::debug!(target: "sync", peer = %rlpx::peer::short_id(&peer), head, target, "sync round starting");
        let hi = head.min(target);
        self.round = Some(Round::new(peer, (target, target_hash), hi));
        if hi == 0 {
            let genesis = self.local.canonical_hash(0).unwrap_or_default();
            self.start_skeleton(0, genesis, now);
        }
    }
}

#[cfg(test)]
#[path = "downloader_tests.rs"]
mod tests;
