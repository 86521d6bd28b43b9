//! A migration folder: everything cutover knows about one service's migration, in files.
//! `migration.toml` at its root declares the request schema, the segments, the answer,
//! the shadow context, the registry and the two entries the stacks claim (each naming its
//! model artifact and feature spec), the store's schedule, and the traffic source. Every
//! face of cutover reads a migration through this one type.
//!
//! ```toml
//! name = "delivery-eta"
//! description = "ETA model moving to the feature platform"
//!
//! [request]                        # see `schema`
//! id = "order_id"
//! entity = "courier_id"
//! time = "placed_at"
//! fields = [ ... ]
//!
//! [[segment]]                      # see `segments`
//! field = "city"
//!
//! [answer]                         # see `answer`
//! kind = "regression"
//! tolerance = 1.0
//!
//! [shadow]
//! context = ["vehicle"]            # fields a shadow call can lose (optional fields)
//!
//! [registry]
//! path = "registry"
//! legacy = "eta-xgb/1"
//! new = "eta-xgb/2"
//!
//! [store]                          # the materialization schedule of both paths' aggregates
//! interval_s = 900
//!
//! [traffic]
//! source = "recorded"              # or "generator", with `generator = "card-fraud"`
//! file = "requests.csv"
//! ```

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use serde::Deserialize;
use toml::Spanned;

use crate::answer::{Answer, AnswerDef};
use crate::error::{line_column, FieldError};
use crate::recorded::Format;
use crate::registry::Registry;
use crate::schema::{RequestDef, Schema};
use crate::segments::{SegmentDef, Segments};
use crate::stack::ScoringStack;
use crate::stacks::{StackDecl, Stacks, StacksDef};
use crate::store::Schedule;
use crate::traffic::{self, RecordedFile, Resampler, SharedSource};

/// The file at a migration folder's root.
pub const FILE: &str = "migration.toml";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct MigrationFile {
    name: String,
    #[serde(default)]
    description: String,
    request: RequestDef,
    #[serde(default, rename = "segment")]
    segments: Vec<SegmentDef>,
    answer: Spanned<AnswerDef>,
    #[serde(default)]
    shadow: ShadowDef,
    registry: RegistryDef,
    #[serde(default)]
    store: StoreDef,
    traffic: Spanned<TrafficDef>,
    #[serde(default)]
    stacks: StacksDef,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShadowDef {
    #[serde(default)]
    context: Vec<Spanned<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistryDef {
    path: Spanned<String>,
    legacy: Spanned<String>,
    new: Spanned<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreDef {
    #[serde(default = "d_interval")]
    interval_s: f64,
    #[serde(default)]
    delay_s: f64,
}

fn d_interval() -> f64 {
    900.0
}

impl Default for StoreDef {
    fn default() -> Self {
        StoreDef { interval_s: d_interval(), delay_s: 0.0 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrafficDef {
    source: String,
    #[serde(default)]
    generator: Option<String>,
    #[serde(default)]
    entities: Option<u64>,
    #[serde(default)]
    file: Option<String>,
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    max_rows: Option<usize>,
}

/// Where requests come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Traffic {
    /// A bundled generator.
    Generator {
        /// Its name.
        name: String,
        /// Its population, when set.
        entities: Option<u64>,
    },
    /// A recorded file, resampled.
    Recorded {
        /// The file.
        file: PathBuf,
        /// Its format (from its name when absent).
        format: Option<Format>,
        /// Rows kept.
        max_rows: usize,
    },
}

/// A loaded, validated migration folder.
#[derive(Debug)]
pub struct Migration {
    /// Its name.
    pub name: String,
    /// What it is.
    pub description: String,
    /// The folder.
    pub dir: PathBuf,
    /// `migration.toml`.
    pub file: PathBuf,
    schema: Arc<Schema>,
    segment_defs: Vec<SegmentDef>,
    segments: OnceLock<Result<Segments, FieldError>>,
    answer: Answer,
    shadow_context: Vec<usize>,
    registry: PathBuf,
    legacy_entry: String,
    new_entry: String,
    schedule: Schedule,
    traffic: Traffic,
    stacks: Stacks,
    recorded: OnceLock<Result<Arc<RecordedFile>, String>>,
    text: String,
}

/// Where an error of `migration.toml` is: a span of its text, the field, and why.
type ErrAt<'a> = dyn Fn(std::ops::Range<usize>, &str, String) -> FieldError + 'a;

/// The `[traffic]` section: a bundled generator, or a recorded file inside the folder.
fn traffic_of(traffic: &Spanned<TrafficDef>, dir: &Path, err: &ErrAt<'_>) -> Result<Traffic, FieldError> {
    let (t, tspan) = (traffic.get_ref(), traffic.span());
    Ok(match t.source.as_str() {
        "generator" => {
            if t.file.is_some() || t.format.is_some() || t.max_rows.is_some() {
                return Err(err(tspan, "traffic.file", "a generator reads no file".into()));
            }
            let name = t
                .generator
                .clone()
                .ok_or_else(|| err(tspan.clone(), "traffic.generator", "name the generator".into()))?;
            if !traffic::GENERATORS.contains(&name.as_str()) {
                return Err(err(
                    tspan,
                    "traffic.generator",
                    format!("no bundled generator `{name}` (generators: {})", traffic::GENERATORS.join(", ")),
                ));
            }
            if t.entities.is_some_and(|n| n == 0 || n > 100_000_000) {
                return Err(err(tspan, "traffic.entities", "must be 1 to 100000000".into()));
            }
            Traffic::Generator { name, entities: t.entities }
        }
        "recorded" => {
            if t.generator.is_some() || t.entities.is_some() {
                return Err(err(tspan, "traffic.generator", "recorded traffic takes `file`, not a generator".into()));
            }
            let f =
                t.file.clone().ok_or_else(|| err(tspan.clone(), "traffic.file", "name the recorded file".into()))?;
            let file = dir.join(&f);
            if !file.is_file() {
                return Err(err(tspan, "traffic.file", format!("{}: no such file", file.display())));
            }
            if !inside(dir, &file) {
                return Err(err(tspan, "traffic.file", outside(&f)));
            }
            let format = match &t.format {
                None => Format::of(&file),
                Some(name) => Some(
                    Format::from_name(name)
                        .ok_or_else(|| err(tspan.clone(), "traffic.format", format!("`{name}` is not csv or jsonl")))?,
                ),
            };
            if format.is_none() {
                return Err(err(
                    tspan,
                    "traffic.format",
                    "cannot tell the file's format: name it .csv or .jsonl, or set format".into(),
                ));
            }
            let max_rows = t.max_rows.unwrap_or(traffic::MAX_ROWS);
            if !(1..=10_000_000).contains(&max_rows) {
                return Err(err(tspan, "traffic.max_rows", "must be 1 to 10000000".into()));
            }
            Traffic::Recorded { file, format, max_rows }
        }
        other => {
            return Err(err(
                tspan,
                "traffic.source",
                format!("`{other}` is not a traffic source (recorded or generator)"),
            ))
        }
    })
}

/// The fields a shadow call can lose (`[shadow] context`): optional request fields.
fn shadow_context_of(shadow: &ShadowDef, schema: &Schema, err: &ErrAt<'_>) -> Result<Vec<usize>, FieldError> {
    let mut shadow_context = Vec::new();
    for (k, c) in shadow.context.iter().enumerate() {
        let at = format!("shadow.context[{k}]");
        let i = schema
            .index(c.get_ref())
            .ok_or_else(|| err(c.span(), &at, format!("`{}` is not a request field", c.get_ref())))?;
        if !schema.field(i).optional {
            return Err(err(
                c.span(),
                &at,
                format!("`{}` is required: a shadow call can only lose optional fields", c.get_ref()),
            ));
        }
        shadow_context.push(i);
    }
    Ok(shadow_context)
}

impl Migration {
    /// Reads a migration folder (or its `migration.toml`).
    pub fn load(path: &Path) -> Result<Migration, FieldError> {
        let (dir, file) = if path.is_dir() {
            (path.to_path_buf(), path.join(FILE))
        } else {
            (path.parent().map(Path::to_path_buf).unwrap_or_default(), path.to_path_buf())
        };
        let name = file.display().to_string();
        let text = std::fs::read_to_string(&file).map_err(|e| FieldError {
            file: name.clone(),
            line: 0,
            column: 0,
            field: String::new(),
            message: format!("cannot read the migration: {e}"),
        })?;
        Migration::parse(&text, &name, &dir)
    }

    /// Parses `migration.toml` text; `file` names it in errors, `dir` resolves its paths.
    pub fn parse(text: &str, file: &str, dir: &Path) -> Result<Migration, FieldError> {
        let err = |span: std::ops::Range<usize>, field: &str, message: String| {
            let (line, column) = if span.end > 0 { line_column(text, span.start) } else { (0, 0) };
            FieldError { file: file.into(), line, column, field: field.into(), message }
        };
        let m: MigrationFile = toml::from_str(text).map_err(|e| {
            let (line, column, field, message) = crate::toml_error(text, &e);
            FieldError { file: file.into(), line, column, field, message }
        })?;
        let schema = Arc::new(Schema::compile(&m.request, text, file)?);
        let answer = Answer::compile(m.answer.get_ref()).map_err(|(f, msg)| err(m.answer.span(), &f, msg))?;
        let mut stacks = m.stacks.compile(text, file, &schema)?;
        for decl in [&mut stacks.legacy, &mut stacks.new] {
            if let StackDecl::Platform(p) = decl {
                if let Some(r) = p.model_server.repository.as_mut().filter(|r| r.is_relative()) {
                    *r = dir.join(&*r);
                }
            }
        }
        let shadow_context = shadow_context_of(&m.shadow, &schema, &err)?;
        let s = &m.store;
        if !(s.interval_s.is_finite() && s.interval_s >= 1.0 && s.interval_s <= 86400.0 * 7.0) {
            return Err(err(key_span(text, "interval_s"), "store.interval_s", "must be 1 s to 7 days".into()));
        }
        if !(s.delay_s.is_finite() && s.delay_s >= 0.0 && s.delay_s < s.interval_s * 100.0) {
            return Err(err(key_span(text, "delay_s"), "store.delay_s", "must be 0 or more (and not absurd)".into()));
        }
        let schedule = Schedule { interval_ms: (s.interval_s * 1000.0) as i64, delay_ms: (s.delay_s * 1000.0) as i64 };
        let traffic = traffic_of(&m.traffic, dir, &err)?;
        let registry = dir.join(m.registry.path.get_ref());
        if !registry.is_dir() {
            return Err(err(
                m.registry.path.span(),
                "registry.path",
                format!("{}: no such folder", registry.display()),
            ));
        }
        if !inside(dir, &registry) {
            return Err(err(m.registry.path.span(), "registry.path", outside(m.registry.path.get_ref())));
        }
        let migration = Migration {
            name: m.name,
            description: m.description,
            dir: dir.to_path_buf(),
            file: PathBuf::from(file),
            schema,
            segment_defs: m.segments,
            segments: OnceLock::new(),
            answer,
            shadow_context,
            registry,
            legacy_entry: m.registry.legacy.get_ref().clone(),
            new_entry: m.registry.new.get_ref().clone(),
            schedule,
            traffic,
            stacks,
            recorded: OnceLock::new(),
            text: text.to_string(),
        };
        // Segments with their values declared are checked now; learned ones need traffic.
        if migration.segment_defs.iter().all(|d| d.values.is_some() || d.buckets.is_some()) {
            migration.segments()?;
        }
        Ok(migration)
    }

    /// The bundled card-fraud migration (for tests and benches).
    pub fn bundled_fraud() -> Result<Migration, FieldError> {
        Migration::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../domain/fraud"))
    }

    /// The request schema.
    pub fn schema(&self) -> &Arc<Schema> {
        &self.schema
    }

    /// The answer.
    pub fn answer(&self) -> &Answer {
        &self.answer
    }

    /// Fields a shadow call can lose.
    pub fn shadow_context(&self) -> &[usize] {
        &self.shadow_context
    }

    /// The store's schedule.
    pub fn schedule(&self) -> Schedule {
        self.schedule
    }

    /// The traffic source as declared.
    pub fn traffic(&self) -> &Traffic {
        &self.traffic
    }

    /// The stacks as declared (`[stacks.legacy]`, `[stacks.new]`; in-process unless set).
    pub fn stacks(&self) -> &Stacks {
        &self.stacks
    }

    /// The registry.
    pub fn registry(&self) -> Registry {
        Registry::open(&self.registry).within(&self.dir)
    }

    /// The registry folder.
    pub fn registry_dir(&self) -> &Path {
        &self.registry
    }

    /// The entries the legacy and new stacks claim.
    pub fn entries(&self) -> (&str, &str) {
        (&self.legacy_entry, &self.new_entry)
    }

    /// The segments, compiled once (values a dimension does not list are learned from a
    /// fixed sample of the traffic).
    pub fn segments(&self) -> Result<&Segments, FieldError> {
        let compiled = self.segments.get_or_init(|| {
            let needs_sample = self.segment_defs.iter().any(|d| d.values.is_none() && d.buckets.is_none());
            let sample = if needs_sample {
                self.source(0, 1.0).map_err(|m| self.error("traffic", m))?.reference(5000)
            } else {
                Vec::new()
            };
            Segments::compile(&self.segment_defs, &self.schema, &sample).map_err(|(k, field, message)| {
                let span = nth_table(&self.text, "[[segment]]", k);
                let (line, column) = line_column(&self.text, span);
                FieldError { file: self.file.display().to_string(), line, column, field, message }
            })
        });
        compiled.as_ref().map_err(Clone::clone)
    }

    fn error(&self, field: &str, message: String) -> FieldError {
        FieldError { file: self.file.display().to_string(), line: 0, column: 0, field: field.into(), message }
    }

    /// Starts both stacks from the registry, checking that their models give the declared
    /// answer; errors are one line naming what failed.
    pub fn start_stacks(&self) -> Result<(ScoringStack, ScoringStack), String> {
        let registry = self.registry();
        let start = |which: &str, id: &str| -> Result<ScoringStack, String> {
            let s =
                ScoringStack::start_entry(&registry, id, &self.schema).map_err(|e| format!("{which} stack: {e}"))?;
            self.answer
                .check_model(s.model())
                .map_err(|e| format!("{which} stack ({id}): {}: {e}", self.file.display()))?;
            Ok(s)
        };
        let (legacy, new) = (start("legacy", &self.legacy_entry)?, start("new", &self.new_entry)?);
        for (which, decl, stack) in [("legacy", &self.stacks.legacy, &legacy), ("new", &self.stacks.new, &new)] {
            if let StackDecl::Platform(p) = decl {
                let fs = &p.feature_server;
                fs.references(stack.pipeline()).map_err(|message| {
                    let (line, column) = fs.at;
                    let field = format!("stacks.{which}.feature_server.features");
                    FieldError { file: self.file.display().to_string(), line, column, field, message }.to_string()
                })?;
            }
        }
        Ok((legacy, new))
    }

    /// The traffic for one seed at a mean rate.
    pub fn source(&self, seed: u64, rate_rps: f64) -> Result<SharedSource, String> {
        match &self.traffic {
            Traffic::Generator { name, entities } => traffic::generator(name, seed, &self.schema, *entities)
                .map_err(|e| format!("{}: {e}", self.file.display())),
            Traffic::Recorded { .. } => Ok(Arc::new(Resampler::new(self.recorded()?, seed, rate_rps))),
        }
    }

    /// The recorded traffic file, loaded once.
    pub fn recorded(&self) -> Result<Arc<RecordedFile>, String> {
        let Traffic::Recorded { file, format, max_rows } = &self.traffic else {
            return Err(format!("{}: the traffic is generated, not recorded", self.file.display()));
        };
        self.recorded
            .get_or_init(|| {
                RecordedFile::load(file, *format, &self.schema, &self.answer, *max_rows)
                    .map(Arc::new)
                    .map_err(|e| e.to_string())
            })
            .clone()
    }
}

/// The span of `key =` in a text (for semantic errors on plain values).
fn key_span(text: &str, key: &str) -> std::ops::Range<usize> {
    let at = text.find(&format!("\n{key}")).map_or(0, |i| i + 1);
    at..at + key.len()
}

fn nth_table(text: &str, header: &str, k: usize) -> usize {
    text.match_indices(header).nth(k).map_or(0, |(i, _)| i)
}

/// Whether `path`, every link followed, is inside the folder `dir`.
fn inside(dir: &Path, path: &Path) -> bool {
    match (std::fs::canonicalize(dir), std::fs::canonicalize(path)) {
        (Ok(d), Ok(p)) => p.starts_with(d),
        _ => false,
    }
}

fn outside(given: &str) -> String {
    format!(
        "`{}` leads outside the migration folder: everything a migration reads stays inside it",
        cutover_models::shown(given)
    )
}

#[cfg(test)]
mod tests;
