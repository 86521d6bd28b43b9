//! A rollout plan's declared parts, as the core reads them: the traffic it expects, the
//! stages, the judge and its parameters, the guardrails and success criteria, and what must
//! happen. The scenario file holds them beside what only the simulated
//! world reads (the stacks' service-time models, the faults); the core never reads the file.

use serde::{Deserialize, Serialize};

use super::hold::HoldRule;
pub use super::hold::OnMaxHold;
use super::Guardrail;

/// The parts of a scenario a rollout acts on and is judged by.
#[derive(Debug, Clone, Copy)]
pub struct RolloutPlan<'a> {
    /// The scenario's name (summary.json's `scenario`).
    pub name: &'a str,
    /// Arrivals.
    pub traffic: &'a Traffic,
    /// The stages.
    pub rollout: &'a Rollout,
    /// The judge.
    pub controller: &'a ControllerConfig,
    /// Rollback triggers.
    pub guardrails: &'a Guardrails,
    /// Per guardrail name, the level at or below which a rollback must stay rare (validated
    /// names; see [`RolloutPlan::nulls`]).
    pub rare_below: &'a std::collections::BTreeMap<String, f64>,
    /// What promotion to 100 % additionally requires.
    pub success: &'a Success,
    /// What must happen.
    pub expect: &'a Expect,
}

impl RolloutPlan<'_> {
    /// The guardrails whose test's null is below their limit, with that level.
    pub fn nulls(&self) -> Vec<(Guardrail, f64)> {
        self.rare_below.iter().filter_map(|(name, &v)| Guardrail::from_name(name).map(|g| (g, v))).collect()
    }
}

/// Poisson arrivals.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Traffic {
    /// Mean arrival rate.
    pub rate_rps: f64,
    /// How long the scenario runs.
    pub duration_s: f64,
    /// Optional rate multipliers for each hour of the day (24 values, UTC); without them,
    /// the traffic source's own curve (a recording that covers every hour) or a flat rate.
    #[serde(default)]
    pub daily_curve: Option<Vec<f64>>,
    /// Start the scenario at this hour of the day (UTC), on the traffic source's first day
    /// (or the next): a rollout planned for the morning peak, say.
    #[serde(default)]
    pub start_hour_utc: Option<u32>,
}

/// Why the migration happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Reliability.
    Reliability,
    /// Cost.
    Cost,
    /// Latency.
    Latency,
    /// Feature reuse.
    FeatureReuse,
    /// Compliance.
    Compliance,
    /// Developer velocity.
    Velocity,
}

/// The rollout plan, declared before any traffic moves.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Rollout {
    /// Shadow period.
    pub shadow_s: f64,
    /// Canary stages, increasing, ending at 100.
    #[serde(default = "default_stages")]
    pub stages_pct: Vec<f64>,
    /// Minimum time at each stage.
    pub bake_s: f64,
    /// After 100 %, how long legacy stays warm before decommission is allowed.
    pub keep_legacy_warm_s: f64,
    /// Paired requests a stage needs before it may advance.
    #[serde(default = "default_min_requests")]
    pub min_requests_per_stage: u64,
    /// Why the migration is happening.
    #[serde(default)]
    pub reasons: Vec<Reason>,
    /// Where a live router restarted on its state folder takes the rollout up.
    #[serde(default)]
    pub on_restart: OnRestart,
    /// Sequential judge: whether a stage is held while its evidence leans against the new
    /// stack (default true).
    #[serde(default = "yes")]
    pub hold_on_evidence: bool,
    /// Sequential judge: the e-value of its evidence against the new stack at which a
    /// stage is held (default `1 / sqrt(false_rollback_budget)`; see [`super::hold`]).
    #[serde(default)]
    pub hold_e_value: Option<f64>,
    /// The e-value below which a held stage is released (default 1).
    #[serde(default = "default_release_e_value")]
    pub release_e_value: f64,
    /// The longest a stage is held (default: `bake_s`, at least one check interval).
    #[serde(default)]
    pub max_hold_s: Option<f64>,
    /// What a hold that lasts `max_hold_s` does.
    #[serde(default)]
    pub on_max_hold: OnMaxHold,
}

fn yes() -> bool {
    true
}

fn default_release_e_value() -> f64 {
    super::hold::DEFAULT_RELEASE_E_VALUE
}

impl Rollout {
    /// The hold rule of this plan under a judge with false-rollback budget `alpha`,
    /// looking every `check_interval_s` (None when the plan does not hold).
    pub fn hold_rule(&self, alpha: f64, check_interval_s: f64) -> Option<HoldRule> {
        if !self.hold_on_evidence {
            return None;
        }
        let at = self.hold_e_value.unwrap_or_else(|| super::hold::default_hold_e_value(alpha));
        let max_s = self.max_hold_s.unwrap_or(self.bake_s.max(check_interval_s));
        Some(HoldRule {
            at: at * alpha,
            release: self.release_e_value * alpha,
            max_us: (max_s * super::SECOND as f64) as u64,
            on_max: self.on_max_hold,
            alpha,
        })
    }
}

/// Where a restarted router (`serve --state DIR`) takes a rollout up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnRestart {
    /// At the stage it was in, with the judge's evidence.
    #[default]
    Resume,
    /// A canary goes back to shadow and earns its stages again (on the judge's evidence
    /// so far); promoted and rolled-back rollouts stay where they are.
    Shadow,
}

fn default_stages() -> Vec<f64> {
    vec![1.0, 5.0, 25.0, 50.0, 100.0]
}

fn default_min_requests() -> u64 {
    500
}

/// Which rule judges the guardrails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Flagger's cumulative failed-check counter.
    Flagger,
    /// Argo Rollouts' failure limit.
    Argo,
    /// Anytime-valid sequential tests on every request's paired evidence (the default).
    #[default]
    Sequential,
}

impl Policy {
    /// The policy's name.
    pub fn name(self) -> &'static str {
        match self {
            Policy::Flagger => "flagger",
            Policy::Argo => "argo",
            Policy::Sequential => "sequential",
        }
    }
}

/// The judge and its parameters.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ControllerConfig {
    /// The judge.
    #[serde(default)]
    pub policy: Policy,
    /// Probability of rolling back a clean migration over the whole rollout (the statistical judge's budget).
    #[serde(default = "default_budget")]
    pub false_rollback_budget: f64,
    /// Seconds between checks (Flagger's `interval`, Argo's measurement `interval`).
    #[serde(default = "default_interval")]
    pub interval_s: f64,
    /// Flagger: failed checks before rolling back.
    #[serde(default = "default_threshold")]
    pub threshold: u32,
    /// Argo: failed measurements allowed before the analysis fails.
    #[serde(default)]
    pub failure_limit: u32,
    /// Argo: consecutive measurement errors allowed before the analysis aborts.
    #[serde(default = "default_consecutive_errors")]
    pub consecutive_error_limit: u32,
    /// Paired requests an evaluation needs before the judge is asked.
    #[serde(default = "default_min_evidence")]
    pub min_requests: u64,
    /// Sequential: seconds between looks at the tests (they update on every request).
    #[serde(default = "default_check_interval")]
    pub check_interval_s: f64,
    /// Sequential: observations a test needs in its block before it may reject.
    #[serde(default = "default_sequential_evidence")]
    pub min_evidence: u64,
}

fn default_check_interval() -> f64 {
    5.0
}
fn default_sequential_evidence() -> u64 {
    200
}

fn default_budget() -> f64 {
    0.01
}
fn default_interval() -> f64 {
    60.0
}
fn default_threshold() -> u32 {
    5
}
fn default_consecutive_errors() -> u32 {
    4
}
fn default_min_evidence() -> u64 {
    30
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            policy: Policy::default(),
            false_rollback_budget: default_budget(),
            interval_s: default_interval(),
            threshold: default_threshold(),
            failure_limit: 0,
            consecutive_error_limit: default_consecutive_errors(),
            min_requests: default_min_evidence(),
            check_interval_s: default_check_interval(),
            min_evidence: default_sequential_evidence(),
        }
    }
}

/// Rollback triggers: each an upper limit on a statistic of the new stack against legacy.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Guardrails {
    /// Share of requests whose decision differs between the stacks.
    pub max_decision_flip_rate: Option<f64>,
    /// Mean |new score - legacy score| (probability; largest class probability; or the
    /// model's units for regression).
    pub max_mean_abs_score_diff: Option<f64>,
    /// Mean |new - legacy| / |legacy| (regression).
    pub max_mean_rel_score_diff: Option<f64>,
    /// Share of requests whose value of any one feature differs (worst feature).
    pub max_feature_mismatch_rate: Option<f64>,
    /// Share of new-stack calls that fail.
    pub max_error_rate: Option<f64>,
    /// Share of new-stack calls that time out.
    pub max_timeout_rate: Option<f64>,
    /// New stack p99 latency.
    pub max_p99_latency_ms: Option<f64>,
    /// New stack p99 over legacy p99.
    pub max_p99_latency_ratio: Option<f64>,
    /// Share of shadow calls that lacked the production context.
    pub max_shadow_context_mismatch_rate: Option<f64>,
    /// Online-store freshness lag.
    pub max_feature_staleness_s: Option<f64>,
}

impl Guardrails {
    /// The limit set for `g`, if any.
    pub fn limit(&self, g: Guardrail) -> Option<f64> {
        use Guardrail::*;
        match g {
            DecisionFlipRate => self.max_decision_flip_rate,
            MeanAbsScoreDiff => self.max_mean_abs_score_diff,
            MeanRelScoreDiff => self.max_mean_rel_score_diff,
            FeatureMismatchRate => self.max_feature_mismatch_rate,
            ErrorRate => self.max_error_rate,
            TimeoutRate => self.max_timeout_rate,
            P99LatencyMs => self.max_p99_latency_ms,
            P99LatencyRatio => self.max_p99_latency_ratio,
            ShadowContextMismatchRate => self.max_shadow_context_mismatch_rate,
            FeatureStalenessS => self.max_feature_staleness_s,
        }
    }

    /// The triggers that are set, with their limits, in the plan's order.
    pub fn set(&self) -> Vec<(Guardrail, f64)> {
        Guardrail::ALL.into_iter().filter_map(|g| self.limit(g).map(|v| (g, v))).collect()
    }
}

/// Success criteria beyond parity, required for promotion to 100 %.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Success {
    /// New p99 over legacy p99 at most this (0.8: the new platform is faster).
    pub max_p99_latency_ratio: Option<f64>,
    /// New error rate at most this.
    pub max_error_rate: Option<f64>,
}

/// What must happen.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// `promoted` or `rolled_back`.
    pub outcome: Outcome,
    /// Detection deadline from the earliest fault's start.
    #[serde(default)]
    pub detect_within_s: Option<f64>,
    /// Rollback deadline from the earliest fault's start.
    #[serde(default)]
    pub rollback_within_s: Option<f64>,
    /// User-facing decisions that may differ from legacy's.
    #[serde(default)]
    pub max_bad_decisions: Option<u64>,
    /// User-visible failures allowed (default none).
    #[serde(default)]
    pub max_user_failures: u64,
}

/// How a rollout ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Reached 100 % and stayed.
    Promoted,
    /// Went back to legacy.
    RolledBack,
    /// Neither, when the scenario ended.
    InProgress,
}
