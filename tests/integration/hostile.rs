//! What a careless or hostile user can do with files and flags, one probe per case: each
//! ends in a result or one clear line with exit 2, never a panic, a hang, a file replaced
//! that was not a regular file, or a silent default. (The services' probes are in
//! `tests/live/hostile.rs`; the fuzzing of every parser in `tests/integration/fuzz.rs`.)

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::{root, scratch};

fn cutover(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_cutover")).args(args).current_dir(root()).output().unwrap()
}

/// Exit 2 and one printable line on stderr (after any notices); returns that line.
fn refused(args: &[&str]) -> String {
    let out = cutover(args);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| !l.starts_with("cutover: notice:")).collect();
    assert_eq!(errors.len(), 1, "not one line: {stderr}");
    let line = errors[0].to_string();
    assert!(line.chars().all(|c| !c.is_control()), "a control character printed raw: {line:?}");
    line
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

const MODEL: &str = "domain/fraud/model.ubj";

/// The first `rows` lines of the bundled model's check file (a header and rows).
fn rows(dir: &Path, rows: usize) -> PathBuf {
    let text = std::fs::read_to_string(root().join("domain/fraud/model_check.csv")).unwrap();
    let p = dir.join("in.csv");
    std::fs::write(&p, text.lines().take(rows + 1).map(|l| format!("{l}\n")).collect::<String>()).unwrap();
    p
}

fn predictions(dir: &Path) -> String {
    let input = rows(dir, 3);
    let out = cutover(&["predict", "--model", MODEL, "--input", s(&input)]);
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn predict_output_replaces_only_a_regular_file() {
    use std::os::unix::fs::{symlink, FileTypeExt, PermissionsExt};
    let d = scratch("hostile", "output");
    let input = rows(&d, 3);
    let want = predictions(&d);

    // A symbolic link stays a link; the file it leads to gets the predictions, its mode kept.
    let target = d.join("real.csv");
    std::fs::write(&target, "old\n").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o640)).unwrap();
    let link = d.join("link.csv");
    symlink(&target, &link).unwrap();
    let out = cutover(&["predict", "--model", MODEL, "--input", s(&input), "--output", s(&link)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link was replaced");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), want);
    assert_eq!(std::fs::metadata(&target).unwrap().permissions().mode() & 0o777, 0o640);

    // A named pipe is written through: its reader gets every line.
    let fifo = d.join("pipe");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
    };
    let out = cutover(&["predict", "--model", MODEL, "--input", s(&input), "--output", s(&fifo)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(reader.join().unwrap(), want, "the pipe's reader got other bytes");
    assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo(), "the pipe was replaced");

    // A device that refuses the bytes is an error, and stays a device.
    if Path::new("/dev/full").exists() {
        let e = refused(&["predict", "--model", MODEL, "--input", s(&input), "--output", "/dev/full"]);
        assert!(e.contains("/dev/full: cannot write"), "{e}");
        assert!(!std::fs::metadata("/dev/full").unwrap().is_file());
    }

    // A folder is refused; a link left at the partial file's name is not followed.
    let e = refused(&["predict", "--model", MODEL, "--input", s(&input), "--output", s(&d)]);
    assert!(e.contains("is a directory"), "{e}");
    let victim = d.join("victim");
    let out_csv = d.join("out.csv");
    symlink(&victim, d.join("out.csv.partial")).unwrap();
    let out = cutover(&["predict", "--model", MODEL, "--input", s(&input), "--output", s(&out_csv)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!victim.exists(), "the partial file was written through a planted link");
    assert_eq!(std::fs::read_to_string(&out_csv).unwrap(), want);
}

#[test]
fn infinite_and_out_of_range_inputs_are_refused_as_xgboost_refuses_them() {
    let d = scratch("hostile", "inf");
    let input = rows(&d, 2);
    let text = std::fs::read_to_string(&input).unwrap();
    let second = text.lines().nth(1).unwrap();
    let first_cell = second.split(',').next().unwrap();
    for v in ["inf", "-inf", "Infinity", "-Infinity", "1e400", "1e39", "-3.5e38"] {
        let p = d.join("bad.csv");
        std::fs::write(&p, text.replacen(second, &second.replacen(first_cell, v, 1), 1)).unwrap();
        let e = refused(&["predict", "--model", MODEL, "--input", s(&p)]);
        assert!(
            e.contains("bad.csv: line 2, column 1 (`amount_eur`)") && e.contains("infinite or too large"),
            "{v}: {e}"
        );
    }
    // NaN stays missing, as in xgboost; the largest f32 is a number.
    for v in ["NaN", "3.4e38"] {
        let p = d.join("ok.csv");
        std::fs::write(&p, text.replacen(second, &second.replacen(first_cell, v, 1), 1)).unwrap();
        assert!(cutover(&["predict", "--model", MODEL, "--input", s(&p)]).status.success(), "{v}");
    }
    // Request fields and recorded files read through the schema, which refuses the same.
    let m = cutover_migration::Migration::bundled_fraud().unwrap();
    let mut r = m.schema().record();
    for v in ["1e39", "-1e39"] {
        let body = format!(
            r#"{{"transaction_id": 1, "customer_id": 2, "event_time_ms": 1700000000000, "amount": {v},
            "currency": "EUR", "merchant_category": "grocery", "country": "DE", "channel": "web", "card_present": true}}"#
        );
        let e = m.schema().parse_json(body.as_bytes(), &mut r).unwrap_err();
        assert_eq!(e.field, "amount", "{e}");
        assert!(e.message.contains("not a finite number"), "{e}");
    }
}

#[test]
fn a_million_column_header_is_read_in_linear_time_and_noticed_in_one_short_line() {
    let d = scratch("hostile", "wide");
    let input = rows(&d, 1);
    let text = std::fs::read_to_string(&input).unwrap();
    let mut lines = text.lines();
    let (header, row) = (lines.next().unwrap(), lines.next().unwrap());
    // 1 000 000 extra columns: the quadratic check took about 13 minutes here.
    let extra = 1_000_000;
    let mut wide = String::with_capacity(16 * extra);
    wide.push_str(header);
    for i in 0..extra {
        wide.push_str(&format!(",x{i}"));
    }
    wide.push('\n');
    wide.push_str(row);
    wide.push_str(&",".repeat(extra));
    wide.push('\n');
    let p = d.join("wide.csv");
    std::fs::write(&p, &wide).unwrap();
    let out = cutover(&["predict", "--model", MODEL, "--input", s(&p)]);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        format!(
            "cutover: notice: {}: ignoring {} columns: xgboost_prediction, x0, x1, x2, x3 and {} more (not model features)",
            p.display(),
            extra + 1,
            extra - 4
        )
    );
    // A duplicate at the very end is found, named with its column.
    let dup = wide.replacen(&format!(",x{}\n", extra - 1), ",x7\n", 1);
    std::fs::write(&p, dup).unwrap();
    let e = refused(&["predict", "--model", MODEL, "--input", s(&p)]);
    let column = header.split(',').count() + extra;
    assert!(e.ends_with(&format!("wide.csv: line 1, column {column}: duplicate column `x7`")), "{e}");
}

#[test]
fn messages_escape_what_the_input_held_and_name_what_is_not_a_model() {
    let d = scratch("hostile", "messages");
    let input = rows(&d, 1);
    let text = std::fs::read_to_string(&input).unwrap();
    let second = text.lines().nth(1).unwrap();
    let first_cell = second.split(',').next().unwrap();
    let p = d.join("nul.csv");
    std::fs::write(&p, text.replacen(first_cell, "1\u{0}2\u{1b}[31m", 1)).unwrap();
    let e = refused(&["predict", "--model", MODEL, "--input", s(&p)]);
    assert!(e.ends_with(r#"not a number: "1\u{0}2\u{1b}[31m""#), "{e}");

    for (name, bytes, why) in [
        ("empty.ubj", Vec::new(), "the file is empty"),
        ("random.ubj", (0..200u32).map(|i| (i * 97 + 13) as u8).collect(), "opens with `{`"),
        ("text.json", b"hello".to_vec(), "opens with `{`"),
    ] {
        let m = d.join(name);
        std::fs::write(&m, bytes).unwrap();
        let e = refused(&["predict", "--model", s(&m), "--input", s(&input)]);
        assert!(e.contains(&format!("{name}: not an XGBoost model: ")) && e.contains(why), "{e}");
        assert!(!e.contains("malformed JSON"), "{e}");
    }
}

/// A copy of a bundled scenario with one edit, its migration path made absolute.
fn scenario_with(d: &Path, name: &str, from: &str, edit: impl Fn(&str) -> String) -> PathBuf {
    let text = std::fs::read_to_string(root().join("scenarios").join(from)).unwrap();
    let text = text
        .replace("\"../../domain/", &format!("\"{}/domain/", root().display()))
        .replace("\"../domain/", &format!("\"{}/domain/", root().display()));
    let p = d.join(name);
    std::fs::write(&p, edit(&text)).unwrap();
    p
}

#[test]
fn scenario_values_that_make_no_sense_are_refused_naming_the_place() {
    let d = scratch("hostile", "scenarios");
    let set = |key: &'static str, value: &'static str| {
        move |t: &str| {
            t.lines()
                .map(|l| if l.starts_with(&format!("{key} =")) { format!("{key} = {value}") } else { l.to_string() })
                .collect::<Vec<_>>()
                .join("\n")
        }
    };
    let cases: Vec<(&str, PathBuf, &str)> = vec![
        (
            "rate",
            scenario_with(&d, "rate.toml", "errors-5pct.toml", set("rate_rps", "1e12")),
            ":7:1: field `traffic.rate_rps`: must be a positive number, at most 100000",
        ),
        (
            "requests",
            scenario_with(&d, "requests.toml", "errors-5pct.toml", set("duration_s", "2592000")),
            "field `traffic.rate_rps`: 200 requests per second for 2592000 s",
        ),
        (
            "after the end",
            scenario_with(&d, "late.toml", "errors-5pct.toml", set("start_s", "99999")),
            "field `faults[0].start_s`: starts at 99999 s, when the run has ended",
        ),
        (
            "negative latency",
            scenario_with(&d, "neg.toml", "latency-median.toml", set("add_ms", "-50")),
            "field `faults[0].add_ms`: must be 0 to 600000 ms",
        ),
        (
            "unknown feature",
            scenario_with(&d, "feat.toml", "skew-distance-miles.toml", set("feature", "\"no_such\"")),
            "field `faults[0].feature`: `no_such` is not a model feature",
        ),
        (
            "a negative shadow budget",
            scenario_with(&d, "live.toml", "live/clean-promotes.toml", |t| {
                t.replacen("[live]\n", "[live]\nmax_shadow_cost_ms = -1\n", 1)
            }),
            "field `live.max_shadow_cost_ms`: must be 0 to 10000 ms",
        ),
        (
            "duplicate key",
            scenario_with(&d, "dup.toml", "skew-distance-miles.toml", |t| {
                t.replacen("scale =", "scale = 2\nscale =", 1)
            }),
            "duplicate key `scale`",
        ),
    ];
    for (what, path, want) in cases {
        let e = refused(&["run", s(&path), "--out", s(&d.join("out"))]);
        assert!(e.contains(want), "{what}: {e}");
        assert!(e.contains(&format!("{}:", path.display())), "{what}: no file: {e}");
        // Every one names a line and column.
        let after = &e[e.find(".toml:").unwrap() + 6..];
        assert!(after.split(':').take(2).all(|n| n.parse::<usize>().is_ok_and(|n| n > 0)), "{what}: {e}");
    }
}

/// The bundled live plan, for `serve`'s flag checks.
const LIVE: &str = "scenarios/live/clean-promotes.toml";

#[test]
fn the_admin_token_comes_from_a_file_or_the_environment_and_short_ones_are_refused() {
    let d = scratch("hostile", "token");
    let short = d.join("short");
    std::fs::write(&short, "abc\n").unwrap();
    let e = refused(&["serve", "--scenario", LIVE, "--token-file", s(&short)]);
    assert!(e.contains("--token-file: the admin token needs at least 16 characters"), "{e}");
    let e = refused(&["serve", "--scenario", LIVE, "--token-file", s(&d.join("absent"))]);
    assert!(e.contains("--token-file: ") && e.contains("absent: cannot read"), "{e}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["serve", "--scenario", LIVE])
        .env("CUTOVER_ADMIN_TOKEN", "has a space in it, long enough")
        .current_dir(root())
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("CUTOVER_ADMIN_TOKEN: the admin token must not contain white space"), "{stderr}");
    let e = refused(&["serve", "--scenario", LIVE, "--token", "abcdefabcdefabcdef", "--token-file", s(&short)]);
    assert!(e.contains("cannot be used with"), "{e}");
    let e = refused(&["serve", "--scenario", LIVE, "--max-connections", "0"]);
    assert!(e.contains("--max-connections: must be 1 to 65536"), "{e}");
    let e = refused(&["serve", "--scenario", LIVE, "--drain-s", "inf"]);
    assert!(e.contains("--drain-s: must be more than 0"), "{e}");
    // (Issue 28) A config token that is not a string, and a URL naming the token's
    // variable, never print the secret.
    for (text, field) in [
        ("token = 1234567890123456789\n", "field `token`"),
        ("token = [\"s3cr3t-in-an-array-0000\"]\n", "field `token`"),
        ("token = \"0123456789abcdef\"\nnew_url = \"${CUTOVER_TEST_SECRET}\"\n", "--new-url"),
        ("token = \"0123456789abcdef\"\nnew_url = \"http://${CUTOVER_TEST_SECRET}:80\"\n", "--new-url"),
    ] {
        let config = d.join("serve.toml");
        std::fs::write(&config, text).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
            .args(["serve", "--scenario", LIVE, "--config", s(&config)])
            // The variable a URL names, not the token: the config's token is checked only
            // when neither a flag nor the environment gives one.
            .env("CUTOVER_TEST_SECRET", "s3cr3t-value-of-the-token")
            .current_dir(root())
            .output()
            .unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(2), "{text}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(field), "{text}: {stderr}");
        assert!(
            !stderr.contains("s3cr3t") && !stderr.contains("1234567890123456789"),
            "a secret was printed: {stderr}"
        );
    }
    let e = refused(&["serve", "--scenario", LIVE, "--max-answer-bytes", "10"]);
    assert!(e.contains("--max-answer-bytes: must be 1024"), "{e}");
    let e = refused(&["serve", "--scenario", LIVE, "--answer-timeout-ms", "0"]);
    assert!(e.contains("--answer-timeout-ms: must be 1 to 300000"), "{e}");
}

fn copy_folder(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_folder(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// (Issue 28: a registry entry's `artifact` of `../../etc/passwd` verified and was read;
/// `traffic.file` could name any file.)
#[test]
fn a_migration_reads_nothing_outside_its_folder() {
    let d = crate::support::scratch("hostile", "outside");
    let outside = d.join("secret.csv");
    std::fs::write(&outside, "not,yours\n1,2\n").unwrap();
    // An entry whose artifact leads out of the folder, by `..` and by a link.
    let dir = d.join("eta");
    copy_folder(&crate::support::root().join("domain/eta"), &dir);
    let entry = dir.join("registry/eta-xgb/1.json");
    let text = std::fs::read_to_string(&entry).unwrap();
    let dir_s = dir.display().to_string();
    for artifact in ["../../secret.csv", "../../../../../../../../etc/passwd", "../link.ubj", "/etc/passwd"] {
        let _ = std::fs::remove_file(dir.join("link.ubj"));
        std::os::unix::fs::symlink(&outside, dir.join("link.ubj")).unwrap();
        std::fs::write(&entry, text.replace("\"../model.ubj\"", &format!("{artifact:?}"))).unwrap();
        let o = crate::support::in_root(&["registry", "verify", "eta-xgb/1", "--migration", &dir_s]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{artifact}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains("leads outside") || err.contains("relative"), "{artifact}: {err}");
        let o = crate::support::in_root(&["audit", "--migration", &dir_s, "--requests", "50"]);
        assert_eq!(o.status.code(), Some(2), "{artifact}: {}", String::from_utf8_lossy(&o.stderr));
    }
    std::fs::write(&entry, &text).unwrap();
    // Recorded traffic outside the folder.
    let m = dir.join("migration.toml");
    let toml = std::fs::read_to_string(&m).unwrap();
    for file in ["../secret.csv", "link.csv"] {
        let _ = std::fs::remove_file(dir.join("link.csv"));
        std::os::unix::fs::symlink(&outside, dir.join("link.csv")).unwrap();
        std::fs::write(&m, toml.replace("file = \"requests.csv\"", &format!("file = {file:?}"))).unwrap();
        let o = crate::support::in_root(&["registry", "list", "--migration", &dir_s]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{file}: {err}");
        assert!(err.contains("field `traffic.file`") && err.contains("leads outside the migration folder"), "{err}");
    }
    // The folder as it was works.
    std::fs::write(&m, &toml).unwrap();
    let o = crate::support::in_root(&["registry", "verify", "eta-xgb/1", "--migration", &dir_s]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn no_command_and_no_scenario_falls_back_to_a_bundled_folder() {
    let d = scratch("hostile", "no-default");
    let written = d.join("x.csv");
    let out = s(&written);
    let commands = [
        vec!["audit", "--requests", "10"],
        vec!["registry", "list"],
        vec!["dataset", "--requests", "10", "--out", &out],
        vec!["record", "--requests", "10", "--out", &out],
        vec!["replay", "--requests", "samples/recorded-requests.csv"],
    ];
    for args in commands {
        let e = refused(&args);
        assert!(e.contains("--migration: missing"), "{args:?}: {e}");
    }
    let e = refused(&["serve"]);
    assert!(e.contains("--scenario: missing") && e.contains("--migration DIR"), "{e}");
    assert!(!d.join("x.csv").exists(), "a refused command wrote its output");
    // A scenario that names no folder is refused, naming the field.
    let path = scenario_with(&d, "nameless.toml", "errors-5pct.toml", |t| {
        t.lines().filter(|l| !l.starts_with("migration =")).collect::<Vec<_>>().join("\n")
    });
    let e = refused(&["run", s(&path), "--out", s(&d.join("out"))]);
    assert!(e.contains("field `migration`: missing"), "{e}");
}
