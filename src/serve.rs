//! `cutover serve`: the live stacks and the router on loopback, until Ctrl-C.

use std::net::IpAddr;
use std::path::PathBuf;

use cutover_loadgen::ServeConfig;
use cutover_sim::scenario::{LoadedScenario, Policy};
use serde::Deserialize;

use crate::Failure;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A TOML file with any of the settings below (flags win over it).
    #[arg(long)]
    config: Option<PathBuf>,
    /// The scenario whose stacks, plan and guardrails apply.
    #[arg(long)]
    scenario: Option<PathBuf>,
    /// Serve this migration folder under its default plan (without --scenario).
    #[arg(long, conflicts_with = "scenario")]
    migration: Option<PathBuf>,
    /// The judge (overrides the scenario's).
    #[arg(long, value_parser = crate::simulate::parse_policy)]
    policy: Option<Policy>,
    /// Address to bind every service to.
    #[arg(long)]
    bind: Option<IpAddr>,
    /// The router's port (0: any free one).
    #[arg(long)]
    port: Option<u16>,
    /// The in-process legacy stack's port.
    #[arg(long)]
    legacy_port: Option<u16>,
    /// The in-process new stack's port.
    #[arg(long)]
    new_port: Option<u16>,
    /// The admin API's bearer token (generated and printed when not given).
    #[arg(long)]
    token: Option<String>,
    /// Front an external legacy stack at this base URL instead of starting one.
    #[arg(long)]
    legacy_url: Option<String>,
    /// Front an external new stack at this base URL instead of starting one.
    #[arg(long)]
    new_url: Option<String>,
    /// The score field of external stacks' answers.
    #[arg(long)]
    score_field: Option<String>,
    /// The decision field of external stacks' answers (`block`/`allow`, or a boolean).
    #[arg(long)]
    decision_field: Option<String>,
    /// Scenario seconds per wall second (60: an hour's plan in a minute).
    #[arg(long)]
    time_scale: Option<f64>,
    /// Serve legacy only until `POST /admin/start`.
    #[arg(long)]
    hold: bool,
}

/// The config file: the same settings as the flags.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    scenario: Option<PathBuf>,
    migration: Option<PathBuf>,
    policy: Option<String>,
    bind: Option<IpAddr>,
    port: Option<u16>,
    legacy_port: Option<u16>,
    new_port: Option<u16>,
    token: Option<String>,
    legacy_url: Option<String>,
    new_url: Option<String>,
    score_field: Option<String>,
    decision_field: Option<String>,
    time_scale: Option<f64>,
    hold: Option<bool>,
}

/// The default scenario of `serve`.
pub const DEFAULT_SCENARIO: &str = "scenarios/live/clean-promotes.toml";

fn read_config(path: &PathBuf) -> Result<File, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::BadInput(format!("{}: cannot read: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| {
        let (line, column) = e.span().map_or((0, 0), |s| cutover_models::line_column(&text, s.start));
        let message = e.message().replace('\n', " ");
        Failure::BadInput(format!("{}:{line}:{column}: {message}", path.display()))
    })
}

fn check_url(flag: &str, url: &str) -> Result<(), Failure> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        Failure::BadInput(format!("--{flag}: `{url}` must be an http:// base URL (like http://127.0.0.1:8081)"))
    })?;
    if rest.is_empty() || rest.contains(' ') {
        return Err(Failure::BadInput(format!("--{flag}: `{url}` has no host")));
    }
    Ok(())
}

/// Builds the services' configuration from the flags and the config file.
pub fn config(args: &Args) -> Result<ServeConfig, Failure> {
    let file = match &args.config {
        Some(p) => read_config(p)?,
        None => File::default(),
    };
    let bad = |e: cutover_sim::ScenarioError| Failure::BadInput(e.to_string());
    let loaded = match (args.scenario.clone().or(file.scenario), args.migration.clone().or(file.migration)) {
        (Some(scenario), _) => LoadedScenario::read(&scenario).map_err(bad)?,
        (None, Some(dir)) => {
            let dir = std::path::absolute(&dir).unwrap_or(dir);
            let m = cutover_sim::scenario::load_migration(&dir).map_err(bad)?;
            let text = cutover_sim::scenario::default_plan(&m, &dir, false);
            LoadedScenario::parse(&text, "(default plan)", PathBuf::from("serve"), PathBuf::new()).map_err(bad)?
        }
        (None, None) => LoadedScenario::read(&PathBuf::from(DEFAULT_SCENARIO)).map_err(bad)?,
    };
    let mut cfg = ServeConfig::new(loaded);
    let where_ = || args.config.as_ref().map_or(String::new(), |p| format!("{}: ", p.display()));
    cfg.policy = match (args.policy, file.policy) {
        (Some(p), _) => Some(p),
        (None, Some(p)) => Some(
            crate::simulate::parse_policy(&p)
                .map_err(|e| Failure::BadInput(format!("{}field `policy`: {e}", where_())))?,
        ),
        (None, None) => None,
    };
    if let Some(b) = args.bind.or(file.bind) {
        cfg.bind = b;
    }
    cfg.router_port = args.port.or(file.port).unwrap_or(0);
    cfg.legacy_port = args.legacy_port.or(file.legacy_port).unwrap_or(0);
    cfg.new_port = args.new_port.or(file.new_port).unwrap_or(0);
    cfg.token = args.token.clone().or(file.token);
    if cfg.token.as_ref().is_some_and(|t| t.len() < 16) {
        return Err(Failure::BadInput("--token: use at least 16 characters".into()));
    }
    cfg.legacy_url = args.legacy_url.clone().or(file.legacy_url);
    cfg.new_url = args.new_url.clone().or(file.new_url);
    for (flag, url) in [("legacy-url", &cfg.legacy_url), ("new-url", &cfg.new_url)] {
        if let Some(u) = url {
            check_url(flag, u)?;
        }
    }
    if let Some(f) = args.score_field.clone().or(file.score_field) {
        cfg.score_field = f;
    }
    if let Some(f) = args.decision_field.clone().or(file.decision_field) {
        cfg.decision_field = f;
    }
    let scale = args.time_scale.or(file.time_scale).unwrap_or(1.0);
    if !(scale.is_finite() && scale > 0.0) {
        return Err(Failure::BadInput(format!("--time-scale: must be a positive number, not {scale}")));
    }
    cfg.time_scale = scale;
    cfg.hold = args.hold || file.hold.unwrap_or(false);
    Ok(cfg)
}

pub fn run(args: &Args) -> Result<(), Failure> {
    let cfg = config(args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::BadInput(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(async move {
        let given_token = cfg.token.is_some();
        if !cfg.bind.is_loopback() {
            eprintln!("cutover: warning: binding {} exposes the services beyond this machine", cfg.bind);
        }
        // Ctrl-C is caught from before the addresses are printed: a client that reads them
        // and interrupts at once gets a graceful stop, not a killed process.
        let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
            .map_err(|e| Failure::BadInput(format!("cannot catch Ctrl-C: {e}")))?;
        let running = cutover_loadgen::start(cfg).await.map_err(|e| Failure::BadInput(e.to_string()))?;
        println!("router   {}", running.url());
        if let Some(a) = running.legacy {
            println!("legacy   http://{a}");
        }
        if let Some(a) = running.new {
            println!("new      http://{a}");
        }
        if given_token {
            println!("token    (as given)");
        } else {
            println!("token    {}", running.token);
        }
        println!("dashboard {}/dashboard", running.url());
        println!("admin    curl -H 'Authorization: Bearer <token>' {}/admin/rollout", running.url());
        interrupt.recv().await;
        eprintln!("cutover: shutting down, finishing requests in flight");
        running.shutdown().await;
        Ok(())
    })
}
