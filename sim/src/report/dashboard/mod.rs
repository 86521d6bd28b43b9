//! The parity dashboard: one self-contained HTML page per rollout (report.html), the same
//! panels served live by the router, and the index of a suite or a sweep. Charts are SVG
//! drawn by plotters; the page needs no network and no script to show them.
//!
//! Every panel is a `<section class="panel" data-panel=NAME data-points=N>`, N counting
//! the data it drew, so a browser test can tell a panel with data from an empty one.

mod charts;
mod index;
mod panels;

use cutover_migration::answer::Answer;
use cutover_migration::features::FeatureParity;

pub use index::{suite_index, sweep_index, SuiteRow};

use crate::core::history::Event;
use crate::core::trace::{Lineage, StageStats, Trace};
use crate::core::verdict::Summary;
use crate::world::RunResult;

/// Everything a report draws, borrowed from a finished run or a live rollout.
pub struct ReportData<'a> {
    /// summary.json.
    pub summary: &'a Summary,
    /// The history's events.
    pub events: &'a [Event],
    /// Guardrails per evaluation, score differences.
    pub trace: &'a Trace,
    /// Every stage's statistics.
    pub stage_stats: &'a [StageStats],
    /// Feature parity per feature and segment.
    pub parity: &'a [FeatureParity],
    /// The stacks' lineage, when known.
    pub lineage: Option<&'a Lineage>,
    /// The x axis ends here: the scenario's duration, or now for a live rollout.
    pub horizon_s: f64,
    /// The migration's answer: what the score panel draws.
    pub answer: &'a Answer,
}

impl<'a> ReportData<'a> {
    /// A finished run's report data.
    pub fn of_run(run: &'a RunResult) -> ReportData<'a> {
        ReportData {
            summary: &run.summary,
            events: &run.events,
            trace: &run.trace,
            stage_stats: &run.stage_stats,
            parity: &run.parity,
            lineage: run.lineage.as_deref(),
            horizon_s: run.duration_s,
            answer: &run.answer,
        }
    }
}

/// How the page behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageKind {
    /// A file that opens offline.
    Report,
    /// Served by the router: refreshes its panels from `panels_url` every two seconds.
    Live {
        /// Where the panels' HTML comes from.
        panels_url: &'static str,
    },
}

const STYLE: &str = include_str!("style.css");

/// Marks each panel with what the browser actually laid out (`data-rendered`: drawn
/// shapes and table rows with a size), for tests in a real browser; it changes nothing
/// on the page.
pub(crate) const AUDIT_SCRIPT: &str = r#"<script>
function cutoverAudit() {
  document.querySelectorAll("section.panel").forEach(function (s) {
    var n = 0;
    s.querySelectorAll("svg").forEach(function (svg) {
      var shapes = 0;
      svg.querySelectorAll("polyline, polygon, rect").forEach(function (e) {
        var r = e.getBoundingClientRect();
        if (r.width > 0 || r.height > 0) shapes++;
      });
      n += Math.max(shapes - 1, 0); // less the background
    });
    s.querySelectorAll("tr, li").forEach(function (e) {
      if (e.querySelector("td") || e.tagName === "LI") {
        var r = e.getBoundingClientRect();
        if (r.height > 0) n++;
      }
    });
    s.dataset.rendered = String(n);
  });
  document.body.dataset.audited = String(Number(document.body.dataset.audited || 0) + 1);
}
window.addEventListener("load", cutoverAudit);
</script>
"#;

/// The whole page.
pub fn page(data: &ReportData<'_>, kind: PageKind) -> String {
    let s = data.summary;
    let title = format!("cutover: {}", s.scenario);
    let mut out = head(&title);
    out += &format!(
        "<header><h1>{}</h1><p>seed {} · judge <b>{}</b> · {}</p></header>\n",
        esc(&s.scenario),
        s.seed,
        esc(&s.policy),
        match kind {
            PageKind::Report => format!("history sha256 <code>{}</code>", esc(&s.history_sha256)),
            PageKind::Live { .. } => {
                "live: <span id=\"updated\">refreshing every 2 s</span> <span id=\"refreshes\" data-refreshes=\"0\"></span>"
                    .into()
            }
        }
    );
    out += "<main id=\"panels\">\n";
    out += &panels(data);
    out += "</main>\n";
    out += AUDIT_SCRIPT;
    if let PageKind::Live { panels_url } = kind {
        out += &live_script(panels_url);
    }
    out += "</body></html>\n";
    out
}

/// The panels alone (what the live page fetches).
pub fn panels(data: &ReportData<'_>) -> String {
    panels::all(data)
}

pub(crate) fn head(title: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>\n",
        esc(title)
    )
}

fn live_script(url: &str) -> String {
    format!(
        r#"<script>
(function () {{
  const counter = document.getElementById("refreshes");
  async function refresh() {{
    try {{
      const r = await fetch("{url}", {{ cache: "no-store" }});
      if (!r.ok) throw new Error("HTTP " + r.status);
      document.getElementById("panels").innerHTML = await r.text();
      cutoverAudit();
      const n = Number(counter.dataset.refreshes) + 1;
      counter.dataset.refreshes = String(n);
      document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
    }} catch (e) {{
      document.getElementById("updated").textContent = "not updated: " + e.message;
    }}
  }}
  setInterval(refresh, 2000);
}})();
</script>
"#
    )
}

/// HTML-escapes text.
pub(crate) fn esc(s: &str) -> String {
    html_escape::encode_text(s).into_owned()
}
