//! Several judges in one world: `run_policies` must give each judge exactly the run it
//! would have alone (same summary, history hash, timeline, events and parity), whether the
//! judges stay together (a clean rollout) or the world forks when they diverge (a fault
//! that one judge catches in seconds and another in minutes). And a sweep's lean run must
//! read the same outcome, timings and bad decisions as the full run.

use cutover_sim::scenario::{Outcome, Policy};
use cutover_sim::{run_policies, LoadedScenario, Mode};

const FAULT: &str = r#"
name = "lockstep-fault"
migration = "domain/fraud"
[traffic]
rate_rps = 40
duration_s = 1500
[rollout]
shadow_s = 120
stages_pct = [5, 50, 100]
bake_s = 120
keep_legacy_warm_s = 300
min_requests_per_stage = 100
[controller]
interval_s = 30
threshold = 3
[guardrails]
max_decision_flip_rate = 0.002
max_mean_abs_score_diff = 0.002
max_feature_mismatch_rate = 0.005
max_error_rate = 0.01
max_p99_latency_ratio = 1.5
[[faults]]
kind = "feature_skew"
start_s = "200..300"
feature = "amount_eur"
scale = 100.0
segment = "country=DE"
[[faults]]
kind = "decommission_legacy"
start_s = 1200
[expect]
outcome = "rolled_back"
"#;

const ALL: [Policy; 3] = [Policy::Sequential, Policy::Flagger, Policy::Argo];

fn loaded(text: &str, name: &str) -> LoadedScenario {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    LoadedScenario::parse(text, name, name.into(), root.to_path_buf()).unwrap()
}

fn clean() -> String {
    FAULT
        .replace(
            "[[faults]]\nkind = \"feature_skew\"\nstart_s = \"200..300\"\nfeature = \"amount_eur\"\nscale = 100.0\nsegment = \"country=DE\"\n",
            "",
        )
        .replace("outcome = \"rolled_back\"", "outcome = \"promoted\"")
        .replace("lockstep-fault", "lockstep-clean")
}

#[test]
fn judges_sharing_a_world_get_exactly_their_own_runs() {
    let clean = clean();
    for (text, name) in [(FAULT, "lockstep-fault.toml"), (clean.as_str(), "lockstep-clean.toml")] {
        let scenario = loaded(text, name);
        for seed in [3, 4] {
            let together = run_policies(&scenario, Some(seed), &ALL, Mode::Full).unwrap();
            assert_eq!(together.len(), 3);
            for (policy, shared) in ALL.iter().zip(&together) {
                let alone = cutover_sim::run(&scenario, Some(seed), Some(*policy)).unwrap();
                let what = format!("{name} seed {seed} {}", policy.name());
                assert_eq!(shared.summary, alone.summary, "{what}");
                assert!(!alone.summary.history_sha256.is_empty());
                assert_eq!(shared.timeline, alone.timeline, "{what}");
                assert_eq!(shared.events, alone.events, "{what}");
                assert_eq!(shared.parity, alone.parity, "{what}");
            }
            if name == "lockstep-fault.toml" {
                // The judges diverged, so the world forked: the sequential judge rolled back
                // before Flagger's fixed intervals could.
                let at = |k: usize| together[k].summary.rollback_completed_s.expect("rolled back");
                assert!(at(0) < at(1), "{name} seed {seed}: sequential {} flagger {}", at(0), at(1));
            } else {
                assert!(together.iter().all(|r| r.summary.outcome == Outcome::Promoted), "{name} seed {seed}");
            }
        }
    }
}

#[test]
fn a_sweeps_lean_run_reads_what_the_full_run_reads() {
    let clean = clean();
    for (text, name) in [(FAULT, "lockstep-fault.toml"), (clean.as_str(), "lockstep-clean.toml")] {
        let scenario = loaded(text, name);
        for seed in [5, 6] {
            let lean = run_policies(&scenario, Some(seed), &ALL, Mode::Sweep).unwrap();
            for (policy, lean) in ALL.iter().zip(&lean) {
                let full = cutover_sim::run(&scenario, Some(seed), Some(*policy)).unwrap().summary;
                let lean = &lean.summary;
                let what = format!("{name} seed {seed} {}", policy.name());
                assert_eq!(lean.outcome, full.outcome, "{what}");
                assert_eq!(lean.detected_at_s, full.detected_at_s, "{what}");
                assert_eq!(lean.rollback_completed_s, full.rollback_completed_s, "{what}");
                assert_eq!(lean.trigger, full.trigger, "{what}");
                assert_eq!(lean.bad_decisions_served, full.bad_decisions_served, "{what}");
                assert_eq!(lean.stages, full.stages, "{what}");
                assert!(lean.history_sha256.is_empty(), "a sweep keeps no history");
                if full.outcome != Outcome::RolledBack {
                    // Nothing settled early: the whole run, request for request.
                    assert_eq!(
                        lean,
                        &cutover_sim::core::verdict::Summary { history_sha256: String::new(), ..full },
                        "{what}"
                    );
                }
            }
        }
    }
}

#[test]
fn the_sequential_judge_rolls_back_at_the_request_that_decides_not_at_its_next_look() {
    // Its evaluations are due every 5 s (check_interval_s); the rollback comes when a
    // request's evidence brings the sum to its threshold, between two of them, and the
    // schedule before it is intact. Lockstep and lean runs agree (the tests above).
    use cutover_sim::core::controller::Decision;
    use cutover_sim::core::history::Event;
    let scenario = loaded(FAULT, "lockstep-fault.toml");
    for seed in [3, 4, 7] {
        let run = cutover_sim::run(&scenario, Some(seed), Some(Policy::Sequential)).unwrap();
        let evaluations: Vec<(f64, &Decision)> = run
            .events
            .iter()
            .filter_map(|e| match e {
                Event::Evaluation { t_s, decision, .. } => Some((*t_s, decision)),
                _ => None,
            })
            .collect();
        let k = evaluations.iter().position(|(_, d)| matches!(d, Decision::RollBack { .. }));
        let k = k.unwrap_or_else(|| panic!("seed {seed}: no rollback"));
        assert!(k > 0, "seed {seed}: rolled back at the first evaluation");
        let (rollback, before) = (evaluations[k].0, evaluations[k - 1].0);
        assert_eq!(run.summary.rollback_completed_s, Some(rollback), "seed {seed}");
        let looks = rollback / 5.0;
        assert!(looks.fract() > 1e-6, "seed {seed}: rolled back at {rollback} s, on a look");
        assert!((before - looks.floor() * 5.0).abs() < 1e-6, "seed {seed}: look before at {before} s");
        assert!(
            evaluations[..k].iter().all(|(t, _)| ((t / 5.0).round() * 5.0 - t).abs() < 1e-6),
            "seed {seed}: an evaluation off the schedule before the rollback"
        );
    }
}
