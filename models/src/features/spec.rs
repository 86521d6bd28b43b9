//! Feature specifications as data: one TOML file per path, validated on load.
//!
//! ```toml
//! name = "legacy-v3"
//! [currency_rates]                  # euros per unit, for `{ op = "currency" }`
//! EUR = 1.0
//! USD = 0.92
//!
//! [[feature]]
//! name = "amount_eur"
//! source = "amount"                 # a request field, an aggregate, or an earlier feature
//! steps = [{ op = "currency" }, { op = "clip", min = 0.0, max = 25000.0 }]
//! missing = "nan"                   # or { constant = 0.0 }, or { mean = 41.5 }
//!
//! [[feature]]
//! name = "device_os"
//! source = "device_os"
//! vocabulary = ["android", "ios", "windows"]
//! unknown = "nan"                   # or { code = 0 }
//! case_sensitive = false
//!
//! [[feature]]
//! name = "amount_to_customer_avg"
//! ratio = ["amount_eur", "customer_avg_amount_eur"]
//! ```
//!
//! Steps: `scale` (`factor`, `offset`), `log1p`, `clip` (`min`, `max`), `bucketize`
//! (`boundaries`), `currency` (converts by the request's currency with `currency_rates`),
//! `hour_of_day` and `day_of_week` (`zone`: `local` for the merchant country's zone,
//! `UTC`, or an IANA name). Features with `output = false` are intermediate; the rest,
//! in order, must be exactly the model's `feature_names`.

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
    /// Euros per unit of each currency.
    #[serde(default)]
    pub currency_rates: BTreeMap<String, f64>,
    /// The features, in order.
    #[serde(rename = "feature")]
    pub features: Vec<Spanned<FeatureDef>>,
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
    /// Instead of a source: the ratio of two earlier features.
    #[serde(default)]
    pub ratio: Option<Spanned<[String; 2]>>,
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
    /// Whether the model reads it (false for intermediate features).
    #[serde(default = "yes")]
    pub output: bool,
}

fn yes() -> bool {
    true
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
    /// The index of the first boundary greater than x (0..=len).
    Bucketize {
        /// Increasing boundaries.
        boundaries: Vec<f64>,
    },
    /// Multiply by the request currency's rate from `currency_rates`.
    Currency,
    /// Hour of day (0-23) of a millisecond timestamp in a zone.
    HourOfDay {
        /// `local`, `UTC`, or an IANA zone name.
        zone: String,
    },
    /// Day of week (0 = Monday) of a millisecond timestamp in a zone.
    DayOfWeek {
        /// `local`, `UTC`, or an IANA zone name.
        zone: String,
    },
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
            let (line, column) = e.span().map_or((0, 0), |s| line_column(text, s.start));
            let message = e.message().trim().replace('\n', " ");
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
