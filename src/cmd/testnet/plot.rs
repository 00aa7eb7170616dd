//! The testnet's plots: line charts as SVG text, drawn by the simulator's
//! [`crate::sim::report::lines`] (the census plots' `plotters` SVG backend and style).

/// A plot could not be drawn.
pub(crate) type PlotError = crate::sim::report::Error;

/// One line of a chart: its label and points.
pub(crate) struct Series {
    pub(crate) label: String,
    pub(crate) points: Vec<(f64, f64)>,
}

/// A line chart of `series` with the axes labelled; the axes start at 0, and past as
/// many series as there are colours (one line per node) the lines are thin and unlabelled.
pub(crate) fn lines(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[Series],
) -> Result<String, PlotError> {
    let series: Vec<(String, Vec<(f64, f64)>)> = series
        .iter()
        .map(|s| (s.label.clone(), s.points.clone()))
        .collect();
    crate::sim::report::lines(title, x_desc, y_desc, &series)
}

/// The empirical CDF of `values` as points (value, share of values ≤ it).
pub(crate) fn cdf(values: &[f64]) -> Vec<(f64, f64)> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    let n = v.len() as f64;
    v.iter()
        .enumerate()
        .map(|(i, x)| (*x, (i + 1) as f64 / n))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_svg() {
        let s = Series {
            label: "a<b".into(),
            points: cdf(&[3.0, 1.0, 2.0, f64::NAN]),
        };
        assert_eq!(
            s.points,
            vec![(1.0, 1.0 / 3.0), (2.0, 2.0 / 3.0), (3.0, 1.0)]
        );
        let svg = lines("CDF", "ms", "share", &[s]).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("a&lt;b"));
        assert!(lines("empty", "x", "y", &[]).is_ok());
    }
}
