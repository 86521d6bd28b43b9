//! `cutover predict --model FILE --input CSV [--output CSV] [--margin] [--runtime R]`.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::mpsc;

use cutover_models::rows::RowReader;
use cutover_models::{runtime, Output, Runtime, Scorer};

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
    let reader = RowReader::open(&args.input, model.feature_names()).map_err(|e| bad(&e))?;
    if !reader.ignored_columns().is_empty() {
        eprintln!(
            "cutover: notice: {}: ignoring columns that are not model features: {}",
            args.input.display(),
            reader.ignored_columns().join(", ")
        );
    }
    let output = if args.margin { Output::Margin } else { Output::Prediction };
    let header = model.output_columns(output).join(",");
    let Some(path) = &args.output else {
        let write_err = |e: std::io::Error| Failure::BadInput(format!("standard output: cannot write: {e}"));
        let mut w = BufWriter::with_capacity(1 << 16, std::io::stdout());
        return score_all(reader, scorer.as_ref(), &header, output, &mut w, write_err);
    };
    // Write beside the target and rename at the end, so a failure never leaves a
    // truncated file that looks complete.
    let partial = PathBuf::from(format!("{}.partial", path.display()));
    let write_err = |e: std::io::Error| Failure::BadInput(format!("{}: cannot write: {e}", path.display()));
    let file = std::fs::File::create(&partial).map_err(write_err)?;
    let mut w = BufWriter::with_capacity(1 << 16, file);
    let result = score_all(reader, scorer.as_ref(), &header, output, &mut w, write_err)
        .and_then(|()| w.into_inner().map_err(|e| write_err(e.into_error())).map(drop))
        .and_then(|()| std::fs::rename(&partial, path).map_err(write_err));
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

/// Reads, scores and writes every row: parsing on one thread, scoring and writing on
/// this one, since the two halves take about as long.
fn score_all<R: std::io::Read + Send>(
    mut reader: RowReader<R>,
    scorer: &dyn Scorer,
    header: &str,
    output: Output,
    w: &mut impl Write,
    write_err: impl Fn(std::io::Error) -> Failure,
) -> Result<(), Failure> {
    let bad = |e: &dyn std::fmt::Display| Failure::BadInput(e.to_string());
    writeln!(w, "{header}").map_err(&write_err)?;
    let width = scorer.output_width(output);
    let features = scorer.num_features();
    std::thread::scope(|scope| {
        let (full_tx, full_rx) = mpsc::sync_channel::<(usize, Vec<f32>)>(2);
        let (empty_tx, empty_rx) = mpsc::channel::<Vec<f32>>();
        for _ in 0..3 {
            let _ = empty_tx.send(Vec::with_capacity(BATCH_ROWS * features));
        }
        let parser = scope.spawn(move || -> Result<(), Failure> {
            while let Ok(mut rows) = empty_rx.recv() {
                let n = reader.read_batch(&mut rows, BATCH_ROWS).map_err(|e| bad(&e))?;
                if n == 0 || full_tx.send((n, rows)).is_err() {
                    break;
                }
            }
            Ok(())
        });
        let mut scores = Vec::with_capacity(BATCH_ROWS * width);
        let mut line = Vec::with_capacity(64);
        let mut written = Ok(());
        for (n, rows) in full_rx {
            scores.clear();
            scores.resize(n * width, 0.0);
            scorer.score_batch(&rows, output, &mut scores);
            let _ = empty_tx.send(rows);
            written = write_rows(w, &scores, width, &mut line).map_err(&write_err);
            if written.is_err() {
                break;
            }
        }
        drop(empty_tx);
        parser.join().expect("the parser thread does not panic")?;
        written
    })?;
    w.flush().map_err(write_err)
}

/// Writes scores, `width` per line; Display prints the shortest decimal that reads back as the same f32.
fn write_rows(w: &mut impl Write, scores: &[f32], width: usize, line: &mut Vec<u8>) -> std::io::Result<()> {
    for row in scores.chunks(width) {
        line.clear();
        for (k, v) in row.iter().enumerate() {
            if k > 0 {
                line.push(b',');
            }
            write!(line, "{v}")?;
        }
        line.push(b'\n');
        w.write_all(line)?;
    }
    Ok(())
}
