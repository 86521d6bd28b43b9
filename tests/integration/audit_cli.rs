//! `cutover audit`: the baseline audit as Markdown and JSON.

use crate::feature_paths::domain;
use crate::predict_cli::cutover;

fn scratch(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("cutover-audit-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn the_bundled_migration_audits_clean_with_lineage_and_latency() {
    let dir = scratch("clean");
    let out = cutover(&["audit", "--migration", "domain/fraud", "--out", dir.to_str().unwrap(), "--requests", "3000"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let audit: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("audit.json")).unwrap()).unwrap();
    // 14 model features and the intermediate amount in euros the aggregates fold.
    assert_eq!(audit["legacy_spec"]["features"].as_array().unwrap().len(), 15);
    assert_eq!(audit["model"]["trees"], 150);
    assert_eq!(audit["model"]["objective"], "binary:logistic");
    assert_eq!(audit["lineage"].as_array().unwrap().len(), 2);
    assert_eq!(audit["spec_differences"].as_array().unwrap().len(), 0);
    let device = &audit["legacy_spec"]["features"][8];
    assert_eq!(device["name"], "device_os");
    assert_eq!(device["vocabulary_size"], 6);
    assert_eq!(device["unknown"], "NaN, case-insensitive");
    let l = &audit["legacy_latency"];
    let (p50, p95, p99) = (l["p50_us"].as_f64().unwrap(), l["p95_us"].as_f64().unwrap(), l["p99_us"].as_f64().unwrap());
    assert!(p50 > 0.0 && p50 <= p95 && p95 <= p99, "{l}");
    let md = std::fs::read_to_string(dir.join("audit.md")).unwrap();
    for heading in [
        "## Legacy path",
        "## New path",
        "## Model artifact",
        "## Lineage",
        "## Static diff",
        "## Legacy stack latency",
    ] {
        assert!(md.contains(heading), "no {heading}");
    }
}

#[test]
fn a_changed_new_spec_is_flagged_before_traffic_and_breaks_lineage() {
    let dir = scratch("changed");
    let text = std::fs::read_to_string(domain("new.toml")).unwrap();
    let local = "zone = { field = \"country\", table = \"country_zones\", default = \"UTC\" }";
    let changed =
        text.replacen(local, "zone = \"UTC\"", 1).replacen("case_sensitive = false", "case_sensitive = true", 1);
    let spec = dir.join("new.toml");
    std::fs::write(&spec, changed).unwrap();
    let out =
        cutover(&["audit", "--migration", "domain/fraud", "--new-spec", spec.to_str().unwrap(), "--requests", "100"]);
    assert_eq!(out.status.code(), Some(1), "the registry pins the old spec");
    assert!(String::from_utf8(out.stderr).unwrap().contains("fraud-xgb/2: feature spec sha256 differs"));

    let out = cutover(&[
        "audit",
        "--migration",
        "domain/fraud",
        "--new-spec",
        spec.to_str().unwrap(),
        "--no-lineage",
        "--requests",
        "100",
    ]);
    assert!(out.status.success());
    let md = String::from_utf8(out.stdout).unwrap();
    assert!(md.contains("2 semantic difference(s)"), "{md}");
    assert!(
        md.contains(
            "| hour_local | steps | hour_of_day(zone of country via country_zones, else UTC) | hour_of_day(UTC) | time computed in UTC instead of zone of country via country_zones, else UTC |"
        ),
        "{md}"
    );
    assert!(md.contains("| device_os | case_sensitive | false | true |"), "{md}");
}

#[test]
fn a_scenario_names_the_stacks_to_audit() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["audit", "--scenario", "scenarios/clean-baseline.toml", "--requests", "200"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let md = String::from_utf8(out.stdout).unwrap();
    assert!(md.contains("`fraud-xgb/1` (Production)") && md.contains("`fraud-xgb/2` (Staging)"), "{md}");
    assert!(md.contains("registry/../legacy.toml") || md.contains("legacy.toml"), "{md}");
}
