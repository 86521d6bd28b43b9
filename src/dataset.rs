//! `cutover dataset`: training data for the reference model, from the bundled domain.

use std::io::{BufWriter, Write};
use std::path::PathBuf;

use cutover_models::features::Pipeline;
use cutover_models::fraud::{Generator, GeneratorConfig};
use cutover_models::paths::TrainingRows;
use cutover_models::store::Schedule;

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
    /// The legacy feature spec whose features the model is trained on.
    #[arg(long, default_value = "domain/fraud/legacy.toml")]
    spec: PathBuf,
    /// Output CSV: the model features, then `label`.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: &Args) -> Result<(), Failure> {
    if !(args.rate_rps > 0.0 && args.rate_rps.is_finite()) {
        return Err(Failure::BadInput(format!("--rate-rps: must be a positive number, got {}", args.rate_rps)));
    }
    let pipeline = Pipeline::from_file(&args.spec, None).map_err(|e| Failure::BadInput(e.to_string()))?;
    let generator =
        Generator::with_config(args.seed, GeneratorConfig { rate_rps: args.rate_rps, ..GeneratorConfig::default() });
    let write_err = |e: std::io::Error| Failure::BadInput(format!("{}: cannot write: {e}", args.out.display()));
    let mut w = BufWriter::new(std::fs::File::create(&args.out).map_err(write_err)?);
    writeln!(w, "{},label", pipeline.output_names().join(",")).map_err(write_err)?;
    let mut rows = TrainingRows::new(&pipeline, &generator, args.requests, Schedule::default());
    let mut line = String::new();
    while let Some((row, fraud)) = rows.next_row() {
        line.clear();
        for v in row {
            if !v.is_nan() {
                line.push_str(&v.to_string());
            }
            line.push(',');
        }
        line.push(if fraud { '1' } else { '0' });
        writeln!(w, "{line}").map_err(write_err)?;
    }
    w.flush().map_err(write_err)
}
