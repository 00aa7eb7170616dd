//! Connection slots of the HTTP endpoints, sans-IO: a per-IP cap, and slots reserved for
//! loopback clients so that the operator on the host can always get in.

use std::collections::HashMap;
use std::net::IpAddr;

use discovery::node::canonical_ip;

/// Which pool a connection's slot came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pool {
    /// Open to any client.
    General,
    /// Reserved for loopback clients.
    Local,
}

/// Why a connection is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Its address has the most connections allowed per IP.
    PerIp,
    /// Only reserved (loopback) slots are left.
    Full,
}

/// Free slots and open connections per client address.
#[derive(Debug)]
pub(crate) struct Slots {
    general: usize,
    local: usize,
    max_per_ip: usize,
    per_ip: HashMap<IpAddr, usize>,
}

impl Slots {
    /// `total` slots of which `reserved` are kept for loopback clients (at least one
    /// general and one reserved slot), and at most `max_per_ip` connections per address.
    pub(crate) fn new(total: usize, reserved: usize, max_per_ip: usize) -> Self {
        let total = total.max(2);
        let local = reserved.clamp(1, total - 1);
        Slots {
            general: total - local,
            local,
            max_per_ip: max_per_ip.max(1),
            per_ip: HashMap::new(),
        }
    }

    /// Whether some client could be admitted (else the caller leaves new clients in the
    /// accept backlog until a connection ends).
    pub(crate) fn any_free(&self) -> bool {
        self.general > 0 || self.local > 0
    }

    /// Takes a slot for a client at `ip`.
    pub(crate) fn admit(&mut self, ip: IpAddr) -> Result<Pool, Refused> {
        let ip = canonical_ip(ip);
        if self.per_ip.get(&ip).copied().unwrap_or(0) >= self.max_per_ip {
            return Err(Refused::PerIp);
        }
        let pool = if self.general > 0 {
            self.general -= 1;
            Pool::General
        } else if ip.is_loopback() && self.local > 0 {
            self.local -= 1;
            Pool::Local
        } else {
            return Err(Refused::Full);
        };
        *self.per_ip.entry(ip).or_insert(0) += 1;
        Ok(pool)
    }

    /// Returns the slot of a connection from `ip` that ended.
    pub(crate) fn release(&mut self, ip: IpAddr, pool: Pool) {
        let ip = canonical_ip(ip);
        match pool {
            Pool::General => self.general += 1,
            Pool::Local => self.local += 1,
        }
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Remote clients filling every general slot leave the reserved one to loopback.
    #[test]
    fn loopback_keeps_a_slot_when_remote_clients_fill_the_rest() {
        let mut s = Slots::new(8, 1, 2);
        for i in 0..7 {
            let a = ip(&format!("8.8.8.{i}"));
            assert_eq!(s.admit(a), Ok(Pool::General));
        }
        assert_eq!(s.admit(ip("9.9.9.9")), Err(Refused::Full));
        assert_eq!(s.admit(ip("::ffff:9.9.9.9")), Err(Refused::Full));
        assert_eq!(s.admit(ip("127.0.0.1")), Ok(Pool::Local));
        assert!(!s.any_free());
        s.release(ip("127.0.0.1"), Pool::Local);
        s.release(ip("8.8.8.0"), Pool::General);
        assert_eq!(s.admit(ip("9.9.9.9")), Ok(Pool::General));
    }

    #[test]
    fn per_ip_cap() {
        let mut s = Slots::new(64, 4, 2);
        assert!(s.admit(ip("8.8.8.8")).is_ok());
        assert!(s.admit(ip("::ffff:8.8.8.8")).is_ok());
        assert_eq!(s.admit(ip("8.8.8.8")), Err(Refused::PerIp));
        assert!(s.admit(ip("8.8.8.9")).is_ok());
        s.release(ip("8.8.8.8"), Pool::General);
        assert!(s.admit(ip("8.8.8.8")).is_ok());
    }
}
