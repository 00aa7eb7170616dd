//! What the server benchmarks share: an idle subprotocol to connect with, RSS and CPU clocks.

use std::time::Duration;

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

/// CPU time this thread has run (`CLOCK_THREAD_CPUTIME_ID`): a bound timed this way holds
/// when other processes share the core.
#[allow(dead_code)] // not every bench binary uses every helper
pub(crate) fn thread_cpu() -> Duration {
    cpu_clock(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// CPU time every thread of this process has run so far (`CLOCK_PROCESS_CPUTIME_ID`).
#[allow(dead_code)] // not every bench binary uses every helper
pub(crate) fn process_cpu() -> Duration {
    cpu_clock(libc::CLOCK_PROCESS_CPUTIME_ID)
}

fn cpu_clock(clock: libc::clockid_t) -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}
