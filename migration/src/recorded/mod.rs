//! Recorded requests, streamed from CSV or JSON lines one row at a time: the fields of the
//! migration's schema (under their own names, their declared `column`, or a field map's),
//! and optionally the legacy service's recorded answer. A bad row is an error naming the
//! file, the line, the column where known, and the field.

pub mod fields;

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::Arc;

pub use fields::FieldMap;

use crate::answer::Answer;
use crate::schema::{Cell, Kind, Record, Schema};

/// One recorded request.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// Its line in the file (1-based; the header is line 1 of a CSV).
    pub line: u64,
    /// The request.
    pub record: Record,
    /// The legacy service's score, as recorded.
    pub legacy_score: Option<f32>,
    /// The legacy service's decision (a class of the answer), as recorded.
    pub legacy_decision: Option<u32>,
    /// The id's text, when the id is a category (the record keeps only its key).
    pub id_text: Option<Box<str>>,
    /// The entity's text, when the entity is a category.
    pub entity_text: Option<Box<str>>,
}

/// A row that cannot be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}:{line}{}: field `{}`: {}", column.map_or(String::new(), |c| format!(":{c}")), cutover_models::one_line(field), cutover_models::one_line(message))]
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

    /// Parses `csv` or `jsonl`.
    pub fn from_name(s: &str) -> Option<Format> {
        match s {
            "csv" => Some(Format::Csv),
            "jsonl" | "ndjson" | "json" => Some(Format::JsonLines),
            _ => None,
        }
    }
}

enum Inner {
    /// Per schema field, its CSV column (if present); then the answer's score and decision.
    Csv {
        reader: csv::Reader<BufReader<File>>,
        columns: Vec<Option<usize>>,
        answer: [Option<usize>; 2],
        record: csv::StringRecord,
    },
    Json {
        lines: BufReader<File>,
        buf: String,
        line: u64,
        keys: Vec<String>,
        answer: [String; 2],
    },
}

/// A streaming reader of recorded requests.
pub struct Reader {
    file: String,
    schema: Arc<Schema>,
    answer: Answer,
    map: FieldMap,
    inner: Inner,
}

type Bad = (String, String);

impl Reader {
    /// Opens `path` (its format from its name unless given) with an optional field map.
    pub fn open(
        path: &Path,
        format: Option<Format>,
        schema: &Arc<Schema>,
        answer: &Answer,
        map: FieldMap,
    ) -> Result<Reader, RowError> {
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
        let key = |field: &str, default: &str| map.column(field).unwrap_or(default).to_string();
        let keys: Vec<String> = schema.fields().iter().map(|f| key(&f.name, &f.column)).collect();
        let answer_keys =
            [key("legacy_score", &answer.recorded_score), key("legacy_decision", &answer.recorded_decision)];
        let inner = match format {
            Format::JsonLines => Inner::Json {
                lines: BufReader::with_capacity(1 << 16, f),
                buf: String::new(),
                line: 0,
                keys,
                answer: answer_keys,
            },
            Format::Csv => {
                let mut reader = csv::ReaderBuilder::new()
                    .has_headers(true)
                    .flexible(false)
                    .from_reader(BufReader::with_capacity(1 << 16, f));
                let headers = reader.headers().map_err(|e| fail(1, "header", e.to_string()))?.clone();
                let find = |name: &str| headers.iter().position(|h| h.trim() == name);
                let mut columns = Vec::with_capacity(keys.len());
                for (field, k) in schema.fields().iter().zip(&keys) {
                    let c = find(k);
                    if c.is_none() && !field.optional {
                        return Err(fail(
                            1,
                            &field.name,
                            format!("no column `{}` in the header", cutover_models::shown(k)),
                        ));
                    }
                    columns.push(c);
                }
                let answer = [find(&answer_keys[0]), find(&answer_keys[1])];
                Inner::Csv { reader, columns, answer, record: csv::StringRecord::new() }
            }
        };
        Ok(Reader { file, schema: schema.clone(), answer: answer.clone(), map, inner })
    }

    /// The file's name as errors give it.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The next row; None at the end.
    pub fn next_row(&mut self) -> Option<Result<Recorded, RowError>> {
        let file = &self.file;
        let (schema, answer, map) = (&*self.schema, &self.answer, &self.map);
        match &mut self.inner {
            Inner::Csv { reader, columns, answer: answer_cols, record } => {
                match reader.read_record(record) {
                    Ok(false) => return None,
                    Ok(true) => {}
                    Err(e) => {
                        let line = e.position().map_or(0, |p| p.line());
                        let message = e.to_string();
                        return Some(Err(RowError {
                            file: file.clone(),
                            line,
                            column: None,
                            field: "line".into(),
                            message,
                        }));
                    }
                }
                let line = record.position().map_or(0, |p| p.line());
                let rec: &csv::StringRecord = record;
                let cols: &[Option<usize>] = columns;
                let get = |c: Option<usize>| Cell::of_csv(c.and_then(|i| rec.get(i)));
                let cells: Vec<Cell<'_>> = cols.iter().map(|&c| get(c)).collect();
                let result = recorded(schema, answer, map, line, &cells, [get(answer_cols[0]), get(answer_cols[1])]);
                Some(result.map_err(|(field, message)| {
                    let column = match schema.index(&field) {
                        Some(i) => cols[i],
                        None if field == "legacy_score" => answer_cols[0],
                        None => answer_cols[1],
                    };
                    RowError { file: file.clone(), line, column: column.map(|i| i as u64 + 1), field, message }
                }))
            }
            Inner::Json { lines, buf, line, keys, answer: answer_keys } => {
                loop {
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
                    let cells: Vec<Cell<'_>> = keys.iter().map(|k| Cell::of_json(object.get(k))).collect();
                    let answers =
                        [Cell::of_json(object.get(&answer_keys[0])), Cell::of_json(object.get(&answer_keys[1]))];
                    let n = *line;
                    return Some(recorded(schema, answer, map, n, &cells, answers).map_err(|(field, message)| {
                        RowError { file: file.clone(), line: n, column: None, field, message }
                    }));
                }
            }
        }
    }
}

/// Counts the lines of a file (at least 1), streaming, without parsing them: a replay's
/// horizon, a resampler's share of a file over its bound.
pub fn count_lines(path: &Path) -> Result<u64, RowError> {
    use std::io::Read;
    let bad = |e: std::io::Error| RowError {
        file: path.display().to_string(),
        line: 0,
        column: None,
        field: "-".into(),
        message: format!("cannot read: {e}"),
    };
    let mut f = File::open(path).map_err(bad)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).map_err(bad)?;
        if k == 0 {
            return Ok(n.max(1));
        }
        n += buf[..k].iter().filter(|&&b| b == b'\n').count() as u64;
    }
}

/// One row's record and recorded answer.
fn recorded(
    schema: &Schema,
    answer: &Answer,
    map: &FieldMap,
    line: u64,
    cells: &[Cell<'_>],
    answers: [Cell<'_>; 2],
) -> Result<Recorded, Bad> {
    let mut record = schema.record();
    for (i, c) in cells.iter().enumerate() {
        record.values[i] = schema.value(i, *c, true).map_err(|m| (schema.field(i).name.clone(), m))?;
    }
    schema.finish(&mut record);
    let text = |i: usize| -> Option<Box<str>> {
        if schema.field(i).kind != Kind::Category {
            return None;
        }
        match cells[i] {
            Cell::CsvText(s) | Cell::JsonText(s) => Some(s.trim().into()),
            Cell::Number(x) => Some(crate::schema::number_text(x).into()),
            Cell::Unsigned(u) => Some(u.to_string().into()),
            _ => None,
        }
    };
    let (id_text, entity_text) = (text(schema.id_field()), text(schema.entity_field()));
    let legacy_score =
        match answers[0] {
            Cell::Absent | Cell::Null => None,
            Cell::Number(x) => Some(x),
            Cell::CsvText(s) | Cell::JsonText(s) => Some(s.trim().parse::<f64>().map_err(|_| {
                ("legacy_score".to_string(), format!("`{}` is not a number", cutover_models::shown(s)))
            })?),
            _ => return Err(("legacy_score".into(), "must be a number".into())),
        };
    if legacy_score.is_some_and(|s| !s.is_finite()) {
        return Err(("legacy_score".into(), "must be a finite number".into()));
    }
    let legacy_decision = match answers[1] {
        Cell::Absent | Cell::Null => None,
        _ if !answer.has_decision() => {
            return Err(("legacy_decision".into(), "the answer is a regression: it has no decision".into()))
        }
        Cell::Bool(b) => answer.parse_decision(if b { "true" } else { "false" }),
        Cell::Number(x) => answer.parse_decision(&format!("{x}")),
        Cell::CsvText(s) | Cell::JsonText(s) => {
            let d = map.decision(answer, s);
            if d.is_none() {
                return Err((
                    "legacy_decision".into(),
                    format!(
                        "`{}` is none of the answer's decisions ({})",
                        cutover_models::shown(s),
                        answer.labels.join(", ")
                    ),
                ));
            }
            d
        }
        _ => return Err(("legacy_decision".into(), "must be a decision label".into())),
    };
    Ok(Recorded { line, record, legacy_score: legacy_score.map(|s| s as f32), legacy_decision, id_text, entity_text })
}

#[cfg(test)]
mod tests;
