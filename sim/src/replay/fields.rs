//! The field map: a small TOML that names, for each field cutover reads, the column (CSV) or
//! key (JSON lines) of a user's recorded file, and which recorded decisions mean "block".
//!
//! ```toml
//! [fields]                 # cutover's field = the file's column
//! transaction_id = "txn"
//! event_time = "ts"        # RFC 3339 text; or event_time_ms = "ts_ms" (integer)
//! amount = "amt"
//! legacy_score = "prob"
//! legacy_decision = "action"
//!
//! [decisions]
//! block = ["DECLINE"]
//! allow = ["APPROVE"]
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::source::RowError;

/// Every field a recorded row may carry: (name, required).
pub const FIELDS: [(&str, bool); 15] = [
    ("transaction_id", true),
    ("customer_id", true),
    ("event_time_ms", false),
    ("event_time", false),
    ("amount", true),
    ("currency", true),
    ("merchant_category", true),
    ("country", true),
    ("channel", true),
    ("device_os", false),
    ("account_age_days", false),
    ("card_present", true),
    ("distance_from_home_km", false),
    ("legacy_score", false),
    ("legacy_decision", false),
];

/// Which recorded decision values block and which allow (compared case-insensitively).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decisions {
    /// Values that mean the transaction was blocked.
    #[serde(default = "d_block")]
    pub block: Vec<String>,
    /// Values that mean it was allowed.
    #[serde(default = "d_allow")]
    pub allow: Vec<String>,
}

fn d_block() -> Vec<String> {
    vec!["block".into(), "true".into(), "1".into()]
}

fn d_allow() -> Vec<String> {
    vec!["allow".into(), "false".into(), "0".into()]
}

impl Default for Decisions {
    fn default() -> Self {
        Decisions { block: d_block(), allow: d_allow() }
    }
}

/// The map from cutover's fields to a file's columns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldMap {
    columns: BTreeMap<String, String>,
    /// Recorded decision values.
    pub decisions: Decisions,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldFile {
    #[serde(default)]
    fields: BTreeMap<toml::Spanned<String>, String>,
    #[serde(default)]
    decisions: Decisions,
}

impl FieldMap {
    /// The column that holds `field`.
    pub fn column<'a>(&'a self, field: &'a str) -> &'a str {
        self.columns.get(field).map_or(field, String::as_str)
    }

    /// Reads a field map, naming the file, line, column and field of what is wrong.
    pub fn read(path: &Path) -> Result<FieldMap, RowError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| RowError {
            file: file.clone(),
            line: 0,
            column: None,
            field: "-".into(),
            message: format!("cannot read: {e}"),
        })?;
        FieldMap::parse(&text, &file)
    }

    /// Parses a field map's text.
    pub fn parse(text: &str, file: &str) -> Result<FieldMap, RowError> {
        let at = |offset: usize| {
            let before = &text[..offset.min(text.len())];
            let line = before.matches('\n').count() as u64 + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) as u64 + 1;
            (line, column)
        };
        let parsed: FieldFile = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map_or((0, 0), |s| at(s.start));
            let field = e.message().split('`').nth(1).unwrap_or("-").to_string();
            RowError { file: file.into(), line, column: Some(column), field, message: e.message().trim().to_string() }
        })?;
        let mut columns = BTreeMap::new();
        for (key, column) in parsed.fields {
            let (line, col) = at(key.span().start);
            let name = key.into_inner();
            if !FIELDS.iter().any(|(f, _)| *f == name) {
                let known: Vec<&str> = FIELDS.iter().map(|f| f.0).collect();
                return Err(RowError {
                    file: file.into(),
                    line,
                    column: Some(col),
                    field: format!("fields.{name}"),
                    message: format!("not a field cutover reads (one of {})", known.join(", ")),
                });
            }
            if column.is_empty() {
                return Err(RowError {
                    file: file.into(),
                    line,
                    column: Some(col),
                    field: format!("fields.{name}"),
                    message: "names no column".into(),
                });
            }
            columns.insert(name, column);
        }
        let d = &parsed.decisions;
        if let Some(v) = d.block.iter().find(|v| d.allow.iter().any(|a| a.eq_ignore_ascii_case(v))) {
            return Err(RowError {
                file: file.into(),
                line: 0,
                column: None,
                field: "decisions".into(),
                message: format!("`{v}` both blocks and allows"),
            });
        }
        Ok(FieldMap { columns, decisions: parsed.decisions })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_map_renames_columns_and_names_what_is_wrong_with_its_place() {
        let m = FieldMap::parse("[fields]\namount = \"amt\"\n[decisions]\nblock = [\"DECLINE\"]\n", "m.toml").unwrap();
        assert_eq!(m.column("amount"), "amt");
        assert_eq!(m.column("country"), "country");
        assert_eq!(m.decisions.block, ["DECLINE"]);
        assert_eq!(m.decisions.allow, ["allow", "false", "0"]);

        let e = FieldMap::parse("[fields]\namount = \"amt\"\n  amout = \"x\"\n", "m.toml").unwrap_err();
        assert_eq!((e.line, e.column, e.field.as_str()), (3, Some(3), "fields.amout"), "{e}");
        let e = FieldMap::parse("[fields]\namount = 3\n", "m.toml").unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        let e = FieldMap::parse("[colums]\n", "m.toml").unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (1, "colums"), "{e}");
        let e = FieldMap::parse("[decisions]\nblock = [\"x\"]\nallow = [\"X\"]\n", "m.toml").unwrap_err();
        assert_eq!(e.field, "decisions", "{e}");
    }
}
