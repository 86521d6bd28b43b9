//! The composed new platform: features from a Feast feature server, the new spec's
//! on-demand transforms applied on the request, the model row scored by an Open Inference
//! Protocol server (MLServer, Triton, KServe, Seldon). It answers `POST /v1/score` as
//! cutover's own stacks do (model row included when asked), so the router pairs it with
//! legacy feature by feature; the store's, the transforms' and the model server's latency
//! are kept apart.
//!
//! Beside it runs the platform's materialization job: the new spec's aggregates folded from
//! the event log the legacy path writes, on the migration's schedule, and written into the
//! feature store through its push source (`POST /push`, online and offline). The faults a
//! platform meets are acted out on the real services: a `feature_skew` of an aggregate is
//! written so into the store, `stale_features` stops the job for its `stall_s`, a
//! `model_artifact` makes the model server load the other artifact (its model repository's
//! API), and latency, errors and timeouts are served by this composition as by any stack.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use cutover_migration::answer::Answer;
use cutover_migration::features::Pipeline;
use cutover_migration::paths::SharedLog;
use cutover_migration::schema::Schema;
use cutover_migration::stacks::{OipOutput, PlatformStack};
use cutover_migration::store::{absent_value, Materializer, OnlineStore, Schedule};
use cutover_sim::faults::{served_answer, Kind};
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::{json, Value};

use crate::faults::FaultBoard;
use crate::faults::{scale_own_time, serve_faults};
use crate::http::{self, ApiError};
use crate::http::{AnswerBody, FEATURES_HEADER};
use crate::upstream::{self, AnswerLimits};

/// The most entities whose raw keys are remembered (the store's own bound).
pub const MAX_KEYS: usize = cutover_migration::store::MAX_ENTITIES;

/// The raw entity keys (as requests carry them: a number or a text) by cutover's entity
/// key, so the materialization job can write rows under the feature store's join key.
#[derive(Default)]
pub struct EntityKeys(Mutex<HashMap<u64, Value>>);

/// The raw value of `field` in a JSON request body, as the client sent it.
pub fn raw_key(field: &str, body: &[u8]) -> Option<Value> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(mut o)) => o.remove(field),
        _ => None,
    }
}

impl EntityKeys {
    /// Remembers an entity's raw key (bounded: past [`MAX_KEYS`] entities, new ones are not
    /// remembered and their rows are not written).
    pub fn remember(&self, entity: u64, key: Value) {
        let mut keys = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if keys.len() < MAX_KEYS || keys.contains_key(&entity) {
            keys.insert(entity, key);
        }
    }

    /// Remembers the entity key of a request body, reading the body only for an entity not
    /// known yet (and outside the lock).
    pub fn remember_from(&self, entity: u64, field: &str, body: &[u8]) {
        if self.0.lock().unwrap_or_else(|e| e.into_inner()).contains_key(&entity) {
            return;
        }
        if let Some(key) = raw_key(field, body) {
            self.remember(entity, key);
        }
    }

    fn get(&self, entity: u64) -> Option<Value> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).get(&entity).cloned()
    }
}

/// The stages of one scoring call on the platform.
const STAGES: [&str; 3] = ["feature_store", "transforms", "model_server"];

/// Latency of one stage.
#[derive(Debug, Clone, Serialize)]
pub struct StageLatency {
    /// `feature_store`, `transforms` or `model_server`.
    pub stage: String,
    /// Calls.
    pub calls: u64,
    /// Median, ms.
    pub p50: f64,
    /// 99th percentile, ms.
    pub p99: f64,
}

/// What the platform's calls met, for the report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PlatformCounts {
    /// Aggregates the store did not have for the entity (NOT_FOUND, or null).
    pub features_missing: u64,
    /// Aggregates past their view's TTL (OUTSIDE_MAX_AGE): read as missing.
    pub features_stale: u64,
    /// Calls to the feature server that failed.
    pub store_failures: u64,
    /// Calls to the model server that failed.
    pub model_failures: u64,
    /// Materializations written to the store.
    pub pushes: u64,
    /// Entity rows written.
    pub rows_pushed: u64,
    /// Writes the store refused or that failed.
    pub push_failures: u64,
    /// Model versions the model server stated.
    pub model_versions: Vec<(String, u64)>,
    /// Artifacts the model server was made to load (`model_artifact` faults) and restored.
    pub model_swaps: u64,
    /// Faults the platform could not act out, and why.
    pub faults_not_acted: Vec<String>,
    /// The last failure of a call to either server, as said.
    pub last_failure: Option<String>,
}

/// The composition, as one service.
pub struct PlatformService {
    decl: PlatformStack,
    schema: Arc<Schema>,
    answer: Answer,
    pipeline: Arc<Pipeline>,
    /// The aggregates' references (`view:feature`) and their columns in Feast's answer.
    references: Vec<String>,
    columns: Vec<String>,
    client: reqwest::Client,
    limits: AnswerLimits,
    faults: Arc<FaultBoard>,
    seed: u64,
    keys: Arc<EntityKeys>,
    stages: Mutex<[Histogram<u64>; 3]>,
    counts: Mutex<PlatformCounts>,
}

/// How long the materialization job's write of one batch may take (off the users' path).
const PUSH_TIMEOUT: Duration = Duration::from_secs(5);

impl PlatformService {
    /// The composition of `decl`, computing the new spec `pipeline`'s features.
    pub fn new(
        decl: PlatformStack,
        schema: Arc<Schema>,
        answer: Answer,
        pipeline: Arc<Pipeline>,
        faults: Arc<FaultBoard>,
        seed: u64,
        keys: Arc<EntityKeys>,
    ) -> Result<PlatformService, String> {
        let references = decl.feature_server.references(&pipeline)?;
        let columns = references.iter().map(|r| r.replacen(':', "__", 1)).collect();
        let client = upstream::client(64)?;
        let hist = || Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("static bounds");
        Ok(PlatformService {
            decl,
            schema,
            answer,
            pipeline,
            references,
            columns,
            client,
            limits: AnswerLimits::default(),
            faults,
            seed,
            keys,
            stages: Mutex::new([hist(), hist(), hist()]),
            counts: Mutex::new(PlatformCounts::default()),
        })
    }

    /// Bounds the answers of its two servers as the router bounds a stack's.
    pub fn with_limits(mut self, limits: AnswerLimits) -> PlatformService {
        self.limits = limits;
        self
    }

    /// The service's routes.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/v1/score", post(score))
            .route("/healthz", get(http::healthz))
            .route("/readyz", get(ready))
            .route("/metrics", get(http::metrics))
            .fallback(http::not_found)
            .method_not_allowed_fallback(http::wrong_method)
            .with_state(self)
    }

    /// Each stage's latency so far.
    pub fn stage_latency(&self) -> Vec<StageLatency> {
        let stages = self.stages.lock().unwrap_or_else(|e| e.into_inner());
        STAGES
            .iter()
            .zip(stages.iter())
            .map(|(s, h)| StageLatency {
                stage: (*s).into(),
                calls: h.len(),
                p50: h.value_at_quantile(0.5) as f64 / 1000.0,
                p99: h.value_at_quantile(0.99) as f64 / 1000.0,
            })
            .collect()
    }

    /// What the calls and the job met so far.
    pub fn counts(&self) -> PlatformCounts {
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn stage(&self, k: usize, since: Instant) -> Instant {
        let now = Instant::now();
        let us = (now - since).as_micros().max(1) as u64;
        self.stages.lock().unwrap_or_else(|e| e.into_inner())[k].saturating_record(us);
        metrics::histogram!("cutover_platform_stage_seconds", "stage" => STAGES[k]).record(us as f64 / 1e6);
        now
    }

    /// The entity's aggregates from the feature server, in the spec's order, matched by
    /// the column names of its answer (never by position).
    async fn features(&self, entity: &Value, out: &mut [f64]) -> Result<(), String> {
        let fs = &self.decl.feature_server;
        let body = json!({
            "features": self.references,
            "entities": { fs.join_key.as_str(): [entity] },
            "full_feature_names": true,
        });
        let v = self.fetch(self.client.post(format!("{}/get-online-features", fs.url)).json(&body)).await;
        let (status, v) = v.map_err(|e| format!("feature server: {e}"))?;
        let v: Value = serde_json::from_slice(&v).map_err(|e| format!("feature server: not JSON: {e}"))?;
        if !status.is_success() {
            return Err(format!("feature server answered {status}: {}", cutover_models::shown(&v.to_string())));
        }
        let (missing, stale) = read_features(&v, &self.columns, &self.pipeline, out)?;
        if missing + stale > 0 {
            let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
            c.features_missing += missing;
            c.features_stale += stale;
        }
        Ok(())
    }

    /// One call to either server, its answer bounded as the router bounds a stack's.
    async fn fetch(&self, req: reqwest::RequestBuilder) -> Result<(reqwest::StatusCode, axum::body::Bytes), String> {
        let resp = upstream::send(req, self.limits.timeout).await.map_err(|f| f.describe(self.limits))?;
        let status = resp.status();
        let bytes = upstream::read(resp, self.limits.max_bytes).await.map_err(|f| f.describe(self.limits))?;
        Ok((status, bytes))
    }

    /// The model server's answer for one row: the answer's values and the version it states.
    async fn infer(&self, row: &[f32], out: &mut [f32]) -> Result<Option<String>, String> {
        let ms = &self.decl.model_server;
        // Missing goes as null; an infinity (a spec's `on_zero = "infinity"`) as the largest
        // float32 of its sign, which every split orders the same way and JSON can carry.
        let data: Vec<Option<f32>> =
            row.iter().map(|x| (!x.is_nan()).then_some(x.clamp(-f32::MAX, f32::MAX))).collect();
        let body = json!({
            "inputs": [{ "name": ms.input, "shape": [1, row.len()], "datatype": "FP32", "data": data }],
            "outputs": [{ "name": ms.output.name() }],
        });
        let answer = self.fetch(self.client.post(format!("{}{}", ms.url, ms.infer_path())).json(&body)).await;
        let (status, bytes) = answer.map_err(|e| format!("model server: {e}"))?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&bytes);
            return Err(format!("model server answered {status}: {}", cutover_models::shown(&text)));
        }
        let v: Value = serde_json::from_slice(&bytes).map_err(|e| format!("model server: not JSON: {e}"))?;
        read_inference(&v, ms.output, out)?;
        Ok(v.get("model_version").and_then(Value::as_str).map(version_text))
    }
}

/// A version as stated, kept whole unless long or holding control characters.
pub fn version_text(v: &str) -> String {
    if v.len() <= 128 && !v.chars().any(char::is_control) {
        v.to_string()
    } else {
        cutover_models::shown(v)
    }
}

/// Reads Feast's `get-online-features` answer for one entity into `out` (the spec's
/// aggregates, in order): each column found by its name in `metadata.feature_names`;
/// NOT_FOUND and OUTSIDE_MAX_AGE (and a null, which a Redis store answers with PRESENT
/// for an entity it lacks) read as an absent aggregate. Returns (missing, stale).
pub fn read_features(
    v: &Value,
    columns: &[String],
    pipeline: &Pipeline,
    out: &mut [f64],
) -> Result<(u64, u64), String> {
    let names = v
        .pointer("/metadata/feature_names")
        .and_then(Value::as_array)
        .ok_or("feature server: no metadata.feature_names in its answer")?;
    let results = v.get("results").and_then(Value::as_array).ok_or("feature server: no results in its answer")?;
    let (mut missing, mut stale) = (0, 0);
    for ((o, column), agg) in out.iter_mut().zip(columns).zip(pipeline.aggregates()) {
        let i = names
            .iter()
            .position(|n| n.as_str() == Some(column))
            .ok_or_else(|| format!("feature server: no column `{column}` in its answer"))?;
        let r = results.get(i).ok_or_else(|| format!("feature server: no result for `{column}`"))?;
        let value = r.pointer("/values/0").unwrap_or(&Value::Null);
        let status = r.pointer("/statuses/0").and_then(Value::as_str).unwrap_or("PRESENT");
        *o = match (status, value) {
            ("PRESENT", Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
            ("PRESENT", Value::Bool(b)) => f64::from(u8::from(*b)),
            ("PRESENT", Value::Null) | ("NOT_FOUND" | "NULL_VALUE", _) => {
                missing += 1;
                absent_value(agg.function)
            }
            ("OUTSIDE_MAX_AGE", _) => {
                stale += 1;
                absent_value(agg.function)
            }
            (s, v) => {
                return Err(format!(
                    "feature server: `{column}` is {} with status {s}",
                    cutover_models::shown(&v.to_string())
                ))
            }
        };
    }
    Ok((missing, stale))
}

/// Reads an Open Inference Protocol answer's output into the answer's values.
pub fn read_inference(v: &Value, output: OipOutput, out: &mut [f32]) -> Result<(), String> {
    let outputs = v.get("outputs").and_then(Value::as_array).ok_or("model server: no outputs in its answer")?;
    let o = outputs
        .iter()
        .find(|o| o.get("name").and_then(Value::as_str) == Some(output.name()))
        .or(outputs.first())
        .ok_or("model server: an empty outputs list")?;
    let data = o.get("data").and_then(Value::as_array).ok_or("model server: the output has no data")?;
    let numbers: Vec<f32> = data
        .iter()
        .map(|x| x.as_f64().map(|x| x as f32).ok_or("model server: a value of the output is not a number"))
        .collect::<Result<_, _>>()?;
    match (numbers.len(), out.len()) {
        (n, w) if n == w => out.copy_from_slice(&numbers),
        // predict_proba of a binary model: both classes; the score is the positive one's.
        (2, 1) if output == OipOutput::PredictProba => out[0] = numbers[1],
        (n, w) => return Err(format!("model server: {n} values in the output, the answer has {w}")),
    }
    Ok(())
}

async fn ready(State(svc): State<Arc<PlatformService>>) -> Result<Json<Value>, ApiError> {
    let ms = &svc.decl.model_server;
    let checks =
        [format!("{}/health", svc.decl.feature_server.url), format!("{}/v2/models/{}/ready", ms.url, ms.model)];
    for url in checks {
        let ok =
            svc.client.get(&url).timeout(Duration::from_secs(1)).send().await.is_ok_and(|r| r.status().is_success());
        if !ok {
            return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {url}")));
        }
    }
    Ok(Json(json!({"status": "ready"})))
}

async fn score(
    State(svc): State<Arc<PlatformService>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<AnswerBody>, ApiError> {
    let began = Instant::now();
    let bytes = http::read_body(body).await?;
    let request = http::parse_stack_request(&svc.schema, &bytes, "new")?;
    let hits = svc.faults.hitting(&request);
    let touch = serve_faults(&hits, svc.seed, request.id).await?;
    let own = Instant::now();
    let entity = raw_key(&svc.schema.field(svc.schema.entity_field()).name, &bytes).unwrap_or(Value::Null);
    svc.keys.remember(request.entity, entity.clone());
    // The router counts the failed call (cutover_stack_errors_total, reason "status").
    let failed = |what: &str, e: String| ApiError::new(StatusCode::BAD_GATEWAY, format!("{what}: {e}"));
    let mut values = svc.pipeline.values();
    let t = Instant::now();
    if let Err(e) = svc.features(&entity, &mut values.aggregates).await {
        let mut c = svc.counts.lock().unwrap_or_else(|e| e.into_inner());
        c.store_failures += 1;
        c.last_failure = Some(e.clone());
        return Err(failed("feature store", e));
    }
    let t = svc.stage(0, t);
    let (read, spec) = crate::faults::read_as(&hits, &request);
    let read = read.as_ref().unwrap_or(&request);
    let row = match &spec {
        // The switched spec reads the same aggregates (checked when it was injected).
        Some(spec) => {
            let mut switched = spec.values();
            switched.aggregates.copy_from_slice(&values.aggregates);
            spec.compute(&read.values, &mut switched);
            switched.row
        }
        None => {
            svc.pipeline.compute(&read.values, &mut values);
            values.row.clone()
        }
    };
    let mut row = row;
    for (_, kind, _) in &hits {
        // A skewed aggregate is written so by the job; other feature faults act here.
        if !svc.is_aggregate_fault(kind) {
            kind.apply_to_row(&mut row);
        }
    }
    let t = svc.stage(1, t);
    let mut out = vec![0.0f32; svc.answer.width()];
    let version = match svc.infer(&row, &mut out).await {
        Ok(v) => v,
        Err(e) => {
            let mut c = svc.counts.lock().unwrap_or_else(|e| e.into_inner());
            c.model_failures += 1;
            c.last_failure = Some(e.clone());
            return Err(failed("model server", e));
        }
    };
    svc.stage(2, t);
    let decision = served_answer(&svc.answer, hits.iter().map(|(_, k, _)| k), &mut out);
    scale_own_time(Some(&svc.faults), &touch, own).await;
    if let Some(v) = &version {
        let mut c = svc.counts.lock().unwrap_or_else(|e| e.into_inner());
        let seen = &mut c.model_versions;
        if let Some(e) = seen.iter_mut().find(|(x, _)| x == v) {
            e.1 += 1;
        } else if seen.len() < 16 {
            seen.push((v.clone(), 1));
        }
    }
    metrics::counter!("cutover_stack_requests_total", "stack" => "new").increment(1);
    metrics::histogram!("cutover_stack_latency_seconds", "stack" => "new").record(began.elapsed().as_secs_f64());
    let want_features = headers.get(FEATURES_HEADER).is_some_and(|v| v == "1");
    let decision = decision.map(|d| svc.answer.label(d).to_string());
    Ok(Json(AnswerBody {
        score: svc.answer.headline(&out),
        decision,
        probabilities: (out.len() > 1).then(|| out.clone()),
        stack: "new".into(),
        model_sha256: String::new(),
        model_version: version,
        features: want_features.then_some(row),
    }))
}

impl PlatformService {
    /// Whether a fault is one the materialization job acts out (a skewed aggregate).
    fn is_aggregate_fault(&self, kind: &Kind) -> bool {
        self.aggregate_of(kind).is_some()
    }

    fn aggregate_of(&self, kind: &Kind) -> Option<(usize, f64, f64)> {
        let Kind::FeatureSkew { feature, scale, offset } = *kind else { return None };
        let name = self.pipeline.output_names().get(feature)?;
        let k = self.pipeline.aggregates().iter().position(|a| &a.name == name)?;
        Some((k, scale, offset))
    }

    /// Runs the platform's materialization job until `stop`: every `tick`, the aggregates
    /// the schedule publishes by the log's latest event are written to the store through
    /// its push source (when the folder names one).
    pub fn spawn_materializer(
        self: &Arc<Self>,
        log: SharedLog,
        schedule: Schedule,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let source = self.decl.feature_server.push_source.clone()?;
        let svc = self.clone();
        let reader = log.reader();
        Some(tokio::spawn(async move {
            let mut job = Materializer::new(schedule, svc.pipeline.clone());
            job.keep_published();
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut stalls: Vec<u64> = Vec::new();
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.wait_for(|s| *s) => break,
                }
                let active = svc.faults.active();
                let rows = {
                    let log = log.read();
                    let Some(now) = log.last_ms() else { continue };
                    for (id, kind) in &active {
                        if let Kind::StaleFeatures { stall_us } = kind {
                            if !stalls.contains(id) {
                                stalls.push(*id);
                                job.stall_until(now + (*stall_us / 1000) as i64);
                            }
                        }
                    }
                    job.advance_to(now, &log);
                    reader.folded(job.cursor());
                    job.take_published()
                };
                if rows.is_empty() {
                    continue;
                }
                let skews: Vec<(usize, f64, f64)> = active.iter().filter_map(|(_, k)| svc.aggregate_of(k)).collect();
                svc.push(&source, rows, &skews).await;
            }
        }))
    }

    /// Acts out `model_artifact` faults on the model server until `stop`: the artifact is
    /// copied into its model repository, the model's settings point at it (version
    /// `fault-ID`), and the server reloads the model through its repository API; when the
    /// fault is cleared the settings are restored and the model reloaded.
    pub fn spawn_model_faults(
        self: &Arc<Self>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let svc = self.clone();
        tokio::spawn(async move {
            let mut applied: Option<(u64, Vec<u8>)> = None;
            let mut tick = tokio::time::interval(Duration::from_millis(50));
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.wait_for(|s| *s) => break,
                }
                let wanted = svc.faults.active().into_iter().find_map(|(id, k)| match k {
                    Kind::ModelArtifact { artifact } => Some((id, artifact)),
                    _ => None,
                });
                let now = applied.as_ref().map(|a| a.0);
                if now == wanted.as_ref().map(|w| w.0) {
                    continue;
                }
                if let Some((_, original)) = applied.take() {
                    if let Err(e) = svc.restore_model(&original).await {
                        svc.not_acted(format!("restoring the model: {e}"));
                    }
                }
                if let Some((id, artifact)) = wanted {
                    match svc.swap_model(id, &artifact).await {
                        Ok(original) => applied = Some((id, original)),
                        Err(e) => svc.not_acted(format!("model_artifact {id}: {e}")),
                    }
                }
            }
            if let Some((_, original)) = applied {
                let _ = svc.restore_model(&original).await;
            }
        })
    }

    fn not_acted(&self, why: String) {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if c.faults_not_acted.len() < 16 {
            c.faults_not_acted.push(why);
        }
    }

    fn settings_path(&self) -> Result<std::path::PathBuf, String> {
        let ms = &self.decl.model_server;
        let repo = ms.repository.as_ref().ok_or("the model server's `repository` is not declared")?;
        Ok(repo.join(&ms.model).join("model-settings.json"))
    }

    async fn reload(&self) -> Result<(), String> {
        let ms = &self.decl.model_server;
        let resp = self
            .client
            .post(format!("{}/v2/repository/models/{}/load", ms.url, ms.model))
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .map_err(|e| format!("reload: {e}"))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(format!("reload answered {}", resp.status()))
        }
    }

    async fn swap_model(&self, id: u64, artifact: &std::path::Path) -> Result<Vec<u8>, String> {
        let path = self.settings_path()?;
        let original = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut settings: Value =
            serde_json::from_slice(&original).map_err(|e| format!("{}: not JSON: {e}", path.display()))?;
        let ext = artifact.extension().and_then(|e| e.to_str()).unwrap_or("json");
        let file = format!("fault-{id}.{ext}");
        let dir = path.parent().unwrap_or(std::path::Path::new("."));
        std::fs::copy(artifact, dir.join(&file)).map_err(|e| format!("copying the artifact: {e}"))?;
        settings["parameters"]["uri"] = json!(format!("./{file}"));
        settings["parameters"]["version"] = json!(format!("fault-{id}"));
        std::fs::write(&path, serde_json::to_vec_pretty(&settings).unwrap_or_default())
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if let Err(e) = self.reload().await {
            let _ = std::fs::write(&path, &original);
            return Err(e);
        }
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).model_swaps += 1;
        Ok(original)
    }

    async fn restore_model(&self, original: &[u8]) -> Result<(), String> {
        let path = self.settings_path()?;
        std::fs::write(&path, original).map_err(|e| format!("{}: {e}", path.display()))?;
        self.reload().await
    }

    /// Writes entity rows to the store through its push source, online and offline.
    async fn push(&self, source: &str, rows: Vec<(u64, Vec<f64>)>, skews: &[(usize, f64, f64)]) {
        let fs = &self.decl.feature_server;
        let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let now = chrono::DateTime::from_timestamp(since.as_secs() as i64, since.subsec_nanos())
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let mut keys = Vec::with_capacity(rows.len());
        let mut columns: Vec<Vec<Option<f64>>> = vec![Vec::with_capacity(rows.len()); self.references.len()];
        for (entity, values) in rows {
            let Some(key) = self.keys.get(entity) else { continue };
            keys.push(key);
            for (k, (c, v)) in columns.iter_mut().zip(values).enumerate() {
                let v = skews.iter().filter(|s| s.0 == k).fold(v, |v, &(_, scale, offset)| v * scale + offset);
                c.push(v.is_finite().then_some(v));
            }
        }
        if keys.is_empty() {
            return;
        }
        let n = keys.len();
        let mut df = serde_json::Map::new();
        df.insert(fs.join_key.clone(), Value::Array(keys));
        df.insert("event_timestamp".into(), Value::Array(vec![Value::String(now); n]));
        for (r, c) in self.references.iter().zip(columns) {
            let feature = r.split_once(':').map_or(r.as_str(), |(_, f)| f);
            df.insert(feature.into(), json!(c));
        }
        let body = json!({ "push_source_name": source, "df": df, "to": "online_and_offline" });
        let ok = self
            .client
            .post(format!("{}/push", fs.url))
            .json(&body)
            .timeout(PUSH_TIMEOUT)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if ok {
            c.pushes += 1;
            c.rows_pushed += n as u64;
        } else {
            c.push_failures += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fraud_new() -> Arc<Pipeline> {
        let m = cutover_migration::Migration::bundled_fraud().unwrap();
        m.start_stacks().unwrap().1.pipeline().clone()
    }

    const COLUMNS: [&str; 2] =
        ["customer_aggregates__customer_txn_count", "customer_aggregates__customer_avg_amount_eur"];

    fn columns() -> Vec<String> {
        COLUMNS.iter().map(|c| c.to_string()).collect()
    }

    #[test]
    fn entity_keys_keep_the_raw_value_the_client_sent() {
        let keys = EntityKeys::default();
        keys.remember_from(7, "courier_id", br#"{"courier_id": "c-0042", "items": 2}"#);
        keys.remember_from(8, "courier_id", b"not json");
        keys.remember_from(9, "courier_id", br#"{"customer_id": 9}"#);
        assert_eq!(keys.get(7), Some(json!("c-0042")));
        assert_eq!((keys.get(8), keys.get(9)), (None, None));
        // Known already: the body is not read again, the key kept.
        keys.remember_from(7, "courier_id", br#"{"courier_id": "other"}"#);
        assert_eq!(keys.get(7), Some(json!("c-0042")));
        assert_eq!(raw_key("customer_id", br#"{"customer_id": 12}"#), Some(json!(12)));
    }

    #[test]
    fn feast_columns_are_matched_by_name_not_position() {
        let p = fraud_new();
        assert_eq!(p.aggregates().len(), 2);
        // Feast's order after a restart: the average first.
        let v = json!({
            "metadata": {"feature_names": ["customer_id", COLUMNS[1], COLUMNS[0]]},
            "results": [
                {"values": [7], "statuses": ["PRESENT"]},
                {"values": [41.5], "statuses": ["PRESENT"]},
                {"values": [3.0], "statuses": ["PRESENT"]},
            ]
        });
        let mut out = [0.0; 2];
        assert_eq!(read_features(&v, &columns(), &p, &mut out), Ok((0, 0)));
        assert_eq!(out, [3.0, 41.5]);
    }

    #[test]
    fn absent_entities_read_as_an_empty_history_whichever_store_answers() {
        let p = fraud_new();
        let sqlite = json!({
            "metadata": {"feature_names": ["customer_id", COLUMNS[0], COLUMNS[1]]},
            "results": [
                {"values": [7], "statuses": ["PRESENT"]},
                {"values": [null], "statuses": ["NOT_FOUND"]},
                {"values": [null], "statuses": ["NOT_FOUND"]},
            ]
        });
        // Redis answers an entity it lacks with nulls marked PRESENT.
        let redis = json!({
            "metadata": {"feature_names": ["customer_id", COLUMNS[0], COLUMNS[1]]},
            "results": [
                {"values": [7], "statuses": ["PRESENT"]},
                {"values": [null], "statuses": ["PRESENT"]},
                {"values": [null], "statuses": ["PRESENT"]},
            ]
        });
        for v in [sqlite, redis] {
            let mut out = [9.0; 2];
            assert_eq!(read_features(&v, &columns(), &p, &mut out), Ok((2, 0)), "{v}");
            // A count of nothing is 0; a mean of nothing is missing: as legacy's table reads.
            assert_eq!(out[0], 0.0);
            assert!(out[1].is_nan());
        }
        let stale = json!({
            "metadata": {"feature_names": [COLUMNS[0], COLUMNS[1]]},
            "results": [
                {"values": [12.0], "statuses": ["OUTSIDE_MAX_AGE"]},
                {"values": [10.0], "statuses": ["PRESENT"]},
            ]
        });
        let mut out = [9.0; 2];
        assert_eq!(read_features(&stale, &columns(), &p, &mut out), Ok((0, 1)));
        assert_eq!(out, [0.0, 10.0]);
    }

    #[test]
    fn a_feast_answer_without_a_column_or_with_text_is_an_error() {
        let p = fraud_new();
        let mut out = [0.0; 2];
        let v = json!({"metadata": {"feature_names": [COLUMNS[0]]}, "results": [{"values": [1.0], "statuses": ["PRESENT"]}]});
        let e = read_features(&v, &columns(), &p, &mut out).unwrap_err();
        assert!(e.contains(COLUMNS[1]), "{e}");
        let v = json!({
            "metadata": {"feature_names": [COLUMNS[0], COLUMNS[1]]},
            "results": [{"values": ["x"], "statuses": ["PRESENT"]}, {"values": [1.0], "statuses": ["PRESENT"]}]
        });
        assert!(read_features(&v, &columns(), &p, &mut out).is_err());
        assert!(read_features(&json!({"detail": "nope"}), &columns(), &p, &mut out).is_err());
    }

    #[test]
    fn oip_outputs_are_read_by_name_and_shape() {
        let v = json!({"model_name": "m", "outputs": [
            {"name": "predict_proba", "shape": [1, 2], "datatype": "FP32", "data": [0.25, 0.75]},
            {"name": "predict", "shape": [1, 1], "datatype": "FP32", "data": [0.125]},
        ]});
        let mut one = [0.0f32];
        read_inference(&v, OipOutput::Predict, &mut one).unwrap();
        assert_eq!(one, [0.125]);
        read_inference(&v, OipOutput::PredictProba, &mut one).unwrap();
        assert_eq!(one, [0.75]);
        let mut three = [0.0f32; 3];
        let e = read_inference(&v, OipOutput::PredictProba, &mut three).unwrap_err();
        assert!(e.contains("2 values"), "{e}");
        let multi = json!({"outputs": [{"name": "predict", "data": [0.2, 0.3, 0.5]}]});
        read_inference(&multi, OipOutput::Predict, &mut three).unwrap();
        assert_eq!(three, [0.2, 0.3, 0.5]);
        assert!(read_inference(&json!({"error": "boom"}), OipOutput::Predict, &mut one).is_err());
        assert!(read_inference(
            &json!({"outputs": [{"name": "predict", "data": [null]}]}),
            OipOutput::Predict,
            &mut one
        )
        .is_err());
    }
}
