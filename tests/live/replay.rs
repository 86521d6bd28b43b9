//! `cutover replay` against HTTP services: recorded requests sent through cutover's router
//! to a legacy and a new service (here cutover's own stacks on loopback), their answers
//! paired and judged as in a live shadow; a skew injected into the new service is caught.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::{admin, start, PLAN, SERIAL};

pub(crate) fn sample(rows: usize) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("samples/recorded-requests.csv")).unwrap();
    let dir = std::env::temp_dir().join(format!("cutover-http-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("first-{rows}.csv"));
    std::fs::write(&file, text.lines().take(rows + 1).collect::<Vec<_>>().join("\n") + "\n").unwrap();
    file
}

fn replay(file: &Path, legacy: &str, new: &str, out: &Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args([
            "replay",
            "--migration",
            "domain/fraud",
            "--requests",
            file.to_str().unwrap(),
            "--legacy-url",
            legacy,
            "--new-url",
            new,
        ])
        .args(["--ask-features", "--rate-rps", "2000", "--out", out.to_str().unwrap()])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

fn json_of(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_against_services_pairs_their_answers_and_catches_a_skew() {
    let _serial = SERIAL.lock().await;
    let r = start(PLAN, true).await;
    let (legacy, new) = (format!("http://{}", r.legacy.unwrap()), format!("http://{}", r.new.unwrap()));
    let file = sample(1500);
    let out = file.with_extension("clean");
    let (f, l, n, o) = (file.clone(), legacy.clone(), new.clone(), out.clone());
    let run = tokio::task::spawn_blocking(move || replay(&f, &l, &n, &o)).await.unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    assert_eq!(run.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&run.stderr));
    assert!(stdout.contains("sent 1500 rows"), "{stdout}");
    let s = json_of(&out.join("summary.json"));
    assert_eq!(s["requests_total"], 1500, "every request paired and judged");
    assert_eq!(s["outcome"], "in_progress");
    let rep = json_of(&out.join("replay.json"));
    // The legacy service reproduces the recorded answers bit for bit (sent in order).
    assert_eq!(rep["baseline"]["scores_exact"], 1500, "{rep:#}");
    // Feature rows came back: parity by feature and segment, all equal on a clean pair.
    let parity = json_of(&out.join("parity.json"));
    let all = &parity[0]["segments"][0];
    assert_eq!((all["segment"].as_str(), all["requests"].as_u64()), (Some("all"), Some(1500)));
    assert_eq!(all["mismatch_rate"], 0.0);
    assert!(std::fs::read_to_string(out.join("report.html")).unwrap().contains("data-panel=\"parity\""));

    // The same traffic with the new service serving amounts in cents.
    let fault = json!({"kind": "feature_skew", "feature": "amount_eur", "scale": 100.0});
    let resp = admin(&r, reqwest::Method::POST, "/admin/faults").json(&fault).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let skewed = file.with_extension("skewed");
    let (f, o) = (file.clone(), skewed.clone());
    let run = tokio::task::spawn_blocking(move || replay(&f, &legacy, &new, &o)).await.unwrap();
    assert_eq!(run.status.code(), Some(1), "{}", String::from_utf8_lossy(&run.stdout));
    let s = json_of(&skewed.join("summary.json"));
    assert_eq!(s["outcome"], "rolled_back", "{s:#}");
    let guardrail = s["trigger"]["guardrail"].as_str().unwrap();
    assert!(
        ["decision_flip_rate", "mean_abs_score_diff", "feature_mismatch_rate"].contains(&guardrail),
        "rolled back on {guardrail}"
    );
    // The parity report names the skewed feature.
    let parity = json_of(&skewed.join("parity.json"));
    let amount = parity.as_array().unwrap().iter().find(|f| f["feature"] == "amount_eur").unwrap();
    assert!(amount["segments"][0]["mismatch_rate"].as_f64().unwrap() > 0.9, "{amount:#}");
    let rep = json_of(&skewed.join("replay.json"));
    assert_eq!(rep["decisions"][0]["decision"]["decision"], "roll_back", "{rep:#}");
    r.shutdown().await;
}

#[test]
fn services_beyond_this_machine_are_refused_unless_allowed() {
    let file = sample(10);
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["replay", "--migration", "domain/fraud", "--requests", file.to_str().unwrap()])
        .args(["--legacy-url", "http://192.0.2.1:8080", "--new-url", "http://127.0.0.1:1"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--legacy-url"), "{}", String::from_utf8_lossy(&o.stderr));
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args([
            "replay",
            "--migration",
            "domain/fraud",
            "--requests",
            file.to_str().unwrap(),
            "--legacy-url",
            "http://127.0.0.1:1",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "--legacy-url without --new-url");
}

/// (Issue 28: a replay of 40 rows against a new stack that is not there said "pass".)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_too_short_to_judge_says_so_instead_of_passing() {
    let _serial = SERIAL.lock().await;
    let r = start(PLAN, true).await;
    let legacy = format!("http://{}", r.legacy.unwrap());
    // A new stack that is not there: a port bound, then released.
    let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let file = sample(40);
    let out = file.with_extension("dead");
    let (f, o) = (file.clone(), out.clone());
    let run = tokio::task::spawn_blocking(move || replay(&f, &legacy, &format!("http://{gone}"), &o)).await.unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
    assert_eq!(run.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("enough_rows_to_judge did not hold") && stderr.contains("replay more rows"), "{stderr}");
    let s = json_of(&out.join("summary.json"));
    let e = s["expectations"].as_array().unwrap().iter().find(|e| e["name"] == "enough_rows_to_judge").unwrap();
    assert_eq!(e["passed"], false, "{e}");
    assert!(e["detail"].as_str().unwrap().starts_with("40 paired requests"), "{e}");
    // Users were served by legacy throughout.
    let zero = s["expectations"].as_array().unwrap().iter().find(|e| e["name"] == "zero_failed_requests").unwrap();
    assert_eq!(zero["passed"], true, "{zero}");
    r.shutdown().await;
}
