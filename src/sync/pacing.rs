//! How much the downloader asks of a peer at once, and how often:
//!
//! - [`Pacer`]: a token bucket per peer ([`Config::requests_per_second`] sustained,
//!   [`Config::request_burst`] at once) that keeps our requests under the budget a serving
//!   peer enforces (ours: `eth::Config::requests_per_second` 64/s, burst 256; a peer over
//!   it is dropped with `UselessPeer`, "request budget exceeded").
//! - [`BodySize`]: the bytes per block body, learned from the bodies peers deliver (each
//!   matched against its header, so the sizes are the chain's, not a peer's claim), to
//!   ask for as many bodies as fit the 2 MiB soft response limit
//!   ([`Config::response_bytes`]) rather than a fixed count.
//!
//! [`Config::requests_per_second`]: super::Config::requests_per_second
//! [`Config::request_burst`]: super::Config::request_burst
//! [`Config::response_bytes`]: super::Config::response_bytes

use std::time::{Duration, Instant};

use protocols::eth::PeerId;

use super::Config;
use super::downloader::{Action, Downloader, Kind, Local, Request, RequestId};
use super::round::Round;

/// A token bucket for the requests to one peer. Tokens are counted in millionths so that
/// the refill loses nothing to rounding at any rate.
#[derive(Debug, Clone)]
pub(super) struct Pacer {
    /// Tokens (millionths) as of `last`.
    micro: u64,
    capacity: u64,
    per_second: u64,
    last: Instant,
}

const UNIT: u64 = 1_000_000;

impl Pacer {
    /// A full bucket of `burst` tokens refilled at `per_second` (both at least 1: a
    /// zero rate would never let a request out).
    pub(super) fn new(per_second: u32, burst: u32, now: Instant) -> Self {
        let capacity = u64::from(burst.max(1)) * UNIT;
        Self {
            micro: capacity,
            capacity,
            per_second: u64::from(per_second.max(1)),
            last: now,
        }
    }

    /// Tokens (millionths) at `now`.
    fn level(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.last).as_micros();
        // Millionths of a token per microsecond is `per_second`.
        let add =
            u64::try_from(elapsed.saturating_mul(u128::from(self.per_second))).unwrap_or(u64::MAX);
        self.micro.saturating_add(add).min(self.capacity)
    }

    /// Whether a request may go out at `now`.
    pub(super) fn ready(&self, now: Instant) -> bool {
        self.level(now) >= UNIT
    }

    /// Spends a token for a request sent at `now` (callers check [`Pacer::ready`]
    /// first; without a token the bucket stays empty rather than going into debt).
    pub(super) fn take(&mut self, now: Instant) {
        self.micro = self.level(now).saturating_sub(UNIT);
        self.last = self.last.max(now);
    }

    /// Brings the bucket up to `now` (so that [`Pacer::ready_at`] is not in the past).
    pub(super) fn settle(&mut self, now: Instant) {
        self.micro = self.level(now);
        self.last = self.last.max(now);
    }

    /// When the next token is there, if the last request took the last one (`None`
    /// while one is left).
    pub(super) fn ready_at(&self) -> Option<Instant> {
        if self.micro >= UNIT {
            return None;
        }
        // Round up: a wake-up a microsecond early would find the bucket still empty.
        let micros = (UNIT - self.micro).div_ceil(self.per_second);
        Some(self.last + Duration::from_micros(micros))
    }
}

/// Answers the bytes-per-body estimate is the median of: enough that one odd answer (a
/// peer answering one huge body, or a run of empty blocks) moves it by one place, few
/// enough to follow a chain whose blocks grow.
const SAMPLES: usize = 15;

/// Bodies asked for before any body was delivered (in one request at a time): 32, ~2 MiB
/// of bodies averaging 64 KB (mainnet's are 100-150 KB, and an honest peer cuts its
/// answer at its soft limit), so that the first answer cannot take the window far past
/// its bound. That answer gives the estimate.
const FIRST_BODIES: usize = 32;

/// Bytes per block body (RLP), learned from delivered answers: the median of the last
/// [`SAMPLES`] answers' averages.
#[derive(Debug, Clone, Default)]
pub(super) struct BodySize {
    /// Each answer's bytes per body, oldest first.
    samples: std::collections::VecDeque<u64>,
}

impl BodySize {
    /// An answer of `bodies` bodies, `bytes` in all (checked against their headers).
    pub(super) fn record(&mut self, bodies: usize, bytes: u64) {
        if bodies == 0 {
            return;
        }
        if self.samples.len() == SAMPLES {
            self.samples.pop_front();
        }
        self.samples.push_back((bytes / bodies as u64).max(1));
    }

    /// The estimate, once a body has been delivered.
    pub(super) fn estimate(&self) -> Option<u64> {
        let mut v: Vec<u64> = self.samples.iter().copied().collect();
        v.sort_unstable();
        v.get(v.len() / 2).copied()
    }

    /// Bodies to ask for in one request: as many as fit `config.response_bytes`, at most
    /// `config.bodies_per_request` (capped at `eth::serve::MAX_BODIES`, which our
    /// decoder admits whatever the bodies: `eth::size::SMALL_MESSAGE`); [`FIRST_BODIES`]
    /// before anything is known.
    pub(super) fn per_request(&self, config: &Config) -> usize {
        let most = config
            .bodies_per_request
            .clamp(1, protocols::eth::serve::MAX_BODIES);
        match self.estimate() {
            Some(each) => usize::try_from(config.response_bytes / each)
                .unwrap_or(usize::MAX)
                .clamp(1, most),
            None => most.min(FIRST_BODIES),
        }
    }

    /// The bytes a request for `count` bodies is expected to bring: what the window
    /// counts for requests in flight (the response size when nothing is known yet).
    pub(super) fn expected(&self, count: usize, config: &Config) -> u64 {
        match self.estimate() {
            Some(each) => each.saturating_mul(count as u64),
            None => config.response_bytes,
        }
    }
}

impl<L: Local> Downloader<L> {
    /// Records a request of `kind` to `peer` at `now`: its deadline, and a token of the
    /// peer's [`Pacer`]. Returns its id.
    pub(super) fn start_request(&mut self, peer: PeerId, kind: Kind, now: Instant) -> RequestId {
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
        if let Some(p) = self.peers.get_mut(&peer) {
            p.pacer.take(now);
        }
        id
    }

    pub(super) fn in_flight(&self, peer: &PeerId) -> usize {
        self.requests.values().filter(|r| &r.peer == peer).count()
    }

    /// Peers that can take work up to block `need` at `now` (a token left, fewer than
    /// [`Config::max_in_flight`] requests out), least busy first.
    pub(super) fn idle_peers(&self, need: u64, now: Instant) -> Vec<PeerId> {
        let mut v: Vec<(usize, PeerId)> = self
            .peers
            .iter()
            .filter(|(_, p)| p.proven.is_some_and(|(n, _)| n >= need))
            .filter(|(_, p)| p.idle_until.is_none_or(|t| t <= now))
            .filter(|(_, p)| p.pacer.ready(now))
            .map(|(id, _)| (self.in_flight(id), *id))
            .filter(|(n, _)| *n < self.config.max_in_flight)
            .collect();
        v.sort();
        v.into_iter().map(|(_, id)| id).collect()
    }

    fn bodies_in_flight(&self) -> bool {
        self.requests
            .values()
            .any(|r| matches!(r.kind, Kind::Bodies { .. }))
    }

    /// Bytes of bodies held above the import cursor: stored, plus the requests in flight
    /// at their expected size ([`Config::window_bytes`] bounds it).
    pub(super) fn window_held(&self) -> u64 {
        let in_flight: u64 = self
            .requests
            .values()
            .filter_map(|r| match &r.kind {
                Kind::Bodies { numbers } => {
                    Some(self.body_size.expected(numbers.len(), &self.config))
                }
                _ => None,
            })
            .sum();
        let held = self.round.as_ref().map_or(0, Round::held_bytes);
        held.saturating_add(in_flight)
    }

    /// Fill phase: body requests, sized by bytes ([`BodySize::per_request`]), lowest
    /// blocks first, while an idle peer reaches the top of one and the window has room.
    /// The request holding the import cursor's block always may go out: without it the
    /// blocks held above it could never be imported, and the window never drain.
    pub(super) fn schedule_bodies(&mut self, now: Instant) {
        let per_request = self.body_size.per_request(&self.config);
        loop {
            let Some(round) = self.round.as_ref() else {
                return;
            };
            let numbers = round.bodies_wanted(per_request);
            let (Some(&first), Some(&top)) = (numbers.first(), numbers.last()) else {
                return;
            };
            if first != round.cursor() && self.window_held() >= self.config.window_bytes {
                return;
            }
            // Until a body's size is known, one request at a time: the window counts the
            // requests in flight by that size.
            if self.body_size.estimate().is_none() && self.bodies_in_flight() {
                return;
            }
            let Some(peer) = self.idle_peers(top, now).into_iter().next() else {
                return;
            };
            let Some(round) = self.round.as_mut() else {
                return;
            };
            let (hashes, headers) = round.take_bodies(&numbers);
            let id = self.start_request(peer, Kind::Bodies { numbers }, now);
            self.actions.push_back(Action::Bodies {
                id,
                peer,
                hashes,
                headers,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Taking a token whenever there is one, for 10 s: never more than the burst plus the
    /// rate times the time, and not fewer either (the bucket does not lose time).
    #[test]
    fn bucket_allows_its_rate_and_burst_and_no_more() {
        let start = Instant::now();
        let mut p = Pacer::new(48, 16, start);
        let mut now = start;
        let mut sent = 0u64;
        while now < start + Duration::from_secs(10) {
            if p.ready(now) {
                p.take(now);
                sent += 1;
                continue;
            }
            let next = p.ready_at().expect("empty bucket says when");
            assert!(next > now, "a wake-up in the past would spin");
            now = next;
        }
        let elapsed = (now - start).as_secs_f64();
        let most = 16.0 + 48.0 * elapsed;
        assert!(sent as f64 <= most + 1e-9, "{sent} > {most}");
        assert!(sent as f64 >= most - 1.0, "{sent} < {most}");
        // Settled at a time with a token, nothing to wake for.
        p.settle(now + Duration::from_secs(1));
        assert_eq!(p.ready_at(), None);
    }

    #[test]
    fn one_outlier_does_not_move_the_estimate() {
        let mut s = BodySize::default();
        let config = Config::default();
        assert_eq!(s.estimate(), None);
        assert_eq!(s.per_request(&config), FIRST_BODIES);
        for _ in 0..14 {
            s.record(100, 300_000); // 3,000 bytes a body
        }
        s.record(1, 2_000_000); // one huge body
        assert_eq!(s.estimate(), Some(3_000));
        assert_eq!(s.per_request(&config), 2 * 1024 * 1024 / 3_000);
        s.record(0, 0); // an empty answer says nothing
        assert_eq!(s.estimate(), Some(3_000));
        // Blocks that grow are followed within a few answers.
        for _ in 0..8 {
            s.record(10, 1_500_000);
        }
        assert_eq!(s.estimate(), Some(150_000));
        assert_eq!(s.per_request(&config), 13);
        // Tiny bodies: bounded by what peers serve.
        for _ in 0..15 {
            s.record(100, 300);
        }
        assert_eq!(s.per_request(&config), protocols::eth::serve::MAX_BODIES);
    }
}
