//! The router: in front of the legacy and new stacks, it routes each user to one of them
//! by the rollout's current weight (sticky by customer, the simulator's bucket), calls the
//! other off the user's path (shadow), pairs the two answers and feeds them to the
//! simulator's monitor and controller, which evaluate on the wall clock. A new-stack error
//! or timeout falls back to legacy, whose call is already in flight, within the budget.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use cutover_migration::features::{FeatureKind, FeatureParity, ParityStats};
use cutover_migration::schema::Record;
use cutover_migration::stacks::{HttpStack, Template};
use cutover_sim::core::controller::{Decision, Phase};
use cutover_sim::core::history::{Event, History};
use cutover_sim::core::pairing::{self, AnswerFields, Call, Called, Pairing, UserAnswer};
use cutover_sim::core::rollout::{Counts, Evaluated, Rollout};
use cutover_sim::core::trace::{Lineage, StageStats, Trace};
use cutover_sim::core::user_path::{violations, Routed};
use cutover_sim::core::verdict::Summary;
use cutover_sim::core::Guardrail;
use cutover_sim::faults::served_answer;
use cutover_sim::scenario::{LoadedScenario, OnRestart, Policy};
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::faults::{Face, FaultBoard, Hit};
use crate::http::FEATURES_HEADER;
use crate::http::{self, ApiError};
use crate::state::{self, Checkpoint, Resume, StateDir};
use crate::upstream::{self, AnswerLimits, UpstreamFailure};

mod score;

/// Where the router finds a stack, how to ask it and how to read its answers.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// `legacy` or `new`: the stack's name in metrics.
    pub name: &'static str,
    /// Base URL (`http://127.0.0.1:PORT`).
    pub url: String,
    /// The scoring path (`/v1/score` for cutover's own stacks).
    pub path: String,
    /// Extra request headers.
    pub headers: Vec<(String, String)>,
    /// The request body's template, for a service with its own API (none forwards the
    /// request as it came).
    pub body: Option<Arc<Template>>,
    /// Where its answer holds the score, decision and class probabilities.
    pub fields: AnswerFields,
    /// Where its answer holds the model row, if it returns one (cutover's own stacks do
    /// when asked with `x-cutover-features: 1`; without rows, feature guardrails have no
    /// data for this stack).
    pub features: Option<String>,
    /// Ask for the model row with `x-cutover-features: 1` (and strip it from the user's
    /// answer).
    pub ask_features: bool,
    /// Where its answer states the model version, if it does.
    pub model_version: Option<String>,
    /// Whether `GET {url}/healthz` is its health check (else any HTTP answer is "up").
    pub healthz: bool,
}

impl Upstream {
    /// One of cutover's own stacks (or a service speaking its API and returning rows).
    pub fn own(name: &'static str, url: String) -> Upstream {
        Upstream {
            name,
            url,
            path: "/v1/score".into(),
            headers: Vec::new(),
            body: None,
            fields: AnswerFields::default(),
            features: Some("/features".into()),
            ask_features: true,
            model_version: Some("/model_sha256".into()),
            healthz: true,
        }
    }

    /// A service with its own API, as a migration folder declares it.
    pub fn declared(name: &'static str, d: &HttpStack) -> Upstream {
        Upstream {
            name,
            url: d.url.clone(),
            path: d.path.clone(),
            headers: d.headers.clone(),
            body: d.body.clone().map(Arc::new),
            fields: AnswerFields {
                score: d.score.clone(),
                decision: d.decision.clone(),
                probabilities: d.probabilities.clone(),
            },
            features: d.features.clone(),
            ask_features: false,
            model_version: d.model_version.clone(),
            healthz: false,
        }
    }
}

/// The header naming the stack whose answer the user got (`legacy` or `new`), on every
/// scoring answer: a client reading answers of two different APIs knows which one it has.
pub const SERVED_BY_HEADER: axum::http::HeaderName = axum::http::HeaderName::from_static("x-cutover-served-by");

/// How many distinct model versions the router counts per stack (the rest are `other`).
const MAX_VERSIONS: usize = 16;

/// The router's configuration.
pub struct RouterConfig {
    /// The legacy stack.
    pub legacy: Upstream,
    /// The new stack.
    pub new: Upstream,
    /// The scenario whose plan, guardrails and stacks' budgets apply.
    pub scenario: LoadedScenario,
    /// The judge.
    pub policy: Policy,
    /// Scenario seconds per wall second: 60 runs an hour's plan in a minute.
    pub time_scale: f64,
    /// The admin API's bearer token.
    pub token: String,
    /// The model's feature names (for pairing rows).
    pub features: Vec<String>,
    /// Their kinds.
    pub kinds: Vec<FeatureKind>,
    /// The in-process new stack's fault board, when there is one.
    pub faults: Option<Arc<FaultBoard>>,
    /// Wait for `POST /admin/start` before the rollout begins (serve legacy only until then).
    pub hold: bool,
    /// The stacks' lineage, when both are cutover's own.
    pub lineage: Option<Lineage>,
    /// Feature parity by segment, when the stacks return their model rows.
    pub parity: Option<ParityStats>,
    /// What a stack's answer may be: its size and the time it has.
    pub limits: AnswerLimits,
    /// The state folder the rollout is kept in (`serve --state`), and what a previous
    /// router left there.
    pub state: Option<(StateDir, Option<Resume>)>,
    /// What the plan is, as its checkpoints name it ([`state::plan_sha256`]).
    pub plan_sha256: String,
}

/// What the dashboard draws, copied out of the router's state.
pub struct Snapshot {
    /// summary.json as it stands.
    pub summary: Summary,
    /// The history so far.
    pub events: Vec<cutover_sim::core::history::Event>,
    /// Guardrails per evaluation, score differences.
    pub trace: Trace,
    /// Every stage's statistics.
    pub stage_stats: Vec<StageStats>,
    /// Feature parity by segment.
    pub parity: Vec<FeatureParity>,
    /// Scenario seconds since the start.
    pub now_s: f64,
}

/// The rollout as the admin API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RolloutView {
    /// Scenario.
    pub scenario: String,
    /// Judge.
    pub policy: String,
    /// Whether the rollout has started.
    pub started: bool,
    /// Phase.
    pub phase: Phase,
    /// New stack's share of users, %.
    pub weight_pct: f64,
    /// Scenario seconds since the start.
    pub t_s: f64,
    /// Requests, failures, bad decisions.
    pub requests_total: u64,
    /// User-visible failures.
    pub requests_failed: u64,
    /// Decisions served by the new stack that differ from legacy's.
    pub bad_decisions_served: u64,
    /// The last decision in words.
    pub last_decision: Option<Decision>,
    /// Faults active now.
    pub faults: Vec<crate::faults::FaultView>,
    /// summary.json as it stands.
    pub summary: Summary,
    /// User latency by phase, ms.
    pub user_latency_ms: Vec<PhaseLatency>,
    /// The router's own part of the user's latency before the rollout (the user's latency
    /// less the legacy call's), ms: `baseline` and `baseline_shadowed`. What shadowing adds
    /// to the user's path at the router, apart from what the shadowed stack's load does to
    /// the legacy call on a shared machine.
    pub router_own_ms: Vec<PhaseLatency>,
    /// The model versions each stack stated in its answers (where it states one).
    pub model_versions: Vec<ModelVersion>,
    /// Shadow calls skipped because [`MAX_SHADOW_IN_FLIGHT`] were in flight.
    pub shadow_dropped: u64,
    /// Requests whose two answers were paired and judged.
    pub requests_paired: u64,
}

impl PhaseLatency {
    fn of(phase: &str, h: &Histogram<u64>) -> PhaseLatency {
        PhaseLatency {
            phase: phase.into(),
            requests: h.len(),
            p50: h.value_at_quantile(0.5) as f64 / 1000.0,
            p99: h.value_at_quantile(0.99) as f64 / 1000.0,
        }
    }
}

/// A model version a stack stated in its answers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelVersion {
    /// `legacy` or `new`.
    pub stack: String,
    /// The version as stated (cutover's own stacks state their artifact's SHA-256).
    pub version: String,
    /// Answers that stated it.
    pub answers: u64,
}

/// User-side latency of one phase.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseLatency {
    /// `baseline` (before the rollout, legacy only), `shadow`, `canary`, `promoted`, `rolled_back`.
    pub phase: String,
    /// Requests.
    pub requests: u64,
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
}

struct Live {
    rollout: Rollout,
    counts: Counts,
    last: Option<Decision>,
    fault_start_us: Option<u64>,
    pairing: Pairing,
    /// User latency (µs) per phase bucket: baseline, shadow, canary, promoted, rolled back.
    user_us: Vec<Histogram<u64>>,
    /// The router's own time (µs) of held requests: not shadowed, shadowed.
    own_us: [Histogram<u64>; 2],
    parity: Option<ParityStats>,
    /// Shadow calls skipped because too many were in flight.
    shadow_dropped: u64,
    /// Where the rollout is kept across restarts.
    state: Option<StateDir>,
    /// Requests whose two answers were paired and judged.
    paired: u64,
}

/// A decision being written to the state folder; it takes effect once written.
struct Decided {
    written: state::Written,
    forward: bool,
    t: u64,
}

fn state_failed(e: &std::io::Error) {
    metrics::counter!("cutover_state_write_failures_total").increment(1);
    eprintln!("cutover: the rollout's state could not be written: {e}");
}

/// Events of the history the router keeps in memory (about 5 hours of evaluations every
/// 5 s; stage changes and decisions always stay).
pub const LIVE_EVENTS: usize = 4096;
/// Guardrail points the dashboard's chart keeps (22 hours of evaluations every minute for six
/// guardrails; about 800 KiB at most).
pub const LIVE_POINTS: usize = 8192;

/// The most shadow calls in flight at once; past it, shadows are skipped and counted.
pub const MAX_SHADOW_IN_FLIGHT: u64 = 512;

/// The router's shared state.
pub struct RouterState {
    cfg: RouterConfig,
    client: reqwest::Client,
    /// Wall-clock start of the rollout (None while held).
    started: Mutex<Option<Instant>>,
    /// Scenario µs at that start: a router resumed from its state goes on from there.
    resumed_at_us: u64,
    /// When a rollback took effect (routing stopped sending users to new), µs.
    rollback_effective_us: AtomicU64,
    weight_bits: AtomicU64,
    rolled_back: AtomicBool,
    /// While held, shadow every request to the new stack anyway (no evidence is kept): the
    /// load test alternates it to measure the shadow's cost under identical conditions.
    shadow_held: AtomicBool,
    live: Mutex<Live>,
    new_timeout: Duration,
    user_budget_ms: f64,
    stop: tokio::sync::watch::Sender<bool>,
    /// Comparisons running off the user's path (shadow calls, pairings).
    background: Arc<AtomicU64>,
    /// The model versions each stack stated, with how many answers stated each.
    versions: Mutex<[Vec<(String, u64)>; 2]>,
}

/// One comparison running off the user's path, counted while it lives.
struct Background(Arc<AtomicU64>);

impl Drop for Background {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

const PHASES: [&str; 6] = ["baseline", "shadow", "canary", "promoted", "rolled_back", "baseline_shadowed"];
/// The bucket of held requests that were shadowed (`POST /admin/shadow-while-held`).
const HELD_SHADOWED: usize = 5;

fn phase_bucket(started: bool, phase: Phase) -> usize {
    match (started, phase) {
        (false, _) => 0,
        (true, Phase::Shadow) => 1,
        (true, Phase::Canary(_)) => 2,
        (true, Phase::Promoted | Phase::Retired) => 3,
        (true, Phase::RolledBack) => 4,
    }
}

/// A call's outcome.
#[derive(Debug, Clone)]
struct CallResult {
    ms: f64,
    answer: Result<Scored, CallFailure>,
}

#[derive(Debug, Clone)]
struct Scored {
    values: Vec<f32>,
    /// The decision the stack stated, where its values do not give it.
    stated: Option<u32>,
    features: Option<Vec<f32>>,
    /// The answer as the user gets it.
    body: axum::body::Bytes,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum CallFailure {
    Error,
    Timeout,
}

impl RouterState {
    /// The router's state; the controller starts with [`RouterState::spawn_controller`].
    pub fn new(mut cfg: RouterConfig) -> Result<Arc<RouterState>, String> {
        let s = &cfg.scenario.scenario;
        let m = &cfg.scenario.migration;
        let segments = m.segments().map_err(|e| e.to_string())?.clone();
        // A live rollout may run for days: memory keeps a window of its history and trace.
        let history = History::new().windowed(LIVE_EVENTS);
        let mut rollout = Rollout::new(&s.plan(), cfg.policy, m.answer(), &cfg.features, segments.names(), history)?;
        if let Some(trace) = rollout.trace.as_mut() {
            trace.window = Some(LIVE_POINTS);
        }
        let hist = || Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("static bounds");
        let live = Live {
            rollout,
            counts: Counts::default(),
            last: None,
            fault_start_us: None,
            pairing: Pairing::new(m.answer().clone(), segments, cfg.kinds.clone()),
            user_us: PHASES.iter().map(|_| hist()).collect(),
            own_us: [hist(), hist()],
            parity: cfg.parity.take(),
            shadow_dropped: 0,
            state: None,
            paired: 0,
        };
        let client = upstream::client(256)?;
        let (stop, _) = tokio::sync::watch::channel(false);
        let mut started = if cfg.hold { None } else { Some(Instant::now()) };
        let mut resumed_at_us = 0;
        let mut live = live;
        if let Some((dir, resume)) = cfg.state.take() {
            if let Some(r) = resume {
                let file = dir.dir().join("rollout.json");
                live.rollout.restore(r.checkpoint.rollout.clone()).map_err(|e| format!("{}: {e}", file.display()))?;
                // The history goes on counting from the events its file holds.
                live.rollout.history.resume(&r.checkpoint.rollout.history_sha256, r.history_lines);
                live.counts = r.checkpoint.counts();
                live.fault_start_us = r.checkpoint.fault_start_us;
                // The clock goes on from the last event written: the time down counts for no stage.
                let t = r.checkpoint.t_us.max(r.last_event_us);
                if r.checkpoint.started {
                    started = Some(Instant::now());
                    resumed_at_us = t;
                }
                // A decision written but not checkpointed when the router stopped holds.
                if let Some((at, phase)) = r.later_stage {
                    if phase != live.rollout.controller.phase() {
                        live.rollout.take_up(phase, at.min(t));
                    }
                }
                let c = &live.rollout.controller;
                let lost_s = r.last_event_us.saturating_sub(r.checkpoint.t_us) as f64 / 1e6;
                let event =
                    Event::Resumed { t_s: t as f64 / 1e6, phase: c.phase(), weight_pct: c.weight_pct(), lost_s };
                live.rollout.history.push(event);
                if s.rollout.on_restart == OnRestart::Shadow && live.rollout.controller.restart_in_shadow(t) {
                    live.rollout.enter_stage(t);
                }
            }
            live.state = Some(dir);
        }
        let new_timeout = Duration::from_secs_f64(s.stacks.new.timeout_ms / 1000.0);
        let weight = live.rollout.controller.weight_pct();
        let rolled_back = live.rollout.controller.phase() == Phase::RolledBack;
        let state = Arc::new(RouterState {
            new_timeout: new_timeout.min(cfg.limits.timeout),
            user_budget_ms: s.stacks.user_budget_ms,
            cfg,
            client,
            started: Mutex::new(started),
            resumed_at_us,
            rollback_effective_us: AtomicU64::new(if rolled_back { 0 } else { u64::MAX }),
            weight_bits: AtomicU64::new(weight.to_bits()),
            rolled_back: AtomicBool::new(rolled_back),
            shadow_held: AtomicBool::new(false),
            live: Mutex::new(live),
            stop,
            background: Arc::new(AtomicU64::new(0)),
            versions: Mutex::new([Vec::new(), Vec::new()]),
        });
        // The folder holds the rollout from its first moment (a resumed one: at once).
        let t = state.now_us().unwrap_or(resumed_at_us);
        let decided = state.decided(&mut state.live.lock().unwrap_or_else(|e| e.into_inner()), t, false);
        if let Some(d) = decided {
            d.written.wait().map_err(|e| format!("the state folder: {e}"))?;
        }
        Ok(state)
    }

    /// Scenario microseconds since the rollout started (None while held).
    fn now_us(&self) -> Option<u64> {
        let started = *self.started.lock().unwrap_or_else(|e| e.into_inner());
        started.map(|s| self.resumed_at_us + (s.elapsed().as_secs_f64() * self.cfg.time_scale * 1e6) as u64)
    }

    /// The rollout as its state folder keeps it, as of now (written out later).
    fn checkpoint(&self, live: &Live, t: u64) -> state::Pending {
        let s = &self.cfg.scenario.scenario;
        let policy = live.rollout.controller.policy();
        let (scenario, plan_sha256) = (s.name.clone(), self.cfg.plan_sha256.clone());
        let started = self.started.lock().unwrap_or_else(|e| e.into_inner()).is_some();
        let counts = [live.counts.requests_total, live.counts.requests_failed, live.counts.bad_decisions];
        let (fault_start_us, rollout) = (live.fault_start_us, live.rollout.save());
        Box::new(move || Checkpoint {
            format: state::FORMAT,
            scenario,
            policy: policy.into(),
            plan_sha256,
            started,
            t_us: t,
            counts,
            fault_start_us,
            rollout: rollout.into_state(),
        })
    }

    /// Writes what the history gained to the state folder (when there is one), and a
    /// checkpoint of the evidence every [`state::EVIDENCE_EVERY`] at most, both off the
    /// request path (the writer thread serializes and syncs).
    fn persist(&self, live: &mut Live, t: u64) {
        let Some(mut dir) = live.state.take() else { return };
        let mut written = dir.append(&live.rollout.history);
        if written.is_ok() && dir.due() {
            written = dir.checkpoint(self.checkpoint(live, t));
        }
        live.state = Some(dir);
        if let Err(e) = written {
            state_failed(&e);
        }
    }

    /// Starts writing a decision the rollout just took (its history and a checkpoint,
    /// synced): it takes effect in [`RouterState::settle`], once on disk, the lock free
    /// meanwhile. Without a state folder it takes effect at once.
    fn decided(&self, live: &mut Live, t: u64, forward: bool) -> Option<Decided> {
        let Some(mut dir) = live.state.take() else {
            self.publish(&live.rollout);
            return None;
        };
        let written = dir.decision(&live.rollout.history, self.checkpoint(live, t));
        live.state = Some(dir);
        Some(Decided { written, forward, t })
    }

    /// A decision takes effect once written; one that moves the ramp forward and could not
    /// be written rolls back instead, since a router that restarted would not know it.
    fn settle(&self, decided: Option<Decided>) {
        let Some(d) = decided else { return };
        let written = d.written.wait();
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = written {
            state_failed(&e);
            if d.forward && live.rollout.manual_rollback(d.t) {
                let detail =
                    format!("a decision could not be written to the state folder ({e}): rolled back to legacy");
                live.rollout.violation(d.t, "every decision on disk before it takes effect", detail);
                self.persist(&mut live, d.t);
            }
        }
        self.publish(&live.rollout);
    }

    /// Writes the state folder's last checkpoint and lets the folder go (at shutdown: a
    /// router started on it next finds it whole and unlocked).
    pub fn close_state(&self) {
        let t = self.now_us().unwrap_or(self.resumed_at_us);
        let decided = {
            let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
            self.decided(&mut live, t, false)
        };
        self.settle(decided);
        self.live.lock().unwrap_or_else(|e| e.into_inner()).state = None;
    }

    /// The model's feature names.
    pub fn features(&self) -> &[String] {
        &self.cfg.features
    }

    /// Scenario seconds per wall second.
    pub fn time_scale(&self) -> f64 {
        self.cfg.time_scale
    }

    /// Starts the rollout now (no-op when it has started).
    pub fn start(&self) -> bool {
        {
            let mut started = self.started.lock().unwrap_or_else(|e| e.into_inner());
            if started.is_some() {
                return false;
            }
            *started = Some(Instant::now());
        }
        let t = self.now_us().unwrap_or(self.resumed_at_us);
        let decided = self.decided(&mut self.live.lock().unwrap_or_else(|e| e.into_inner()), t, false);
        self.settle(decided);
        true
    }

    fn background(&self) -> Background {
        self.background.fetch_add(1, Ordering::AcqRel);
        Background(self.background.clone())
    }

    /// Waits until no comparison runs off the user's path, for at most `deadline`;
    /// returns how many were still running then.
    pub async fn wait_for_background(&self, deadline: Duration) -> usize {
        let until = Instant::now() + deadline;
        loop {
            let n = self.background.load(Ordering::Acquire);
            if n == 0 || Instant::now() >= until {
                return n as usize;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Stops the controller task.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }

    /// Runs the controller on the wall clock until [`RouterState::stop`].
    pub fn spawn_controller(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let state = self.clone();
        let mut stop = self.stop.subscribe();
        tokio::spawn(async move {
            let interval_us = state.live.lock().unwrap_or_else(|e| e.into_inner()).rollout.interval_us;
            let wall = Duration::from_secs_f64(interval_us as f64 / 1e6 / state.cfg.time_scale);
            let mut tick = tokio::time::interval(wall.max(Duration::from_millis(1)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            // Between evaluations (a minute apart, for window judges), the evidence still
            // reaches the state folder every 200 ms.
            let mut evidence = tokio::time::interval(state::EVIDENCE_EVERY);
            evidence.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => state.evaluate(),
                    _ = evidence.tick() => state.checkpoint_evidence(),
                    _ = stop.changed() => break,
                }
            }
        })
    }

    /// Evaluates the rollout now (the controller task does so every interval).
    pub fn evaluate(&self) {
        let Some(t) = self.now_us() else { return };
        let decided = self.evaluate_locked(&mut self.live.lock().unwrap_or_else(|e| e.into_inner()), t);
        self.settle(decided);
    }

    /// Writes the evidence's checkpoint when due (the controller task calls it between
    /// evaluations, so a restart loses little of what came after the last one).
    pub fn checkpoint_evidence(&self) {
        let t = self.now_us().unwrap_or(self.resumed_at_us);
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        if live.state.as_ref().is_some_and(StateDir::due) {
            self.persist(&mut live, t);
        }
    }

    /// Evaluates the rollout at `t`, the lock held: a decision that moves the ramp (or
    /// allows retirement) is returned to settle once the lock is free (on disk before it
    /// takes effect).
    #[must_use]
    fn evaluate_locked(&self, live: &mut Live, t: u64) -> Option<Decided> {
        let fault_start = live.fault_start_us;
        let features = &self.cfg.features;
        let Evaluated { decision, stage_changed } = live.rollout.evaluate(t, None, features, fault_start, true);
        let decided = if stage_changed || matches!(decision, Decision::AllowRetirement) {
            let forward = matches!(decision, Decision::Advance { .. } | Decision::Promote | Decision::AllowRetirement);
            self.decided(live, t, forward)
        } else {
            self.persist(live, t);
            None
        };
        metrics::gauge!("cutover_rollout_weight_pct").set(live.rollout.controller.weight_pct());
        let w = &live.rollout.stage_window;
        for &(guardrail, _) in live.rollout.controller.guardrails() {
            if let Some(v) = guardrail.statistic(w) {
                metrics::gauge!("cutover_guardrail", "statistic" => guardrail.name()).set(v);
            }
        }
        live.last = Some(decision);
        decided
    }

    /// The rollout's decisions take effect: routing reads the weight and the rollback.
    fn publish(&self, rollout: &Rollout) {
        self.weight_bits.store(rollout.controller.weight_pct().to_bits(), Ordering::Release);
        let rolled_back = rollout.controller.phase() == Phase::RolledBack;
        if rolled_back && !self.rolled_back.swap(true, Ordering::AcqRel) {
            // From here no request is routed to the new stack.
            let t = self.now_us().unwrap_or(self.resumed_at_us);
            self.rollback_effective_us.store(t, Ordering::Release);
        }
    }

    /// Notes that fault `id` began now (for detection times, and in the history).
    pub fn fault_began(&self, id: u64, kind: &str) {
        let t = self.now_us().unwrap_or(0);
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        if live.fault_start_us.is_none() {
            live.fault_start_us = Some(t);
        }
        let event = Event::FaultStart { t_s: t as f64 / 1e6, index: id as usize, kind: kind.into() };
        live.rollout.history.push(event);
        self.persist(&mut live, t);
    }

    /// Notes that these faults were cleared now.
    pub fn faults_ended(&self, ids: &[u64]) {
        let t_s = self.now_us().unwrap_or(0) as f64 / 1e6;
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        for &id in ids {
            live.rollout.history.push(Event::FaultEnd { t_s, index: id as usize });
        }
        self.persist(&mut live, (t_s * 1e6) as u64);
    }

    /// The rollout as it stands.
    pub fn view(&self) -> RolloutView {
        let t = self.now_us();
        let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        let s = &self.cfg.scenario.scenario;
        let summary = live.rollout.summary(
            &s.plan(),
            s.seed,
            live.fault_start_us,
            live.counts,
            format!("cutover loadtest {}", self.cfg.scenario.path.display()),
        );
        let c = &live.rollout.controller;
        RolloutView {
            scenario: s.name.clone(),
            policy: c.policy().into(),
            started: t.is_some(),
            phase: c.phase(),
            weight_pct: c.weight_pct(),
            t_s: t.unwrap_or(0) as f64 / 1e6,
            requests_total: live.counts.requests_total,
            requests_failed: live.counts.requests_failed,
            bad_decisions_served: live.counts.bad_decisions,
            last_decision: live.last.clone(),
            faults: self.cfg.faults.as_ref().map(|b| b.list()).unwrap_or_default(),
            summary,
            user_latency_ms: PHASES.iter().zip(&live.user_us).map(|(p, h)| PhaseLatency::of(p, h)).collect(),
            router_own_ms: ["baseline", "baseline_shadowed"]
                .iter()
                .zip(&live.own_us)
                .map(|(p, h)| PhaseLatency::of(p, h))
                .collect(),
            model_versions: self.model_versions(),
            shadow_dropped: live.shadow_dropped,
            requests_paired: live.paired,
        }
    }

    /// What the dashboard draws, as it stands.
    pub fn snapshot(&self) -> Snapshot {
        let summary = self.view().summary;
        let now_s = self.now_us().unwrap_or(0) as f64 / 1e6;
        let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        let r = &live.rollout;
        Snapshot {
            summary,
            events: r.history.events().to_vec(),
            trace: r.trace.as_deref().cloned().unwrap_or_default(),
            stage_stats: r.stage_stats(),
            parity: live.parity.as_ref().map(|p| p.report()).unwrap_or_default(),
            now_s,
        }
    }

    /// The migration's answer.
    pub fn answer(&self) -> &cutover_migration::answer::Answer {
        self.cfg.scenario.migration.answer()
    }

    /// The stacks' lineage, when known.
    pub fn lineage(&self) -> Option<&Lineage> {
        self.cfg.lineage.as_ref()
    }

    /// Per guardrail, the paired requests after which the judge can act on it.
    pub fn acts_after(&self) -> Vec<(Guardrail, u64)> {
        self.live.lock().unwrap_or_else(|e| e.into_inner()).rollout.controller.acts_after()
    }

    /// The history's events so far.
    pub fn events(&self) -> Vec<cutover_sim::core::history::Event> {
        self.live.lock().unwrap_or_else(|e| e.into_inner()).rollout.history.events().to_vec()
    }

    /// One call to a stack, its answer bounded: within `budget` as a whole (the new stack's
    /// timeout, or the answer limit for legacy), at most the limit's bytes, never unpacked.
    async fn call(&self, up: &Upstream, body: &axum::body::Bytes, budget: Duration) -> CallResult {
        let began = Instant::now();
        let body = match &up.body {
            None => body.clone(),
            // The request was validated as one JSON object of the schema before routing.
            Some(t) => match serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(body) {
                Ok(request) => serde_json::to_vec(&t.render(&request)).unwrap_or_default().into(),
                Err(_) => body.clone(),
            },
        };
        let mut req = self
            .client
            .post(format!("{}{}", up.url, up.path))
            .header(axum::http::header::CONTENT_TYPE, "application/json")
            .body(body);
        for (k, v) in &up.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        if up.ask_features {
            req = req.header(FEATURES_HEADER, "1");
        }
        let result = async {
            let resp = upstream::send(req, budget).await?;
            if !resp.status().is_success() {
                // Its body is not read: the connection is dropped with it.
                return Err(UpstreamFailure::Status);
            }
            let bytes = upstream::read(resp, self.cfg.limits.max_bytes).await?;
            self.read_answer(up, bytes).ok_or(UpstreamFailure::Answer)
        }
        .await
        .map_err(|f| {
            f.count(up.name);
            if f == UpstreamFailure::Timeout {
                CallFailure::Timeout
            } else {
                CallFailure::Error
            }
        });
        CallResult { ms: began.elapsed().as_secs_f64() * 1000.0, answer: result }
    }

    /// A call to the new stack. For a team's own service, the router acts out the faults
    /// touching the call that it can (their definitions say which): a failure or a timeout
    /// without calling, latency added before the call and multiplied after it (from the
    /// service's own recent service times), the answer as the answer faults make it, the
    /// user's body rewritten to match. Cutover's own stacks act their faults out themselves.
    async fn call_new(&self, body: &axum::body::Bytes, hits: &[Hit], txn: u64) -> CallResult {
        let budget = self.new_timeout;
        let board = match &self.cfg.faults {
            Some(b) if b.face() == Face::Service => b,
            _ => return self.call(&self.cfg.new, body, budget).await,
        };
        let began = Instant::now();
        let (touch, drawn) = crate::faults::touch_of(hits, board.seed(), txn);
        let failed = |failure: UpstreamFailure, answer: CallFailure| {
            failure.count(self.cfg.new.name);
            CallResult { ms: began.elapsed().as_secs_f64() * 1000.0, answer: Err(answer) }
        };
        if drawn.error {
            return failed(UpstreamFailure::Status, CallFailure::Error);
        }
        if drawn.timeout {
            tokio::time::sleep(budget).await;
            return failed(UpstreamFailure::Timeout, CallFailure::Timeout);
        }
        let added = Duration::from_secs_f64(touch.add_ms / 1000.0);
        if added >= budget {
            tokio::time::sleep(budget).await;
            return failed(UpstreamFailure::Timeout, CallFailure::Timeout);
        }
        tokio::time::sleep(added).await;
        let mut result = self.call(&self.cfg.new, body, budget - added).await;
        let own_ms = result.ms;
        let position = board.own_time(own_ms);
        let extra = touch.scaled_ms(own_ms, position) - own_ms;
        if result.answer.is_ok() && extra > 0.0 {
            let left = budget.saturating_sub(began.elapsed());
            let wait = Duration::from_secs_f64(extra / 1000.0);
            if wait >= left {
                tokio::time::sleep(left).await;
                return failed(UpstreamFailure::Timeout, CallFailure::Timeout);
            }
            tokio::time::sleep(wait).await;
        }
        result.ms = began.elapsed().as_secs_f64() * 1000.0;
        if let (Ok(scored), true) = (&mut result.answer, touch.answer_faults) {
            self.answer_as_faulted(scored, hits);
        }
        result
    }

    /// The answer of a team's own service as the answer faults among `hits` make it: its
    /// values and stated decision, and the body the user gets.
    fn answer_as_faulted(&self, scored: &mut Scored, hits: &[Hit]) {
        let answer = self.cfg.scenario.migration.answer();
        let decision = served_answer(answer, hits.iter().map(|(_, k, _)| k), &mut scored.values);
        scored.stated = decision.filter(|d| Some(*d) != answer.decision(&scored.values));
        let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(&scored.body) else { return };
        let fields = &self.cfg.new.fields;
        let number = |x: f32| serde_json::Number::from_f64(f64::from(x)).map_or(serde_json::Value::Null, Into::into);
        if scored.values.len() == 1 {
            if let Some(at) = v.pointer_mut(&fields.score) {
                *at = number(scored.values[0]);
            }
        } else if let Some(at) = fields.probabilities.as_deref().and_then(|p| v.pointer_mut(p)) {
            *at = serde_json::Value::Array(scored.values.iter().map(|x| number(*x)).collect());
        }
        if let (Some(d), Some(at)) = (decision, fields.decision.as_deref().and_then(|p| v.pointer_mut(p))) {
            *at = serde_json::Value::String(answer.label(d).to_string());
        }
        if let Ok(bytes) = serde_json::to_vec(&v) {
            scored.body = bytes.into();
        }
    }

    fn read_answer(&self, up: &Upstream, bytes: axum::body::Bytes) -> Option<Scored> {
        let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        let answer = self.cfg.scenario.migration.answer();
        let mut values = vec![0.0f32; answer.width()];
        let decision = pairing::read_answer(&v, &up.fields, answer, &mut values).ok()?;
        let stated = decision.filter(|d| Some(*d) != answer.decision(&values));
        let features = up
            .features
            .as_deref()
            .and_then(|p| v.pointer(p))
            .and_then(|f| f.as_array())
            .map(|a| a.iter().map(|x| x.as_f64().map_or(f32::NAN, |x| x as f32)).collect::<Vec<f32>>())
            .filter(|f| f.len() == self.cfg.features.len());
        let version = up.model_version.as_deref().and_then(|p| v.pointer(p)).and_then(|x| match x {
            serde_json::Value::String(s) => Some(crate::platform::version_text(s)),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        });
        // The user gets the stack's answer without the model row the router asked for.
        let body = if up.ask_features && features.is_some() {
            let mut user = v;
            if let Some(o) = user.as_object_mut() {
                o.remove("features");
            }
            serde_json::to_vec(&user).ok()?.into()
        } else {
            bytes
        };
        if let Some(v) = &version {
            self.count_version(up.name, v);
        }
        Some(Scored { values, stated, features, body })
    }

    fn count_version(&self, stack: &str, version: &str) {
        let mut all = self.versions.lock().unwrap_or_else(|e| e.into_inner());
        let seen = &mut all[usize::from(stack == "new")];
        if let Some(e) = seen.iter_mut().find(|(v, _)| v == version) {
            e.1 += 1;
        } else if seen.len() < MAX_VERSIONS {
            seen.push((version.to_string(), 1));
        } else if let Some(other) = seen.iter_mut().find(|(v, _)| v == "other") {
            other.1 += 1;
        } else {
            seen.push(("other".into(), 1));
        }
    }

    /// The model versions each stack stated so far, with their answer counts.
    pub fn model_versions(&self) -> Vec<ModelVersion> {
        let all = self.versions.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        for (stack, seen) in ["legacy", "new"].into_iter().zip(all.iter()) {
            for (version, answers) in seen {
                out.push(ModelVersion { stack: stack.into(), version: version.clone(), answers: *answers });
            }
        }
        out
    }

    /// A request served while the rollout is held: counted, its latency (and the router's
    /// own part of it, when known) kept by whether it was shadowed.
    fn held(&self, user_ms: f64, own_ms: Option<f64>, failed: bool, shadowed: bool) {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = if shadowed { HELD_SHADOWED } else { 0 };
        live.user_us[bucket].saturating_record((user_ms * 1000.0).max(1.0) as u64);
        if let Some(own) = own_ms {
            live.own_us[usize::from(shadowed)].saturating_record((own * 1000.0).max(1.0) as u64);
        }
        live.counts.requests_total += 1;
        live.counts.requests_failed += u64::from(failed);
    }

    /// A request served by legacy with no shadow call: skipped because too many were in
    /// flight (`dropped`), or because the new stack is out of the path after a rollback.
    /// Counted for the user, no evidence for the judge.
    fn unpaired(&self, user_ms: f64, failed: bool, dropped: bool) {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = phase_bucket(true, live.rollout.controller.phase());
        live.user_us[bucket].saturating_record((user_ms * 1000.0).max(1.0) as u64);
        live.counts.requests_total += 1;
        live.counts.requests_failed += u64::from(failed);
        live.shadow_dropped += u64::from(dropped);
    }

    /// Sets whether held requests are shadowed.
    pub fn set_shadow_while_held(&self, on: bool) {
        self.shadow_held.store(on, Ordering::Relaxed);
    }

    /// Pairs the two answers of one request (the pairing step the simulator runs) and
    /// feeds the monitor.
    fn pair(
        &self,
        request: &Record,
        routed_new: bool,
        routed_at: Routing,
        (legacy, new): (&CallResult, &CallResult),
        context_lost: bool,
        user: UserAnswer,
    ) {
        let Some(t) = self.now_us() else {
            self.held(user.ms, None, user.failed, false);
            return;
        };
        // Under the lock; a decision it leads to takes effect once the lock is free.
        let decided = (|| -> Option<Decided> {
            let UserAnswer { served_new, ms: user_ms, failed: user_failed } = user;
            let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
            let live = &mut *live;
            let bucket = phase_bucket(true, live.rollout.controller.phase());
            live.user_us[bucket].saturating_record((user_ms * 1000.0).max(1.0) as u64);
            live.counts.requests_total += 1;
            live.counts.requests_failed += u64::from(user_failed);
            fn call(c: &CallResult) -> Call<'_> {
                let outcome = match &c.answer {
                    Ok(s) => Called::Answered(&s.values, s.stated),
                    Err(CallFailure::Error) => Called::Error,
                    Err(CallFailure::Timeout) => Called::Timeout,
                };
                Call { ms: c.ms, outcome }
            }
            let rows = match (&legacy.answer, &new.answer) {
                (Ok(l), Ok(n)) => l.features.as_deref().zip(n.features.as_deref()),
                _ => None,
            };
            let (lc, nc) = (call(legacy), call(new));
            let p = live.pairing.pair(request, false, rows, &lc, &nc, !routed_new, context_lost, served_new)?;
            live.paired += 1;
            if served_new && p.compared.wrong {
                live.counts.bad_decisions += 1;
            }
            if let (Some((lr, nr)), Some(parity)) = (rows, &mut live.parity) {
                parity.observe(p.observation.segments, lr, nr, p.diffs);
            }
            // The judge's alarm: roll back now, not at the next tick.
            let decided = if live.rollout.observe(t, &p.observation) { self.evaluate_locked(live, t) } else { None };
            // The user path's invariants, as the simulator checks them. Judged at the moment
            // of routing: a canary request in flight when the rollback takes effect is not a
            // violation, one routed after it is.
            let effective = self.rollback_effective_us.load(Ordering::Acquire);
            let routed = Routed {
                index: request.id,
                routed_new,
                bucket: routed_at.bucket,
                weight: routed_at.weight,
                after_rollback: routed_at.at.is_some_and(|at| at > effective),
                user_failed,
                legacy_ok: legacy.answer.is_ok(),
                new_erred: matches!(new.answer, Err(CallFailure::Error)),
            };
            let mut broke = false;
            for (invariant, detail) in violations(&routed) {
                live.rollout.violation(t, invariant.name(), detail);
                broke = true;
            }
            if broke {
                self.persist(live, t);
            }
            decided
        })();
        self.settle(decided);
    }
}

/// Where and when a request was routed: the moment (µs of the rollout, once started), its
/// entity's bucket and the weight it met.
#[derive(Debug, Clone, Copy)]
struct Routing {
    at: Option<u64>,
    bucket: f64,
    weight: f64,
}

/// The router's routes: scoring, health, metrics and the admin API, with `pages` (the
/// dashboard's, given by the caller so that the router does not depend on its pages) behind
/// the same token check.
pub fn routes(state: Arc<RouterState>, pages: Router<Arc<RouterState>>) -> Router {
    let admin = Router::new()
        .route("/admin/rollout", get(admin_rollout))
        .route("/admin/history", get(admin_history))
        .route("/admin/start", post(admin_start))
        .route("/admin/shadow-while-held", post(admin_shadow_held))
        .route("/admin/rollback", post(admin_rollback))
        .route("/admin/decommission", post(admin_decommission))
        .route("/admin/faults", get(admin_faults).post(admin_inject).delete(admin_clear_all))
        .route("/admin/faults/{id}", delete(admin_clear_one));
    Router::new()
        .route("/v1/score", post(score::score))
        .route("/healthz", get(http::healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(http::metrics))
        .merge(pages)
        .merge(admin)
        .fallback(http::not_found)
        .method_not_allowed_fallback(http::wrong_method)
        // Around everything, so that under /admin a wrong method or an unknown path is
        // answered only after the token is checked: nothing is learned without it.
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .with_state(state)
}

async fn require_token(
    State(state): State<Arc<RouterState>>,
    headers: HeaderMap,
    request: axum::extract::Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    if path != "/admin" && !path.starts_with("/admin/") {
        return next.run(request).await;
    }
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if given.is_some_and(|t| constant_time_eq(t.as_bytes(), state.cfg.token.as_bytes())) {
        next.run(request).await
    } else {
        ApiError::field(
            StatusCode::UNAUTHORIZED,
            "authorization",
            "the admin API needs `Authorization: Bearer <token>`",
        )
        .into_response()
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn readyz(State(state): State<Arc<RouterState>>) -> Response {
    let mut down = Vec::new();
    for (name, up) in [("legacy", &state.cfg.legacy), ("new", &state.cfg.new)] {
        // A service with its own API may have no /healthz: any answer means it is up.
        let path = if up.healthz { "/healthz" } else { "/" };
        let ok = state
            .client
            .get(format!("{}{path}", up.url))
            .timeout(Duration::from_secs(1))
            .send()
            .await
            .is_ok_and(|r| !up.healthz || r.status().is_success());
        if !ok {
            down.push(name);
        }
    }
    if down.is_empty() {
        Json(serde_json::json!({"status": "ready"})).into_response()
    } else {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {} down", down.join(" and ")))
            .into_response()
    }
}

fn record_user(served_by: &'static str, began: Instant, failed: bool) {
    metrics::counter!("cutover_router_requests_total", "served_by" => served_by).increment(1);
    if failed {
        metrics::counter!("cutover_router_user_failures_total").increment(1);
    }
    metrics::histogram!("cutover_router_latency_seconds", "served_by" => served_by)
        .record(began.elapsed().as_secs_f64());
}

async fn admin_rollout(State(state): State<Arc<RouterState>>) -> Json<RolloutView> {
    Json(state.view())
}

async fn admin_history(State(state): State<Arc<RouterState>>) -> Json<Vec<cutover_sim::core::history::Event>> {
    Json(state.events())
}

async fn admin_start(State(state): State<Arc<RouterState>>) -> Json<serde_json::Value> {
    let started = state.start();
    Json(serde_json::json!({"started": started}))
}

async fn admin_shadow_held(
    State(state): State<Arc<RouterState>>,
    body: Body,
) -> Result<Json<serde_json::Value>, ApiError> {
    let bytes = http::read_body(body).await?;
    let v: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| ApiError::field(StatusCode::BAD_REQUEST, "body", e.to_string()))?;
    let on = v
        .get("enabled")
        .and_then(serde_json::Value::as_bool)
        .ok_or_else(|| ApiError::field(StatusCode::UNPROCESSABLE_ENTITY, "enabled", "must be true or false"))?;
    state.set_shadow_while_held(on);
    Ok(Json(serde_json::json!({"enabled": on})))
}

async fn admin_rollback(State(state): State<Arc<RouterState>>) -> Result<Json<serde_json::Value>, ApiError> {
    let t = state.now_us().ok_or_else(|| ApiError::new(StatusCode::CONFLICT, "the rollout has not started"))?;
    let mut live = state.live.lock().unwrap_or_else(|e| e.into_inner());
    if !live.rollout.manual_rollback(t) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("nothing to roll back in {:?}", live.rollout.controller.phase()),
        ));
    }
    let phase = live.rollout.controller.phase();
    let decided = state.decided(&mut live, t, false);
    drop(live);
    state.settle(decided);
    Ok(Json(serde_json::json!({"phase": phase, "t_s": t as f64 / 1e6})))
}

async fn admin_decommission(State(state): State<Arc<RouterState>>) -> Result<Json<serde_json::Value>, ApiError> {
    let t = state.now_us().ok_or_else(|| ApiError::new(StatusCode::CONFLICT, "the rollout has not started"))?;
    let mut live = state.live.lock().unwrap_or_else(|e| e.into_inner());
    let result = live.rollout.decommission(t);
    let decided = state.decided(&mut live, t, false);
    drop(live);
    state.settle(decided);
    match result {
        Ok(()) => Ok(Json(serde_json::json!({"decommissioned": true, "t_s": t as f64 / 1e6}))),
        Err(why) => Err(ApiError::new(StatusCode::CONFLICT, why)),
    }
}

async fn admin_faults(State(state): State<Arc<RouterState>>) -> Json<Vec<crate::faults::FaultView>> {
    Json(state.cfg.faults.as_ref().map(|b| b.list()).unwrap_or_default())
}

async fn admin_inject(State(state): State<Arc<RouterState>>, body: Body) -> Result<Response, ApiError> {
    let board = state.cfg.faults.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "faults are injected into cutover's own stacks; this router fronts external ones",
        )
    })?;
    let bytes = http::read_body(body).await?;
    let spec: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| ApiError::field(StatusCode::BAD_REQUEST, "body", e.to_string()))?;
    let view = board.inject(spec).map_err(|e| ApiError::field(StatusCode::UNPROCESSABLE_ENTITY, e.field, e.message))?;
    state.fault_began(view.id, &view.kind);
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

async fn admin_clear_all(State(state): State<Arc<RouterState>>) -> Json<serde_json::Value> {
    let Some(board) = state.cfg.faults.as_ref() else { return Json(serde_json::json!({"cleared": 0})) };
    let ids: Vec<u64> = board.list().iter().map(|f| f.id).collect();
    let n = board.clear(None);
    state.faults_ended(&ids);
    Json(serde_json::json!({"cleared": n}))
}

async fn admin_clear_one(
    State(state): State<Arc<RouterState>>,
    Path(id): Path<u64>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let n = state.cfg.faults.as_ref().map_or(0, |b| b.clear(Some(id)));
    if n == 0 {
        return Err(ApiError::field(StatusCode::NOT_FOUND, "id", format!("no active fault {id}")));
    }
    state.faults_ended(&[id]);
    Ok(Json(serde_json::json!({"cleared": n})))
}
