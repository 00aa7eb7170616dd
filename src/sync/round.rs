//! One sync round as its own state machine: from a common ancestor with one peer's chain
//! to that peer's proven head, through the phases [`Phase::Ancestor`],
//! [`Phase::Skeleton`] and [`Phase::Fill`] (see [`super::downloader`] for the whole).
//!
//! A [`Round`] holds the gaps between skeleton points, the downloaded headers and bodies
//! and the import cursor. It checks answers against its own state and says what the
//! [`super::downloader::Downloader`] should make of them (a [`Verdict`]): which peers
//! are at fault, whether the round moved forward or must be abandoned. It knows nothing
//! of requests in flight, of peers' heads or of time: the downloader owns those, and
//! decides who is asked what ([`Round::assign_gap`], [`Round::take_bodies`]).

use std::collections::{BTreeMap, BTreeSet};

use alloy_consensus::Header;
use alloy_primitives::B256;
use protocols::eth::{BlockId, GetBlockHeaders, PeerId};
use rlpx::DisconnectReason;

use super::downloader::Imported;
use crate::chain::{Block, Body, validate};

/// Where a round stands.
#[derive(Debug)]
enum Phase {
    /// Entered when the round starts with both heads above genesis. Searching `(lo, hi)`:
    /// `lo` is shared, `hi` is not (or not yet checked if `first`). Left for `Skeleton`
    /// (or straight to `Fill`) when the ancestor is found.
    Ancestor { lo: u64, hi: u64, first: bool },
    /// The skeleton request to the round's peer is out. Left for `Fill` when it arrives.
    Skeleton,
    /// Gaps and bodies are downloaded from all peers and imported in order. The round
    /// ends (is dropped by the downloader) when its last block is imported.
    Fill,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GapState {
    Pending,
    InFlight,
    Done,
}

/// The headers between two skeleton points.
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
    /// Peers other than the skeleton's whose fill did not link (each at most once, so
    /// at most the peers connected): penalised if another fill links.
    disputed_by: Vec<PeerId>,
}

/// A block whose header is linked into the round.
#[derive(Debug)]
struct Slot {
    header: Header,
    hash: B256,
    header_from: PeerId,
    body: Option<Body>,
    /// The body's RLP size, once stored (counted in [`Round::held_bytes`]).
    size: u64,
    in_flight: bool,
}

/// What the answering peer earned, besides any penalty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Answer {
    /// A full answer: its strikes are forgiven.
    Delivered,
    /// Empty or short for what it claimed ([`super::trust`]).
    Strike,
    /// Empty for what it need not have: no fault, but no work for a while.
    Pause,
}

/// What the downloader should make of an answer or an import, applied in this order:
/// abandon the round, note progress, settle with the answering peer, drop peers.
#[derive(Debug, Default)]
pub(super) struct Verdict {
    /// The round cannot go on.
    pub(super) abort: bool,
    /// A gap filled, bodies stored or blocks imported (the stall clock starts over).
    pub(super) progress: bool,
    /// How the answering peer did.
    pub(super) answer: Option<Answer>,
    /// Peers proven at fault.
    pub(super) penalise: Vec<(PeerId, DisconnectReason)>,
    /// Bodies stored from the answer and their RLP bytes (for the size estimate).
    pub(super) bodies: (usize, u64),
}

/// What [`Round::next_import`] found.
#[derive(Debug)]
pub(super) enum NextImport {
    /// An import is outstanding, or the next block is not downloaded yet.
    Wait,
    /// The round's last block is imported: the round is over.
    Done,
    /// Import these (the import is now outstanding).
    Blocks(Vec<Block>),
}

/// One sync round (see the module docs).
#[derive(Debug)]
pub(super) struct Round {
    /// The peer whose chain the round follows: it answers the ancestor search and the
    /// skeleton, and settles disputed gaps.
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
    /// RLP bytes of the bodies stored and not yet handed to an import.
    held_bytes: u64,
    /// Last block of an outstanding import.
    importing: Option<u64>,
    /// Last block of the round.
    end: u64,
    /// Whether the round goes up to the target (else to the last skeleton point).
    with_target: bool,
}

impl Round {
    /// A round following `peer` to its proven head `target`, searching for the common
    /// ancestor at or below `hi` (our head, or the target if lower). With `hi` 0 the
    /// ancestor is genesis: call [`Round::start_skeleton`] at once.
    pub(super) fn new(peer: PeerId, (target, target_hash): (u64, B256), hi: u64) -> Self {
        Self {
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
            held_bytes: 0,
            importing: None,
            end: 0,
            with_target: true,
        }
    }

    /// The peer the round follows.
    pub(super) fn peer(&self) -> PeerId {
        self.peer
    }

    /// The last block of the outstanding import, if any.
    pub(super) fn importing(&self) -> Option<u64> {
        self.importing
    }

    /// Whether the round is downloading gaps and bodies (not searching or waiting for
    /// its skeleton).
    pub(super) fn filling(&self) -> bool {
        matches!(self.phase, Phase::Fill)
    }

    /// Whether the round cannot go on without its peer: before the fill, only it answers;
    /// during the fill, only it can settle a disputed gap.
    pub(super) fn needs_its_peer(&self) -> bool {
        !self.filling() || self.gaps.iter().any(|g| !g.disputed_by.is_empty())
    }

    /// During the ancestor search, the block number whose header to ask the round's
    /// peer next: its head (if ours is higher, ours) first, then halving the range.
    pub(super) fn ancestor_query(&self) -> Option<u64> {
        match self.phase {
            Phase::Ancestor { lo, hi, first } => Some(if first { hi } else { lo + (hi - lo) / 2 }),
            _ => None,
        }
    }

    /// The peer's header at `number` is (`same`) or is not our canonical one. Returns the
    /// common ancestor once the search is over.
    pub(super) fn on_ancestor(&mut self, number: u64, same: bool) -> Option<u64> {
        let Phase::Ancestor { lo, hi, .. } = self.phase else {
            return None;
        };
        let (lo, hi) = if same { (number, hi) } else { (lo, number) };
        if same && number == hi || hi - lo <= 1 {
            return Some(if same && number == hi { hi } else { lo });
        }
        self.phase = Phase::Ancestor {
            lo,
            hi,
            first: false,
        };
        None
    }

    /// The common ancestor is found: the skeleton request to send to the round's peer
    /// (every `span`th header up to `max` points), or `None` when the target is close
    /// enough for one gap (the round goes straight to the fill).
    pub(super) fn start_skeleton(
        &mut self,
        ancestor: u64,
        ancestor_hash: B256,
        span: u64,
        max: u64,
    ) -> Option<GetBlockHeaders> {
        tracing::debug!(target: "sync", ancestor, target = self.target, "common ancestor found");
        self.cursor = ancestor + 1;
        self.gaps.push(Gap {
            start: ancestor + 1,
            parent: ancestor_hash,
            end: 0,
            end_hash: B256::ZERO,
            state: GapState::Pending,
            disputed_by: Vec::new(),
        });
        // Points strictly below the target; the target itself is the last point.
        let below = (self.target - ancestor - 1) / span;
        let points = below.min(max);
        self.with_target = below <= max;
        if points == 0 {
            self.lay_out(Vec::new());
            return None;
        }
        self.phase = Phase::Skeleton;
        Some(GetBlockHeaders {
            origin: BlockId::Number(ancestor + span),
            amount: points,
            skip: span - 1,
            reverse: false,
        })
    }

    /// The skeleton arrived (`span` and `max` as asked). Returns false if it is not the
    /// headers asked for (the peer is to be dropped).
    pub(super) fn on_skeleton(&mut self, headers: &[Header], span: u64, max: u64) -> bool {
        let first = self.cursor;
        let ok = !headers.is_empty()
            && headers
                .iter()
                .enumerate()
                .all(|(i, h)| h.number == first - 1 + span * (i as u64 + 1));
        if !ok {
            return false;
        }
        let all = (self.cursor - 1 + span * headers.len() as u64) + span > self.target
            || headers.len() as u64 == max;
        if !all {
            // A short skeleton: this round ends at its last point, not the target.
            self.with_target = false;
        }
        let points = headers.iter().map(|h| (h.number, h.hash_slow())).collect();
        self.lay_out(points);
        true
    }

    /// Lays out the gaps between the ancestor, `points` and the target.
    fn lay_out(&mut self, mut points: Vec<(u64, B256)>) {
        if self.with_target || points.is_empty() {
            points.push((self.target, self.target_hash));
        }
        let Some(first) = self.gaps.pop() else {
            return;
        };
        let (mut start, mut parent) = (first.start, first.parent);
        for (end, end_hash) in points {
            self.gaps.push(Gap {
                start,
                parent,
                end,
                end_hash,
                state: GapState::Pending,
                disputed_by: Vec::new(),
            });
            (start, parent) = (end + 1, end_hash);
        }
        self.end = start - 1;
        self.phase = Phase::Fill;
    }

    /// The gaps waiting for a peer: (index, last block), for the downloader to find
    /// peers that reach that far.
    pub(super) fn pending_gaps(&self) -> Vec<(usize, u64)> {
        self.gaps
            .iter()
            .enumerate()
            .filter(|(_, g)| g.state == GapState::Pending)
            .map(|(i, g)| (i, g.end))
            .collect()
    }

    /// Gives gap `gap` to one of `candidates` (idle peers that reach its end, least busy
    /// first): the request to send it, now in flight. A disputed gap goes to the round's
    /// peer if idle, else to a peer that did not dispute it.
    pub(super) fn assign_gap(
        &mut self,
        gap: usize,
        candidates: &[PeerId],
    ) -> Option<(PeerId, GetBlockHeaders)> {
        let g = self.gaps.get_mut(gap)?;
        let peer = if g.disputed_by.is_empty() {
            candidates.first().copied()
        } else {
            let undisputed = |p: &&PeerId| !g.disputed_by.contains(p);
            candidates
                .iter()
                .find(|p| **p == self.peer)
                .or_else(|| candidates.iter().find(undisputed))
                .copied()
        }?;
        g.state = GapState::InFlight;
        let req = GetBlockHeaders {
            origin: BlockId::Number(g.start),
            amount: g.end - g.start + 1,
            skip: 0,
            reverse: false,
        };
        Some((peer, req))
    }

    /// `peer` answered the fill of gap `gap` with `headers`.
    pub(super) fn on_fill(&mut self, peer: PeerId, gap: usize, headers: Vec<Header>) -> Verdict {
        let mut v = Verdict::default();
        let Some(g) = self.gaps.get_mut(gap) else {
            return v;
        };
        // Walk the answer from the point below: `prefix` while it links.
        let len = g.end - g.start + 1;
        let mut hashes = Vec::with_capacity(headers.len().min(len as usize));
        let mut prefix = headers.len() as u64 <= len;
        let mut parent = g.parent;
        for (i, h) in headers.iter().enumerate() {
            if !prefix || h.number != g.start + i as u64 || h.parent_hash != parent {
                prefix = false;
                break;
            }
            parent = h.hash_slow();
            hashes.push(parent);
        }
        let short = prefix && (headers.len() as u64) < len;
        let linked = prefix && !short && parent == g.end_hash;
        if short {
            // Empty or cut short: the peer was asked only up to a head it showed.
            g.state = GapState::Pending;
            if peer == self.peer && !g.disputed_by.is_empty() {
                // Another peer's fill does not reach the skeleton peer's point, and the
                // skeleton peer will not show its own: its skeleton is unbacked.
                tracing::debug!(target: "sync", gap = g.start, "skeleton peer withholds a disputed gap");
                v.abort = true;
                v.penalise.push((peer, DisconnectReason::UselessPeer));
            } else {
                v.answer = Some(Answer::Strike);
            }
            return v;
        }
        if !linked {
            g.state = GapState::Pending;
            if peer == self.peer {
                // The round's own peer cannot fill its skeleton: it is the liar.
                tracing::debug!(target: "sync", gap = g.start, "skeleton peer's gap does not link");
                v.abort = true;
                v.penalise.push((peer, DisconnectReason::BreachOfProtocol));
            } else if !g.disputed_by.contains(&peer) {
                g.disputed_by.push(peer);
            }
            return v;
        }
        // A fill that links settles it: the disputers sent a broken gap.
        let liars = std::mem::take(&mut g.disputed_by);
        g.state = GapState::Done;
        for (header, hash) in headers.into_iter().zip(hashes) {
            self.want_bodies.insert(header.number);
            self.blocks.insert(
                header.number,
                Slot {
                    header,
                    hash,
                    header_from: peer,
                    body: None,
                    size: 0,
                    in_flight: false,
                },
            );
        }
        v.answer = Some(Answer::Delivered);
        v.progress = true;
        v.penalise = liars
            .into_iter()
            .map(|p| (p, DisconnectReason::BreachOfProtocol))
            .collect();
        v
    }

    /// The gap of a fill request that got no answer is up for grabs again.
    pub(super) fn requeue_gap(&mut self, gap: usize) {
        if let Some(g) = self.gaps.get_mut(gap)
            && g.state == GapState::InFlight
        {
            g.state = GapState::Pending;
        }
    }

    /// The next bodies to ask for: up to `per_request` wanted blocks, lowest first.
    pub(super) fn bodies_wanted(&self, per_request: usize) -> Vec<u64> {
        self.want_bodies.iter().copied().take(per_request).collect()
    }

    /// RLP bytes of the bodies downloaded and not yet handed to an import (what the
    /// downloader's byte window bounds).
    pub(super) fn held_bytes(&self) -> u64 {
        self.held_bytes
    }

    /// The next block to import.
    pub(super) fn cursor(&self) -> u64 {
        self.cursor
    }

    /// Marks the bodies of `numbers` in flight; their block hashes, to ask for, and
    /// headers, to check the answer against.
    pub(super) fn take_bodies(&mut self, numbers: &[u64]) -> (Vec<B256>, Vec<Header>) {
        let mut hashes = Vec::with_capacity(numbers.len());
        let mut headers = Vec::with_capacity(numbers.len());
        for n in numbers {
            self.want_bodies.remove(n);
            if let Some(s) = self.blocks.get_mut(n) {
                s.in_flight = true;
                hashes.push(s.hash);
                headers.push(s.header.clone());
            }
        }
        (hashes, headers)
    }

    /// `peer` answered the bodies of `numbers` (in order, perhaps fewer). With
    /// `matched`, the first that many were found to match their headers (the ones
    /// [`Round::take_bodies`] gave) and the next one not; else each is checked here.
    pub(super) fn on_bodies(
        &mut self,
        peer: PeerId,
        numbers: &[u64],
        bodies: Vec<Body>,
        matched: Option<usize>,
    ) -> Verdict {
        let mut bad = false;
        let mut stored = 0;
        let mut bytes = 0u64;
        // Whether the peer claimed these blocks: it leads the round (the gaps link to its
        // skeleton, so they are its chain) or sent some of their headers. A peer on
        // another fork may lack them without lying.
        let mut claimed = peer == self.peer;
        let got = bodies.len();
        let mut bodies = bodies.into_iter().enumerate();
        for n in numbers {
            let Some(slot) = self.blocks.get_mut(n) else {
                continue;
            };
            claimed |= slot.header_from == peer;
            slot.in_flight = false;
            match bodies.next() {
                Some((i, body)) if !bad => {
                    let ok = match matched {
                        Some(m) => i < m,
                        None => validate::body(&slot.header, &body).is_ok(),
                    };
                    if ok {
                        slot.size = alloy_rlp::Encodable::length(&body) as u64;
                        bytes += slot.size;
                        slot.body = Some(body);
                        stored += 1;
                    } else {
                        bad = true;
                        self.want_bodies.insert(*n);
                    }
                }
                _ => {
                    self.want_bodies.insert(*n);
                }
            }
        }
        self.held_bytes += bytes;
        let mut v = Verdict {
            progress: stored > 0,
            bodies: (stored, bytes),
            ..Verdict::default()
        };
        if bad {
            tracing::debug!(target: "sync", peer = %rlpx::peer::short_id(&peer), "body does not match its header");
            v.penalise.push((peer, DisconnectReason::BreachOfProtocol));
        } else if got == 0 && claimed {
            // Fewer than asked is the 2 MiB soft limit; none is withholding.
            v.answer = Some(Answer::Strike);
        } else if got == 0 {
            v.answer = Some(Answer::Pause);
        } else {
            v.answer = Some(Answer::Delivered);
        }
        v
    }

    /// The bodies of a request that got no answer are wanted again.
    pub(super) fn requeue_bodies(&mut self, numbers: Vec<u64>) {
        for n in numbers {
            if let Some(s) = self.blocks.get_mut(&n)
                && s.in_flight
            {
                s.in_flight = false;
                self.want_bodies.insert(n);
            }
        }
    }

    /// The next batch to import, in order from the cursor: at most `batch` blocks, and
    /// no more once their bodies reach `max_bytes` (RLP; at least one block).
    pub(super) fn next_import(&mut self, batch: usize, max_bytes: u64) -> NextImport {
        if self.importing.is_some() {
            return NextImport::Wait;
        }
        if self.cursor > self.end {
            tracing::debug!(target: "sync", head = self.end, "sync round done");
            return NextImport::Done;
        }
        let mut blocks = Vec::new();
        let mut n = self.cursor;
        let mut bytes = 0u64;
        while blocks.len() < batch && bytes < max_bytes {
            // Moved, not copied, into the import: the slot keeps its hash and sender
            // (all a rejected block's slot is asked for), and whatever the import's
            // result, these slots are not downloaded again (imported, or the round is
            // dropped).
            let Some(slot) = self.blocks.get_mut(&n) else {
                break;
            };
            let Some(body) = slot.body.take() else {
                break;
            };
            self.held_bytes = self.held_bytes.saturating_sub(slot.size);
            bytes += slot.size;
            blocks.push(Block {
                header: std::mem::take(&mut slot.header),
                body,
            });
            n += 1;
        }
        if blocks.is_empty() {
            return NextImport::Wait;
        }
        self.importing = Some(n - 1);
        NextImport::Blocks(blocks)
    }

    /// The outstanding import finished with `result`; `None` if none was outstanding.
    pub(super) fn on_imported(&mut self, result: &Imported) -> Option<Verdict> {
        let last = self.importing.take()?;
        let mut v = Verdict::default();
        match result {
            Imported::Ok { .. } => {
                for n in self.cursor..=last {
                    self.blocks.remove(&n);
                }
                self.cursor = last + 1;
                v.progress = true;
            }
            Imported::Bad { hash } => {
                // Whoever sent the header the store rejected (its body matched it).
                let culprit = self.blocks.values().find(|s| s.hash == *hash);
                v.abort = true;
                v.penalise = culprit
                    .map(|s| (s.header_from, DisconnectReason::BreachOfProtocol))
                    .into_iter()
                    .collect();
            }
            Imported::Failed => v.abort = true,
        }
        Some(v)
    }
}
