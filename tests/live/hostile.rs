//! What a hostile or careless client can do to the services on loopback, one probe per
//! case: slow and half-sent requests, more connections than the cap, Ctrl-C with clients
//! stalled or requests in flight, bodies that are not one JSON object, the admin API
//! without its token or with paths outside the migration, metrics from the first scrape.
//! Each is bounded in time; the next hostile idea is one more test here.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cutover_loadgen::serving::Limits;
use cutover_loadgen::ServeConfig;
use serde_json::{json, Value};

use super::{admin, body, ctrl_c, scenario, serve_child, start, wait_exit, PLAN, SERIAL};

async fn start_with(limits: Limits) -> cutover_loadgen::Running {
    let mut cfg = ServeConfig::new(scenario(PLAN));
    cfg.time_scale = 60.0;
    cfg.hold = true;
    cfg.router_limits = limits;
    cutover_loadgen::start(cfg).await.unwrap()
}

/// Reads until the server closes the connection (Ok(bytes)) or `within` passes (Err).
fn read_until_closed(s: &mut TcpStream, within: Duration) -> Result<Vec<u8>, String> {
    s.set_read_timeout(Some(within)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Ok(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(got),
            Err(e) => return Err(format!("still open after {within:?} ({e}); read {} bytes", got.len())),
        }
    }
}

fn counter(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no series {series} in\n{metrics}"))
}

async fn metrics(url: &str) -> String {
    reqwest::get(format!("{url}/metrics")).await.unwrap().text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_requests_are_cut_at_their_deadlines_and_connections_are_capped() {
    let _serial = SERIAL.lock().await;
    let limits = Limits { max_connections: 8, header_timeout: Duration::from_secs(1), drain: Duration::from_secs(5) };
    let r = start_with(limits).await;
    let addr = r.router;
    let before = metrics(&r.url()).await;
    let (refused0, timed_out0) = (
        counter(&before, "cutover_connections_refused_total"),
        counter(&before, "cutover_connections_timed_out_total"),
    );
    let probes = tokio::task::spawn_blocking(move || {
        // Half the headers: closed at the header deadline, nothing answered.
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Le").unwrap();
        let got = read_until_closed(&mut s, Duration::from_secs(6)).expect("half-sent headers held open");
        assert!(got.is_empty() || got.starts_with(b"HTTP/1.1 408"), "{}", String::from_utf8_lossy(&got));
        // A short body: 408 naming the body, then closed.
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Length: 400\r\n\r\n{\"transaction_id\": 1")
            .unwrap();
        let got = read_until_closed(&mut s, Duration::from_secs(20)).expect("a short body held open");
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("HTTP/1.1 408"), "{text}");
        assert!(text.contains(r#""field":"body""#) && text.contains("connection: close"), "{text}");
        // The cap: 8 held open, the 9th and 10th closed at once, unanswered.
        let held: Vec<TcpStream> = (0..8)
            .map(|_| {
                let mut s = TcpStream::connect(addr).unwrap();
                s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
                s
            })
            .collect();
        std::thread::sleep(Duration::from_millis(200));
        for _ in 0..2 {
            let mut s = TcpStream::connect(addr).unwrap();
            let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
            let got = read_until_closed(&mut s, Duration::from_secs(3)).expect("a connection over the cap was kept");
            assert!(got.is_empty(), "served over the cap: {}", String::from_utf8_lossy(&got));
        }
        drop(held);
    });
    probes.await.unwrap();
    // Once they are gone, serving goes on.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let resp = reqwest::Client::new().post(format!("{}/v1/score", r.url())).json(&body(3, 1)).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let after = metrics(&r.url()).await;
    assert!(counter(&after, "cutover_connections_refused_total") >= refused0 + 2.0, "{after}");
    assert!(counter(&after, "cutover_connections_timed_out_total") >= timed_out0 + 2.0, "{after}");
    r.shutdown().await;
}

#[test]
fn ctrl_c_with_a_stalled_client_stops_within_the_drain_deadline() {
    let _serial = SERIAL.blocking_lock();
    let (mut child, printed) = serve_child(&["--drain-s", "2"]);
    let url = &printed["router"];
    let addr = url.strip_prefix("http://").unwrap().to_string();
    // One client stalled in its body, one in its headers.
    let mut body = TcpStream::connect(&addr).unwrap();
    body.write_all(b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Length: 400\r\n\r\n{").unwrap();
    let mut head = TcpStream::connect(&addr).unwrap();
    head.write_all(b"POST /v1/score HTTP/1.1\r\nHo").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let began = Instant::now();
    let code = ctrl_c(&mut child, Duration::from_secs(8));
    assert!(code.success(), "{code:?}");
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(stderr.contains("drain deadline passed") || began.elapsed() < Duration::from_secs(2), "{stderr}");
}

#[test]
fn a_request_in_flight_at_ctrl_c_is_answered_by_stacks_still_up() {
    let _serial = SERIAL.blocking_lock();
    let (mut child, printed) = serve_child(&["--drain-s", "10"]);
    let url = &printed["router"];
    let addr = url.strip_prefix("http://").unwrap().to_string();
    let payload = serde_json::to_vec(&body(4, 2)).unwrap();
    let mut s = TcpStream::connect(&addr).unwrap();
    let head = format!(
        "POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        payload.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(&payload[..10]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let status = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    // The rest of the body 2 s after the signal.
    std::thread::sleep(Duration::from_secs(2));
    s.write_all(&payload[10..]).unwrap();
    let got = read_until_closed(&mut s, Duration::from_secs(10)).expect("no answer");
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains(r#""score":"#), "{text}");
    let code = wait_exit(&mut child, Duration::from_secs(10));
    assert!(code.success(), "{code:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_fails_across_a_shutdown_under_load() {
    let _serial = SERIAL.lock().await;
    let mut cfg = ServeConfig::new(scenario(PLAN));
    cfg.time_scale = 60.0;
    let r = cutover_loadgen::start(cfg).await.unwrap();
    let url = format!("{}/v1/score", r.url());
    let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..8u64 {
        let (url, stopping) = (url.clone(), stopping.clone());
        workers.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let (mut ok, mut failed, mut unsent_before_stop, mut unsent) = (0u64, Vec::new(), 0u64, 0u64);
            for i in 0..100_000u64 {
                let was_stopping = stopping.load(std::sync::atomic::Ordering::SeqCst);
                match client.post(&url).json(&body(w, i)).send().await {
                    Ok(resp) if resp.status().is_success() => ok += 1,
                    Ok(resp) => failed.push(format!("{} {}", resp.status(), resp.text().await.unwrap_or_default())),
                    // Refused once the listener has closed: never sent, safe to retry.
                    Err(e) if was_stopping && e.is_connect() => unsent += 1,
                    Err(e) => {
                        unsent_before_stop += 1;
                        failed.push(format!("{e:?}"));
                    }
                }
                if unsent > 0 {
                    break;
                }
            }
            (ok, failed, unsent_before_stop)
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stopping.store(true, std::sync::atomic::Ordering::SeqCst);
    let stopped = r.shutdown().await;
    let (mut ok, mut failed) = (0, Vec::new());
    for w in workers {
        let (o, f, _) = w.await.unwrap();
        ok += o;
        failed.extend(f);
    }
    assert!(ok > 200, "only {ok} requests answered");
    assert!(failed.is_empty(), "{} failed: {:?}", failed.len(), &failed[..failed.len().min(5)]);
    assert_eq!(stopped.router.cut, 0, "{stopped:?}");
    assert_eq!(stopped.comparisons_cut, 0, "{stopped:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_score_body_is_exactly_one_json_object() {
    let _serial = SERIAL.lock().await;
    let r = start_with(Limits::default()).await;
    let good = serde_json::to_string(&body(5, 1)).unwrap();
    let values: Vec<String> = body(5, 1).as_object().unwrap().values().map(|v| v.to_string()).collect();
    let client = reqwest::Client::new();
    for (what, text) in [
        ("text after the object", format!("{good} trailing")),
        ("two objects", format!("{good}{good}")),
        ("two objects on two lines", format!("{good}\n{good}\n")),
        ("a positional array", format!("[{}]", values.join(","))),
        ("a bare string", "\"hello\"".to_string()),
        ("nothing", String::new()),
    ] {
        let resp = client.post(format!("{}/v1/score", r.url())).body(text).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 400, "{what}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["field"], "body", "{what}: {v}");
    }
    let resp = client.post(format!("{}/v1/score", r.url())).body(good).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_checks_the_token_first_and_reads_artifacts_only_from_the_migration() {
    let _serial = SERIAL.lock().await;
    let r = start_with(Limits::default()).await;
    let client = reqwest::Client::new();
    // Without the token nothing is learned: not the methods a path takes, not which paths exist.
    for (method, path) in [("PUT", "/admin/rollout"), ("PATCH", "/admin/faults"), ("GET", "/admin/nothing-here")] {
        let m: reqwest::Method = method.parse().unwrap();
        let resp = client.request(m.clone(), format!("{}{path}", r.url())).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 401, "{method} {path}");
        let resp = admin(&r, m, path).send().await.unwrap();
        assert!([404, 405].contains(&resp.status().as_u16()), "{method} {path}: {}", resp.status());
    }
    let inject = |spec: Value| admin(&r, reqwest::Method::POST, "/admin/faults").json(&spec).send();
    let secret = std::env::temp_dir().join(format!("cutover-secret-{}", std::process::id()));
    std::fs::write(&secret, "SECRET-CONTENT").unwrap();
    for artifact in
        [secret.to_str().unwrap(), "/etc/passwd", "../fraud/model.ubj", "registry/../../../etc/passwd", "nope/9"]
    {
        let resp = inject(json!({"kind": "model_artifact", "artifact": artifact})).await.unwrap();
        assert_eq!(resp.status().as_u16(), 422, "{artifact}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["field"], "artifact", "{v}");
        assert!(v["error"].as_str().unwrap().contains("must be a registry entry"), "{artifact}: {v}");
    }
    // A file inside the folder that is not a model: refused, nothing of it quoted.
    let resp = inject(json!({"kind": "model_artifact", "artifact": "migration.toml"})).await.unwrap();
    assert_eq!(resp.status().as_u16(), 422);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"], "migration.toml: not an XGBoost model this stack can read", "{v}");
    // The registry's entries and the folder's own models are served.
    for artifact in ["fraud-xgb/1", "model_v0.ubj"] {
        let resp = inject(json!({"kind": "model_artifact", "artifact": artifact})).await.unwrap();
        assert_eq!(resp.status().as_u16(), 201, "{artifact}: {}", resp.text().await.unwrap());
    }
    // Latency is added, never taken away, and bounded.
    for add_ms in [json!(-5), json!(1e12)] {
        let resp = inject(json!({"kind": "latency", "add_ms": add_ms})).await.unwrap();
        assert_eq!(resp.status().as_u16(), 422, "{add_ms}");
        assert_eq!(resp.json::<Value>().await.unwrap()["field"], "add_ms");
    }
    // The board is a bounded table.
    let mut last = 0;
    for _ in 0..cutover_loadgen::faults::MAX_ACTIVE_FAULTS {
        last = inject(json!({"kind": "latency", "add_ms": 1})).await.unwrap().status().as_u16();
        if last != 201 {
            break;
        }
    }
    assert_eq!(last, 422, "more than {} faults accepted", cutover_loadgen::faults::MAX_ACTIVE_FAULTS);
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_have_help_and_every_counter_from_the_start_and_refused_connections_count() {
    let _serial = SERIAL.lock().await;
    // A legacy stack that is not there: a port bound, then released.
    let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut cfg = ServeConfig::new(scenario(PLAN));
    cfg.hold = true;
    cfg.legacy_url = Some(format!("http://{gone}"));
    let r = cutover_loadgen::start(cfg).await.unwrap();
    let text = metrics(&r.url()).await;
    for series in [
        "cutover_router_user_failures_total",
        "cutover_router_fallbacks_total",
        "cutover_stack_errors_total{stack=\"legacy\",reason=\"connect\"}",
        "cutover_stack_errors_total{stack=\"new\",reason=\"status\"}",
        "cutover_stack_errors_total{stack=\"new\",reason=\"too_large\"}",
        "cutover_router_upstream_failures_total{stack=\"legacy\",reason=\"connect\"}",
    ] {
        counter(&text, series);
    }
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let name = line.split(' ').nth(2).unwrap();
        assert!(text.contains(&format!("# HELP {name} ")), "no HELP for {name}");
    }
    let errors = counter(&text, "cutover_stack_errors_total{stack=\"legacy\",reason=\"connect\"}");
    let connect = counter(&text, "cutover_router_upstream_failures_total{stack=\"legacy\",reason=\"connect\"}");
    let failures = counter(&text, "cutover_router_user_failures_total");
    let resp = reqwest::Client::new().post(format!("{}/v1/score", r.url())).json(&body(6, 1)).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 502);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "the legacy stack failed to answer");
    let text = metrics(&r.url()).await;
    assert_eq!(counter(&text, "cutover_stack_errors_total{stack=\"legacy\",reason=\"connect\"}"), errors + 1.0);
    assert_eq!(
        counter(&text, "cutover_router_upstream_failures_total{stack=\"legacy\",reason=\"connect\"}"),
        connect + 1.0
    );
    assert_eq!(counter(&text, "cutover_router_user_failures_total"), failures + 1.0);
    r.shutdown().await;
}

/// (From "Any team's migration, declared in files": unseen category values are looked up,
/// never kept, so a client cannot grow the interning table.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_never_seen_strings_keeps_nothing_and_fails_no_later_request() {
    let _serial = SERIAL.lock().await;
    let r = start(PLAN, true).await;
    let interner = scenario(PLAN).migration.schema().interner().clone();
    let kept = interner.len();
    let good = body(1, 7);
    let client = reqwest::Client::new();
    let url = format!("{}/v1/score", r.url());
    let mut tasks = Vec::new();
    for worker in 0..16u64 {
        let (client, url, good) = (client.clone(), url.clone(), good.clone());
        tasks.push(tokio::spawn(async move {
            let mut ok = 0;
            for k in 0..1250u64 {
                let mut b = good.clone();
                b["country"] = json!(format!("Z{worker}-{k}"));
                b["merchant_category"] = json!(format!("m{worker}x{k}"));
                b["device_os"] = json!(format!("os-{worker}-{k}"));
                ok += u64::from(client.post(&url).json(&b).send().await.unwrap().status() == 200);
            }
            ok
        }));
    }
    let mut ok = 0;
    for t in tasks {
        ok += t.await.unwrap();
    }
    assert_eq!(ok, 20_000, "unseen values are scored as the specs' unknown rule says, not refused");
    assert_eq!(interner.len(), kept, "nothing a client sent was kept");
    for _ in 0..20 {
        let resp = client.post(&url).json(&good).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200);
    }
    r.shutdown().await;
}
