//! The spec language, step by step, on records of a schema written here.

use std::sync::Arc;

use super::*;
use crate::schema::{Cell, Record, Schema, Value};

/// The bundled fraud migration's schema.
pub(crate) fn fraud_schema() -> Arc<Schema> {
    crate::folder::Migration::bundled_fraud().unwrap().schema().clone()
}

use crate::schema::tests::compiled as schema;

pub(crate) fn pipeline(text: &str, schema: &Arc<Schema>) -> Pipeline {
    Pipeline::from_text(text, "s.toml", schema, None).unwrap_or_else(|e| panic!("{e}"))
}

const TRIPS: &str = r#"
id = "trip"
entity = "rider"
time = "at"
fields = [
  { name = "trip", kind = "integer" },
  { name = "rider", kind = "category" },
  { name = "at", kind = "timestamp" },
  { name = "km", kind = "number", optional = true },
  { name = "minutes", kind = "number", optional = true, missing_values = [-1] },
  { name = "city", kind = "category", optional = true, missing_values = ["unknown"] },
  { name = "tz", kind = "category", optional = true },
  { name = "surge", kind = "boolean" },
]
"#;

fn record(s: &Schema, cells: [&str; 8]) -> Record {
    let mut r = s.record();
    for (i, c) in cells.iter().enumerate() {
        r.values[i] = s.value(i, Cell::of_csv(Some(c)), true).unwrap_or_else(|e| panic!("{c}: {e}"));
    }
    s.finish(&mut r);
    r
}

fn eval(p: &Pipeline, r: &Record) -> Vec<f64> {
    let mut v = p.values();
    p.compute(&r.values, &mut v);
    v.all.clone()
}

#[test]
fn arithmetic_states_what_missing_operands_and_zero_divisors_do() {
    let s = schema(TRIPS);
    let p = pipeline(
        r#"
name = "t"
[[feature]]
name = "speed"
divide = ["km", "minutes"]
[[feature]]
name = "speed0"
divide = ["km", "minutes"]
on_zero = 0.0
[[feature]]
name = "total"
add = ["km", "minutes"]
fill_operands = 0.0
[[feature]]
name = "diff"
subtract = ["km", "minutes"]
[[feature]]
name = "product"
multiply = ["km", "speed0"]
missing = { constant = -9.0 }
"#,
        &s,
    );
    let v = eval(&p, &record(&s, ["1", "r", "0", "12", "3", "x", "", "0"]));
    assert_eq!(v, [4.0, 4.0, 15.0, 9.0, 48.0]);
    let zero = eval(&p, &record(&s, ["1", "r", "0", "12", "0", "x", "", "0"]));
    assert!(zero[0].is_nan(), "x / 0 is missing by default");
    assert_eq!(zero[1], 0.0, "unless on_zero says otherwise");
    // -1 is the schema's missing value for minutes: a missing operand.
    let gap = eval(&p, &record(&s, ["1", "r", "0", "12", "-1", "x", "", "0"]));
    assert!(gap[0].is_nan() && gap[3].is_nan());
    assert_eq!(gap[2], 12.0, "fill_operands counts the missing one as 0");
    assert_eq!(gap[4], -9.0, "the feature's missing policy applies to a missing result");
}

#[test]
fn arithmetic_takes_constants_and_a_policy_for_division_by_zero() {
    let s = schema(TRIPS);
    let p = pipeline(
        r#"
name = "t"
[[feature]]
name = "minutes_plus_one"
add = ["minutes", 1]
[[feature]]
name = "per_minute"
divide = ["km", "minutes_plus_one"]
[[feature]]
name = "raw_ratio"
divide = ["km", "minutes"]
on_zero = "infinity"
[[feature]]
name = "clipped"
source = "raw_ratio"
steps = [{ op = "clip", min = 0.0, max = 100.0 }]
[[feature]]
name = "half"
multiply = [0.5, "km"]
[[feature]]
name = "explicit"
divide = ["km", "minutes"]
on_zero = "missing"
"#,
        &s,
    );
    let v = eval(&p, &record(&s, ["1", "r", "0", "12", "3", "x", "", "0"]));
    assert_eq!(v, [4.0, 3.0, 4.0, 4.0, 6.0, 4.0]);
    let zero = eval(&p, &record(&s, ["1", "r", "0", "12", "0", "x", "", "0"]));
    assert_eq!(zero[0], 1.0);
    assert_eq!(zero[1], 12.0, "the `+ 1` keeps the ratio defined");
    assert_eq!(zero[2], f64::INFINITY, "x / 0 is infinite when the spec says so, as numpy computes it");
    assert_eq!(zero[3], 100.0, "and the steps see the infinity");
    assert!(zero[5].is_nan());
    let nothing = eval(&p, &record(&s, ["1", "r", "0", "0", "0", "x", "", "0"]));
    assert!(nothing[2].is_nan(), "0 / 0 stays missing");
    let refused = |spec: &str| match Pipeline::from_text(spec, "t.toml", &s, None) {
        Ok(_) => panic!("compiled: {spec}"),
        Err(e) => e.to_string(),
    };
    let e = refused("name = \"t\"\n[[feature]]\nname = \"x\"\nadd = [1, 2]\n");
    assert!(e.contains("both operands are numbers"), "{e}");
    let e = refused("name = \"t\"\n[[feature]]\nname = \"x\"\nadd = [\"km\", 1]\non_zero = 0\n");
    assert!(e.contains("on_zero applies to a division"), "{e}");
    let e = refused("name = \"t\"\n[[feature]]\nname = \"x\"\ndivide = [\"km\", \"minutes\"]\non_zero = \"inf\"\n");
    assert!(e.contains("t.toml:5") && e.contains("\"infinity\""), "{e}");
}

#[test]
fn lookups_take_a_key_field_or_the_value_itself() {
    let s = schema(TRIPS);
    let p = pipeline(
        r#"
name = "t"
[tables.city_factor]
Berlin = 1.5
Paris = 2.0
[[feature]]
name = "km_weighted"
source = "km"
steps = [{ op = "lookup", table = "city_factor", key = "city", case_sensitive = false }]
[[feature]]
name = "city_factor"
source = "city"
steps = [{ op = "lookup", table = "city_factor", apply = "replace", default = 1.0 }]
"#,
        &s,
    );
    assert_eq!(eval(&p, &record(&s, ["1", "r", "0", "10", "3", "berlin", "", "0"])), [15.0, 1.0]);
    assert_eq!(eval(&p, &record(&s, ["1", "r", "0", "10", "3", "Paris", "", "0"])), [20.0, 2.0]);
    let other = eval(&p, &record(&s, ["1", "r", "0", "10", "3", "Rome", "", "0"]));
    assert!(other[0].is_nan(), "a key the table lacks: missing without a default");
    assert_eq!(other[1], 1.0, "the default");
}

#[test]
fn time_features_in_a_fixed_zone_or_one_a_field_names() {
    let s = schema(TRIPS);
    let p = pipeline(
        r#"
name = "t"
[tables.zones]
Tokyo = "Asia/Tokyo"
[[feature]]
name = "hour_utc"
source = "at"
steps = [{ op = "hour_of_day", zone = "UTC" }]
[[feature]]
name = "hour_city"
source = "at"
steps = [{ op = "hour_of_day", zone = { field = "city", table = "zones", default = "Europe/London" } }]
[[feature]]
name = "hour_tz"
source = "at"
steps = [{ op = "hour_of_day", zone = { field = "tz" } }]
[[feature]]
name = "weekday"
source = "at"
steps = [{ op = "day_of_week", zone = "UTC" }]
[[feature]]
name = "month"
source = "at"
steps = [{ op = "month", zone = "UTC" }]
[[feature]]
name = "day"
source = "at"
steps = [{ op = "day_of_month", zone = "UTC" }]
"#,
        &s,
    );
    // 2026-03-01T10:00:00Z, a Sunday; RFC 3339 and epoch milliseconds alike.
    for at in ["2026-03-01T10:00:00Z", "1772359200000"] {
        let v = eval(&p, &record(&s, ["1", "r", at, "", "", "Tokyo", "America/New_York", "1"]));
        assert_eq!(v, [10.0, 19.0, 5.0, 6.0, 3.0, 1.0], "{at}");
    }
    let v = eval(&p, &record(&s, ["1", "r", "2026-03-01T10:00:00Z", "", "", "Oslo", "Not/AZone", "1"]));
    assert_eq!(v[1], 10.0, "a city the table lacks takes the default zone (London, UTC+0 in March)");
    assert!(v[2].is_nan(), "a value that names no zone, and no default: missing");
}

#[test]
fn rounding_clipping_and_sentinels_kept_as_sent() {
    let s = schema(TRIPS);
    let p = pipeline(
        r#"
name = "t"
[[feature]]
name = "km_round"
source = "km"
steps = [{ op = "round", digits = 0 }]
[[feature]]
name = "km_1"
source = "km"
steps = [{ op = "round", digits = 1 }, { op = "clip", min = 0.0, max = 10.0 }]
[[feature]]
name = "minutes_raw"
source = "minutes"
sentinels = "keep"
[[feature]]
name = "minutes"
source = "minutes"
[[feature]]
name = "surge"
source = "surge"
"#,
        &s,
    );
    let v = eval(&p, &record(&s, ["1", "r", "0", "2.5", "-1", "", "", "true"]));
    assert_eq!(v[0], 2.0, "round half to even, as numpy and Python do");
    assert_eq!(v[1], 2.5);
    assert_eq!(v[2], -1.0, "kept as sent");
    assert!(v[3].is_nan(), "read as missing");
    assert_eq!(v[4], 1.0);
}

#[test]
fn specs_that_cannot_work_are_refused_naming_the_place() {
    let s = schema(TRIPS);
    let cases = [
        ("name = \"t\"\n[[feature]]\nname = \"a\"\nsource = \"nope\"\n", "feature[0].source", 4),
        ("name = \"t\"\n[[feature]]\nname = \"a\"\nsource = \"city\"\n", "feature[0].vocabulary", 3),
        ("name = \"t\"\n[[feature]]\nname = \"a\"\nsource = \"rider\"\n", "feature[0].source", 4),
        ("name = \"t\"\n[[feature]]\nname = \"a\"\ndivide = [\"km\", \"city\"]\n", "feature[0].source", 4),
        ("name = \"t\"\n[[feature]]\nname = \"a\"\nsource = \"km\"\nsteps = [{ op = \"hour_of_day\", zone = \"UTC\" }]\n", "feature[0].steps", 5),
        ("name = \"t\"\n[[feature]]\nname = \"a\"\nsource = \"at\"\nsteps = [{ op = \"hour_of_day\", zone = \"Mars/Base\" }]\n", "feature[0].steps", 5),
        ("name = \"t\"\n[[feature]]\nname = \"a\"\nsource = \"km\"\nsteps = [{ op = \"lookup\", table = \"none\", key = \"city\" }]\n", "feature[0].steps", 5),
        ("name = \"t\"\n[[aggregate]]\nname = \"n\"\nfunction = \"mean\"\n[[feature]]\nname = \"a\"\nsource = \"n\"\n", "aggregate[0].of", 3),
        ("name = \"t\"\n[[aggregate]]\nname = \"n\"\nfunction = \"sum\"\nof = \"a\"\n[[feature]]\nname = \"a\"\nsource = \"n\"\n", "aggregate[0].of", 5),
        ("name = \"t\"\n[tables.z]\nx = \"Nowhere/Zone\"\n[[feature]]\nname = \"a\"\nsource = \"km\"\n", "tables.z", 2),
    ];
    for (text, field, line) in cases {
        let e = Pipeline::from_text(text, "s.toml", &s, None).unwrap_err();
        assert_eq!((e.field.as_str(), e.line), (field, line), "{e}");
    }
}

#[test]
fn an_aggregate_input_is_derived_by_its_own_spec() {
    let s = schema(TRIPS);
    let p = pipeline(
        r#"
name = "t"
[[aggregate]]
name = "avg_speed"
function = "mean"
of = "speed"
[[feature]]
name = "speed"
divide = ["km", "minutes"]
[[feature]]
name = "vs_avg"
divide = ["speed", "avg_speed"]
"#,
        &s,
    );
    let r = record(&s, ["1", "r", "0", "12", "3", "x", "", "0"]);
    let mut scratch = p.values();
    assert_eq!(p.aggregate_input(0, &r.values, &mut scratch), 4.0);
    let mut v = p.values();
    v.aggregates[0] = 2.0;
    p.compute(&r.values, &mut v);
    assert_eq!(v.row, [4.0, 2.0]);
    assert_eq!(v.aggregates[0], 2.0);
    let _ = Value::Missing;
}
