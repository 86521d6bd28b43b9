//! Reports: the files a run writes (summary.json, timeline.csv, history.jsonl,
//! parity.json, report.html) and the dashboards, read from the results of either face.

pub mod dashboard;

use std::path::Path;

use crate::core::history::Event;
use crate::core::verdict::TimelineRow;
use crate::core::Phase;

const TIMELINE_HEADER: &str = "t_s,weight_pct,phase,requests,served_legacy,served_new,decision_flip_rate,mean_abs_score_diff,feature_mismatch_rate,error_rate,timeout_rate,legacy_p50_ms,legacy_p95_ms,legacy_p99_ms,new_p50_ms,new_p95_ms,new_p99_ms,feature_staleness_s";

/// timeline.csv.
pub fn timeline_csv(rows: &[TimelineRow]) -> String {
    let o = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.6}"));
    let mut out = String::from(TIMELINE_HEADER);
    out.push('\n');
    for r in rows {
        let w = &r.window;
        let cells = [
            format!("{:.1}", r.t_s),
            format!("{}", r.weight_pct),
            r.phase.clone(),
            w.requests.to_string(),
            w.served_legacy.to_string(),
            w.served_new.to_string(),
            o(w.flip_rate),
            o(w.mean_abs_score_diff),
            o(w.feature_mismatch_rate),
            o(w.error_rate),
            o(w.timeout_rate),
            o(w.legacy_ms[0]),
            o(w.legacy_ms[1]),
            o(w.legacy_ms[2]),
            o(w.new_ms[0]),
            o(w.new_ms[1]),
            o(w.new_ms[2]),
            o(w.staleness_s),
        ];
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

/// Writes summary.json, timeline.csv, history.jsonl, parity.json and report.html into `dir`.
pub fn write_run(dir: &Path, run: &crate::world::RunResult) -> std::io::Result<()> {
    let data = dashboard::ReportData::of_run(run);
    write_outputs(dir, &data, &run.timeline)
}

/// Writes a run's outputs from its report data and timeline rows.
pub fn write_outputs(dir: &Path, data: &dashboard::ReportData<'_>, timeline: &[TimelineRow]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("summary.json"), serde_json::to_string_pretty(data.summary).expect("serializes") + "\n")?;
    std::fs::write(dir.join("timeline.csv"), timeline_csv(timeline))?;
    let mut history = String::new();
    for e in data.events {
        history.push_str(&serde_json::to_string(e).expect("serializes"));
        history.push('\n');
    }
    std::fs::write(dir.join("history.jsonl"), history)?;
    std::fs::write(dir.join("parity.json"), serde_json::to_string_pretty(data.parity).expect("serializes") + "\n")?;
    std::fs::write(dir.join("report.html"), dashboard::page(data, dashboard::PageKind::Report))
}

/// Timeline rows from a history's evaluations (one per evaluation, at the weight and phase
/// of the stage it judged), where no minute rows were kept (live rollouts).
pub fn timeline_of(events: &[Event]) -> Vec<TimelineRow> {
    let (mut weight, mut phase) = (0.0, Phase::Shadow);
    let mut rows = Vec::new();
    for e in events {
        match e {
            Event::Stage { phase: p, weight_pct, .. } => (phase, weight) = (*p, *weight_pct),
            Event::Evaluation { t_s, window, .. } => rows.push(TimelineRow::new(*t_s, weight, phase, window)),
            _ => {}
        }
    }
    rows
}
