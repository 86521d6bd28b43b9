//! The two stacks' service times and failures in the simulated world: a log-normal body
//! through the declared median and 99th percentile, slower segments multiplied, errors at
//! the declared rate, and the caller's timeout.

use cutover_migration::segments::Segments;
use rand::RngExt;
use rand_chacha::ChaCha8Rng;

use crate::core::pairing::{Call, Called};
use crate::faults::Touch;
use crate::scenario::StackModel;
use crate::streams::normal;

/// The standard normal's 99th percentile.
const Z99: f64 = 2.326_347_874;

/// One stack's service-time model.
#[derive(Clone)]
pub struct Stack {
    mu: f64,
    sigma: f64,
    /// Share of calls that fail.
    pub error_rate: f64,
    /// The caller gives up after this.
    pub timeout_ms: f64,
    /// Slower segments: (dimension, segment, factor).
    slow: Vec<(usize, usize, f64)>,
    /// Stalls: (every, duration) in µs, and the added ms.
    stalls: Option<(u64, u64, f64)>,
}

impl Stack {
    /// The model of a scenario's `[stacks.*]`, its slow segments resolved.
    pub fn new(m: &StackModel, segments: &Segments) -> Result<Stack, String> {
        let mut slow = Vec::new();
        for s in &m.slow_segments {
            let (dim, seg) = segments.resolve(&s.segment)?;
            slow.push((dim, seg, s.factor));
        }
        Ok(Stack {
            mu: m.latency_ms_p50.ln(),
            sigma: (m.latency_ms_p99 / m.latency_ms_p50).ln() / Z99,
            error_rate: m.error_rate,
            timeout_ms: m.timeout_ms,
            slow,
            stalls: m.stalls.map(|st| ((st.every_s * 1e6) as u64, (st.duration_s * 1e6) as u64, st.add_ms)),
        })
    }

    /// What a stall adds to a call that starts at `t_us` in a run with `seed` (0 outside
    /// its stalls): time is cut into slots of a stall's duration, and each slot is a stall
    /// with probability duration / every, drawn from the seed and the slot alone (no
    /// stream is drawn from, the schedule is the same whatever the traffic, and a stall is
    /// as likely after a long calm as right after another: no hazard that a test could
    /// mistake for the new stack's).
    pub fn stall_ms(&self, seed: u64, t_us: u64) -> f64 {
        let Some((every, duration, add_ms)) = self.stalls else { return 0.0 };
        let slot = t_us / duration.max(1);
        if crate::streams::unit(seed, slot, 0x0053_5441_4c4c) < duration as f64 / every.max(1) as f64 {
            add_ms
        } else {
            0.0
        }
    }

    /// Its share of calls slower than `ms` outside slow segments (the log-normal's upper tail).
    pub fn share_slower(&self, ms: f64) -> f64 {
        if self.sigma <= 0.0 {
            return if ms < self.mu.exp() { 1.0 } else { 0.0 };
        }
        normal_upper((ms.ln() - self.mu) / self.sigma)
    }

    /// A service time, ms, for a request in segments `segs`.
    pub fn latency_ms(&self, rng: &mut ChaCha8Rng, segs: &[usize]) -> f64 {
        self.latency_draw(rng, segs).0
    }

    /// A service time, ms, and its position between the stack's median (0) and 99th
    /// percentile (1) on a log scale, as a `latency_scale` fault reads it (the same draw
    /// as [`Stack::latency_ms`]).
    pub fn latency_draw(&self, rng: &mut ChaCha8Rng, segs: &[usize]) -> (f64, f64) {
        let z = normal(rng);
        let mut ms = (self.mu + self.sigma * z).exp();
        for &(dim, seg, factor) in &self.slow {
            if segs[dim + 1] == seg {
                ms *= factor;
            }
        }
        (ms, z / Z99)
    }
}

/// The standard normal's upper tail, 1 - Φ(z) (Abramowitz and Stegun 7.1.26, |error| <
/// 1.5e-7).
pub fn normal_upper(z: f64) -> f64 {
    let x = z.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly =
        t * (0.254_829_592 + t * (-0.284_496_736 + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erfc = poly * (-x * x).exp();
    if z >= 0.0 {
        erfc / 2.0
    } else {
        1.0 - erfc / 2.0
    }
}

/// One request's two calls as the simulated stacks end them (the answers themselves are in
/// the world's buffers: an answered call carries none here).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BothCalls {
    /// Legacy's call.
    pub legacy: Call<'static>,
    /// The new stack's call.
    pub new: Call<'static>,
}

/// Both stacks' calls for one request in segments `segs`, the new one as the faults
/// touching it make it (`touch`): its own time multiplied by a `latency_scale` at its place,
/// latency added, its failures (an error first, else a timeout, forced or by its time past
/// the caller's timeout, at which it ends). The draws come in a fixed order whatever the
/// outcome (legacy's time, the new one's; legacy's error, the new one's, the forced
/// timeout), so a fault changes no later request's draws. Each stack's stalls (at `t_us`
/// in the run with `seed`, on schedules of their own) add to its time.
pub fn call_both(
    (legacy, new): (&Stack, &Stack),
    touch: &Touch,
    segs: &[usize],
    (latency_rng, error_rng): (&mut ChaCha8Rng, &mut ChaCha8Rng),
    (seed, t_us): (u64, u64),
) -> BothCalls {
    let legacy_ms = legacy.latency_ms(latency_rng, segs) + legacy.stall_ms(seed ^ 1, t_us);
    let (own_ms, position) = new.latency_draw(latency_rng, segs);
    let new_ms_raw = touch.scaled_ms(own_ms, position) + touch.add_ms + new.stall_ms(seed ^ 2, t_us);
    let legacy_error = error_rng.random::<f64>() < legacy.error_rate;
    let new_error = error_rng.random::<f64>() < new.error_rate + touch.error_rate;
    let forced_timeout = error_rng.random::<f64>() < touch.timeout_rate;
    let new_timeout = !new_error && (forced_timeout || new_ms_raw > new.timeout_ms);
    let new_ms = if new_timeout { new.timeout_ms } else { new_ms_raw.min(new.timeout_ms) };
    let outcome = |error: bool, timeout: bool| match (error, timeout) {
        (true, _) => Called::Error,
        (_, true) => Called::Timeout,
        _ => Called::Answered(&[], None),
    };
    BothCalls {
        legacy: Call { ms: legacy_ms, outcome: outcome(legacy_error, false) },
        new: Call { ms: new_ms, outcome: outcome(new_error, new_timeout) },
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn stack(p50: f64, p99: f64, error_rate: f64, timeout_ms: f64) -> Stack {
        let m: StackModel = toml::from_str(&format!(
            "latency_ms_p50 = {p50}\nlatency_ms_p99 = {p99}\nerror_rate = {error_rate}\ntimeout_ms = {timeout_ms}"
        ))
        .unwrap();
        Stack::new(&m, &Segments::default()).unwrap()
    }

    /// `n` requests' new calls under `touch`, from fixed streams.
    fn calls(n: usize, new: &Stack, touch: &Touch) -> Vec<BothCalls> {
        let legacy = stack(5.0, 20.0, 0.0, 1000.0);
        let (mut lat, mut err) = (ChaCha8Rng::seed_from_u64(3), ChaCha8Rng::seed_from_u64(4));
        (0..n).map(|_| call_both((&legacy, new), touch, &[0], (&mut lat, &mut err), (0, 0))).collect()
    }

    fn quantile(mut v: Vec<f64>, q: f64) -> f64 {
        v.sort_by(f64::total_cmp);
        v[((v.len() - 1) as f64 * q) as usize]
    }

    #[test]
    fn stalls_cover_their_share_of_time_in_runs_and_follow_the_seed_alone() {
        let m: StackModel = toml::from_str(
            "latency_ms_p50 = 8\nlatency_ms_p99 = 28\nstalls = { every_s = 10, duration_s = 0.5, add_ms = 300 }",
        )
        .unwrap();
        let s = Stack::new(&m, &Segments::default()).unwrap();
        // Every millisecond of 10 000 s: about 5 % of the time stalled (binomial over 20 000
        // slots: 1 000 expected, sd 31), in whole slots of 500 ms.
        let stalled: Vec<bool> = (0..10_000_000u64).map(|ms| s.stall_ms(7, ms * 1000) > 0.0).collect();
        let slots = stalled.iter().filter(|x| **x).count() / 500;
        assert!((880..=1120).contains(&slots), "{slots} stalled slots of 20 000");
        assert_eq!(stalled.iter().filter(|x| **x).count() % 500, 0, "whole slots");
        // The same seed, the same schedule; another seed, another.
        assert!((0..1_000_000u64).all(|ms| (s.stall_ms(7, ms * 1000) > 0.0) == stalled[ms as usize]));
        assert!((0..10_000_000u64).any(|ms| (s.stall_ms(8, ms * 1000) > 0.0) != stalled[ms as usize]));
    }

    #[test]
    fn the_share_slower_is_the_normal_tail_to_seven_places() {
        for (z, tail) in [(0.0, 0.5), (1.0, 0.158_655_25), (Z99, 0.01), (-1.0, 0.841_344_75)] {
            assert!((normal_upper(z) - tail).abs() < 2e-7, "{z}");
        }
        let s = stack(10.0, 40.0, 0.0, 1000.0);
        assert!((s.share_slower(40.0) - 0.01).abs() < 1e-6);
        assert!((s.share_slower(10.0) - 0.5).abs() < 1e-6);
        // Against draws: the share of 100 000 calls past 30 ms.
        let past = calls(100_000, &s, &Touch::default()).iter().filter(|b| b.new.ms > 30.0).count() as f64 / 1e5;
        assert!((past - s.share_slower(30.0)).abs() < 0.002, "{past}");
    }

    #[test]
    fn a_latency_multiplier_moves_the_new_stacks_median_and_p99_by_its_factors() {
        let new = stack(10.0, 40.0, 0.0, 10_000.0);
        let clean = calls(20_000, &new, &Touch::default());
        let scaled = calls(20_000, &new, &Touch { latency_scale: (2.0, 3.0), ..Touch::default() });
        let new_ms = |c: &[BothCalls]| c.iter().map(|b| b.new.ms).collect::<Vec<_>>();
        for (q, factor) in [(0.5, 2.0), (0.99, 3.0)] {
            let (a, b) = (quantile(new_ms(&clean), q), quantile(new_ms(&scaled), q));
            assert!((b / a - factor).abs() < 0.05, "q{q}: {a} -> {b}, wanted x{factor}");
        }
        // Legacy's calls, and every draw after, are the same: the fault moves nothing else.
        assert!(clean.iter().zip(&scaled).all(|(a, b)| a.legacy == b.legacy));
    }

    #[test]
    fn a_call_past_the_timeout_ends_at_it_and_an_error_comes_before_a_timeout() {
        let new = stack(10.0, 40.0, 0.0, 25.0);
        let slow = calls(2000, &new, &Touch { add_ms: 30.0, ..Touch::default() });
        assert!(slow.iter().all(|b| b.new.outcome == Called::Timeout && b.new.ms == 25.0));
        let both = calls(2000, &new, &Touch { error_rate: 1.0, timeout_rate: 1.0, ..Touch::default() });
        assert!(both.iter().all(|b| b.new.outcome == Called::Error), "an error is an error, not a timeout");
        let forced = calls(2000, &new, &Touch { timeout_rate: 1.0, ..Touch::default() });
        assert!(forced.iter().all(|b| b.new.outcome == Called::Timeout && b.new.ms == 25.0));
        // The same draws whatever the outcome: legacy's calls do not move.
        let clean = calls(2000, &new, &Touch::default());
        assert!(clean.iter().zip(&both).all(|(a, b)| a.legacy == b.legacy));
    }
}
