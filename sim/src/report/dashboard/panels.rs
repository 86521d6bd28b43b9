//! The panels of a rollout's page, each from the run's history, trace and parity.

use super::charts::{self, Frame, Line, LEGACY, NEW, PALETTE};
use super::{esc, ReportData};
use crate::core::controller::Phase;
use crate::core::guardrail::{Answers, Definition, Guardrail, Panel, Shown};
use crate::core::history::Event;
use crate::core::monitor::WindowSummary;
use crate::core::verdict;
use crate::scenario::Outcome;

/// (t, value) points of one line.
type Series = Vec<(f64, Option<f64>)>;

/// Every panel, in reading order.
pub fn all(d: &ReportData<'_>) -> String {
    let frame = frame(d);
    let evals = evaluations(d.events);
    [
        verdict(d),
        timeline(d, &frame),
        guardrails(d, &frame),
        evidence(d, &frame),
        parity(d),
        scores(d, &frame, &evals),
        latency(d),
        errors(&frame, &evals),
        lineage(d),
    ]
    .concat()
}

fn section(name: &str, title: &str, points: usize, body: &str) -> String {
    format!(
        "<section class=\"panel\" id=\"panel-{name}\" data-panel=\"{name}\" data-points=\"{points}\">\n<h2>{}</h2>\n{body}</section>\n",
        esc(title)
    )
}

fn chart_or_error(r: Result<String, String>) -> String {
    r.unwrap_or_else(|e| format!("<p class=\"fail\">{}</p>", esc(&e)))
}

fn frame(d: &ReportData<'_>) -> Frame {
    let mut faults: Vec<(usize, String, f64, f64)> = Vec::new();
    let mut stage_changes = Vec::new();
    for e in d.events {
        match e {
            Event::FaultStart { t_s, index, kind } => faults.push((*index, kind.clone(), *t_s, d.horizon_s)),
            Event::FaultEnd { t_s, index } => {
                if let Some(f) = faults.iter_mut().rev().find(|f| f.0 == *index) {
                    f.3 = *t_s;
                }
            }
            Event::Stage { t_s, .. } if *t_s > 0.0 => stage_changes.push(*t_s),
            _ => {}
        }
    }
    Frame {
        horizon_s: d.horizon_s,
        faults: faults.into_iter().map(|(_, k, a, b)| (k, a, b)).collect(),
        stage_changes,
        detected_s: d.summary.detected_at_s,
        rollback_s: d.summary.rollback_completed_s,
    }
}

fn evaluations(events: &[Event]) -> Vec<(f64, &WindowSummary)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Evaluation { t_s, window, .. } => Some((*t_s, &**window)),
            _ => None,
        })
        .collect()
}

fn outcome_name(o: Outcome) -> &'static str {
    match o {
        Outcome::Promoted => "promoted",
        Outcome::RolledBack => "rolled back",
        Outcome::InProgress => "in progress",
    }
}

fn secs(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.1} s"))
}

fn verdict(d: &ReportData<'_>) -> String {
    let s = d.summary;
    let badge =
        if s.passed { "<span class=\"badge pass\">PASS</span>" } else { "<span class=\"badge fail\">FAIL</span>" };
    let mut body = format!(
        "<p>{badge} The rollout <b>{}</b>. {} requests, {} failed for the user, {} bad decisions served. \
         Fault began {}, detected {}, rolled back {}.</p>\n{}<ul class=\"expect\">\n",
        outcome_name(s.outcome),
        s.requests_total,
        s.requests_failed,
        s.bad_decisions_served,
        secs(s.fault_start_s),
        secs(s.detected_at_s),
        secs(s.rollback_completed_s),
        s.holds
            .last()
            .filter(|h| h.ended.is_none())
            .map_or(String::new(), |h| format!("<p class=\"held\">Now {}.</p>\n", esc(&h.describe()))),
    );
    for e in &s.expectations {
        let (class, mark) = if e.passed { ("pass", "✓") } else { ("fail", "✗") };
        body += &format!("<li><span class=\"{class}\">{mark} {}</span>: {}</li>\n", esc(&e.name), esc(&e.detail));
    }
    body += "</ul>\n";
    if !s.passed {
        body += &format!("<p>Reproduce: <code>{}</code></p>\n", esc(&s.reproduce));
    }
    section("verdict", "Verdict and expectations", s.expectations.len(), &body)
}

fn timeline(d: &ReportData<'_>, frame: &Frame) -> String {
    let weights: Vec<(f64, Option<f64>)> = d
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Stage { t_s, weight_pct, .. } => Some((*t_s, Some(*weight_pct))),
            _ => None,
        })
        .collect();
    let line = Line { label: "new stack's share of users (%)".into(), points: &weights, color: NEW, steps: true };
    let svg = chart_or_error(charts::time_chart((1100, 300), "weight (%)", frame, &[line], None, &[]));
    let mut table = String::from(
        "<table><tr><th>stage</th><th>phase</th><th>weight</th><th>entered</th><th>left</th><th>verdict</th></tr>\n",
    );
    let stages: Vec<(f64, Phase, f64)> = d
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Stage { t_s, phase, weight_pct } => Some((*t_s, *phase, *weight_pct)),
            _ => None,
        })
        .collect();
    for (i, &(t, phase, weight)) in stages.iter().enumerate() {
        let next = stages.get(i + 1);
        let verdict = match next.map(|n| n.1) {
            None if phase == Phase::RolledBack => "final: legacy serves every user".to_string(),
            None if matches!(phase, Phase::Promoted | Phase::Retired) => {
                "final: the new stack serves every user".into()
            }
            None => "still running at the end".into(),
            Some(Phase::Canary(_)) => format!("passed, advanced to {} %", next.map_or(0.0, |n| n.2)),
            Some(Phase::Promoted) => "passed, promoted".into(),
            Some(Phase::RolledBack) => match &d.summary.trigger {
                Some(tr) => format!("rolled back: {}", tr.describe()),
                None => "rolled back".into(),
            },
            Some(Phase::Retired) => "legacy decommissioned".into(),
            Some(Phase::Shadow) => "back to shadow".into(),
        };
        table += &format!(
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{weight} %</td><td class=\"num\">{t:.1} s</td><td class=\"num\">{}</td><td>{}</td></tr>\n",
            i + 1,
            verdict::phase_name(phase),
            secs(next.map(|n| n.0)),
            esc(&verdict)
        );
    }
    table += "</table>\n";
    table += &holds(d);
    section("timeline", "Rollout timeline", weights.len(), &format!("{svg}{table}"))
}

/// The stages held on adverse evidence, in words.
fn holds(d: &ReportData<'_>) -> String {
    if d.summary.holds.is_empty() {
        return String::new();
    }
    let items: String = d.summary.holds.iter().map(|h| format!("<li>{}</li>\n", esc(&h.describe()))).collect();
    format!(
        "<p>Held on adverse evidence (a stage does not advance while the judge's e-value against the new stack \
         is at its hold level, until it falls below the release level):</p>\n<ul class=\"holds\">\n{items}</ul>\n"
    )
}

fn guardrails(d: &ReportData<'_>, frame: &Frame) -> String {
    let mut body = String::from(
        "<p class=\"muted\">Each evaluation window's statistic, its 95 % Wilson interval (rates), and the limit.</p><div class=\"grid\">\n",
    );
    let mut points = 0;
    for (k, &(guardrail, limit)) in d.trace.guardrails.iter().enumerate() {
        let name = guardrail.name();
        let mine: Vec<_> = d.trace.points.iter().filter(|p| p.guardrail == guardrail).collect();
        let series: Vec<(f64, Option<f64>)> =
            mine.iter().map(|p| (p.t_s, p.observed.filter(|v| v.is_finite()))).collect();
        let band: Vec<(f64, f64, f64)> =
            mine.iter().filter_map(|p| p.interval.map(|(lo, hi)| (p.t_s, lo, hi))).collect();
        points += series.iter().filter(|p| p.1.is_some()).count();
        let line = Line { label: name.to_string(), points: &series, color: PALETTE[k % PALETTE.len()], steps: false };
        let svg = chart_or_error(charts::time_chart(
            (560, 260),
            name,
            frame,
            &[line],
            Some((format!("limit {limit}"), limit)),
            &band,
        ));
        // Where its evidence shows in detail, as its definition says.
        let def = guardrail.def();
        body += &format!(
            "<figure><figcaption>{} <a class=\"muted\" href=\"#panel-{}\">details</a></figcaption>{svg}</figure>\n",
            esc(name),
            def.panel.id()
        );
    }
    body += "</div>\n";
    section("guardrails", "Guardrails against their limits", points, &body)
}

fn evidence(d: &ReportData<'_>, frame: &Frame) -> String {
    // Past 1 only the crossing matters: capped at 2 to keep the scale.
    let cap = |e: f64| Some(e.min(2.0));
    let mut series: Vec<(String, Series)> = d
        .trace
        .guardrails
        .iter()
        .map(|&(guardrail, _)| {
            let pts = d.trace.points.iter().filter(|p| p.guardrail == guardrail && p.evidence.is_some());
            (guardrail.name().to_string(), pts.map(|p| (p.t_s, p.evidence.and_then(cap))).collect::<Vec<_>>())
        })
        .filter(|(_, pts)| !pts.is_empty())
        .collect();
    if series.is_empty() {
        let body = format!(
            "<p>The <b>{}</b> judge reads each window on its own and keeps no running evidence; \
             its windows are in the guardrail panel above.</p>\n",
            esc(&d.summary.policy)
        );
        return section("evidence", "Sequential evidence", d.trace.points.len(), &body);
    }
    series.insert(
        0,
        ("weighted sum".to_string(), d.trace.evidence_sum().into_iter().map(|(t, e)| (t, cap(e))).collect()),
    );
    // Each hold as a bar at its hold level, from its start to its end.
    let mut held: Series = Vec::new();
    for h in &d.summary.holds {
        let level = h.hold_e_value / h.e_value_threshold;
        let to = h.to_s.unwrap_or(d.horizon_s);
        held.extend([(h.from_s, Some(level)), (to, Some(level)), (to, None)]);
    }
    if !held.is_empty() {
        series.push(("held (at the hold level)".to_string(), held));
    }
    let lines: Vec<Line<'_>> = series
        .iter()
        .enumerate()
        .map(|(k, (name, pts))| Line {
            label: name.clone(),
            points: pts,
            color: if k == 0 { plotters::style::BLACK } else { PALETTE[(k - 1) % PALETTE.len()] },
            steps: false,
        })
        .collect();
    let n = series.iter().map(|s| s.1.len()).sum();
    let svg = chart_or_error(charts::time_chart(
        (1100, 300),
        "weighted sum of the tests (1 rolls back)",
        frame,
        &lines,
        Some(("rolls back at 1 (anytime-valid)".into(), 1.0)),
        &[],
    ));
    let body = format!(
        "<p class=\"muted\">What the sequential judge acts on: the weighted sum of its tests' e-values (each \
         test's statistic over its threshold), read after every request and charted at each evaluation, with each \
         guardrail's part of it (capped at 2). The judge rolls back when the sum reaches 1, with P(rolling back a \
         clean migration) within the plan's budget. While the sum is at the plan's hold level the stage does \
         not advance (drawn as a bar where it held).</p>{svg}"
    );
    section("evidence", "Sequential evidence towards a rollback", n, &body)
}

fn parity(d: &ReportData<'_>) -> String {
    let Some(first) = d.parity.first() else {
        return section("parity", "Feature parity", 0, "<p>No feature rows were compared.</p>\n");
    };
    let features: Vec<String> = d.parity.iter().map(|f| f.feature.clone()).collect();
    let segments: Vec<String> = first.segments.iter().map(|s| s.segment.clone()).collect();
    let values: Vec<Vec<Option<f64>>> = d
        .parity
        .iter()
        .map(|f| f.segments.iter().map(|s| (s.requests > 0).then_some(s.mismatch_rate)).collect())
        .collect();
    let cells = values.iter().flatten().filter(|v| v.is_some()).count();
    let max = values.iter().flatten().flatten().copied().fold(0.0f64, f64::max);
    let svg = chart_or_error(charts::heatmap(&features, &segments, &values));
    let mut worst: Vec<_> = d
        .parity
        .iter()
        .flat_map(|f| f.segments.iter().map(move |s| (f, s)))
        .filter(|(_, s)| s.requests > 0 && s.mismatch_rate > 0.0)
        .collect();
    worst.sort_by(|a, b| b.1.mismatch_rate.total_cmp(&a.1.mismatch_rate).then(b.1.requests.cmp(&a.1.requests)));
    let mut list = String::new();
    if worst.is_empty() {
        list += "<p>No feature differed between the two paths in any segment.</p>\n";
    } else {
        list += "<table><tr><th>feature</th><th>segment</th><th>mismatched</th><th>requests</th><th>mean |diff|</th><th>max |diff|</th><th>PSI</th></tr>\n";
        for (f, s) in worst.iter().take(8) {
            let o = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.3}"));
            list += &format!(
                "<tr><td>{}</td><td>{}</td><td class=\"num\">{:.2} %</td><td class=\"num\">{}</td><td class=\"num\">{:.4}</td><td class=\"num\">{:.4}</td><td class=\"num\">{}</td></tr>\n",
                esc(&f.feature),
                esc(&s.segment),
                100.0 * s.mismatch_rate,
                s.requests,
                s.mean_abs_diff,
                s.max_abs_diff,
                o(s.psi)
            );
        }
        list += "</table>\n";
    }
    let body = format!(
        "<p class=\"muted\">Share of requests whose feature value differs between the legacy and the new path, by feature and segment. Colour from dark (0 %) to yellow ({:.2} %); grey: no requests.</p>{svg}<h3>Worst cells</h3>{list}",
        100.0 * max
    );
    section("parity", "Feature parity by segment", cells, &body)
}

fn scores(d: &ReportData<'_>, frame: &Frame, evals: &[(f64, &WindowSummary)]) -> String {
    use cutover_migration::answer::AnswerKind;
    let sd = &d.trace.score_diffs;
    let mut labels = vec!["0".to_string()];
    labels.extend(sd.edges.iter().map(|e| format!("≤{e:.0e}")));
    let mut counts = vec![sd.zero];
    counts.extend(sd.bins);
    let (axis, title) = match d.answer.kind {
        AnswerKind::Binary => ("|new score − legacy score|", "Score differences and decision flips"),
        AnswerKind::Multiclass => ("largest |Δ class probability|", "Class-probability differences and argmax flips"),
        AnswerKind::Regression => ("|new − legacy| (model units)", "Prediction differences"),
    };
    let hist = chart_or_error(charts::bars(&labels, &counts, axis, "requests"));
    // Over time: the first guardrail of this panel that only this kind of answer has (the
    // flip rate for a decision, the relative difference for a number), by its definition.
    let shown = Guardrail::ALL.into_iter().find_map(|g| {
        let def = g.def();
        let own = def.panel == Panel::Scores && def.answers.0 != Answers::Any && g.applies_to(d.answer.kind).is_ok();
        match def.shown {
            Shown::Value { read, .. } if own => Some((def.name, read)),
            _ => None,
        }
    });
    // Every answer has the mean absolute difference.
    let fallback = Guardrail::MeanAbsScoreDiff.def();
    let (name, read) = shown.unwrap_or(match fallback.shown {
        Shown::Value { read, .. } => (fallback.name, read),
        _ => (fallback.name, |w: &WindowSummary| w.mean_abs_score_diff),
    });
    let series: Vec<(f64, Option<f64>)> = evals.iter().map(|(t, w)| (*t, read(w))).collect();
    let what = &name.replace('_', " ");
    let line = Line { label: what.into(), points: &series, color: NEW, steps: false };
    let over_time = chart_or_error(charts::time_chart((560, 300), what, frame, &[line], None, &[]));
    let share =
        |k: u64| if sd.answered > 0 { format!("{:.3} %", 100.0 * k as f64 / sd.answered as f64) } else { "-".into() };
    let summary = match d.answer.kind {
        AnswerKind::Regression => format!(
            "{} requests answered by both stacks; {} of them (<b>{}</b>) differ by more than the tolerance of {} the migration declares.",
            sd.answered, sd.wrong, share(sd.wrong), d.answer.tolerance
        ),
        _ => format!(
            "{} requests answered by both stacks; decisions flipped on {} of them (<b>{}</b>).",
            sd.answered, sd.flips, share(sd.flips)
        ),
    };
    let body = format!(
        "<p>{summary}</p>\
         <div class=\"grid\"><figure><figcaption>Distribution of the differences</figcaption>{hist}</figure>\
         <figure><figcaption>{} per evaluation</figcaption>{over_time}</figure></div>\n",
        capitalize(what)
    );
    section("scores", title, sd.answered as usize + series.len(), &body)
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next().map_or(String::new(), |f| f.to_uppercase().chain(c).collect())
}

fn latency(d: &ReportData<'_>) -> String {
    let groups: Vec<String> =
        d.stage_stats.iter().enumerate().map(|(i, s)| format!("{} {} ({} %)", i + 1, s.phase, s.weight_pct)).collect();
    let series: Vec<(String, plotters::style::RGBColor)> = [
        ("legacy p50", charts::lighter(LEGACY, 0.55)),
        ("legacy p95", charts::lighter(LEGACY, 0.3)),
        ("legacy p99", LEGACY),
        ("new p50", charts::lighter(NEW, 0.55)),
        ("new p95", charts::lighter(NEW, 0.3)),
        ("new p99", NEW),
    ]
    .into_iter()
    .map(|(n, c)| (n.to_string(), c))
    .collect();
    let values: Vec<Vec<Option<f64>>> =
        d.stage_stats.iter().map(|s| s.window.legacy_ms.iter().chain(&s.window.new_ms).copied().collect()).collect();
    let n = values.iter().flatten().filter(|v| v.is_some()).count();
    if d.stage_stats.is_empty() {
        return section("latency", "Latency per stack per stage", 0, "<p>No stage has data yet.</p>\n");
    }
    let svg = chart_or_error(charts::grouped_bars(&groups, &series, &values, "service time (ms)"));
    let mut table = String::from("<table><tr><th>stage</th><th>requests</th><th>legacy p50 / p95 / p99 ms</th><th>new p50 / p95 / p99 ms</th><th>errors</th><th>timeouts</th></tr>\n");
    let ms = |v: &[Option<f64>; 3]| {
        v.iter().map(|x| x.map_or("-".into(), |x| format!("{x:.2}"))).collect::<Vec<_>>().join(" / ")
    };
    let pct = |v: Option<f64>| v.map_or("-".into(), |v| format!("{:.3} %", 100.0 * v));
    for (g, s) in groups.iter().zip(d.stage_stats) {
        table += &format!(
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>\n",
            esc(g),
            s.window.requests,
            ms(&s.window.legacy_ms),
            ms(&s.window.new_ms),
            pct(s.window.error_rate),
            pct(s.window.timeout_rate)
        );
    }
    table += "</table>\n";
    section("latency", "Latency per stack per stage", n, &format!("{svg}{table}"))
}

fn errors(frame: &Frame, evals: &[(f64, &WindowSummary)]) -> String {
    // Every guardrail this panel shows, by its definition.
    let series: Vec<(&str, Series)> = Guardrail::ALL
        .into_iter()
        .filter_map(|g| match g.def() {
            Definition { panel: Panel::Errors, shown: Shown::Value { read, .. }, name, .. } => {
                Some((name, evals.iter().map(|(t, w)| (*t, read(w))).collect()))
            }
            _ => None,
        })
        .collect();
    let lines: Vec<Line<'_>> = series
        .iter()
        .enumerate()
        .map(|(k, (name, points))| Line {
            label: format!("new stack {}", name.replace('_', " ")),
            points,
            color: PALETTE[(3 + k) % PALETTE.len()],
            steps: false,
        })
        .collect();
    let svg = chart_or_error(charts::time_chart((1100, 280), "share of requests", frame, &lines, None, &[]));
    let n = series.iter().flat_map(|(_, p)| p).filter(|p| p.1.is_some()).count();
    section("errors", "Errors and timeouts of the new stack", n, &svg)
}

fn lineage(d: &ReportData<'_>) -> String {
    let Some(l) = d.lineage else {
        return section(
            "lineage",
            "Lineage",
            0,
            "<p>The stacks are external services: no registry entries are known to this router.</p>\n",
        );
    };
    let mut body = String::from("<table><tr><th></th><th>legacy</th><th>new</th></tr>\n");
    let rows: [(&str, String, String); 8] = [
        ("entry", l.legacy.id(), l.new.id()),
        ("stage", format!("{:?}", l.legacy.stage).to_lowercase(), format!("{:?}", l.new.stage).to_lowercase()),
        ("artifact", l.legacy.artifact.clone(), l.new.artifact.clone()),
        ("artifact sha256", l.legacy.sha256.clone(), l.new.sha256.clone()),
        ("feature spec", l.legacy.feature_spec.clone(), l.new.feature_spec.clone()),
        ("spec sha256", l.legacy.feature_spec_sha256.clone(), l.new.feature_spec_sha256.clone()),
        ("xgboost", l.legacy.xgboost_version.clone(), l.new.xgboost_version.clone()),
        ("parent", l.legacy.parent.clone().unwrap_or("-".into()), l.new.parent.clone().unwrap_or("-".into())),
    ];
    for (k, a, b) in &rows {
        let same = if a == b { "" } else { " class=\"fail\"" };
        body +=
            &format!("<tr><th>{k}</th><td><code>{}</code></td><td{same}><code>{}</code></td></tr>\n", esc(a), esc(b));
    }
    body += "</table>\n";
    for (file, sha) in &l.swapped_artifacts {
        body += &format!(
            "<p class=\"fail\">A fault served another artifact: <code>{}</code>, sha256 <code>{}</code>.</p>\n",
            esc(file),
            esc(sha)
        );
    }
    for sw in &l.switched_specs {
        body += &format!(
            "<p class=\"fail\">Fault {} switched the new path to the spec <code>{}</code>, sha256 <code>{}</code>:</p>\n",
            sw.fault,
            esc(&sw.file),
            esc(&sw.sha256)
        );
        body += &difference_table(&sw.differences);
    }
    if l.spec_differences.is_empty() {
        body += if l.legacy.feature_spec_sha256 == l.new.feature_spec_sha256 {
            "<p>Both stacks read the same feature spec.</p>\n"
        } else {
            "<p>No semantic difference between the two feature specs: every feature has the same source, \
             transform, vocabulary and missing-value policy (the files differ in naming or layout only).</p>\n"
        };
    } else {
        body += "<h3>Spec differences</h3>";
        body += &difference_table(&l.spec_differences);
    }
    section("lineage", "Lineage: artifacts, hashes, spec diff", rows.len() + l.spec_differences.len(), &body)
}

fn difference_table(differences: &[cutover_migration::features::spec_diff::SpecDifference]) -> String {
    let mut body =
        String::from("<table><tr><th>feature</th><th>aspect</th><th>from</th><th>to</th><th>effect</th></tr>\n");
    for x in differences {
        body += &format!(
            "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td><code>{}</code></td><td>{}</td></tr>\n",
            esc(&x.feature),
            esc(&x.aspect),
            esc(&x.legacy),
            esc(&x.new),
            esc(&x.effect)
        );
    }
    body + "</table>\n"
}
