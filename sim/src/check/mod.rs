//! The plan check (`cutover plan check`): what a plan can catch, said before any traffic.
//!
//! For each guardrail the plan sets and each stage (the shadow period, then every canary
//! stage), at the scenario's traffic: the smallest effect the judge detects within the
//! stage's bake with probability at least 0.9; the median and 95th-percentile time to
//! rollback for given effects (rates at 1.5, 2, 5 and 10 times the limit; latency tails on
//! 1, 2 and 5 % of calls); and the information bound beside them ([`bound`]). The
//! prediction is not analytic: it **simulates the judge alone** ([`bench`]): the plan's own
//! controller and judge, fed the paired evidence an effect leaves on the scenario's traffic
//! and stack models, over many seeded trials, without features, models or the store. A
//! scenario whose own faults act on the stacks (errors, timeouts, latency, a lost shadow
//! context) gets the same prediction for them, set against its SLOs.
//!
//! Figures (docs/sequential.md, "The plan check"): the median is the mean of the two middle
//! trials; the p95 is the nearest-rank order statistic (the ⌈0.95 n⌉-th smallest), with a
//! distribution-free 95 % interval between two order statistics; a trial not rolled back
//! before its horizon counts as slower than every other.

pub mod bench;
pub mod bound;

use serde::Serialize;

use crate::core::guardrail::{Seen, Test};
use crate::core::sequential::LATENCY_LEVELS;
use crate::core::{Guardrail, Phase, SECOND};
use crate::faults::{Fault, Kind};
use crate::scenario::{LoadedScenario, Policy};
use crate::world::stacks::Stack;
use bench::{Bench, Events, Probe};

/// How the prediction is made, in words (printed and in plan-check.json).
pub const METHOD: &str = "simulates the judge alone: the plan's controller and judge on the scenario's traffic and stack models, over seeded trials (no features, models or store)";

/// Probability of detection within the bake that the smallest detected effect reaches.
pub const POWER: f64 = 0.9;

/// What a plan check runs.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Trials per figure.
    pub trials: u64,
    /// The first trial's seed (trial k has seed + k).
    pub seed: u64,
    /// Worker threads.
    pub jobs: usize,
    /// Also the smallest effect confined to each segment (at the first canary stage).
    pub segments: bool,
    /// The guardrails' table (false: only the scenario's own faults against its SLO).
    pub guardrails: bool,
}

/// Times to rollback over trials, seconds from the effect's start.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Times {
    /// Trials run.
    pub trials: u64,
    /// Trials rolled back before the horizon.
    pub rolled_back: u64,
    /// Trials rolled back within the stage's bake, as a share.
    pub within_bake: f64,
    /// How long each trial ran at most, s.
    pub horizon_s: f64,
    /// Median (mean of the two middle trials); None when half or more did not roll back.
    pub median_s: Option<f64>,
    /// 95th percentile (nearest rank); None when that trial did not roll back.
    pub p95_s: Option<f64>,
    /// A distribution-free 95 % interval for the p95: two order statistics (None above:
    /// beyond the horizon).
    pub p95_interval_s: (Option<f64>, Option<f64>),
}

impl Times {
    /// The figures of `times` (None: not rolled back before `horizon_s`).
    pub fn of(times: Vec<Option<f64>>, bake_s: f64, horizon_s: f64) -> Times {
        use crate::figures::{median, nearest_rank, sorted};
        let n = times.len();
        // A trial not rolled back counts as slower than every other; a figure that lands on
        // one is beyond the horizon (None).
        let sorted = sorted(times.iter().map(|t| t.unwrap_or(f64::INFINITY)));
        let finite = |v: Option<f64>| v.filter(|x| x.is_finite());
        let rank = |r: usize| finite(r.checked_sub(1).and_then(|i| sorted.get(i).copied()));
        let (lo, hi) = quantile_interval(n, 0.95);
        Times {
            trials: n as u64,
            rolled_back: sorted.iter().filter(|t| t.is_finite()).count() as u64,
            within_bake: if n == 0 { 0.0 } else { sorted.iter().filter(|&&t| t <= bake_s).count() as f64 / n as f64 },
            horizon_s,
            median_s: finite(median(&sorted)),
            p95_s: finite(nearest_rank(&sorted, 0.95)),
            p95_interval_s: (rank(lo), rank(hi)),
        }
    }
}

/// Ranks (1-based; `n + 1` stands for beyond the largest) `(r, s)` of the order statistics
/// bounding the `p`-quantile with probability at least 0.95: P(X(r) <= q < X(s)) =
/// P(r <= B < s) for B ~ Bin(n, p), as narrow as possible and balanced.
pub fn quantile_interval(n: usize, p: f64) -> (usize, usize) {
    if n == 0 {
        return (0, 1);
    }
    // P(B = k) for k in 0..=n.
    let pmf: Vec<f64> = bound::log_pmf(n as u64, p).into_iter().map(f64::exp).collect();
    let below = |r: usize| pmf[..r.min(n + 1)].iter().sum::<f64>(); // P(B < r)
                                                                    // The largest r with P(B < r) <= 0.025, the smallest s with P(B >= s) <= 0.025.
    let r = (1..=n).take_while(|&r| below(r) <= 0.025).last().unwrap_or(0);
    let s = (1..=n + 1).find(|&s| 1.0 - below(s) <= 0.025).unwrap_or(n + 1);
    (r, s)
}

/// An effect a check probes, in the guardrail's own terms.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum Effect {
    /// A rate or mean at this multiple of the limit.
    Times(f64),
    /// This share of the new stack's calls slower by twice the latency limit.
    Tail(f64),
}

impl Effect {
    /// In words.
    pub fn describe(self) -> String {
        match self {
            Effect::Times(m) => format!("{m}x the limit"),
            Effect::Tail(s) => format!("a tail on {} % of calls", s * 100.0),
        }
    }
}

/// One effect's predicted times at one stage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EffectCheck {
    /// The effect, in words.
    pub effect: String,
    /// The rate (or tail share) it makes the new stack show.
    pub level: f64,
    /// The judge's times.
    pub times: Times,
    /// The information bound on the median: no judge at the same false-rollback budget has
    /// a median below this (None: not a rate, or not within the horizon).
    pub bound_median_s: Option<f64>,
}

/// One guardrail at one stage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageCheck {
    /// The stage (`shadow`, `canary 5 %`).
    pub stage: String,
    /// When a clean run entered it, s.
    pub entered_s: f64,
    /// Its bake (the shadow period for shadow), s.
    pub bake_s: f64,
    /// Requests a second the guardrail counts at this stage.
    pub counted_rps: f64,
    /// The smallest effect detected within the bake with probability at least 0.9 (on the
    /// check's grid), None when even the largest is not.
    pub smallest_detected: Option<String>,
    /// Given effects.
    pub effects: Vec<EffectCheck>,
}

/// One segment's smallest detected effect.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentCheck {
    /// `dimension=value`.
    pub segment: String,
    /// Its share of the traffic.
    pub share: f64,
    /// As [`StageCheck::smallest_detected`], with the effect confined to it.
    pub smallest_detected: Option<String>,
}

/// One guardrail's check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GuardrailCheck {
    /// Its name.
    pub guardrail: &'static str,
    /// The plan's limit.
    pub limit: f64,
    /// How it is predicted (or why not).
    pub method: String,
    /// Per stage.
    pub stages: Vec<StageCheck>,
    /// Per segment, at the first canary stage.
    pub segments: Vec<SegmentCheck>,
    /// With a level at or below which rollbacks must stay rare (`[rare_below]`): what the
    /// indifference zone buys against the limit as the null.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<ZoneCheck>,
}

/// What an indifference zone buys: at rates at and between the two levels and above the
/// limit, over the whole run from the start of shadow, the share of trials rolled back and
/// their median time, with the plan's null and with the limit as the null.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ZoneCheck {
    /// The level at or below which rollbacks must stay rare.
    pub rare_below: f64,
    /// Per rate.
    pub rows: Vec<ZoneRow>,
}

/// One rate of a [`ZoneCheck`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ZoneRow {
    /// The new stack's rate (or mean).
    pub level: f64,
    /// Under the plan (its null at `rare_below`).
    pub with_zone: ZoneFigures,
    /// With the limit as the null (no `[rare_below]` for this guardrail).
    pub limit_as_null: ZoneFigures,
}

/// Rollbacks over a run at one rate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ZoneFigures {
    /// The share of trials rolled back.
    pub rolled_back: f64,
    /// Their median time from the start of shadow, s (None when fewer than half).
    pub median_s: Option<f64>,
}

/// The scenario's own faults, where the judge alone can act them out, against its SLO.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaultsCheck {
    /// The faults, in words.
    pub faults: String,
    /// Predicted times from the first fault's start.
    pub times: Times,
    /// The scenario's SLO (`rollback_within_s`, else `detect_within_s`), s.
    pub slo_s: Option<f64>,
    /// Whether the plan keeps it: the predicted share of runs within it.
    pub within_slo: Option<f64>,
}

/// plan-check.json for one scenario (docs/contracts.md).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanCheck {
    /// Scenario name.
    pub scenario: String,
    /// Its file.
    pub file: String,
    /// The judge checked.
    pub policy: String,
    /// How the figures are made.
    pub method: &'static str,
    /// Trials per figure.
    pub trials: u64,
    /// The plan's false-rollback budget.
    pub false_rollback_budget: f64,
    /// Per guardrail.
    pub guardrails: Vec<GuardrailCheck>,
    /// The scenario's own faults, when they act on the stacks alone.
    pub faults: Option<FaultsCheck>,
}

/// A stack model's service times (its slow segments aside).
fn stack(m: &crate::scenario::StackModel) -> Stack {
    Stack::new(&crate::scenario::StackModel { slow_segments: Vec::new(), ..m.clone() }, &Default::default())
        .expect("no segment to resolve")
}

/// Checks one scenario's plan under `policy`.
pub fn check(loaded: &LoadedScenario, policy: Policy, o: &Options) -> Result<PlanCheck, String> {
    let s = &loaded.scenario;
    let bench = Bench::new(loaded, policy)?;
    let plan = s.plan();
    let mut guardrails = Vec::new();
    for g in Guardrail::ALL.into_iter().filter(|_| o.guardrails) {
        let Some(limit) = plan.guardrails.limit(g) else { continue };
        guardrails.push(check_guardrail(&bench, loaded, g, limit, o)?);
    }
    Ok(PlanCheck {
        scenario: s.name.clone(),
        file: loaded.path.display().to_string(),
        policy: policy.name().to_string(),
        method: METHOD,
        trials: o.trials,
        false_rollback_budget: plan.controller.false_rollback_budget,
        guardrails,
        faults: own_faults(&bench, loaded, o)?,
    })
}

/// What a guardrail's probes are: the grid searched for the smallest detected effect and
/// the effects reported.
fn effects_of(g: Guardrail) -> Option<(Vec<Effect>, Vec<Effect>)> {
    let times = |v: &[f64]| v.iter().map(|&m| Effect::Times(m)).collect::<Vec<_>>();
    let tails = |v: &[f64]| v.iter().map(|&m| Effect::Tail(m)).collect::<Vec<_>>();
    match g.def().test {
        Test::Rate(_) | Test::PerFeature | Test::Mean { .. } => {
            Some((times(&[1.25, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0]), times(&[1.5, 2.0, 5.0, 10.0])))
        }
        Test::Exceedance { .. } => {
            Some((tails(&[0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5]), tails(&[0.01, 0.02, 0.05])))
        }
        Test::Direct => None,
    }
}

/// The probe that makes the new stack show `effect` on guardrail `g` from a stage's entry,
/// confined to `segment` when given, and the rate (or exceedance) it shows.
fn probe(
    loaded: &LoadedScenario,
    g: Guardrail,
    limit: f64,
    effect: Effect,
    segment: Option<(usize, usize)>,
) -> (Probe, f64) {
    let s = &loaded.scenario;
    let new = &s.stacks.new;
    let regression = loaded.migration.answer().kind == cutover_migration::answer::AnswerKind::Regression;
    let fault = |kind: Kind| Fault {
        index: 0,
        kind,
        start_us: 0,
        end_us: u64::MAX,
        start_at: None,
        end_at: None,
        segment: None,
        segment_at: segment,
        fraction: 1.0,
        ramp_us: 0,
    };
    // A mean of score differences: ten times the limit on a share of the requests (at most
    // 1, a probability's whole range, for an absolute difference of decisions' scores).
    let size = (10.0 * limit).min(if g == Guardrail::MeanAbsScoreDiff && !regression { 1.0 } else { f64::MAX });
    let events =
        |level: f64| Probe::Events(Events { guardrail: g, level, size: size.max(level), start_us: 0, segment });
    match (g, effect) {
        (Guardrail::ErrorRate, Effect::Times(m)) => {
            let level = m * limit;
            (Probe::Faults(vec![fault(Kind::Errors { rate: (level - new.error_rate).max(0.0) })]), level)
        }
        (Guardrail::TimeoutRate, Effect::Times(m)) => {
            let level = m * limit;
            let own = stack(new).share_slower(new.timeout_ms);
            (Probe::Faults(vec![fault(Kind::Timeouts { rate: (level - own).max(0.0) })]), level)
        }
        (Guardrail::P99LatencyMs | Guardrail::P99LatencyRatio, Effect::Tail(share)) => {
            let bound_ms = match g {
                Guardrail::P99LatencyRatio => limit * s.stacks.legacy.latency_ms_p99,
                _ => limit,
            };
            let own = stack(new).share_slower(bound_ms);
            let kind = Kind::Latency { add_ms: 0.0, tail_ms: 2.0 * bound_ms, tail_fraction: share };
            (Probe::Faults(vec![fault(kind)]), own + share * (1.0 - own))
        }
        (_, Effect::Times(m)) => (events(m * limit), m * limit),
        (_, Effect::Tail(share)) => (events(share), share),
    }
}

/// For a latency tail on `share` of the new stack's calls (as [`probe`] makes it: slower by
/// twice the bound), per level k of the latency tests: the null 1 % / k and the share of
/// calls past k times the bound.
fn tail_levels(loaded: &LoadedScenario, g: Guardrail, limit: f64, share: f64) -> Vec<(f64, f64)> {
    let s = &loaded.scenario;
    let bound_ms = match g {
        Guardrail::P99LatencyRatio => limit * s.stacks.legacy.latency_ms_p99,
        _ => limit,
    };
    let new = stack(&s.stacks.new);
    LATENCY_LEVELS
        .iter()
        .map(|&k| {
            let at = k * bound_ms;
            let own = new.share_slower(at);
            let tail = if at > 2.0 * bound_ms { new.share_slower(at - 2.0 * bound_ms) } else { 1.0 };
            (0.01 / k, own + share * (tail - own))
        })
        .collect()
}

/// The stages a check looks at: those a clean run entered, with their bake.
fn stages(bench: &Bench<'_>, loaded: &LoadedScenario) -> Vec<(Phase, u64, f64)> {
    let r = &loaded.scenario.rollout;
    bench
        .stage_entries()
        .into_iter()
        .filter_map(|(p, t)| match p {
            Phase::Shadow => Some((p, t, r.shadow_s)),
            Phase::Canary(_) => Some((p, t, r.bake_s)),
            _ => None,
        })
        .collect()
}

fn stage_name(p: Phase, stages: &[f64]) -> String {
    match p {
        Phase::Canary(i) => format!("canary {} %", stages.get(i).copied().unwrap_or(0.0)),
        other => crate::core::verdict::phase_name(other),
    }
}

/// Runs the check's trials of `probe` from `from` on its threads, each until a rollback or
/// `horizon_us` after the probe's start: each trial's time to rollback, or None. With
/// `decide_within_s`, stops as soon as the share caught within it is decided against
/// [`POWER`] whatever the remaining trials give (the answer is the same as running all).
fn trials(
    bench: &Bench<'_>,
    probe: &Probe,
    from: Phase,
    horizon_us: u64,
    decide_within_s: Option<f64>,
    o: &Options,
) -> Result<Vec<Option<f64>>, String> {
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    let (next, caught, missed) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    let needed = (POWER * o.trials as f64).ceil() as u64;
    let out = std::sync::Mutex::new(vec![None; o.trials as usize]);
    let failed = std::sync::Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..o.jobs.max(1) {
            scope.spawn(|| loop {
                let decided = caught.load(Relaxed) >= needed || missed.load(Relaxed) > o.trials - needed;
                let k = next.fetch_add(1, Relaxed);
                if k >= o.trials || (decide_within_s.is_some() && decided) {
                    break;
                }
                match bench.trial(probe, from, o.seed + k, horizon_us) {
                    Ok(t) => {
                        let t = t.to_rollback_s();
                        if let Some(d) = decide_within_s {
                            let counter = if t.is_some_and(|t| t <= d) { &caught } else { &missed };
                            counter.fetch_add(1, Relaxed);
                        }
                        out.lock().expect("no panics")[k as usize] = t;
                    }
                    Err(e) => *failed.lock().expect("no panics") = Some(e),
                }
            });
        }
    });
    if let Some(e) = failed.into_inner().expect("joined") {
        return Err(e);
    }
    if decide_within_s.is_some() {
        // Early: only whether enough were caught is meaningful; say so by the counts.
        let (c, m) = (caught.into_inner(), missed.into_inner());
        return Ok((0..c).map(|_| Some(0.0)).chain((0..m).map(|_| None)).collect());
    }
    Ok(out.into_inner().expect("joined"))
}

/// The smallest effect on `grid` detected within `bake_s` with probability [`POWER`]
/// (bisection: detection grows with the effect).
fn smallest(
    bench: &Bench<'_>,
    loaded: &LoadedScenario,
    (g, limit): (Guardrail, f64),
    grid: &[Effect],
    (from, bake_s): (Phase, f64),
    segment: Option<(usize, usize)>,
    o: &Options,
) -> Result<Option<Effect>, String> {
    let bake_us = (bake_s * SECOND as f64) as u64;
    let detected = |e: Effect| -> Result<bool, String> {
        let (p, _) = probe(loaded, g, limit, e, segment);
        let t = trials(bench, &p, from, bake_us, Some(bake_s), o)?;
        let caught = t.iter().filter(|t| t.is_some()).count() as u64;
        Ok(caught >= (POWER * o.trials as f64).ceil() as u64)
    };
    let (mut lo, mut hi) = (0usize, grid.len());
    // Invariant: grid[hi] detected (hi = len: none known), grid[..lo] not.
    while lo < hi {
        let mid = (lo + hi) / 2;
        if detected(grid[mid])? {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Ok(grid.get(hi).copied())
}

fn check_guardrail(
    bench: &Bench<'_>,
    loaded: &LoadedScenario,
    g: Guardrail,
    limit: f64,
    o: &Options,
) -> Result<GuardrailCheck, String> {
    let s = &loaded.scenario;
    let name = g.def().name;
    let Some((grid, given)) = effects_of(g) else {
        return Ok(GuardrailCheck {
            guardrail: name,
            limit,
            method: "a measured state, compared with its limit at every look: caught at the first look past it".into(),
            stages: Vec::new(),
            segments: Vec::new(),
            zone: None,
        });
    };
    let plan = s.plan();
    let alpha = plan.controller.false_rollback_budget;
    // Only the sequential judge has a null to move.
    let rare_below =
        plan.nulls().iter().find(|(n, _)| *n == g && bench.policy() == Policy::Sequential).map(|&(_, v)| v);
    let stages_pct = &s.rollout.stages_pct;
    let mut out = Vec::new();
    for (phase, entered_us, bake_s) in stages(bench, loaded) {
        let weight = match phase {
            Phase::Canary(i) => stages_pct.get(i).copied().unwrap_or(0.0) / 100.0,
            _ => 0.0,
        };
        let counted_rps = s.traffic.rate_rps
            * match g.def().test {
                Test::Rate(Seen::Shadow) => 1.0 - weight,
                _ => 1.0,
            };
        let horizon_us = ((3.0 * bake_s) * SECOND as f64) as u64;
        let horizon_s = (horizon_us as f64 / SECOND as f64).min(s.traffic.duration_s - entered_us as f64 / 1e6);
        let mut effects = Vec::new();
        for &e in &given {
            let (p, level) = probe(loaded, g, limit, e, None);
            let t = trials(bench, &p, phase, horizon_us, None, o)?;
            // Each rate a test could compare (the null, the rate the effect makes): the bound
            // takes the most informative.
            let compared: Vec<(f64, f64)> = match (g.def().test, e) {
                (Test::Rate(_) | Test::PerFeature, _) => vec![(rare_below.unwrap_or(limit), level)],
                (Test::Exceedance { .. }, Effect::Tail(share)) => tail_levels(loaded, g, limit, share),
                _ => Vec::new(),
            };
            let bound_median_s = compared
                .into_iter()
                .filter_map(|(p0, p1)| {
                    bound::median_at_least(counted_rps, s.traffic.duration_s, p0, p1.min(1.0), alpha)
                })
                .reduce(f64::min);
            effects.push(EffectCheck {
                effect: e.describe(),
                level,
                times: Times::of(t, bake_s, horizon_s),
                bound_median_s,
            });
        }
        let smallest = smallest(bench, loaded, (g, limit), &grid, (phase, bake_s), None, o)?;
        out.push(StageCheck {
            stage: stage_name(phase, stages_pct),
            entered_s: entered_us as f64 / SECOND as f64,
            bake_s,
            counted_rps,
            smallest_detected: smallest.map(Effect::describe),
            effects,
        });
    }
    let segments = if o.segments { segment_checks(bench, loaded, (g, limit), &grid, o)? } else { Vec::new() };
    let zone = match rare_below {
        Some(level) => Some(zone_check(bench, loaded, (g, limit), level, o)?),
        None => None,
    };
    Ok(GuardrailCheck { guardrail: name, limit, method: METHOD.into(), stages: out, segments, zone })
}

/// What `[rare_below]`'s level buys on guardrail `g` (see [`ZoneCheck`]): the plan's own
/// bench against one whose null is the limit.
fn zone_check(
    bench: &Bench<'_>,
    loaded: &LoadedScenario,
    (g, limit): (Guardrail, f64),
    level: f64,
    o: &Options,
) -> Result<ZoneCheck, String> {
    let mut plain = loaded.clone();
    plain.scenario.rare_below.remove(g.name());
    let plain_bench = Bench::new(&plain, Policy::Sequential)?;
    let figures = |b: &Bench<'_>, p: &Probe| -> Result<ZoneFigures, String> {
        let t = trials(b, p, Phase::Shadow, b.duration_us, None, o)?;
        let times = Times::of(t, f64::INFINITY, loaded.scenario.traffic.duration_s);
        Ok(ZoneFigures { rolled_back: times.rolled_back as f64 / o.trials as f64, median_s: times.median_s })
    };
    let mut rows = Vec::new();
    for rate in [level, (level + limit) / 2.0, limit, 1.5 * limit, 2.0 * limit] {
        let (p, shown) = probe(loaded, g, limit, Effect::Times(rate / limit), None);
        rows.push(ZoneRow { level: shown, with_zone: figures(bench, &p)?, limit_as_null: figures(&plain_bench, &p)? });
    }
    Ok(ZoneCheck { rare_below: level, rows })
}

/// The smallest effect confined to each segment, at the first canary stage (or shadow).
fn segment_checks(
    bench: &Bench<'_>,
    loaded: &LoadedScenario,
    g: (Guardrail, f64),
    grid: &[Effect],
    o: &Options,
) -> Result<Vec<SegmentCheck>, String> {
    let all = stages(bench, loaded);
    let Some(&(phase, _, bake_s)) = all.iter().find(|(p, _, _)| matches!(p, Phase::Canary(_))).or(all.first()) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (dim, seg, name, share) in bench.segment_shares() {
        let smallest = smallest(bench, loaded, g, grid, (phase, bake_s), Some((dim, seg)), o)?;
        out.push(SegmentCheck { segment: name, share, smallest_detected: smallest.map(Effect::describe) });
    }
    Ok(out)
}

/// The scenario's own faults, when every one acts on the stacks alone.
fn own_faults(bench: &Bench<'_>, loaded: &LoadedScenario, o: &Options) -> Result<Option<FaultsCheck>, String> {
    let s = &loaded.scenario;
    let mut params = crate::streams::stream(s.seed, crate::streams::Stream::Params);
    let faults = loaded.faults(bench.features(), &mut params).map_err(|e| e.to_string())?;
    if faults.is_empty() || !faults.iter().all(|f| bench::acted_alone(&f.kind)) {
        return Ok(None);
    }
    let t = trials(bench, &Probe::Scenario, Phase::Shadow, bench.duration_us, None, o)?;
    let slo_s = s.expect.rollback_within_s.or(s.expect.detect_within_s);
    let times = Times::of(t.clone(), slo_s.unwrap_or(f64::INFINITY), s.traffic.duration_s);
    let within_slo = slo_s.map(|_| times.within_bake);
    let names: Vec<String> = faults.iter().map(|f| f.kind.name().to_string()).collect();
    Ok(Some(FaultsCheck { faults: names.join(", "), times, slo_s, within_slo }))
}

/// A scenario's SLO no judge can keep: what the information bound says, and what would
/// keep it. Analytic (no trials): `suite` prints it before it runs the scenario.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BelowBound {
    /// The SLO, s.
    pub slo_s: f64,
    /// The most any judge at the plan's false-rollback budget can catch within it.
    pub at_most: f64,
    /// In words, with the smallest changes that would let a judge keep it.
    pub reason: String,
}

/// The share of runs within the SLO a scenario must be able to reach: 29 of 30.
pub const KEEP: f64 = 29.0 / 30.0;

/// For a scenario whose fault raises a rate the plan limits (errors, timeouts, a latency
/// tail past the latency limit) on every request, whether its SLO (`rollback_within_s`,
/// else `detect_within_s`) is below the information bound: no judge at the plan's
/// false-rollback budget confirms the fault within it on 29 runs of 30. None when it is not,
/// or when the bound does not apply (no SLO, several faults, a fault confined to a segment
/// or a share of requests, or one that is not a rate).
pub fn slo_below_bound(loaded: &LoadedScenario) -> Option<BelowBound> {
    let s = &loaded.scenario;
    let slo_s = s.expect.rollback_within_s.or(s.expect.detect_within_s)?;
    if s.faults.len() != 1 {
        return None;
    }
    let mut params = crate::streams::stream(s.seed, crate::streams::Stream::Params);
    let faults = loaded.faults(&[], &mut params).ok()?;
    let [fault] = &faults[..] else { return None };
    if fault.segment_at.is_some() || fault.fraction < 1.0 {
        return None;
    }
    let plan = s.plan();
    let new = &s.stacks.new;
    // A rate's null: the level below which rollbacks must stay rare, the limit by default.
    let null = |g: Guardrail| plan.nulls().iter().find(|(n, _)| *n == g).map(|&(_, v)| v).or(plan.guardrails.limit(g));
    // The rates a test could compare: one for a rate guardrail; one per level for a latency
    // guardrail's tail (the bound takes the most informative).
    let candidates: Vec<(String, f64, f64)> = match fault.kind {
        Kind::Errors { rate } => vec![("errors".into(), null(Guardrail::ErrorRate)?, new.error_rate + rate)],
        Kind::Timeouts { rate } => vec![("timeouts".into(), null(Guardrail::TimeoutRate)?, rate)],
        Kind::Latency { add_ms: 0.0, tail_ms, tail_fraction } => {
            let bound_ms = match (
                plan.guardrails.limit(Guardrail::P99LatencyMs),
                plan.guardrails.limit(Guardrail::P99LatencyRatio),
            ) {
                (Some(ms), _) => ms,
                (None, Some(r)) => r * s.stacks.legacy.latency_ms_p99,
                (None, None) => return None,
            };
            LATENCY_LEVELS
                .iter()
                .map(|&k| {
                    let at = k * bound_ms;
                    let own = stack(new).share_slower(at);
                    let tail = if at > tail_ms { stack(new).share_slower(at - tail_ms) } else { 1.0 };
                    (format!("latency past {k}x the limit"), 0.01 / k, own + tail_fraction * (tail - own))
                })
                .collect()
        }
        _ => return None,
    };
    let (rate, horizon, alpha) = (s.traffic.rate_rps, s.traffic.duration_s, plan.controller.false_rollback_budget);
    let (name, p0, p1) =
        candidates.into_iter().map(|(n, p0, p1)| (n, p0, p1.min(1.0))).filter(|(_, p0, p1)| p1 > p0).max_by(
            |a, b| {
                let w = |c: &(String, f64, f64)| bound::confirmed_within(rate, horizon, c.1, c.2, alpha, slo_s);
                w(a).total_cmp(&w(b))
            },
        )?;
    let within = |rate: f64, alpha: f64, d: f64| bound::confirmed_within(rate, horizon, p0, p1, alpha, d);
    let at_most = within(rate, alpha, slo_s);
    if at_most >= KEEP {
        return None;
    }
    // The smallest changes that would let the bound reach 29 of 30: a longer SLO, more traffic,
    // a larger budget (on grids).
    let slo = (1..=4096).map(|k| f64::from(k) * 5.0).find(|&d| d <= horizon && within(rate, alpha, d) >= KEEP);
    let traffic = [1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0].into_iter().find(|&m| within(rate * m, alpha, slo_s) >= KEEP);
    let budget = [0.02, 0.05, 0.1, 0.2].into_iter().find(|&a| a > alpha && within(rate, a, slo_s) >= KEEP);
    let mut keep = Vec::new();
    if let Some(d) = slo {
        keep.push(format!("an SLO of {d:.0} s"));
    }
    if let Some(m) = traffic {
        keep.push(format!("{m}x the traffic ({:.0} rps)", rate * m));
    }
    if let Some(a) = budget {
        keep.push(format!("a false-rollback budget of {a}"));
    }
    let keep = if keep.is_empty() { "nothing on the grids tried".to_string() } else { keep.join(", or ") };
    Some(BelowBound {
        slo_s,
        at_most,
        reason: format!(
            "SLO below the information bound: {name} at {p1:.4} against {p0} at {rate} rps; no judge with a \
             false-rollback budget of {alpha} confirms it within {slo_s:.0} s on more than {:.0} % of runs \
             (29 of 30 needs {keep})",
            100.0 * at_most
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_p95s_interval_is_two_order_statistics_covering_at_least_95_percent() {
        let (r, s) = quantile_interval(100, 0.95);
        assert_eq!((r, s), (90, 100), "the 90th and the 100th smallest of 100");
        // P(B = k) for B ~ Bin(100, 0.95).
        let pmf = |k: usize| {
            let ln_c: f64 = (1..=k).map(|i| ((100 - i + 1) as f64 / i as f64).ln()).sum();
            (ln_c + k as f64 * 0.95f64.ln() + (100 - k) as f64 * 0.05f64.ln()).exp()
        };
        let below = |r: usize| (0..r).map(pmf).sum::<f64>();
        // Its coverage, P(r <= B < s), reaches 95 %.
        assert!(below(s) - below(r) >= 0.95, "{}", below(s) - below(r));
        // Equal tails: each end is the last one that leaves at most 2.5 % outside it.
        assert!(below(r) <= 0.025 && below(r + 1) > 0.025);
        assert!(1.0 - below(s) <= 0.025 && 1.0 - below(s - 1) > 0.025);
        // Too few trials to bound it from above: beyond the largest.
        assert_eq!(quantile_interval(20, 0.95).1, 21);
    }

    #[test]
    fn times_take_the_middle_two_and_count_the_missed_as_slowest() {
        let t = Times::of(vec![Some(4.0), Some(1.0), None, Some(2.0)], 3.0, 10.0);
        assert_eq!(t.median_s, Some(3.0), "the mean of 2 and 4");
        assert_eq!(t.rolled_back, 3);
        assert_eq!(t.within_bake, 0.5);
        assert_eq!(t.p95_s, None, "the 4th of 4 did not roll back");
        let t = Times::of(vec![None, None, Some(1.0)], 3.0, 10.0);
        assert_eq!(t.median_s, None);
    }
}
