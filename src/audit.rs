//! `cutover audit`: the baseline audit of a migration: both feature paths, the model and
//! its lineage, and the legacy stack's latency, as Markdown and JSON.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use cutover_migration::audit::{model_summary, Audit, Latency};
use cutover_migration::features::{sha256_hex, Pipeline};
use cutover_migration::paths::LegacyRows;
use cutover_migration::Migration;
use cutover_models::Model;
use hdrhistogram::Histogram;

use crate::Failure;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Audit the migration a scenario runs.
    #[arg(long, conflicts_with = "migration")]
    scenario: Option<PathBuf>,
    /// The migration folder.
    #[arg(long)]
    migration: Option<PathBuf>,
    /// Write audit.md and audit.json here (default: Markdown on standard output).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Another legacy feature spec than the legacy entry's (the registry check then names it).
    #[arg(long)]
    legacy_spec: Option<PathBuf>,
    /// Another new feature spec than the new entry's.
    #[arg(long)]
    new_spec: Option<PathBuf>,
    /// Another model artifact than the legacy entry's.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Skip the registry check (for specs or models not registered yet).
    #[arg(long)]
    no_lineage: bool,
    /// Requests of the migration's traffic to time the legacy stack over.
    #[arg(long, default_value_t = 20_000)]
    requests: u64,
    /// Seed of the timed requests.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn migration(args: &Args) -> Result<Arc<Migration>, Failure> {
    let bad = |e: &dyn std::fmt::Display| Failure::BadInput(e.to_string());
    match (&args.scenario, &args.migration) {
        (Some(path), _) => Ok(cutover_sim::LoadedScenario::read(path).map_err(|e| bad(&e))?.migration),
        (None, Some(dir)) => cutover_sim::scenario::load_migration(dir).map_err(|e| bad(&e)),
        (None, None) => Err(crate::migration_dir(None, ", or --scenario FILE naming it").unwrap_err()),
    }
}

pub fn run(args: &Args) -> Result<(), Failure> {
    let bad = |e: &dyn std::fmt::Display| Failure::BadInput(e.to_string());
    if args.requests == 0 {
        return Err(Failure::BadInput("--requests: must be at least 1".into()));
    }
    let m = migration(args)?;
    let registry = m.registry();
    let (legacy_id, new_id) = m.entries();
    let legacy_entry = registry.get(legacy_id).map_err(|e| bad(&e))?;
    let new_entry = registry.get(new_id).map_err(|e| bad(&e))?;
    let given_or = |given: &Option<PathBuf>, stored: &str| match given {
        Some(p) => Ok(p.clone()),
        None => registry.resolve(stored).map_err(|e| bad(&e)),
    };
    let model_path = given_or(&args.model, &legacy_entry.artifact)?;
    let legacy_spec = given_or(&args.legacy_spec, &legacy_entry.feature_spec)?;
    let new_spec = given_or(&args.new_spec, &new_entry.feature_spec)?;
    let bytes = cutover_models::xgboost::read_model_file(&model_path)
        .map_err(|e| Failure::BadInput(format!("{}: cannot read: {e}", model_path.display())))?;
    let model = cutover_models::xgboost::load_bytes(&bytes, &model_path.display().to_string()).map_err(|e| bad(&e))?;
    m.answer().check_model(&model).map_err(|e| Failure::BadInput(format!("{}: {e}", model_path.display())))?;
    let legacy = Pipeline::from_file(&legacy_spec, m.schema(), Some(model.feature_names())).map_err(|e| bad(&e))?;
    let new = Pipeline::from_file(&new_spec, m.schema(), Some(model.feature_names())).map_err(|e| bad(&e))?;

    let mut lineage = Vec::new();
    if !args.no_lineage {
        for (entry, spec) in [(&legacy_entry, &legacy_spec), (&new_entry, &new_spec)] {
            let artifact = if entry.id() == legacy_entry.id() {
                model_path.clone()
            } else {
                registry.resolve(&entry.artifact).map_err(|e| bad(&e))?
            };
            if let Err(mismatch) = registry.verify(entry, &artifact, spec).map_err(|e| bad(&e))? {
                return Err(Failure::Unmet(mismatch.to_string()));
            }
            lineage.push(entry.clone());
        }
    }
    let latency = time_legacy_stack(&m, Arc::new(legacy.clone()), &model, args.requests, args.seed)?;
    let summary = model_summary(&model, &model_path.display().to_string(), &sha256_hex(&bytes));
    let audit = Audit::new(
        (&legacy, &legacy_spec.display().to_string()),
        (&new, &new_spec.display().to_string()),
        summary,
        lineage,
        latency,
    );
    let markdown = audit.markdown();
    match &args.out {
        None => print!("{markdown}"),
        Some(dir) => {
            let write = |name: &str, text: String| {
                let path = dir.join(name);
                std::fs::write(&path, text)
                    .map_err(|e| Failure::BadInput(format!("{}: cannot write: {e}", path.display())))
            };
            std::fs::create_dir_all(dir)
                .map_err(|e| Failure::BadInput(format!("{}: cannot create: {e}", dir.display())))?;
            write("audit.md", markdown)?;
            write("audit.json", serde_json::to_string_pretty(&audit).expect("the audit serializes") + "\n")?;
            println!(
                "audit: {} semantic spec difference(s); legacy p99 {:.2} µs; wrote {}",
                audit.spec_differences.len(),
                audit.legacy_latency.p99_us,
                dir.display()
            );
        }
    }
    Ok(())
}

/// Times the legacy stack (features from its own entity table, then the model) per request
/// of the migration's traffic on the wall clock, after a warm-up, into an HDR histogram.
fn time_legacy_stack(
    m: &Migration,
    legacy: Arc<Pipeline>,
    model: &Model,
    requests: u64,
    seed: u64,
) -> Result<Latency, Failure> {
    let source = m.source(seed, 2.0).map_err(Failure::BadInput)?;
    let mut rows = LegacyRows::new(legacy, m.schedule());
    let answer = m.answer();
    let mut out = vec![0.0f32; answer.width()];
    let mut record = m.schema().record();
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds");
    let warm_up = 2_000;
    for i in 0..warm_up + requests {
        source.fill(i, source.time_at_rate(i, 2.0), &mut record);
        let start = Instant::now();
        let row = rows.next_row(&record);
        answer.score(model, row, &mut out);
        let elapsed = start.elapsed().as_nanos() as u64;
        std::hint::black_box(&out);
        if i >= warm_up {
            histogram.saturating_record(elapsed.max(1));
        }
    }
    let us = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    Ok(Latency {
        requests,
        p50_us: us(0.5),
        p95_us: us(0.95),
        p99_us: us(0.99),
        max_us: histogram.max() as f64 / 1000.0,
    })
}
