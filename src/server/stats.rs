//! Server counters for metrics: dials and their outcomes, handshake failures, rejections
//! and disconnects by reason.

use crate::histogram::{Histogram, NETWORK_BUCKETS};
use rlpx::{CloseReason, DisconnectReason};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of one server. Label sets are small and fixed (reason names), so the maps stay
/// bounded.
#[derive(Debug)]
pub struct Stats {
    /// Dials started.
    pub dials: AtomicU64,
    /// Dials that reached Hello.
    pub dials_ok: AtomicU64,
    /// Dials that failed before Hello.
    pub dials_failed: AtomicU64,
    /// Time from the TCP connection to a completed Hello exchange, inbound handshakes.
    pub handshake_inbound: Histogram,
    /// The same for our dials (from the start of the TCP connect).
    pub handshake_outbound: Histogram,
    by_label: Mutex<BTreeMap<(&'static str, String), u64>>,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            dials: AtomicU64::default(),
            dials_ok: AtomicU64::default(),
            dials_failed: AtomicU64::default(),
            handshake_inbound: Histogram::new(NETWORK_BUCKETS),
            handshake_outbound: Histogram::new(NETWORK_BUCKETS),
            by_label: Mutex::default(),
        }
    }
}

impl Stats {
    fn bump(&self, kind: &'static str, label: String) {
        if let Ok(mut m) = self.by_label.lock() {
            *m.entry((kind, label)).or_default() += 1;
        }
    }

    pub(crate) fn dial_started(&self) {
        self.dials.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn dial_finished(&self, ok: bool) {
        let c = if ok {
            &self.dials_ok
        } else {
            &self.dials_failed
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn inbound_rejected(&self, why: &'static str) {
        self.bump("inbound_rejected", why.to_string());
    }

    pub(crate) fn handshake_failed(&self, e: &rlpx::Error) {
        let label = match e {
            rlpx::Error::Handshake(rlpx::handshake::Error::Timeout) | rlpx::Error::Timeout(_) => {
                "timeout"
            }
            rlpx::Error::Handshake(_) => "ecies",
            rlpx::Error::Frame(_) => "frame",
            rlpx::Error::P2p(_) | rlpx::Error::ExpectedHello(_) => "bad hello",
            rlpx::Error::UnexpectedIdentity | rlpx::Error::NullIdentity => "identity",
            rlpx::Error::NoSharedCapabilities => "useless peer",
            rlpx::Error::Disconnected(_) => "remote disconnect",
            rlpx::Error::MessageTooLarge(_) | rlpx::Error::Closed => "closed",
        };
        self.bump("handshake_failed", label.to_string());
    }

    pub(crate) fn rejected(&self, reason: DisconnectReason) {
        self.bump("rejected", reason.to_string());
    }

    pub(crate) fn disconnected(&self, reason: &CloseReason) {
        let label = match reason {
            CloseReason::Local(r) => format!("local: {r}"),
            CloseReason::Remote(r) => format!("remote: {r}"),
            CloseReason::Failed(_) => "connection failed".to_string(),
        };
        self.bump("disconnects", label);
    }

    /// Labelled counters as `(family, label, value)`: `inbound_rejected`,
    /// `handshake_failed`, `rejected`, `disconnects`.
    pub fn labelled(&self) -> Vec<(&'static str, String, u64)> {
        self.by_label
            .lock()
            .map(|m| m.iter().map(|((k, l), v)| (*k, l.clone(), *v)).collect())
            .unwrap_or_default()
    }
}
