//! A loaded XGBoost model: the forest, its objective and its feature schema.

use crate::forest::Forest;
use crate::objective::Objective;

/// XGBoost's feature types (`feature_types` in the model file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureType {
    /// `q`: a quantitative (numeric) feature.
    Quantitative,
    /// `c`: a categorical feature given as an integer code.
    Categorical,
    /// `int`: an integer feature.
    Integer,
    /// `i`: an indicator (0/1) feature.
    Indicator,
    /// `float`: a floating-point feature.
    Float,
}

impl FeatureType {
    /// Parses XGBoost's code for a feature type.
    pub fn from_code(code: &str) -> Option<FeatureType> {
        Some(match code {
            "q" => FeatureType::Quantitative,
            "c" => FeatureType::Categorical,
            "int" => FeatureType::Integer,
            "i" => FeatureType::Indicator,
            "float" => FeatureType::Float,
            _ => return None,
        })
    }
}

/// Which output of the model to compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// The raw margin, one per output group.
    Margin,
    /// The transformed prediction (probability, value, or class index).
    Prediction,
}

/// An XGBoost gbtree model, ready to score rows exactly as XGBoost does.
#[derive(Debug, Clone)]
pub struct Model {
    pub(crate) forest: Forest,
    pub(crate) objective: Objective,
    pub(crate) base_margins: Vec<f32>,
    pub(crate) feature_names: Vec<String>,
    pub(crate) feature_types: Vec<FeatureType>,
    pub(crate) version: (u32, u32, u32),
    pub(crate) importance: Vec<Importance>,
    pub(crate) categories: Vec<Option<Vec<String>>>,
}

/// How much a model relies on one feature, over every split on it (xgboost's
/// `total_gain`, `total_cover` and `weight` importance types).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Importance {
    /// Splits on the feature.
    pub splits: u64,
    /// Their loss reductions, summed.
    pub gain: f64,
    /// Their hessian sums (the rows they route, weighted), summed.
    pub cover: f64,
}

impl Model {
    /// Per feature, in order: how much the model relies on it.
    pub fn importance(&self) -> &[Importance] {
        &self.importance
    }

    /// Per feature, the category names xgboost saved with a categorical feature (3.x), in
    /// the order of their codes.
    pub fn category_names(&self, feature: usize) -> Option<&[String]> {
        self.categories.get(feature)?.as_deref()
    }

    /// The flattened forest.
    pub fn forest(&self) -> &Forest {
        &self.forest
    }

    /// The learning objective.
    pub fn objective(&self) -> Objective {
        self.objective
    }

    /// The margin every row starts from, one per output group.
    pub fn base_margins(&self) -> &[f32] {
        &self.base_margins
    }

    /// Feature names in column order (`f0..fN-1` when the file has none).
    pub fn feature_names(&self) -> &[String] {
        &self.feature_names
    }

    /// Feature types in column order.
    pub fn feature_types(&self) -> &[FeatureType] {
        &self.feature_types
    }

    /// Number of features a row must have.
    pub fn num_features(&self) -> usize {
        self.feature_names.len()
    }

    /// The xgboost version that saved the model.
    pub fn version(&self) -> (u32, u32, u32) {
        self.version
    }

    /// Values per row for the given output.
    pub fn output_width(&self, output: Output) -> usize {
        match output {
            Output::Margin => self.objective.num_groups(),
            Output::Prediction => self.objective.num_outputs(),
        }
    }

    /// Column names for the given output: `prediction`/`margin`, or `_k` per class.
    pub fn output_columns(&self, output: Output) -> Vec<String> {
        let stem = match output {
            Output::Margin => "margin",
            Output::Prediction => "prediction",
        };
        match self.output_width(output) {
            1 => vec![stem.to_string()],
            k => (0..k).map(|i| format!("{stem}_{i}")).collect(),
        }
    }

    /// Margins of one row (`row.len() == num_features()`, NaN missing) into `out`
    /// (`out.len() == num_groups`). Allocation-free.
    pub fn margins(&self, row: &[f32], out: &mut [f32]) {
        out.copy_from_slice(&self.base_margins);
        self.forest.accumulate(row, out);
    }

    /// Scores one row into `out` (`out.len() == output_width(output)`).
    ///
    /// `scratch` holds the margins and needs `num_groups` values; it is only used for
    /// predictions of multi-class models. Allocation-free.
    pub fn score_row(&self, row: &[f32], output: Output, scratch: &mut [f32], out: &mut [f32]) {
        let groups = self.objective.num_groups();
        if output == Output::Margin {
            return self.margins(row, out);
        }
        if groups == 1 {
            let mut m = [0.0f32];
            self.margins(row, &mut m);
            return self.objective.transform(&m, out);
        }
        let scratch = &mut scratch[..groups];
        self.margins(row, scratch);
        self.objective.transform(scratch, out);
    }

    /// The transformed prediction of one row of a single-output model (the class index
    /// for `multi:softmax`); see [`Model::score_row`] for `multi:softprob`.
    /// Allocation-free up to 64 classes.
    pub fn predict_one(&self, row: &[f32]) -> f32 {
        assert_eq!(self.objective.num_outputs(), 1, "predict_one needs a single-output model");
        let mut out = [0.0f32];
        let groups = self.objective.num_groups();
        if groups <= 64 {
            let mut scratch = [0.0f32; 64];
            self.score_row(row, Output::Prediction, &mut scratch[..groups], &mut out);
        } else {
            self.score_row(row, Output::Prediction, &mut vec![0.0; groups], &mut out);
        }
        out[0]
    }

    /// Scores a row-major batch (`rows.len() == n * num_features()`) into `out`
    /// (`out.len() == n * output_width(output)`). Allocation-free up to 64 classes.
    pub fn score_batch(&self, rows: &[f32], output: Output, out: &mut [f32]) {
        let groups = self.objective.num_groups();
        let out_width = self.output_width(output);
        let n = out.len() / out_width;
        assert_eq!(out.len(), n * out_width, "output buffer size");
        assert_eq!(rows.len(), n * self.num_features(), "rows and output disagree on the row count");
        if output == Output::Margin || groups == 1 {
            // Margins in place, then (single output) the transform in place.
            for m in out.chunks_exact_mut(groups) {
                m.copy_from_slice(&self.base_margins);
            }
            self.forest.accumulate_rows(rows, out);
            if output == Output::Prediction {
                for v in out.iter_mut() {
                    let margin = [*v];
                    self.objective.transform(&margin, std::slice::from_mut(v));
                }
            }
            return;
        }
        let width = self.num_features();
        let (mut small, mut large) = ([0.0f32; 64], Vec::new());
        let scratch = if groups <= small.len() {
            &mut small[..groups]
        } else {
            large.resize(groups, 0.0);
            &mut large[..]
        };
        for (i, o) in out.chunks_exact_mut(out_width).enumerate() {
            self.score_row(&rows[i * width..(i + 1) * width], output, scratch, o);
        }
    }
}
