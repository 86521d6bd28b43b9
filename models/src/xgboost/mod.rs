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
    let bytes = read_model_file(path).map_err(|source| ModelError::Io { path: path.to_path_buf(), source })?;
    load_bytes(&bytes, &path.display().to_string())
}

/// A model file's bytes: a regular file only (a device such as `/dev/zero`, a pipe or a
/// folder is refused before anything is read, since it could be read forever).
pub fn read_model_file(path: &Path) -> std::io::Result<Vec<u8>> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"));
    }
    std::fs::read(path)
}

/// Loads an XGBoost model from bytes; `origin` names it in errors.
pub fn load_bytes(bytes: &[u8], origin: &str) -> Result<Model, ModelError> {
    schema::model_from_document(&document(bytes, origin)?, origin)
}

/// `json` or `ubjson`: the encoding of a model file's bytes.
pub fn format_name(bytes: &[u8]) -> &'static str {
    match encoding(bytes) {
        Encoding::Json | Encoding::Neither(_) => "json",
        Encoding::Ubjson => "ubjson",
    }
}

/// The parsed document, JSON or UBJSON; bytes that are neither are refused without
/// quoting them.
fn document(bytes: &[u8], origin: &str) -> Result<value::Value, ModelError> {
    match encoding(bytes) {
        Encoding::Json => json::parse(bytes, origin),
        Encoding::Ubjson => ubjson::parse(bytes, origin),
        Encoding::Neither(why) => Err(ModelError::NotAModel { origin: origin.to_string(), why }),
    }
}

/// The same model as an earlier checkpoint of its training: the first half of its
/// boosting rounds (at least one), as JSON text xgboost and this crate both load. What a
/// pipeline that picked the wrong artifact serves: the same features, other scores.
pub fn earlier_checkpoint(bytes: &[u8], origin: &str) -> Result<String, ModelError> {
    use value::Value;
    let mut doc = document(bytes, origin)?;
    // Checks the model is one this crate reads.
    schema::model_from_document(&doc, origin)?;
    let field = |f: &str| ModelError::field(origin, f, "missing or not the shape xgboost writes");
    let model = get_mut(&mut doc, &["learner", "gradient_booster", "model"])
        .ok_or_else(|| field("learner.gradient_booster.model"))?;
    let Value::Object(entries) = model else { return Err(field("learner.gradient_booster.model")) };
    let find = |entries: &[(String, Value)], k: &str| entries.iter().position(|(n, _)| n == k);
    let trees = find(entries, "trees").ok_or_else(|| field("trees"))?;
    let total = match &entries[trees].1 {
        Value::Array(a) => a.len(),
        _ => return Err(field("trees")),
    };
    let info = find(entries, "tree_info").ok_or_else(|| field("tree_info"))?;
    let groups = match &entries[info].1 {
        Value::Numbers(n) => n.iter().filter_map(|x| x.as_i64()).max().unwrap_or(0) as usize + 1,
        _ => 1,
    };
    let keep = match find(entries, "iteration_indptr").map(|i| (i, &entries[i].1)) {
        Some((i, Value::Numbers(ptr))) if ptr.len() >= 2 => {
            let iterations = ptr.len() - 1;
            let k = (iterations / 2).max(1);
            let n = ptr[k].as_i64().unwrap_or(total as i64) as usize;
            entries[i].1 = Value::Numbers(ptr[..=k].to_vec());
            n
        }
        _ => ((total / groups / 2).max(1) * groups).min(total),
    };
    if let Value::Array(a) = &mut entries[trees].1 {
        a.truncate(keep);
    }
    if let Value::Numbers(n) = &mut entries[info].1 {
        n.truncate(keep);
    }
    if let Some(p) = find(entries, "gbtree_model_param") {
        if let Value::Object(param) = &mut entries[p].1 {
            for (k, v) in param.iter_mut() {
                if k == "num_trees" {
                    *v = Value::Str(keep.to_string());
                }
            }
        }
    }
    let mut out = String::with_capacity(bytes.len() * 2);
    write_json(&doc, &mut out);
    Ok(out)
}

fn get_mut<'a>(v: &'a mut value::Value, path: &[&str]) -> Option<&'a mut value::Value> {
    let mut at = v;
    for key in path {
        let value::Value::Object(entries) = at else { return None };
        at = entries.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v)?;
    }
    Some(at)
}

/// JSON text of a document: whole numbers as integers, others at the precision they carry
/// (an f32 as its shortest round-tripping decimal).
fn write_json(v: &value::Value, out: &mut String) {
    use std::fmt::Write;
    use value::{Num, Value};
    let num = |n: &Num, out: &mut String| {
        if let Some(i) = n.as_i64() {
            let _ = write!(out, "{i}");
        } else if !n.f64.is_finite() {
            out.push_str("null");
        } else if f64::from(n.f32) == n.f64 {
            let _ = write!(out, "{:?}", n.f32);
        } else {
            let _ = write!(out, "{:?}", n.f64);
        }
    };
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => num(n, out),
        Value::Str(s) => out.push_str(&serde_json::to_string(s).expect("strings serialize")),
        Value::Numbers(items) => separated(out, '[', items, ']', |n, out| num(n, out)),
        Value::Array(items) => separated(out, '[', items, ']', write_json),
        Value::Object(entries) => separated(out, '{', entries, '}', |(k, item), out| {
            out.push_str(&serde_json::to_string(k).expect("strings serialize"));
            out.push(':');
            write_json(item, out);
        }),
    }
}

/// `open`, the items written by `each` with commas between them, `close`.
fn separated<T>(out: &mut String, open: char, items: &[T], close: char, mut each: impl FnMut(&T, &mut String)) {
    out.push(open);
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        each(item, out);
    }
    out.push(close);
}

#[derive(Debug, PartialEq)]
enum Encoding {
    Json,
    Ubjson,
    /// Neither: why.
    Neither(&'static str),
}

/// Both encodings open with `{`; JSON follows it with white space, a quote or `}`,
/// UBJSON with a length marker for the first key.
fn encoding(bytes: &[u8]) -> Encoding {
    let mut rest = bytes.iter().skip_while(|b| b.is_ascii_whitespace());
    match (rest.next(), rest.next()) {
        (Some(b'{'), Some(b'"' | b'}' | b' ' | b'\n' | b'\r' | b'\t')) => Encoding::Json,
        (Some(b'{'), _) => Encoding::Ubjson,
        (Some(b'['), _) => Encoding::Json,
        (None, _) => Encoding::Neither("the file is empty"),
        _ => Encoding::Neither("a saved model (JSON or UBJSON) opens with `{`"),
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
        assert_eq!(encoding(b""), Encoding::Neither("the file is empty"));
        assert!(matches!(encoding(b"\x8f\x01garbage"), Encoding::Neither(_)));
        let e = load_bytes(b"\x8f\x01garbage", "r.ubj").unwrap_err().to_string();
        assert_eq!(e, "r.ubj: not an XGBoost model: a saved model (JSON or UBJSON) opens with `{`");
    }
}

#[cfg(test)]
mod init_fixture_tests {
    use std::path::PathBuf;

    use super::*;

    fn fixture(service: &str, file: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/init").join(service).join(file)
    }

    #[test]
    fn importance_is_xgboost_s_own_get_score() {
        for (service, model) in [("loans", "model.json"), ("tickets", "model.ubj"), ("routing", "model.json")] {
            let m = load_file(&fixture(service, model)).unwrap();
            let reference: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(fixture(service, "importance.json")).unwrap()).unwrap();
            for (i, name) in m.feature_names().iter().enumerate() {
                let imp = m.importance()[i];
                let want = |kind: &str| reference[kind][name].as_f64().unwrap_or(0.0);
                // xgboost sums in f32 per tree and in double across trees: equal to 1e-5.
                assert!(
                    (imp.gain - want("total_gain")).abs() <= 1e-5 * want("total_gain").max(1.0),
                    "{service} {name} gain"
                );
                assert!(
                    (imp.cover - want("total_cover")).abs() <= 1e-5 * want("total_cover").max(1.0),
                    "{service} {name} cover"
                );
                assert_eq!(imp.splits as f64, want("weight"), "{service} {name} splits");
            }
        }
    }

    #[test]
    fn categorical_features_carry_the_names_xgboost_saved() {
        let m = load_file(&fixture("loans", "model.json")).unwrap();
        let region = m.feature_names().iter().position(|f| f == "region").unwrap();
        assert_eq!(m.category_names(region).unwrap(), ["central", "east", "islands", "north", "south", "west"]);
        assert!(m.category_names(0).is_none());
    }

    #[test]
    fn an_earlier_checkpoint_keeps_half_the_rounds_and_scores_otherwise() {
        for (service, model) in [("loans", "model.json"), ("tickets", "model.ubj"), ("routing", "model.json")] {
            let bytes = std::fs::read(fixture(service, model)).unwrap();
            let full = load_bytes(&bytes, service).unwrap();
            let text = earlier_checkpoint(&bytes, service).unwrap();
            let half = load_bytes(text.as_bytes(), service).unwrap();
            assert_eq!(half.forest().num_trees() * 2, full.forest().num_trees(), "{service}");
            assert_eq!(half.feature_names(), full.feature_names());
            let row = vec![1.0f32; full.num_features()];
            let (mut a, mut b) = (vec![0.0; full.forest().num_groups()], vec![0.0; full.forest().num_groups()]);
            full.margins(&row, &mut a);
            half.margins(&row, &mut b);
            assert_ne!(a, b, "{service}: the checkpoint scores like the model");
        }
    }
}
