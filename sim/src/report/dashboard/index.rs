//! The index of a suite (scenarios, verdicts, links to their reports) and of a sweep (the
//! distributions of time to rollback and bad decisions per scenario and judge, and the
//! false rollbacks on clean scenarios).

use plotters::prelude::*;

use super::charts::{legend, PALETTE};
use super::{esc, head, AUDIT_SCRIPT};
use crate::core::verdict::Summary;
use crate::scenario::Outcome;
use crate::world::sweep::{seconds, Sweep};

/// One scenario of a suite: its summary and the relative link to its report.
pub struct SuiteRow<'a> {
    /// summary.json.
    pub summary: &'a Summary,
    /// `scenario/report.html`, relative to the index.
    pub report: String,
}

fn outcome(o: Outcome) -> &'static str {
    match o {
        Outcome::Promoted => "promoted",
        Outcome::RolledBack => "rolled back",
        Outcome::InProgress => "in progress",
    }
}

/// index.html of a suite.
pub fn suite_index(rows: &[SuiteRow<'_>]) -> String {
    let passed = rows.iter().filter(|r| r.summary.passed).count();
    let mut out = head("cutover suite");
    out +=
        &format!("<header><h1>Scenario suite</h1><p>{passed} of {} scenarios passed</p></header><main>\n", rows.len());
    out += &format!(
        "<section class=\"panel\" data-panel=\"suite\" data-points=\"{}\"><h2>Scenarios</h2>\n\
         <table><tr><th>scenario</th><th>result</th><th>outcome</th><th>judge</th><th>seed</th><th>detected after</th>\
         <th>rolled back after</th><th>bad decisions</th><th>failed requests</th></tr>\n",
        rows.len()
    );
    for r in rows {
        let s = r.summary;
        let since = |t: Option<f64>| match (t, s.fault_start_s) {
            (Some(t), Some(f)) => format!("{:.0} s", t - f),
            _ => "-".into(),
        };
        let (class, word) = if s.passed { ("pass", "pass") } else { ("fail", "FAIL") };
        out += &format!(
            "<tr><td><a href=\"{}\">{}</a></td><td class=\"{class}\">{word}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>\n",
            esc(&r.report),
            esc(&s.scenario),
            outcome(s.outcome),
            esc(&s.policy),
            s.seed,
            since(s.detected_at_s),
            since(s.rollback_completed_s),
            s.bad_decisions_served,
            s.requests_failed
        );
    }
    out += "</table></section></main>\n";
    out += AUDIT_SCRIPT;
    out += "</body></html>\n";
    out
}

/// index.html of a sweep under one or several judges.
pub fn sweep_index(sweeps: &[Sweep]) -> String {
    let policies: Vec<&str> = sweeps.iter().map(|s| s.policy.as_str()).collect();
    let seeds = sweeps.first().map_or(0, |s| s.seeds);
    let mut out = head("cutover sweep");
    out += &format!(
        "<header><h1>Sweep</h1><p>{seeds} seeds per scenario · judges: {}</p></header><main>\n",
        esc(&policies.join(", "))
    );
    // Time to rollback over fault scenarios; bad decisions over all.
    let ttr = distributions(sweeps, true, |r| r.time_to_rollback_s);
    let bad = distributions(sweeps, false, |r| Some(r.bad_decisions_served as f64));
    for (name, title, axis, data, log) in [
        (
            "time-to-rollback",
            "Time to rollback after the fault (fault scenarios)",
            "seconds from the fault's start (logarithmic)",
            &ttr,
            true,
        ),
        ("bad-decisions", "Bad decisions served", "user-facing decisions that differ from legacy's", &bad, false),
    ] {
        let n: usize = data.iter().map(|d| d.2.len()).sum();
        let svg = boxplots(data, &policies, axis, log, log && policies.len() > 1)
            .unwrap_or_else(|e| format!("<p class=\"fail\">{}</p>", esc(&e)));
        out += &format!(
            "<section class=\"panel\" data-panel=\"{name}\" data-points=\"{n}\"><h2>{title}</h2>\
             <p class=\"muted\">Box: quartiles and the median; whiskers: the smallest and the largest value over the runs.</p>{svg}</section>\n"
        );
    }
    out += &table(sweeps);
    out += "</main>\n";
    out += AUDIT_SCRIPT;
    out += "</body></html>\n";
    out
}

type Distribution = (String, usize, Vec<f64>);

/// Per (scenario, judge): the values of every run that has one.
fn distributions(
    sweeps: &[Sweep],
    faults_only: bool,
    value: impl Fn(&crate::world::sweep::RunRecord) -> Option<f64>,
) -> Vec<Distribution> {
    let mut out = Vec::new();
    let Some(first) = sweeps.first() else { return out };
    for (i, r) in first.records.iter().enumerate() {
        if faults_only && !r.has_fault {
            continue;
        }
        for (k, s) in sweeps.iter().enumerate() {
            let values = s.records.get(i).map(|r| r.runs.iter().filter_map(&value).collect()).unwrap_or_default();
            out.push((r.scenario.clone(), k, values));
        }
    }
    out
}

/// The median of a distribution.
fn median(values: &[f64]) -> Option<f64> {
    crate::figures::median(&crate::figures::sorted(values.iter().copied()))
}

/// What a box draws: the smallest value, the lower quartile, the median, the upper
/// quartile and the largest (quartiles interpolated between order statistics, as
/// plotters' `Quartiles` computes them; the whiskers end at the extremes, not at fences).
pub fn five_numbers(values: &[f64]) -> [f64; 5] {
    let q = Quartiles::new(values).values();
    let v = crate::figures::sorted(values.iter().copied());
    let (lo, hi) = (v.first().copied().unwrap_or(0.0), v.last().copied().unwrap_or(0.0));
    [lo, f64::from(q[1]), f64::from(q[2]), f64::from(q[3]), hi]
}

/// One horizontal box at pixel row `y`: `x` the pixels of [`five_numbers`]; whiskers from
/// the box to the extremes, each ended by a cap.
fn draw_box(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    x: [i32; 5],
    y: i32,
    color: RGBColor,
) -> Result<(), DrawingAreaErrorKind<std::io::Error>> {
    let line = color.stroke_width(2);
    area.draw(&PathElement::new(vec![(x[0], y), (x[1], y)], line))?;
    area.draw(&PathElement::new(vec![(x[3], y), (x[4], y)], line))?;
    for cap in [x[0], x[4]] {
        area.draw(&PathElement::new(vec![(cap, y - 4), (cap, y + 4)], line))?;
    }
    area.draw(&Rectangle::new([(x[1], y - 6), (x[3], y + 6)], line))?;
    area.draw(&PathElement::new(vec![(x[2], y - 6), (x[2], y + 6)], line))
}

/// Per scenario (in order), the judge with the lowest median and that median; None where
/// no judge has a value.
fn fastest(data: &[Distribution], policies: &[&str]) -> Vec<(String, Option<(String, f64)>)> {
    let mut out: Vec<(String, Option<(String, f64)>)> = Vec::new();
    for d in data {
        if out.last().is_none_or(|(n, _)| *n != d.0) {
            out.push((d.0.clone(), None));
        }
        let slot = &mut out.last_mut().expect("pushed above").1;
        if let (Some(m), Some(policy)) = (median(&d.2), policies.get(d.1)) {
            if slot.as_ref().is_none_or(|(_, best)| m < *best) {
                *slot = Some((policy.to_string(), m));
            }
        }
    }
    out
}

/// Where a logarithmic time axis starts, s: a value below it sits on the axis.
const LOG_FLOOR: f32 = 0.1;

/// One horizontal box per (scenario, judge), every scenario labelled. `log`: a
/// logarithmic value axis (times from a tenth of a second, a rollback at the first bad
/// request, to thousands of seconds); `fastest`: each label
/// names the judge with the lowest median.
fn boxplots(
    data: &[Distribution],
    policies: &[&str],
    axis: &str,
    log: bool,
    with_fastest: bool,
) -> Result<String, String> {
    let err = |e: &dyn std::fmt::Display| format!("chart: {e}");
    let (names, labels): (Vec<String>, Vec<String>) = fastest(data, policies)
        .into_iter()
        .map(|(name, best)| {
            let label = match best {
                Some((policy, m)) if with_fastest => format!("{name} · {policy} fastest ({} s)", seconds(m)),
                _ => name.clone(),
            };
            (name, label)
        })
        .unzip();
    let label_of = |n: &str| names.iter().position(|x| x == n).map(|i| &labels[i]);
    // Room on the right for the legend.
    let max = data.iter().flat_map(|d| d.2.iter().copied()).fold(0.0f64, f64::max).max(1.0) as f32;
    let k = policies.len().max(1) as f64;
    // Every band tall enough for its label, so the axis can name every scenario.
    let band = (18 * k as u32 + 10).max(24);
    let size = (1100, (names.len() as u32 * band + 90).max(200));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut builder = ChartBuilder::on(&root);
        builder.margin(8).x_label_area_size(36).y_label_area_size(380);
        // plotters places one category at no position at all (it divides by the count less
        // one): a single scenario gets an empty band beside it.
        let mut axis_labels = labels.clone();
        if axis_labels.len() == 1 {
            axis_labels.push(String::new());
        }
        let keys = axis_labels.as_slice().into_segmented();
        let y_labels = names.len().max(1);
        macro_rules! draw {
            ($chart:ident) => {{
                $chart
                    .configure_mesh()
                    .disable_y_mesh()
                    .y_labels(y_labels)
                    .light_line_style(RGBColor(238, 238, 238))
                    .y_label_formatter(&|v| match v {
                        SegmentValue::CenterOf(n) | SegmentValue::Exact(n) => n.to_string(),
                        SegmentValue::Last => String::new(),
                    })
                    .x_desc(axis)
                    .label_style(("sans-serif", 12))
                    .draw()
                    .map_err(|e| err(&e))?;
                for (p, policy) in policies.iter().enumerate() {
                    let color = PALETTE[p % PALETTE.len()];
                    let offset = ((p as f64 - (k - 1.0) / 2.0) * 16.0) as i32;
                    for d in data.iter().filter(|d| d.1 == p && !d.2.is_empty()) {
                        let Some(key) = label_of(&d.0) else { continue };
                        // A log axis starts at LOG_FLOOR: a value below it sits on the axis.
                        let floor = f64::from(LOG_FLOOR);
                        let values: Vec<f64> = d.2.iter().map(|v| if log { v.max(floor) } else { *v }).collect();
                        let at = |v: f64| $chart.backend_coord(&(v as f32, SegmentValue::CenterOf(key)));
                        let five = five_numbers(&values);
                        let y = at(five[2]).1 + offset;
                        draw_box(&root, five.map(|v| at(v).0), y, color).map_err(|e| err(&e))?;
                    }
                    // The legend's entry (the boxes are drawn in pixels, outside any series).
                    $chart
                        .draw_series(std::iter::empty::<Circle<(f32, SegmentValue<&String>), i32>>())
                        .map_err(|e| err(&e))?
                        .label(policy.to_string())
                        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
                }
                legend(&mut $chart, SeriesLabelPosition::UpperRight)?;
            }};
        }
        if log {
            // A little below the floor, so that its decade is a labelled tick.
            let mut chart =
                builder.build_cartesian_2d((LOG_FLOOR * 0.8..max * 4.0).log_scale(), keys).map_err(|e| err(&e))?;
            draw!(chart);
        } else {
            let mut chart = builder.build_cartesian_2d(0.0f32..max * 1.3, keys).map_err(|e| err(&e))?;
            draw!(chart);
        }
        root.present().map_err(|e| err(&e))?;
    }
    Ok(svg)
}

fn table(sweeps: &[Sweep]) -> String {
    let mut out = String::from(
        "<section class=\"panel\" data-panel=\"sweep-table\"><h2>Per scenario and judge</h2>\
         <table><tr><th>scenario</th><th>judge</th><th>runs</th><th>passed</th><th>detection</th>\
         <th>false rollbacks</th><th>rollback p50 / p95 / max s</th><th>bad decisions p50 / p95</th></tr>\n",
    );
    let Some(first) = sweeps.first() else { return out + "</table></section>\n" };
    let mut rows = 0;
    for (i, x) in first.scenarios.iter().enumerate() {
        for s in sweeps {
            let Some(y) = s.scenarios.get(i) else { continue };
            rows += 1;
            let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}"));
            let t = |v: Option<f64>| v.map_or("-".to_string(), seconds);
            let detection = y.detection_rate.map_or("-".into(), |r| format!("{:.1} %", 100.0 * r));
            let false_rb = y.false_rollback_rate.map_or("-".into(), |r| {
                let k = (r * y.runs as f64).round() as u64;
                format!("{k} of {}", y.runs)
            });
            let class = if y.passed == y.runs { "pass" } else { "fail" };
            out += &format!(
                "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num {class}\">{}</td><td class=\"num\">{detection}</td>\
                 <td class=\"num\">{false_rb}</td><td class=\"num\">{} / {} / {}</td><td class=\"num\">{} / {}</td></tr>\n",
                esc(&x.scenario),
                esc(&s.policy),
                y.runs,
                y.passed,
                t(y.time_to_rollback_s.p50),
                t(y.time_to_rollback_s.p95),
                t(y.time_to_rollback_s.max),
                f(y.bad_decisions_served.p50),
                f(y.bad_decisions_served.p95)
            );
        }
    }
    out = out.replacen("data-panel=\"sweep-table\"", &format!("data-panel=\"sweep-table\" data-points=\"{rows}\""), 1);
    out + "</table></section>\n"
}
