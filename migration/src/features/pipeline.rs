//! A compiled feature specification: turns a request (plus its entity's aggregates) into
//! the model's input row, allocation-free.

use std::str::FromStr;
use std::sync::Arc;

use chrono::{Datelike, TimeZone, Timelike};
use chrono_tz::Tz;
use rustc_hash::FxHashMap;
use sha2::{Digest, Sha256};

use super::spec::{
    line_column, AggregateDef, Apply, Arithmetic, FeatureDef, Function, Missing, OnZero, OperandDef, Sentinels,
    SpecFile, Step, TableValue, Unknown, ZoneSpec,
};
use super::SpecError;
use crate::schema::{Field, Kind, Schema, Value};

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

/// A request field as a feature reads it.
#[derive(Debug, Clone)]
struct FieldRead {
    index: usize,
    /// Sentinels read as missing (unless the feature keeps them).
    check: Option<Field>,
}

impl FieldRead {
    #[inline]
    fn value(&self, values: &[Value]) -> Value {
        let v = values[self.index];
        match &self.check {
            Some(f) if f.is_missing(v) => Value::Missing,
            _ => v,
        }
    }
}

#[derive(Debug, Clone)]
enum Operand {
    Constant(f64),
    Field(FieldRead),
    Aggregate(usize),
    Feature(usize),
}

#[derive(Debug, Clone)]
enum Input {
    Operand(Operand),
    Arithmetic { op: Arithmetic, a: Operand, b: Operand, fill: f64, on_zero: f64 },
}

#[derive(Debug, Clone, Copy)]
enum TimePart {
    Hour,
    Weekday,
    MonthDay,
    Month,
}

#[derive(Debug, Clone)]
enum Zone {
    Fixed(Tz),
    Field { field: usize, table: Option<usize>, default: Option<Tz> },
}

#[derive(Debug, Clone)]
enum Op {
    Scale(f64, f64),
    Log1p,
    Clip(f64, f64),
    Round(f64),
    Bucketize(Vec<f64>),
    Lookup { table: usize, key: usize, case_sensitive: bool, apply: Apply, default: f64 },
    Time(TimePart, Zone),
}

/// A lookup table, keyed by interned symbols.
#[derive(Debug, Clone, Default)]
struct Table {
    by_id: FxHashMap<u32, usize>,
    by_folded: FxHashMap<u32, usize>,
    numbers: Vec<f64>,
    zones: Vec<Option<Tz>>,
}

impl Table {
    fn entry(&self, v: Value, case_sensitive: bool) -> Option<usize> {
        let Value::Text(t) = v else { return None };
        if case_sensitive {
            self.by_id.get(&t.id).copied()
        } else {
            self.by_folded.get(&t.folded).copied()
        }
    }
}

#[derive(Debug, Clone)]
enum Encoding {
    Vocabulary { codes: FxHashMap<u32, u32>, cardinality: u32, unknown: Option<u32>, case_sensitive: bool },
    Table { table: usize, case_sensitive: bool, default: f64 },
}

#[derive(Debug, Clone)]
struct Compiled {
    name: String,
    input: Input,
    ops: Vec<Op>,
    encoding: Option<Encoding>,
    missing: f64,
    /// Whether an infinite value is kept (a division by zero written `on_zero = "infinity"`).
    keeps_infinity: bool,
    output: bool,
    /// Whether it reads an aggregate, directly or through earlier features.
    uses_aggregates: bool,
}

/// An aggregate as the store computes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    /// Its name.
    pub name: String,
    /// What it computes.
    pub function: Function,
    /// Only events this recent count (ms), or all history.
    pub window_ms: Option<i64>,
    of: Option<AggregateOf>,
}

#[derive(Debug, Clone, PartialEq)]
enum AggregateOf {
    Field(usize, bool),
    Feature(usize),
}

/// A compiled feature specification.
#[derive(Debug, Clone)]
pub struct Pipeline {
    name: String,
    sha256: String,
    schema: Arc<Schema>,
    features: Vec<Compiled>,
    outputs: Vec<usize>,
    output_names: Vec<String>,
    tables: Vec<Table>,
    table_defs: Vec<(String, Vec<(String, TableValue)>)>,
    aggregates: Vec<Aggregate>,
    aggregate_defs: Vec<AggregateDef>,
    /// The request fields the aggregates' inputs read (what the event log must keep).
    aggregate_fields: Vec<usize>,
    zone_names: Option<Arc<FxHashMap<u32, Tz>>>,
    defs: Vec<FeatureDef>,
}

/// Scratch and output of one evaluation: every feature's value, and the model row.
#[derive(Debug, Clone)]
pub struct FeatureValues {
    pub(crate) all: Vec<f64>,
    /// The model's input row, in the model's feature order.
    pub row: Vec<f32>,
    /// The entity's aggregates, in the spec's order (filled by the store before computing).
    pub aggregates: Vec<f64>,
}

impl FeatureValues {
    /// The model row, f64 before the f32 cast (for diffs that must see the exact value).
    pub fn output_f64<'a>(&'a self, pipeline: &'a Pipeline) -> impl Iterator<Item = f64> + 'a {
        pipeline.outputs.iter().map(|&i| self.all[i])
    }
}

type Fail = (std::ops::Range<usize>, String, String);

struct Compiler<'a> {
    schema: &'a Schema,
    tables: Vec<Table>,
    table_names: Vec<String>,
    aggregates: Vec<Aggregate>,
    features: Vec<Compiled>,
    zone_names: Option<Arc<FxHashMap<u32, Tz>>>,
}

impl Pipeline {
    /// Reads and compiles a spec file against a schema; with `model_features`, the outputs
    /// must be exactly those names in that order.
    pub fn from_file(
        path: &std::path::Path,
        schema: &Arc<Schema>,
        model_features: Option<&[String]>,
    ) -> Result<Pipeline, SpecError> {
        let (spec, text) = SpecFile::read(path)?;
        Pipeline::compile(&spec, &text, &path.display().to_string(), schema, model_features)
    }

    /// Parses and compiles spec text; `file` names it in errors.
    pub fn from_text(
        text: &str,
        file: &str,
        schema: &Arc<Schema>,
        model_features: Option<&[String]>,
    ) -> Result<Pipeline, SpecError> {
        let spec = SpecFile::parse(text, file)?;
        Pipeline::compile(&spec, text, file, schema, model_features)
    }

    /// Compiles a parsed spec; `text` is its source, for positions and the hash.
    pub fn compile(
        spec: &SpecFile,
        text: &str,
        file: &str,
        schema: &Arc<Schema>,
        model_features: Option<&[String]>,
    ) -> Result<Pipeline, SpecError> {
        let err = |span: std::ops::Range<usize>, field: String, message: String| {
            let (line, column) = line_column(text, span.start);
            SpecError { file: file.to_string(), line, column, field, message }
        };
        if let Some((span, message)) = placeholders(spec) {
            return Err(err(span, "feature.placeholder".into(), message));
        }
        let mut c = Compiler {
            schema,
            tables: Vec::new(),
            table_names: Vec::new(),
            aggregates: Vec::new(),
            features: Vec::new(),
            zone_names: None,
        };
        for (name, t) in &spec.tables {
            let table = c.table(t.get_ref()).map_err(|m| err(t.span(), format!("tables.{name}"), m))?;
            c.tables.push(table);
            c.table_names.push(name.clone());
        }
        // Aggregates first (features read them), their `of` resolved once features exist.
        for (k, a) in spec.aggregates.iter().enumerate() {
            let aggregate = c
                .aggregate(a.get_ref(), a.span())
                .map_err(|(span, f, m)| err(span, format!("aggregate[{k}].{f}"), m))?;
            c.aggregates.push(aggregate);
        }
        for (k, def) in spec.features.iter().enumerate() {
            let d = def.get_ref();
            let compiled = c.feature(d).map_err(|(span, field, m)| err(span, format!("feature[{k}].{field}"), m))?;
            if let Missing::Constant(v) | Missing::Mean(v) = d.missing {
                if !v.is_finite() {
                    return Err(err(
                        def.span(),
                        format!("feature[{k}].missing"),
                        format!("fill value {v} is not finite"),
                    ));
                }
            }
            c.features.push(compiled);
        }
        for (k, a) in spec.aggregates.iter().enumerate() {
            let Some(of) = &a.get_ref().of else { continue };
            let resolved = c.aggregate_of(of.get_ref()).map_err(|m| err(of.span(), format!("aggregate[{k}].of"), m))?;
            c.aggregates[k].of = Some(resolved);
        }
        let features = c.features;
        let mut aggregate_fields: Vec<usize> = Vec::new();
        for a in &c.aggregates {
            match a.of {
                Some(AggregateOf::Field(i, _)) => aggregate_fields.push(i),
                Some(AggregateOf::Feature(j)) => aggregate_fields.extend(features[..=j].iter().flat_map(fields_read)),
                None => {}
            }
        }
        aggregate_fields.sort_unstable();
        aggregate_fields.dedup();
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
            schema: schema.clone(),
            features,
            outputs,
            output_names,
            tables: c.tables,
            table_defs: spec
                .tables
                .iter()
                .map(|(n, t)| (n.clone(), t.get_ref().iter().map(|(k, v)| (k.clone(), v.clone())).collect()))
                .collect(),
            aggregates: c.aggregates,
            aggregate_defs: spec.aggregates.iter().map(|a| a.get_ref().clone()).collect(),
            aggregate_fields,
            zone_names: c.zone_names,
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

    /// The request schema it reads.
    pub fn schema(&self) -> &Arc<Schema> {
        &self.schema
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
                Some(Encoding::Vocabulary { cardinality, .. }) => {
                    FeatureKind::Categorical { cardinality: *cardinality }
                }
                _ => FeatureKind::Numeric,
            })
            .collect()
    }

    /// The definitions as written, for audits and spec diffs.
    pub fn definitions(&self) -> &[FeatureDef] {
        &self.defs
    }

    /// The lookup tables as written, by name.
    pub fn tables(&self) -> &[(String, Vec<(String, TableValue)>)] {
        &self.table_defs
    }

    /// The aggregates the store computes for this spec.
    pub fn aggregates(&self) -> &[Aggregate] {
        &self.aggregates
    }

    /// The aggregates as written.
    pub fn aggregate_definitions(&self) -> &[AggregateDef] {
        &self.aggregate_defs
    }

    /// The request fields the aggregates' inputs read: all a store needs of a logged request.
    pub fn aggregate_fields(&self) -> &[usize] {
        &self.aggregate_fields
    }

    /// A reusable buffer for [`Pipeline::compute`].
    pub fn values(&self) -> FeatureValues {
        FeatureValues {
            all: vec![0.0; self.features.len()],
            row: vec![0.0; self.outputs.len()],
            aggregates: vec![f64::NAN; self.aggregates.len()],
        }
    }

    /// Computes every feature of a request (its values in schema order) into `out`, with
    /// the aggregates already in `out.aggregates` (allocation-free).
    pub fn compute(&self, values: &[Value], out: &mut FeatureValues) {
        self.compute_until(values, out, self.features.len());
        for (o, &i) in out.row.iter_mut().zip(&self.outputs) {
            *o = out.all[i] as f32;
        }
    }

    /// The value aggregate `k` folds for one logged event, derived by this spec.
    pub fn aggregate_input(&self, k: usize, values: &[Value], scratch: &mut FeatureValues) -> f64 {
        match self.aggregates[k].of {
            None => f64::NAN,
            Some(AggregateOf::Field(i, keep)) => {
                let v = values[i];
                if !keep && self.schema.field(i).is_missing(v) {
                    f64::NAN
                } else {
                    v.number()
                }
            }
            Some(AggregateOf::Feature(j)) => {
                scratch.aggregates.fill(f64::NAN);
                self.compute_until(values, scratch, j + 1);
                scratch.all[j]
            }
        }
    }

    fn compute_until(&self, values: &[Value], out: &mut FeatureValues, end: usize) {
        // Time steps usually read the same instant in the same zone: convert once.
        let mut clock: Option<(Tz, i64, chrono::DateTime<Tz>)> = None;
        for (i, f) in self.features[..end].iter().enumerate() {
            let mut x = match &f.input {
                Input::Operand(o) => match (o, &f.encoding) {
                    (Operand::Field(r), Some(e)) => self.encode(e, r.value(values)),
                    (o, _) => self.operand(o, values, out),
                },
                Input::Arithmetic { op, a, b, fill, on_zero } => {
                    let or_fill = |v: f64| if v.is_nan() { *fill } else { v };
                    let (a, b) = (or_fill(self.operand(a, values, out)), or_fill(self.operand(b, values, out)));
                    match op {
                        Arithmetic::Add => a + b,
                        Arithmetic::Subtract => a - b,
                        Arithmetic::Multiply => a * b,
                        Arithmetic::Divide if b == 0.0 && !a.is_nan() && !on_zero.is_infinite() => *on_zero,
                        Arithmetic::Divide => a / b,
                    }
                }
            };
            for op in &f.ops {
                x = self.apply(op, x, values, &mut clock);
            }
            out.all[i] = if x.is_finite() || (f.keeps_infinity && x.is_infinite()) { x } else { f.missing };
        }
    }

    #[inline]
    fn operand(&self, o: &Operand, values: &[Value], out: &FeatureValues) -> f64 {
        match o {
            Operand::Constant(x) => *x,
            Operand::Field(r) => match r.value(values) {
                Value::Number(x) => x,
                Value::Key(k) => k as f64,
                Value::Missing | Value::Text(_) => f64::NAN,
            },
            Operand::Aggregate(a) => out.aggregates[*a],
            Operand::Feature(j) => out.all[*j],
        }
    }

    fn encode(&self, e: &Encoding, v: Value) -> f64 {
        let Value::Text(t) = v else { return f64::NAN };
        match e {
            Encoding::Vocabulary { codes, unknown, case_sensitive, .. } => {
                match codes.get(&t.symbol(*case_sensitive)) {
                    Some(&c) => f64::from(c),
                    None => unknown.map_or(f64::NAN, f64::from),
                }
            }
            Encoding::Table { table, case_sensitive, default } => {
                let t = &self.tables[*table];
                t.entry(v, *case_sensitive).map_or(*default, |k| t.numbers[k])
            }
        }
    }

    fn apply(&self, op: &Op, x: f64, values: &[Value], clock: &mut Option<(Tz, i64, chrono::DateTime<Tz>)>) -> f64 {
        match op {
            Op::Scale(factor, offset) => x * factor + offset,
            Op::Log1p => x.ln_1p(),
            Op::Clip(lo, hi) => x.clamp(*lo, *hi),
            Op::Round(scale) => (x * scale).round_ties_even() / scale,
            Op::Bucketize(bounds) => bounds.partition_point(|b| *b <= x) as f64,
            Op::Lookup { table, key, case_sensitive, apply, default } => {
                let t = &self.tables[*table];
                let rate = t.entry(values[*key], *case_sensitive).map_or(*default, |k| t.numbers[k]);
                match apply {
                    Apply::Multiply => x * rate,
                    Apply::Divide => x / rate,
                    Apply::Add => x + rate,
                    Apply::Subtract => x - rate,
                    Apply::Replace => rate,
                }
            }
            Op::Time(part, zone) => match self.local(x, zone, values, clock) {
                None => f64::NAN,
                Some(t) => f64::from(match part {
                    TimePart::Hour => t.hour(),
                    TimePart::Weekday => t.weekday().num_days_from_monday(),
                    TimePart::MonthDay => t.day(),
                    TimePart::Month => t.month(),
                }),
            },
        }
    }

    fn zone_of(&self, zone: &Zone, values: &[Value]) -> Option<Tz> {
        match zone {
            Zone::Fixed(tz) => Some(*tz),
            Zone::Field { field, table, default } => {
                let v = values[*field];
                let found = match (table, v) {
                    (Some(t), _) => {
                        let t = &self.tables[*t];
                        t.entry(v, true).and_then(|k| t.zones[k])
                    }
                    (None, Value::Text(t)) => self.zone_names.as_ref().and_then(|z| z.get(&t.folded).copied()),
                    (None, _) => None,
                };
                found.or(*default)
            }
        }
    }

    fn local(
        &self,
        ms: f64,
        zone: &Zone,
        values: &[Value],
        clock: &mut Option<(Tz, i64, chrono::DateTime<Tz>)>,
    ) -> Option<chrono::DateTime<Tz>> {
        if !ms.is_finite() {
            return None;
        }
        let tz = self.zone_of(zone, values)?;
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
}

impl Compiler<'_> {
    fn table(&self, entries: &std::collections::BTreeMap<String, TableValue>) -> Result<Table, String> {
        if entries.is_empty() {
            return Err("is empty".into());
        }
        let mut t = Table::default();
        for (k, v) in entries {
            let sym = self.schema.interner().intern_kept(k)?;
            let i = t.numbers.len();
            match v {
                TableValue::Number(x) if x.is_finite() => {
                    t.numbers.push(*x);
                    t.zones.push(None);
                }
                TableValue::Number(x) => return Err(format!("`{k}` = {x} is not finite")),
                TableValue::Text(z) => {
                    let tz = Tz::from_str(z).map_err(|_| format!("`{k}` = \"{z}\" is not a number or a time zone"))?;
                    t.numbers.push(f64::NAN);
                    t.zones.push(Some(tz));
                }
            }
            t.by_id.insert(sym.id, i);
            if t.by_folded.insert(sym.folded, i).is_some() {
                return Err(format!("`{k}` differs from another key only in case"));
            }
        }
        Ok(t)
    }

    /// One aggregate, checked: a new name, a window of 1 s to 400 days, `of` exactly when
    /// it folds a value (resolved once the features exist).
    fn aggregate(&self, d: &AggregateDef, span: std::ops::Range<usize>) -> Result<Aggregate, Fail> {
        let name = d.name.get_ref().clone();
        if self.aggregates.iter().any(|x| x.name == name) || self.schema.index(&name).is_some() {
            return Err((d.name.span(), "name".into(), format!("`{name}` is already a field or an aggregate")));
        }
        let window_ms = match d.window_s {
            None => None,
            Some(w) if (1.0..=400.0 * 86400.0).contains(&w) => Some((w * 1000.0) as i64),
            Some(w) => return Err((span, "window_s".into(), format!("must be 1 s to 400 days, got {w}"))),
        };
        match (d.function, &d.of) {
            (Function::Count, Some(of)) => {
                return Err((of.span(), "of".into(), "a count counts events: it takes no `of`".into()))
            }
            (f, None) if f != Function::Count => {
                return Err((d.name.span(), "of".into(), format!("a {} needs `of`: the value aggregated", f.name())))
            }
            _ => {}
        }
        Ok(Aggregate { name, function: d.function, window_ms, of: None })
    }

    fn find_table(&self, name: &str) -> Result<usize, String> {
        self.table_names.iter().position(|n| n == name).ok_or_else(|| {
            let known = if self.table_names.is_empty() { "none".to_string() } else { self.table_names.join(", ") };
            format!("no table `{name}` (tables: {known})")
        })
    }

    fn field_read(&self, index: usize, sentinels: Sentinels) -> FieldRead {
        let f = self.schema.field(index);
        // Only fields with declared missing values need the check (absent is missing anyway).
        let has = !(f.missing_numbers.is_empty() && f.missing_symbols.is_empty());
        let check = (sentinels == Sentinels::Missing && has).then(|| f.clone());
        FieldRead { index, check }
    }

    /// A name as an operand: a request field, then an aggregate, then an earlier feature.
    fn operand(&self, name: &str, sentinels: Sentinels) -> Option<Operand> {
        if let Some(i) = self.schema.index(name) {
            return Some(Operand::Field(self.field_read(i, sentinels)));
        }
        if let Some(a) = self.aggregates.iter().position(|a| a.name == name) {
            return Some(Operand::Aggregate(a));
        }
        self.features.iter().position(|f| f.name == name).map(Operand::Feature)
    }

    fn unknown_name(&self, name: &str) -> String {
        let fields: Vec<&str> = self.schema.fields().iter().map(|f| f.name.as_str()).collect();
        let aggs: Vec<&str> = self.aggregates.iter().map(|a| a.name.as_str()).collect();
        format!(
            "unknown field `{name}` (request fields: {}; aggregates: {}; or an earlier feature)",
            fields.join(", "),
            if aggs.is_empty() { "none".into() } else { aggs.join(", ") }
        )
    }

    fn numeric_operand(&self, name: &str, sentinels: Sentinels) -> Result<Operand, String> {
        let o = self.operand(name, sentinels).ok_or_else(|| self.unknown_name(name))?;
        if let Operand::Field(r) = &o {
            let f = self.schema.field(r.index);
            if f.kind == Kind::Category {
                return Err(format!("`{name}` is a category: encode it in a feature of its own first"));
            }
        }
        Ok(o)
    }

    fn uses_aggregates(&self, o: &Operand) -> bool {
        match o {
            Operand::Constant(_) | Operand::Field(_) => false,
            Operand::Aggregate(_) => true,
            Operand::Feature(j) => self.features[*j].uses_aggregates,
        }
    }

    fn feature(&mut self, d: &FeatureDef) -> Result<Compiled, Fail> {
        let name = d.name.get_ref().clone();
        let span = d.name.span();
        if self.features.iter().any(|f| f.name == name) {
            return Err((span, "name".into(), format!("duplicate feature `{name}`")));
        }
        let arithmetic = d.arithmetic();
        let input = match (&d.source, arithmetic.as_slice()) {
            (Some(_), [(_, a), ..]) => {
                return Err((a.span(), "source".into(), "give either `source` or an arithmetic input, not both".into()))
            }
            (None, []) => {
                return Err((
                    span,
                    "source".into(),
                    "missing: give `source`, or `add`, `subtract`, `multiply`, `divide`".into(),
                ))
            }
            (None, [_, (_, b), ..]) => return Err((b.span(), "source".into(), "give one arithmetic input".into())),
            (None, [(op, pair)]) => {
                let [a, b] = pair.get_ref();
                let bad = |m: String| (pair.span(), "source".to_string(), m);
                let operand = |o: &OperandDef| match o {
                    OperandDef::Number(x) if x.is_finite() => Ok(Operand::Constant(*x)),
                    OperandDef::Number(x) => Err(bad(format!("the constant {x} is not finite"))),
                    OperandDef::Name(n) => self.numeric_operand(n, d.sentinels).map_err(bad),
                };
                let (a, b) = (operand(a)?, operand(b)?);
                if matches!((&a, &b), (Operand::Constant(_), Operand::Constant(_))) {
                    return Err(bad("both operands are numbers: write the result as a number of its own".into()));
                }
                if d.fill_operands.is_some_and(|v| !v.is_finite()) {
                    return Err((span, "fill_operands".into(), "fill_operands must be finite".into()));
                }
                if d.on_zero.is_some() && *op != Arithmetic::Divide {
                    return Err((span, "on_zero".into(), "on_zero applies to a division".into()));
                }
                let on_zero = match d.on_zero.unwrap_or(OnZero::Missing) {
                    OnZero::Value(x) => x,
                    OnZero::Infinity => f64::INFINITY,
                    OnZero::Missing => f64::NAN,
                };
                Input::Arithmetic { op: *op, a, b, fill: d.fill_operands.unwrap_or(f64::NAN), on_zero }
            }
            (Some(s), []) => {
                if d.fill_operands.is_some() || d.on_zero.is_some() {
                    return Err((
                        span,
                        "fill_operands".into(),
                        "fill_operands and on_zero apply to arithmetic inputs".into(),
                    ));
                }
                let o = self
                    .operand(s.get_ref(), d.sentinels)
                    .ok_or_else(|| (s.span(), "source".into(), self.unknown_name(s.get_ref())))?;
                if let Operand::Field(r) = &o {
                    let f = self.schema.field(r.index);
                    if f.key && f.kind == Kind::Category {
                        return Err((
                            s.span(),
                            "source".into(),
                            format!("`{}` is a text id or entity: not a feature", f.name),
                        ));
                    }
                }
                Input::Operand(o)
            }
        };
        let uses_aggregates = match &input {
            Input::Operand(o) => self.uses_aggregates(o),
            Input::Arithmetic { a, b, .. } => self.uses_aggregates(a) || self.uses_aggregates(b),
        };
        let text = match &input {
            Input::Operand(Operand::Field(r)) => self.schema.field(r.index).kind == Kind::Category,
            _ => false,
        };
        let (encoding, skip) = self.encoding(d, text)?;
        let ops = self.ops(d, &input, skip)?;
        let keeps_infinity = d.on_zero == Some(OnZero::Infinity);
        Ok(Compiled {
            name,
            input,
            ops,
            encoding,
            missing: d.missing.fill(),
            keeps_infinity,
            output: d.output,
            uses_aggregates,
        })
    }

    /// A category's encoding: its vocabulary, or a leading `lookup` without a key (which
    /// the encoding then replaces: `skip` steps are consumed).
    fn encoding(&self, d: &FeatureDef, text: bool) -> Result<(Option<Encoding>, usize), Fail> {
        if let Some(vocab) = &d.vocabulary {
            if !text {
                return Err((vocab.span(), "vocabulary".into(), "only category fields take a vocabulary".into()));
            }
            if !d.steps.is_empty() {
                return Err((vocab.span(), "steps".into(), "a categorical feature takes no numeric steps".into()));
            }
            let values = vocab.get_ref();
            if values.is_empty() {
                return Err((vocab.span(), "vocabulary".into(), "is empty".into()));
            }
            let mut codes = FxHashMap::default();
            for (i, v) in values.iter().enumerate() {
                let t =
                    self.schema.interner().intern_kept(v.get_ref()).map_err(|e| (v.span(), "vocabulary".into(), e))?;
                if codes.insert(t.symbol(d.case_sensitive), i as u32).is_some() {
                    return Err((v.span(), "vocabulary".into(), format!("duplicate value \"{}\"", v.get_ref())));
                }
            }
            let unknown = match d.unknown {
                Unknown::Nan => None,
                Unknown::Code(c) => Some(c),
            };
            let cardinality = values.len() as u32;
            return Ok((
                Some(Encoding::Vocabulary { codes, cardinality, unknown, case_sensitive: d.case_sensitive }),
                0,
            ));
        }
        if !text {
            return Ok((None, 0));
        }
        match d.steps.first().map(|s| (s.span(), s.get_ref())) {
            Some((span, Step::Lookup { table, key: None, apply, default, case_sensitive })) => {
                if *apply != Apply::Replace {
                    return Err((
                        span,
                        "steps".into(),
                        "a lookup of a category's own value replaces it: apply = \"replace\"".into(),
                    ));
                }
                let table = self.find_table(table).map_err(|m| (span.clone(), "steps".to_string(), m))?;
                if self.tables[table].numbers.iter().any(|x| x.is_nan()) {
                    return Err((span, "steps".into(), "the table holds zone names, not numbers".into()));
                }
                let e =
                    Encoding::Table { table, case_sensitive: *case_sensitive, default: default.unwrap_or(f64::NAN) };
                Ok((Some(e), 1))
            }
            _ => Err((
                d.name.span(),
                "vocabulary".into(),
                "a category field needs a vocabulary (or a lookup of its value)".into(),
            )),
        }
    }

    fn ops(&mut self, d: &FeatureDef, input: &Input, skip: usize) -> Result<Vec<Op>, Fail> {
        let mut ops = Vec::with_capacity(d.steps.len());
        for step in &d.steps[skip..] {
            let bad = |m: String| (step.span(), "steps".to_string(), m);
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
                Step::Round { digits } => {
                    if !(-15..=15).contains(digits) {
                        return Err(bad("round takes -15 to 15 digits".into()));
                    }
                    Op::Round(10f64.powi(*digits))
                }
                Step::Bucketize { boundaries } => {
                    if boundaries.is_empty()
                        || boundaries.windows(2).any(|w| w[0].partial_cmp(&w[1]) != Some(std::cmp::Ordering::Less))
                    {
                        return Err(bad("bucketize boundaries must be non-empty and strictly increasing".into()));
                    }
                    Op::Bucketize(boundaries.clone())
                }
                Step::Lookup { table, key, apply, default, case_sensitive } => {
                    let key = key.as_ref().ok_or_else(|| bad("a lookup on a number needs `key`: the category field whose value is the key".into()))?;
                    let k = self.schema.index(key).ok_or_else(|| bad(format!("`{key}` is not a request field")))?;
                    if self.schema.field(k).kind != Kind::Category || self.schema.field(k).key {
                        return Err(bad(format!("`{key}` is not a category field")));
                    }
                    let table = self.find_table(table).map_err(bad)?;
                    if self.tables[table].numbers.iter().any(|x| x.is_nan()) {
                        return Err(bad("the table holds zone names, not numbers".into()));
                    }
                    if default.is_some_and(|v| !v.is_finite()) {
                        return Err(bad("default must be finite".into()));
                    }
                    Op::Lookup { table, key: k, case_sensitive: *case_sensitive, apply: *apply, default: default.unwrap_or(f64::NAN) }
                }
                s @ (Step::HourOfDay { zone } | Step::DayOfWeek { zone } | Step::DayOfMonth { zone } | Step::Month { zone }) => {
                    let timestamp = matches!(input, Input::Operand(Operand::Field(r)) if self.schema.field(r.index).kind == Kind::Timestamp);
                    if !timestamp {
                        return Err(bad("time steps need a timestamp field as the source".into()));
                    }
                    let part = match s {
                        Step::HourOfDay { .. } => TimePart::Hour,
                        Step::DayOfWeek { .. } => TimePart::Weekday,
                        Step::DayOfMonth { .. } => TimePart::MonthDay,
                        _ => TimePart::Month,
                    };
                    Op::Time(part, self.zone(zone).map_err(bad)?)
                }
            });
        }
        Ok(ops)
    }

    fn zone(&mut self, z: &ZoneSpec) -> Result<Zone, String> {
        let named = |name: &str| Tz::from_str(name).map_err(|_| format!("unknown time zone `{name}`"));
        match z {
            ZoneSpec::Fixed(name) => Ok(Zone::Fixed(named(name)?)),
            ZoneSpec::FromField { field, table, default } => {
                let i = self.schema.index(field).ok_or_else(|| format!("`{field}` is not a request field"))?;
                if self.schema.field(i).kind != Kind::Category {
                    return Err(format!("`{field}` is not a category field (its values name zones)"));
                }
                let table = match table {
                    Some(t) => {
                        let k = self.find_table(t)?;
                        if self.tables[k].zones.iter().any(Option::is_none) {
                            return Err(format!("table `{t}` must map every key to a zone name"));
                        }
                        Some(k)
                    }
                    None => {
                        // The field's values are zone names: know them all up front.
                        if self.zone_names.is_none() {
                            let mut m = FxHashMap::default();
                            for tz in chrono_tz::TZ_VARIANTS {
                                m.insert(self.schema.interner().intern(tz.name()).folded, tz);
                            }
                            self.zone_names = Some(Arc::new(m));
                        }
                        None
                    }
                };
                let default = default.as_deref().map(named).transpose()?;
                Ok(Zone::Field { field: i, table, default })
            }
        }
    }

    fn aggregate_of(&self, name: &str) -> Result<AggregateOf, String> {
        if let Some(i) = self.schema.index(name) {
            let f = self.schema.field(i);
            if f.kind == Kind::Category || f.key {
                return Err(format!("`{name}` is not a number: aggregate a feature that encodes it"));
            }
            return Ok(AggregateOf::Field(i, false));
        }
        let j = self
            .features
            .iter()
            .position(|f| f.name == name)
            .ok_or_else(|| format!("`{name}` is neither a request field nor a feature of this spec"))?;
        if self.features[j].uses_aggregates {
            return Err(format!("`{name}` reads an aggregate itself: an aggregate folds what each request brings"));
        }
        Ok(AggregateOf::Feature(j))
    }
}

/// The features `cutover init` left as placeholders, if any: where the first is, and the
/// refusal naming them all.
fn placeholders(spec: &SpecFile) -> Option<(std::ops::Range<usize>, String)> {
    let placeholders: Vec<&toml::Spanned<FeatureDef>> =
        spec.features.iter().filter(|f| f.get_ref().placeholder.is_some()).collect();
    let first = placeholders.first()?;
    let names: Vec<String> = placeholders.iter().map(|f| format!("`{}`", f.get_ref().name.get_ref())).collect();
    let (one, them) = if names.len() == 1 { ("feature", "it") } else { ("features", "them") };
    Some((
        first.span(),
        format!(
            "{one} {} {} placeholder{} written by `cutover init` (no request field provides {them}): define {them} (source, steps, divide, ...) and delete the `placeholder` line",
            names.join(", "),
            if names.len() == 1 { "is a" } else { "are" },
            if names.len() == 1 { "" } else { "s" },
        ),
    ))
}

/// The request fields a feature reads: its input, a lookup's key, a zone's field.
fn fields_read(f: &Compiled) -> Vec<usize> {
    let mut out = Vec::new();
    let operand = |o: &Operand, out: &mut Vec<usize>| {
        if let Operand::Field(r) = o {
            out.push(r.index);
        }
    };
    match &f.input {
        Input::Operand(o) => operand(o, &mut out),
        Input::Arithmetic { a, b, .. } => {
            operand(a, &mut out);
            operand(b, &mut out);
        }
    }
    for op in &f.ops {
        match op {
            Op::Lookup { key, .. } => out.push(*key),
            Op::Time(_, Zone::Field { field, .. }) => out.push(*field),
            _ => {}
        }
    }
    out
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
