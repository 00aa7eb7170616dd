//! The inbound handshakes in progress, at most [`super::Config::max_pending_inbound`],
//! shared fairly between subnets.
//!
//! A first-come cap lets anyone with a few /24s (ten, at five pending slots each) hold every
//! slot with connections that never finish their handshake, so that no honest peer gets in
//! until they time out (`benches/flood.rs` measured 25 of 28 good dials refused under such
//! a flood). Instead, when the table is full a newcomer takes the slot of the oldest
//! handshake of the subnet holding the most slots, provided that subnet holds more than the
//! newcomer's does: a subnet can be crowded out only by subnets holding fewer slots, so an
//! honest peer from a subnet of its own always gets in, and the attackers churn among
//! themselves.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use super::limits::Subnet;

/// The table of pending handshakes. Cheap to clone (shared with the handshake tasks).
#[derive(Clone)]
pub(super) struct Table {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    max: usize,
    next: u64,
    /// By admission order (oldest first): subnet, and the task to abort on eviction.
    entries: BTreeMap<u64, (Subnet, Option<tokio::task::AbortHandle>)>,
    per_net: HashMap<Subnet, usize>,
}

/// A handshake's place in the table; given back when dropped.
pub(super) struct Ticket {
    table: Table,
    id: u64,
}

impl Table {
    /// A table of at most `max` handshakes.
    pub(super) fn new(max: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                max: max.max(1),
                next: 0,
                entries: BTreeMap::new(),
                per_net: HashMap::new(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Single-step updates only: a poisoned lock is still consistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits a handshake from `net`, evicting (aborting) another when full and fair;
    /// `None` when the table is full of subnets no heavier than `net`'s.
    pub(super) fn admit(&self, net: Subnet) -> Option<Ticket> {
        let mut t = self.lock();
        if t.entries.len() >= t.max {
            let mine = t.per_net.get(&net).copied().unwrap_or(0);
            let (&heavy, &most) = t.per_net.iter().max_by_key(|(_, n)| **n)?;
            if most <= mine {
                return None;
            }
            let victim = t
                .entries
                .iter()
                .find(|(_, (n, _))| *n == heavy)
                .map(|(id, _)| *id)?;
            if let Some(abort) = t.remove(victim) {
                abort.abort();
            }
        }
        let id = t.next;
        t.next += 1;
        t.entries.insert(id, (net, None));
        *t.per_net.entry(net).or_insert(0) += 1;
        Some(Ticket {
            table: self.clone(),
            id,
        })
    }

    /// Handshakes in progress.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether none is in progress.
    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Inner {
    fn remove(&mut self, id: u64) -> Option<tokio::task::AbortHandle> {
        let (net, abort) = self.entries.remove(&id)?;
        if let Some(n) = self.per_net.get_mut(&net) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_net.remove(&net);
            }
        }
        abort
    }
}

impl Ticket {
    /// Its id, for [`Table::set_task`].
    pub(super) fn id(&self) -> u64 {
        self.id
    }
}

impl Table {
    /// Names the task to abort if handshake `id` is evicted.
    pub(super) fn set_task(&self, id: u64, abort: tokio::task::AbortHandle) {
        if let Some(e) = self.lock().entries.get_mut(&id) {
            e.1 = Some(abort);
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.table.lock().remove(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(i: u8) -> Subnet {
        Subnet::V4([10, 0, i])
    }

    #[test]
    fn a_newcomer_from_a_lighter_subnet_takes_the_heaviest_subnets_oldest_slot() {
        let t = Table::new(4);
        let a: Vec<_> = (0..3).map(|_| t.admit(net(1)).unwrap()).collect();
        let b = t.admit(net(2)).unwrap();
        assert_eq!(t.len(), 4);
        // Full: subnet 2 (one slot) crowds out subnet 1 (three).
        let c = t.admit(net(2)).unwrap();
        assert_eq!(t.len(), 4);
        // The oldest of subnet 1 went; the others stayed.
        assert!(!t.lock().entries.contains_key(&a[0].id));
        assert!(t.lock().entries.contains_key(&a[1].id));
        // Subnets 1 and 2 hold two each: a third from subnet 2 is refused, one from a
        // new subnet gets in.
        assert!(t.admit(net(2)).is_none());
        let d = t.admit(net(3)).unwrap();
        assert_eq!(t.len(), 4);
        drop((a, b, c, d));
        assert!(t.is_empty());
    }

    #[test]
    fn slots_come_back_when_tickets_drop() {
        let t = Table::new(2);
        let x = t.admit(net(1)).unwrap();
        let y = t.admit(net(1)).unwrap();
        // Full of subnet 1: another from subnet 1 is refused.
        assert!(t.admit(net(1)).is_none());
        drop(x);
        let z = t.admit(net(1)).unwrap();
        drop((y, z));
        assert!(t.is_empty());
        assert!(t.lock().per_net.is_empty());
    }

    #[tokio::test]
    async fn an_evicted_handshake_is_aborted() {
        let t = Table::new(1);
        let ticket = t.admit(net(1)).unwrap();
        let task = tokio::spawn(async move {
            let _ticket = ticket;
            std::future::pending::<()>().await
        });
        t.set_task(0, task.abort_handle());
        let _newcomer = t.admit(net(2)).unwrap();
        assert!(task.await.unwrap_err().is_cancelled());
        assert_eq!(t.len(), 1);
    }
}
