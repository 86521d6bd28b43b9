//! Feature specifications as data: one TOML file per path, validated on load against the
//! migration's request schema.
//!
//! ```toml
//! name = "legacy-v3"
//!
//! [tables.eur_per_unit]               # lookup tables: text key to number (or zone name)
//! EUR = 1.0
//! USD = 0.92
//!
//! [[aggregate]]                        # per entity, materialized on the store's schedule
//! name = "customer_avg_amount_eur"
//! function = "mean"                    # count, sum, mean, min, max
//! of = "amount_in_eur"                 # a request field or a feature of this spec
//! window_s = 604800                    # optional: the last 7 days (tiled); default: all history
//!
//! [[feature]]
//! name = "amount_in_eur"
//! source = "amount"                    # a request field, an aggregate, or an earlier feature
//! steps = [{ op = "lookup", table = "eur_per_unit", key = "currency" }]
//! output = false                       # intermediate: the model does not read it
//!
//! [[feature]]
//! name = "amount_eur"
//! source = "amount_in_eur"
//! steps = [{ op = "clip", min = 0.0, max = 25000.0 }]
//!
//! [[feature]]
//! name = "device_os"
//! source = "device_os"
//! vocabulary = ["android", "ios", "windows"]
//! unknown = "nan"                      # or { code = 0 }
//! case_sensitive = false
//! missing = "nan"                      # or { constant = 0.0 }, or { mean = 41.5 }
//!
//! [[feature]]
//! name = "amount_to_customer_avg"
//! divide = ["amount_eur", "customer_avg_amount_eur"]   # also add, subtract, multiply
//! on_zero = 0.0                        # or "infinity", or "missing" (the default)
//! fill_operands = 0.0                  # default: a missing operand makes the result missing
//!
//! [[feature]]
//! name = "items_plus_one"
//! add = ["items", 1]                   # an operand may be a number
//!
//! [[feature]]
//! name = "hour_local"
//! source = "event_time_ms"             # a timestamp field
//! steps = [{ op = "hour_of_day", zone = { field = "country", table = "country_zones", default = "UTC" } }]
//! ```
//!
//! Steps: `scale` (`factor`, `offset`), `log1p`, `clip` (`min`, `max`), `round`
//! (`digits`), `bucketize` (`boundaries`), `lookup` (`table`, `key` field, `apply`:
//! multiply, divide, add, subtract or replace, `default` for an absent key,
//! `case_sensitive`; without `key` on a category source, the source's own value is the
//! key), and the time steps `hour_of_day`, `day_of_week` (0 = Monday), `day_of_month`,
//! `month` in a `zone`: an IANA name or `UTC`, or `{ field, table, default }` (the zone
//! named by a field's value, through a table of zone names when given). A value that is
//! not finite after the steps takes the feature's `missing` policy. Features with
//! `output = false` are intermediate; the rest, in order, must be exactly the model's
//! `feature_names`. With `on_zero = "infinity"`, a division by zero is
//! infinite (the sign of the numerator; `0 / 0` stays missing) and an infinite value is kept
//! through the steps, as pandas and numpy compute it; the model reads it as a value past
//! every split. A feature with `placeholder = "..."` (as `cutover init` writes for a
//! model feature no request field provides) stops the spec compiling until it is defined.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::SpecError;

/// A parsed feature specification, before compilation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecFile {
    /// The spec's name, for reports.
    pub name: String,
    /// What it is for.
    #[serde(default)]
    pub description: String,
    /// Lookup tables: key to a number or a zone name.
    #[serde(default)]
    pub tables: BTreeMap<String, Spanned<BTreeMap<String, TableValue>>>,
    /// Per-entity aggregates.
    #[serde(default, rename = "aggregate")]
    pub aggregates: Vec<Spanned<AggregateDef>>,
    /// The features, in order.
    #[serde(rename = "feature")]
    pub features: Vec<Spanned<FeatureDef>>,
}

/// A table's value.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum TableValue {
    /// A number.
    Number(f64),
    /// A text (a zone name).
    Text(String),
}

impl std::fmt::Display for TableValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TableValue::Number(x) => write!(f, "{x}"),
            TableValue::Text(s) => write!(f, "{s}"),
        }
    }
}

/// What an aggregate computes over an entity's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Function {
    /// Events (0 for an entity never seen).
    Count,
    /// Sum of the values present (0 for none).
    Sum,
    /// Their mean (missing for none).
    Mean,
    /// Their minimum (missing for none).
    Min,
    /// Their maximum (missing for none).
    Max,
}

impl Function {
    /// Its name in specs.
    pub fn name(self) -> &'static str {
        match self {
            Function::Count => "count",
            Function::Sum => "sum",
            Function::Mean => "mean",
            Function::Min => "min",
            Function::Max => "max",
        }
    }
}

/// One aggregate as written.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregateDef {
    /// Its name, which features use as a source.
    pub name: Spanned<String>,
    /// What it computes.
    pub function: Function,
    /// The value aggregated: a request field or a feature of this spec (not for `count`).
    #[serde(default)]
    pub of: Option<Spanned<String>>,
    /// Only events in the last this many seconds (default: all history).
    #[serde(default)]
    pub window_s: Option<f64>,
}

/// One feature as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureDef {
    /// Its name (the model's feature name when it is an output).
    pub name: Spanned<String>,
    /// Where its value comes from: a request field, an aggregate, or an earlier feature.
    #[serde(default)]
    pub source: Option<Spanned<String>>,
    /// Instead of a source: `a / b` (the same as `divide`).
    #[serde(default)]
    pub ratio: Option<Spanned<[OperandDef; 2]>>,
    /// Instead of a source: `a + b`.
    #[serde(default)]
    pub add: Option<Spanned<[OperandDef; 2]>>,
    /// Instead of a source: `a - b`.
    #[serde(default)]
    pub subtract: Option<Spanned<[OperandDef; 2]>>,
    /// Instead of a source: `a * b`.
    #[serde(default)]
    pub multiply: Option<Spanned<[OperandDef; 2]>>,
    /// Instead of a source: `a / b`.
    #[serde(default)]
    pub divide: Option<Spanned<[OperandDef; 2]>>,
    /// Arithmetic: a missing operand counts as this (default: the result is missing).
    #[serde(default)]
    pub fill_operands: Option<f64>,
    /// Division: what `x / 0` is (default: missing).
    #[serde(default)]
    pub on_zero: Option<OnZero>,
    /// Numeric steps applied in order.
    #[serde(default)]
    pub steps: Vec<Spanned<Step>>,
    /// Categorical encoding: the code of a value is its position here.
    #[serde(default)]
    pub vocabulary: Option<Spanned<Vec<Spanned<String>>>>,
    /// What an out-of-vocabulary value becomes.
    #[serde(default)]
    pub unknown: Unknown,
    /// Whether the vocabulary match is case sensitive.
    #[serde(default)]
    pub case_sensitive: bool,
    /// What a missing value becomes.
    #[serde(default)]
    pub missing: Missing,
    /// How the schema's missing values (sentinels) are read: as missing, or as sent.
    #[serde(default)]
    pub sentinels: Sentinels,
    /// Whether the model reads it (false for intermediate features).
    #[serde(default = "yes")]
    pub output: bool,
    /// Written by `cutover init` for a model feature no request field provides: why, and
    /// what to do. A spec with one does not compile until it is replaced by a definition.
    #[serde(default)]
    pub placeholder: Option<String>,
}

fn yes() -> bool {
    true
}

/// How a feature reads a field's declared missing values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Sentinels {
    /// As missing (the feature's `missing` policy applies).
    #[default]
    Missing,
    /// As sent: `-1` is the number -1 (a preprocessing drift, when the other path differs).
    Keep,
}

/// One operand of an arithmetic input: a name (a request field, an aggregate or an earlier
/// feature) or a number.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum OperandDef {
    /// A number, such as the `1` of `add = ["drivers", 1]`.
    Number(f64),
    /// A name.
    Name(String),
}

impl std::fmt::Display for OperandDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OperandDef::Number(x) => write!(f, "{x}"),
            OperandDef::Name(n) => f.write_str(n),
        }
    }
}

/// What a division by zero gives.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OnZero {
    /// This number.
    Value(f64),
    /// Infinity with the numerator's sign (`0 / 0` stays missing), kept through the steps.
    Infinity,
    /// Missing (the feature's `missing` policy applies): the default.
    Missing,
}

impl<'de> Deserialize<'de> for OnZero {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<OnZero, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Number(f64),
            Text(String),
        }
        match Written::deserialize(d)? {
            Written::Number(x) if x.is_finite() => Ok(OnZero::Value(x)),
            Written::Number(x) => {
                Err(serde::de::Error::custom(format!("{x} is not finite: write \"infinity\" for an infinite result")))
            }
            Written::Text(t) if t == "infinity" => Ok(OnZero::Infinity),
            Written::Text(t) if t == "missing" => Ok(OnZero::Missing),
            Written::Text(t) => Err(serde::de::Error::custom(format!(
                "`{t}` is not a policy for x / 0: a number, \"infinity\" or \"missing\""
            ))),
        }
    }
}

impl std::fmt::Display for OnZero {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OnZero::Value(x) => write!(f, "{x}"),
            OnZero::Infinity => f.write_str("infinity"),
            OnZero::Missing => f.write_str("missing"),
        }
    }
}

/// The arithmetic of a feature computed from two others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arithmetic {
    /// `a + b`.
    Add,
    /// `a - b`.
    Subtract,
    /// `a * b`.
    Multiply,
    /// `a / b`.
    Divide,
}

impl Arithmetic {
    /// The operator.
    pub fn symbol(self) -> &'static str {
        match self {
            Arithmetic::Add => "+",
            Arithmetic::Subtract => "-",
            Arithmetic::Multiply => "*",
            Arithmetic::Divide => "/",
        }
    }
}

impl FeatureDef {
    /// The arithmetic inputs given: (operation, operands, span).
    pub fn arithmetic(&self) -> Vec<(Arithmetic, &Spanned<[OperandDef; 2]>)> {
        [
            (Arithmetic::Divide, &self.ratio),
            (Arithmetic::Add, &self.add),
            (Arithmetic::Subtract, &self.subtract),
            (Arithmetic::Multiply, &self.multiply),
            (Arithmetic::Divide, &self.divide),
        ]
        .into_iter()
        .filter_map(|(op, v)| v.as_ref().map(|v| (op, v)))
        .collect()
    }
}

/// How a lookup combines the table's value with the feature's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Apply {
    /// `x * table[key]` (a rate).
    #[default]
    Multiply,
    /// `x / table[key]`.
    Divide,
    /// `x + table[key]`.
    Add,
    /// `x - table[key]`.
    Subtract,
    /// `table[key]`.
    Replace,
}

/// Where a time step's zone comes from.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum ZoneSpec {
    /// `UTC` or an IANA name.
    Fixed(String),
    /// The zone named by a request field's value.
    FromField {
        /// The field.
        field: String,
        /// A table from the field's values to zone names (else the values are zone names).
        #[serde(default)]
        table: Option<String>,
        /// The zone when the value is missing or unknown (else the feature is missing).
        #[serde(default)]
        default: Option<String>,
    },
}

impl std::fmt::Display for ZoneSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ZoneSpec::Fixed(z) => write!(f, "{z}"),
            ZoneSpec::FromField { field, table, default } => {
                write!(f, "zone of {field}")?;
                if let Some(t) = table {
                    write!(f, " via {t}")?;
                }
                if let Some(d) = default {
                    write!(f, ", else {d}")?;
                }
                Ok(())
            }
        }
    }
}

/// A numeric step.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// `x * factor + offset`.
    Scale {
        /// Multiplier.
        factor: f64,
        /// Added after multiplying.
        #[serde(default)]
        offset: f64,
    },
    /// `ln(1 + x)`.
    Log1p,
    /// Clamp into `[min, max]`.
    Clip {
        /// Lower bound.
        min: f64,
        /// Upper bound.
        max: f64,
    },
    /// Round half away from zero to `digits` decimals.
    Round {
        /// Decimals kept (negative rounds to tens, hundreds, ...).
        #[serde(default)]
        digits: i32,
    },
    /// The index of the first boundary greater than x (0..=len).
    Bucketize {
        /// Increasing boundaries.
        boundaries: Vec<f64>,
    },
    /// Combines x with a table's value for a key.
    Lookup {
        /// The table.
        table: String,
        /// The category field whose value is the key (default: the feature's own source).
        #[serde(default)]
        key: Option<String>,
        /// How the value combines with x.
        #[serde(default)]
        apply: Apply,
        /// The value for a key the table lacks (default: the feature is missing).
        #[serde(default)]
        default: Option<f64>,
        /// Whether keys match case-sensitively.
        #[serde(default = "yes")]
        case_sensitive: bool,
    },
    /// Hour of day (0-23) of a timestamp in a zone.
    HourOfDay {
        /// The zone.
        zone: ZoneSpec,
    },
    /// Day of week (0 = Monday) of a timestamp in a zone.
    DayOfWeek {
        /// The zone.
        zone: ZoneSpec,
    },
    /// Day of month (1-31) of a timestamp in a zone.
    DayOfMonth {
        /// The zone.
        zone: ZoneSpec,
    },
    /// Month (1-12) of a timestamp in a zone.
    Month {
        /// The zone.
        zone: ZoneSpec,
    },
}

impl Step {
    /// The zone of a time step.
    pub fn zone(&self) -> Option<&ZoneSpec> {
        match self {
            Step::HourOfDay { zone } | Step::DayOfWeek { zone } | Step::DayOfMonth { zone } | Step::Month { zone } => {
                Some(zone)
            }
            _ => None,
        }
    }
}

/// What an out-of-vocabulary categorical value becomes.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub enum Unknown {
    /// Missing (NaN), as XGBoost treats an unseen category best.
    #[default]
    #[serde(rename = "nan")]
    Nan,
    /// A fixed code.
    #[serde(rename = "code")]
    Code(u32),
}

/// What a missing value becomes.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub enum Missing {
    /// NaN: XGBoost's default-direction handling.
    #[default]
    #[serde(rename = "nan")]
    Nan,
    /// A constant.
    #[serde(rename = "constant")]
    Constant(f64),
    /// The training mean, stated in the spec.
    #[serde(rename = "mean")]
    Mean(f64),
}

impl Missing {
    /// The value a missing input becomes.
    pub fn fill(self) -> f64 {
        match self {
            Missing::Nan => f64::NAN,
            Missing::Constant(v) | Missing::Mean(v) => v,
        }
    }
}

impl SpecFile {
    /// Parses TOML; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<SpecFile, SpecError> {
        toml::from_str(text).map_err(|e| {
            // The message names the key; the field stays empty, as for every parse error.
            let (line, column, _, message) = crate::toml_error(text, &e);
            SpecError { file: file.to_string(), line, column, field: String::new(), message }
        })
    }

    /// Reads and parses a spec file.
    pub fn read(path: &Path) -> Result<(SpecFile, String), SpecError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| SpecError {
            file: file.clone(),
            line: 0,
            column: 0,
            field: String::new(),
            message: format!("cannot read: {e}"),
        })?;
        Ok((SpecFile::parse(&text, &file)?, text))
    }
}

pub(crate) use crate::error::line_column;
