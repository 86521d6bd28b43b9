//! Bad input in the files a team writes (migration.toml, feature specs, scenarios): one
//! line naming the file, the line and column where known, and the field.

use cutover_models::{one_line, shown};

/// Bad input in a file a user writes (a feature spec, a scenario): the file, the line and
/// column where known, the field, and what is wrong; rendered as one line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", self.render())]
pub struct FieldError {
    /// The file.
    pub file: String,
    /// 1-based line, 0 when unknown.
    pub line: usize,
    /// 1-based column, 0 when unknown.
    pub column: usize,
    /// Dotted path of the field, for example `feature[3].vocabulary`; empty when unknown.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl FieldError {
    fn render(&self) -> String {
        let at = if self.line > 0 { format!("{}:{}:{}", self.file, self.line, self.column) } else { self.file.clone() };
        let line = if self.field.is_empty() {
            format!("{at}: {}", self.message)
        } else {
            format!("{at}: field `{}`: {}", self.field, self.message)
        };
        one_line(&line)
    }
}

/// 1-based line and column of a byte offset in a text.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text.as_bytes()[..offset.min(text.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let start = before.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    (line, offset - start + 1)
}

/// A TOML parse error as a one-line message: where (1-based line and column, 0 when
/// unknown), the key at fault when the error names or points at one, and what is wrong.
/// A duplicate key names the key (the parser says only "duplicate key").
pub fn toml_error(text: &str, e: &toml::de::Error) -> (usize, usize, String, String) {
    let span = e.span();
    let (line, column) = span.as_ref().map_or((0, 0), |s| line_column(text, s.start));
    let mut message = e.message().trim().replace('\n', " ");
    let named = message.starts_with("unknown field") || message.starts_with("missing field");
    let mut key = message.split('`').nth(1).filter(|_| named).unwrap_or("").to_string();
    if message == "duplicate key" {
        let written = span.and_then(|s| text.get(s)).unwrap_or("").trim().trim_matches(|c| c == '"' || c == '\'');
        if !written.is_empty() {
            key = shown(written);
            message = format!("duplicate key `{key}`: each key once per table");
        }
    }
    (line, column, key, message)
}

#[cfg(test)]
mod toml_error_tests {
    #[test]
    fn a_duplicate_key_is_named() {
        let text = "a = 1\n[t]\nscale = 3\nscale = 4\n";
        let e = toml::from_str::<toml::Table>(text).unwrap_err();
        let (line, column, key, message) = super::toml_error(text, &e);
        assert_eq!((line, column, key.as_str()), (4, 1, "scale"));
        assert_eq!(message, "duplicate key `scale`: each key once per table");
    }
}
