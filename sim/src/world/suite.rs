//! Suites: every scenario under the given paths, run in parallel across `jobs` threads,
//! reported in path order so `--jobs` never changes the output; JUnit XML for CI.

use std::path::{Path, PathBuf};

use crate::core::verdict::Summary;
use crate::scenario::Policy;
use crate::world::{run_file, RunError, RunResult};

/// The scenario files under `paths` (files as given, folders searched for `*.toml`, not
/// descending into `live/`), sorted.
pub fn collect(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_file() {
            out.push(p.clone());
        } else if p.is_dir() {
            walk(p, &mut out).map_err(|e| format!("{}: {e}", p.display()))?;
        } else {
            return Err(format!("{}: no such file or folder", p.display()));
        }
    }
    out.sort();
    out.dedup();
    if out.is_empty() {
        return Err(format!(
            "no scenario files (*.toml) under {}",
            paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        ));
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n != "live") {
                walk(&p, out)?;
            }
        } else if p.extension().is_some_and(|x| x == "toml") {
            out.push(p);
        }
    }
    Ok(())
}

/// Runs every file with `jobs` threads; results in file order. `done` is called as each
/// scenario finishes (for a progress bar); it never affects the results.
pub fn run_all(
    files: &[PathBuf],
    jobs: usize,
    seed: Option<u64>,
    policy: Option<Policy>,
    done: &(dyn Fn(&Path) + Sync),
) -> Vec<Result<RunResult, RunError>> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut slots: Vec<Option<Result<RunResult, RunError>>> = (0..files.len()).map(|_| None).collect();
    let results = std::sync::Mutex::new(&mut slots);
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1).min(files.len()) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(file) = files.get(i) else { break };
                let r = run_file(file, seed, policy);
                done(file);
                results.lock().expect("no panics while holding it")[i] = Some(r);
            });
        }
    });
    slots.into_iter().map(|r| r.expect("every file ran")).collect()
}

/// JUnit XML: one test case per scenario; a failed expectation is a failure, a scenario
/// that could not run an error.
pub fn junit(files: &[PathBuf], results: &[Result<RunResult, RunError>]) -> String {
    let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
    let failures = results.iter().filter(|r| matches!(r, Ok(r) if !r.summary.passed)).count();
    let errors = results.iter().filter(|r| r.is_err()).count();
    let mut x = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"cutover\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\">\n", results.len());
    for (file, r) in files.iter().zip(results) {
        let classname = esc(&file.display().to_string());
        match r {
            Ok(run) => {
                let s: &Summary = &run.summary;
                x += &format!("  <testcase classname=\"{classname}\" name=\"{}\">\n", esc(&s.scenario));
                if let Some(below) = &s.slo_below_information_bound {
                    x += &format!(
                        "    <properties><property name=\"slo_below_information_bound\" value=\"{}\"/></properties>\n",
                        esc(below)
                    );
                }
                if !s.passed {
                    let failed: Vec<String> = s
                        .expectations
                        .iter()
                        .filter(|e| !e.passed)
                        .map(|e| format!("{}: {}", e.name, e.detail))
                        .collect();
                    x += &format!(
                        "    <failure message=\"{}\">{}\nreproduce: {}</failure>\n",
                        esc(&failed.join("; ")),
                        esc(&failed.join("\n")),
                        esc(&s.reproduce)
                    );
                }
                x += "  </testcase>\n";
            }
            Err(e) => {
                x += &format!("  <testcase classname=\"{classname}\" name=\"{classname}\">\n    <error message=\"{}\"/>\n  </testcase>\n", esc(&e.to_string()));
            }
        }
    }
    x += "</testsuite>\n";
    x
}
