//! `cutover`: the command-line interface. Everything it does lives in the library crates;
//! this file parses flags, maps failures to exit codes and prints one line per error.

mod audit;
mod calibrate;
mod dataset;
mod init;
mod loadtest;
mod plan;
mod predict;
mod registry;
mod replay;
mod serve;
mod simulate;
mod table;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Prove that a model-platform migration plan catches every failure and rolls back in time.
#[derive(Debug, Parser)]
#[command(name = "cutover", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a migration folder from a saved model and a file of recorded requests.
    Init(init::Args),
    /// A regression baseline of the judge: fault scenarios' SLOs from what it achieves over seeds.
    Calibrate(calibrate::Args),
    /// Score CSV rows with an XGBoost model, bit for bit as XGBoost does.
    Predict(predict::Args),
    /// What a plan can catch, said before any traffic (`plan check`).
    Plan(plan::Args),
    /// Run one scenario in the deterministic simulator.
    Run(simulate::RunArgs),
    /// Run every scenario under the given paths (a CI step: JUnit and an exit code).
    Suite(simulate::SuiteArgs),
    /// Combine sharded sweeps into the report one run would give.
    Merge(simulate::MergeArgs),
    /// Write training data for the reference model from the bundled fraud domain.
    Dataset(dataset::Args),
    /// The model registry: artifacts and feature specs pinned by sha256, with lineage.
    Registry(registry::Args),
    /// The baseline audit: both feature paths, the model, its lineage, and legacy latency.
    Audit(audit::Args),
    /// Recorded requests through both paths; with --plan, a dry run of its rollout.
    Replay(replay::ReplayArgs),
    /// Write recorded traffic from the bundled domain, with the legacy stack's answers.
    Record(replay::RecordArgs),
    /// The live stacks and the router on loopback, until Ctrl-C.
    Serve(serve::Args),
    /// goose users against the live stacks through a compressed rollout, faults injected.
    Loadtest(loadtest::Args),
}

/// How a command failed, and so which exit code it gets.
#[derive(Debug)]
pub enum Failure {
    /// Bad input: an unreadable or invalid file, an unknown flag (exit 2).
    BadInput(String),
    /// The command ran but something it checks did not hold (exit 1).
    Unmet(String),
}

/// The migration folder a command was given, or why it needs one: no command falls back to
/// a bundled folder (docs/contracts.md). `or` names what may stand in for `--migration`.
pub fn migration_dir(given: Option<&std::path::PathBuf>, or: &str) -> Result<std::path::PathBuf, Failure> {
    given.cloned().ok_or_else(|| {
        Failure::BadInput(format!(
            "--migration: missing: this command needs the migration folder (--migration DIR{or}; `cutover init` writes one)"
        ))
    })
}

impl Failure {
    fn exit(self) -> ExitCode {
        match self {
            Failure::BadInput(line) => {
                eprintln!("cutover: {}", cutover_models::one_line(&line));
                ExitCode::from(2)
            }
            Failure::Unmet(line) => {
                eprintln!("cutover: {line}");
                ExitCode::from(1)
            }
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            let _ = e.print(); // --help, --version
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // One line, not clap's usage block: which flag or value is wrong.
            let rendered = e.render().to_string();
            let message = rendered.split("\n\n").next().unwrap_or("invalid command line");
            let line = message.split_whitespace().collect::<Vec<_>>().join(" ");
            return Failure::BadInput(line.trim_start_matches("error: ").to_string()).exit();
        }
    };
    let result = match cli.command {
        Command::Init(args) => init::run(&args),
        Command::Calibrate(args) => calibrate::run(&args),
        Command::Predict(args) => predict::run(&args),
        Command::Plan(args) => plan::run(&args),
        Command::Run(args) => simulate::run(&args),
        Command::Suite(args) => simulate::suite(&args),
        Command::Merge(args) => simulate::merge(&args),
        Command::Dataset(args) => dataset::run(&args),
        Command::Registry(args) => registry::run(&args),
        Command::Audit(args) => audit::run(&args),
        Command::Replay(args) => replay::run(&args),
        Command::Record(args) => replay::record(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Loadtest(args) => loadtest::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => f.exit(),
    }
}
