//! Replay against HTTP services: recorded requests, in their order, sent through cutover's
//! router in front of the team's legacy and new services at a bounded rate (and bounded
//! concurrency); the router pairs the two answers and its rollout judges them exactly as
//! during a live shadow. The file is read on a thread of its own and streamed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cutover_migration::recorded::Recorded;
use cutover_sim::core::baseline::Baseline;
use cutover_sim::core::pairing;
use cutover_sim::core::Guardrail;
use cutover_sim::scenario::LoadedScenario;
use tokio::sync::{mpsc, Mutex, Semaphore};

use crate::router::{RolloutView, Snapshot, SERVED_BY_HEADER};
use crate::serve::{self, ServeConfig};

/// How to reach the services and how hard to push.
#[derive(Debug, Clone)]
pub struct HttpReplay {
    /// The legacy service's base URL (none: as the migration folder's `[stacks]` declares).
    pub legacy_url: Option<String>,
    /// The new service's base URL (none: as declared).
    pub new_url: Option<String>,
    /// Their answers' score field.
    pub score_field: String,
    /// Their answers' decision field.
    pub decision_field: String,
    /// Ask the services for their model rows (`x-cutover-features: 1`; cutover's own
    /// stacks answer it) so feature parity can be compared.
    pub ask_features: bool,
    /// Requests per second, at most.
    pub rate_rps: f64,
    /// Requests in flight, at most (1 keeps the recorded order at the services).
    pub concurrency: usize,
    /// Scenario seconds per wall second for the plan's clock.
    pub time_scale: f64,
    /// Call services beyond this machine (loopback only otherwise).
    pub allow_remote: bool,
}

/// What came back.
pub struct HttpOutcome {
    /// The rollout as it ended.
    pub view: RolloutView,
    /// The dashboard's data.
    pub snapshot: Snapshot,
    /// Requests sent.
    pub sent: u64,
    /// Requests that failed at the router (no answer, or not 2xx).
    pub failed: u64,
    /// The recorded legacy answers against the answers users got while legacy served them.
    pub baseline: Baseline,
    /// Wall seconds of sending.
    pub wall_s: f64,
    /// Per guardrail, the paired requests after which the judge could act on it.
    pub acts_after: Vec<(Guardrail, u64)>,
}

/// Replays `records` through a router in front of the two services.
pub async fn replay_http(
    loaded: LoadedScenario,
    records: Box<dyn Iterator<Item = Recorded> + Send>,
    cfg: &HttpReplay,
) -> anyhow::Result<HttpOutcome> {
    let m = loaded.migration.clone();
    let mut serve_cfg = ServeConfig::new(loaded);
    serve_cfg.legacy_url = cfg.legacy_url.clone();
    serve_cfg.new_url = cfg.new_url.clone();
    serve_cfg.score_field = cfg.score_field.clone();
    serve_cfg.decision_field = cfg.decision_field.clone();
    serve_cfg.ask_features = cfg.ask_features;
    serve_cfg.time_scale = cfg.time_scale;
    serve_cfg.hold = false;
    serve_cfg.allow_remote = cfg.allow_remote;
    let running = serve::start(serve_cfg).await?;
    let url = format!("{}/v1/score", running.url());

    // The file on a thread of its own, a bounded queue in between: memory stays flat.
    let (tx, mut rx) = mpsc::channel::<Recorded>(1024);
    let reader = std::thread::spawn(move || {
        for r in records {
            if tx.blocking_send(r).is_err() {
                break;
            }
        }
    });
    let client = reqwest::Client::builder().pool_max_idle_per_host(cfg.concurrency).tcp_nodelay(true).build()?;
    let permits = Arc::new(Semaphore::new(cfg.concurrency.max(1)));
    let baseline = Arc::new(Mutex::new(Baseline { labels: m.answer().labels.clone(), ..Baseline::default() }));
    let (sent, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / cfg.rate_rps));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let began = Instant::now();
    // Users' answers are legacy's while it serves them: read as legacy's API says.
    let fields = Arc::new(running.clients[0].answer_fields());
    while let Some(record) = rx.recv().await {
        tick.tick().await;
        let permit = permits.clone().acquire_owned().await?;
        let (client, url, baseline, failed) = (client.clone(), url.clone(), baseline.clone(), failed.clone());
        let (fields, m) = (fields.clone(), m.clone());
        sent.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            let texts = [record.id_text.clone(), record.entity_text.clone()];
            let schema = m.schema();
            let json = schema.to_json(&record.record, &|f, _| {
                let k = if f == schema.id_field() { 0 } else { 1 };
                texts[k].as_deref().map(String::from)
            });
            let body = serde_json::to_vec(&json).unwrap_or_default();
            let answer =
                client.post(&url).header(reqwest::header::CONTENT_TYPE, "application/json").body(body).send().await;
            let ok = match answer {
                Ok(r) if r.status().is_success() && r.headers().get(SERVED_BY_HEADER).is_some_and(|h| h == "new") => {
                    // A canary answer, on the new stack's API: answered, not legacy's.
                    r.bytes().await.is_ok()
                }
                Ok(r) if r.status().is_success() => {
                    let v: Option<serde_json::Value> = r.json().await.ok();
                    let answer = m.answer();
                    let mut values = vec![0.0f32; answer.width()];
                    let got = v.as_ref().and_then(|v| pairing::read_answer(v, &fields, answer, &mut values).ok());
                    if let Some(decision) = got {
                        baseline.lock().await.observe(
                            record.line,
                            (record.legacy_score, record.legacy_decision),
                            (answer.headline(&values), decision),
                        );
                    }
                    got.is_some()
                }
                _ => false,
            };
            if !ok {
                failed.fetch_add(1, Ordering::Relaxed);
            }
            drop(permit);
        });
    }
    let _ = permits.acquire_many(cfg.concurrency.max(1) as u32).await?;
    let wall_s = began.elapsed().as_secs_f64();
    let _ = reader.join();
    // The shadow calls go on after the users' answers: wait until every pair is judged.
    let n = sent.load(Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(10);
    while running.state.view().requests_total < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // One last look at what arrived since the last evaluation.
    running.state.evaluate();
    let view = running.state.view();
    let snapshot = running.state.snapshot();
    let acts_after = running.state.acts_after();
    running.shutdown().await;
    let baseline = baseline.lock().await.clone();
    Ok(HttpOutcome { view, snapshot, sent: n, failed: failed.load(Ordering::Relaxed), baseline, wall_s, acts_after })
}
