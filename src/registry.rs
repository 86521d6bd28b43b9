//! `cutover registry list | show | add | verify`.

use std::path::{Component, Path, PathBuf};

use cutover_migration::features::{sha256_hex, Pipeline};
use cutover_migration::registry::{Entry, Registry, Stage};

use crate::Failure;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The migration folder whose registry (and request schema, for specs) is meant.
    #[arg(long, global = true)]
    migration: Option<PathBuf>,
    /// Another registry folder than the migration's.
    #[arg(long, global = true)]
    registry: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// List every entry.
    List,
    /// Print one entry's manifest.
    Show {
        /// `name/version`, for example fraud-xgb/1.
        id: String,
    },
    /// Register a model artifact with the feature spec it expects, as the next version.
    Add {
        /// Model name.
        #[arg(long)]
        name: String,
        /// The XGBoost model file.
        #[arg(long)]
        model: PathBuf,
        /// The feature spec it expects.
        #[arg(long)]
        spec: PathBuf,
        /// A training record (training.json) whose `data.sha256` is the training data's hash.
        #[arg(long)]
        training_record: Option<PathBuf>,
        /// The entry it derives from, `name/version`.
        #[arg(long)]
        parent: Option<String>,
        /// `staging`, `production` or `archived`.
        #[arg(long, default_value = "staging", value_parser = parse_stage)]
        stage: Stage,
    },
    /// Pin an entry to its feature spec as the file now reads (after defining what
    /// `cutover init` left as placeholders, or correcting an inferred feature): the spec
    /// must compile against the schema and the model, and the artifact must be unchanged.
    Repin {
        /// `name/version`.
        id: String,
    },
    /// Check that the artifact and spec hash to what the entry pins.
    Verify {
        /// `name/version`.
        id: String,
        /// Check this model file instead of the entry's own.
        #[arg(long)]
        model: Option<PathBuf>,
        /// Check this spec instead of the entry's own.
        #[arg(long)]
        spec: Option<PathBuf>,
    },
}

fn parse_stage(s: &str) -> Result<Stage, String> {
    Stage::from_name(s).ok_or_else(|| format!("unknown stage `{s}` (expected staging, production or archived)"))
}

pub fn run(args: &Args) -> Result<(), Failure> {
    let bad = |e: &dyn std::fmt::Display| Failure::BadInput(e.to_string());
    let dir = crate::migration_dir(args.migration.as_ref(), "")?;
    let migration = cutover_sim::scenario::load_migration(&dir).map_err(|e| bad(&e))?;
    let registry = match &args.registry {
        Some(r) => Registry::open(r),
        None => migration.registry(),
    };
    match &args.command {
        Command::List => {
            let entries = registry.list().map_err(|e| bad(&e))?;
            println!(
                "{:<16} {:<11} {:<14} {:<16} {:<16} parent",
                "entry", "stage", "objective", "sha256", "spec sha256"
            );
            for e in entries {
                println!(
                    "{:<16} {:<11} {:<14} {:<16} {:<16} {}",
                    e.id(),
                    format!("{:?}", e.stage).to_lowercase(),
                    e.objective,
                    &e.sha256[..12],
                    &e.feature_spec_sha256[..12],
                    e.parent.as_deref().unwrap_or("-")
                );
            }
            Ok(())
        }
        Command::Show { id } => {
            let entry = registry.get(id).map_err(|e| bad(&e))?;
            println!("{}", serde_json::to_string_pretty(&entry).expect("entries serialize"));
            Ok(())
        }
        Command::Add { name, model, spec, training_record, parent, stage } => {
            let entry = describe(
                &registry,
                migration.schema(),
                name,
                model,
                spec,
                training_record.as_deref(),
                parent.clone(),
                *stage,
            )?;
            let entry = registry.add(entry).map_err(|e| bad(&e))?;
            println!("registered {} ({}, sha256 {})", entry.id(), entry.artifact, entry.sha256);
            Ok(())
        }
        Command::Repin { id } => {
            let mut entry = registry.get(id).map_err(|e| bad(&e))?;
            let artifact = registry.resolve(&entry.artifact).map_err(|e| bad(&e))?;
            let bytes = cutover_models::xgboost::read_model_file(&artifact)
                .map_err(|e| Failure::BadInput(format!("{}: cannot read: {e}", artifact.display())))?;
            if sha256_hex(&bytes) != entry.sha256 {
                return Err(Failure::BadInput(format!(
                    "{id}: the artifact {} is not the one the entry pins: register it as a new version (`cutover registry add`)",
                    artifact.display()
                )));
            }
            let spec = registry.resolve(&entry.feature_spec).map_err(|e| bad(&e))?;
            let spec_bytes =
                std::fs::read(&spec).map_err(|e| Failure::BadInput(format!("{}: cannot read: {e}", spec.display())))?;
            Pipeline::from_file(&spec, migration.schema(), Some(&entry.feature_names)).map_err(|e| bad(&e))?;
            let new = sha256_hex(&spec_bytes);
            if new == entry.feature_spec_sha256 {
                println!("{id}: already pinned to {} ({})", spec.display(), &new[..12]);
                return Ok(());
            }
            let old = std::mem::replace(&mut entry.feature_spec_sha256, new.clone());
            registry.replace(&entry).map_err(|e| bad(&e))?;
            println!("{id}: feature spec {} repinned, sha256 {} -> {}", spec.display(), &old[..12], &new[..12]);
            Ok(())
        }
        Command::Verify { id, model, spec } => {
            let entry = registry.get(id).map_err(|e| bad(&e))?;
            let resolve = |p: &str| registry.resolve(p).map_err(|e| bad(&e));
            let model = match model {
                Some(m) => m.clone(),
                None => resolve(&entry.artifact)?,
            };
            let spec = match spec {
                Some(s) => s.clone(),
                None => resolve(&entry.feature_spec)?,
            };
            match registry.verify(&entry, &model, &spec).map_err(|e| bad(&e))? {
                Ok(()) => {
                    println!("{}: model artifact and feature spec match the registry", entry.id());
                    Ok(())
                }
                Err(mismatch) => Err(Failure::Unmet(mismatch.to_string())),
            }
        }
    }
}

/// Builds the manifest of a model and spec, validating both.
#[allow(clippy::too_many_arguments)]
fn describe(
    registry: &Registry,
    schema: &std::sync::Arc<cutover_migration::schema::Schema>,
    name: &str,
    model_path: &Path,
    spec_path: &Path,
    training_record: Option<&Path>,
    parent: Option<String>,
    stage: Stage,
) -> Result<Entry, Failure> {
    let bad = |e: &dyn std::fmt::Display| Failure::BadInput(e.to_string());
    if name.is_empty() || name.contains(['/', '\\', '.']) {
        return Err(Failure::BadInput(format!("--name: `{name}` must be a plain name (no `/`, `\\` or `.`)")));
    }
    let bytes = cutover_models::xgboost::read_model_file(model_path)
        .map_err(|e| Failure::BadInput(format!("{}: cannot read: {e}", model_path.display())))?;
    let model = cutover_models::xgboost::load_bytes(&bytes, &model_path.display().to_string()).map_err(|e| bad(&e))?;
    let spec_bytes = std::fs::read(spec_path)
        .map_err(|e| Failure::BadInput(format!("{}: cannot read: {e}", spec_path.display())))?;
    Pipeline::from_file(spec_path, schema, Some(model.feature_names())).map_err(|e| bad(&e))?;
    let training_data_sha256 = match training_record {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Failure::BadInput(format!("{}: cannot read: {e}", path.display())))?;
            let record: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| Failure::BadInput(format!("{}:{}:{}: {e}", path.display(), e.line(), e.column())))?;
            let hash = record["data"]["sha256"].as_str().filter(|h| h.len() == 64);
            Some(
                hash.ok_or_else(|| {
                    Failure::BadInput(format!("{}: field `data.sha256`: missing or not a sha256", path.display()))
                })?
                .to_string(),
            )
        }
    };
    let (major, minor, patch) = model.version();
    Ok(Entry {
        name: name.to_string(),
        version: 0,
        artifact: relative_to(registry.root(), model_path)?,
        sha256: sha256_hex(&bytes),
        format: cutover_models::xgboost::format_name(&bytes).to_string(),
        objective: model.objective().name().to_string(),
        feature_names: model.feature_names().to_vec(),
        feature_spec: relative_to(registry.root(), spec_path)?,
        feature_spec_sha256: sha256_hex(&spec_bytes),
        training_data_sha256,
        xgboost_version: format!("{major}.{minor}.{patch}"),
        parent,
        stage,
    })
}

/// `path` relative to `base`, with `/` separators (both made absolute first).
fn relative_to(base: &Path, path: &Path) -> Result<String, Failure> {
    let abs = |p: &Path| -> Result<PathBuf, Failure> {
        let p = if p.is_absolute() {
            p.to_path_buf()
        } else {
            std::env::current_dir().map_err(|e| Failure::BadInput(e.to_string()))?.join(p)
        };
        Ok(p.components().fold(PathBuf::new(), |mut acc, c| {
            match c {
                Component::ParentDir => {
                    acc.pop();
                }
                Component::CurDir => {}
                c => acc.push(c),
            }
            acc
        }))
    };
    let (base, path) = (abs(base)?, abs(path)?);
    let common = base.components().zip(path.components()).take_while(|(a, b)| a == b).count();
    let ups = base.components().count() - common;
    let mut parts: Vec<String> = vec!["..".to_string(); ups];
    parts.extend(path.components().skip(common).map(|c| c.as_os_str().to_string_lossy().into_owned()));
    Ok(parts.join("/"))
}
