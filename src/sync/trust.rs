//! What the downloader believes of a peer, and what it costs the peer to be wrong
//! (issue 11: one peer must not stall catch-up sync):
//!
//! - **Claimed heads are proven before they are used.** A head from a Status, `NewBlock`,
//!   `NewBlockHashes` or `BlockRangeUpdate` is only a claim: before a peer can lead a
//!   round or be given work up to its head, it is asked for that header by hash (a
//!   *probe*), which must be the header with that hash and the claimed number. A peer that
//!   cannot show it is dropped (`UselessPeer`); one that shows another header is dropped
//!   for a breach. Anyone can make up a header at `u64::MAX`, so a shown head is still
//!   only believed as far as the peer's headers link to it: the rules below settle the rest.
//! - **Withholding counts against a peer.** Work is only handed out up to a peer's proven
//!   head, so an empty or short answer is for a range it claimed: a strike (and a pause);
//!   [`MAX_STRIKES`] in a row drop it (`UselessPeer`). A full answer clears its strikes.
//! - **A round must progress.** If no gap is filled, no body stored and no batch imported
//!   for [`super::Config::stall_timeout`] while a peer leads the round (across the
//!   abandoned rounds it leads in a row), that peer is dropped (`UselessPeer`) and the
//!   round starts over with the others. The ancestor search and the skeleton are not
//!   progress: they are one request each in the common case (a binary search of at most
//!   64 after a reorg), and a peer that makes its rounds fail after them must not reset
//!   the clock.
//!
//! Disputed gaps (a fill that does not link to the skeleton) are settled by the round's
//! peer or any peer that did not dispute them ([`super::round`]).

use std::time::Instant;

use alloy_consensus::Header;
use alloy_primitives::B256;
use protocols::eth::{BlockId, GetBlockHeaders, PeerId};
use rlpx::DisconnectReason;

use super::downloader::{Downloader, Kind, Local};

/// Empty or short answers in a row, for ranges a peer claimed, before it is dropped.
/// Three: an honest peer answers a range at or below a head it has shown in full
/// (go-ethereum serves up to 1,024 headers, and at least one body under its 2 MiB soft
/// limit), but a reorg racing a request can cut one answer short; three in a row is a
/// peer withholding. With the pause after each strike ([`super::Config::retry_delay`]),
/// a withholding peer costs about three requests and two seconds.
pub const MAX_STRIKES: u32 = 3;

impl<L: Local> Downloader<L> {
    /// Asks peers whose claimed head is not proven for its header. Heads without a
    /// number (eth/68 Status) are always asked, to learn it; others only when `all`
    /// (a round is due or under way) and above our head: until then a claim costs nothing,
    /// and block propagation is what follows heads a few blocks ahead.
    pub(super) fn probe_heads(&mut self, all: bool, now: Instant) {
        let (head, _) = self.local.head();
        let wanted: Vec<(PeerId, B256, Option<u64>)> = self
            .peers
            .iter()
            .filter(|(_, p)| p.claim_proven().is_none())
            .filter(|(_, p)| match p.head.number {
                None => true,
                Some(n) => all && n > head,
            })
            .filter(|(_, p)| p.idle_until.is_none_or(|t| t <= now))
            .filter(|(_, p)| p.pacer.ready(now))
            .filter(|(id, _)| !self.probing(id))
            .filter(|(id, _)| self.in_flight(id) < self.config.max_in_flight)
            .map(|(id, p)| (*id, p.head.hash, p.head.number))
            .collect();
        for (peer, hash, number) in wanted {
            let req = GetBlockHeaders {
                origin: BlockId::Hash(hash),
                amount: 1,
                skip: 0,
                reverse: false,
            };
            self.send_headers(peer, req, Kind::Probe { hash, number }, now);
        }
    }

    fn probing(&self, peer: &PeerId) -> bool {
        self.requests
            .values()
            .any(|r| &r.peer == peer && matches!(r.kind, Kind::Probe { .. }))
    }

    /// The answer to a probe for the head `hash` claimed at `number`.
    pub(super) fn probe_arrived(
        &mut self,
        peer: PeerId,
        hash: B256,
        number: Option<u64>,
        headers: Vec<Header>,
        now: Instant,
    ) {
        let short = rlpx::peer::short_id(&peer);
        let h = match headers.as_slice() {
            [] => {
                // A peer that cannot show its own head is no use for syncing.
                tracing::debug!(target: "sync", peer = %short, "peer cannot show its claimed head");
                return self.penalise(peer, DisconnectReason::UselessPeer, now);
            }
            [h] if h.hash_slow() == hash && number.is_none_or(|n| n == h.number) => h,
            _ => {
                // Asked by hash for one header: anything else is provably not its head.
                tracing::debug!(target: "sync", peer = %short, "peer showed another header for its head");
                return self.penalise(peer, DisconnectReason::BreachOfProtocol, now);
            }
        };
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        p.proven = Some((h.number, hash));
        if p.head.hash == hash && p.head.number.is_none() {
            p.head.number = Some(h.number);
        }
        self.refresh_highest();
    }

    /// The highest head a connected peer has shown (a dropped liar's goes with it).
    pub(super) fn refresh_highest(&mut self) {
        let shown = self.peers.values().filter_map(|p| p.proven).map(|(n, _)| n);
        self.status.highest = shown.fold(self.status.current, u64::max);
    }

    /// `peer` answered empty or short for a range it claimed.
    pub(super) fn strike(&mut self, peer: PeerId, now: Instant) {
        let pause = now + self.config.retry_delay;
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        p.strikes += 1;
        p.idle_until = Some(pause);
        let strikes = p.strikes;
        tracing::debug!(target: "sync", peer = %rlpx::peer::short_id(&peer), strikes, "empty or short answer");
        if strikes >= MAX_STRIKES {
            self.penalise(peer, DisconnectReason::UselessPeer, now);
        }
    }

    /// `peer` answered in full: its strikes are forgiven.
    pub(super) fn delivered(&mut self, peer: &PeerId) {
        if let Some(p) = self.peers.get_mut(peer) {
            p.strikes = 0;
        }
    }

    /// `peer` could not take the request (busy, or leaving): no fault, but no new work
    /// for a while, so a busy peer is not asked again at once and in a loop.
    pub(super) fn pause(&mut self, peer: &PeerId, now: Instant) {
        let until = now + self.config.retry_delay;
        if let Some(p) = self.peers.get_mut(peer) {
            p.idle_until = Some(until);
        }
    }

    /// The round moved forward (a gap filled, bodies stored, blocks imported).
    pub(super) fn progress(&mut self, now: Instant) {
        if let Some((_, since)) = self.stall.as_mut() {
            *since = now;
        }
    }

    /// A round led by `peer` is to start: its stall clock keeps running if it led the
    /// last one too and that one was abandoned (a peer cannot reset it by making its
    /// rounds fail), and starts otherwise. A round that ends stops the clock. If the
    /// clock has run out, the peer is dropped instead and `false` returned.
    pub(super) fn stall_clock_for(&mut self, peer: PeerId, now: Instant) -> bool {
        match self.stall {
            Some((p, since)) if p == peer => {
                if now < since + self.config.stall_timeout {
                    return true;
                }
                tracing::info!(target: "sync", peer = %rlpx::peer::short_id(&peer), "sync rounds made no progress");
                self.stall = None;
                self.penalise(peer, DisconnectReason::UselessPeer, now);
                false
            }
            _ => {
                self.stall = Some((peer, now));
                true
            }
        }
    }

    /// When the stall clock runs out: only while a round is under way (between rounds we
    /// may be waiting for the grace or for heads to be shown, which is no peer's stall),
    /// and not while an import is outstanding (that is our own work).
    pub(super) fn stall_deadline(&self) -> Option<Instant> {
        if self.round.as_ref().is_none_or(|r| r.importing().is_some()) {
            return None;
        }
        self.stall.map(|(_, t)| t + self.config.stall_timeout)
    }

    /// Drops the round and its peer if the stall clock ran out at `now`.
    pub(super) fn check_stall(&mut self, now: Instant) {
        let Some(deadline) = self.stall_deadline() else {
            return;
        };
        let Some((peer, _)) = self.stall.filter(|_| deadline <= now) else {
            return;
        };
        tracing::info!(target: "sync", peer = %rlpx::peer::short_id(&peer), "sync round made no progress");
        self.stall = None;
        self.abort(now);
        self.penalise(peer, DisconnectReason::UselessPeer, now);
    }
}
