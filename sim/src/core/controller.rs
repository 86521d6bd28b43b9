//! The rollout controller: a pure state machine. Time is an argument, so the simulator
//! and the live router run this very code.
//!
//! Shadow, then canary stages, then promoted at 100 %; legacy may be retired only
//! `keep_legacy_warm_s` after promotion. A guardrail breach the judge calls decisive rolls
//! back to 0 % at once. A stage advances only after `bake_s` and enough evidence; no
//! traffic holds (it is never a pass, and never by itself a failure); early decommission
//! is refused; manual rollback works at any time.

use serde::{Deserialize, Serialize};

use super::checkpoint::ControllerState;
use super::guardrail::Guardrail;
use super::hold::{Held, HoldRule, HoldStep, OnMaxHold};
use super::judge::{Judge, Trigger, Verdict};
use super::monitor::Window;
use super::plan::{Guardrails, Success};

/// Where the rollout stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
    /// When a stage is held on adverse evidence (judges that accumulate evidence).
    pub hold: Option<HoldRule>,
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
    /// Stay: the evidence leans against the new stack, short of a rollback (see
    /// [`super::hold`]).
    Held {
        /// The guardrail whose evidence leans most.
        guardrail: String,
        /// The judge's e-value against the new stack.
        e_value: f64,
        /// The e-value that rolls back.
        e_value_threshold: f64,
        /// The e-value that holds.
        hold_e_value: f64,
        /// How long the stage has been held, s.
        held_s: f64,
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

impl Decision {
    /// The decision in words.
    pub fn describe(&self) -> String {
        match self {
            Decision::Hold { reason } => format!("hold: {reason}"),
            Decision::Held { guardrail, e_value, e_value_threshold, held_s, .. } => format!(
                "held on adverse evidence: {guardrail}, e-value {e_value:.3} of {e_value_threshold:.0}, for {held_s:.0} s"
            ),
            Decision::Advance { from_pct, to_pct } => format!("advance from {from_pct} % to {to_pct} %"),
            Decision::Promote => "promote".into(),
            Decision::RollBack { trigger } => format!("roll back: {}", trigger.describe()),
            Decision::AllowRetirement => "allow legacy's retirement".into(),
        }
    }
}

/// The state machine.
pub struct Controller {
    plan: Plan,
    guardrails: Vec<(Guardrail, f64)>,
    judge: Box<dyn Judge>,
    phase: Phase,
    entered_us: u64,
    stage_requests: u64,
    promoted_us: Option<u64>,
    retirement_allowed: bool,
    last_breach: Option<Trigger>,
    held: Option<Held>,
    last_hold: HoldStep,
}

impl Clone for Controller {
    fn clone(&self) -> Controller {
        Controller {
            plan: self.plan.clone(),
            guardrails: self.guardrails.clone(),
            judge: self.judge.clone_box(),
            phase: self.phase,
            entered_us: self.entered_us,
            stage_requests: self.stage_requests,
            promoted_us: self.promoted_us,
            retirement_allowed: self.retirement_allowed,
            last_breach: self.last_breach.clone(),
            held: self.held,
            last_hold: self.last_hold,
        }
    }
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
            held: None,
            last_hold: HoldStep::Free,
        })
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The plan's guardrails and their limits, in the plan's order.
    pub fn guardrails(&self) -> &[(Guardrail, f64)] {
        &self.guardrails
    }

    /// The judge's evidence per guardrail (see [`Judge::evidence`]).
    pub fn evidence(&self) -> Vec<(Guardrail, f64)> {
        self.judge.evidence()
    }

    /// Per guardrail, the fewest paired requests after which the judge can act on it
    /// (see [`Judge::acts_after`]).
    pub fn acts_after(&self) -> Vec<(Guardrail, u64)> {
        // Staleness is a state of the store, measured at each look: no paired request needed.
        let paired = Guardrails { max_feature_staleness_s: None, ..self.plan.guardrails.clone() };
        self.judge.acts_after(&paired.set(), self.plan.min_window_requests)
    }

    /// Its place in the plan, and its judge's evidence as of now to write out later (see
    /// [`super::checkpoint`]).
    pub fn save(&self) -> (ControllerState, super::judge::JudgeSnapshot) {
        let state = ControllerState {
            phase: self.phase,
            entered_us: self.entered_us,
            stage_requests: self.stage_requests,
            promoted_us: self.promoted_us,
            retirement_allowed: self.retirement_allowed,
            last_breach: self.last_breach.as_ref().map(Into::into),
            held: self.held,
            judge: serde_json::Value::Null,
        };
        (state, self.judge.save())
    }

    /// Takes up a state [`Controller::save`] wrote under the same plan.
    pub fn restore(&mut self, state: ControllerState) -> Result<(), String> {
        if let Phase::Canary(k) = state.phase {
            if k >= self.plan.stages_pct.len() {
                return Err(format!("the state is at stage {} of a plan with {}", k + 1, self.plan.stages_pct.len()));
            }
        }
        self.judge.restore(&state.judge)?;
        self.phase = state.phase;
        self.entered_us = state.entered_us;
        self.stage_requests = state.stage_requests;
        self.promoted_us = state.promoted_us;
        self.retirement_allowed = state.retirement_allowed;
        self.last_breach = state.last_breach.map(Into::into);
        self.held = state.held;
        Ok(())
    }

    /// Takes up at `now_us` a decision a router wrote before it stopped and did not get to
    /// checkpoint: the phase it entered. Only a move the plan allows from here is taken up
    /// (the next stage, promotion, a rollback, retirement); true when it moved.
    pub fn take_up(&mut self, phase: Phase, now_us: u64) -> bool {
        let allowed = match (self.phase, phase) {
            (Phase::Shadow, Phase::Canary(0)) => true,
            (Phase::Canary(k), Phase::Canary(j)) => j == k + 1,
            (Phase::Canary(k), Phase::Promoted) => k + 1 == self.plan.stages_pct.len(),
            (Phase::Shadow | Phase::Canary(_) | Phase::Promoted, Phase::RolledBack) => true,
            (Phase::Promoted, Phase::Retired) => true,
            _ => false,
        };
        if allowed {
            if phase == Phase::Promoted {
                self.promoted_us = Some(now_us);
            }
            self.enter(phase, now_us);
        }
        allowed
    }

    /// Back to shadow at `now_us` after a restart, as a plan may ask: a canary's users go
    /// back to legacy and the stages are earned again, on the judge's evidence so far.
    /// Promoted, rolled back and retired rollouts stay where they are. True when it moved.
    pub fn restart_in_shadow(&mut self, now_us: u64) -> bool {
        if !matches!(self.phase, Phase::Canary(_)) {
            return false;
        }
        self.enter(Phase::Shadow, now_us);
        true
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

    /// What the plan does with a hold that lasts its maximum.
    pub fn plan_on_max_hold(&self) -> OnMaxHold {
        self.plan.hold.map_or(OnMaxHold::RollBack, |h| h.on_max)
    }

    /// The hold in progress, if the stage is held.
    pub fn held(&self) -> Option<Held> {
        self.held
    }

    /// What the hold rule said at the last evaluation ([`HoldStep::Free`] when it was not
    /// read: no rule, or a phase that does not advance).
    pub fn last_hold(&self) -> HoldStep {
        self.last_hold
    }

    fn enter(&mut self, phase: Phase, now_us: u64) {
        self.held = None;
        self.phase = phase;
        self.entered_us = now_us;
        self.stage_requests = 0;
        self.judge.restart_stage(now_us);
    }

    /// One request's paired evidence, for judges that test after every request; whether
    /// the judge raised its alarm (evaluate at once: see [`super::judge::Judge::alarm`]).
    pub fn observe(&mut self, now_us: u64, o: &super::monitor::Observation<'_>) -> bool {
        if matches!(self.phase, Phase::RolledBack | Phase::Retired) {
            return false;
        }
        self.judge.observe(now_us, o);
        self.judge.alarm()
    }

    /// Evaluates one window at `now_us`; `stage` holds everything seen since the current
    /// stage began, which the success criteria are judged on.
    pub fn evaluate(&mut self, now_us: u64, window: &Window, stage: &Window, features: &[String]) -> Decision {
        let hold = |reason: String| Decision::Hold { reason };
        self.last_hold = HoldStep::Free;
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
        if let Some(decision) = self.hold(now_us, features) {
            return decision;
        }
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
                if let Some(unmet) = self.unmet_success(stage) {
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

    /// The hold rule at a look that passed, in a phase that advances: a decision while the
    /// stage is held (or rolled back at the end of its longest hold), None to go on.
    fn hold(&mut self, now_us: u64, features: &[String]) -> Option<Decision> {
        let rule = self.plan.hold?;
        if !matches!(self.phase, Phase::Shadow | Phase::Canary(_)) {
            return None;
        }
        let sum: f64 = self.judge.evidence().iter().map(|(_, e)| e).sum();
        self.last_hold = rule.step(&mut self.held, now_us, sum);
        let since_us = match self.last_hold {
            HoldStep::Free | HoldStep::Released { .. } => return None,
            HoldStep::Expired { .. } if rule.on_max == OnMaxHold::Advance => return None,
            HoldStep::Held { since_us } | HoldStep::Expired { since_us } => since_us,
        };
        let held_s = now_us.saturating_sub(since_us) as f64 / 1e6;
        // The judge names what leans; one whose evidence has no single test to name still
        // holds, under the guardrail carrying most.
        let mut trigger = self.judge.leaning(features).unwrap_or_else(|| {
            let evidence = self.judge.evidence();
            let most = evidence.iter().max_by(|a, b| a.1.total_cmp(&b.1)).map_or("evidence", |(g, _)| g.name());
            Trigger::named(most)
        });
        if matches!(self.last_hold, HoldStep::Expired { .. }) {
            trigger.held_s = Some(held_s);
            self.last_breach = Some(trigger.clone());
            self.enter(Phase::RolledBack, now_us);
            return Some(Decision::RollBack { trigger });
        }
        Some(Decision::Held {
            guardrail: trigger.guardrail,
            e_value: rule.e_value(sum),
            e_value_threshold: rule.e_value_threshold(),
            hold_e_value: rule.e_value(rule.at),
            held_s,
        })
    }

    fn unmet_success(&self, window: &Window) -> Option<String> {
        let s = &self.plan.success;
        for (name, limit) in
            [(Guardrail::P99LatencyRatio, s.max_p99_latency_ratio), (Guardrail::ErrorRate, s.max_error_rate)]
        {
            if let Some(limit) = limit {
                match name.statistic(window) {
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::core::judge::{Argo, Flagger};

    const S: u64 = 1_000_000;

    fn plan(min_window: u64) -> Plan {
        Plan {
            shadow_us: 100 * S,
            stages_pct: vec![1.0, 5.0, 25.0, 50.0, 100.0],
            bake_us: 100 * S,
            keep_warm_us: 300 * S,
            min_stage_requests: 50,
            min_window_requests: min_window,
            guardrails: Guardrails {
                max_error_rate: Some(0.1),
                max_p99_latency_ms: Some(100.0),
                ..Guardrails::default()
            },
            success: Success::default(),
            hold: None,
        }
    }

    /// One evaluation's window: `requests` paired requests, `errors` of them failed on the
    /// new stack, latency recorded (or not: no data for the latency guardrail).
    #[derive(Debug, Clone)]
    struct Step {
        dt_s: u64,
        requests: u64,
        errors: u64,
        latency: bool,
        decommission: bool,
    }

    fn window(step: &Step) -> Window {
        let mut w = Window::new(1);
        w.requests = step.requests;
        w.answered = step.requests - step.errors;
        w.new_errors = step.errors;
        if step.latency {
            for _ in 0..step.requests {
                w.new_latency.record(20_000).unwrap();
                w.legacy_latency.record(20_000).unwrap();
            }
        }
        w
    }

    fn steps() -> impl Strategy<Value = Vec<Step>> {
        let step = (1u64..200, 0u64..120, 0u64..40, proptest::bool::weighted(0.9), proptest::bool::weighted(0.05))
            .prop_map(|(dt_s, requests, errors, latency, decommission)| Step {
                dt_s,
                requests,
                errors: errors.min(requests),
                latency,
                decommission,
            });
        proptest::collection::vec(step, 1..120)
    }

    /// Whether the judge sees a failed check (a breach, or no data) in this window.
    fn failed(step: &Step) -> bool {
        step.requests > 0 && (step.errors * 10 > step.requests || !step.latency)
    }

    proptest! {
        #[test]
        fn the_controllers_invariants_hold_on_any_evidence(steps in steps(), min_window in 0u64..40, flagger in any::<bool>()) {
            let judge: Box<dyn Judge> = if flagger { Box::new(Flagger::new(3)) } else { Box::new(Argo::new(1, 2)) };
            let mut c = Controller::new(plan(min_window), judge).unwrap();
            let (mut now, mut entered, mut promoted_at) = (0u64, 0u64, None);
            let mut rolled_back = false;
            for step in &steps {
                now += step.dt_s * S;
                if step.decommission {
                    let allowed = c.request_decommission(now).is_ok();
                    let warm_enough = promoted_at.is_some_and(|p: u64| now - p >= 300 * S) && c.phase() == Phase::Promoted;
                    prop_assert_eq!(allowed, warm_enough, "decommission at {} s", now / S);
                    if allowed {
                        prop_assert_eq!(c.phase(), Phase::Retired);
                        break;
                    }
                }
                let before = c.weight_pct();
                let phase_before = c.phase();
                let w = window(step);
                let d = c.evaluate(now, &w, &w, &["f".to_string()]);
                match &d {
                    Decision::Advance { from_pct, to_pct } => {
                        prop_assert!(step.requests >= min_window.max(1), "advanced on {} requests", step.requests);
                        prop_assert!(!failed(step), "advanced on a failed check");
                        // Shadow and every stage last 100 s in this plan.
                        let _ = phase_before;
                        prop_assert!(now - entered >= 100 * S, "advanced after {} s", (now - entered) / S);
                        prop_assert_eq!(*from_pct, before);
                        prop_assert!(*to_pct > *from_pct);
                        entered = now;
                    }
                    Decision::Promote => {
                        prop_assert!(step.requests >= min_window.max(1));
                        promoted_at = Some(now);
                        entered = now;
                    }
                    Decision::RollBack { .. } => {
                        prop_assert!(failed(step), "rolled back on a clean window");
                        prop_assert_eq!(c.weight_pct(), 0.0, "rollback reaches 0 % at once");
                        rolled_back = true;
                    }
                    Decision::AllowRetirement => {
                        prop_assert!(promoted_at.is_some_and(|p| now - p >= 300 * S));
                    }
                    Decision::Hold { .. } | Decision::Held { .. } => {
                        prop_assert_eq!(c.weight_pct(), before, "a hold changes nothing");
                    }
                }
                if rolled_back {
                    prop_assert_eq!(c.weight_pct(), 0.0, "after a rollback nothing goes to new");
                }
                prop_assert!([0.0, 1.0, 5.0, 25.0, 50.0, 100.0].contains(&c.weight_pct()));
                if step.requests == 0 {
                    let held = matches!(&d, Decision::Hold { reason } if reason.starts_with("no traffic"));
                    prop_assert!(held || rolled_back, "no traffic must hold: {:?}", d);
                }
            }
        }

        #[test]
        fn flagger_rolls_back_at_the_thresholdth_failed_check_and_passes_never_reset_it(steps in steps(), threshold in 1u32..6) {
            let mut c = Controller::new(plan(0), Box::new(Flagger::new(threshold))).unwrap();
            let (mut now, mut failures) = (0u64, 0u32);
            for step in steps.iter().filter(|s| s.requests > 0) {
                now += step.dt_s * S;
                let w = window(step);
                let d = c.evaluate(now, &w, &w, &["f".to_string()]);
                if failed(step) {
                    failures += 1;
                }
                let rolled = matches!(d, Decision::RollBack { .. });
                prop_assert_eq!(rolled, failed(step) && failures == threshold, "after {} failed checks", failures);
                if rolled {
                    break;
                }
            }
        }

        #[test]
        fn argo_fails_past_the_failure_limit_and_aborts_past_consecutive_errors(steps in steps(), failure_limit in 0u32..3, error_limit in 0u32..4) {
            let mut c = Controller::new(plan(0), Box::new(Argo::new(failure_limit, error_limit))).unwrap();
            let (mut now, mut failures, mut consecutive_errors) = (0u64, 0u32, 0u32);
            for step in steps.iter().filter(|s| s.requests > 0) {
                now += step.dt_s * S;
                let w = window(step);
                let d = c.evaluate(now, &w, &w, &["f".to_string()]);
                let metric_failed = step.errors * 10 > step.requests;
                let expected = if metric_failed {
                    consecutive_errors = 0;
                    failures += 1;
                    failures > failure_limit
                } else if !step.latency {
                    consecutive_errors += 1;
                    consecutive_errors > error_limit
                } else {
                    consecutive_errors = 0;
                    false
                };
                prop_assert_eq!(matches!(d, Decision::RollBack { .. }), expected);
                if !metric_failed && !step.latency && !expected {
                    let paused = matches!(&d, Decision::Hold { reason } if reason.starts_with("measurement error"));
                    prop_assert!(paused, "inconclusive pauses: {:?}", d);
                }
                if expected {
                    break;
                }
            }
        }
    }

    /// A judge whose evidence (its sum: 1 rolls back) is set from outside.
    #[derive(Clone)]
    struct Scripted(std::sync::Arc<std::sync::Mutex<f64>>);

    impl Judge for Scripted {
        fn name(&self) -> &'static str {
            "scripted"
        }
        fn evidence(&self) -> Vec<(Guardrail, f64)> {
            vec![(Guardrail::ErrorRate, *self.0.lock().unwrap())]
        }
        fn leaning(&self, _features: &[String]) -> Option<Trigger> {
            Some(Trigger::named(Guardrail::ErrorRate.name()))
        }
        fn save(&self) -> crate::core::judge::JudgeSnapshot {
            Box::new(|| serde_json::Value::Null)
        }
        fn clone_box(&self) -> Box<dyn Judge> {
            Box::new(self.clone())
        }
        fn judge(&mut self, _w: &Window, _g: &[(Guardrail, f64)], _f: &[String]) -> Verdict {
            if *self.0.lock().unwrap() >= 1.0 {
                Verdict::RollBack(Trigger::named(Guardrail::ErrorRate.name()))
            } else {
                Verdict::Pass
            }
        }
    }

    fn held_plan(on_max: OnMaxHold) -> Plan {
        let mut p = plan(1);
        p.hold = Some(HoldRule { at: 0.1, release: 0.01, max_us: 150 * S, on_max, alpha: 0.01 });
        p
    }

    proptest! {
        /// Issue 30: a stage never advances while the evidence leans against the new stack
        /// (from the hold level until it falls below the release level), a hold never lasts
        /// past the plan's maximum, and at the maximum the plan's `on_max_hold` applies.
        #[test]
        fn a_stage_held_on_adverse_evidence_never_advances_and_never_holds_past_its_maximum(
            sums in proptest::collection::vec(prop_oneof![0.0..0.02, 0.02..0.1, 0.1..0.9], 1..200),
            dt_s in 5u64..40,
            advance in any::<bool>(),
        ) {
            let on_max = if advance { OnMaxHold::Advance } else { OnMaxHold::RollBack };
            let sum = std::sync::Arc::new(std::sync::Mutex::new(0.0));
            let mut c = Controller::new(held_plan(on_max), Box::new(Scripted(sum.clone()))).unwrap();
            let (mut now, mut leaning, mut since) = (0u64, false, None::<u64>);
            let w = window(&Step { dt_s, requests: 100, errors: 0, latency: true, decommission: false });
            for &x in &sums {
                now += dt_s * S;
                *sum.lock().unwrap() = x;
                // The model of the rule: leaning from 0.1 until below 0.01.
                leaning = if leaning { x >= 0.01 } else { x >= 0.1 };
                let before = c.phase();
                let d = c.evaluate(now, &w, &w, &["f".to_string()]);
                if !matches!(before, Phase::Shadow | Phase::Canary(_)) {
                    break;
                }
                if leaning && since.is_none() {
                    since = Some(now);
                }
                let expired = since.is_some_and(|t| now - t >= 150 * S);
                match &d {
                    Decision::Advance { .. } | Decision::Promote => {
                        prop_assert!(!leaning || (expired && advance), "advanced at sum {x} while held");
                    }
                    Decision::Held { e_value, held_s, .. } => {
                        prop_assert!(leaning && !expired, "held at sum {x}");
                        prop_assert!((e_value - x * 100.0).abs() < 1e-9);
                        prop_assert_eq!(*held_s, (now - since.unwrap()) as f64 / 1e6);
                    }
                    Decision::RollBack { trigger } => {
                        prop_assert!(expired && !advance, "rolled back at sum {x}");
                        prop_assert!(trigger.held_s.is_some_and(|h| h >= 150.0));
                    }
                    Decision::Hold { .. } => prop_assert!(!leaning || expired, "{:?} while leaning", d),
                    Decision::AllowRetirement => {}
                }
                if !leaning || expired {
                    since = None;
                    leaning = leaning && !expired;
                    if expired {
                        // The rule lets go (or rolled back): a new hold starts afresh.
                        leaning = false;
                    }
                }
            }
        }
    }

    #[test]
    fn a_hold_survives_a_restart_of_the_controller() {
        let sum = std::sync::Arc::new(std::sync::Mutex::new(0.3));
        let fresh = || Controller::new(held_plan(OnMaxHold::RollBack), Box::new(Scripted(sum.clone()))).unwrap();
        let mut c = fresh();
        let w = window(&Step { dt_s: 10, requests: 100, errors: 0, latency: true, decommission: false });
        assert!(matches!(c.evaluate(120 * S, &w, &w, &[]), Decision::Held { .. }));
        let (state, _) = c.save();
        let json = serde_json::to_string(&state).unwrap();
        let mut again = fresh();
        again.restore(serde_json::from_str(&json).unwrap()).unwrap();
        assert_eq!(again.held().map(|h| h.since_us), Some(120 * S));
        // Still held 100 s later; at 150 s since the hold began, the plan's maximum, it
        // rolls back: the restart did not reset the hold's clock.
        assert!(matches!(again.evaluate(220 * S, &w, &w, &[]), Decision::Held { held_s, .. } if held_s == 100.0));
        assert!(matches!(again.evaluate(270 * S, &w, &w, &[]), Decision::RollBack { .. }));
    }

    #[test]
    fn a_plan_without_a_rollback_trigger_is_refused() {
        let mut p = plan(0);
        p.guardrails = Guardrails::default();
        assert_eq!(Controller::new(p, Box::new(Flagger::new(5))).err(), Some(PlanError::NoTrigger));
    }

    #[test]
    fn manual_rollback_works_in_any_phase_until_retirement() {
        let mut c = Controller::new(plan(0), Box::new(Flagger::new(5))).unwrap();
        assert!(c.manual_rollback(5 * S));
        assert_eq!(c.weight_pct(), 0.0);
        assert!(!c.manual_rollback(6 * S), "already rolled back");
    }
}
