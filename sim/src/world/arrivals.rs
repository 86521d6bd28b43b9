//! The arrival process of generated traffic: Poisson at the peak rate, each candidate kept
//! with probability curve(hour) / peak under an optional daily curve (thinning). The world
//! and the plan check's judge-alone trials draw arrivals through it, in the same order: a
//! gap, then (with a curve) whether the candidate is kept.

use rand::RngExt;
use rand_chacha::ChaCha8Rng;

use crate::core::SECOND;
use crate::streams::exponential;

/// Arrivals at `rate_rps`, thinned by a daily curve (24 multipliers, UTC hours).
#[derive(Debug, Clone)]
pub(crate) struct Arrivals {
    rate_rps: f64,
    curve: Option<Vec<f64>>,
}

impl Arrivals {
    pub(crate) fn new(rate_rps: f64, curve: Option<Vec<f64>>) -> Arrivals {
        Arrivals { rate_rps, curve }
    }

    fn peak(&self) -> f64 {
        self.curve.as_ref().map_or(1.0, |c| c.iter().copied().fold(0.0, f64::max))
    }

    /// The next candidate after `now`, µs: a gap at the peak rate (at least 1 µs).
    pub(crate) fn candidate(&self, rng: &mut ChaCha8Rng, now: u64) -> u64 {
        let mean_gap_s = 1.0 / (self.rate_rps * self.peak());
        now + (exponential(rng, mean_gap_s) * SECOND as f64).max(1.0) as u64
    }

    /// Whether the candidate at `t` (scenario µs; scenario time 0 is `start_ms` since the
    /// epoch) is kept: always without a curve (and no draw), else with probability
    /// curve(hour) / peak.
    pub(crate) fn keep(&self, rng: &mut ChaCha8Rng, start_ms: i64, t: u64) -> bool {
        let Some(curve) = &self.curve else { return true };
        let hour = (((start_ms as u64 / 1000 + t / SECOND) / 3600) % 24) as usize;
        rng.random::<f64>() < curve[hour] / self.peak()
    }

    /// The next arrival kept after `now`.
    pub(crate) fn next(&self, rng: &mut ChaCha8Rng, start_ms: i64, now: u64) -> u64 {
        let mut t = now;
        loop {
            t = self.candidate(rng, t);
            if self.keep(rng, start_ms, t) {
                return t;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn a_curve_thins_arrivals_to_its_hours() {
        // Traffic only in hour 1: every kept arrival falls in it, at about the rate.
        let mut curve = vec![0.0; 24];
        curve[1] = 1.0;
        let a = Arrivals::new(10.0, Some(curve));
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let (mut t, mut n) = (0, 0);
        while t < 24 * 3600 * SECOND {
            t = a.next(&mut rng, 0, t);
            if t < 24 * 3600 * SECOND {
                assert_eq!(t / SECOND / 3600, 1, "kept at {t} µs");
                n += 1;
            }
        }
        assert!((33_000..39_000).contains(&n), "{n} in one hour at 10 rps");
        // Without a curve, no draw is spent on keeping.
        let flat = Arrivals::new(10.0, None);
        let (mut r1, mut r2) = (ChaCha8Rng::seed_from_u64(2), ChaCha8Rng::seed_from_u64(2));
        let by_next: Vec<u64> = (0..5)
            .scan(0, |t, _| {
                Some({
                    *t = flat.next(&mut r1, 0, *t);
                    *t
                })
            })
            .collect();
        let by_gap: Vec<u64> = (0..5)
            .scan(0, |t, _| {
                Some({
                    *t = flat.candidate(&mut r2, *t);
                    *t
                })
            })
            .collect();
        assert_eq!(by_next, by_gap);
    }
}
