//! `cutover plan check PATH...`: what each scenario's plan can catch, said before any
//! traffic (docs/sequential.md, "The plan check"): per guardrail and stage, the smallest
//! effect the judge detects within the bake with probability 0.9, the times to rollback for
//! given effects beside the information bound, and the scenario's own faults against its
//! SLO. Writes `plan-check.json` per scenario under `--out` (docs/contracts.md). Exit 1
//! when a scenario's own faults are predicted to miss its SLO on more than one run in 30.

use std::path::PathBuf;

use cutover_sim::check::{self, Options, PlanCheck, Times};
use cutover_sim::scenario::{LoadedScenario, Policy};

use crate::Failure;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: PlanCommand,
}

#[derive(Debug, clap::Subcommand)]
enum PlanCommand {
    /// Predict what each scenario's plan can catch, and how fast, before any run.
    Check(CheckArgs),
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Scenario files, or folders of them.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Trials per figure.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(10..=10_000))]
    trials: u64,
    /// The first trial's seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The judge (default: each scenario's own).
    #[arg(long, value_parser = crate::simulate::parse_policy)]
    policy: Option<Policy>,
    /// Also the smallest effect confined to each segment (slower: one search per segment).
    #[arg(long)]
    segments: bool,
    /// Only the scenario's own faults against its SLO (no guardrail table: fast).
    #[arg(long)]
    faults_only: bool,
    /// Write plan-check.json per scenario under this folder.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Worker threads (default: every core).
    #[arg(long)]
    jobs: Option<usize>,
}

/// The share of runs within the SLO below which a scenario's SLO is called not kept: 29 of 30.
pub const KEPT: f64 = 29.0 / 30.0;

pub fn run(args: &Args) -> Result<(), Failure> {
    let PlanCommand::Check(args) = &args.command;
    let files = cutover_sim::world::suite::collect(&args.paths).map_err(Failure::BadInput)?;
    let jobs = args.jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1);
    let o =
        Options { trials: args.trials, seed: args.seed, jobs, segments: args.segments, guardrails: !args.faults_only };
    let mut unkept = Vec::new();
    for file in &files {
        let loaded = LoadedScenario::read(file).map_err(|e| Failure::BadInput(e.to_string()))?;
        let policy = args.policy.unwrap_or(loaded.scenario.controller.policy);
        let checked =
            check::check(&loaded, policy, &o).map_err(|e| Failure::BadInput(format!("{}: {e}", file.display())))?;
        print!("{}", describe(&checked));
        if let Some(out) = &args.out {
            let dir = out.join(&checked.scenario);
            std::fs::create_dir_all(&dir)
                .map_err(|e| Failure::BadInput(format!("{}: cannot create: {e}", dir.display())))?;
            let json = serde_json::to_string_pretty(&checked).expect("plain data");
            let path = dir.join("plan-check.json");
            std::fs::write(&path, json + "\n")
                .map_err(|e| Failure::BadInput(format!("{}: cannot write: {e}", path.display())))?;
        }
        if checked.faults.as_ref().and_then(|f| f.within_slo).is_some_and(|w| w < KEPT) {
            unkept.push(checked.scenario.clone());
        }
    }
    if unkept.is_empty() {
        Ok(())
    } else {
        Err(Failure::Unmet(format!(
            "{} scenario(s) whose SLO the plan is predicted not to keep on 29 of 30 runs: {}",
            unkept.len(),
            unkept.join(", ")
        )))
    }
}

fn secs(t: Option<f64>) -> String {
    t.map_or_else(|| "never".to_string(), |t| format!("{t:.0} s"))
}

/// A prediction's times in one phrase: median, p95 [interval], share within the bake.
fn times(t: &Times) -> String {
    let (lo, hi) = t.p95_interval_s;
    let hi = hi.map_or_else(|| format!(">{:.0} s", t.horizon_s), |h| format!("{h:.0} s"));
    let med = t.median_s.map_or_else(|| format!(">{:.0} s", t.horizon_s), |m| format!("{m:.0} s"));
    let p95 = t.p95_s.map_or_else(|| format!(">{:.0} s", t.horizon_s), |m| format!("{m:.0} s"));
    format!("median {med}, p95 {p95} [{}, {hi}]", secs(lo))
}

/// The terminal's account of one check.
pub fn describe(c: &PlanCheck) -> String {
    let mut out = format!(
        "{} ({}): judge {}, false-rollback budget {}, {} trials per figure; {}\n",
        c.scenario, c.file, c.policy, c.false_rollback_budget, c.trials, c.method
    );
    for g in &c.guardrails {
        out += &format!("  {} <= {}\n", g.guardrail, g.limit);
        if g.stages.is_empty() {
            out += &format!("    {}\n", g.method);
        }
        for s in &g.stages {
            out += &format!(
                "    {:<12} bake {:.0} s at {:.1} counted/s: smallest caught within the bake (p >= 0.9): {}\n",
                s.stage,
                s.bake_s,
                s.counted_rps,
                s.smallest_detected.as_deref().unwrap_or("none on the grid")
            );
            for e in &s.effects {
                out += &format!(
                    "      {:<24} {}; {:.0} % within the bake; bound: median >= {}\n",
                    e.effect,
                    times(&e.times),
                    100.0 * e.times.within_bake,
                    e.bound_median_s.map_or_else(|| "n/a".into(), |b| format!("{b:.0} s"))
                );
            }
        }
        if let Some(z) = &g.zone {
            out += &format!(
                "    rare below {} (indifference zone up to the limit), over the whole run from shadow: \
                 rolled back (median time) with the zone | with the limit as the null\n",
                z.rare_below
            );
            let fig = |f: &cutover_sim::check::ZoneFigures| {
                let m = f.median_s.map_or_else(|| "-".to_string(), |m| format!("{m:.0} s"));
                format!("{:>5.1} % ({m:>7})", 100.0 * f.rolled_back)
            };
            for r in &z.rows {
                out += &format!("      at {:<10.5} {} | {}\n", r.level, fig(&r.with_zone), fig(&r.limit_as_null));
            }
        }
        for s in &g.segments {
            out += &format!(
                "    segment {:<20} {:>5.1} % of traffic: smallest caught {}\n",
                s.segment,
                100.0 * s.share,
                s.smallest_detected.as_deref().unwrap_or("none on the grid")
            );
        }
    }
    if let Some(f) = &c.faults {
        let kept = match (f.slo_s, f.within_slo) {
            (Some(slo), Some(w)) => format!(
                "SLO {slo:.0} s: {:.0} % of runs within it ({})",
                100.0 * w,
                if w >= KEPT { "kept" } else { "NOT kept on 29 of 30 runs" }
            ),
            _ => "no SLO".into(),
        };
        out += &format!("  the scenario's faults ({}): {}; {kept}\n", f.faults, times(&f.times));
    }
    out
}
