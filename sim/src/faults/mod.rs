//! Faults: the kinds, one definition each ([`kinds`]), and a scenario's faults resolved for
//! one run: when each acts and which requests it touches.

use cutover_migration::segments::Segments;

pub use crate::core::SECOND;
use crate::streams::unit;

pub mod kinds;
pub use kinds::{
    docs_table, latency_factor, latency_position, served_answer, Accepts, Context, Definition, FaultSpec, Given, Kind,
    Layer, MapValue, ModelTouch, Moment, Parameter, Support, Tag, Touch, Transform, MAX_ADDED_MS,
};

/// A fault resolved for one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// Its position in the scenario.
    pub index: usize,
    /// What it does.
    pub kind: Kind,
    /// Start, virtual microseconds; `u64::MAX` while it waits for its moment.
    pub start_us: u64,
    /// End (exclusive), `u64::MAX` if never (or while it waits for its moment).
    pub end_us: u64,
    /// The moment it starts at and the offset after it, µs (`start_us` is set when it comes).
    pub start_at: Option<(Moment, u64)>,
    /// The moment it ends at and the offset after it, µs: its own `end_at`, or the start
    /// moment when only that is given and `end_s` counts from it.
    pub end_at: Option<(Moment, u64)>,
    /// Segment it is limited to, as `dimension=value`.
    pub segment: Option<String>,
    /// That segment as (dimension, segment index).
    pub segment_at: Option<(usize, usize)>,
    /// Share of matching requests affected.
    pub fraction: f64,
    /// The share grows linearly from 0 to `fraction` over this long after the start, µs.
    pub ramp_us: u64,
}

impl Fault {
    /// Whether it is active at `t_us`.
    pub fn active(&self, t_us: u64) -> bool {
        self.start_us <= t_us && t_us < self.end_us
    }

    /// Whether it affects request number `index`, whose segments are `segs`, `since_us`
    /// after the fault began (segment, fraction and ramp): stateless, so it never shifts
    /// any random stream.
    pub fn hits(&self, seed: u64, index: u64, segs: &[usize], since_us: u64) -> bool {
        if let Some((dim, seg)) = self.segment_at {
            if segs[dim + 1] != seg {
                return false;
            }
        }
        let share =
            if since_us < self.ramp_us { self.fraction * since_us as f64 / self.ramp_us as f64 } else { self.fraction };
        share >= 1.0 || unit(seed, index, 0xFA17 + self.index as u64) < share
    }
}

impl Fault {
    /// Times its start and end by their moments once they come: at `t_us`, with the rollout
    /// in `phase` of a plan with `stages` (percent), a start not yet timed whose moment this
    /// is gets its moment plus its offset, and likewise an end once the fault has started.
    /// Returns what was timed now: (start, end), in the same clock as `t_us`.
    pub fn at_moments(&mut self, t_us: u64, phase: crate::core::Phase, stages: &[f64]) -> (Option<u64>, Option<u64>) {
        let (mut start, mut end) = (None, None);
        if let Some((m, offset)) = self.start_at {
            if self.start_us == u64::MAX && m.is_now(phase, stages) {
                self.start_us = t_us + offset;
                start = Some(self.start_us);
            }
        }
        if let Some((m, offset)) = self.end_at {
            // An end counts from its moment, once the fault has started.
            if self.end_us == u64::MAX && self.start_us != u64::MAX && m.is_now(phase, stages) {
                self.end_us = (t_us + offset).max(self.start_us);
                end = Some(self.end_us);
            }
        }
        (start, end)
    }
}

/// For faults timed by a moment of the rollout: whether each started before the run ended
/// at `ended_us` (a fault whose stage never came, say after an earlier rollback, did not
/// start: what the scenario rehearses did not happen). None without such faults.
pub fn faults_started(faults: &[Fault], ended_us: u64) -> Option<crate::core::verdict::Expectation> {
    let timed: Vec<&Fault> = faults.iter().filter(|f| f.start_at.is_some()).collect();
    if timed.is_empty() {
        return None;
    }
    let missed: Vec<String> = timed
        .iter()
        .filter(|f| f.start_us == u64::MAX || f.start_us >= ended_us)
        .map(|f| {
            let (moment, offset) = f.start_at.expect("timed");
            let why = if f.start_us == u64::MAX {
                format!("its moment, {moment}, never came")
            } else {
                format!("the run ended before {} s after {moment}", offset as f64 / 1e6)
            };
            format!("faults[{}] ({}) did not start: {why}", f.index, f.kind.name())
        })
        .collect();
    Some(crate::core::verdict::Expectation {
        name: "faults_started".into(),
        passed: missed.is_empty(),
        detail: if missed.is_empty() {
            format!("every fault timed by a moment of the rollout started ({})", timed.len())
        } else {
            missed.join("; ")
        },
    })
}

/// Resolves one fault table, the `index`-th, against `ctx`: `Err((field, message))`.
pub fn resolve_one(
    f: &FaultSpec,
    index: usize,
    ctx: &Context<'_>,
    segments: &Segments,
    params: &mut rand_chacha::ChaCha8Rng,
) -> Result<Fault, (String, String)> {
    let bad = |field: &str, message: String| (field.to_string(), message);
    let start_s = f.start_s.map_or(0.0, |p| p.resolve(params));
    let end_s = f.end_s.map(|e| e.resolve(params));
    let moment = |m: &Option<String>, field: &str| match m {
        Some(m) => Moment::parse(m).map(Some).map_err(|e| bad(field, e)),
        None => Ok(None),
    };
    let (start_moment, end_moment) = (moment(&f.start_at, "start_at")?, moment(&f.end_at, "end_at")?);
    let us = |s: f64| (s * SECOND as f64) as u64;
    let start_at = start_moment.map(|m| (m, us(start_s)));
    let end_at = match (end_moment, start_moment, end_s) {
        (Some(m), _, Some(e)) => Some((m, us(e))),
        (None, Some(m), Some(e)) => Some((m, us(e))),
        _ => None,
    };
    let mut p = |v: Option<crate::param::Param>, default: f64| v.map_or(default, |v| v.resolve(params));
    let fraction = p(f.fraction, 1.0);
    let ramp_us = (p(f.ramp_s, 0.0) * SECOND as f64) as u64;
    let kind = f.build(ctx, params)?;
    let end_us = if end_at.is_some() { u64::MAX } else { end_s.map_or(u64::MAX, us) };
    let segment_at = match &f.segment {
        Some(s) => Some(segments.resolve(s).map_err(|m| bad("segment", m))?),
        None => None,
    };
    Ok(Fault {
        index,
        kind,
        start_us: if start_at.is_some() { u64::MAX } else { us(start_s) },
        end_us,
        start_at,
        end_at,
        segment: f.segment.clone(),
        segment_at,
        fraction,
        ramp_us,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(fraction: f64, ramp_s: u64) -> Fault {
        Fault {
            index: 0,
            kind: Kind::Errors { rate: 1.0 },
            start_us: 0,
            end_us: u64::MAX,
            start_at: None,
            end_at: None,
            segment: None,
            segment_at: None,
            fraction,
            ramp_us: ramp_s * SECOND,
        }
    }

    /// The share of 20 000 requests a fault touches `since_s` after it began.
    fn share(f: &Fault, since_s: u64) -> f64 {
        (0..20_000u64).filter(|&i| f.hits(7, i, &[0], since_s * SECOND)).count() as f64 / 20_000.0
    }

    #[test]
    fn a_ramp_grows_the_share_linearly_up_to_the_fraction() {
        let f = errors(0.8, 100);
        assert_eq!(share(&f, 0), 0.0);
        for (since, want) in [(25, 0.2), (50, 0.4), (75, 0.6), (100, 0.8), (1000, 0.8)] {
            let got = share(&f, since);
            assert!((got - want).abs() < 0.015, "{since} s in: {got}, wanted {want}");
        }
        // The requests touched early stay touched later (one draw per request, no reshuffle).
        let early: Vec<u64> = (0..2000).filter(|&i| f.hits(7, i, &[0], 30 * SECOND)).collect();
        assert!(early.iter().all(|&i| f.hits(7, i, &[0], 60 * SECOND)));
        // Without a ramp the share is the fraction from the first moment.
        assert!((share(&errors(0.8, 0), 0) - 0.8).abs() < 0.015);
    }
}
