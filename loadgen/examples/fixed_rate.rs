//! Open-loop load at a fixed rate against one `/v1/score` endpoint. `scripts/live_figures.sh` uses it to compare the legacy stack
//! called directly with the same stack behind the router at the same load.
//!
//! usage: cargo run --release -p cutover-loadgen --example fixed_rate -- URL RATE SECONDS

use std::sync::Arc;
use std::time::Duration;

use cutover_loadgen::drive::{drive_rate, Payloads};

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, rate, secs] = args.as_slice() else {
        eprintln!("usage: fixed_rate URL RATE SECONDS");
        std::process::exit(2);
    };
    if !url.starts_with("http://127.0.0.1:") && !url.starts_with("http://localhost:") {
        eprintln!("fixed_rate: {url}: load goes to loopback addresses only");
        std::process::exit(2);
    }
    let (Ok(rate), Ok(secs)) = (rate.parse::<f64>(), secs.parse::<f64>()) else {
        eprintln!("fixed_rate: RATE and SECONDS are numbers");
        std::process::exit(2);
    };
    // A day at most: `scripts/soak.py` holds a rate for hours; every run stops by itself.
    if !(rate > 0.0 && rate <= 100_000.0 && secs > 0.0 && secs <= 86_400.0) {
        eprintln!("fixed_rate: RATE within (0, 100000], SECONDS within (0, 86400]");
        std::process::exit(2);
    }
    let payloads = Arc::new(
        Payloads::for_migration(
            &cutover_migration::Migration::bundled_fraud().expect("the bundled migration"),
            1,
            200.0,
            1.0,
        )
        .expect("its traffic"),
    );
    let r = drive_rate(url, payloads, rate, Duration::from_secs_f64(secs), 64).await;
    let q = |p: f64| r.latency_us.value_at_quantile(p) as f64 / 1000.0;
    println!(
        "{:.0} requests/s achieved ({} ok, {} failed)  p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms",
        (r.ok + r.failed) as f64 / r.elapsed.as_secs_f64(),
        r.ok,
        r.failed,
        q(0.5),
        q(0.9),
        q(0.99),
        q(0.999)
    );
}
