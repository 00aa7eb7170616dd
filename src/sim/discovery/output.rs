//! The discovery scenario's CSVs, plots and summary.

use crate::sim::report::{self, CdfSeries, Csv, f3};

use super::Params;
use super::world::{LookupDone, Outcome};

/// The figures of one run (also `summary.csv`).
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// `(metric, value)` rows, in order.
    pub rows: Vec<(String, String)>,
    /// Lookups started.
    pub lookups: usize,
    /// Lookups that finished.
    pub finished: usize,
    /// Mean share of the true 16 closest a finished lookup returned.
    pub found_share: f64,
    /// Share of finished lookups that returned exactly the true 16 closest.
    pub exact_share: f64,
    /// Mean rounds per finished lookup.
    pub rounds: f64,
    /// Mean datagrams (sent + received by the looking-up node) per finished lookup.
    pub packets: f64,
    /// Table entries of honest nodes, mean at the end.
    pub avg_entries: f64,
    /// Table entries of honest nodes, smallest at the end.
    pub min_entries: usize,
    /// Share of honest nodes' table entries that are garbage nodes, at the end.
    pub garbage_in_tables: f64,
    /// Share of returned lookup results that are garbage nodes.
    pub garbage_in_results: f64,
    /// Share of started nodes that were garbage nodes.
    pub garbage_nodes: f64,
}

impl Summary {
    /// The summary as a fixed-width table.
    pub fn table(&self) -> String {
        let rows: Vec<Vec<String>> = (self.rows.iter())
            .map(|(k, v)| vec![k.clone(), v.clone()])
            .collect();
        report::table(&["metric", "value"], &rows)
    }
}

fn mean(v: impl Iterator<Item = f64>) -> f64 {
    let (s, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    if n == 0 { 0.0 } else { s / n as f64 }
}

/// Builds the summary and the files (name, contents) of a run.
pub(crate) fn report(p: &Params, o: &Outcome) -> (Summary, Vec<(String, String)>) {
    let k = discovery::lookup::K as f64;
    let mut files = Vec::new();
    let mut fill = Csv::new(&[
        "t_s",
        "online",
        "sampled",
        "avg_entries",
        "min_entries",
        "avg_buckets",
        "min_buckets",
        "garbage_share",
        "dead_share",
    ]);
    for r in &o.fill {
        fill.row([
            f3(r.t.as_secs_f64()),
            r.online.to_string(),
            r.sampled.to_string(),
            f3(r.avg_entries),
            r.min_entries.to_string(),
            f3(r.avg_buckets),
            r.min_buckets.to_string(),
            f3(r.garbage_share),
            f3(r.dead_share),
        ]);
    }
    files.push(("fill.csv".to_string(), fill.as_str().to_string()));
    let mut lk = Csv::new(&[
        "start_s", "node", "finished", "took_ms", "queries", "rounds", "packets", "found",
        "garbage",
    ]);
    for r in &o.lookups {
        let d = r.done.as_ref();
        let f = |g: fn(&LookupDone) -> String| d.map_or_else(|| "-".to_string(), g);
        lk.row([
            f3(r.start.as_secs_f64()),
            r.node.to_string(),
            u8::from(d.is_some()).to_string(),
            f(|d| f3(d.took.as_secs_f64() * 1000.0)),
            f(|d| d.queries.to_string()),
            f(|d| d.rounds.to_string()),
            f(|d| d.packets.to_string()),
            f(|d| d.found.to_string()),
            f(|d| d.garbage.to_string()),
        ]);
    }
    files.push(("lookups.csv".to_string(), lk.as_str().to_string()));

    let done: Vec<&LookupDone> = o.lookups.iter().filter_map(|r| r.done.as_ref()).collect();
    let last = o.fill.last();
    let returned: usize = done.iter().map(|d| d.returned).sum();
    let s = Summary {
        rows: Vec::new(),
        lookups: o.lookups.len(),
        finished: done.len(),
        found_share: mean(done.iter().map(|d| d.found as f64 / k)),
        exact_share: mean(
            done.iter()
                .map(|d| f64::from(u8::from(d.found as f64 >= k))),
        ),
        rounds: mean(done.iter().map(|d| d.rounds as f64)),
        packets: mean(done.iter().map(|d| d.packets as f64)),
        avg_entries: last.map_or(0.0, |f| f.avg_entries),
        min_entries: last.map_or(0, |f| f.min_entries),
        garbage_in_tables: last.map_or(0.0, |f| f.garbage_share),
        garbage_in_results: (done.iter().map(|d| d.garbage).sum::<usize>() as f64)
            / returned.max(1) as f64,
        garbage_nodes: o.garbage_started as f64 / o.started.max(1) as f64,
    };
    let mut rows: Vec<(&str, String)> = vec![
        ("nodes at start", p.nodes.to_string()),
        ("nodes started (incl. churn)", o.started.to_string()),
        ("nodes left (churn)", o.left.to_string()),
        ("garbage nodes (share of started)", f3(s.garbage_nodes)),
        ("nodes per /24", p.per_subnet.to_string()),
        ("virtual time (s)", f3(p.duration.as_secs_f64())),
        ("datagrams sent", o.packets.to_string()),
        ("bytes sent (incl. UDP/IP headers)", o.bytes.to_string()),
        ("dropped: malformed", o.metrics.malformed.to_string()),
        (
            "dropped: findnode before bond",
            o.metrics.unbonded.to_string(),
        ),
        ("dropped: unsolicited", o.metrics.unsolicited.to_string()),
        ("dropped: rate limited", o.metrics.rate_limited.to_string()),
        ("dropped: expired", o.metrics.expired.to_string()),
    ];
    if let Some(f) = last {
        rows.extend([
            ("table entries, avg (end)", f3(f.avg_entries)),
            ("table entries, min (end)", f.min_entries.to_string()),
            ("non-empty buckets, avg (end)", f3(f.avg_buckets)),
            ("non-empty buckets, min (end)", f.min_buckets.to_string()),
            ("garbage share of table entries (end)", f3(f.garbage_share)),
            ("departed share of table entries (end)", f3(f.dead_share)),
        ]);
    }
    rows.extend([
        ("lookups started", s.lookups.to_string()),
        ("lookups finished", s.finished.to_string()),
        ("true 16 closest found, mean share", f3(s.found_share)),
        ("lookups returning all true 16", f3(s.exact_share)),
        ("rounds per lookup, mean", f3(s.rounds)),
        (
            "findnode queries per lookup, mean",
            f3(mean(done.iter().map(|d| d.queries as f64))),
        ),
        ("datagrams per lookup, mean", f3(s.packets)),
        (
            "lookup time (ms), mean",
            f3(mean(done.iter().map(|d| d.took.as_secs_f64() * 1e3))),
        ),
        ("garbage share of lookup results", f3(s.garbage_in_results)),
    ]);
    let s = Summary {
        rows: rows.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        ..s
    };
    let mut summary = Csv::new(&["metric", "value"]);
    for (k, v) in &s.rows {
        summary.row([k, v]);
    }
    files.push(("summary.csv".to_string(), summary.as_str().to_string()));
    files.extend(plots(o, &done));
    (s, files)
}

/// The SVG plots; a plot that fails to draw is left out (the CSVs hold the data).
fn plots(o: &Outcome, done: &[&LookupDone]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let series = |f: fn(&super::world::FillRow) -> f64| -> Vec<(f64, f64)> {
        (o.fill.iter())
            .filter(|r| r.sampled > 0)
            .map(|r| (r.t.as_secs_f64(), f(r)))
            .collect()
    };
    let fill = [
        ("entries, avg".to_string(), series(|r| r.avg_entries)),
        ("entries, min".to_string(), series(|r| r.min_entries as f64)),
        (
            "non-empty buckets, avg".to_string(),
            series(|r| r.avg_buckets),
        ),
        (
            "non-empty buckets, min".to_string(),
            series(|r| r.min_buckets as f64),
        ),
    ];
    let title = "Table fill of honest nodes over time";
    if let Ok(svg) = report::lines(title, "virtual time (s)", "per node", &fill) {
        out.push(("table_fill.svg".to_string(), svg));
    }
    let shares = [
        ("garbage nodes".to_string(), series(|r| r.garbage_share)),
        ("departed nodes".to_string(), series(|r| r.dead_share)),
    ];
    let title = "Share of table entries that are garbage or gone";
    if let Ok(svg) = report::lines(title, "virtual time (s)", "share of entries", &shares) {
        out.push(("table_bad.svg".to_string(), svg));
    }
    let cdf = |name: &str, values: Vec<f64>| CdfSeries {
        name: name.to_string(),
        values,
        total: o.lookups.len(),
    };
    let found = [cdf(
        "finished lookups",
        done.iter().map(|d| d.found as f64).collect(),
    )];
    let title = "Lookups: how many of the true 16 closest they returned";
    if let Ok(svg) = report::cdf(title, "true closest returned (of 16)", &found) {
        out.push(("lookup_found.svg".to_string(), svg));
    }
    let pk = [cdf(
        "finished lookups",
        done.iter().map(|d| d.packets as f64).collect(),
    )];
    let title = "Datagrams per lookup (sent + received by the looking-up node)";
    if let Ok(svg) = report::cdf(title, "datagrams", &pk) {
        out.push(("lookup_packets.svg".to_string(), svg));
    }
    let max = done.iter().map(|d| d.rounds).max().unwrap_or(0);
    let rows: Vec<(String, f64)> = (1..=max)
        .map(|r| {
            let n = done.iter().filter(|d| d.rounds == r).count();
            (format!("{r} rounds"), n as f64 / done.len().max(1) as f64)
        })
        .collect();
    let title = "Rounds per lookup (share of finished lookups)";
    if let Ok(svg) = report::bars(title, "share of lookups", &rows) {
        out.push(("lookup_rounds.svg".to_string(), svg));
    }
    out
}
