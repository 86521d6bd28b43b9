//! `cutover init`: three services that are not the bundled examples (trained by real
//! xgboost, scripts/fixtures/init_services.py) become migration folders every command
//! accepts as written; bad input is one line, exit 2, and leaves nothing behind.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::{in_root, root, scratch};

fn fixture(service: &str, file: &str) -> String {
    root().join("tests/fixtures/init").join(service).join(file).display().to_string()
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// `cutover init` on a fixture service into a fresh `out` under `area`.
fn init(service: &str, model: &str, requests: &str, name: &str, extra: &[&str]) -> (PathBuf, Output) {
    let out = scratch("init", name).join(service);
    let m = fixture(service, model);
    let mut args = vec!["init", "--model", &m];
    let req = fixture(service, requests);
    args.extend(["--requests", &req]);
    let o = s(&out);
    args.extend(["--out", &o]);
    args.extend(extra);
    let output = in_root(&args);
    (out, output)
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn toml_of(p: &Path) -> toml::Table {
    read(p).parse().unwrap()
}

/// Nothing of an init is left in `parent`: neither the folder nor its staging twin.
fn nothing_left(parent: &Path, leaf: &str) {
    assert!(!parent.join(leaf).exists(), "{leaf} was left behind");
    let staged: Vec<String> = std::fs::read_dir(parent)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".init-"))
        .collect();
    assert!(staged.is_empty(), "staging folders left: {staged:?}");
}

#[test]
fn a_binary_service_from_csv_becomes_a_folder_that_every_command_accepts() {
    let (dir, o) = init("loans", "model.json", "requests.csv", "loans", &[]);
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    // The schema, the keys and the answers, by the documented rules.
    let m = toml_of(&dir.join("migration.toml"));
    let req = m["request"].as_table().unwrap();
    assert_eq!(req["id"].as_str(), Some("application_id"));
    assert_eq!(req["entity"].as_str(), Some("applicant_id"));
    assert_eq!(req["time"].as_str(), Some("submitted_at"));
    let fields: Vec<(String, String, bool)> = req["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap().to_string(),
                f["kind"].as_str().unwrap().to_string(),
                f.get("optional").and_then(|v| v.as_bool()).unwrap_or(false),
            )
        })
        .collect();
    let kind = |n: &str| fields.iter().find(|f| f.0 == n).map(|f| (f.1.as_str(), f.2));
    assert_eq!(kind("submitted_at"), Some(("timestamp", false)));
    assert_eq!(kind("income"), Some(("number", true)));
    assert_eq!(kind("months_employed"), Some(("integer", false)));
    assert_eq!(kind("region"), Some(("category", false)));
    assert_eq!(kind("has_cosigner"), Some(("boolean", false)));
    assert_eq!(kind("risk_score"), None, "the recorded answers are not request fields");
    let a = m["answer"].as_table().unwrap();
    assert_eq!(a["kind"].as_str(), Some("binary"));
    assert_eq!(a["threshold"].as_float(), Some(0.35));
    assert_eq!(
        a["labels"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect::<Vec<_>>(),
        ["approve", "decline"]
    );
    assert_eq!(a["recorded_score"].as_str(), Some("risk_score"));
    assert_eq!(a["recorded_decision"].as_str(), Some("decision"));
    // The sentinel is reported, not assumed.
    assert!(stderr.contains("column `months_employed`: -1 appears in"), "{stderr}");
    assert!(!read(&dir.join("migration.toml")).contains("missing_values = [-1] }"));
    // The categorical feature's codes are the ones the model saved.
    let legacy = read(&dir.join("legacy.toml"));
    assert!(legacy.contains(r#"vocabulary = ["central", "east", "islands", "north", "south", "west"]   # the category names the model saved"#), "{legacy}");
    // The registry pins the model's bytes and both specs.
    let model_sha = cutover_migration::features::sha256_hex(&std::fs::read(fixture("loans", "model.json")).unwrap());
    for (v, spec, stage) in [(1, "legacy.toml", "production"), (2, "new.toml", "staging")] {
        let e: serde_json::Value = serde_json::from_str(&read(&dir.join(format!("registry/loans/{v}.json")))).unwrap();
        assert_eq!(e["sha256"], model_sha.as_str());
        assert_eq!(e["stage"], stage);
        let spec_sha = cutover_migration::features::sha256_hex(read(&dir.join(spec)).as_bytes());
        assert_eq!(e["feature_spec_sha256"], spec_sha.as_str());
    }
    assert!(
        stdout.contains("reproduces the recorded answers: 3000 scores within 1e-6, 3000 decisions exactly"),
        "{stdout}"
    );

    // Then, with nothing edited.
    let scenarios = s(&dir.join("scenarios"));
    let suite = in_root(&["suite", &scenarios]);
    assert!(suite.status.success(), "{}", text(&suite).0);
    let names: Vec<String> = std::fs::read_dir(dir.join("scenarios"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for kind in [
        "clean-promotes",
        "clean-low-traffic",
        "skew-loan-amount",
        "missing-income-filled",
        "region-recoded",
        "field-loan-amount-entering-canary-5",
        "spec-region-vocabulary-reordered-entering-canary-5",
        "threshold-moved",
        "wrong-model-artifact",
        "latency-median",
        "latency-p99-multiplied",
        "errors",
        "timeouts",
        "early-decommission",
    ] {
        assert!(names.contains(&format!("{kind}.toml")), "{kind} missing from {names:?}");
    }
    let replay = in_root(&["replay", "--migration", &s(&dir), "--requests", &fixture("loans", "requests.csv")]);
    assert!(replay.status.success(), "{:?}", text(&replay));
    let audit = in_root(&["audit", "--migration", &s(&dir)]);
    assert!(audit.status.success() && text(&audit).0.contains("loans-legacy"), "{:?}", text(&audit));
}

#[test]
fn the_starter_library_would_catch_a_slower_judge() {
    let (dir, o) = init("loans", "model.json", "requests.csv", "slower", &["--calibration-seeds", "4"]);
    assert!(o.status.success(), "{}", text(&o).1);
    // Flagger's preset takes minutes where the sequential judge takes seconds: the SLOs,
    // set from the sequential judge with margin, fail it.
    let flagger = in_root(&["suite", &s(&dir.join("scenarios")), "--policy", "flagger"]);
    assert_eq!(flagger.status.code(), Some(1), "{}", text(&flagger).0);
    assert!(text(&flagger).0.contains("FAIL") || text(&flagger).0.contains("fail"), "{}", text(&flagger).0);
}

#[test]
fn a_regression_from_json_lines_with_epoch_times_and_a_label_encoded_category() {
    let (dir, o) = init("tickets", "model.ubj", "requests.jsonl", "tickets", &["--entity", "customer"]);
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    let m = toml_of(&dir.join("migration.toml"));
    assert_eq!(m["request"]["time"].as_str(), Some("opened_ms"));
    assert_eq!(m["request"]["id"].as_str(), Some("ticket_id"));
    assert_eq!(m["answer"]["kind"].as_str(), Some("regression"));
    assert_eq!(m["answer"]["recorded_score"].as_str(), Some("predicted_hours"));
    assert!(m["answer"]["tolerance"].as_float().unwrap() > 0.0);
    // The model file keeps its encoding.
    assert!(dir.join("model.ubj").is_file());
    // Text fed to a numeric feature: codes assumed sorted, said on stderr, right here.
    assert!(stderr.contains("feature `priority`: text fed to a numeric feature"), "{stderr}");
    assert!(stdout.contains("reproduces the recorded answers: 3000 scores within 1e-6 over 3000 rows"), "{stdout}");
    let suite = in_root(&["suite", &s(&dir.join("scenarios"))]);
    assert!(suite.status.success(), "{}", text(&suite).0);
}

#[test]
fn a_multiclass_service_gets_its_labels_in_the_model_class_order() {
    let (dir, o) = init("routing", "model.json", "requests.csv", "routing", &["--decision", "queue"]);
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    let m = toml_of(&dir.join("migration.toml"));
    let labels: Vec<&str> = m["answer"]["labels"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
    // init_services.py trains class 0 = billing, 1 = technical, 2 = sales.
    assert_eq!(labels, ["billing", "technical", "sales"]);
    assert!(stdout.contains("3000 decisions exactly"), "{stdout}");
    let replay = in_root(&["replay", "--migration", &s(&dir), "--requests", &fixture("routing", "requests.csv")]);
    assert!(replay.status.success(), "{:?}", text(&replay));
}

#[test]
fn the_same_inputs_write_the_same_folder() {
    let (a, oa) = init("routing", "model.json", "requests.csv", "same-a", &["--calibration-seeds", "3"]);
    let (b, ob) = init("routing", "model.json", "requests.csv", "same-b", &["--calibration-seeds", "3"]);
    assert!(oa.status.success() && ob.status.success());
    let mut files = Vec::new();
    fn walk(d: &Path, base: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, base, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().to_path_buf());
            }
        }
    }
    walk(&a, &a, &mut files);
    assert!(files.len() > 10, "{files:?}");
    for f in files {
        assert_eq!(std::fs::read(a.join(&f)).unwrap(), std::fs::read(b.join(&f)).unwrap(), "{} differs", f.display());
    }
}

#[test]
fn placeholders_are_named_and_refused_until_defined() {
    let out = scratch("init", "placeholders").join("eta");
    let o = in_root(&[
        "init",
        "--model",
        "domain/eta/model.ubj",
        "--requests",
        "domain/eta/requests.csv",
        "--out",
        &s(&out),
    ]);
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    for f in ["km_per_item", "hour_local", "day_of_week_local", "courier_orders_24h", "courier_avg_km"] {
        assert_eq!(stderr.matches(&format!("feature `{f}`: no request field provides it")).count(), 1, "{stderr}");
    }
    assert!(stdout.contains("5 placeholders"), "{stdout}");
    assert!(read(&out.join("scenarios/errors.toml")).contains("NOT CALIBRATED"));
    let run = in_root(&["run", &s(&out.join("scenarios/errors.toml"))]);
    let (_, err) = text(&run);
    assert_eq!(run.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(
            "`km_per_item`, `hour_local`, `day_of_week_local`, `courier_orders_24h`, `courier_avg_km` are placeholders"
        ),
        "{err}"
    );
}

#[test]
fn a_column_that_only_looks_like_a_decision_stays_a_request_field() {
    let d = scratch("init", "lookalike");
    let csv = read(Path::new(&fixture("loans", "requests.csv")));
    // The decision column gone; a two-valued text column the model does not read instead.
    let mut out = String::new();
    for (i, line) in csv.lines().enumerate() {
        let (rest, _decision) = line.rsplit_once(',').unwrap();
        let channel = if i == 0 {
            "channel"
        } else if i % 3 == 0 {
            "web"
        } else {
            "app"
        };
        out += &format!("{rest},{channel}\n");
    }
    let file = d.join("requests.csv");
    std::fs::write(&file, out).unwrap();
    let dir = d.join("out");
    let o = in_root(&[
        "init",
        "--model",
        &fixture("loans", "model.json"),
        "--requests",
        &s(&file),
        "--out",
        &s(&dir),
        "--calibration-seeds",
        "1",
    ]);
    let (_, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    assert!(
        stderr.contains("column `channel` looked like a decision, but no threshold on the score explains it"),
        "{stderr}"
    );
    let m = read(&dir.join("migration.toml"));
    assert!(m.contains(r#"{ name = "channel", kind = "category" }"#), "{m}");
    assert!(!m.contains("recorded_decision"), "{m}");
}

// Bad input: one line naming the file and the field, exit 2, nothing half-written.

fn refused(args: &[&str], needle: &str, parent: &Path, leaf: &str) {
    let o = in_root(args);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains(needle), "{args:?}: `{needle}` not in: {err}");
    nothing_left(parent, leaf);
}

#[test]
fn bad_input_is_one_line_and_leaves_nothing_behind() {
    let d = scratch("init", "bad");
    let out = s(&d.join("out"));
    let model = fixture("loans", "model.json");
    let requests = fixture("loans", "requests.csv");
    // An unreadable or empty requests file.
    let missing = s(&d.join("nope.csv"));
    refused(&["init", "--model", &model, "--requests", &missing, "--out", &out], "nope.csv: cannot read", &d, "out");
    let empty = d.join("empty.csv");
    std::fs::write(&empty, "").unwrap();
    refused(&["init", "--model", &model, "--requests", &s(&empty), "--out", &out], "empty.csv", &d, "out");
    let header_only = d.join("header.csv");
    std::fs::write(&header_only, "a,b\n").unwrap();
    refused(&["init", "--model", &model, "--requests", &s(&header_only), "--out", &out], "no rows", &d, "out");
    // A model whose feature names match no column.
    refused(
        &["init", "--model", &fixture("routing", "model.json"), "--requests", &requests, "--out", &out],
        "none of the model's 3 feature names (length, links, paying) is a column",
        &d,
        "out",
    );
    // Two candidate time columns.
    let csv = read(Path::new(&requests));
    let mut two = String::new();
    for (i, line) in csv.lines().enumerate() {
        let extra = if i == 0 { "reviewed_at".to_string() } else { line.split(',').nth(2).unwrap().to_string() };
        two += &format!("{line},{extra}\n");
    }
    let two_times = d.join("two_times.csv");
    std::fs::write(&two_times, two).unwrap();
    refused(
        &["init", "--model", &model, "--requests", &s(&two_times), "--out", &out],
        "2 columns could be the event time (submitted_at, reviewed_at): name one with --time",
        &d,
        "out",
    );
    // A decision column no threshold explains.
    let mut lines: Vec<String> = csv.lines().map(str::to_string).collect();
    let flip = lines.iter().position(|l| l.ends_with(",decline")).unwrap();
    lines[flip] = lines[flip].replace(",decline", ",approve");
    let inconsistent = d.join("inconsistent.csv");
    std::fs::write(&inconsistent, lines.join("\n") + "\n").unwrap();
    refused(
        &["init", "--model", &model, "--requests", &s(&inconsistent), "--out", &out],
        "field `decision`: no threshold separates the decisions",
        &d,
        "out",
    );
    refused(
        &["init", "--model", &model, "--requests", &requests, "--out", &out, "--threshold", "0.9"],
        "--threshold 0.9 disagrees with line",
        &d,
        "out",
    );
    // An --out that exists and is not empty is left exactly as it was.
    let full = d.join("full");
    std::fs::create_dir_all(&full).unwrap();
    std::fs::write(full.join("keep.txt"), "mine").unwrap();
    let o = in_root(&["init", "--model", &model, "--requests", &requests, "--out", &s(&full)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("the folder exists and is not empty"), "{}", text(&o).1);
    assert_eq!(std::fs::read_dir(&full).unwrap().count(), 1);
    assert_eq!(read(&full.join("keep.txt")), "mine");
    // A flag naming a column that is not there.
    refused(
        &["init", "--model", &model, "--requests", &requests, "--out", &out, "--entity", "customer"],
        "--entity `customer`: no such column",
        &d,
        "out",
    );
    // An empty --out folder is filled.
    let empty_out = d.join("empty_out");
    std::fs::create_dir_all(&empty_out).unwrap();
    let o = in_root(&[
        "init",
        "--model",
        &model,
        "--requests",
        &requests,
        "--out",
        &s(&empty_out),
        "--calibration-seeds",
        "1",
    ]);
    assert!(o.status.success(), "{}", text(&o).1);
    assert!(empty_out.join("migration.toml").is_file());
}

/// (Issue 28: NaN and inf scores made the score column a required request field, silently;
/// `--model /dev/zero` read until memory ran out.)
#[test]
fn recorded_scores_that_are_not_numbers_are_refused_naming_how_many_and_the_first() {
    let d = scratch("init", "bad-scores");
    let out = s(&d.join("out"));
    let model = fixture("loans", "model.json");
    let csv = read(Path::new(&fixture("loans", "requests.csv")));
    for (bad, shown) in [("NaN", "NaN"), ("inf", "inf"), ("-Infinity", "-Infinity"), ("n/a", "n/a")] {
        // Rows 5 and 9 (lines 6 and 10) lose their score to `bad`.
        let lines: Vec<String> = csv
            .lines()
            .enumerate()
            .map(|(i, l)| {
                if i == 5 || i == 9 {
                    let mut cells: Vec<&str> = l.split(',').collect();
                    let k = cells.len() - 2;
                    cells[k] = bad;
                    cells.join(",")
                } else {
                    l.to_string()
                }
            })
            .collect();
        let file = d.join(format!("scores-{}.csv", bad.replace('/', "")));
        std::fs::write(&file, lines.join("\n") + "\n").unwrap();
        for extra in [&[][..], &["--score", "risk_score"][..]] {
            let mut args = vec!["init", "--model", &model, "--requests"];
            let f = s(&file);
            args.extend([f.as_str(), "--out", &out]);
            args.extend(extra);
            refused(&args, "field `risk_score`: the recorded score holds 2 value(s) of 3000", &d, "out");
            let o = in_root(&args);
            assert!(text(&o).1.contains(&format!("first at line 6: `{shown}`")), "{}", text(&o).1);
        }
    }
    // A model that is not a regular file is refused before a byte is read.
    let requests = fixture("loans", "requests.csv");
    refused(&["init", "--model", "/dev/zero", "--requests", &requests, "--out", &out], "not a regular file", &d, "out");
    refused(&["init", "--model", &s(&d), "--requests", &requests, "--out", &out], "not a regular file", &d, "out");
}

#[test]
fn an_interrupted_init_leaves_no_staging_folder() {
    let d = scratch("init", "interrupted");
    let out = d.join("out");
    for signal in ["-INT", "-TERM"] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
            .args(["init", "--model", &fixture("loans", "model.json"), "--requests", &fixture("loans", "requests.csv")])
            .args(["--out", &s(&out), "--calibration-seeds", "20"])
            .current_dir(root())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Wait for the staging folder, then interrupt.
        let began = std::time::Instant::now();
        let staged = loop {
            let found = std::fs::read_dir(&d)
                .unwrap()
                .map(|e| e.unwrap().path())
                .find(|p| p.file_name().unwrap().to_string_lossy().contains(".init-"));
            if let Some(p) = found {
                break p;
            }
            assert!(child.try_wait().unwrap().is_none(), "init finished before it could be interrupted");
            assert!(began.elapsed().as_secs() < 60, "no staging folder appeared");
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        std::thread::sleep(std::time::Duration::from_millis(50));
        let killed = std::process::Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap();
        assert!(killed.success());
        let output = child.wait_with_output().unwrap();
        let want = if signal == "-INT" { 130 } else { 143 };
        assert_eq!(output.status.code(), Some(want), "{}", String::from_utf8_lossy(&output.stderr));
        assert!(String::from_utf8_lossy(&output.stderr).contains("interrupted"));
        assert!(!staged.exists(), "{} left behind", staged.display());
        nothing_left(&d, "out");
    }
}
