//! The reference fixtures written by real xgboost (scripts/fixtures/generate.sh).

use std::path::{Path, PathBuf};

use cutover_models::rows::RowReader;
use cutover_models::Model;

pub const VERSIONS: [&str; 3] = ["1.7.6", "2.1.4", "3.2.0"];

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/xgboost")
}

pub fn dir(version: &str) -> PathBuf {
    root().join(version)
}

/// The cases of one version's manifest: (name, objective, num_class, categorical).
pub fn cases(version: &str) -> Vec<Case> {
    let text = std::fs::read_to_string(dir(version).join("manifest.json")).expect("manifest");
    let manifest: serde_json::Value = serde_json::from_str(&text).expect("manifest JSON");
    assert!(manifest["xgboost_version"].as_str().unwrap().starts_with(&version[..3]), "manifest of {version}");
    manifest["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| Case {
            version: version.to_string(),
            name: c["name"].as_str().unwrap().to_string(),
            objective: c["objective"].as_str().unwrap().to_string(),
            categorical: c["categorical"].as_bool().unwrap(),
            rows: c["rows"].as_u64().unwrap() as usize,
            base_score: c["base_score"].as_str().unwrap().to_string(),
        })
        .collect()
}

#[derive(Debug, Clone)]
pub struct Case {
    pub version: String,
    pub name: String,
    pub objective: String,
    pub categorical: bool,
    pub rows: usize,
    pub base_score: String,
}

impl Case {
    pub fn model_path(&self, ext: &str) -> PathBuf {
        dir(&self.version).join(format!("{}.{ext}", self.name))
    }

    pub fn rows_path(&self) -> PathBuf {
        dir(&self.version).join(format!("{}.rows.csv", self.name))
    }

    pub fn load(&self, ext: &str) -> Model {
        let path = self.model_path(ext);
        cutover_models::xgboost::load_file(&path).unwrap_or_else(|e| panic!("{e}"))
    }

    /// All rows in the model's feature order, row-major.
    pub fn rows(&self, model: &Model) -> Vec<f32> {
        let mut reader = RowReader::open(&self.rows_path(), model.feature_names()).unwrap();
        let mut rows = Vec::new();
        let n = reader.read_batch(&mut rows, usize::MAX).unwrap();
        assert_eq!(n, self.rows, "{}: row count", self.name);
        rows
    }

    /// xgboost's outputs: (margins, predictions), each row-major.
    pub fn expected(&self) -> (Vec<f32>, Vec<f32>) {
        let path = dir(&self.version).join(format!("{}.expected.csv", self.name));
        let mut r = csv::Reader::from_path(&path).unwrap();
        let header = r.headers().unwrap().clone();
        let (mut margins, mut preds) = (Vec::new(), Vec::new());
        for rec in r.records() {
            let rec = rec.unwrap();
            for (h, v) in header.iter().zip(rec.iter()) {
                // Written as the exact decimal of the f32: the f64 parse is exact, the cast lossless.
                let x = v.parse::<f64>().unwrap();
                assert_eq!(x as f32 as f64, x, "{}: {v} is not an f32", path.display());
                if h.starts_with("margin") {
                    margins.push(x as f32)
                } else {
                    preds.push(x as f32)
                }
            }
        }
        (margins, preds)
    }
}

pub fn all_cases() -> Vec<Case> {
    VERSIONS.iter().flat_map(|v| cases(v)).collect()
}

/// First index where two f32 slices differ in bits, with both values.
pub fn first_bit_difference(got: &[f32], want: &[f32]) -> Option<(usize, f32, f32)> {
    assert_eq!(got.len(), want.len(), "lengths differ");
    got.iter().zip(want).enumerate().find(|(_, (a, b))| a.to_bits() != b.to_bits()).map(|(i, (a, b))| (i, *a, *b))
}
