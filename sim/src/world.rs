//! The world: a virtual clock in microseconds and an event queue ordered by (time,
//! sequence). Arrivals are Poisson (thinned by an optional daily curve); every request
//! goes through both stacks (dual path) and the router decides whose answer the user gets;
//! the controller evaluates a window every `interval_s`; the timeline closes a window
//! every minute. Everything lands in one history.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use cutover_models::features::{sha256_hex, FeatureDiff, ParityStats, Segments};
use cutover_models::fraud::{Generator, GeneratorConfig, Request};
use cutover_models::paths::DualPath;
use cutover_models::registry::Registry;
use cutover_models::runtime::{scorer, Runtime, Scorer};
use cutover_models::stack::ScoringStack;
use cutover_models::store::Schedule;
use cutover_models::{Model, Output};
use rand_chacha::ChaCha8Rng;

use crate::controller::Phase;
use crate::faults::{self, in_segment, Fault, Kind, SECOND};
use crate::history::{Event, History};
use crate::monitor::{Pair, Window};
use crate::replay::{Baseline, Recorded};
use crate::report::{Summary, TimelineRow};
use crate::rollout::{Counts, Rollout};
use crate::scenario::{LoadedScenario, Policy, ScenarioError, StackModel};
use crate::sequential::Observation;
use crate::streams::{exponential, mix, normal, stream, Stream};
use crate::trace::{parity_stats, Lineage, StageStats, Trace};
use rand::RngExt;

/// Why a scenario could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The scenario is invalid.
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    /// A stack refused to start, or an artifact did not load.
    #[error("{file}: {message}")]
    Setup {
        /// The scenario file.
        file: String,
        /// What failed.
        message: String,
    },
}

/// Everything a run produces.
pub struct RunResult {
    /// summary.json.
    pub summary: Summary,
    /// timeline.csv rows.
    pub timeline: Vec<TimelineRow>,
    /// The history's events.
    pub events: Vec<Event>,
    /// Feature parity per feature and segment.
    pub parity: Vec<cutover_models::features::FeatureParity>,
    /// Guardrails per evaluation, score differences (empty for sweeps).
    pub trace: Trace,
    /// Every stage's statistics (empty for sweeps).
    pub stage_stats: Vec<StageStats>,
    /// The stacks' lineage (none for sweeps).
    pub lineage: Option<Arc<Lineage>>,
    /// The scenario's length, s (a replay's: to its last record).
    pub duration_s: f64,
    /// A replay's check of the recorded legacy answers.
    pub baseline: Option<Baseline>,
}

/// Timeline windows are one minute long.
const TIMELINE_US: u64 = 60 * SECOND;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
/// Events at the same microsecond run in this order (then in the order they were
/// scheduled), so a lane's evaluations fall between the same requests whichever other
/// lanes share its world.
enum Ev {
    FaultStart(usize),
    FaultEnd(usize),
    Arrival,
    Evaluate(usize),
    Timeline,
}

/// Which scorer the new stack uses for a request.
#[derive(Clone, Copy, PartialEq, Eq)]
enum NewModel {
    Same,
    Alternate(usize),
    Drift,
}

#[derive(Clone)]
struct Stack {
    mu: f64,
    sigma: f64,
    error_rate: f64,
    timeout_ms: f64,
    slow: Vec<(String, f64)>,
}

impl Stack {
    fn new(m: &StackModel) -> Stack {
        Stack {
            mu: m.latency_ms_p50.ln(),
            sigma: (m.latency_ms_p99 / m.latency_ms_p50).ln() / 2.326_347_874,
            error_rate: m.error_rate,
            timeout_ms: m.timeout_ms,
            slow: m.slow_segments.iter().map(|s| (s.segment.clone(), s.factor)).collect(),
        }
    }

    fn latency_ms(&self, rng: &mut ChaCha8Rng, r: &Request) -> f64 {
        let mut ms = (self.mu + self.sigma * normal(rng)).exp();
        for (seg, factor) in &self.slow {
            if in_segment(seg, r) {
                ms *= factor;
            }
        }
        ms
    }
}

/// What a run computes and how long it goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Everything (`run`, `suite`): the history and its hash, the timeline, parity; the run
    /// goes on to the scenario's end.
    Full,
    /// What a sweep's record reads (outcome, detection and rollback times, bad decisions,
    /// user failures, invariants) and nothing else: no history, timeline or parity; a request
    /// whose two rows are bit-identical on a shared artifact is not scored (both answers are
    /// equal whatever the score, so nothing the record reads can depend on it); and the run
    /// ends as soon as its outcome can no longer change (a rollback is final).
    Sweep,
}

/// Runs a scenario with an optional seed override.
pub fn run(
    loaded: &LoadedScenario,
    seed_override: Option<u64>,
    policy_override: Option<Policy>,
) -> Result<RunResult, RunError> {
    let policy = policy_override.unwrap_or(loaded.scenario.controller.policy);
    let mut results = run_policies(loaded, seed_override, &[policy], Mode::Full)?;
    Ok(results.pop().expect("one policy, one result"))
}

/// Runs a scenario under several judges at once, one result per policy in their order, each
/// the same as a run under that policy alone. The judges share one world (traffic, feature
/// paths, store, models, random streams) for as long as their decisions route traffic the
/// same way; when a decision diverges, the world forks and each side goes on with the
/// judges that agree. A clean rollout usually never forks, so three judges cost about one.
pub fn run_policies(
    loaded: &LoadedScenario,
    seed_override: Option<u64>,
    policies: &[Policy],
    mode: Mode,
) -> Result<Vec<RunResult>, RunError> {
    let world = World::build(loaded, seed_override, policies, mode, None)?;
    let mut results: Vec<Option<RunResult>> = policies.iter().map(|_| None).collect();
    let mut pending = vec![world];
    let mut done = Vec::new();
    while let Some(mut world) = pending.pop() {
        world.run(&mut pending, &mut done);
        for lane in std::mem::take(&mut world.lanes) {
            done.push((lane.id, world.finish_lane(lane)));
        }
    }
    for (id, result) in done {
        results[id] = Some(result);
    }
    Ok(results.into_iter().map(|r| r.expect("every judge's run finishes")).collect())
}

/// One judge's rollout in a world, with its index in the policies asked for.
#[derive(Clone)]
struct Lane {
    id: usize,
    r: Rollout,
}

/// Recorded requests in their order (a replay), shared by the forks a world never makes
/// with one judge.
type Records = Arc<Mutex<Box<dyn Iterator<Item = Recorded> + Send>>>;

#[derive(Clone)]
struct World<'a> {
    loaded: &'a LoadedScenario,
    lineage: Option<Arc<Lineage>>,
    /// Recorded requests instead of generated ones, the next one, and what the recorded
    /// legacy answers say of the in-process legacy path.
    records: Option<Records>,
    pending: Option<Recorded>,
    baseline: Baseline,
    out_of_order: u64,
    /// Event time of scenario time 0, ms since the epoch.
    start_ms: i64,
    mode: Mode,
    seed: u64,
    duration_us: u64,
    rate_rps: f64,
    curve: Option<Vec<f64>>,
    generator: Generator,
    paths: DualPath,
    legacy_model: Arc<Model>,
    new_model: Arc<Model>,
    alternates: Vec<Arc<Model>>,
    drift: Option<Arc<dyn Scorer>>,
    features: Vec<String>,
    threshold: f32,
    legacy: Stack,
    new: Stack,
    user_budget_ms: f64,
    faults: Vec<Fault>,
    lanes: Vec<Lane>,
    timeline_window: Window,
    parity: ParityStats,
    queue: BinaryHeap<Reverse<(u64, Ev, u64)>>,
    seq: u64,
    arrivals: ChaCha8Rng,
    latency_rng: ChaCha8Rng,
    error_rng: ChaCha8Rng,
    segments: Segments,
    next_index: u64,
    legacy_row: Vec<f32>,
    new_row: Vec<f32>,
    mismatches: Vec<bool>,
    diffs: Vec<FeatureDiff>,
    // Outcomes, the same for every lane of the world.
    requests_total: u64,
    requests_failed: u64,
    bad_decisions: u64,
}

impl<'a> World<'a> {
    fn build(
        loaded: &'a LoadedScenario,
        seed_override: Option<u64>,
        policies: &[Policy],
        mode: Mode,
        records: Option<Records>,
    ) -> Result<World<'a>, RunError> {
        let s = &loaded.scenario;
        let file = loaded.path.display().to_string();
        let setup = |message: String| RunError::Setup { file: file.clone(), message };
        let seed = seed_override.unwrap_or(s.seed);
        let registry = Registry::open(&loaded.resolve(&s.domain.registry));
        let legacy = ScoringStack::start_entry(&registry, &s.domain.legacy_entry)
            .map_err(|e| setup(format!("legacy stack: {e}")))?;
        let new =
            ScoringStack::start_entry(&registry, &s.domain.new_entry).map_err(|e| setup(format!("new stack: {e}")))?;
        let features = legacy.pipeline().output_names().to_vec();
        let paths = DualPath::new(legacy.pipeline().clone(), new.pipeline().clone(), Schedule::default())
            .map_err(|e| setup(e.to_string()))?;
        let mut params = stream(seed, Stream::Params);
        let faults = faults::resolve(loaded, &features, &mut params)?;
        let mut alternates = Vec::new();
        let mut swapped_artifacts = Vec::new();
        for f in &faults {
            if let Kind::ModelArtifact { artifact } = &f.kind {
                if mode == Mode::Full {
                    let bytes = std::fs::read(artifact).map_err(|e| setup(format!("{}: {e}", artifact.display())))?;
                    swapped_artifacts.push((artifact.display().to_string(), sha256_hex(&bytes)));
                }
                let m = cutover_models::xgboost::load_file(artifact).map_err(|e| setup(e.to_string()))?;
                if m.feature_names() != features.as_slice() {
                    return Err(setup(format!("{}: its features differ from the stack's", artifact.display())));
                }
                alternates.push(Arc::new(m));
            }
        }
        // One artifact, one model: both stacks share it, and an unchanged row is scored once.
        let legacy_model = Arc::new(legacy.model().clone());
        let new_model = if new.entry().sha256 == legacy.entry().sha256 {
            legacy_model.clone()
        } else {
            Arc::new(new.model().clone())
        };
        let drift: Option<Arc<dyn Scorer>> = if faults.iter().any(|f| f.kind == Kind::RuntimeDrift) {
            let boxed =
                scorer(&new_model, Runtime::GbdtUnmappedMissing, "new stack").map_err(|e| setup(e.to_string()))?;
            Some(Arc::from(boxed))
        } else {
            None
        };
        let segments = Segments::default();
        let us = |sec: f64| (sec * SECOND as f64) as u64;
        let n = features.len();
        let history = || if mode == Mode::Full { History::new() } else { History::discarded() };
        let mut lanes = Vec::new();
        for (id, &policy) in policies.iter().enumerate() {
            let r = Rollout::new(s, policy, &features, &segments, history()).map_err(setup)?;
            lanes.push(Lane { id, r });
        }
        let generator = Generator::with_config(
            seed,
            GeneratorConfig {
                customers: s.domain.customers,
                rate_rps: s.traffic.rate_rps,
                ..GeneratorConfig::default()
            },
        );
        let parity = parity_stats(legacy.pipeline(), seed, segments.clone());
        let lineage = (mode == Mode::Full).then(|| Arc::new(Lineage::of(&legacy, &new, swapped_artifacts)));
        let start_ms = generator.config().start_ms;
        let mut world = World {
            loaded,
            lineage,
            records,
            pending: None,
            baseline: Baseline::default(),
            out_of_order: 0,
            start_ms,
            mode,
            seed,
            duration_us: us(s.traffic.duration_s),
            rate_rps: s.traffic.rate_rps,
            curve: s.traffic.daily_curve.clone(),
            generator,
            paths,
            legacy_model,
            new_model,
            alternates,
            drift,
            threshold: s.domain.decision_threshold as f32,
            legacy: Stack::new(&s.stacks.legacy),
            new: Stack::new(&s.stacks.new),
            user_budget_ms: s.stacks.user_budget_ms,
            faults,
            lanes,
            timeline_window: Window::new(n),
            parity,
            queue: BinaryHeap::new(),
            seq: 0,
            arrivals: stream(seed, Stream::Arrivals),
            latency_rng: stream(seed, Stream::Latency),
            error_rng: stream(seed, Stream::Errors),
            segments,
            next_index: 0,
            legacy_row: vec![0.0; n],
            new_row: vec![0.0; n],
            mismatches: vec![false; n],
            diffs: vec![FeatureDiff::Equal; n],
            features,
            requests_total: 0,
            requests_failed: 0,
            bad_decisions: 0,
        };
        world.start();
        Ok(world)
    }

    fn schedule(&mut self, t: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse((t, ev, self.seq)));
    }

    fn next_record(&mut self) -> Option<Recorded> {
        self.records.as_ref()?.lock().unwrap_or_else(|e| e.into_inner()).next()
    }

    /// Schedules the next record at its recorded time (never before the last one: a row
    /// out of order is replayed at once); at the end, the run ends now.
    fn schedule_record(&mut self, t: u64) {
        match self.next_record() {
            Some(r) => {
                let at_ms = r.request.event_time_ms.saturating_sub(self.start_ms);
                let at = u64::try_from(at_ms).unwrap_or(0).saturating_mul(1000);
                if at < t {
                    self.out_of_order += 1;
                }
                self.pending = Some(r);
                self.schedule(at.max(t), Ev::Arrival);
            }
            None => {
                self.duration_us = t;
                if t % TIMELINE_US != 0 && self.mode == Mode::Full {
                    // The last minute's row, however short.
                    self.schedule(t, Ev::Timeline);
                }
            }
        }
    }

    fn max_rate(&self) -> f64 {
        let peak = self.curve.as_ref().map_or(1.0, |c| c.iter().copied().fold(0.0, f64::max));
        self.rate_rps * peak
    }

    fn next_arrival(&mut self, now: u64) -> u64 {
        let mean_gap_s = 1.0 / self.max_rate();
        now + (exponential(&mut self.arrivals, mean_gap_s) * SECOND as f64).max(1.0) as u64
    }

    fn start(&mut self) {
        if self.records.is_some() {
            // A replay runs until its last record, whatever the plan's duration.
            self.duration_us = u64::MAX / 4;
        }
        for k in 0..self.faults.len() {
            let (start, end) = (self.faults[k].start_us, self.faults[k].end_us);
            if start < self.duration_us {
                self.schedule(start, Ev::FaultStart(k));
            }
            if end < self.duration_us {
                self.schedule(end, Ev::FaultEnd(k));
            }
        }
        if self.records.is_some() {
            match self.next_record() {
                Some(first) => {
                    self.start_ms = first.request.event_time_ms;
                    self.pending = Some(first);
                    self.schedule(0, Ev::Arrival);
                }
                None => self.duration_us = 0,
            }
        } else {
            let first = self.next_arrival(0);
            self.schedule(first, Ev::Arrival);
        }
        for k in 0..self.lanes.len() {
            let (interval, id) = (self.lanes[k].r.interval_us, self.lanes[k].id);
            self.schedule(interval, Ev::Evaluate(id));
        }
        if self.mode == Mode::Full {
            self.schedule(TIMELINE_US, Ev::Timeline);
        }
    }

    /// Runs until the end, or until no lane is left; lanes that diverge go on in forks
    /// pushed to `forks`, lanes whose outcome is final (sweeps) land in `done`.
    fn run(&mut self, forks: &mut Vec<World<'a>>, done: &mut Vec<(usize, RunResult)>) {
        while let Some(Reverse((t, ev, seq))) = self.queue.pop() {
            if t > self.duration_us {
                break;
            }
            match ev {
                Ev::Arrival => {
                    // Requests are the only events that read the routing lanes share.
                    self.split(forks, (t, ev, seq));
                    if self.records.is_some() {
                        self.serve(t);
                        self.schedule_record(t);
                        continue;
                    }
                    if self.accept(t) {
                        self.serve(t);
                    }
                    let next = self.next_arrival(t);
                    self.schedule(next, Ev::Arrival);
                }
                Ev::Evaluate(id) => {
                    // A lane that forked away or finished leaves its evaluations behind.
                    let Some(k) = self.lanes.iter().position(|l| l.id == id) else { continue };
                    self.evaluate(t, k);
                    let next = t + self.lanes[k].r.interval_us;
                    self.schedule(next, Ev::Evaluate(id));
                    self.settle(done);
                }
                Ev::Timeline => {
                    self.close_timeline(t);
                    self.schedule(t + TIMELINE_US, Ev::Timeline);
                }
                Ev::FaultStart(k) => self.fault_start(t, k),
                Ev::FaultEnd(k) => {
                    for lane in &mut self.lanes {
                        lane.r.history.push(Event::FaultEnd { t_s: t as f64 / 1e6, index: k });
                    }
                }
            }
            if self.lanes.is_empty() {
                break;
            }
        }
    }

    /// In a sweep, a lane whose rollback made its outcome final is done at once.
    fn settle(&mut self, done: &mut Vec<(usize, RunResult)>) {
        if self.mode != Mode::Sweep || self.lanes.iter().all(|l| l.r.controller.phase() != Phase::RolledBack) {
            return;
        }
        let (settled, going): (Vec<Lane>, Vec<Lane>) =
            std::mem::take(&mut self.lanes).into_iter().partition(|l| l.r.controller.phase() == Phase::RolledBack);
        self.lanes = going;
        for lane in settled {
            done.push((lane.id, self.finish_lane(lane)));
        }
    }

    /// Before a request: lanes whose routing differs from the first lane's go on in a fork
    /// of the world. Deciding here rather than after each evaluation lets judges that take
    /// the same decision at the same instant (every stage change of a clean rollout) stay
    /// together.
    fn split(&mut self, forks: &mut Vec<World<'a>>, current: (u64, Ev, u64)) {
        let Some(first) = self.lanes.first().map(|l| l.r.routing()) else { return };
        if self.lanes.iter().all(|l| l.r.routing() == first) {
            return;
        }
        let mut groups: Vec<Vec<Lane>> = Vec::new();
        for lane in std::mem::take(&mut self.lanes) {
            match groups.iter_mut().find(|g| g[0].r.routing() == lane.r.routing()) {
                Some(g) => g.push(lane),
                None => groups.push(vec![lane]),
            }
        }
        let mut groups = groups.into_iter();
        self.lanes = groups.next().expect("at least one group");
        for group in groups {
            let mut fork = self.clone();
            fork.lanes = group;
            // The fork serves the request at hand too.
            fork.queue.push(Reverse(current));
            forks.push(fork);
        }
    }

    /// The controller state every lane of this world shares.
    fn weight_pct(&self) -> f64 {
        self.lanes[0].r.controller.weight_pct()
    }

    fn phase(&self) -> Phase {
        self.lanes[0].r.controller.phase()
    }

    /// Thinning for the daily curve: keep an arrival with probability curve(hour) / peak.
    fn accept(&mut self, t: u64) -> bool {
        let Some(curve) = &self.curve else { return true };
        let start_ms = self.start_ms;
        let hour = (((start_ms as u64 / 1000 + t / SECOND) / 3600) % 24) as usize;
        let peak = curve.iter().copied().fold(0.0, f64::max);
        let keep = curve[hour] / peak;
        self.arrivals.random::<f64>() < keep
    }

    fn fault_start(&mut self, t: u64, k: usize) {
        let f = self.faults[k].clone();
        for lane in &mut self.lanes {
            lane.r.history.push(Event::FaultStart { t_s: t as f64 / 1e6, index: k, kind: f.kind.name().into() });
        }
        match f.kind {
            Kind::StaleFeatures { stall_us } => {
                let until_ms = self.start_ms + ((t + stall_us) / 1000) as i64;
                self.paths.store_mut().stall_until(until_ms);
            }
            Kind::DecommissionLegacy => {
                for lane in &mut self.lanes {
                    // Refused or not, it is in the lane's history.
                    let _ = lane.r.decommission(t);
                }
            }
            _ => {}
        }
    }

    fn violation(&mut self, t: u64, invariant: &str, detail: String) {
        for lane in &mut self.lanes {
            lane.r.violation(t, invariant, detail.clone());
        }
    }

    fn serve(&mut self, t: u64) {
        let index = self.next_index;
        self.next_index += 1;
        let recorded = self.pending.take();
        let request = match &recorded {
            Some(r) => r.request,
            None => self.generator.labeled_at(index, self.start_ms + (t / 1000) as i64).0,
        };
        let weight = self.weight_pct();
        let bucket = (mix(request.customer_id ^ 0xB0C7) % 10_000) as f64 / 100.0;
        let routed_new = bucket < weight;
        let shadow = !routed_new;

        // Which faults touch this request.
        let (mut new_request, mut model, mut add_ms, mut err_rate, mut timeout_rate) =
            (request, NewModel::Same, 0.0, 0.0, 0.0);
        let mut context_lost = false;
        let mut feature_faults = false;
        for f in &self.faults {
            if !f.active(t) || !f.hits(self.seed, index, &request) {
                continue;
            }
            match &f.kind {
                Kind::ShadowContext if shadow => {
                    new_request.device_os = None;
                    new_request.account_age_days = None;
                    context_lost = true;
                }
                Kind::ModelArtifact { .. } => {
                    let k =
                        self.faults[..f.index].iter().filter(|g| matches!(g.kind, Kind::ModelArtifact { .. })).count();
                    model = NewModel::Alternate(k);
                }
                Kind::RuntimeDrift => model = NewModel::Drift,
                Kind::Latency { add_ms: a, tail_ms, tail_fraction } => {
                    add_ms += a;
                    if crate::streams::unit(self.seed, index, 0x7A11 + f.index as u64) < *tail_fraction {
                        add_ms += tail_ms;
                    }
                }
                Kind::Errors { rate } => err_rate += rate,
                // Connection refused: an error, at once.
                Kind::StackDown => err_rate += 1.0,
                Kind::Timeouts { rate } => timeout_rate += rate,
                Kind::FeatureSkew { .. } | Kind::MissingValuePolicy { .. } | Kind::CategoricalEncoding { .. } => {
                    feature_faults = true
                }
                _ => {}
            }
        }

        let rows = self.paths.compute_with(&request, &new_request);
        self.legacy_row.copy_from_slice(rows.legacy);
        self.new_row.copy_from_slice(rows.new);
        self.diffs.copy_from_slice(rows.diffs);
        if feature_faults {
            for f in &self.faults {
                if !f.active(t) || !f.hits(self.seed, index, &request) {
                    continue;
                }
                f.kind.apply_to_row(&mut self.new_row);
            }
            cutover_models::features::diff_rows(self.paths.kinds(), &self.legacy_row, &self.new_row, &mut self.diffs);
        }
        for (m, d) in self.mismatches.iter_mut().zip(&self.diffs) {
            *m = d.is_mismatch();
        }

        // Scores: one model call when both stacks would compute the same thing, none in a
        // sweep (the two answers are equal whatever the score, and only the history reads it).
        let same_input = model == NewModel::Same
            && Arc::ptr_eq(&self.legacy_model, &self.new_model)
            && self.diffs.iter().all(|d| *d == FeatureDiff::Equal)
            && self.legacy_row.iter().zip(&self.new_row).all(|(a, b)| a.to_bits() == b.to_bits());
        let (legacy_score, new_score) = if same_input && self.mode == Mode::Sweep {
            (0.0, 0.0)
        } else {
            let legacy_score = self.legacy_model.predict_one(&self.legacy_row);
            let new_score = match model {
                NewModel::Same if same_input => legacy_score,
                NewModel::Same => self.new_model.predict_one(&self.new_row),
                NewModel::Alternate(k) => self.alternates[k].predict_one(&self.new_row),
                NewModel::Drift => {
                    let mut out = [0.0f32];
                    self.drift.as_ref().expect("built with the fault").score_batch(
                        &self.new_row,
                        Output::Prediction,
                        &mut out,
                    );
                    out[0]
                }
            };
            (legacy_score, new_score)
        };
        let legacy_decision = legacy_score >= self.threshold;
        let new_decision = new_score >= self.threshold;
        if let Some(r) = &recorded {
            self.baseline.observe(r.line, (r.legacy_score, r.legacy_decision), (legacy_score, legacy_decision));
        }

        // Service times and outcomes.
        let legacy_ms = self.legacy.latency_ms(&mut self.latency_rng, &request);
        let new_ms_raw = self.new.latency_ms(&mut self.latency_rng, &request) + add_ms;
        let legacy_error = self.error_rng.random::<f64>() < self.legacy.error_rate;
        let new_error = self.error_rng.random::<f64>() < self.new.error_rate + err_rate;
        let forced_timeout = self.error_rng.random::<f64>() < timeout_rate;
        let new_timeout = !new_error && (forced_timeout || new_ms_raw > self.new.timeout_ms);
        let new_ms = if new_timeout { self.new.timeout_ms } else { new_ms_raw.min(self.new.timeout_ms) };
        let new_failed = new_error || new_timeout;

        // The user's answer.
        let (served_new, user_ms, user_failed) = if routed_new && !new_failed {
            (true, new_ms, false)
        } else if routed_new {
            // Fallback to legacy within the budget, counted against the new stack.
            let total = new_ms + legacy_ms;
            (false, total, legacy_error || total > self.user_budget_ms)
        } else {
            (false, legacy_ms, legacy_error || legacy_ms > self.user_budget_ms)
        };
        self.requests_total += 1;
        self.requests_failed += u64::from(user_failed);
        if served_new && new_decision != legacy_decision {
            self.bad_decisions += 1;
        }

        // Invariants, on every request.
        if routed_new && bucket >= weight {
            self.violation(
                t,
                "new-stack share never above the stage weight",
                format!("customer bucket {bucket:.2} % routed to new at weight {weight} %"),
            );
        }
        if routed_new && self.phase() == Phase::RolledBack {
            self.violation(
                t,
                "nothing routed to new after a rollback",
                format!("request {index} went to the new stack after the rollback"),
            );
        }
        if user_failed && !legacy_error && routed_new {
            self.violation(
                t,
                "no user-visible failure while legacy is healthy",
                format!(
                    "request {index} failed for the user after the new stack's {}",
                    if new_error { "error" } else { "timeout" }
                ),
            );
        }

        let pair = Pair {
            abs_score_diff: f64::from((new_score - legacy_score).abs()),
            flipped: new_decision != legacy_decision,
            mismatches: &self.mismatches,
            legacy_ms,
            new_ms,
            new_error,
            new_timeout,
            shadow,
            shadow_context_mismatch: context_lost,
        };
        let segs = self.segments.of(&request);
        let observation = Observation {
            answered: !(new_error || new_timeout),
            flipped: pair.flipped,
            abs_score_diff: pair.abs_score_diff,
            mismatches: &self.mismatches,
            segments: &segs,
            error: new_error,
            timeout: new_timeout,
            new_ms,
            legacy_ms,
            shadow,
            shadow_context_mismatch: context_lost,
        };
        let flags = u64::from(routed_new)
            | u64::from(served_new) << 1
            | u64::from(new_error) << 2
            | u64::from(new_timeout) << 3
            | u64::from(user_failed) << 4
            | u64::from(legacy_decision) << 5
            | u64::from(new_decision) << 6;
        let scores = u64::from(legacy_score.to_bits()) << 32 | u64::from(new_score.to_bits());
        for lane in &mut self.lanes {
            lane.r.observe(t, &pair, &observation, served_new);
            lane.r.history.request(&[t, index, request.customer_id, flags, scores, user_ms.to_bits()]);
        }
        if self.mode == Mode::Full {
            self.timeline_window.record(&pair, served_new);
            self.parity.observe(&request, &self.legacy_row, &self.new_row, &self.diffs);
        }
        self.paths.served(&request);
    }

    fn staleness_s(&self, t: u64) -> Option<f64> {
        let now_ms = self.start_ms + (t / 1000) as i64;
        self.paths.store_lag_ms(now_ms).map(|ms| ms as f64 / 1000.0)
    }

    fn evaluate(&mut self, t: u64, k: usize) {
        let staleness = self.staleness_s(t).or(Some(f64::INFINITY));
        let fault_start = self.fault_start_us();
        let keep = self.mode == Mode::Full;
        self.lanes[k].r.evaluate(t, staleness, &self.features, fault_start, keep);
    }

    fn close_timeline(&mut self, t: u64) {
        self.timeline_window.staleness_s = self.staleness_s(t);
        let summary = self.timeline_window.summary();
        for lane in &mut self.lanes {
            let c = &lane.r.controller;
            let row = TimelineRow::new(t as f64 / 1e6, c.weight_pct(), c.phase(), &summary);
            lane.r.timeline.push(row);
        }
        self.timeline_window.clear();
    }

    fn fault_start_us(&self) -> Option<u64> {
        self.faults.iter().filter(|f| f.kind != Kind::DecommissionLegacy).map(|f| f.start_us).min()
    }

    /// One lane's result, from its own state and the world's as it stands.
    fn finish_lane(&self, lane: Lane) -> RunResult {
        let s = &self.loaded.scenario;
        let policy = lane.r.controller.policy();
        let reproduce = format!(
            "cutover run {} --seed {}{}",
            self.loaded.path.display(),
            self.seed,
            if policy == s.controller.policy.name() { String::new() } else { format!(" --policy {policy}") }
        );
        let counts = Counts {
            requests_total: self.requests_total,
            requests_failed: self.requests_failed,
            bad_decisions: self.bad_decisions,
        };
        let mut summary = lane.r.summary(s, self.seed, self.fault_start_us(), counts, reproduce);
        if let Some(e) = self.baseline.expectation() {
            summary.expectations.push(e);
            summary.passed = summary.expectations.iter().all(|e| e.passed);
        }
        let stage_stats = lane.r.stage_stats();
        RunResult {
            summary,
            stage_stats,
            trace: lane.r.trace.map(|t| *t).unwrap_or_default(),
            lineage: self.lineage.clone(),
            duration_s: self.duration_us as f64 / 1e6,
            baseline: self.records.is_some().then(|| self.baseline.clone()),
            timeline: lane.r.timeline,
            events: lane.r.history.events().to_vec(),
            parity: if self.mode == Mode::Full { self.parity.report() } else { Vec::new() },
        }
    }
}

/// Replays recorded requests under a scenario's plan (one judge, the scenario's), in their
/// order and at their recorded times; also the rows replayed out of order.
pub fn run_recorded(
    loaded: &LoadedScenario,
    seed_override: Option<u64>,
    records: Box<dyn Iterator<Item = Recorded> + Send>,
) -> Result<(RunResult, u64), RunError> {
    let policy = loaded.scenario.controller.policy;
    let records: Records = Arc::new(Mutex::new(records));
    let mut world = World::build(loaded, seed_override, &[policy], Mode::Full, Some(records))?;
    let (mut forks, mut done) = (Vec::new(), Vec::new());
    world.run(&mut forks, &mut done);
    assert!(forks.is_empty() && done.is_empty(), "one judge in full mode neither forks nor settles early");
    let lane = world.lanes.pop().expect("one judge, one lane");
    let result = world.finish_lane(lane);
    // The reproduction line of a replay is the replay's own command, which the caller knows.
    Ok((result, world.out_of_order))
}

/// Loads and runs a scenario file.
pub fn run_file(path: &Path, seed: Option<u64>, policy: Option<Policy>) -> Result<RunResult, RunError> {
    let loaded = LoadedScenario::read(path)?;
    run(&loaded, seed, policy)
}
