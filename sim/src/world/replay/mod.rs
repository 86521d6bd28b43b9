//! Replay: recorded requests through both feature paths and models, in their recorded
//! order and at their recorded times, judged by a rollout plan as if its ramp were live (a
//! dry run: nothing is served to anyone; "served" and "bad decisions" are what the ramp
//! would have done). Without a plan the traffic stays in shadow and the guardrails only
//! watch. Where the file holds the legacy service's recorded answers, the in-process legacy
//! path must reproduce them (the baseline check of the audit).
//!
//! The file is streamed: memory does not grow with its length.

pub mod record;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub use cutover_migration::recorded::{count_lines, FieldMap, Format, Reader, Recorded, RowError};
use serde::Serialize;

pub use crate::core::baseline::{Baseline, SCORE_TOLERANCE};
use crate::core::verdict::Expectation;
use crate::core::Guardrail;
use crate::scenario::{LoadedScenario, ScenarioError};
use crate::world::{run_recorded, RunError, RunResult};

/// What to replay.
#[derive(Debug, Clone)]
pub struct ReplayConfig {
    /// The recorded requests.
    pub requests: PathBuf,
    /// Their format (from the file name when not given).
    pub format: Option<Format>,
    /// A field map for a user's own columns.
    pub fields: Option<PathBuf>,
    /// Skip rows that cannot be read (counted) instead of stopping at the first.
    pub skip_bad_rows: bool,
    /// The plan to dry-run (default: the migration's default plan, all in shadow).
    pub plan: Option<PathBuf>,
    /// The migration folder, for the default plan (and to check a plan's own).
    pub migration: Option<PathBuf>,
    /// Folder that relative paths of the default plan resolve against.
    pub base: PathBuf,
    /// Seed for the simulated latencies (the plan's otherwise).
    pub seed: Option<u64>,
}

/// Why a replay did not run.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// A row (or the file, or the field map) cannot be read.
    #[error(transparent)]
    Row(#[from] RowError),
    /// The plan is invalid.
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    /// The stacks would not start.
    #[error(transparent)]
    Run(#[from] RunError),
}

/// Rows read and skipped.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Rows {
    /// Rows replayed.
    pub replayed: u64,
    /// Rows skipped as unreadable (`--skip-bad-rows`).
    pub skipped: u64,
    /// The first skipped row's error.
    pub first_skipped: Option<String>,
    /// Rows whose time was earlier than the row before (replayed at the earlier row's time).
    pub out_of_order: u64,
}

/// A replay's result: the run (summary, timeline, history, parity, report data) and its rows.
pub struct Replayed {
    /// Everything `run` gives.
    pub run: RunResult,
    /// Rows read and skipped.
    pub rows: Rows,
    /// Per guardrail, the rows after which the plan's judge could act on it.
    pub acts_after: Vec<(Guardrail, u64)>,
}

/// Whether a replay had rows enough to judge the new stack: a plan that decided nothing
/// beyond holding over fewer paired requests than any guardrail needs has not judged it
/// (a dead new stack would have passed). Guardrails the rows were too few for are named.
pub fn enough_rows(acts_after: &[(Guardrail, u64)], paired: u64, decided: bool) -> Expectation {
    let name = "enough_rows_to_judge".to_string();
    let mut short: Vec<&(Guardrail, u64)> = acts_after.iter().filter(|(_, n)| *n > paired).collect();
    short.sort_by_key(|(g, n)| (*n, g.name()));
    let needs =
        |list: &[&(Guardrail, u64)]| list.iter().map(|(g, n)| format!("{g} after {n}")).collect::<Vec<_>>().join(", ");
    if decided {
        return Expectation { name, passed: true, detail: format!("the plan decided over {paired} paired requests") };
    }
    if short.len() == acts_after.len() && !short.is_empty() {
        return Expectation {
            name,
            passed: false,
            detail: format!(
                "{paired} paired requests, and the judge acts on none of the plan's guardrails before {} ({}): \
                 replay more rows to judge the new stack",
                short[0].1,
                needs(&short)
            ),
        };
    }
    let detail = if short.is_empty() {
        format!("{paired} paired requests: every guardrail of the plan could act")
    } else {
        format!("{paired} paired requests; too few for {}", needs(&short))
    };
    Expectation { name, passed: true, detail }
}

/// The recorded rows as a replay reads them: skips (counting) or stops at bad rows.
pub struct Feed {
    reader: Reader,
    skip_bad_rows: bool,
    state: Arc<Mutex<FeedState>>,
}

#[derive(Default)]
struct FeedState {
    rows: Rows,
    error: Option<RowError>,
}

impl Iterator for Feed {
    type Item = Recorded;

    fn next(&mut self) -> Option<Recorded> {
        loop {
            let row = self.reader.next_row()?;
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            match row {
                Ok(r) => {
                    state.rows.replayed += 1;
                    return Some(r);
                }
                Err(e) if self.skip_bad_rows => {
                    state.rows.skipped += 1;
                    if state.rows.first_skipped.is_none() {
                        state.rows.first_skipped = Some(e.to_string());
                    }
                }
                Err(e) => {
                    state.error = Some(e);
                    return None;
                }
            }
        }
    }
}

/// What a feed read, once it is done: the rows, or the bad row it stopped at.
pub struct FeedHandle(Arc<Mutex<FeedState>>);

impl FeedHandle {
    /// The rows read and skipped, or the first bad row (without `--skip-bad-rows`).
    pub fn finish(&self) -> Result<Rows, RowError> {
        let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match state.error.take() {
            Some(e) => Err(e),
            None => Ok(std::mem::take(&mut state.rows)),
        }
    }
}

/// Opens a replay: its plan (the horizon set to the file's lines) and its feed of rows.
pub fn open(cfg: &ReplayConfig) -> Result<(LoadedScenario, Feed, FeedHandle), ReplayError> {
    let mut loaded = match &cfg.plan {
        Some(p) => LoadedScenario::read(p)?,
        None => {
            let Some(dir) = cfg.migration.clone() else {
                return Err(ReplayError::Scenario(ScenarioError {
                    file: "replay".into(),
                    line: 0,
                    column: 0,
                    field: "--migration".into(),
                    message: "missing: a replay needs the migration folder (--migration DIR) or a plan naming it (--plan FILE)"
                        .into(),
                }));
            };
            let dir = std::path::absolute(&dir).unwrap_or(dir);
            let m = crate::scenario::load_migration(&dir)?;
            let text = crate::scenario::default_plan(&m, &dir, true);
            LoadedScenario::parse(&text, "(default replay plan)", PathBuf::from("replay"), cfg.base.clone())?
        }
    };
    if let (Some(plan), Some(m)) = (&cfg.plan, &cfg.migration) {
        let named = crate::scenario::load_migration(m)?;
        if !Arc::ptr_eq(&named, &loaded.migration) {
            return Err(ReplayError::Scenario(ScenarioError {
                file: plan.display().to_string(),
                line: 0,
                column: 0,
                field: "migration".into(),
                message: format!(
                    "the plan runs the migration at {}, not --migration {}",
                    loaded.migration.dir.display(),
                    m.display()
                ),
            }));
        }
    }
    let m = loaded.migration.clone();
    let map = match &cfg.fields {
        Some(p) => FieldMap::read(p, m.schema(), m.answer())?,
        None => FieldMap::default(),
    };
    let reader = Reader::open(&cfg.requests, cfg.format, m.schema(), m.answer(), map)?;
    // A replay runs until its last row, at the recorded times. The sequential judge's
    // looks start a new e-process only after new rows, so the file's lines bound them: a
    // duration of that many looks plans for every one.
    let lines = count_lines(&cfg.requests)?;
    loaded.scenario.traffic.rate_rps = lines as f64;
    loaded.scenario.traffic.duration_s = lines.max(1) as f64 * loaded.scenario.controller.check_interval_s;
    loaded.scenario.traffic.daily_curve = None;
    let state = Arc::new(Mutex::new(FeedState::default()));
    let feed = Feed { reader, skip_bad_rows: cfg.skip_bad_rows, state: state.clone() };
    Ok((loaded, feed, FeedHandle(state)))
}

/// Replays the recorded requests under the plan, in process.
pub fn replay(cfg: &ReplayConfig) -> Result<Replayed, ReplayError> {
    let (loaded, feed, handle) = open(cfg)?;
    let acts_after =
        loaded.acts_after().map_err(|message| RunError::Setup { file: loaded.path.display().to_string(), message })?;
    let (run, out_of_order) = run_recorded(&loaded, cfg.seed, Box::new(feed))?;
    let mut rows = handle.finish()?;
    rows.out_of_order = out_of_order;
    Ok(Replayed { run, rows, acts_after })
}
