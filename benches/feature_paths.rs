//! Both feature paths for one request: legacy preprocessing with the service's customer
//! table, and the new spec with the online store, plus their diff.
//!
//! Target (issue 3): at most 1 us median for both paths together.

use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use cutover_models::features::Pipeline;
use cutover_models::fraud::{Generator, GeneratorConfig};
use cutover_models::paths::DualPath;
use cutover_models::store::Schedule;

fn pipeline(file: &str) -> Pipeline {
    Pipeline::from_file(&Path::new(env!("CARGO_MANIFEST_DIR")).join("domain/fraud").join(file), None).expect("spec")
}

fn both_paths(c: &mut Criterion) {
    let mut paths = DualPath::new(pipeline("legacy.toml"), pipeline("new.toml"), Schedule::default()).expect("paths");
    // Six hours of traffic first, so the customer aggregates are materialized and read.
    let g = Generator::with_config(9, GeneratorConfig { rate_rps: 2.0, ..GeneratorConfig::default() });
    let warm = 43_200;
    for i in 0..warm {
        let r = g.request(i);
        paths.compute(&r);
        paths.served(&r);
    }
    let requests: Vec<_> = (warm..warm + 4096).map(|i| g.request(i)).collect();
    let mut group = c.benchmark_group("feature_paths");
    group.throughput(Throughput::Elements(1));
    let mut i = 0;
    group.bench_function("legacy_and_new_with_diff", |b| {
        b.iter(|| {
            i = (i + 1) % requests.len();
            let rows = paths.compute(black_box(&requests[i]));
            black_box(rows.diffs.len())
        })
    });
    let legacy = pipeline("legacy.toml");
    let mut values = legacy.values();
    group.bench_function("legacy_only", |b| {
        b.iter(|| {
            i = (i + 1) % requests.len();
            legacy.compute(black_box(&requests[i]), None, &mut values);
            black_box(values.row[0])
        })
    });
    group.bench_function("generate_request", |b| {
        b.iter(|| {
            i += 1;
            black_box(g.request(black_box(i as u64)))
        })
    });
    group.finish();
}

criterion_group!(benches, both_paths);
criterion_main!(benches);
