//! One value as a file or a body holds it, turned into a field's [`Value`]: the same rules
//! for JSON bodies, JSON lines and CSV cells, each refusal naming what is wrong.

use serde::Serialize;

use super::value::key_of_text;
use super::{Epoch, Kind, Record, Schema, Value, MAX_TEXT};

/// A value as a row or body holds it, whatever the format.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell<'a> {
    /// No such key or column.
    Absent,
    /// `null`, or an empty CSV cell.
    Null,
    /// A JSON boolean.
    Bool(bool),
    /// A JSON number.
    Number(f64),
    /// A JSON whole number that fits a u64 (kept exact for ids and entities).
    Unsigned(u64),
    /// A JSON string.
    JsonText(&'a str),
    /// A CSV cell (any kind of value, as text).
    CsvText(&'a str),
    /// A JSON array or object.
    Nested,
}

impl<'a> Cell<'a> {
    /// A JSON value's cell.
    pub fn of_json(v: Option<&'a serde_json::Value>) -> Cell<'a> {
        match v {
            None => Cell::Absent,
            Some(serde_json::Value::Null) => Cell::Null,
            Some(serde_json::Value::Bool(b)) => Cell::Bool(*b),
            Some(serde_json::Value::Number(n)) => match n.as_u64() {
                Some(u) => Cell::Unsigned(u),
                None => n.as_f64().map_or(Cell::Null, Cell::Number),
            },
            Some(serde_json::Value::String(s)) => Cell::JsonText(s),
            Some(_) => Cell::Nested,
        }
    }

    /// A CSV cell: empty, `NA` and `null` are null.
    pub fn of_csv(v: Option<&'a str>) -> Cell<'a> {
        match v.map(str::trim) {
            None => Cell::Absent,
            Some(s) if s.is_empty() || s.eq_ignore_ascii_case("na") || s.eq_ignore_ascii_case("null") => Cell::Null,
            Some(s) => Cell::CsvText(s),
        }
    }

    fn text(self) -> Option<&'a str> {
        match self {
            Cell::JsonText(s) | Cell::CsvText(s) => Some(s),
            _ => None,
        }
    }
}

/// Why a body is not a request: the field (`body` when the JSON itself is broken) and why.
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
#[error("field `{field}`: {message}")]
pub struct WireError {
    /// The field at fault.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// A number as a category holds it: integers without a decimal point.
pub fn number_text(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

fn parse_number(s: &str) -> Option<f64> {
    fast_float2::parse::<f64, _>(s.trim()).ok()
}

/// Refuses what xgboost refuses: infinities and values beyond f32.
fn finite(x: f64) -> Result<f64, String> {
    if x.is_finite() && x.abs() <= f64::from(f32::MAX) {
        Ok(x)
    } else {
        Err(format!("{x} is not a finite number within the range a model reads"))
    }
}

pub(super) fn value(schema: &Schema, i: usize, c: Cell<'_>, intern: bool) -> Result<Value, String> {
    let f = &schema.fields[i];
    let absent = |c: Cell<'_>| -> Result<Value, String> {
        // An empty CSV cell is the empty text when "" means missing.
        if matches!(c, Cell::Null) && f.missing_texts.iter().any(String::is_empty) && f.kind == Kind::Category {
            return Ok(Value::Text(intern_text(schema, "", true)));
        }
        if f.optional {
            Ok(Value::Missing)
        } else {
            Err("missing (a required field)".into())
        }
    };
    if matches!(c, Cell::Absent | Cell::Null) {
        return absent(c);
    }
    if c == Cell::Nested {
        return Err("an array or object where a value belongs".into());
    }
    if let (Cell::Unsigned(u), true) = (c, f.key && f.kind == Kind::Integer) {
        return Ok(Value::Key(u));
    }
    let c = match c {
        Cell::Unsigned(u) => Cell::Number(u as f64),
        c => c,
    };
    // A text sentinel on a field that cannot hold it as its own kind is simply missing.
    if let Some(s) = c.text() {
        let t = s.trim();
        if f.kind != Kind::Category && f.missing_texts.iter().any(|m| m.eq_ignore_ascii_case(t)) {
            return Ok(Value::Missing);
        }
    }
    match f.kind {
        Kind::Number | Kind::Integer => {
            let x = match c {
                Cell::Number(x) => x,
                Cell::CsvText(s) => parse_number(s).ok_or_else(|| format!("`{}` is not a number", clip(s)))?,
                Cell::JsonText(s) => return Err(format!("the text \"{}\" where a number belongs", clip(s))),
                Cell::Bool(_) => return Err("a boolean where a number belongs".into()),
                Cell::Absent | Cell::Null | Cell::Nested | Cell::Unsigned(_) => unreachable!("handled above"),
            };
            let x = finite(x)?;
            if f.kind == Kind::Integer && x.fract() != 0.0 {
                return Err(format!("{x} is not a whole number"));
            }
            if f.key {
                if !(0.0..=1.8e19).contains(&x) {
                    return Err(format!("{x} is not a key (a whole number from 0)"));
                }
                return Ok(Value::Key(match c {
                    // Large ids keep every digit.
                    Cell::CsvText(s) => s.trim().parse::<u64>().unwrap_or(x as u64),
                    _ => x as u64,
                }));
            }
            if !f.missing_numbers.contains(&x) && (x < f.min || x > f.max) {
                return Err(format!("{x} is outside [{}, {}]", f.min, f.max));
            }
            Ok(Value::Number(x))
        }
        Kind::Boolean => {
            let b = match c {
                Cell::Bool(b) => b,
                Cell::Number(x) if x == 0.0 || x == 1.0 => x == 1.0,
                Cell::JsonText(s) | Cell::CsvText(s) => match s.trim().to_ascii_lowercase().as_str() {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => return Err(format!("`{}` is not true, false, 1 or 0", clip(s))),
                },
                _ => return Err("must be true, false, 1 or 0".into()),
            };
            Ok(Value::Number(f64::from(u8::from(b))))
        }
        Kind::Timestamp => {
            let ms = match c {
                Cell::Number(x) => epoch_ms(finite_time(x)?, f.epoch),
                Cell::JsonText(s) | Cell::CsvText(s) => match parse_number(s) {
                    Some(x) => epoch_ms(finite_time(x)?, f.epoch),
                    None => chrono::DateTime::parse_from_rfc3339(s.trim())
                        .map(|t| t.timestamp_millis() as f64)
                        .map_err(|e| format!("`{}` is not epoch milliseconds or an RFC 3339 time: {e}", clip(s)))?,
                },
                Cell::Bool(_) => return Err("a boolean where a time belongs".into()),
                Cell::Absent | Cell::Null | Cell::Nested | Cell::Unsigned(_) => unreachable!("handled above"),
            };
            Ok(Value::Number(ms))
        }
        Kind::Category => {
            let owned;
            let s = match c {
                Cell::JsonText(s) => s,
                Cell::CsvText(s) => s,
                Cell::Number(x) => {
                    owned = number_text(x);
                    owned.as_str()
                }
                Cell::Bool(_) => return Err("a boolean where text belongs".into()),
                Cell::Absent | Cell::Null | Cell::Nested | Cell::Unsigned(_) => unreachable!("handled above"),
            };
            if s.len() > MAX_TEXT {
                return Err(format!("longer than {MAX_TEXT} bytes"));
            }
            if f.key {
                if s.is_empty() {
                    return Err("must not be empty".into());
                }
                return Ok(Value::Key(key_of_text(s)));
            }
            if s.is_empty() && !f.missing_texts.iter().any(String::is_empty) {
                return Err("must not be empty (declare \"\" in missing_values if it means missing)".into());
            }
            Ok(Value::Text(intern_text(schema, s, intern)))
        }
    }
}

fn intern_text(schema: &Schema, s: &str, intern: bool) -> super::Text {
    if intern {
        schema.interner.intern(s)
    } else {
        schema.interner.lookup(s)
    }
}

fn finite_time(x: f64) -> Result<f64, String> {
    if x.is_finite() && x.abs() < 1e16 {
        Ok(x)
    } else {
        Err(format!("{x} is not a time"))
    }
}

fn epoch_ms(x: f64, epoch: Epoch) -> f64 {
    match epoch {
        Epoch::Ms => x.round(),
        Epoch::S => (x * 1000.0).round(),
    }
}

fn clip(s: &str) -> String {
    cutover_models::shown(s)
}

pub(super) fn parse_json(schema: &Schema, body: &[u8], record: &mut Record) -> Result<(), WireError> {
    let bad = |field: &str, message: String| WireError { field: field.into(), message };
    // One JSON object and nothing after it (serde_json refuses trailing characters).
    let object: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body).map_err(|e| {
        let what = if e.classify() == serde_json::error::Category::Data {
            "must be one JSON object with the request's fields".to_string()
        } else {
            format!("not JSON: {e}")
        };
        bad("body", what)
    })?;
    if schema.unknown_fields == super::UnknownFields::Reject {
        if let Some(k) = object.keys().find(|k| schema.index(k).is_none()) {
            if k.is_empty() {
                return Err(bad("body", "an empty key is not a field of the request schema".into()));
            }
            return Err(bad(&clip(k), "not a field of the request schema".into()));
        }
    }
    for (i, f) in schema.fields.iter().enumerate() {
        let c = Cell::of_json(object.get(&f.name));
        record.values[i] = value(schema, i, c, false).map_err(|m| bad(&f.name, m))?;
    }
    schema.finish(record);
    Ok(())
}

pub(super) fn to_json(
    schema: &Schema,
    r: &Record,
    key_text: &dyn Fn(usize, u64) -> Option<String>,
) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for (i, f) in schema.fields.iter().enumerate() {
        let v = match r.values[i] {
            Value::Missing => serde_json::Value::Null,
            Value::Number(x) => match f.kind {
                Kind::Boolean => serde_json::Value::Bool(x != 0.0),
                Kind::Integer | Kind::Timestamp if x.fract() == 0.0 && x.abs() < 9e15 => (x as i64).into(),
                _ => serde_json::Number::from_f64(x).map_or(serde_json::Value::Null, serde_json::Value::Number),
            },
            Value::Text(t) => schema.interner.resolve(t.id).map_or(serde_json::Value::Null, serde_json::Value::String),
            Value::Key(k) => match f.kind {
                Kind::Integer => k.into(),
                _ => key_text(i, k).map_or_else(|| format!("{k:016x}").into(), serde_json::Value::String),
            },
        };
        out.insert(f.name.clone(), v);
    }
    serde_json::Value::Object(out)
}

pub(super) fn cell_text(
    schema: &Schema,
    i: usize,
    v: Value,
    key_text: &dyn Fn(usize, u64) -> Option<String>,
) -> String {
    let f = &schema.fields[i];
    match v {
        Value::Missing => String::new(),
        Value::Number(x) => match f.kind {
            Kind::Boolean => (x != 0.0).to_string(),
            Kind::Integer | Kind::Timestamp if x.fract() == 0.0 && x.abs() < 9e15 => (x as i64).to_string(),
            _ => x.to_string(),
        },
        Value::Text(t) => schema.interner.resolve(t.id).unwrap_or_default(),
        Value::Key(k) => match f.kind {
            Kind::Integer => k.to_string(),
            _ => key_text(i, k).unwrap_or_else(|| format!("{k:016x}")),
        },
    }
}
