//! The request schema of one migration: every field's name and kind, whether it may be
//! missing and which values mean missing, and which fields are the request id, the entity
//! and the event time. Every face of cutover reads requests through it: JSON bodies,
//! recorded CSV and JSON lines, generated and resampled traffic.
//!
//! ```toml
//! [request]
//! id = "order_id"
//! entity = "courier_id"
//! time = "placed_at"
//! fields = [
//!   { name = "order_id", kind = "integer" },
//!   { name = "courier_id", kind = "category" },
//!   { name = "placed_at", kind = "timestamp" },          # epoch ms, or RFC 3339 text
//!   { name = "distance_km", kind = "number", min = 0 },
//!   { name = "vehicle", kind = "category", optional = true, missing_values = ["unknown", ""] },
//!   { name = "rating", kind = "integer", missing_values = [-1] },
//!   { name = "express", kind = "boolean" },              # true/false/1/0, as JSON or text
//! ]
//! ```

mod cell;
mod intern;
mod value;

use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

pub use cell::{number_text, Cell, WireError};
pub use intern::{Interner, MAX_INTERNED};
pub use value::{key_of_text, mix, unit, KeyHasher, Record, Text, Value, UNSEEN};

use crate::error::FieldError;

/// The longest category value accepted.
pub const MAX_TEXT: usize = 64;

/// What kind of value a field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A finite number.
    Number,
    /// A whole number.
    Integer,
    /// `true`/`false`/`1`/`0`, as JSON or text; held as 1 and 0.
    Boolean,
    /// Text from a set of values.
    Category,
    /// A point in time: epoch milliseconds (or seconds, with `epoch = "s"`) or RFC 3339 text.
    Timestamp,
}

impl Kind {
    /// The kind's name in the schema.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Number => "number",
            Kind::Integer => "integer",
            Kind::Boolean => "boolean",
            Kind::Category => "category",
            Kind::Timestamp => "timestamp",
        }
    }
}

/// A value that means missing, as written in the schema.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Sentinel {
    /// A number, such as `-1`.
    Number(f64),
    /// A text, such as `"unknown"` or `""` (matched ignoring ASCII case).
    Text(String),
}

/// The unit of numeric timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Epoch {
    /// Milliseconds since the Unix epoch.
    #[default]
    Ms,
    /// Seconds since the Unix epoch.
    S,
}

/// What a request may carry beyond the schema's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum UnknownFields {
    /// Refuse the request, naming the key (catches a client's typo).
    #[default]
    Reject,
    /// Ignore them.
    Ignore,
}

/// One field as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldDef {
    /// Its name in request bodies, recorded files and specs.
    pub name: Spanned<String>,
    /// Its kind.
    pub kind: Kind,
    /// Whether it may be absent or null.
    #[serde(default)]
    pub optional: bool,
    /// Values that mean missing.
    #[serde(default)]
    pub missing_values: Vec<Spanned<Sentinel>>,
    /// Its column (CSV) or key (JSON lines) in recorded files, when not its name.
    #[serde(default)]
    pub column: Option<String>,
    /// Smallest value accepted (numbers, integers).
    #[serde(default)]
    pub min: Option<f64>,
    /// Largest value accepted (numbers, integers).
    #[serde(default)]
    pub max: Option<f64>,
    /// The unit of numeric timestamps.
    #[serde(default)]
    pub epoch: Epoch,
}

/// The `[request]` section as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestDef {
    /// The request id field.
    pub id: Spanned<String>,
    /// The entity field (sticky routing, per-entity aggregates).
    pub entity: Spanned<String>,
    /// The event time field.
    pub time: Spanned<String>,
    /// What to do with keys that are not fields.
    #[serde(default)]
    pub unknown_fields: UnknownFields,
    /// The fields, in order.
    pub fields: Vec<Spanned<FieldDef>>,
}

/// One compiled field.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// Its name.
    pub name: String,
    /// Its kind.
    pub kind: Kind,
    /// Whether it may be absent or null.
    pub optional: bool,
    /// Its column in recorded files.
    pub column: String,
    /// Numbers that mean missing.
    pub missing_numbers: Vec<f64>,
    /// Texts that mean missing, lowercased.
    pub missing_texts: Vec<String>,
    /// Their symbols (lowercased), for the fast check on a record.
    pub missing_symbols: Vec<u32>,
    /// Range accepted.
    pub min: f64,
    /// Range accepted.
    pub max: f64,
    /// Unit of numeric timestamps.
    pub epoch: Epoch,
    /// Whether it is the id or entity field (held as a [`Value::Key`]).
    pub key: bool,
}

impl Field {
    /// Whether a record's value of this field means missing (absent, or a sentinel).
    #[inline]
    pub fn is_missing(&self, v: Value) -> bool {
        match v {
            Value::Missing => true,
            Value::Number(x) => self.missing_numbers.contains(&x),
            Value::Text(t) => self.missing_symbols.contains(&t.folded),
            Value::Key(_) => false,
        }
    }
}

/// A validated request schema.
#[derive(Debug, Clone)]
pub struct Schema {
    fields: Vec<Field>,
    id: usize,
    entity: usize,
    time: usize,
    unknown_fields: UnknownFields,
    interner: Arc<Interner>,
}

/// A field's missing sentinels as a cell is read against them: numbers, texts (trimmed,
/// lower case) and, for a category, their interned symbols.
#[derive(Default)]
struct Missing {
    numbers: Vec<f64>,
    texts: Vec<String>,
    symbols: Vec<u32>,
}

impl Missing {
    /// The sentinels `d` declares, or the span and message of the first that is wrong.
    fn of(d: &FieldDef, interner: &Interner) -> Result<Missing, (std::ops::Range<usize>, String)> {
        let mut m = Missing::default();
        for s in &d.missing_values {
            match s.get_ref() {
                Sentinel::Number(x) if !x.is_finite() => {
                    return Err((s.span(), "must be finite".into()));
                }
                Sentinel::Number(_) if d.kind == Kind::Boolean => {
                    return Err((s.span(), "0 and 1 are a boolean's values".into()));
                }
                Sentinel::Number(x) if d.kind == Kind::Category => {
                    // A category holds numbers as their text: -1 arrives as "-1".
                    let t = cell::number_text(*x);
                    let kept = interner.intern_kept(&t).map_err(|e| (s.span(), e))?;
                    m.symbols.push(kept.folded);
                    m.texts.push(t);
                }
                Sentinel::Number(x) => m.numbers.push(*x),
                Sentinel::Text(t) if t.len() > MAX_TEXT => {
                    return Err((s.span(), format!("longer than {MAX_TEXT} bytes")));
                }
                Sentinel::Text(t) => {
                    let lower = t.trim().to_ascii_lowercase();
                    if d.kind == Kind::Category {
                        let kept = interner.intern_kept(&lower).map_err(|e| (s.span(), e))?;
                        m.symbols.push(kept.folded);
                    }
                    m.texts.push(lower);
                }
            }
        }
        Ok(m)
    }
}

impl Schema {
    /// Compiles the `[request]` section; `text` and `file` locate errors.
    pub fn compile(def: &RequestDef, text: &str, file: &str) -> Result<Schema, FieldError> {
        let err = |span: std::ops::Range<usize>, field: String, message: String| {
            let (line, column) = crate::error::line_column(text, span.start);
            FieldError { file: file.into(), line, column, field, message }
        };
        if def.fields.is_empty() {
            return Err(err(0..0, "request.fields".into(), "a schema needs at least one field".into()));
        }
        let interner = Arc::new(Interner::default());
        let mut fields: Vec<Field> = Vec::with_capacity(def.fields.len());
        for (k, f) in def.fields.iter().enumerate() {
            let at = |name: &str| format!("request.fields[{k}].{name}");
            let d = f.get_ref();
            let name = d.name.get_ref().clone();
            if name.is_empty() || name.len() > MAX_TEXT || name.contains(['"', '\\', ',', '\n']) {
                return Err(err(
                    d.name.span(),
                    at("name"),
                    format!("`{}` is not a usable field name", cutover_models::shown(&name)),
                ));
            }
            if fields.iter().any(|g| g.name == name) {
                return Err(err(
                    d.name.span(),
                    at("name"),
                    format!("duplicate field `{}`", cutover_models::shown(&name)),
                ));
            }
            let numeric = matches!(d.kind, Kind::Number | Kind::Integer);
            if (d.min.is_some() || d.max.is_some()) && !numeric {
                return Err(err(f.span(), at("min"), "a range applies to numbers and integers only".into()));
            }
            let (min, max) = (d.min.unwrap_or(f64::NEG_INFINITY), d.max.unwrap_or(f64::INFINITY));
            if min.is_nan() || max.is_nan() || min > max {
                return Err(err(f.span(), at("min"), format!("min {min} is above max {max}")));
            }
            let missing =
                Missing::of(d, &interner).map_err(|(span, message)| err(span, at("missing_values"), message))?;
            fields.push(Field {
                column: d.column.clone().unwrap_or_else(|| name.clone()),
                name,
                kind: d.kind,
                optional: d.optional,
                missing_numbers: missing.numbers,
                missing_texts: missing.texts,
                missing_symbols: missing.symbols,
                min,
                max,
                epoch: d.epoch,
                key: false,
            });
        }
        let find = |s: &Spanned<String>, role: &str, kinds: &[Kind]| -> Result<usize, FieldError> {
            let name = s.get_ref();
            let i = fields.iter().position(|f| &f.name == name).ok_or_else(|| {
                err(
                    s.span(),
                    format!("request.{role}"),
                    format!("`{}` is not one of the fields", cutover_models::shown(name)),
                )
            })?;
            let f = &fields[i];
            if !kinds.contains(&f.kind) {
                let names: Vec<_> = kinds.iter().map(|k| k.name()).collect();
                return Err(err(
                    s.span(),
                    format!("request.{role}"),
                    format!("`{name}` is a {}; the {role} must be a {}", f.kind.name(), names.join(" or ")),
                ));
            }
            if f.optional {
                return Err(err(
                    s.span(),
                    format!("request.{role}"),
                    format!("`{name}` is optional; the {role} must always be there"),
                ));
            }
            Ok(i)
        };
        let id = find(&def.id, "id", &[Kind::Integer, Kind::Category])?;
        let entity = find(&def.entity, "entity", &[Kind::Integer, Kind::Category])?;
        let time = find(&def.time, "time", &[Kind::Timestamp])?;
        if id == entity {
            return Err(err(
                def.entity.span(),
                "request.entity".into(),
                "the entity must be another field than the id".into(),
            ));
        }
        fields[id].key = true;
        fields[entity].key = true;
        Ok(Schema { fields, id, entity, time, unknown_fields: def.unknown_fields, interner })
    }

    /// The fields, in order.
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether the schema has no field (never, once compiled).
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The position of a field.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name)
    }

    /// A field by position.
    pub fn field(&self, i: usize) -> &Field {
        &self.fields[i]
    }

    /// The id field's position.
    pub fn id_field(&self) -> usize {
        self.id
    }

    /// The entity field's position.
    pub fn entity_field(&self) -> usize {
        self.entity
    }

    /// The event time field's position.
    pub fn time_field(&self) -> usize {
        self.time
    }

    /// The category values, interned.
    pub fn interner(&self) -> &Arc<Interner> {
        &self.interner
    }

    /// An empty record of this schema.
    pub fn record(&self) -> Record {
        Record::new(self.fields.len())
    }

    /// Sets the id, entity and time of a record from its values.
    pub fn finish(&self, r: &mut Record) {
        r.id = key(r.values[self.id]);
        r.entity = key(r.values[self.entity]);
        r.time_ms = r.values[self.time].number() as i64;
    }

    /// Whether field `i` of a record means missing.
    pub fn is_missing(&self, r: &Record, i: usize) -> bool {
        self.fields[i].is_missing(r.values[i])
    }

    /// What a request may carry beyond the fields.
    pub fn unknown_fields(&self) -> UnknownFields {
        self.unknown_fields
    }
}

fn key(v: Value) -> u64 {
    match v {
        Value::Key(k) => k,
        Value::Number(x) => x as u64,
        Value::Text(t) => u64::from(t.id),
        Value::Missing => 0,
    }
}

/// Whether a request body may be scored: parses JSON against the schema, naming the field
/// at fault. Text values are only looked up, so a client can never grow the table.
impl Schema {
    /// Parses one JSON object into `record`.
    pub fn parse_json(&self, body: &[u8], record: &mut Record) -> Result<(), WireError> {
        cell::parse_json(self, body, record)
    }

    /// Converts one cell into field `i`'s value; `intern` adds unseen category values to the
    /// table (files a user brings), otherwise they are only looked up (client requests).
    pub fn value(&self, i: usize, c: Cell<'_>, intern: bool) -> Result<Value, String> {
        cell::value(self, i, c, intern)
    }

    /// A field's value as a CSV cell: numbers as Rust prints them (they read back exactly),
    /// booleans as `true`/`false`, categories as their text, missing as empty.
    pub fn cell_text(&self, i: usize, v: Value, key_text: &dyn Fn(usize, u64) -> Option<String>) -> String {
        cell::cell_text(self, i, v, key_text)
    }

    /// A record as a JSON object (category symbols resolved; keys of text ids and
    /// entities printed by `key_text`).
    pub fn to_json(&self, r: &Record, key_text: &dyn Fn(usize, u64) -> Option<String>) -> serde_json::Value {
        cell::to_json(self, r, key_text)
    }
}

#[cfg(test)]
pub(crate) mod tests;
