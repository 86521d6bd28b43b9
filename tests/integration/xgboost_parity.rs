//! Bit-exact parity with real xgboost on every committed fixture: every objective, JSON
//! and UBJSON, models saved by xgboost 1.7, 2.1 and 3.2.

use std::collections::BTreeSet;

use cutover_models::{Model, Output};

use crate::fixtures::{all_cases, first_bit_difference, Case};

fn check(case: &Case, model: &Model, ext: &str) {
    let rows = case.rows(model);
    let (want_margin, want_pred) = case.expected();
    for (output, want) in [(Output::Margin, &want_margin), (Output::Prediction, &want_pred)] {
        let mut got = vec![0.0f32; case.rows * model.output_width(output)];
        model.score_batch(&rows, output, &mut got);
        if let Some((i, a, b)) = first_bit_difference(&got, want) {
            let w = model.output_width(output);
            panic!(
                "xgboost {} {}.{ext} {output:?}: row {} output {}: got {a:e} ({:#010x}), xgboost {b:e} ({:#010x})",
                case.version,
                case.name,
                i / w,
                i % w,
                a.to_bits(),
                b.to_bits()
            );
        }
    }
}

#[test]
fn every_fixture_scores_bit_for_bit_as_xgboost() {
    let cases = all_cases();
    assert!(cases.len() >= 24, "expected 8 cases per version, found {}", cases.len());
    for case in &cases {
        for ext in ["json", "ubj"] {
            check(case, &case.load(ext), ext);
        }
    }
}

#[test]
fn fixtures_cover_what_the_issue_asks() {
    let cases = all_cases();
    let objectives: BTreeSet<_> = cases.iter().map(|c| c.objective.as_str()).collect();
    for o in
        ["binary:logistic", "binary:logitraw", "reg:logistic", "reg:squarederror", "multi:softprob", "multi:softmax"]
    {
        assert!(objectives.contains(o), "no fixture for {o}");
    }
    let majors: BTreeSet<_> = cases.iter().map(|c| c.version.split('.').next().unwrap().to_string()).collect();
    assert!(majors.len() >= 2, "fixtures from one xgboost major only: {majors:?}");
    assert!(cases.iter().any(|c| c.categorical), "no categorical fixture");
    // Base scores in both encodings: a scalar string (<= 3.0) and a vector string (3.1 on).
    assert!(cases.iter().any(|c| !c.base_score.starts_with('[')), "no scalar base_score");
    assert!(
        cases.iter().any(|c| c.base_score.starts_with('[') && c.base_score.contains(',')),
        "no per-class vector base_score"
    );
}

#[test]
fn json_and_ubjson_load_to_the_same_forest() {
    for case in all_cases() {
        let (j, u) = (case.load("json"), case.load("ubj"));
        assert_eq!(j.base_margins(), u.base_margins(), "{} {}", case.version, case.name);
        assert_eq!(j.feature_names(), u.feature_names());
        assert_eq!(j.objective(), u.objective());
        assert_eq!(j.forest().num_trees(), u.forest().num_trees());
    }
}

#[test]
fn the_rows_probe_thresholds_missing_values_and_bad_category_codes() {
    // The fixture rows are only a proof if they reach the edge cases; check that they do.
    let case = all_cases().into_iter().find(|c| c.name == "binary_logistic" && c.version == "3.2.0").unwrap();
    let model = case.load("json");
    let rows = case.rows(&model);
    let w = model.num_features();
    assert!(rows.chunks(w).any(|r| r.iter().all(|x| x.is_nan())), "no all-missing row");
    let text = std::fs::read_to_string(case.rows_path()).unwrap();
    // A value one f64 ulp below a threshold rounds onto it as f32: it must appear as a
    // distinct f64 whose f32 equals another row's value.
    let mut cells = BTreeSet::new();
    for line in text.lines().skip(1) {
        for c in line.split(',').filter(|c| !c.is_empty()) {
            cells.insert(c.to_string());
        }
    }
    let collide = cells.iter().filter(|c| {
        let x: f64 = c.parse().unwrap();
        x as f32 as f64 != x && cells.contains(&format!("{:?}", x as f32 as f64))
    });
    assert!(collide.count() >= 10, "too few one-ulp-below-threshold probes");

    let cat = all_cases().into_iter().find(|c| c.name == "categorical_partition" && c.version == "3.2.0").unwrap();
    let text = std::fs::read_to_string(cat.rows_path()).unwrap();
    for code in ["16777216.0", "-0.5", "-1.0", "1000.0", "2.7"] {
        assert!(text.contains(code), "no probe with category code {code}");
    }
}
