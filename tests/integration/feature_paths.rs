//! The two feature paths of the bundled fraud domain: exact agreement with no fault, and
//! every failure mode of the migration as a small change of the new spec or the store.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cutover_migration::features::{FeatureDiff, ParityStats, Pipeline};
use cutover_migration::paths::DualPath;
use cutover_migration::schema::{Record, Schema};
use cutover_migration::store::Schedule;
use cutover_migration::traffic::SharedSource;
use cutover_migration::Migration;

pub fn domain(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("domain/fraud").join(file)
}

/// The bundled fraud migration, loaded once.
pub fn fraud() -> &'static Migration {
    static M: std::sync::OnceLock<Migration> = std::sync::OnceLock::new();
    M.get_or_init(|| Migration::bundled_fraud().unwrap_or_else(|e| panic!("{e}")))
}

pub fn schema() -> &'static Arc<Schema> {
    fraud().schema()
}

fn legacy() -> Arc<Pipeline> {
    Arc::new(Pipeline::from_file(&domain("legacy.toml"), schema(), None).unwrap_or_else(|e| panic!("{e}")))
}

fn new_spec() -> Arc<Pipeline> {
    Arc::new(Pipeline::from_file(&domain("new.toml"), schema(), None).unwrap())
}

fn new_text() -> String {
    std::fs::read_to_string(domain("new.toml")).unwrap()
}

/// The new spec with one edit: `from` must occur exactly once.
fn edited(from: &str, to: &str) -> Arc<Pipeline> {
    let text = new_text();
    assert_eq!(text.matches(from).count(), 1, "edit target `{from}` must occur once");
    Arc::new(
        Pipeline::from_text(&text.replacen(from, to, 1), "new.toml", schema(), None).unwrap_or_else(|e| panic!("{e}")),
    )
}

/// Runs `n` requests through both paths; returns mismatch counts per feature and the paths.
fn run(new: Arc<Pipeline>, n: u64, stall_store_until_ms: Option<i64>) -> (Vec<(String, usize)>, Vec<Vec<FeatureDiff>>) {
    let mut paths = DualPath::new(legacy(), new, Schedule::default()).unwrap();
    if let Some(t) = stall_store_until_ms {
        // Only the store's job stalls; the legacy table keeps its schedule.
        paths.store_mut().stall_until(t);
    }
    let names = paths.legacy().output_names().to_vec();
    let mut counts = vec![0usize; names.len()];
    let mut all = Vec::new();
    let g = slow_traffic(11);
    for i in 0..n {
        let r = request(&g, i);
        let rows = paths.compute(&r);
        for (c, d) in counts.iter_mut().zip(rows.diffs) {
            *c += usize::from(d.is_mismatch());
        }
        all.push(rows.diffs.to_vec());
        paths.served(&r);
    }
    (names.into_iter().zip(counts).collect(), all)
}

/// One request a second, so that a few thousand requests span several materializations
/// (every 15 minutes) and the aggregates are exercised.
fn slow_traffic(seed: u64) -> SharedSource {
    fraud().source(seed, 1.0).unwrap()
}

/// Request `i` of a source at one request a second.
pub fn request(g: &SharedSource, i: u64) -> Record {
    let mut r = schema().record();
    g.fill(i, g.time_at_rate(i, 1.0), &mut r);
    r
}

fn mismatching(counts: &[(String, usize)]) -> Vec<&str> {
    counts.iter().filter(|(_, c)| *c > 0).map(|(n, _)| n.as_str()).collect()
}

#[test]
fn with_no_fault_the_two_paths_agree_exactly_on_every_request() {
    let mut paths = DualPath::new(legacy(), new_spec(), Schedule::default()).unwrap();
    let g = slow_traffic(11);
    let count = paths.legacy().output_names().iter().position(|n| n == "customer_txn_count").unwrap();
    let (mut with_aggregates, mut mismatches) = (0, 0);
    for i in 0..30_000 {
        let r = request(&g, i);
        let rows = paths.compute(&r);
        mismatches += rows.diffs.iter().filter(|d| d.is_mismatch()).count();
        with_aggregates += usize::from(rows.legacy[count] > 0.0);
        paths.served(&r);
    }
    assert_eq!(mismatches, 0);
    // The test means something only if the aggregates were materialized and read.
    assert!(with_aggregates > 15_000, "only {with_aggregates} requests saw a customer aggregate");
}

#[test]
fn amount_in_cents_shows_on_the_amount_features() {
    let new = edited(
        "steps = [{ op = \"clip\", min = 0.0, max = 25000.0 }]",
        "steps = [{ op = \"scale\", factor = 100.0 }, { op = \"clip\", min = 0.0, max = 25000.0 }]",
    );
    let (counts, _) = run(new, 3000, None);
    assert_eq!(mismatching(&counts), ["amount_eur", "amount_band", "amount_to_customer_avg"]);
}

const HOUR_LOCAL: &str =
    "op = \"hour_of_day\", zone = { field = \"country\", table = \"country_zones\", default = \"UTC\" }";

#[test]
fn hour_in_utc_instead_of_local_time_shows_on_the_hour() {
    let new = edited(HOUR_LOCAL, "op = \"hour_of_day\", zone = \"UTC\"");
    let (counts, _) = run(new, 3000, None);
    assert_eq!(mismatching(&counts), ["hour_local"]);
}

#[test]
fn miles_instead_of_km_shows_on_the_distance() {
    let new = edited(
        "steps = [{ op = \"clip\", min = 0.0, max = 20000.0 }]",
        "steps = [{ op = \"scale\", factor = 0.621371 }, { op = \"clip\", min = 0.0, max = 20000.0 }]",
    );
    let (counts, diffs) = run(new, 3000, None);
    assert_eq!(mismatching(&counts), ["distance_from_home_km"]);
    let d = counts.iter().position(|(n, _)| n == "distance_from_home_km").unwrap();
    assert!(diffs.iter().all(|r| matches!(r[d], FeatureDiff::Equal | FeatureDiff::Numeric { .. })));
}

#[test]
fn missing_filled_with_zero_instead_of_nan_shows_as_missing_on_one_side() {
    let text = new_text();
    let from = "name = \"distance_from_home_km\"\nsource = \"distance_from_home_km\"\nsteps = [{ op = \"clip\", min = 0.0, max = 20000.0 }]\nmissing = \"nan\"";
    assert!(text.contains(from));
    let new = Arc::new(
        Pipeline::from_text(
            &text.replace(from, &from.replace("missing = \"nan\"", "missing = { constant = 0.0 }")),
            "new.toml",
            schema(),
            None,
        )
        .unwrap(),
    );
    let (counts, diffs) = run(new, 3000, None);
    assert_eq!(mismatching(&counts), ["distance_from_home_km"]);
    let d = counts.iter().position(|(n, _)| n == "distance_from_home_km").unwrap();
    assert!(diffs.iter().all(|r| matches!(r[d], FeatureDiff::Equal | FeatureDiff::MissingLegacy)));
}

#[test]
fn a_reordered_vocabulary_shows_as_category_mismatches() {
    let new = edited("vocabulary = [\"5411\", \"5812\",", "vocabulary = [\"5812\", \"5411\",");
    let (counts, diffs) = run(new, 3000, None);
    assert_eq!(mismatching(&counts), ["merchant_category"]);
    let d = counts.iter().position(|(n, _)| n == "merchant_category").unwrap();
    assert!(diffs.iter().any(|r| r[d] == FeatureDiff::Category { legacy: 0, new: 1 }));
}

#[test]
fn unknown_categories_mapped_to_zero_show_only_on_unseen_values() {
    let text = new_text();
    let from = "\"MT\", \"IS\"]\nunknown = \"nan\"";
    let new = Arc::new(
        Pipeline::from_text(&text.replace(from, "\"MT\", \"IS\"]\nunknown = { code = 0 }"), "new.toml", schema(), None)
            .unwrap(),
    );
    let (counts, diffs) = run(new, 60_000, None);
    assert_eq!(mismatching(&counts), ["country"]);
    let c = counts.iter().position(|(n, _)| n == "country").unwrap();
    assert!(diffs.iter().all(|r| matches!(r[c], FeatureDiff::Equal | FeatureDiff::MissingLegacy)));
    assert!(counts[c].1 < 600, "only the rare unseen countries differ: {}", counts[c].1);
}

#[test]
fn case_sensitive_categories_lose_the_apps_mixed_case() {
    let new = edited("case_sensitive = false", "case_sensitive = true");
    let (counts, diffs) = run(new, 3000, None);
    assert_eq!(mismatching(&counts), ["device_os"]);
    let d = counts.iter().position(|(n, _)| n == "device_os").unwrap();
    assert!(diffs.iter().all(|r| matches!(r[d], FeatureDiff::Equal | FeatureDiff::MissingNew)));
}

#[test]
fn stale_aggregates_show_on_the_aggregate_features_only() {
    let new = new_spec();
    // Traffic starts at 2026-03-01T00:00Z; the store's job stalls for the first 2 hours.
    let (counts, _) = run(new, 5000, Some(1_772_323_200_000 + 2 * 3_600_000));
    assert_eq!(mismatching(&counts), ["customer_txn_count", "customer_avg_amount_eur", "amount_to_customer_avg"]);
}

#[test]
fn parity_is_reported_per_segment() {
    let legacy_pipeline = legacy();
    let names = legacy_pipeline.output_names().to_vec();
    let kinds = legacy_pipeline.output_kinds();
    let edges = vec![Vec::new(); names.len()]; // one bin: distances need not be exercised here
    let segments = fraud().segments().unwrap();
    let mut segs = vec![0; segments.dims() + 1];
    for (new, expect_mismatch) in
        [(new_spec(), false), (edited(HOUR_LOCAL, "op = \"hour_of_day\", zone = \"UTC\""), true)]
    {
        let mut stats = ParityStats::new(names.clone(), kinds.clone(), edges.clone(), segments.names().to_vec());
        let mut paths = DualPath::new(legacy(), new, Schedule::default()).unwrap();
        let g = slow_traffic(5);
        for i in 0..20_000 {
            let r = request(&g, i);
            let rows = paths.compute(&r);
            segments.of(&r, &mut segs);
            stats.observe(&segs, rows.legacy, rows.new, rows.diffs);
            paths.served(&r);
        }
        let report = stats.report();
        let hour = report.iter().find(|f| f.feature == "hour_local").unwrap();
        let rate = |seg: &str| hour.segments.iter().find(|s| s.segment == seg).map(|s| s.mismatch_rate);
        if expect_mismatch {
            assert_eq!(rate("country=DE"), Some(1.0), "Berlin is never UTC");
            assert_eq!(rate("country=IS"), Some(0.0), "Reykjavik is UTC all year");
        } else {
            assert!(report.iter().all(|f| f.segments.iter().all(|s| s.mismatch_rate == 0.0)));
        }
    }
}

fn spec_error(text: &str, model: Option<&[String]>) -> String {
    Pipeline::from_text(text, "new.toml", schema(), model).expect_err("must be refused").to_string()
}

#[test]
fn bad_specs_are_refused_with_file_line_and_field() {
    let text = new_text();
    let line_of = |needle: &str| text[..text.find(needle).unwrap()].matches('\n').count() + 1;

    let e = spec_error(&text.replacen("source = \"distance_from_home_km\"", "source = \"distance_km\"", 1), None);
    let line = line_of("source = \"distance_from_home_km\"");
    assert!(
        e.starts_with(&format!("new.toml:{line}:10: field `feature[11].source`: unknown field `distance_km`")),
        "{e}"
    );

    let e = spec_error(&text.replacen("name = \"card_present\"", "name = \"channel\"", 1), None);
    assert!(
        e.contains(&format!(
            "new.toml:{}:8: field `feature[10].name`: duplicate feature `channel`",
            line_of("name = \"card_present\"")
        )),
        "{e}"
    );

    let e = spec_error(&text.replacen("\"pos\", \"web\", \"app\"", "\"pos\", \"web\", \"POS\"", 1), None);
    assert!(e.contains("field `feature[7].vocabulary`: duplicate value \"POS\""), "{e}");

    let e = spec_error(&text.replacen("case_sensitive = false", "case_sensitive = false\ncolour = \"blue\"", 1), None);
    assert!(
        e.starts_with(&format!("new.toml:{}:1: unknown field `colour`", line_of("case_sensitive = false") + 1)),
        "{e}"
    );

    let e = spec_error(
        &text.replacen("op = \"log1p\"", "op = \"log2\"", 1).replacen(
            "op = \"clip\", min = 0.0, max = 25000.0",
            "op = \"cube\"",
            1,
        ),
        None,
    );
    assert!(e.contains("unknown variant `cube`"), "{e}");

    let e = spec_error(&text.replacen("default = \"UTC\" }", "default = \"Mars/Olympus\" }", 1), None);
    assert!(e.contains("field `feature[3].steps`: unknown time zone `Mars/Olympus`"), "{e}");

    let e = spec_error(&text.replacen("min = 0.0, max = 10000.0", "min = 10.0, max = 1.0", 1), None);
    assert!(e.contains("field `feature[9].steps`: clip min 10 is above max 1"), "{e}");

    let e = spec_error(
        &text.replacen(
            "name = \"amount_eur\"\nsource = \"amount_in_eur\"",
            "name = \"amount_eur\"\nsource = \"amount_in_eur\"\nratio = [\"a\", \"b\"]",
            1,
        ),
        None,
    );
    assert!(e.contains("give either `source` or an arithmetic input"), "{e}");
}

#[test]
fn specs_must_match_the_models_feature_names_and_order() {
    let text = new_text();
    let names: Vec<String> = legacy().output_names().to_vec();
    assert!(Pipeline::from_text(&text, "new.toml", schema(), Some(&names)).is_ok());

    let mut swapped = names.clone();
    swapped.swap(2, 3);
    let e = spec_error(&text, Some(&swapped));
    assert!(e.contains("field `feature[3].name`: feature order differs from the model at position 2: the spec has `hour_local`, the model `day_of_week_local`"), "{e}");

    let mut extra = names.clone();
    extra.push("ip_risk_score".into());
    let e = spec_error(&text, Some(&extra));
    assert!(e.contains("the model's feature `ip_risk_score` has no definition in the spec"), "{e}");

    let fewer: Vec<String> = names.iter().filter(|n| *n != "card_present").cloned().collect();
    let e = spec_error(&text, Some(&fewer));
    assert!(e.contains("`card_present` is not a feature of the model"), "{e}");
}

#[test]
fn distribution_distances_are_zero_without_a_fault_and_large_with_one() {
    use cutover_migration::features::parity::decile_edges;
    let legacy_pipeline = legacy();
    let names = legacy_pipeline.output_names().to_vec();
    let kinds = legacy_pipeline.output_kinds();
    // Bin edges from a reference sample of the legacy path.
    let g = slow_traffic(21);
    let mut values = legacy_pipeline.values();
    let mut sample: Vec<Vec<f32>> = vec![Vec::new(); names.len()];
    for i in 0..2000 {
        values.aggregates.fill(f64::NAN);
        legacy_pipeline.compute(&request(&g, i).values, &mut values);
        for (s, v) in sample.iter_mut().zip(&values.row) {
            s.push(*v);
        }
    }
    let edges: Vec<Vec<f64>> = sample.iter().map(|s| decile_edges(s)).collect();
    let cents = edited(
        "steps = [{ op = \"clip\", min = 0.0, max = 25000.0 }]",
        "steps = [{ op = \"scale\", factor = 100.0 }, { op = \"clip\", min = 0.0, max = 25000.0 }]",
    );
    let reordered = edited("vocabulary = [\"5411\", \"5812\",", "vocabulary = [\"5812\", \"5411\",");
    for (label, new) in [("clean", new_spec()), ("cents", cents), ("reordered", reordered)] {
        let mut stats = ParityStats::new(names.clone(), kinds.clone(), edges.clone(), vec!["all".into()]);
        let mut paths = DualPath::new(legacy(), new, Schedule::default()).unwrap();
        for i in 0..5000 {
            let r = request(&g, 10_000 + i);
            let rows = paths.compute(&r);
            stats.observe(&[0], rows.legacy, rows.new, rows.diffs);
            paths.served(&r);
        }
        let report = stats.report();
        let all = |f: &str| report.iter().find(|p| p.feature == f).unwrap().segments[0].clone();
        let amount = all("amount_eur");
        let mcc = all("merchant_category");
        match label {
            "clean" => {
                assert_eq!((amount.psi, amount.js_distance, mcc.linf), (Some(0.0), Some(0.0), Some(0.0)));
            }
            "cents" => {
                assert!(amount.psi.unwrap() > 1.0 && amount.js_distance.unwrap() > 0.5, "{amount:?}");
                assert!(amount.mean_abs_diff > 1000.0, "{amount:?}");
                assert_eq!(mcc.linf, Some(0.0));
            }
            _ => {
                // Grocery and restaurants swap codes: their shares trade places.
                assert!(mcc.linf.unwrap() > 0.05, "{mcc:?}");
                assert_eq!(amount.psi, Some(0.0));
            }
        }
    }
}
