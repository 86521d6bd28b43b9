//! The second runtime (the gbdt crate): where it agrees with XGBoost and where it drifts.

use cutover_models::runtime::{scorer, Runtime};
use cutover_models::Output;

use crate::fixtures::{all_cases, Case};

fn numeric_cases() -> Vec<Case> {
    all_cases().into_iter().filter(|c| !c.categorical).collect()
}

fn score(case: &Case, runtime: Runtime, output: Output) -> (Vec<f32>, usize) {
    let model = case.load("json");
    let rows = case.rows(&model);
    let s = scorer(&model, runtime, &case.name).unwrap_or_else(|e| panic!("{e}"));
    let w = s.output_width(output);
    let mut out = vec![0.0; case.rows * w];
    s.score_batch(&rows, output, &mut out);
    (out, w)
}

fn rows_with_missing(case: &Case) -> Vec<bool> {
    let model = case.load("json");
    case.rows(&model).chunks(model.num_features()).map(|r| r.iter().any(|x| x.is_nan())).collect()
}

#[test]
fn gbdt_with_missing_mapped_agrees_with_xgboost_margins_bit_for_bit() {
    for case in numeric_cases() {
        let (want, _) = score(&case, Runtime::Xgboost, Output::Margin);
        let (got, _) = score(&case, Runtime::Gbdt, Output::Margin);
        for (i, (a, b)) in got.iter().zip(&want).enumerate() {
            assert_eq!(a.to_bits(), b.to_bits(), "{} {} margin {i}: gbdt {a} xgboost {b}", case.version, case.name);
        }
    }
}

#[test]
fn gbdt_single_output_predictions_agree_bit_for_bit() {
    // gbdt's sigmoid lacks XGBoost's exponent clamp, which only matters beyond |margin| 88.
    for case in numeric_cases().into_iter().filter(|c| !c.objective.starts_with("multi:")) {
        let (want, _) = score(&case, Runtime::Xgboost, Output::Prediction);
        let (got, _) = score(&case, Runtime::Gbdt, Output::Prediction);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&got), bits(&want), "{} {}", case.version, case.name);
    }
}

#[test]
fn gbdt_softmax_is_close_but_not_xgboosts() {
    // gbdt exponentiates without subtracting the maximum and sums in f32: the same
    // probabilities to within rounding, but not bit for bit. That is runtime drift too.
    let (mut compared, mut differing) = (0, 0);
    for case in numeric_cases().into_iter().filter(|c| c.objective == "multi:softprob") {
        let (want, _) = score(&case, Runtime::Xgboost, Output::Prediction);
        let (got, _) = score(&case, Runtime::Gbdt, Output::Prediction);
        for (a, b) in got.iter().zip(&want) {
            assert!((a - b).abs() <= 1e-6, "{}: {a} vs {b}", case.name);
            compared += 1;
            differing += usize::from(a.to_bits() != b.to_bits());
        }
    }
    assert!(compared > 0 && differing > 0, "{differing} of {compared} probabilities differ in bits");
}

#[test]
fn gbdt_without_the_missing_mapping_drifts_only_on_rows_with_missing_values() {
    let mut drifted = 0;
    for case in numeric_cases() {
        let (want, w) = score(&case, Runtime::Xgboost, Output::Margin);
        let (got, _) = score(&case, Runtime::GbdtUnmappedMissing, Output::Margin);
        let missing = rows_with_missing(&case);
        for (r, has_missing) in missing.iter().enumerate() {
            let same =
                got[r * w..(r + 1) * w].iter().zip(&want[r * w..(r + 1) * w]).all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same || *has_missing, "{} row {r} drifted without a missing value", case.name);
            drifted += usize::from(!same);
        }
    }
    // NaN goes right in gbdt whatever default_left says: many rows with NaNs must drift.
    assert!(drifted > 100, "only {drifted} rows drifted");
}

#[test]
fn gbdt_refuses_categorical_models() {
    let case = all_cases().into_iter().find(|c| c.categorical).unwrap();
    let model = case.load("json");
    let err = scorer(&model, Runtime::Gbdt, "cat.json").err().expect("categorical refused").to_string();
    assert_eq!(err, "cat.json: unsupported categorical splits on the gbdt runtime (it has none)");
}
