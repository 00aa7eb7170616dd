//! The testnet's plots: line charts as SVG text, drawn with `plotters` like the census
//! plots (src/crawl/plot.rs: its SVG backend, no fonts loaded).

use plotters::prelude::*;

/// A plot could not be drawn (plotters' error, as text).
#[derive(Debug, thiserror::Error)]
#[error("plot: {0}")]
pub(crate) struct PlotError(String);

fn err(e: impl std::fmt::Display) -> PlotError {
    PlotError(e.to_string())
}

const WIDTH: u32 = 800;
const HEIGHT: u32 = 420;
/// Colours of the first series (the census plots' blue first); later ones cycle.
const COLORS: [RGBColor; 5] = [
    RGBColor(0x3b, 0x6e, 0xa8),
    RGBColor(0xc0, 0x39, 0x2b),
    RGBColor(0x27, 0xae, 0x60),
    RGBColor(0x8e, 0x44, 0xad),
    RGBColor(0xe6, 0x7e, 0x22),
];
/// Past this many series there is no legend (one line per node: the shape is the point).
const MAX_LEGEND: usize = 5;

/// One line of a chart: its label and points.
pub(crate) struct Series {
    pub(crate) label: String,
    pub(crate) points: Vec<(f64, f64)>,
}

/// A line chart of `series` with the axes labelled; the y axis starts at 0.
pub(crate) fn lines(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[Series],
) -> Result<String, PlotError> {
    let all = || series.iter().flat_map(|s| s.points.iter());
    let x_max = all().map(|p| p.0).fold(0.0, f64::max).max(1e-3);
    let x_min = all().map(|p| p.0).fold(x_max, f64::min).min(0.0);
    let y_max = all().map(|p| p.1).fold(0.0, f64::max).max(1e-3) * 1.1;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x_min..x_max, 0.0..y_max)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .draw()
            .map_err(err)?;
        let legend = series.len() <= MAX_LEGEND;
        for (i, s) in series.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let style = if legend {
                color.stroke_width(2)
            } else {
                color.mix(0.5).stroke_width(1)
            };
            let drawn = chart
                .draw_series(LineSeries::new(s.points.iter().copied(), style))
                .map_err(err)?;
            if legend {
                drawn
                    .label(s.label.as_str())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
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
