//! `cutover loadtest SCENARIO.toml`: goose against the live stacks on loopback.

use std::path::PathBuf;

use cutover_sim::scenario::{LoadedScenario, Policy};

use crate::Failure;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The scenario (with a `[live]` section).
    scenario: PathBuf,
    /// Write summary.json, history.jsonl and goose's reports here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// The judge (overrides the scenario's).
    #[arg(long, value_parser = crate::simulate::parse_policy)]
    policy: Option<Policy>,
    /// Call services beyond this machine that the migration declares (loopback only otherwise).
    #[arg(long)]
    allow_remote: bool,
}

pub fn run(args: &Args) -> Result<(), Failure> {
    let loaded = LoadedScenario::read(&args.scenario).map_err(|e| Failure::BadInput(e.to_string()))?;
    if loaded.scenario.live.is_none() {
        return Err(Failure::BadInput(format!(
            "{}: field `live`: a load test needs a [live] section (users, run_time_s, time_scale)",
            args.scenario.display()
        )));
    }
    let out = args.out.clone().unwrap_or_else(|| cutover_loadgen::loadtest::default_out(&args.scenario));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::BadInput(format!("cannot start the runtime: {e}")))?;
    let outcome = runtime
        .block_on(cutover_loadgen::loadtest::loadtest(loaded, args.policy, &out, args.allow_remote))
        .map_err(|e| Failure::BadInput(e.to_string()))?;
    let s = &outcome.summary;
    for a in &s.attacks {
        println!(
            "{:<9} {:>8} requests {:>5} failed  p50 {:>7.3} ms  p99 {:>7.3} ms  {:>8.0} req/s",
            a.name, a.requests, a.failed, a.p50_ms, a.p99_ms, a.rps
        );
    }
    for e in &s.summary.expectations {
        println!("{} {:<28} {}", if e.passed { "pass" } else { "FAIL" }, e.name, e.detail);
    }
    println!("outputs in {}", out.display());
    if s.summary.passed {
        Ok(())
    } else {
        Err(Failure::Unmet(format!("{}: the load test's checks did not all hold", s.summary.scenario)))
    }
}
