//! Node-wide latency histograms of the eth handlers, for the metrics endpoint: how long
//! handling one message of each type takes, and how long the peer takes to answer each
//! type of our requests.
//!
//! Labels are fixed sets chosen here (the spec's message names by code, our five request
//! kinds), never anything a peer sends: a code outside the table (which cannot decode)
//! is not recorded. Recording is a pair of `Instant::now()` calls and two relaxed atomic
//! adds ([`Histogram::observe`]), cheap next to decoding the message.

use std::time::Duration;

use rlpx::histogram::{HANDLING_BUCKETS, Histogram, NETWORK_BUCKETS};

use super::messages::code;
use super::requests::Kind;

/// The spec's name of each eth message code (eth/68 to eth/72), indexed by code; `None`
/// for codes no version defines (0x0b to 0x0e).
const NAMES: [Option<&str>; 22] = {
    let mut n = [None; 22];
    n[code::STATUS as usize] = Some("Status");
    n[code::NEW_BLOCK_HASHES as usize] = Some("NewBlockHashes");
    n[code::TRANSACTIONS as usize] = Some("Transactions");
    n[code::GET_BLOCK_HEADERS as usize] = Some("GetBlockHeaders");
    n[code::BLOCK_HEADERS as usize] = Some("BlockHeaders");
    n[code::GET_BLOCK_BODIES as usize] = Some("GetBlockBodies");
    n[code::BLOCK_BODIES as usize] = Some("BlockBodies");
    n[code::NEW_BLOCK as usize] = Some("NewBlock");
    n[code::NEW_POOLED_TRANSACTION_HASHES as usize] = Some("NewPooledTransactionHashes");
    n[code::GET_POOLED_TRANSACTIONS as usize] = Some("GetPooledTransactions");
    n[code::POOLED_TRANSACTIONS as usize] = Some("PooledTransactions");
    n[code::GET_RECEIPTS as usize] = Some("GetReceipts");
    n[code::RECEIPTS as usize] = Some("Receipts");
    n[code::BLOCK_RANGE_UPDATE as usize] = Some("BlockRangeUpdate");
    n[code::GET_BLOCK_ACCESS_LISTS as usize] = Some("GetBlockAccessLists");
    n[code::BLOCK_ACCESS_LISTS as usize] = Some("BlockAccessLists");
    n[code::GET_CELLS as usize] = Some("GetCells");
    n[code::CELLS as usize] = Some("Cells");
    n
};

/// The request kinds we make, in [`Metrics::round_trips`] order.
const REQUESTS: [&str; 5] = [
    "headers",
    "bodies",
    "pooled_transactions",
    "cells",
    "receipts",
];

/// Latency histograms of every eth peer of one node ([`super::Handle::metrics`]).
#[derive(Debug)]
pub struct Metrics {
    /// Handling time per message code (the slots of undefined codes stay empty).
    handling: Box<[Histogram]>,
    /// Round trip per request kind, in [`REQUESTS`] order.
    round_trips: Box<[Histogram]>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            handling: NAMES
                .iter()
                .map(|_| Histogram::new(HANDLING_BUCKETS))
                .collect(),
            round_trips: REQUESTS
                .iter()
                .map(|_| Histogram::new(NETWORK_BUCKETS))
                .collect(),
        }
    }
}

impl Metrics {
    /// Records that handling a message with code `code` took `d` (from its arrival off
    /// the session's queue to the handler being ready for the next one: decoding,
    /// checks, and queueing what it sends back). Codes without a name are ignored.
    pub fn observe_handling(&self, code: u8, d: Duration) {
        let i = usize::from(code);
        if NAMES.get(i).is_some_and(Option::is_some) {
            self.handling[i].observe(d); // ok: `handling` has one slot per `NAMES` entry
        }
    }

    /// Records that the peer answered a request of `kind` after `d`.
    pub fn observe_round_trip(&self, kind: &Kind, d: Duration) {
        let i = match kind {
            Kind::Headers { .. } => 0,
            Kind::Bodies { .. } => 1,
            Kind::Pooled { .. } => 2,
            Kind::Cells { .. } => 3,
            Kind::Receipts { .. } => 4,
        };
        self.round_trips[i].observe(d); // ok: `round_trips` has one slot per kind
    }

    /// Handling time by message name, for every message type.
    pub fn handling(&self) -> impl Iterator<Item = (&'static str, &Histogram)> {
        NAMES
            .iter()
            .zip(self.handling.iter())
            .filter_map(|(n, h)| n.map(|n| (n, h)))
    }

    /// Round-trip time by request kind (`headers`, `bodies`, `pooled_transactions`,
    /// `cells`, `receipts`).
    pub fn round_trips(&self) -> impl Iterator<Item = (&'static str, &Histogram)> {
        REQUESTS.iter().copied().zip(self.round_trips.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_codes_and_unknown_codes_are_not_recorded() {
        let m = Metrics::default();
        m.observe_handling(code::GET_BLOCK_HEADERS, Duration::from_micros(30));
        m.observe_handling(0x0b, Duration::from_micros(30));
        m.observe_handling(200, Duration::from_micros(30));
        m.observe_round_trip(&Kind::Pooled { count: 3 }, Duration::from_millis(4));
        m.observe_round_trip(&Kind::Receipts { count: 2 }, Duration::from_millis(9));
        let counted: Vec<_> = m
            .handling()
            .filter(|(_, h)| h.count() > 0)
            .map(|(n, h)| (n, h.count()))
            .collect();
        assert_eq!(counted, vec![("GetBlockHeaders", 1)]);
        assert_eq!(m.handling().count(), 18, "every defined code, once");
        let rtt: Vec<_> = m.round_trips().map(|(n, h)| (n, h.count())).collect();
        assert_eq!(
            rtt,
            vec![
                ("headers", 0),
                ("bodies", 0),
                ("pooled_transactions", 1),
                ("cells", 0),
                ("receipts", 1)
            ]
        );
    }
}
