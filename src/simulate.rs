//! `cutover run SCENARIO.toml [--seed N] [--out DIR]` and
//! `cutover suite PATH... [--junit FILE] [--out DIR] [--jobs N]`.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::ColorChoice;
use cutover_sim::core::verdict::Summary;
use cutover_sim::report::dashboard::{suite_index, sweep_index, SuiteRow};
use cutover_sim::report::write_run;
use cutover_sim::scenario::Policy;
use cutover_sim::world::suite;
use cutover_sim::{LoadedScenario, RunError};

use crate::{table, Failure};

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The scenario file.
    scenario: PathBuf,
    /// Seed (overrides the scenario's).
    #[arg(long)]
    seed: Option<u64>,
    /// Write summary.json, timeline.csv, history.jsonl and parity.json here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// The judge (overrides the scenario's).
    #[arg(long, value_parser = parse_policy)]
    policy: Option<Policy>,
    /// Colour the verdict table: auto (when standard output is a terminal), always, never.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    color: ColorChoice,
}

#[derive(Debug, clap::Args)]
pub struct SuiteArgs {
    /// Scenario files or folders (searched for *.toml, not descending into live/).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Write JUnit XML here.
    #[arg(long)]
    junit: Option<PathBuf>,
    /// Write each scenario's outputs into DIR/<scenario>/.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Scenarios run in parallel (default: the number of cores).
    #[arg(long)]
    jobs: Option<usize>,
    /// Seed for every scenario (overrides theirs).
    #[arg(long)]
    seed: Option<u64>,
    /// The judge for every scenario (overrides theirs). A sweep takes several, comma
    /// separated (`sequential,flagger,argo`): they share each seed's world while they agree,
    /// and each writes DIR/<policy>/sweep.json beside DIR/comparison.md.
    #[arg(long, value_parser = parse_policy, value_delimiter = ',')]
    policy: Vec<Policy>,
    /// Run every scenario over this many seeds and write sweep.json into --out.
    #[arg(long)]
    seeds: Option<u64>,
    /// The first seed of a sweep.
    #[arg(long, default_value_t = 1)]
    seed_base: u64,
    /// Run only every N-th seed of the sweep, from the I-th (`I/N`, 0-based); `auto/N`
    /// takes I from `JOB_COMPLETION_INDEX` (a Kubernetes Indexed Job's pod).
    #[arg(long, value_parser = parse_shard)]
    shard: Option<(u64, u64)>,
    /// Colour the verdict table: auto (when standard output is a terminal), always, never.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    color: ColorChoice,
}

#[derive(Debug, clap::Args)]
pub struct MergeArgs {
    /// Folders holding the shards' sweep.json.
    #[arg(required = true)]
    dirs: Vec<PathBuf>,
    /// Where to write the merged sweep.json.
    #[arg(long)]
    out: PathBuf,
}

fn parse_shard(s: &str) -> Result<(u64, u64), String> {
    shard_of(s, std::env::var("JOB_COMPLETION_INDEX").ok().as_deref())
}

/// `I/N`, or `auto/N` with I the job completion index given.
fn shard_of(s: &str, completion_index: Option<&str>) -> Result<(u64, u64), String> {
    let bad = || format!("`{s}` is not a shard (expected I/N with 0 <= I < N, for example 0/4, or auto/N)");
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let n: u64 = n.parse().map_err(|_| bad())?;
    let i: u64 = if i == "auto" {
        let index = completion_index.ok_or_else(|| {
            format!("`{s}`: auto takes the shard from JOB_COMPLETION_INDEX (set in a Kubernetes Indexed Job's pods), which is not set")
        })?;
        index.trim().parse().map_err(|_| format!("`{s}`: JOB_COMPLETION_INDEX `{index}` is not a number"))?
    } else {
        i.parse().map_err(|_| bad())?
    };
    if n > 0 && i >= n {
        return Err(format!("`{s}`: shard {i} is not below {n}"));
    }
    if n == 0 || i >= n {
        return Err(bad());
    }
    Ok((i, n))
}

pub fn parse_policy(s: &str) -> Result<Policy, String> {
    match s {
        "flagger" => Ok(Policy::Flagger),
        "argo" => Ok(Policy::Argo),
        "sequential" => Ok(Policy::Sequential),
        _ => Err(format!("unknown policy `{s}` (expected sequential, flagger or argo)")),
    }
}

fn setup_error(e: RunError) -> Failure {
    Failure::BadInput(e.to_string())
}

pub fn run(args: &RunArgs) -> Result<(), Failure> {
    let loaded = LoadedScenario::read(&args.scenario).map_err(|e| Failure::BadInput(e.to_string()))?;
    let result = cutover_sim::run(&loaded, args.seed, args.policy).map_err(setup_error)?;
    if let Some(dir) = &args.out {
        write_run(dir, &result).map_err(|e| Failure::BadInput(format!("{}: cannot write: {e}", dir.display())))?;
    }
    print!("{}", table::verdicts(&[&result.summary], table::use_color(args.color)));
    // A spec switch says what it changes, checked before the run.
    for sw in result.lineage.iter().flat_map(|l| &l.switched_specs) {
        let changes: Vec<String> =
            sw.differences.iter().map(|d| format!("{} {}: {} -> {}", d.feature, d.aspect, d.legacy, d.new)).collect();
        println!("faults[{}] switches the new path to {}: {}", sw.fault, sw.file, changes.join("; "));
    }
    if let Some(dir) = &args.out {
        println!("report: {}", dir.join("report.html").display());
    }
    verdict(&[&result.summary])
}

pub fn suite(args: &SuiteArgs) -> Result<(), Failure> {
    let files = suite::collect(&args.paths).map_err(Failure::BadInput)?;
    // Validate every file first: a bad scenario is bad input, reported before anything runs;
    // then say which SLOs no judge can keep at the plan's false-rollback budget.
    let mut below = Vec::new();
    for f in &files {
        let loaded = LoadedScenario::read(f).map_err(|e| Failure::BadInput(e.to_string()))?;
        let notice = cutover_sim::check::slo_below_bound(&loaded);
        if let Some(b) = &notice {
            println!("{}: {}", loaded.scenario.name, b.reason);
        }
        below.push(notice.map(|b| b.reason));
    }
    let jobs = args.jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if jobs == 0 {
        return Err(Failure::BadInput("--jobs: must be at least 1".into()));
    }
    for (k, p) in args.policy.iter().enumerate() {
        if args.policy[..k].contains(p) {
            return Err(Failure::BadInput(format!("--policy: `{}` is given twice", p.name())));
        }
    }
    if let Some(seeds) = args.seeds {
        return sweep(args, &files, seeds, jobs);
    }
    if args.shard.is_some() {
        return Err(Failure::BadInput("--shard: splits a sweep, so it needs --seeds".into()));
    }
    if args.policy.len() > 1 {
        return Err(Failure::BadInput("--policy: several judges side by side need a sweep (--seeds N)".into()));
    }
    let policy = args.policy.first().copied();
    let bar = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(files.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} scenarios {msg}")
                .expect("a valid template")
                .progress_chars("=> "),
        );
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut results = suite::run_all(&files, jobs, args.seed, policy, &|file| {
        bar.set_message(file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default());
        bar.inc(1);
    });
    for (r, below) in results.iter_mut().zip(below) {
        if let Ok(run) = r {
            run.summary.slo_below_information_bound = below;
        }
    }
    bar.finish_and_clear();
    let mut summaries = Vec::new();
    for (file, r) in files.iter().zip(&results) {
        match r {
            Ok(run) => {
                if let Some(dir) = &args.out {
                    let sub = dir.join(&run.summary.scenario);
                    write_run(&sub, run)
                        .map_err(|e| Failure::BadInput(format!("{}: cannot write: {e}", sub.display())))?;
                }
                summaries.push((file, &run.summary));
            }
            Err(e) => return Err(Failure::BadInput(e.to_string())),
        }
    }
    if let Some(path) = &args.junit {
        std::fs::write(path, suite::junit(&files, &results))
            .map_err(|e| Failure::BadInput(format!("{}: cannot write: {e}", path.display())))?;
    }
    if let Some(dir) = &args.out {
        let rows: Vec<SuiteRow<'_>> = summaries
            .iter()
            .map(|(_, s)| SuiteRow { summary: s, report: format!("{}/report.html", s.scenario) })
            .collect();
        let path = dir.join("index.html");
        std::fs::write(&path, suite_index(&rows))
            .map_err(|e| Failure::BadInput(format!("{}: cannot write: {e}", path.display())))?;
    }
    let summaries: Vec<&Summary> = summaries.iter().map(|(_, s)| *s).collect();
    print!("{}", table::verdicts(&summaries, table::use_color(args.color)));
    if let Some(dir) = &args.out {
        println!("index: {}", dir.join("index.html").display());
    }
    verdict(&summaries)
}

fn verdict(summaries: &[&Summary]) -> Result<(), Failure> {
    let failed: Vec<&&Summary> = summaries.iter().filter(|s| !s.passed).collect();
    if failed.is_empty() {
        return Ok(());
    }
    for s in &failed {
        for e in s.expectations.iter().filter(|e| !e.passed) {
            eprintln!("cutover: {}: {} did not hold: {}", s.scenario, e.name, e.detail);
        }
        eprintln!("cutover: reproduce with: {}", s.reproduce);
    }
    Err(Failure::Unmet(format!("{} of {} scenarios failed their expectations", failed.len(), summaries.len())))
}

fn sweep(args: &SuiteArgs, files: &[PathBuf], seeds: u64, jobs: usize) -> Result<(), Failure> {
    if seeds == 0 {
        return Err(Failure::BadInput("--seeds: must be at least 1".into()));
    }
    let out = args
        .out
        .as_ref()
        .ok_or_else(|| Failure::BadInput("--seeds: a sweep writes sweep.json, so it needs --out DIR".into()))?;
    let sweeps = cutover_sim::world::sweep::sweep(files, seeds, args.seed_base, args.shard, &args.policy, jobs)
        .map_err(|e| Failure::BadInput(e.to_string()))?;
    let mut failed = Vec::new();
    if let [one] = sweeps.as_slice() {
        write_sweep(out, one)?;
        print_sweep(one);
        failed.push((one, out.join("sweep.json")));
    } else {
        for s in &sweeps {
            let dir = out.join(&s.policy);
            write_sweep(&dir, s)?;
            print_sweep(s);
            println!();
            failed.push((s, dir.join("sweep.json")));
        }
        let table = cutover_sim::world::sweep::comparison(&sweeps);
        let path = out.join("comparison.md");
        std::fs::write(&path, &table)
            .map_err(|e| Failure::BadInput(format!("{}: cannot write: {e}", path.display())))?;
        print!("{table}");
    }
    let path = out.join("index.html");
    std::fs::write(&path, sweep_index(&sweeps))
        .map_err(|e| Failure::BadInput(format!("{}: cannot write: {e}", path.display())))?;
    println!("index: {}", path.display());
    let failed: Vec<String> = failed
        .into_iter()
        .filter_map(|(s, path)| {
            let n: u64 = s.scenarios.iter().map(|x| x.runs - x.passed).sum();
            (n > 0).then(|| format!("{n} runs under {} ({})", s.policy, path.display()))
        })
        .collect();
    if !failed.is_empty() {
        return Err(Failure::Unmet(format!("runs failed their expectations: {}", failed.join(", "))));
    }
    Ok(())
}

pub fn merge(args: &MergeArgs) -> Result<(), Failure> {
    let mut parts = Vec::new();
    for dir in &args.dirs {
        let path = dir.join("sweep.json");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Failure::BadInput(format!("{}: cannot read: {e}", path.display())))?;
        let sweep = serde_json::from_str(&text)
            .map_err(|e| Failure::BadInput(format!("{}:{}:{}: {e}", path.display(), e.line(), e.column())))?;
        parts.push(sweep);
    }
    let merged = cutover_sim::world::sweep::merge(parts).map_err(Failure::BadInput)?;
    write_sweep(&args.out, &merged)?;
    print_sweep(&merged);
    Ok(())
}

fn write_sweep(dir: &std::path::Path, sweep: &cutover_sim::world::sweep::Sweep) -> Result<(), Failure> {
    let err = |e: std::io::Error| Failure::BadInput(format!("{}: cannot write: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(err)?;
    std::fs::write(dir.join("sweep.json"), serde_json::to_string_pretty(sweep).expect("serializes") + "\n").map_err(err)
}

fn print_sweep(s: &cutover_sim::world::sweep::Sweep) {
    let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
    let t = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}"));
    println!("policy {}, {} seeds from {}", s.policy, s.seeds, s.seed_base);
    println!(
        "{:<40} {:>5} {:>6} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8}",
        "scenario", "runs", "passed", "detect", "false rb", "ttr p50", "ttr p95", "ttr max", "bad p95"
    );
    for x in &s.scenarios {
        println!(
            "{:<40} {:>5} {:>6} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8}",
            x.scenario,
            x.runs,
            x.passed,
            f(x.detection_rate),
            f(x.false_rollback_rate),
            t(x.time_to_rollback_s.p50),
            t(x.time_to_rollback_s.p95),
            t(x.time_to_rollback_s.max),
            t(x.bad_decisions_served.p95)
        );
    }
    println!("ttr: seconds from the fault's start to the rollback; p50 the median (the mean of the two middle runs for an even count), p95 the nearest rank, max the worst");
    for r in &s.records {
        let failed: Vec<String> = r
            .runs
            .iter()
            .filter(|run| !run.passed)
            .map(|run| format!("seed {} ({})", run.seed, run.failed.join(", ")))
            .collect();
        if !failed.is_empty() {
            let more = if failed.len() > 5 { format!(" and {} more", failed.len() - 5) } else { String::new() };
            println!("{}: failed {}{more}", r.scenario, failed[..failed.len().min(5)].join("; "));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::shard_of;

    #[test]
    fn shards_come_from_the_flag_or_the_job_completion_index() {
        assert_eq!(shard_of("1/4", None), Ok((1, 4)));
        assert_eq!(shard_of("auto/4", Some("3")), Ok((3, 4)));
        assert!(shard_of("auto/4", None).unwrap_err().contains("JOB_COMPLETION_INDEX"));
        assert!(shard_of("auto/4", Some("4")).unwrap_err().contains("shard 4 is not below 4"));
        assert!(shard_of("auto/4", Some("x")).unwrap_err().contains("`x` is not a number"));
        assert!(shard_of("4/4", None).is_err() && shard_of("0/0", None).is_err() && shard_of("a", None).is_err());
    }
}
