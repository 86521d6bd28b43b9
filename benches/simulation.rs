//! The simulator's throughput against the bare cost of its work.
//!
//! * `dual_path_bare`: both feature paths and both stacks scoring one request (the model
//!   called twice), with nothing else: the bound a simulator cannot beat.
//! * `scenario_10min_200rps`: a 10-minute scenario at 200 rps through the whole world
//!   (generation, routing, latency, faults, monitor, controller, history); criterion's
//!   throughput is simulated requests per second.
//!
//! * `sequential_judge_per_request`: the sequential judge alone on the bundled plan's
//!   evidence (14 features, 35 segments, 4 segments a request besides `all`, every
//!   guardrail), clean traffic with rare errors and a look every 1 000 requests.
//!
//! Target (issue 4): simulated requests per second at least half of the bare bound.
//! Target (issue 15): the judge's cost per request within 20 % of its cost before it
//! tested every guardrail per segment.

use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use cutover_migration::paths::DualPath;
use cutover_migration::schema::Record;
use cutover_migration::Migration;
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
migration = "domain/fraud"
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

/// One request's evidence, owned.
struct Evidence {
    mismatches: Vec<bool>,
    segments: Vec<usize>,
    legacy_ms: f64,
    new_ms: f64,
    error: bool,
    abs_score_diff: f64,
}

fn sequential_judge(c: &mut Criterion) {
    use cutover_sim::core::judge::Judge;
    use cutover_sim::core::monitor::{Observation, Window};
    use cutover_sim::core::sequential::Sequential;
    use rand::{RngExt, SeedableRng};

    use cutover_sim::core::Guardrail::*;
    let guardrails = vec![
        (DecisionFlipRate, 0.002),
        (MeanAbsScoreDiff, 0.002),
        (FeatureMismatchRate, 0.005),
        (ErrorRate, 0.01),
        (TimeoutRate, 0.01),
        (P99LatencyRatio, 1.5),
        (ShadowContextMismatchRate, 0.001),
    ];
    let features: Vec<String> = (0..14).map(|f| format!("f{f}")).collect();
    let segments: Vec<String> = (0..35).map(|s| if s == 0 { "all".into() } else { format!("s{s}") }).collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(15);
    let evidence: Vec<Evidence> = (0..100_000)
        .map(|_| Evidence {
            mismatches: (0..14).map(|_| rng.random::<f64>() < 0.0005).collect(),
            // `all`, then one of 16 countries, 3 channels, 8 devices and 3 tenures.
            segments: vec![
                0,
                1 + rng.random_range(0..16),
                17 + rng.random_range(0..3),
                20 + rng.random_range(0..8),
                28 + rng.random_range(0..3),
            ],
            legacy_ms: 8.0 + 30.0 * rng.random::<f64>().powi(8),
            new_ms: 8.0 + 30.0 * rng.random::<f64>().powi(8),
            error: rng.random::<f64>() < 0.0002,
            abs_score_diff: 0.0,
        })
        .collect();
    let judge = Sequential::new(&guardrails, features.len(), segments, 0.01, 200, 2 * 200 * 7200, false);
    let window = Window::new(features.len());
    let mut group = c.benchmark_group("simulation");
    group.throughput(Throughput::Elements(evidence.len() as u64));
    group.sample_size(20);
    group.bench_function("sequential_judge_per_request", |b| {
        b.iter(|| {
            let mut j = judge.clone();
            for (i, e) in evidence.iter().enumerate() {
                let o = Observation {
                    answered: !e.error,
                    flipped: false,
                    abs_score_diff: e.abs_score_diff,
                    rel_score_diff: 0.0,
                    wrong: false,
                    mismatches: &e.mismatches,
                    segments: &e.segments,
                    legacy_ms: e.legacy_ms,
                    new_ms: e.new_ms,
                    error: e.error,
                    timeout: false,
                    shadow: i % 2 == 0,
                    shadow_context_mismatch: false,
                    served_new: i % 2 == 1,
                };
                j.observe(i as u64, &o);
                // As the controller does: at its interval, or at once on the judge's alarm.
                if j.alarm() || i % 1000 == 999 {
                    black_box(j.judge(&window, &guardrails, &features));
                }
            }
            black_box(j.evidence())
        })
    });
    group.finish();
}

criterion_group!(benches, dual_path_bare, scenario, sequential_judge);
criterion_main!(benches);
