//! `cutover dataset`: training data through the legacy path: the model rows of a
//! migration's requests and their label. Either a team's recorded requests with the outcome
//! in a column of their own (`--from FILE --label COL`), or generated traffic whose source
//! knows the truth (the bundled card-fraud generator).

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;

use cutover_migration::features::Pipeline;
use cutover_migration::paths::LegacyRows;

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
    /// The migration folder.
    #[arg(long)]
    migration: Option<PathBuf>,
    /// The feature spec whose features the model is trained on (default: the legacy entry's).
    #[arg(long)]
    spec: Option<PathBuf>,
    /// Recorded requests (the migration's schema, in time order) instead of generated ones.
    #[arg(long, requires = "label")]
    from: Option<PathBuf>,
    /// The recorded file's column (or key) holding the outcome to learn.
    #[arg(long, requires = "from")]
    label: Option<String>,
    /// Output CSV: the model features, then `label`.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: &Args) -> Result<(), Failure> {
    if !(args.rate_rps > 0.0 && args.rate_rps.is_finite()) {
        return Err(Failure::BadInput(format!("--rate-rps: must be a positive number, got {}", args.rate_rps)));
    }
    let dir = crate::migration_dir(args.migration.as_ref(), "")?;
    let m = cutover_sim::scenario::load_migration(&dir).map_err(|e| Failure::BadInput(e.to_string()))?;
    let spec = match &args.spec {
        Some(p) => p.clone(),
        None => {
            let registry = m.registry();
            let entry = registry.get(m.entries().0).map_err(|e| Failure::BadInput(e.to_string()))?;
            registry.resolve(&entry.feature_spec).map_err(|e| Failure::BadInput(e.to_string()))?
        }
    };
    let pipeline =
        Arc::new(Pipeline::from_file(&spec, m.schema(), None).map_err(|e| Failure::BadInput(e.to_string()))?);
    let write_err = |e: std::io::Error| Failure::BadInput(format!("{}: cannot write: {e}", args.out.display()));
    if let (Some(from), Some(label)) = (&args.from, &args.label) {
        return from_recorded(&m, pipeline, from, label, &args.out);
    }
    let source = m.source(args.seed, args.rate_rps).map_err(Failure::BadInput)?;
    if source.label(0, source.start_ms()).is_none() {
        return Err(Failure::BadInput(format!(
            "{}: its traffic ({}) knows no truth to label rows with: train on your recorded labels instead",
            m.file.display(),
            source.name()
        )));
    }
    let mut w = BufWriter::new(std::fs::File::create(&args.out).map_err(write_err)?);
    writeln!(w, "{},label", pipeline.output_names().join(",")).map_err(write_err)?;
    let mut rows = LegacyRows::new(pipeline, m.schedule());
    let mut record = m.schema().record();
    let mut line = String::new();
    for i in 0..args.requests {
        let t = source.time_at_rate(i, args.rate_rps);
        source.fill(i, t, &mut record);
        let label = source.label(i, t).unwrap_or(f64::NAN);
        push_row(&mut line, rows.next_row(&record), &label.to_string());
        writeln!(w, "{line}").map_err(write_err)?;
    }
    w.flush().map_err(write_err)
}

fn push_row(line: &mut String, row: &[f32], label: &str) {
    line.clear();
    for v in row {
        if !v.is_nan() {
            line.push_str(&v.to_string());
        }
        line.push(',');
    }
    line.push_str(label);
}

/// Training rows from recorded requests: each row's legacy features (its entity's
/// aggregates from the rows before it, on the store's schedule) and its label column.
fn from_recorded(
    m: &cutover_migration::Migration,
    pipeline: Arc<Pipeline>,
    from: &std::path::Path,
    label: &str,
    out: &std::path::Path,
) -> Result<(), Failure> {
    use cutover_migration::recorded::{FieldMap, Format, Reader};
    let bad = |e: &dyn std::fmt::Display| Failure::BadInput(e.to_string());
    let file = from.display().to_string();
    let format = Format::of(from).ok_or_else(|| Failure::BadInput(format!("{file}: name it .csv or .jsonl")))?;
    let mut reader =
        Reader::open(from, Some(format), m.schema(), m.answer(), FieldMap::default()).map_err(|e| bad(&e))?;
    // The label, read beside the records in the same order.
    let labels: Vec<String> = match format {
        Format::Csv => {
            let mut r = csv::Reader::from_path(from).map_err(|e| bad(&format!("{file}: {e}")))?;
            let at = r.headers().map_err(|e| bad(&format!("{file}: {e}")))?.iter().position(|h| h.trim() == label);
            let at = at.ok_or_else(|| Failure::BadInput(format!("{file}:1: field `{label}`: no such column")))?;
            r.records()
                .map(|rec| rec.map(|rec| rec.get(at).unwrap_or("").trim().to_string()))
                .collect::<Result<_, _>>()
                .map_err(|e| bad(&format!("{file}: {e}")))?
        }
        Format::JsonLines => {
            let text = std::fs::read_to_string(from).map_err(|e| bad(&format!("{file}: {e}")))?;
            text.lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| {
                    let v: serde_json::Value = serde_json::from_str(l).unwrap_or_default();
                    v.get(label).map_or(String::new(), |x| x.to_string().trim_matches('"').to_string())
                })
                .collect()
        }
    };
    let write_err = |e: std::io::Error| Failure::BadInput(format!("{}: cannot write: {e}", out.display()));
    let mut w = BufWriter::new(std::fs::File::create(out).map_err(write_err)?);
    writeln!(w, "{},label", pipeline.output_names().join(",")).map_err(write_err)?;
    let mut rows = LegacyRows::new(pipeline, m.schedule());
    let (mut line, mut k, mut last) = (String::new(), 0usize, i64::MIN);
    while let Some(row) = reader.next_row() {
        let r = row.map_err(|e| bad(&e))?;
        if r.record.time_ms < last {
            return Err(Failure::BadInput(format!("{file}:{}: rows must be in time order for the aggregates", r.line)));
        }
        last = r.record.time_ms;
        let y = labels.get(k).map(String::as_str).unwrap_or("");
        if y.parse::<f64>().map_or(true, |v| !v.is_finite()) {
            return Err(Failure::BadInput(format!("{file}:{}: field `{label}`: `{y}` is not a number", r.line)));
        }
        push_row(&mut line, rows.next_row(&r.record), y);
        writeln!(w, "{line}").map_err(write_err)?;
        k += 1;
    }
    w.flush().map_err(write_err)
}
