//! The rollout controller: a pure state machine. Time is an argument, so the simulator
//! and the live router run this very code.
//!
//! Shadow, then canary stages, then promoted at 100 %; legacy may be retired only
//! `keep_legacy_warm_s` after promotion. A guardrail breach the judge calls decisive rolls
//! back to 0 % at once. A stage advances only after `bake_s` and enough evidence; no
//! traffic holds (it is never a pass, and never by itself a failure); early decommission
//! is refused; manual rollback works at any time.

use serde::Serialize;

use crate::judge::{Judge, Trigger, Verdict};
use crate::monitor::Window;
use crate::scenario::{Guardrails, Success};

/// Where the rollout stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The new stack scores every request; users all get legacy.
    Shadow,
    /// Users in the stage's share get the new stack.
    Canary(usize),
    /// Everyone gets the new stack; legacy stays warm.
    Promoted,
    /// Everyone is back on legacy.
    RolledBack,
    /// Legacy is decommissioned.
    Retired,
}

/// The plan, in microseconds.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Shadow period.
    pub shadow_us: u64,
    /// Stage weights, ending at 100.
    pub stages_pct: Vec<f64>,
    /// Minimum time per stage.
    pub bake_us: u64,
    /// Legacy kept warm after promotion.
    pub keep_warm_us: u64,
    /// Paired requests a stage needs before it may advance.
    pub min_stage_requests: u64,
    /// Paired requests an evaluation needs before the judge is asked.
    pub min_window_requests: u64,
    /// Rollback triggers.
    pub guardrails: Guardrails,
    /// Required for promotion.
    pub success: Success,
}

/// Why a plan cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// No rollback trigger.
    #[error("no rollback trigger: declare at least one guardrail before any traffic moves")]
    NoTrigger,
    /// Stages do not increase to 100.
    #[error("stages must increase within (0, 100] and end at 100")]
    BadStages,
}

/// The controller's decision at one evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// Stay; the reason in words.
    Hold {
        /// Why.
        reason: String,
    },
    /// Move to the next stage.
    Advance {
        /// From this weight.
        from_pct: f64,
        /// To this weight.
        to_pct: f64,
    },
    /// 100 % with success criteria met.
    Promote,
    /// Back to legacy, now.
    RollBack {
        /// What breached.
        trigger: Trigger,
    },
    /// Legacy may now be decommissioned.
    AllowRetirement,
}

/// The state machine.
pub struct Controller {
    plan: Plan,
    guardrails: Vec<(&'static str, f64)>,
    judge: Box<dyn Judge>,
    phase: Phase,
    entered_us: u64,
    stage_requests: u64,
    promoted_us: Option<u64>,
    retirement_allowed: bool,
    last_breach: Option<Trigger>,
}

impl Controller {
    /// A controller at the start of shadow; refuses a plan without a rollback trigger.
    pub fn new(plan: Plan, judge: Box<dyn Judge>) -> Result<Controller, PlanError> {
        let guardrails = plan.guardrails.set();
        if guardrails.is_empty() {
            return Err(PlanError::NoTrigger);
        }
        let s = &plan.stages_pct;
        if s.is_empty() || s.windows(2).any(|w| w[0] >= w[1]) || s.last() != Some(&100.0) || s[0] <= 0.0 {
            return Err(PlanError::BadStages);
        }
        Ok(Controller {
            plan,
            guardrails,
            judge,
            phase: Phase::Shadow,
            entered_us: 0,
            stage_requests: 0,
            promoted_us: None,
            retirement_allowed: false,
            last_breach: None,
        })
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The judge's policy name.
    pub fn policy(&self) -> &'static str {
        self.judge.name()
    }

    /// The share of users routed to the new stack, in percent.
    pub fn weight_pct(&self) -> f64 {
        match self.phase {
            Phase::Shadow | Phase::RolledBack => 0.0,
            Phase::Canary(i) => self.plan.stages_pct[i],
            Phase::Promoted | Phase::Retired => 100.0,
        }
    }

    /// The last breach the judge reported.
    pub fn last_breach(&self) -> Option<&Trigger> {
        self.last_breach.as_ref()
    }

    /// Whether legacy may be decommissioned now.
    pub fn retirement_allowed(&self) -> bool {
        self.retirement_allowed
    }

    fn enter(&mut self, phase: Phase, now_us: u64) {
        self.phase = phase;
        self.entered_us = now_us;
        self.stage_requests = 0;
    }

    /// Evaluates one window at `now_us`.
    pub fn evaluate(&mut self, now_us: u64, window: &Window, features: &[String]) -> Decision {
        let hold = |reason: String| Decision::Hold { reason };
        match self.phase {
            Phase::RolledBack => return hold("rolled back: everyone is on legacy".into()),
            Phase::Retired => return hold("legacy is retired".into()),
            _ => {}
        }
        if window.requests == 0 {
            return hold("no traffic in this interval: no evidence either way".into());
        }
        if window.requests < self.plan.min_window_requests {
            return hold(format!(
                "{} paired requests, fewer than the {} an evaluation needs",
                window.requests, self.plan.min_window_requests
            ));
        }
        match self.judge.judge(window, &self.guardrails, features) {
            Verdict::RollBack(trigger) => {
                self.last_breach = Some(trigger.clone());
                self.enter(Phase::RolledBack, now_us);
                return Decision::RollBack { trigger };
            }
            Verdict::Breach(trigger) => {
                let reason = format!("guardrail breached, not yet decisive: {}", trigger.describe());
                self.last_breach = Some(trigger);
                return hold(reason);
            }
            Verdict::Inconclusive(reason) => return hold(reason),
            Verdict::Pass => {}
        }
        self.stage_requests += window.requests;
        let (since, bake) = (now_us.saturating_sub(self.entered_us), self.plan.bake_us);
        match self.phase {
            Phase::Shadow | Phase::Canary(_) => {
                let needed = if self.phase == Phase::Shadow { self.plan.shadow_us } else { bake };
                if since < needed {
                    return hold(format!("baking: {:.0} s of {:.0} s", since as f64 / 1e6, needed as f64 / 1e6));
                }
                if self.stage_requests < self.plan.min_stage_requests {
                    return hold(format!(
                        "{} paired requests at this stage, fewer than the {} it needs",
                        self.stage_requests, self.plan.min_stage_requests
                    ));
                }
                let from = self.weight_pct();
                let next = match self.phase {
                    Phase::Shadow => 0,
                    Phase::Canary(i) => i + 1,
                    _ => unreachable!("matched above"),
                };
                if next < self.plan.stages_pct.len() {
                    self.enter(Phase::Canary(next), now_us);
                    return Decision::Advance { from_pct: from, to_pct: self.weight_pct() };
                }
                if let Some(unmet) = self.unmet_success(window) {
                    return hold(format!("at 100 % but the success criteria are not met: {unmet}"));
                }
                self.enter(Phase::Promoted, now_us);
                self.promoted_us = Some(now_us);
                Decision::Promote
            }
            Phase::Promoted => {
                let warm = now_us.saturating_sub(self.promoted_us.unwrap_or(now_us));
                if !self.retirement_allowed && warm >= self.plan.keep_warm_us {
                    self.retirement_allowed = true;
                    return Decision::AllowRetirement;
                }
                hold("promoted; legacy kept warm".into())
            }
            Phase::RolledBack | Phase::Retired => unreachable!("returned above"),
        }
    }

    fn unmet_success(&self, window: &Window) -> Option<String> {
        let s = &self.plan.success;
        for (name, limit) in [("p99_latency_ratio", s.max_p99_latency_ratio), ("error_rate", s.max_error_rate)] {
            if let Some(limit) = limit {
                match window.metric(name) {
                    None => return Some(format!("no data for {name}")),
                    Some(v) if v > limit => return Some(format!("{name} {v:.4} above {limit}")),
                    Some(_) => {}
                }
            }
        }
        None
    }

    /// Rolls back at once, whatever the phase (until legacy is retired).
    pub fn manual_rollback(&mut self, now_us: u64) -> bool {
        if matches!(self.phase, Phase::Retired | Phase::RolledBack) {
            return false;
        }
        self.enter(Phase::RolledBack, now_us);
        true
    }

    /// An attempt to decommission legacy: refused unless promotion happened at least
    /// `keep_legacy_warm_s` ago (the rollback gap).
    pub fn request_decommission(&mut self, now_us: u64) -> Result<(), String> {
        let allowed = self.phase == Phase::Promoted
            && self.promoted_us.is_some_and(|p| now_us.saturating_sub(p) >= self.plan.keep_warm_us);
        if !allowed {
            let why = match (self.phase, self.promoted_us) {
                (Phase::Promoted, Some(p)) => format!(
                    "legacy must stay warm {:.0} s after promotion; {:.0} s have passed",
                    self.plan.keep_warm_us as f64 / 1e6,
                    now_us.saturating_sub(p) as f64 / 1e6
                ),
                (phase, _) => format!("the rollout is in {phase:?}, not promoted"),
            };
            return Err(format!("decommission refused: {why}"));
        }
        self.retirement_allowed = true;
        self.enter(Phase::Retired, now_us);
        Ok(())
    }
}
