//! Per-IP rate limiting and the external address vote, both with fixed memory.

use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

/// Slots of the rate limiter: memory stays fixed however many sources send.
const SLOTS: usize = 4096;

/// Token buckets indexed by a keyed hash of the source IP. Colliding IPs share a bucket,
/// which only makes the limit stricter for them.
pub(crate) struct RateLimiter {
    slots: Vec<(f32, Option<Instant>)>,
    key: (u64, u64),
    rate: f32,
    burst: f32,
}

impl RateLimiter {
    pub(crate) fn new(rate: u32, burst: u32, key: (u64, u64)) -> Self {
        RateLimiter {
            slots: vec![(0.0, None); SLOTS],
            key,
            rate: rate as f32,
            burst: burst.max(1) as f32,
        }
    }

    /// Takes one token for `ip`; false when the source is over its rate.
    pub(crate) fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        let mut h = std::hash::DefaultHasher::new();
        self.key.hash(&mut h);
        ip.hash(&mut h);
        let i = (h.finish() % SLOTS as u64) as usize;
        let Some((tokens, last)) = self.slots.get_mut(i) else {
            return false;
        };
        let refill = match last {
            Some(t) => now.saturating_duration_since(*t).as_secs_f32() * self.rate,
            None => self.burst,
        };
        *tokens = (*tokens + refill).min(self.burst);
        *last = Some(now);
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Recent `to` addresses from Pongs, one vote per source host: a single host with many
/// node ids gets one vote, so it cannot steer our advertised address. Loopback sources
/// (local test networks, where every node shares 127.0.0.1) vote per port.
pub(crate) struct Votes {
    recent: VecDeque<(SocketAddr, IpAddr)>,
    cap: usize,
}

/// The identity a vote is counted under.
fn voter(from: SocketAddr) -> SocketAddr {
    if from.ip().is_loopback() {
        from
    } else {
        SocketAddr::new(from.ip(), 0)
    }
}

impl Votes {
    pub(crate) fn new(cap: usize) -> Self {
        Votes {
            recent: VecDeque::with_capacity(cap),
            cap,
        }
    }

    /// Records a vote and returns the address holding a majority of at least `min` votes.
    pub(crate) fn add(&mut self, from: SocketAddr, ip: IpAddr, min: usize) -> Option<IpAddr> {
        let voter = voter(from);
        self.recent.retain(|(v, _)| *v != voter);
        if self.recent.len() >= self.cap {
            self.recent.pop_front();
        }
        self.recent.push_back((voter, ip));
        let count = |ip: IpAddr| self.recent.iter().filter(|(_, a)| *a == ip).count();
        let (best, n) = self
            .recent
            .iter()
            .map(|(_, a)| (*a, count(*a)))
            .max_by_key(|(_, n)| *n)?;
        (n >= min && n * 2 > self.recent.len()).then_some(best)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rate_limit_refills() {
        let mut r = RateLimiter::new(10, 5, (1, 2));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let now = Instant::now();
        assert_eq!((0..100).filter(|_| r.allow(ip, now)).count(), 5);
        assert!(
            r.allow("192.0.2.2".parse().unwrap(), now),
            "other sources unaffected"
        );
        assert_eq!(
            (0..100)
                .filter(|_| r.allow(ip, now + Duration::from_millis(500)))
                .count(),
            5
        );
    }

    #[test]
    fn majority_vote() {
        let mut v = Votes::new(20);
        let a: IpAddr = "1.1.1.1".parse().unwrap();
        let b: IpAddr = "2.2.2.2".parse().unwrap();
        let from = |s: &str| -> SocketAddr { s.parse().unwrap() };
        assert_eq!(v.add(from("9.9.9.1:1"), a, 2), None);
        assert_eq!(
            v.add(from("9.9.9.1:2"), a, 2),
            None,
            "one vote per host, any port or id"
        );
        assert_eq!(v.add(from("9.9.9.2:1"), a, 2), Some(a));
        assert_eq!(v.add(from("9.9.9.3:1"), b, 2), Some(a));
        assert_eq!(v.add(from("9.9.9.4:1"), b, 2), None, "tie");
        assert_eq!(
            v.add(from("127.0.0.1:5"), b, 2),
            Some(b),
            "loopback votes per port"
        );
    }
}
