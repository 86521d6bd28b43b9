//! A compiled feature specification: turns a request (plus its customer aggregates) into
//! the model's input row, allocation-free.

use std::str::FromStr;

use chrono::{Datelike, TimeZone, Timelike};
use chrono_tz::Tz;
use sha2::{Digest, Sha256};

use super::spec::{line_column, FeatureDef, Missing, SpecFile, Step, Unknown};
use super::SpecError;
use crate::fraud::{Field, FieldValue, Request};

/// Per-customer aggregates, as the legacy table or the online store serves them.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Aggregates {
    /// Transactions seen before the aggregate's cut-off.
    pub txn_count: f64,
    /// Their total amount in euros.
    pub amount_sum_eur: f64,
}

/// The aggregate names a spec may use as a source.
pub const AGGREGATES: [&str; 2] = ["customer_txn_count", "customer_avg_amount_eur"];

impl Aggregates {
    fn value(agg: Option<&Aggregates>, which: usize) -> f64 {
        let a = agg.copied().unwrap_or_default();
        match which {
            0 => a.txn_count,
            _ if a.txn_count > 0.0 => a.amount_sum_eur / a.txn_count,
            _ => f64::NAN,
        }
    }
}

/// What kind of value a feature holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureKind {
    /// A number.
    Numeric,
    /// A category code, `0..cardinality`.
    Categorical {
        /// Vocabulary size.
        cardinality: u32,
    },
}

#[derive(Debug, Clone)]
enum Input {
    Field(Field),
    Aggregate(usize),
    Feature(usize),
    Ratio(usize, usize),
}

#[derive(Debug, Clone, Copy)]
enum Zone {
    Local,
    Fixed(Tz),
}

#[derive(Debug, Clone)]
enum Op {
    Scale(f64, f64),
    Log1p,
    Clip(f64, f64),
    Bucketize(Vec<f64>),
    Currency,
    HourOfDay(Zone),
    DayOfWeek(Zone),
}

#[derive(Debug, Clone)]
struct Encoding {
    vocabulary: Vec<String>,
    /// Value (ASCII-lowercased unless case-sensitive) to its code.
    codes: rustc_hash::FxHashMap<Box<[u8]>, u32>,
    unknown: Option<u32>,
    case_sensitive: bool,
}

impl Encoding {
    fn new(vocabulary: Vec<String>, unknown: Option<u32>, case_sensitive: bool) -> Encoding {
        let mut codes = rustc_hash::FxHashMap::default();
        for (i, v) in vocabulary.iter().enumerate() {
            let key = if case_sensitive { v.clone() } else { v.to_ascii_lowercase() };
            codes.entry(key.into_bytes().into_boxed_slice()).or_insert(i as u32);
        }
        Encoding { vocabulary, codes, unknown, case_sensitive }
    }

    fn code(&self, text: &str) -> f64 {
        let found = if self.case_sensitive {
            self.codes.get(text.as_bytes())
        } else {
            // Lowercase on the stack: no allocation for the values requests carry.
            let mut buf = [0u8; 64];
            match buf.get_mut(..text.len()) {
                Some(b) => {
                    b.copy_from_slice(text.as_bytes());
                    b.make_ascii_lowercase();
                    self.codes.get(&*b)
                }
                None => self.codes.get(text.to_ascii_lowercase().as_bytes()),
            }
        };
        match (found, self.unknown) {
            (Some(&i), _) => f64::from(i),
            (None, Some(code)) => f64::from(code),
            (None, None) => f64::NAN,
        }
    }
}

#[derive(Debug, Clone)]
struct Compiled {
    name: String,
    input: Input,
    ops: Vec<Op>,
    encoding: Option<Encoding>,
    missing: f64,
    output: bool,
}

/// A compiled feature specification.
#[derive(Debug, Clone)]
pub struct Pipeline {
    name: String,
    sha256: String,
    features: Vec<Compiled>,
    outputs: Vec<usize>,
    output_names: Vec<String>,
    rates: Vec<(String, f64)>,
    defs: Vec<FeatureDef>,
}

/// Scratch and output of one evaluation: every feature's value, and the model row.
#[derive(Debug, Clone)]
pub struct FeatureValues {
    all: Vec<f64>,
    /// The model's input row, in the model's feature order.
    pub row: Vec<f32>,
}

impl FeatureValues {
    /// The model row, f64 before the f32 cast (for diffs that must see the exact value).
    pub fn output_f64<'a>(&'a self, pipeline: &'a Pipeline) -> impl Iterator<Item = f64> + 'a {
        pipeline.outputs.iter().map(|&i| self.all[i])
    }
}

impl Pipeline {
    /// Reads and compiles a spec file; with `model_features`, the outputs must be exactly
    /// those names in that order.
    pub fn from_file(path: &std::path::Path, model_features: Option<&[String]>) -> Result<Pipeline, SpecError> {
        let (spec, text) = SpecFile::read(path)?;
        Pipeline::compile(&spec, &text, &path.display().to_string(), model_features)
    }

    /// Parses and compiles spec text; `file` names it in errors.
    pub fn from_text(text: &str, file: &str, model_features: Option<&[String]>) -> Result<Pipeline, SpecError> {
        let spec = SpecFile::parse(text, file)?;
        Pipeline::compile(&spec, text, file, model_features)
    }

    /// Compiles a parsed spec; `text` is its source, for positions and the hash.
    pub fn compile(
        spec: &SpecFile,
        text: &str,
        file: &str,
        model_features: Option<&[String]>,
    ) -> Result<Pipeline, SpecError> {
        let err = |span: std::ops::Range<usize>, field: String, message: String| {
            let (line, column) = line_column(text, span.start);
            SpecError { file: file.to_string(), line, column, field, message }
        };
        let mut features: Vec<Compiled> = Vec::with_capacity(spec.features.len());
        for (k, def) in spec.features.iter().enumerate() {
            let at = |name: &str| format!("feature[{k}].{name}");
            let d = def.get_ref();
            let name = d.name.get_ref().clone();
            if features.iter().any(|f| f.name == name) {
                return Err(err(d.name.span(), at("name"), format!("duplicate feature `{name}`")));
            }
            let input = compile_input(d, &features).map_err(|(span, field, m)| err(span, at(field), m))?;
            let ops = compile_ops(d, &input, spec).map_err(|(span, field, m)| err(span, at(field), m))?;
            let encoding = compile_encoding(d, &input).map_err(|(span, field, m)| err(span, at(field), m))?;
            if let Missing::Constant(v) | Missing::Mean(v) = d.missing {
                if !v.is_finite() {
                    return Err(err(def.span(), at("missing"), format!("fill value {v} is not finite")));
                }
            }
            features.push(Compiled { name, input, ops, encoding, missing: d.missing.fill(), output: d.output });
        }
        let outputs: Vec<usize> = (0..features.len()).filter(|&i| features[i].output).collect();
        let output_names: Vec<String> = outputs.iter().map(|&i| features[i].name.clone()).collect();
        if let Some(model) = model_features {
            check_against_model(&output_names, model).map_err(|(k, message)| {
                let span = k
                    .and_then(|k| spec.features.get(outputs.get(k).copied()?))
                    .map_or(0..0, |d| d.get_ref().name.span());
                let field = k.map_or("feature".to_string(), |k| {
                    format!("feature[{}].name", outputs.get(k).copied().unwrap_or(k))
                });
                err(span, field, message)
            })?;
        }
        Ok(Pipeline {
            name: spec.name.clone(),
            sha256: sha256_hex(text.as_bytes()),
            features,
            outputs,
            output_names,
            rates: spec.currency_rates.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            defs: spec.features.iter().map(|d| d.get_ref().clone()).collect(),
        })
    }

    /// The spec's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// sha256 of the spec file's bytes, lower-case hex.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// The model's feature names, in order.
    pub fn output_names(&self) -> &[String] {
        &self.output_names
    }

    /// The kind of each output feature.
    pub fn output_kinds(&self) -> Vec<FeatureKind> {
        self.outputs
            .iter()
            .map(|&i| match &self.features[i].encoding {
                Some(e) => FeatureKind::Categorical { cardinality: e.vocabulary.len() as u32 },
                None => FeatureKind::Numeric,
            })
            .collect()
    }

    /// The definitions as written, for audits and spec diffs.
    pub fn definitions(&self) -> &[FeatureDef] {
        &self.defs
    }

    /// The currency table, sorted by code.
    pub fn currency_rates(&self) -> &[(String, f64)] {
        &self.rates
    }

    /// A reusable buffer for [`Pipeline::compute`].
    pub fn values(&self) -> FeatureValues {
        FeatureValues { all: vec![0.0; self.features.len()], row: vec![0.0; self.outputs.len()] }
    }

    /// Computes every feature of `request` into `values` (allocation-free).
    pub fn compute(&self, request: &Request, aggregates: Option<&Aggregates>, values: &mut FeatureValues) {
        // Hour and day of week usually read the same instant in the same zone: convert once.
        let mut clock: Option<(Tz, i64, chrono::DateTime<Tz>)> = None;
        for (i, f) in self.features.iter().enumerate() {
            let raw = match f.input {
                Input::Field(field) => request.field(field),
                Input::Aggregate(a) => FieldValue::Number(Aggregates::value(aggregates, a)),
                Input::Feature(j) => FieldValue::Number(values.all[j]),
                Input::Ratio(a, b) => FieldValue::Number(values.all[a] / values.all[b]),
            };
            let mut x = match (raw, &f.encoding) {
                (FieldValue::Text(t), Some(e)) => e.code(t),
                (FieldValue::Number(x), _) => x,
                _ => f64::NAN,
            };
            for op in &f.ops {
                x = self.apply(op, x, request, &mut clock);
            }
            values.all[i] = if x.is_finite() { x } else { f.missing };
        }
        for (o, &i) in values.row.iter_mut().zip(&self.outputs) {
            *o = values.all[i] as f32;
        }
    }

    fn apply(&self, op: &Op, x: f64, request: &Request, clock: &mut Option<(Tz, i64, chrono::DateTime<Tz>)>) -> f64 {
        match op {
            Op::Scale(factor, offset) => x * factor + offset,
            Op::Log1p => x.ln_1p(),
            Op::Clip(lo, hi) => x.clamp(*lo, *hi),
            Op::Bucketize(bounds) => bounds.partition_point(|b| *b <= x) as f64,
            Op::Currency => match self.rates.iter().find(|(c, _)| c == request.currency) {
                Some((_, rate)) => x * rate,
                None => f64::NAN,
            },
            Op::HourOfDay(zone) => local(x, *zone, request, clock).map_or(f64::NAN, |t| f64::from(t.hour())),
            Op::DayOfWeek(zone) => {
                local(x, *zone, request, clock).map_or(f64::NAN, |t| f64::from(t.weekday().num_days_from_monday()))
            }
        }
    }
}

fn local(
    ms: f64,
    zone: Zone,
    request: &Request,
    clock: &mut Option<(Tz, i64, chrono::DateTime<Tz>)>,
) -> Option<chrono::DateTime<Tz>> {
    if !ms.is_finite() {
        return None;
    }
    let tz = match zone {
        Zone::Local => request.local_zone(),
        Zone::Fixed(tz) => tz,
    };
    let ms = ms as i64;
    if let Some((z, m, t)) = clock {
        if *z == tz && *m == ms {
            return Some(*t);
        }
    }
    let t = tz.timestamp_millis_opt(ms).single()?;
    *clock = Some((tz, ms, t));
    Some(t)
}

type Fail = (std::ops::Range<usize>, &'static str, String);

fn compile_input(d: &FeatureDef, earlier: &[Compiled]) -> Result<Input, Fail> {
    let find = |name: &str| earlier.iter().position(|f| f.name == name);
    match (&d.source, &d.ratio) {
        (Some(_), Some(r)) => Err((r.span(), "ratio", "give either `source` or `ratio`, not both".into())),
        (None, None) => Err((d.name.span(), "source", "missing: give `source` or `ratio`".into())),
        (None, Some(r)) => {
            let [a, b] = r.get_ref();
            let ia = find(a).ok_or_else(|| (r.span(), "ratio", format!("`{a}` is not an earlier feature")))?;
            let ib = find(b).ok_or_else(|| (r.span(), "ratio", format!("`{b}` is not an earlier feature")))?;
            Ok(Input::Ratio(ia, ib))
        }
        (Some(s), None) => {
            let name = s.get_ref().as_str();
            if let Some(field) = Field::from_name(name) {
                return Ok(Input::Field(field));
            }
            if let Some(a) = AGGREGATES.iter().position(|&a| a == name) {
                return Ok(Input::Aggregate(a));
            }
            if let Some(i) = find(name) {
                return Ok(Input::Feature(i));
            }
            let fields: Vec<_> = Field::ALL.iter().map(|f| f.name()).collect();
            Err((
                s.span(),
                "source",
                format!(
                    "unknown field `{name}` (request fields: {}; aggregates: {}; or an earlier feature)",
                    fields.join(", "),
                    AGGREGATES.join(", ")
                ),
            ))
        }
    }
}

fn compile_ops(d: &FeatureDef, input: &Input, spec: &SpecFile) -> Result<Vec<Op>, Fail> {
    let mut ops = Vec::with_capacity(d.steps.len());
    for step in &d.steps {
        let bad = |m: String| (step.span(), "steps", m);
        ops.push(match step.get_ref() {
            Step::Scale { factor, offset } => {
                if !factor.is_finite() || !offset.is_finite() {
                    return Err(bad("scale needs a finite factor and offset".into()));
                }
                Op::Scale(*factor, *offset)
            }
            Step::Log1p => Op::Log1p,
            Step::Clip { min, max } => {
                if min.is_nan() || max.is_nan() || min > max {
                    return Err(bad(format!("clip min {min} is above max {max}")));
                }
                Op::Clip(*min, *max)
            }
            Step::Bucketize { boundaries } => {
                if boundaries.is_empty()
                    || boundaries.windows(2).any(|w| w[0].partial_cmp(&w[1]) != Some(std::cmp::Ordering::Less))
                {
                    return Err(bad("bucketize boundaries must be non-empty and strictly increasing".into()));
                }
                Op::Bucketize(boundaries.clone())
            }
            Step::Currency => {
                if spec.currency_rates.is_empty() {
                    return Err(bad("a currency step needs a [currency_rates] table".into()));
                }
                Op::Currency
            }
            Step::HourOfDay { zone } | Step::DayOfWeek { zone } => {
                if !matches!(input, Input::Field(Field::EventTime)) {
                    return Err(bad("time steps need `source = \"event_time\"`".into()));
                }
                let z = match zone.as_str() {
                    "local" => Zone::Local,
                    name => Zone::Fixed(Tz::from_str(name).map_err(|_| bad(format!("unknown time zone `{name}`")))?),
                };
                if matches!(step.get_ref(), Step::HourOfDay { .. }) {
                    Op::HourOfDay(z)
                } else {
                    Op::DayOfWeek(z)
                }
            }
        });
    }
    Ok(ops)
}

fn compile_encoding(d: &FeatureDef, input: &Input) -> Result<Option<Encoding>, Fail> {
    let text = matches!(input, Input::Field(f) if f.is_text());
    let Some(vocab) = &d.vocabulary else {
        if text {
            return Err((d.name.span(), "vocabulary", "a text field needs a vocabulary".into()));
        }
        return Ok(None);
    };
    if !text {
        return Err((vocab.span(), "vocabulary", "only text fields take a vocabulary".into()));
    }
    if !d.steps.is_empty() {
        return Err((vocab.span(), "steps", "a categorical feature takes no numeric steps".into()));
    }
    let values = vocab.get_ref();
    if values.is_empty() {
        return Err((vocab.span(), "vocabulary", "is empty".into()));
    }
    for (i, v) in values.iter().enumerate() {
        let dup = values[..i].iter().any(|w| {
            if d.case_sensitive {
                w.get_ref() == v.get_ref()
            } else {
                w.get_ref().eq_ignore_ascii_case(v.get_ref())
            }
        });
        if dup {
            return Err((v.span(), "vocabulary", format!("duplicate value \"{}\"", v.get_ref())));
        }
    }
    let unknown = match d.unknown {
        Unknown::Nan => None,
        Unknown::Code(c) => Some(c),
    };
    Ok(Some(Encoding::new(values.iter().map(|v| v.get_ref().clone()).collect(), unknown, d.case_sensitive)))
}

/// Compares output names with the model's: `Err((position, message))`.
fn check_against_model(outputs: &[String], model: &[String]) -> Result<(), (Option<usize>, String)> {
    for (k, name) in outputs.iter().enumerate() {
        match model.get(k) {
            Some(m) if m == name => {}
            Some(m) if model.contains(name) => {
                return Err((
                    Some(k),
                    format!(
                        "feature order differs from the model at position {k}: the spec has `{name}`, the model `{m}`"
                    ),
                ))
            }
            _ if !model.contains(name) => return Err((Some(k), format!("`{name}` is not a feature of the model"))),
            _ => return Err((Some(k), format!("the model has {} features, the spec more", model.len()))),
        }
    }
    if let Some(missing) = model.get(outputs.len()) {
        return Err((None, format!("the model's feature `{missing}` has no definition in the spec")));
    }
    Ok(())
}

/// Lower-case hex sha256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}
