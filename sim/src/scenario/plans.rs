//! Plan templates: the plan a command runs for a migration that brings none.

use std::path::Path;

use cutover_migration::answer::AnswerKind;
use cutover_migration::Migration;

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
