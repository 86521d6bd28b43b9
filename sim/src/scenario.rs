//! Scenario files (TOML): the traffic, the rollout plan with its rollback triggers, the
//! judge, the stacks, the faults and what must happen. See docs/contracts.md for the
//! contract; everything a user writes is validated here, and every refusal names the
//! file, the line and column where known, and the field.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use cutover_models::answer::AnswerKind;
use cutover_models::Migration;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::core::Guardrail;
pub use crate::faults::{FaultSpec, MAX_ADDED_MS};

/// A scenario that cannot run: one line naming the place and the field.
pub type ScenarioError = cutover_models::FieldError;

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
    StackModel { latency_ms_p50: 12.0, latency_ms_p99: 40.0, error_rate: 0.0, timeout_ms: 150.0, slow_segments: vec![] }
}
fn new_stack() -> StackModel {
    StackModel {
        latency_ms_p50: 8.0,
        latency_ms_p99: 28.0,
        error_rate: 0.0002,
        timeout_ms: 150.0,
        slow_segments: vec![],
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

/// A scenario ready to run: validated against its migration, with its file and source.
#[derive(Debug, Clone)]
pub struct LoadedScenario {
    /// The parsed scenario.
    pub scenario: Scenario,
    /// Its file.
    pub path: PathBuf,
    /// Its folder, for relative paths.
    pub base: PathBuf,
    /// The migration it runs.
    pub migration: Arc<Migration>,
    /// Its source, for positions of errors found later.
    pub text: Arc<str>,
}

/// The bundled card-fraud migration folder: `domain/fraud` under the working directory,
/// else under the source tree cutover was built from.
pub fn bundled_migration_dir() -> PathBuf {
    let here = PathBuf::from("domain/fraud");
    if here.join(cutover_models::migration::FILE).is_file() {
        return here;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../domain/fraud")
}

/// A plan for a migration that names none: shadow, the canary stages, and guardrails that
/// fit its answer (decision flips and probability differences, or differences in the model's
/// units), its features, errors, timeouts, latency, its shadow context when it declares one,
/// and the store's freshness. `shadow_only` keeps all traffic in shadow (a replay's watch).
pub fn default_plan(m: &Migration, dir: &Path, shadow_only: bool) -> String {
    let answer = if m.answer().kind == AnswerKind::Regression {
        "max_mean_abs_score_diff = 0.05\nmax_mean_rel_score_diff = 0.005\n"
    } else {
        "max_decision_flip_rate = 0.002\nmax_mean_abs_score_diff = 0.002\n"
    };
    let context = if m.shadow_context().is_empty() { "" } else { "max_shadow_context_mismatch_rate = 0.001\n" };
    let rollout = if shadow_only {
        "shadow_s = 2592000\nstages_pct = [100]\nbake_s = 60\nkeep_legacy_warm_s = 60\n"
    } else {
        "shadow_s = 600\nstages_pct = [1, 5, 25, 50, 100]\nbake_s = 300\nkeep_legacy_warm_s = 600\nmin_requests_per_stage = 200\n"
    };
    format!(
        "name = \"{name}\"\ndescription = \"The default plan for {name}\"\nseed = 1\nmigration = {dir:?}\n\n\
         [traffic]\nrate_rps = 200\nduration_s = 3600\n\n[rollout]\n{rollout}\n[controller]\npolicy = \"sequential\"\n\n\
         [guardrails]\n{answer}max_feature_mismatch_rate = 0.005\nmax_error_rate = 0.01\nmax_timeout_rate = 0.01\n\
         max_p99_latency_ratio = 3.0\n{context}max_feature_staleness_s = 1800\n\n[expect]\noutcome = \"{outcome}\"\n",
        name = m.name,
        dir = dir.display().to_string(),
        outcome = if shadow_only { "in_progress" } else { "promoted" },
    )
}

/// Loads a migration folder once per process (a suite's scenarios share it, and a recorded
/// traffic file is read once).
pub fn load_migration(dir: &Path) -> Result<Arc<Migration>, ScenarioError> {
    static CACHE: Mutex<Vec<(PathBuf, Arc<Migration>)>> = Mutex::new(Vec::new());
    let key = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, m)) = cache.iter().find(|(k, _)| *k == key) {
        return Ok(m.clone());
    }
    let m = Arc::new(Migration::load(dir)?);
    cache.push((key, m.clone()));
    Ok(m)
}

impl LoadedScenario {
    /// Reads, parses and validates a scenario file.
    pub fn read(path: &Path) -> Result<LoadedScenario, ScenarioError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| err(&file, 0, 0, "", format!("cannot read: {e}")))?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        LoadedScenario::parse(&text, &file, path.to_path_buf(), base)
    }

    /// Parses and validates scenario text, loading its migration folder.
    pub fn parse(text: &str, file: &str, path: PathBuf, base: PathBuf) -> Result<LoadedScenario, ScenarioError> {
        let scenario: Scenario = toml::from_str(text).map_err(|e| {
            let (line, column, field, mut message) = cutover_models::toml_error(text, &e);
            if message.starts_with("unknown field `domain`") {
                message = "`[domain]` is no longer read: a scenario names its migration folder (migration = \"path\"), which declares the registry, entries and answer".into();
            }
            err(file, line, column, &field, message)
        })?;
        validate(&scenario, text, file)?;
        let dir = match &scenario.migration {
            Some(m) => {
                let p = base.join(m);
                if !(p.is_file() || p.join("migration.toml").is_file()) {
                    let (line, column) = key_position(text, "", "migration");
                    return Err(err(
                        file,
                        line,
                        column,
                        "migration",
                        format!("{}: no such migration folder (a folder holding migration.toml)", p.display()),
                    ));
                }
                p
            }
            None => bundled_migration_dir(),
        };
        let migration = load_migration(&dir)?;
        validate_against(&scenario, &migration, text, file)?;
        Ok(LoadedScenario { scenario, path, base, migration, text: text.into() })
    }

    /// A path from the scenario: relative to the scenario's folder when it exists there,
    /// else to the working directory (where the bundled defaults live).
    pub fn resolve(&self, p: &str) -> PathBuf {
        let candidate = self.base.join(p);
        if Path::new(p).is_absolute() || candidate.exists() {
            candidate
        } else {
            PathBuf::from(p)
        }
    }
}

fn err(file: &str, line: usize, column: usize, field: &str, message: String) -> ScenarioError {
    ScenarioError { file: file.into(), line, column, field: field.into(), message }
}

pub(crate) use cutover_models::line_column;

/// Finds `key =` in a section of the text, for the position of a semantic error.
fn key_position(text: &str, section: &str, key: &str) -> (usize, usize) {
    let start = text.find(&format!("[{section}]")).unwrap_or(0);
    let rest = &text[start..];
    let at = rest.find(&format!("\n{key}")).map(|i| start + i + 1).or_else(|| text.find(key)).unwrap_or(0);
    line_column(text, at)
}

fn validate(s: &Scenario, text: &str, file: &str) -> Result<(), ScenarioError> {
    let at = |section: &str, key: &str, message: String| {
        let (line, column) = key_position(text, section, key);
        err(file, line, column, &format!("{section}.{key}"), message)
    };
    let positive = |v: f64| v.is_finite() && v > 0.0;
    if let Some(live) = &s.live {
        if live.users == 0 || live.users > 1000 {
            return Err(at("live", "users", format!("must be 1 to 1000, got {}", live.users)));
        }
        if !positive(live.run_time_s) || live.run_time_s > 3600.0 {
            return Err(at("live", "run_time_s", "must be a positive number of seconds, at most 3600".into()));
        }
        if !positive(live.time_scale) {
            return Err(at("live", "time_scale", "must be a positive number".into()));
        }
        if live.throttle_rps.is_some_and(|r| r == 0 || r > 1_000_000) {
            return Err(at("live", "throttle_rps", "must be 1 to 1000000".into()));
        }
        if !(live.baseline_s.is_finite() && (0.0..=600.0).contains(&live.baseline_s)) {
            return Err(at("live", "baseline_s", "must be 0 to 600 seconds".into()));
        }
        if !(live.max_shadow_cost_ms.is_finite() && (0.0..=10_000.0).contains(&live.max_shadow_cost_ms)) {
            return Err(at("live", "max_shadow_cost_ms", "must be 0 to 10000 ms".into()));
        }
        if live.max_shadow_machine_cost_pct.is_some_and(|p| !(p.is_finite() && p >= 0.0)) {
            return Err(at("live", "max_shadow_machine_cost_pct", "must be a non-negative percentage".into()));
        }
    }
    if !positive(s.traffic.rate_rps) || s.traffic.rate_rps > MAX_RATE_RPS {
        return Err(at(
            "traffic",
            "rate_rps",
            format!("must be a positive number, at most {MAX_RATE_RPS}, got {}", s.traffic.rate_rps),
        ));
    }
    if !positive(s.traffic.duration_s) || s.traffic.duration_s > 30.0 * 86400.0 {
        return Err(at(
            "traffic",
            "duration_s",
            format!("must be positive and at most 30 days, got {}", s.traffic.duration_s),
        ));
    }
    if s.traffic.start_hour_utc.is_some_and(|h| h > 23) {
        return Err(at("traffic", "start_hour_utc", "must be an hour, 0 to 23".into()));
    }
    if let Some(curve) = &s.traffic.daily_curve {
        if curve.len() != 24 || curve.iter().any(|v| !(v.is_finite() && *v >= 0.0)) || curve.iter().all(|v| *v == 0.0) {
            return Err(at("traffic", "daily_curve", "needs 24 non-negative multipliers, not all zero".into()));
        }
    }
    let r = &s.rollout;
    for (key, v) in [("shadow_s", r.shadow_s), ("bake_s", r.bake_s), ("keep_legacy_warm_s", r.keep_legacy_warm_s)] {
        if !(v.is_finite() && v >= 0.0) {
            return Err(at("rollout", key, format!("must be a non-negative number, got {v}")));
        }
    }
    let stages = &r.stages_pct;
    if stages.is_empty()
        || stages.iter().any(|p| !(p.is_finite() && *p > 0.0 && *p <= 100.0))
        || stages.windows(2).any(|w| w[0] >= w[1])
        || stages.last() != Some(&100.0)
    {
        return Err(at(
            "rollout",
            "stages_pct",
            format!("must increase within (0, 100] and end at 100, got {stages:?}"),
        ));
    }
    let c = &s.controller;
    if !(c.false_rollback_budget > 0.0 && c.false_rollback_budget < 1.0) {
        return Err(at(
            "controller",
            "false_rollback_budget",
            format!("must be in (0, 1), got {}", c.false_rollback_budget),
        ));
    }
    for (key, v) in [("interval_s", c.interval_s), ("check_interval_s", c.check_interval_s)] {
        if !positive(v) {
            return Err(at("controller", key, format!("must be positive, got {v}")));
        }
    }
    if c.threshold == 0 {
        return Err(at("controller", "threshold", "must be at least 1".into()));
    }
    let set = s.guardrails.set();
    if set.is_empty() {
        let (line, column) = text.find("[guardrails]").map_or((0, 0), |i| line_column(text, i));
        return Err(err(
            file,
            line,
            column,
            "guardrails",
            "no rollback trigger: a plan must declare at least one guardrail before any traffic moves".into(),
        ));
    }
    for (guardrail, limit) in set {
        if !(limit.is_finite() && limit >= 0.0) {
            return Err(at(
                "guardrails",
                &format!("max_{guardrail}"),
                format!("must be a non-negative number, got {limit}"),
            ));
        }
    }
    for (name, m) in [("legacy", &s.stacks.legacy), ("new", &s.stacks.new)] {
        if !(positive(m.latency_ms_p50) && m.latency_ms_p99 >= m.latency_ms_p50 && positive(m.timeout_ms)) {
            return Err(at(
                &format!("stacks.{name}"),
                "latency_ms_p50",
                "needs 0 < latency_ms_p50 <= latency_ms_p99 and a positive timeout_ms".into(),
            ));
        }
        if !(0.0..=1.0).contains(&m.error_rate) {
            return Err(at(
                &format!("stacks.{name}"),
                "error_rate",
                format!("must be in [0, 1], got {}", m.error_rate),
            ));
        }
    }
    let expected = s.traffic.rate_rps * s.traffic.duration_s;
    if expected > MAX_REQUESTS {
        return Err(at(
            "traffic",
            "rate_rps",
            format!(
                "{} requests per second for {} s is {expected:.3e} requests; a run simulates at most {MAX_REQUESTS:.0e} \
                 (about four minutes and 300 MB on one core): shorten duration_s or lower the rate",
                s.traffic.rate_rps, s.traffic.duration_s
            ),
        ));
    }
    for (k, f) in s.faults.iter().enumerate() {
        validate_fault(k, f, text, file)?;
        let start = f.get_ref().start_s.max();
        if start >= s.traffic.duration_s {
            let (line, column) = line_column(text, f.span().start);
            return Err(err(
                file,
                line,
                column,
                &format!("faults[{k}].start_s"),
                format!("starts at {start} s, when the run has ended (duration_s = {})", s.traffic.duration_s),
            ));
        }
    }
    Ok(())
}

/// The highest arrival rate a scenario may ask for: beyond what one router serves.
pub const MAX_RATE_RPS: f64 = 100_000.0;
/// The most requests one run may simulate (rate x duration).
pub const MAX_REQUESTS: f64 = 5e7;

/// What a scenario asks of its migration: guardrails its answer has, segments it declares.
fn validate_against(s: &Scenario, m: &Migration, text: &str, file: &str) -> Result<(), ScenarioError> {
    let at = |section: &str, key: &str, message: String| {
        let (line, column) = key_position(text, section, key);
        err(file, line, column, &format!("{section}.{key}"), message)
    };
    let kind = m.answer().kind;
    let g = &s.guardrails;
    for (guardrail, _) in g.set() {
        if let Err((only, instead)) = guardrail.applies_to(kind) {
            let answers = match kind {
                AnswerKind::Regression => "with a number (regression)",
                AnswerKind::Binary | AnswerKind::Multiclass => "with a decision",
            };
            let key = format!("max_{guardrail}");
            let message =
                format!("the migration `{}` answers {answers}: {key} applies to {only} only; {instead}", m.name);
            return Err(at("guardrails", &key, message));
        }
    }
    if kind != AnswerKind::Regression && g.max_mean_abs_score_diff.is_some_and(|v| v > 1.0) {
        return Err(at("guardrails", "max_mean_abs_score_diff", "a probability difference is at most 1".into()));
    }
    if g.max_shadow_context_mismatch_rate.is_some() && m.shadow_context().is_empty() {
        return Err(at(
            "guardrails",
            "max_shadow_context_mismatch_rate",
            format!("the migration `{}` declares no shadow context ([shadow] context)", m.name),
        ));
    }
    let segments = m.segments()?;
    for (name, stack) in [("legacy", &s.stacks.legacy), ("new", &s.stacks.new)] {
        for seg in &stack.slow_segments {
            segments.resolve(&seg.segment).map_err(|e| at(&format!("stacks.{name}"), "slow_segments", e))?;
        }
    }
    for (k, f) in s.faults.iter().enumerate() {
        let (line, column) = line_column(text, f.span().start);
        let fail = |field: &str, message: String| err(file, line, column, &format!("faults[{k}].{field}"), message);
        if let Some(seg) = &f.get_ref().segment {
            segments.resolve(seg).map_err(|e| fail("segment", e))?;
        }
        if f.get_ref().kind == "shadow_context" && m.shadow_context().is_empty() {
            return Err(fail(
                "kind",
                format!("the migration `{}` declares no shadow context ([shadow] context)", m.name),
            ));
        }
    }
    Ok(())
}

fn validate_fault(k: usize, f: &Spanned<FaultSpec>, text: &str, file: &str) -> Result<(), ScenarioError> {
    let (line, column) = line_column(text, f.span().start);
    check_fault(f.get_ref())
        .map_err(|(field, message)| err(file, line, column, &format!("faults[{k}].{field}"), message))
}

/// Checks one fault table (a scenario's, or one injected live) against its kind's
/// definition: `Err((field, message))`.
pub fn check_fault(spec: &FaultSpec) -> Result<(), (String, String)> {
    spec.check().map(|_| ())
}
