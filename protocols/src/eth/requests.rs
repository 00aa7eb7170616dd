//! Per-peer request accounting, sans-IO (time is passed in as `now`):
//!
//! - [`Tracker`]: our requests in flight to the peer, keyed by request id (EIP-2481), with
//!   deadlines. A response is matched by id *and* kind; one we never asked for is
//!   [`Match::Unsolicited`] (the handler disconnects with `BreachOfProtocol`). Ids of
//!   requests that timed out are remembered for a while, so a slow but honest answer is
//!   [`Match::Late`] and dropped quietly rather than punished.
//! - [`Budget`]: a token bucket limiting the requests the peer may make of us.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

/// What a request asked for; the response must be of the same kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// GetBlockHeaders for at most `amount` headers.
    Headers {
        /// Headers requested.
        amount: u64,
    },
    /// GetBlockBodies for `count` hashes.
    Bodies {
        /// Bodies requested.
        count: usize,
    },
    /// GetReceipts for `count` hashes.
    Receipts {
        /// Receipt lists requested.
        count: usize,
    },
    /// GetPooledTransactions for `count` hashes.
    Pooled {
        /// Transactions requested.
        count: usize,
    },
    /// GetCells (eth/72) for `count` transactions.
    Cells {
        /// Transactions requested.
        count: usize,
    },
}

/// Timed-out request ids remembered, so their late answers are not taken for unsolicited
/// ones. Bounded: the oldest are forgotten first.
pub const EXPIRED_MEMORY: usize = 1024;

/// One request in flight.
#[derive(Debug)]
struct Pending<R> {
    kind: Kind,
    /// When it was sent, for its round-trip time.
    sent: Instant,
    deadline: Instant,
    reply: R,
}

/// How a response matched our requests.
#[derive(Debug)]
pub enum Match<R> {
    /// It answers request `kind`; `reply` is where the result goes.
    Answer {
        /// What was asked.
        kind: Kind,
        /// The requester's reply sink.
        reply: R,
        /// When the request was sent (the `now` given to [`Tracker::start`]).
        sent: Instant,
    },
    /// It answers a request that already timed out: drop it.
    Late,
    /// No request of this kind with this id is in flight.
    Unsolicited,
}

/// Our requests in flight to one peer. `R` is the reply sink (a oneshot sender in the
/// handler, anything in tests).
#[derive(Debug)]
pub struct Tracker<R> {
    next_id: u64,
    pending: HashMap<u64, Pending<R>>,
    expired: VecDeque<u64>,
    expired_set: HashSet<u64>,
}

impl<R> Tracker<R> {
    /// An empty tracker whose ids start at `first_id` (random in the handler).
    pub fn new(first_id: u64) -> Self {
        Self {
            next_id: first_id,
            pending: HashMap::new(),
            expired: VecDeque::new(),
            expired_set: HashSet::new(),
        }
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// Registers a request, returning its id.
    pub fn start(&mut self, kind: Kind, now: Instant, timeout: Duration, reply: R) -> u64 {
        // Skip ids still in use (only possible after 2^64 requests, but cheap to be sure).
        while self.pending.contains_key(&self.next_id) {
            self.next_id = self.next_id.wrapping_add(1);
        }
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        self.forget_expired(id);
        let deadline = now.checked_add(timeout).unwrap_or(now);
        self.pending.insert(
            id,
            Pending {
                kind,
                sent: now,
                deadline,
                reply,
            },
        );
        id
    }

    /// Matches a response with request id `id` that is a headers (`headers == true`) or
    /// bodies response.
    pub fn complete(&mut self, id: u64, headers: bool) -> Match<R> {
        let kind_matches = |k: &Kind| matches!(k, Kind::Headers { .. }) == headers;
        match self.pending.get(&id) {
            Some(p) if kind_matches(&p.kind) => match self.pending.remove(&id) {
                Some(p) => Match::Answer {
                    kind: p.kind,
                    reply: p.reply,
                    sent: p.sent,
                },
                None => Match::Unsolicited,
            },
            Some(_) => Match::Unsolicited,
            None if self.expired_set.remove(&id) => Match::Late,
            None => Match::Unsolicited,
        }
    }

    /// Removes the requests whose deadline has passed, returning their reply sinks.
    pub fn expire(&mut self, now: Instant) -> Vec<R> {
        let ids: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(p) = self.pending.remove(&id) {
                out.push(p.reply);
                self.remember_expired(id);
            }
        }
        out
    }

    /// The earliest deadline in flight.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.pending.values().map(|p| p.deadline).min()
    }

    /// Takes every pending reply sink (the peer is going away).
    pub fn drain(&mut self) -> Vec<R> {
        self.pending.drain().map(|(_, p)| p.reply).collect()
    }

    fn remember_expired(&mut self, id: u64) {
        if self.expired.len() >= EXPIRED_MEMORY
            && let Some(old) = self.expired.pop_front()
        {
            self.expired_set.remove(&old);
        }
        self.expired.push_back(id);
        self.expired_set.insert(id);
    }

    fn forget_expired(&mut self, id: u64) {
        if self.expired_set.remove(&id) {
            self.expired.retain(|&e| e != id);
        }
    }
}

/// A token bucket: `capacity` requests at once, refilled at `per_second`.
#[derive(Clone, Debug)]
pub struct Budget {
    /// Tokens in thousandths, so slow refill rates keep their precision.
    milli: u64,
    capacity_milli: u64,
    per_second: u64,
    last: Instant,
}

impl Budget {
    /// A full bucket.
    pub fn new(capacity: u32, per_second: u32, now: Instant) -> Self {
        let capacity_milli = u64::from(capacity) * 1000;
        Self {
            milli: capacity_milli,
            capacity_milli,
            per_second: u64::from(per_second),
            last: now,
        }
    }

    /// Takes one token if there is one.
    pub fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last);
        let add = u64::try_from(elapsed.as_millis())
            .unwrap_or(u64::MAX)
            .saturating_mul(self.per_second);
        self.milli = self.milli.saturating_add(add).min(self.capacity_milli);
        self.last = now;
        if self.milli >= 1000 {
            self.milli -= 1000;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn match_by_id_and_kind() {
        let now = Instant::now();
        let mut t = Tracker::new(u64::MAX);
        let a = t.start(
            Kind::Headers { amount: 5 },
            now,
            Duration::from_secs(1),
            'a',
        );
        let b = t.start(Kind::Bodies { count: 2 }, now, Duration::from_secs(1), 'b');
        assert_eq!((a, b), (u64::MAX, 0), "ids wrap");
        assert!(
            matches!(t.complete(b, true), Match::Unsolicited),
            "wrong kind"
        );
        assert!(matches!(
            t.complete(b, false),
            Match::Answer { reply: 'b', sent, .. } if sent == now
        ));
        assert!(
            matches!(t.complete(b, false), Match::Unsolicited),
            "answered twice"
        );
        assert!(matches!(t.complete(77, true), Match::Unsolicited));
        assert_eq!(t.next_deadline(), Some(now + Duration::from_secs(1)));
        assert!(t.expire(now).is_empty());
        assert_eq!(t.expire(now + Duration::from_secs(1)), vec!['a']);
        assert!(matches!(t.complete(a, true), Match::Late));
        assert!(
            matches!(t.complete(a, true), Match::Unsolicited),
            "late only once"
        );
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn expired_memory_is_bounded() {
        let now = Instant::now();
        let mut t = Tracker::new(0);
        for _ in 0..EXPIRED_MEMORY + 10 {
            t.start(Kind::Bodies { count: 1 }, now, Duration::ZERO, ());
        }
        assert_eq!(t.expire(now).len(), EXPIRED_MEMORY + 10);
        assert_eq!(t.expired.len(), EXPIRED_MEMORY);
        assert_eq!(t.expired_set.len(), EXPIRED_MEMORY);
    }

    #[test]
    fn budget_refills() {
        let now = Instant::now();
        let mut b = Budget::new(2, 10, now);
        assert!(b.try_take(now));
        assert!(b.try_take(now));
        assert!(!b.try_take(now));
        assert!(!b.try_take(now + Duration::from_millis(99)));
        assert!(b.try_take(now + Duration::from_millis(100)));
        // Long idle refills to capacity only.
        let later = now + Duration::from_secs(3600);
        assert!(b.try_take(later) && b.try_take(later) && !b.try_take(later));
    }
}
