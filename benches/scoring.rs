//! Scoring speed of the exact evaluator on the 100-tree, depth-6, 20-feature
//! binary:logistic model saved by xgboost 3.2 (tests/fixtures/xgboost/3.2.0/bench_100x6.ubj).
//!
//! Targets (issue 2): single row at most 1.5 us median; batch at least 1.5 M rows/s on one thread.

use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use cutover_models::runtime::{scorer, Runtime};
use cutover_models::{Model, Output};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn model() -> Model {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/xgboost/3.2.0/bench_100x6.ubj");
    cutover_models::xgboost::load_file(&path).expect("bench model")
}

/// Rows like the training data: normal features at assorted scales, 10 % missing.
fn rows(n: usize, width: usize) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    (0..n * width)
        .map(|i| {
            if rng.random::<f64>() < 0.1 {
                f32::NAN
            } else {
                let scale = 0.5 + (i % width) as f64;
                let (u1, u2): (f64, f64) = (rng.random::<f64>().max(1e-12), rng.random());
                ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos() * scale) as f32
            }
        })
        .collect()
}

fn single_row(c: &mut Criterion) {
    let model = model();
    let width = model.num_features();
    let data = rows(1024, width);
    let mut g = c.benchmark_group("single_row");
    g.throughput(Throughput::Elements(1));
    let mut i = 0;
    g.bench_function("predict_one", |b| {
        b.iter(|| {
            i = (i + 1) % 1024;
            black_box(model.predict_one(black_box(&data[i * width..(i + 1) * width])))
        })
    });
    g.finish();
}

fn batch(c: &mut Criterion) {
    let model = model();
    let width = model.num_features();
    let n = 10_000;
    let data = rows(n, width);
    let mut out = vec![0.0f32; n];
    let mut g = c.benchmark_group("batch");
    g.throughput(Throughput::Elements(n as u64));
    g.bench_with_input(BenchmarkId::new("xgboost_exact", n), &data, |b, data| {
        b.iter(|| model.score_batch(black_box(data), Output::Prediction, &mut out))
    });
    let gbdt = scorer(&model, Runtime::Gbdt, "bench").expect("gbdt conversion");
    g.sample_size(10);
    g.bench_with_input(BenchmarkId::new("gbdt_crate", n), &data, |b, data| {
        b.iter(|| gbdt.score_batch(black_box(data), Output::Prediction, &mut out))
    });
    g.finish();
}

/// The bundled fraud model (150 trees of depth 6, categorical splits): what each
/// simulated stack scores per request.
fn fraud_model(c: &mut Criterion) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("domain/fraud/model_check.csv");
    let model =
        cutover_models::xgboost::load_file(&Path::new(env!("CARGO_MANIFEST_DIR")).join("domain/fraud/model.ubj"))
            .expect("fraud model");
    let mut reader = cutover_models::rows::RowReader::open(&path, model.feature_names()).expect("rows");
    let mut rows = Vec::new();
    let n = reader.read_batch(&mut rows, usize::MAX).expect("rows");
    let width = model.num_features();
    let mut g = c.benchmark_group("fraud_model");
    g.throughput(Throughput::Elements(1));
    let mut i = 0;
    g.bench_function("predict_one", |b| {
        b.iter(|| {
            i = (i + 1) % n;
            black_box(model.predict_one(black_box(&rows[i * width..(i + 1) * width])))
        })
    });
    // The same rows in one batch: what the simulator gets when it scores requests in blocks.
    let mut out = vec![0.0f32; n];
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("batch", |b| {
        b.iter(|| model.score_batch(black_box(&rows[..n * width]), Output::Prediction, &mut out))
    });
    g.finish();
}

criterion_group!(benches, single_row, batch, fraud_model);
criterion_main!(benches);
