//! `cutover predict --model FILE --input CSV [--output CSV] [--margin] [--runtime R]`.

use std::io::{BufWriter, Write};
use std::path::PathBuf;

use cutover_models::rows::RowReader;
use cutover_models::{runtime, Output, Runtime};

use crate::Failure;

/// Rows read, scored and written at a time.
const BATCH_ROWS: usize = 4096;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// XGBoost model saved by `Booster.save_model` (JSON or UBJSON).
    #[arg(long, value_name = "FILE")]
    model: PathBuf,
    /// CSV with a header of feature names; empty, `NA` or `NaN` is missing.
    #[arg(long, value_name = "CSV")]
    input: PathBuf,
    /// Where to write the predictions (default: standard output).
    #[arg(long, value_name = "CSV")]
    output: Option<PathBuf>,
    /// Print the raw margin instead of the transformed prediction.
    #[arg(long)]
    margin: bool,
    /// Runtime that scores: `xgboost` (exact), `gbdt`, or `gbdt-unmapped-missing`.
    #[arg(long, default_value = "xgboost", value_parser = parse_runtime)]
    runtime: Runtime,
}

fn parse_runtime(s: &str) -> Result<Runtime, String> {
    Runtime::from_name(s)
        .ok_or_else(|| format!("unknown runtime `{s}` (expected xgboost, gbdt or gbdt-unmapped-missing)"))
}

pub fn run(args: &Args) -> Result<(), Failure> {
    let bad = |e: &dyn std::fmt::Display| Failure::BadInput(e.to_string());
    let model = cutover_models::xgboost::load_file(&args.model).map_err(|e| bad(&e))?;
    let origin = args.model.display().to_string();
    let scorer = runtime::scorer(&model, args.runtime, &origin).map_err(|e| bad(&e))?;
    let mut reader = RowReader::open(&args.input, model.feature_names()).map_err(|e| bad(&e))?;
    if !reader.ignored_columns().is_empty() {
        eprintln!(
            "cutover: notice: {}: ignoring columns that are not model features: {}",
            args.input.display(),
            reader.ignored_columns().join(", ")
        );
    }
    let output = if args.margin { Output::Margin } else { Output::Prediction };
    let sink: Box<dyn Write> = match &args.output {
        Some(path) => {
            let f = std::fs::File::create(path)
                .map_err(|e| Failure::BadInput(format!("{}: cannot write: {e}", path.display())))?;
            Box::new(f)
        }
        None => Box::new(std::io::stdout().lock()),
    };
    let out_name = args.output.as_ref().map_or("standard output".to_string(), |p| p.display().to_string());
    let write_err = |e: std::io::Error| Failure::BadInput(format!("{out_name}: cannot write: {e}"));
    let mut w = BufWriter::with_capacity(1 << 16, sink);
    writeln!(w, "{}", model.output_columns(output).join(",")).map_err(write_err)?;

    let width = scorer.output_width(output);
    let mut rows = Vec::with_capacity(BATCH_ROWS * model.num_features());
    let mut scores = Vec::with_capacity(BATCH_ROWS * width);
    let mut line = Vec::with_capacity(64);
    loop {
        let n = reader.read_batch(&mut rows, BATCH_ROWS).map_err(|e| bad(&e))?;
        if n == 0 {
            break;
        }
        scores.clear();
        scores.resize(n * width, 0.0);
        scorer.score_batch(&rows, output, &mut scores);
        for row in scores.chunks(width) {
            line.clear();
            for (k, v) in row.iter().enumerate() {
                if k > 0 {
                    line.push(b',');
                }
                // Display prints the shortest decimal that reads back as the same f32.
                write!(line, "{v}").expect("writing to a Vec");
            }
            line.push(b'\n');
            w.write_all(&line).map_err(write_err)?;
        }
    }
    w.flush().map_err(write_err)
}
