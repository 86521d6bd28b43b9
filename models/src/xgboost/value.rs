//! The document tree both model encodings (JSON and UBJSON) parse into.

/// A number as written in the file, kept at both precisions: XGBoost stores floats as
/// f32, and rounding a decimal through f64 first could differ from rounding it once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Num {
    pub f64: f64,
    pub f32: f32,
}

impl Num {
    pub fn from_f32(x: f32) -> Self {
        Num { f64: f64::from(x), f32: x }
    }

    pub fn from_f64(x: f64) -> Self {
        Num { f64: x, f32: x as f32 }
    }

    pub fn from_i64(x: i64) -> Self {
        Num { f64: x as f64, f32: x as f32 }
    }

    /// The integer value, if the number is one that fits an i64 exactly.
    pub fn as_i64(self) -> Option<i64> {
        let x = self.f64;
        let in_range = x >= -(2f64.powi(63)) && x < 2f64.powi(63);
        (x.fract() == 0.0 && in_range).then_some(x as i64)
    }
}

/// A parsed document. Arrays made only of numbers are kept compact in `Numbers`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Number(Num),
    Str(String),
    Array(Vec<Value>),
    Numbers(Vec<Num>),
    Object(Vec<(String, Value)>),
}

impl Value {
    /// Makes an array compact when every element is a number.
    pub fn array(items: Vec<Value>) -> Value {
        if !items.is_empty() && items.iter().all(|v| matches!(v, Value::Number(_))) {
            let nums = items
                .into_iter()
                .map(|v| match v {
                    Value::Number(n) => n,
                    _ => unreachable!("checked above"),
                })
                .collect();
            Value::Numbers(nums)
        } else {
            Value::Array(items)
        }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::Str(_) => "a string",
            Value::Array(_) | Value::Numbers(_) => "an array",
            Value::Object(_) => "an object",
        }
    }
}
