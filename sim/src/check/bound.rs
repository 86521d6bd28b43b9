//! The information bound: how fast could any judge confirm a rate above its limit, at the
//! same false-rollback budget? (docs/sequential.md, "The information bound";
//! `scripts/oracle_bound.py` computes the same.)
//!
//! Cut the rollout into W = horizon / d windows of d seconds. The chances of a false alarm
//! in each window add up to at most alpha, so in at least a share 1 - q of them the chance
//! is at most alpha / (q W). A fault that starts at such a window's start is confirmed
//! within d with a probability no higher than the most powerful test of p0 against p1 on
//! the window's n = rate d requests at that level (Neyman-Pearson: the binomial count,
//! randomized at the boundary). So P(confirmed within d) <= q + (1 - q) power, minimized
//! over q. The oracle knows p1 and spends the whole budget on one test: a real judge is
//! slower.

/// log P(X = i) for X ~ Bin(n, p), for every i.
pub(crate) fn log_pmf(n: u64, p: f64) -> Vec<f64> {
    let (lp, lq) = (p.ln(), (-p).ln_1p());
    let mut out = Vec::with_capacity(n as usize + 1);
    // ln C(n, i) built up term by term.
    let mut ln_choose = 0.0;
    for i in 0..=n {
        if i > 0 {
            ln_choose += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        out.push(ln_choose + i as f64 * lp + (n - i) as f64 * lq);
    }
    out
}

/// P(X >= k) for every k in 0..=n+1.
fn upper_tails(n: u64, p: f64) -> Vec<f64> {
    let pmf = log_pmf(n, p);
    let mut tails = vec![0.0; pmf.len() + 1];
    for k in (0..pmf.len()).rev() {
        tails[k] = (tails[k + 1] + pmf[k].exp()).min(1.0);
    }
    tails
}

/// The power of the most powerful level-`level` test of Bin(n, p0) against Bin(n, p1),
/// from both distributions' upper tails.
fn np_power(t0: &[f64], t1: &[f64], level: f64) -> f64 {
    // The smallest k with P0(X >= k) <= level (tails fall with k).
    let k = t0.partition_point(|&t| t > level);
    if k == 0 {
        return 1.0;
    }
    let at = t0[k - 1] - t0[k];
    let gamma = if at > 0.0 { (level - t0[k]) / at } else { 0.0 };
    t1[k] + gamma * (t1[k - 1] - t1[k])
}

/// The oracle's bound on P(a fault raising a rate from `p0` to `p1` is confirmed within
/// `d_s`), at `rate_rps` requests a second over a rollout of `horizon_s`, with a
/// false-rollback budget `alpha`.
pub fn confirmed_within(rate_rps: f64, horizon_s: f64, p0: f64, p1: f64, alpha: f64, d_s: f64) -> f64 {
    let windows = (horizon_s / d_s).floor().max(1.0);
    let n = (rate_rps * d_s).floor().max(0.0) as u64;
    if n == 0 {
        return 0.0;
    }
    let (t0, t1) = (upper_tails(n, p0), upper_tails(n, p1));
    (1..100)
        .map(|q| {
            let q = f64::from(q) / 100.0;
            let level = (alpha / (q * windows * (1.0 - alpha))).min(1.0);
            q + (1.0 - q) * np_power(&t0, &t1, level)
        })
        .fold(1.0, f64::min)
}

/// The shortest time, on a grid of 1 s (then 5 s past a minute, 30 s past ten), before
/// which no judge confirms the change with probability 1/2: the median time to detect is
/// at least this. None when even the whole horizon does not reach it.
pub fn median_at_least(rate_rps: f64, horizon_s: f64, p0: f64, p1: f64, alpha: f64) -> Option<f64> {
    let mut d = 1.0;
    while d <= horizon_s {
        if confirmed_within(rate_rps, horizon_s, p0, p1, alpha, d) >= 0.5 {
            return Some(d);
        }
        d += if d < 60.0 {
            1.0
        } else if d < 600.0 {
            5.0
        } else {
            30.0
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails_are_a_distribution() {
        let t = upper_tails(50, 0.1);
        assert!((t[0] - 1.0).abs() < 1e-12);
        assert_eq!(t[51], 0.0);
        assert!(t.windows(2).all(|w| w[0] >= w[1]));
        // P(X >= 1) = 1 - 0.9^50
        assert!((t[1] - (1.0 - 0.9f64.powi(50))).abs() < 1e-12);
    }

    #[test]
    fn the_most_powerful_test_spends_its_level_exactly() {
        let (t0, t1) = (upper_tails(200, 0.01), upper_tails(200, 0.01));
        // Against itself, a test's power is its level.
        for level in [0.001, 0.01, 0.2] {
            assert!((np_power(&t0, &t1, level) - level).abs() < 1e-9, "{level}");
        }
        let t1 = upper_tails(200, 0.05);
        assert!(np_power(&t0, &t1, 0.01) > 0.5, "five times the rate over 200 requests is seen");
    }

    /// The figures `scripts/oracle_bound.py 20 4800 0.01 0.03` prints, to its three decimals.
    #[test]
    fn agrees_with_the_script() {
        let at = |d: f64| confirmed_within(20.0, 4800.0, 0.01, 0.03, 0.01, d);
        for (d, printed) in [(5.0, 0.089), (10.0, 0.218), (20.0, 0.510), (30.0, 0.738), (40.0, 0.879), (60.0, 0.980)] {
            assert!((at(d) - printed).abs() < 0.0006, "d = {d}: {} against {printed}", at(d));
        }
        let median = median_at_least(20.0, 4800.0, 0.01, 0.03, 0.01).unwrap();
        assert!(at(median) >= 0.5 && at(median - 1.0) < 0.5);
        assert!((15.0..=20.0).contains(&median), "{median}");
    }
}
