//! `cutover init --model FILE --requests FILE --out DIR`: a migration folder from what a
//! team already has, a saved model and a file of recorded requests. The inference rules are
//! `cutover_migration::infer`'s; this file writes the folder (all of it or nothing), checks
//! the legacy path against the recorded answers, and sets the starter library's SLOs from
//! what the sequential judge achieves on this traffic.

pub mod scenarios;
mod write;

use std::path::{Path, PathBuf};

use cutover_migration::answer::AnswerKind;
use cutover_migration::infer::{self, Choices, Plan, Profile};
use cutover_migration::recorded::{FieldMap, Format, Reader};
use cutover_migration::Migration;
use cutover_models::Model;
use cutover_sim::world::replay::record::Recorder;

use crate::Failure;

/// Rows of the recorded file read to infer the schema (the whole file is copied).
const PROFILE_ROWS: u64 = 1_000_000;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The legacy model, as `Booster.save_model` wrote it (JSON or UBJSON).
    #[arg(long)]
    model: PathBuf,
    /// Recorded requests, CSV with a header row or JSON lines, usually with the legacy
    /// service's answers in extra columns.
    #[arg(long)]
    requests: PathBuf,
    /// The migration folder to write (absent, or an empty folder).
    #[arg(long)]
    out: PathBuf,
    /// The request id column.
    #[arg(long)]
    id: Option<String>,
    /// The entity column (sticky routing, per-entity aggregates).
    #[arg(long)]
    entity: Option<String>,
    /// The event time column.
    #[arg(long)]
    time: Option<String>,
    /// The column with the legacy service's score.
    #[arg(long)]
    score: Option<String>,
    /// The column with the legacy service's decision.
    #[arg(long)]
    decision: Option<String>,
    /// The binary decision's threshold (checked against the recorded decisions).
    #[arg(long)]
    threshold: Option<f64>,
    /// The requests file's format: csv or jsonl (by its name otherwise).
    #[arg(long, value_parser = parse_format)]
    format: Option<Format>,
    /// The model's name in the registry (by the model file's name otherwise).
    #[arg(long)]
    name: Option<String>,
    /// The production rate, requests a second, when the recorded file is a sample of it
    /// (the scenarios run at the recorded rate otherwise, within 1 to 400).
    #[arg(long)]
    rate_rps: Option<f64>,
    /// Seeds per scenario when setting the starter library's SLOs.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=200))]
    calibration_seeds: u64,
}

fn parse_format(s: &str) -> Result<Format, String> {
    Format::from_name(s).ok_or_else(|| format!("`{s}` is not a format (csv or jsonl)"))
}

pub fn run(args: &Args) -> Result<(), Failure> {
    let bad = Failure::BadInput;
    if let Some(t) = args.threshold {
        if !t.is_finite() {
            return Err(bad(format!("--threshold: `{t}` is not a finite number")));
        }
    }
    if let Some(r) = args.rate_rps {
        if !(r.is_finite() && (0.1..=5000.0).contains(&r)) {
            return Err(bad(format!("--rate-rps: `{r}` must be 0.1 to 5000 requests a second")));
        }
    }
    check_out(&args.out)?;
    let model_bytes = cutover_models::xgboost::read_model_file(&args.model)
        .map_err(|e| bad(format!("{}: cannot read the model: {e}", args.model.display())))?;
    let model = cutover_models::xgboost::load_bytes(&model_bytes, &args.model.display().to_string())
        .map_err(|e| bad(e.to_string()))?;
    let format = args.format.or_else(|| Format::of(&args.requests)).ok_or_else(|| {
        bad(format!("{}: cannot tell the format: name it .csv or .jsonl, or pass --format", args.requests.display()))
    })?;
    match std::fs::metadata(&args.requests) {
        Ok(m) if m.is_file() => {}
        Ok(_) => return Err(bad(format!("{}: not a file", args.requests.display()))),
        Err(e) => return Err(bad(format!("{}: cannot read: {e}", args.requests.display()))),
    }
    let profile = Profile::read(&args.requests, format, PROFILE_ROWS).map_err(|e| bad(e.to_string()))?;
    let choices = Choices {
        id: args.id.clone(),
        entity: args.entity.clone(),
        time: args.time.clone(),
        score: args.score.clone(),
        decision: args.decision.clone(),
        threshold: args.threshold,
        no_decision: false,
    };
    let mut plan = infer::infer(&profile, &model, &choices).map_err(|e| bad(e.to_string()))?;
    if let Err(refuted) = settle_threshold(&mut plan, &args.requests, format, &model) {
        // A column taken for the decision by its shape alone, which the scores refute, is
        // a request field after all.
        let Some(column) = plan.decision.clone().filter(|_| plan.decision_by_shape) else { return Err(refuted) };
        let choices = Choices { no_decision: true, ..choices };
        plan = infer::infer(&profile, &model, &choices).map_err(|e| bad(e.to_string()))?;
        plan.notes.push(format!(
            "{}: column `{column}` looked like a decision, but no threshold on the score explains it: it stays a request field",
            args.requests.display()
        ));
        settle_threshold(&mut plan, &args.requests, format, &model)?;
    }
    let name = model_name(args)?;
    plan.name = name.clone();

    // Everything goes into a folder beside --out, moved into place only when complete; an
    // interruption (Ctrl-C, SIGTERM) removes it.
    let interrupted = on_interrupt_remove_staging()?;
    let staging = staging_dir(&args.out)?;
    let result = build(args, &staging, &name, &model_bytes, &model, &mut plan, format);
    let outcome = result.and_then(|report| {
        // Held while the folder moves, so an interruption sees it either staged or in place.
        let mut staged = STAGING.lock().unwrap_or_else(|e| e.into_inner());
        if args.out.exists() {
            std::fs::remove_dir(&args.out)
                .map_err(|e| bad(format!("{}: cannot replace the empty folder: {e}", args.out.display())))?;
        }
        std::fs::rename(&staging, &args.out)
            .map_err(|e| bad(format!("{}: cannot move the folder into place: {e}", args.out.display())))?;
        *staged = None;
        Ok(report)
    });
    drop(interrupted);
    let report = match outcome {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    for note in &plan.notes {
        eprintln!("cutover init: {note}");
    }
    print!("{}", report.replace(&staging.display().to_string(), &args.out.display().to_string()));
    Ok(())
}

/// The staging folder being written, which an interruption removes.
static STAGING: std::sync::Mutex<Option<PathBuf>> = std::sync::Mutex::new(None);

/// Catches Ctrl-C and SIGTERM from now on (before the staging folder exists): on either, the
/// staging folder is removed and the process exits 130 (Ctrl-C) or 143 (SIGTERM) with
/// nothing written. The handler lives as long as the returned runtime.
fn on_interrupt_remove_staging() -> Result<std::thread::JoinHandle<()>, Failure> {
    use tokio::signal::unix::{signal, SignalKind};
    let fail = |e: std::io::Error| Failure::BadInput(format!("cannot catch Ctrl-C: {e}"));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(fail)?;
    let (mut int, mut term) = runtime
        .block_on(async {
            Ok::<_, std::io::Error>((signal(SignalKind::interrupt())?, signal(SignalKind::terminate())?))
        })
        .map_err(fail)?;
    Ok(std::thread::spawn(move || {
        let code = runtime.block_on(async {
            tokio::select! {
                _ = int.recv() => 130,
                _ = term.recv() => 143,
            }
        });
        let staged = STAGING.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(dir) = staged.as_ref() {
            let _ = std::fs::remove_dir_all(dir);
            eprintln!("cutover init: interrupted: the folder was not written");
        }
        std::process::exit(code);
    }))
}

/// `--out` may be absent or an empty folder; anything else is refused before any work.
fn check_out(out: &Path) -> Result<(), Failure> {
    match std::fs::symlink_metadata(out) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Failure::BadInput(format!("--out {}: {e}", out.display()))),
        Ok(m) if m.is_dir() => {
            let mut entries =
                std::fs::read_dir(out).map_err(|e| Failure::BadInput(format!("--out {}: {e}", out.display())))?;
            if entries.next().is_some() {
                Err(Failure::BadInput(format!(
                    "--out {}: the folder exists and is not empty (cutover init writes a new folder)",
                    out.display()
                )))
            } else {
                Ok(())
            }
        }
        Ok(_) => Err(Failure::BadInput(format!("--out {}: exists and is not a folder", out.display()))),
    }
}

fn staging_dir(out: &Path) -> Result<PathBuf, Failure> {
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !parent.is_dir() {
        return Err(Failure::BadInput(format!("--out {}: no such folder {}", out.display(), parent.display())));
    }
    let leaf = out.file_name().map_or("migration".into(), |n| n.to_string_lossy().into_owned());
    let dir = parent.join(format!(".{leaf}.init-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // Named for the interruption handler before it exists: an interruption while it is
    // created still removes it.
    *STAGING.lock().unwrap_or_else(|e| e.into_inner()) = Some(dir.clone());
    std::fs::create_dir(&dir).map_err(|e| Failure::BadInput(format!("{}: cannot create: {e}", dir.display())))?;
    Ok(dir)
}

fn model_name(args: &Args) -> Result<String, Failure> {
    if let Some(n) = &args.name {
        if n.is_empty() || !n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(Failure::BadInput(format!("--name `{n}`: letters, digits, `-` and `_` only")));
        }
        return Ok(n.clone());
    }
    let stem = args.model.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let clean: String =
        stem.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' }).collect();
    let clean = clean.trim_matches('-').to_string();
    // A generic `model.json` says nothing: the folder's name is a better one.
    let from_out = args.out.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let from_out: String =
        from_out.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' }).collect();
    let generic = ["", "model", "booster", "xgb", "xgboost"].contains(&clean.to_ascii_lowercase().as_str());
    Ok(match (generic, from_out.trim_matches('-')) {
        (true, o) if !o.is_empty() => o.to_string(),
        (true, _) => "model".into(),
        (false, _) => clean,
    })
}

/// The scenarios' rate: `--rate-rps`, else the recorded rate within 1 to 400 (said on
/// stderr when bounded: a file of a few rows an hour is a sample, not the service's rate).
fn scenario_rate(plan: &mut Plan, given: Option<f64>) -> f64 {
    if let Some(r) = given {
        return r;
    }
    let recorded = plan.rate_rps();
    let rate = recorded.clamp(1.0, 400.0);
    if rate != recorded {
        plan.notes.push(format!(
            "the recording holds {recorded:.3} requests a second: the scenarios run at {rate} (pass --rate-rps for the service's own rate)"
        ));
    }
    (rate * 10.0).round() / 10.0
}

/// The binary threshold from the recorded decisions where a score is recorded too; a
/// probability's 0.5 (a margin's 0) said on stderr where nothing tells.
fn settle_threshold(plan: &mut Plan, requests: &Path, format: Format, model: &Model) -> Result<(), Failure> {
    if plan.kind != AnswerKind::Binary {
        return Ok(());
    }
    match (&plan.score, &plan.decision) {
        (Some(s), Some(d)) => {
            let pairs = infer::answer_pairs(requests, format, s, d, PROFILE_ROWS)
                .map_err(|e| Failure::BadInput(e.to_string()))?;
            let (t, labels) = infer::threshold(&pairs, plan.threshold)
                .map_err(|m| Failure::BadInput(format!("{}: field `{d}`: {m}", requests.display())))?;
            plan.threshold = Some(t);
            plan.labels = labels.to_vec();
        }
        (None, Some(_)) => {} // from the model's own scores, once the folder can score
        (_, None) => {
            if plan.threshold.is_none() {
                let margin = model.objective() == cutover_models::Objective::BinaryLogitRaw;
                let t = if margin { 0.0 } else { 0.5 };
                plan.notes.push(format!(
                    "no recorded decision: the threshold is {t} and the labels `negative` and `positive` (set them in migration.toml's [answer], or pass --threshold)"
                ));
                plan.threshold = Some(t);
            }
            plan.labels = vec!["negative".into(), "positive".into()];
        }
    }
    Ok(())
}

/// Writes the folder into `dir`; returns what to print.
fn build(
    args: &Args,
    dir: &Path,
    name: &str,
    model_bytes: &[u8],
    model: &Model,
    plan: &mut Plan,
    format: Format,
) -> Result<String, Failure> {
    let io = |p: &Path, e: std::io::Error| Failure::BadInput(format!("{}: cannot write: {e}", p.display()));
    let model_file = match cutover_models::xgboost::format_name(model_bytes) {
        "ubjson" => "model.ubj",
        _ => "model.json",
    };
    let requests_file = match format {
        Format::Csv => "requests.csv",
        Format::JsonLines => "requests.jsonl",
    };
    std::fs::write(dir.join(model_file), model_bytes).map_err(|e| io(&dir.join(model_file), e))?;
    std::fs::copy(&args.requests, dir.join(requests_file)).map_err(|e| io(&dir.join(requests_file), e))?;
    let checkpoint = cutover_models::xgboost::earlier_checkpoint(model_bytes, &args.model.display().to_string())
        .map_err(|e| Failure::BadInput(e.to_string()))?;
    std::fs::write(dir.join("model_checkpoint.json"), checkpoint)
        .map_err(|e| io(&dir.join("model_checkpoint.json"), e))?;

    let origin = write::Origin { model: &args.model, requests: &args.requests };
    write::folder(dir, name, plan, model, model_file, requests_file, &origin)?;
    let mut report = String::new();
    let runnable = plan.placeholders().is_empty();
    if runnable {
        let load = || Migration::load(dir).map_err(|e| Failure::BadInput(e.to_string()));
        let m = load()?;
        let mut rows = score_rows(&m)?;
        let mut m = m;
        if settle_from_scores(&m, &rows, plan)? {
            write::migration_toml(dir, name, plan, requests_file, &origin)?;
            m = load()?;
            rows = score_rows(&m)?;
        }
        report += &check_report(&rows, m.answer());
    }
    let rate = scenario_rate(plan, args.rate_rps);
    let drift = write::drift_spec(dir, name, plan, &origin)?;
    let switches = if runnable { spec_switches(dir, drift.as_deref())? } else { Vec::new() };
    let mut library = scenarios::library(plan, model, rate, &switches);
    let calibrated =
        if runnable { Some(scenarios::calibrate(dir, plan, &mut library, args.calibration_seeds)?) } else { None };
    scenarios::write_all(dir, plan, &library, calibrated.as_deref())?;
    scenarios::write_live(dir, plan)?;

    report = format!(
        "wrote {}: migration.toml ({} fields, {} segment dimensions, {:?} answer), legacy.toml and new.toml ({} features{}), registry {name}/1 and {name}/2, {} scenarios\n{report}",
        dir.display(),
        plan.fields.len(),
        plan.segments.len(),
        plan.kind,
        plan.features.len(),
        if runnable { String::new() } else { format!(", {} placeholders", plan.placeholders().len()) },
        library.len(),
    ) + &if runnable {
        format!("then: cutover suite {}/scenarios\n", dir.display())
    } else {
        format!(
            "then: define {} in legacy.toml and new.toml, `cutover registry --migration {} repin {name}/1` and `{name}/2`, and `cutover calibrate {}/scenarios`\n",
            plan.placeholders().iter().map(|p| format!("`{p}`")).collect::<Vec<_>>().join(", "),
            dir.display(),
            dir.display()
        )
    };
    for (s, c) in library.iter().zip(calibrated.iter().flatten()) {
        report += &format!("  {:<28} {}\n", s.name, c.describe());
    }
    Ok(report)
}

type Scored = (u64, f32, Option<u32>, Option<f32>, Option<u32>);

/// Every recorded request through the folder's legacy stack, in order: (line, score,
/// decision, recorded score, recorded decision).
fn score_rows(m: &Migration) -> Result<Vec<Scored>, Failure> {
    let bad = |e: &dyn std::fmt::Display| Failure::BadInput(e.to_string());
    let cutover_migration::folder::Traffic::Recorded { file, format, .. } = m.traffic() else {
        return Err(Failure::BadInput("the traffic is not recorded".into()));
    };
    let mut recorder = Recorder::new(m).map_err(|e| bad(&e))?;
    let mut reader = Reader::open(file, *format, m.schema(), m.answer(), FieldMap::default()).map_err(|e| bad(&e))?;
    let mut rows = Vec::new();
    while let Some(row) = reader.next_row() {
        let r = row.map_err(|e| bad(&e))?;
        let (score, decision) = recorder.answer(&r.record);
        rows.push((r.line, score, decision, r.legacy_score, r.legacy_decision));
    }
    Ok(rows)
}

/// What only the model's own answers tell: multiclass labels in the order of the model's
/// classes, a binary threshold from decisions recorded without a score, a regression's
/// tolerance without recorded answers. True when the plan changed.
fn settle_from_scores(m: &Migration, rows: &[Scored], plan: &mut Plan) -> Result<bool, Failure> {
    let answer = m.answer();
    let file = m.file.display().to_string();
    let column = plan.decision.clone().unwrap_or_default();
    let mut changed = false;
    if answer.kind == AnswerKind::Multiclass && plan.decision.is_some() {
        // labels[k] = the recorded label most often given where the model says class k.
        let k = answer.labels.len();
        let mut counts = vec![vec![0u64; k]; k];
        for &(_, _, d, _, rd) in rows {
            if let (Some(d), Some(rd)) = (d, rd) {
                counts[d as usize][rd as usize] += 1;
            }
        }
        let order: Vec<usize> =
            counts.iter().map(|c| (0..k).max_by_key(|&j| (c[j], std::cmp::Reverse(j))).unwrap_or(0)).collect();
        let mut distinct = order.clone();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() != k {
            return Err(Failure::BadInput(format!(
                "{file}: field `{column}`: the recorded decisions do not follow the model's classes (two classes map to one label)"
            )));
        }
        let labels: Vec<String> = order.iter().map(|&j| answer.labels[j].clone()).collect();
        changed |= labels != plan.labels;
        plan.labels = labels;
    }
    if answer.kind == AnswerKind::Binary && plan.score.is_none() && plan.decision.is_some() {
        let pairs: Vec<(f64, String, u64)> = rows
            .iter()
            .filter_map(|&(line, s, _, _, rd)| rd.map(|d| (f64::from(s), answer.labels[d as usize].clone(), line)))
            .collect();
        let (t, labels) = infer::threshold(&pairs, plan.threshold)
            .map_err(|e| Failure::BadInput(format!("{file}: field `{column}`: {e} (scores: the model's own)")))?;
        plan.threshold = Some(t);
        plan.labels = labels.to_vec();
        changed = true;
    }
    if plan.kind == AnswerKind::Regression && plan.tolerance.is_none() {
        let scores: Vec<f64> = rows.iter().map(|r| f64::from(r.1)).collect();
        plan.tolerance = Some(tolerance_from(&scores));
        changed = true;
    }
    Ok(changed)
}

/// 5 % of the spread between the 1st and 99th percentiles of the answers, two digits.
fn tolerance_from(scores: &[f64]) -> f64 {
    let mut v: Vec<f64> = scores.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return 1.0;
    }
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q) as usize];
    infer::round2((0.05 * (at(0.99) - at(0.01))).max(1e-6))
}

fn check_report(rows: &[Scored], answer: &cutover_migration::answer::Answer) -> String {
    let (mut scored, mut decided) = (0u64, 0u64);
    let mut first: Option<String> = None;
    for &(line, s, d, rs, rd) in rows {
        if let Some(rs) = rs {
            scored += 1;
            if (f64::from(s) - f64::from(rs)).abs() > 1e-6 && first.is_none() {
                first = Some(format!("line {line}: recorded score {rs}, the legacy path gives {s}"));
            }
        }
        if let Some(rd) = rd {
            decided += 1;
            if Some(rd) != d && first.is_none() {
                first = Some(format!(
                    "line {line}: recorded decision `{}`, the legacy path gives `{}`",
                    answer.label(rd),
                    d.map_or("-", |d| answer.label(d))
                ));
            }
        }
    }
    if scored == 0 && decided == 0 {
        return format!(
            "the recorded file holds no legacy answers: `cutover replay` will compare nothing ({} rows scored by the legacy path)\n",
            rows.len()
        );
    }
    match first {
        None => {
            let mut what = Vec::new();
            if scored > 0 {
                what.push(format!("{scored} scores within 1e-6"));
            }
            if decided > 0 {
                what.push(format!("{decided} decisions exactly"));
            }
            format!("the legacy path reproduces the recorded answers: {} over {} rows\n", what.join(", "), rows.len())
        }
        Some(f) => format!(
            "the legacy path differs from the recorded answers, first at {f}: check the feature spec (`cutover replay` reports every difference)\n"
        ),
    }
}

/// The specs the new path could switch to mid-rollout (the same model features and
/// aggregates, something defined otherwise): the drifted spec init wrote (`drift`, relative
/// to the folder) and any registry entry beyond the two stacks', each as a scenario writes
/// it with what it changes: a `spec_switch` scenario for each.
fn spec_switches(dir: &Path, drift: Option<&str>) -> Result<Vec<(String, String)>, Failure> {
    let m = Migration::load(dir).map_err(|e| Failure::BadInput(e.to_string()))?;
    let (legacy, new) = m.start_stacks().map_err(Failure::BadInput)?;
    let registry = m.registry();
    let entries = registry.list().map_err(|e| Failure::BadInput(e.to_string()))?;
    let features = new.pipeline().output_names().to_vec();
    let mut candidates: Vec<(String, PathBuf)> = drift.map(|d| (format!("../{d}"), dir.join(d))).into_iter().collect();
    for entry in entries {
        if [&legacy.entry().id(), &new.entry().id()].contains(&&entry.id()) {
            continue;
        }
        if let Ok(file) = registry.resolve(&entry.feature_spec) {
            candidates.push((entry.id(), file));
        }
    }
    let mut out = Vec::new();
    for (named, file) in candidates {
        let Ok(spec) = cutover_migration::features::Pipeline::from_file(&file, m.schema(), Some(&features)) else {
            continue;
        };
        if let Ok(changes) = cutover_migration::features::switchable(new.pipeline(), &spec) {
            let words: Vec<String> = changes.iter().take(3).map(|d| format!("{} {}", d.feature, d.aspect)).collect();
            out.push((named, words.join(", ")));
        }
    }
    Ok(out)
}
