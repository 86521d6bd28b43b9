//! The `sequential` judge: anytime-valid tests on the paired evidence of every request.
//!
//! Every guardrail is a one-sided test of H0 "the new stack is within the limit" against
//! "it is worse". Its building block is a likelihood ratio (or a bet) that is a nonnegative
//! supermartingale under H0, so by Ville's inequality it ever reaches 1/a with probability
//! at most a however often it is looked at (the mSPRT of Johari, Pekelis and Walsh,
//! "Always valid inference", Operations Research 2022; betting for bounded means,
//! Waudby-Smith and Ramdas, JRSS B 2024). A fault starts in the middle of a rollout, after
//! thousands of clean requests whose evidence would mask it; so each statistic is kept in
//! CUSUM form (Lorden): the largest ratio over every start point, in O(1) memory, which
//! reacts to a change as if the test had started when the change did.
//!
//! * Rates (decision flips, feature mismatches per feature and per segment, errors,
//!   timeouts, shadow-context mismatches) are Bernoulli: H0 p <= p0, the guardrail's limit,
//!   against a geometric grid of alternatives p1 > p0.
//! * Latency quantiles become exceedance rates (Howard and Ramdas, "Sequential estimation
//!   of quantiles", Bernoulli 2022): "p99 at most c" is "P(latency > c) <= 1 %"; for the
//!   ratio guardrail c is the limit times legacy's p99 over its first 5 000 requests.
//! * The mean absolute score difference is a bounded mean, tested by betting: in [0, 1]
//!   for probabilities; in a model's own units (regression) capped at 20 times its limit,
//!   as is the mean relative difference.
//! * Feature staleness is a measured state, not a sample: compared directly.
//!
//! The budget. A false alarm needs some test, some alternative and some start point whose
//! ratio from that start reaches the threshold A. Over a horizon of at most N requests
//! there are at most N start points; by Ville and a union bound over the K tests, the G
//! alternatives per test and the N starts, P(rolling back a clean migration) <= K G N / A.
//! The threshold is therefore A = K G N / alpha, with alpha the plan's
//! `false_rollback_budget` and N twice the scenario's expected request count. Stages need
//! no share of their own (the tests run across stages), and the union bound holds whatever
//! the dependence between features, segments and guardrails. The price of looking
//! everywhere and at any time is logarithmic: ln A = ln K + ln G + ln N + ln(1/alpha).
//! A test may only reject after `min_evidence` observations.

use super::judge::{Judge, Trigger, Verdict};
use super::monitor::{Observation, Window};

/// Alternatives (or bets) per test.
const GRID: usize = 12;
/// Answers in a model's own units (regression) are capped at this many times their limit.
pub const UNIT_CAP: f64 = 20.0;
/// Latency guardrails are about the 99th percentile: 1 % may exceed.
const P99_EXCEEDANCE: f64 = 0.01;
/// Legacy latencies that fix the reference p99 for the ratio guardrail.
const LATENCY_REFERENCE: usize = 5000;

/// A one-sided test for a Bernoulli rate, H0 p <= p0, that also catches a change: for
/// each alternative p1 > p0 on a grid, a CUSUM of log L(p1)/L(p0).
#[derive(Debug, Clone, PartialEq)]
pub struct RateTest {
    p0: f64,
    /// Per alternative: (ln(p1/p0), ln((1-p1)/(1-p0))).
    grid: Vec<(f64, f64)>,
    /// Per alternative, the CUSUM statistic (log scale, >= 0).
    cusum: Vec<f64>,
    /// Every CUSUM is at 0.
    idle: bool,
    /// Observations so far.
    pub n: u64,
    /// Successes (failures of the new stack, mismatches, exceedances).
    pub k: u64,
}

impl RateTest {
    /// A test of `p <= p0` against a grid of alternatives above it.
    pub fn new(p0: f64) -> RateTest {
        let p0 = p0.clamp(1e-9, 1.0 - 1e-9);
        let mut grid = Vec::new();
        // Alternatives from 1.5 p0 up towards 1, geometric: small and large effects alike.
        let mut p1 = p0 * 1.5;
        while p1 < 1.0 && grid.len() < GRID {
            grid.push(((p1 / p0).ln(), ((1.0 - p1) / (1.0 - p0)).ln()));
            p1 *= 2.0;
        }
        let cusum = vec![0.0; grid.len()];
        RateTest { p0, grid, cusum, idle: true, n: 0, k: 0 }
    }

    /// Adds one observation.
    pub fn add(&mut self, success: bool) {
        self.n += 1;
        self.k += u64::from(success);
        // Every CUSUM at 0 stays at 0 on a non-event (each step is negative): the usual
        // clean request costs nothing more.
        if !success && self.idle {
            return;
        }
        let mut idle = true;
        for (c, (a, b)) in self.cusum.iter_mut().zip(&self.grid) {
            *c = (*c + if success { *a } else { *b }).max(0.0);
            idle &= *c == 0.0;
        }
        self.idle = idle;
    }

    /// The largest CUSUM over the grid (log scale).
    pub fn log_statistic(&self) -> f64 {
        self.cusum.iter().copied().fold(0.0, f64::max)
    }

    /// The observed rate.
    pub fn rate(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            self.k as f64 / self.n as f64
        }
    }

    /// The limit it tests.
    pub fn limit(&self) -> f64 {
        self.p0
    }
}

/// A one-sided test for the mean of nonnegative values, H0 mean <= mu0, by betting: each
/// value is capped at `cap` and scaled into [0, 1], and for each bet lambda on a grid in
/// (0, cap/mu0), log prod(1 + lambda (x - mu0)) is kept in CUSUM form. Capping never makes
/// a clean stack look worse (the capped mean is at most the mean), so the guarantee holds
/// for any cap; probabilities take a cap of 1, answers in a model's own units a cap of
/// [`UNIT_CAP`] times the limit. Unlike a Hoeffding bound it adapts to the small variance
/// of score differences.
#[derive(Debug, Clone, PartialEq)]
pub struct MeanTest {
    mu0: f64,
    cap: f64,
    /// The limit as written (before scaling).
    limit: f64,
    lambdas: Vec<f64>,
    cusum: Vec<f64>,
    idle: bool,
    /// Observations.
    pub n: u64,
    /// Their sum.
    pub sum: f64,
}

impl MeanTest {
    /// A test of `mean <= mu0` for values in [0, 1].
    pub fn new(mu0: f64) -> MeanTest {
        MeanTest::capped(mu0, 1.0)
    }

    /// A test of `mean <= limit` for values capped at `cap`.
    pub fn capped(limit: f64, cap: f64) -> MeanTest {
        let mu0 = (limit / cap).clamp(1e-9, 1.0 - 1e-9);
        let lambdas: Vec<f64> = (0..GRID).map(|i| 0.5 / mu0 / 2f64.powi(i as i32)).collect();
        let cusum = vec![0.0; lambdas.len()];
        MeanTest { mu0, cap, limit, lambdas, cusum, idle: true, n: 0, sum: 0.0 }
    }

    /// The observed mean, in the values' own units.
    pub fn mean(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            self.sum / self.n as f64
        }
    }

    /// The limit it tests, in the values' own units.
    pub fn limit(&self) -> f64 {
        self.limit
    }

    /// Adds one observation.
    pub fn add(&mut self, raw: f64) {
        self.n += 1;
        self.sum += raw.max(0.0);
        let x = (raw / self.cap).clamp(0.0, 1.0);
        // A bet on a value at or below mu0 loses: from 0 every CUSUM stays at 0.
        if x <= self.mu0 && self.idle {
            return;
        }
        let mut idle = true;
        for (c, l) in self.cusum.iter_mut().zip(&self.lambdas) {
            *c = (*c + (1.0 + l * (x - self.mu0)).ln()).max(0.0);
            idle &= *c == 0.0;
        }
        self.idle = idle;
    }

    /// The largest CUSUM over the bets (log scale).
    pub fn log_statistic(&self) -> f64 {
        self.cusum.iter().copied().fold(0.0, f64::max)
    }
}

/// The sequential judge.
#[derive(Debug, Clone)]
pub struct Sequential {
    log_threshold: f64,
    min_evidence: u64,
    segments: Vec<String>,
    flips: Option<RateTest>,
    score: Option<MeanTest>,
    rel_score: Option<MeanTest>,
    /// Per feature, per segment.
    mismatch: Option<Vec<Vec<RateTest>>>,
    errors: Option<RateTest>,
    timeouts: Option<RateTest>,
    latency_abs: Option<(f64, RateTest)>,
    latency_ratio: Option<(f64, Option<f64>, RateTest)>,
    legacy_latencies: Vec<f64>,
    shadow_context: Option<RateTest>,
    staleness: Option<f64>,
}

impl Sequential {
    /// A judge for these guardrails over `features` and `segments`, with the rollout's
    /// `alpha` over a horizon of at most `horizon` requests, acting only after
    /// `min_evidence` observations. `units`: the score differences are in a model's own
    /// units (regression), not probabilities.
    pub fn new(
        guardrails: &[(&'static str, f64)],
        features: usize,
        segments: Vec<String>,
        alpha: f64,
        min_evidence: u64,
        horizon: u64,
        units: bool,
    ) -> Sequential {
        let cap = |limit: f64| if units { UNIT_CAP * limit } else { 1.0 };
        let get = |name: &str| guardrails.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
        let mut judge = Sequential {
            log_threshold: 0.0,
            min_evidence,
            flips: get("decision_flip_rate").map(RateTest::new),
            score: get("mean_abs_score_diff").map(|l| MeanTest::capped(l, cap(l))),
            rel_score: get("mean_rel_score_diff").map(|l| MeanTest::capped(l, UNIT_CAP * l)),
            mismatch: get("feature_mismatch_rate").map(|p| vec![vec![RateTest::new(p); segments.len()]; features]),
            segments,
            errors: get("error_rate").map(RateTest::new),
            timeouts: get("timeout_rate").map(RateTest::new),
            latency_abs: get("p99_latency_ms").map(|c| (c, RateTest::new(P99_EXCEEDANCE))),
            latency_ratio: get("p99_latency_ratio").map(|r| (r, None, RateTest::new(P99_EXCEEDANCE))),
            legacy_latencies: Vec::new(),
            shadow_context: get("shadow_context_mismatch_rate").map(RateTest::new),
            staleness: get("feature_staleness_s"),
        };
        let k = judge.tests().max(1) as f64;
        judge.log_threshold = k.ln() + (GRID as f64).ln() + (horizon.max(1) as f64).ln() + (1.0 / alpha).ln();
        judge
    }

    /// Number of tests (K in the budget).
    pub fn tests(&self) -> usize {
        let one = |b: bool| usize::from(b);
        one(self.flips.is_some())
            + one(self.score.is_some())
            + one(self.rel_score.is_some())
            + self.mismatch.as_ref().map_or(0, |m| m.len() * self.segments.len())
            + one(self.errors.is_some())
            + one(self.timeouts.is_some())
            + one(self.latency_abs.is_some())
            + one(self.latency_ratio.is_some())
            + one(self.shadow_context.is_some())
    }

    /// ln A, the threshold every statistic is compared with.
    pub fn log_threshold(&self) -> f64 {
        self.log_threshold
    }

    /// Adds one request's evidence.
    pub fn add(&mut self, o: &Observation<'_>) {
        if o.answered {
            if let Some(t) = &mut self.flips {
                t.add(o.flipped);
            }
            if let Some(t) = &mut self.score {
                t.add(o.abs_score_diff);
            }
            if let Some(t) = &mut self.rel_score {
                t.add(o.rel_score_diff);
            }
        }
        if let Some(m) = &mut self.mismatch {
            for (tests, &mismatch) in m.iter_mut().zip(o.mismatches) {
                for &s in o.segments {
                    tests[s].add(mismatch);
                }
            }
        }
        if let Some(t) = &mut self.errors {
            t.add(o.error);
        }
        if let Some(t) = &mut self.timeouts {
            t.add(o.timeout);
        }
        if let Some((c, t)) = &mut self.latency_abs {
            t.add(o.timeout || o.new_ms > *c);
        }
        if let Some((ratio, reference, t)) = &mut self.latency_ratio {
            match reference {
                Some(c) => t.add(o.timeout || o.new_ms > *ratio * *c),
                None => {
                    self.legacy_latencies.push(o.legacy_ms);
                    if self.legacy_latencies.len() >= LATENCY_REFERENCE {
                        let mut v = std::mem::take(&mut self.legacy_latencies);
                        v.sort_by(f64::total_cmp);
                        *reference = Some(v[(v.len() * 99) / 100]);
                    }
                }
            }
        }
        if o.shadow {
            if let Some(t) = &mut self.shadow_context {
                t.add(o.shadow_context_mismatch);
            }
        }
    }

    /// The first test past the threshold with enough evidence, if any: causes (shadow
    /// context, features, errors, timeouts, latency) before effects (flips, scores).
    pub fn check(&self, features: &[String]) -> Option<Trigger> {
        let (threshold, min) = (self.log_threshold, self.min_evidence);
        let trigger = |guardrail: &str, feature: Option<String>, segment: Option<String>, observed: f64, limit: f64| {
            Trigger { guardrail: guardrail.into(), feature, segment, observed, limit }
        };
        let fires = |t: &RateTest| t.n >= min && t.log_statistic() >= threshold;
        if let Some(t) = self.shadow_context.as_ref().filter(|t| fires(t)) {
            return Some(trigger("shadow_context_mismatch_rate", None, None, t.rate(), t.limit()));
        }
        if let Some(m) = &self.mismatch {
            for (f, tests) in m.iter().enumerate() {
                for (s, t) in tests.iter().enumerate() {
                    if fires(t) {
                        let segment = (s > 0).then(|| self.segments[s].clone());
                        return Some(trigger(
                            "feature_mismatch_rate",
                            Some(features[f].clone()),
                            segment,
                            t.rate(),
                            t.limit(),
                        ));
                    }
                }
            }
        }
        for (name, t) in [("error_rate", &self.errors), ("timeout_rate", &self.timeouts)] {
            if let Some(t) = t.as_ref().filter(|t| fires(t)) {
                return Some(trigger(name, None, None, t.rate(), t.limit()));
            }
        }
        if let Some((c, t)) = self.latency_abs.as_ref().filter(|(_, t)| fires(t)) {
            return Some(trigger("p99_latency_ms", None, None, t.rate(), *c));
        }
        if let Some((r, _, t)) = self.latency_ratio.as_ref().filter(|(_, reference, t)| reference.is_some() && fires(t))
        {
            return Some(trigger("p99_latency_ratio", None, None, t.rate(), *r));
        }
        // The answers last: when a cause (a feature, errors, the context) fired at the same
        // look, the trigger names the cause rather than its effect on the scores.
        if let Some(t) = self.flips.as_ref().filter(|t| fires(t)) {
            return Some(trigger("decision_flip_rate", None, None, t.rate(), t.limit()));
        }
        for (name, t) in [("mean_abs_score_diff", &self.score), ("mean_rel_score_diff", &self.rel_score)] {
            if let Some(t) = t.as_ref().filter(|t| t.n >= min && t.log_statistic() >= threshold) {
                return Some(trigger(name, None, None, t.mean(), t.limit()));
            }
        }
        None
    }
}

impl Judge for Sequential {
    fn clone_box(&self) -> Box<dyn Judge> {
        Box::new(self.clone())
    }

    fn name(&self) -> &'static str {
        "sequential"
    }

    fn observe(&mut self, _now_us: u64, o: &Observation<'_>) {
        self.add(o);
    }

    fn evidence(&self) -> Vec<(&'static str, f64)> {
        let share = |t: &RateTest| t.log_statistic() / self.log_threshold;
        let mut out = Vec::new();
        if let Some(t) = &self.flips {
            out.push(("decision_flip_rate", share(t)));
        }
        if let Some(t) = &self.score {
            out.push(("mean_abs_score_diff", t.log_statistic() / self.log_threshold));
        }
        if let Some(t) = &self.rel_score {
            out.push(("mean_rel_score_diff", t.log_statistic() / self.log_threshold));
        }
        if let Some(m) = &self.mismatch {
            out.push(("feature_mismatch_rate", m.iter().flatten().map(share).fold(0.0, f64::max)));
        }
        for (name, t) in [
            ("error_rate", &self.errors),
            ("timeout_rate", &self.timeouts),
            ("shadow_context_mismatch_rate", &self.shadow_context),
        ] {
            if let Some(t) = t {
                out.push((name, share(t)));
            }
        }
        if let Some((_, t)) = &self.latency_abs {
            out.push(("p99_latency_ms", share(t)));
        }
        if let Some((_, _, t)) = &self.latency_ratio {
            out.push(("p99_latency_ratio", share(t)));
        }
        out
    }

    fn judge(&mut self, window: &Window, _guardrails: &[(&'static str, f64)], features: &[String]) -> Verdict {
        if let (Some(limit), Some(lag)) = (self.staleness, window.staleness_s) {
            if lag > limit {
                let t = Trigger {
                    guardrail: "feature_staleness_s".into(),
                    feature: None,
                    segment: None,
                    observed: lag,
                    limit,
                };
                return Verdict::RollBack(t);
            }
        }
        match self.check(features) {
            Some(t) => Verdict::RollBack(t),
            None => Verdict::Pass,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    /// Runs `runs` null sequences of `n` draws at exactly the limit; counts those whose
    /// CUSUM ever reached ln A with A = G n / alpha (one test, every start point).
    fn null_crossings(p0: f64, runs: usize, n: usize, alpha: f64, seed: u64) -> usize {
        let log_a = (GRID as f64).ln() + (n as f64).ln() + (1.0 / alpha).ln();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..runs)
            .filter(|_| {
                let mut t = RateTest::new(p0);
                (0..n).any(|_| {
                    t.add(rng.random::<f64>() < p0);
                    t.log_statistic() >= log_a
                })
            })
            .count()
    }

    #[test]
    fn under_the_null_the_rate_test_stays_within_its_budget() {
        // 300 sequences of 20 000 requests at exactly the limit, alpha 0.05: at most 15
        // expected by the bound (it is loose, so far fewer), 25 allowed for binomial noise.
        let crossings = null_crossings(0.01, 300, 20_000, 0.05, 1);
        assert!(crossings <= 25, "{crossings} of 300 crossed");
    }

    #[test]
    fn a_change_after_long_clean_evidence_is_caught_fast() {
        let mut t = RateTest::new(0.01);
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        for _ in 0..100_000 {
            t.add(rng.random::<f64>() < 0.0001);
        }
        let mut n = 0;
        while t.log_statistic() < 30.0 {
            t.add(rng.random::<f64>() < 0.03);
            n += 1;
        }
        // Three times the limit after 100 000 clean requests: caught within a few thousand.
        assert!(n < 8000, "took {n} observations");
    }

    #[test]
    fn the_mean_test_bets_on_small_variance() {
        let mut t = MeanTest::new(0.002);
        for i in 0..2000 {
            t.add(if i % 2 == 0 { 0.004 } else { 0.006 });
        }
        assert!(t.log_statistic() > 30.0, "mean 0.005 against 0.002: {}", t.log_statistic());
        let mut clean = MeanTest::new(0.002);
        for _ in 0..100_000 {
            clean.add(0.0);
        }
        assert_eq!(clean.log_statistic(), 0.0);
    }

    proptest! {
        #[test]
        fn the_state_is_bounded_and_independent_of_when_it_is_read(
            xs in proptest::collection::vec(proptest::bool::weighted(0.05), 1..3000),
            look in 1usize..50,
        ) {
            // Reading the statistic every `look` requests or only at the end: same state.
            let mut looked = RateTest::new(0.01);
            let mut at_end = RateTest::new(0.01);
            let mut reads = 0.0f64;
            for (i, &x) in xs.iter().enumerate() {
                looked.add(x);
                if i % look == 0 {
                    reads = reads.max(looked.log_statistic());
                }
            }
            for &x in &xs {
                at_end.add(x);
            }
            prop_assert_eq!(&looked, &at_end);
            prop_assert!(reads >= 0.0);
            // Memory does not grow with the run: a fixed grid of numbers per test.
            prop_assert_eq!(looked.cusum.len(), RateTest::new(0.01).cusum.len());
        }
    }
}
