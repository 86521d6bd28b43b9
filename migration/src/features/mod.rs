//! The two feature paths: specifications as data, compiled pipelines, the per-request
//! feature diff and streaming parity statistics.

mod diff;
pub mod parity;
mod pipeline;
mod spec;
pub mod spec_diff;
pub use spec_diff::switchable;

pub use diff::{diff_rows, FeatureDiff};
pub use parity::{FeatureParity, ParityStats, SegmentParity};
pub use pipeline::{sha256_hex, Aggregate, FeatureKind, FeatureValues, Pipeline};
pub use spec::{
    AggregateDef, Apply, Arithmetic, FeatureDef, Function, Missing, OnZero, OperandDef, Sentinels, SpecFile, Step,
    TableValue, Unknown, ZoneSpec,
};

/// A specification that cannot be used: the file, the position where known, the field.
pub type SpecError = crate::FieldError;

#[cfg(test)]
mod tests;
