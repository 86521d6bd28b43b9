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

/// An attribute's value in one SVG tag.
fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let at = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    tag[at..].split('"').next()
}

/// The sweep page's boxes read back from its SVG: on the time-to-rollback chart (a log
/// axis), the whiskers' caps sit at the smallest and the largest time over the runs, as
/// sweep.json has them, and the caption says so (they once sat at the Tukey fences while the
/// caption said "the extremes").
#[test]
fn the_sweep_pages_whiskers_end_at_the_extremes_in_sweep_json() {
    let dir = scratch("whiskers");
    let o = cutover(
        &[
            "suite",
            "scenarios/errors-5pct.toml",
            "--seeds",
            "7",
            "--policy",
            "sequential",
            "--out",
            dir.to_str().unwrap(),
        ],
        &[],
    );
    assert!(matches!(o.status.code(), Some(0 | 1)), "{}", String::from_utf8_lossy(&o.stderr));
    let sweep: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("sweep.json")).unwrap()).unwrap();
    let times: Vec<f64> = sweep["records"][0]["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["time_to_rollback_s"].as_f64())
        .map(|t| t.max(0.1))
        .collect();
    assert!(times.len() >= 5, "{times:?}");
    let (lo, hi) = times.iter().fold((f64::MAX, 0.0f64), |(a, b), &t| (a.min(t), b.max(t)));
    let line = &sweep["scenarios"][0]["time_to_rollback_s"];
    assert_eq!(line["max"].as_f64().map(|m| m.max(0.1)), Some(hi), "sweep.json's max is the worst run");

    let index = std::fs::read_to_string(dir.join("index.html")).unwrap();
    let panel = &index[index.find("data-panel=\"time-to-rollback\"").unwrap()..];
    assert!(panel.contains("whiskers: the smallest and the largest value over the runs"));
    let svg = &panel[panel.find("<svg").unwrap()..panel.find("</svg>").unwrap()];
    // The x axis's tick labels: numbers on the lowest row of text.
    let mut ticks: Vec<(f64, f64, f64)> = Vec::new(); // (x, y, value)
    for piece in svg.split("<text").skip(1) {
        let (tag, rest) = piece.split_once('>').unwrap();
        let label = rest.split('<').next().unwrap().trim();
        if let (Some(x), Some(y), Ok(v)) = (attr(tag, "x"), attr(tag, "y"), label.parse::<f64>()) {
            ticks.push((x.parse().unwrap(), y.parse().unwrap(), v));
        }
    }
    let bottom = ticks.iter().map(|t| t.1).fold(0.0f64, f64::max);
    let axis: Vec<(f64, f64)> = ticks.iter().filter(|t| t.1 == bottom && t.2 > 0.0).map(|t| (t.0, t.2)).collect();
    assert!(axis.len() >= 2, "tick labels: {ticks:?}");
    let ((x1, v1), (x2, v2)) = (axis[0], axis[axis.len() - 1]);
    let value_at = |x: f64| 10f64.powf(v1.log10() + (x - x1) / (x2 - x1) * (v2.log10() - v1.log10()));
    // Caps: vertical strokes 8 pixels long.
    let mut caps: Vec<f64> = Vec::new();
    for piece in svg.split("<polyline").skip(1) {
        let points: Vec<(f64, f64)> = attr(piece, "points")
            .unwrap()
            .split_whitespace()
            .map(|p| {
                let (x, y) = p.split_once(',').unwrap();
                (x.parse().unwrap(), y.parse().unwrap())
            })
            .collect();
        if let [(xa, ya), (xb, yb)] = points[..] {
            if xa == xb && (yb - ya).abs() == 8.0 {
                caps.push(xa);
            }
        }
    }
    caps.sort_by(f64::total_cmp);
    assert_eq!(caps.len(), 2, "one box, two caps: {caps:?}");
    // A pixel on this axis is about 1 % of a value.
    for (x, want) in [(caps[0], lo), (caps[1], hi)] {
        let got = value_at(x);
        assert!((got / want - 1.0).abs() < 0.03, "a cap at {got:.2} s where the runs' extreme is {want:.2} s");
    }
}

/// The run report's evidence chart draws what the sequential judge acts on: its weighted
/// sum, below 1 at every evaluation before the one the history records as the rollback,
/// and at least 1 there.
#[test]
fn the_evidence_chart_reaches_1_where_the_history_says_the_judge_rolled_back() {
    use cutover_sim::core::history::Event;
    use cutover_sim::Decision;
    for file in
        ["scenarios/errors-5pct.toml", "scenarios/skew-cents-at-canary-5.toml", "scenarios/eta/timeouts-3pct.toml"]
    {
        let loaded = cutover_sim::LoadedScenario::read(&root().join(file)).unwrap();
        let run = cutover_sim::run(&loaded, None, Some(cutover_sim::scenario::Policy::Sequential)).unwrap();
        let rolled_back = run
            .events
            .iter()
            .find_map(|e| match e {
                Event::Evaluation { t_s, decision: Decision::RollBack { .. }, .. } => Some(*t_s),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{file}: the judge rolled back"));
        let sum = run.trace.evidence_sum();
        assert!(!sum.is_empty(), "{file}: a series");
        for &(t, s) in &sum {
            if t < rolled_back {
                assert!(s < 1.0, "{file}: the sum is {s} at {t} s, before the rollback at {rolled_back} s");
            }
        }
        let at = sum.iter().find(|p| p.0 == rolled_back).unwrap_or_else(|| panic!("{file}: no point at {rolled_back}"));
        assert!(at.1 >= 1.0, "{file}: the sum is {} at the rollback", at.1);
    }
}
