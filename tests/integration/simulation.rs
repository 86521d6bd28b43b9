//! The simulator end to end: the scenario library as CI runs it, determinism across runs
//! and `--jobs`, and bad scenarios refused with the place and the field.

use std::path::{Path, PathBuf};

use crate::predict_cli::cutover;
use crate::support::{self, in_root as run_in_root, root};

fn scratch(name: &str) -> PathBuf {
    support::scratch("sim", name)
}

fn history(dir: &Path, scenario: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join(scenario).join("history.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn the_scenario_library_holds_and_jobs_never_change_the_output() {
    let out = scratch("library");
    let junit = out.join("junit.xml");
    let (o, j) = (out.to_str().unwrap(), junit.to_str().unwrap());
    let result = run_in_root(&["suite", "scenarios", "--jobs", "2", "--out", o, "--junit", j]);
    let stdout = String::from_utf8_lossy(&result.stdout);
    assert!(result.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&result.stderr));
    let xml = std::fs::read_to_string(&junit).unwrap();
    // Both bundled migrations' libraries: scenarios/ and its folders, live/ aside.
    let files = cutover_sim::world::suite::collect(&[root().join("scenarios")]).unwrap();
    let cases = files.len();
    assert!(cases >= 36, "the library has {cases} scenarios");
    assert!(files.iter().any(|f| f.starts_with(root().join("scenarios/eta"))), "the ETA library runs in the suite");
    assert!(xml.contains(&format!("tests=\"{cases}\" failures=\"0\" errors=\"0\"")), "{xml}");

    // Every fault kind the definition holds is in the library.
    let mut kinds = std::collections::BTreeSet::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        for line in text.lines().filter(|l| l.starts_with("kind = ")) {
            kinds.insert(line.trim_start_matches("kind = ").trim_matches('"').to_string());
        }
    }
    for tag in cutover_sim::faults::Tag::ALL {
        assert!(kinds.contains(tag.name()), "no scenario with {}", tag.name());
    }

    // A request field as the new path reads it: every feature derived from it follows,
    // the others stay exact; a spec switch changes the features it redefines, no other.
    let mismatch = |scenario: &str, feature: &str| -> f64 {
        let text = std::fs::read_to_string(out.join(scenario).join("parity.json")).unwrap();
        let parity: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
        let f = parity.iter().find(|f| f["feature"] == feature).unwrap_or_else(|| panic!("{feature}"));
        f["segments"][0]["mismatch_rate"].as_f64().unwrap()
    };
    for derived in ["amount_eur", "amount_band", "amount_to_customer_avg"] {
        assert!(mismatch("field-amount-cents", derived) > 0.0, "{derived} follows the amount as read");
    }
    for untouched in ["card_present", "channel", "customer_avg_amount_eur"] {
        assert_eq!(mismatch("field-amount-cents", untouched), 0.0, "{untouched}");
    }
    assert!(mismatch("spec-hour-utc-entering-canary-5", "hour_local") > 0.0);
    assert_eq!(mismatch("spec-hour-utc-entering-canary-5", "amount_eur"), 0.0);
    // The answer layer: the same scores, other decisions.
    for scenario in ["threshold-lowered", "labels-swapped"] {
        let s: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join(scenario).join("summary.json")).unwrap()).unwrap();
        assert_eq!(s["trigger"]["guardrail"], "decision_flip_rate", "{scenario}: {}", s["trigger"]);
    }

    // The rollback gap: both early decommission attempts were refused, and legacy was
    // still there for the rollback that came after promotion.
    let h = history(&out, "clean-early-decommission");
    let attempts: Vec<_> = h.iter().filter(|e| e["event"] == "decommission").collect();
    assert_eq!(attempts.len(), 2);
    assert!(attempts.iter().all(|e| e["allowed"] == false), "{attempts:?}");
    let h = history(&out, "promoted-then-skew-early-decommission");
    let refused = h.iter().position(|e| e["event"] == "decommission" && e["allowed"] == false).expect("refused");
    let promoted = h.iter().position(|e| e["event"] == "stage" && e["phase"] == "promoted").expect("promoted");
    let rolled_back = h.iter().position(|e| e["event"] == "stage" && e["phase"] == "rolled_back").expect("rolled back");
    assert!(promoted < refused && refused < rolled_back);

    // The same scenarios on one thread give byte-identical outputs.
    let single = scratch("single");
    let subset = ["scenarios/errors-5pct.toml", "scenarios/clean-not-faster.toml", "scenarios/skew-hour-utc-jp.toml"];
    let mut args = vec!["suite"];
    args.extend(subset);
    args.extend(["--jobs", "1", "--out", single.to_str().unwrap()]);
    assert!(run_in_root(&args).status.success());
    for name in ["errors-5pct", "clean-not-faster", "skew-hour-utc-jp"] {
        for file in ["summary.json", "timeline.csv", "history.jsonl", "parity.json"] {
            let a = std::fs::read(out.join(name).join(file)).unwrap();
            let b = std::fs::read(single.join(name).join(file)).unwrap();
            assert!(a == b, "{name}/{file} differs between --jobs 2 and --jobs 1");
        }
    }
}

const SHORT: &str = r#"
name = "short"
seed = 5
migration = "domain/fraud"
[traffic]
rate_rps = 50
duration_s = 900
[rollout]
shadow_s = 120
bake_s = 120
keep_legacy_warm_s = 300
min_requests_per_stage = 100
[guardrails]
max_decision_flip_rate = 0.002
max_error_rate = 0.01
[[faults]]
kind = "errors"
start_s = "400..500"
rate = 0.1
[expect]
outcome = "rolled_back"
"#;

fn short_scenario(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("short.toml");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::write(&p, text.replace("\"domain/fraud\"", &format!("{:?}", root.join("domain/fraud")))).unwrap();
    p
}

fn summary_of(args: &[&str]) -> serde_json::Value {
    let dir =
        scratch(&format!("run-{}", args.join("-").replace(['/', '.'], "_").chars().rev().take(40).collect::<String>()));
    let mut all = args.to_vec();
    all.extend(["--out", dir.to_str().unwrap()]);
    let out = run_in_root(&all);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap()
}

#[test]
fn the_same_seed_gives_the_same_history_and_another_seed_another() {
    let dir = scratch("seeds");
    let path = short_scenario(&dir, SHORT);
    let p = path.to_str().unwrap();
    let a = summary_of(&["run", p]);
    let b = summary_of(&["run", p]);
    let c = summary_of(&["run", p, "--seed", "6"]);
    assert_eq!(a["history_sha256"], b["history_sha256"]);
    assert_eq!(a, b);
    assert_ne!(a["history_sha256"], c["history_sha256"]);
    assert_eq!(c["seed"], 6);
    // The fault's start is a range drawn from the seed.
    let start = a["fault_start_s"].as_f64().unwrap();
    assert!((400.0..500.0).contains(&start), "{start}");
    assert_eq!(a["reproduce"], format!("cutover run {p} --seed 5"));
}

#[test]
fn a_failed_expectation_exits_1_with_the_evidence_and_the_reproduction_line() {
    let dir = scratch("fail");
    let path = short_scenario(&dir, &SHORT.replace("outcome = \"rolled_back\"", "outcome = \"promoted\""));
    let out = run_in_root(&["run", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("short: outcome did not hold: rolled back at t="), "{err}");
    assert!(err.contains(&format!("reproduce with: cutover run {} --seed 5", path.display())), "{err}");
}

#[test]
fn bad_scenarios_exit_2_naming_the_place_and_the_field() {
    let dir = scratch("bad");
    let cases: &[(&str, &str, &str)] = &[
        ("max_decision_flip_rate = 0.002\nmax_error_rate = 0.01\n", "", "field `guardrails`: no rollback trigger"),
        ("kind = \"errors\"", "kind = \"gremlins\"", "field `faults[0].kind`: unknown fault kind \"gremlins\""),
        (
            "rate = 0.1",
            "rate = 0.1\nfeature = \"amount_eur\"",
            "field `faults[0].feature`: does not apply to kind \"errors\"",
        ),
        ("rate = 0.1", "", "field `faults[0].rate`: kind \"errors\" needs `rate`"),
        ("rate = 0.1", "rate = 0.1\nramp_s = -30", "field `faults[0].ramp_s`: must be a finite number of seconds"),
        (
            "kind = \"errors\"\nstart_s = \"400..500\"\nrate = 0.1",
            "kind = \"stale_features\"\nstart_s = 400\nstall_s = 600\nramp_s = 60",
            "field `faults[0].ramp_s`: does not apply to kind \"stale_features\"",
        ),
        ("start_s = \"400..500\"", "start_s = \"500..400\"", "invalid range \"500..400\""),
        ("bake_s = 120", "bake_s = 120\nstages_pct = [5, 1, 100]", "field `rollout.stages_pct`: must increase"),
        (
            "bake_s = 120",
            "bake_s = 120\nhold_e_value = 200",
            "field `rollout.hold_e_value`: must lie above release_e_value (1) and below the rollback's e-value",
        ),
        (
            "bake_s = 120",
            "bake_s = 120\nrelease_e_value = 20",
            "field `rollout.release_e_value`: must lie below the hold e-value (by default 1 / sqrt",
        ),
        ("bake_s = 120", "bake_s = 120\nmax_hold_s = 0", "field `rollout.max_hold_s`: must be a positive number"),
        (
            "max_error_rate = 0.01",
            "max_error_rate = 0.01\n[rare_below]\nerrors = 0.005",
            "field `rare_below.errors`: not a guardrail",
        ),
        (
            "max_error_rate = 0.01",
            "max_error_rate = 0.01\n[rare_below]\nerror_rate = 0.5",
            "field `rare_below.error_rate`: must lie above 0 and below",
        ),
        (
            "max_error_rate = 0.01",
            "max_error_rate = 0.01\n[rare_below]\ntimeout_rate = 0.001",
            "field `rare_below.timeout_rate`: the plan sets no limit for it",
        ),
        (
            "bake_s = 120",
            "bake_s = 120\non_max_hold = \"wait\"",
            "unknown variant `wait`, expected `roll_back` or `advance`",
        ),
        ("rate_rps = 50", "rate_rps = -1", "field `traffic.rate_rps`: must be a positive number"),
        ("seed = 5", "seed = 5\ncolour = \"red\"", "unknown field `colour`"),
        (
            "outcome = \"rolled_back\"",
            "outcome = \"rolled_back\"\n[live]\nusers = 0\nrun_time_s = 10\ntime_scale = 60",
            "field `live.users`: must be 1 to 1000",
        ),
    ];
    for (from, to, want) in cases {
        let path = short_scenario(&dir, &SHORT.replacen(from, to, 1));
        let out = cutover(&["run", path.to_str().unwrap()]);
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(2), "{want}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(want), "wanted `{want}` in: {err}");
        assert!(err.contains(&format!("{}:", path.display())), "{err}");
    }
    let out = cutover(&["run", "/nonexistent/scenario.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr).unwrap().contains("/nonexistent/scenario.toml: cannot read"));
}

#[test]
fn sharded_sweeps_merge_into_exactly_the_whole_sweep() {
    let dir = scratch("sweep");
    let a = short_scenario(&dir, SHORT);
    let clean = dir.join("clean.toml");
    std::fs::write(
        &clean,
        SHORT
            .replace("[[faults]]\nkind = \"errors\"\nstart_s = \"400..500\"\nrate = 0.1\n", "")
            .replace("outcome = \"rolled_back\"", "outcome = \"promoted\"")
            .replace("name = \"short\"", "name = \"short-clean\"")
            .replace("\"domain/fraud\"", &format!("{:?}", root().join("domain/fraud"))),
    )
    .unwrap();
    let (a, clean) = (a.to_str().unwrap().to_string(), clean.to_str().unwrap().to_string());
    let sweep = |extra: &[&str], out: &Path, index: Option<&str>| {
        let mut args = vec![
            "suite",
            a.as_str(),
            clean.as_str(),
            "--seeds",
            "5",
            "--seed-base",
            "11",
            "--policy",
            "sequential",
            "--jobs",
            "2",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_cutover"));
        command.args(&args).current_dir(crate::support::root()).env_remove("JOB_COMPLETION_INDEX");
        if let Some(i) = index {
            command.env("JOB_COMPLETION_INDEX", i);
        }
        let o = command.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    let whole = dir.join("whole");
    sweep(&[], &whole, None);
    // Shard 0 by its number, shard 1 as a Kubernetes Indexed Job's pod gives it.
    let shards: Vec<PathBuf> = (0..2).map(|i| dir.join(format!("shard{i}"))).collect();
    sweep(&["--shard", "0/2"], &shards[0], None);
    sweep(&["--shard", "auto/2"], &shards[1], Some("1"));
    let merged = dir.join("merged");
    let o = run_in_root(&[
        "merge",
        shards[0].to_str().unwrap(),
        shards[1].to_str().unwrap(),
        "--out",
        merged.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let w = std::fs::read(whole.join("sweep.json")).unwrap();
    assert_eq!(w, std::fs::read(merged.join("sweep.json")).unwrap(), "merged shards differ from the whole sweep");
    let v: serde_json::Value = serde_json::from_slice(&w).unwrap();
    assert_eq!(v["seeds"], 5);
    assert_eq!(v["seed_base"], 11);
    let short = v["scenarios"].as_array().unwrap().iter().find(|s| s["scenario"] == "short").unwrap();
    assert_eq!(short["detection_rate"], 1.0);
    assert!(short["false_rollback_rate"].is_null());
    assert!(short["time_to_rollback_s"]["p50"].as_f64().unwrap() <= 10.0);
    let clean = v["scenarios"].as_array().unwrap().iter().find(|s| s["scenario"] == "short-clean").unwrap();
    assert_eq!(clean["false_rollback_rate"], 0.0);
    assert!(clean["detection_rate"].is_null());

    // A shard twice is refused; a bad shard is bad input.
    let o = run_in_root(&[
        "merge",
        shards[0].to_str().unwrap(),
        shards[0].to_str().unwrap(),
        "--out",
        dir.join("x").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8(o.stderr).unwrap().contains("a seed appears in two shards"));
    let o =
        run_in_root(&["suite", a.as_str(), "--seeds", "4", "--shard", "4/4", "--out", dir.join("y").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8(o.stderr).unwrap().contains("`4/4`: shard 4 is not below 4"));
}

/// (Issue 28: after a rollback the failed stack still received every request.) In the
/// simulator as in the router, the new stack is out of the path once rolled back: the
/// windows judged after it hold no paired request, while users go on being served.
#[test]
fn after_a_rollback_the_new_stack_gets_no_call() {
    let dir = scratch("after-rollback");
    let out = dir.join("out");
    let o = run_in_root(&["run", "scenarios/errors-5pct.toml", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let events: Vec<serde_json::Value> = std::fs::read_to_string(out.join("history.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let rollback = events
        .iter()
        .position(|e| e["event"] == "stage" && e["phase"] == "rolled_back")
        .expect("the errors were rolled back");
    let after: Vec<&serde_json::Value> = events[rollback + 1..].iter().filter(|e| e["event"] == "evaluation").collect();
    assert!(after.len() > 10, "{} evaluations after the rollback", after.len());
    for e in &after {
        assert_eq!(e["window"]["requests"], 0, "a paired request after the rollback: {e}");
    }
    let before = events[..rollback].iter().rfind(|e| e["event"] == "evaluation").unwrap();
    assert!(before["window"]["requests"].as_u64().unwrap() > 0, "{before}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let rolled_back_at = summary["rollback_completed_s"].as_f64().unwrap();
    let served = summary["requests_total"].as_f64().unwrap();
    // Users are served to the end: about rate x duration requests in all.
    assert!(served > 200.0 * (rolled_back_at + 600.0), "{served} requests served");
}

/// Every guardrail of the definition is a key of the plan's `[guardrails]` that reaches
/// it, and is in the contract's example and the sequential judge's table: the list comes
/// from the definition, never from a copy.
#[test]
fn every_guardrail_is_a_plan_key_and_documented() {
    use cutover_sim::core::Guardrail;
    use cutover_sim::scenario::Guardrails;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let contracts = std::fs::read_to_string(root.join("docs/contracts.md")).unwrap();
    let sequential = std::fs::read_to_string(root.join("docs/sequential.md")).unwrap();
    for (i, g) in Guardrail::ALL.into_iter().enumerate() {
        let key = format!("max_{}", g.name());
        let limit = 0.25 + i as f64;
        let parsed: Guardrails = toml::from_str(&format!("{key} = {limit}")).unwrap_or_else(|e| panic!("{key}: {e}"));
        assert_eq!(parsed.set(), vec![(g, limit)], "{key} reaches another guardrail");
        assert!(contracts.contains(&format!("\n{key} = ")), "docs/contracts.md's plan example lacks {key}");
        assert!(sequential.contains(&format!("`{key}`")), "docs/sequential.md's table lacks {key}");
    }
    // And the plan has no key the definition lacks.
    let all = Guardrail::ALL.map(|g| format!("max_{} = 1.0", g.name())).join("\n");
    let parsed: Guardrails = toml::from_str(&all).unwrap();
    assert_eq!(parsed.set().len(), Guardrail::ALL.len());
    assert!(toml::from_str::<Guardrails>("max_latency = 1.0").is_err());
    // timeline.csv's guardrail columns are documented as the definitions give them.
    let columns: Vec<String> = Guardrail::timeline_columns().iter().map(|(c, _)| format!("`{c}`")).collect();
    let flat = contracts.replace('\n', " ");
    let mut at = flat.find("## timeline.csv").expect("a timeline.csv section");
    for c in &columns {
        at += flat[at..]
            .find(c.as_str())
            .unwrap_or_else(|| panic!("docs/contracts.md's timeline.csv lacks {c} in order"));
    }
}

#[test]
fn the_docs_fault_table_and_kind_list_are_the_definition() {
    use cutover_sim::faults::{docs_table, Tag};
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let simulator = std::fs::read_to_string(root.join("docs/simulator.md")).unwrap();
    assert!(
        simulator.contains(&docs_table()),
        "docs/simulator.md's fault table is not the definition's; it should read:\n{}",
        docs_table()
    );
    let contracts = std::fs::read_to_string(root.join("docs/contracts.md")).unwrap();
    let listed = Tag::ALL.map(|t| format!("`{}`", t.name())).join(", ");
    assert!(
        contracts.replace('\n', " ").contains(&format!("Fault kinds: {listed}")),
        "docs/contracts.md's list of fault kinds is not the definition's: {listed}"
    );
}

#[test]
fn a_fault_timed_by_a_stage_starts_with_that_stage_or_is_reported_as_not_started() {
    // Entering the 5 % stage: the skew starts with the stage's first request, and the SLO
    // checks count from there.
    let s = summary_of(&["run", "scenarios/skew-cents-entering-canary-5.toml"]);
    let entered =
        s["stages"].as_array().unwrap().iter().find(|x| x["weight_pct"] == 5.0).unwrap()["entered_s"].as_f64().unwrap();
    let start = s["fault_start_s"].as_f64().unwrap();
    assert!(start >= entered && start < entered + 1.0, "stage entered at {entered} s, fault at {start} s");
    assert!(s["detected_at_s"].as_f64().unwrap() >= start);
    // One minute after the promotion, whenever that came: refused, legacy stays warm.
    let dir = scratch("moments");
    run_in_root(&["run", "scenarios/clean-decommission-after-promotion.toml", "--out", dir.to_str().unwrap()]);
    let h = history(&dir, "");
    let promoted =
        h.iter().find(|e| e["event"] == "stage" && e["phase"] == "promoted").unwrap()["t_s"].as_f64().unwrap();
    let attempt = h.iter().find(|e| e["event"] == "decommission").unwrap();
    assert_eq!(attempt["allowed"], false);
    assert!(
        (attempt["t_s"].as_f64().unwrap() - promoted - 60.0).abs() < 1.0,
        "{attempt} after promotion at {promoted}"
    );

    // A stage that never comes: errors roll the rollout back at 1 %, so the skew timed by
    // the 25 % stage never starts, and that is a failed check of its own.
    let text = std::fs::read_to_string(root().join("scenarios/skew-cents-entering-canary-5.toml"))
        .unwrap()
        .replace("\"../domain/fraud\"", &format!("{:?}", root().join("domain/fraud")))
        .replace("start_at = \"canary:5\"", "start_at = \"canary:25\"")
        .replace("[expect]", "[[faults]]\nkind = \"errors\"\nstart_s = 700\nrate = 0.5\n\n[expect]");
    let path = dir.join("never.toml");
    std::fs::write(&path, text).unwrap();
    let out = run_in_root(&["run", path.to_str().unwrap(), "--out", dir.join("never").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("never/summary.json")).unwrap()).unwrap();
    let started = s["expectations"].as_array().unwrap().iter().find(|e| e["name"] == "faults_started").unwrap();
    assert_eq!(started["passed"], false);
    assert_eq!(started["detail"], "faults[0] (feature_skew) did not start: its moment, canary:25, never came");
    // The errors' start is the fault start the SLOs read, not the skew's.
    assert!((s["fault_start_s"].as_f64().unwrap() - 700.0).abs() < 1e-9, "{}", s["fault_start_s"]);

    // Moments are checked before any run, one line each.
    for (from, to, want) in [
        (
            "start_at = \"canary:5\"",
            "start_at = \"canary:7\"",
            "field `faults[0].start_at`: canary:7: the plan has no 7 % stage",
        ),
        (
            "start_at = \"canary:5\"",
            "start_at = \"midnight\"",
            "field `faults[0].start_at`: `midnight` is not a moment",
        ),
        ("start_at = \"canary:5\"", "end_s = 60", "field `faults[0].start_s`: a fault needs a start"),
        (
            "start_at = \"canary:5\"",
            "start_s = 100\nend_at = \"promoted\"\nend_s = 0",
            "field `faults[0].end_at`: a fault that starts at a time",
        ),
    ] {
        let text = std::fs::read_to_string(root().join("scenarios/skew-cents-entering-canary-5.toml"))
            .unwrap()
            .replace("\"../domain/fraud\"", &format!("{:?}", root().join("domain/fraud")))
            .replace(from, to);
        let path = dir.join("bad.toml");
        std::fs::write(&path, text).unwrap();
        let out = run_in_root(&["run", path.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{to}: {err}");
        assert!(err.contains(want) && err.contains("bad.toml:"), "{to}: {err}");
    }
}
