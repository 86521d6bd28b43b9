//! The verdict of a rollout: the expectation checkers, pure functions of what the run
//! recorded, and summary.json (the contract in docs/contracts.md), with the timeline rows.

use serde::Serialize;

use super::controller::Phase;
use super::judge::Trigger;
use super::monitor::WindowSummary;
use super::plan::{Expect, Outcome};

/// One expectation and whether it held, with the evidence in words.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Expectation {
    /// Its name.
    pub name: String,
    /// Whether it held.
    pub passed: bool,
    /// Evidence, as a sentence.
    pub detail: String,
}

/// A stage of the rollout.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageSpan {
    /// The new stack's share.
    pub weight_pct: f64,
    /// When it started.
    pub entered_s: f64,
    /// When it ended (null if still on).
    pub left_s: Option<f64>,
}

/// How a hold ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldEnd {
    /// The evidence fell below the release level.
    Released,
    /// The judge rolled back while the stage was held.
    RolledBack,
    /// Held for the plan's longest hold, then rolled back (`on_max_hold = "roll_back"`).
    MaxHoldRolledBack,
    /// Held for the plan's longest hold, then let go (`on_max_hold = "advance"`).
    MaxHoldAdvanced,
    /// The stage changed otherwise (an operator's rollback, a decommission, a restart).
    StageChanged,
}

/// A stage held on adverse evidence (see [`super::hold`]).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct HoldSpan {
    /// The new stack's share of users at the held stage.
    pub weight_pct: f64,
    /// When the hold began, s.
    pub from_s: f64,
    /// When it ended (null while it lasts).
    pub to_s: Option<f64>,
    /// The guardrail whose evidence leaned most when it began.
    pub guardrail: String,
    /// The largest e-value against the new stack while held.
    pub peak_e_value: f64,
    /// The e-value that holds.
    pub hold_e_value: f64,
    /// The e-value that rolls back.
    pub e_value_threshold: f64,
    /// How it ended (null while it lasts).
    pub ended: Option<HoldEnd>,
}

impl HoldSpan {
    /// The hold in words: "held at canary 25 %: timeout_rate, e-value 40 of 100, 35 s,
    /// released".
    pub fn describe(&self) -> String {
        let stage = if self.weight_pct == 0.0 { "shadow".to_string() } else { format!("canary {} %", self.weight_pct) };
        let length = self.to_s.map_or_else(|| "still held".to_string(), |t| format!("{:.0} s", t - self.from_s));
        let ended = match self.ended {
            None => String::new(),
            Some(HoldEnd::Released) => ", released".into(),
            Some(HoldEnd::RolledBack) => ", then rolled back".into(),
            Some(HoldEnd::MaxHoldRolledBack) => ", rolled back at the plan's longest hold".into(),
            Some(HoldEnd::MaxHoldAdvanced) => ", let go at the plan's longest hold".into(),
            Some(HoldEnd::StageChanged) => ", ended by a stage change".into(),
        };
        format!(
            "held at {stage} from t={:.1} s: {}, e-value {:.3} of {:.0}, {length}{ended}",
            self.from_s, self.guardrail, self.peak_e_value, self.e_value_threshold
        )
    }
}

/// summary.json.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Scenario name.
    pub scenario: String,
    /// Seed.
    pub seed: u64,
    /// The judge.
    pub policy: String,
    /// How the rollout ended.
    pub outcome: Outcome,
    /// Whether every expectation held.
    pub passed: bool,
    /// The expectations.
    pub expectations: Vec<Expectation>,
    /// Earliest fault start, s.
    pub fault_start_s: Option<f64>,
    /// When a guardrail breach was first seen, s.
    pub detected_at_s: Option<f64>,
    /// When the rollback completed, s.
    pub rollback_completed_s: Option<f64>,
    /// What caused the rollback.
    pub trigger: Option<Trigger>,
    /// User-facing decisions that differed from legacy's.
    pub bad_decisions_served: u64,
    /// Requests.
    pub requests_total: u64,
    /// User-visible failures.
    pub requests_failed: u64,
    /// The stages.
    pub stages: Vec<StageSpan>,
    /// Stages held on adverse evidence, in order.
    pub holds: Vec<HoldSpan>,
    /// The history's hash.
    pub history_sha256: String,
    /// The command that reproduces this run.
    pub reproduce: String,
    /// Said before the run: its SLO is below the information bound (no judge at the plan's
    /// false-rollback budget keeps it on 29 runs of 30), and what would (`suite`; absent
    /// otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slo_below_information_bound: Option<String>,
}

/// What the world hands the checkers.
pub struct Facts<'a> {
    /// Scenario name.
    pub scenario: String,
    /// Seed.
    pub seed: u64,
    /// Judge.
    pub policy: &'static str,
    /// Outcome.
    pub outcome: Outcome,
    /// The `[expect]` block.
    pub expect: &'a Expect,
    /// Earliest fault start.
    pub fault_start_us: Option<u64>,
    /// First breach.
    pub detected_us: Option<u64>,
    /// Rollback.
    pub rollback_us: Option<u64>,
    /// Its trigger.
    pub trigger: Option<Trigger>,
    /// Bad decisions served.
    pub bad_decisions: u64,
    /// Requests.
    pub requests_total: u64,
    /// User-visible failures.
    pub requests_failed: u64,
    /// (weight, entered, left) in microseconds.
    pub stages: Vec<(f64, u64, Option<u64>)>,
    /// Holds.
    pub holds: Vec<HoldSpan>,
    /// Invariant violations, in words.
    pub violations: Vec<String>,
    /// History hash.
    pub history_sha256: String,
    /// Reproduction command.
    pub reproduce: String,
}

fn s(us: u64) -> f64 {
    us as f64 / 1e6
}

fn name(o: Outcome) -> &'static str {
    match o {
        Outcome::Promoted => "promoted",
        Outcome::RolledBack => "rolled_back",
        Outcome::InProgress => "in_progress",
    }
}

/// An SLO measured from the earliest fault's start: `verb` happened at `at` or never.
fn deadline(key: &str, verb: &str, at: Option<u64>, fault_start: Option<u64>, limit: f64) -> Expectation {
    let (passed, detail) = match (at, fault_start) {
        (_, None) => (false, format!("no fault in the scenario: nothing to be {verb}")),
        (Some(t), Some(start)) if t < start => (
            false,
            format!(
                "{verb} at t={:.1} s, {:.1} s before the fault began at t={:.1} s: not caused by it",
                s(t),
                s(start - t),
                s(start)
            ),
        ),
        (Some(t), Some(start)) => {
            let d = s(t - start);
            (
                d <= limit,
                format!(
                    "{verb} at t={:.1} s, {d:.1} s after the fault began at t={:.1} s; SLO is {limit} s",
                    s(t),
                    s(start)
                ),
            )
        }
        (None, Some(start)) => {
            (false, format!("never {verb} after the fault began at t={:.1} s; SLO is {limit} s", s(start)))
        }
    };
    Expectation { name: key.into(), passed, detail }
}

/// Checks the expectations and builds summary.json.
pub fn summarize(f: Facts<'_>) -> Summary {
    let e = f.expect;
    let mut x = Vec::new();
    let outcome_detail = match (f.outcome, f.rollback_us, &f.trigger) {
        (Outcome::RolledBack, Some(t), Some(tr)) => format!("rolled back at t={:.1} s: {}", s(t), tr.describe()),
        (o, _, _) => format!("the rollout ended {}", name(o)),
    };
    x.push(Expectation {
        name: "outcome".into(),
        passed: f.outcome == e.outcome,
        detail: format!("{outcome_detail}; expected {}", name(e.outcome)),
    });
    for (key, verb, at, limit) in [
        ("detect_within_s", "detected", f.detected_us, e.detect_within_s),
        ("rollback_within_s", "rolled back", f.rollback_us, e.rollback_within_s),
    ] {
        if let Some(limit) = limit {
            x.push(deadline(key, verb, at, f.fault_start_us, limit));
        }
    }
    if let Some(limit) = e.max_bad_decisions {
        x.push(Expectation {
            name: "max_bad_decisions".into(),
            passed: f.bad_decisions <= limit,
            detail: format!("{} user-facing decisions differed from legacy's; the budget is {limit}", f.bad_decisions),
        });
    }
    x.push(Expectation {
        name: "max_user_failures".into(),
        passed: f.requests_failed <= e.max_user_failures,
        detail: format!(
            "{} of {} requests failed for the user; at most {} allowed",
            f.requests_failed, f.requests_total, e.max_user_failures
        ),
    });
    x.push(Expectation {
        name: "invariants".into(),
        passed: f.violations.is_empty(),
        detail: if f.violations.is_empty() {
            "every invariant held on every event".into()
        } else {
            f.violations.join("; ")
        },
    });
    let passed = x.iter().all(|e| e.passed);
    Summary {
        scenario: f.scenario,
        seed: f.seed,
        policy: f.policy.into(),
        outcome: f.outcome,
        passed,
        expectations: x,
        fault_start_s: f.fault_start_us.map(s),
        detected_at_s: f.detected_us.map(s),
        rollback_completed_s: f.rollback_us.map(s),
        trigger: f.trigger,
        bad_decisions_served: f.bad_decisions,
        requests_total: f.requests_total,
        requests_failed: f.requests_failed,
        stages: f
            .stages
            .iter()
            .map(|&(w, a, b)| StageSpan { weight_pct: w, entered_s: s(a), left_s: b.map(s) })
            .collect(),
        holds: f.holds,
        history_sha256: f.history_sha256,
        reproduce: f.reproduce,
        slo_below_information_bound: None,
    }
}

/// One minute of the timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelineRow {
    /// End of the window, s.
    pub t_s: f64,
    /// The new stack's share of users.
    pub weight_pct: f64,
    /// The phase.
    pub phase: String,
    /// The window's statistics.
    pub window: WindowSummary,
}

impl TimelineRow {
    /// A row.
    pub fn new(t_s: f64, weight_pct: f64, phase: Phase, window: &WindowSummary) -> TimelineRow {
        TimelineRow { t_s, weight_pct, phase: phase_name(phase), window: window.clone() }
    }
}

/// A phase as the timeline and the reports name it.
pub fn phase_name(phase: Phase) -> String {
    match phase {
        Phase::Shadow => "shadow".to_string(),
        Phase::Canary(i) => format!("canary{i}"),
        Phase::Promoted => "promoted".into(),
        Phase::RolledBack => "rolled_back".into(),
        Phase::Retired => "retired".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::deadline;

    #[test]
    fn a_rollback_before_the_fault_does_not_meet_its_slo() {
        // Regression: a live rollback at 800 s, before a fault injected at 1000 s, read as
        // "0.0 s after the fault began" and passed.
        let e = deadline("rollback_within_s", "rolled back", Some(800_000_000), Some(1_000_000_000), 60.0);
        assert!(!e.passed, "{}", e.detail);
        assert!(e.detail.contains("200.0 s before the fault began"), "{}", e.detail);
        let e = deadline("rollback_within_s", "rolled back", Some(1_030_000_000), Some(1_000_000_000), 60.0);
        assert!(e.passed && e.detail.contains("30.0 s after"), "{}", e.detail);
    }
}
