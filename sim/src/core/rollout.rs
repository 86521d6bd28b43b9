//! One judge's rollout: the controller, its evaluation and stage windows, its history and
//! what it found (detection, rollback, trigger, stages, invariant violations). The
//! simulator runs one per judge in a world; the live router runs one on the wall clock.
//! Times are microseconds of scenario time.

use cutover_migration::answer::{Answer, AnswerKind};

use super::checkpoint::{RolloutSnapshot, RolloutState};
use super::controller::{Controller, Decision, Phase, Plan};
use super::history::{Event, History};
use super::hold::{HoldStep, OnMaxHold};
use super::judge::{Argo, Flagger, Judge, Trigger};
use super::monitor::{Observation, Window};
use super::plan::{Outcome, Policy, RolloutPlan};
use super::sequential::Sequential;
use super::trace::{StageStats, Trace};
use super::verdict::{self, HoldEnd, HoldSpan, Summary, TimelineRow};
use super::SECOND;

/// A rollout under one judge.
#[derive(Clone)]
pub struct Rollout {
    /// The controller.
    pub controller: Controller,
    /// The history (kept, or discarded for sweeps).
    pub history: History,
    /// How often the controller evaluates, µs.
    pub interval_us: u64,
    /// Evidence since the last evaluation.
    pub eval_window: Window,
    /// Evidence since the stage began.
    pub stage_window: Window,
    /// First breach at or after the first fault's start.
    pub detected_us: Option<u64>,
    /// When it rolled back.
    pub rollback_us: Option<u64>,
    /// Why.
    pub trigger: Option<Trigger>,
    /// (weight, entered, left) per stage.
    pub stages: Vec<(f64, u64, Option<u64>)>,
    /// Timeline rows (the simulator's, one a minute).
    pub timeline: Vec<TimelineRow>,
    /// Invariant violations in words (at most 20 kept).
    pub violations: Vec<String>,
    /// Stages held on adverse evidence (the first [`MAX_HOLDS`] kept).
    pub holds: Vec<HoldSpan>,
    /// What a report draws (kept with the history; sweeps keep none).
    pub trace: Option<Box<Trace>>,
}

/// What an evaluation did.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluated {
    /// The decision.
    pub decision: Decision,
    /// Whether the stage changed (advance, promote, roll back).
    pub stage_changed: bool,
}

/// Holds a rollout keeps (a live rollout that holds and lets go for days).
pub const MAX_HOLDS: usize = 100;

/// J, the looks the sequential judge plans for: one every `check_interval_s` over the
/// scenario, and never more than its requests (a look starts a new e-process only when
/// something was observed since the last one), counted twice over to be safe.
pub fn planned_looks(s: &RolloutPlan<'_>) -> u64 {
    let looks = (s.traffic.duration_s / s.controller.check_interval_s.max(1e-3)).ceil() + 1.0;
    let requests = (2.0 * s.traffic.rate_rps * s.traffic.duration_s).ceil() + 1.0;
    looks.min(requests).clamp(1.0, 1e15) as u64
}

impl Rollout {
    /// A rollout of `scenario`'s plan under `policy`, at the start of shadow, judging a
    /// migration's `answer` over its model `features` and `segments` (names).
    pub fn new(
        s: &RolloutPlan<'_>,
        policy: Policy,
        answer: &Answer,
        features: &[String],
        segments: &[String],
        history: History,
    ) -> Result<Rollout, String> {
        let units = answer.kind == AnswerKind::Regression;
        let c = &s.controller;
        let judge: Box<dyn Judge> = match policy {
            Policy::Flagger => Box::new(Flagger::new(c.threshold)),
            Policy::Argo => Box::new(Argo::new(c.failure_limit, c.consecutive_error_limit)),
            Policy::Sequential => Box::new(
                Sequential::new(
                    &s.guardrails.set(),
                    features.len(),
                    segments.to_vec(),
                    c.false_rollback_budget,
                    c.min_evidence,
                    planned_looks(s),
                    units,
                )
                .with_nulls(&s.nulls()),
            ),
        };
        // The sequential tests look every few seconds and need no minimum window.
        let sequential = policy == Policy::Sequential;
        let us = |sec: f64| (sec * SECOND as f64) as u64;
        let r = &s.rollout;
        let plan = Plan {
            shadow_us: us(r.shadow_s),
            stages_pct: r.stages_pct.clone(),
            bake_us: us(r.bake_s),
            keep_warm_us: us(r.keep_legacy_warm_s),
            min_stage_requests: r.min_requests_per_stage,
            min_window_requests: if sequential { 1 } else { c.min_requests },
            guardrails: s.guardrails.clone(),
            success: s.success.clone(),
            hold: r.hold_rule(c.false_rollback_budget, c.check_interval_s).filter(|_| sequential),
        };
        let controller = Controller::new(plan, judge).map_err(|e| e.to_string())?;
        let n = features.len();
        let trace = history.kept().then(|| Box::new(Trace::new(s.guardrails.set(), units)));
        let mut rollout = Rollout {
            controller,
            history,
            interval_us: us(if sequential { c.check_interval_s } else { c.interval_s }),
            eval_window: Window::new(n).with_relative(units),
            stage_window: Window::new(n).with_relative(units),
            detected_us: None,
            rollback_us: None,
            trigger: None,
            stages: vec![(0.0, 0, None)],
            timeline: Vec::new(),
            violations: Vec::new(),
            holds: Vec::new(),
            trace,
        };
        rollout.history.push(Event::Stage { t_s: 0.0, phase: Phase::Shadow, weight_pct: 0.0 });
        Ok(rollout)
    }

    /// What the serving path reads of the controller: rollouts that agree on it route
    /// every request the same way.
    pub fn routing(&self) -> (u64, Phase) {
        (self.controller.weight_pct().to_bits(), self.controller.phase())
    }

    /// One request's paired evidence; true when the judge raised its alarm: the caller
    /// evaluates now, before the next request, rather than at the next interval.
    #[must_use]
    pub fn observe(&mut self, t: u64, observation: &Observation<'_>) -> bool {
        let alarm = self.controller.observe(t, observation);
        if let Some(trace) = &mut self.trace {
            trace.observe(observation);
        }
        self.eval_window.record(observation);
        self.stage_window.record(observation);
        alarm
    }

    /// What a router keeps across a restart, as of now (see [`super::checkpoint`]).
    pub fn save(&self) -> RolloutSnapshot {
        let (controller, judge) = self.controller.save();
        let state = RolloutState {
            controller,
            eval_window: self.eval_window.clone(),
            stage_window: self.stage_window.clone(),
            detected_us: self.detected_us,
            rollback_us: self.rollback_us,
            trigger: self.trigger.as_ref().map(Into::into),
            stages: self.stages.iter().map(|&(w, a, b)| (w.to_bits(), a, b)).collect(),
            violations: self.violations.clone(),
            holds: self.holds.clone(),
            history_sha256: self.history.sha256(),
            history_pushed: self.history.pushed(),
        };
        RolloutSnapshot { state, judge }
    }

    /// Takes up a state [`Rollout::save`] wrote under the same plan: the controller where
    /// it was, its judge's evidence, the windows, and the history going on from its hash.
    pub fn restore(&mut self, state: RolloutState) -> Result<(), String> {
        let features = self.eval_window.feature_mismatches.len();
        if state.eval_window.feature_mismatches.len() != features
            || state.stage_window.feature_mismatches.len() != features
        {
            return Err("the state was saved for a model with other features".into());
        }
        self.controller.restore(state.controller)?;
        self.eval_window = state.eval_window;
        self.stage_window = state.stage_window;
        self.detected_us = state.detected_us;
        self.rollback_us = state.rollback_us;
        self.trigger = state.trigger.map(Into::into);
        self.stages = state.stages.into_iter().map(|(w, a, b)| (f64::from_bits(w), a, b)).collect();
        self.violations = state.violations;
        self.holds = state.holds;
        self.history.resume(&state.history_sha256, state.history_pushed);
        Ok(())
    }

    /// Takes up a stage a router wrote to its history before it stopped, past its last
    /// checkpoint (see [`Controller::take_up`]); a rollback taken up this way names its
    /// trigger `restart`. True when the rollout moved.
    pub fn take_up(&mut self, phase: Phase, t: u64) -> bool {
        if !self.controller.take_up(phase, t) {
            return false;
        }
        if phase == Phase::RolledBack {
            self.rollback_us = Some(t);
            self.trigger = Some(Trigger::named("restart"));
        }
        // Its stage event is in the history already.
        self.close_stage(t);
        true
    }

    /// Records an invariant violation.
    pub fn violation(&mut self, t: u64, invariant: &str, detail: String) {
        if self.violations.len() < 20 {
            self.violations.push(format!("{invariant}: {detail} (t={:.1} s)", t as f64 / 1e6));
        }
        self.history.push(Event::Violation { t_s: t as f64 / 1e6, invariant: invariant.into(), detail });
    }

    /// The controller evaluates the window (with the store's staleness) and the rollout
    /// moves on; `fault_start` is the earliest fault's start, for detection times.
    pub fn evaluate(
        &mut self,
        t: u64,
        staleness_s: Option<f64>,
        features: &[String],
        fault_start: Option<u64>,
        keep_evaluation: bool,
    ) -> Evaluated {
        self.eval_window.staleness_s = staleness_s;
        let decision = self.controller.evaluate(t, &self.eval_window, &self.stage_window, features);
        let breached = matches!(decision, Decision::RollBack { .. })
            || matches!(&decision, Decision::Hold { reason } if reason.starts_with("guardrail breached"));
        if breached && self.detected_us.is_none() && fault_start.is_none_or(|f| t >= f) {
            self.detected_us = Some(t);
        }
        let stage_changed =
            matches!(decision, Decision::Advance { .. } | Decision::Promote | Decision::RollBack { .. });
        if let Decision::RollBack { trigger } = &decision {
            self.rollback_us = Some(t);
            self.trigger = Some(trigger.clone());
        }
        self.record_hold(t, &decision);
        if let Some(trace) = &mut self.trace {
            trace.evaluation(t as f64 / 1e6, &self.eval_window, &self.controller.evidence());
        }
        if keep_evaluation {
            self.history.push(Event::Evaluation {
                t_s: t as f64 / 1e6,
                window: Box::new(self.eval_window.summary()),
                decision: decision.clone(),
            });
        }
        if stage_changed {
            self.enter_stage(t);
        }
        self.eval_window.clear();
        Evaluated { decision, stage_changed }
    }

    /// Keeps the holds' spans up to date after an evaluation at `t` that decided `decision`.
    fn record_hold(&mut self, t: u64, decision: &Decision) {
        let (kept, weight_pct) = (self.holds.len(), self.controller.weight_pct());
        let open = self.holds.last_mut().filter(|h| h.ended.is_none());
        let end = match (self.controller.last_hold(), decision) {
            (
                HoldStep::Held { since_us },
                Decision::Held { guardrail, e_value, e_value_threshold, hold_e_value, .. },
            ) => {
                match open {
                    Some(h) => h.peak_e_value = h.peak_e_value.max(*e_value),
                    None if kept < MAX_HOLDS => self.holds.push(HoldSpan {
                        weight_pct,
                        from_s: since_us as f64 / 1e6,
                        to_s: None,
                        guardrail: guardrail.clone(),
                        peak_e_value: *e_value,
                        hold_e_value: *hold_e_value,
                        e_value_threshold: *e_value_threshold,
                        ended: None,
                    }),
                    None => {}
                }
                return;
            }
            (HoldStep::Released { .. }, _) => HoldEnd::Released,
            (HoldStep::Expired { .. }, _) => match self.controller.plan_on_max_hold() {
                OnMaxHold::RollBack => HoldEnd::MaxHoldRolledBack,
                OnMaxHold::Advance => HoldEnd::MaxHoldAdvanced,
            },
            (_, Decision::RollBack { .. }) => HoldEnd::RolledBack,
            _ => return,
        };
        self.end_hold(t, end);
    }

    /// Ends the hold in progress, if any, at `t`.
    fn end_hold(&mut self, t: u64, end: HoldEnd) {
        if let Some(h) = self.holds.last_mut().filter(|h| h.ended.is_none()) {
            h.to_s = Some(t as f64 / 1e6);
            h.ended = Some(end);
        }
    }

    /// An attempt to decommission legacy: allowed or refused, in the history either way.
    pub fn decommission(&mut self, t: u64) -> Result<(), String> {
        let result = self.controller.request_decommission(t);
        let allowed = result.is_ok();
        let detail = result.clone().err().unwrap_or_else(|| "legacy decommissioned".into());
        self.history.push(Event::Decommission { t_s: t as f64 / 1e6, allowed, detail });
        if allowed {
            self.enter_stage(t);
            if !self.controller.retirement_allowed() {
                self.violation(
                    t,
                    "legacy warm until retirement is allowed",
                    "legacy was decommissioned before retirement was allowed".into(),
                );
            }
        }
        result
    }

    /// An operator's rollback; false when there is nothing to roll back.
    pub fn manual_rollback(&mut self, t: u64) -> bool {
        if !self.controller.manual_rollback(t) {
            return false;
        }
        self.rollback_us = Some(t);
        self.trigger = Some(Trigger::named("manual"));
        self.enter_stage(t);
        true
    }

    /// Marks the start of a new stage.
    pub fn enter_stage(&mut self, t: u64) {
        self.close_stage(t);
        let weight = self.controller.weight_pct();
        self.history.push(Event::Stage { t_s: t as f64 / 1e6, phase: self.controller.phase(), weight_pct: weight });
    }

    /// Ends the stage that was on and opens the controller's current one, in the rollout's
    /// stages and windows (not in the history).
    fn close_stage(&mut self, t: u64) {
        self.end_hold(t, HoldEnd::StageChanged);
        if let Some(last) = self.stages.last_mut() {
            last.2 = Some(t);
            if let Some(trace) = &mut self.trace {
                let next = verdict::phase_name(self.controller.phase());
                trace.stage_ended(last.0, last.1 as f64 / 1e6, t as f64 / 1e6, &self.stage_window, next);
            }
        }
        let weight = self.controller.weight_pct();
        self.stage_window.clear();
        self.stages.push((weight, t, None));
    }

    /// Every stage's statistics, the current one's so far (empty without a trace).
    pub fn stage_stats(&self) -> Vec<StageStats> {
        let Some(trace) = &self.trace else { return Vec::new() };
        let mut stages = trace.stages.clone();
        if let Some(&(weight_pct, entered, None)) = self.stages.last() {
            stages.push(StageStats {
                phase: trace.phase.clone(),
                weight_pct,
                entered_s: entered as f64 / 1e6,
                left_s: None,
                window: self.stage_window.summary(),
            });
        }
        stages
    }

    /// How the rollout ended.
    pub fn outcome(&self) -> Outcome {
        match self.controller.phase() {
            Phase::Promoted | Phase::Retired => Outcome::Promoted,
            Phase::RolledBack => Outcome::RolledBack,
            Phase::Shadow | Phase::Canary(_) => Outcome::InProgress,
        }
    }

    /// summary.json, from this rollout and the counts of the traffic it judged.
    pub fn summary(
        &self,
        s: &RolloutPlan<'_>,
        seed: u64,
        fault_start_us: Option<u64>,
        counts: Counts,
        reproduce: String,
    ) -> Summary {
        verdict::summarize(verdict::Facts {
            scenario: s.name.to_string(),
            seed,
            policy: self.controller.policy(),
            outcome: self.outcome(),
            expect: s.expect,
            fault_start_us,
            detected_us: self.detected_us,
            rollback_us: self.rollback_us,
            trigger: self.trigger.clone(),
            bad_decisions: counts.bad_decisions,
            requests_total: counts.requests_total,
            requests_failed: counts.requests_failed,
            stages: self.stages.clone(),
            violations: self.violations.clone(),
            holds: self.holds.clone(),
            history_sha256: self.history.sha256(),
            reproduce,
        })
    }
}

/// Counts of the traffic a rollout judged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Requests answered.
    pub requests_total: u64,
    /// User-visible failures.
    pub requests_failed: u64,
    /// Decisions served by the new stack that differ from legacy's.
    pub bad_decisions: u64,
}
