//! One sync round's state (the gaps between skeleton points, the downloaded blocks,
//! the import cursor) and the steps of its phases: ancestor search, skeleton, gap fill,
//! bodies and ordered import. The [`Downloader`] in [`super::downloader`] owns the
//! round, the peers and the requests.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use alloy_consensus::Header;
use alloy_primitives::B256;
use protocols::eth::{BlockId, GetBlockHeaders, PeerId};
use rlpx::DisconnectReason;

use super::downloader::{Action, Downloader, Kind, Local};
use crate::chain::{Block, Body, validate};

#[derive(Debug)]
pub(super) enum Phase {
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
pub(super) enum GapState {
    Pending,
    InFlight,
    Done,
}

#[derive(Debug)]
pub(super) struct Gap {
    /// First block of the gap.
    pub(super) start: u64,
    /// The point below (`start - 1`).
    pub(super) parent: B256,
    /// The point above (`end`, the last block of the gap).
    pub(super) end: u64,
    pub(super) end_hash: B256,
    pub(super) state: GapState,
    /// Peers other than the skeleton's whose fill did not link (each at most once, so
    /// at most the peers connected): penalised if another fill links.
    pub(super) disputed_by: Vec<PeerId>,
}

#[derive(Debug)]
pub(super) struct Slot {
    pub(super) header: Header,
    pub(super) hash: B256,
    pub(super) header_from: PeerId,
    pub(super) body: Option<Body>,
    pub(super) in_flight: bool,
}

#[derive(Debug)]
pub(super) struct Round {
    pub(super) peer: PeerId,
    pub(super) target: u64,
    pub(super) target_hash: B256,
    pub(super) phase: Phase,
    pub(super) gaps: Vec<Gap>,
    pub(super) blocks: BTreeMap<u64, Slot>,
    /// Numbers whose header is known and body is needed, not in flight.
    pub(super) want_bodies: BTreeSet<u64>,
    /// Next block to import.
    pub(super) cursor: u64,
    /// Last block of an outstanding import.
    pub(super) importing: Option<u64>,
    /// Last block of the round.
    pub(super) end: u64,
    /// Whether the round goes up to the target (else to the last skeleton point).
    pub(super) with_target: bool,
}

impl<L: Local> Downloader<L> {
    pub(super) fn ancestor_step(
        &mut self,
        peer: PeerId,
        number: u64,
        headers: Vec<Header>,
        now: Instant,
    ) {
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

    pub(super) fn start_skeleton(&mut self, ancestor: u64, ancestor_hash: B256, now: Instant) {
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
            disputed_by: Vec::new(),
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

    pub(super) fn skeleton_arrived(&mut self, peer: PeerId, headers: Vec<Header>, now: Instant) {
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
    pub(super) fn finish_skeleton(&mut self, mut points: Vec<(u64, B256)>, _now: Instant) {
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
                disputed_by: Vec::new(),
            });
            (start, parent) = (end + 1, end_hash);
        }
        round.end = start - 1;
        round.phase = Phase::Fill;
    }

    pub(super) fn fill_arrived(
        &mut self,
        peer: PeerId,
        gap: usize,
        headers: Vec<Header>,
        now: Instant,
    ) {
        let Some(round) = self.round.as_mut() else {
            return;
        };
        let round_peer = round.peer;
        let Some(g) = round.gaps.get_mut(gap) else {
            return;
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
            if peer == round_peer && !g.disputed_by.is_empty() {
                // Another peer's fill does not reach the skeleton peer's point, and the
                // skeleton peer will not show its own: its skeleton is unbacked.
                tracing::debug!(target: "sync", gap = g.start, "skeleton peer withholds a disputed gap");
                self.abort(now);
                self.penalise(peer, DisconnectReason::UselessPeer, now);
            } else {
                self.strike(peer, now);
            }
            return;
        }
        if !linked {
            g.state = GapState::Pending;
            if peer == round_peer {
                // The round's own peer cannot fill its skeleton: it is the liar.
                tracing::debug!(target: "sync", gap = g.start, "skeleton peer's gap does not link");
                self.abort(now);
                self.penalise(peer, DisconnectReason::BreachOfProtocol, now);
            } else if !g.disputed_by.contains(&peer) {
                g.disputed_by.push(peer);
            }
            return;
        }
        let liars = std::mem::take(&mut g.disputed_by);
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
        self.delivered(&peer);
        self.progress(now);
        for liar in liars {
            // A fill that links settles it: the disputers sent a broken gap.
            self.penalise(liar, DisconnectReason::BreachOfProtocol, now);
        }
    }

    pub(super) fn bodies_arrived(
        &mut self,
        peer: PeerId,
        numbers: Vec<u64>,
        bodies: Vec<Body>,
        now: Instant,
    ) {
        let Some(round) = self.round.as_mut() else {
            return;
        };
        let mut bad = false;
        let mut stored = 0;
        // Whether the peer claimed these blocks: it leads the round (the gaps link to its
        // skeleton, so they are its chain) or sent some of their headers. A peer on
        // another fork may lack them without lying.
        let mut claimed = peer == round.peer;
        let got = bodies.len();
        let mut bodies = bodies.into_iter();
        for n in &numbers {
            let Some(slot) = round.blocks.get_mut(n) else {
                continue;
            };
            claimed |= slot.header_from == peer;
            slot.in_flight = false;
            match bodies.next() {
                Some(body) if !bad => {
                    if validate::body(&slot.header, &body).is_ok() {
                        slot.body = Some(body);
                        stored += 1;
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
        if stored > 0 {
            self.progress(now);
        }
        if bad {
            tracing::debug!(target: "sync", peer = %rlpx::peer::short_id(&peer), "body does not match its header");
            self.penalise(peer, DisconnectReason::BreachOfProtocol, now);
        } else if got == 0 && claimed {
            // Fewer than asked is the 2 MiB soft limit; none is withholding.
            self.strike(peer, now);
        } else if got == 0 {
            self.pause(&peer, now);
        } else {
            self.delivered(&peer);
        }
    }

    /// Fill phase: hands out gaps and bodies to idle peers and imports what is ready.
    pub(super) fn schedule_fill(&mut self, now: Instant) {
        self.assign_gaps(now);
        self.assign_bodies(now);
        self.import_ready(now);
    }

    pub(super) fn assign_gaps(&mut self, now: Instant) {
        let Some(round) = self.round.as_ref() else {
            return;
        };
        let pending: Vec<(usize, u64)> = round
            .gaps
            .iter()
            .enumerate()
            .filter(|(_, g)| g.state == GapState::Pending)
            .map(|(i, g)| (i, g.end))
            .collect();
        let round_peer = round.peer;
        for (i, end) in pending {
            let candidates = self.idle_peers(end, now);
            let Some(g) = self.round.as_ref().and_then(|r| r.gaps.get(i)) else {
                return;
            };
            let peer = if g.disputed_by.is_empty() {
                candidates.first().copied()
            } else {
                // The skeleton's peer settles it, or else any peer that did not dispute it.
                let undisputed = |p: &&PeerId| !g.disputed_by.contains(p);
                candidates
                    .iter()
                    .find(|p| **p == round_peer)
                    .or_else(|| candidates.iter().find(undisputed))
                    .copied()
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

    pub(super) fn assign_bodies(&mut self, now: Instant) {
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
            let id = self.start_request(peer, Kind::Bodies { numbers: chunk }, now);
            self.actions.push_back(Action::Bodies { id, peer, hashes });
        }
    }

    pub(super) fn import_ready(&mut self, now: Instant) {
        let Some(round) = self.round.as_mut() else {
            return;
        };
        if round.importing.is_some() {
            return;
        }
        if round.cursor > round.end {
            tracing::debug!(target: "sync", head = round.end, "sync round done");
            self.round = None;
            self.stall = None;
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
