//! The two stacks' service times and failures in the simulated world: a log-normal body
//! through the declared median and 99th percentile, slower segments multiplied, errors at
//! the declared rate, and the caller's timeout.

use cutover_models::segments::Segments;
use rand_chacha::ChaCha8Rng;

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
        })
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
