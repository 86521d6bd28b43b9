//! Both feature paths for one request: legacy preprocessing with the service's customer
//! table, and the new spec with the online store, plus their diff.
//!
//! Target (issue 3): at most 1 us median for both paths together.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use cutover_migration::features::Pipeline;
use cutover_migration::paths::DualPath;
use cutover_migration::schema::Record;
use cutover_migration::store::Schedule;
use cutover_migration::Migration;

fn pipeline(m: &Migration, file: &str) -> Arc<Pipeline> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("domain/fraud").join(file);
    Arc::new(Pipeline::from_file(&path, m.schema(), None).expect("spec"))
}

fn both_paths(c: &mut Criterion) {
    let m = Migration::bundled_fraud().expect("the bundled migration");
    let mut paths =
        DualPath::new(pipeline(&m, "legacy.toml"), pipeline(&m, "new.toml"), Schedule::default()).expect("paths");
    // Six hours of traffic first, so the customer aggregates are materialized and read.
    let g = m.source(9, 2.0).expect("traffic");
    let request = |i: u64| {
        let mut r = m.schema().record();
        g.fill(i, g.time_at_rate(i, 2.0), &mut r);
        r
    };
    let warm = 43_200;
    for i in 0..warm {
        let r = request(i);
        paths.compute(&r);
        paths.served(&r);
    }
    let requests: Vec<Record> = (warm..warm + 4096).map(request).collect();
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
    let legacy = pipeline(&m, "legacy.toml");
    let mut values = legacy.values();
    group.bench_function("legacy_only", |b| {
        b.iter(|| {
            i = (i + 1) % requests.len();
            legacy.compute(black_box(&requests[i].values), &mut values);
            black_box(values.row[0])
        })
    });
    let mut r = m.schema().record();
    group.bench_function("generate_request", |b| {
        b.iter(|| {
            i += 1;
            g.fill(black_box(i as u64), 1_772_323_200_000 + i as i64, &mut r);
            black_box(r.entity)
        })
    });
    group.finish();
}

criterion_group!(benches, both_paths);
criterion_main!(benches);
