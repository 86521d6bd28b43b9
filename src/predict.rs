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
    if let Some(ignored) = reader.ignored_summary() {
        eprintln!("cutover: notice: {}: ignoring {ignored} (not model features)", args.input.display());
    }
    let output = if args.margin { Output::Margin } else { Output::Prediction };
    let header = model.output_columns(output).join(",");
    let Some(path) = &args.output else {
        let write_err = |e: std::io::Error| Failure::BadInput(format!("standard output: cannot write: {e}"));
        let mut w = BufWriter::with_capacity(1 << 16, std::io::stdout());
        return score_all(reader, scorer.as_ref(), &header, output, &mut w, write_err);
    };
    let write_err = |e: std::io::Error| Failure::BadInput(format!("{}: cannot write: {e}", path.display()));
    match output_target(path).map_err(write_err)? {
        Target::Through => {
            // A pipe, a device or a dangling link: written through, as a shell redirection
            // would, never replaced.
            let file =
                std::fs::OpenOptions::new().write(true).create(true).truncate(true).open(path).map_err(write_err)?;
            let mut w = BufWriter::with_capacity(1 << 16, file);
            score_all(reader, scorer.as_ref(), &header, output, &mut w, write_err)
        }
        Target::Replace { file: target, mode } => {
            // Written beside the target and renamed over it at the end, so a failure never
            // leaves a truncated file that looks complete.
            let (partial, file) = partial_beside(&target).map_err(write_err)?;
            if let Some(mode) = mode {
                let _ = file.set_permissions(mode);
            }
            let mut w = BufWriter::with_capacity(1 << 16, file);
            let result = score_all(reader, scorer.as_ref(), &header, output, &mut w, write_err)
                .and_then(|()| w.into_inner().map_err(|e| write_err(e.into_error())).map(drop))
                .and_then(|()| std::fs::rename(&partial, &target).map_err(write_err));
            if result.is_err() {
                let _ = std::fs::remove_file(&partial);
            }
            result
        }
    }
}

/// How `--output PATH` is written.
#[derive(Debug, PartialEq)]
enum Target {
    /// Atomically: a new file renamed over `file` (PATH itself, or the regular file a
    /// symbolic link at PATH leads to, so the link stays), keeping its permissions.
    Replace { file: PathBuf, mode: Option<std::fs::Permissions> },
    /// Opened and written in place: a named pipe, a device, a dangling link.
    Through,
}

fn output_target(path: &std::path::Path) -> std::io::Result<Target> {
    use std::io::{Error, ErrorKind};
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => {
            let file = if std::fs::symlink_metadata(path)?.file_type().is_symlink() {
                std::fs::canonicalize(path)?
            } else {
                path.to_path_buf()
            };
            Ok(Target::Replace { file, mode: Some(m.permissions()) })
        }
        Ok(m) if m.is_dir() => Err(Error::new(ErrorKind::IsADirectory, "is a directory")),
        Ok(_) => Ok(Target::Through),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            if std::fs::symlink_metadata(path).is_ok() {
                Ok(Target::Through)
            } else {
                Ok(Target::Replace { file: path.to_path_buf(), mode: None })
            }
        }
        Err(e) => Err(e),
    }
}

/// A new file beside `target`, created exclusively (never through a link someone left
/// at the name): `TARGET.partial`, or `TARGET.PID.partial` when that name is taken.
fn partial_beside(target: &std::path::Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    let names =
        [format!("{}.partial", target.display()), format!("{}.{}.partial", target.display(), std::process::id())];
    let mut last = None;
    for name in names {
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&name) {
            Ok(f) => return Ok((PathBuf::from(name), f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free name for the partial file")))
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
