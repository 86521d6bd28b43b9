//! `cutover dataset`: training data from a migration whose traffic source knows the truth
//! (a bundled generator): the legacy path's model rows and the hidden label.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;

use cutover_models::features::Pipeline;
use cutover_models::paths::LegacyRows;

use crate::Failure;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Number of requests to generate.
    #[arg(long, default_value_t = 300_000)]
    requests: u64,
    /// Generator seed.
    #[arg(long, default_value_t = 2026)]
    seed: u64,
    /// Mean request rate; a low rate spreads the requests over more hours.
    #[arg(long, default_value_t = 5.0)]
    rate_rps: f64,
    /// The migration folder (default: the bundled card-fraud one).
    #[arg(long)]
    migration: Option<PathBuf>,
    /// The feature spec whose features the model is trained on (default: the legacy entry's).
    #[arg(long)]
    spec: Option<PathBuf>,
    /// Output CSV: the model features, then `label`.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: &Args) -> Result<(), Failure> {
    if !(args.rate_rps > 0.0 && args.rate_rps.is_finite()) {
        return Err(Failure::BadInput(format!("--rate-rps: must be a positive number, got {}", args.rate_rps)));
    }
    let dir = args.migration.clone().unwrap_or_else(cutover_sim::scenario::bundled_migration_dir);
    let m = cutover_sim::scenario::load_migration(&dir).map_err(|e| Failure::BadInput(e.to_string()))?;
    let spec = match &args.spec {
        Some(p) => p.clone(),
        None => {
            let registry = m.registry();
            let entry = registry.get(m.entries().0).map_err(|e| Failure::BadInput(e.to_string()))?;
            registry.resolve(&entry.feature_spec)
        }
    };
    let pipeline =
        Arc::new(Pipeline::from_file(&spec, m.schema(), None).map_err(|e| Failure::BadInput(e.to_string()))?);
    let source = m.source(args.seed, args.rate_rps).map_err(Failure::BadInput)?;
    if source.label(0, source.start_ms()).is_none() {
        return Err(Failure::BadInput(format!(
            "{}: its traffic ({}) knows no truth to label rows with: train on your recorded labels instead",
            m.file.display(),
            source.name()
        )));
    }
    let write_err = |e: std::io::Error| Failure::BadInput(format!("{}: cannot write: {e}", args.out.display()));
    let mut w = BufWriter::new(std::fs::File::create(&args.out).map_err(write_err)?);
    writeln!(w, "{},label", pipeline.output_names().join(",")).map_err(write_err)?;
    let mut rows = LegacyRows::new(pipeline, m.schedule());
    let mut record = m.schema().record();
    let mut line = String::new();
    for i in 0..args.requests {
        let t = source.time_at_rate(i, args.rate_rps);
        source.fill(i, t, &mut record);
        let label = source.label(i, t).unwrap_or(f64::NAN);
        line.clear();
        for v in rows.next_row(&record) {
            if !v.is_nan() {
                line.push_str(&v.to_string());
            }
            line.push(',');
        }
        line.push_str(&label.to_string());
        writeln!(w, "{line}").map_err(write_err)?;
    }
    w.flush().map_err(write_err)
}
