//! Streaming parity statistics per feature and per segment, in bounded memory.
//!
//! For every (feature, segment) cell: the mismatch rate, the mean and maximum absolute
//! difference, and the distance between the two paths' value distributions over fixed
//! bins: PSI and Jensen-Shannon distance for numeric features (bins from the deciles of a
//! reference sample), L-infinity for categorical ones (one bin per code), the measures
//! TFDV and Evidently use. Memory is features x segments x bins, whatever the traffic.

use serde::Serialize;

use super::diff::FeatureDiff;
use super::FeatureKind;

/// Smoothing for empty bins in PSI and Jensen-Shannon, as Evidently does.
const EPS: f64 = 1e-4;

#[derive(Debug, Clone, Default)]
struct Cell {
    n: u64,
    mismatches: u64,
    numeric_diffs: u64,
    sum_abs: f64,
    max_abs: f64,
    /// Where this cell's bin counts start in `ParityStats::counts`: legacy bins, then new.
    offset: usize,
    bins: usize,
}

/// Parity statistics of every (feature, segment) cell.
#[derive(Debug, Clone)]
pub struct ParityStats {
    names: Vec<String>,
    kinds: Vec<FeatureKind>,
    edges: Vec<Vec<f64>>,
    segments: Vec<String>,
    cells: Vec<Cell>,
    /// Every cell's bin counts, flat: fewer pointers to chase per request.
    counts: Vec<u64>,
}

impl ParityStats {
    /// Statistics for these features; `edges[f]` are the bin edges of numeric feature `f`
    /// (see [`decile_edges`]), ignored for categorical ones; `segments` are the segment names.
    pub fn new(names: Vec<String>, kinds: Vec<FeatureKind>, edges: Vec<Vec<f64>>, segments: Vec<String>) -> Self {
        assert_eq!(names.len(), kinds.len());
        assert_eq!(names.len(), edges.len());
        let mut cells = Vec::with_capacity(names.len() * segments.len());
        let mut offset = 0;
        for (k, e) in kinds.iter().zip(&edges) {
            // One bin per code or per interval, plus one for missing (and out-of-vocabulary codes).
            let bins = match k {
                FeatureKind::Categorical { cardinality } => *cardinality as usize + 1,
                FeatureKind::Numeric => e.len() + 2,
            };
            for _ in 0..segments.len() {
                cells.push(Cell { offset, bins, ..Cell::default() });
                offset += 2 * bins;
            }
        }
        ParityStats { names, kinds, edges, segments, cells, counts: vec![0; offset] }
    }

    fn bin(&self, f: usize, x: f32) -> usize {
        match self.kinds[f] {
            FeatureKind::Categorical { cardinality } => {
                if x.is_nan() || x < 0.0 || x >= cardinality as f32 {
                    cardinality as usize
                } else {
                    x as usize
                }
            }
            FeatureKind::Numeric => {
                let e = &self.edges[f];
                if x.is_nan() {
                    e.len() + 1
                } else {
                    e.partition_point(|b| *b <= f64::from(x))
                }
            }
        }
    }

    /// Adds one request's pair of rows and their diff; `segs` are the request's segments.
    pub fn observe(&mut self, segs: &[usize], legacy: &[f32], new: &[f32], diffs: &[FeatureDiff]) {
        let per_feature = self.segments.len();
        for f in 0..self.names.len() {
            let bl = self.bin(f, legacy[f]);
            let bn = if legacy[f].to_bits() == new[f].to_bits() { bl } else { self.bin(f, new[f]) };
            for &s in segs {
                let c = &mut self.cells[f * per_feature + s];
                c.n += 1;
                self.counts[c.offset + bl] += 1;
                self.counts[c.offset + c.bins + bn] += 1;
                if diffs[f].is_mismatch() {
                    c.mismatches += 1;
                }
                if let FeatureDiff::Numeric { abs } = diffs[f] {
                    c.numeric_diffs += 1;
                    c.sum_abs += abs;
                    c.max_abs = c.max_abs.max(abs);
                } else if diffs[f] == FeatureDiff::Equal && !legacy[f].is_nan() {
                    c.numeric_diffs += 1;
                }
            }
        }
    }

    /// The statistics, per feature and per segment that saw traffic.
    pub fn report(&self) -> Vec<FeatureParity> {
        let per_feature = self.segments.len();
        (0..self.names.len())
            .map(|f| FeatureParity {
                feature: self.names[f].clone(),
                categorical: matches!(self.kinds[f], FeatureKind::Categorical { .. }),
                segments: (0..per_feature)
                    .filter_map(|s| {
                        let c = &self.cells[f * per_feature + s];
                        (c.n > 0).then(|| self.segment_parity(f, s, c))
                    })
                    .collect(),
            })
            .collect()
    }

    fn segment_parity(&self, f: usize, s: usize, c: &Cell) -> SegmentParity {
        let categorical = matches!(self.kinds[f], FeatureKind::Categorical { .. });
        let bins = &self.counts[c.offset..c.offset + 2 * c.bins];
        let (p, q) = (distribution(&bins[c.bins..]), distribution(&bins[..c.bins]));
        SegmentParity {
            segment: self.segments[s].clone(),
            requests: c.n,
            mismatch_rate: c.mismatches as f64 / c.n as f64,
            mean_abs_diff: if c.numeric_diffs > 0 { c.sum_abs / c.numeric_diffs as f64 } else { 0.0 },
            max_abs_diff: c.max_abs,
            psi: (!categorical).then(|| psi(&p, &q)),
            js_distance: (!categorical).then(|| js_distance(&p, &q)),
            linf: categorical.then(|| p.iter().zip(&q).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max)),
        }
    }
}

/// Parity of one feature.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeatureParity {
    /// Feature name.
    pub feature: String,
    /// Whether it is categorical.
    pub categorical: bool,
    /// One entry per segment that saw traffic, `all` first.
    pub segments: Vec<SegmentParity>,
}

/// Parity of one feature in one segment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentParity {
    /// `all`, or `dimension=value`.
    pub segment: String,
    /// Requests observed.
    pub requests: u64,
    /// Share of requests whose values differ.
    pub mismatch_rate: f64,
    /// Mean |new - legacy| over requests where both are present.
    pub mean_abs_diff: f64,
    /// Largest |new - legacy|.
    pub max_abs_diff: f64,
    /// Population stability index of new against legacy (numeric features).
    pub psi: Option<f64>,
    /// Jensen-Shannon distance, base 2, in [0, 1] (numeric features).
    pub js_distance: Option<f64>,
    /// L-infinity distance between the category frequencies (categorical features).
    pub linf: Option<f64>,
}

fn distribution(counts: &[u64]) -> Vec<f64> {
    let total = counts.iter().sum::<u64>().max(1) as f64;
    counts.iter().map(|&c| c as f64 / total).collect()
}

/// Population stability index, with empty bins smoothed.
pub fn psi(actual: &[f64], expected: &[f64]) -> f64 {
    actual.iter().zip(expected).map(|(&a, &e)| (a.max(EPS) - e.max(EPS)) * (a.max(EPS) / e.max(EPS)).ln()).sum()
}

/// Jensen-Shannon distance (square root of the divergence, base 2).
pub fn js_distance(p: &[f64], q: &[f64]) -> f64 {
    let kl = |a: &[f64], m: &[f64]| -> f64 {
        a.iter().zip(m).filter(|(x, _)| **x > 0.0).map(|(x, y)| x * (x / y).log2()).sum()
    };
    let m: Vec<f64> = p.iter().zip(q).map(|(a, b)| 0.5 * (a + b)).collect();
    (0.5 * kl(p, &m) + 0.5 * kl(q, &m)).max(0.0).sqrt()
}

/// Deciles of a sample (NaN ignored, duplicates removed): the bin edges of a numeric feature.
pub fn decile_edges(sample: &[f32]) -> Vec<f64> {
    let mut v: Vec<f64> = sample.iter().filter(|x| !x.is_nan()).map(|&x| f64::from(x)).collect();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return Vec::new();
    }
    let mut edges: Vec<f64> = (1..10).map(|k| v[(k * (v.len() - 1)) / 10]).collect();
    edges.dedup();
    edges
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_are_zero_for_equal_distributions_and_grow_with_shift() {
        let p = [0.25, 0.25, 0.5];
        assert_eq!(psi(&p, &p), 0.0);
        assert_eq!(js_distance(&p, &p), 0.0);
        let q = [0.5, 0.25, 0.25];
        assert!(psi(&q, &p) > 0.1);
        let d = js_distance(&q, &p);
        assert!(d > 0.1 && d <= 1.0);
        assert!((js_distance(&[1.0, 0.0], &[0.0, 1.0]) - 1.0).abs() < 1e-12, "disjoint is distance 1");
    }

    #[test]
    fn decile_edges_are_increasing() {
        let sample: Vec<f32> = (0..1000).map(|i| (i % 97) as f32).chain([f32::NAN]).collect();
        let e = decile_edges(&sample);
        assert!(e.windows(2).all(|w| w[0] < w[1]) && e.len() == 9, "{e:?}");
    }
}
