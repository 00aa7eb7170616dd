//! The census plots, as SVG text drawn with `plotters` (its SVG backend, no fonts
//! loaded: text sizes are estimated, which is all an SVG needs).

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;

use super::census::{Row, Seen};

/// A plot could not be drawn (plotters' error, as text).
#[derive(Debug, thiserror::Error)]
#[error("plot: {0}")]
pub struct Error(String);

fn err(e: impl std::fmt::Display) -> Error {
    Error(e.to_string())
}

/// Width of every plot, in pixels.
const WIDTH: u32 = 800;
/// Height per bar, in pixels.
const BAR: u32 = 26;
const BAR_COLOR: RGBColor = RGBColor(0x3b, 0x6e, 0xa8);

/// A horizontal bar chart of `rows`, the first on top, each bar labelled with its count.
pub fn bars(title: &str, rows: &[Row]) -> Result<String, Error> {
    let n = rows.len().max(1);
    let height = 90 + BAR * n as u32;
    let max = rows.iter().map(|r| r.count).max().unwrap_or(0).max(1);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(300)
            .build_cartesian_2d(0..max + max / 8 + 1, (0..n).into_segmented())
            .map_err(err)?;
        // Row i is drawn at n - 1 - i so that the largest (first) is on top.
        let name = |v: &SegmentValue<usize>| match v {
            SegmentValue::CenterOf(i) => rows
                .get(n.saturating_sub(1 + i))
                .map(|r| r.name.clone())
                .unwrap_or_default(),
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(n)
            .y_label_formatter(&name)
            .x_desc("nodes")
            .draw()
            .map_err(err)?;
        chart
            .draw_series(rows.iter().enumerate().map(|(i, r)| {
                let y = n - 1 - i;
                Rectangle::new(
                    [
                        (0, SegmentValue::Exact(y)),
                        (r.count, SegmentValue::Exact(y + 1)),
                    ],
                    BAR_COLOR.filled(),
                )
            }))
            .map_err(err)?;
        chart
            .draw_series(rows.iter().enumerate().map(|(i, r)| {
                Text::new(
                    format!(" {}", r.count),
                    (r.count, SegmentValue::CenterOf(n - 1 - i)),
                    ("sans-serif", 14),
                )
            }))
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// Nodes found and live over time, minutes from the first answer.
pub fn over_time(seen: &[Seen]) -> Result<String, Error> {
    let start = seen.first().map_or(0, |s| s.time);
    let minutes = |t: u64| t.saturating_sub(start) as f64 / 60.0;
    let span = seen.last().map_or(0.0, |s| minutes(s.time)).max(1.0 / 60.0);
    let top = seen.iter().map(|s| s.found).max().unwrap_or(0).max(1);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, 400)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("Nodes over time", ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..span, 0..top + top / 8 + 1)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("minutes since the first answer")
            .y_desc("nodes")
            .draw()
            .map_err(err)?;
        let found = seen.iter().map(|s| (minutes(s.time), s.found));
        chart
            .draw_series(LineSeries::new(found, BAR_COLOR.stroke_width(2)))
            .map_err(err)?
            .label("found")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BAR_COLOR));
        let live = seen.iter().map(|s| (minutes(s.time), s.live));
        chart
            .draw_series(LineSeries::new(live, RED.stroke_width(2)))
            .map_err(err)?
            .label("live")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .position(SeriesLabelPosition::LowerRight)
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
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
