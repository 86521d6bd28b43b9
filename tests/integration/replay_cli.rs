//! `cutover replay` and `cutover record`: recorded traffic through both paths with the
//! outputs of `run`, the legacy service's recorded answers reproduced, a plan dry-run on
//! recorded traffic, bad rows named or skipped and counted, the same history for the same
//! requests whatever their file's format or column names.

use std::path::{Path, PathBuf};

use crate::support::{self, in_root as cutover, root};

const SAMPLE: &str = "samples/recorded-requests.csv";

fn scratch(name: &str) -> PathBuf {
    support::scratch("replay", name)
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Replays `file` (with `extra` flags) into a fresh folder; the folder and the process output.
fn replay(name: &str, file: &str, extra: &[&str]) -> (PathBuf, std::process::Output) {
    let out = scratch(name);
    let mut args = vec!["replay", "--migration", "domain/fraud", "--requests", file, "--out", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    let o = cutover(&args);
    (out, o)
}

#[test]
fn the_committed_sample_is_what_record_writes() {
    let dir = scratch("record");
    let file = dir.join("again.csv");
    let o = cutover(&[
        "record",
        "--migration",
        "domain/fraud",
        "--requests",
        "20000",
        "--rate-rps",
        "5",
        "--seed",
        "1",
        "--out",
        file.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(std::fs::read(&file).unwrap() == std::fs::read(root().join(SAMPLE)).unwrap(), "the sample drifted");
}

#[test]
fn a_replay_writes_run_s_outputs_and_reproduces_the_recorded_legacy_answers() {
    let (out, o) = replay("plain", SAMPLE, &[]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.contains("replayed 20000 rows"), "{stdout}");
    let s = json(&out.join("summary.json"));
    // The same keys as run's summary.json.
    let (run_out, _) = (scratch("run-for-keys"), ());
    let r = cutover(&["run", "scenarios/clean-baseline.toml", "--out", run_out.to_str().unwrap()]);
    assert!(r.status.success());
    let run_keys: Vec<String> = json(&run_out.join("summary.json")).as_object().unwrap().keys().cloned().collect();
    let keys: Vec<String> = s.as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, run_keys);
    assert_eq!(s["requests_total"], 20000);
    assert_eq!(s["outcome"], "in_progress", "shadow only: nothing ramps");
    let header =
        |d: &Path| std::fs::read_to_string(d.join("timeline.csv")).unwrap().lines().next().unwrap().to_string();
    assert_eq!(header(&out), header(&run_out));
    // 4 000 s of recorded time: about 67 one-minute rows.
    let rows = std::fs::read_to_string(out.join("timeline.csv")).unwrap().lines().count() - 1;
    assert!((66..=68).contains(&rows), "{rows} timeline rows");
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    for panel in ["verdict", "timeline", "guardrails", "parity", "scores", "latency", "lineage"] {
        assert!(html.contains(&format!("data-panel=\"{panel}\"")), "report lacks {panel}");
    }
    let rep = json(&out.join("replay.json"));
    assert_eq!(rep["rows"]["replayed"], 20000);
    assert_eq!(rep["rows"]["skipped"], 0);
    assert_eq!(rep["baseline"]["scores"], 20000);
    assert_eq!(rep["baseline"]["scores_exact"], 20000, "the legacy path reproduces the recorded scores bit for bit");
    assert_eq!(rep["baseline"]["decisions_matched"], 20000);
    let e = s["expectations"].as_array().unwrap().iter().find(|e| e["name"] == "legacy_reproduces_recorded").unwrap();
    assert_eq!(e["passed"], true, "{e}");
    // Parity by feature and segment, from the recorded requests.
    let parity = json(&out.join("parity.json"));
    assert!(parity.as_array().unwrap().len() >= 10);
}

#[test]
fn a_plan_dry_run_reports_every_decision_it_would_have_taken_and_when() {
    let (out, o) = replay("plan", SAMPLE, &["--plan", "scenarios/skew-cents-at-canary-5.toml"]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&o.stderr));
    let rep = json(&out.join("replay.json"));
    let decisions = rep["decisions"].as_array().unwrap();
    let kinds: Vec<String> =
        decisions.iter().map(|d| d["decision"]["decision"].as_str().unwrap_or("?").to_string()).collect();
    assert_eq!(kinds, ["advance", "advance", "roll_back"], "{decisions:?}");
    let rollback_t = decisions[2]["t_s"].as_f64().unwrap();
    assert!((1500.0..=1530.0).contains(&rollback_t), "rolled back at {rollback_t} s, the skew begins at 1500 s");
    assert!(stdout.contains("advance from 1 % to 5 %") && stdout.contains("roll back: "), "{stdout}");
    let s = json(&out.join("summary.json"));
    assert_eq!(s["outcome"], "rolled_back");
    assert_eq!(s["fault_start_s"], 1500.0);
    // The plan's fault is in the history at its time (and so shaded in the report).
    let history = std::fs::read_to_string(out.join("history.jsonl")).unwrap();
    let start = history.lines().find(|l| l.contains("\"event\":\"fault_start\"")).expect("no fault_start event");
    assert!(start.contains("\"t_s\":1500.0"), "{start}");
    assert!(std::fs::read_to_string(out.join("report.html")).unwrap().contains("fault: feature_skew"));
    // Same requests, same seed: the same history; another seed, other service times.
    let (again, _) = replay("plan-again", SAMPLE, &["--plan", "scenarios/skew-cents-at-canary-5.toml"]);
    assert_eq!(s["history_sha256"], json(&again.join("summary.json"))["history_sha256"]);
    let (other, _) = replay("plan-other", SAMPLE, &["--plan", "scenarios/skew-cents-at-canary-5.toml", "--seed", "99"]);
    assert_ne!(s["history_sha256"], json(&other.join("summary.json"))["history_sha256"]);
}

#[test]
fn the_same_requests_replay_the_same_whatever_the_format_or_the_column_names() {
    let dir = scratch("formats");
    let jsonl = dir.join("rec.jsonl");
    let o = cutover(&[
        "record",
        "--migration",
        "domain/fraud",
        "--requests",
        "3000",
        "--rate-rps",
        "5",
        "--out",
        jsonl.to_str().unwrap(),
    ]);
    assert!(o.status.success());
    let csv = dir.join("rec.csv");
    assert!(cutover(&[
        "record",
        "--migration",
        "domain/fraud",
        "--requests",
        "3000",
        "--rate-rps",
        "5",
        "--out",
        csv.to_str().unwrap()
    ])
    .status
    .success());
    // The user's own column names, times as RFC 3339, decisions as APPROVE/DECLINE.
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut own = String::from("txn,cust,ts,amt,currency,merchant_category,country,channel,device_os,account_age_days,card_present,distance_from_home_km,prob,action\n");
    for line in text.lines().skip(1) {
        let mut cells: Vec<String> = line.split(',').map(String::from).collect();
        let ms: i64 = cells[2].parse().unwrap();
        cells[2] = chrono_like_rfc3339(ms);
        cells[13] = if cells[13] == "block" { "DECLINE".into() } else { "APPROVE".into() };
        own += &cells.join(",");
        own.push('\n');
    }
    let own_file = dir.join("own.csv");
    std::fs::write(&own_file, own).unwrap();
    let map = dir.join("map.toml");
    std::fs::write(
        &map,
        "[fields]\ntransaction_id = \"txn\"\ncustomer_id = \"cust\"\nevent_time_ms = \"ts\"\namount = \"amt\"\nlegacy_score = \"prob\"\nlegacy_decision = \"action\"\n[decisions]\nblock = [\"DECLINE\"]\nallow = [\"APPROVE\"]\n",
    )
    .unwrap();
    let hash = |file: &Path, extra: &[&str]| {
        let (out, o) =
            replay(&format!("fmt-{}", file.file_name().unwrap().to_string_lossy()), file.to_str().unwrap(), extra);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let s = json(&out.join("summary.json"));
        assert_eq!(s["requests_total"], 3000);
        s["history_sha256"].as_str().unwrap().to_string()
    };
    let a = hash(&csv, &[]);
    assert_eq!(a, hash(&jsonl, &[]), "CSV and JSON lines differ");
    assert_eq!(a, hash(&own_file, &["--fields", map.to_str().unwrap()]), "the field map changes the replay");
}

/// `ms` since the epoch as RFC 3339 UTC with milliseconds.
fn chrono_like_rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[test]
fn bad_rows_stop_the_replay_with_their_place_or_are_skipped_and_counted() {
    let dir = scratch("bad");
    let text = std::fs::read_to_string(root().join(SAMPLE)).unwrap();
    let mut lines: Vec<String> = text.lines().take(1001).map(String::from).collect();
    // Line 5: an amount that is no number; line 9: an unparseable time; line 12: no customer.
    let mut cells: Vec<String> = lines[4].split(',').map(String::from).collect();
    cells[3] = "12,5".replace(',', ";");
    lines[4] = cells.join(",");
    let mut cells: Vec<String> = lines[8].split(',').map(String::from).collect();
    cells[2] = "yesterday".into();
    lines[8] = cells.join(",");
    let mut cells: Vec<String> = lines[11].split(',').map(String::from).collect();
    cells[1] = String::new();
    lines[11] = cells.join(",");
    let file = dir.join("bad.csv");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let f = file.to_str().unwrap();

    let (out, o) = replay("bad-stop", f, &[]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&format!("{f}:5:4: field `amount`")), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(!out.join("summary.json").exists(), "a stopped replay writes no results");

    let (out, o) = replay("bad-skip", f, &["--skip-bad-rows"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rep = json(&out.join("replay.json"));
    assert_eq!(rep["rows"]["replayed"], 997);
    assert_eq!(rep["rows"]["skipped"], 3);
    assert!(rep["rows"]["first_skipped"].as_str().unwrap().contains(":5:4: field `amount`"));
    assert_eq!(json(&out.join("summary.json"))["requests_total"], 997);
    assert!(String::from_utf8_lossy(&o.stdout).contains("3 skipped as unreadable"));

    // A recorded score the legacy path does not reproduce fails the baseline check (exit 1).
    let mut lines: Vec<String> = text.lines().take(501).map(String::from).collect();
    let mut cells: Vec<String> = lines[100].split(',').map(String::from).collect();
    cells[12] = "0.5".into();
    lines[100] = cells.join(",");
    let file = dir.join("drift.csv");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let (out, o) = replay("drift", file.to_str().unwrap(), &[]);
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stderr));
    let s = json(&out.join("summary.json"));
    let e = s["expectations"].as_array().unwrap().iter().find(|e| e["name"] == "legacy_reproduces_recorded").unwrap();
    assert_eq!(e["passed"], false);
    assert!(e["detail"].as_str().unwrap().contains("line 101: recorded score 0.5"), "{e}");

    for (args, needle) in [
        (vec!["replay", "--migration", "domain/fraud", "--requests", "/nonexistent.csv"], "/nonexistent.csv"),
        (vec!["replay", "--migration", "domain/fraud", "--requests", SAMPLE, "--format", "xml"], "--format"),
        (vec!["replay", "--migration", "domain/fraud", "--requests", "README.md"], "README.md"),
        (vec!["replay", "--requests", SAMPLE, "--plan", "/nonexistent.toml"], "/nonexistent.toml"),
        // No folder is a silent default: the replay names what it needs.
        (vec!["replay", "--requests", SAMPLE], "--migration: missing"),
    ] {
        let o = cutover(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(needle),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}
