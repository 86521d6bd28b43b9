//! Faults injected into a live run: the same fault tables as a scenario's `[[faults]]`,
//! validated and resolved by the simulator's code, acting from the moment they are
//! injected until they are cleared. The new stack reads the board for what it changes
//! (features, model, latency, errors, timeouts, its store); the router for the shadow
//! context it drops.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use cutover_migration::answer::Answer;
use cutover_migration::features::Pipeline;
use cutover_migration::schema::{Record, Schema};
use cutover_migration::segments::Segments;
use cutover_migration::stack::ScoringStack;
use cutover_migration::Migration;
use cutover_models::runtime::{scorer, Runtime, Scorer};
use cutover_models::Model;
use cutover_sim::faults::{resolve_one, Accepts, Context, Fault, FaultSpec, Kind, Support, Touch};
use cutover_sim::streams::unit;

use crate::http::ApiError;
use rand::SeedableRng;
use serde::Serialize;

/// One injected fault.
#[derive(Clone)]
pub struct LiveFault {
    /// Its id on the board.
    pub id: u64,
    /// The resolved fault.
    pub fault: Fault,
    /// The table it was injected with.
    pub spec: serde_json::Value,
    /// What it computes or scores with instead of the stack's own, for `spec_switch`,
    /// `model_artifact` and `runtime_drift`.
    pub serves: Option<Serves>,
    /// When it was injected (a `ramp_s` counts from then, on the wall clock).
    pub injected: std::time::Instant,
}

/// What a fault makes the new stack compute or score with.
#[derive(Clone)]
pub enum Serves {
    /// Another feature spec, on the same store.
    Spec(Arc<Pipeline>),
    /// Another artifact.
    Model(Arc<Model>),
    /// The same model through another runtime.
    Runtime(Arc<dyn Scorer>),
}

/// What a listing shows of a fault.
#[derive(Debug, Clone, Serialize)]
pub struct FaultView {
    /// Its id.
    pub id: u64,
    /// Its kind.
    pub kind: String,
    /// The table it was injected with.
    pub spec: serde_json::Value,
}

/// A fault touching a request: its id, what it does, and what it scores with if anything.
pub type Hit = (u64, Kind, Option<Serves>);

/// The request as the new path reads it under the request-field faults among `hits` (none
/// when none touches it), and the spec it computes with under a `spec_switch` (none: its
/// own; the last one wins).
pub fn read_as(hits: &[Hit], request: &Record) -> (Option<Record>, Option<Arc<Pipeline>>) {
    let mut read: Option<Record> = None;
    let mut spec = None;
    for (_, kind, serves) in hits {
        if kind.def().layer == cutover_sim::faults::Layer::Request {
            kind.apply_to_request(read.get_or_insert_with(|| request.clone()));
        }
        if let Some(Serves::Spec(p)) = serves {
            spec = Some(p.clone());
        }
    }
    (read, spec)
}

/// Which new stack a board's faults act on: what each kind's definition says of it live
/// decides which kinds it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Face {
    /// cutover's own in-process stack.
    InProcess,
    /// The composed Feast + Open Inference Protocol platform.
    Platform,
    /// A team's own HTTP service: the router acts the faults out on the request it sends,
    /// the call and the answer it reads back.
    Service,
}

/// The faults active now.
pub struct FaultBoard {
    face: Face,
    seed: u64,
    features: Vec<String>,
    segments: Segments,
    schema: Arc<Schema>,
    answer: Answer,
    single_output: bool,
    artifacts: ArtifactRoots,
    model: Arc<Model>,
    pipeline: Arc<Pipeline>,
    active: RwLock<Vec<LiveFault>>,
    next_id: std::sync::atomic::AtomicU64,
    down: tokio::sync::watch::Sender<bool>,
    /// The stack's own recent service times, µs: where a call stands between its median and
    /// 99th percentile, for `latency_scale`.
    own_us: std::sync::Mutex<hdrhistogram::Histogram<u64>>,
}

/// Service times the board keeps before it starts afresh (the recent ones decide).
const OWN_TIMES_KEPT: u64 = 100_000;

/// Service times needed before a call's place among them means something.
const OWN_TIMES_NEEDED: u64 = 100;

/// Why a fault table was refused: the field and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("field `{field}`: {message}")]
pub struct FaultError {
    /// The field at fault.
    pub field: String,
    /// Why.
    pub message: String,
}

/// The most faults active at once: the board is a table a client grows.
pub const MAX_ACTIVE_FAULTS: usize = 64;

/// Where a `model_artifact` fault given over the admin API may read from: the artifact an
/// entry of the migration's registry pins (`"artifact": "name/version"`), or a file inside
/// the migration folder or the registry folder (a relative path, resolved there; no `..`,
/// no absolute path, no link leading out). Nothing of a file that is not a model is quoted.
#[derive(Debug, Clone)]
pub struct ArtifactRoots {
    /// The migration folder.
    pub migration: PathBuf,
    /// The registry folder.
    pub registry: PathBuf,
}

impl ArtifactRoots {
    /// The roots of a migration folder.
    pub fn of(m: &cutover_migration::Migration) -> ArtifactRoots {
        ArtifactRoots { migration: m.dir.clone(), registry: m.registry_dir().to_path_buf() }
    }

    /// A file as the admin API takes it: relative to the migration folder or the registry
    /// when inside one of them, else as given (and then refused by [`ArtifactRoots::resolve`]).
    pub fn relative(&self, file: &Path) -> String {
        let file = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
        for root in [&self.migration, &self.registry] {
            if let Ok(root) = std::fs::canonicalize(root) {
                if let Ok(rel) = file.strip_prefix(&root) {
                    return rel.display().to_string();
                }
            }
        }
        file.display().to_string()
    }

    /// The file an `artifact` value names, or why it may not be read.
    pub fn resolve(&self, given: &str) -> Result<PathBuf, String> {
        self.resolve_as(Accepts::Artifact, given)
    }

    /// The file an `artifact` or a `spec` value names (a registry entry pins both), or why
    /// it may not be read.
    pub fn resolve_as(&self, accepts: Accepts, given: &str) -> Result<PathBuf, String> {
        let outside = || {
            format!(
                "must be a registry entry (name/version) or a path inside the migration folder {} or its registry",
                self.migration.display()
            )
        };
        let registry = cutover_migration::registry::Registry::open(&self.registry).within(&self.migration);
        let entry_id = given.split_once('/').is_some_and(|(name, version)| {
            !name.is_empty() && !name.contains(['/', '\\']) && name != ".." && version.parse::<u32>().is_ok()
        });
        if entry_id {
            if let Ok(entry) = registry.get(given) {
                let file = if accepts == Accepts::Spec { &entry.feature_spec } else { &entry.artifact };
                return registry.resolve(file).map_err(|e| e.to_string());
            }
        }
        let p = Path::new(given);
        if given.is_empty() || p.is_absolute() || p.components().any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(outside());
        }
        for root in [&self.migration, &self.registry] {
            let (Ok(root), Ok(file)) = (std::fs::canonicalize(root), std::fs::canonicalize(root.join(p))) else {
                continue;
            };
            if file.starts_with(&root) && file.is_file() {
                return Ok(file);
            }
        }
        Err(outside())
    }
}

impl FaultBoard {
    /// An empty board for the new stack `new` of migration `m`, a stack of `face`, over
    /// the migration's `segments`; `model_artifact` and `spec_switch` faults read only
    /// inside the migration's folders.
    pub fn new(face: Face, seed: u64, m: &Migration, segments: Segments, new: &ScoringStack) -> FaultBoard {
        let model = new.model().clone();
        FaultBoard {
            face,
            seed,
            features: model.feature_names().to_vec(),
            segments,
            schema: m.schema().clone(),
            answer: m.answer().clone(),
            single_output: model.objective().num_outputs() == 1 && model.objective().num_groups() == 1,
            artifacts: ArtifactRoots::of(m),
            model,
            pipeline: new.pipeline().clone(),
            active: RwLock::new(Vec::new()),
            next_id: std::sync::atomic::AtomicU64::new(1),
            down: tokio::sync::watch::channel(false).0,
            own_us: std::sync::Mutex::new(
                hdrhistogram::Histogram::new_with_bounds(1, 600_000_000, 2).expect("valid bounds"),
            ),
        }
    }

    /// Records the stack's own service time of one call (before any fault acted), and
    /// returns the call's place between the stack's recent median and 99th percentile
    /// ([`cutover_sim::faults::latency_position`]; 0 until a hundred calls were seen).
    pub fn own_time(&self, ms: f64) -> f64 {
        let mut h = self.own_us.lock().unwrap_or_else(|e| e.into_inner());
        if h.len() >= OWN_TIMES_KEPT {
            h.reset();
        }
        h.saturating_record((ms * 1000.0).max(1.0) as u64);
        if h.len() < OWN_TIMES_NEEDED {
            return 0.0;
        }
        let (p50, p99) = (h.value_at_quantile(0.5) as f64 / 1000.0, h.value_at_quantile(0.99) as f64 / 1000.0);
        cutover_sim::faults::latency_position(ms, p50, p99)
    }

    /// Validates, resolves and injects a fault table (JSON, the fields of a scenario's
    /// `[[faults]]` without `start_s`/`end_s`: it acts from now until cleared).
    pub fn inject(&self, spec: serde_json::Value) -> Result<FaultView, FaultError> {
        let bad = |field: &str, message: String| FaultError { field: field.into(), message };
        let serde_json::Value::Object(mut table) = spec.clone() else {
            return Err(bad("body", "a fault is a JSON object".into()));
        };
        for timing in ["start_s", "end_s", "start_at", "end_at"] {
            if table.contains_key(timing) {
                return Err(bad(timing, "does not apply to a live fault (it acts from now until cleared)".into()));
            }
        }
        table.insert("start_s".into(), 0.into());
        let parsed: FaultSpec = serde_path_to_error::deserialize(serde_json::Value::Object(table)).map_err(|e| {
            let path = e.path().to_string();
            let message = e.into_inner().to_string();
            bad(if path == "." { "body" } else { &path }, message)
        })?;
        let tag = parsed.check().map_err(|(field, message)| bad(&field, message))?;
        let live = tag.def().live;
        let support = match self.face {
            Face::InProcess => live.in_process,
            Face::Platform => live.platform,
            Face::Service => live.service,
        };
        if let Support::Refused(why) = support {
            return Err(bad("kind", format!("{}: {why}", tag.name())));
        }
        let id = self.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut params = rand_chacha::ChaCha8Rng::seed_from_u64(self.seed ^ id);
        let files = |accepts: Accepts, given: &str| self.artifacts.resolve_as(accepts, given);
        let ctx = Context { features: &self.features, schema: &self.schema, answer: &self.answer, file: &files };
        let mut fault = resolve_one(&parsed, id as usize, &ctx, &self.segments, &mut params)
            .map_err(|(field, message)| bad(&field, message))?;
        fault.start_us = 0;
        fault.end_us = u64::MAX;
        let serves = match &fault.kind {
            Kind::SpecSwitch { spec: file } => {
                let given = spec.get("spec").and_then(|v| v.as_str()).unwrap_or_default();
                let p = Pipeline::from_file(file, &self.schema, Some(&self.features))
                    .map_err(|e| bad("spec", format!("{given}: {}", e.message)))?;
                cutover_migration::features::switchable(&self.pipeline, &p)
                    .map_err(|m| bad("spec", format!("{given}: {m}")))?;
                Some(Serves::Spec(Arc::new(p)))
            }
            Kind::ModelArtifact { artifact } => {
                // Said without the file's content or its path on this machine.
                let given = spec.get("artifact").and_then(|v| v.as_str()).unwrap_or_default();
                let m = cutover_models::xgboost::load_file(artifact)
                    .map_err(|_| bad("artifact", format!("{given}: not an XGBoost model this stack can read")))?;
                if m.feature_names() != self.features.as_slice() || m.objective() != self.model.objective() {
                    return Err(bad("artifact", format!("{given}: its features or objective differ from the stack's")));
                }
                Some(Serves::Model(Arc::new(m)))
            }
            Kind::RuntimeDrift if !self.single_output => {
                return Err(bad(
                    "kind",
                    "runtime_drift scores through the gbdt crate: single-output models only".into(),
                ))
            }
            Kind::RuntimeDrift => Some(Serves::Runtime(Arc::from(
                scorer(&self.model, Runtime::GbdtUnmappedMissing, "new stack")
                    .map_err(|e| bad("kind", e.to_string()))?,
            ))),
            _ => None,
        };
        let view = FaultView { id, kind: fault.kind.name().into(), spec: spec.clone() };
        let mut active = self.active.write().unwrap_or_else(|e| e.into_inner());
        if active.len() >= MAX_ACTIVE_FAULTS {
            return Err(bad(
                "body",
                format!("{MAX_ACTIVE_FAULTS} faults are active: clear some first (DELETE /admin/faults)"),
            ));
        }
        active.push(LiveFault { id, fault, spec, serves, injected: std::time::Instant::now() });
        self.down.send_replace(active.iter().any(|f| f.fault.kind == Kind::StackDown));
        Ok(view)
    }

    /// Clears one fault (`Some(id)`) or all; how many were cleared.
    pub fn clear(&self, id: Option<u64>) -> usize {
        let mut active = self.active.write().unwrap_or_else(|e| e.into_inner());
        let before = active.len();
        active.retain(|f| id.is_some_and(|id| f.id != id));
        self.down.send_replace(active.iter().any(|f| f.fault.kind == Kind::StackDown));
        before - active.len()
    }

    /// The faults active now.
    pub fn list(&self) -> Vec<FaultView> {
        let active = self.active.read().unwrap_or_else(|e| e.into_inner());
        active.iter().map(|f| FaultView { id: f.id, kind: f.fault.kind.name().into(), spec: f.spec.clone() }).collect()
    }

    /// The faults that touch `request` (by segment and fraction, keyed by its id), with
    /// their id and what they score with if anything.
    pub fn hitting(&self, request: &Record) -> Vec<Hit> {
        let active = self.active.read().unwrap_or_else(|e| e.into_inner());
        if active.is_empty() {
            return Vec::new();
        }
        let mut segs = vec![0; self.segments.dims() + 1];
        self.segments.of(request, &mut segs);
        active
            .iter()
            .filter(|f| {
                let since_us = u64::try_from(f.injected.elapsed().as_micros()).unwrap_or(u64::MAX);
                f.fault.hits(self.seed, request.id, &segs, since_us)
            })
            .map(|f| (f.id, f.fault.kind.clone(), f.serves.clone()))
            .collect()
    }

    /// The faults active now: their ids and what they do.
    pub fn active(&self) -> Vec<(u64, Kind)> {
        let active = self.active.read().unwrap_or_else(|e| e.into_inner());
        active.iter().map(|f| (f.id, f.fault.kind.clone())).collect()
    }

    /// Whether the stack should be down (a `stack_down` fault is active), as it changes.
    pub fn down(&self) -> tokio::sync::watch::Receiver<bool> {
        self.down.subscribe()
    }

    /// The seed its draws come from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Which new stack its faults act on.
    pub fn face(&self) -> Face {
        self.face
    }

    /// The migration's answer.
    pub fn answer(&self) -> &Answer {
        &self.answer
    }

    /// Whether any fault is active.
    pub fn is_empty(&self) -> bool {
        self.active.read().unwrap_or_else(|e| e.into_inner()).is_empty()
    }
}

/// Rewrites a JSON request as the request-field faults among `hits` make the new path read
/// it: what a router can do for a team's own service. A number scaled, a value mapped (text
/// matched ignoring ASCII case), a boolean inverted (as JSON or as text), a key removed, a
/// timestamp shifted (epoch numbers in the field's unit, RFC 3339 text keeping its offset).
pub fn rewrite_request(hits: &[Hit], schema: &Schema, body: &mut serde_json::Map<String, serde_json::Value>) {
    use cutover_migration::schema::{Epoch, Value};
    use serde_json::Value as Json;
    let text_of = |v: &Value| match v {
        Value::Text(t) => schema.interner().resolve(t.id),
        Value::Number(x) => Some(x.to_string()),
        _ => None,
    };
    let number = |x: f64| serde_json::Number::from_f64(x).map_or(Json::Null, Json::Number);
    for (_, kind, _) in hits {
        let field = match kind {
            Kind::FieldSkew { field, .. }
            | Kind::FieldMap { field, .. }
            | Kind::FieldInverted { field }
            | Kind::FieldMissing { field }
            | Kind::FieldTimeShift { field, .. } => schema.field(*field),
            _ => continue,
        };
        let Some(value) = body.get_mut(&field.name) else { continue };
        let as_number = |v: &Json| v.as_f64().or_else(|| v.as_str().and_then(|t| t.trim().parse::<f64>().ok()));
        match kind {
            Kind::FieldMissing { .. } => {
                body.remove(&field.name);
            }
            Kind::FieldSkew { scale, offset, .. } => {
                if let Some(x) = as_number(value) {
                    *value = number(x * scale + offset);
                }
            }
            Kind::FieldInverted { .. } => {
                *value = match &*value {
                    Json::Bool(b) => Json::Bool(!b),
                    Json::Number(n) => number(1.0 - n.as_f64().unwrap_or(0.0)),
                    Json::String(t) => Json::String(
                        match t.trim().to_ascii_lowercase().as_str() {
                            "true" => "false",
                            "false" => "true",
                            "1" => "0",
                            "0" => "1",
                            _ => t.as_str(),
                        }
                        .to_string(),
                    ),
                    other => other.clone(),
                };
            }
            Kind::FieldMap { map, .. } => {
                let sent = match &*value {
                    Json::String(t) => Some(t.clone()),
                    Json::Number(n) => n.as_f64().map(|x| x.to_string()),
                    _ => None,
                };
                let Some(sent) = sent else { continue };
                let to = map.iter().find_map(|(from, to)| {
                    let from = text_of(from)?;
                    let same = from.eq_ignore_ascii_case(&sent)
                        || from.parse::<f64>().ok().zip(sent.parse::<f64>().ok()).is_some_and(|(a, b)| a == b);
                    same.then_some(*to)
                });
                match to {
                    Some(Value::Number(x)) => *value = number(x),
                    Some(v @ Value::Text(_)) => *value = Json::String(text_of(&v).unwrap_or_default()),
                    _ => {}
                }
            }
            Kind::FieldTimeShift { shift_ms, .. } => match &*value {
                Json::String(t) => {
                    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(t.trim()) {
                        let shifted = at + chrono::Duration::milliseconds(*shift_ms as i64);
                        *value = Json::String(shifted.to_rfc3339());
                    }
                }
                v => {
                    if let Some(x) = v.as_f64() {
                        let unit = if field.epoch == Epoch::S { 1000.0 } else { 1.0 };
                        *value = number(x + shift_ms / unit);
                    }
                }
            },
            _ => {}
        }
    }
}

/// How long an injected timeout holds a request: far past any caller's budget.
const HELD_MS: u64 = 30_000;

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
        return Err(ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "the stack failed (an injected error)",
        ));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn board(face: Face) -> FaultBoard {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../domain/fraud");
        let m = cutover_migration::Migration::load(&dir).unwrap();
        let (_, new) = m.start_stacks().unwrap();
        FaultBoard::new(face, 1, &m, m.segments().unwrap().clone(), &new)
    }

    /// A fault table of `tag` with every parameter it needs, valid for the fraud folder.
    fn table_of(tag: cutover_sim::faults::Tag, features: &[String]) -> serde_json::Value {
        use cutover_sim::faults::Tag;
        let mut spec = serde_json::json!({"kind": tag.name()});
        for p in tag.def().params.iter().filter(|p| p.required) {
            spec[p.name] = match (p.accepts, tag) {
                (Accepts::Feature, _) => features[0].clone().into(),
                (Accepts::Field, Tag::FieldInverted) => "card_present".into(),
                (Accepts::Field, Tag::FieldTimeShift) => "event_time_ms".into(),
                (Accepts::Field, _) => "amount".into(),
                (Accepts::Artifact, _) => "model_v0.ubj".into(),
                (Accepts::Spec, _) => "drift/new-hour-utc.toml".into(),
                (Accepts::Map, Tag::DecisionLabels) => serde_json::json!({"allow": "block", "block": "allow"}),
                (Accepts::Map, _) => serde_json::json!({"1": 2}),
                _ => 0.5.into(),
            };
        }
        if tag == Tag::LatencyScale {
            spec["p99"] = 3.into();
        }
        spec
    }

    #[test]
    fn each_face_takes_the_kinds_its_definition_says() {
        use cutover_sim::faults::Tag;
        for face in [Face::InProcess, Face::Platform, Face::Service] {
            let b = board(face);
            for tag in Tag::ALL {
                let live = tag.def().live;
                let support = match face {
                    Face::InProcess => live.in_process,
                    Face::Platform => live.platform,
                    Face::Service => live.service,
                };
                match (support, b.inject(table_of(tag, &b.features))) {
                    (Support::Acts, Ok(view)) => assert_eq!(view.kind, tag.name()),
                    (Support::Refused(why), Err(e)) => {
                        assert_eq!(e.field, "kind");
                        assert_eq!(e.message, format!("{}: {why}", tag.name()));
                    }
                    (support, got) => {
                        panic!("{face:?} {}: the definition says {support:?}, the board {:?}", tag.name(), got.err())
                    }
                }
            }
            b.clear(None);
            assert!(b.is_empty());
        }
    }

    #[test]
    fn a_spec_switch_is_checked_before_it_acts() {
        let b = board(Face::InProcess);
        let refused = |spec: &str| b.inject(serde_json::json!({"kind": "spec_switch", "spec": spec})).unwrap_err();
        // The new spec itself changes nothing; legacy's reads other aggregates; no way out.
        let e = refused("new.toml");
        assert!(e.message.contains("would change nothing"), "{e}");
        let e = refused("legacy.toml");
        assert_eq!(e.field, "spec");
        let e = refused("../eta/new.toml");
        assert!(e.message.contains("inside the migration folder"), "{e}");
        assert!(b.inject(serde_json::json!({"kind": "spec_switch", "spec": "fraud-xgb/2"})).is_err(), "its own spec");
        assert!(b.inject(serde_json::json!({"kind": "spec_switch", "spec": "drift/new-hour-utc.toml"})).is_ok());
    }

    #[test]
    fn the_router_rewrites_what_it_sends_a_service_as_the_new_path_would_read_it() {
        let b = board(Face::Service);
        for tag in [cutover_sim::faults::Tag::FieldInverted, cutover_sim::faults::Tag::FieldTimeShift] {
            b.inject(table_of(tag, &b.features)).unwrap();
        }
        b.inject(serde_json::json!({"kind": "field_skew", "field": "amount", "scale": 0.5})).unwrap();
        b.inject(serde_json::json!({"kind": "field_map", "field": "channel", "map": {"web": "app"}})).unwrap();
        b.inject(serde_json::json!({"kind": "field_missing", "field": "device_os"})).unwrap();
        let mut r = b.schema.record();
        r.id = 7;
        let hits = b.hitting(&r);
        assert_eq!(hits.len(), 5);
        let mut body = serde_json::json!({
            "amount": 12.5, "card_present": "true", "event_time_ms": "2026-03-01T10:00:00+01:00",
            "channel": "WEB", "device_os": "ios", "country": "DE"
        });
        rewrite_request(&hits, &b.schema, body.as_object_mut().unwrap());
        assert_eq!(body["amount"], 6.25, "scale 0.5");
        assert_eq!(body["card_present"], "false");
        assert_eq!(body["event_time_ms"], "2026-03-01T10:30:00+01:00", "0.5 h later, its offset kept");
        assert_eq!(body["channel"], "app", "matched ignoring case");
        assert!(body.get("device_os").is_none());
        assert_eq!(body["country"], "DE");
    }
}
