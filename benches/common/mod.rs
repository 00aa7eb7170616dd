//! What the server benchmarks share: an idle subprotocol to connect with, and RSS.

/// This process's resident set size, in KiB (0 where /proc is missing).
pub(crate) fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}

/// RLPx settings offering the one idle protocol.
pub(crate) fn rlpx_config() -> rlpx::Config {
    rlpx::Config {
        protocols: vec![rlpx::Protocol::new("idle", 1, 1)],
        ..Default::default()
    }
}

/// A subprotocol that reads and ignores everything: peers stay connected and idle.
pub(crate) struct Idle;

impl protocols::Subprotocol for Idle {
    fn protocols(&self) -> Vec<rlpx::Protocol> {
        rlpx_config().protocols
    }
    fn handle(&self, mut peer: rlpx::ProtocolHandle) -> protocols::Handler {
        Box::pin(async move { while peer.recv().await.is_some() {} })
    }
}
