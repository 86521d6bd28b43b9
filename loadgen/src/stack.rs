//! A scoring stack as an HTTP service: the legacy one (in-process preprocessing and its
//! own customer table) or the new one (the new spec and its online store), each built from
//! a registry entry by the same `models/` code as the simulator's stacks. The new stack
//! carries the fault board.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use cutover_models::answer::Answer;
use cutover_models::paths::{SharedLog, SinglePath};
use cutover_models::schema::Schema;
use cutover_models::stack::ScoringStack;
use cutover_models::store::Schedule;
use cutover_models::{Model, Output};
use cutover_sim::faults::{served_answer, Kind, Touch};
use cutover_sim::streams::unit;
use serde::{Deserialize, Serialize};

use crate::faults::{FaultBoard, Hit, Serves};
use crate::http::{self, ApiError};
use crate::platform::EntityKeys;

/// Ask a stack to include its model row in the answer (the router pairs feature rows).
pub const FEATURES_HEADER: &str = "x-cutover-features";

/// A stack's answer to `POST /v1/score`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnswerBody {
    /// The model's answer: the probability (binary), the most likely class's probability
    /// (multiclass), or the prediction (regression).
    pub score: f32,
    /// The decision's label (none for regression).
    pub decision: Option<String>,
    /// Every class's probability (multiclass).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probabilities: Option<Vec<f32>>,
    /// Which stack answered.
    pub stack: String,
    /// The artifact that scored it (empty where a model server scored it).
    pub model_sha256: String,
    /// The version the model server stated, on the composed platform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_version: Option<String>,
    /// The model row, when asked for with the `x-cutover-features: 1` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<Vec<f32>>,
}

/// How long an injected timeout holds a request: far past any caller's budget.
const HELD_MS: u64 = 30_000;

/// One stack's state.
pub struct StackService {
    name: &'static str,
    schema: Arc<Schema>,
    answer: Answer,
    model: Arc<Model>,
    sha256: String,
    path: Mutex<PathState>,
    faults: Option<Arc<FaultBoard>>,
    seed: u64,
    /// Where the system of record leaves the raw entity keys of what it served (for the
    /// platform's materialization job).
    keys: Option<Arc<EntityKeys>>,
}

struct PathState {
    path: SinglePath,
    stalls_applied: Vec<u64>,
}

impl StackService {
    /// A stack named `name` (`legacy` or `new`) from a started scoring stack, answering as
    /// the migration's `answer` says, on its store `schedule`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: &'static str,
        stack: &ScoringStack,
        schema: Arc<Schema>,
        answer: Answer,
        schedule: Schedule,
        faults: Option<Arc<FaultBoard>>,
        seed: u64,
        log: SharedLog,
    ) -> StackService {
        StackService {
            name,
            schema,
            answer,
            model: stack.model().clone(),
            sha256: stack.entry().sha256.clone(),
            path: Mutex::new(PathState {
                // Legacy is the system of record: it appends what it serves to the log.
                path: SinglePath::new(stack.pipeline().clone(), schedule, log, name == "legacy"),
                stalls_applied: Vec::new(),
            }),
            faults,
            seed,
            keys: None,
        }
    }

    /// Leaves the raw entity key of every request served in `keys`.
    pub fn with_keys(mut self, keys: Arc<EntityKeys>) -> StackService {
        self.keys = Some(keys);
        self
    }

    /// Runs the store's batch job on the wall clock until `stop`: every second its
    /// materializations catch up with the shared log, requests or not (after a rollback
    /// the new stack gets none), so that the log can drop what every store has folded.
    pub fn spawn_store_job(
        self: &Arc<Self>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let svc = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => svc.path.lock().unwrap_or_else(|e| e.into_inner()).path.advance(i64::MIN),
                    _ = stop.wait_for(|s| *s) => break,
                }
            }
        })
    }

    /// The model it serves.
    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// The service's routes.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/v1/score", post(score))
            .route("/healthz", get(http::healthz))
            .route("/readyz", get(http::healthz))
            .route("/metrics", get(http::metrics))
            .fallback(http::not_found)
            .method_not_allowed_fallback(http::wrong_method)
            .with_state(self)
    }
}

/// Whether a touched call of request `txn` times out or fails, drawn from the seed.
pub(crate) struct Drawn {
    /// It hangs past the caller's timeout.
    pub timeout: bool,
    /// It fails.
    pub error: bool,
}

/// What the faults among `hits` do to the new-stack call of request `txn`, the same on
/// every face: gathered by [`Touch::add`], its failures drawn from the seed.
pub(crate) fn touch_of(hits: &[Hit], seed: u64, txn: u64) -> (Touch, Drawn) {
    let mut touch = Touch::default();
    for (id, kind, _) in hits {
        touch.add(kind, *id, seed, txn, false);
    }
    let timeout = touch.timeout_rate > 0.0 && unit(seed, txn, 0x7173) < touch.timeout_rate;
    let error = touch.error_rate > 0.0 && unit(seed, txn, 0xE770) < touch.error_rate;
    (touch, Drawn { timeout, error })
}

/// Acts out the latency, error and timeout faults among `hits` on request `txn`: sleeps
/// for the latency added, holds a timed-out request far past any caller's budget, and
/// answers an injected error with 500. What the faults do to the call, for
/// [`scale_own_time`] once it has answered.
pub(crate) async fn serve_faults(hits: &[Hit], seed: u64, txn: u64) -> Result<Touch, ApiError> {
    let (touch, Drawn { timeout, error }) = touch_of(hits, seed, txn);
    let delay_ms = touch.add_ms;
    if delay_ms > 0.0 {
        tokio::time::sleep(Duration::from_secs_f64(delay_ms / 1000.0)).await;
    }
    if timeout {
        tokio::time::sleep(Duration::from_millis(HELD_MS)).await;
    }
    if error {
        // Its caller counts the failed call (cutover_stack_errors_total, reason "status").
        return Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "the stack failed (an injected error)"));
    }
    Ok(touch)
}

/// Records the stack's own service time of a call that began at `own` and, under a
/// `latency_scale` fault, waits until the call has taken its multiplied time. tokio's timer
/// waits whole milliseconds: on a stack answering in well under one, the wait rounds up.
pub(crate) async fn scale_own_time(board: Option<&FaultBoard>, touch: &Touch, own: Instant) {
    let Some(board) = board else { return };
    let ms = own.elapsed().as_secs_f64() * 1000.0;
    let position = board.own_time(ms);
    let extra = touch.scaled_ms(ms, position) - ms;
    if extra > 0.0 {
        tokio::time::sleep(Duration::from_secs_f64(extra / 1000.0)).await;
    }
}

async fn score(
    State(svc): State<Arc<StackService>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<AnswerBody>, ApiError> {
    let began = Instant::now();
    let stack = svc.name;
    let bytes = http::read_body(body).await?;
    let request = http::parse_stack_request(&svc.schema, &bytes, stack)?;
    let hits = svc.faults.as_ref().map(|b| b.hitting(&request)).unwrap_or_default();
    let touch = serve_faults(&hits, svc.seed, request.id).await?;
    let own = Instant::now();
    let (read, spec) = crate::faults::read_as(&hits, &request);
    let mut row = {
        let mut state = svc.path.lock().unwrap_or_else(|e| e.into_inner());
        for (id, kind, _) in &hits {
            if let Kind::StaleFeatures { stall_us } = kind {
                if !state.stalls_applied.contains(id) {
                    state.stalls_applied.push(*id);
                    state.path.stall_until(request.time_ms + (*stall_us / 1000) as i64);
                }
            }
        }
        let read = read.as_ref().unwrap_or(&request);
        let row = match &spec {
            Some(spec) => state.path.compute_as(read, spec),
            None => state.path.compute(read).to_vec(),
        };
        state.path.served(&request);
        row
    };
    if let Some(keys) = &svc.keys {
        keys.remember_from(request.entity, &svc.schema.field(svc.schema.entity_field()).name, &bytes);
    }
    let mut serves: Option<&Serves> = None;
    for (_, kind, with) in &hits {
        kind.apply_to_row(&mut row);
        if with.is_some() {
            serves = with.as_ref();
        }
    }
    let mut out = vec![0.0f32; svc.answer.width()];
    match serves {
        Some(Serves::Model(m)) => svc.answer.score(m, &row, &mut out),
        Some(Serves::Runtime(r)) => r.score_batch(&row, Output::Prediction, &mut out),
        Some(Serves::Spec(_)) | None => svc.answer.score(&svc.model, &row, &mut out),
    }
    let decision = served_answer(&svc.answer, hits.iter().map(|(_, k, _)| k), &mut out);
    let decision = decision.map(|d| svc.answer.label(d).to_string());
    scale_own_time(svc.faults.as_deref(), &touch, own).await;
    let want_features = headers.get(FEATURES_HEADER).is_some_and(|v| v == "1");
    metrics::counter!("cutover_stack_requests_total", "stack" => stack).increment(1);
    metrics::histogram!("cutover_stack_latency_seconds", "stack" => stack).record(began.elapsed().as_secs_f64());
    Ok(Json(AnswerBody {
        score: svc.answer.headline(&out),
        decision,
        probabilities: (out.len() > 1).then(|| out.clone()),
        stack: stack.into(),
        model_sha256: svc.sha256.clone(),
        model_version: None,
        features: want_features.then_some(row),
    }))
}
