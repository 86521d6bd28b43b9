//! `cutover loadtest`: goose users against the router on loopback, the scenario's plan
//! compressed onto the wall clock by its `[live]` section, its faults injected through the
//! admin API at their scaled times. Three goose attacks in a row: legacy alone (the
//! baseline), legacy with every request shadowed (the shadow's cost), and the rollout.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use cutover_sim::core::verdict::{Expectation, Summary};
use cutover_sim::faults::{faults_started, Fault, Kind, SECOND};
use cutover_sim::report::dashboard::{self, PageKind, ReportData};
use cutover_sim::scenario::{LoadedScenario, Policy};
use goose::config::GooseConfiguration;
use goose::metrics::{GooseCoordinatedOmissionMitigation, GooseMetrics};
use goose::prelude::*;
use serde::Serialize;

use crate::drive::Payloads;
use crate::serve::{self, ServeConfig};

static PAYLOADS: RwLock<Option<Arc<Payloads>>> = RwLock::new(None);

async fn score(user: &mut GooseUser) -> TransactionResult {
    let payloads = PAYLOADS.read().unwrap_or_else(|e| e.into_inner()).clone();
    let Some(payloads) = payloads else { return Ok(()) };
    let body = payloads.next_request();
    let _response = user.post_json("/v1/score", &body).await?;
    Ok(())
}

/// One goose attack's figures.
#[derive(Debug, Clone, Serialize)]
pub struct AttackFigures {
    /// Which: `baseline`, `shadow` or `rollout`.
    pub name: String,
    /// Requests.
    pub requests: usize,
    /// Failed requests (non-2xx or no answer).
    pub failed: usize,
    /// Median, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Requests per second.
    pub rps: f64,
}

/// summary.json of a load test: `run`'s keys, and the live figures.
#[derive(Debug, Clone, Serialize)]
pub struct LiveSummary {
    /// `run`'s keys (expectations include the live checks).
    #[serde(flatten)]
    pub summary: Summary,
    /// Users, run time, scale.
    pub live: cutover_sim::scenario::Live,
    /// The three attacks.
    pub attacks: Vec<AttackFigures>,
    /// User latency per rollout phase, measured at the router.
    pub router_user_latency_ms: Vec<crate::router::PhaseLatency>,
    /// The router's own part of the user's latency before the rollout, unshadowed and
    /// shadowed (the shadow mechanism's cost, apart from the machine's).
    pub router_own_ms: Vec<crate::router::PhaseLatency>,
    /// The model versions each stack stated in its answers.
    pub model_versions: Vec<crate::router::ModelVersion>,
    /// Shadow calls the router skipped (too many in flight).
    pub shadow_dropped: u64,
    /// The composed platform's stages and counts, when the new stack is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<PlatformReport>,
}

/// What the composed platform met during a load test.
#[derive(Debug, Clone, Serialize)]
pub struct PlatformReport {
    /// Latency of the feature store, the transforms and the model server.
    pub stages: Vec<crate::platform::StageLatency>,
    /// Missing and stale features, failures, materializations, model versions.
    pub counts: crate::platform::PlatformCounts,
}

fn figures(name: &str, m: &GooseMetrics) -> AttackFigures {
    let mut requests = 0;
    let mut failed = 0;
    let (mut p50, mut p99) = (0.0, 0.0);
    for agg in m.requests.values() {
        requests += agg.success_count + agg.fail_count;
        failed += agg.fail_count;
        let data = agg.coordinated_omission_data.as_ref().unwrap_or(&agg.raw_data);
        p50 = data.percentile_us(0.5) as f64 / 1000.0;
        p99 = data.percentile_us(0.99) as f64 / 1000.0;
    }
    AttackFigures {
        name: name.into(),
        requests,
        failed,
        p50_ms: p50,
        p99_ms: p99,
        rps: if m.duration > 0 { requests as f64 / m.duration as f64 } else { 0.0 },
    }
}

async fn attack(
    host: &str,
    users: usize,
    seconds: f64,
    out: &Path,
    name: &str,
    mitigate: bool,
    throttle: Option<usize>,
) -> anyhow::Result<GooseMetrics> {
    let mut config = GooseConfiguration::default();
    config.host = Some(host.to_string());
    config.users = Some(users);
    config.increase_rate = Some(format!("{users}"));
    config.run_time = Some(format!("{}", seconds.ceil().max(1.0) as u64));
    config.no_telnet = true;
    config.throttle_requests = throttle;
    config.quiet = 1;
    config.no_print_metrics = true;
    config.report_file = ["html", "json", "md"]
        .iter()
        .map(|ext| out.join(format!("goose-{name}.{ext}")).display().to_string())
        .collect();
    if mitigate {
        config.co_mitigation = Some(GooseCoordinatedOmissionMitigation::Average);
    }
    let metrics = GooseAttack::initialize_with_config(config)?
        .register_scenario(scenario!("score").register_transaction(transaction!(score)))
        .execute()
        .await?;
    Ok(metrics)
}

/// One request of a timed attack: when it went out and came back (wall clock), and how.
#[derive(Debug, Clone, PartialEq)]
pub struct TimedRequest {
    /// When the goose user sent it.
    pub sent: std::time::SystemTime,
    /// When its answer (or its failure) came back.
    pub done: std::time::SystemTime,
    /// Whether it was answered 2xx.
    pub ok: bool,
    /// Why not, as the client said.
    pub error: Option<String>,
}

/// The most requests a timed attack records.
const MAX_TIMED: usize = 5_000_000;

static TIMED: std::sync::Mutex<Vec<TimedRequest>> = std::sync::Mutex::new(Vec::new());

async fn score_timed(user: &mut GooseUser) -> TransactionResult {
    let payloads = PAYLOADS.read().unwrap_or_else(|e| e.into_inner()).clone();
    let Some(payloads) = payloads else { return Ok(()) };
    let body = payloads.next_request();
    let sent = std::time::SystemTime::now();
    let answer = user.post_json("/v1/score", &body).await;
    let done = std::time::SystemTime::now();
    // Goose's own refusals (a throttled request cancelled as the test ends) never went out.
    let Ok(a) = &answer else { return answer.map(|_| ()) };
    let error = match &a.response {
        Err(e) => Some(e.to_string()),
        Ok(r) if !r.status().is_success() => Some(r.status().to_string()),
        Ok(_) => None,
    };
    let mut timed = TIMED.lock().unwrap_or_else(|e| e.into_inner());
    if timed.len() < MAX_TIMED {
        timed.push(TimedRequest { sent, done, ok: error.is_none(), error });
    }
    drop(timed);
    Ok(())
}

/// Goose users against the router at `host` for `seconds` (at most `throttle` requests a
/// second in all), sending `payloads`; every request's wall-clock send and answer times
/// and outcome, for tests that must tell which requests failed when (a router killed and
/// restarted under load). One timed attack at a time in a process.
pub async fn timed_attack(
    host: &str,
    payloads: Arc<Payloads>,
    users: usize,
    seconds: u64,
    throttle: usize,
    out: &Path,
) -> anyhow::Result<(GooseMetrics, Vec<TimedRequest>)> {
    *PAYLOADS.write().unwrap_or_else(|e| e.into_inner()) = Some(payloads);
    TIMED.lock().unwrap_or_else(|e| e.into_inner()).clear();
    let mut config = GooseConfiguration::default();
    config.host = Some(host.to_string());
    config.users = Some(users);
    config.increase_rate = Some(format!("{users}"));
    config.run_time = Some(seconds.max(1).to_string());
    config.no_telnet = true;
    config.throttle_requests = Some(throttle);
    config.quiet = 1;
    config.no_print_metrics = true;
    config.no_reset_metrics = true;
    config.request_log = Some(out.join("goose-requests.json").display().to_string());
    config.request_format = Some(goose::logger::GooseLogFormat::Json);
    let metrics = GooseAttack::initialize_with_config(config)?
        .register_scenario(scenario!("score").register_transaction(transaction!(score_timed)))
        .execute()
        .await?;
    let timed = std::mem::take(&mut *TIMED.lock().unwrap_or_else(|e| e.into_inner()));
    Ok((metrics, timed))
}

/// What a finished load test leaves besides its summary.
struct RunOutputs<'a> {
    events: &'a [cutover_sim::core::history::Event],
    snapshot: &'a crate::router::Snapshot,
    lineage: Option<&'a cutover_sim::core::trace::Lineage>,
}

/// Writes summary.json, history.jsonl and report.html into `out`.
fn write_outputs(
    out: &Path,
    live_summary: &LiveSummary,
    run: &RunOutputs<'_>,
    answer: &cutover_migration::answer::Answer,
) -> anyhow::Result<()> {
    let write = |name: &str, text: String| -> anyhow::Result<()> {
        std::fs::write(out.join(name), text).map_err(|e| anyhow::anyhow!("{}: cannot write: {e}", out.display()))
    };
    write("summary.json", serde_json::to_string_pretty(&live_summary)? + "\n")?;
    let mut jsonl = String::new();
    for e in run.events {
        jsonl.push_str(&serde_json::to_string(e)?);
        jsonl.push('\n');
    }
    write("history.jsonl", jsonl)?;
    let data = ReportData {
        summary: &live_summary.summary,
        events: &run.snapshot.events,
        trace: &run.snapshot.trace,
        stage_stats: &run.snapshot.stage_stats,
        parity: &run.snapshot.parity,
        lineage: run.lineage,
        horizon_s: run.snapshot.now_s.max(1.0),
        answer,
    };
    write("report.html", dashboard::page(&data, PageKind::Report))?;
    Ok(())
}

/// The shadow's cost, as the expectations `shadow_cost_at_the_router` and
/// `shadow_cost_on_the_machine`.
fn shadow_cost(view: &crate::router::RolloutView, live: &cutover_sim::scenario::Live) -> Vec<Expectation> {
    let mut out = Vec::new();
    // The shadow's cost, from the router's own histograms (goose's buckets are too coarse
    // to see 5 %), before the rollout with shadowing toggled every half second: what it
    // adds to the router's own part of the user's latency (the mechanism's cost, checked
    // against `max_shadow_cost_ms`), and what it adds to the user's latency as a whole
    // (that plus the shadowed stack's load on a shared machine: checked only when
    // `max_shadow_machine_cost_pct` is set, reported always).
    let find = |list: &[crate::router::PhaseLatency], name: &str| list.iter().find(|p| p.phase == name).cloned();
    if let (Some(b), Some(sh)) = (find(&view.router_own_ms, "baseline"), find(&view.router_own_ms, "baseline_shadowed"))
    {
        let added = sh.p99 - b.p99;
        out.push(Expectation {
        name: "shadow_cost_at_the_router".into(),
        passed: added <= live.max_shadow_cost_ms,
        detail: format!(
            "the router's own p99 (user latency less the legacy call) {:.3} ms with every request shadowed ({} requests) against {:.3} ms without ({} requests): {:+.3} ms; limit {} ms",
            sh.p99, sh.requests, b.p99, b.requests, added, live.max_shadow_cost_ms
        ),
    });
    }
    if let (Some(b), Some(sh)) =
        (find(&view.user_latency_ms, "baseline"), find(&view.user_latency_ms, "baseline_shadowed"))
    {
        let pct = 100.0 * (sh.p99 / b.p99 - 1.0);
        let limit = live.max_shadow_machine_cost_pct;
        out.push(Expectation {
        name: "shadow_cost_on_the_machine".into(),
        passed: limit.is_none_or(|l| pct <= l),
        detail: format!(
            "user p99 at the router {:.3} ms with every request shadowed ({} requests) against {:.3} ms without ({} requests): {pct:+.1} %, {}",
            sh.p99,
            sh.requests,
            b.p99,
            b.requests,
            limit.map_or("reported, not checked (max_shadow_machine_cost_pct unset): it includes the co-located new stack's load".into(), |l| format!("limit {l} %"))
        ),
    });
    }
    out
}

/// A load test's faults, injected through the admin API as the scenario clock and the
/// rollout's moments come: the task, the faults as timed so far, and what went wrong.
struct Schedule {
    task: tokio::task::JoinHandle<()>,
    timed: Arc<std::sync::Mutex<Vec<Fault>>>,
    errors: Arc<std::sync::Mutex<Vec<String>>>,
}

/// Starts injecting `faults` (the scenario's, resolved) into the router at `url`: each at its
/// time on the compressed clock or its moment as the router sees it, cleared at its end.
fn schedule_faults(
    loaded: &LoadedScenario,
    faults: Vec<Fault>,
    state: Arc<crate::router::RouterState>,
    (url, token): (String, String),
    time_scale: f64,
) -> Schedule {
    let errors = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let roots = crate::faults::ArtifactRoots::of(&loaded.migration);
    let specs: Vec<serde_json::Value> = loaded
        .scenario
        .faults
        .iter()
        .zip(&faults)
        .map(|(f, resolved)| {
            let mut v = serde_json::to_value(f.get_ref()).expect("serializes");
            if let Some(o) = v.as_object_mut() {
                for timing in ["start_s", "end_s", "start_at", "end_at"] {
                    o.remove(timing);
                }
                o.retain(|_, x| !x.is_null());
                // The admin API reads artifacts only inside the migration folder or its
                // registry: the scenario's path is sent relative to the folder.
                match &resolved.kind {
                    Kind::ModelArtifact { artifact } => {
                        o.insert("artifact".into(), serde_json::json!(roots.relative(artifact)));
                    }
                    Kind::SpecSwitch { spec } => {
                        o.insert("spec".into(), serde_json::json!(roots.relative(spec)));
                    }
                    _ => {}
                }
                // A drift's ramp runs on the compressed clock too.
                if o.contains_key("ramp_s") {
                    let wall_s = resolved.ramp_us as f64 / 1e6 / time_scale;
                    o.insert("ramp_s".into(), serde_json::json!(wall_s));
                }
            }
            v
        })
        .collect();
    let kinds: Vec<Kind> = faults.iter().map(|f| f.kind.clone()).collect();
    let timed = Arc::new(std::sync::Mutex::new(faults));
    let stages = loaded.scenario.rollout.stages_pct.clone();
    let task = {
        let (timed, errors) = (timed.clone(), errors.clone());
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let n = timed.lock().unwrap_or_else(|e| e.into_inner()).len();
            let mut ids: Vec<Option<u64>> = vec![None; n];
            let (mut started, mut ended) = (vec![false; n], vec![false; n]);
            // The scenario clock and the rollout's moments, as the router sees them: a fault
            // timed by a moment starts its offset after the moment is seen.
            while !ended.iter().all(|e| *e) {
                let view = state.view();
                let now = (view.t_s * SECOND as f64) as u64;
                let mut due = Vec::new();
                for (k, f) in timed.lock().unwrap_or_else(|e| e.into_inner()).iter_mut().enumerate() {
                    f.at_moments(now, view.phase, &stages);
                    if !started[k] && now >= f.start_us {
                        started[k] = true;
                        ended[k] = f.kind == Kind::DecommissionLegacy;
                        due.push((k, true));
                    } else if started[k] && !ended[k] && now >= f.end_us {
                        ended[k] = true;
                        due.push((k, false));
                    }
                }
                for (k, start) in due {
                    let auth = |r: reqwest::RequestBuilder| r.bearer_auth(&token);
                    let note = |what: String| errors.lock().unwrap_or_else(|e| e.into_inner()).push(what);
                    if kinds[k] == Kind::DecommissionLegacy {
                        // Refused or not, the attempt is in the history.
                        if let Err(e) = auth(client.post(format!("{url}/admin/decommission"))).send().await {
                            note(format!("faults[{k}]: decommission call failed: {e}"));
                        }
                    } else if start {
                        match auth(client.post(format!("{url}/admin/faults"))).json(&specs[k]).send().await {
                            Ok(resp) if resp.status().is_success() => {
                                ids[k] = resp.json::<serde_json::Value>().await.ok().and_then(|v| v["id"].as_u64());
                            }
                            Ok(resp) => {
                                note(format!("faults[{k}]: refused: {}", resp.text().await.unwrap_or_default()))
                            }
                            Err(e) => note(format!("faults[{k}]: inject call failed: {e}")),
                        }
                    } else if let Some(id) = ids[k] {
                        if let Err(e) = auth(client.delete(format!("{url}/admin/faults/{id}"))).send().await {
                            note(format!("faults[{k}]: clear call failed: {e}"));
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    Schedule { task, timed, errors }
}

/// What a load test found.
pub struct Outcome {
    /// summary.json.
    pub summary: LiveSummary,
}

/// Runs a load test of `loaded` and writes its outputs into `out`.
/// Services beyond this machine are called only with `allow_remote`.
pub async fn loadtest(
    loaded: LoadedScenario,
    policy: Option<Policy>,
    out: &Path,
    allow_remote: bool,
) -> anyhow::Result<Outcome> {
    let s = loaded.scenario.clone();
    let file = loaded.path.display().to_string();
    let live =
        s.live.clone().ok_or_else(|| anyhow::anyhow!("{file}: field `live`: a load test needs a [live] section"))?;
    std::fs::create_dir_all(out).map_err(|e| anyhow::anyhow!("{}: cannot write: {e}", out.display()))?;
    let mut cfg = ServeConfig::new(loaded.clone());
    cfg.policy = policy;
    cfg.time_scale = live.time_scale;
    cfg.hold = true;
    cfg.allow_remote = allow_remote;
    let running = serve::start(cfg).await?;
    let url = running.url();
    eprintln!("cutover: live dashboard at {url}/dashboard");
    let m = &loaded.migration;
    let source = m.source(s.seed, s.traffic.rate_rps).map_err(|e| anyhow::anyhow!("{e}"))?;
    let payloads = Arc::new(Payloads::new(source, m.schema().clone(), live.time_scale));
    *PAYLOADS.write().unwrap_or_else(|e| e.into_inner()) = Some(payloads);
    let mitigate = s.guardrails.max_p99_latency_ratio.is_some();

    // 1. Before the rollout: legacy answers every user, and every other half second each
    // request is also shadowed to the new stack. Interleaving measures the shadow's cost
    // under the same conditions (the router keeps the two latency histograms apart).
    let toggler = {
        let state = running.state.clone();
        tokio::spawn(async move {
            let mut on = false;
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                on = !on;
                state.set_shadow_while_held(on);
            }
        })
    };
    let baseline =
        attack(&url, live.users, 2.0 * live.baseline_s, out, "baseline", mitigate, live.throttle_rps).await?;
    toggler.abort();
    running.state.set_shadow_while_held(false);
    // 2. The rollout starts: shadow first. The faults follow the scenario clock.
    let admin = reqwest::Client::new();
    let token = running.token.clone();
    let post = |path: &str| admin.post(format!("{url}{path}")).bearer_auth(&token);
    post("/admin/start").send().await?.error_for_status()?;
    let mut params = cutover_sim::streams::stream(s.seed, cutover_sim::streams::Stream::Params);
    let faults = loaded.faults(running.state.features(), &mut params).map_err(|e| anyhow::anyhow!("{e}"))?;
    let schedule =
        schedule_faults(&loaded, faults, running.state.clone(), (url.clone(), token.clone()), live.time_scale);
    let shadow_wall = s.rollout.shadow_s / live.time_scale;
    let shadow_s = live.baseline_s.min(shadow_wall * 0.8);
    let shadowed = attack(&url, live.users, shadow_s, out, "shadow", mitigate, live.throttle_rps).await?;
    // 3. The rest of the rollout.
    let rollout =
        attack(&url, live.users, (live.run_time_s - shadow_s).max(1.0), out, "rollout", mitigate, live.throttle_rps)
            .await?;
    schedule.task.abort();
    let view = running.state.view();
    let events = running.state.events();
    let snapshot = running.state.snapshot();
    let lineage = running.state.lineage().cloned();
    let platform_service = running.platform.clone();
    running.shutdown().await;
    // Read after the shutdown: the platform's job may still be pushing what it folded until
    // it stops, and every push it made is then counted (as the offline store holds it).
    let platform = platform_service.map(|p| PlatformReport { stages: p.stage_latency(), counts: p.counts() });

    let attacks = vec![figures("baseline", &baseline), figures("shadow", &shadowed), figures("rollout", &rollout)];
    let mut summary = view.summary.clone();
    let errors = schedule.errors.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let ended_us = (view.t_s * SECOND as f64) as u64;
    if let Some(e) = faults_started(&schedule.timed.lock().unwrap_or_else(|e| e.into_inner()), ended_us) {
        summary.expectations.push(e);
    }
    summary.expectations.push(Expectation {
        name: "faults_injected".into(),
        passed: errors.is_empty(),
        detail: if errors.is_empty() {
            format!("every fault of the scenario went in at its scaled time ({})", s.faults.len())
        } else {
            errors.join("; ")
        },
    });
    let failed: usize = attacks.iter().map(|a| a.failed).sum();
    summary.expectations.push(Expectation {
        name: "zero_failed_user_requests".into(),
        passed: failed == 0,
        detail: format!("{failed} of {} goose requests failed", attacks.iter().map(|a| a.requests).sum::<usize>()),
    });
    summary.expectations.extend(shadow_cost(&view, &live));
    summary.passed = summary.expectations.iter().all(|e| e.passed);
    summary.reproduce = format!("cutover loadtest {file}");
    let live_summary = LiveSummary {
        summary,
        live,
        attacks,
        router_user_latency_ms: view.user_latency_ms.clone(),
        router_own_ms: view.router_own_ms.clone(),
        model_versions: view.model_versions.clone(),
        shadow_dropped: view.shadow_dropped,
        platform,
    };
    let run = RunOutputs { events: &events, snapshot: &snapshot, lineage: lineage.as_ref() };
    write_outputs(out, &live_summary, &run, loaded.migration.answer())?;
    Ok(Outcome { summary: live_summary })
}

/// Where a load test writes by default.
pub fn default_out(scenario: &Path) -> PathBuf {
    PathBuf::from("target/loadtest").join(scenario.file_stem().unwrap_or_default())
}
