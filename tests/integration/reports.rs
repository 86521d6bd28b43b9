//! The pictures: report.html for every run (every panel with data, the run's story in
//! words, the same bytes for the same seed), the suite and sweep index pages, and the
//! verdict table in the terminal (coloured only when asked or on a terminal).
//! tests/live/browser.rs opens the same pages in a real browser.

use std::path::PathBuf;

use crate::support::{self, root};

fn scratch(name: &str) -> PathBuf {
    support::scratch("reports", name)
}

fn cutover(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_cutover"));
    c.args(args).current_dir(root()).env_remove("NO_COLOR");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

/// (panel, data points) of every panel of a page, in order.
fn panels(html: &str) -> Vec<(String, u64)> {
    html.match_indices("<section class=\"panel\"")
        .map(|(i, _)| {
            let tag = &html[i..i + html[i..].find('>').unwrap()];
            let attr = |name: &str| {
                let at = tag.find(&format!(" {name}=\"")).unwrap() + name.len() + 3;
                tag[at..].split('"').next().unwrap().to_string()
            };
            (attr("data-panel"), attr("data-points").parse().unwrap())
        })
        .collect()
}

#[test]
fn every_run_writes_a_self_contained_report_with_every_panel_and_the_same_bytes_per_seed() {
    let (a, b) = (scratch("run-a"), scratch("run-b"));
    for dir in [&a, &b] {
        let o = cutover(
            &["run", "scenarios/skew-cents-at-canary-5.toml", "--seed", "3", "--out", dir.to_str().unwrap()],
            &[],
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(String::from_utf8_lossy(&o.stdout).contains("report.html"), "the run names its report");
    }
    let html = std::fs::read_to_string(a.join("report.html")).unwrap();
    assert!(html.as_bytes() == std::fs::read(b.join("report.html")).unwrap(), "same seed, different report");

    let found = panels(&html);
    let names: Vec<&str> = found.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(
        names,
        ["verdict", "timeline", "guardrails", "evidence", "parity", "scores", "latency", "errors", "lineage"]
    );
    for (name, points) in &found {
        assert!(*points > 0, "panel {name} has no data");
    }
    // Offline: nothing is fetched from anywhere.
    for remote in ["src=\"http", "href=\"http", "@import", "<link"] {
        assert!(!html.contains(remote), "the report loads {remote}");
    }
    // The story in words and marks: the fault shaded, the rollback marked, the stage
    // verdicts, the worst parity cell, the artifacts' hashes, the expectations.
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("summary.json")).unwrap()).unwrap();
    let rollback = summary["rollback_completed_s"].as_f64().unwrap();
    for text in [
        "fault: feature_skew".to_string(),
        format!("rolled back t={rollback:.0} s"),
        "passed, advanced to 1 %".into(),
        "rolled back: ".into(),
        "amount_eur".into(),
        "29c36776824c507d4b7850bfea5634b8f6b43d9a8d62e4e2864845610e3aa760".into(),
        "rollback_within_s".into(),
        summary["history_sha256"].as_str().unwrap().to_string(),
    ] {
        assert!(html.contains(&text), "the report lacks {text}");
    }
    // The worst cells table names the skewed feature first.
    let worst = &html[html.find("<h3>Worst cells</h3>").unwrap()..];
    let first_row = &worst[worst.find("<td>").unwrap()..];
    assert!(first_row.starts_with("<td>amount_eur</td>"), "{}", &first_row[..80]);
}

#[test]
fn the_verdict_table_is_coloured_when_asked_and_plain_otherwise() {
    let args = ["run", "scenarios/clean-baseline.toml", "--seed", "2"];
    let plain = cutover(&args, &[]);
    assert!(plain.status.success());
    let text = String::from_utf8(plain.stdout).unwrap();
    assert!(!text.contains('\u{1b}'), "colour in a pipe: {text}");
    let line = text.lines().find(|l| l.starts_with("clean-baseline")).unwrap();
    let words: Vec<&str> = line.split_whitespace().collect();
    let (held, all) = words[3].split_once('/').unwrap();
    assert_eq!((words[1], words[2]), ("pass", "promoted"), "{text}");
    assert_eq!(held, all, "{text}");

    let mut always = args.to_vec();
    always.extend(["--color", "always"]);
    let coloured = String::from_utf8(cutover(&always, &[]).stdout).unwrap();
    assert!(coloured.contains("\u{1b}[1m\u{1b}[32mpass"), "no green pass: {coloured:?}");
    // The same table once the escapes are gone.
    let stripped: String = {
        let mut out = String::new();
        let mut esc = false;
        for c in coloured.chars() {
            match (esc, c) {
                (false, '\u{1b}') => esc = true,
                (true, 'm') => esc = false,
                (true, _) => {}
                (false, c) => out.push(c),
            }
        }
        out
    };
    assert_eq!(stripped, text);

    let bad = cutover(&["run", "scenarios/clean-baseline.toml", "--color", "sometimes"], &[]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--color"));
}

#[test]
fn a_suite_writes_an_index_linking_every_report_and_a_sweep_its_distributions() {
    let dir = scratch("suite");
    let files = ["scenarios/errors-5pct.toml", "scenarios/clean-low-traffic.toml"];
    let o = cutover(&["suite", files[0], files[1], "--out", dir.to_str().unwrap()], &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let index = std::fs::read_to_string(dir.join("index.html")).unwrap();
    assert_eq!(panels(&index), vec![("suite".to_string(), 2)]);
    for name in ["errors-5pct", "clean-low-traffic"] {
        let link = format!("href=\"{name}/report.html\"");
        assert!(index.contains(&link), "index lacks {link}");
        assert!(dir.join(name).join("report.html").exists());
    }
    assert!(index.contains("2 of 2 scenarios passed"));

    let sweep = scratch("sweep");
    let o = cutover(
        &["suite", files[0], files[1], "--seeds", "3", "--policy", "sequential,argo", "--out", sweep.to_str().unwrap()],
        &[],
    );
    // Argo may roll back the clean low-traffic scenario: exit 0 or 1, never 2.
    assert!(matches!(o.status.code(), Some(0 | 1)), "{}", String::from_utf8_lossy(&o.stderr));
    let index = std::fs::read_to_string(sweep.join("index.html")).unwrap();
    let found = panels(&index);
    let names: Vec<&str> = found.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(names, ["time-to-rollback", "bad-decisions", "sweep-table"]);
    // Time to rollback: 3 seeds x 2 judges on the fault scenario; bad decisions on both.
    assert_eq!(found[0].1, 6, "{found:?}");
    assert_eq!(found[1].1, 12, "{found:?}");
    assert_eq!(found[2].1, 4, "{found:?}");
    assert!(index.contains("<svg"), "no boxplots");
    // False rollbacks on the clean scenario are counted, per judge.
    let sweep_json = |p: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(sweep.join(p).join("sweep.json")).unwrap()).unwrap()
    };
    for policy in ["sequential", "argo"] {
        let s = sweep_json(policy);
        let clean = s["scenarios"].as_array().unwrap().iter().find(|x| x["scenario"] == "clean-low-traffic").unwrap();
        let k = (clean["false_rollback_rate"].as_f64().unwrap() * 3.0).round() as u64;
        let row = format!("<td>clean-low-traffic</td><td>{policy}</td>");
        let at = index.find(&row).unwrap_or_else(|| panic!("no row {row}"));
        assert!(index[at..].contains(&format!("{k} of 3")), "false rollbacks of {policy} not {k} of 3");
    }
}
