//! `cutover registry`: entries pin artifact and spec by sha256; a wrong one is named.

use std::path::PathBuf;

use crate::feature_paths::domain;
use crate::predict_cli::cutover;

fn s(p: &std::path::Path) -> String {
    p.display().to_string()
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cutover-registry-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The artifact hash the bundled registry pins (the sha256 of domain/fraud/model.ubj).
fn pinned_model() -> String {
    cutover_migration::features::sha256_hex(&std::fs::read(domain("model.ubj")).unwrap())
}

#[test]
fn the_bundled_registry_verifies_and_records_the_migration_lineage() {
    let reg = s(&domain("registry"));
    for id in ["fraud-xgb/1", "fraud-xgb/2"] {
        let out = cutover(&["registry", "--migration", "domain/fraud", "--registry", &reg, "verify", id]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let out = cutover(&["registry", "--migration", "domain/fraud", "--registry", &reg, "show", "fraud-xgb/2"]);
    let entry: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(entry["parent"], "fraud-xgb/1");
    assert_eq!(entry["stage"], "staging");
    assert_eq!(entry["feature_spec"], "../new.toml");
    let list =
        String::from_utf8(cutover(&["registry", "--migration", "domain/fraud", "--registry", &reg, "list"]).stdout)
            .unwrap();
    assert!(list.contains("fraud-xgb/1      production") && list.contains("fraud-xgb/2      staging"), "{list}");
}

#[test]
fn a_wrong_artifact_or_spec_is_named_with_both_hashes() {
    let reg = s(&domain("registry"));
    let other_model = domain("model_v0.ubj");
    let out = cutover(&[
        "registry",
        "--migration",
        "domain/fraud",
        "--registry",
        &reg,
        "verify",
        "fraud-xgb/1",
        "--model",
        &s(&other_model),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let e = String::from_utf8(out.stderr).unwrap();
    assert!(
        e.contains(&format!("fraud-xgb/1: model artifact sha256 differs: the registry pins {}", pinned_model())),
        "{e}"
    );
    let out = cutover(&[
        "registry",
        "--migration",
        "domain/fraud",
        "--registry",
        &reg,
        "verify",
        "fraud-xgb/1",
        "--spec",
        &s(&domain("new.toml")),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8(out.stderr).unwrap().contains("feature spec sha256 differs"));
}

#[test]
fn add_validates_the_model_against_its_spec_and_numbers_versions() {
    let dir = scratch("add");
    let reg = s(&dir);
    let (model, legacy) = (s(&domain("model.ubj")), s(&domain("legacy.toml")));
    let add = |model: &str, extra: &[&str]| {
        let mut args = vec![
            "registry",
            "--migration",
            "domain/fraud",
            "--registry",
            &reg,
            "add",
            "--name",
            "m",
            "--model",
            model,
            "--spec",
            &legacy,
        ];
        args.extend_from_slice(extra);
        cutover(&args)
    };
    let out = add(&model, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = add(&model, &["--parent", "m/1"]);
    assert!(String::from_utf8(out.stdout).unwrap().starts_with("registered m/2"));

    // A spec that does not feed this model is refused before anything is written.
    let wrong_model = s(&crate::fixtures::dir("3.2.0").join("binary_logistic.ubj"));
    let out = add(&wrong_model, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr).unwrap().contains("is not a feature of the model"));
    let out = add(&model, &["--parent", "m/9"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr).unwrap().contains("no entry `m/9` (known: m/1, m/2)"));
    assert!(!dir.join("m/3.json").exists());
}

#[test]
fn bad_manifests_and_ids_exit_2_with_the_place() {
    let dir = scratch("bad");
    std::fs::create_dir_all(dir.join("m")).unwrap();
    std::fs::write(dir.join("m/1.json"), "{\n  \"name\": \"m\",\n  \"version\": \"one\"\n}\n").unwrap();
    let out = cutover(&["registry", "--migration", "domain/fraud", "--registry", &s(&dir), "show", "m/1"]);
    assert_eq!(out.status.code(), Some(2));
    let e = String::from_utf8(out.stderr).unwrap();
    assert!(e.contains("m/1.json:3:") && e.contains("invalid type"), "{e}");
    let out = cutover(&["registry", "--migration", "domain/fraud", "--registry", &s(&dir), "show", "m"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr).unwrap().contains("`m` is not a registry id"));
}

#[test]
fn a_stack_refuses_to_start_on_a_wrong_artifact_and_says_which_hash() {
    use cutover_migration::registry::Registry;
    use cutover_migration::stack::ScoringStack;
    let schema = crate::feature_paths::schema();
    let registry = Registry::open(&domain("registry"));
    let legacy = ScoringStack::start_entry(&registry, "fraud-xgb/1", schema).unwrap_or_else(|e| panic!("{e}"));
    let new = ScoringStack::start_entry(&registry, "fraud-xgb/2", schema).unwrap_or_else(|e| panic!("{e}"));
    // Same artifact, equivalent specs: the same score for a request.
    let source = crate::feature_paths::fraud().source(4, 200.0).unwrap();
    let r = crate::feature_paths::request(&source, 17);
    let (mut lv, mut nv) = (legacy.pipeline().values(), new.pipeline().values());
    legacy.pipeline().compute(&r.values, &mut lv);
    new.pipeline().compute(&r.values, &mut nv);
    assert_eq!(legacy.model().predict_one(&lv.row).to_bits(), new.model().predict_one(&nv.row).to_bits());

    let wrong = domain("model_v0.ubj");
    let e = ScoringStack::start(&registry, "fraud-xgb/2", &wrong, &domain("new.toml"), schema)
        .expect_err("wrong artifact")
        .to_string();
    let want =
        format!("refusing to start: fraud-xgb/2: model artifact sha256 differs: the registry pins {}", pinned_model());
    assert!(e.starts_with(&want), "{e}");
    let e = ScoringStack::start(&registry, "fraud-xgb/1", &domain("model.ubj"), &domain("new.toml"), schema)
        .expect_err("wrong spec")
        .to_string();
    assert!(e.contains("fraud-xgb/1: feature spec sha256 differs"), "{e}");
}

#[test]
fn a_manifest_with_a_malformed_hash_is_refused_not_a_crash() {
    let dir = scratch("hash");
    std::fs::create_dir_all(dir.join("m")).unwrap();
    let good = std::fs::read_to_string(domain("registry/fraud-xgb/1.json")).unwrap();
    let pinned = pinned_model();
    std::fs::write(dir.join("m/1.json"), good.replace(&pinned, "abc").replace("fraud-xgb", "m")).unwrap();
    for cmd in ["list", "show"] {
        let mut args = vec!["registry", "--migration", "domain/fraud", "--registry", dir.to_str().unwrap(), cmd];
        if cmd == "show" {
            args.push("m/1");
        }
        let out = cutover(&args);
        assert_eq!(out.status.code(), Some(2), "{cmd}");
        let e = String::from_utf8(out.stderr).unwrap();
        assert!(e.contains("field `sha256`: \"abc\" is not a lower-case hex sha256"), "{e}");
    }
}
