//! The judge alone on a plan's traffic: the scenario's controller and judge fed the paired
//! evidence a stack-level fault leaves, without features, models or the store. Requests
//! arrive as the simulated world's do (the same seeded streams, the daily curve, the
//! migration's traffic source for segments and entities); both stacks' calls come from the
//! scenario's service-time models with the faults touching them (`stacks::call_both`, the
//! world's own step); answers are equal unless an event probe says otherwise. A clean run
//! is taken once to each stage's entry, and every trial goes on from there with streams of
//! its own.

use cutover_migration::answer::Answer;
use cutover_migration::schema::Record;
use cutover_migration::traffic::SharedSource;
use rand_chacha::ChaCha8Rng;

use crate::core::history::History;
use crate::core::pairing::{route, Call, Called, Pairing};
use crate::core::rollout::Rollout;
use crate::core::{Guardrail, Phase, SECOND};
use crate::faults::{Fault, Kind, Layer, Touch};
use crate::scenario::{LoadedScenario, Policy};
use crate::streams::{stream, unit, Stream};
use crate::world::arrivals::Arrivals;
use crate::world::stacks::{call_both, Stack};

/// Events a stack-level fault cannot make: the new answer or its features differ on a
/// share of requests (from `start_us`), or shadow calls lose their context.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Events {
    /// The guardrail whose evidence they are.
    pub guardrail: Guardrail,
    /// Share of requests (of shadow calls, for the context), or the mean difference for
    /// a score-difference guardrail.
    pub level: f64,
    /// For a score difference: how much a differing request differs (a share level / size
    /// of the requests differ, so that the mean is the level).
    pub size: f64,
    /// From when, µs.
    pub start_us: u64,
    /// Confined to this segment (dimension, segment index).
    pub segment: Option<(usize, usize)>,
}

/// What a trial injects: faults acting on the stacks, the scenario's own, or events.
#[derive(Debug, Clone)]
pub enum Probe {
    /// Faults as resolved, from the trial's start at the earliest.
    Faults(Vec<Fault>),
    /// The scenario's own faults, resolved with each trial's seed as a run would.
    Scenario,
    /// Events of one guardrail, from the trial's start at the earliest.
    Events(Events),
}

/// The kinds a judge-alone trial acts out: those whose definition acts on the new stack as
/// a service or on the shadow call (the layers the stacks' calls carry).
pub fn acted_alone(kind: &Kind) -> bool {
    matches!(kind.def().layer, Layer::Stack | Layer::Shadow)
}

/// A rollout in progress with what drives it.
#[derive(Clone)]
struct Run {
    rollout: Rollout,
    pairing: Pairing,
    record: Record,
    arrivals: ChaCha8Rng,
    latency: ChaCha8Rng,
    errors: ChaCha8Rng,
    /// Time, µs, of the next arrival and the next look.
    next_arrival: u64,
    next_look: u64,
    index: u64,
    mismatches: Vec<bool>,
    /// The trial's seed: which requests faults and events hit.
    seed: u64,
}

/// A trial's end.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trial {
    /// When the probe started (None: it never did).
    pub start_us: Option<u64>,
    /// When the rollout rolled back (None: not before the trial's end).
    pub rollback_us: Option<u64>,
}

impl Trial {
    /// Seconds from the probe's start to the rollback, when both came, the rollback after.
    pub fn to_rollback_s(&self) -> Option<f64> {
        match (self.start_us, self.rollback_us) {
            (Some(s), Some(r)) if r >= s => Some((r - s) as f64 / SECOND as f64),
            _ => None,
        }
    }
}

/// One scenario's plan and traffic, ready for trials.
pub struct Bench<'a> {
    loaded: &'a LoadedScenario,
    policy: Policy,
    answer: Answer,
    features: Vec<String>,
    segment_names: Vec<String>,
    pairing: Pairing,
    source: SharedSource,
    legacy: Stack,
    new: Stack,
    start_ms: i64,
    arrival: Arrivals,
    /// The end of the scenario, µs.
    pub duration_us: u64,
    seed: u64,
    /// The clean run at each stage's entry (shadow first), with the time it entered.
    entries: Vec<Entry>,
    /// Requests per segment (by index in the segments' names) over the clean run.
    segment_counts: Vec<u64>,
    /// Each request's entity and segments as the clean run drew them, by index (trials
    /// read them here rather than drawing the request again).
    drawn: Drawn,
}

/// A stage a clean run entered, when, and the run as it was then.
type Entry = (Phase, u64, Run);

/// Requests' entities and segments by index.
#[derive(Default)]
struct Drawn {
    entities: Vec<u64>,
    /// `stride` segment indices per request.
    segments: Vec<usize>,
    stride: usize,
}

/// The most requests whose draws are kept.
const DRAWN_MAX: usize = 8_000_000;

impl<'a> Bench<'a> {
    /// The judge it runs.
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// The bench for `loaded` under `policy`, with its clean run to every stage taken once
    /// (seed: the scenario's).
    pub fn new(loaded: &'a LoadedScenario, policy: Policy) -> Result<Bench<'a>, String> {
        let s = &loaded.scenario;
        let m = &loaded.migration;
        let (legacy, _) = m.start_stacks()?;
        let features = legacy.pipeline().output_names().to_vec();
        let segments = m.segments().map_err(|e| e.to_string())?.clone();
        let source = m.source(s.seed, s.traffic.rate_rps)?;
        let kinds = legacy.pipeline().output_kinds();
        let mut bench = Bench {
            loaded,
            policy,
            answer: m.answer().clone(),
            segment_names: segments.names().to_vec(),
            pairing: Pairing::new(m.answer().clone(), segments.clone(), kinds),
            legacy: Stack::new(&s.stacks.legacy, &segments)?,
            new: Stack::new(&s.stacks.new, &segments)?,
            start_ms: crate::world::start_at_hour(source.start_ms(), s.traffic.start_hour_utc),
            arrival: Arrivals::new(s.traffic.rate_rps, s.traffic.daily_curve.clone().or_else(|| source.daily_curve())),
            source,
            duration_us: (s.traffic.duration_s * SECOND as f64) as u64,
            seed: s.seed,
            entries: Vec::new(),
            segment_counts: Vec::new(),
            drawn: Drawn::default(),
            features,
        };
        (bench.entries, bench.segment_counts, bench.drawn) = bench.clean_entries()?;
        Ok(bench)
    }

    /// The model's features, by index as faults name them.
    pub fn features(&self) -> &[String] {
        &self.features
    }

    /// The stages a clean run entered, in order, with when.
    pub fn stage_entries(&self) -> Vec<(Phase, u64)> {
        self.entries.iter().map(|(p, t, _)| (*p, *t)).collect()
    }

    fn fresh(&self, seed: u64) -> Result<Run, String> {
        let s = &self.loaded.scenario;
        let rollout = Rollout::new(
            &s.plan(),
            self.policy,
            &self.answer,
            &self.features,
            &self.segment_names,
            History::discarded(),
        )?;
        let mut arrivals = stream(seed, Stream::Arrivals);
        let first = self.gap(&mut arrivals, 0);
        Ok(Run {
            next_look: rollout.interval_us,
            rollout,
            pairing: self.pairing.clone(),
            record: self.loaded.migration.schema().record(),
            arrivals,
            latency: stream(seed, Stream::Latency),
            errors: stream(seed, Stream::Errors),
            next_arrival: first,
            index: 0,
            mismatches: vec![false; self.features.len()],
            seed,
        })
    }

    /// Each segment of a dimension (dimension, index, name, share of the clean run's requests).
    pub fn segment_shares(&self) -> Vec<(usize, usize, String, f64)> {
        let segments = self.pairing.segments();
        let total = self.segment_counts.first().copied().unwrap_or(0).max(1) as f64;
        (0..segments.dims())
            .flat_map(|d| segments.range(d).map(move |i| (d, i)))
            .filter(|&(_, i)| self.segment_counts.get(i).is_some_and(|&c| c > 0))
            .map(|(d, i)| (d, i, self.segment_names[i].clone(), self.segment_counts[i] as f64 / total))
            .collect()
    }

    /// The clean run, kept at each stage it enters, its requests per segment and their draws.
    fn clean_entries(&self) -> Result<(Vec<Entry>, Vec<u64>, Drawn), String> {
        let mut run = self.fresh(self.seed)?;
        let mut out = vec![(Phase::Shadow, 0, run.clone())];
        let mut phase = Phase::Shadow;
        let mut counts = vec![0u64; self.segment_names.len()];
        let stride = run.pairing.segments().dims() + 1;
        let mut drawn = Drawn { stride, ..Drawn::default() };
        while let Some(t) = self.step(&mut run, &mut Vec::new(), None, self.duration_us) {
            if run.index != counts[0] {
                counts[0] = run.index;
                let segs = run.pairing.last_segments();
                for &s in &segs[1..] {
                    counts[s] += 1;
                }
                if drawn.entities.len() < DRAWN_MAX {
                    drawn.entities.push(run.record.entity);
                    drawn.segments.extend_from_slice(segs);
                }
            }
            let now = run.rollout.controller.phase();
            if now != phase {
                phase = now;
                if matches!(now, Phase::RolledBack) {
                    break;
                }
                out.push((now, t, run.clone()));
            }
        }
        Ok((out, counts, drawn))
    }

    /// The time of the next arrival after `now`, as the world draws it.
    fn gap(&self, arrivals: &mut ChaCha8Rng, now: u64) -> u64 {
        self.arrival.next(arrivals, self.start_ms, now)
    }

    /// One trial of `probe` from the clean run's entry to `phase` (the probe's start, if
    /// timed by a moment, is set when it comes), with streams from `seed`, until a
    /// rollback or `until_us` after the probe's start (the scenario's end at most).
    pub fn trial(&self, probe: &Probe, from: Phase, seed: u64, until_us: u64) -> Result<Trial, String> {
        let Some((_, t0, run)) = self.entries.iter().find(|(p, _, _)| *p == from) else {
            return Ok(Trial { start_us: None, rollback_us: None });
        };
        let mut run = run.clone();
        let mut rng = stream(seed, Stream::Arrivals);
        run.next_arrival = self.gap(&mut rng, *t0);
        run.arrivals = rng;
        run.latency = stream(seed, Stream::Latency);
        run.errors = stream(seed, Stream::Errors);
        let (mut faults, events) = match probe {
            Probe::Faults(fs) => {
                let mut fs = fs.clone();
                for f in fs.iter_mut().filter(|f| f.start_at.is_none()) {
                    f.start_us = f.start_us.max(*t0);
                }
                (fs, None)
            }
            Probe::Scenario => {
                let mut params = stream(seed, Stream::Params);
                (self.loaded.faults(&self.features, &mut params).map_err(|e| e.to_string())?, None)
            }
            Probe::Events(e) => (Vec::new(), Some(Events { start_us: e.start_us.max(*t0), ..*e })),
        };
        run.seed = seed;
        // Faults timed by the stage being entered start now.
        let stages = &self.loaded.scenario.rollout.stages_pct;
        for f in &mut faults {
            f.at_moments(*t0, from, stages);
        }
        loop {
            let start = match &events {
                None => faults.iter().map(|f| f.start_us).filter(|&s| s != u64::MAX).min(),
                Some(e) => Some(e.start_us),
            };
            let end = start.map_or(self.duration_us, |s| s.saturating_add(until_us).min(self.duration_us));
            match self.step(&mut run, &mut faults, events.as_ref(), end) {
                Some(_) if run.rollout.rollback_us.is_some() => {
                    return Ok(Trial { start_us: start, rollback_us: run.rollout.rollback_us });
                }
                Some(_) => {}
                None => return Ok(Trial { start_us: start, rollback_us: None }),
            }
        }
    }

    /// The next event of `run` (an arrival or a look) before `end_us`: its time, or None
    /// past the end or once the rollout is over.
    fn step(&self, run: &mut Run, faults: &mut [Fault], events: Option<&Events>, end_us: u64) -> Option<u64> {
        let t = run.next_arrival.min(run.next_look);
        if t > end_us || matches!(run.rollout.controller.phase(), Phase::RolledBack | Phase::Retired) {
            return None;
        }
        if run.next_look <= run.next_arrival {
            run.next_look = t + run.rollout.interval_us;
            self.look(run, faults, t);
        } else {
            run.next_arrival = self.gap(&mut run.arrivals, t);
            if self.request(run, faults, events, t) {
                self.look(run, faults, t);
            }
        }
        Some(t)
    }

    /// An evaluation; faults timed by a stage the rollout just entered are timed.
    fn look(&self, run: &mut Run, faults: &mut [Fault], t: u64) {
        let evaluated = run.rollout.evaluate(t, Some(0.0), &self.features, None, false);
        if evaluated.stage_changed {
            let (phase, stages) = (run.rollout.controller.phase(), &self.loaded.scenario.rollout.stages_pct);
            for f in faults {
                f.at_moments(t, phase, stages);
            }
        }
    }

    /// One request's evidence; true when the judge raised its alarm.
    fn request(&self, run: &mut Run, faults: &[Fault], events: Option<&Events>, t: u64) -> bool {
        let index = run.index;
        run.index += 1;
        let entity = match self.drawn.entities.get(index as usize) {
            Some(&entity) => {
                let d = &self.drawn;
                run.pairing.segments_are(&d.segments[index as usize * d.stride..][..d.stride]);
                entity
            }
            None => {
                self.source.fill(index, self.start_ms + (t / 1000) as i64, &mut run.record);
                run.pairing.segments_of(&run.record);
                run.record.entity
            }
        };
        let weight = run.rollout.controller.weight_pct();
        let (_, routed_new) = route(entity, weight);
        let shadow = !routed_new;
        let segs = run.pairing.last_segments();
        let mut touch = Touch::default();
        for f in faults {
            if f.active(t) && f.hits(run.seed, index, segs, t - f.start_us) {
                touch.add(&f.kind, f.index as u64, run.seed, index, shadow);
            }
        }
        let event = events.filter(|e| t >= e.start_us && e.segment.is_none_or(|(d, s)| segs[d + 1] == s)).copied();
        let both =
            call_both((&self.legacy, &self.new), &touch, segs, (&mut run.latency, &mut run.errors), (run.seed, t));
        let values = [0.0f32; 64];
        let width = self.answer.width().min(64);
        let answered = |c: Call<'static>| Call {
            ms: c.ms,
            outcome: if c.ok() { Called::Answered(&values[..width], None) } else { c.outcome },
        };
        let (legacy, new) = (answered(both.legacy), answered(both.new));
        let served_new = routed_new && new.ok();
        let Some(p) = run.pairing.pair(&run.record, true, None, &legacy, &new, shadow, touch.context_lost, served_new)
        else {
            return false;
        };
        let mut o = p.observation;
        let seed = run.seed;
        let hit = |salt: u64, level: f64| unit(seed, index, 0xC4EC + salt) < level;
        let mismatches = &mut run.mismatches;
        if let Some(e) = event {
            match e.guardrail {
                Guardrail::DecisionFlipRate if o.answered && hit(1, e.level) => {
                    o.flipped = true;
                    o.wrong = true;
                }
                Guardrail::FeatureMismatchRate if hit(2, e.level) => {
                    mismatches[0] = true;
                    o.mismatches = mismatches;
                }
                Guardrail::ShadowContextMismatchRate if shadow && hit(3, e.level) => o.shadow_context_mismatch = true,
                Guardrail::MeanAbsScoreDiff if o.answered && hit(4, e.level / e.size) => o.abs_score_diff = e.size,
                Guardrail::MeanRelScoreDiff if o.answered && hit(5, e.level / e.size) => o.rel_score_diff = e.size,
                _ => {}
            }
        }
        let alarm = run.rollout.observe(t, &o);
        run.mismatches[0] = false;
        alarm
    }
}
