//! A file-based model registry, in the spirit of MLflow's file store: a folder per model
//! name holding one JSON manifest per version. Each entry pins its artifact and the
//! feature spec it expects by sha256, names its training data's hash and its parent, and
//! has a stage. A stack that claims an entry must present exactly those bytes: a wrong
//! artifact or spec is caught before any traffic moves.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::features::sha256_hex;

/// Where an entry stands in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Being evaluated (shadow, canary).
    Staging,
    /// Serving users.
    Production,
    /// Retired.
    Archived,
}

impl Stage {
    /// Parses `staging`, `production` or `archived`.
    pub fn from_name(s: &str) -> Option<Stage> {
        Some(match s {
            "staging" => Stage::Staging,
            "production" => Stage::Production,
            "archived" => Stage::Archived,
            _ => return None,
        })
    }
}

/// One registered model version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Model name.
    pub name: String,
    /// Version, from 1.
    pub version: u32,
    /// The artifact's path, relative to the registry folder.
    pub artifact: String,
    /// sha256 of the artifact's bytes.
    pub sha256: String,
    /// `json` or `ubjson`.
    pub format: String,
    /// XGBoost objective.
    pub objective: String,
    /// The model's features, in order.
    pub feature_names: Vec<String>,
    /// The feature spec it expects, relative to the registry folder.
    pub feature_spec: String,
    /// sha256 of that spec's bytes.
    pub feature_spec_sha256: String,
    /// sha256 of the training data, when known.
    pub training_data_sha256: Option<String>,
    /// The xgboost version that saved the artifact.
    pub xgboost_version: String,
    /// The entry it derives from, as `name/version`.
    pub parent: Option<String>,
    /// Its stage.
    pub stage: Stage,
}

impl Entry {
    /// `name/version`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.name, self.version)
    }
}

/// Why the registry could not be used.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A file could not be read or written.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A manifest is not valid.
    #[error("{path}:{line}:{column}: {message}")]
    Manifest {
        /// The manifest.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// No such entry.
    #[error("{registry}: no entry `{id}` (known: {known})")]
    NotFound {
        /// The registry folder.
        registry: PathBuf,
        /// The id asked for.
        id: String,
        /// The ids there are.
        known: String,
    },
    /// An id is not `name/version`.
    #[error("`{0}` is not a registry id (expected name/version, for example fraud-xgb/1)")]
    BadId(String),
}

/// A hash that does not match what the registry pins.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{entry}: {what} sha256 differs: the registry pins {expected}, {path} has {actual}")]
pub struct LineageMismatch {
    /// The entry claimed.
    pub entry: String,
    /// `model artifact` or `feature spec`.
    pub what: &'static str,
    /// The file checked.
    pub path: String,
    /// What the registry pins.
    pub expected: String,
    /// What the file hashes to.
    pub actual: String,
}

/// A registry folder.
#[derive(Debug, Clone)]
pub struct Registry {
    root: PathBuf,
    /// The folders an entry's files may be in: the one that holds the registry, and the
    /// migration folder when a migration opened it.
    within: Vec<PathBuf>,
}

impl Registry {
    /// The registry in `root` (created on the first `add`); its entries' files must be in
    /// the folder that holds it.
    pub fn open(root: &Path) -> Registry {
        let holder = root.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        Registry { root: root.to_path_buf(), within: vec![holder.to_path_buf()] }
    }

    /// Also lets its entries' files be in `dir` (the migration folder that uses it).
    pub fn within(mut self, dir: &Path) -> Registry {
        self.within.push(dir.to_path_buf());
        self
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Every entry, by name and version.
    pub fn list(&self) -> Result<Vec<Entry>, RegistryError> {
        let mut entries = Vec::new();
        let Ok(names) = std::fs::read_dir(&self.root) else {
            return Ok(entries);
        };
        let mut dirs: Vec<PathBuf> = names.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_dir()).collect();
        dirs.sort();
        for dir in dirs {
            let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
                .map_err(|e| io(&dir, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect();
            files.sort();
            for f in files {
                entries.push(read_manifest(&f)?);
            }
        }
        entries.sort_by(|a, b| (&a.name, a.version).cmp(&(&b.name, b.version)));
        Ok(entries)
    }

    /// The entry `name/version`.
    pub fn get(&self, id: &str) -> Result<Entry, RegistryError> {
        let (name, version) = parse_id(id)?;
        let path = self.manifest_path(name, version);
        if !path.exists() {
            let known = self.list()?.iter().map(Entry::id).collect::<Vec<_>>().join(", ");
            return Err(RegistryError::NotFound { registry: self.root.clone(), id: id.to_string(), known });
        }
        read_manifest(&path)
    }

    fn manifest_path(&self, name: &str, version: u32) -> PathBuf {
        self.root.join(name).join(format!("{version}.json"))
    }

    /// A path stored in an entry, resolved against the registry folder: it must be
    /// relative and, with every link followed, lead to a file inside the folder that holds
    /// the registry (or the migration folder), so that no entry reads a file elsewhere.
    pub fn resolve(&self, relative: &str) -> Result<PathBuf, RegistryError> {
        let path = self.root.join(relative);
        let refuse = |message: String| RegistryError::Io { path: path.clone(), message };
        if Path::new(relative).is_absolute() || relative.is_empty() {
            return Err(refuse(format!(
                "`{}`: an entry's file must be a path relative to the registry",
                cutover_models::shown(relative)
            )));
        }
        let real = std::fs::canonicalize(&path).map_err(|e| refuse(e.to_string()))?;
        let inside = self.within.iter().filter_map(|d| std::fs::canonicalize(d).ok()).any(|d| real.starts_with(d));
        if !inside {
            let folders: Vec<String> = self.within.iter().map(|d| d.display().to_string()).collect();
            return Err(refuse(format!(
                "`{}` leads outside {}: an entry's files stay inside the migration's folders",
                cutover_models::shown(relative),
                folders.join(" and ")
            )));
        }
        Ok(path)
    }

    /// Writes `entry` as the next version of its name (its `version` is set here).
    pub fn add(&self, mut entry: Entry) -> Result<Entry, RegistryError> {
        let next = self.list()?.iter().filter(|e| e.name == entry.name).map(|e| e.version).max().unwrap_or(0) + 1;
        entry.version = next;
        if let Some(parent) = &entry.parent {
            self.get(parent)?;
        }
        let path = self.manifest_path(&entry.name, next);
        std::fs::create_dir_all(path.parent().expect("has a parent")).map_err(|e| io(&path, e))?;
        let mut text = serde_json::to_string_pretty(&entry).expect("entries serialize");
        text.push('\n');
        std::fs::write(&path, text).map_err(|e| io(&path, e))?;
        Ok(entry)
    }

    /// Rewrites an existing entry's manifest (its name and version stay).
    pub fn replace(&self, entry: &Entry) -> Result<(), RegistryError> {
        self.get(&entry.id())?;
        let path = self.manifest_path(&entry.name, entry.version);
        let mut text = serde_json::to_string_pretty(entry).expect("entries serialize");
        text.push('\n');
        std::fs::write(&path, text).map_err(|e| io(&path, e))
    }

    /// Checks that the artifact and spec files hash to what `entry` pins.
    pub fn verify(
        &self,
        entry: &Entry,
        artifact: &Path,
        spec: &Path,
    ) -> Result<Result<(), LineageMismatch>, RegistryError> {
        for (what, path, expected) in
            [("model artifact", artifact, &entry.sha256), ("feature spec", spec, &entry.feature_spec_sha256)]
        {
            let bytes = std::fs::read(path).map_err(|e| io(path, e))?;
            let actual = sha256_hex(&bytes);
            if &actual != expected {
                return Ok(Err(LineageMismatch {
                    entry: entry.id(),
                    what,
                    path: path.display().to_string(),
                    expected: expected.clone(),
                    actual,
                }));
            }
        }
        Ok(Ok(()))
    }

    /// Checks an entry against the files it names itself.
    pub fn verify_in_place(&self, entry: &Entry) -> Result<Result<(), LineageMismatch>, RegistryError> {
        self.verify(entry, &self.resolve(&entry.artifact)?, &self.resolve(&entry.feature_spec)?)
    }
}

fn parse_id(id: &str) -> Result<(&str, u32), RegistryError> {
    let (name, version) = id.rsplit_once('/').ok_or_else(|| RegistryError::BadId(id.to_string()))?;
    let version = version.parse::<u32>().ok().filter(|&v| v > 0).ok_or_else(|| RegistryError::BadId(id.to_string()))?;
    if name.is_empty() || name.contains(['/', '\\', '.']) {
        return Err(RegistryError::BadId(id.to_string()));
    }
    Ok((name, version))
}

fn read_manifest(path: &Path) -> Result<Entry, RegistryError> {
    let text = std::fs::read_to_string(path).map_err(|e| io(path, e))?;
    let entry: Entry = serde_json::from_str(&text).map_err(|e| RegistryError::Manifest {
        path: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
        message: e.to_string().split(" at line ").next().unwrap_or("invalid").to_string(),
    })?;
    let hashes = [
        ("sha256", Some(&entry.sha256)),
        ("feature_spec_sha256", Some(&entry.feature_spec_sha256)),
        ("training_data_sha256", entry.training_data_sha256.as_ref()),
    ];
    for (field, hash) in hashes {
        if let Some(h) = hash {
            if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
                let key = format!("\"{field}\"");
                let (line, column) = text.find(&key).map_or((0, 0), |i| crate::error::line_column(&text, i));
                return Err(RegistryError::Manifest {
                    path: path.to_path_buf(),
                    line,
                    column,
                    message: format!("field `{field}`: \"{h}\" is not a lower-case hex sha256"),
                });
            }
        }
    }
    Ok(entry)
}

fn io(path: &Path, e: std::io::Error) -> RegistryError {
    RegistryError::Io { path: path.to_path_buf(), message: e.to_string() }
}
