//! Reports: the files a run writes (summary.json, timeline.csv, history.jsonl,
//! parity.json, report.html) and the dashboards, read from the results of either face.

pub mod dashboard;

use std::path::Path;

use crate::core::history::Event;
use crate::core::verdict::TimelineRow;
use crate::core::Phase;

/// The columns every timeline row has before the guardrails'.
const TIMELINE_LEAD: [&str; 6] = ["t_s", "weight_pct", "phase", "requests", "served_legacy", "served_new"];

/// timeline.csv: the lead columns, then the guardrails' columns as their definitions give
/// them (docs/contracts.md).
pub fn timeline_csv(rows: &[TimelineRow]) -> String {
    let o = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.6}"));
    let columns = crate::core::Guardrail::timeline_columns();
    let mut out = TIMELINE_LEAD.join(",");
    for (name, _) in &columns {
        out.push(',');
        out.push_str(name);
    }
    out.push('\n');
    for r in rows {
        let w = &r.window;
        let mut cells = vec![
            format!("{:.1}", r.t_s),
            format!("{}", r.weight_pct),
            r.phase.clone(),
            w.requests.to_string(),
            w.served_legacy.to_string(),
            w.served_new.to_string(),
        ];
        cells.extend(columns.iter().map(|(_, read)| o(read(w))));
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

#[cfg(test)]
mod tests {
    #[test]
    fn timeline_csv_keeps_its_columns_as_the_guardrail_definitions_give_them() {
        let header = super::timeline_csv(&[]);
        assert_eq!(
            header.trim_end(),
            "t_s,weight_pct,phase,requests,served_legacy,served_new,decision_flip_rate,mean_abs_score_diff,feature_mismatch_rate,error_rate,timeout_rate,legacy_p50_ms,legacy_p95_ms,legacy_p99_ms,new_p50_ms,new_p95_ms,new_p99_ms,feature_staleness_s"
        );
    }
}
