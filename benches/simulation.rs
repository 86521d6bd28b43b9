//! The simulator's throughput against the bare cost of its work.
//!
//! * `dual_path_bare`: both feature paths and both stacks scoring one request (the model
//!   called twice), with nothing else: the bound a simulator cannot beat.
//! * `scenario_10min_200rps`: a 10-minute scenario at 200 rps through the whole world
//!   (generation, routing, latency, faults, monitor, controller, history); criterion's
//!   throughput is simulated requests per second.
//!
//! Target (issue 4): simulated requests per second at least half of the bare bound.

use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use cutover_models::paths::DualPath;
use cutover_models::schema::Record;
use cutover_models::Migration;
use cutover_sim::LoadedScenario;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn dual_path_bare(c: &mut Criterion) {
    let m = Migration::bundled_fraud().expect("the bundled migration");
    let (legacy, new) = m.start_stacks().expect("stacks");
    let mut paths = DualPath::new(legacy.pipeline().clone(), new.pipeline().clone(), m.schedule()).expect("paths");
    let g = m.source(9, 200.0).expect("traffic");
    let requests: Vec<Record> = (0..120_000)
        .map(|i| {
            let mut r = m.schema().record();
            g.fill(i, g.time_at_rate(i, 200.0), &mut r);
            r
        })
        .collect();
    for r in &requests[..110_000] {
        paths.compute(r);
        paths.served(r);
    }
    let tail = &requests[110_000..];
    let mut group = c.benchmark_group("simulation");
    group.throughput(Throughput::Elements(1));
    let mut i = 0;
    group.bench_function("dual_path_bare", |b| {
        b.iter(|| {
            i = (i + 1) % tail.len();
            let rows = paths.compute(black_box(&tail[i]));
            let l = legacy.model().predict_one(rows.legacy);
            let n = new.model().predict_one(rows.new);
            black_box((l, n))
        })
    });
    group.finish();
}

fn scenario(c: &mut Criterion) {
    let text = r#"
name = "bench"
seed = 3
[traffic]
rate_rps = 200
duration_s = 600
[rollout]
shadow_s = 120
bake_s = 120
keep_legacy_warm_s = 120
[guardrails]
max_decision_flip_rate = 0.002
max_feature_mismatch_rate = 0.005
max_error_rate = 0.01
max_p99_latency_ratio = 1.5
[expect]
outcome = "promoted"
"#;
    let loaded = LoadedScenario::parse(text, "bench.toml", "bench.toml".into(), root()).expect("scenario");
    let requests = cutover_sim::run(&loaded, None, None).expect("runs").summary.requests_total;
    let mut group = c.benchmark_group("simulation");
    group.throughput(Throughput::Elements(requests));
    group.sample_size(10);
    group.bench_function("scenario_10min_200rps", |b| {
        b.iter(|| black_box(cutover_sim::run(&loaded, None, None).expect("runs").summary.requests_total))
    });
    group.finish();
}

criterion_group!(benches, dual_path_bare, scenario);
criterion_main!(benches);
