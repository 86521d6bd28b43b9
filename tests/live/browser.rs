//! The report and the live dashboard in a real browser: headless Chromium (Debian's
//! `chromium`, which `.ci/run` installs) loads each page, the page's own audit script
//! marks what the browser laid out, and the test reads the DOM back: every panel must hold
//! data (`data-points`, from the server) and have drawn it (`data-rendered`, from the
//! browser's layout). Screenshots go to target/screenshots/.
//!
//! Without Chromium the tests say so and pass, unless `CUTOVER_REQUIRE_BROWSER=1` (as in
//! CI), where a missing browser fails them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cutover_loadgen::drive::{drive, Payloads};

use super::{admin, start, PLAN, SERIAL};

const PANELS: [&str; 9] =
    ["verdict", "timeline", "guardrails", "evidence", "parity", "scores", "latency", "errors", "lineage"];

fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CUTOVER_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// The browser, or None (with a note) when it is missing and not required.
fn browser() -> Option<PathBuf> {
    let found = chromium();
    if found.is_none() {
        assert!(
            std::env::var("CUTOVER_REQUIRE_BROWSER").as_deref() != Ok("1"),
            "CUTOVER_REQUIRE_BROWSER=1 but no Chromium at /usr/bin/chromium (apt-get install chromium)"
        );
        eprintln!("note: no Chromium on this machine; the browser checks did not run");
    }
    found
}

/// Runs headless Chromium on `url` with `extra` flags; its standard output. Killed after 90 s.
fn run_chromium(bin: &Path, url: &str, extra: &[&str]) -> String {
    let profile = tempdir("chromium-profile");
    // Standard output to a file: a page's DOM overflows a pipe nobody reads until exit.
    let out_path = profile.join("stdout");
    let out_file = std::fs::File::create(&out_path).expect("chromium's output file");
    let mut child = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .stdout(out_file)
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium starts");
    let began = Instant::now();
    loop {
        if child.try_wait().expect("wait on chromium").is_some() {
            break;
        }
        if began.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            panic!("chromium did not finish within 90 s on {url}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = std::fs::read(&out_path).expect("chromium's output");
    let _ = std::fs::remove_dir_all(profile);
    String::from_utf8_lossy(&out).into_owned()
}

fn tempdir(what: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("cutover-{what}-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The DOM after scripts ran for `budget_ms` of virtual time.
fn dom(bin: &Path, url: &str, budget_ms: u32) -> String {
    run_chromium(bin, url, &[&format!("--virtual-time-budget={budget_ms}"), "--dump-dom"])
}

fn screenshot(bin: &Path, url: &str, file: &Path, budget_ms: u32) {
    let _ = std::fs::remove_file(file);
    run_chromium(
        bin,
        url,
        &[
            &format!("--virtual-time-budget={budget_ms}"),
            "--window-size=1280,1700",
            &format!("--screenshot={}", file.display()),
        ],
    );
    let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    assert!(size > 20_000, "{}: no real screenshot ({size} bytes)", file.display());
}

/// The value of attribute `name` in the start tag `tag`.
fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let at = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    tag[at..].split('"').next()
}

/// Every panel's (name, data points, rendered shapes and rows).
fn panels(dom: &str) -> Vec<(String, u64, u64)> {
    dom.match_indices("<section class=\"panel\"")
        .map(|(i, _)| {
            let tag = &dom[i..i + dom[i..].find('>').unwrap()];
            let num = |n: &str| attr(tag, n).and_then(|v| v.parse().ok()).unwrap_or(0);
            (attr(tag, "data-panel").unwrap_or("?").to_string(), num("data-points"), num("data-rendered"))
        })
        .collect()
}

fn assert_every_panel_rendered(dom: &str, what: &str) {
    let found = panels(dom);
    let names: Vec<&str> = found.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(names, PANELS, "{what}: panels");
    for (name, points, rendered) in &found {
        assert!(*points > 0, "{what}: panel {name} has no data");
        assert!(*rendered > 0, "{what}: panel {name} drew nothing in the browser");
    }
}

#[test]
fn a_report_and_a_suite_index_render_every_panel_with_data_in_chromium() {
    let Some(bin) = browser() else { return };
    let _serial = SERIAL.blocking_lock();
    let dir = tempdir("report");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let run = Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["suite", "scenarios/skew-cents-at-canary-5.toml", "scenarios/clean-baseline.toml", "--out"])
        .arg(&dir)
        .current_dir(root)
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(0), "{}", String::from_utf8_lossy(&run.stderr));

    let report = dir.join("skew-cents-at-canary-5/report.html");
    let url = format!("file://{}", report.display());
    let page = dom(&bin, &url, 2000);
    assert!(page.contains("data-audited=\"1\""), "the page's script did not run");
    assert_every_panel_rendered(&page, "report");
    // The story is on the page: the fault, the rollback and the worst feature.
    for text in ["fault: feature_skew", "rolled back t=", "amount_eur", "PASS"] {
        assert!(page.contains(text), "report lacks {text}");
    }
    screenshot(&bin, &url, &screenshots().join("report.png"), 2000);

    let index = dom(&bin, &format!("file://{}", dir.join("index.html").display()), 1000);
    let suite = panels(&index);
    assert_eq!(suite, vec![("suite".to_string(), 2, 2)], "the index lists both scenarios, rendered");
    assert!(index.contains("href=\"skew-cents-at-canary-5/report.html\""));
    let _ = std::fs::remove_dir_all(dir);
}

/// The section of `dom` whose panel is `name`.
fn section<'a>(dom: &'a str, name: &str) -> &'a str {
    let start = dom.find(&format!("data-panel=\"{name}\"")).unwrap_or_else(|| panic!("no panel {name}"));
    let end = dom[start..].find("</section>").map_or(dom.len(), |e| start + e);
    &dom[start..end]
}

#[test]
fn issue_15_a_sweep_page_names_every_scenario_on_a_log_axis_with_the_fastest_judge() {
    let Some(bin) = browser() else { return };
    let _serial = SERIAL.blocking_lock();
    let dir = tempdir("sweep");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // Results from under a second (errors) to 600 s (a stalled store), and a scenario only one judge
    // detects: the widest spread the axis must show.
    let faults =
        ["errors-5pct", "timeouts-segment-in", "stale-aggregates", "latency-tail-segment-au", "skew-partial-3x"];
    let files: Vec<String> = faults.iter().map(|f| format!("scenarios/{f}.toml")).collect();
    let run = Command::new(env!("CARGO_BIN_EXE_cutover"))
        .arg("suite")
        .args(&files)
        .arg("scenarios/clean-low-traffic.toml")
        .args(["--seeds", "3", "--policy", "sequential,flagger,argo", "--jobs", "2", "--out"])
        .arg(&dir)
        .current_dir(root)
        .output()
        .unwrap();
    // The anchors miss the library's SLOs by design (exit 1); the page is written anyway.
    assert!(run.status.code().is_some_and(|c| c <= 1), "{}", String::from_utf8_lossy(&run.stderr));
    let url = format!("file://{}", dir.join("index.html").display());
    let page = dom(&bin, &url, 1000);
    assert!(page.contains("data-audited=\"1\""), "the page's script did not run");
    for (name, points, rendered) in panels(&page) {
        assert!(points > 0 && rendered > 0, "panel {name}: {points} points, {rendered} drawn");
    }
    // The SVG's texts, whitespace collapsed: `> label <`.
    let words = |s: &str| s.replace('<', " <").replace('>', "> ").split_whitespace().collect::<Vec<_>>().join(" ");
    let time = words(section(&page, "time-to-rollback"));
    for f in faults {
        // Every scenario is named beside its boxes, with the fastest judge by median.
        assert!(time.contains(&format!("> {f} · sequential fastest (")), "the time chart does not name {f}");
    }
    // A logarithmic axis: decades from 0.1 s (a rollback at the first skewed request) to
    // 1 000 s are ticks.
    for tick in ["> 0.1 <", "> 1.0 <", "> 10.0 <", "> 100.0 <", "> 1000.0 <"] {
        assert!(time.contains(tick), "no tick {tick} on the time axis");
    }
    let bad = words(section(&page, "bad-decisions"));
    for f in faults.iter().chain(&["clean-low-traffic"]) {
        assert!(bad.contains(&format!("> {f} <")), "the bad-decisions chart does not name {f}");
    }
    screenshot(&bin, &url, &screenshots().join("sweep.png"), 1000);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_dashboard_refreshes_itself_with_every_panel_rendered() {
    let Some(bin) = browser() else { return };
    let _serial = SERIAL.lock().await;
    let plan = PLAN.replace("outcome = \"promoted\"", "outcome = \"rolled_back\"\nrollback_within_s = 120");
    let r = start(&plan, true).await;
    let url = r.url();
    let payloads = Arc::new(
        Payloads::for_migration(&cutover_migration::Migration::bundled_fraud().unwrap(), 9, 200.0, 60.0).unwrap(),
    );
    let target = url.clone();
    let load = tokio::spawn(async move { drive(&target, payloads, 4, Duration::from_secs(6), || false).await });
    admin(&r, reqwest::Method::POST, "/admin/start").send().await.unwrap();
    let fault = serde_json::json!({"kind": "feature_skew", "feature": "amount_eur", "scale": 100.0});
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let resp = admin(&r, reqwest::Method::POST, "/admin/faults").json(&fault).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let page = format!("{url}/dashboard");
    let (b, p) = (bin.clone(), page.clone());
    // Five seconds of the page's own time: it refreshes its panels every two.
    let live = tokio::task::spawn_blocking(move || dom(&b, &p, 5000)).await.unwrap();
    let refreshes = live
        .split("data-refreshes=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or(0);
    assert!(refreshes >= 1, "the dashboard never refreshed itself");
    assert_every_panel_rendered(&live, "live dashboard");
    assert!(live.contains("fault: feature_skew"), "the injected fault is not on the dashboard");
    let file = screenshots().join("dashboard.png");
    tokio::task::spawn_blocking(move || screenshot(&bin, &page, &file, 2500)).await.unwrap();

    let report = load.await.unwrap();
    assert!(report.ok > 100, "only {} requests answered", report.ok);
    assert_eq!(report.failed, 0, "user requests failed while the dashboard was open");
    // The panels alone are what the page fetches; a wrong method gets a JSON 405.
    let client = reqwest::Client::new();
    let panels = client.get(format!("{url}/dashboard/panels")).send().await.unwrap();
    assert_eq!(panels.status().as_u16(), 200);
    assert!(panels.text().await.unwrap().starts_with("<section class=\"panel\""));
    let wrong = client.post(format!("{url}/dashboard")).send().await.unwrap();
    assert_eq!(wrong.status().as_u16(), 405);
    r.shutdown().await;
}
