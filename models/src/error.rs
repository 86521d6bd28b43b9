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
        if self.field.is_empty() {
            format!("{at}: {}", self.message)
        } else {
            format!("{at}: field `{}`: {}", self.field, self.message)
        }
    }
}

/// 1-based line and column of a byte offset in a text.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text.as_bytes()[..offset.min(text.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let start = before.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    (line, offset - start + 1)
}
