//! docs/live.md's recipes run as written: the `sh` blocks of "In front of your own
//! services" and "In front of Feast and MLServer", each by bash from the repository root
//! with `cutover` on the PATH, then what the section says of the result checked in the
//! load test's summary.json.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::SERIAL;

/// The `sh` blocks under the heading `## {section}`, joined.
fn section_script(section: &str) -> String {
    let md = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/live.md")).unwrap();
    let start = md.find(&format!("\n## {section}\n")).unwrap_or_else(|| panic!("no section `{section}`"));
    let body = &md[start + 1..];
    let body = &body[..body[3..].find("\n## ").map_or(body.len(), |i| i + 3)];
    let mut script = String::new();
    let mut inside = false;
    for line in body.lines() {
        if line.starts_with("```") {
            inside = !inside && line.trim() == "```sh";
            continue;
        }
        if inside {
            script.push_str(line);
            script.push('\n');
        }
    }
    assert!(script.lines().count() >= 3, "{section}: {script}");
    script
}

/// Runs a recipe under bash (errors stop it) and returns the summary.json of its load test.
fn run(section: &str, out: &str) -> Value {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let _ = std::fs::remove_dir_all(root.join(out));
    let bin = Path::new(env!("CARGO_BIN_EXE_cutover")).parent().unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let script = section_script(section);
    let run = Command::new("timeout")
        .args(["600", "bash", "-euo", "pipefail", "-c", &script])
        .env("PATH", path)
        .current_dir(root)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{section}: exit {}\n{script}\n{}\n{}",
        run.status,
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(root.join(out).join("summary.json")).unwrap()).unwrap()
}

fn no_failed_request(s: &Value) {
    for a in s["attacks"].as_array().unwrap() {
        assert_eq!(a["failed"], 0, "{a}");
    }
    assert!(s["expectations"].as_array().unwrap().iter().all(|e| e["passed"] == true), "{:#}", s["expectations"]);
}

#[test]
fn in_front_of_your_own_services_runs_as_written() {
    let _serial = SERIAL.blocking_lock();
    let s = run("In front of your own services", "target/loadtest/own-services");
    assert_eq!(s["outcome"], "promoted", "{:#}", s["trigger"]);
    no_failed_request(&s);
    let versions = s["model_versions"].as_array().unwrap();
    for (stack, version) in [("legacy", "team-v1"), ("new", "team-v2")] {
        let n = versions.iter().find(|v| v["stack"] == stack && v["version"] == version).map(|v| v["answers"].clone());
        assert!(n.and_then(|n| n.as_u64()).is_some_and(|n| n > 1000), "{stack}: {versions:?}");
    }
}

#[test]
fn in_front_of_feast_and_mlserver_runs_as_written() {
    let _serial = SERIAL.blocking_lock();
    if !crate::platform::available("docs/live.md's platform recipe") {
        return;
    }
    let s = run("In front of Feast and MLServer", "target/loadtest/cents-in-the-store");
    assert_eq!(s["outcome"], "rolled_back");
    no_failed_request(&s);
    // The store held cents: the aggregate's mismatch rolled it back.
    assert_eq!(s["trigger"]["feature"], "customer_avg_amount_eur", "{:#}", s["trigger"]);
    let p = &s["platform"];
    assert!(p["counts"]["pushes"].as_u64().unwrap() > 0, "{p:#}");
    assert_eq!(p["stages"].as_array().unwrap().len(), 3, "{p:#}");
}
