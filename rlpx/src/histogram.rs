//! A fixed-bucket latency histogram for the metrics endpoint: lock-free to record (each
//! observation is two relaxed atomic adds: its one bucket and the sum), rendered as a
//! Prometheus `histogram` with cumulative `le` buckets.
//!
//! Buckets are fixed at construction, so memory is constant whatever is observed; a value
//! above the last bound only counts in `+Inf`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Bounds (seconds) for network round trips and handshakes: 1 ms (loopback) to 10 s (the
/// handshake and request timeouts), roughly ×2.5 apart like Prometheus' defaults.
pub const NETWORK_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Bounds (seconds) for handling one message locally: 10 µs to 1 s.
pub const HANDLING_BUCKETS: &[f64] = &[
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 1.0,
];

/// Observations of durations in fixed buckets.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Non-cumulative counts: `counts[i]` holds values in `(bounds[i-1], bounds[i]]`; the
    /// last slot holds values above every bound.
    counts: Box<[AtomicU64]>,
    sum_nanos: AtomicU64,
}

impl Histogram {
    /// An empty histogram over `bounds` (ascending, in seconds).
    pub fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = self.bounds.partition_point(|b| *b < secs);
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// Writes the `_bucket`, `_sum` and `_count` series of `name` with `labels` (already
    /// formatted as `k="v",...`, or empty).
    pub fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (i, c) in self.counts.iter().enumerate() {
            cumulative += c.load(Ordering::Relaxed);
            let le = match self.bounds.get(i) {
                Some(b) => b.to_string(),
                None => "+Inf".to_owned(),
            };
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}"
            );
        }
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {cumulative}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_the_overflow_counts_in_inf() {
        let h = Histogram::new(&[0.01, 0.1]);
        h.observe(Duration::from_millis(5));
        h.observe(Duration::from_millis(10)); // on the bound: `le` is inclusive
        h.observe(Duration::from_millis(50));
        h.observe(Duration::from_secs(3));
        let mut out = String::new();
        h.render(&mut out, "x_seconds", "dir=\"in\"");
        assert_eq!(
            out,
            "x_seconds_bucket{dir=\"in\",le=\"0.01\"} 2\n\
             x_seconds_bucket{dir=\"in\",le=\"0.1\"} 3\n\
             x_seconds_bucket{dir=\"in\",le=\"+Inf\"} 4\n\
             x_seconds_sum{dir=\"in\"} 3.065\n\
             x_seconds_count{dir=\"in\"} 4\n"
        );
        assert_eq!(h.count(), 4);
    }

    #[test]
    fn without_labels() {
        let h = Histogram::new(&[1.0]);
        let mut out = String::new();
        h.render(&mut out, "y", "");
        assert_eq!(
            out,
            "y_bucket{le=\"1\"} 0\ny_bucket{le=\"+Inf\"} 0\ny_sum 0\ny_count 0\n"
        );
    }
}
