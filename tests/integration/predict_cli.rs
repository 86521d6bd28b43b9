//! `cutover predict`: the contract in docs/contracts.md, and one-line errors with exit 2.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::fixtures::{all_cases, dir};

pub fn cutover(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cutover")).args(args).output().expect("run cutover")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cutover-test-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

fn write(name: &str, bytes: &[u8]) -> PathBuf {
    let p = tmp(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs a command that must fail on bad input: exit 2, one line on stderr, nothing on stdout.
fn bad_input(args: &[&str]) -> String {
    let out = cutover(args);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "args {args:?}: stderr {stderr}");
    assert_eq!(stderr.lines().count(), 1, "not one line: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn prints_predictions_that_read_back_as_xgboosts_f32s() {
    for case in all_cases().iter().filter(|c| c.version == "3.2.0") {
        let (want_margin, want_pred) = case.expected();
        for (flag, want) in [(None, want_pred), (Some("--margin"), want_margin)] {
            let model = case.model_path("ubj");
            let rows = case.rows_path();
            let mut args = vec!["predict", "--model", s(&model), "--input", s(&rows)];
            args.extend(flag);
            let out = cutover(&args);
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            let text = String::from_utf8(out.stdout).unwrap();
            let mut lines = text.lines();
            let header: Vec<_> = lines.next().unwrap().split(',').collect();
            let k = want.len() / case.rows;
            let stem = if flag.is_some() { "margin" } else { "prediction" };
            if k == 1 {
                assert_eq!(header, [stem], "{}", case.name);
            } else {
                let names: Vec<_> = (0..k).map(|i| format!("{stem}_{i}")).collect();
                assert_eq!(header, names, "{}", case.name);
            }
            let got: Vec<f32> =
                lines.flat_map(|l| l.split(',').map(|v| v.parse::<f32>().unwrap()).collect::<Vec<_>>()).collect();
            assert_eq!(got.len(), want.len());
            for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                assert_eq!(a.to_bits(), b.to_bits(), "{} {stem} value {i}: {a} vs {b}", case.name);
            }
        }
    }
}

#[test]
fn writes_to_output_and_ignores_non_feature_columns_with_one_notice() {
    let case = &all_cases()[0];
    let rows = std::fs::read_to_string(case.rows_path()).unwrap();
    let with_id: String = rows
        .lines()
        .enumerate()
        .map(|(i, l)| if i == 0 { format!("id,{l},label\n") } else { format!("{i},{l},1\n") })
        .collect();
    let input = write("with_id.csv", with_id.as_bytes());
    let output = tmp("out.csv");
    let model = case.model_path("json");
    let out = cutover(&["predict", "--model", s(&model), "--input", s(&input), "--output", s(&output)]);
    assert!(out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("notice") && stderr.contains("id, label"), "{stderr}");
    let plain = cutover(&["predict", "--model", s(&model), "--input", s(&case.rows_path())]);
    assert_eq!(std::fs::read(&output).unwrap(), plain.stdout);
}

#[test]
fn bad_models_exit_2_naming_the_file_and_the_problem() {
    let case = &all_cases()[0];
    let rows = case.rows_path();
    let json = std::fs::read(case.model_path("json")).unwrap();
    let ubj = std::fs::read(case.model_path("ubj")).unwrap();

    let e = bad_input(&["predict", "--model", "/nonexistent/model.json", "--input", s(&rows)]);
    assert!(e.contains("/nonexistent/model.json: cannot read the model"), "{e}");

    let p = write("truncated.json", &json[..json.len() / 2]);
    let e = bad_input(&["predict", "--model", s(&p), "--input", s(&rows)]);
    assert!(e.contains("truncated.json: malformed JSON at line 1, column") && e.contains("truncated"), "{e}");

    let p = write("truncated.ubj", &ubj[..ubj.len() / 3]);
    let e = bad_input(&["predict", "--model", s(&p), "--input", s(&rows)]);
    assert!(e.contains("truncated.ubj: malformed UBJSON at byte"), "{e}");

    let mut broken = json.clone();
    let at = broken.windows(14).position(|w| w == b"\"left_children").unwrap() + 20;
    broken[at] = b'}';
    let p = write("broken.json", &broken);
    let e = bad_input(&["predict", "--model", s(&p), "--input", s(&rows)]);
    assert!(e.contains("broken.json: malformed JSON at line 1, column"), "{e}");

    let gblinear = dir("3.2.0").join("unsupported_gblinear.json");
    let e = bad_input(&["predict", "--model", s(&gblinear), "--input", s(&rows)]);
    assert!(e.contains("unsupported booster \"gblinear\""), "{e}");

    let poisson = dir("2.1.4").join("unsupported_objective.json");
    let e = bad_input(&["predict", "--model", s(&poisson), "--input", s(&rows)]);
    assert!(e.contains("unsupported objective \"count:poisson\""), "{e}");

    let no_trees = String::from_utf8(json.clone()).unwrap().replacen("\"tree_info\"", "\"tree_inf0\"", 1);
    let p = write("no_tree_info.json", no_trees.as_bytes());
    let e = bad_input(&["predict", "--model", s(&p), "--input", s(&rows)]);
    assert!(e.contains("field `learner.gradient_booster.model.tree_info`: missing"), "{e}");
}

#[test]
fn bad_rows_exit_2_naming_the_line_and_column() {
    let case = all_cases().into_iter().find(|c| c.name == "binary_logistic").unwrap();
    let model = case.model_path("json");
    let m = s(&model);

    let p = write("missing_col.csv", b"x0,x1,x2,x3,x4,x5,x6\n1,2,3,4,5,6,7\n");
    let e = bad_input(&["predict", "--model", m, "--input", s(&p)]);
    assert!(e.contains("missing_col.csv: line 1: missing feature column `x7`"), "{e}");

    let p = write("nan_cell.csv", b"x0,x1,x2,x3,x4,x5,x6,x7\n1,2,3,4,5,6,7,8\n1,2,abc,4,5,6,7,8\n");
    let e = bad_input(&["predict", "--model", m, "--input", s(&p)]);
    assert!(e.contains("nan_cell.csv: line 3, column 3 (`x2`): not a number: \"abc\""), "{e}");

    let p = write("short_row.csv", b"x0,x1,x2,x3,x4,x5,x6,x7\n1,2,3,4,5,6,7,8\n1,2,3\n");
    let e = bad_input(&["predict", "--model", m, "--input", s(&p)]);
    assert!(e.contains("short_row.csv: line 3: 3 cells, the header has 8"), "{e}");

    let e = bad_input(&["predict", "--model", m, "--input", "/nonexistent/rows.csv"]);
    assert!(e.contains("/nonexistent/rows.csv: cannot read"), "{e}");
}

#[test]
fn bad_flags_exit_2_with_one_line() {
    let e = bad_input(&["predict", "--model", "m.json", "--input", "r.csv", "--frobnicate"]);
    assert!(e.contains("--frobnicate"), "{e}");
    let e = bad_input(&["predict", "--input", "r.csv"]);
    assert!(e.contains("--model"), "{e}");
    let e = bad_input(&["predict", "--model", "m", "--input", "r", "--runtime", "onnx"]);
    assert!(e.contains("unknown runtime `onnx`"), "{e}");
    let e = bad_input(&["frobnicate"]);
    assert!(e.contains("frobnicate"), "{e}");
}

#[test]
fn many_batches_come_out_complete_and_in_order() {
    let case = all_cases().into_iter().find(|c| c.name == "bench_100x6").unwrap();
    let model = case.load("ubj");
    let text = std::fs::read_to_string(case.rows_path()).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let body: Vec<&str> = lines.collect();
    // More rows than several batches, in an order that differs from the fixture's.
    let big: Vec<&str> = (0..13_001).map(|i| body[(i * 7) % body.len()]).collect();
    let input = write("many.csv", format!("{header}\n{}\n", big.join("\n")).as_bytes());
    let out = cutover(&["predict", "--model", s(&case.model_path("ubj")), "--input", s(&input)]);
    assert!(out.status.success());
    let got: Vec<f32> = String::from_utf8(out.stdout).unwrap().lines().skip(1).map(|l| l.parse().unwrap()).collect();
    let rows = case.rows(&model);
    let w = model.num_features();
    assert_eq!(got.len(), big.len());
    for (i, g) in got.iter().enumerate() {
        let r = (i * 7) % body.len();
        assert_eq!(g.to_bits(), model.predict_one(&rows[r * w..(r + 1) * w]).to_bits(), "row {i}");
    }
}

#[test]
fn a_bad_row_leaves_no_output_file_behind() {
    let case = all_cases().into_iter().find(|c| c.name == "bench_100x6").unwrap();
    let text = std::fs::read_to_string(case.rows_path()).unwrap();
    let header = text.lines().next().unwrap();
    let good = text.lines().nth(1).unwrap();
    let mut body = vec![good; 9000];
    body.push("1,2,3");
    let input = write("late_bad_row.csv", format!("{header}\n{}\n", body.join("\n")).as_bytes());
    let output = tmp("never_written.csv");
    let e =
        bad_input(&["predict", "--model", s(&case.model_path("ubj")), "--input", s(&input), "--output", s(&output)]);
    assert!(e.contains("late_bad_row.csv: line 9002: 3 cells, the header has 20"), "{e}");
    assert!(!output.exists(), "a partial output was left at {}", output.display());
    assert!(!PathBuf::from(format!("{}.partial", output.display())).exists());
}

#[test]
fn the_gbdt_runtimes_are_one_flag_away() {
    let case = all_cases().into_iter().find(|c| c.name == "binary_logistic" && c.version == "3.2.0").unwrap();
    let (model, rows) = (case.model_path("json"), case.rows_path());
    let run = |runtime: &str| {
        let out = cutover(&["predict", "--model", s(&model), "--input", s(&rows), "--runtime", runtime]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    };
    let exact = run("xgboost");
    assert_eq!(run("gbdt"), exact, "the faithful conversion drifted");
    let unmapped = String::from_utf8(run("gbdt-unmapped-missing")).unwrap();
    let differing = unmapped.lines().zip(String::from_utf8(exact).unwrap().lines()).filter(|(a, b)| a != b).count();
    assert!(differing > 20, "only {differing} rows drift when NaN is not mapped");

    let cat = all_cases().into_iter().find(|c| c.categorical).unwrap();
    let e = bad_input(&[
        "predict",
        "--model",
        s(&cat.model_path("json")),
        "--input",
        s(&cat.rows_path()),
        "--runtime",
        "gbdt",
    ]);
    assert!(e.contains("unsupported categorical splits on the gbdt runtime"), "{e}");
}
