//! Fetching the receipts of imported blocks, as a sans-IO state machine.
//!
//! We execute nothing, so the receipts of a block come from peers after the block is
//! imported (go-ethereum's snap sync does the same: download receipts, check them against
//! the header's receipts root). Every block the [`crate::chain::Importer`] accepts, from
//! sync or from propagation, is handed in ([`Fetcher::on_accepted`]); those with
//! transactions are queued and asked for from the peers ([`MAX_BATCH`] hashes per
//! request, one request per peer at a time). Blocks never wait on receipts: import goes
//! on regardless, and a block whose receipts cannot be had stays "receipts unavailable"
//! (GetReceipts ends its answer there).
//!
//! - An answer's lists are handed to the store ([`Action::Store`]), which checks each
//!   against its block ([`crate::chain::Store::insert_receipts`], off the runtime) and
//!   stores all or nothing. A list that does not match: [`Fetcher::on_stored`] penalises
//!   the peer and the batch is asked again of others.
//! - A short answer is no offence: an empty one says the peer lacks the first block
//!   (asked of another peer next); blocks after a non-empty answer were cut by the peer's
//!   size limits and are asked again, of it too. A peer that times out is penalised.
//! - eth/70: an incomplete last list is kept and its rest asked of the same peer with
//!   `firstBlockReceiptIndex` ([`MAX_PARTIAL_BYTES`] at most per block, then the peer
//!   is penalised); a peer that leaves takes its partial list with it.
//! - A peer whose answer is empty rests for [`REST`] before it is asked again.
//! - A block is tried at most [`MAX_ATTEMPTS`] times, never twice with the same peer;
//!   then it is given up (its receipts stay unavailable). The queue holds at most
//!   [`MAX_QUEUE`] blocks; beyond that the oldest are given up.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use alloy_primitives::B256;
use protocols::eth::PeerId;
use protocols::eth::messages::Receipt69;
use protocols::eth::receipts::Answer;

/// Blocks asked for per request: go-ethereum's `maxReceiptFetch` is 256; 64 keeps an
/// answer of typical mainnet receipts (~100 KB a block) near the 2 MiB soft limit.
pub const MAX_BATCH: usize = 64;
/// Times a block's receipts are asked for before it is given up: one honest peer in
/// three tries is enough, and a block nobody serves must not be asked for forever.
pub const MAX_ATTEMPTS: usize = 3;
/// Blocks waiting for receipts at most: an hour of a sync at 20 blocks/s; the oldest are
/// given up beyond it (32 bytes each, 2 MiB in all).
pub const MAX_QUEUE: usize = 65_536;
/// Bytes of one block's partial eth/70 list kept while its rest is fetched. A block's
/// receipts are bounded by its gas (8 gas per log data byte: 60 M gas is ~7.5 MB of log
/// data); 32 MiB leaves room for every future gas limit we foresee.
pub const MAX_PARTIAL_BYTES: usize = 32 << 20;

/// How long a peer that answered nothing is left alone: it lacks what we want (a node
/// that executes nothing and fetched no receipts, or blocks whose receipts nobody can
/// have, as `devp2p gen-chain`'s), and asking on at once would spend the request budget
/// it grants us (64 requests/s) on empty answers while headers and bodies need it.
pub const REST: Duration = Duration::from_secs(10);

/// Identifies one request, to match its answer.
pub type RequestId = u64;

/// What the caller is asked to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send GetReceipts; report with [`Fetcher::on_answer`].
    Request {
        /// The request.
        id: RequestId,
        /// To whom.
        peer: PeerId,
        /// Which blocks.
        hashes: Vec<B256>,
        /// eth/70 `firstBlockReceiptIndex`.
        first_index: u64,
    },
    /// Check and store these lists; report with [`Fetcher::on_stored`].
    Store {
        /// Who sent them.
        peer: PeerId,
        /// One list per block.
        lists: Vec<(B256, Vec<Receipt69>)>,
    },
    /// The peer broke the protocol (receipts that do not match, a timeout, an oversized
    /// partial list): disconnect it.
    Penalise {
        /// Whom.
        peer: PeerId,
    },
}

/// How a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No answer in time.
    Timeout,
    /// The peer went away or could not take the request.
    Gone,
}

/// One request in flight.
#[derive(Debug)]
struct InFlight {
    peer: PeerId,
    hashes: Vec<B256>,
    deadline: Instant,
}

/// A block's partial eth/70 list, being completed from `peer`.
#[derive(Debug)]
struct Partial {
    peer: PeerId,
    receipts: Vec<Receipt69>,
}

/// The receipts fetcher.
#[derive(Debug)]
pub struct Fetcher {
    timeout: Duration,
    queue: VecDeque<B256>,
    queued: HashSet<B256>,
    /// Peers asked for each queued or in-flight block.
    tried: HashMap<B256, Vec<PeerId>>,
    /// Each peer's request in flight, and until when it rests (see [`REST`]).
    peers: HashMap<PeerId, (Option<RequestId>, Option<Instant>)>,
    in_flight: HashMap<RequestId, InFlight>,
    partial: HashMap<B256, Partial>,
    next_id: RequestId,
    actions: VecDeque<Action>,
    given_up: u64,
}

impl Fetcher {
    /// A fetcher whose requests time out after `timeout`.
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            queue: VecDeque::new(),
            queued: HashSet::new(),
            tried: HashMap::new(),
            peers: HashMap::new(),
            in_flight: HashMap::new(),
            partial: HashMap::new(),
            next_id: 0,
            actions: VecDeque::new(),
            given_up: 0,
        }
    }

    /// The next thing to do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`Fetcher::handle_timeout`] is next due.
    pub fn next_timeout(&self) -> Option<Instant> {
        let deadlines = self.in_flight.values().map(|r| r.deadline);
        // A resting peer is due for work when its rest ends, if there is work.
        let rests = (self.peers.values())
            .filter(|_| !self.queue.is_empty())
            .filter_map(|(_, rest)| *rest);
        deadlines.chain(rests).min()
    }

    /// Blocks given up so far (their receipts stay unavailable).
    pub fn given_up(&self) -> u64 {
        self.given_up
    }

    /// Blocks waiting (queued or in flight).
    pub fn pending(&self) -> usize {
        self.tried.len()
    }

    /// A block was imported; `has_txs` says whether it needs receipts fetched.
    pub fn on_accepted(&mut self, hash: B256, has_txs: bool, now: Instant) {
        if !has_txs || self.tried.contains_key(&hash) {
            return;
        }
        self.tried.insert(hash, Vec::new());
        self.enqueue(hash);
        while self.queue.len() > MAX_QUEUE {
            if let Some(old) = self.queue.pop_front() {
                self.give_up(old);
            }
        }
        self.dispatch(now);
    }

    /// A peer to ask.
    pub fn peer_joined(&mut self, peer: PeerId, now: Instant) {
        self.peers.entry(peer).or_insert((None, None));
        self.dispatch(now);
    }

    /// A peer left: its request fails.
    pub fn peer_left(&mut self, peer: &PeerId, now: Instant) {
        if let Some((Some(id), _)) = self.peers.remove(peer) {
            self.fail(id, Failure::Gone);
        }
        self.partial.retain(|_, p| p.peer != *peer);
        self.dispatch(now);
    }

    /// Fails the requests past their deadline.
    pub fn handle_timeout(&mut self, now: Instant) {
        let late: Vec<RequestId> = (self.in_flight.iter())
            .filter(|(_, r)| r.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            self.fail(id, Failure::Timeout);
        }
        self.dispatch(now);
    }

    /// The answer to request `id`.
    pub fn on_answer(&mut self, id: RequestId, answer: Result<Answer, Failure>, now: Instant) {
        let answer = match answer {
            Ok(a) => a,
            Err(f) => {
                self.fail(id, f);
                self.dispatch(now);
                return;
            }
        };
        let Some(req) = self.in_flight.remove(&id) else {
            return;
        };
        let answered = answer.lists.len().min(req.hashes.len());
        let rest = (answered == 0).then(|| now + REST);
        self.peers.insert(req.peer, (None, rest));
        let incomplete = answer.last_block_incomplete && answered > 0;
        let mut lists = Vec::with_capacity(answered);
        for (i, (hash, list)) in req.hashes.iter().zip(answer.lists).enumerate() {
            let mut list = list;
            if let Some(p) = self.partial.remove(hash) {
                let mut whole = p.receipts;
                whole.append(&mut list);
                list = whole;
            }
            if incomplete && i + 1 == answered {
                if alloy_rlp::list_length(&list) > MAX_PARTIAL_BYTES {
                    self.actions.push_back(Action::Penalise { peer: req.peer });
                    self.retry(*hash);
                } else {
                    let first_index = list.len() as u64;
                    self.partial.insert(
                        *hash,
                        Partial {
                            peer: req.peer,
                            receipts: list,
                        },
                    );
                    self.request(req.peer, vec![*hash], first_index, now);
                }
                continue;
            }
            lists.push((*hash, list));
        }
        // Not answered: no offence. An empty answer says the peer lacks the first block
        // (it is asked of others); the rest, and everything after a non-empty answer,
        // may only have been cut by the peer's size limits: asked again, of it too.
        for (i, hash) in req.hashes[answered..].iter().enumerate() {
            if (answered > 0 || i > 0)
                && let Some(t) = self.tried.get_mut(hash)
            {
                t.retain(|p| *p != req.peer);
            }
            self.retry(*hash);
        }
        if !lists.is_empty() {
            self.actions.push_back(Action::Store {
                peer: req.peer,
                lists,
            });
        }
        self.dispatch(now);
    }

    /// The store's verdict on an [`Action::Store`]: `Ok`, or the block whose list did
    /// not match (nothing of the batch was stored, see the module docs).
    pub fn on_stored(
        &mut self,
        peer: PeerId,
        hashes: &[B256],
        result: Result<(), B256>,
        now: Instant,
    ) {
        match result {
            Ok(()) => {
                for h in hashes {
                    self.tried.remove(h);
                }
            }
            Err(bad) => {
                tracing::debug!(target: "sync", peer = %rlpx::peer::short_id(&peer), block = %bad, "receipts do not match the block");
                self.actions.push_back(Action::Penalise { peer });
                for h in hashes {
                    self.retry(*h);
                }
            }
        }
        self.dispatch(now);
    }

    fn enqueue(&mut self, hash: B256) {
        if self.queued.insert(hash) {
            self.queue.push_back(hash);
        }
    }

    /// Queues `hash` again, or gives it up after [`MAX_ATTEMPTS`].
    fn retry(&mut self, hash: B256) {
        match self.tried.get(&hash) {
            Some(t) if t.len() < MAX_ATTEMPTS => self.enqueue(hash),
            Some(_) => self.give_up(hash),
            None => {}
        }
    }

    fn give_up(&mut self, hash: B256) {
        if self.tried.remove(&hash).is_some() {
            self.given_up += 1;
        }
        self.queued.remove(&hash);
        self.partial.remove(&hash);
    }

    fn fail(&mut self, id: RequestId, failure: Failure) {
        let Some(req) = self.in_flight.remove(&id) else {
            return;
        };
        if let Some(p) = self.peers.get_mut(&req.peer) {
            p.0 = None;
        }
        if failure == Failure::Timeout {
            self.actions.push_back(Action::Penalise { peer: req.peer });
        }
        for hash in req.hashes {
            self.partial.remove(&hash);
            self.retry(hash);
        }
    }

    fn request(&mut self, peer: PeerId, hashes: Vec<B256>, first_index: u64, now: Instant) {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        for h in &hashes {
            self.queued.remove(h);
            if let Some(t) = self.tried.get_mut(h)
                && !t.contains(&peer)
            {
                t.push(peer);
            }
        }
        self.peers.insert(peer, (Some(id), None));
        self.in_flight.insert(
            id,
            InFlight {
                peer,
                hashes: hashes.clone(),
                deadline: now + self.timeout,
            },
        );
        self.actions.push_back(Action::Request {
            id,
            peer,
            hashes,
            first_index,
        });
    }

    /// Gives every idle peer a batch of queued blocks it has not been asked for.
    fn dispatch(&mut self, now: Instant) {
        let idle: Vec<PeerId> = (self.peers.iter())
            .filter(|(_, (r, rest))| r.is_none() && rest.is_none_or(|t| t <= now))
            .map(|(p, _)| *p)
            .collect();
        for peer in idle {
            if self.queue.is_empty() {
                return;
            }
            let mut batch = Vec::new();
            let mut skipped = VecDeque::new();
            while batch.len() < MAX_BATCH {
                let Some(hash) = self.queue.pop_front() else {
                    break;
                };
                if !self.queued.contains(&hash) {
                    continue;
                }
                let asked = self.tried.get(&hash).is_some_and(|t| t.contains(&peer));
                if asked || self.partial.contains_key(&hash) {
                    skipped.push_back(hash);
                } else {
                    batch.push(hash);
                }
            }
            skipped.append(&mut self.queue);
            self.queue = skipped;
            if !batch.is_empty() {
                self.request(peer, batch, 0, now);
            }
        }
        // A block every current peer has been asked for is given up only by attempts;
        // with fewer peers than attempts it waits for a new peer (bounded by MAX_QUEUE).
    }
}

#[cfg(test)]
#[path = "receipts_tests.rs"]
mod tests;
