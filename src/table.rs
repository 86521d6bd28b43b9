//! The verdict table printed at the end of `run` and `suite`: one line per scenario, in
//! colour when standard output is a terminal (or `--color always`; `NO_COLOR` turns it off).

use std::io::IsTerminal;

use anstyle::{AnsiColor, Style};
use clap::ColorChoice;
use cutover_sim::core::verdict::Summary;
use cutover_sim::scenario::Outcome;

/// Whether to colour standard output.
pub fn use_color(choice: ColorChoice) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stdout().is_terminal()
        }
    }
}

/// `text` padded to `width` (left-aligned when `left`), then styled.
fn cell(text: &str, width: usize, left: bool, style: Style, color: bool) -> String {
    let padded = if left { format!("{text:<width$}") } else { format!("{text:>width$}") };
    if color {
        format!("{style}{padded}{style:#}")
    } else {
        padded
    }
}

const GREEN: Style = Style::new().fg_color(Some(anstyle::Color::Ansi(AnsiColor::Green))).bold();
const RED: Style = Style::new().fg_color(Some(anstyle::Color::Ansi(AnsiColor::Red))).bold();
const YELLOW: Style = Style::new().fg_color(Some(anstyle::Color::Ansi(AnsiColor::Yellow)));
const DIM: Style = Style::new().dimmed();
const BOLD: Style = Style::new().bold();
const PLAIN: Style = Style::new();

/// The table, one line per summary, then a totals line.
pub fn verdicts(rows: &[&Summary], color: bool) -> String {
    let mut out = String::new();
    let header = ["scenario", "result", "outcome", "expect", "detect s", "rollback s", "bad dec", "failed"];
    let widths = [40, 6, 12, 6, 9, 11, 8, 7];
    let mut line = Vec::new();
    for (k, (h, w)) in header.iter().zip(widths).enumerate() {
        line.push(cell(h, w, k < 3, BOLD, color));
    }
    out += &line.join(" ");
    out.push('\n');
    for s in rows {
        let since = |t: Option<f64>| match (t, s.fault_start_s) {
            (Some(t), Some(f)) => format!("{:.0}", t - f),
            _ => "-".into(),
        };
        let held = s.expectations.iter().filter(|e| e.passed).count();
        let (result, result_style) = if s.passed { ("pass", GREEN) } else { ("FAIL", RED) };
        let (outcome, outcome_style) = match s.outcome {
            Outcome::Promoted => ("promoted", GREEN),
            Outcome::RolledBack => ("rolled_back", YELLOW),
            Outcome::InProgress => ("in_progress", DIM),
        };
        let failed_style = if s.requests_failed > 0 { RED } else { PLAIN };
        let cells = [
            cell(&s.scenario, widths[0], true, PLAIN, color),
            cell(result, widths[1], true, result_style, color),
            cell(outcome, widths[2], true, outcome_style, color),
            cell(&format!("{held}/{}", s.expectations.len()), widths[3], false, result_style, color),
            cell(&since(s.detected_at_s), widths[4], false, PLAIN, color),
            cell(&since(s.rollback_completed_s), widths[5], false, PLAIN, color),
            cell(&s.bad_decisions_served.to_string(), widths[6], false, PLAIN, color),
            cell(&s.requests_failed.to_string(), widths[7], false, failed_style, color),
        ];
        out += &cells.join(" ");
        out.push('\n');
    }
    // Holds on adverse evidence, under the table: the scenario, then each hold in words.
    for s in rows.iter().filter(|s| !s.holds.is_empty()) {
        for h in &s.holds {
            let line = format!("  {}: {}", s.scenario, h.describe());
            out += &cell(&line, 0, true, YELLOW, color);
            out.push('\n');
        }
    }
    if rows.len() > 1 {
        let passed = rows.iter().filter(|s| s.passed).count();
        let style = if passed == rows.len() { GREEN } else { RED };
        let text = format!("{passed} of {} scenarios passed", rows.len());
        out += &if color { format!("{style}{text}{style:#}") } else { text };
        out.push('\n');
    }
    out
}
