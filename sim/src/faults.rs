//! Faults: plain data resolved for one run, and the interception points of the request
//! path where they act (raw request, features, store, model, latency, outcome).

use std::path::PathBuf;

use cutover_models::segments::Segments;

pub use crate::core::SECOND;
use crate::scenario::{FaultSpec, LoadedScenario, ScenarioError};
use crate::streams::unit;

/// What a fault does.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// Feature value times `scale` plus `offset` on the new path (units, scaling).
    FeatureSkew {
        /// Model feature index.
        feature: usize,
        /// Multiplier.
        scale: f64,
        /// Added after.
        offset: f64,
    },
    /// Missing values of a feature filled with a constant on the new path.
    MissingValuePolicy {
        /// Model feature index.
        feature: usize,
        /// The fill.
        fill: f64,
    },
    /// Category codes shifted on the new path (a reordered vocabulary).
    CategoricalEncoding {
        /// Model feature index.
        feature: usize,
        /// Shift.
        shift: f64,
    },
    /// The online store's materialization stalls.
    StaleFeatures {
        /// For how long.
        stall_us: u64,
    },
    /// Extra new-stack latency.
    Latency {
        /// Added to every call.
        add_ms: f64,
        /// Added to a share of calls.
        tail_ms: f64,
        /// That share.
        tail_fraction: f64,
    },
    /// New-stack calls fail.
    Errors {
        /// Share of calls.
        rate: f64,
    },
    /// New-stack calls time out.
    Timeouts {
        /// Share of calls.
        rate: f64,
    },
    /// Shadow calls lack the production context (the migration's `[shadow] context`).
    ShadowContext,
    /// The new stack serves another artifact.
    ModelArtifact {
        /// Its file.
        artifact: PathBuf,
    },
    /// The new stack scores through the gbdt crate without the missing-value mapping.
    RuntimeDrift,
    /// An attempt to decommission legacy.
    DecommissionLegacy,
    /// The new stack is down (killed, or its host gone): every call fails at once.
    StackDown,
}

impl Kind {
    /// The kind's name in scenario files.
    pub fn name(&self) -> &'static str {
        match self {
            Kind::FeatureSkew { .. } => "feature_skew",
            Kind::MissingValuePolicy { .. } => "missing_value_policy",
            Kind::CategoricalEncoding { .. } => "categorical_encoding",
            Kind::StaleFeatures { .. } => "stale_features",
            Kind::Latency { .. } => "latency",
            Kind::Errors { .. } => "errors",
            Kind::Timeouts { .. } => "timeouts",
            Kind::ShadowContext => "shadow_context",
            Kind::ModelArtifact { .. } => "model_artifact",
            Kind::RuntimeDrift => "runtime_drift",
            Kind::DecommissionLegacy => "decommission_legacy",
            Kind::StackDown => "stack_down",
        }
    }
}

impl Kind {
    /// Changes a new-path model row as the fault does (feature faults only); whether it is
    /// a feature fault.
    pub fn apply_to_row(&self, row: &mut [f32]) -> bool {
        match *self {
            Kind::FeatureSkew { feature, scale, offset } => {
                row[feature] = (f64::from(row[feature]) * scale + offset) as f32;
            }
            Kind::MissingValuePolicy { feature, fill } => {
                if row[feature].is_nan() {
                    row[feature] = fill as f32;
                }
            }
            Kind::CategoricalEncoding { feature, shift } => {
                if !row[feature].is_nan() {
                    row[feature] = (f64::from(row[feature]) + shift) as f32;
                }
            }
            _ => return false,
        }
        true
    }
}

/// A fault resolved for one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// Its position in the scenario.
    pub index: usize,
    /// What it does.
    pub kind: Kind,
    /// Start, virtual microseconds.
    pub start_us: u64,
    /// End (exclusive), `u64::MAX` if never.
    pub end_us: u64,
    /// Segment it is limited to, as `dimension=value`.
    pub segment: Option<String>,
    /// That segment as (dimension, segment index).
    pub segment_at: Option<(usize, usize)>,
    /// Share of matching requests affected.
    pub fraction: f64,
    /// The share grows linearly from 0 to `fraction` over this long after the start, µs.
    pub ramp_us: u64,
}

impl Fault {
    /// Whether it is active at `t_us`.
    pub fn active(&self, t_us: u64) -> bool {
        self.start_us <= t_us && t_us < self.end_us
    }

    /// Whether it affects request number `index`, whose segments are `segs`, `since_us`
    /// after the fault began (segment, fraction and ramp): stateless, so it never shifts
    /// any random stream.
    pub fn hits(&self, seed: u64, index: u64, segs: &[usize], since_us: u64) -> bool {
        if let Some((dim, seg)) = self.segment_at {
            if segs[dim + 1] != seg {
                return false;
            }
        }
        let share =
            if since_us < self.ramp_us { self.fraction * since_us as f64 / self.ramp_us as f64 } else { self.fraction };
        share >= 1.0 || unit(seed, index, 0xFA17 + self.index as u64) < share
    }
}

/// Resolves the scenario's faults (ranges drawn from `params`), naming model features by index.
pub fn resolve(
    loaded: &LoadedScenario,
    features: &[String],
    params: &mut rand_chacha::ChaCha8Rng,
) -> Result<Vec<Fault>, ScenarioError> {
    let file = loaded.path.display().to_string();
    let segments = loaded.migration.segments()?;
    let mut out = Vec::new();
    for (k, spanned) in loaded.scenario.faults.iter().enumerate() {
        let fault = resolve_one(spanned.get_ref(), k, features, segments, params, &|p| loaded.resolve(p)).map_err(
            |(field, message)| {
                let (line, column) = cutover_models::line_column(&loaded.text, spanned.span().start);
                ScenarioError { file: file.clone(), line, column, field: format!("faults[{k}].{field}"), message }
            },
        )?;
        out.push(fault);
    }
    Ok(out)
}

/// Resolves one fault table, the `index`-th: `Err((field, message))`. `path` resolves an
/// artifact's path.
pub fn resolve_one(
    f: &FaultSpec,
    index: usize,
    features: &[String],
    segments: &Segments,
    params: &mut rand_chacha::ChaCha8Rng,
    path: &dyn Fn(&str) -> PathBuf,
) -> Result<Fault, (String, String)> {
    let bad = |field: &str, message: String| (field.to_string(), message);
    let feature = || -> Result<usize, (String, String)> {
        let name = f.feature.as_deref().unwrap_or_default();
        features.iter().position(|n| n == name).ok_or_else(|| {
            bad("feature", format!("`{name}` is not a model feature (features: {})", features.join(", ")))
        })
    };
    let start_s = f.start_s.resolve(params);
    let end_s = f.end_s.map(|e| e.resolve(params));
    let mut p = |v: Option<crate::param::Param>, default: f64| v.map_or(default, |v| v.resolve(params));
    let fraction = p(f.fraction, 1.0);
    let ramp_us = (p(f.ramp_s, 0.0) * SECOND as f64) as u64;
    let kind = match f.kind.as_str() {
        "feature_skew" => Kind::FeatureSkew { feature: feature()?, scale: p(f.scale, 1.0), offset: p(f.offset, 0.0) },
        "missing_value_policy" => Kind::MissingValuePolicy { feature: feature()?, fill: p(f.fill, 0.0) },
        "categorical_encoding" => Kind::CategoricalEncoding { feature: feature()?, shift: p(f.shift, 1.0) },
        "stale_features" => Kind::StaleFeatures { stall_us: (p(f.stall_s, 0.0) * SECOND as f64) as u64 },
        "latency" => Kind::Latency {
            add_ms: p(f.add_ms, 0.0),
            tail_ms: p(f.tail_ms, 0.0),
            tail_fraction: p(f.tail_fraction, 0.01),
        },
        "errors" => Kind::Errors { rate: p(f.rate, 0.0) },
        "timeouts" => Kind::Timeouts { rate: p(f.rate, 0.0) },
        "shadow_context" => Kind::ShadowContext,
        "model_artifact" => {
            let file = path(f.artifact.as_deref().unwrap_or_default());
            if !file.exists() {
                return Err(bad("artifact", format!("{}: no such file", file.display())));
            }
            Kind::ModelArtifact { artifact: file }
        }
        "runtime_drift" => Kind::RuntimeDrift,
        "decommission_legacy" => Kind::DecommissionLegacy,
        "stack_down" => Kind::StackDown,
        other => return Err(bad("kind", format!("unknown fault kind \"{other}\""))),
    };
    let end_us = end_s.map_or(u64::MAX, |e| (e * SECOND as f64) as u64);
    let segment_at = match &f.segment {
        Some(s) => Some(segments.resolve(s).map_err(|m| bad("segment", m))?),
        None => None,
    };
    Ok(Fault {
        index,
        kind,
        start_us: (start_s * SECOND as f64) as u64,
        end_us,
        segment: f.segment.clone(),
        segment_at,
        fraction,
        ramp_us,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(fraction: f64, ramp_s: u64) -> Fault {
        Fault {
            index: 0,
            kind: Kind::Errors { rate: 1.0 },
            start_us: 0,
            end_us: u64::MAX,
            segment: None,
            segment_at: None,
            fraction,
            ramp_us: ramp_s * SECOND,
        }
    }

    /// The share of 20 000 requests a fault touches `since_s` after it began.
    fn share(f: &Fault, since_s: u64) -> f64 {
        (0..20_000u64).filter(|&i| f.hits(7, i, &[0], since_s * SECOND)).count() as f64 / 20_000.0
    }

    #[test]
    fn a_ramp_grows_the_share_linearly_up_to_the_fraction() {
        let f = errors(0.8, 100);
        assert_eq!(share(&f, 0), 0.0);
        for (since, want) in [(25, 0.2), (50, 0.4), (75, 0.6), (100, 0.8), (1000, 0.8)] {
            let got = share(&f, since);
            assert!((got - want).abs() < 0.015, "{since} s in: {got}, wanted {want}");
        }
        // The requests touched early stay touched later (one draw per request, no reshuffle).
        let early: Vec<u64> = (0..2000).filter(|&i| f.hits(7, i, &[0], 30 * SECOND)).collect();
        assert!(early.iter().all(|&i| f.hits(7, i, &[0], 60 * SECOND)));
        // Without a ramp the share is the fraction from the first moment.
        assert!((share(&errors(0.8, 0), 0) - 0.8).abs() < 0.015);
    }
}
