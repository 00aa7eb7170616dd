//! In-order delivery per pair of nodes, and datagram loss, on top of the [`Net`].
//!
//! (Since this was written the [`Net`] itself delivers each pair's messages in order, so
//! the hold-back below no longer triggers; it is kept because it draws loss before
//! numbering, which the net's loss would not.)
//!
//! The net draws each message's latency jitter independently, so two datagrams sent
//! back to back between the same two nodes swap places about half the time. On the
//! internet, packets of one path almost never overtake each other, and discovery is
//! sensitive to it: a node answers a ping with Pong and then sends its held-back
//! FindNode, and a FindNode that overtakes the Pong is dropped as coming from an unbonded
//! node (with per-message jitter, about 10,000 such drops in a 300-node run, and lookups
//! that miss a quarter of the closest nodes). So datagrams carry a per-pair sequence
//! number and one that arrives early is held until the ones before it have arrived.
//!
//! Loss is drawn here, before sending (the net is configured lossless), so that every
//! sequence number sent is one that arrives, unless an end leaves the network for good.
//!
//! [`Net`]: crate::sim::net::Net

use std::collections::HashMap;

use rand::Rng;
use rand::rngs::StdRng;

#[derive(Default)]
struct Pair {
    sent: u32,
    delivered: u32,
    held: Vec<(u32, Vec<u8>)>,
}

/// Sequence state of the pairs with datagrams in flight.
pub(crate) struct Fifo {
    pairs: HashMap<(usize, usize), Pair>,
    loss: f64,
    rng: StdRng,
}

impl Fifo {
    pub(crate) fn new(loss: f64, rng: StdRng) -> Self {
        Fifo {
            pairs: HashMap::new(),
            loss,
            rng,
        }
    }

    /// The sequence number for a datagram `from` → `to`, or `None` when it is lost.
    pub(crate) fn send(&mut self, from: usize, to: usize) -> Option<u32> {
        if self.loss > 0.0 && self.rng.random::<f64>() < self.loss {
            return None;
        }
        let p = self.pairs.entry((from, to)).or_default();
        let seq = p.sent;
        p.sent = p.sent.wrapping_add(1);
        Some(seq)
    }

    /// A datagram arrived: the datagrams now deliverable, in order (none when it came
    /// early; it is held).
    pub(crate) fn arrive(
        &mut self,
        from: usize,
        to: usize,
        seq: u32,
        data: Vec<u8>,
    ) -> Vec<Vec<u8>> {
        let p = self.pairs.entry((from, to)).or_default();
        if seq != p.delivered {
            p.held.push((seq, data));
            return Vec::new();
        }
        let mut out = vec![data];
        p.delivered = p.delivered.wrapping_add(1);
        while let Some(k) = p.held.iter().position(|(s, _)| *s == p.delivered) {
            out.push(p.held.swap_remove(k).1);
            p.delivered = p.delivered.wrapping_add(1);
        }
        out
    }

    /// Forgets pairs with nothing in flight, and pairs with an end that left (their
    /// datagrams are dropped by the net), so the map holds only live traffic.
    pub(crate) fn prune(&mut self, online: impl Fn(usize) -> bool) {
        self.pairs.retain(|&(a, b), p| {
            (p.sent != p.delivered || !p.held.is_empty()) && online(a) && online(b)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn early_datagrams_wait_for_earlier_ones() {
        let mut f = Fifo::new(0.0, StdRng::seed_from_u64(1));
        let (a, b) = (f.send(1, 2).unwrap(), f.send(1, 2).unwrap());
        let c = f.send(1, 2).unwrap();
        assert!(f.arrive(1, 2, c, vec![3]).is_empty());
        assert!(f.arrive(1, 2, b, vec![2]).is_empty());
        assert_eq!(f.arrive(1, 2, a, vec![1]), vec![vec![1], vec![2], vec![3]]);
        f.prune(|_| true);
        assert!(f.pairs.is_empty());
        // Another pair is independent.
        let s = f.send(2, 1).unwrap();
        assert_eq!(f.arrive(2, 1, s, vec![9]), vec![vec![9]]);
    }
}
