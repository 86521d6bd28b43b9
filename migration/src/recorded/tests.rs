use super::*;
use crate::folder::Migration;

fn write(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("cutover-recorded-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

const HEADER: &str = "transaction_id,customer_id,event_time_ms,amount,currency,merchant_category,country,channel,device_os,account_age_days,card_present,distance_from_home_km,legacy_score,legacy_decision\n";

fn open(path: &std::path::Path, map: FieldMap) -> Result<Reader, RowError> {
    let m = Migration::bundled_fraud().unwrap();
    Reader::open(path, None, m.schema(), m.answer(), map)
}

#[test]
fn csv_and_json_lines_read_the_same_request() {
    let csv = write("a.csv", &format!("{HEADER}7,42,1772323200000,12.5,EUR,5411,DE,pos,,,true,3.2,0.125,allow\n"));
    let json = write(
        "a.jsonl",
        "{\"transaction_id\":7,\"customer_id\":42,\"event_time_ms\":\"2026-03-01T00:00:00Z\",\"amount\":12.5,\"currency\":\"EUR\",\"merchant_category\":\"5411\",\"country\":\"DE\",\"channel\":\"pos\",\"device_os\":null,\"card_present\":true,\"distance_from_home_km\":3.2,\"legacy_score\":0.125,\"legacy_decision\":\"allow\"}\n",
    );
    let a = open(&csv, FieldMap::default()).unwrap().next_row().unwrap().unwrap();
    let b = open(&json, FieldMap::default()).unwrap().next_row().unwrap().unwrap();
    assert_eq!(a.record, b.record);
    assert_eq!((a.line, b.line), (2, 1));
    assert_eq!((a.legacy_score, a.legacy_decision), (Some(0.125), Some(0)));
    assert_eq!(a.record.time_ms, 1_772_323_200_000);
    assert_eq!((a.record.id, a.record.entity), (7, 42));
}

#[test]
fn bad_rows_name_the_line_the_column_and_the_field() {
    let csv = write(
        "bad.csv",
        &format!("{HEADER}1,42,1772323200000,12.5,EUR,5411,DE,pos,,,maybe,3.2,,\n2,42,1772323200000,abc,EUR,5411,DE,pos,,,true,,,\n3,42,,1,EUR,5411,DE,pos,,,true,,,\n"),
    );
    let mut r = open(&csv, FieldMap::default()).unwrap();
    let e = r.next_row().unwrap().unwrap_err();
    assert_eq!((e.line, e.column, e.field.as_str()), (2, Some(11), "card_present"), "{e}");
    let e = r.next_row().unwrap().unwrap_err();
    assert_eq!((e.line, e.column, e.field.as_str()), (3, Some(4), "amount"), "{e}");
    assert!(e.to_string().starts_with(&format!("{}:3:4: field `amount`", csv.display())), "{e}");
    let e = r.next_row().unwrap().unwrap_err();
    assert_eq!((e.line, e.field.as_str()), (4, "event_time_ms"), "{e}");
    assert!(r.next_row().is_none());

    let json = write("bad.jsonl", "{\"transaction_id\": 1,\n{\"transaction_id\":\"x\"}\n{\"event_time_ms\":\"yesterday\",\"transaction_id\":1,\"customer_id\":1,\"amount\":1,\"currency\":\"EUR\",\"merchant_category\":\"1\",\"country\":\"DE\",\"channel\":\"pos\",\"card_present\":false}\n");
    let mut r = open(&json, FieldMap::default()).unwrap();
    let e = r.next_row().unwrap().unwrap_err();
    assert_eq!((e.line, e.field.as_str()), (1, "line"), "{e}");
    let e = r.next_row().unwrap().unwrap_err();
    assert_eq!((e.line, e.field.as_str()), (2, "transaction_id"), "{e}");
    let e = r.next_row().unwrap().unwrap_err();
    assert_eq!((e.line, e.field.as_str()), (3, "event_time_ms"), "{e}");

    let headless = write("headless.csv", "transaction_id,amount\n1,2\n");
    let e = open(&headless, FieldMap::default()).err().unwrap();
    assert_eq!((e.line, e.field.as_str()), (1, "customer_id"), "{e}");
}

#[test]
fn a_field_map_reads_a_user_s_own_columns() {
    let m = Migration::bundled_fraud().unwrap();
    let map = FieldMap::parse(
        "[fields]\ntransaction_id = \"txn\"\nevent_time_ms = \"ts\"\nlegacy_decision = \"action\"\n[decisions]\nblock = [\"DECLINE\"]\nallow = [\"APPROVE\"]\n",
        "m.toml",
        m.schema(),
        m.answer(),
    )
    .unwrap();
    let csv = write(
        "own.csv",
        "txn,customer_id,ts,amount,currency,merchant_category,country,channel,card_present,action,extra\n9,1,2026-03-01T01:00:00+01:00,5,EUR,5411,DE,web,false,decline,whatever\n",
    );
    let r = open(&csv, map).unwrap().next_row().unwrap().unwrap();
    assert_eq!(r.record.id, 9);
    assert_eq!(r.record.time_ms, 1_772_323_200_000);
    assert_eq!(r.legacy_decision, Some(1));
    let e =
        FieldMap::parse("[fields]\namount = \"amt\"\n  amout = \"x\"\n", "m.toml", m.schema(), m.answer()).unwrap_err();
    assert_eq!((e.line, e.column, e.field.as_str()), (3, Some(3), "fields.amout"), "{e}");
    let e = FieldMap::parse("[decisions]\nreject = [\"x\"]\n", "m.toml", m.schema(), m.answer()).unwrap_err();
    assert_eq!(e.field, "decisions.reject", "{e}");
}
