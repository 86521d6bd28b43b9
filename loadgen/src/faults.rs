//! Faults injected into a live run: the same fault tables as a scenario's `[[faults]]`,
//! validated and resolved by the simulator's code, acting from the moment they are
//! injected until they are cleared. The new stack reads the board for what it changes
//! (features, model, latency, errors, timeouts, its store); the router for the shadow
//! context it drops.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use cutover_models::runtime::{scorer, Runtime, Scorer};
use cutover_models::schema::Record;
use cutover_models::segments::Segments;
use cutover_models::Model;
use cutover_sim::faults::{resolve_one, Fault, FaultSpec, Kind, Support};
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
    /// What it scores with instead of the stack's model, for `model_artifact` and `runtime_drift`.
    pub serves: Option<Serves>,
    /// When it was injected (a `ramp_s` counts from then, on the wall clock).
    pub injected: std::time::Instant,
}

/// What a fault makes the new stack score with.
#[derive(Clone)]
pub enum Serves {
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

/// Which new stack a board's faults act on: what each kind's definition says of it live
/// decides which kinds it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Face {
    /// cutover's own in-process stack.
    InProcess,
    /// The composed Feast + Open Inference Protocol platform.
    Platform,
}

/// The faults active now.
pub struct FaultBoard {
    face: Face,
    seed: u64,
    features: Vec<String>,
    segments: Segments,
    single_output: bool,
    artifacts: ArtifactRoots,
    model: Arc<Model>,
    active: RwLock<Vec<LiveFault>>,
    next_id: std::sync::atomic::AtomicU64,
    down: tokio::sync::watch::Sender<bool>,
}

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
    pub fn of(m: &cutover_models::Migration) -> ArtifactRoots {
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
        let outside = || {
            format!(
                "must be a registry entry (name/version) or a path inside the migration folder {} or its registry",
                self.migration.display()
            )
        };
        let registry = cutover_models::registry::Registry::open(&self.registry).within(&self.migration);
        let entry_id = given.split_once('/').is_some_and(|(name, version)| {
            !name.is_empty() && !name.contains(['/', '\\']) && name != ".." && version.parse::<u32>().is_ok()
        });
        if entry_id {
            if let Ok(entry) = registry.get(given) {
                return registry.resolve(&entry.artifact).map_err(|e| e.to_string());
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
    /// An empty board for a new stack of `face` whose model has `features`, over the
    /// migration's `segments`; `model_artifact` faults read only under `artifacts`.
    pub fn new(
        face: Face,
        seed: u64,
        features: Vec<String>,
        segments: Segments,
        model: Arc<Model>,
        artifacts: ArtifactRoots,
    ) -> FaultBoard {
        FaultBoard {
            face,
            seed,
            features,
            segments,
            single_output: model.objective().num_outputs() == 1 && model.objective().num_groups() == 1,
            artifacts,
            model,
            active: RwLock::new(Vec::new()),
            next_id: std::sync::atomic::AtomicU64::new(1),
            down: tokio::sync::watch::channel(false).0,
        }
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
        if let Some(given) = table.get("artifact") {
            let serde_json::Value::String(given) = given else {
                return Err(bad("artifact", "must be a registry entry (name/version) or a path, as text".into()));
            };
            let file = self.artifacts.resolve(given).map_err(|m| bad("artifact", m))?;
            table.insert("artifact".into(), file.display().to_string().into());
        }
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
        };
        if let Support::Refused(why) = support {
            return Err(bad("kind", format!("{}: {why}", tag.name())));
        }
        let id = self.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut params = rand_chacha::ChaCha8Rng::seed_from_u64(self.seed ^ id);
        // The artifact was resolved above, to a file under the roots.
        let resolve_path = |p: &str| PathBuf::from(p);
        let mut fault = resolve_one(&parsed, id as usize, &self.features, &self.segments, &mut params, &resolve_path)
            .map_err(|(field, message)| bad(&field, message))?;
        fault.start_us = 0;
        fault.end_us = u64::MAX;
        let serves = match &fault.kind {
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

    /// Whether any fault is active.
    pub fn is_empty(&self) -> bool {
        self.active.read().unwrap_or_else(|e| e.into_inner()).is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn board(face: Face) -> FaultBoard {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../domain/fraud");
        let m = cutover_models::Migration::load(&dir).unwrap();
        let model = cutover_models::xgboost::load_file(&dir.join("model.ubj")).unwrap();
        let features = model.feature_names().to_vec();
        FaultBoard::new(face, 1, features, m.segments().unwrap().clone(), Arc::new(model), ArtifactRoots::of(&m))
    }

    #[test]
    fn each_face_takes_the_kinds_its_definition_says() {
        use cutover_sim::faults::Tag;
        for face in [Face::InProcess, Face::Platform] {
            let b = board(face);
            for tag in Tag::ALL {
                let mut spec = serde_json::json!({"kind": tag.name()});
                for p in tag.def().params.iter().filter(|p| p.required) {
                    spec[p.name] = match p.accepts {
                        cutover_sim::faults::Accepts::Feature => b.features[0].clone().into(),
                        cutover_sim::faults::Accepts::Artifact => "model_v0.ubj".into(),
                        _ => 0.5.into(),
                    };
                }
                let live = tag.def().live;
                let support = if face == Face::InProcess { live.in_process } else { live.platform };
                match (support, b.inject(spec)) {
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
}
