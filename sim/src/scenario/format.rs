//! The scenario file's format: what a user writes, with its defaults (docs/contracts.md).

use serde::{Deserialize, Serialize};
use toml::Spanned;

pub use crate::core::plan::{
    ControllerConfig, Expect, Guardrails, OnRestart, Outcome, Policy, Reason, Rollout, RolloutPlan, Success, Traffic,
};
use crate::faults::FaultSpec;

/// A scenario as written.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Its name (summary.json's `scenario`).
    pub name: String,
    /// What it shows.
    #[serde(default)]
    pub description: String,
    /// Seed (`--seed` overrides).
    #[serde(default = "one")]
    pub seed: u64,
    /// The migration folder, relative to the scenario file (the bundled card-fraud one
    /// when absent).
    #[serde(default)]
    pub migration: Option<String>,
    /// Arrivals.
    pub traffic: Traffic,
    /// The plan.
    pub rollout: Rollout,
    /// The judge.
    #[serde(default)]
    pub controller: ControllerConfig,
    /// Rollback triggers: at least one is required.
    #[serde(default)]
    pub guardrails: Guardrails,
    /// Per guardrail (by name), the level at or below which a rollback must stay rare: the
    /// null of its test, the limit then being where detection must be fast (an indifference
    /// zone between the two). Absent: the limit is both.
    #[serde(default)]
    pub rare_below: std::collections::BTreeMap<String, f64>,
    /// What promotion to 100 % additionally requires.
    #[serde(default)]
    pub success: Success,
    /// The two serving stacks.
    #[serde(default)]
    pub stacks: Stacks,
    /// Faults, in the order installed.
    #[serde(default)]
    pub faults: Vec<Spanned<FaultSpec>>,
    /// How `cutover loadtest` compresses the plan onto the wall clock.
    #[serde(default)]
    pub live: Option<Live>,
    /// What must happen.
    pub expect: Expect,
}

fn one() -> u64 {
    1
}

impl Scenario {
    /// The parts of it a rollout acts on and is judged by.
    pub fn plan(&self) -> RolloutPlan<'_> {
        RolloutPlan {
            name: &self.name,
            traffic: &self.traffic,
            rollout: &self.rollout,
            controller: &self.controller,
            guardrails: &self.guardrails,
            rare_below: &self.rare_below,
            success: &self.success,
            expect: &self.expect,
        }
    }
}

/// A live load test's shape: the plan's timings divided by `time_scale` so a whole ramp
/// fits in about a minute.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Live {
    /// goose users (each sends its next request when the last is answered).
    #[serde(default = "d_users")]
    pub users: usize,
    /// Wall seconds of the rollout part of the test.
    pub run_time_s: f64,
    /// Scenario seconds per wall second.
    pub time_scale: f64,
    /// Wall seconds of each of the two measurements before the rollout: legacy alone, and
    /// legacy with every request shadowed to the new stack.
    #[serde(default = "d_baseline_s")]
    pub baseline_s: f64,
    /// Requests per second across all users (goose's throttle); unthrottled users send as
    /// fast as the stacks answer, which saturates a small machine.
    #[serde(default)]
    pub throttle_rps: Option<usize>,
    /// The most shadowing may add to the router's own part of the user's p99 (the user's
    /// latency less the legacy call's), ms: the cost of the shadow mechanism itself.
    #[serde(default = "d_shadow_cost_ms")]
    pub max_shadow_cost_ms: f64,
    /// The most shadowing may add to the user's p99 as a whole, percent: that includes
    /// what the shadowed stack's load does to the legacy stack on a shared machine (on a
    /// 2-core machine running router, both stacks and goose, +20 to +35 % is usual).
    /// Unset: reported, not checked.
    #[serde(default)]
    pub max_shadow_machine_cost_pct: Option<f64>,
}

fn d_shadow_cost_ms() -> f64 {
    0.25
}

fn d_users() -> usize {
    8
}

fn d_baseline_s() -> f64 {
    5.0
}

/// A stack's service-time model.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StackModel {
    /// Median latency.
    pub latency_ms_p50: f64,
    /// 99th percentile latency (a log-normal body through both).
    pub latency_ms_p99: f64,
    /// Share of calls that fail.
    #[serde(default)]
    pub error_rate: f64,
    /// The caller gives up after this.
    #[serde(default = "default_timeout")]
    pub timeout_ms: f64,
    /// Slower segments: latency multiplied by `factor` for requests in `segment`.
    #[serde(default)]
    pub slow_segments: Vec<SlowSegment>,
    /// Stalls: now and then every call for a while is slower (a GC pause, a CPU stall, a
    /// noisy neighbour), so slow calls come in clusters.
    #[serde(default)]
    pub stalls: Option<Stalls>,
}

/// Clustered slowness: stalls of `duration_s`, one in every `every_s` seconds on average
/// (each slot of `duration_s` a stall with probability duration / every, from the seed),
/// adding `add_ms` to every call that starts in one.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Stalls {
    /// One stall in every this many seconds, on average.
    pub every_s: f64,
    /// How long each lasts.
    pub duration_s: f64,
    /// Added to each call in it.
    pub add_ms: f64,
}

/// A segment whose latency is multiplied.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SlowSegment {
    /// `dimension=value`.
    pub segment: String,
    /// Latency multiplier.
    pub factor: f64,
}

fn default_timeout() -> f64 {
    150.0
}

/// Both stacks.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Stacks {
    /// The legacy service.
    #[serde(default = "legacy_stack")]
    pub legacy: StackModel,
    /// The new platform.
    #[serde(default = "new_stack")]
    pub new: StackModel,
    /// The user's end-to-end budget: a request is a user-visible failure past it.
    #[serde(default = "default_budget_ms")]
    pub user_budget_ms: f64,
}

fn legacy_stack() -> StackModel {
    StackModel {
        latency_ms_p50: 12.0,
        latency_ms_p99: 40.0,
        error_rate: 0.0,
        timeout_ms: 150.0,
        slow_segments: vec![],
        stalls: None,
    }
}
fn new_stack() -> StackModel {
    StackModel {
        latency_ms_p50: 8.0,
        latency_ms_p99: 28.0,
        error_rate: 0.0002,
        timeout_ms: 150.0,
        slow_segments: vec![],
        stalls: None,
    }
}
fn default_budget_ms() -> f64 {
    400.0
}

impl Default for Stacks {
    fn default() -> Self {
        Stacks { legacy: legacy_stack(), new: new_stack(), user_budget_ms: default_budget_ms() }
    }
}
