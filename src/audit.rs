//! `cutover audit`: the baseline audit of both feature paths, the model and its lineage,
//! as Markdown and JSON.

use std::path::PathBuf;
use std::time::Instant;

use cutover_models::audit::{model_summary, Audit, Latency};
use cutover_models::features::{sha256_hex, Pipeline};
use cutover_models::fraud::{Generator, GeneratorConfig};
use cutover_models::registry::Registry;
use cutover_models::store::{Event, EventLog, Materializer, OnlineStore, Schedule};
use cutover_models::Model;
use hdrhistogram::Histogram;

use crate::Failure;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Audit the stacks a scenario's `[domain]` names (its registry entries' artifact and specs).
    #[arg(long)]
    scenario: Option<PathBuf>,
    /// Write audit.md and audit.json here (default: Markdown on standard output).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The legacy path's feature spec.
    #[arg(long, default_value = "domain/fraud/legacy.toml")]
    legacy_spec: PathBuf,
    /// The new path's feature spec.
    #[arg(long, default_value = "domain/fraud/new.toml")]
    new_spec: PathBuf,
    /// The model artifact.
    #[arg(long, default_value = "domain/fraud/model.ubj")]
    model: PathBuf,
    /// The registry holding the stacks' entries.
    #[arg(long, default_value = "domain/fraud/registry")]
    registry: PathBuf,
    /// Registry entries the legacy and the new stack claim (checked against the files).
    #[arg(long, value_delimiter = ',', default_value = "fraud-xgb/1,fraud-xgb/2")]
    entries: Vec<String>,
    /// Skip the registry check (for specs or models not registered yet).
    #[arg(long)]
    no_lineage: bool,
    /// Generated requests to time the legacy stack over.
    #[arg(long, default_value_t = 20_000)]
    requests: u64,
    /// Generator seed for the timed requests.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

pub fn run(args: &Args) -> Result<(), Failure> {
    let bad = |e: &dyn std::fmt::Display| Failure::BadInput(e.to_string());
    let scenario_args;
    let args = match &args.scenario {
        None => args,
        Some(path) => {
            scenario_args = from_scenario(args, path)?;
            &scenario_args
        }
    };
    let bytes = std::fs::read(&args.model)
        .map_err(|e| Failure::BadInput(format!("{}: cannot read: {e}", args.model.display())))?;
    let model = cutover_models::xgboost::load_bytes(&bytes, &args.model.display().to_string()).map_err(|e| bad(&e))?;
    let legacy = Pipeline::from_file(&args.legacy_spec, Some(model.feature_names())).map_err(|e| bad(&e))?;
    let new = Pipeline::from_file(&args.new_spec, Some(model.feature_names())).map_err(|e| bad(&e))?;

    let registry = Registry::open(&args.registry);
    let mut lineage = Vec::new();
    let claimed = if args.no_lineage { &[][..] } else { &args.entries[..] };
    if claimed.len() > 2 {
        return Err(Failure::BadInput(format!("--entries: at most two (legacy, new), got {}", claimed.len())));
    }
    for (id, spec) in claimed.iter().zip([&args.legacy_spec, &args.new_spec]) {
        let entry = registry.get(id).map_err(|e| bad(&e))?;
        if let Err(mismatch) = registry.verify(&entry, &args.model, spec).map_err(|e| bad(&e))? {
            return Err(Failure::Unmet(mismatch.to_string()));
        }
        lineage.push(entry);
    }
    if args.requests == 0 {
        return Err(Failure::BadInput("--requests: must be at least 1".into()));
    }
    let latency = time_legacy_stack(&legacy, &model, args.requests, args.seed);
    let summary = model_summary(&model, &args.model.display().to_string(), &sha256_hex(&bytes));
    let audit = Audit::new(
        (&legacy, &args.legacy_spec.display().to_string()),
        (&new, &args.new_spec.display().to_string()),
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

/// Times the legacy stack (features from its own customer table, then the model) per
/// request on the wall clock, after a warm-up, into an HDR histogram.
fn time_legacy_stack(legacy: &Pipeline, model: &Model, requests: u64, seed: u64) -> Latency {
    let generator = Generator::with_config(seed, GeneratorConfig { rate_rps: 2.0, ..GeneratorConfig::default() });
    let mut table = Materializer::new(Schedule::default());
    let mut log = EventLog::new();
    let mut values = legacy.values();
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds");
    let warm_up = 2_000;
    for i in 0..warm_up + requests {
        let request = generator.request(i);
        let start = Instant::now();
        table.advance_to(request.event_time_ms, &log);
        legacy.compute(&request, table.get(request.customer_id), &mut values);
        let score = model.predict_one(&values.row);
        let elapsed = start.elapsed().as_nanos() as u64;
        std::hint::black_box(score);
        if i >= warm_up {
            histogram.saturating_record(elapsed.max(1));
        }
        log.append(Event::of(&request));
    }
    let us = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    Latency { requests, p50_us: us(0.5), p95_us: us(0.95), p99_us: us(0.99), max_us: histogram.max() as f64 / 1000.0 }
}

/// The arguments a scenario's `[domain]` implies: its registry and the two entries' files.
fn from_scenario(args: &Args, path: &std::path::Path) -> Result<Args, Failure> {
    let bad = |e: &dyn std::fmt::Display| Failure::BadInput(e.to_string());
    let loaded = cutover_sim::LoadedScenario::read(path).map_err(|e| bad(&e))?;
    let d = &loaded.scenario.domain;
    let registry_path = loaded.resolve(&d.registry);
    let registry = Registry::open(&registry_path);
    let legacy = registry.get(&d.legacy_entry).map_err(|e| bad(&e))?;
    let new = registry.get(&d.new_entry).map_err(|e| bad(&e))?;
    Ok(Args {
        scenario: None,
        out: args.out.clone(),
        legacy_spec: registry.resolve(&legacy.feature_spec),
        new_spec: registry.resolve(&new.feature_spec),
        model: registry.resolve(&legacy.artifact),
        registry: registry_path,
        entries: vec![d.legacy_entry.clone(), d.new_entry.clone()],
        no_lineage: false,
        requests: args.requests,
        seed: args.seed,
    })
}
