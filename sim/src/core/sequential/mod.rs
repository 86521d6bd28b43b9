//! The `sequential` judge: an e-detector on the paired evidence of every request.
//!
//! Every guardrail is a one-sided test of H0 "the new stack is within the limit" against
//! "it is worse", over all traffic and over every segment the migration declares. Its
//! building block is a likelihood ratio (or a bet) that is a nonnegative supermartingale
//! under H0 (the mSPRT of Johari, Pekelis and Walsh, "Always valid inference",
//! Operations Research 2022; betting for bounded means, Waudby-Smith and Ramdas, JRSS B
//! 2024). A fault starts in the middle of a rollout, after thousands of clean requests
//! whose evidence would mask it; so each test is an e-detector (Shin, Ramdas and Rinaldo,
//! "E-detectors: a nonparametric framework for sequential change detection", 2023): a
//! weighted sum of e-processes, a new one started at every look of the judge, kept in
//! Shiryaev-Roberts form in O(1) memory, R <- (R + w) L.
//!
//! * Rates (decision flips, feature mismatches per feature, errors, timeouts,
//!   shadow-context mismatches, latency exceedances) are Bernoulli: H0 p <= p0, the
//!   guardrail's limit, against a mixture over a geometric grid of alternatives p1 > p0.
//! * Latency quantiles become exceedance rates (Howard and Ramdas, "Sequential estimation
//!   of quantiles", Bernoulli 2022) of the tail past the limit: "p99 at most c" is tested
//!   as "P(latency > k c) <= 1 % / k" for k = 1, 2, 4, 8, counting clusters of slow calls
//!   once; for the ratio guardrail c is the limit times legacy's p99 over its first
//!   requests (of the segment, for a segment's test).
//! * Mean score differences are bounded means, tested by betting: in [0, 1] for
//!   probabilities; in a model's own units (regression) capped at 20 times the limit, as
//!   is the mean relative difference.
//! * Feature staleness is a measured state, not a sample: compared directly.
//!
//! The budget (derived in docs/sequential.md). With w_k the weight of test k (all-traffic
//! tests share three quarters of the budget, segment tests the rest), a test's start budget
//! Z split between starts at the J planned looks (a tail of 1 % beyond them) and starts at
//! bursts, and alternatives 1/G, the sum over tests, starts and alternatives of w R / Z,
//! plus the budget not spent yet, is one nonnegative supermartingale under H0 that starts
//! at 1. By Ville's inequality it ever reaches 1/alpha with probability at most alpha, so
//! rolling back when the sum over tests of each mixture over its threshold Z / (alpha w_k)
//! reaches 1 rolls back a clean migration with probability at most alpha, however often it
//! looks. No union bound over start points: the threshold
//! grows with the number of looks, not of requests. A test may only reject after
//! `min_evidence` observations.

use super::guardrail::{Guardrail, Seen, Test};
use super::judge::{Judge, JudgeSnapshot, Trigger, Verdict};
use super::monitor::{Observation, Window};

mod detector;

pub use detector::{burst_weight, start_budget, start_weight, Detector, Grid, MeanTest, RateTest, LOOK_SHARE, TAIL};

/// The share of the budget for the all-traffic tests (the segments' tests share the rest).
const ALL_TRAFFIC_SHARE: f64 = 0.75;
/// The features' mismatch tests together weigh as much as this many guardrails.
const FEATURE_GUARDRAILS: f64 = 2.0;
/// Answers in a model's own units (regression) are capped at this many times their limit.
pub const UNIT_CAP: f64 = 20.0;
/// Latency guardrails are about the 99th percentile: 1 % may exceed.
const P99_EXCEEDANCE: f64 = 0.01;
/// A latency guardrail tests its tail at these multiples k of its limit, each against
/// P(past k x limit) <= 1 % / k: a tail no heavier than 1/x past the limit (docs/sequential.md,
/// "Latency: the tail past the limit").
pub const LATENCY_LEVELS: [f64; 4] = [1.0, 2.0, 4.0, 8.0];
/// The share of a latency guardrail's weight its test at the limit takes; the higher levels
/// share the rest evenly.
const AT_THE_LIMIT_SHARE: f64 = 0.75;
/// The requests (of its test's population) right after a latency exceedance that its test
/// skips: an exceedance among them belongs to the same cluster and extends it, so a stall
/// that slows many calls in a row is one event, not many; a request among them that is not
/// slow is not counted either, so a tail at random loses observations, not events.
pub const CLUSTER_GAP: u64 = 2;
/// Legacy latencies that fix the reference p99 for the ratio guardrail: over all traffic,
/// and in one segment.
const LATENCY_REFERENCE: usize = 5000;
const SEGMENT_LATENCY_REFERENCE: usize = 2000;

/// What a family tests.
#[derive(Debug, Clone, PartialEq)]
enum Measure {
    /// A rate, H0 p <= p0.
    Rate(f64),
    /// A mean of values capped at `cap`, H0 mean <= limit.
    Mean { limit: f64, cap: f64, mu0: f64 },
}

/// One test: its detector and what it has seen.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Cell {
    detector: Detector,
    /// Events (rates) or values above zero (means).
    k: u64,
    /// Sum of the values (means).
    #[serde(with = "crate::core::checkpoint::bits")]
    sum: f64,
    /// The counter's value when the test began (a ratio test begins once its reference
    /// is known); None until then.
    base: Option<u64>,
    /// Its term, e^(ln R - ln A), as last counted in the judge's bound on the sum (0 while
    /// it has too little evidence).
    #[serde(with = "crate::core::checkpoint::bits")]
    counted: f64,
    /// The counter at its last exceedance (latency tests, which count clusters).
    #[serde(default)]
    last_event: Option<u64>,
}

/// One guardrail's tests (one per feature for feature mismatches): over all traffic
/// (index 0) and each segment.
#[derive(Debug, Clone)]
struct Family {
    guardrail: Guardrail,
    /// The limit a trigger reports.
    limit: f64,
    seen: Seen,
    measure: Measure,
    /// The all-traffic grid, and the segments'.
    grids: [Grid; 2],
    /// ln A, the threshold of its all-traffic test and of a segment's.
    thresholds: [f64; 2],
    /// Observations a test needs before its term counts.
    min_evidence: u64,
    cells: Vec<Cell>,
    /// Its share of one guardrail's weight (a feature's, a latency level's; 1 otherwise).
    share: f64,
    /// Latency: the multiple of the limit it tests the tail at (1 otherwise).
    level: f64,
    /// Whether it counts clusters of events (latency) rather than events.
    clusters: bool,
}

impl Family {
    fn new(guardrail: Guardrail, limit: f64, seen: Seen, measure: Measure, segments: usize) -> Family {
        let grids = match measure {
            Measure::Rate(p0) => {
                let p0 = p0.clamp(1e-9, 1.0 - 1e-9);
                [Grid::rate(p0), Grid::segment_rate(p0)]
            }
            Measure::Mean { mu0, .. } => [Grid::mean(mu0), Grid::mean(mu0)],
        };
        let cell = |s: usize| Cell {
            detector: Detector::new(&grids[usize::from(s > 0)], 0),
            k: 0,
            sum: 0.0,
            base: Some(0),
            counted: 0.0,
            last_event: None,
        };
        let cells = (0..segments).map(cell).collect();
        Family {
            guardrail,
            limit,
            seen,
            measure,
            grids,
            thresholds: [f64::INFINITY; 2],
            min_evidence: 0,
            cells,
            share: 1.0,
            level: 1.0,
            clusters: false,
        }
    }

    fn rate(guardrail: Guardrail, p0: f64, seen: Seen, segments: usize) -> Family {
        Family::new(guardrail, p0, seen, Measure::Rate(p0), segments)
    }

    fn mean(guardrail: Guardrail, limit: f64, cap: f64, segments: usize) -> Family {
        let mu0 = (limit / cap).clamp(1e-9, 1.0 - 1e-9);
        Family::new(guardrail, limit, Seen::Answered, Measure::Mean { limit, cap, mu0 }, segments)
    }

    /// The families of tests `guardrail`'s definition asks for, at `limit`, over `segments`
    /// (none for a state compared directly): one, or one per latency level; `units`: score
    /// differences are in a model's own units.
    fn of(guardrail: Guardrail, limit: f64, segments: usize, units: bool) -> Vec<Family> {
        match guardrail.def().test {
            Test::Rate(seen) => vec![Family::rate(guardrail, limit, seen, segments)],
            Test::PerFeature => vec![Family::rate(guardrail, limit, Seen::All, segments)],
            Test::Exceedance { relative } => LATENCY_LEVELS
                .iter()
                .map(|&k| {
                    let mut f = Family::rate(guardrail, P99_EXCEEDANCE / k, Seen::All, segments);
                    f.limit = limit;
                    f.level = k;
                    f.clusters = true;
                    f.share = if k == 1.0 {
                        AT_THE_LIMIT_SHARE
                    } else {
                        (1.0 - AT_THE_LIMIT_SHARE) / (LATENCY_LEVELS.len() - 1) as f64
                    };
                    if relative {
                        // A ratio test begins once legacy's reference is known.
                        f.cells.iter_mut().for_each(|c| c.base = None);
                    }
                    f
                })
                .collect(),
            Test::Mean { relative } => {
                let cap = if relative || units { UNIT_CAP * limit } else { 1.0 };
                vec![Family::mean(guardrail, limit, cap, segments)]
            }
            Test::Direct => Vec::new(),
        }
    }

    /// An event (a rate's success) in segment `s`, the counter at `n`; how much its term
    /// grew (see [`Family::recount`]).
    #[inline]
    fn event(&mut self, s: usize, n: u64) -> f64 {
        let grid = &self.grids[usize::from(s > 0)];
        let cell = &mut self.cells[s];
        if cell.base.is_none() {
            return 0.0;
        }
        if self.clusters {
            // The CLUSTER_GAP requests after an exceedance are skipped: one within them
            // belongs to its cluster, and extends it.
            let last = cell.last_event.replace(n);
            if last.is_some_and(|l| n - l <= CLUSTER_GAP) {
                cell.detector.skip_until(n + CLUSTER_GAP);
                return 0.0;
            }
        }
        cell.k += 1;
        cell.detector.step(grid, n, 1.0, |g| grid.event(g));
        if self.clusters {
            cell.detector.skip_until(n + CLUSTER_GAP);
        }
        self.recount(s, n)
    }

    /// A value (a mean's observation) in segment `s`, the counter at `n`; how much its
    /// term grew.
    #[inline]
    fn value(&mut self, s: usize, n: u64, raw: f64) -> f64 {
        let Measure::Mean { cap, mu0, .. } = self.measure else { return 0.0 };
        let x = (raw / cap).clamp(0.0, 1.0);
        if x <= 0.0 {
            return 0.0;
        }
        let grid = &self.grids[usize::from(s > 0)];
        let cell = &mut self.cells[s];
        cell.k += 1;
        cell.sum += raw;
        cell.detector.step(grid, n, x, |g| grid.bet(g, x, mu0));
        self.recount(s, n)
    }

    /// Right after segment `s`'s test took observation `n`: its term now, in place of the
    /// one last counted, and the difference. Between two of its steps a test only rests,
    /// which shrinks its statistic, so the terms last counted bound the sum from above.
    #[inline]
    fn recount(&mut self, s: usize, n: u64) -> f64 {
        if self.observations(s, n) < self.min_evidence {
            return 0.0;
        }
        let grid = &self.grids[usize::from(s > 0)];
        let cell = &mut self.cells[s];
        let term = (cell.detector.current(grid) - self.thresholds[usize::from(s > 0)]).exp();
        let grew = term - cell.counted;
        cell.counted = term;
        grew
    }

    /// A look: every test that has begun starts a new e-process.
    fn look(&mut self, counts: &[u64], planned: u64) {
        for (s, cell) in self.cells.iter_mut().enumerate() {
            if cell.base.is_some() {
                cell.detector.look(&self.grids[usize::from(s > 0)], counts[s], planned);
            }
        }
    }

    /// Observations of segment `s`'s test, the counter at `n`.
    fn observations(&self, s: usize, n: u64) -> u64 {
        self.cells[s].base.map_or(0, |b| n - b)
    }

    /// What a trigger reports as observed: the rate, or the mean, over everything seen.
    fn observed(&self, s: usize, n: u64) -> f64 {
        let (cell, obs) = (&self.cells[s], self.observations(s, n).max(1) as f64);
        match self.measure {
            Measure::Rate(_) => cell.k as f64 / obs,
            Measure::Mean { .. } => cell.sum / obs,
        }
    }
}

/// Counts a request of one kind in its segments `segs`, and, if it is an event, gives it to
/// family `i`'s tests there; how much their terms grew.
fn count(counts: &mut [u64], families: &mut [Family], segs: &[usize], i: Option<usize>, event: bool) -> f64 {
    for &s in segs {
        counts[s] += 1;
    }
    let mut grew = 0.0;
    if let (Some(i), true) = (i, event) {
        for &s in segs {
            grew += families[i].event(s, counts[s]);
        }
    }
    grew
}

/// Whether a call is past `bound_ms` for a latency test at `level` times its limit: a
/// timeout counts at the limit only (its own guardrail names it; at higher levels it would
/// outweigh it).
#[inline]
fn past(o: &Observation<'_>, level: f64, bound_ms: f64) -> bool {
    if o.timeout {
        level == 1.0
    } else {
        o.new_ms > bound_ms
    }
}

/// Legacy's reference p99 for a latency ratio test, per segment.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct Reference {
    #[serde(with = "crate::core::checkpoint::bits::vec")]
    samples: Vec<f64>,
    #[serde(with = "crate::core::checkpoint::bits::opt")]
    p99: Option<f64>,
}

/// What the judge has seen and concluded so far: everything of it that is not its plan.
#[derive(serde::Serialize, serde::Deserialize)]
struct SequentialState {
    counts: [Vec<u64>; 3],
    cells: Vec<Vec<Cell>>,
    references: Vec<Reference>,
    #[serde(with = "crate::core::checkpoint::bits")]
    bound: f64,
    alarm: bool,
}

impl Reference {
    /// Adds a sample; the p99 once `needed` are in.
    fn add(&mut self, ms: f64, needed: usize) -> Option<f64> {
        self.samples.push(ms);
        if self.samples.len() >= needed {
            let mut v = std::mem::take(&mut self.samples);
            v.sort_by(f64::total_cmp);
            self.p99 = Some(v[(v.len() * 99) / 100]);
        }
        self.p99
    }
}

/// The sequential judge.
#[derive(Debug, Clone)]
pub struct Sequential {
    /// J, the planned looks.
    planned: u64,
    /// ln of the threshold for an all-traffic test and for a segment's test (a feature's
    /// mismatch test has its own, in its family).
    log_threshold: [f64; 2],
    min_evidence: u64,
    segments: Vec<String>,
    /// Per kind of request ([`Seen`]), per segment, the requests seen.
    counts: [Vec<u64>; 3],
    /// In check order, causes before effects: shadow context, features, errors, timeouts,
    /// latency, decision flips, score differences.
    families: Vec<Family>,
    /// Indices into `families`.
    shadow_context: Option<usize>,
    mismatch: Option<std::ops::Range<usize>>,
    errors: Option<usize>,
    timeouts: Option<usize>,
    latency_abs: Option<(std::ops::Range<usize>, f64)>,
    latency_ratio: Option<(std::ops::Range<usize>, f64)>,
    references: Vec<Reference>,
    flips: Option<usize>,
    score: Option<usize>,
    rel_score: Option<usize>,
    staleness: Option<f64>,
    /// A bound from above on the sum the check reads, as of now: the terms as each test
    /// last counted them (at the last look, or at its last step since).
    bound: f64,
    /// Whether the sum reached 1 between looks: the next judgement rolls back at once.
    alarm: bool,
}

impl Sequential {
    /// A judge for these guardrails over `features` and `segments` (`all` first), with the
    /// rollout's `alpha` over `planned` looks (J; starts beyond it draw on a 1 % tail),
    /// acting only after `min_evidence` observations. `units`: the score differences are
    /// in a model's own units (regression), not probabilities.
    pub fn new(
        guardrails: &[(Guardrail, f64)],
        features: usize,
        segments: Vec<String>,
        alpha: f64,
        min_evidence: u64,
        planned: u64,
        units: bool,
    ) -> Sequential {
        let s = segments.len().max(1);
        let mut families = Vec::new();
        let (mut shadow_context, mut mismatch, mut errors, mut timeouts) = (None, None, None, None);
        let (mut latency_abs, mut latency_ratio, mut flips, mut score, mut rel_score) = (None, None, None, None, None);
        let mut staleness = None;
        let mut features_tested = 0;
        // In check order, causes before effects.
        let mut ordered = guardrails.to_vec();
        ordered.sort_by_key(|(g, _)| g.def().cause_rank);
        for (g, limit) in ordered {
            let first = families.len();
            let mut add = || {
                families.extend(Family::of(g, limit, s, units));
                families.len() - 1
            };
            let levels = first..first + LATENCY_LEVELS.len();
            match g {
                Guardrail::ShadowContextMismatchRate => shadow_context = Some(add()),
                Guardrail::FeatureMismatchRate => {
                    for _ in 0..features {
                        add();
                    }
                    features_tested = features;
                    mismatch = Some(first..first + features);
                }
                Guardrail::ErrorRate => errors = Some(add()),
                Guardrail::TimeoutRate => timeouts = Some(add()),
                Guardrail::P99LatencyMs => {
                    add();
                    latency_abs = Some((levels, limit));
                }
                Guardrail::P99LatencyRatio => {
                    add();
                    latency_ratio = Some((levels, limit));
                }
                Guardrail::DecisionFlipRate => flips = Some(add()),
                Guardrail::MeanAbsScoreDiff => score = Some(add()),
                Guardrail::MeanRelScoreDiff => rel_score = Some(add()),
                Guardrail::FeatureStalenessS => staleness = Some(limit),
            }
        }
        // Three quarters of the budget for the all-traffic tests, the rest for the
        // segments' (all of it for the all-traffic tests when the migration declares no
        // segment): a fault confined to a segment matters when it is large there, and a
        // large effect needs little of the threshold. Among guardrails, the features'
        // mismatch tests share the weight of FEATURE_GUARDRAILS guardrails, whatever the
        // number of features: a feature breaks in large ways (units, encodings), and an
        // error rate near its limit should not pay for a wide model.
        let per_feature = if features_tested > 0 { FEATURE_GUARDRAILS / features_tested as f64 } else { 1.0 };
        for f in &mut families[mismatch.clone().unwrap_or(0..0)] {
            f.share = per_feature;
        }
        let weight_units = families.iter().map(|f| f.share).sum::<f64>().max(1.0);
        let planned = planned.max(1);
        let base = start_budget(planned).ln() + (1.0 / alpha).ln();
        // ln(1/w) for a guardrail's test and a feature's, over all traffic and in a segment.
        let (all, segment) = if s > 1 {
            (weight_units / ALL_TRAFFIC_SHARE, weight_units * (s - 1) as f64 / (1.0 - ALL_TRAFFIC_SHARE))
        } else {
            (weight_units, weight_units)
        };
        let log_threshold = [base + all.ln(), base + segment.ln()];
        for f in &mut families {
            // A test's weight is its share of one guardrail's: ln(1/w) grows by ln(1/share).
            f.thresholds = [log_threshold[0] - f.share.ln(), log_threshold[1] - f.share.ln()];
            f.min_evidence = min_evidence;
        }
        Sequential {
            planned,
            log_threshold,
            min_evidence,
            counts: [vec![0; s], vec![0; s], vec![0; s]],
            families,
            shadow_context,
            mismatch,
            errors,
            timeouts,
            references: if latency_ratio.is_some() { vec![Reference::default(); s] } else { Vec::new() },
            latency_abs,
            latency_ratio,
            flips,
            score,
            rel_score,
            staleness,
            segments,
            bound: 0.0,
            alarm: false,
        }
    }

    /// Moves the null of each of these guardrails' tests below its limit, to the level at
    /// or below which a rollback must stay rare: a rate's test becomes `p <= level` against
    /// alternatives from the limit up, a mean's `mean <= level`. Thresholds and weights are
    /// unchanged, so the guarantee holds at or below the level; between it and the limit
    /// (the indifference zone) a rollback may come, and at the limit and above it comes
    /// sooner. Call before any observation.
    pub fn with_nulls(mut self, nulls: &[(Guardrail, f64)]) -> Sequential {
        for f in &mut self.families {
            let Some(&(_, level)) = nulls.iter().find(|(g, _)| *g == f.guardrail) else { continue };
            if matches!(f.guardrail.def().test, Test::Exceedance { .. }) {
                // Its null is a share of calls past the limit, not a level of the limit.
                continue;
            }
            match f.measure {
                Measure::Rate(_) => {
                    let p0 = level.clamp(1e-9, 1.0 - 1e-9);
                    let first = f.limit / p0;
                    f.measure = Measure::Rate(p0);
                    f.grids = [Grid::rate_from(p0, first), Grid::segment_rate_from(p0, first)];
                }
                Measure::Mean { limit, cap, .. } => {
                    let mu0 = (level / cap).clamp(1e-9, 1.0 - 1e-9);
                    f.measure = Measure::Mean { limit, cap, mu0 };
                    f.grids = [Grid::mean(mu0), Grid::mean(mu0)];
                }
            }
            for (s, cell) in f.cells.iter_mut().enumerate() {
                cell.detector = Detector::new(&f.grids[usize::from(s > 0)], 0);
            }
        }
        self
    }

    /// Number of tests: every guardrail's (every feature's, for mismatches; every level's,
    /// for latency) over all traffic and each segment.
    pub fn tests(&self) -> usize {
        self.families.len() * self.segments.len().max(1)
    }

    /// ln A for a guardrail's all-traffic test.
    pub fn log_threshold(&self) -> f64 {
        self.log_threshold[0]
    }

    /// ln A for a guardrail's test in one segment.
    pub fn log_threshold_segment(&self) -> f64 {
        self.log_threshold[1]
    }

    /// Adds one request's evidence. A test that stepped adds its growth to the bound on the
    /// sum; when the bound reaches 1 the sum is read exactly, as a look would read it, and
    /// if it is at 1 the judge raises its alarm (the statistic is anytime-valid, so reading
    /// it after any request keeps the guarantee).
    pub fn add(&mut self, o: &Observation<'_>) {
        let segs = o.segments;
        let [all, answered, shadow] = &mut self.counts;
        for &s in segs {
            all[s] += 1;
        }
        let mut grew = 0.0;
        let mut events = |families: &mut [Family], i: Option<usize>, event: bool| {
            if let (Some(i), true) = (i, event) {
                for &s in segs {
                    grew += families[i].event(s, all[s]);
                }
            }
        };
        if let Some(range) = &self.mismatch {
            for (i, &m) in range.clone().zip(o.mismatches) {
                events(&mut self.families, Some(i), m);
            }
        }
        events(&mut self.families, self.errors, o.error);
        events(&mut self.families, self.timeouts, o.timeout);
        if let Some((levels, c)) = &self.latency_abs {
            for i in levels.clone() {
                let k = self.families[i].level;
                events(&mut self.families, Some(i), past(o, k, k * c));
            }
        }
        if let Some((levels, ratio)) = &self.latency_ratio {
            for &s in segs {
                let reference = &mut self.references[s];
                match reference.p99 {
                    Some(c) => {
                        for f in &mut self.families[levels.clone()] {
                            // Paired: a call legacy was as slow on (past the same multiple of
                            // its own p99) is noise both stacks share, not the new stack's tail.
                            let k = f.level;
                            if past(o, k, k * ratio * c) && (o.timeout || o.legacy_ms <= k * c) {
                                grew += f.event(s, all[s]);
                            }
                        }
                    }
                    None => {
                        let needed = if s == 0 { LATENCY_REFERENCE } else { SEGMENT_LATENCY_REFERENCE };
                        if reference.add(o.legacy_ms, needed).is_some() {
                            for f in &mut self.families[levels.clone()] {
                                let cell = &mut f.cells[s];
                                cell.base = Some(all[s]);
                                cell.detector = Detector::new(&f.grids[usize::from(s > 0)], all[s]);
                            }
                        }
                    }
                }
            }
        }
        if o.shadow {
            grew += count(shadow, &mut self.families, segs, self.shadow_context, o.shadow_context_mismatch);
        }
        if o.answered {
            grew += count(answered, &mut self.families, segs, self.flips, o.flipped);
            for (i, raw) in [(self.score, o.abs_score_diff), (self.rel_score, o.rel_score_diff)] {
                if let Some(i) = i {
                    for &s in segs {
                        grew += self.families[i].value(s, answered[s], raw);
                    }
                }
            }
        }
        if grew > 0.0 {
            self.bound += grew;
            if self.bound >= 1.0 && !self.alarm {
                let terms = self.terms(true);
                self.alarm = self.rebound(&terms) >= 1.0;
            }
        }
    }

    /// A look: every test applies what rested and starts a new e-process (if it saw
    /// anything since its last); the statistics the check reads.
    pub fn look(&mut self) {
        for f in &mut self.families {
            f.look(&self.counts[f.seen as usize], self.planned);
        }
    }

    /// Each test's term, ln(alpha w_k R_k / Z): its statistic less its threshold, at the
    /// last look or, with `now`, after the last request; None while it has too little
    /// evidence (dropping terms keeps the bound).
    fn terms(&self, now: bool) -> Vec<Vec<Option<f64>>> {
        let terms = self.families.iter().map(|f| {
            let counts = &self.counts[f.seen as usize];
            let term = |(s, cell): (usize, &Cell)| {
                let ln_r = if now {
                    cell.detector.log_statistic(&f.grids[usize::from(s > 0)], counts[s])
                } else {
                    cell.detector.looked()
                };
                (f.observations(s, counts[s]) >= self.min_evidence).then(|| ln_r - f.thresholds[usize::from(s > 0)])
            };
            f.cells.iter().enumerate().map(term).collect()
        });
        terms.collect()
    }

    /// Counts these terms as the tests' own, the bound on the sum being their sum; returns
    /// it.
    fn rebound(&mut self, terms: &[Vec<Option<f64>>]) -> f64 {
        let mut sum = 0.0;
        for (f, t) in self.families.iter_mut().zip(terms) {
            for (cell, t) in f.cells.iter_mut().zip(t) {
                cell.counted = t.map_or(0.0, f64::exp);
                sum += cell.counted;
            }
        }
        self.bound = sum;
        sum
    }

    /// Rolls back when the weighted sum of every test's statistic at the last look reaches
    /// 1/alpha (the supermartingale of the guarantee itself, so evidence two tests see at
    /// once adds up); see [`Sequential::trigger`].
    pub fn check(&self, features: &[String]) -> Option<Trigger> {
        self.trigger(&self.terms(false), features)
    }

    /// When the sum of these terms reaches 1, the trigger (see [`Sequential::named`]).
    fn trigger(&self, terms: &[Vec<Option<f64>>], features: &[String]) -> Option<Trigger> {
        let total: f64 = terms.iter().flatten().flatten().map(|x| x.exp()).sum();
        if total < 1.0 {
            return None;
        }
        self.named(terms, features)
    }

    /// What these terms point at: the first family, in check order (causes before
    /// effects), carrying at least a quarter of the sum, else the family carrying most;
    /// within it, the test carrying most, over all traffic on a tie. None when no test has
    /// evidence to count.
    fn named(&self, terms: &[Vec<Option<f64>>], features: &[String]) -> Option<Trigger> {
        let family_sum = |t: &Vec<Option<f64>>| t.iter().flatten().map(|x| x.exp()).sum::<f64>();
        let sums: Vec<f64> = terms.iter().map(family_sum).collect();
        let total: f64 = sums.iter().sum();
        if total <= 0.0 {
            return None;
        }
        let largest = (0..sums.len()).max_by(|&a, &b| sums[a].total_cmp(&sums[b]))?;
        let i = (0..sums.len()).find(|&i| sums[i] >= total / 4.0).unwrap_or(largest);
        let mut s = 0;
        for (c, t) in terms[i].iter().enumerate() {
            if t.is_some_and(|t| terms[i][s].is_none_or(|b| t > b)) {
                s = c;
            }
        }
        let f = &self.families[i];
        let counts = &self.counts[f.seen as usize];
        let feature = self.mismatch.as_ref().filter(|r| r.contains(&i)).map(|r| features[i - r.start].clone());
        Some(Trigger {
            guardrail: f.guardrail.name().into(),
            feature,
            segment: (s > 0).then(|| self.segments[s].clone()),
            observed: f.observed(s, counts[s]),
            limit: f.limit,
            held_s: None,
        })
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

    fn alarm(&self) -> bool {
        self.alarm
    }

    /// The test the terms last counted point at (see [`Sequential::named`]).
    fn leaning(&self, features: &[String]) -> Option<Trigger> {
        let terms: Vec<Vec<Option<f64>>> = self
            .families
            .iter()
            .map(|f| f.cells.iter().map(|c| (c.counted > 0.0).then(|| c.counted.ln())).collect())
            .collect();
        self.named(&terms, features)
    }

    /// Per guardrail, its part of the weighted sum the judge rolls back on when it reaches 1:
    /// the terms of its tests (every segment's, every family's) as the last judgement read
    /// them (after the request that raised an alarm, or at the last look). The parts add up
    /// to the sum itself.
    fn evidence(&self) -> Vec<(Guardrail, f64)> {
        let mut out: Vec<(Guardrail, f64)> = Vec::new();
        for f in &self.families {
            let part: f64 = f.cells.iter().map(|c| c.counted).sum();
            match out.iter_mut().find(|(n, _)| *n == f.guardrail) {
                Some((_, x)) => *x += part,
                None => out.push((f.guardrail, part)),
            }
        }
        out
    }

    fn save(&self) -> JudgeSnapshot {
        let state = SequentialState {
            counts: self.counts.clone(),
            cells: self.families.iter().map(|f| f.cells.clone()).collect(),
            references: self.references.clone(),
            bound: self.bound,
            alarm: self.alarm,
        };
        Box::new(move || serde_json::to_value(state).unwrap_or_default())
    }

    fn restore(&mut self, state: &serde_json::Value) -> Result<(), String> {
        let s: SequentialState =
            serde_json::from_value(state.clone()).map_err(|e| format!("the judge's state: {e}"))?;
        let shape = |cells: &[Vec<Cell>]| cells.iter().map(Vec::len).collect::<Vec<_>>();
        let mine: Vec<Vec<Cell>> = self.families.iter().map(|f| f.cells.clone()).collect();
        // Each test's alternatives as its grid has them now (a [rare_below] level changed
        // since may change them).
        let grids_fit = self.families.iter().zip(&s.cells).all(|(f, cells)| {
            cells
                .iter()
                .enumerate()
                .all(|(k, c)| c.detector.alternatives() == f.grids[usize::from(k > 0)].alternatives())
        });
        let same = shape(&s.cells) == shape(&mine)
            && grids_fit
            && s.counts.iter().zip(&self.counts).all(|(a, b)| a.len() == b.len())
            && s.references.len() == self.references.len();
        if !same {
            return Err("the judge's state was saved under other guardrails, features, segments or [rare_below] \
                        levels, or by a version of cutover whose tests differ (a latency guardrail tests four levels \
                        since issue 30): start the rollout afresh"
                .into());
        }
        for (f, cells) in self.families.iter_mut().zip(s.cells) {
            f.cells = cells;
        }
        self.counts = s.counts;
        self.references = s.references;
        self.bound = s.bound;
        self.alarm = s.alarm;
        Ok(())
    }

    fn acts_after(&self, _guardrails: &[(Guardrail, f64)], _min_window: u64) -> Vec<(Guardrail, u64)> {
        let mut out: Vec<(Guardrail, u64)> = Vec::new();
        for (i, f) in self.families.iter().enumerate() {
            // The ratio's test begins once legacy's reference p99 is fixed.
            let ratio = self.latency_ratio.as_ref().is_some_and(|(r, _)| r.contains(&i));
            let reference = if ratio { LATENCY_REFERENCE as u64 } else { 0 };
            let n = f.min_evidence.saturating_add(reference);
            match out.iter_mut().find(|(g, _)| *g == f.guardrail) {
                Some((_, m)) => *m = (*m).max(n),
                None => out.push((f.guardrail, n)),
            }
        }
        out
    }

    fn judge(&mut self, window: &Window, _guardrails: &[(Guardrail, f64)], features: &[String]) -> Verdict {
        if let (Some(limit), Some(lag)) = (self.staleness, window.staleness_s) {
            if lag > limit {
                let t = Trigger {
                    guardrail: Guardrail::FeatureStalenessS.name().into(),
                    feature: None,
                    segment: None,
                    observed: lag,
                    limit,
                    held_s: None,
                };
                return Verdict::RollBack(t);
            }
        }
        // The alarm: the sum reached 1 after a request since the last look (the caller
        // judges at once, before another request).
        if std::mem::take(&mut self.alarm) {
            // Counted as read (what the evidence shows); a look recounts them below if the
            // sum fell short after all.
            let terms = self.terms(true);
            self.rebound(&terms);
            if let Some(t) = self.trigger(&terms, features) {
                return Verdict::RollBack(t);
            }
        }
        // The look starts new e-processes before the check: one at 1 adds to the sum what
        // the supermartingale of the guarantee already counts (the weight of starts to
        // come), so reading it now keeps the bound.
        self.look();
        let terms = self.terms(false);
        self.rebound(&terms);
        match self.trigger(&terms, features) {
            Some(t) => Verdict::RollBack(t),
            None => Verdict::Pass,
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    fn judge(segments: usize) -> Sequential {
        let names = (0..segments).map(|s| if s == 0 { "all".to_string() } else { format!("country=C{s}") }).collect();
        Sequential::new(
            &[(Guardrail::ErrorRate, 0.01), (Guardrail::DecisionFlipRate, 0.002)],
            0,
            names,
            0.01,
            200,
            720,
            false,
        )
    }

    fn observation<'a>(segments: &'a [usize], error: bool) -> Observation<'a> {
        Observation {
            answered: !error,
            flipped: false,
            abs_score_diff: 0.0,
            rel_score_diff: 0.0,
            wrong: false,
            mismatches: &[],
            segments,
            legacy_ms: 10.0,
            new_ms: 10.0,
            error,
            timeout: false,
            shadow: false,
            shadow_context_mismatch: false,
            served_new: false,
        }
    }

    #[test]
    fn errors_confined_to_a_small_segment_are_named_by_their_segment() {
        let mut j = judge(21);
        let window = Window::new(0);
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut looks = 0;
        // 100 rps over 20 segments; from look 100 on, half of segment 7's requests fail:
        // 2.5 % of all traffic, close to the 1 % limit, but 50 % in the segment.
        let trigger = (0..300_000).find_map(|i| {
            let s = 1 + rng.random_range(0..20);
            let error = looks >= 100 && s == 7 && rng.random::<f64>() < 0.5;
            j.add(&observation(&[0, s], error));
            if i % 500 == 499 {
                looks += 1;
                if let Verdict::RollBack(t) = j.judge(&window, &[], &[]) {
                    return Some((looks, t));
                }
            }
            None
        });
        let (at, t) = trigger.expect("rolled back");
        assert_eq!((t.guardrail.as_str(), t.segment.as_deref()), (Guardrail::ErrorRate.name(), Some("country=C7")));
        assert!(at <= 102, "rolled back at look {at}, the fault began at look 100");
    }

    #[test]
    fn a_fault_everywhere_is_named_for_all_traffic() {
        let mut j = judge(21);
        let window = Window::new(0);
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        let trigger = (0..100_000).find_map(|i| {
            let s = 1 + rng.random_range(0..20);
            j.add(&observation(&[0, s], rng.random::<f64>() < 0.2));
            (i % 500 == 499).then(|| j.judge(&window, &[], &[])).and_then(|v| match v {
                Verdict::RollBack(t) => Some(t),
                _ => None,
            })
        });
        let t = trigger.expect("rolled back");
        assert_eq!((t.guardrail.as_str(), t.segment), (Guardrail::ErrorRate.name(), None));
    }

    #[test]
    fn evidence_two_tests_see_at_once_adds_up() {
        // A call past both latency limits (150 ms against 100 ms, and against 10 x legacy's
        // 10 ms p99) is an exceedance of both latency guardrails' tests at the limit: the two
        // statistics grow together, and the judge rolls back on their weighted sum before
        // either alone is past its threshold, naming the first in check order.
        let guardrails = [(Guardrail::P99LatencyMs, 100.0), (Guardrail::P99LatencyRatio, 10.0)];
        let mut j = Sequential::new(&guardrails, 0, vec!["all".into()], 0.01, 200, 2000, false);
        let window = Window::new(0);
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let segments = [0];
        let (mut trigger, mut alarm) = (None, false);
        for i in 0..400_000 {
            // 1.5x the limit: an event moves the statistics less than ln 2, the sum's gain.
            let mut o = observation(&segments, false);
            if i >= 20_000 && rng.random::<f64>() < 0.015 {
                o.new_ms = 150.0;
            }
            j.add(&o);
            // Short looks: the sum crosses 1 between two looks, not in one jump past both;
            // an alarm between them is judged at once, on the sum after the request.
            alarm = j.alarm();
            if alarm || i % 20 == 19 {
                if let Verdict::RollBack(t) = j.judge(&window, &[], &[]) {
                    trigger = Some(t);
                    break;
                }
            }
        }
        let t = trigger.expect("rolled back");
        assert_eq!(t.guardrail, Guardrail::P99LatencyMs.name());
        let terms = j.terms(alarm);
        // The tests at the limit (the first of each guardrail's levels) carry the evidence.
        let at_limit = [terms[0][0], terms[LATENCY_LEVELS.len()][0]];
        let alone: Vec<f64> = at_limit.iter().map(|t| t.expect("enough evidence")).collect();
        assert!(alone.iter().all(|x| *x < 0.0), "a test alone was past its threshold: {alone:?}");
        let sum: f64 = terms.iter().flatten().flatten().map(|x| x.exp()).sum();
        assert!(sum >= 1.0 && alone.iter().map(|x| x.exp()).sum::<f64>() >= 0.99 * sum);
    }

    #[test]
    fn the_alarm_rises_at_the_request_that_brings_the_sum_to_one_and_not_before() {
        // Errors and timeouts over all traffic and four segments, looks every 500
        // requests; from request 20 000 on, 4 % of one segment's requests fail and 2 % of
        // all time out. After every request the exact sum (every test brought up to now)
        // is read beside the alarm: the bound the judge keeps between looks must never
        // miss a crossing, nor raise the alarm below it.
        let guardrails = [(Guardrail::ErrorRate, 0.01), (Guardrail::TimeoutRate, 0.01)];
        let names: Vec<String> = (0..5).map(|s| if s == 0 { "all".into() } else { format!("s={s}") }).collect();
        let window = Window::new(0);
        let mut alarms = 0;
        for seed in 0..20 {
            let mut j = Sequential::new(&guardrails, 0, names.clone(), 0.01, 200, 2000, false);
            let mut rng = ChaCha8Rng::seed_from_u64(100 + seed);
            let mut rolled_back = false;
            for i in 0..60_000 {
                let s = 1 + rng.random_range(0..4);
                let fault = i >= 20_000;
                let segments = [0, s];
                let mut o = observation(&segments, fault && s == 2 && rng.random::<f64>() < 0.04);
                o.timeout = fault && rng.random::<f64>() < 0.02;
                j.add(&o);
                let sum: f64 = j.terms(true).iter().flatten().flatten().map(|t| t.exp()).sum();
                assert_eq!(j.alarm(), sum >= 1.0, "seed {seed} request {i}: alarm {} at sum {sum}", j.alarm());
                if j.alarm() {
                    alarms += 1;
                    assert!(i >= 20_000, "seed {seed}: an alarm on clean traffic at request {i}");
                    assert!(matches!(j.judge(&window, &[], &[]), Verdict::RollBack(_)), "seed {seed}");
                    rolled_back = true;
                    break;
                }
                if i % 500 == 499 {
                    if let Verdict::RollBack(_) = j.judge(&window, &[], &[]) {
                        rolled_back = true;
                        break;
                    }
                }
            }
            assert!(rolled_back, "seed {seed}: never rolled back");
        }
        // Most rollbacks come between looks (499 requests of every 500).
        assert!(alarms >= 15, "{alarms} of 20 rollbacks by the alarm");
    }

    #[test]
    fn segments_split_the_budget_and_every_guardrail_is_tested_per_segment() {
        let one = judge(1);
        let many = judge(35);
        assert_eq!((one.tests(), many.tests()), (2, 70));
        // Three quarters of the budget for the two all-traffic tests, a quarter for the 68
        // segment tests.
        assert!((many.log_threshold() - one.log_threshold() - (4.0f64 / 3.0).ln()).abs() < 1e-9);
        assert!((many.log_threshold_segment() - one.log_threshold() - (4.0 * 34.0f64).ln()).abs() < 1e-9);
        // Nothing grows with the request rate: the looks set it.
        assert!((one.log_threshold() - (start_budget(720).ln() + 100f64.ln() + 2f64.ln())).abs() < 1e-9);
        assert!((start_budget(720) - 720.0 * 1.01 / LOOK_SHARE).abs() < 1e-9);
    }

    #[test]
    fn at_the_limit_in_every_segment_the_whole_judge_stays_within_its_budget() {
        // The hardest null: every segment's error rate exactly at the limit, every test
        // reading its statistic at every look. Over 200 runs of 40 000 requests (5 s looks
        // at 100 rps), alpha 0.1: at most 20 false rollbacks by the guarantee, 32 allowed
        // for binomial noise; and the evidence of every test is summed in one budget, so
        // 20 segments do not multiply it.
        let names: Vec<String> =
            (0..21).map(|s| if s == 0 { "all".to_string() } else { format!("country=C{s}") }).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let window = Window::new(0);
        let runs = 200;
        let false_rollbacks = (0..runs)
            .filter(|_| {
                let mut j = Sequential::new(&[(Guardrail::ErrorRate, 0.01)], 0, names.clone(), 0.1, 200, 80, false);
                (0..40_000).any(|i| {
                    let s = 1 + rng.random_range(0..20);
                    j.add(&observation(&[0, s], rng.random::<f64>() < 0.01));
                    i % 500 == 499 && matches!(j.judge(&window, &[], &[]), Verdict::RollBack(_))
                })
            })
            .count();
        assert!(false_rollbacks <= 32, "{false_rollbacks} of {runs} clean runs rolled back");
    }

    /// A latency judge at 20 rps (looks every 100 requests) over `n` requests of which
    /// `slow(i, rng)` decides each call's latency: the requests to a rollback, if any.
    fn latency_run(n: usize, seed: u64, slow: &dyn Fn(usize, &mut ChaCha8Rng) -> f64) -> Option<usize> {
        let guardrails = [(Guardrail::P99LatencyMs, 100.0)];
        let mut j = Sequential::new(&guardrails, 0, vec!["all".into()], 0.01, 200, 1441, false);
        let window = Window::new(0);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let segments = [0];
        (0..n).find(|&i| {
            let mut o = observation(&segments, false);
            o.new_ms = slow(i, &mut rng);
            j.add(&o);
            (j.alarm() || i % 100 == 99) && matches!(j.judge(&window, &[], &[]), Verdict::RollBack(_))
        })
    }

    /// Issue 30: 2 % of calls moved to three times a 100 ms p99 limit are caught within a
    /// minute at 20 requests per second (median over 30 runs), where a test of the p99 alone
    /// (1 % past the limit) needs minutes: the tail past twice the limit may hold at most
    /// 0.5 % of calls.
    #[test]
    fn a_tail_at_three_times_the_limit_is_caught_within_a_minute_at_20_rps() {
        let tail = |_: usize, rng: &mut ChaCha8Rng| if rng.random::<f64>() < 0.02 { 310.0 } else { 30.0 };
        let mut secs: Vec<f64> =
            (0..30).map(|seed| latency_run(40_000, seed, &tail).expect("caught") as f64 / 20.0).collect();
        secs.sort_by(f64::total_cmp);
        let median = (secs[14] + secs[15]) / 2.0;
        assert!(median < 60.0, "median {median:.1} s: {secs:?}");
    }

    /// Issue 30: slow calls that come in clusters (a stall slows 40 calls in a row, two
    /// seconds at 20 rps, once every 2 000 calls, on top of 0.3 % of calls past the limit
    /// at random) are a clean stack by its p99 (about 2.3 % of calls past the limit, but 0.35 %
    /// of calls start a cluster): counted as clusters, 100 such runs of 20 000 requests stay
    /// within the 1 % budget (4 allowed for noise).
    #[test]
    fn clustered_stalls_are_counted_once_and_keep_the_budget() {
        let stalls = |i: usize, rng: &mut ChaCha8Rng| {
            let in_stall = (i + 7 * 13) % 2000 < 40;
            if in_stall {
                450.0
            } else if rng.random::<f64>() < 0.003 {
                150.0
            } else {
                30.0
            }
        };
        let rolled_back = (0..100).filter(|&seed| latency_run(20_000, 1000 + seed, &stalls).is_some()).count();
        assert!(rolled_back <= 4, "{rolled_back} of 100 clean runs with stalls rolled back");
    }

    /// Requests until a rollback, errors at `rate` from request 0, looks every 500 (None:
    /// not within `n`).
    fn to_rollback(j: &mut Sequential, rate: f64, n: usize, rng: &mut ChaCha8Rng) -> Option<usize> {
        let window = Window::new(0);
        (0..n).find(|&i| {
            j.add(&observation(&[0], rng.random::<f64>() < rate));
            (j.alarm() || i % 500 == 499) && matches!(j.judge(&window, &[], &[]), Verdict::RollBack(_))
        })
    }

    /// Issue 30: a plan that says rollbacks must stay rare at or below half the limit (an
    /// indifference zone from 0.5 % to a 1 % limit) keeps its budget at 0.5 % and catches
    /// twice the limit in far fewer requests than a plan whose null is the limit itself.
    #[test]
    fn an_indifference_zone_keeps_the_budget_at_its_level_and_buys_speed_at_the_limit() {
        let plan = |zone: bool| {
            let j = Sequential::new(&[(Guardrail::ErrorRate, 0.01)], 0, vec!["all".into()], 0.1, 200, 400, false);
            if zone {
                j.with_nulls(&[(Guardrail::ErrorRate, 0.005)])
            } else {
                j
            }
        };
        let mut rng = ChaCha8Rng::seed_from_u64(30);
        // At the null's level: at most alpha = 10 % of 200 runs roll back (32 allowed for noise).
        let false_rollbacks =
            (0..200).filter(|_| to_rollback(&mut plan(true), 0.005, 100_000, &mut rng).is_some()).count();
        assert!(false_rollbacks <= 32, "{false_rollbacks} of 200 runs at 0.5 % rolled back");
        // At twice the limit: the mean requests to a rollback over 40 runs.
        let mean = |zone: bool, rng: &mut ChaCha8Rng| {
            let n: usize = (0..40).map(|_| to_rollback(&mut plan(zone), 0.02, 200_000, rng).expect("caught")).sum();
            n as f64 / 40.0
        };
        let (with, without) = (mean(true, &mut rng), mean(false, &mut rng));
        assert!(with < 0.6 * without, "{with:.0} requests with the zone, {without:.0} without");
    }

    /// (Issue 28: a router that restarts resumes with the judge's evidence.) A judge saved
    /// halfway through a fault and restored into a fresh one under the same plan goes on
    /// exactly as the one that never stopped: the same evidence after every look, the same
    /// alarm at the same request, the same trigger.
    #[test]
    fn a_saved_judge_restored_goes_on_exactly_as_if_it_had_never_stopped() {
        let guardrails =
            [(Guardrail::ErrorRate, 0.01), (Guardrail::TimeoutRate, 0.01), (Guardrail::P99LatencyRatio, 3.0)];
        let names: Vec<String> = (0..5).map(|s| if s == 0 { "all".into() } else { format!("country=C{s}") }).collect();
        let fresh = || Sequential::new(&guardrails, 0, names.clone(), 0.01, 200, 2000, false);
        let window = Window::new(0);
        let mut rng = ChaCha8Rng::seed_from_u64(28);
        let draws: Vec<(usize, bool, bool, f64)> = (0..60_000)
            .map(|i| {
                let faulty = i >= 30_000;
                let s = 1 + rng.random_range(0..4);
                (
                    s,
                    rng.random::<f64>() < if faulty { 0.02 } else { 0.002 },
                    rng.random::<f64>() < 0.001,
                    rng.random::<f64>() * 20.0,
                )
            })
            .collect();
        type Log = Vec<(usize, Vec<(Guardrail, f64)>, bool)>;
        let run = |j: &mut Sequential, from: usize, to: usize, log: &mut Log| {
            for (i, &(s, error, timeout, ms)) in draws.iter().enumerate().take(to).skip(from) {
                let segments = [0, s];
                let mut o = observation(&segments, error);
                o.timeout = timeout;
                o.new_ms = ms;
                o.legacy_ms = ms;
                j.add(&o);
                if i % 250 == 249 || j.alarm() {
                    let v = j.judge(&window, &[], &[]);
                    log.push((i, j.evidence(), matches!(v, Verdict::RollBack(_))));
                    if matches!(v, Verdict::RollBack(_)) {
                        return true;
                    }
                }
            }
            false
        };
        let (mut whole, mut whole_log) = (fresh(), Vec::new());
        assert!(run(&mut whole, 0, draws.len(), &mut whole_log), "the fault was caught");
        let (mut before, mut log) = (fresh(), Vec::new());
        assert!(!run(&mut before, 0, 31_000, &mut log), "caught before the restart: pick an earlier one");
        // Each guardrail's part of the weighted sum (1 rolls back): the errors' is e^-8 of it.
        assert!(before.evidence().iter().any(|(_, e)| *e > 1e-4), "no evidence to carry: {:?}", before.evidence());
        let saved = serde_json::to_string(&(before.save())()).unwrap();
        let mut after = fresh();
        after.restore(&serde_json::from_str(&saved).unwrap()).unwrap();
        assert!(run(&mut after, 31_000, draws.len(), &mut log));
        assert_eq!(log.len(), whole_log.len());
        for (a, b) in log.iter().zip(&whole_log) {
            assert_eq!(a.0, b.0);
            assert_eq!(a.2, b.2);
            for ((n, x), (m, y)) in a.1.iter().zip(&b.1) {
                assert_eq!((n, x.to_bits()), (m, y.to_bits()), "at request {}", a.0);
            }
        }
        // A state saved under other guardrails is refused.
        let mut other = Sequential::new(&guardrails[..2], 0, names.clone(), 0.01, 200, 2000, false);
        assert!(other.restore(&serde_json::from_str(&saved).unwrap()).is_err());
    }
}
