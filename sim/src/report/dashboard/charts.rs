//! The charts, drawn by plotters' SVG backend into strings. Every time chart shares the
//! rollout's frame: fault windows shaded, stage changes as thin lines, detection and
//! rollback marked.

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::colors::colormaps::ViridisRGB;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Legacy's colour, the new stack's, a fault's and the limit's.
pub const LEGACY: RGBColor = RGBColor(55, 110, 180);
/// The new stack's colour.
pub const NEW: RGBColor = RGBColor(230, 120, 20);
const FAULT: RGBColor = RGBColor(220, 40, 40);
const LIMIT: RGBColor = RGBColor(170, 0, 0);
const MARK: RGBColor = RGBColor(90, 90, 90);
/// Colours of several lines on one chart.
pub const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

const FONT: &str = "sans-serif";

/// `c` blended towards white by `k` (0 keeps it, 1 is white).
pub fn lighter(c: RGBColor, k: f64) -> RGBColor {
    let mix = |v: u8| (f64::from(v) + (255.0 - f64::from(v)) * k).round() as u8;
    RGBColor(mix(c.0), mix(c.1), mix(c.2))
}

/// What every time chart shows behind its series.
#[derive(Debug, Clone, Default)]
pub struct Frame {
    /// The x axis ends here, s.
    pub horizon_s: f64,
    /// Fault windows: (kind, start, end), s.
    pub faults: Vec<(String, f64, f64)>,
    /// Stage changes, s.
    pub stage_changes: Vec<f64>,
    /// When a breach was first seen, s.
    pub detected_s: Option<f64>,
    /// When the rollback completed, s.
    pub rollback_s: Option<f64>,
}

/// One line of a time chart.
pub struct Line<'a> {
    /// Its legend.
    pub label: String,
    /// (t, value) points; a gap where a value is missing.
    pub points: &'a [(f64, Option<f64>)],
    /// Its colour.
    pub color: RGBColor,
    /// Drawn as steps (a value holds until the next point).
    pub steps: bool,
}

/// The legend of every chart: its series' labels in a light box.
pub fn legend<'a, 'b: 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, SVGBackend<'b>, CT>,
    position: SeriesLabelPosition,
) -> Result<(), String> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(200, 200, 200))
        .label_font((FONT, 12))
        .draw()
        .map_err(err)
}

type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

fn err(e: impl std::fmt::Display) -> String {
    format!("chart: {e}")
}

/// A time chart of `lines` over the frame, with an optional horizontal limit and a band
/// (t, low, high) behind the first line.
pub fn time_chart(
    size: (u32, u32),
    y_desc: &str,
    frame: &Frame,
    lines: &[Line<'_>],
    limit: Option<(String, f64)>,
    band: &[(f64, f64, f64)],
) -> Result<String, String> {
    let values = lines.iter().flat_map(|l| l.points.iter().filter_map(|p| p.1));
    let top = values.chain(limit.as_ref().map(|l| l.1)).chain(band.iter().map(|b| b.2)).fold(0.0f64, f64::max);
    let top = if top > 0.0 && top.is_finite() { top * 1.1 } else { 1.0 };
    let horizon = frame.horizon_s.max(1.0);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(8)
            .x_label_area_size(34)
            .y_label_area_size(62)
            .build_cartesian_2d(0.0..horizon, 0.0..top)
            .map_err(err)?;
        chart
            .configure_mesh()
            .light_line_style(RGBColor(238, 238, 238))
            .x_desc("scenario time (s)")
            .y_desc(y_desc)
            .label_style((FONT, 12))
            .draw()
            .map_err(err)?;
        backdrop(&mut chart, frame, top)?;
        if !band.is_empty() {
            let step = band.len().div_ceil(MAX_POINTS);
            let band: Vec<_> = band.iter().step_by(step).collect();
            let mut outline: Vec<(f64, f64)> = band.iter().map(|b| (b.0, b.2)).collect();
            outline.extend(band.iter().rev().map(|b| (b.0, b.1)));
            let color = lines.first().map_or(LEGACY, |l| l.color);
            chart.draw_series(std::iter::once(Polygon::new(outline, color.mix(0.18).filled()))).map_err(err)?;
        }
        if let Some((label, v)) = &limit {
            chart
                .draw_series(DashedLineSeries::new([(0.0, *v), (horizon, *v)], 6, 4, LIMIT.stroke_width(2)))
                .map_err(err)?
                .label(label.clone())
                .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], LIMIT.stroke_width(2)));
        }
        for line in lines {
            let color = line.color;
            let mut drawn = false;
            let thinned;
            let points = if line.steps || line.points.len() <= MAX_POINTS {
                line.points
            } else {
                thinned = thin(line.points, MAX_POINTS);
                &thinned
            };
            for run in runs(points, line.steps, horizon) {
                let series = chart.draw_series(LineSeries::new(run, color.stroke_width(2))).map_err(err)?;
                if !drawn {
                    series
                        .label(line.label.clone())
                        .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color.stroke_width(2)));
                    drawn = true;
                }
            }
        }
        legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// Points per line beyond which a line is thinned (a long live run evaluates thousands of
/// times; the page stays light and quick to draw).
const MAX_POINTS: usize = 1500;

/// At most about `max` points: the largest value of each run of consecutive points, so a
/// spike stays visible.
fn thin(points: &[(f64, Option<f64>)], max: usize) -> Vec<(f64, Option<f64>)> {
    let k = points.len().div_ceil(max).max(1);
    points
        .chunks(k)
        .map(|c| {
            let best = c.iter().filter_map(|p| p.1.map(|v| (p.0, v))).max_by(|a, b| a.1.total_cmp(&b.1));
            best.map_or((c[0].0, None), |(t, v)| (t, Some(v)))
        })
        .collect()
}

/// Splits a series at its gaps; steps hold each value until the next point.
fn runs(points: &[(f64, Option<f64>)], steps: bool, horizon: f64) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut current: Vec<(f64, f64)> = Vec::new();
    for (i, &(t, v)) in points.iter().enumerate() {
        match v {
            Some(v) => {
                if steps {
                    if let Some(&(_, prev)) = current.last() {
                        current.push((t, prev));
                    }
                }
                current.push((t, v));
                if steps && i + 1 == points.len() {
                    current.push((horizon, v));
                }
            }
            None if !current.is_empty() => out.push(std::mem::take(&mut current)),
            None => {}
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Fault windows, stage changes, detection and rollback.
fn backdrop(chart: &mut Chart<'_, '_>, frame: &Frame, top: f64) -> Result<(), String> {
    for (k, (kind, a, b)) in frame.faults.iter().enumerate() {
        let s = chart
            .draw_series(std::iter::once(Rectangle::new([(*a, 0.0), (*b, top)], FAULT.mix(0.10).filled())))
            .map_err(err)?;
        if k == 0 {
            s.label(format!("fault: {kind}"))
                .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 16, y + 5)], FAULT.mix(0.3).filled()));
        }
    }
    chart
        .draw_series(frame.stage_changes.iter().map(|&t| PathElement::new([(t, 0.0), (t, top)], MARK.mix(0.35))))
        .map_err(err)?;
    for (label, at, color) in
        [("detected", frame.detected_s, RGBColor(200, 140, 0)), ("rolled back", frame.rollback_s, FAULT)]
    {
        if let Some(t) = at {
            chart
                .draw_series(DashedLineSeries::new([(t, 0.0), (t, top)], 4, 3, color.stroke_width(2)))
                .map_err(err)?
                .label(format!("{label} t={t:.0} s"))
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color.stroke_width(2)));
        }
    }
    Ok(())
}

/// A heatmap of `values[row][column]` (None: no data), coloured from 0 to the largest value.
pub fn heatmap(rows: &[String], columns: &[String], values: &[Vec<Option<f64>>]) -> Result<String, String> {
    let max = values.iter().flatten().flatten().copied().fold(0.0f64, f64::max).max(1e-9);
    let size = (1100, (rows.len() as u32 * 26 + 150).max(260));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let (nx, ny) = (columns.len() as i32, rows.len() as i32);
        let mut chart = ChartBuilder::on(&root)
            .margin(8)
            .x_label_area_size(110)
            .y_label_area_size(170)
            // Integer ranges are inclusive as keys: 0..n-1 makes n segments.
            .build_cartesian_2d((0..(nx - 1).max(0)).into_segmented(), (0..(ny - 1).max(0)).into_segmented())
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(columns.len())
            .y_labels(rows.len())
            .x_label_formatter(&|_| String::new())
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) | SegmentValue::Exact(i) if (*i as usize) < rows.len() => {
                    rows[rows.len() - 1 - *i as usize].clone()
                }
                _ => String::new(),
            })
            .y_label_style((FONT, 12))
            .draw()
            .map_err(err)?;
        // Column names run down from the axis (the mesh centres rotated labels on the tick,
        // which hides half of each).
        let style = TextStyle::from((FONT, 12).into_font().transform(FontTransform::Rotate90))
            .pos(Pos::new(HPos::Left, VPos::Center));
        for (i, column) in columns.iter().enumerate() {
            let (x, y) = chart.backend_coord(&(SegmentValue::CenterOf(i as i32), SegmentValue::Exact(0)));
            root.draw(&Text::new(column.clone(), (x, y + 8), style.clone())).map_err(err)?;
        }
        let cells = values
            .iter()
            .enumerate()
            .flat_map(|(r, row)| row.iter().enumerate().map(move |(c, v)| (c as i32, (rows.len() - 1 - r) as i32, *v)));
        chart
            .draw_series(cells.map(|(x, y, v)| {
                let color = match v {
                    Some(v) => ViridisRGB.get_color_normalized(v, 0.0, max).filled(),
                    None => RGBColor(245, 245, 245).filled(),
                };
                Rectangle::new(
                    [
                        (SegmentValue::Exact(x), SegmentValue::Exact(y)),
                        (SegmentValue::Exact(x + 1), SegmentValue::Exact(y + 1)),
                    ],
                    color,
                )
            }))
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// Bars of `counts` over categorical `labels`, on a log scale (one bin often holds most).
pub fn bars(labels: &[String], counts: &[u64], x_desc: &str, y_desc: &str) -> Result<String, String> {
    let top = counts.iter().copied().max().unwrap_or(0).max(1) as f64 * 2.0;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (540, 300)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(8)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d((0..(labels.len() as i32 - 1).max(0)).into_segmented(), (0.5..top).log_scale())
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .light_line_style(RGBColor(238, 238, 238))
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => {
                    labels.get(*i as usize).cloned().unwrap_or_default()
                }
                SegmentValue::Last => String::new(),
            })
            .y_label_formatter(&|v| format!("{v:.0}"))
            .x_desc(x_desc)
            .y_desc(y_desc)
            .label_style((FONT, 11))
            .draw()
            .map_err(err)?;
        // Drawn bar by bar, in order: plotters' Histogram series sums through a hash map,
        // whose order would make the same run's report differ byte for byte.
        chart
            .draw_series(counts.iter().enumerate().filter(|(_, &c)| c > 0).map(|(i, &c)| {
                let i = i as i32;
                let mut bar = Rectangle::new(
                    [(SegmentValue::Exact(i), 0.5), (SegmentValue::Exact(i + 1), c as f64)],
                    NEW.mix(0.85).filled(),
                );
                bar.set_margin(0, 0, 6, 6);
                bar
            }))
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// Grouped bars: per group (a stage), one bar per series (stack and quantile).
pub fn grouped_bars(
    groups: &[String],
    series: &[(String, RGBColor)],
    values: &[Vec<Option<f64>>],
    y_desc: &str,
) -> Result<String, String> {
    let top = values.iter().flatten().flatten().copied().fold(0.0f64, f64::max).max(1e-9) * 1.15;
    let k = series.len() as f64;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1100, 340)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(8)
            .x_label_area_size(36)
            .y_label_area_size(62)
            .build_cartesian_2d(groups.nested_coord(|_| 0.0..k), 0.0..top)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_label_formatter(&|v| match v {
                NestedValue::Category(g) | NestedValue::Value(g, _) => g.to_string(),
            })
            .light_line_style(RGBColor(238, 238, 238))
            .y_desc(y_desc)
            .label_style((FONT, 12))
            .draw()
            .map_err(err)?;
        for (j, (label, color)) in series.iter().enumerate() {
            let color = *color;
            let j = j as f64;
            chart
                .draw_series(groups.iter().zip(values).filter_map(|(g, row)| {
                    let v = row.get(j as usize).copied().flatten()?;
                    Some(Rectangle::new([((g, j + 0.1).into(), 0.0), ((g, j + 0.9).into(), v)], color.filled()))
                }))
                .map_err(err)?
                .label(label.clone())
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
        }
        legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_hold_until_the_next_point_and_gaps_split_lines() {
        let p = [(0.0, Some(0.0)), (10.0, Some(1.0)), (20.0, None), (30.0, Some(5.0))];
        let r = runs(&p, true, 40.0);
        assert_eq!(r, vec![vec![(0.0, 0.0), (10.0, 0.0), (10.0, 1.0)], vec![(30.0, 5.0), (40.0, 5.0)]]);
        let r = runs(&p, false, 40.0);
        assert_eq!(r, vec![vec![(0.0, 0.0), (10.0, 1.0)], vec![(30.0, 5.0)]]);
    }

    #[test]
    fn thinning_keeps_the_spikes_and_the_gaps() {
        let mut p: Vec<(f64, Option<f64>)> = (0..10_000).map(|i| (i as f64, Some(0.01))).collect();
        p[4321].1 = Some(0.9);
        for x in &mut p[6000..6010] {
            x.1 = None;
        }
        let t = thin(&p, 1500);
        assert!(t.len() <= 1500 && t.len() >= 1000, "{}", t.len());
        assert!(t.contains(&(4321.0, Some(0.9))), "the spike is gone");
        assert_eq!(t.iter().filter(|x| x.1.is_none()).count(), 0, "a chunk with data keeps it");
        let gap: Vec<(f64, Option<f64>)> = (0..3000).map(|i| (i as f64, (i < 1000).then_some(1.0))).collect();
        assert!(thin(&gap, 1500).iter().any(|x| x.1.is_none()), "a long gap stays a gap");
    }

    #[test]
    fn a_time_chart_is_an_svg_with_its_series_and_limit() {
        let points = [(0.0, Some(0.001)), (5.0, Some(0.002)), (10.0, Some(0.05))];
        let frame = Frame {
            horizon_s: 20.0,
            faults: vec![("errors".into(), 8.0, 20.0)],
            detected_s: Some(10.0),
            ..Frame::default()
        };
        let line = Line { label: "error rate".into(), points: &points, color: NEW, steps: false };
        let svg = time_chart((600, 300), "rate", &frame, &[line], Some(("limit 0.01".into(), 0.01)), &[]).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("viewBox"));
        for text in ["error rate", "limit 0.01", "fault: errors", "detected t=10 s"] {
            assert!(svg.contains(text), "{text} missing");
        }
    }
}
