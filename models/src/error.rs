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
