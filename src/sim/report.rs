//! Output of the simulations: CSV text, SVG plots drawn with `plotters` (the same SVG
//! backend and style as the census plots in `crawl::plot`), and fixed-width tables for
//! stdout.
//!
//! Everything here returns `String`s built deterministically (fixed float precision, no
//! timestamps), so the same simulation gives byte-identical files.

use std::fmt::Display;
use std::path::Path;

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;

/// A plot or file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// plotters failed (its error, as text).
    #[error("plot: {0}")]
    Plot(String),
    /// Writing a file failed.
    #[error("writing {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

fn err(e: impl Display) -> Error {
    Error::Plot(e.to_string())
}

/// Width of every plot, in pixels.
const WIDTH: u32 = 800;
/// Height of line and CDF plots, in pixels.
const HEIGHT: u32 = 450;
/// Height per bar, in pixels.
const BAR: u32 = 26;
/// Series colours, in order (colour-blind-safe Okabe–Ito palette; the first is the census
/// bar colour).
const COLORS: [RGBColor; 7] = [
    RGBColor(0x3b, 0x6e, 0xa8),
    RGBColor(0xd5, 0x5e, 0x00),
    RGBColor(0x00, 0x9e, 0x73),
    RGBColor(0xcc, 0x79, 0xa7),
    RGBColor(0xe6, 0x9f, 0x00),
    RGBColor(0x56, 0xb4, 0xe9),
    RGBColor(0x00, 0x00, 0x00),
];

fn color(i: usize) -> RGBColor {
    COLORS[i % COLORS.len()]
}

/// CSV text with a header row. Fields are written as given (callers format floats with a
/// fixed precision, see [`f3`]); fields containing a comma, quote or newline are quoted.
#[derive(Debug, Clone)]
pub struct Csv {
    text: String,
    columns: usize,
}

impl Csv {
    /// A CSV with the given header.
    pub fn new(header: &[&str]) -> Self {
        let mut c = Csv {
            text: String::new(),
            columns: header.len(),
        };
        c.push(header.iter());
        c
    }

    /// Appends a row; it should have as many fields as the header (checked in debug builds).
    pub fn row<I, T>(&mut self, fields: I)
    where
        I: IntoIterator<Item = T>,
        T: Display,
    {
        let n = self.push(fields.into_iter());
        debug_assert_eq!(n, self.columns, "CSV row width");
    }

    fn push<T: Display>(&mut self, fields: impl Iterator<Item = T>) -> usize {
        let mut n = 0;
        for (i, f) in fields.enumerate() {
            if i > 0 {
                self.text.push(',');
            }
            let s = f.to_string();
            if s.contains([',', '"', '\n']) {
                self.text.push('"');
                self.text.push_str(&s.replace('"', "\"\""));
                self.text.push('"');
            } else {
                self.text.push_str(&s);
            }
            n += 1;
        }
        self.text.push('\n');
        n
    }

    /// The CSV text.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// `x` with three decimals: the fixed precision of every float in our CSVs.
pub fn f3(x: f64) -> String {
    format!("{x:.3}")
}

/// Writes `contents` to `dir/name`, creating `dir`.
pub fn write(dir: &Path, name: &str, contents: &str) -> Result<(), Error> {
    let io = |path: &Path, source| Error::Io {
        path: path.display().to_string(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let path = dir.join(name);
    std::fs::write(&path, contents).map_err(|e| io(&path, e))
}

/// A fixed-width text table: columns as wide as their widest cell; columns whose cells
/// all parse as numbers (or are `-`) right-aligned, header included.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = width.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let numeric: Vec<bool> = (0..width.len())
        .map(|i| {
            rows.iter().all(|r| {
                r.get(i)
                    .is_none_or(|c| c == "-" || c.trim_end_matches('%').parse::<f64>().is_ok())
            })
        })
        .collect();
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut s = String::new();
        for (i, c) in cells.enumerate() {
            let w = width.get(i).copied().unwrap_or(0);
            if i > 0 {
                s.push_str("  ");
            }
            if numeric.get(i).copied().unwrap_or(false) {
                s.push_str(&format!("{c:>w$}"));
            } else {
                s.push_str(&format!("{c:<w$}"));
            }
        }
        s.truncate(s.trim_end().len());
        s.push('\n');
        s
    };
    let mut out = line(&mut header.iter().copied());
    let total = width.iter().sum::<usize>() + 2 * width.len().saturating_sub(1);
    out.push_str(&"-".repeat(total));
    out.push('\n');
    for r in rows {
        out.push_str(&line(&mut r.iter().map(String::as_str)));
    }
    out
}

/// One series of a CDF plot: sample values (e.g. arrival times) out of `total` (e.g. all
/// nodes); samples missing from `total` keep the curve below 1.
#[derive(Debug, Clone)]
pub struct CdfSeries {
    /// Legend label.
    pub name: String,
    /// The samples, any order.
    pub values: Vec<f64>,
    /// The population the fractions are of (at least `values.len()`).
    pub total: usize,
}

/// Empirical CDF points of a series: `(value, fraction of total at or below it)`, a step
/// per sample.
pub fn cdf_points(s: &CdfSeries) -> Vec<(f64, f64)> {
    let mut v = s.values.clone();
    v.sort_by(f64::total_cmp);
    let total = s.total.max(v.len()).max(1) as f64;
    let mut pts = Vec::with_capacity(2 * v.len() + 1);
    pts.push((v.first().copied().unwrap_or(0.0), 0.0));
    for (i, &x) in v.iter().enumerate() {
        pts.push((x, i as f64 / total));
        pts.push((x, (i + 1) as f64 / total));
    }
    pts
}

/// Points per plotted CDF, at most: more are not visible at 800 pixels and make the SVG
/// megabytes large.
const MAX_CDF_POINTS: usize = 1000;

/// A CDF plot of several series, x from 0 to the largest sample (each thinned to
/// [`MAX_CDF_POINTS`] points, keeping the last).
pub fn cdf(title: &str, x_desc: &str, series: &[CdfSeries]) -> Result<String, Error> {
    let lines: Vec<(String, Vec<(f64, f64)>)> = series
        .iter()
        .map(|s| {
            let p = cdf_points(s);
            let step = p.len().div_ceil(MAX_CDF_POINTS).max(1);
            let mut thin: Vec<(f64, f64)> = p.iter().copied().step_by(step).collect();
            if let Some(&last) = p.last()
                && thin.last() != Some(&last)
            {
                thin.push(last);
            }
            (s.name.clone(), thin)
        })
        .collect();
    line_plot(title, x_desc, "fraction of nodes", &lines, Some(1.0))
}

/// A line plot of several `(x, y)` series.
pub fn lines(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[(String, Vec<(f64, f64)>)],
) -> Result<String, Error> {
    line_plot(title, x_desc, y_desc, series, None)
}

fn line_plot(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[(String, Vec<(f64, f64)>)],
    y_max: Option<f64>,
) -> Result<String, Error> {
    let pts = series.iter().flat_map(|(_, p)| p.iter());
    let x_max = pts.clone().map(|p| p.0).fold(0.0, f64::max);
    let x_max = if x_max > 0.0 { x_max * 1.02 } else { 1.0 };
    let y_top = y_max.unwrap_or_else(|| pts.map(|p| p.1).fold(0.0, f64::max));
    let y_top = if y_top > 0.0 { y_top * 1.05 } else { 1.0 };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..x_max, 0.0..y_top)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .draw()
            .map_err(err)?;
        // More series than colours (one line per node, say): thin lines, no legend; the
        // shape is the point.
        let legend = series.len() <= COLORS.len();
        for (i, (name, p)) in series.iter().enumerate() {
            let c = color(i);
            let style = if legend {
                c.stroke_width(2)
            } else {
                c.mix(0.5).stroke_width(1)
            };
            let drawn = chart
                .draw_series(LineSeries::new(p.iter().copied(), style))
                .map_err(err)?;
            if legend {
                drawn
                    .label(name.as_str())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c));
            }
        }
        if legend && !series.is_empty() {
            chart
                .configure_series_labels()
                .border_style(BLACK)
                .background_style(WHITE.mix(0.8))
                .position(SeriesLabelPosition::LowerRight)
                .draw()
                .map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// A horizontal bar chart of `(label, value)` rows, the first on top, each bar labelled
/// with its value (three decimals).
pub fn bars(title: &str, x_desc: &str, rows: &[(String, f64)]) -> Result<String, Error> {
    bars_with(title, x_desc, rows, 200, &f3)
}

/// [`bars`] with a label column `label_width` pixels wide and each bar's value written by
/// `label`.
pub fn bars_with(
    title: &str,
    x_desc: &str,
    rows: &[(String, f64)],
    label_width: u32,
    label: &dyn Fn(f64) -> String,
) -> Result<String, Error> {
    let n = rows.len().max(1);
    let height = 90 + BAR * n as u32;
    let max = rows.iter().map(|r| r.1).fold(0.0, f64::max);
    let max = if max > 0.0 { max * 1.15 } else { 1.0 };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(label_width)
            .build_cartesian_2d(0.0..max, (0..n).into_segmented())
            .map_err(err)?;
        // Row i is drawn at n - 1 - i so that the first is on top.
        let name = |v: &SegmentValue<usize>| match v {
            SegmentValue::CenterOf(i) => rows
                .get(n.saturating_sub(1 + i))
                .map(|r| r.0.clone())
                .unwrap_or_default(),
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(n)
            .y_label_formatter(&name)
            .x_desc(x_desc)
            .draw()
            .map_err(err)?;
        chart
            .draw_series(rows.iter().enumerate().map(|(i, r)| {
                let y = n - 1 - i;
                Rectangle::new(
                    [
                        (0.0, SegmentValue::Exact(y)),
                        (r.1, SegmentValue::Exact(y + 1)),
                    ],
                    color(i).filled(),
                )
            }))
            .map_err(err)?;
        chart
            .draw_series(rows.iter().enumerate().map(|(i, r)| {
                Text::new(
                    format!(" {}", label(r.1)),
                    (r.1, SegmentValue::CenterOf(n - 1 - i)),
                    ("sans-serif", 14),
                )
            }))
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// The `p`-th percentile (0–100, nearest rank) of `sorted` ascending values, `None` if
/// empty.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_counts() {
        let mut c = Csv::new(&["a", "b"]);
        c.row(["x,y", "q\"z"]);
        c.row([f3(1.0), f3(2.0 / 3.0)]);
        assert_eq!(c.as_str(), "a,b\n\"x,y\",\"q\"\"z\"\n1.000,0.667\n");
    }

    #[test]
    fn table_aligns() {
        let t = table(
            &["name", "ms"],
            &[
                vec!["flood".into(), "5".into()],
                vec!["x".into(), "1234".into()],
            ],
        );
        assert_eq!(t, "name     ms\n-----------\nflood     5\nx      1234\n");
    }

    #[test]
    fn percentiles_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 95.0), Some(95.0));
        assert_eq!(percentile(&v, 100.0), Some(100.0));
        assert_eq!(percentile(&v, 0.0), Some(1.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn cdf_stays_below_one_for_missing_samples() {
        let s = CdfSeries {
            name: "a".into(),
            values: vec![2.0, 1.0],
            total: 4,
        };
        let p = cdf_points(&s);
        assert_eq!(p.last(), Some(&(2.0, 0.5)));
        assert_eq!(p[1], (1.0, 0.0));
    }

    #[test]
    fn plots_are_svg_with_labels() {
        let s = CdfSeries {
            name: "sqrt & co".into(),
            values: vec![0.1, 0.3, 0.2],
            total: 3,
        };
        let svg = cdf("Block arrival", "seconds", &[s]).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("Block arrival"));
        assert!(svg.contains("sqrt &amp; co"));
        let l = lines("Over time", "s", "n", &[("x".into(), vec![(0.0, 1.0)])]).unwrap();
        assert!(l.contains("Over time"));
        let b = bars("Bytes", "MB", &[("flood".into(), 3.5)]).unwrap();
        assert!(b.contains("flood") && b.contains("3.500"));
        assert!(bars("empty", "x", &[]).unwrap().contains("empty"));
        assert!(lines("none", "x", "y", &[]).unwrap().contains("none"));
    }
}
