//! Errors a caller of the model crate can handle: each names the file and, where known,
//! the position and the field that is wrong.

use std::fmt;
use std::path::PathBuf;

/// Where in a model file a parse error was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// A text position (JSON), both 1-based.
    LineColumn {
        /// Line, counted from 1.
        line: usize,
        /// Column in bytes, counted from 1.
        column: usize,
    },
    /// A byte offset from the start of the file (UBJSON), counted from 0.
    Byte(usize),
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::LineColumn { line, column } => write!(f, "line {line}, column {column}"),
            Position::Byte(offset) => write!(f, "byte {offset}"),
        }
    }
}

/// Why a model could not be loaded or converted.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The file could not be read.
    #[error("{path}: cannot read the model: {source}")]
    Io {
        /// The model file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The bytes are not valid JSON or UBJSON.
    #[error("{origin}: malformed {format} at {position}: {message}")]
    Syntax {
        /// The model file, or a name for in-memory bytes.
        origin: String,
        /// `JSON` or `UBJSON`.
        format: &'static str,
        /// Where the problem is.
        position: Position,
        /// What is wrong.
        message: String,
    },
    /// The document parsed but a field is missing or has the wrong shape.
    #[error("{origin}: field `{field}`: {message}")]
    Field {
        /// The model file, or a name for in-memory bytes.
        origin: String,
        /// Dotted path of the field, for example `learner.gradient_booster.model.trees[3].left_children`.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The bytes are neither encoding (empty, or not opening as a saved model does). The
    /// message quotes nothing of the file.
    #[error("{origin}: not an XGBoost model: {why}")]
    NotAModel {
        /// The model file, or a name for in-memory bytes.
        origin: String,
        /// Why, without the file's content.
        why: &'static str,
    },
    /// A valid model that uses something this crate does not evaluate exactly.
    #[error("{origin}: unsupported {what}")]
    Unsupported {
        /// The model file, or a name for in-memory bytes.
        origin: String,
        /// What it is, for example `booster "gblinear" (only gbtree is supported)`.
        what: String,
    },
}

impl ModelError {
    pub(crate) fn field(origin: &str, field: impl Into<String>, message: impl Into<String>) -> Self {
        ModelError::Field { origin: origin.to_string(), field: field.into(), message: message.into() }
    }

    pub(crate) fn unsupported(origin: &str, what: impl Into<String>) -> Self {
        ModelError::Unsupported { origin: origin.to_string(), what: what.into() }
    }
}

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

/// A message made one printable line: every control character (a newline, a NUL, an
/// escape sequence some input carried into it) written as an escape.
pub fn one_line(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    s.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

/// A value a user or client wrote, as a message quotes it: at most 40 characters, control
/// characters (a NUL, a newline, an escape sequence) written as escapes, so a message is
/// always one printable line whatever the input held.
pub fn shown(s: &str) -> String {
    let mut out = String::new();
    for (n, c) in s.chars().enumerate() {
        if n == 40 {
            out.push_str("...");
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod shown_tests {
    use super::shown;

    #[test]
    fn escapes_control_characters_and_clips() {
        assert_eq!(shown("a\0b"), "a\\u{0}b");
        assert_eq!(shown("x\ny\u{1b}[31m"), "x\\ny\\u{1b}[31m");
        assert_eq!(shown("é"), "é");
        let long = "z".repeat(100);
        assert_eq!(shown(&long), format!("{}...", "z".repeat(40)));
    }
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
