//! Judges: the rules that turn a window's guardrail statistics into a verdict, behind one
//! interface so the controller does not care which production anchor it reproduces.
//!
//! * **Flagger** (docs: "Canary analysis", flagger.app): every `interval` the canary's
//!   metrics are checked against their thresholds; "if the metrics check fails or if
//!   there is no data, the failed checks counter is incremented"; "when the number of
//!   failed checks reaches the canary analysis threshold", the canary is rolled back. A
//!   later passing check does not reset the counter.
//! * **Argo Rollouts** (docs: "Analysis", argo-rollouts.readthedocs.io): a measurement
//!   every `interval`; the analysis fails when failed measurements exceed `failureLimit`
//!   (default 0), errors when consecutive measurement errors exceed
//!   `consecutiveErrorLimit` (default 4, so the fifth aborts), and an inconclusive
//!   measurement pauses the rollout.

use serde::Serialize;

use super::guardrail::{Guardrail, Test};
use super::monitor::Window;

/// What caused a rollback (summary.json's `trigger`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trigger {
    /// The guardrail.
    pub guardrail: String,
    /// The feature, for feature guardrails.
    pub feature: Option<String>,
    /// The segment, for segment guardrails.
    pub segment: Option<String>,
    /// The statistic (NaN when there was no data).
    pub observed: f64,
    /// Its limit.
    pub limit: f64,
    /// A rollback at the end of the plan's longest hold: how long the stage was held, s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_s: Option<f64>,
}

impl Trigger {
    /// A trigger with no statistic behind it (an operator's rollback, one taken up after
    /// a restart): its numbers are NaN.
    pub fn named(guardrail: &str) -> Trigger {
        Trigger {
            guardrail: guardrail.into(),
            feature: None,
            segment: None,
            observed: f64::NAN,
            limit: f64::NAN,
            held_s: None,
        }
    }

    /// The trigger in words.
    pub fn describe(&self) -> String {
        let mut what = match &self.feature {
            Some(f) => format!("{} of `{f}`", self.guardrail),
            None => self.guardrail.clone(),
        };
        if let Some(s) = &self.segment {
            what = format!("{what} in segment `{s}`");
        }
        if let Some(held) = self.held_s {
            format!(
                "{what} held the stage {held:.0} s, the plan's longest hold, without the evidence falling to its \
                 release level ({:.4} over all requests seen, limit {})",
                self.observed, self.limit
            )
        } else if self.observed.is_nan() {
            format!("no data for {what}")
        } else if self.observed <= self.limit {
            // The sequential judge: its evidence is of a change, while `observed` is the
            // statistic over everything it saw, before the change included.
            format!(
                "{what} above its limit {} since a change (sequential evidence; {:.4} over all requests seen)",
                self.limit, self.observed
            )
        } else {
            format!("{what} {:.4} above its limit {}", self.observed, self.limit)
        }
    }
}

/// A judge's answer for one evaluation.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Every guardrail held.
    Pass,
    /// No decision: say why and hold.
    Inconclusive(String),
    /// A check failed, not yet decisively.
    Breach(Trigger),
    /// Roll back now.
    RollBack(Trigger),
}

/// A judge's state as of a moment, written out when called.
pub type JudgeSnapshot = Box<dyn FnOnce() -> serde_json::Value + Send>;

/// The interface every judge implements.
pub trait Judge: Send + Sync {
    /// Its policy name.
    fn name(&self) -> &'static str;
    /// One request's paired evidence (judges that test continuously use it).
    fn observe(&mut self, _now_us: u64, _o: &super::monitor::Observation<'_>) {}
    /// Whether the evidence already calls for a rollback, before the next evaluation is due
    /// (judges that test continuously): the caller evaluates at once.
    fn alarm(&self) -> bool {
        false
    }
    /// The rollout entered a new stage.
    fn restart_stage(&mut self, _now_us: u64) {}
    /// Per guardrail, how far its evidence has gone towards a rollback (1 rolls back), for
    /// judges that accumulate evidence; window judges have none.
    fn evidence(&self) -> Vec<(Guardrail, f64)> {
        Vec::new()
    }
    /// The trigger the evidence leans towards now, short of a rollback (judges that
    /// accumulate evidence): what a held stage names.
    fn leaning(&self, _features: &[String]) -> Option<Trigger> {
        None
    }
    /// Per guardrail of `guardrails`, the fewest paired requests after which it can call
    /// for a rollback at all, for windows of at least `min_window_requests` (a replay of
    /// fewer rows cannot have judged it).
    fn acts_after(&self, guardrails: &[(Guardrail, f64)], min_window_requests: u64) -> Vec<(Guardrail, u64)> {
        guardrails.iter().map(|&(g, _)| (g, min_window_requests)).collect()
    }
    /// What it has seen and concluded so far, for a router that resumes after a restart
    /// (see [`super::checkpoint`]): a copy taken now, written out later (off the request
    /// path) by calling it.
    fn save(&self) -> JudgeSnapshot;
    /// Takes up a state [`Judge::save`] wrote under the same plan.
    fn restore(&mut self, _state: &serde_json::Value) -> Result<(), String> {
        Ok(())
    }
    /// A copy in its current state (a world forks when its judges diverge).
    fn clone_box(&self) -> Box<dyn Judge>;
    /// Judges one window against the guardrails (name, limit).
    fn judge(&mut self, window: &Window, guardrails: &[(Guardrail, f64)], features: &[String]) -> Verdict;
}

/// Failures and missing data of one check of every guardrail.
pub(crate) struct Check {
    pub failures: Vec<Trigger>,
    pub no_data: Vec<Trigger>,
}

pub(crate) fn check(window: &Window, guardrails: &[(Guardrail, f64)], features: &[String]) -> Check {
    let mut c = Check { failures: Vec::new(), no_data: Vec::new() };
    for &(guardrail, limit) in guardrails {
        let feature = (guardrail.def().test == Test::PerFeature)
            .then(|| window.worst_feature().map(|(i, _)| features[i].clone()))
            .flatten();
        let trigger = |observed: f64| Trigger {
            guardrail: guardrail.name().to_string(),
            feature: feature.clone(),
            segment: None,
            observed,
            limit,
            held_s: None,
        };
        match guardrail.statistic(window) {
            None => c.no_data.push(trigger(f64::NAN)),
            Some(v) if v > limit => c.failures.push(trigger(v)),
            Some(_) => {}
        }
    }
    c
}

/// Flagger's rule: a cumulative failed-check counter.
#[derive(Debug, Clone)]
pub struct Flagger {
    threshold: u32,
    failed_checks: u32,
}

impl Flagger {
    /// Rolls back when `threshold` checks have failed.
    pub fn new(threshold: u32) -> Flagger {
        Flagger { threshold, failed_checks: 0 }
    }

    /// Failed checks so far.
    pub fn failed_checks(&self) -> u32 {
        self.failed_checks
    }
}

impl Judge for Flagger {
    fn clone_box(&self) -> Box<dyn Judge> {
        Box::new(self.clone())
    }

    fn name(&self) -> &'static str {
        "flagger"
    }

    fn save(&self) -> JudgeSnapshot {
        let failed_checks = self.failed_checks;
        Box::new(move || serde_json::json!({ "failed_checks": failed_checks }))
    }

    fn restore(&mut self, state: &serde_json::Value) -> Result<(), String> {
        let n = state["failed_checks"].as_u64().ok_or("the judge's state has no failed_checks")?;
        self.failed_checks = u32::try_from(n).map_err(|e| e.to_string())?;
        Ok(())
    }

    fn acts_after(&self, guardrails: &[(Guardrail, f64)], min_window_requests: u64) -> Vec<(Guardrail, u64)> {
        let windows = u64::from(self.threshold.max(1));
        guardrails.iter().map(|&(g, _)| (g, windows.saturating_mul(min_window_requests))).collect()
    }

    fn judge(&mut self, window: &Window, guardrails: &[(Guardrail, f64)], features: &[String]) -> Verdict {
        let c = check(window, guardrails, features);
        let Some(trigger) = c.failures.into_iter().next().or_else(|| c.no_data.into_iter().next()) else {
            return Verdict::Pass;
        };
        self.failed_checks += 1;
        if self.failed_checks >= self.threshold {
            Verdict::RollBack(trigger)
        } else {
            Verdict::Breach(trigger)
        }
    }
}

/// Argo Rollouts' rule: a failure limit and a consecutive-error limit.
#[derive(Debug, Clone)]
pub struct Argo {
    failure_limit: u32,
    consecutive_error_limit: u32,
    failures: u32,
    consecutive_errors: u32,
}

impl Argo {
    /// Fails after more than `failure_limit` failed measurements; aborts after more than
    /// `consecutive_error_limit` consecutive errors.
    pub fn new(failure_limit: u32, consecutive_error_limit: u32) -> Argo {
        Argo { failure_limit, consecutive_error_limit, failures: 0, consecutive_errors: 0 }
    }
}

impl Judge for Argo {
    fn clone_box(&self) -> Box<dyn Judge> {
        Box::new(self.clone())
    }

    fn name(&self) -> &'static str {
        "argo"
    }

    fn save(&self) -> JudgeSnapshot {
        let (failures, consecutive_errors) = (self.failures, self.consecutive_errors);
        Box::new(move || serde_json::json!({ "failures": failures, "consecutive_errors": consecutive_errors }))
    }

    fn restore(&mut self, state: &serde_json::Value) -> Result<(), String> {
        let get = |k: &str| -> Result<u32, String> {
            let n = state[k].as_u64().ok_or_else(|| format!("the judge's state has no {k}"))?;
            u32::try_from(n).map_err(|e| e.to_string())
        };
        self.failures = get("failures")?;
        self.consecutive_errors = get("consecutive_errors")?;
        Ok(())
    }

    fn acts_after(&self, guardrails: &[(Guardrail, f64)], min_window_requests: u64) -> Vec<(Guardrail, u64)> {
        let windows = u64::from(self.failure_limit) + 1;
        guardrails.iter().map(|&(g, _)| (g, windows.saturating_mul(min_window_requests))).collect()
    }

    fn judge(&mut self, window: &Window, guardrails: &[(Guardrail, f64)], features: &[String]) -> Verdict {
        let c = check(window, guardrails, features);
        if let Some(trigger) = c.failures.into_iter().next() {
            self.consecutive_errors = 0;
            self.failures += 1;
            return if self.failures > self.failure_limit {
                Verdict::RollBack(trigger)
            } else {
                Verdict::Breach(trigger)
            };
        }
        if let Some(trigger) = c.no_data.into_iter().next() {
            self.consecutive_errors += 1;
            if self.consecutive_errors > self.consecutive_error_limit {
                return Verdict::RollBack(trigger);
            }
            return Verdict::Inconclusive(format!("measurement error: {}", trigger.describe()));
        }
        self.consecutive_errors = 0;
        Verdict::Pass
    }
}
