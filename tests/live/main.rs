//! The live services on loopback: bad requests answered with 4xx while serving goes on,
//! the admin API behind its token, and whole rollouts on real sockets (a skew and a latency
//! fault rolled back, a clean migration promoted, a goose load test). Each test is bounded
//! to about 20 s of wall time.
//!
//! A test binary of its own, and one test at a time: a live rollout judges real latencies,
//! which the simulator's tests (or another live test) running beside it on a two-core
//! machine would distort.

mod browser;
mod docs;
mod external;
mod guide;
mod hostile;
mod platform;
mod replay;
mod restart;
mod upstream;

use std::sync::Arc;
use std::time::Duration;

use cutover_loadgen::drive::{drive, Payloads};
use cutover_loadgen::{Running, ServeConfig};
use cutover_sim::scenario::LoadedScenario;
use serde_json::{json, Value};

/// A plan compressed 60x: shadow 1 s, stages [5, 50, 100] of 1 s each, 2 s warm.
/// One live test at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const PLAN: &str = r#"
name = "live-test"
seed = 9
[traffic]
rate_rps = 200
duration_s = 900
[rollout]
shadow_s = 60
stages_pct = [5, 50, 100]
bake_s = 60
keep_legacy_warm_s = 120
min_requests_per_stage = 50
[controller]
policy = "sequential"
[guardrails]
max_decision_flip_rate = 0.002
max_mean_abs_score_diff = 0.002
max_feature_mismatch_rate = 0.005
max_error_rate = 0.01
max_timeout_rate = 0.01
max_p99_latency_ratio = 5.0
[expect]
outcome = "promoted"
"#;

/// A plan parsed as if written at the repository's root; one that names no migration folder
/// runs the bundled fraud one.
fn scenario(text: &str) -> LoadedScenario {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = if text.starts_with("migration = ") || text.contains("\nmigration = ") {
        text.to_string()
    } else {
        format!("migration = \"domain/fraud\"\n{text}")
    };
    LoadedScenario::parse(&text, "live-test.toml", "live-test.toml".into(), root.to_path_buf()).unwrap()
}

async fn start(text: &str, hold: bool) -> Running {
    let mut cfg = ServeConfig::new(scenario(text));
    cfg.time_scale = 60.0;
    cfg.hold = hold;
    cutover_loadgen::start(cfg).await.unwrap()
}

fn admin(r: &Running, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new().request(method, format!("{}{path}", r.url())).bearer_auth(&r.token)
}

async fn rollout(r: &Running) -> Value {
    admin(r, reqwest::Method::GET, "/admin/rollout").send().await.unwrap().json().await.unwrap()
}

fn body(seed: u64, i: u64) -> Value {
    let m = cutover_migration::Migration::bundled_fraud().unwrap();
    let source = m.source(seed, 200.0).unwrap();
    let mut r = m.schema().record();
    source.fill(i, source.time_at_rate(i, 200.0), &mut r);
    source.render(i, &r)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_a_4xx_naming_the_field_and_serving_goes_on() {
    let r = start(PLAN, true).await;
    let client = reqwest::Client::new();
    let good = body(1, 7);
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("amount");
    let mut mistyped = good.clone();
    mistyped["card_present"] = json!("yes");
    let oversized = format!("{{\"pad\": \"{}\"}}", "x".repeat(20_000));
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (b"{\"amount\": 1".to_vec(), 400, "body"),
        (serde_json::to_vec(&missing).unwrap(), 422, "amount"),
        (serde_json::to_vec(&mistyped).unwrap(), 422, "card_present"),
        (oversized.into_bytes(), 413, "body"),
    ];
    for base in [r.url(), format!("http://{}", r.legacy.unwrap()), format!("http://{}", r.new.unwrap())] {
        for (b, status, field) in &cases {
            let resp = client.post(format!("{base}/v1/score")).body(b.clone()).send().await.unwrap();
            assert_eq!(resp.status().as_u16(), *status, "{base}");
            let v: Value = resp.json().await.unwrap();
            assert_eq!(v["field"], *field, "{base}: {v}");
            assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{v}");
        }
        let resp = client.get(format!("{base}/no/such/path")).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 404);
        // And the service still answers a good request.
        let resp = client.post(format!("{base}/v1/score")).json(&good).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{base}");
        let v: Value = resp.json().await.unwrap();
        assert!(v["score"].as_f64().is_some_and(|s| (0.0..=1.0).contains(&s)), "{v}");
        assert!(v["decision"] == "block" || v["decision"] == "allow", "{v}");
        assert_eq!(v["model_sha256"].as_str().unwrap().len(), 64, "{v}");
        assert!(v["stack"] == "legacy" || v["stack"] == "new", "{v}");
        assert!(v.get("features").is_none(), "the model row is not the user's: {v}");
    }
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_refuses_calls_without_the_token() {
    let _serial = SERIAL.lock().await;
    let r = start(PLAN, true).await;
    let client = reqwest::Client::new();
    for (method, path) in
        [("GET", "/admin/rollout"), ("POST", "/admin/rollback"), ("POST", "/admin/faults"), ("POST", "/admin/start")]
    {
        let m: reqwest::Method = method.parse().unwrap();
        let none = client.request(m.clone(), format!("{}{path}", r.url())).send().await.unwrap();
        assert_eq!(none.status().as_u16(), 401, "{method} {path}");
        let v: Value = none.json().await.unwrap();
        assert_eq!(v["field"], "authorization");
        let wrong =
            client.request(m, format!("{}{path}", r.url())).bearer_auth("not-the-token-at-all").send().await.unwrap();
        assert_eq!(wrong.status().as_u16(), 401, "{method} {path}");
    }
    // Nothing happened: still held, nothing injected.
    let v = rollout(&r).await;
    assert_eq!(v["started"], false);
    assert_eq!(v["faults"], json!([]));
    // A bad fault table is refused naming the field.
    let resp = admin(&r, reqwest::Method::POST, "/admin/faults")
        .json(&json!({"kind": "feature_skew", "scale": 100}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 422);
    assert_eq!(resp.json::<Value>().await.unwrap()["field"], "feature");
    r.shutdown().await;
}

/// Starts the rollout, injects `fault` (if any) once the rollout is `at_s` scenario seconds
/// in, drives load until the rollout settles or 15 s pass, and returns the final view and
/// the drive's failures.
async fn rollout_with(text: &str, fault: Option<(f64, Value)>) -> (Value, u64, Running) {
    let r = start(text, true).await;
    let payloads = Arc::new(
        Payloads::for_migration(&cutover_migration::Migration::bundled_fraud().unwrap(), 9, 200.0, 60.0).unwrap(),
    );
    let state = r.state.clone();
    let settled = move || {
        let v = state.view();
        matches!(v.phase, cutover_sim::Phase::RolledBack | cutover_sim::Phase::Promoted | cutover_sim::Phase::Retired)
    };
    let url = r.url();
    let load = tokio::spawn(async move { drive(&url, payloads, 6, Duration::from_secs(15), settled).await });
    admin(&r, reqwest::Method::POST, "/admin/start").send().await.unwrap();
    if let Some((at_s, spec)) = fault {
        while rollout(&r).await["t_s"].as_f64().unwrap() < at_s {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let resp = admin(&r, reqwest::Method::POST, "/admin/faults").json(&spec).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 201, "{}", resp.text().await.unwrap());
    }
    let report = load.await.unwrap();
    assert!(report.ok > 500, "only {} requests answered: {:#}", report.ok, rollout(&r).await);
    (rollout(&r).await, report.failed, r)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_migration_promotes_on_real_sockets() {
    let _serial = SERIAL.lock().await;
    let (v, failed, r) = rollout_with(PLAN, None).await;
    assert_eq!(v["phase"], "promoted", "{v:#}");
    assert_eq!(failed, 0, "user requests failed");
    assert_eq!(v["summary"]["bad_decisions_served"], 0);
    assert_eq!(v["requests_failed"], 0);
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feature_skew_is_rolled_back_within_the_slo() {
    let _serial = SERIAL.lock().await;
    let fault = json!({"kind": "feature_skew", "feature": "amount_eur", "scale": 100.0});
    let (v, failed, r) = rollout_with(PLAN, Some((90.0, fault))).await;
    assert_eq!(v["phase"], "rolled_back", "{v:#}");
    let s = &v["summary"];
    let ttr = s["rollback_completed_s"].as_f64().unwrap() - s["fault_start_s"].as_f64().unwrap();
    // 60 scenario seconds is one wall second here.
    assert!((0.0..=60.0).contains(&ttr), "rolled back {ttr} scenario seconds after the fault: {v:#}");
    assert_eq!(failed, 0, "user requests failed");
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feature_definition_switched_mid_rollout_is_rolled_back_on_the_features_it_changes() {
    let _serial = SERIAL.lock().await;
    let fault = json!({"kind": "spec_switch", "spec": "drift/new-hour-utc.toml"});
    let (v, failed, r) = rollout_with(PLAN, Some((90.0, fault))).await;
    assert_eq!(v["phase"], "rolled_back", "{v:#}");
    let trigger = &v["summary"]["trigger"];
    assert_eq!(trigger["guardrail"], "feature_mismatch_rate", "{v:#}");
    assert!(["hour_local", "day_of_week_local"].contains(&trigger["feature"].as_str().unwrap()), "{trigger}");
    assert_eq!(failed, 0, "user requests failed");
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_latency_fault_is_rolled_back_with_no_failed_request() {
    let _serial = SERIAL.lock().await;
    let fault = json!({"kind": "latency", "add_ms": 25.0});
    let (v, failed, r) = rollout_with(PLAN, Some((90.0, fault))).await;
    assert_eq!(v["phase"], "rolled_back", "{v:#}");
    assert_eq!(v["summary"]["trigger"]["guardrail"], "p99_latency_ratio", "{v:#}");
    assert_eq!(failed, 0, "user requests failed");
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_fronts_external_stacks_with_their_own_field_names() {
    let _serial = SERIAL.lock().await;
    // cutover's own stacks stand in for a team's staging services: a second router fronts
    // them by URL, reading `score` and `decision` as configured.
    let inner = start(PLAN, true).await;
    let mut cfg = ServeConfig::new(scenario(PLAN));
    cfg.time_scale = 60.0;
    cfg.legacy_url = Some(format!("http://{}/", inner.legacy.unwrap()));
    cfg.new_url = Some(format!("http://{}", inner.new.unwrap()));
    let outer = cutover_loadgen::start(cfg).await.unwrap();
    assert!(outer.legacy.is_none() && outer.new.is_none(), "no stacks of its own");
    let client = reqwest::Client::new();
    let ready = client.get(format!("{}/readyz", outer.url())).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 200);
    for i in 0..200 {
        let resp = client.post(format!("{}/v1/score", outer.url())).json(&body(3, i)).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200);
    }
    // Shadow calls are paired off the user's path: wait for them to land.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let v = admin(&outer, reqwest::Method::GET, "/admin/rollout").send().await.unwrap().json::<Value>().await.unwrap();
    assert_eq!(v["requests_total"], 200, "{v:#}");
    assert_eq!(v["requests_failed"], 0);
    // On a service of its own a team's router acts out what it reaches from outside; what
    // acts inside the service is refused in one line.
    let inject = |spec: Value| admin(&outer, reqwest::Method::POST, "/admin/faults").json(&spec).send();
    let resp = inject(json!({"kind": "feature_skew", "feature": "amount_eur", "scale": 2.0})).await.unwrap();
    assert_eq!(resp.status().as_u16(), 422);
    let e: Value = resp.json().await.unwrap();
    assert!(e.to_string().contains("where the router cannot reach"), "{e}");
    // Labels stated the other way round: every paired decision flips, scores unchanged.
    let resp = inject(json!({"kind": "decision_labels", "map": {"allow": "block", "block": "allow"}})).await.unwrap();
    assert_eq!(resp.status().as_u16(), 201, "{}", resp.text().await.unwrap());
    admin(&outer, reqwest::Method::POST, "/admin/start").send().await.unwrap();
    for i in 0..400 {
        let resp = client.post(format!("{}/v1/score", outer.url())).json(&body(4, i)).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200, "users are served whatever the new stack says");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let v = admin(&outer, reqwest::Method::GET, "/admin/rollout").send().await.unwrap().json::<Value>().await.unwrap();
    assert_eq!(v["phase"], "rolled_back", "{v:#}");
    assert_eq!(v["summary"]["trigger"]["guardrail"], "decision_flip_rate", "{v:#}");
    assert_eq!(v["requests_failed"], 0);
    outer.shutdown().await;
    inner.shutdown().await;
}

#[test]
fn serve_prints_its_addresses_and_token_and_stops_cleanly_on_ctrl_c() {
    let _serial = SERIAL.blocking_lock();
    let (mut child, printed) = serve_child(&[]);
    let router = &printed["router"];
    assert!(router.starts_with("http://127.0.0.1:"), "{printed:?}");
    assert!(printed["legacy"].starts_with("http://127.0.0.1:") && printed["new"].starts_with("http://127.0.0.1:"));
    let token = &printed["token"];
    assert_eq!(token.len(), 32, "a generated token: {token}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = reqwest::Client::new();
        let resp = client.post(format!("{router}/v1/score")).json(&body(2, 1)).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let resp = client.get(format!("{router}/admin/rollout")).bearer_auth(token).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let metrics = client.get(format!("{router}/metrics")).send().await.unwrap().text().await.unwrap();
        assert!(metrics.contains("cutover_router_requests_total"), "{metrics}");
    });
    // Ctrl-C: a graceful stop with exit code 0.
    let code = ctrl_c(&mut child, Duration::from_secs(10));
    assert!(code.success(), "{code:?}");
}

/// `cutover serve --hold` on the live plan as a child process, with the addresses and token
/// it prints first (`router`, `legacy`, `new`, `token`); what it prints later is read and
/// dropped, so it never blocks on a full pipe.
fn serve_child(extra: &[&str]) -> (std::process::Child, std::collections::HashMap<String, String>) {
    let mut args = vec!["serve", "--scenario", "scenarios/live/clean-promotes.toml", "--hold"];
    args.extend_from_slice(extra);
    cutover_child(&args)
}

/// `cutover ARGS...` (a command that serves) as a child process, with what it prints up to
/// and including its `token` line (`router`, `legacy` and `new` where it starts them);
/// what it prints later is read and dropped (stderr is left to the caller).
fn cutover_child(args: &[&str]) -> (std::process::Child, std::collections::HashMap<String, String>) {
    use std::io::BufRead;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(args)
        .current_dir(root)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = std::collections::HashMap::new();
    while !printed.contains_key("token") {
        let line =
            lines.next().unwrap_or_else(|| panic!("cutover {args:?} stopped before printing its token")).unwrap();
        let (k, v) = line.split_once(char::is_whitespace).unwrap();
        printed.insert(k.to_string(), v.trim().to_string());
    }
    std::thread::spawn(move || for _ in lines {});
    (child, printed)
}

/// Sends Ctrl-C (SIGINT) to a child and waits for it to exit, at most `within`.
fn ctrl_c(child: &mut std::process::Child, within: Duration) -> std::process::ExitStatus {
    let status = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    wait_exit(child, within)
}

/// Waits for a child to exit, at most `within`.
fn wait_exit(child: &mut std::process::Child, within: Duration) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(std::time::Instant::now() < deadline, "the process did not stop on Ctrl-C");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn bad_live_input_exits_2_naming_the_place() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::temp_dir().join(format!("cutover-live-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("serve.toml");
    std::fs::write(&config, "port = 0\ncolour = \"red\"\n").unwrap();
    let config = config.to_str().unwrap().to_string();
    let cases: Vec<(Vec<&str>, String)> = vec![
        (vec!["loadtest", "scenarios/clean-baseline.toml"], "field `live`".into()),
        (vec!["serve", "--scenario", "scenarios/live/clean-promotes.toml", "--time-scale", "0"], "--time-scale".into()),
        (
            vec!["serve", "--scenario", "scenarios/live/clean-promotes.toml", "--legacy-url", "ftp://x"],
            "--legacy-url".into(),
        ),
        (vec!["serve", "--scenario", "scenarios/live/clean-promotes.toml", "--token", "short"], "--token".into()),
        (vec!["serve", "--config", &config], format!("{config}:2:1")),
    ];
    for (args, want) in cases {
        let out =
            std::process::Command::new(env!("CARGO_BIN_EXE_cutover")).args(&args).current_dir(root).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(&want), "{args:?}: wanted `{want}` in {err}");
    }
}

#[test]
fn a_goose_load_test_writes_run_s_summary_and_goose_s_reports() {
    let _serial = SERIAL.blocking_lock();
    // A whole `cutover loadtest` in about 8 s: 3 goose users, a 600x plan.
    let dir = std::env::temp_dir().join(format!("cutover-loadtest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let scenario = dir.join("short-live.toml");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = format!("migration = {:?}\n", root.join("domain/fraud").display().to_string())
        + &PLAN.replace("name = \"live-test\"", "name = \"short-live\"")
        // A request field as the new path reads it, from the moment the 50 % stage begins.
        + "[[faults]]\nkind = \"field_skew\"\nstart_at = \"canary:50\"\nfield = \"amount\"\nscale = 100.0\n"
        + "[live]\nusers = 3\nrun_time_s = 4\ntime_scale = 600\nbaseline_s = 1\nthrottle_rps = 300\n";
    let text = text.replace("outcome = \"promoted\"", "outcome = \"rolled_back\"\nrollback_within_s = 600");
    std::fs::write(&scenario, text).unwrap();
    let out = dir.join("out");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["loadtest", scenario.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .current_dir(root)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    // Exit 0 or 1 (the shadow's cost is a measured figure here, not a given).
    assert!(matches!(run.status.code(), Some(0 | 1)), "{stdout}\n{}", String::from_utf8_lossy(&run.stderr));
    let s: Value = serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    for key in [
        "scenario",
        "seed",
        "outcome",
        "passed",
        "expectations",
        "fault_start_s",
        "detected_at_s",
        "rollback_completed_s",
        "trigger",
        "bad_decisions_served",
        "requests_total",
        "requests_failed",
        "stages",
        "history_sha256",
    ] {
        assert!(s.get(key).is_some(), "summary.json lacks {key}: {s:#}");
    }
    assert_eq!(s["outcome"], "rolled_back", "{s:#}");
    let held = |name: &str| {
        s["expectations"].as_array().unwrap().iter().find(|e| e["name"] == name).unwrap()["passed"].clone()
    };
    assert_eq!(held("zero_failed_user_requests"), true, "{s:#}");
    assert_eq!(held("faults_injected"), true, "{s:#}");
    assert_eq!(held("faults_started"), true, "{s:#}");
    let entered =
        s["stages"].as_array().unwrap().iter().find(|x| x["weight_pct"] == 50.0).unwrap()["entered_s"].clone();
    let start = s["fault_start_s"].as_f64().unwrap();
    assert!(start >= entered.as_f64().unwrap(), "the fault started at {start} s, before its stage at {entered} s");
    assert_eq!(held("rollback_within_s"), true, "{s:#}");
    // The shadow's cost, both figures: the router's own (checked) and the machine's (reported).
    assert_eq!(held("shadow_cost_at_the_router"), true, "{s:#}");
    assert_eq!(held("shadow_cost_on_the_machine"), true, "unset limit: reported only: {s:#}");
    let own = s["router_own_ms"].as_array().unwrap();
    assert_eq!(own.len(), 2, "{own:?}");
    assert!(own.iter().all(|p| p["requests"].as_u64().unwrap() > 100 && p["p99"].as_f64().unwrap() > 0.0), "{own:?}");
    let attacks = s["attacks"].as_array().unwrap();
    assert_eq!(attacks.len(), 3);
    assert!(attacks.iter().all(|a| a["requests"].as_u64().unwrap() > 0 && a["failed"] == 0), "{attacks:?}");
    for name in ["baseline", "shadow", "rollout"] {
        for ext in ["html", "json", "md"] {
            assert!(out.join(format!("goose-{name}.{ext}")).exists(), "goose-{name}.{ext}");
        }
    }
    assert!(std::fs::read_to_string(out.join("history.jsonl")).unwrap().contains("\"event\":\"stage\""));
}
