//! One scoring interface over two runtimes: the exact XGBoost evaluator, and the `gbdt`
//! crate fed a conversion of the same forest. New serving platforms often run a converted
//! model on another GBDT runtime; where the two disagree is real, silent drift.
//!
//! Known behaviour of gbdt 0.1.3: it treats `f32::MIN` as the missing value and routes
//! NaN right whatever `default_left` says; it has no categorical splits; it does not know
//! the name `reg:squarederror` (it falls back to squared error and prints a line on
//! stdout), so the conversion passes the equivalent `reg:linear`.

use std::fmt::Write as _;

use gbdt::decision_tree::{Data, VALUE_TYPE_UNKNOWN};
use gbdt::gradient_boost::GBDT;

use crate::error::ModelError;
use crate::forest::ViewNode;
use crate::model::{Model, Output};
use crate::objective::Objective;

/// Which runtime scores the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// cutover's exact evaluator: bit for bit what XGBoost computes.
    Xgboost,
    /// The `gbdt` crate, with NaN mapped to its missing-value sentinel (the faithful conversion).
    Gbdt,
    /// The `gbdt` crate with NaN passed through as it is: missing values go right.
    GbdtUnmappedMissing,
}

impl Runtime {
    /// Parses `xgboost`, `gbdt` or `gbdt-unmapped-missing`.
    pub fn from_name(name: &str) -> Option<Runtime> {
        Some(match name {
            "xgboost" => Runtime::Xgboost,
            "gbdt" => Runtime::Gbdt,
            "gbdt-unmapped-missing" => Runtime::GbdtUnmappedMissing,
            _ => return None,
        })
    }
}

/// Scores rows of a model, whatever runs it.
pub trait Scorer: Send + Sync {
    /// Number of features a row has.
    fn num_features(&self) -> usize;
    /// Values per row for the given output.
    fn output_width(&self, output: Output) -> usize;
    /// Scores a row-major batch into `out` (see [`Model::score_batch`]).
    fn score_batch(&self, rows: &[f32], output: Output, out: &mut [f32]);
}

impl Scorer for Model {
    fn num_features(&self) -> usize {
        Model::num_features(self)
    }

    fn output_width(&self, output: Output) -> usize {
        Model::output_width(self, output)
    }

    fn score_batch(&self, rows: &[f32], output: Output, out: &mut [f32]) {
        Model::score_batch(self, rows, output, out)
    }
}

/// Builds a scorer for `model` on the chosen runtime.
pub fn scorer(model: &Model, runtime: Runtime, origin: &str) -> Result<Box<dyn Scorer>, ModelError> {
    match runtime {
        Runtime::Xgboost => Ok(Box::new(model.clone())),
        Runtime::Gbdt => Ok(Box::new(GbdtScorer::convert(model, true, origin)?)),
        Runtime::GbdtUnmappedMissing => Ok(Box::new(GbdtScorer::convert(model, false, origin)?)),
    }
}

/// A model converted for the `gbdt` crate.
pub struct GbdtScorer {
    objective: Objective,
    num_features: usize,
    map_missing: bool,
    /// The whole forest under its objective, for predictions.
    full: GBDT,
    /// One untransformed model per output group, for margins.
    per_group: Vec<GBDT>,
}

impl GbdtScorer {
    /// Converts `model` through xgboost's JSON dump format, as `gbdt` reads it.
    pub fn convert(model: &Model, map_missing: bool, origin: &str) -> Result<GbdtScorer, ModelError> {
        let forest = model.forest();
        if forest.has_categorical() {
            return Err(ModelError::unsupported(origin, "categorical splits on the gbdt runtime (it has none)"));
        }
        let objective = model.objective();
        let groups = objective.num_groups();
        let trees_of =
            |g: Option<u32>| (0..forest.num_trees()).filter(move |&t| g.is_none_or(|g| forest.group_of(t) == g));
        for g in 0..groups as u32 {
            if trees_of(Some(g)).next().is_none() {
                return Err(ModelError::unsupported(
                    origin,
                    format!("output group {g} without trees on the gbdt runtime"),
                ));
            }
        }
        let gbdt_name = match objective {
            Objective::RegSquaredError => "reg:linear",
            o => o.name(),
        };
        // The multi-class path of gbdt adds one bias to every class; the per-group models
        // carry the exact per-class base margins for margins.
        let full = load(&dump(model, trees_of(None), model.base_margins()[0]), gbdt_name, origin)?;
        let per_group = (0..groups as u32)
            .map(|g| load(&dump(model, trees_of(Some(g)), model.base_margins()[g as usize]), "reg:linear", origin))
            .collect::<Result<_, _>>()?;
        Ok(GbdtScorer { objective, num_features: model.num_features(), map_missing, full, per_group })
    }

    fn data(&self, rows: &[f32]) -> Vec<Data> {
        let width = self.num_features.max(1);
        rows.chunks(width)
            .map(|r| {
                let features =
                    r.iter().map(|&x| if self.map_missing && x.is_nan() { VALUE_TYPE_UNKNOWN } else { x }).collect();
                Data::new_test_data(features, None)
            })
            .collect()
    }
}

impl Scorer for GbdtScorer {
    fn num_features(&self) -> usize {
        self.num_features
    }

    fn output_width(&self, output: Output) -> usize {
        match output {
            Output::Margin => self.objective.num_groups(),
            Output::Prediction => self.objective.num_outputs(),
        }
    }

    fn score_batch(&self, rows: &[f32], output: Output, out: &mut [f32]) {
        let data = self.data(rows);
        let width = self.output_width(output);
        assert_eq!(out.len(), data.len() * width, "output buffer size");
        match (output, self.objective) {
            (Output::Margin, _) => {
                for (g, m) in self.per_group.iter().enumerate() {
                    for (i, v) in m.predict(&data).into_iter().enumerate() {
                        out[i * width + g] = v;
                    }
                }
            }
            (Output::Prediction, Objective::MultiSoftprob(k)) => {
                let (_, probs) = self.full.predict_multiclass(&data, k);
                for (i, p) in probs.iter().enumerate() {
                    out[i * k..(i + 1) * k].copy_from_slice(p);
                }
            }
            (Output::Prediction, Objective::MultiSoftmax(k)) => {
                let (labels, _) = self.full.predict_multiclass(&data, k);
                for (o, l) in out.iter_mut().zip(labels) {
                    *o = l as f32;
                }
            }
            (Output::Prediction, _) => out.copy_from_slice(&self.full.predict(&data)),
        }
    }
}

fn load(dump: &str, objective: &str, origin: &str) -> Result<GBDT, ModelError> {
    GBDT::from_xgboost_reader(std::io::Cursor::new(dump), objective)
        .map_err(|e| ModelError::unsupported(origin, format!("conversion for the gbdt runtime: {e}")))
}

/// XGBoost's JSON tree dump (`get_dump(dump_format="json")`) with the base margin on the
/// first line, the input `GBDT::from_xgboost_reader` takes. Floats are written as the
/// shortest f64 that equals the f32, so the reader's f64 -> f32 cast gives the f32 back.
fn dump(model: &Model, trees: impl Iterator<Item = usize>, bias: f32) -> String {
    let forest = model.forest();
    let mut out = format!("{bias}\n[");
    for (k, t) in trees.enumerate() {
        if k > 0 {
            out.push(',');
        }
        let view = forest.tree_nodes(t);
        dump_node(&view, view.root(), view.root(), &mut out);
    }
    out.push(']');
    out
}

fn dump_node(view: &crate::forest::TreeView<'_>, root: u32, at: u32, out: &mut String) {
    let id = at - root;
    match view.node(at) {
        ViewNode::Leaf(v) => {
            let _ = write!(out, "{{\"nodeid\":{id},\"leaf\":{}}}", json_number(v));
        }
        ViewNode::Numeric { feature, threshold, default_left, left, right } => {
            let (yes, no) = (left - root, right - root);
            let missing = if default_left { yes } else { no };
            let threshold = json_number(threshold);
            let _ = write!(
                out,
                "{{\"nodeid\":{id},\"split\":{feature},\"split_condition\":{threshold},\"yes\":{yes},\"no\":{no},\"missing\":{missing},\"children\":["
            );
            dump_node(view, root, left, out);
            out.push(',');
            dump_node(view, root, right, out);
            out.push_str("]}");
        }
        ViewNode::Categorical => unreachable!("categorical forests are refused before dumping"),
    }
}

/// An f32 as a JSON number that reads back as the same f32 (infinities as the f64
/// extremes, which round to them; NaN, which JSON cannot hold, as 0).
fn json_number(x: f32) -> f64 {
    match x {
        f32::INFINITY => f64::MAX,
        f32::NEG_INFINITY => -f64::MAX,
        x if x.is_nan() => 0.0,
        x => f64::from(x),
    }
}
