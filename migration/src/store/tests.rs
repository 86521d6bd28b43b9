use std::sync::Arc;

use super::*;

const SCHEMA: &str = r#"
id = "id"
entity = "who"
time = "t"
fields = [
  { name = "id", kind = "integer" },
  { name = "who", kind = "integer" },
  { name = "t", kind = "timestamp" },
  { name = "x", kind = "number", optional = true },
]
"#;

const SPEC: &str = r#"
name = "s"
[[aggregate]]
name = "n"
function = "count"
[[aggregate]]
name = "total"
function = "sum"
of = "x"
[[aggregate]]
name = "avg2"
function = "mean"
of = "twice"
[[aggregate]]
name = "low"
function = "min"
of = "x"
[[aggregate]]
name = "high_10s"
function = "max"
of = "x"
window_s = 10
[[feature]]
name = "twice"
source = "x"
steps = [{ op = "scale", factor = 2.0 }]
[[feature]]
name = "n_out"
source = "n"
"#;

fn pipeline() -> Arc<Pipeline> {
    let schema = crate::schema::tests::compiled(SCHEMA);
    Arc::new(Pipeline::from_text(SPEC, "s.toml", &schema, None).unwrap())
}

fn event(p: &Pipeline, t: i64, who: u64, x: Option<f64>) -> Record {
    let mut r = p.schema().record();
    r.values =
        vec![Value::Key(t as u64), Value::Key(who), Value::Number(t as f64), x.map_or(Value::Missing, Value::Number)];
    p.schema().finish(&mut r);
    r
}

fn read(store: &Materializer, who: u64) -> Vec<f64> {
    let mut out = vec![0.0; 5];
    store.read(who, &mut out);
    out
}

#[test]
fn publishes_the_latest_value_per_key_at_each_cut_off() {
    let p = pipeline();
    let mut log = EventLog::new();
    let mut store = Materializer::new(Schedule { interval_ms: 1000, delay_ms: 0 }, p.clone());
    log.append(&event(&p, 100, 1, Some(10.0)));
    log.append(&event(&p, 900, 1, Some(30.0)));
    log.append(&event(&p, 1500, 2, Some(5.0)));
    store.advance_to(999, &log);
    assert_eq!(store.as_of_ms(), Some(0));
    let nothing = read(&store, 1);
    assert_eq!(nothing[..2], [0.0, 0.0], "never seen: count and sum 0");
    assert!(nothing[2..].iter().all(|x| x.is_nan()), "never seen: the rest missing");
    store.advance_to(1200, &log);
    assert_eq!(read(&store, 1), [2.0, 40.0, 40.0, 10.0, 30.0], "mean of the derived value 2x");
    assert_eq!(read(&store, 2)[0], 0.0, "after the cut-off");
    assert_eq!(store.freshness_lag_ms(1200), Some(200));
    store.advance_to(2000, &log);
    assert_eq!(read(&store, 2), [1.0, 5.0, 10.0, 5.0, 5.0]);
}

#[test]
fn missing_values_count_as_events_but_not_values() {
    let p = pipeline();
    let mut log = EventLog::new();
    let mut store = Materializer::new(Schedule { interval_ms: 1000, delay_ms: 0 }, p.clone());
    log.append(&event(&p, 10, 3, None));
    log.append(&event(&p, 20, 3, Some(4.0)));
    log.append(&event(&p, 30, 4, None));
    store.advance_to(1000, &log);
    assert_eq!(read(&store, 3), [2.0, 4.0, 8.0, 4.0, 4.0]);
    let only_missing = read(&store, 4);
    assert_eq!(only_missing[..2], [1.0, 0.0]);
    assert!(only_missing[2..].iter().all(|x| x.is_nan()));
}

#[test]
fn a_window_forgets_what_is_older_as_of_the_latest_event() {
    let p = pipeline();
    let mut log = EventLog::new();
    let mut store = Materializer::new(Schedule { interval_ms: 1000, delay_ms: 0 }, p.clone());
    log.append(&event(&p, 0, 5, Some(100.0)));
    log.append(&event(&p, 5_000, 5, Some(7.0)));
    store.advance_to(6_000, &log);
    assert_eq!(read(&store, 5)[4], 100.0, "both within 10 s of the latest event");
    log.append(&event(&p, 12_000, 5, Some(3.0)));
    store.advance_to(13_000, &log);
    let r = read(&store, 5);
    assert_eq!(r[4], 7.0, "the 100 is more than 10 s older than the latest event");
    assert_eq!((r[0], r[3]), (3.0, 3.0), "all-history aggregates keep everything");
}

#[test]
fn a_compacted_log_folds_into_the_same_tables_and_stays_small() {
    // Two logs with the same events, one compacted behind its readers as it grows.
    let p = pipeline();
    let (mut full, mut compacted) = (EventLog::new(), EventLog::new());
    let schedule = Schedule { interval_ms: 1000, delay_ms: 0 };
    let (mut a, mut b) = (Materializer::new(schedule, p.clone()), Materializer::new(schedule, p.clone()));
    let mut stalled = Materializer::new(schedule, p.clone());
    stalled.stall_until(60_000);
    let mut kept = 0;
    for i in 0..200_000u64 {
        let now = (i / 2) as i64;
        a.advance_to(now, &full);
        b.advance_to(now, &compacted);
        stalled.advance_to(now, &compacted);
        compacted.compact(b.cursor().min(stalled.cursor()));
        kept = kept.max(compacted.len());
        let e = event(&p, now, i % 977, Some((i % 13) as f64));
        full.append(&e);
        compacted.append(&e);
    }
    for who in [0, 5, 976] {
        assert_eq!(read(&a, who), read(&b, who));
        assert_eq!(read(&stalled, who), read(&b, who), "the stalled reader caught up from events kept for it");
    }
    assert_eq!(compacted.appended(), full.len());
    // A stall of 60 s at 2 events per ms holds back 120 000 events; afterwards the log
    // keeps about one interval's worth.
    assert!(kept <= 130_000, "kept {kept}");
    assert!(compacted.len() < 10_000, "{} events kept at the end", compacted.len());
}

#[test]
fn a_stalled_job_serves_stale_values_and_catches_up() {
    let p = pipeline();
    let mut log = EventLog::new();
    let mut store = Materializer::new(Schedule { interval_ms: 1000, delay_ms: 0 }, p.clone());
    store.stall_until(5000);
    for t in 0..4 {
        log.append(&event(&p, t * 1000 + 10, 7, Some(1.0)));
    }
    store.advance_to(4500, &log);
    assert_eq!(store.as_of_ms(), None);
    assert_eq!(store.freshness_lag_ms(4500), None);
    store.advance_to(5000, &log);
    assert_eq!(read(&store, 7)[0], 4.0);
    assert_eq!(store.freshness_lag_ms(5300), Some(300));
}

#[test]
fn a_delay_shifts_what_is_visible() {
    let p = pipeline();
    let mut log = EventLog::new();
    let mut store = Materializer::new(Schedule { interval_ms: 1000, delay_ms: 250 }, p.clone());
    log.append(&event(&p, 500, 3, Some(2.0)));
    store.advance_to(1100, &log);
    assert_eq!(read(&store, 3)[0], 0.0, "the 1000 ms cut-off is visible only from 1250 ms");
    store.advance_to(1250, &log);
    assert_eq!(read(&store, 3)[0], 1.0);
}
