//! Block propagation as a sans-IO state machine.
//!
//! Inputs: block gossip ([`Core::on_block`], [`Core::on_announcement`]), the answers to
//! its fetches ([`Core::on_headers`], [`Core::on_bodies`]), import results
//! ([`Core::on_imported`], also for blocks imported elsewhere) and
//! [`Core::handle_timeout`] at `now`. Outputs: [`Core::poll_action`] ([`Action`]s to
//! carry out) and [`Core::next_timeout`]. After every input the caller drains
//! `poll_action`; at most one [`Action::Import`] is outstanding, and the next comes once
//! its result is reported.
//!
//! A gossiped block passes the [`Gossip`] policy first; then it is imported if its parent
//! is stored (or being imported), else queued (see [`super::queue`]) and the gap fetched
//! from its sender. An announced block up to [`MAX_FETCH_AHEAD`] ahead is fetched from
//! its announcer: headers back from it, then their bodies; failing that, from the next
//! peer that announced it. An announcer that does not answer in time, or denies having
//! the block it announced, is penalised (`UselessPeer`); one whose headers do not link
//! (`BreachOfProtocol`). Nothing is relayed before the store accepted it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy_consensus::Header;
use alloy_primitives::B256;
use protocols::eth::{self, BlockId, GetBlockHeaders, PeerId};
use rlpx::DisconnectReason;

use super::queue::Queue;
use super::{
    Gossip, MAX_ANNOUNCERS, MAX_FETCH_AHEAD, MAX_FETCHING, MAX_FETCHING_PER_PEER, Verdict,
};
use crate::chain::{Block, Body};
/// Why a fetch request got no usable answer: the same as sync's ([`Failure::Timeout`]
/// penalises the announcer, [`Failure::Gone`] moves on to the next one).
pub use crate::sync::downloader::Failure;

/// Time an announcer has to answer one fetch request before it is penalised: above eth's
/// own deadline for a request (twice its 10 s `request_timeout`), which normally reports
/// first; this one holds when nothing reports at all.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(25);

/// Blocks remembered in the received counter (oldest forgotten).
const COUNTER_LIMIT: usize = 4096;

/// The local chain, read-only: what the core checks blocks against.
pub trait Local {
    /// Our head's number.
    fn head_number(&self) -> u64;
    /// Whether block `hash` is stored.
    fn has_block(&self, hash: &B256) -> bool;
}

/// What the caller is asked to do.
#[derive(Debug)]
pub enum Action {
    /// Ask `peer` for headers (`req`: back from the announced block `hash`); report with
    /// [`Core::on_headers`].
    FetchHeaders {
        /// To whom.
        peer: PeerId,
        /// The announced block being fetched.
        hash: B256,
        /// The request.
        req: GetBlockHeaders,
    },
    /// Ask `peer` for the bodies of `hashes` (for the fetch of `hash`); report with
    /// [`Core::on_bodies`].
    FetchBodies {
        /// To whom.
        peer: PeerId,
        /// The announced block being fetched.
        hash: B256,
        /// The blocks, oldest first.
        hashes: Vec<B256>,
    },
    /// Import `block` (its parent is stored); report with [`Core::on_imported`].
    Import {
        /// Who sent it.
        from: Option<PeerId>,
        /// Its hash.
        hash: B256,
        /// The block.
        block: Box<Block>,
    },
    /// Send the stored `block` on: in full to √n eth/68 peers that lack it, by hash to
    /// the others, never back to `except` (its sender).
    Relay {
        /// The block.
        block: Arc<Block>,
        /// Its hash.
        hash: B256,
        /// Who sent it.
        except: Option<PeerId>,
    },
    /// Disconnect the peer with this reason (`BreachOfProtocol` and `UselessPeer` make the
    /// server ban it for a while).
    Penalise {
        /// The peer.
        peer: PeerId,
        /// Why.
        reason: DisconnectReason,
    },
}

/// The result of an import, reported with [`Core::on_imported`].
#[derive(Debug, Clone)]
pub enum ImportResult {
    /// Stored by this import: relayed (where the policy relays), its children imported.
    Stored(Arc<Block>),
    /// Stored already (by us or by sync): its children are imported.
    Known,
    /// The store refused it; `permanent`: it can never become valid (a malformed block,
    /// not our clock, reorg depth or side-chain budget).
    Bad {
        /// Whether it is invalid for good.
        permanent: bool,
    },
    /// The store failed, or the parent is gone: nobody's fault.
    Failed,
}

/// Where one fetch is.
#[derive(Debug)]
enum Stage {
    /// Headers asked of `peer`.
    Headers { peer: PeerId, deadline: Instant },
    /// Bodies asked of `peer` for these headers (oldest first).
    Bodies {
        peer: PeerId,
        deadline: Instant,
        headers: Vec<Header>,
    },
    /// Delivered; the announced block waits for its import.
    Importing,
}

/// One announced block being fetched.
#[derive(Debug)]
struct Fetch {
    number: u64,
    /// Who announced it first: the fetch counts against its quota.
    started_by: PeerId,
    /// Announcers not asked yet, in order of announcement.
    waiting: Vec<PeerId>,
    /// Announcers asked (the last one is being asked).
    tried: Vec<PeerId>,
    stage: Stage,
}

/// A block waiting for its import (its parent stored or before it in line).
#[derive(Debug)]
struct Ready {
    from: Option<PeerId>,
    hash: B256,
    block: Box<Block>,
}

/// The propagation state machine (see the module docs).
#[derive(Debug)]
pub struct Core<L> {
    local: L,
    gossip: Gossip,
    queue: Queue,
    fetches: HashMap<B256, Fetch>,
    /// Blocks to import, in order.
    ready: VecDeque<Ready>,
    /// The hashes in `ready` and the one being imported.
    pending: HashSet<B256>,
    /// The block being imported.
    importing: Option<B256>,
    actions: VecDeque<Action>,
    /// NewBlock messages accepted per block hash.
    received: HashMap<B256, u32>,
}

impl<L: Local> Core<L> {
    /// A core over `local`, taking blocks from peers as `gossip` allows.
    pub fn new(local: L, gossip: Gossip) -> Self {
        Self {
            local,
            gossip,
            queue: Queue::default(),
            fetches: HashMap::new(),
            ready: VecDeque::new(),
            pending: HashSet::new(),
            importing: None,
            actions: VecDeque::new(),
            received: HashMap::new(),
        }
    }

    /// The local chain view.
    pub fn local(&self) -> &L {
        &self.local
    }

    /// Adds `peer` to the sources of [`Gossip::From`] (no effect under
    /// [`Gossip::Refused`]).
    pub fn allow(&mut self, peer: PeerId) {
        if let Gossip::From(set) = &mut self.gossip {
            set.insert(peer);
        }
    }

    /// What the policy says of block gossip from `peer`.
    pub fn verdict(&self, peer: &PeerId) -> Verdict {
        match &self.gossip {
            Gossip::Refused => Verdict::Disconnect,
            Gossip::From(set) if set.contains(peer) => Verdict::Accept,
            Gossip::From(_) => Verdict::Ignore,
        }
    }

    /// Whether blocks are relayed at all (not under [`Gossip::Refused`]).
    pub fn relays(&self) -> bool {
        !matches!(self.gossip, Gossip::Refused)
    }

    /// How many NewBlock messages carrying `hash` were accepted.
    pub fn full_blocks_received(&self, hash: &B256) -> u32 {
        self.received.get(hash).copied().unwrap_or(0)
    }

    /// Announced blocks being fetched.
    pub fn fetching(&self) -> usize {
        self.fetches.len()
    }

    /// Blocks waiting for their parent.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Estimated memory of the blocks waiting for their parent ([`super::block_memory`]).
    pub fn queued_bytes(&self) -> usize {
        self.queue.bytes()
    }

    /// The next thing to do, if any.
    pub fn poll_action(&mut self) -> Option<Action> {
        if let Some(a) = self.actions.pop_front() {
            return Some(a);
        }
        if self.importing.is_some() {
            return None;
        }
        let Ready { from, hash, block } = self.ready.pop_front()?;
        self.importing = Some(hash);
        Some(Action::Import { from, hash, block })
    }

    /// When [`Core::handle_timeout`] is due next.
    pub fn next_timeout(&self) -> Option<Instant> {
        self.fetches
            .values()
            .filter_map(|f| match f.stage {
                Stage::Headers { deadline, .. } | Stage::Bodies { deadline, .. } => Some(deadline),
                Stage::Importing => None,
            })
            .min()
    }

    /// Fetches whose announcer did not answer by `now`: it is penalised (`UselessPeer`,
    /// an announcement not honoured) and the next announcer asked.
    pub fn handle_timeout(&mut self, now: Instant) {
        let expired: Vec<(B256, PeerId)> = self
            .fetches
            .iter()
            .filter_map(|(hash, f)| match f.stage {
                Stage::Headers { peer, deadline } | Stage::Bodies { peer, deadline, .. }
                    if deadline <= now =>
                {
                    Some((*hash, peer))
                }
                _ => None,
            })
            .collect();
        for (hash, peer) in expired {
            tracing::debug!(target: "sync", peer = %rlpx::peer::short_id(&peer), %hash, "announced block not served in time");
            self.penalise(peer, DisconnectReason::UselessPeer);
            self.next_announcer(hash, now);
        }
    }

    /// A peer sent a full block (NewBlock). `held` is eth's count of its bytes, kept
    /// while the block waits in the queue.
    pub fn on_block(&mut self, peer: PeerId, block: Block, held: eth::Held, now: Instant) {
        if !self.admit(peer) {
            return;
        }
        let hash = block.header.hash_slow();
        if self.received.len() >= COUNTER_LIMIT && !self.received.contains_key(&hash) {
            self.received.clear();
        }
        *self.received.entry(hash).or_default() += 1;
        self.accept(Some(peer), hash, block, held, true, now);
    }

    /// A peer announced block `hash` number `number` (NewBlockHashes).
    pub fn on_announcement(&mut self, peer: PeerId, hash: B256, number: u64, now: Instant) {
        if self.admit(peer) {
            self.announce(peer, hash, number, now);
        }
    }

    /// The answer to [`Action::FetchHeaders`].
    pub fn on_headers(
        &mut self,
        peer: PeerId,
        hash: B256,
        result: Result<Vec<Header>, Failure>,
        now: Instant,
    ) {
        let Some(f) = self.fetches.get(&hash) else {
            return;
        };
        if !matches!(f.stage, Stage::Headers { peer: p, .. } if p == peer) {
            return; // late: this peer's turn is over
        }
        let number = f.number;
        let mut headers = match result {
            Ok(h) if h.is_empty() => {
                // It announced (or sent) this block and now denies having it.
                self.penalise(peer, DisconnectReason::UselessPeer);
                return self.next_announcer(hash, now);
            }
            Ok(h) => h,
            Err(failure) => return self.failed(peer, hash, failure, now),
        };
        // Newest first: the announced block, then each one's parent, no more than asked.
        let mut expected = (hash, number);
        let linked = headers.len() as u64 <= MAX_FETCH_AHEAD
            && headers.iter().all(|h| {
                let ok = (h.hash_slow(), h.number) == expected;
                expected = (h.parent_hash, h.number.saturating_sub(1));
                ok
            });
        if !linked {
            self.penalise(peer, DisconnectReason::BreachOfProtocol);
            return self.next_announcer(hash, now);
        }
        headers.reverse();
        // Blocks we have need no body (the oldest ones, if our head moved meanwhile).
        headers.retain(|h| !self.local.has_block(&h.hash_slow()));
        if headers.is_empty() {
            return self.finish(hash);
        }
        let hashes = headers.iter().map(|h| h.hash_slow()).collect();
        self.actions
            .push_back(Action::FetchBodies { peer, hash, hashes });
        if let Some(f) = self.fetches.get_mut(&hash) {
            f.stage = Stage::Bodies {
                peer,
                deadline: now + FETCH_TIMEOUT,
                headers,
            };
        }
    }

    /// The answer to [`Action::FetchBodies`]. The blocks go the way of gossiped ones
    /// (without fetching their missing parents again: that would loop).
    pub fn on_bodies(
        &mut self,
        peer: PeerId,
        hash: B256,
        result: Result<Vec<Body>, Failure>,
        now: Instant,
    ) {
        let Some(f) = self.fetches.get_mut(&hash) else {
            return;
        };
        if !matches!(f.stage, Stage::Bodies { peer: p, .. } if p == peer) {
            return;
        }
        let bodies = match result {
            Ok(b) => b,
            Err(failure) => return self.failed(peer, hash, failure, now),
        };
        let Stage::Bodies { headers, .. } = std::mem::replace(&mut f.stage, Stage::Importing)
        else {
            return;
        };
        if bodies.len() != headers.len() {
            return self.next_announcer(hash, now);
        }
        for (header, body) in headers.into_iter().zip(bodies) {
            let h = header.hash_slow();
            let block = Block { header, body };
            self.accept(Some(peer), h, block, eth::Held::default(), false, now);
        }
        if self.pending.contains(&hash) {
            // Done when its import is reported.
        } else if self.local.has_block(&hash) {
            self.finish(hash);
        } else {
            // Queued or dropped: it does not connect within reach of this announcer.
            self.next_announcer(hash, now);
        }
    }

    /// Block `hash` number `number` from `from` was imported: the result of an
    /// [`Action::Import`], or of an import done elsewhere (a local block; one stored by
    /// sync, reported as [`ImportResult::Known`]), whose queued children then follow it.
    pub fn on_imported(
        &mut self,
        from: Option<PeerId>,
        hash: B256,
        number: u64,
        result: ImportResult,
        now: Instant,
    ) {
        if self.importing == Some(hash) {
            self.importing = None;
            self.pending.remove(&hash);
        }
        match result {
            ImportResult::Stored(block) => {
                if self.relays() {
                    self.actions.push_back(Action::Relay {
                        block,
                        hash,
                        except: from,
                    });
                }
                self.stored(hash, number);
            }
            ImportResult::Known => self.stored(hash, number),
            ImportResult::Bad { permanent } => {
                if let Some(peer) = from {
                    let why = if permanent {
                        DisconnectReason::BreachOfProtocol
                    } else {
                        // Another fork, a clock far ahead, or our side budget full: not
                        // proof of malice, but nothing to keep the peer for.
                        DisconnectReason::UselessPeer
                    };
                    self.penalise(peer, why);
                }
                self.unstored(hash, true, now);
            }
            ImportResult::Failed => self.unstored(hash, false, now),
        }
    }

    /// Applies the policy to `peer`'s gossip; true when it is to be handled.
    fn admit(&mut self, peer: PeerId) -> bool {
        match self.verdict(&peer) {
            Verdict::Accept => true,
            Verdict::Ignore => {
                tracing::trace!(target: "sync", peer = %rlpx::peer::short_id(&peer), "block gossip from a peer that is no source ignored");
                false
            }
            Verdict::Disconnect => {
                tracing::debug!(target: "sync", peer = %rlpx::peer::short_id(&peer), "block gossip on a network without it: disconnecting");
                self.penalise(peer, DisconnectReason::SubprotocolError);
                false
            }
        }
    }

    fn penalise(&mut self, peer: PeerId, reason: DisconnectReason) {
        self.actions.push_back(Action::Penalise { peer, reason });
    }

    /// A block after the policy: lined up for import when its parent is stored or
    /// lined up before it; else queued, and (`fetch_missing`) the gap fetched from its
    /// sender.
    fn accept(
        &mut self,
        from: Option<PeerId>,
        hash: B256,
        block: Block,
        held: eth::Held,
        fetch_missing: bool,
        now: Instant,
    ) {
        if self.pending.contains(&hash) || self.local.has_block(&hash) {
            return;
        }
        let parent = block.header.parent_hash;
        let number = block.header.number;
        if self.pending.contains(&parent) || self.local.has_block(&parent) {
            self.queue.remove(&(number, hash));
            self.pending.insert(hash);
            self.ready.push_back(Ready {
                from,
                hash,
                block: Box::new(block),
            });
            return;
        }
        // A gap of a few blocks is fetched from the sender, a bigger one left to sync.
        let head = self.local.head_number();
        self.queue.insert(from, hash, block, held, head);
        if let Some(peer) = from.filter(|_| fetch_missing) {
            self.announce(peer, hash, number, now);
        }
    }

    /// Starts fetching an announced block, or remembers `peer` as another announcer.
    fn announce(&mut self, peer: PeerId, hash: B256, number: u64, now: Instant) {
        let head = self.local.head_number();
        if number <= head || number > head.saturating_add(MAX_FETCH_AHEAD) {
            return;
        }
        if let Some(f) = self.fetches.get_mut(&hash) {
            let known = f.waiting.contains(&peer) || f.tried.contains(&peer);
            if !known && f.waiting.len() + f.tried.len() < MAX_ANNOUNCERS {
                f.waiting.push(peer);
            }
            return;
        }
        if self.pending.contains(&hash) || self.local.has_block(&hash) {
            return;
        }
        let started = self
            .fetches
            .values()
            .filter(|f| f.started_by == peer)
            .count();
        if self.fetches.len() >= MAX_FETCHING || started >= MAX_FETCHING_PER_PEER {
            return;
        }
        self.fetches.insert(
            hash,
            Fetch {
                number,
                started_by: peer,
                waiting: Vec::new(),
                tried: vec![peer],
                // Replaced by `ask` at once.
                stage: Stage::Importing,
            },
        );
        self.ask(hash, peer, now);
    }

    /// Asks `peer` for the headers of fetch `hash`, unless nothing is left to fetch.
    fn ask(&mut self, hash: B256, peer: PeerId, now: Instant) {
        let head = self.local.head_number();
        let Some(f) = self.fetches.get_mut(&hash) else {
            return;
        };
        if f.number <= head || self.local.has_block(&hash) {
            return self.finish(hash);
        }
        let req = GetBlockHeaders {
            origin: BlockId::Hash(hash),
            amount: (f.number - head).min(MAX_FETCH_AHEAD),
            skip: 0,
            reverse: true,
        };
        f.stage = Stage::Headers {
            peer,
            deadline: now + FETCH_TIMEOUT,
        };
        self.actions
            .push_back(Action::FetchHeaders { peer, hash, req });
    }

    fn failed(&mut self, peer: PeerId, hash: B256, failure: Failure, now: Instant) {
        if failure == Failure::Timeout {
            // Announced and not served (eth spec: "bad form"): it held a fetch slot.
            self.penalise(peer, DisconnectReason::UselessPeer);
        }
        self.next_announcer(hash, now);
    }

    /// Asks the next announcer not asked yet, or ends the fetch.
    fn next_announcer(&mut self, hash: B256, now: Instant) {
        let Some(f) = self.fetches.get_mut(&hash) else {
            return;
        };
        if f.waiting.is_empty() {
            return self.finish(hash);
        }
        let next = f.waiting.remove(0);
        f.tried.push(next);
        self.ask(hash, next, now);
    }

    fn finish(&mut self, hash: B256) {
        self.fetches.remove(&hash);
    }

    /// Block `hash` is stored: its queued children follow it, its fetch is over.
    fn stored(&mut self, hash: B256, number: u64) {
        self.finish(hash);
        for (child, orphan) in self.queue.take_children(hash, number) {
            if self.pending.insert(child) {
                self.ready.push_back(Ready {
                    from: orphan.from,
                    hash: child,
                    block: Box::new(orphan.block),
                });
            }
        }
        self.queue.prune(self.local.head_number());
    }

    /// Block `hash` was not stored: the blocks lined up after it cannot be either, and
    /// a fetch waiting for any of them goes on with its next announcer (`retry`: the
    /// block was bad, another may deliver a good one).
    fn unstored(&mut self, hash: B256, retry: bool, now: Instant) {
        let mut gone = vec![hash];
        let mut i = 0;
        while let Some(&parent) = gone.get(i) {
            i += 1;
            let mut k = 0;
            while k < self.ready.len() {
                if self.ready[k].block.header.parent_hash == parent {
                    if let Some(r) = self.ready.remove(k) {
                        self.pending.remove(&r.hash);
                        gone.push(r.hash);
                    }
                } else {
                    k += 1;
                }
            }
        }
        for h in gone {
            let delivered = self
                .fetches
                .get(&h)
                .is_some_and(|f| matches!(f.stage, Stage::Importing));
            if delivered {
                if retry {
                    self.next_announcer(h, now);
                } else {
                    self.finish(h);
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;
