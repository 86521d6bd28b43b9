//! `cutover replay --requests FILE [--plan SCENARIO.toml] [--out DIR]` and
//! `cutover record --requests N --out FILE`.

use std::io::{BufWriter, Write};
use std::path::PathBuf;

use clap::ColorChoice;
use cutover_loadgen::replay::{replay_http, HttpReplay};
use cutover_sim::core::controller::Decision;
use cutover_sim::core::history::Event;
use cutover_sim::core::verdict::{Expectation, Summary};
use cutover_sim::report::dashboard::ReportData;
use cutover_sim::report::{timeline_of, write_outputs, write_run};
use cutover_sim::world::replay::record::write_recorded;
use cutover_sim::world::replay::{enough_rows, open, replay, Format, ReplayConfig, ReplayError, Replayed};
use cutover_sim::LoadedScenario;
use serde::Serialize;

use crate::{table, Failure};

#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// Recorded requests: CSV with a header row, or JSON lines (by the file's name, or --format).
    #[arg(long)]
    requests: PathBuf,
    /// The file's format: csv or jsonl.
    #[arg(long, value_parser = parse_format)]
    format: Option<Format>,
    /// A field map (TOML) naming the file's own columns for cutover's fields.
    #[arg(long)]
    fields: Option<PathBuf>,
    /// Dry-run this scenario's rollout plan and guardrails on the recorded traffic (its
    /// faults apply too); without it the traffic stays in shadow and the guardrails watch.
    #[arg(long)]
    plan: Option<PathBuf>,
    /// The migration folder whose schema the file holds (or the one `--plan` names).
    #[arg(long)]
    migration: Option<PathBuf>,
    /// Seed of the simulated service times (the plan's otherwise).
    #[arg(long)]
    seed: Option<u64>,
    /// Skip rows that cannot be read, counting them, instead of stopping at the first.
    #[arg(long)]
    skip_bad_rows: bool,
    /// Write summary.json, replay.json, timeline.csv, history.jsonl, parity.json and report.html here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Colour the verdict table: auto, always, never.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    color: ColorChoice,
    /// Send the requests to this legacy service (with --new-url) instead of replaying in process.
    #[arg(long, requires = "new_url")]
    legacy_url: Option<String>,
    /// The new service (with --legacy-url).
    #[arg(long, requires = "legacy_url")]
    new_url: Option<String>,
    /// Send the requests to the stacks the migration folder declares (`[stacks]`: its
    /// team's services on their own APIs, or the composed platform) through the router.
    #[arg(long, conflicts_with_all = ["legacy_url", "new_url"])]
    stacks: bool,
    /// The services' answers' score field.
    #[arg(long, default_value = "score")]
    score_field: String,
    /// The services' answers' decision field (`block`/`allow`, or a boolean).
    #[arg(long, default_value = "decision")]
    decision_field: String,
    /// Ask the services for their model rows (`x-cutover-features: 1`, as cutover's own
    /// stacks answer it) to compare features too.
    #[arg(long)]
    ask_features: bool,
    /// Requests per second sent to the services, at most.
    #[arg(long, default_value_t = 500.0)]
    rate_rps: f64,
    /// Requests in flight, at most (1 keeps the recorded order at the services).
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Scenario seconds per wall second for the plan's clock against services (default:
    /// the recorded pace, --rate-rps over the recorded rate of the first 1 000 rows).
    #[arg(long)]
    time_scale: Option<f64>,
    /// Allow service URLs beyond this machine (loopback only otherwise).
    #[arg(long)]
    allow_remote: bool,
}

#[derive(Debug, clap::Args)]
pub struct RecordArgs {
    /// How many requests.
    #[arg(long)]
    requests: u64,
    /// The file to write (.csv or .jsonl).
    #[arg(long)]
    out: PathBuf,
    /// Generator seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Mean request rate of the recorded traffic.
    #[arg(long, default_value_t = 200.0)]
    rate_rps: f64,
    /// The migration whose traffic and legacy stack are recorded.
    #[arg(long)]
    migration: Option<PathBuf>,
}

fn parse_format(s: &str) -> Result<Format, String> {
    match s {
        "csv" => Ok(Format::Csv),
        "jsonl" | "ndjson" | "json" => Ok(Format::JsonLines),
        _ => Err(format!("unknown format `{s}` (expected csv or jsonl)")),
    }
}

/// replay.json: the rows and the decisions the plan would have taken.
#[derive(Serialize)]
struct ReplayReport<'a> {
    requests: String,
    plan: String,
    rows: &'a cutover_sim::world::replay::Rows,
    baseline: Option<&'a cutover_sim::world::replay::Baseline>,
    decisions: &'a [TimedDecision],
}

fn write_replay_json(
    dir: &std::path::Path,
    args: &ReplayArgs,
    rows: &cutover_sim::world::replay::Rows,
    baseline: Option<&cutover_sim::world::replay::Baseline>,
    decisions: &[TimedDecision],
) -> std::io::Result<()> {
    let report = ReplayReport {
        requests: args.requests.display().to_string(),
        plan: args.plan.as_ref().map_or("(shadow only)".into(), |p| p.display().to_string()),
        rows,
        baseline,
        decisions,
    };
    std::fs::write(dir.join("replay.json"), serde_json::to_string_pretty(&report).expect("serializes") + "\n")
}

#[derive(Serialize)]
struct TimedDecision {
    t_s: f64,
    decision: Decision,
}

/// Every decision that moved the rollout (or refused to hold it), in order.
fn decisions(events: &[Event]) -> Vec<TimedDecision> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Evaluation { t_s, decision, .. }
                if !matches!(decision, Decision::Hold { .. } | Decision::Held { .. }) =>
            {
                Some(TimedDecision { t_s: *t_s, decision: decision.clone() })
            }
            _ => None,
        })
        .collect()
}

pub fn run(args: &ReplayArgs) -> Result<(), Failure> {
    if args.plan.is_none() {
        crate::migration_dir(args.migration.as_ref(), ", or --plan FILE naming it")?;
    }
    let cfg = ReplayConfig {
        requests: args.requests.clone(),
        format: args.format,
        fields: args.fields.clone(),
        skip_bad_rows: args.skip_bad_rows,
        plan: args.plan.clone(),
        migration: args.migration.clone(),
        base: std::env::current_dir().unwrap_or_default(),
        seed: args.seed,
    };
    if let (Some(legacy), Some(new)) = (&args.legacy_url, &args.new_url) {
        return run_http(args, &cfg, Some(legacy), Some(new));
    }
    if args.stacks {
        return run_http(args, &cfg, None, None);
    }
    let Replayed { mut run, rows, acts_after } =
        replay(&cfg).map_err(|e: ReplayError| Failure::BadInput(e.to_string()))?;
    let mut command = format!("cutover replay --requests {}", args.requests.display());
    if let Some(m) = &args.migration {
        command += &format!(" --migration {}", m.display());
    }
    if let Some(p) = &args.plan {
        command += &format!(" --plan {}", p.display());
    }
    command += &format!(" --seed {}", run.summary.seed);
    run.summary.reproduce = command;
    let moves = decisions(&run.events);
    let paired = run.summary.requests_total;
    judged(&mut run.summary, enough_rows(&acts_after, paired, !moves.is_empty()));
    if let Some(dir) = &args.out {
        let err = |e: std::io::Error| Failure::BadInput(format!("{}: cannot write: {e}", dir.display()));
        write_run(dir, &run).map_err(err)?;
        write_replay_json(dir, args, &rows, run.baseline.as_ref(), &moves).map_err(err)?;
    }
    println!(
        "replayed {} rows of {} over {:.0} s of recorded time ({} skipped as unreadable, {} out of order)",
        rows.replayed,
        args.requests.display(),
        run.duration_s,
        rows.skipped,
        rows.out_of_order
    );
    if let Some(first) = &rows.first_skipped {
        println!("first skipped row: {first}");
    }
    for d in &moves {
        println!("t={:>9.1} s  {}", d.t_s, d.decision.describe());
    }
    if moves.is_empty() {
        println!("the plan took no decision beyond holding");
    }
    finish(args, &run.summary)
}

/// Adds an expectation to a replay's summary and takes it into its verdict.
fn judged(summary: &mut Summary, e: Expectation) {
    summary.expectations.push(e);
    summary.passed = summary.expectations.iter().all(|e| e.passed);
}

/// The verdict table and the exit code.
fn finish(args: &ReplayArgs, summary: &Summary) -> Result<(), Failure> {
    print!("{}", table::verdicts(&[summary], table::use_color(args.color)));
    if let Some(dir) = &args.out {
        println!("report: {}", dir.join("report.html").display());
    }
    if summary.passed {
        return Ok(());
    }
    for e in summary.expectations.iter().filter(|e| !e.passed) {
        eprintln!("cutover: {}: {} did not hold: {}", summary.scenario, e.name, e.detail);
    }
    Err(Failure::Unmet(format!("the replay of {} did not meet its expectations", args.requests.display())))
}

/// The recorded rate (requests per recorded second) over the file's first 1 000 rows.
fn recorded_pace(cfg: &ReplayConfig, loaded: &LoadedScenario) -> Option<f64> {
    let m = &loaded.migration;
    let map = match &cfg.fields {
        Some(p) => cutover_sim::world::replay::FieldMap::read(p, m.schema(), m.answer()).ok()?,
        None => cutover_sim::world::replay::FieldMap::default(),
    };
    let mut reader =
        cutover_sim::world::replay::Reader::open(&cfg.requests, cfg.format, m.schema(), m.answer(), map).ok()?;
    let times: Vec<i64> =
        std::iter::from_fn(|| reader.next_row()).take(1000).filter_map(|r| r.ok().map(|r| r.record.time_ms)).collect();
    let span_s = (*times.iter().max()? - *times.iter().min()?) as f64 / 1000.0;
    (span_s > 0.0).then(|| (times.len() - 1) as f64 / span_s)
}

/// Replays against two HTTP services through cutover's router.
fn run_http(args: &ReplayArgs, cfg: &ReplayConfig, legacy: Option<&str>, new: Option<&str>) -> Result<(), Failure> {
    let given = [("--legacy-url", legacy), ("--new-url", new)];
    for (flag, url) in given.iter().filter_map(|(f, u)| u.map(|u| (*f, u))) {
        if !url.starts_with("http://") {
            return Err(Failure::BadInput(format!(
                "{flag}: `{url}` is not an http:// URL (the router speaks plain HTTP to the services)"
            )));
        }
        if !args.allow_remote && !cutover_migration::stacks::is_loopback(url) {
            return Err(Failure::BadInput(format!("{flag}: {}", cutover_migration::stacks::remote_refused(url))));
        }
    }
    if !(args.rate_rps > 0.0 && args.rate_rps <= 100_000.0) {
        return Err(Failure::BadInput(format!("--rate-rps: must be within (0, 100000], got {}", args.rate_rps)));
    }
    if args.concurrency == 0 || args.concurrency > 1024 {
        return Err(Failure::BadInput(format!("--concurrency: must be 1 to 1024, got {}", args.concurrency)));
    }
    let (loaded, feed, handle) = open(cfg).map_err(|e| Failure::BadInput(e.to_string()))?;
    // The services the folder declares go to loopback too, unless allowed (refused before
    // any file is read further).
    let probe = cutover_loadgen::ServeConfig {
        legacy_url: legacy.map(String::from),
        new_url: new.map(String::from),
        allow_remote: args.allow_remote,
        ..cutover_loadgen::ServeConfig::new(loaded.clone())
    };
    cutover_loadgen::serve::check_reach(&probe).map_err(|e| Failure::BadInput(e.to_string()))?;
    // Each stack's client, as serve will build it: a URL that is no base URL is refused here.
    probe.clients().map_err(|e| Failure::BadInput(e.to_string()))?;
    let time_scale = match args.time_scale {
        Some(x) if x > 0.0 && x <= 10_000.0 => x,
        Some(x) => return Err(Failure::BadInput(format!("--time-scale: must be within (0, 10000], got {x}"))),
        None => recorded_pace(cfg, &loaded).map_or(1.0, |rps| (args.rate_rps / rps).clamp(0.001, 10_000.0)),
    };
    let migration = loaded.migration.clone();
    let http = HttpReplay {
        legacy_url: legacy.map(|u| u.trim_end_matches('/').to_string()),
        new_url: new.map(|u| u.trim_end_matches('/').to_string()),
        score_field: args.score_field.clone(),
        decision_field: args.decision_field.clone(),
        ask_features: args.ask_features,
        rate_rps: args.rate_rps,
        concurrency: args.concurrency,
        time_scale,
        allow_remote: args.allow_remote,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::BadInput(format!("cannot start the runtime: {e}")))?;
    let outcome =
        runtime.block_on(replay_http(loaded, Box::new(feed), &http)).map_err(|e| Failure::BadInput(e.to_string()))?;
    let rows = handle.finish().map_err(|e| Failure::BadInput(e.to_string()))?;
    let mut summary = outcome.view.summary.clone();
    let target = match (legacy, new) {
        (Some(l), Some(n)) => format!("--legacy-url {l} --new-url {n}"),
        _ => "--stacks".to_string(),
    };
    summary.reproduce = format!("cutover replay --requests {} {target}", args.requests.display());
    summary.expectations.push(Expectation {
        name: "zero_failed_requests".into(),
        passed: outcome.failed == 0,
        detail: format!("{} of {} replayed requests got no answer through the router", outcome.failed, outcome.sent),
    });
    if let Some(e) = outcome.baseline.expectation() {
        summary.expectations.push(e);
    }
    let snap = &outcome.snapshot;
    let moves = decisions(&snap.events);
    let paired = outcome.view.requests_paired;
    judged(&mut summary, enough_rows(&outcome.acts_after, paired, !moves.is_empty()));
    if let Some(dir) = &args.out {
        let err = |e: std::io::Error| Failure::BadInput(format!("{}: cannot write: {e}", dir.display()));
        let data = ReportData {
            summary: &summary,
            events: &snap.events,
            trace: &snap.trace,
            stage_stats: &snap.stage_stats,
            parity: &snap.parity,
            lineage: None,
            horizon_s: snap.now_s.max(1.0),
            answer: migration.answer(),
        };
        write_outputs(dir, &data, &timeline_of(&snap.events)).map_err(err)?;
        write_replay_json(dir, args, &rows, Some(&outcome.baseline), &moves).map_err(err)?;
    }
    println!(
        "sent {} rows of {} to {target} through the router in {:.1} s ({:.0} requests/s; {} skipped as unreadable; {} without an answer)",
        outcome.sent,
        args.requests.display(),
        outcome.wall_s,
        outcome.sent as f64 / outcome.wall_s.max(1e-9),
        rows.skipped,
        outcome.failed
    );
    for d in &moves {
        println!("t={:>9.1} s  {}", d.t_s, d.decision.describe());
    }
    finish(args, &summary)
}

pub fn record(args: &RecordArgs) -> Result<(), Failure> {
    if !(args.rate_rps > 0.0 && args.rate_rps.is_finite()) {
        return Err(Failure::BadInput(format!("--rate-rps: must be a positive number, got {}", args.rate_rps)));
    }
    let format = Format::of(&args.out)
        .ok_or_else(|| Failure::BadInput(format!("--out: {}: name it .csv or .jsonl", args.out.display())))?;
    let dir = crate::migration_dir(args.migration.as_ref(), "")?;
    let m = cutover_sim::scenario::load_migration(&dir).map_err(|e| Failure::BadInput(e.to_string()))?;
    let err = |e: String| Failure::BadInput(format!("{}: {e}", args.out.display()));
    let file = std::fs::File::create(&args.out).map_err(|e| err(format!("cannot write: {e}")))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    write_recorded(&m, args.requests, args.seed, args.rate_rps, format, &mut w).map_err(err)?;
    w.flush().map_err(|e| err(format!("cannot write: {e}")))
}
