//! Reading the files `Booster.save_model` writes: JSON and UBJSON, xgboost 1.7 to 3.x.

mod json;
mod schema;
mod ubjson;
mod value;

use std::path::Path;

use crate::error::ModelError;
use crate::model::Model;

/// Loads an XGBoost model file, JSON or UBJSON (told apart by content, not by name).
pub fn load_file(path: &Path) -> Result<Model, ModelError> {
    let bytes = std::fs::read(path).map_err(|source| ModelError::Io { path: path.to_path_buf(), source })?;
    load_bytes(&bytes, &path.display().to_string())
}

/// Loads an XGBoost model from bytes; `origin` names it in errors.
pub fn load_bytes(bytes: &[u8], origin: &str) -> Result<Model, ModelError> {
    let doc = match encoding(bytes) {
        Encoding::Json => json::parse(bytes, origin)?,
        Encoding::Ubjson => ubjson::parse(bytes, origin)?,
    };
    schema::model_from_document(&doc, origin)
}

/// `json` or `ubjson`: the encoding of a model file's bytes.
pub fn format_name(bytes: &[u8]) -> &'static str {
    match encoding(bytes) {
        Encoding::Json => "json",
        Encoding::Ubjson => "ubjson",
    }
}

#[derive(Debug, PartialEq)]
enum Encoding {
    Json,
    Ubjson,
}

/// Both encodings open with `{`; JSON follows it with white space, a quote or `}`,
/// UBJSON with a length marker for the first key.
fn encoding(bytes: &[u8]) -> Encoding {
    let mut rest = bytes.iter().skip_while(|b| b.is_ascii_whitespace());
    match (rest.next(), rest.next()) {
        (Some(b'{'), Some(b'"' | b'}' | b' ' | b'\n' | b'\r' | b'\t')) => Encoding::Json,
        (Some(b'{'), _) => Encoding::Ubjson,
        _ => Encoding::Json,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_the_encodings_apart() {
        assert_eq!(encoding(b"{\"learner\": {}}"), Encoding::Json);
        assert_eq!(encoding(b"  {\n"), Encoding::Json);
        assert_eq!(encoding(b"{L\0\0\0\0\0\0\0\x07learner"), Encoding::Ubjson);
        assert_eq!(encoding(b"{i\x07learner"), Encoding::Ubjson);
        assert_eq!(encoding(b""), Encoding::Json);
    }
}
