//! A scoring stack as an HTTP service: the legacy one (in-process preprocessing and its
//! own customer table) or the new one (the new spec and its online store), each built from
//! a registry entry by the same `migration/` code as the simulator's stacks. The new stack
//! carries the fault board.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use cutover_migration::answer::Answer;
use cutover_migration::paths::{SharedLog, SinglePath};
use cutover_migration::schema::Schema;
use cutover_migration::stack::ScoringStack;
use cutover_migration::store::Schedule;
use cutover_models::{Model, Output};
use cutover_sim::faults::{served_answer, Kind};

use crate::faults::{scale_own_time, serve_faults, FaultBoard, Serves};
use crate::http::{self, AnswerBody, ApiError, FEATURES_HEADER};
use crate::platform::EntityKeys;

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
