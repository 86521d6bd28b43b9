//! The per-request feature diff: what the model would see on each path, feature by feature.

use super::FeatureKind;

/// How one feature differs between the legacy and the new path for one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FeatureDiff {
    /// The same value (bit for bit as the model sees it, or missing on both sides).
    Equal,
    /// Both numeric and present, differing by this much.
    Numeric {
        /// `|new - legacy|`.
        abs: f64,
    },
    /// Missing on the legacy path only.
    MissingLegacy,
    /// Missing on the new path only.
    MissingNew,
    /// A categorical feature with a different code on each side.
    Category {
        /// The legacy code.
        legacy: u32,
        /// The new code.
        new: u32,
    },
}

impl FeatureDiff {
    /// Classifies one feature's pair of values.
    pub fn of(kind: FeatureKind, legacy: f32, new: f32) -> FeatureDiff {
        match (legacy.is_nan(), new.is_nan()) {
            (true, true) => FeatureDiff::Equal,
            (true, false) => FeatureDiff::MissingLegacy,
            (false, true) => FeatureDiff::MissingNew,
            (false, false) if legacy.to_bits() == new.to_bits() || legacy == new => FeatureDiff::Equal,
            (false, false) => match kind {
                FeatureKind::Categorical { .. } => FeatureDiff::Category { legacy: legacy as u32, new: new as u32 },
                FeatureKind::Numeric => FeatureDiff::Numeric { abs: (f64::from(new) - f64::from(legacy)).abs() },
            },
        }
    }

    /// Whether the two sides differ.
    pub fn is_mismatch(self) -> bool {
        self != FeatureDiff::Equal
    }
}

/// Classifies every feature of a pair of model rows into `out`.
pub fn diff_rows(kinds: &[FeatureKind], legacy: &[f32], new: &[f32], out: &mut [FeatureDiff]) {
    for (((o, k), l), n) in out.iter_mut().zip(kinds).zip(legacy).zip(new) {
        *o = FeatureDiff::of(*k, *l, *n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_each_kind_of_difference() {
        let num = FeatureKind::Numeric;
        let cat = FeatureKind::Categorical { cardinality: 4 };
        assert_eq!(FeatureDiff::of(num, 1.0, 1.0), FeatureDiff::Equal);
        assert_eq!(FeatureDiff::of(num, f32::NAN, f32::NAN), FeatureDiff::Equal);
        assert_eq!(FeatureDiff::of(num, 0.0, -0.0), FeatureDiff::Equal);
        assert_eq!(FeatureDiff::of(num, 1.0, 100.0), FeatureDiff::Numeric { abs: 99.0 });
        assert_eq!(FeatureDiff::of(num, f32::NAN, 0.0), FeatureDiff::MissingLegacy);
        assert_eq!(FeatureDiff::of(cat, 2.0, f32::NAN), FeatureDiff::MissingNew);
        assert_eq!(FeatureDiff::of(cat, 2.0, 0.0), FeatureDiff::Category { legacy: 2, new: 0 });
    }
}
