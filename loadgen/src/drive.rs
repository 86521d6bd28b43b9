//! A plain load driver: `users` concurrent clients, each sending its next generated request
//! as soon as the last is answered, for a bounded time. Tests use it where goose's reports
//! are not needed; request payloads come from the migration's traffic source and the seed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cutover_migration::schema::Schema;
use cutover_migration::traffic::SharedSource;
use hdrhistogram::Histogram;

/// Payloads for a live run: request `i` of the migration's traffic source for the seed,
/// stamped with an event time that runs `time_scale` times faster than the wall clock (so
/// the online store's materializations keep pace with the compressed plan).
pub struct Payloads {
    source: SharedSource,
    schema: Arc<Schema>,
    next: AtomicU64,
    began: Instant,
    time_scale: f64,
}

impl Payloads {
    /// Payloads from a traffic source.
    pub fn new(source: SharedSource, schema: Arc<Schema>, time_scale: f64) -> Payloads {
        Payloads { source, schema, next: AtomicU64::new(0), began: Instant::now(), time_scale }
    }

    /// Payloads of a migration's traffic for `seed` at a mean `rate_rps`.
    pub fn for_migration(
        m: &cutover_migration::Migration,
        seed: u64,
        rate_rps: f64,
        time_scale: f64,
    ) -> Result<Payloads, String> {
        Ok(Payloads::new(m.source(seed, rate_rps)?, m.schema().clone(), time_scale))
    }

    /// The next request as JSON.
    pub fn next_request(&self) -> serde_json::Value {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        let t = self.source.start_ms() + (self.began.elapsed().as_secs_f64() * self.time_scale * 1000.0) as i64;
        let mut record = self.schema.record();
        self.source.fill(i, t, &mut record);
        self.source.render(i, &record)
    }

    /// The next request's JSON body.
    pub fn next_body(&self) -> Vec<u8> {
        serde_json::to_vec(&self.next_request()).unwrap_or_default()
    }
}

/// What a drive saw.
#[derive(Debug, Clone)]
pub struct DriveReport {
    /// Requests answered with 2xx.
    pub ok: u64,
    /// Requests that failed (non-2xx or no answer).
    pub failed: u64,
    /// Client-side latency, µs.
    pub latency_us: Histogram<u64>,
    /// Wall time.
    pub elapsed: Duration,
}

impl DriveReport {
    fn empty() -> DriveReport {
        DriveReport {
            ok: 0,
            failed: 0,
            latency_us: Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("static bounds"),
            elapsed: Duration::ZERO,
        }
    }

    /// Sends the next request and counts and times its answer (from when it went out).
    async fn send(&mut self, client: &reqwest::Client, url: &str, payloads: &Payloads) {
        let body = payloads.next_body();
        let sent = Instant::now();
        let good = match client.post(url).header("content-type", "application/json").body(body).send().await {
            Ok(resp) => resp.status().is_success() && resp.bytes().await.is_ok(),
            Err(_) => false,
        };
        self.latency_us.saturating_record(sent.elapsed().as_micros().max(1) as u64);
        if good {
            self.ok += 1;
        } else {
            self.failed += 1;
        }
    }

    /// Adds the clients' reports up.
    async fn gather(tasks: Vec<tokio::task::JoinHandle<DriveReport>>) -> DriveReport {
        let mut all = DriveReport::empty();
        for t in tasks {
            if let Ok(r) = t.await {
                all.ok += r.ok;
                all.failed += r.failed;
                all.latency_us.add(&r.latency_us).expect("same bounds");
            }
        }
        all
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().tcp_nodelay(true).build().expect("a client")
}

/// Drives `url`'s `/v1/score` with `users` clients until `duration` passes or `stop`
/// returns true (checked every 100 ms).
pub async fn drive(
    url: &str,
    payloads: Arc<Payloads>,
    users: usize,
    duration: Duration,
    stop: impl Fn() -> bool + Send + Sync + 'static,
) -> DriveReport {
    let client = client();
    let began = Instant::now();
    let deadline = began + duration;
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..users {
        let (client, payloads, done, url) = (client.clone(), payloads.clone(), done.clone(), format!("{url}/v1/score"));
        tasks.push(tokio::spawn(async move {
            let mut report = DriveReport::empty();
            while !done.load(Ordering::Relaxed) && Instant::now() < deadline {
                report.send(&client, &url, &payloads).await;
            }
            report
        }));
    }
    let watcher = {
        let done = done.clone();
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) && Instant::now() < deadline {
                if stop() {
                    done.store(true, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let mut report = DriveReport::gather(tasks).await;
    done.store(true, Ordering::Relaxed);
    let _ = watcher.await;
    report.elapsed = began.elapsed();
    report
}

/// Drives `url`'s `/v1/score` open loop at `rate_rps` for `duration`: request k is due at
/// start + k / rate whatever happened to the ones before (`connections` clients share the
/// schedule round robin, so a slow answer does not hold the next request back). Latency
/// runs from when the request went out: tokio's timer wakes up to a millisecond late, which
/// would swamp sub-millisecond services if it counted; a client that falls behind its
/// schedule (a stall longer than `connections` requests) shows in the achieved rate.
pub async fn drive_rate(
    url: &str,
    payloads: Arc<Payloads>,
    rate_rps: f64,
    duration: Duration,
    connections: usize,
) -> DriveReport {
    let client = client();
    let began = tokio::time::Instant::now() + Duration::from_millis(50);
    let total = (rate_rps * duration.as_secs_f64()) as u64;
    let step = connections.max(1) as u64;
    let mut tasks = Vec::new();
    for c in 0..step {
        let (client, payloads, url) = (client.clone(), payloads.clone(), format!("{url}/v1/score"));
        tasks.push(tokio::spawn(async move {
            let mut report = DriveReport::empty();
            for k in (c..total).step_by(step as usize) {
                tokio::time::sleep_until(began + Duration::from_secs_f64(k as f64 / rate_rps)).await;
                report.send(&client, &url, &payloads).await;
            }
            report
        }));
    }
    let mut report = DriveReport::gather(tasks).await;
    report.elapsed = began.elapsed();
    report
}
