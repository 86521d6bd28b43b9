use super::*;

pub(crate) const LOAN: &str = r#"
id = "application_id"
entity = "applicant"
time = "submitted"
fields = [
  { name = "application_id", kind = "integer" },
  { name = "applicant", kind = "category" },
  { name = "submitted", kind = "timestamp" },
  { name = "income", kind = "number", optional = true, min = 0 },
  { name = "employment_code", kind = "integer", missing_values = [-1] },
  { name = "homeowner", kind = "boolean" },
  { name = "region", kind = "category", optional = true, missing_values = ["unknown", ""] },
]
"#;

pub(crate) fn schema(text: &str) -> Result<Schema, FieldError> {
    let def: RequestDef = toml::from_str(text).map_err(|e| FieldError {
        file: "m.toml".into(),
        line: 0,
        column: 0,
        field: String::new(),
        message: e.to_string(),
    })?;
    Schema::compile(&def, text, "m.toml")
}

/// A schema from `[request]` text, shared by the crate's tests.
pub(crate) fn compiled(text: &str) -> std::sync::Arc<Schema> {
    std::sync::Arc::new(schema(text).unwrap_or_else(|e| panic!("{e}")))
}

fn parse(s: &Schema, body: &str) -> Result<Record, WireError> {
    let mut r = s.record();
    s.parse_json(body.as_bytes(), &mut r).map(|()| r)
}

#[test]
fn every_kind_reads_json_and_text_alike() {
    let s = schema(LOAN).unwrap();
    let a = parse(
        &s,
        r#"{"application_id": 7, "applicant": "A-17", "submitted": "2026-03-01T01:00:00+01:00", "income": 52000.5,
            "employment_code": 3, "homeowner": "TRUE", "region": "north"}"#,
    )
    .unwrap();
    assert_eq!(a.id, 7);
    assert_eq!(a.entity, key_of_text("A-17"));
    assert_eq!(a.time_ms, 1_772_323_200_000);
    assert_eq!(a.values[5], Value::Number(1.0));
    let b = parse(
        &s,
        r#"{"application_id": 7, "applicant": "A-17", "submitted": 1772323200000, "income": 52000.5,
            "employment_code": 3, "homeowner": 1, "region": "north"}"#,
    )
    .unwrap();
    assert_eq!(a.values[..5], b.values[..5]);
    // A region never interned is looked up, not added.
    assert_eq!(b.values[6], Value::Text(Text::UNSEEN));
    let csv: Vec<Value> = ["7", "A-17", "2026-03-01T00:00:00Z", "52000.5", "3", "1", ""]
        .iter()
        .enumerate()
        .map(|(i, t)| s.value(i, Cell::of_csv(Some(t)), true).unwrap())
        .collect();
    assert_eq!(csv[..6], a.values[..6]);
    assert!(s.fields()[6].is_missing(csv[6]), "an empty cell is the \"\" sentinel: missing");
}

#[test]
fn sentinels_are_kept_as_sent_and_read_as_missing() {
    let s = schema(LOAN).unwrap();
    let r = parse(
        &s,
        r#"{"application_id": 1, "applicant": "x", "submitted": 0, "employment_code": -1, "homeowner": false, "region": "Unknown"}"#,
    )
    .unwrap();
    assert_eq!(r.values[4], Value::Number(-1.0), "the raw value stays: a spec may read it as sent");
    assert!(s.is_missing(&r, 4));
    assert!(s.is_missing(&r, 6), "Unknown matches the sentinel unknown");
    assert!(s.is_missing(&r, 3), "an absent optional field");
    // A text sentinel on a number field cannot be held as a number: it is missing.
    let t = schema(&LOAN.replace("min = 0 }", "min = 0, missing_values = [\"n/a\"] }")).unwrap();
    assert_eq!(t.value(3, Cell::CsvText("N/A"), true), Ok(Value::Missing));
}

#[test]
fn bad_values_name_the_field_and_why() {
    let s = schema(LOAN).unwrap();
    let good = r#"{"application_id": 1, "applicant": "x", "submitted": 0, "employment_code": 2, "homeowner": false}"#;
    assert!(parse(&s, good).is_ok());
    let cases = [
        (good.replace("\"employment_code\": 2", "\"employment_code\": 2.5"), "employment_code"),
        (good.replace("\"homeowner\": false", "\"homeowner\": \"maybe\""), "homeowner"),
        (good.replace("\"homeowner\": false", "\"homeowner\": 2"), "homeowner"),
        (good.replace("\"submitted\": 0", "\"submitted\": \"yesterday\""), "submitted"),
        (good.replace("\"application_id\": 1", "\"application_id\": -4"), "application_id"),
        (good.replace("\"applicant\": \"x\"", "\"applicant\": \"\""), "applicant"),
        (good.replace("\"applicant\": \"x\"", "\"applicant\": [1]"), "applicant"),
        (good.replace("\"homeowner\": false", "\"homeowner\": false, \"income\": -3"), "income"),
        (good.replace("\"homeowner\": false", "\"homeowner\": false, \"income\": \"12\""), "income"),
        (good.replace("\"homeowner\": false", "\"homeowner\": false, \"income\": 1e39"), "income"),
        (good.replace("\"homeowner\": false", "\"homeowner\": false, \"colour\": 1"), "colour"),
        (good.replace(", \"homeowner\": false", ""), "homeowner"),
        (format!("{good} {good}"), "body"),
        (format!("{good} x"), "body"),
        ("[1, 2]".to_string(), "body"),
        ("{\"application_id\": ".to_string(), "body"),
    ];
    for (body, field) in cases {
        let e = parse(&s, &body).unwrap_err();
        assert_eq!(e.field, field, "{body}: {e}");
    }
    let long = good.replace("\"applicant\": \"x\"", &format!("\"applicant\": \"{}\"", "y".repeat(65)));
    assert_eq!(parse(&s, &long).unwrap_err().field, "applicant");
}

#[test]
fn a_schema_refuses_what_cannot_work_naming_the_place() {
    let cases = [
        (LOAN.replace("entity = \"applicant\"", "entity = \"applicant_id\""), "request.entity"),
        (LOAN.replace("time = \"submitted\"", "time = \"income\""), "request.time"),
        (
            LOAN.replace("\"homeowner\", kind = \"boolean\"", "\"homeowner\", kind = \"boolean\", min = 1"),
            "request.fields[5].min",
        ),
        (LOAN.replace("{ name = \"homeowner\"", "{ name = \"income\""), "request.fields[5].name"),
        (LOAN.replace("entity = \"applicant\"", "entity = \"income\""), "request.entity"),
        (LOAN.replace("entity = \"applicant\"", "entity = \"application_id\""), "request.entity"),
    ];
    for (text, field) in cases {
        let e = schema(&text).unwrap_err();
        assert_eq!(e.field, field, "{e}");
        assert!(e.line > 0, "{e}");
    }
    assert!(schema(&LOAN.replace("\"integer\" }", "\"integr\" }")).is_err());
}

#[test]
fn a_record_renders_back_to_what_parses_into_it() {
    let s = schema(LOAN).unwrap();
    let mut r = s.record();
    for (i, t) in ["7", "A-17", "1772323200000", "10.5", "-1", "true", "north"].iter().enumerate() {
        r.values[i] = s.value(i, Cell::CsvText(t), true).unwrap();
    }
    s.finish(&mut r);
    let json = s.to_json(&r, &|_, _| Some("A-17".into()));
    let back = parse(&s, &json.to_string()).unwrap();
    assert_eq!(back, r);
}
