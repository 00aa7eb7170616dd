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

use std::collections::{HashMap, HashSet};
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

/// One tracked hash.
#[derive(Debug)]
struct Tracked {
    first_seen: Instant,
    /// Announcement order, to request in the order announced.
    seq: u64,
    /// Peers that announced it and have not failed to deliver it, with what each said it
    /// is (an answer is checked against its own sender's announcement: one peer's wrong
    /// type must not get an honest one disconnected).
    announcers: Vec<(PeerId, Meta)>,
    /// The peer it is requested from.
    fetching: Option<PeerId>,
    /// The announcer it is charged to in the table's fair share.
    owner: PeerId,
}

/// A request in flight to one peer.
#[derive(Debug)]
struct Request {
    id: u64,
    hashes: Vec<B256>,
    deadline: Instant,
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
    /// Hashes each peer announced that are still tracked.
    by_peer: HashMap<PeerId, HashSet<B256>>,
    requests: HashMap<PeerId, Request>,
    /// Tracked hashes charged to each peer (see [`Tracked::owner`]).
    owned: HashMap<PeerId, HashSet<B256>>,
    /// Requests in a row that timed out, per peer.
    timeouts: HashMap<PeerId, u32>,
    /// Peers that reached [`Config::max_timeouts`], not yet taken.
    useless: Vec<PeerId>,
    next_id: u64,
    next_seq: u64,
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

    /// `peer` announced `items`; `have` says which we already hold (they are skipped).
    pub fn announce(
        &mut self,
        peer: PeerId,
        items: impl IntoIterator<Item = (B256, Meta)>,
        have: impl Fn(&B256) -> bool,
        now: Instant,
    ) {
        for (hash, meta) in items {
            let mine = self.by_peer.entry(peer).or_default();
            if mine.len() >= self.config.max_per_peer {
                break;
            }
            if mine.contains(&hash) || have(&hash) {
                continue;
            }
            match self.tracked.get_mut(&hash) {
                Some(t) if t.announcers.len() < self.config.max_announcers => {
                    t.announcers.push((peer, meta));
                    mine.insert(hash);
                }
                Some(_) => {}
                None => {
                    if self.tracked.len() >= self.config.max_tracked && !self.evict_for(&peer) {
                        continue;
                    }
                    self.next_seq += 1;
                    self.tracked.insert(
                        hash,
                        Tracked {
                            first_seen: now,
                            seq: self.next_seq,
                            announcers: vec![(peer, meta)],
                            fetching: None,
                            owner: peer,
                        },
                    );
                    self.by_peer.entry(peer).or_default().insert(hash);
                    self.owned.entry(peer).or_default().insert(hash);
                }
            }
        }
    }

    /// The table is full and `peer` has a new hash: forgets a hash (not being fetched) of
    /// the peer that owns the most, if it owns more than `peer` would with the new one.
    /// Returns whether room was made.
    fn evict_for(&mut self, peer: &PeerId) -> bool {
        let mine = self.owned.get(peer).map_or(0, HashSet::len);
        let Some((_, theirs)) = self
            .owned
            .iter()
            .filter(|(p, set)| *p != peer && set.len() > mine + 1)
            .max_by_key(|(_, set)| set.len())
        else {
            return false;
        };
        let victim = theirs
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
        if let Some(t) = self.tracked.remove(hash) {
            for (p, _) in t.announcers {
                if let Some(set) = self.by_peer.get_mut(&p) {
                    set.remove(hash);
                }
            }
            if let Some(set) = self.owned.get_mut(&t.owner) {
                set.remove(hash);
            }
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
        if self.requests.get(&peer).is_none_or(|r| r.id != id) {
            self.arrived(delivered.iter().copied());
            return;
        }
        let Some(req) = self.requests.remove(&peer) else {
            return;
        };
        if !delivered.is_empty() {
            self.timeouts.remove(&peer);
        }
        self.arrived(delivered.iter().copied());
        for h in req.hashes {
            self.drop_announcer(&h, &peer);
        }
    }

    /// `peer` disconnected: its request and announcements are void.
    pub fn peer_left(&mut self, peer: &PeerId) {
        self.requests.remove(peer);
        self.timeouts.remove(peer);
        self.useless.retain(|p| p != peer);
        for h in self.by_peer.remove(peer).unwrap_or_default() {
            self.drop_announcer(&h, peer);
        }
        self.owned.remove(peer);
    }

    fn drop_announcer(&mut self, hash: &B256, peer: &PeerId) {
        if let Some(set) = self.by_peer.get_mut(peer) {
            set.remove(hash);
        }
        let Some(t) = self.tracked.get_mut(hash) else {
            return;
        };
        t.announcers.retain(|(p, _)| p != peer);
        if t.fetching == Some(*peer) {
            t.fetching = None;
        }
        match t.announcers.first() {
            None => {
                self.tracked.remove(hash);
                if let Some(set) = self.owned.get_mut(peer) {
                    set.remove(hash);
                }
            }
            // Charged to the next announcer from now on.
            Some(&(next, _)) if t.owner == *peer => {
                t.owner = next;
                if let Some(set) = self.owned.get_mut(peer) {
                    set.remove(hash);
                }
                self.owned.entry(next).or_default().insert(*hash);
            }
            Some(_) => {}
        }
    }

    /// Expires requests past their deadline (as answered with nothing); returns the peers
    /// that timed out.
    pub fn expire(&mut self, now: Instant) -> Vec<PeerId> {
        let late: Vec<(PeerId, u64)> = self
            .requests
            .iter()
            .filter(|(_, r)| r.deadline <= now)
            .map(|(p, r)| (*p, r.id))
            .collect();
        for &(p, id) in &late {
            self.delivered(p, id, &[]);
            let misses = self.timeouts.entry(p).or_default();
            *misses += 1;
            if *misses == self.config.max_timeouts {
                self.useless.push(p);
            }
        }
        late.into_iter().map(|(p, _)| p).collect()
    }

    /// When [`Fetcher::poll`] or [`Fetcher::expire`] next has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        // Only hashes that an idle peer could be asked for: the others wait for a request
        // to end, which is an input or a request deadline anyway (counting them would wake
        // the driver in a loop while their announcers are busy).
        let waiting = self
            .tracked
            .values()
            .filter(|t| {
                t.fetching.is_none()
                    && t.announcers
                        .iter()
                        .any(|(p, _)| !self.requests.contains_key(p))
            })
            .map(|t| t.first_seen + self.config.arrival_wait);
        let requests = self.requests.values().map(|r| r.deadline);
        waiting.chain(requests).min()
    }

    /// The requests to send now: for each idle peer, the hashes that waited long enough
    /// and that it announced, within the request limits.
    pub fn poll(&mut self, now: Instant) -> Vec<Fetch> {
        let wait = self.config.arrival_wait;
        let mut out: Vec<Fetch> = Vec::new();
        let mut bytes: HashMap<PeerId, usize> = HashMap::new();
        // In announcement order: oldest first, so no hash starves behind newer ones.
        let mut ready: Vec<(u64, B256)> = self
            .tracked
            .iter()
            .filter(|(_, t)| t.fetching.is_none() && t.first_seen + wait <= now)
            .map(|(h, t)| (t.seq, *h))
            .collect();
        ready.sort_unstable();
        for (_, hash) in ready {
            let Some(t) = self.tracked.get_mut(&hash) else {
                continue;
            };
            // The first announcer that is idle, or whose new request still has room.
            let pick = t.announcers.iter().copied().find(|(p, meta)| {
                if self.requests.contains_key(p) {
                    return false;
                }
                match out.iter().find(|f| f.peer == *p) {
                    None => true,
                    Some(f) => {
                        f.hashes.len() < self.config.max_hashes
                            && bytes.get(p).copied().unwrap_or(0) + meta.size as usize
                                <= self.config.max_bytes
                    }
                }
            });
            let Some((peer, meta)) = pick else {
                continue;
            };
            t.fetching = Some(peer);
            *bytes.entry(peer).or_default() += meta.size as usize;
            match out.iter_mut().find(|f| f.peer == peer) {
                Some(f) => f.hashes.push((hash, meta)),
                None => out.push(Fetch {
                    id: 0,
                    peer,
                    hashes: vec![(hash, meta)],
                }),
            }
        }
        for f in &mut out {
            self.next_id += 1;
            f.id = self.next_id;
            self.requests.insert(
                f.peer,
                Request {
                    id: f.id,
                    hashes: f.hashes.iter().map(|h| h.0).collect(),
                    deadline: now + self.config.timeout,
                },
            );
        }
        out
    }
}

#[cfg(test)]
#[path = "txfetch_tests.rs"]
mod tests;
