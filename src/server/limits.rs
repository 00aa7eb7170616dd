//! Per-address limits on inbound connections, sans-IO: the per-IP throttle, per-subnet
//! pending-handshake slots, and per-IP and per-subnet caps on inbound peers.
//!
//! A subnet is a /24 for IPv4 and a /64 for IPv6 (one customer's LAN; the unit of the
//! discovery table's IP limits). IPv4-mapped IPv6 sources count as their IPv4 address.
//! Addresses in [`super::Config::ip_limit_exempt`] (default: loopback, so local test
//! networks with many nodes on one host work) are exempt from the per-subnet and per-IP
//! caps; trusted peers are exempt from the peer caps.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use discovery::node::canonical_ip;

/// Inbound peers from one IP address. Two: a couple of nodes behind one NAT address;
/// go-ethereum's discovery admits two per /24 per bucket (`bucketIPLimit`) in the same spirit.
pub const MAX_INBOUND_PER_IP: usize = 2;
/// Inbound peers from one subnet: 4 of the 34 inbound slots a default node has, so
/// filling them takes at least nine networks.
pub const MAX_INBOUND_PER_SUBNET: usize = 4;
/// Inbound handshakes in progress from one subnet: 5 of the 50 pending slots, so one
/// network cannot keep the handshake queue full for everyone else.
pub const MAX_PENDING_PER_SUBNET: usize = 5;
/// Source addresses remembered by the inbound throttle. Past it the oldest entry is
/// forgotten (the throttle fails open): a flood from many addresses makes the throttle
/// less strict for a while instead of refusing every newcomer; the pending-handshake
/// slots still bound the work.
pub const MAX_THROTTLED: usize = 8192;

/// The subnet `ip` belongs to.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Subnet {
    /// An IPv4 /24.
    V4([u8; 3]),
    /// An IPv6 /64.
    V6([u8; 8]),
}

/// The subnet of `ip` (IPv4-mapped addresses as IPv4).
pub fn subnet(ip: IpAddr) -> Subnet {
    match canonical_ip(ip) {
        IpAddr::V4(a) => {
            let [x, y, z, _] = a.octets();
            Subnet::V4([x, y, z])
        }
        IpAddr::V6(a) => {
            let [a0, a1, a2, a3, a4, a5, a6, a7, ..] = a.octets();
            Subnet::V6([a0, a1, a2, a3, a4, a5, a6, a7])
        }
    }
}

/// One inbound attempt per IP per period, in bounded memory that fails open.
pub struct Throttle {
    period: Duration,
    cap: usize,
    until: HashMap<IpAddr, Instant>,
    /// Insertion order, which is expiry order (one period for all).
    order: VecDeque<(IpAddr, Instant)>,
}

impl Throttle {
    /// A throttle allowing one attempt per `period`, remembering at most `cap` sources.
    pub fn new(period: Duration, cap: usize) -> Self {
        Self {
            period,
            cap: cap.max(1),
            until: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Whether an attempt from `ip` at `now` may proceed; records it if so.
    pub fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        let ip = canonical_ip(ip);
        self.expire(now);
        if self.until.get(&ip).is_some_and(|t| *t > now) {
            return false;
        }
        while self.until.len() >= self.cap {
            // Full of live entries: forget the oldest rather than refuse a newcomer.
            let Some((old, t)) = self.order.pop_front() else {
                break;
            };
            if self.until.get(&old) == Some(&t) {
                self.until.remove(&old);
            }
        }
        let t = now + self.period;
        self.until.insert(ip, t);
        self.order.push_back((ip, t));
        true
    }

    /// Number of remembered sources.
    pub fn len(&self) -> usize {
        self.until.len()
    }

    /// Whether no source is remembered.
    pub fn is_empty(&self) -> bool {
        self.until.is_empty()
    }

    fn expire(&mut self, now: Instant) {
        while let Some((ip, t)) = self.order.front().copied() {
            if t > now {
                break;
            }
            self.order.pop_front();
            if self.until.get(&ip) == Some(&t) {
                self.until.remove(&ip);
            }
        }
    }
}

/// Per-subnet counts of inbound handshakes in progress, shared with the handshake tasks.
#[derive(Clone, Default)]
pub struct PendingSlots {
    per_net: Arc<Mutex<HashMap<Subnet, usize>>>,
}

/// A handshake's slot; released when dropped.
pub struct PendingSlot {
    slots: PendingSlots,
    net: Subnet,
}

impl PendingSlots {
    /// Takes a slot for `ip`'s subnet, or `None` when it already has `max` handshakes.
    pub fn try_take(&self, ip: IpAddr, max: usize) -> Option<PendingSlot> {
        let net = subnet(ip);
        let mut map = self.per_net.lock().ok()?;
        let n = map.entry(net).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(PendingSlot {
            slots: self.clone(),
            net,
        })
    }

    /// Handshakes in progress from `ip`'s subnet.
    pub fn count(&self, ip: IpAddr) -> usize {
        let net = subnet(ip);
        (self.per_net.lock().ok())
            .and_then(|m| m.get(&net).copied())
            .unwrap_or(0)
    }
}

impl Drop for PendingSlot {
    fn drop(&mut self) {
        if let Ok(mut map) = self.slots.per_net.lock()
            && let Some(n) = map.get_mut(&self.net)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.net);
            }
        }
    }
}

/// Why an inbound peer is over its address caps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Over {
    /// [`MAX_INBOUND_PER_IP`] (or the configured figure) from this address.
    Ip,
    /// [`MAX_INBOUND_PER_SUBNET`] (or the configured figure) from this subnet.
    Subnet,
}

/// Checks a new inbound peer from `ip` against the inbound peers already connected from
/// `existing` addresses: at most `per_ip` from its address and `per_subnet` from its subnet.
pub fn check_inbound(
    ip: IpAddr,
    existing: impl Iterator<Item = IpAddr>,
    per_ip: usize,
    per_subnet: usize,
) -> Result<(), Over> {
    let (ip, net) = (canonical_ip(ip), subnet(ip));
    let (mut same_ip, mut same_net) = (0, 0);
    for other in existing {
        let other = canonical_ip(other);
        same_ip += usize::from(other == ip);
        same_net += usize::from(subnet(other) == net);
    }
    if same_ip >= per_ip {
        Err(Over::Ip)
    } else if same_net >= per_subnet {
        Err(Over::Subnet)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// More than [`MAX_THROTTLED`] sources within one period: newcomers are still let in
    /// (the oldest entries are forgotten), a repeat from a remembered source is not.
    #[test]
    fn throttle_fails_open_when_full() {
        let mut t = Throttle::new(Duration::from_secs(30), MAX_THROTTLED);
        let now = Instant::now();
        for i in 0..MAX_THROTTLED as u32 + 10 {
            let a = IpAddr::V4(std::net::Ipv4Addr::from(0x0b00_0000 + i));
            assert!(t.allow(a, now), "source {i} refused");
        }
        assert!(t.len() <= MAX_THROTTLED);
        let honest = ip("8.8.8.8");
        assert!(t.allow(honest, now), "a newcomer is let in");
        assert!(!t.allow(honest, now), "a repeat within the period is not");
        assert!(!t.allow(ip("::ffff:8.8.8.8"), now), "nor its mapped form");
        assert!(t.allow(honest, now + Duration::from_secs(31)));
        // Expired entries are forgotten.
        let later = now + Duration::from_secs(100);
        assert!(t.allow(ip("9.9.9.9"), later));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn pending_slots_per_subnet() {
        let slots = PendingSlots::default();
        let held: Vec<_> = (1..=MAX_PENDING_PER_SUBNET)
            .map(|i| slots.try_take(ip(&format!("1.2.3.{i}")), MAX_PENDING_PER_SUBNET))
            .collect();
        assert!(held.iter().all(Option::is_some));
        assert!(
            slots
                .try_take(ip("1.2.3.200"), MAX_PENDING_PER_SUBNET)
                .is_none()
        );
        assert!(
            slots
                .try_take(ip("1.2.4.1"), MAX_PENDING_PER_SUBNET)
                .is_some()
        );
        drop(held);
        assert_eq!(slots.count(ip("1.2.3.1")), 0);
        assert!(
            slots
                .try_take(ip("1.2.3.200"), MAX_PENDING_PER_SUBNET)
                .is_some()
        );
    }

    #[test]
    fn inbound_caps_per_ip_and_subnet() {
        let peers = [
            ip("1.2.3.4"),
            ip("::ffff:1.2.3.4"),
            ip("1.2.3.5"),
            ip("1.2.3.6"),
        ];
        let check = |new: &str, n: usize| check_inbound(ip(new), peers[..n].iter().copied(), 2, 4);
        assert_eq!(check("1.2.3.4", 1), Ok(()));
        assert_eq!(
            check("1.2.3.4", 2),
            Err(Over::Ip),
            "mapped counts as the same IP"
        );
        assert_eq!(check("1.2.3.7", 3), Ok(()));
        assert_eq!(check("1.2.3.7", 4), Err(Over::Subnet));
        assert_eq!(check("1.2.4.7", 4), Ok(()));
        let v6 = [ip("2a00::1"), ip("2a00::2"), ip("2a00::3"), ip("2a00::4")];
        assert_eq!(
            check_inbound(ip("2a00::ffff"), v6.into_iter(), 2, 4),
            Err(Over::Subnet)
        );
        assert_eq!(
            check_inbound(ip("2a00:0:0:1::1"), v6.into_iter(), 2, 4),
            Ok(())
        );
    }
}
