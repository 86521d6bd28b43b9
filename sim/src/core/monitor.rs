//! The monitor pairs the two answers of every request and keeps windowed statistics:
//! decision flips, score differences, feature mismatches per feature, latency per stack
//! (HDR histograms), errors and timeouts of the new stack, shadow-context mismatches, and
//! the online store's freshness. A window is what a judge reads at one evaluation.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::checkpoint::{bits, histogram};

/// One request's paired evidence: what the monitor records, the judges test, and the
/// trace draws. Both faces build it with the same pairing step ([`super::pairing`]).
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    /// Both stacks answered; then the answer comparisons mean something.
    pub answered: bool,
    /// The decisions differ (never for regression).
    pub flipped: bool,
    /// |new - legacy| as the answer kind measures it (probability, largest class
    /// probability, or model units); 0 when the new stack failed.
    pub abs_score_diff: f64,
    /// The difference relative to legacy's answer (regression).
    pub rel_score_diff: f64,
    /// Serving the new answer would be wrong (a flip, or beyond the regression tolerance).
    pub wrong: bool,
    /// Per feature, whether the values differ.
    pub mismatches: &'a [bool],
    /// The request's segments (indices into the segment list; 0 is `all`).
    pub segments: &'a [usize],
    /// Legacy service time, ms.
    pub legacy_ms: f64,
    /// New service time, ms (capped at its timeout).
    pub new_ms: f64,
    /// The new stack failed.
    pub error: bool,
    /// The new stack timed out.
    pub timeout: bool,
    /// The new stack was called as a shadow (the user got legacy).
    pub shadow: bool,
    /// That shadow call lacked the production context.
    pub shadow_context_mismatch: bool,
    /// The user got the new stack's answer.
    pub served_new: bool,
}

/// Statistics of one window.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Window {
    /// Paired requests.
    pub requests: u64,
    /// Requests both stacks answered.
    pub answered: u64,
    /// Decision flips among them.
    pub flips: u64,
    /// Sum of |score difference| among them.
    #[serde(with = "bits")]
    pub sum_abs_diff: f64,
    /// Sum of relative score differences among them.
    #[serde(with = "bits")]
    pub sum_rel_diff: f64,
    /// Per feature, requests whose values differ.
    pub feature_mismatches: Vec<u64>,
    /// New-stack failures.
    pub new_errors: u64,
    /// New-stack timeouts.
    pub new_timeouts: u64,
    /// Shadow calls.
    pub shadow_calls: u64,
    /// Shadow calls without the production context.
    pub shadow_context_mismatches: u64,
    /// Requests served to users by the new stack.
    pub served_new: u64,
    /// Requests served to users by legacy.
    pub served_legacy: u64,
    /// Legacy latency, microseconds.
    #[serde(with = "histogram")]
    pub legacy_latency: Histogram<u64>,
    /// New latency, microseconds.
    #[serde(with = "histogram")]
    pub new_latency: Histogram<u64>,
    /// Store freshness lag at the window's end, seconds.
    #[serde(with = "bits::opt")]
    pub staleness_s: Option<f64>,
    /// Whether summaries report relative score differences (regression answers).
    pub relative: bool,
}

impl Window {
    /// An empty window for `features` features.
    pub fn new(features: usize) -> Window {
        let h = || Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds");
        Window {
            requests: 0,
            answered: 0,
            flips: 0,
            sum_abs_diff: 0.0,
            sum_rel_diff: 0.0,
            feature_mismatches: vec![0; features],
            new_errors: 0,
            new_timeouts: 0,
            shadow_calls: 0,
            shadow_context_mismatches: 0,
            served_new: 0,
            served_legacy: 0,
            legacy_latency: h(),
            new_latency: h(),
            staleness_s: None,
            relative: false,
        }
    }

    /// The same window, reporting relative score differences too (regression answers).
    pub fn with_relative(mut self, relative: bool) -> Window {
        self.relative = relative;
        self
    }

    /// Adds one request.
    pub fn record(&mut self, p: &Observation<'_>) {
        self.requests += 1;
        if p.answered {
            self.answered += 1;
            self.flips += u64::from(p.flipped);
            self.sum_abs_diff += p.abs_score_diff;
            self.sum_rel_diff += p.rel_score_diff;
        }
        for (c, &m) in self.feature_mismatches.iter_mut().zip(p.mismatches) {
            *c += u64::from(m);
        }
        self.new_errors += u64::from(p.error);
        self.new_timeouts += u64::from(p.timeout);
        self.shadow_calls += u64::from(p.shadow);
        self.shadow_context_mismatches += u64::from(p.shadow_context_mismatch);
        if p.served_new {
            self.served_new += 1;
        } else {
            self.served_legacy += 1;
        }
        self.legacy_latency.saturating_record((p.legacy_ms * 1000.0).max(1.0) as u64);
        self.new_latency.saturating_record((p.new_ms * 1000.0).max(1.0) as u64);
    }

    /// Empties the window, keeping its allocations.
    pub fn clear(&mut self) {
        self.requests = 0;
        self.answered = 0;
        self.flips = 0;
        self.sum_abs_diff = 0.0;
        self.sum_rel_diff = 0.0;
        self.feature_mismatches.fill(0);
        self.new_errors = 0;
        self.new_timeouts = 0;
        self.shadow_calls = 0;
        self.shadow_context_mismatches = 0;
        self.served_new = 0;
        self.served_legacy = 0;
        self.legacy_latency.reset();
        self.new_latency.reset();
        self.staleness_s = None;
    }

    /// A latency quantile in ms, `None` without samples.
    pub fn latency_ms(h: &Histogram<u64>, q: f64) -> Option<f64> {
        (!h.is_empty()).then(|| h.value_at_quantile(q) as f64 / 1000.0)
    }

    /// The worst feature by mismatches: (index, count).
    pub fn worst_feature(&self) -> Option<(usize, u64)> {
        self.feature_mismatches.iter().copied().enumerate().max_by_key(|&(i, c)| (c, std::cmp::Reverse(i)))
    }
}

/// The 95 % Wilson score interval of k successes in n trials.
pub fn wilson(k: u64, n: u64) -> (f64, f64) {
    const Z: f64 = 1.959_963_984_540_054;
    let (k, n) = (k as f64, n as f64);
    let p = k / n;
    let z2 = Z * Z;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / (1.0 + z2 / n);
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// A summary of a window for the timeline and the history.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WindowSummary {
    /// Requests.
    pub requests: u64,
    /// Served by legacy.
    pub served_legacy: u64,
    /// Served by new.
    pub served_new: u64,
    /// Decision flip rate.
    pub flip_rate: Option<f64>,
    /// Mean |score difference|.
    pub mean_abs_score_diff: Option<f64>,
    /// Mean relative score difference (regression).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_rel_score_diff: Option<f64>,
    /// Worst feature mismatch rate.
    pub feature_mismatch_rate: Option<f64>,
    /// New error rate.
    pub error_rate: Option<f64>,
    /// New timeout rate.
    pub timeout_rate: Option<f64>,
    /// Legacy p50, p95, p99 (ms).
    pub legacy_ms: [Option<f64>; 3],
    /// New p50, p95, p99 (ms).
    pub new_ms: [Option<f64>; 3],
    /// Store freshness lag (s).
    pub staleness_s: Option<f64>,
}

impl Window {
    /// The window's summary.
    pub fn summary(&self) -> WindowSummary {
        use super::guardrail::Guardrail::*;
        let q = |h: &Histogram<u64>| [0.5, 0.95, 0.99].map(|x| Window::latency_ms(h, x));
        WindowSummary {
            requests: self.requests,
            served_legacy: self.served_legacy,
            served_new: self.served_new,
            flip_rate: DecisionFlipRate.statistic(self),
            mean_abs_score_diff: MeanAbsScoreDiff.statistic(self),
            mean_rel_score_diff: if self.relative { MeanRelScoreDiff.statistic(self) } else { None },
            feature_mismatch_rate: FeatureMismatchRate.statistic(self),
            error_rate: ErrorRate.statistic(self),
            timeout_rate: TimeoutRate.statistic(self),
            legacy_ms: q(&self.legacy_latency),
            new_ms: q(&self.new_latency),
            staleness_s: self.staleness_s,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::wilson;

    #[test]
    fn wilson_intervals_match_the_textbook_values() {
        // Newcombe (1998), Table I: 0/10 -> (0, 0.2775); 5/10 -> (0.2366, 0.7634).
        let (lo, hi) = wilson(0, 10);
        assert_eq!(lo, 0.0);
        assert!((hi - 0.2775).abs() < 1e-4, "{hi}");
        let (lo, hi) = wilson(5, 10);
        assert!((lo - 0.2366).abs() < 1e-4 && (hi - 0.7634).abs() < 1e-4, "{lo} {hi}");
        // Narrows with evidence, always around the observed rate.
        let (lo, hi) = wilson(100, 10_000);
        assert!(lo < 0.01 && 0.01 < hi && hi - lo < 0.005);
    }
}
