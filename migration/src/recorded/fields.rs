//! The field map: a small TOML that names, for fields of the migration's schema (and the
//! recorded answer), the column (CSV) or key (JSON lines) of a user's recorded file, and
//! which recorded decision values mean which of the answer's labels.
//!
//! ```toml
//! [fields]                 # the schema's field = the file's column
//! transaction_id = "txn"
//! event_time_ms = "ts"     # a timestamp: epoch ms or RFC 3339 text
//! legacy_score = "prob"    # the recorded answer
//! legacy_decision = "action"
//!
//! [decisions]              # label = the values meaning it (compared ignoring case)
//! block = ["DECLINE"]
//! allow = ["APPROVE"]
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::RowError;
use crate::answer::Answer;
use crate::schema::Schema;

/// The names a field map may set besides the schema's fields.
pub const ANSWER_FIELDS: [&str; 2] = ["legacy_score", "legacy_decision"];

/// The map from fields to a file's columns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldMap {
    columns: BTreeMap<String, String>,
    /// Per answer label, the recorded values meaning it.
    pub decisions: BTreeMap<String, Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldFile {
    #[serde(default)]
    fields: BTreeMap<toml::Spanned<String>, String>,
    #[serde(default)]
    decisions: BTreeMap<toml::Spanned<String>, Vec<String>>,
}

impl FieldMap {
    /// The column of a field, when the map renames it.
    pub fn column(&self, field: &str) -> Option<&str> {
        self.columns.get(field).map(String::as_str)
    }

    /// Reads a field map, naming the file, line, column and field of what is wrong.
    pub fn read(path: &Path, schema: &Schema, answer: &Answer) -> Result<FieldMap, RowError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| RowError {
            file: file.clone(),
            line: 0,
            column: None,
            field: "-".into(),
            message: format!("cannot read: {e}"),
        })?;
        FieldMap::parse(&text, &file, schema, answer)
    }

    /// Parses a field map's text.
    pub fn parse(text: &str, file: &str, schema: &Schema, answer: &Answer) -> Result<FieldMap, RowError> {
        let at = |offset: usize| {
            let (line, column) = crate::error::line_column(text, offset);
            (line as u64, column as u64)
        };
        let parsed: FieldFile = toml::from_str(text).map_err(|e| {
            let (line, column, field, message) = crate::toml_error(text, &e);
            let field = if field.is_empty() { "-".to_string() } else { field };
            RowError { file: file.into(), line: line as u64, column: Some(column as u64), field, message }
        })?;
        let bad = |offset: usize, field: String, message: String| {
            let (line, col) = at(offset);
            RowError { file: file.into(), line, column: Some(col), field, message }
        };
        let mut columns = BTreeMap::new();
        for (key, column) in parsed.fields {
            let start = key.span().start;
            let name = key.into_inner();
            if schema.index(&name).is_none() && !ANSWER_FIELDS.contains(&name.as_str()) {
                let mut known: Vec<&str> = schema.fields().iter().map(|f| f.name.as_str()).collect();
                known.extend(ANSWER_FIELDS);
                return Err(bad(
                    start,
                    format!("fields.{name}"),
                    format!("not a field of the schema (one of {})", known.join(", ")),
                ));
            }
            if column.is_empty() {
                return Err(bad(start, format!("fields.{name}"), "names no column".into()));
            }
            columns.insert(name, column);
        }
        let mut decisions: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (label, values) in parsed.decisions {
            let start = label.span().start;
            let label = label.into_inner();
            if !answer.labels.iter().any(|l| l.eq_ignore_ascii_case(&label)) {
                let known = if answer.labels.is_empty() {
                    "none: the answer has no decision".into()
                } else {
                    answer.labels.join(", ")
                };
                return Err(bad(start, format!("decisions.{label}"), format!("not a label of the answer ({known})")));
            }
            for v in &values {
                if let Some((other, _)) = decisions.iter().find(|(_, vs)| vs.iter().any(|w| w.eq_ignore_ascii_case(v)))
                {
                    return Err(bad(
                        start,
                        "decisions".into(),
                        format!("`{}` means both {other} and {label}", cutover_models::shown(v)),
                    ));
                }
            }
            decisions.insert(label, values);
        }
        Ok(FieldMap { columns, decisions })
    }

    /// A recorded decision's class: the map's values first, then the answer's own labels.
    pub fn decision(&self, answer: &Answer, text: &str) -> Option<u32> {
        let t = text.trim();
        for (label, values) in &self.decisions {
            if values.iter().any(|v| v.eq_ignore_ascii_case(t)) {
                return answer.labels.iter().position(|l| l.eq_ignore_ascii_case(label)).map(|k| k as u32);
            }
        }
        answer.parse_decision(t)
    }
}
