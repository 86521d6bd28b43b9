//! The two feature paths: specifications as data, compiled pipelines, the per-request
//! feature diff and streaming parity statistics.

mod diff;
pub mod parity;
mod pipeline;
mod spec;
pub mod spec_diff;

pub use diff::{diff_rows, FeatureDiff};
pub use parity::{FeatureParity, ParityStats, SegmentParity, Segments};
pub use pipeline::{sha256_hex, Aggregates, FeatureKind, FeatureValues, Pipeline, AGGREGATES};
pub use spec::{FeatureDef, Missing, SpecFile, Step, Unknown};

/// A specification that cannot be used: the file, the position where known, the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", self.render())]
pub struct SpecError {
    /// The spec file.
    pub file: String,
    /// 1-based line, 0 when unknown.
    pub line: usize,
    /// 1-based column, 0 when unknown.
    pub column: usize,
    /// Dotted path of the field, for example `feature[3].vocabulary`; empty when unknown.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl SpecError {
    fn render(&self) -> String {
        let at = if self.line > 0 { format!("{}:{}:{}", self.file, self.line, self.column) } else { self.file.clone() };
        if self.field.is_empty() {
            format!("{at}: {}", self.message)
        } else {
            format!("{at}: field `{}`: {}", self.field, self.message)
        }
    }
}
