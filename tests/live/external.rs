//! A team's own services behind the router, as its migration folder declares them
//! (`[stacks.legacy]`, `[stacks.new]` of kind `http`): the body built from the request by a
//! template, the score, decision, model version and model row read by JSON pointers.
//! The "team's services" here speak an API of their own (other field names, a nested
//! answer, upper-case verdicts) and score through cutover's own stacks behind them, so a
//! wrong mapping shows as a failed call.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::{body, start, PLAN, SERIAL};

/// The team's API: its own names for the request's fields.
const NAMES: [(&str, &str); 12] = [
    ("transaction_id", "txn"),
    ("customer_id", "cust"),
    ("event_time_ms", "ts"),
    ("amount", "amt"),
    ("currency", "ccy"),
    ("merchant_category", "mcc"),
    ("country", "ctry"),
    ("channel", "chan"),
    ("device_os", "os"),
    ("account_age_days", "age"),
    ("card_present", "cp"),
    ("distance_from_home_km", "dist"),
];

struct Team {
    /// The cutover stack that really scores.
    inner: String,
    version: &'static str,
    client: reqwest::Client,
}

/// `POST /api/predict` `{"request": {txn, cust, ...}, "trace": "id-<txn>"}` answers
/// `{"result": {"p", "verdict"}, "model": {"version"}, "debug": {"row"}}`.
async fn predict(State(team): State<Arc<Team>>, Json(v): Json<Value>) -> Result<Json<Value>, (StatusCode, String)> {
    let bad = |m: &str| (StatusCode::BAD_REQUEST, m.to_string());
    let r = v.get("request").and_then(Value::as_object).ok_or_else(|| bad("no request"))?;
    let txn = r.get("txn").ok_or_else(|| bad("no txn"))?;
    if v.get("trace") != Some(&json!(format!("id-{txn}"))) {
        return Err(bad("trace must be id-<txn>"));
    }
    let mut ours = serde_json::Map::new();
    for (field, theirs) in NAMES {
        match r.get(theirs) {
            Some(Value::Null) | None => {}
            Some(x) => {
                ours.insert(field.into(), x.clone());
            }
        }
    }
    let resp = team
        .client
        .post(format!("{}/v1/score", team.inner))
        .header("x-cutover-features", "1")
        .json(&ours)
        .send()
        .await
        .map_err(|e| (StatusCode::BAD_GATEWAY, e.to_string()))?;
    if !resp.status().is_success() {
        return Err((StatusCode::BAD_GATEWAY, resp.text().await.unwrap_or_default()));
    }
    let a: Value = resp.json().await.map_err(|e| (StatusCode::BAD_GATEWAY, e.to_string()))?;
    Ok(Json(json!({
        "result": {"p": a["score"], "verdict": a["decision"].as_str().unwrap_or("").to_uppercase()},
        "model": {"version": team.version},
        "debug": {"row": a["features"]},
    })))
}

async fn team_service(inner: String, version: &'static str) -> String {
    let team = Arc::new(Team { inner, version, client: reqwest::Client::new() });
    let app = Router::new().route("/api/predict", post(predict)).with_state(team);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// The bundled fraud folder, copied, with `extra` appended to its migration.toml.
pub(crate) fn fraud_folder(name: &str, extra: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(&root.join("domain/fraud"), &dir);
    let mut text = std::fs::read_to_string(dir.join("migration.toml")).unwrap();
    text.push_str(extra);
    std::fs::write(dir.join("migration.toml"), text).unwrap();
    dir
}

fn declared(which: &str, url: &str) -> String {
    let fields: Vec<String> = NAMES.iter().map(|(ours, theirs)| format!("{theirs} = \"{{{ours}}}\"")).collect();
    format!(
        r#"
[stacks.{which}]
kind = "http"
url = "{url}"
path = "/api/predict"
body = {{ request = {{ {} }}, trace = "id-{{transaction_id}}" }}
score = "/result/p"
decision = "/result/verdict"
model_version = "/model/version"
features = "/debug/row"
"#,
        fields.join(", ")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_teams_own_services_are_called_on_their_api_as_the_folder_declares() {
    let _serial = SERIAL.lock().await;
    let inner = start(PLAN, true).await;
    let legacy = team_service(format!("http://{}", inner.legacy.unwrap()), "team-v1").await;
    let new = team_service(format!("http://{}", inner.new.unwrap()), "team-v2").await;
    let dir = fraud_folder("external-api", &(declared("legacy", &legacy) + &declared("new", &new)));
    let plan = format!("migration = {:?}\n{PLAN}", dir.display().to_string());
    let mut cfg = cutover_loadgen::ServeConfig::new(super::scenario(&plan));
    cfg.time_scale = 60.0;
    cfg.hold = true;
    let outer = cutover_loadgen::start(cfg).await.unwrap();
    assert!(outer.legacy.is_none() && outer.new.is_none(), "no stacks of its own");
    let client = reqwest::Client::new();
    let ready = client.get(format!("{}/readyz", outer.url())).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 200, "{}", ready.text().await.unwrap());
    super::admin(&outer, reqwest::Method::POST, "/admin/start").send().await.unwrap();
    for i in 0..300 {
        let resp = client.post(format!("{}/v1/score", outer.url())).json(&body(5, i)).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        // The user gets the team's answer as its service wrote it.
        let a: Value = resp.json().await.unwrap();
        assert!(a["result"]["p"].is_number() && a["model"]["version"].is_string(), "{a}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let v = super::rollout(&outer).await;
    assert_eq!(v["requests_total"], 300, "{v:#}");
    assert_eq!(v["requests_failed"], 0, "{v:#}");
    // Every answer of both services was read, its version counted.
    let versions = v["model_versions"].as_array().unwrap();
    let answers = |stack: &str, version: &str| {
        versions.iter().find(|x| x["stack"] == stack && x["version"] == version).map(|x| x["answers"].as_u64().unwrap())
    };
    assert_eq!(answers("legacy", "team-v1"), Some(300), "{versions:?}");
    assert!(answers("new", "team-v2").unwrap_or(0) >= 290, "{versions:?}");
    // The model rows read from `/debug/row` feed the feature parity.
    let parity = outer.state.snapshot().parity;
    assert!(!parity.is_empty(), "feature parity from the declared rows");
    assert!(v["summary"]["trigger"].is_null(), "the same models on both sides: {v:#}");
    outer.shutdown().await;
    inner.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_goes_to_the_declared_services_on_their_api() {
    let _serial = SERIAL.lock().await;
    let inner = start(PLAN, true).await;
    let legacy = team_service(format!("http://{}", inner.legacy.unwrap()), "team-v1").await;
    let new = team_service(format!("http://{}", inner.new.unwrap()), "team-v2").await;
    let dir = fraud_folder("external-replay", &(declared("legacy", &legacy) + &declared("new", &new)));
    let file = super::replay::sample(800);
    let out = file.with_extension("declared");
    let (f, d, o) = (file.clone(), dir.clone(), out.clone());
    let run = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
            .args(["replay", "--requests", f.to_str().unwrap(), "--migration", d.to_str().unwrap(), "--stacks"])
            .args(["--rate-rps", "2000", "--out", o.to_str().unwrap()])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    assert_eq!(run.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&run.stderr));
    assert!(stdout.contains("sent 800 rows") && stdout.contains("--stacks"), "{stdout}");
    let read =
        |name: &str| -> Value { serde_json::from_str(&std::fs::read_to_string(out.join(name)).unwrap()).unwrap() };
    assert_eq!(read("summary.json")["requests_total"], 800);
    // The team's legacy service, read by its pointers, reproduces the recorded answers.
    let rep = read("replay.json");
    assert_eq!(rep["baseline"]["scores_exact"], 800, "{rep:#}");
    // Its model rows came back through `/debug/row`: parity by feature.
    let parity = read("parity.json");
    assert_eq!(parity[0]["segments"][0]["requests"], 800, "{parity:#}");
    inner.shutdown().await;
}

#[test]
fn declared_services_beyond_this_machine_are_refused_unless_allowed() {
    let dir = fraud_folder("external-remote", &declared("legacy", "http://192.0.2.1:9000"));
    let file = super::replay::sample(5);
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["replay", "--requests", file.to_str().unwrap(), "--migration", dir.to_str().unwrap(), "--stacks"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("migration.toml") && err.contains("`stacks.legacy.url`") && err.contains("--allow-remote"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}
