//! Recorded requests, streamed from CSV or JSON lines one row at a time: the raw request
//! fields of the bundled domain (or a user's columns through a [`FieldMap`]), an event time
//! (`event_time_ms`, or `event_time` as RFC 3339), and optionally the legacy service's
//! recorded score and decision. A bad row is an error naming the file, the line, the column
//! where known, and the field.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use cutover_models::fraud::wire::WireRequest;
use cutover_models::fraud::Request;

use super::fields::{FieldMap, FIELDS};

/// One recorded request.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// Its line in the file (1-based; the header is line 1 of a CSV).
    pub line: u64,
    /// The request.
    pub request: Request,
    /// The legacy service's score, as recorded.
    pub legacy_score: Option<f32>,
    /// The legacy service's decision (true blocks), as recorded.
    pub legacy_decision: Option<bool>,
}

/// A row that cannot be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}:{line}{}: field `{field}`: {message}", column.map_or(String::new(), |c| format!(":{c}")))]
pub struct RowError {
    /// The file.
    pub file: String,
    /// Its line (0 when the file itself is at fault).
    pub line: u64,
    /// Its column, where known (CSV: the field's column, 1-based; JSON: the character).
    pub column: Option<u64>,
    /// The field at fault (`line` when the row itself is broken).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// A value as a row holds it, whatever the format.
#[derive(Debug, Clone, Copy)]
enum Cell<'a> {
    Absent,
    Null,
    Text(&'a str),
    Number(f64),
    Bool(bool),
}

impl<'a> Cell<'a> {
    fn of_json(v: Option<&'a serde_json::Value>) -> Cell<'a> {
        match v {
            None => Cell::Absent,
            Some(serde_json::Value::Null) => Cell::Null,
            Some(serde_json::Value::String(s)) => Cell::Text(s),
            Some(serde_json::Value::Number(n)) => n.as_f64().map_or(Cell::Null, Cell::Number),
            Some(serde_json::Value::Bool(b)) => Cell::Bool(*b),
            Some(_) => Cell::Text("<an array or object>"),
        }
    }

    fn of_csv(v: Option<&'a str>) -> Cell<'a> {
        match v {
            None => Cell::Absent,
            Some(s) if s.is_empty() || s.eq_ignore_ascii_case("na") || s.eq_ignore_ascii_case("null") => Cell::Null,
            Some(s) => Cell::Text(s),
        }
    }

    fn missing(self) -> bool {
        matches!(self, Cell::Absent | Cell::Null)
    }
}

/// Reads the typed fields of one row; `Err((field, message))` names the field at fault.
struct Row<'a, F: Fn(&str) -> Cell<'a>> {
    get: F,
    map: &'a FieldMap,
}

type Bad = (String, String);

impl<'a, F: Fn(&str) -> Cell<'a>> Row<'a, F> {
    fn cell(&self, field: &str) -> Cell<'a> {
        (self.get)(self.map.column(field))
    }

    fn required(&self, field: &str) -> Result<Cell<'a>, Bad> {
        let c = self.cell(field);
        if c.missing() {
            return Err((field.into(), "missing (a required field)".into()));
        }
        Ok(c)
    }

    fn number(&self, field: &str, c: Cell<'a>) -> Result<f64, Bad> {
        let v = match c {
            Cell::Number(v) => v,
            Cell::Text(s) => {
                fast_float2::parse(s.trim()).map_err(|_| (field.to_string(), format!("`{s}` is not a number")))?
            }
            Cell::Bool(_) => return Err((field.into(), "a boolean where a number belongs".into())),
            Cell::Absent | Cell::Null => return Err((field.into(), "missing".into())),
        };
        if !v.is_finite() {
            return Err((field.into(), "must be a finite number".into()));
        }
        Ok(v)
    }

    fn integer(&self, field: &str) -> Result<i64, Bad> {
        let c = self.required(field)?;
        if let Cell::Text(s) = c {
            return s.trim().parse().map_err(|_| (field.to_string(), format!("`{s}` is not a whole number")));
        }
        let v = self.number(field, c)?;
        if v.fract() != 0.0 || v.abs() > 9.0e15 {
            return Err((field.into(), format!("{v} is not a whole number")));
        }
        Ok(v as i64)
    }

    fn id(&self, field: &str) -> Result<u64, Bad> {
        let v = self.integer(field)?;
        u64::try_from(v).map_err(|_| (field.to_string(), format!("{v} is negative")))
    }

    fn optional_number(&self, field: &str) -> Result<Option<f64>, Bad> {
        let c = self.cell(field);
        if c.missing() {
            return Ok(None);
        }
        self.number(field, c).map(Some)
    }

    fn text(&self, field: &str) -> Result<String, Bad> {
        match self.required(field)? {
            Cell::Text(s) => Ok(s.to_string()),
            Cell::Number(v) => Ok(format!("{v}")),
            _ => Err((field.into(), "must be text".into())),
        }
    }

    fn optional_text(&self, field: &str) -> Result<Option<String>, Bad> {
        if self.cell(field).missing() {
            return Ok(None);
        }
        self.text(field).map(Some)
    }

    fn boolean(&self, field: &str) -> Result<bool, Bad> {
        match self.required(field)? {
            Cell::Bool(b) => Ok(b),
            Cell::Number(v) if v == 0.0 || v == 1.0 => Ok(v == 1.0),
            Cell::Text(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Ok(true),
                "false" | "0" | "no" => Ok(false),
                _ => Err((field.into(), format!("`{s}` is not true or false"))),
            },
            _ => Err((field.into(), "must be true or false".into())),
        }
    }

    fn event_time_ms(&self) -> Result<i64, Bad> {
        if !self.cell("event_time_ms").missing() {
            return self.integer("event_time_ms");
        }
        match self.cell("event_time") {
            Cell::Text(s) => chrono::DateTime::parse_from_rfc3339(s.trim())
                .map(|t| t.timestamp_millis())
                .map_err(|e| ("event_time".to_string(), format!("`{s}` is not an RFC 3339 time: {e}"))),
            c if c.missing() => Err(("event_time_ms".into(), "missing: give event_time_ms or event_time".into())),
            _ => Err(("event_time".into(), "must be RFC 3339 text, like 2026-03-01T12:00:00Z".into())),
        }
    }

    fn decision(&self) -> Result<Option<bool>, Bad> {
        let c = self.cell("legacy_decision");
        let text = match c {
            Cell::Absent | Cell::Null => return Ok(None),
            Cell::Bool(b) => return Ok(Some(b)),
            Cell::Number(v) => format!("{v}"),
            Cell::Text(s) => s.trim().to_string(),
        };
        let d = &self.map.decisions;
        if d.block.iter().any(|v| v.eq_ignore_ascii_case(&text)) {
            Ok(Some(true))
        } else if d.allow.iter().any(|v| v.eq_ignore_ascii_case(&text)) {
            Ok(Some(false))
        } else {
            Err((
                "legacy_decision".into(),
                format!(
                    "`{text}` is neither a block ({}) nor an allow ({}) value",
                    d.block.join(", "),
                    d.allow.join(", ")
                ),
            ))
        }
    }

    fn recorded(&self, line: u64) -> Result<Recorded, Bad> {
        let wire = WireRequest {
            transaction_id: self.id("transaction_id")?,
            customer_id: self.id("customer_id")?,
            event_time_ms: self.event_time_ms()?,
            amount: self.number("amount", self.required("amount")?)?,
            currency: self.text("currency")?,
            merchant_category: self.text("merchant_category")?,
            country: self.text("country")?,
            channel: self.text("channel")?,
            device_os: self.optional_text("device_os")?,
            account_age_days: self.optional_number("account_age_days")?,
            card_present: self.boolean("card_present")?,
            distance_from_home_km: self.optional_number("distance_from_home_km")?,
        };
        let request = wire.to_request().map_err(|e| (e.field, e.message))?;
        let legacy_score = self.optional_number("legacy_score")?.map(|v| v as f32);
        if legacy_score.is_some_and(|s| !(0.0..=1.0).contains(&s)) {
            return Err(("legacy_score".into(), "must be within 0 to 1".into()));
        }
        Ok(Recorded { line, request, legacy_score, legacy_decision: self.decision()? })
    }
}

/// The file's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Comma-separated, with a header row.
    Csv,
    /// One JSON object per line.
    JsonLines,
}

impl Format {
    /// The format a file name says (`.csv`, or `.jsonl`, `.ndjson`, `.json`).
    pub fn of(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" => Some(Format::Csv),
            "jsonl" | "ndjson" | "json" => Some(Format::JsonLines),
            _ => None,
        }
    }
}

enum Inner {
    Csv { reader: csv::Reader<BufReader<File>>, columns: Vec<(String, usize)>, record: csv::StringRecord },
    Json { lines: BufReader<File>, buf: String, line: u64 },
}

/// A streaming reader of recorded requests.
pub struct Reader {
    file: String,
    map: FieldMap,
    inner: Inner,
}

impl Reader {
    /// Opens `path` (its format from its name unless given) with an optional field map.
    pub fn open(path: &Path, format: Option<Format>, map: FieldMap) -> Result<Reader, RowError> {
        let file = path.display().to_string();
        let fail = |line: u64, field: &str, message: String| RowError {
            file: file.clone(),
            line,
            column: None,
            field: field.into(),
            message,
        };
        let format = format.or_else(|| Format::of(path)).ok_or_else(|| {
            fail(0, "format", "cannot tell the format: name it .csv or .jsonl, or pass --format".into())
        })?;
        let f = File::open(path).map_err(|e| fail(0, "-", format!("cannot read: {e}")))?;
        let inner = match format {
            Format::JsonLines => {
                Inner::Json { lines: BufReader::with_capacity(1 << 16, f), buf: String::new(), line: 0 }
            }
            Format::Csv => {
                let mut reader = csv::ReaderBuilder::new()
                    .has_headers(true)
                    .flexible(false)
                    .from_reader(BufReader::with_capacity(1 << 16, f));
                let headers = reader.headers().map_err(|e| fail(1, "header", e.to_string()))?.clone();
                let mut columns = Vec::new();
                for (field, required) in FIELDS {
                    let name = map.column(field);
                    match headers.iter().position(|h| h.trim() == name) {
                        Some(i) => columns.push((name.to_string(), i)),
                        None if required => {
                            return Err(fail(1, field, format!("no column `{name}` in the header")));
                        }
                        None => {}
                    }
                }
                if !columns.iter().any(|(n, _)| n == map.column("event_time_ms") || n == map.column("event_time")) {
                    return Err(fail(1, "event_time_ms", "no event time column (event_time_ms or event_time)".into()));
                }
                Inner::Csv { reader, columns, record: csv::StringRecord::new() }
            }
        };
        Ok(Reader { file, map, inner })
    }

    /// The file's name as errors give it.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The next row; None at the end.
    pub fn next_row(&mut self) -> Option<Result<Recorded, RowError>> {
        let file = &self.file;
        let map = &self.map;
        match &mut self.inner {
            Inner::Csv { reader, columns, record } => {
                match reader.read_record(record) {
                    Ok(false) => return None,
                    Ok(true) => {}
                    Err(e) => {
                        let line = e.position().map_or(0, |p| p.line());
                        return Some(Err(RowError {
                            file: file.clone(),
                            line,
                            column: None,
                            field: "line".into(),
                            message: e.to_string(),
                        }));
                    }
                }
                let line = record.position().map_or(0, |p| p.line());
                let cols: &[(String, usize)] = columns;
                let rec: &csv::StringRecord = record;
                let row = Row {
                    get: |name: &str| Cell::of_csv(cols.iter().find(|(n, _)| n == name).and_then(|&(_, i)| rec.get(i))),
                    map,
                };
                Some(row.recorded(line).map_err(|(field, message)| {
                    let column = cols.iter().find(|(n, _)| *n == map.column(&field)).map(|&(_, i)| i as u64 + 1);
                    RowError { file: file.clone(), line, column, field, message }
                }))
            }
            Inner::Json { lines, buf, line } => loop {
                buf.clear();
                *line += 1;
                match lines.read_line(buf) {
                    Ok(0) => return None,
                    Ok(_) => {}
                    Err(e) => {
                        let message = format!("cannot read: {e}");
                        return Some(Err(RowError {
                            file: file.clone(),
                            line: *line,
                            column: None,
                            field: "line".into(),
                            message,
                        }));
                    }
                }
                if buf.trim().is_empty() {
                    continue;
                }
                let value: serde_json::Value = match serde_json::from_str(buf) {
                    Ok(v) => v,
                    Err(e) => {
                        return Some(Err(RowError {
                            file: file.clone(),
                            line: *line,
                            column: Some(e.column() as u64),
                            field: "line".into(),
                            message: format!("not JSON: {e}"),
                        }))
                    }
                };
                let Some(object) = value.as_object() else {
                    let message = "not a JSON object".to_string();
                    return Some(Err(RowError {
                        file: file.clone(),
                        line: *line,
                        column: Some(1),
                        field: "line".into(),
                        message,
                    }));
                };
                let row = Row { get: |name: &str| Cell::of_json(object.get(name)), map };
                let n = *line;
                return Some(row.recorded(n).map_err(|(field, message)| RowError {
                    file: file.clone(),
                    line: n,
                    column: None,
                    field,
                    message,
                }));
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("cutover-replay-src-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    const HEADER: &str = "transaction_id,customer_id,event_time_ms,amount,currency,merchant_category,country,channel,device_os,account_age_days,card_present,distance_from_home_km,legacy_score,legacy_decision\n";

    #[test]
    fn csv_and_json_lines_read_the_same_request() {
        let csv = write("a.csv", &format!("{HEADER}7,42,1772323200000,12.5,EUR,5411,DE,pos,,,true,3.2,0.125,allow\n"));
        let json = write(
            "a.jsonl",
            "{\"transaction_id\":7,\"customer_id\":42,\"event_time\":\"2026-03-01T00:00:00Z\",\"amount\":12.5,\"currency\":\"EUR\",\"merchant_category\":\"5411\",\"country\":\"DE\",\"channel\":\"pos\",\"device_os\":null,\"card_present\":true,\"distance_from_home_km\":3.2,\"legacy_score\":0.125,\"legacy_decision\":\"allow\"}\n",
        );
        let a = Reader::open(&csv, None, FieldMap::default()).unwrap().next_row().unwrap().unwrap();
        let b = Reader::open(&json, None, FieldMap::default()).unwrap().next_row().unwrap().unwrap();
        assert_eq!(a.request, b.request);
        assert_eq!((a.line, b.line), (2, 1));
        assert_eq!((a.legacy_score, a.legacy_decision), (Some(0.125), Some(false)));
        assert_eq!(a.request.device_os, None);
        assert_eq!(a.request.event_time_ms, 1_772_323_200_000);
    }

    #[test]
    fn bad_rows_name_the_line_the_column_and_the_field() {
        let csv = write(
            "bad.csv",
            &format!("{HEADER}1,42,1772323200000,12.5,EUR,5411,DE,pos,,,maybe,3.2,,\n2,42,1772323200000,abc,EUR,5411,DE,pos,,,true,,,\n3,42,,1,EUR,5411,DE,pos,,,true,,,\n"),
        );
        let mut r = Reader::open(&csv, None, FieldMap::default()).unwrap();
        let e = r.next_row().unwrap().unwrap_err();
        assert_eq!((e.line, e.column, e.field.as_str()), (2, Some(11), "card_present"), "{e}");
        let e = r.next_row().unwrap().unwrap_err();
        assert_eq!((e.line, e.column, e.field.as_str()), (3, Some(4), "amount"), "{e}");
        assert!(e.to_string().starts_with(&format!("{}:3:4: field `amount`", csv.display())), "{e}");
        let e = r.next_row().unwrap().unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (4, "event_time_ms"), "{e}");
        assert!(r.next_row().is_none());

        let json = write("bad.jsonl", "{\"transaction_id\": 1,\n{\"transaction_id\":\"x\"}\n{\"event_time\":\"yesterday\",\"transaction_id\":1,\"customer_id\":1,\"amount\":1,\"currency\":\"EUR\",\"merchant_category\":\"1\",\"country\":\"DE\",\"channel\":\"pos\",\"card_present\":false}\n");
        let mut r = Reader::open(&json, None, FieldMap::default()).unwrap();
        let e = r.next_row().unwrap().unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (1, "line"), "{e}");
        let e = r.next_row().unwrap().unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (2, "transaction_id"), "{e}");
        let e = r.next_row().unwrap().unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (3, "event_time"), "{e}");

        let headless = write("headless.csv", "transaction_id,amount\n1,2\n");
        let e = Reader::open(&headless, None, FieldMap::default()).err().unwrap();
        assert_eq!((e.line, e.field.as_str()), (1, "customer_id"), "{e}");
    }

    #[test]
    fn a_field_map_reads_a_user_s_own_columns() {
        let map = FieldMap::parse(
            "[fields]\ntransaction_id = \"txn\"\nevent_time = \"ts\"\nlegacy_decision = \"action\"\n[decisions]\nblock = [\"DECLINE\"]\nallow = [\"APPROVE\"]\n",
            "m.toml",
        )
        .unwrap();
        let csv = write(
            "own.csv",
            "txn,customer_id,ts,amount,currency,merchant_category,country,channel,card_present,action,extra\n9,1,2026-03-01T01:00:00+01:00,5,EUR,5411,DE,web,false,decline,whatever\n",
        );
        let r = Reader::open(&csv, None, map).unwrap().next_row().unwrap().unwrap();
        assert_eq!(r.request.transaction_id, 9);
        assert_eq!(r.request.event_time_ms, 1_772_323_200_000);
        assert_eq!(r.legacy_decision, Some(true));
    }
}
