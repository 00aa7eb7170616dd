//! The census plots, as SVG text drawn with `plotters` through the shared plot helpers
//! of [`crate::sim::report`] (its SVG backend, no fonts loaded: text sizes are estimated,
//! which is all an SVG needs).

use super::census::{Row, Seen};
use crate::sim::report;

/// A plot could not be drawn (plotters' error, as text).
pub use crate::sim::report::Error;

/// Width of the label column of the bar charts: client ids and versions are long.
const LABELS: u32 = 300;

/// A horizontal bar chart of `rows`, the first on top, each bar labelled with its count.
pub fn bars(title: &str, rows: &[Row]) -> Result<String, Error> {
    let rows: Vec<(String, f64)> = rows
        .iter()
        .map(|r| (r.name.clone(), r.count as f64))
        .collect();
    report::bars_with(title, "nodes", &rows, LABELS, &|v| format!("{v:.0}"))
}

/// Nodes found and live over time, minutes from the first answer.
pub fn over_time(seen: &[Seen]) -> Result<String, Error> {
    let start = seen.first().map_or(0, |s| s.time);
    let minutes = |t: u64| t.saturating_sub(start) as f64 / 60.0;
    let series = |name: &str, f: fn(&Seen) -> usize| {
        let points = seen.iter().map(|s| (minutes(s.time), f(s) as f64));
        (name.to_string(), points.collect())
    };
    report::lines(
        "Nodes over time",
        "minutes since the first answer",
        "nodes",
        &[series("found", |s| s.found), series("live", |s| s.live)],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plots_are_svg_with_every_label() {
        let rows = vec![
            Row {
                name: "Geth".into(),
                count: 3,
            },
            Row {
                name: "a<b&c".into(),
                count: 1,
            },
        ];
        let svg = bars("Client share", &rows).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..50]);
        assert!(svg.contains("Geth") && svg.contains("Client share"));
        assert!(svg.contains("a&lt;b&amp;c"), "names are escaped");
        assert!(bars("empty", &[]).unwrap().contains("empty"));
        let seen = [
            Seen {
                time: 100,
                found: 1,
                live: 1,
            },
            Seen {
                time: 220,
                found: 4,
                live: 3,
            },
        ];
        assert!(over_time(&seen).unwrap().contains("Nodes over time"));
        assert!(over_time(&[]).is_ok());
    }
}
