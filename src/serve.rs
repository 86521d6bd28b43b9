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
    /// The admin API's bearer token (generated and printed when not given). Visible to
    /// anyone who lists processes: prefer --token-file or CUTOVER_ADMIN_TOKEN.
    #[arg(long, conflicts_with = "token_file")]
    token: Option<String>,
    /// A file whose content (a trailing newline dropped) is the admin token.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
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
    /// Connections the router holds open at once (more are closed at accept).
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
    /// Seconds a client has to send a request's headers (and an idle connection stays open).
    #[arg(long, value_name = "S")]
    header_timeout_s: Option<f64>,
    /// Seconds the requests in flight get to finish after Ctrl-C or SIGTERM.
    #[arg(long, value_name = "S")]
    drain_s: Option<f64>,
    /// The most bytes of a stack's answer the router reads (a longer one is a failed call).
    #[arg(long, value_name = "BYTES")]
    max_answer_bytes: Option<usize>,
    /// Milliseconds a stack's whole answer has (the new stack's timeout, when shorter, applies to it).
    #[arg(long, value_name = "MS")]
    answer_timeout_ms: Option<f64>,
    /// Call services beyond this machine (declared in the migration or given as URLs).
    #[arg(long)]
    allow_remote: bool,
    /// Keep the rollout in this folder (its history, and a checkpoint before every
    /// decision) and resume from it when started on it again.
    #[arg(long, value_name = "DIR")]
    state: Option<PathBuf>,
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
    /// Never echoed: a value that is not a string is refused without quoting it.
    token: Option<toml::Spanned<toml::Value>>,
    token_file: Option<PathBuf>,
    legacy_url: Option<String>,
    new_url: Option<String>,
    score_field: Option<String>,
    decision_field: Option<String>,
    time_scale: Option<f64>,
    hold: Option<bool>,
    max_connections: Option<usize>,
    header_timeout_s: Option<f64>,
    drain_s: Option<f64>,
    max_answer_bytes: Option<usize>,
    answer_timeout_ms: Option<f64>,
    allow_remote: Option<bool>,
    state: Option<PathBuf>,
}

fn read_config(path: &PathBuf) -> Result<(File, String), Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::BadInput(format!("{}: cannot read: {e}", path.display())))?;
    let file = toml::from_str(&text).map_err(|e| {
        let (line, column, _, message) = cutover_migration::toml_error(&text, &e);
        Failure::BadInput(format!("{}:{line}:{column}: {message}", path.display()))
    })?;
    Ok((file, text))
}

/// The environment variable that may hold the admin token.
pub const TOKEN_ENV: &str = "CUTOVER_ADMIN_TOKEN";

/// The admin token, from the first of: --token, --token-file, `CUTOVER_ADMIN_TOKEN`, the
/// config file's `token` or `token_file` (a relative path there is relative to the
/// config file). At least 16 characters, none of them white space or control characters.
fn admin_token(args: &Args, file: &File, config: &str, text: &str) -> Result<Option<String>, Failure> {
    let bad = |m: String| Failure::BadInput(m);
    let read = |what: String, path: &std::path::Path| -> Result<(String, String), Failure> {
        let text =
            std::fs::read_to_string(path).map_err(|e| bad(format!("{what}: {}: cannot read: {e}", path.display())))?;
        Ok((what, text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text).to_string()))
    };
    let config_dir = args.config.as_ref().and_then(|c| c.parent()).map(PathBuf::from).unwrap_or_default();
    let found = if let Some(t) = &args.token {
        Some(("--token".to_string(), t.clone()))
    } else if let Some(p) = &args.token_file {
        Some(read("--token-file".into(), p)?)
    } else if let Some(t) = std::env::var_os(TOKEN_ENV) {
        let t = t.into_string().map_err(|_| bad(format!("{TOKEN_ENV}: not UTF-8")))?;
        Some((TOKEN_ENV.to_string(), t))
    } else if let (Some(_), Some(_)) = (&file.token, &file.token_file) {
        return Err(bad(format!("{config}field `token_file`: give token or token_file, not both")));
    } else if let Some(t) = &file.token {
        let toml::Value::String(value) = t.get_ref() else {
            let (line, column) = cutover_migration::line_column(text, t.span().start);
            let at = config.trim_end_matches(": ");
            return Err(bad(format!("{at}:{line}:{column}: field `token`: must be a string (its value is not shown)")));
        };
        Some((format!("{config}field `token`"), value.clone()))
    } else if let Some(p) = &file.token_file {
        Some(read(format!("{config}field `token_file`"), &config_dir.join(p))?)
    } else {
        None
    };
    let Some((what, token)) = found else { return Ok(None) };
    if token.chars().count() < 16 {
        return Err(bad(format!("{what}: the admin token needs at least 16 characters")));
    }
    if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad(format!("{what}: the admin token must not contain white space or control characters")));
    }
    Ok(Some(token))
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
    let (file, text) = match &args.config {
        Some(p) => read_config(p)?,
        None => (File::default(), String::new()),
    };
    let bad = |e: cutover_sim::ScenarioError| Failure::BadInput(e.to_string());
    let config_at = args.config.as_ref().map_or(String::new(), |p| format!("{}: ", p.display()));
    let token = admin_token(args, &file, &config_at, &text)?;
    let loaded = match (args.scenario.clone().or(file.scenario), args.migration.clone().or(file.migration)) {
        (Some(scenario), _) => LoadedScenario::read(&scenario).map_err(bad)?,
        (None, Some(dir)) => {
            let dir = std::path::absolute(&dir).unwrap_or(dir);
            let m = cutover_sim::scenario::load_migration(&dir).map_err(bad)?;
            let text = cutover_sim::scenario::default_plan(&m, &dir, false);
            LoadedScenario::parse(&text, "(default plan)", PathBuf::from("serve"), PathBuf::new()).map_err(bad)?
        }
        (None, None) => {
            return Err(Failure::BadInput(
                "--scenario: missing: serve needs a plan (--scenario FILE, which names its migration folder) or a migration folder to serve under its default plan (--migration DIR)".into(),
            ))
        }
    };
    let mut cfg = ServeConfig::new(loaded);
    let where_ = || args.config.as_ref().map_or(String::new(), |p| format!("{}: ", p.display()));
    cfg.policy = match (args.policy, file.policy.clone()) {
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
    cfg.token = token;
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
    if let Some(n) = args.max_connections.or(file.max_connections) {
        if !(1..=65_536).contains(&n) {
            return Err(Failure::BadInput(format!("{}--max-connections: must be 1 to 65536, got {n}", where_())));
        }
        cfg.router_limits.max_connections = n;
    }
    for (flag, v, slot) in [
        ("header-timeout-s", args.header_timeout_s.or(file.header_timeout_s), &mut cfg.router_limits.header_timeout),
        ("drain-s", args.drain_s.or(file.drain_s), &mut cfg.router_limits.drain),
    ] {
        if let Some(s) = v {
            if !(s.is_finite() && s > 0.0 && s <= 300.0) {
                return Err(Failure::BadInput(format!(
                    "{}--{flag}: must be more than 0 and at most 300 seconds, got {s}",
                    where_()
                )));
            }
            *slot = std::time::Duration::from_secs_f64(s);
        }
    }
    cfg.stack_limits.header_timeout = cfg.router_limits.header_timeout;
    cfg.stack_limits.drain = cfg.router_limits.drain;
    if let Some(n) = args.max_answer_bytes.or(file.max_answer_bytes) {
        if !(1024..=64 << 20).contains(&n) {
            return Err(Failure::BadInput(format!(
                "{}--max-answer-bytes: must be 1024 to 67108864 (64 MiB), got {n}",
                where_()
            )));
        }
        cfg.answer_limits.max_bytes = n;
    }
    if let Some(ms) = args.answer_timeout_ms.or(file.answer_timeout_ms) {
        if !(ms.is_finite() && (1.0..=300_000.0).contains(&ms)) {
            return Err(Failure::BadInput(format!(
                "{}--answer-timeout-ms: must be 1 to 300000 milliseconds, got {ms}",
                where_()
            )));
        }
        cfg.answer_limits.timeout = std::time::Duration::from_secs_f64(ms / 1000.0);
    }
    cfg.allow_remote = args.allow_remote || file.allow_remote.unwrap_or(false);
    // A relative state folder in the config file is the config file's.
    let config_dir = args.config.as_ref().and_then(|c| c.parent()).map(PathBuf::from).unwrap_or_default();
    cfg.state = args.state.clone().or(file.state.map(|p| config_dir.join(p)));
    if cfg.allow_remote {
        eprintln!("cutover: warning: --allow-remote: the router may call services beyond this machine");
    }
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
        use tokio::signal::unix::{signal, SignalKind};
        let mut interrupt =
            signal(SignalKind::interrupt()).map_err(|e| Failure::BadInput(format!("cannot catch Ctrl-C: {e}")))?;
        let mut terminate =
            signal(SignalKind::terminate()).map_err(|e| Failure::BadInput(format!("cannot catch SIGTERM: {e}")))?;
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
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        eprintln!("cutover: shutting down: no new connections; finishing the requests in flight");
        let stopped = running.shutdown().await;
        if stopped.router.cut > 0 || stopped.comparisons_cut > 0 {
            eprintln!(
                "cutover: drain deadline passed after {:.1} s: closed {} connection(s) still open, {} comparison(s) unfinished",
                stopped.router.drained.as_secs_f64(),
                stopped.router.cut,
                stopped.comparisons_cut
            );
        }
        Ok(())
    })
}
