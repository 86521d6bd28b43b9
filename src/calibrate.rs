//! `cutover calibrate PATH... [--seeds N]`: a regression baseline of the judge (not the
//! team's requirements: `plan check` says which of those a plan can keep). Sets each fault
//! scenario's SLOs from what its judge achieves, as `cutover init` does for the library it
//! writes: the slowest of N seeds from the fault to the rollback, with half again; the
//! bad-decision budget likewise. A fault not caught on every seed is reported and its file
//! left as it was (exit 1).

use std::path::PathBuf;

use crate::init::scenarios::{measure, Calibrated};
use crate::Failure;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Scenario files, or folders of them.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Seeds per scenario.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=1000))]
    seeds: u64,
    /// Worker threads (default: every core).
    #[arg(long)]
    jobs: Option<usize>,
}

pub fn run(args: &Args) -> Result<(), Failure> {
    let files = cutover_sim::world::suite::collect(&args.paths).map_err(Failure::BadInput)?;
    let jobs = args.jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1);
    let measured = measure(&files, args.seeds, jobs)?;
    let mut missed = Vec::new();
    for (file, c) in files.iter().zip(&measured) {
        let text = std::fs::read_to_string(file)
            .map_err(|e| Failure::BadInput(format!("{}: cannot read: {e}", file.display())))?;
        let mut doc: toml_edit::DocumentMut =
            text.parse().map_err(|e| Failure::BadInput(format!("{}: {e}", file.display())))?;
        let expect = doc.get("expect").and_then(|e| e.get("outcome")).and_then(|o| o.as_str()).unwrap_or("");
        let rolls_back = expect == "rolled_back";
        if c.as_expected < c.runs {
            let what = if rolls_back { "rolled back after its fault" } else { "ended as expected" };
            println!("{:<40} only {} of {} seeds {what}: left as it was", file.display(), c.as_expected, c.runs);
            missed.push(file.display().to_string());
            continue;
        }
        if !rolls_back {
            println!("{:<40} {}", file.display(), c.describe());
            continue;
        }
        let slo = c.slo_s().unwrap_or(0.0);
        doc["expect"]["detect_within_s"] = toml_edit::value(slo);
        doc["expect"]["rollback_within_s"] = toml_edit::value(slo);
        doc["expect"]["max_bad_decisions"] = toml_edit::value(c.bad_budget() as i64);
        let mut out = doc.to_string();
        out = restamp(&out, c);
        std::fs::write(file, out).map_err(|e| Failure::BadInput(format!("{}: cannot write: {e}", file.display())))?;
        println!("{:<40} {}", file.display(), c.describe());
    }
    if missed.is_empty() {
        Ok(())
    } else {
        Err(Failure::Unmet(format!(
            "{} scenario(s) not calibrated: their fault is not caught on every seed (make it larger, or give the judge more traffic): {}",
            missed.len(),
            missed.join(", ")
        )))
    }
}

/// The first comment line of a file `cutover init` wrote says how its SLOs were set.
fn restamp(text: &str, c: &Calibrated) -> String {
    match text.split_once('\n') {
        Some((first, rest)) if first.starts_with("# Written by `cutover init`") => format!(
            "# Written by `cutover init`; SLOs from `cutover calibrate`: the slowest of {} seeds ({:.0} s from the fault to the rollback) with half again\n{rest}",
            c.runs,
            c.slowest_s.unwrap_or(0.0)
        ),
        _ => text.to_string(),
    }
}
