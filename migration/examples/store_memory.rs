//! Resident memory of the live stacks' feature paths (two stores over one shared log) as
//! requests arrive at a rate: where a long-running router's memory goes.
//!
//! usage: cargo run --release -p cutover-migration --example store_memory -- RATE MINUTES

use cutover_migration::paths::{shared_log, SinglePath};

fn rss_mib() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = s
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

fn main() {
    let args: Vec<f64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let [rate, minutes] = args[..] else {
        eprintln!("usage: store_memory RATE MINUTES");
        std::process::exit(2);
    };
    if !((1.0..=100_000.0).contains(&rate) && minutes > 0.0 && minutes <= 1440.0) {
        eprintln!("store_memory: RATE within [1, 100000], MINUTES within (0, 1440]");
        std::process::exit(2);
    }
    let m = cutover_migration::Migration::bundled_fraud().expect("the bundled migration");
    let (legacy, new) = m.start_stacks().expect("stacks");
    let source = m.source(1, 200.0).expect("traffic");
    let log = shared_log(&[legacy.pipeline(), new.pipeline()]);
    let mut paths = [
        SinglePath::new(legacy.pipeline().clone(), m.schedule(), log.clone(), true),
        SinglePath::new(new.pipeline().clone(), m.schedule(), log.clone(), false),
    ];
    let mut record = m.schema().record();
    let n = (rate * minutes * 60.0) as u64;
    let start = source.start_ms();
    println!("start: {:.1} MiB", rss_mib());
    for i in 0..n {
        let t = start + (i as f64 * 1000.0 / rate) as i64;
        source.fill(i, t, &mut record);
        for p in &mut paths {
            let _ = p.compute(&record);
            p.served(&record);
        }
        if i % (rate as u64 * 60) == 0 {
            println!("{:>4.0} min: {:.1} MiB, log {} events", i as f64 / rate / 60.0, rss_mib(), log.read().len());
        }
    }
    println!("end: {:.1} MiB", rss_mib());
}
