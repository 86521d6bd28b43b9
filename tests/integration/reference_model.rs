//! The bundled fraud model: trained by real xgboost on legacy-path features, scored by the
//! exact evaluator bit for bit, and consistent with both feature specs.

use cutover_models::features::Pipeline;
use cutover_models::rows::RowReader;
use cutover_models::{Model, Objective};

use crate::feature_paths::domain;

pub fn reference_model() -> Model {
    cutover_models::xgboost::load_file(&domain("model.ubj")).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn both_specs_feed_the_model_its_features_in_order() {
    let model = reference_model();
    assert_eq!(model.objective(), Objective::BinaryLogistic);
    for spec in ["legacy.toml", "new.toml"] {
        Pipeline::from_file(&domain(spec), crate::feature_paths::schema(), Some(model.feature_names()))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    assert!(!model.forest().has_categorical(), "codes are plain numbers, as the legacy service fed them");
    // So the second runtime can score it, and with NaN mapped agrees bit for bit.
    let gbdt = cutover_models::runtime::scorer(&model, cutover_models::Runtime::Gbdt, "model.ubj").unwrap();
    let rows = vec![f32::NAN; model.num_features()];
    let (mut a, mut b) = ([0.0f32], [0.0f32]);
    gbdt.score_batch(&rows, cutover_models::Output::Prediction, &mut a);
    model.score_batch(&rows, cutover_models::Output::Prediction, &mut b);
    assert_eq!(a[0].to_bits(), b[0].to_bits());
}

#[test]
fn the_exact_evaluator_reproduces_xgboost_on_the_holdout_rows() {
    let model = reference_model();
    let mut reader = RowReader::open(&domain("model_check.csv"), model.feature_names()).unwrap();
    assert_eq!(reader.ignored_columns(), ["xgboost_prediction"]);
    let mut rows = Vec::new();
    let n = reader.read_batch(&mut rows, usize::MAX).unwrap();
    assert_eq!(n, 300);
    let mut want = csv::Reader::from_path(domain("model_check.csv")).unwrap();
    let col = want.headers().unwrap().iter().position(|h| h == "xgboost_prediction").unwrap();
    for (i, rec) in want.records().enumerate() {
        let expected = rec.unwrap()[col].parse::<f64>().unwrap() as f32;
        let got = model.predict_one(&rows[i * model.num_features()..(i + 1) * model.num_features()]);
        assert_eq!(got.to_bits(), expected.to_bits(), "row {i}: {got} vs xgboost {expected}");
    }
}

#[test]
fn the_training_record_names_its_data_and_parameters() {
    let text = std::fs::read_to_string(domain("training.json")).unwrap();
    let t: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(t["xgboost_version"].as_str().unwrap().starts_with("3."));
    assert_eq!(t["data"]["sha256"].as_str().unwrap().len(), 64);
    assert!(t["data"]["command"].as_str().unwrap().starts_with("cutover dataset"));
    assert!(t["holdout"]["auc"].as_f64().unwrap() > 0.9, "the model learned the hidden truth");
    assert_eq!(t["params"]["objective"], "binary:logistic");
}

#[test]
fn the_training_data_is_reproduced_byte_for_byte_from_its_command() {
    // Lineage and determinism at once: the recorded command regenerates the exact bytes
    // whose sha256 the training record holds, on any machine.
    let text = std::fs::read_to_string(domain("training.json")).unwrap();
    let t: serde_json::Value = serde_json::from_str(&text).unwrap();
    let command: Vec<String> =
        t["data"]["command"].as_str().unwrap().split_whitespace().skip(1).map(String::from).collect();
    let out = std::env::temp_dir().join(format!("cutover-dataset-{}.csv", std::process::id()));
    let args: Vec<String> =
        command.iter().map(|a| if a.ends_with(".csv") { out.display().to_string() } else { a.clone() }).collect();
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(&args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .unwrap();
    assert!(status.success());
    let bytes = std::fs::read(&out).unwrap();
    let _ = std::fs::remove_file(&out);
    assert_eq!(cutover_models::features::sha256_hex(&bytes), t["data"]["sha256"].as_str().unwrap());
}
