//! The baseline audit (step 1 of the migration): every feature of both paths with its
//! source, transform, missing-value policy and vocabulary; the model artifact and its
//! lineage; a static diff of the two specs; and the legacy stack's latency, measured by
//! the caller (this crate has no clock).

use serde::Serialize;

use crate::features::spec_diff::{describe_missing, describe_source, describe_steps, diff_specs, SpecDifference};
use crate::features::{Pipeline, Unknown};
use crate::registry::Entry;
use cutover_models::Model;

/// The whole audit.
#[derive(Debug, Clone, Serialize)]
pub struct Audit {
    /// The legacy path's features.
    pub legacy_spec: SpecSummary,
    /// The new path's features.
    pub new_spec: SpecSummary,
    /// The model artifact.
    pub model: ModelSummary,
    /// The registry entries claimed by the two stacks, oldest first.
    pub lineage: Vec<Entry>,
    /// Every semantic difference between the two specs.
    pub spec_differences: Vec<SpecDifference>,
    /// The legacy stack's latency over generated requests.
    pub legacy_latency: Latency,
}

/// A spec's features.
#[derive(Debug, Clone, Serialize)]
pub struct SpecSummary {
    /// The spec's name.
    pub name: String,
    /// Its file.
    pub file: String,
    /// sha256 of its bytes.
    pub sha256: String,
    /// Its features in order.
    pub features: Vec<FeatureSummary>,
}

/// One feature as the audit lists it.
#[derive(Debug, Clone, Serialize)]
pub struct FeatureSummary {
    /// Name.
    pub name: String,
    /// Request field, aggregate, earlier feature, or `a / b`.
    pub source: String,
    /// The transform, compactly.
    pub transform: String,
    /// The missing-value policy.
    pub missing: String,
    /// Vocabulary size for categorical features.
    pub vocabulary_size: Option<usize>,
    /// For categorical features: what an unseen value becomes, and case sensitivity.
    pub unknown: Option<String>,
    /// Whether the model reads it.
    pub model_input: bool,
}

/// The model artifact.
#[derive(Debug, Clone, Serialize)]
pub struct ModelSummary {
    /// Its file.
    pub file: String,
    /// sha256 of its bytes.
    pub sha256: String,
    /// XGBoost objective.
    pub objective: String,
    /// Number of trees.
    pub trees: usize,
    /// Depth of the deepest tree.
    pub max_depth: u32,
    /// Number of input features.
    pub features: usize,
    /// Features that appear in a split.
    pub features_used: Vec<String>,
    /// Features no split reads.
    pub features_unused: Vec<String>,
    /// Base margin(s).
    pub base_margins: Vec<f32>,
    /// The xgboost version that saved it.
    pub xgboost_version: String,
}

/// Latency percentiles, in microseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Latency {
    /// Requests measured.
    pub requests: u64,
    /// Median.
    pub p50_us: f64,
    /// 95th percentile.
    pub p95_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// Largest.
    pub max_us: f64,
}

/// Summarizes a spec.
pub fn spec_summary(p: &Pipeline, file: &str) -> SpecSummary {
    let features = p
        .definitions()
        .iter()
        .map(|d| FeatureSummary {
            name: d.name.get_ref().clone(),
            source: describe_source(d),
            transform: describe_steps(d),
            missing: describe_missing(d.missing),
            vocabulary_size: d.vocabulary.as_ref().map(|v| v.get_ref().len()),
            unknown: d.vocabulary.as_ref().map(|_| {
                let u = match d.unknown {
                    Unknown::Nan => "NaN".to_string(),
                    Unknown::Code(c) => format!("code {c}"),
                };
                format!("{u}, {}", if d.case_sensitive { "case-sensitive" } else { "case-insensitive" })
            }),
            model_input: d.output,
        })
        .collect();
    SpecSummary { name: p.name().into(), file: file.into(), sha256: p.sha256().into(), features }
}

/// Summarizes a model artifact.
pub fn model_summary(m: &Model, file: &str, sha256: &str) -> ModelSummary {
    let used = m.forest().features_used();
    let names = m.feature_names();
    let (major, minor, patch) = m.version();
    ModelSummary {
        file: file.into(),
        sha256: sha256.into(),
        objective: m.objective().name().into(),
        trees: m.forest().num_trees(),
        max_depth: m.forest().max_depth(),
        features: names.len(),
        features_used: used.iter().map(|&i| names[i].clone()).collect(),
        features_unused: (0..names.len()).filter(|i| !used.contains(i)).map(|i| names[i].clone()).collect(),
        base_margins: m.base_margins().to_vec(),
        xgboost_version: format!("{major}.{minor}.{patch}"),
    }
}

impl Audit {
    /// Assembles the audit.
    pub fn new(
        legacy: (&Pipeline, &str),
        new: (&Pipeline, &str),
        model: ModelSummary,
        lineage: Vec<Entry>,
        legacy_latency: Latency,
    ) -> Audit {
        Audit {
            legacy_spec: spec_summary(legacy.0, legacy.1),
            new_spec: spec_summary(new.0, new.1),
            model,
            lineage,
            spec_differences: diff_specs(legacy.0, new.0),
            legacy_latency,
        }
    }

    /// The audit as Markdown.
    pub fn markdown(&self) -> String {
        let mut s = String::from("# Baseline audit\n\n");
        for (title, spec) in [("Legacy path", &self.legacy_spec), ("New path", &self.new_spec)] {
            s += &format!("## {title}: `{}`\n\n`{}`, sha256 `{}`\n\n", spec.name, spec.file, spec.sha256);
            s += "| feature | source | transform | missing | vocabulary | unseen values | model input |\n|---|---|---|---|---|---|---|\n";
            for f in &spec.features {
                s += &format!(
                    "| {} | {} | {} | {} | {} | {} | {} |\n",
                    f.name,
                    f.source,
                    f.transform,
                    f.missing,
                    f.vocabulary_size.map_or("-".into(), |v| v.to_string()),
                    f.unknown.as_deref().unwrap_or("-"),
                    if f.model_input { "yes" } else { "no" }
                );
            }
            s.push('\n');
        }
        let m = &self.model;
        s += &format!(
            "## Model artifact\n\n| | |\n|---|---|\n| file | `{}` |\n| sha256 | `{}` |\n| objective | {} |\n| trees | {} |\n| max depth | {} |\n| features | {} ({} used) |\n| unused features | {} |\n| base margin | {:?} |\n| xgboost | {} |\n\n",
            m.file,
            m.sha256,
            m.objective,
            m.trees,
            m.max_depth,
            m.features,
            m.features_used.len(),
            if m.features_unused.is_empty() { "none".to_string() } else { m.features_unused.join(", ") },
            m.base_margins,
            m.xgboost_version
        );
        s += "## Lineage\n\n";
        if self.lineage.is_empty() {
            s += "No registry entry claimed.\n\n";
        }
        for e in &self.lineage {
            s += &format!(
                "- `{}` ({:?}): artifact `{}`, spec `{}` (`{}`), training data `{}`, parent {}\n",
                e.id(),
                e.stage,
                &e.sha256[..12],
                e.feature_spec,
                &e.feature_spec_sha256[..12],
                e.training_data_sha256.as_deref().map_or("unknown", |h| &h[..12]),
                e.parent.as_deref().unwrap_or("none")
            );
        }
        s += "\n## Static diff of the two specs\n\n";
        if self.spec_differences.is_empty() {
            s += "No semantic difference: the two specs define every feature the same way.\n\n";
        } else {
            s += &format!("{} semantic difference(s), each a migration risk to resolve or to accept before traffic moves:\n\n| feature | aspect | legacy | new | effect |\n|---|---|---|---|---|\n", self.spec_differences.len());
            for d in &self.spec_differences {
                s += &format!("| {} | {} | {} | {} | {} |\n", d.feature, d.aspect, d.legacy, d.new, d.effect);
            }
            s.push('\n');
        }
        let l = &self.legacy_latency;
        s += &format!(
            "## Legacy stack latency\n\nFeatures and scoring in process, over {} generated requests: p50 {:.2} µs, p95 {:.2} µs, p99 {:.2} µs, max {:.2} µs.\n",
            l.requests, l.p50_us, l.p95_us, l.p99_us, l.max_us
        );
        s
    }
}
