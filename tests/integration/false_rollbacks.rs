//! The sequential judge's guarantee, measured: a clean migration over many seeds is
//! rolled back at most `false_rollback_budget` of the time (with a binomial allowance).
//! `CUTOVER_LONG_TESTS=1` runs 500 seeds instead of 40.

use cutover_sim::scenario::{Outcome, Policy};
use cutover_sim::LoadedScenario;

const CLEAN: &str = r#"
name = "clean-short"
migration = "domain/fraud"
[traffic]
rate_rps = 50
duration_s = 1200
[rollout]
shadow_s = 120
stages_pct = [5, 50, 100]
bake_s = 120
keep_legacy_warm_s = 300
min_requests_per_stage = 500
[controller]
policy = "sequential"
false_rollback_budget = 0.01
[guardrails]
max_decision_flip_rate = 0.002
max_mean_abs_score_diff = 0.002
max_feature_mismatch_rate = 0.005
max_error_rate = 0.001
max_timeout_rate = 0.01
max_p99_latency_ratio = 1.5
[expect]
outcome = "promoted"
"#;

#[test]
fn a_clean_migration_is_rolled_back_within_the_budget() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let loaded =
        LoadedScenario::parse(CLEAN, "clean-short.toml", "clean-short.toml".into(), root.to_path_buf()).unwrap();
    // The new stack errs at 0.02 % against a limit of 0.1 %: clean, but not trivially so.
    let long = std::env::var("CUTOVER_LONG_TESTS").is_ok_and(|v| v == "1");
    let seeds: u64 = if long { 500 } else { 40 };
    // Paths in the scenario resolve against its base folder, the repository root.
    let mut rolled_back = 0;
    let mut promoted = 0;
    for seed in 1..=seeds {
        let run = cutover_sim::run(&loaded, Some(seed), Some(Policy::Sequential)).unwrap();
        match run.summary.outcome {
            Outcome::RolledBack => rolled_back += 1,
            Outcome::Promoted => promoted += 1,
            Outcome::InProgress => {}
        }
    }
    eprintln!("clean-short, sequential: {rolled_back} rolled back, {promoted} promoted, of {seeds} seeds");
    // Budget 1 %: expected at most 0.4 in 40 runs (5 in 500); allow a binomial tail.
    let allowed = if long { 12 } else { 2 };
    assert!(rolled_back <= allowed, "{rolled_back} false rollbacks in {seeds} clean runs");
    assert!(promoted >= seeds * 9 / 10, "only {promoted} of {seeds} clean runs promoted");
}
