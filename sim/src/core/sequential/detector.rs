//! The e-detector of one test: a Shiryaev-Roberts sum of e-processes, one started at every
//! look and one more at each burst (right after the event that brings a look interval to the
//! limit's rate, after an interval below it), each a product of likelihood ratios (rates) or
//! of bets (means), mixed over a grid of alternatives. See docs/sequential.md for the
//! guarantee.

/// Rate alternatives over all traffic, as multiples of the limit: a fine grid where
/// effects are small and detection slow (three quarters of the weight), then a coarse one
/// up towards 1.
const RATE_FINE: (f64, f64, f64) = (1.15, 1.17, 3.5);
const RATE_COARSE: (f64, f64) = (4.5, 1.6);
const RATE_FINE_WEIGHT: f64 = 0.75;
/// Rate alternatives of a segment's test: a fault confined to a segment matters when it is
/// large there, so a coarser grid (and a cheaper look) serves.
const SEGMENT_RATE: (f64, f64) = (1.5, 2.0);
/// Alternatives at most.
const MAX_ALTERNATIVES: usize = 24;
/// Bets per mean test.
const MEAN_GRID: usize = 12;
/// The share of the budget kept for starts beyond the planned looks.
pub const TAIL: f64 = 0.01;
/// The share of the start budget spent on starts at looks (the rest on starts at bursts).
pub const LOOK_SHARE: f64 = 0.5;

/// A test's alternatives: per alternative its weight in the mixture (they sum to 1), the
/// log factor of a resting observation (a non-event, a zero difference) and, for rates,
/// the factor of an event (p1 / p0) or, for means, the bet lambda.
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    /// The limit, p0 or mu0: a look interval is eventful when its events (or values) reach
    /// it on average.
    level: f64,
    weight: Vec<f64>,
    ln_rest: Vec<f64>,
    up: Vec<f64>,
}

impl Grid {
    /// Alternatives p1 > p0 for an all-traffic rate test of `p <= p0`.
    pub fn rate(p0: f64) -> Grid {
        let fine = geometric(p0, RATE_FINE.0, RATE_FINE.1, RATE_FINE.2);
        let coarse = geometric(p0, RATE_COARSE.0, RATE_COARSE.1, f64::INFINITY);
        Grid::rates(p0, fine, coarse, RATE_FINE_WEIGHT)
    }

    /// Alternatives p1 >= `first` x p0 for an all-traffic rate test of `p <= p0` whose
    /// limit lies `first` times above its null (an indifference zone between them): the
    /// grid of [`Grid::rate`] moved up to start at the limit.
    pub fn rate_from(p0: f64, first: f64) -> Grid {
        if first <= RATE_FINE.0 {
            return Grid::rate(p0);
        }
        let scale = first / RATE_FINE.0;
        let fine = geometric(p0, first, RATE_FINE.1, RATE_FINE.2 * scale);
        let coarse = geometric(p0, RATE_COARSE.0 * scale, RATE_COARSE.1, f64::INFINITY);
        Grid::rates(p0, fine, coarse, RATE_FINE_WEIGHT)
    }

    /// A segment's alternatives at or above `first` x p0 (see [`Grid::rate_from`]).
    pub fn segment_rate_from(p0: f64, first: f64) -> Grid {
        let first = first.max(SEGMENT_RATE.0);
        Grid::rates(p0, geometric(p0, first, SEGMENT_RATE.1, f64::INFINITY), Vec::new(), 1.0)
    }

    /// Alternatives p1 > p0 for a segment's rate test of `p <= p0`.
    pub fn segment_rate(p0: f64) -> Grid {
        Grid::rates(p0, geometric(p0, SEGMENT_RATE.0, SEGMENT_RATE.1, f64::INFINITY), Vec::new(), 1.0)
    }

    fn rates(p0: f64, mut fine: Vec<f64>, coarse: Vec<f64>, fine_weight: f64) -> Grid {
        if fine.is_empty() && coarse.is_empty() {
            // A limit so close to 1 that no multiple fits: halfway to 1.
            fine.push((1.0 + p0) / 2.0 / p0);
        }
        let share = |n: usize, w: f64, other: usize| if other == 0 { 1.0 / n as f64 } else { w / n as f64 };
        let mut weight = vec![share(fine.len(), fine_weight, coarse.len()); fine.len()];
        weight.extend(vec![share(coarse.len(), 1.0 - fine_weight, fine.len()); coarse.len()]);
        let up: Vec<f64> = fine.into_iter().chain(coarse).collect();
        let ln_rest = up.iter().map(|m| ((1.0 - m * p0) / (1.0 - p0)).ln()).collect();
        Grid { level: p0, weight, ln_rest, up }
    }

    /// Bets lambda in (0, 1/(2 mu0)] for a mean test of `mean <= mu0`, values in [0, 1].
    pub fn mean(mu0: f64) -> Grid {
        let up: Vec<f64> = (0..MEAN_GRID).map(|i| 0.5 / mu0 / 2f64.powi(i as i32)).collect();
        let ln_rest = up.iter().map(|l| (-l * mu0).ln_1p()).collect();
        Grid { level: mu0, weight: vec![1.0 / MEAN_GRID as f64; MEAN_GRID], ln_rest, up }
    }

    /// Alternatives.
    pub fn alternatives(&self) -> usize {
        self.up.len()
    }

    /// Rates: the factor of an event under alternative `g`.
    #[inline]
    pub fn event(&self, g: usize) -> f64 {
        self.up[g]
    }

    /// Means: the factor of a value `x` in (0, 1] under bet `g`.
    #[inline]
    pub fn bet(&self, g: usize, x: f64, mu0: f64) -> f64 {
        1.0 + self.up[g] * (x - mu0)
    }
}

/// Multiples of `p0` from `first`, times `ratio`, up to `last` and below 1.
fn geometric(p0: f64, first: f64, ratio: f64, last: f64) -> Vec<f64> {
    let mut out = Vec::new();
    let mut m = first;
    while m <= last && p0 * m < 1.0 && out.len() < MAX_ALTERNATIVES {
        out.push(m);
        m *= ratio;
    }
    out
}

/// The relative weight of start number `s` (from 1): planned starts weigh 1, those beyond
/// `planned` share TAIL x planned as TAIL planned / (m (m + 1)). The weights sum to
/// planned (1 + TAIL).
pub fn start_weight(s: u64, planned: u64) -> f64 {
    if s <= planned {
        1.0
    } else {
        let m = (s - planned) as f64;
        TAIL * planned as f64 / (m * (m + 1.0))
    }
}

/// Z, a test's whole start budget on the scale where a planned look's start weighs 1: the
/// looks' starts take planned (1 + TAIL), a share LOOK_SHARE of it.
pub fn start_budget(planned: u64) -> f64 {
    planned as f64 * (1.0 + TAIL) / LOOK_SHARE
}

/// The share of the bursts' budget the first burst start takes.
pub const FIRST_BURST: f64 = 0.9;

/// The relative weight of burst start number `m` (from 1): the bursts share the rest of the
/// budget, (1 - LOOK_SHARE) Z, the first FIRST_BURST of it, the m-th after it
/// (1 - FIRST_BURST) / ((m - 1) m).
pub fn burst_weight(m: u64, planned: u64) -> f64 {
    let share = if m <= 1 {
        FIRST_BURST
    } else {
        let m = m as f64;
        (1.0 - FIRST_BURST) / ((m - 1.0) * m)
    };
    (1.0 - LOOK_SHARE) * start_budget(planned) * share
}

/// The state of one test: per alternative, the Shiryaev-Roberts sum of the e-processes
/// started so far, sum over starts j of rho_j prod(factors since j) (planned starts weigh
/// rho = 1), as e^scale v. The observations are counted outside (one counter serves every
/// test of a kind of request); the resting ones among them (a non-event, a zero
/// difference: the same factor every time) are applied in bulk at the next event or look,
/// so the common clean request costs nothing here. Values that underflow to 0 only make
/// the statistic smaller, which keeps its guarantee.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Detector {
    #[serde(with = "crate::core::checkpoint::bits")]
    scale: f64,
    #[serde(with = "crate::core::checkpoint::bits::vec")]
    v: Vec<f64>,
    /// Observations applied to `v` (by the outside count).
    applied: u64,
    /// Starts made (the first at creation).
    starts: u64,
    /// The outside count when the last start was made.
    seen: u64,
    /// ln of the mixture at the last look.
    #[serde(with = "crate::core::checkpoint::bits")]
    last: f64,
    /// Events (rates) or the sum of values (means) applied so far, and at the last look.
    #[serde(with = "crate::core::checkpoint::bits")]
    mass: f64,
    #[serde(with = "crate::core::checkpoint::bits")]
    mass_looked: f64,
    /// Whether the interval before the last look was quiet (its events, or values, below
    /// the limit on average) and no burst start has been made since: the next burst start
    /// is made right after the event that brings this interval's mass to `bar`.
    armed: bool,
    /// The mass the limit gives the last look's interval (its observations times p0).
    #[serde(with = "crate::core::checkpoint::bits")]
    bar: f64,
    /// Whether a burst start was made in this interval.
    burst: bool,
    /// J, as of the last look.
    planned: u64,
    /// Burst starts made.
    bursts: u64,
}

impl Detector {
    /// A detector whose first e-process starts when the outside count is `n`.
    pub fn new(grid: &Grid, n: u64) -> Detector {
        Detector {
            scale: 0.0,
            v: vec![1.0; grid.alternatives()],
            applied: n,
            starts: 1,
            seen: n,
            last: 0.0,
            mass: 0.0,
            mass_looked: 0.0,
            armed: false,
            bar: 0.0,
            burst: false,
            planned: 0,
            bursts: 0,
        }
    }

    /// Applies the resting observations up to the outside count `n`.
    fn flush(&mut self, grid: &Grid, n: u64) {
        // Observations up to `applied` may lie ahead of `n`: skipped (see [`Detector::skip_until`]).
        let m = n.saturating_sub(self.applied);
        if m > 0 {
            for (v, lq) in self.v.iter_mut().zip(&grid.ln_rest) {
                *v *= (m as f64 * lq).exp();
            }
            self.applied = n;
        }
    }

    /// Applies observation number `n` (by the outside count), an event (`x` = 1) or a
    /// value `x` in (0, 1], whose factor under alternative `g` is `factor(g)`; those before
    /// it that were not applied rested.
    #[inline]
    pub fn step(&mut self, grid: &Grid, n: u64, x: f64, factor: impl Fn(usize) -> f64) {
        self.flush(grid, n - 1);
        self.mass += x;
        let mut max = 0.0f64;
        for (g, v) in self.v.iter_mut().enumerate() {
            *v *= factor(g);
            max = max.max(*v);
        }
        self.applied = n;
        if max > 1e100 {
            self.scale += max.ln();
            self.v.iter_mut().for_each(|v| *v /= max);
        }
        if self.armed && self.mass - self.mass_looked >= self.bar {
            // A burst: its e-process starts after this observation (whether it starts
            // depends only on what came before the next one).
            self.armed = false;
            self.burst = true;
            self.bursts += 1;
            self.add(burst_weight(self.bursts, self.planned));
        }
    }

    /// Skips the observations after the last applied one up to the outside count `n`: they
    /// are neither events nor resting (a latency test's requests right after an
    /// exceedance, which a stall makes likelier; skipping them is decided before they are
    /// seen, so the rest stay a valid sample).
    pub fn skip_until(&mut self, n: u64) {
        self.applied = self.applied.max(n);
    }

    /// Starts an e-process of weight `w` (a planned look's weighs 1) in every alternative.
    fn add(&mut self, w: f64) {
        if w > 0.0 {
            let w = w * (-self.scale).exp();
            self.v.iter_mut().for_each(|v| *v += w);
        }
    }

    /// A look at outside count `n`: applies what rested, then starts a new e-process if
    /// anything was observed since the last start (one started now would see exactly what
    /// the last one sees). An interval whose events (or values) reached the limit on
    /// average, or that made a burst start, is eventful; after a quiet one the test is
    /// armed for its next burst start (see [`Detector::step`]). `planned`: J. Returns ln
    /// of the mixture, sum_g w_g R_g.
    pub fn look(&mut self, grid: &Grid, n: u64, planned: u64) -> f64 {
        let interval = n - self.seen;
        self.flush(grid, n);
        self.planned = planned;
        if n != self.seen {
            self.seen = n;
            self.starts += 1;
            self.add(start_weight(self.starts, planned));
        }
        let (mass, at_limit) = (self.mass - self.mass_looked, interval as f64 * grid.level);
        let eventful = self.burst || (mass > 0.0 && mass >= at_limit);
        self.armed = !eventful;
        self.burst = false;
        self.bar = at_limit.max(f64::MIN_POSITIVE);
        self.mass_looked = self.mass;
        self.last = self.mixture(grid, 0);
        self.last
    }

    /// ln of the mixture with `pending` resting observations applied.
    fn mixture(&self, grid: &Grid, pending: u64) -> f64 {
        let p = pending as f64;
        let sum: f64 =
            self.v.iter().zip(&grid.weight).zip(&grid.ln_rest).map(|((v, w), lq)| v * w * (p * lq).exp()).sum();
        self.scale + sum.ln()
    }

    /// ln of the mixture right after a step (nothing rests unapplied).
    #[inline]
    pub fn current(&self, grid: &Grid) -> f64 {
        let sum: f64 = self.v.iter().zip(&grid.weight).map(|(v, w)| v * w).sum();
        self.scale + sum.ln()
    }

    /// ln of the mixture now, at outside count `n`.
    pub fn log_statistic(&self, grid: &Grid, n: u64) -> f64 {
        self.mixture(grid, n.saturating_sub(self.applied))
    }

    /// ln of the mixture at the last look.
    pub fn looked(&self) -> f64 {
        self.last
    }

    /// Alternatives held (memory does not grow with the run).
    pub fn alternatives(&self) -> usize {
        self.v.len()
    }
}

/// A one-sided e-detector for a Bernoulli rate on its own, H0 p <= p0, against the
/// all-traffic grid of alternatives p1 > p0.
#[derive(Debug, Clone, PartialEq)]
pub struct RateTest {
    grid: Grid,
    detector: Detector,
    /// Observations so far.
    pub n: u64,
    /// Successes (failures of the new stack, mismatches, exceedances).
    pub k: u64,
}

impl RateTest {
    /// A test of `p <= p0`.
    pub fn new(p0: f64) -> RateTest {
        let grid = Grid::rate(p0.clamp(1e-9, 1.0 - 1e-9));
        RateTest { detector: Detector::new(&grid, 0), grid, n: 0, k: 0 }
    }

    /// Adds one observation.
    pub fn add(&mut self, success: bool) {
        self.n += 1;
        if success {
            self.k += 1;
            let grid = &self.grid;
            self.detector.step(grid, self.n, 1.0, |g| grid.event(g));
        }
    }

    /// A look (starts a new e-process); ln of the statistic. `planned`: J.
    pub fn look(&mut self, planned: u64) -> f64 {
        self.detector.look(&self.grid, self.n, planned)
    }

    /// ln of the statistic now.
    pub fn log_statistic(&self) -> f64 {
        self.detector.log_statistic(&self.grid, self.n)
    }

    /// The grid.
    pub fn grid(&self) -> &Grid {
        &self.grid
    }

    /// The state.
    pub fn detector(&self) -> &Detector {
        &self.detector
    }
}

/// A one-sided e-detector for the mean of values in [0, 1] on its own, H0 mean <= mu0, by
/// betting.
#[derive(Debug, Clone, PartialEq)]
pub struct MeanTest {
    mu0: f64,
    grid: Grid,
    detector: Detector,
    /// Observations so far.
    pub n: u64,
    /// Values above zero so far.
    pub k: u64,
}

impl MeanTest {
    /// A test of `mean <= mu0`.
    pub fn new(mu0: f64) -> MeanTest {
        let mu0 = mu0.clamp(1e-9, 1.0 - 1e-9);
        let grid = Grid::mean(mu0);
        MeanTest { mu0, detector: Detector::new(&grid, 0), grid, n: 0, k: 0 }
    }

    /// Adds one observation.
    pub fn add(&mut self, x: f64) {
        self.n += 1;
        let x = x.clamp(0.0, 1.0);
        if x > 0.0 {
            self.k += 1;
            let (grid, mu0) = (&self.grid, self.mu0);
            self.detector.step(grid, self.n, x, |g| grid.bet(g, x, mu0));
        }
    }

    /// A look (starts a new e-process); ln of the statistic. `planned`: J.
    pub fn look(&mut self, planned: u64) -> f64 {
        self.detector.look(&self.grid, self.n, planned)
    }

    /// ln of the statistic now.
    pub fn log_statistic(&self) -> f64 {
        self.detector.log_statistic(&self.grid, self.n)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    /// Runs `runs` null sequences of `n` draws at exactly the limit, a look every `every`
    /// draws; counts those whose statistic, read after every draw, ever reached the
    /// threshold of one test with alpha over the n / every planned looks.
    fn null_crossings(p0: f64, runs: usize, n: usize, every: usize, alpha: f64, seed: u64) -> usize {
        let planned = (n / every) as u64;
        let log_a = start_budget(planned).ln() + (1.0 / alpha).ln();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..runs)
            .filter(|_| {
                let mut t = RateTest::new(p0);
                (0..n).any(|i| {
                    t.add(rng.random::<f64>() < p0);
                    let crossed = t.log_statistic() >= log_a;
                    if i % every == every - 1 {
                        t.look(planned);
                    }
                    crossed
                })
            })
            .count()
    }

    #[test]
    fn under_the_null_the_rate_test_stays_within_its_budget() {
        // 300 sequences of 20 000 requests at exactly the limit, a look every 100, alpha
        // 0.05: at most 15 expected by Ville, 25 allowed for binomial noise.
        let crossings = null_crossings(0.01, 300, 20_000, 100, 0.05, 1);
        assert!(crossings <= 25, "{crossings} of 300 crossed");
    }

    #[test]
    fn the_budget_is_not_loose_by_orders_of_magnitude() {
        // At alpha 0.5 the same null crosses now and then: the statistic is a real
        // supermartingale near its bound, not a test that never fires.
        let crossings = null_crossings(0.01, 300, 20_000, 100, 0.5, 3);
        assert!(crossings >= 3, "{crossings} of 300 crossed at alpha 0.5");
    }

    #[test]
    fn start_weights_sum_to_the_planned_looks_and_the_tail() {
        let planned = 1000;
        let sum: f64 = (1..=planned + 1_000_000).map(|s| start_weight(s, planned)).sum();
        let expected = planned as f64 * (1.0 + TAIL);
        assert!(sum <= expected && sum > expected * 0.9999, "{sum} against {expected}");
    }

    #[test]
    fn burst_weights_sum_to_their_share_of_the_start_budget() {
        let planned = 1000;
        let sum: f64 = (1..=1_000_000).map(|m| burst_weight(m, planned)).sum();
        // The looks' starts take planned (1 + TAIL); the bursts the rest of the budget.
        let share = start_budget(planned) - planned as f64 * (1.0 + TAIL);
        assert!(sum <= share && sum > share * 0.9999, "{sum} against {share}");
        // The first burst takes FIRST_BURST of it (0.9 of half of all the start budget),
        // the second a twentieth, and they shrink as 1 / ((m - 1) m) after it.
        assert!((burst_weight(1, planned) / start_budget(planned) - 0.45).abs() < 1e-12);
        assert!((burst_weight(2, planned) / start_budget(planned) - 0.025).abs() < 1e-12);
        assert!(burst_weight(3, planned) < burst_weight(2, planned));
    }

    #[test]
    fn under_a_null_of_quiet_stretches_and_bursts_at_the_limit_the_test_stays_within_its_budget() {
        // The null that bursts favour most: look intervals alternate at random between no
        // event at all and exactly the limit, so a burst start comes often and early ones
        // weigh much. 300 sequences, alpha 0.05: at most 15 by the guarantee, 25 allowed.
        let (p0, runs, n, every, alpha) = (0.01, 300, 20_000, 100, 0.05f64);
        let planned = (n / every) as u64;
        let log_a = start_budget(planned).ln() + (1.0 / alpha).ln();
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let crossings = (0..runs)
            .filter(|_| {
                let mut t = RateTest::new(p0);
                let mut quiet = true;
                (0..n).any(|i| {
                    t.add(!quiet && rng.random::<f64>() < p0);
                    let crossed = t.log_statistic() >= log_a;
                    if i % every == every - 1 {
                        t.look(planned);
                        quiet = rng.random::<f64>() < 0.5;
                    }
                    crossed
                })
            })
            .count();
        assert!(crossings <= 25, "{crossings} of {runs} crossed");
    }

    /// Observations a rate test needs to reach ln A after 100 looks of a prefix at
    /// `before`, a look every `every`, then draws at three times the limit (the same draws
    /// for every prefix).
    fn observations_to_confirm(before: f64, every: usize, seed: u64) -> usize {
        let (p0, planned) = (0.01, 1000);
        let log_a = start_budget(planned).ln() + 100f64.ln();
        let mut prefix = ChaCha8Rng::seed_from_u64(seed);
        let mut t = RateTest::new(p0);
        for i in 0..100 * every {
            t.add(prefix.random::<f64>() < before);
            if i % every == every - 1 {
                t.look(planned);
            }
        }
        let mut after = ChaCha8Rng::seed_from_u64(seed + 1000);
        let mut n = 0;
        while t.log_statistic() < log_a && n < 100_000 {
            t.add(after.random::<f64>() < 3.0 * p0);
            n += 1;
            if n % every == 0 {
                t.look(planned);
            }
        }
        n
    }

    /// Over 20 seeds, the average observations to confirm after each prefix.
    fn average_to_confirm(before: f64, every: usize) -> usize {
        (0..20).map(|seed| observations_to_confirm(before, every, seed)).sum::<usize>() / 20
    }

    #[test]
    fn a_test_quiet_before_the_change_confirms_it_sooner() {
        // A quiet test's first burst start weighs a quarter of the start budget, against
        // 1 / (2 J (1 + TAIL)) for a look's start: about 6 nats less to make up at J = 1 000.
        // At three times the limit (0.013 nats a request), some 450 requests sooner.
        let (quiet, busy) = (average_to_confirm(0.0, 100), average_to_confirm(0.005, 100));
        assert!(quiet * 4 < busy * 3, "quiet before: {quiet} requests on average, busy: {busy}");
    }

    #[test]
    fn events_far_below_the_limit_leave_a_test_quiet() {
        // A look every 1 000 requests at a 1 % limit: an interval is eventful from 10
        // events. A stack at a fifth of its limit has events in almost every interval (the
        // rule of the previous version called each a burst and spent its bursts on them),
        // yet makes no burst start, and confirms a change about as soon as a stack with no
        // event at all; one at its limit makes them often.
        let bursts = |before: f64| {
            let mut rng = ChaCha8Rng::seed_from_u64(5);
            let mut t = RateTest::new(0.01);
            for i in 0..100_000 {
                t.add(rng.random::<f64>() < before);
                if i % 1000 == 999 {
                    t.look(1000);
                }
            }
            t.detector.bursts
        };
        assert_eq!(bursts(0.002), 0);
        assert!(bursts(0.01) >= 10, "at the limit: {} bursts in 100 looks", bursts(0.01));
        let (none, fifth) = (average_to_confirm(0.0, 1000), average_to_confirm(0.002, 1000));
        assert!(fifth * 10 <= none * 11, "a fifth of the limit: {fifth} requests on average, none: {none}");
    }

    #[test]
    fn a_burst_start_begins_at_the_event_that_makes_its_interval_eventful() {
        // A look every 100 requests at a 1 % limit: one event is the limit's share of an
        // interval. After quiet intervals, the first event arms nothing at the next look:
        // the burst start is made right after it, so the next event, in the same
        // interval, already counts with the first burst's weight.
        let planned = 1000;
        let mut t = RateTest::new(0.01);
        for i in 0..10_000 {
            t.add(false);
            if i % 100 == 99 {
                t.look(planned);
            }
        }
        let before = t.log_statistic();
        for _ in 0..10 {
            t.add(false);
        }
        t.add(true);
        t.add(true);
        let burst = burst_weight(1, planned).ln();
        assert!(before < burst - 5.0, "before the events: {before}");
        assert!(t.log_statistic() >= burst, "{} < ln of the first burst's weight {burst}", t.log_statistic());
    }

    #[test]
    fn grids_weigh_one_in_all() {
        for p0 in [1e-9, 0.001, 0.01, 0.2, 0.6, 0.999] {
            for grid in [Grid::rate(p0), Grid::segment_rate(p0), Grid::mean(p0)] {
                let sum: f64 = grid.weight.iter().sum();
                assert!((sum - 1.0).abs() < 1e-12, "p0 {p0}: weights sum to {sum}");
                assert!(grid.alternatives() <= 2 * MAX_ALTERNATIVES && !grid.up.is_empty());
                // Every resting factor is at most 1: a clean request never adds evidence.
                assert!(grid.ln_rest.iter().all(|l| *l <= 0.0 && l.is_finite()), "p0 {p0}");
            }
        }
    }

    #[test]
    fn a_change_after_long_clean_evidence_is_caught_fast() {
        let mut t = RateTest::new(0.01);
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        for i in 0..100_000 {
            t.add(rng.random::<f64>() < 0.0001);
            if i % 1000 == 999 {
                t.look(1000);
            }
        }
        let mut n = 0;
        while t.log_statistic() < 20.0 {
            t.add(rng.random::<f64>() < 0.03);
            n += 1;
            if n % 1000 == 0 {
                t.look(1000);
            }
        }
        // Three times the limit after 100 000 clean requests: caught within a few thousand.
        assert!(n < 6000, "took {n} observations");
    }

    #[test]
    fn the_sum_over_starts_is_at_least_the_process_started_before_the_change() {
        // Shiryaev-Roberts: R is a sum over starts, so it dominates the single e-process
        // started at the last look before the change, computed here directly.
        let mut t = RateTest::new(0.01);
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        for i in 0..5000 {
            t.add(rng.random::<f64>() < 0.002);
            if i % 500 == 499 {
                t.look(100);
            }
        }
        let grid = Grid::rate(0.01);
        let mut direct = grid.weight.clone();
        for _ in 0..400 {
            let x = rng.random::<f64>() < 0.05;
            t.add(x);
            for (g, d) in direct.iter_mut().enumerate() {
                *d *= if x { grid.event(g) } else { grid.ln_rest[g].exp() };
            }
        }
        let mixture = direct.iter().sum::<f64>().ln();
        assert!(t.log_statistic() >= mixture - 1e-9, "{} < {mixture}", t.log_statistic());
    }

    #[test]
    fn the_mean_test_bets_on_small_variance() {
        let mut t = MeanTest::new(0.002);
        for i in 0..2000 {
            t.add(if i % 2 == 0 { 0.004 } else { 0.006 });
        }
        assert!(t.log_statistic() > 20.0, "mean 0.005 against 0.002: {}", t.log_statistic());
        let mut clean = MeanTest::new(0.002);
        for i in 0..100_000 {
            clean.add(0.0);
            if i % 1000 == 999 {
                clean.look(100);
            }
        }
        assert!(clean.log_statistic() <= 0.0, "{}", clean.log_statistic());
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
            let mut reads = f64::NEG_INFINITY;
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
            prop_assert!(reads.is_finite());
            // Memory does not grow with the run: a fixed grid of numbers per test.
            prop_assert_eq!(looked.detector().alternatives(), RateTest::new(0.01).detector().alternatives());
        }

        #[test]
        fn resting_observations_applied_in_bulk_equal_applying_each(
            xs in proptest::collection::vec(proptest::bool::weighted(0.05), 1..2000),
            look in 1usize..200,
        ) {
            let mut lazy = RateTest::new(0.01);
            let mut eager = RateTest::new(0.01);
            for (i, &x) in xs.iter().enumerate() {
                lazy.add(x);
                eager.add(x);
                let (grid, n) = (eager.grid.clone(), eager.n);
                eager.detector.flush(&grid, n);
                if i % look == 0 {
                    lazy.look(50);
                    eager.look(50);
                }
            }
            let (a, b) = (lazy.log_statistic(), eager.log_statistic());
            prop_assert!((a - b).abs() <= 1e-9 * (1.0 + a.abs()), "{} vs {}", a, b);
        }
    }
}
