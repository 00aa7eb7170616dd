//! The pooled-transaction fetcher, sans-IO: which announced transactions to ask which
//! peer for, and when (time is passed in as `now`).
//!
//! An announced hash (NewPooledTransactionHashes) we do not have waits
//! [`Config::arrival_wait`] for the full transaction to arrive by broadcast (sqrt(n) peers
//! get it in full, so it often does), then is requested from one of the peers that
//! announced it, at most one request in flight per peer, [`Config::max_hashes`] hashes or
//! [`Config::max_bytes`] announced bytes per request. A request that times out or comes
//! back without some hashes drops that peer from those hashes' announcers; the hashes go
//! to another announcer, or are forgotten when none is left. Everything is bounded: hashes
//! per announcing peer, announcers per hash and hashes tracked in all.
//!
//! The global table is shared fairly, not first come first served: each tracked hash is
//! charged to one announcer (its owner, the first one still announcing it), and when the
//! table is full a new hash evicts one owned by the peer that owns the most, as long as
//! that peer owns more than the newcomer would. Peers flooding announcements they never
//! deliver thus cannot lock honest announcers out, and they pay: a peer whose requests
//! time out [`Config::max_timeouts`] times in a row is reported by [`Fetcher::take_useless`]
//! for the driver to disconnect (`UselessPeer`: announcing is no breach of the protocol,
//! but a peer that never answers is of no use to us).
//!
//! The work an event costs does not grow with the table: peers are numbered inside the
//! fetcher (a `PeerId` is a secp256k1 key, whose hashing and comparison serialize it, so
//! it is looked up once per call, never per hash), and each peer keeps the hashes it
//! announced that nobody is being asked for, in announcement order. Scheduling walks only
//! the idle peers' lists, oldest first, and stops at the first hash still waiting for a
//! broadcast; a peer's request in flight makes its hashes cost nothing until it ends.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::time::{Duration, Instant};

use alloy_primitives::B256;

use super::PeerId;

/// Fetcher limits.
#[derive(Clone, Debug)]
pub struct Config {
    /// How long an announced transaction waits for a broadcast copy before we ask for
    /// it. Default 500 ms (go-ethereum `txArriveTimeout`).
    pub arrival_wait: Duration,
    /// How long a peer has to answer. Default 5 s (go-ethereum `txFetchTimeout`).
    pub timeout: Duration,
    /// Hashes per GetPooledTransactions. Default 256 (spec's recommended request limit).
    pub max_hashes: usize,
    /// Announced bytes per request. Default 128 KiB (go-ethereum `maxTxRetrievalSize`).
    pub max_bytes: usize,
    /// Hashes tracked per announcing peer. Default 4096 (go-ethereum `maxTxAnnounces`).
    pub max_per_peer: usize,
    /// Hashes tracked in all. Default 32768.
    pub max_tracked: usize,
    /// Announcers remembered per hash. Default 8: enough alternatives for retries.
    pub max_announcers: usize,
    /// Requests in a row a peer may let time out before it is reported useless. Default
    /// 3: an honest peer answers within [`Config::timeout`] (5 s) unless its link fails,
    /// which ends the session anyway; three misses in a row (15 s of holding our slots)
    /// is a peer that announces and never delivers.
    pub max_timeouts: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            arrival_wait: Duration::from_millis(500),
            timeout: Duration::from_secs(5),
            max_hashes: 256,
            max_bytes: 128 * 1024,
            max_per_peer: 4096,
            max_tracked: 32768,
            max_announcers: 8,
            max_timeouts: 3,
        }
    }
}

/// What an announcement said about a transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    /// EIP-2718 type.
    pub kind: u8,
    /// Encoded size.
    pub size: u32,
}

/// A peer's number inside the fetcher (an index into [`Fetcher::peers`]).
type Slot = u32;

/// One tracked hash.
#[derive(Debug)]
struct Tracked {
    first_seen: Instant,
    /// Announcement order, to request in the order announced (and the key of the hash in
    /// its announcers' [`PeerState::idle`]).
    seq: u64,
    /// Peers that announced it and have not failed to deliver it, with what each said it
    /// is (an answer is checked against its own sender's announcement: one peer's wrong
    /// type must not get an honest one disconnected).
    announcers: Vec<(Slot, Meta)>,
    /// The peer it is requested from.
    fetching: Option<Slot>,
    /// The announcer it is charged to in the table's fair share.
    owner: Slot,
}

/// A request in flight to one peer.
#[derive(Debug)]
struct Request {
    id: u64,
    hashes: Vec<B256>,
    deadline: Instant,
}

/// What the fetcher keeps about one peer.
#[derive(Debug)]
struct PeerState {
    id: PeerId,
    /// Hashes it announced that are still tracked (it is among their announcers).
    announced: HashSet<B256>,
    /// Tracked hashes charged to it (see [`Tracked::owner`]).
    owned: HashSet<B256>,
    /// Those of `announced` that nobody is being asked for, by [`Tracked::seq`]: what a
    /// request to this peer would be made of, oldest first.
    idle: BTreeMap<u64, B256>,
    /// Its request in flight.
    request: Option<Request>,
    /// Its requests in a row that timed out.
    timeouts: u32,
}

impl PeerState {
    fn new(id: PeerId) -> Self {
        Self {
            id,
            announced: HashSet::new(),
            owned: HashSet::new(),
            idle: BTreeMap::new(),
            request: None,
            timeouts: 0,
        }
    }
}

/// A request to send: ask `peer` for `hashes` (with what they were announced as, to
/// check the answer).
#[derive(Debug, PartialEq, Eq)]
pub struct Fetch {
    /// Identifies the request in [`Fetcher::delivered`].
    pub id: u64,
    /// The peer.
    pub peer: PeerId,
    /// The hashes and their announced type and size.
    pub hashes: Vec<(B256, Meta)>,
}

/// The fetcher's state.
#[derive(Debug, Default)]
pub struct Fetcher {
    config: Config,
    tracked: HashMap<B256, Tracked>,
    /// Each present peer's slot in `peers`.
    slots: HashMap<PeerId, Slot>,
    /// Present peers by slot; a slot is freed when its peer leaves, after every reference
    /// to it in `tracked` is gone.
    peers: Vec<Option<PeerState>>,
    free: Vec<Slot>,
    /// Peers that reached [`Config::max_timeouts`], not yet taken.
    useless: Vec<PeerId>,
    next_id: u64,
    next_seq: u64,
    /// The latest `now` an announcement came with: arrival times never go backwards, so
    /// announcement order is also arrival order (each peer's `idle` is then sorted by
    /// the time its hashes become due).
    latest: Option<Instant>,
    /// Tracked hashes looked at by `poll` and `next_deadline`, for the tests that bound
    /// the work one event costs.
    #[cfg(test)]
    visited: std::cell::Cell<u64>,
}

/// `peers[slot]`, which is present while anything refers to it.
fn state(peers: &mut [Option<PeerState>], slot: Slot) -> Option<&mut PeerState> {
    peers.get_mut(slot as usize).and_then(Option::as_mut)
}

impl Fetcher {
    /// An empty fetcher.
    pub fn new(config: Config) -> Self {
        Self {
            config,
            ..Default::default()
        }
    }

    /// Hashes tracked.
    pub fn len(&self) -> usize {
        self.tracked.len()
    }

    /// Whether nothing is tracked.
    pub fn is_empty(&self) -> bool {
        self.tracked.is_empty()
    }

    /// `peer`'s slot, made if it has none.
    fn slot(&mut self, peer: PeerId) -> Slot {
        if let Some(&s) = self.slots.get(&peer) {
            return s;
        }
        let s = match self.free.pop() {
            Some(s) => {
                self.peers[s as usize] = Some(PeerState::new(peer));
                s
            }
            None => {
                self.peers.push(Some(PeerState::new(peer)));
                // One slot per connected peer: far below u32::MAX.
                Slot::try_from(self.peers.len() - 1).unwrap_or(Slot::MAX)
            }
        };
        self.slots.insert(peer, s);
        s
    }

    /// `peer` announced `items`; `have` says which we already hold (they are skipped).
    pub fn announce(
        &mut self,
        peer: PeerId,
        items: impl IntoIterator<Item = (B256, Meta)>,
        have: impl Fn(&B256) -> bool,
        now: Instant,
    ) {
        let now = self.latest.map_or(now, |l| l.max(now));
        self.latest = Some(now);
        let slot = self.slot(peer);
        for (hash, meta) in items {
            let Some(me) = state(&mut self.peers, slot) else {
                return;
            };
            if me.announced.len() >= self.config.max_per_peer {
                break;
            }
            if me.announced.contains(&hash) || have(&hash) {
                continue;
            }
            match self.tracked.get_mut(&hash) {
                Some(t) if t.announcers.len() < self.config.max_announcers => {
                    t.announcers.push((slot, meta));
                    me.announced.insert(hash);
                    if t.fetching.is_none() {
                        me.idle.insert(t.seq, hash);
                    }
                }
                Some(_) => {}
                None => {
                    if self.tracked.len() >= self.config.max_tracked && !self.evict_for(slot) {
                        continue;
                    }
                    self.next_seq += 1;
                    let seq = self.next_seq;
                    self.tracked.insert(
                        hash,
                        Tracked {
                            first_seen: now,
                            seq,
                            announcers: vec![(slot, meta)],
                            fetching: None,
                            owner: slot,
                        },
                    );
                    if let Some(me) = state(&mut self.peers, slot) {
                        me.announced.insert(hash);
                        me.owned.insert(hash);
                        me.idle.insert(seq, hash);
                    }
                }
            }
        }
    }

    /// The table is full and `slot` has a new hash: forgets a hash (not being fetched) of
    /// the peer that owns the most, if it owns more than `slot` would with the new one.
    /// Returns whether room was made.
    fn evict_for(&mut self, slot: Slot) -> bool {
        let mine = state(&mut self.peers, slot).map_or(0, |s| s.owned.len());
        let Some(theirs) = self
            .peers
            .iter()
            .enumerate()
            .filter_map(|(i, s)| Some((i, s.as_ref()?)))
            .filter(|(i, s)| *i != slot as usize && s.owned.len() > mine + 1)
            .max_by_key(|(_, s)| s.owned.len())
            .map(|(_, s)| s)
        else {
            return false;
        };
        let victim = theirs
            .owned
            .iter()
            .find(|h| self.tracked.get(*h).is_some_and(|t| t.fetching.is_none()))
            .copied();
        match victim {
            Some(h) => {
                self.forget(&h);
                true
            }
            None => false,
        }
    }

    /// Stops tracking `hash`.
    fn forget(&mut self, hash: &B256) {
        let Some(t) = self.tracked.remove(hash) else {
            return;
        };
        for &(p, _) in &t.announcers {
            if let Some(s) = state(&mut self.peers, p) {
                s.announced.remove(hash);
                s.idle.remove(&t.seq);
            }
        }
        if let Some(s) = state(&mut self.peers, t.owner) {
            s.owned.remove(hash);
        }
    }

    /// The transactions of `hashes` arrived (broadcast, or any answer) and were handled:
    /// stop tracking them.
    pub fn arrived(&mut self, hashes: impl IntoIterator<Item = B256>) {
        for h in hashes {
            self.forget(&h);
        }
    }

    /// Peers whose requests timed out [`Config::max_timeouts`] times in a row since the
    /// last call: the driver disconnects them (`UselessPeer`).
    pub fn take_useless(&mut self) -> Vec<PeerId> {
        std::mem::take(&mut self.useless)
    }

    /// `peer` answered request `id`; `delivered` are the hashes it sent. Hashes it left out
    /// are no longer expected from it. An answer to an expired request is ignored (the
    /// transactions themselves were pooled by the handler all the same).
    pub fn delivered(&mut self, peer: PeerId, id: u64, delivered: &[B256]) {
        match self.slots.get(&peer) {
            Some(&slot) => self.end_request(slot, id, delivered),
            None => self.arrived(delivered.iter().copied()),
        }
    }

    /// [`Fetcher::delivered`] for the peer in `slot`.
    fn end_request(&mut self, slot: Slot, id: u64, delivered: &[B256]) {
        let req = state(&mut self.peers, slot).and_then(|s| {
            if s.request.as_ref().is_none_or(|r| r.id != id) {
                return None;
            }
            if !delivered.is_empty() {
                s.timeouts = 0;
            }
            s.request.take()
        });
        self.arrived(delivered.iter().copied());
        for h in req.map(|r| r.hashes).unwrap_or_default() {
            self.drop_announcer(&h, slot);
        }
    }

    /// `peer` disconnected: its request and announcements are void.
    pub fn peer_left(&mut self, peer: &PeerId) {
        self.useless.retain(|p| p != peer);
        let Some(slot) = self.slots.remove(peer) else {
            return;
        };
        let Some(gone) = self.peers.get_mut(slot as usize).and_then(Option::take) else {
            return;
        };
        for h in gone.announced {
            self.drop_announcer(&h, slot);
        }
        self.free.push(slot);
    }

    /// `slot` no longer announces `hash` (it failed to deliver it, or left): the hash is
    /// charged to its next announcer and, if it was being fetched from `slot`, can be
    /// asked of the others; with no announcer left it is forgotten.
    fn drop_announcer(&mut self, hash: &B256, slot: Slot) {
        let Some(t) = self.tracked.get_mut(hash) else {
            return;
        };
        let seq = t.seq;
        if let Some(s) = state(&mut self.peers, slot) {
            s.announced.remove(hash);
            s.idle.remove(&seq);
        }
        t.announcers.retain(|(p, _)| *p != slot);
        if t.fetching == Some(slot) {
            t.fetching = None;
            for &(p, _) in &t.announcers {
                if let Some(s) = state(&mut self.peers, p) {
                    s.idle.insert(seq, *hash);
                }
            }
        }
        match t.announcers.first() {
            None => {
                self.tracked.remove(hash);
                if let Some(s) = state(&mut self.peers, slot) {
                    s.owned.remove(hash);
                }
            }
            // Charged to the next announcer from now on.
            Some(&(next, _)) if t.owner == slot => {
                t.owner = next;
                if let Some(s) = state(&mut self.peers, slot) {
                    s.owned.remove(hash);
                }
                if let Some(s) = state(&mut self.peers, next) {
                    s.owned.insert(*hash);
                }
            }
            Some(_) => {}
        }
    }

    /// Expires requests past their deadline (as answered with nothing); returns the peers
    /// that timed out.
    pub fn expire(&mut self, now: Instant) -> Vec<PeerId> {
        let late: Vec<(Slot, PeerId, u64)> = self
            .peers
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let s = s.as_ref()?;
                let r = s.request.as_ref().filter(|r| r.deadline <= now)?;
                Some((Slot::try_from(i).ok()?, s.id, r.id))
            })
            .collect();
        for &(slot, peer, id) in &late {
            self.end_request(slot, id, &[]);
            if let Some(s) = state(&mut self.peers, slot) {
                s.timeouts += 1;
                if s.timeouts == self.config.max_timeouts {
                    self.useless.push(peer);
                }
            }
        }
        late.into_iter().map(|(_, p, _)| p).collect()
    }

    /// When [`Fetcher::poll`] or [`Fetcher::expire`] next has something to do: the
    /// earliest of the requests' deadlines and, for each idle peer, when the oldest hash
    /// it could be asked for is due. (Hashes only busy peers announced wait for a request
    /// to end, which is an input or a request deadline anyway: counting them would wake
    /// the driver in a loop while their announcers are busy.) One look per peer.
    pub fn next_deadline(&self) -> Option<Instant> {
        let wait = self.config.arrival_wait;
        self.peers
            .iter()
            .flatten()
            .filter_map(|s| match &s.request {
                Some(r) => Some(r.deadline),
                None => {
                    let (_, h) = s.idle.first_key_value()?;
                    #[cfg(test)]
                    self.visited.set(self.visited.get() + 1);
                    self.tracked.get(h).map(|t| t.first_seen + wait)
                }
            })
            .min()
    }

    /// The requests to send now: for each idle peer, the hashes that waited long enough
    /// and that it announced, within the request limits. Hashes go out oldest first, each
    /// to its first announcer that is idle and whose request still has room; a peer's
    /// list is walked only while it is idle and its hashes are due, and no further than
    /// the first hash none of its idle announcers has room for.
    pub fn poll(&mut self, now: Instant) -> Vec<Fetch> {
        let wait = self.config.arrival_wait;
        // The request being made for each slot (an index into `out`) and its bytes.
        let mut making: Vec<Option<(usize, usize)>> = vec![None; self.peers.len()];
        let mut out: Vec<Fetch> = Vec::new();
        // The slot each of `out` goes to.
        let mut to: Vec<Slot> = Vec::new();
        // Each idle peer's next hash to look at, oldest first across peers.
        let mut next: BinaryHeap<Reverse<(u64, Slot)>> = self
            .peers
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let s = s.as_ref().filter(|s| s.request.is_none())?;
                let (&seq, _) = s.idle.first_key_value()?;
                Some(Reverse((seq, Slot::try_from(i).ok()?)))
            })
            .collect();
        while let Some(Reverse((from, slot))) = next.pop() {
            let Some((seq, hash)) = self.peers[slot as usize]
                .as_ref()
                .and_then(|s| s.idle.range(from..).next())
                .map(|(&q, &h)| (q, h))
            else {
                continue;
            };
            #[cfg(test)]
            self.visited.set(self.visited.get() + 1);
            let Some(t) = self.tracked.get_mut(&hash) else {
                continue;
            };
            if t.first_seen + wait > now {
                // The rest of this peer's list came later.
                continue;
            }
            let room = |p: Slot, meta: &Meta| match making[p as usize] {
                None => self.peers[p as usize]
                    .as_ref()
                    .is_some_and(|s| s.request.is_none()),
                Some((i, bytes)) => {
                    out[i].hashes.len() < self.config.max_hashes
                        && bytes + meta.size as usize <= self.config.max_bytes
                }
            };
            let Some((pick, meta)) = t.announcers.iter().copied().find(|(p, m)| room(*p, m)) else {
                // Not even this peer has room: its request is full.
                continue;
            };
            let Some(peer) = self.peers[pick as usize].as_ref().map(|s| s.id) else {
                continue;
            };
            t.fetching = Some(pick);
            for &(p, _) in &t.announcers {
                if let Some(s) = state(&mut self.peers, p) {
                    s.idle.remove(&seq);
                }
            }
            match &mut making[pick as usize] {
                Some((i, bytes)) => {
                    *bytes += meta.size as usize;
                    out[*i].hashes.push((hash, meta));
                }
                None => {
                    making[pick as usize] = Some((out.len(), meta.size as usize));
                    out.push(Fetch {
                        id: 0,
                        peer,
                        hashes: vec![(hash, meta)],
                    });
                    to.push(pick);
                }
            }
            next.push(Reverse((seq + 1, slot)));
        }
        for (f, slot) in out.iter_mut().zip(to) {
            self.next_id += 1;
            f.id = self.next_id;
            if let Some(s) = state(&mut self.peers, slot) {
                s.request = Some(Request {
                    id: f.id,
                    hashes: f.hashes.iter().map(|h| h.0).collect(),
                    deadline: now + self.config.timeout,
                });
            }
        }
        out
    }
}

#[cfg(test)]
#[path = "txfetch_tests.rs"]
mod tests;
