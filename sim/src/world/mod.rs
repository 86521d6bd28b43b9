//! The world: a virtual clock in microseconds and an event queue ordered by (time,
//! sequence). Arrivals are Poisson (thinned by an optional daily curve); every request
//! goes through both stacks (dual path) and the router decides whose answer the user gets;
//! the controller evaluates a window every `interval_s`; the timeline closes a window
//! every minute. Everything lands in one history.

pub(crate) mod arrivals;
mod outcome;
pub mod replay;
mod rows;
mod scoring;
pub(crate) mod stacks;
pub mod suite;
pub mod sweep;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use cutover_migration::answer::Answer;
use cutover_migration::features::{sha256_hex, ParityStats, Pipeline};
use cutover_migration::paths::DualPath;
use cutover_migration::schema::Record;
use cutover_migration::traffic::SharedSource;
use cutover_models::runtime::{scorer, Runtime, Scorer};
use cutover_models::Model;
use rand::RngExt;
use rand_chacha::ChaCha8Rng;

use crate::core::history::{Event, History};
use crate::core::monitor::Window;
use crate::core::pairing::{route, Call, Called, Pairing, UserAnswer};
use crate::core::rollout::{Counts, Rollout};
use crate::core::trace::{parity_stats, Lineage, StageStats, SwitchedSpec, Trace};
use crate::core::user_path::{user_ms, violations, Routed};
use crate::core::verdict::{Summary, TimelineRow};
use crate::core::Phase;
use crate::faults::{self, Fault, Kind, Touch, SECOND};
use crate::scenario::{LoadedScenario, Policy, ScenarioError};
use crate::streams::{stream, Stream};
use outcome::RequestLine;
use replay::{Baseline, Recorded};
use rows::Rows;
use scoring::Scoring;
use stacks::Stack;

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
    pub parity: Vec<cutover_migration::features::FeatureParity>,
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
    /// The migration's answer (what the dashboard draws of the scores).
    pub answer: Answer,
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
    /// Whether a lane's judge raised its alarm during the last request (and so evaluated
    /// then, out of its schedule).
    alarmed: bool,
    /// Event time of scenario time 0, ms since the epoch.
    start_ms: i64,
    mode: Mode,
    seed: u64,
    duration_us: u64,
    arrival: arrivals::Arrivals,
    source: SharedSource,
    /// Both feature paths and the request's rows.
    rows: Rows,
    /// Both stacks' models, and what faults make the new one score with and answer.
    scoring: Scoring,
    features: Vec<String>,
    legacy: Stack,
    new: Stack,
    user_budget_ms: f64,
    faults: Vec<Fault>,
    /// The faults touching the request at hand (their positions in `faults`).
    hitting: Vec<usize>,
    lanes: Vec<Lane>,
    timeline_window: Window,
    parity: ParityStats,
    queue: BinaryHeap<Reverse<(u64, Ev, u64)>>,
    seq: u64,
    arrivals: ChaCha8Rng,
    latency_rng: ChaCha8Rng,
    error_rng: ChaCha8Rng,
    pairing: Pairing,
    next_index: u64,
    /// The request at hand.
    record: Record,
    legacy_out: Vec<f32>,
    new_out: Vec<f32>,
    /// The decision the new stack stated, where an answer fault made it differ from the
    /// one its values give.
    new_stated: Option<u32>,
    /// Outcomes, the same for every lane of the world.
    counts: Counts,
}

/// What the faults of a run make the new stack serve instead of its own: the artifacts of
/// `model_artifact` faults and the specs of `spec_switch` faults (by the fault's position),
/// the gbdt runtime of `runtime_drift`, and, for the lineage, the files they came from.
struct Served {
    alternates: Vec<Option<Arc<Model>>>,
    spec_slots: Vec<Option<usize>>,
    drift: Option<Arc<dyn Scorer>>,
    swapped_artifacts: Vec<(String, String)>,
    switched_specs: Vec<SwitchedSpec>,
}

impl Served {
    /// Loads and checks what `faults` serve, before any traffic: an artifact must give the
    /// model's features and the migration's answer, a spec must be one the new path can
    /// switch to (its slot in `paths`); `hashed` when the lineage records the files.
    fn by(
        faults: &[Fault],
        m: &cutover_migration::Migration,
        (new_model, new_spec): (&Arc<Model>, &Arc<Pipeline>),
        paths: &mut DualPath,
        hashed: bool,
    ) -> Result<Served, String> {
        let features = new_spec.output_names();
        let mut served = Served {
            alternates: vec![None; faults.len()],
            spec_slots: vec![None; faults.len()],
            drift: None,
            swapped_artifacts: Vec::new(),
            switched_specs: Vec::new(),
        };
        for f in faults {
            match &f.kind {
                Kind::ModelArtifact { artifact } => {
                    if hashed {
                        let bytes = std::fs::read(artifact).map_err(|e| format!("{}: {e}", artifact.display()))?;
                        served.swapped_artifacts.push((artifact.display().to_string(), sha256_hex(&bytes)));
                    }
                    let alt = cutover_models::xgboost::load_file(artifact).map_err(|e| e.to_string())?;
                    if alt.feature_names() != features {
                        return Err(format!("{}: its features differ from the stack's", artifact.display()));
                    }
                    m.answer().check_model(&alt).map_err(|e| format!("{}: {e}", artifact.display()))?;
                    served.alternates[f.index] = Some(Arc::new(alt));
                }
                Kind::SpecSwitch { spec } => {
                    let at = |e: String| format!("faults[{}].spec: {e}", f.index);
                    let p = Pipeline::from_file(spec, m.schema(), Some(features)).map_err(|e| at(e.to_string()))?;
                    let differences = cutover_migration::features::switchable(new_spec, &p).map_err(at)?;
                    served.switched_specs.push(SwitchedSpec {
                        fault: f.index,
                        file: spec.display().to_string(),
                        sha256: p.sha256().to_string(),
                        differences,
                    });
                    served.spec_slots[f.index] = Some(paths.add_alternate(Arc::new(p)).map_err(at)?);
                }
                Kind::RuntimeDrift if served.drift.is_none() => {
                    if m.answer().width() != 1 {
                        return Err(
                            "runtime_drift scores through the gbdt crate, which gives one output per row".into()
                        );
                    }
                    let boxed =
                        scorer(new_model, Runtime::GbdtUnmappedMissing, "new stack").map_err(|e| e.to_string())?;
                    served.drift = Some(Arc::from(boxed));
                }
                _ => {}
            }
        }
        Ok(served)
    }
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
        let m = &loaded.migration;
        let file = loaded.path.display().to_string();
        let setup = |message: String| RunError::Setup { file: file.clone(), message };
        let seed = seed_override.unwrap_or(s.seed);
        let (legacy, new) = m.start_stacks().map_err(setup)?;
        let answer = m.answer().clone();
        let features = legacy.pipeline().output_names().to_vec();
        let mut paths = DualPath::new(legacy.pipeline().clone(), new.pipeline().clone(), m.schedule())
            .map_err(|e| setup(e.to_string()))?;
        let segments = m.segments()?.clone();
        let mut params = stream(seed, Stream::Params);
        let faults = loaded.faults(&features, &mut params)?;
        // One artifact, one model: both stacks share it, and an unchanged row is scored once.
        let legacy_model = legacy.model().clone();
        let new_model =
            if new.entry().sha256 == legacy.entry().sha256 { legacy_model.clone() } else { new.model().clone() };
        let served =
            Served::by(&faults, m, (&new_model, new.pipeline()), &mut paths, mode == Mode::Full).map_err(setup)?;
        let us = |sec: f64| (sec * SECOND as f64) as u64;
        let n = features.len();
        let history = || if mode == Mode::Full { History::new() } else { History::discarded() };
        let mut lanes = Vec::new();
        for (id, &policy) in policies.iter().enumerate() {
            let r = Rollout::new(&s.plan(), policy, &answer, &features, segments.names(), history()).map_err(setup)?;
            lanes.push(Lane { id, r });
        }
        let source = m.source(seed, s.traffic.rate_rps).map_err(setup)?;
        let parity = if mode == Mode::Full {
            parity_stats(legacy.pipeline(), &source.reference(1000), segments.names().to_vec())
        } else {
            ParityStats::new(Vec::new(), Vec::new(), Vec::new(), Vec::new())
        };
        let lineage = (mode == Mode::Full).then(|| {
            let mut l = Lineage::of(&legacy, &new, served.swapped_artifacts);
            l.switched_specs = served.switched_specs;
            Arc::new(l)
        });
        let width = answer.width();
        let relative = answer.kind == cutover_migration::answer::AnswerKind::Regression;
        let mut world = World {
            loaded,
            lineage,
            records,
            pending: None,
            baseline: Baseline { labels: m.answer().labels.clone(), ..Baseline::default() },
            out_of_order: 0,
            alarmed: false,
            start_ms: start_at_hour(source.start_ms(), s.traffic.start_hour_utc),
            mode,
            seed,
            duration_us: us(s.traffic.duration_s),
            arrival: arrivals::Arrivals::new(
                s.traffic.rate_rps,
                s.traffic.daily_curve.clone().or_else(|| source.daily_curve()),
            ),
            source,
            rows: Rows::new(paths, m.schema().record(), m.shadow_context().to_vec(), served.spec_slots),
            scoring: Scoring::new(answer.clone(), (legacy_model, new_model), served.alternates, served.drift),
            legacy: Stack::new(&s.stacks.legacy, &segments).map_err(setup)?,
            new: Stack::new(&s.stacks.new, &segments).map_err(setup)?,
            user_budget_ms: s.stacks.user_budget_ms,
            faults,
            hitting: Vec::new(),
            lanes,
            timeline_window: Window::new(n).with_relative(relative),
            parity,
            queue: BinaryHeap::new(),
            seq: 0,
            arrivals: stream(seed, Stream::Arrivals),
            latency_rng: stream(seed, Stream::Latency),
            error_rng: stream(seed, Stream::Errors),
            pairing: Pairing::new(answer.clone(), segments, legacy.pipeline().output_kinds()),
            next_index: 0,
            record: m.schema().record(),
            legacy_out: vec![0.0; width],
            new_out: vec![0.0; width],
            new_stated: None,
            features,
            counts: Counts::default(),
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
                let at_ms = r.record.time_ms.saturating_sub(self.start_ms);
                let at = u64::try_from(at_ms).unwrap_or(0).saturating_mul(1000);
                if at < t {
                    self.out_of_order += 1;
                }
                self.pending = Some(r);
                self.schedule(at.max(t), Ev::Arrival);
            }
            None => {
                self.duration_us = t;
                if !t.is_multiple_of(TIMELINE_US) && self.mode == Mode::Full {
                    // The last minute's row, however short.
                    self.schedule(t, Ev::Timeline);
                }
            }
        }
    }

    fn next_arrival(&mut self, now: u64) -> u64 {
        self.arrival.candidate(&mut self.arrivals, now)
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
                    self.start_ms = first.record.time_ms;
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
                    self.moments(t);
                    if self.records.is_some() {
                        self.serve(t);
                        self.schedule_record(t);
                    } else {
                        if self.accept(t) {
                            self.serve(t);
                        }
                        let next = self.next_arrival(t);
                        self.schedule(next, Ev::Arrival);
                    }
                    if std::mem::take(&mut self.alarmed) {
                        self.settle(done);
                    }
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
        self.arrival.keep(&mut self.arrivals, self.start_ms, t)
    }

    /// Faults timed by a moment of the rollout: when this world's lanes (which agree on
    /// their routing, see [`World::split`]) are at a fault's moment, it is scheduled that
    /// long after now, the first request the moment routes.
    fn moments(&mut self, t: u64) {
        if self.faults.iter().all(|f| f.start_at.is_none()) {
            return;
        }
        let (phase, stages) = (self.phase(), &self.loaded.scenario.rollout.stages_pct);
        let mut scheduled = Vec::new();
        for f in &mut self.faults {
            let (start, end) = f.at_moments(t, phase, stages);
            scheduled.extend(start.map(|at| (at, Ev::FaultStart(f.index))));
            scheduled.extend(end.map(|at| (at, Ev::FaultEnd(f.index))));
        }
        for (when, ev) in scheduled {
            if when < self.duration_us {
                self.schedule(when, ev);
            }
        }
    }

    fn fault_start(&mut self, t: u64, k: usize) {
        let f = self.faults[k].clone();
        for lane in &mut self.lanes {
            lane.r.history.push(Event::FaultStart { t_s: t as f64 / 1e6, index: k, kind: f.kind.name().into() });
        }
        match f.kind {
            Kind::StaleFeatures { stall_us } => {
                let until_ms = self.start_ms + ((t + stall_us) / 1000) as i64;
                self.rows.paths.store_mut().stall_until(until_ms);
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

    /// One request, start to end: the steps below, in order.
    fn serve(&mut self, t: u64) {
        let index = self.next_request(t);
        if self.phase() == Phase::RolledBack {
            self.serve_legacy_only(t, index);
            return;
        }
        let weight = self.weight_pct();
        let (bucket, routed_new) = route(self.record.entity, weight);
        let shadow = !routed_new;
        let touch = self.faults_touching(t, index, shadow);
        self.feature_rows(&touch);
        let same_input = self.answers(&touch);
        let (legacy_call, new_call, user_ms) = self.calls(t, routed_new, &touch);
        let user = UserAnswer::of(routed_new, new_call.ok(), legacy_call.ok(), user_ms, self.user_budget_ms);
        let routed = Routed {
            index,
            routed_new,
            bucket,
            weight,
            after_rollback: self.phase() == Phase::RolledBack,
            user_failed: user.failed,
            legacy_ok: legacy_call.ok(),
            new_erred: new_call.outcome == Called::Error,
        };
        for (invariant, detail) in violations(&routed) {
            self.violation(t, invariant.name(), detail);
        }
        self.pair(t, &routed, &touch, (legacy_call, new_call), &user, same_input);
        self.rows.served(&self.record);
    }

    /// A request after a rollback: the new stack is out of the path (no user traffic, no
    /// shadow call, as the live router does), so legacy alone answers. Nothing reaches the
    /// judges; the user's answer is counted and the history records it.
    fn serve_legacy_only(&mut self, t: u64, index: u64) {
        let segs = self.pairing.segments_of(&self.record);
        let legacy_ms = self.legacy.latency_ms(&mut self.latency_rng, segs);
        let legacy_error = self.error_rng.random::<f64>() < self.legacy.error_rate;
        let row = self.rows.legacy_only(&self.record);
        self.scoring.legacy(row, &mut self.legacy_out);
        let failed = UserAnswer::of(false, false, !legacy_error, legacy_ms, self.user_budget_ms).failed;
        self.counts.requests_total += 1;
        self.counts.requests_failed += u64::from(failed);
        self.observe_baseline();
        let line = RequestLine {
            t,
            index,
            entity: self.record.entity,
            error: legacy_error,
            user_failed: failed,
            legacy_decision: self.scoring.answer.decision(&self.legacy_out).unwrap_or(0),
            legacy_score: self.scoring.answer.headline(&self.legacy_out),
            user_ms: legacy_ms,
            ..RequestLine::default()
        };
        for lane in &mut self.lanes {
            lane.r.history.request(&line.words());
        }
        self.rows.served(&self.record);
    }

    /// The next request into `self.record`: a recorded one (a replay) or the source's.
    fn next_request(&mut self, t: u64) -> u64 {
        let index = self.next_index;
        self.next_index += 1;
        match self.pending.take() {
            Some(r) => {
                self.record.copy_from(&r.record);
                self.pending = Some(r);
            }
            None => self.source.fill(index, self.start_ms + (t / 1000) as i64, &mut self.record),
        }
        index
    }

    /// What the faults active now do to this request (by its segments and the fault's
    /// fraction). Its segments and the faults touching it are found here, once; the later
    /// steps read them.
    fn faults_touching(&mut self, t: u64, index: u64, shadow: bool) -> Touch {
        let segs = self.pairing.segments_of(&self.record);
        let mut touch = Touch::default();
        self.hitting.clear();
        for (k, f) in self.faults.iter().enumerate() {
            if f.active(t) && f.hits(self.seed, index, segs, t - f.start_us) {
                touch.add(&f.kind, f.index as u64, self.seed, index, shadow);
                self.hitting.push(k);
            }
        }
        touch
    }

    /// Both feature rows, through the feature step.
    fn feature_rows(&mut self, touch: &Touch) {
        let hitting = self.hitting.iter().map(|&k| &self.faults[k].kind);
        self.rows.both(&self.record, touch, hitting);
    }

    /// Both models' answers, through the scoring step. Returns whether the two inputs were
    /// the same.
    fn answers(&mut self, touch: &Touch) -> bool {
        let hitting = self.hitting.iter().map(|&k| &self.faults[k].kind);
        let scored = self.scoring.both(
            touch,
            (&self.rows.legacy, &self.rows.new),
            (&mut self.legacy_out, &mut self.new_out),
            self.mode == Mode::Sweep,
            hitting,
        );
        self.new_stated = scored.stated;
        scored.same_input
    }

    /// Both calls' service times and failures, and the user's end-to-end time.
    fn calls(&mut self, t: u64, routed_new: bool, touch: &Touch) -> (Call<'static>, Call<'static>, f64) {
        let segs = self.pairing.last_segments();
        let rngs = (&mut self.latency_rng, &mut self.error_rng);
        let both = stacks::call_both((&self.legacy, &self.new), touch, segs, rngs, (self.seed, t));
        let user_ms = user_ms(routed_new, !both.new.ok(), both.legacy.ms, both.new.ms);
        (both.legacy, both.new, user_ms)
    }

    /// The pairing step (shared with the live router), then every lane's evidence, the
    /// counts, the history, the timeline and parity.
    fn pair(
        &mut self,
        t: u64,
        routed: &Routed,
        touch: &Touch,
        (legacy, new): (Call<'static>, Call<'static>),
        user: &UserAnswer,
        same_input: bool,
    ) {
        let (index, routed_new) = (routed.index, routed.routed_new);
        self.counts.requests_total += 1;
        self.counts.requests_failed += u64::from(user.failed);
        self.observe_baseline();
        let legacy = Call {
            ms: legacy.ms,
            outcome: if legacy.ok() { Called::Answered(&self.legacy_out, None) } else { legacy.outcome },
        };
        let new_outcome = if new.ok() { Called::Answered(&self.new_out, self.new_stated) } else { new.outcome };
        let new = Call { ms: new.ms, outcome: new_outcome };
        let rows = Some((&self.rows.legacy[..], &self.rows.new[..]));
        let paired = self.pairing.pair(
            &self.record,
            true,
            rows,
            &legacy,
            &new,
            !routed_new,
            touch.context_lost,
            user.served_new,
        );
        let Some(p) = paired else { return };
        let (o, wrong) = (p.observation, p.compared.wrong);
        if user.served_new && wrong && !same_input {
            self.counts.bad_decisions += 1;
        }
        let answer = &self.scoring.answer;
        let line = RequestLine {
            t,
            index,
            entity: self.record.entity,
            routed_new,
            served_new: user.served_new,
            error: o.error,
            timeout: o.timeout,
            user_failed: user.failed,
            legacy_decision: answer.decision(&self.legacy_out).unwrap_or(0),
            new_decision: self.new_stated.or_else(|| answer.decision(&self.new_out)).unwrap_or(0),
            legacy_score: answer.headline(&self.legacy_out),
            new_score: answer.headline(&self.new_out),
            user_ms: user.ms,
        }
        .words();
        let mut alarms = Vec::new();
        for (k, lane) in self.lanes.iter_mut().enumerate() {
            if lane.r.observe(t, &o) {
                alarms.push(k);
            }
            lane.r.history.request(&line);
        }
        if self.mode == Mode::Full {
            self.timeline_window.record(&o);
            self.parity.observe(o.segments, &self.rows.legacy, &self.rows.new, p.diffs);
        }
        // A judge that raised its alarm evaluates now (its scheduled evaluations go on).
        for k in alarms {
            self.evaluate(t, k);
            self.alarmed = true;
        }
    }

    /// Legacy's answer against the recorded one, in a replay.
    fn observe_baseline(&mut self) {
        if let Some(r) = &self.pending {
            let decision = self.scoring.answer.decision(&self.legacy_out);
            let score = self.scoring.answer.headline(&self.legacy_out);
            self.baseline.observe(r.line, (r.legacy_score, r.legacy_decision), (score, decision));
        }
    }

    fn staleness_s(&self, t: u64) -> Option<f64> {
        let now_ms = self.start_ms + (t / 1000) as i64;
        self.rows.paths.store_lag_ms(now_ms).map(|ms| ms as f64 / 1000.0)
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
        // A fault still waiting for its moment has not started.
        let started = |f: &&Fault| f.kind != Kind::DecommissionLegacy && f.start_us != u64::MAX;
        self.faults.iter().filter(started).map(|f| f.start_us).min()
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
        let mut summary = lane.r.summary(&s.plan(), self.seed, self.fault_start_us(), self.counts, reproduce);
        if let Some(e) = self.baseline.expectation() {
            summary.expectations.push(e);
        }
        if let Some(e) = faults::faults_started(&self.faults, self.duration_us) {
            summary.expectations.push(e);
        }
        summary.passed = summary.expectations.iter().all(|e| e.passed);
        let stage_stats = lane.r.stage_stats();
        RunResult {
            answer: self.scoring.answer.clone(),
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

/// The first time at or after `start_ms` on the hour `hour` (UTC), or `start_ms` itself.
pub(crate) fn start_at_hour(start_ms: i64, hour: Option<u32>) -> i64 {
    const HOUR_MS: i64 = 3_600_000;
    let Some(h) = hour else { return start_ms };
    let first = start_ms.div_euclid(HOUR_MS) * HOUR_MS;
    (0..=24)
        .map(|k| first + k * HOUR_MS)
        .find(|&t| t >= start_ms && t.div_euclid(HOUR_MS).rem_euclid(24) == i64::from(h))
        .unwrap_or(start_ms)
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
