//! Loading a scenario: its file read, parsed and validated, and its migration folder loaded
//! (once per process: a suite's scenarios share it).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use cutover_migration::Migration;

use crate::faults::{resolve_one, Accepts, Context, Fault};

use super::format::Scenario;
use super::validate::{err, key_position, validate, validate_against};
use super::ScenarioError;

/// A scenario ready to run: validated against its migration, with its file and source.
#[derive(Debug, Clone)]
pub struct LoadedScenario {
    /// The parsed scenario.
    pub scenario: Scenario,
    /// Its file.
    pub path: PathBuf,
    /// Its folder, for relative paths.
    pub base: PathBuf,
    /// The migration it runs.
    pub migration: Arc<Migration>,
    /// Its source, for positions of errors found later.
    pub text: Arc<str>,
}

/// Loads a migration folder once per process (a suite's scenarios share it, and a recorded
/// traffic file is read once).
pub fn load_migration(dir: &Path) -> Result<Arc<Migration>, ScenarioError> {
    static CACHE: Mutex<Vec<(PathBuf, Arc<Migration>)>> = Mutex::new(Vec::new());
    let key = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, m)) = cache.iter().find(|(k, _)| *k == key) {
        return Ok(m.clone());
    }
    let m = Arc::new(Migration::load(dir)?);
    cache.push((key, m.clone()));
    Ok(m)
}

impl LoadedScenario {
    /// Reads, parses and validates a scenario file.
    pub fn read(path: &Path) -> Result<LoadedScenario, ScenarioError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| err(&file, 0, 0, "", format!("cannot read: {e}")))?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        LoadedScenario::parse(&text, &file, path.to_path_buf(), base)
    }

    /// Parses and validates scenario text, loading its migration folder.
    pub fn parse(text: &str, file: &str, path: PathBuf, base: PathBuf) -> Result<LoadedScenario, ScenarioError> {
        let scenario: Scenario = toml::from_str(text).map_err(|e| {
            let (line, column, field, mut message) = cutover_migration::toml_error(text, &e);
            if message.starts_with("unknown field `domain`") {
                message = "`[domain]` is no longer read: a scenario names its migration folder (migration = \"path\"), which declares the registry, entries and answer".into();
            }
            err(file, line, column, &field, message)
        })?;
        validate(&scenario, text, file)?;
        let dir = match &scenario.migration {
            Some(m) => {
                let p = base.join(m);
                if !(p.is_file() || p.join("migration.toml").is_file()) {
                    let (line, column) = key_position(text, "", "migration");
                    return Err(err(
                        file,
                        line,
                        column,
                        "migration",
                        format!("{}: no such migration folder (a folder holding migration.toml)", p.display()),
                    ));
                }
                p
            }
            None => {
                return Err(err(
                    file,
                    1,
                    1,
                    "migration",
                    "missing: a scenario names the migration folder it runs (migration = \"path/to/folder\", relative to the scenario's file; `cutover init` writes one)".into(),
                ))
            }
        };
        let migration = load_migration(&dir)?;
        validate_against(&scenario, &migration, text, file)?;
        Ok(LoadedScenario { scenario, path, base, migration, text: text.into() })
    }

    /// Its faults resolved for one run (ranges drawn from `params`), naming model features
    /// by index.
    pub fn faults(
        &self,
        features: &[String],
        params: &mut rand_chacha::ChaCha8Rng,
    ) -> Result<Vec<Fault>, ScenarioError> {
        let loaded = self;
        let file = loaded.path.display().to_string();
        let m = &loaded.migration;
        let segments = m.segments()?;
        let files = |accepts: Accepts, given: &str| loaded.pinned_file(accepts, given);
        let ctx = Context { features, schema: m.schema(), answer: m.answer(), file: &files };
        let mut out = Vec::new();
        for (k, spanned) in loaded.scenario.faults.iter().enumerate() {
            let fault = resolve_one(spanned.get_ref(), k, &ctx, segments, params).map_err(|(field, message)| {
                let (line, column) = cutover_migration::line_column(&loaded.text, spanned.span().start);
                ScenarioError { file: file.clone(), line, column, field: format!("faults[{k}].{field}"), message }
            })?;
            out.push(fault);
        }
        Ok(out)
    }

    /// The file a fault names: an artifact, or a spec (a registry entry `name/version` of
    /// the migration's registry, or a spec file), relative to the scenario's folder.
    fn pinned_file(&self, accepts: Accepts, given: &str) -> Result<PathBuf, String> {
        let loaded = self;
        if accepts == Accepts::Spec && given.split_once('/').is_some_and(|(_, v)| v.parse::<u32>().is_ok()) {
            let registry = loaded.migration.registry();
            if let Ok(entry) = registry.get(given) {
                return registry.resolve(&entry.feature_spec).map_err(|e| e.to_string());
            }
        }
        let file = loaded.resolve(given);
        if file.is_file() {
            Ok(file)
        } else if accepts == Accepts::Spec {
            Err(format!("{}: neither a registry entry (name/version) nor a spec file", file.display()))
        } else {
            Err(format!("{}: no such file", file.display()))
        }
    }

    /// Per guardrail of the scenario's plan under its own judge, the paired requests after
    /// which the judge can act on it (see [`crate::core::judge::Judge::acts_after`]).
    pub fn acts_after(&self) -> Result<Vec<(crate::core::Guardrail, u64)>, String> {
        let (s, m) = (&self.scenario, &self.migration);
        let (legacy, _) = m.start_stacks()?;
        let segments = m.segments().map_err(|e| e.to_string())?;
        let features = legacy.pipeline().output_names().to_vec();
        let history = crate::core::history::History::discarded();
        let r = crate::core::rollout::Rollout::new(
            &s.plan(),
            s.controller.policy,
            m.answer(),
            &features,
            segments.names(),
            history,
        )?;
        Ok(r.controller.acts_after())
    }

    /// A path from the scenario: relative to the scenario's folder when it exists there,
    /// else to the working directory (where the bundled defaults live).
    pub fn resolve(&self, p: &str) -> PathBuf {
        let candidate = self.base.join(p);
        if Path::new(p).is_absolute() || candidate.exists() {
            candidate
        } else {
            PathBuf::from(p)
        }
    }
}
