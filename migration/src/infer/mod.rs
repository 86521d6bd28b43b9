//! What a saved model and a file of recorded requests say about a service: the request
//! schema, the id, entity and time columns, the legacy service's recorded answers, the
//! answer's kind, the legacy feature spec's mapping, the segments and the traffic. `cutover
//! init` writes a migration folder from it; the rules below are the documented ones
//! (docs/your-migration.md).
//!
//! - **Kinds**: a column whose values are all `true`/`false` (any case, or JSON booleans) is
//!   a boolean (`1` and `0` may be among them); all whole numbers written without a point, an integer; all numbers, a
//!   number; all RFC 3339 times, a timestamp; anything else a category. A column with a
//!   missing value (empty, `NA`, `null`, absent) is optional. Text longer than the schema
//!   allows is left out of the schema, said on stderr.
//! - **Sentinels** are reported, never assumed: a repeated value below every other one
//!   where the rest are not negative (`-1` in a count), or a repeated value far beyond the
//!   rest (over ten times their range away), is named with its share of rows.
//! - **Time**: the one column of RFC 3339 times or of whole numbers that read as epoch
//!   milliseconds or seconds (2001 to 2286); two candidates are an error naming both.
//! - **Id**: the first column whose values are all present and distinct, named `id` or
//!   ending in `id` preferred, whole numbers or text.
//! - **Entity**: a repeated column of whole numbers or text other than the id with at least
//!   20 distinct values (and one per hundred rows), named like an id preferred, then the
//!   one with the most distinct values; none, and requests stick by their id.
//! - **Answers**: the score is a numeric column that is not a model feature whose name
//!   holds `score`, `pred`, `prob`, `estimate` or `legacy` (not an id); the decision a
//!   column that is not a model feature whose name holds `decision`, `label`, `class`,
//!   `outcome` or `verdict`, else the one text column whose distinct values number the
//!   model's classes, kept only if the scores agree with it by a threshold. Both leave the
//!   schema.
//! - **Features**: a model feature is mapped from the field of its name (exactly, then
//!   ignoring case); a categorical one gets the category names the model saved (xgboost 3),
//!   else the field's values in sorted order (what pandas and scikit-learn's encoders do),
//!   said on stderr. A feature no field provides is a placeholder.

pub mod profile;

use std::path::Path;

use crate::answer::AnswerKind;
use crate::error::FieldError;
use crate::recorded::Format;
use crate::schema::{Kind, MAX_TEXT};
use cutover_models::objective::Objective;
use cutover_models::FeatureType;
use cutover_models::Model;

pub use profile::{Column, Profile, Raw};

/// What the user decided where inference cannot.
#[derive(Debug, Clone, Default)]
pub struct Choices {
    /// The id column.
    pub id: Option<String>,
    /// The entity column.
    pub entity: Option<String>,
    /// The event time column.
    pub time: Option<String>,
    /// The recorded score column.
    pub score: Option<String>,
    /// The recorded decision column.
    pub decision: Option<String>,
    /// The binary threshold.
    pub threshold: Option<f64>,
    /// Take no column as the decision (a column that only looked like one was refuted).
    pub no_decision: bool,
}

/// One request field of the schema to write.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldPlan {
    /// Its name (the column's).
    pub name: String,
    /// Its kind.
    pub kind: Kind,
    /// Whether rows lack it.
    pub optional: bool,
    /// Numeric epoch times in seconds (else milliseconds).
    pub epoch_s: bool,
    /// What the data suggests (a suspected sentinel), for a comment.
    pub note: Option<String>,
    /// The share of rows without a value.
    pub missing_share: f64,
}

/// One model feature of the legacy spec to write.
#[derive(Debug, Clone, PartialEq)]
pub struct FeaturePlan {
    /// The model's name for it.
    pub name: String,
    /// The field it reads; `None`: a placeholder.
    pub source: Option<String>,
    /// Category codes, for a category field.
    pub vocabulary: Option<Vec<String>>,
    /// Where they come from: the model, or the values in sorted order.
    pub vocabulary_from_model: bool,
}

/// Everything inferred.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The migration's name (set by the caller; empty until then).
    pub name: String,
    /// Fields, in the file's order.
    pub fields: Vec<FieldPlan>,
    /// Columns left out, and why.
    pub skipped: Vec<(String, String)>,
    /// The id field.
    pub id: String,
    /// The entity field.
    pub entity: String,
    /// The time field.
    pub time: String,
    /// The recorded score column.
    pub score: Option<String>,
    /// The recorded decision column.
    pub decision: Option<String>,
    /// Whether the decision was taken by its shape alone (neither named nor flagged), so
    /// scores that refute it leave it a request field instead of failing.
    pub decision_by_shape: bool,
    /// The answer's kind.
    pub kind: AnswerKind,
    /// Binary: the threshold, when known.
    pub threshold: Option<f64>,
    /// Decision labels (binary: below and at or above; multiclass: as recorded, sorted).
    pub labels: Vec<String>,
    /// Regression: the tolerance, when the recorded answers tell.
    pub tolerance: Option<f64>,
    /// The legacy spec's features, in the model's order.
    pub features: Vec<FeaturePlan>,
    /// Model feature indices, most relied on first (gain, then cover, then splits).
    pub ranked: Vec<usize>,
    /// Category segments: field and values.
    pub segments: Vec<(String, Vec<String>)>,
    /// Lines for stderr: what was assumed or is suspect.
    pub notes: Vec<String>,
    /// Rows read.
    pub rows: u64,
    /// Seconds the recording spans.
    pub span_s: f64,
    /// Requests per hour of the day (UTC).
    pub hours: [u64; 24],
}

impl Plan {
    /// Mean recorded rate, requests per second.
    pub fn rate_rps(&self) -> f64 {
        self.rows as f64 / self.span_s.max(1.0)
    }

    /// The placeholders: model features no field provides.
    pub fn placeholders(&self) -> Vec<&str> {
        self.features.iter().filter(|f| f.source.is_none()).map(|f| f.name.as_str()).collect()
    }

    /// The field named `name`.
    pub fn field(&self, name: &str) -> Option<&FieldPlan> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The share of rows without a value of field `name`.
    pub fn missing_share(&self, name: &str) -> Option<f64> {
        self.field(name).map(|f| f.missing_share)
    }
}

/// The answer kind a model's objective gives.
pub fn answer_kind(o: Objective) -> AnswerKind {
    match o {
        Objective::BinaryLogistic | Objective::BinaryLogitRaw | Objective::RegLogistic => AnswerKind::Binary,
        Objective::MultiSoftprob(_) | Objective::MultiSoftmax(_) => AnswerKind::Multiclass,
        Objective::RegSquaredError => AnswerKind::Regression,
    }
}

fn id_like(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n == "id" || n.ends_with("id") || n.ends_with("_key") || n.ends_with("uuid")
}

fn contains_any(name: &str, words: &[&str]) -> bool {
    let n = name.to_ascii_lowercase();
    words.iter().any(|w| n.contains(w))
}

const SCORE_WORDS: &[&str] = &["score", "pred", "prob", "estimate", "legacy"];
const DECISION_WORDS: &[&str] = &["decision", "label", "class", "outcome", "verdict"];

/// Infers the plan from a profiled file and the model; errors name the file and the flag
/// that decides.
pub fn infer(profile: &Profile, model: &Model, choices: &Choices) -> Result<Plan, FieldError> {
    let mut r = Reading { profile, model, choices, cols: &profile.columns, notes: Vec::new() };
    let matched = r.matched_features()?;
    let time = r.time()?;
    let score = r.score(time)?;
    let (mut kind, decision, decision_by_shape) = r.decision(time, score)?;
    if model.objective() == Objective::RegLogistic && decision.is_none() && choices.threshold.is_none() {
        kind = AnswerKind::Regression;
    }
    let answers = [score, decision];
    let id = r.id(time, answers)?;
    let entity = r.entity(time, answers, id)?;
    let (fields, skipped) = r.fields([time, id, entity], answers);
    let features = r.features(&matched, &fields);
    let segments = r.segments(&fields, [id, entity]);
    let labels = r.labels(kind, decision)?;
    let cols = r.cols;
    let tolerance = match (kind, score) {
        (AnswerKind::Regression, Some(s)) => Some(tolerance_of(&cols[s])),
        _ => None,
    };
    let t = &cols[time];
    let (a, b) = t.time_range.expect("the time column has times");
    Ok(Plan {
        name: String::new(),
        fields,
        skipped,
        id: cols[id].name.clone(),
        entity: cols[entity].name.clone(),
        time: t.name.clone(),
        score: score.map(|i| cols[i].name.clone()),
        decision: decision.map(|i| cols[i].name.clone()),
        decision_by_shape,
        kind,
        threshold: choices.threshold,
        labels,
        tolerance,
        features,
        ranked: ranked(model),
        segments,
        notes: r.notes,
        rows: profile.rows,
        span_s: ((b - a) as f64 / 1000.0).max(1.0),
        hours: t.hours,
    })
}

/// The model's features by how much it relies on them: total gain, then cover, then splits.
fn ranked(model: &Model) -> Vec<usize> {
    let imp = model.importance();
    let mut ranked: Vec<usize> = (0..model.feature_names().len()).collect();
    ranked.sort_by(|&a, &b| {
        let (x, y) = (imp[a], imp[b]);
        y.gain.total_cmp(&x.gain).then(y.cover.total_cmp(&x.cover)).then(y.splits.cmp(&x.splits)).then(a.cmp(&b))
    });
    ranked
}

/// One inference in progress: the profiled file, the model, the flags, and the notes so far.
struct Reading<'a> {
    profile: &'a Profile,
    model: &'a Model,
    choices: &'a Choices,
    cols: &'a [Column],
    notes: Vec<String>,
}

impl<'a> Reading<'a> {
    fn fail(&self, field: &str, message: String) -> FieldError {
        FieldError { file: self.profile.file.clone(), line: 0, column: 0, field: field.into(), message }
    }

    /// The column a flag names, if it names one.
    fn named(&self, flag: &str, name: &Option<String>) -> Result<Option<usize>, FieldError> {
        match name {
            None => Ok(None),
            Some(n) => self.cols.iter().position(|c| &c.name == n).map(Some).ok_or_else(|| {
                self.fail(flag, format!("--{flag} `{n}`: no such column (columns: {})", column_list(self.profile)))
            }),
        }
    }

    fn is_feature(&self, c: &Column) -> bool {
        self.model.feature_names().iter().any(|f| f.eq_ignore_ascii_case(&c.name))
    }

    /// Each model feature's column, by name (then ignoring case); none at all is not this
    /// model's traffic.
    fn matched_features(&self) -> Result<Vec<Option<usize>>, FieldError> {
        let (cols, model_features) = (self.cols, self.model.feature_names());
        let matched: Vec<Option<usize>> = model_features
            .iter()
            .map(|f| {
                cols.iter()
                    .position(|c| &c.name == f)
                    .or_else(|| cols.iter().position(|c| c.name.eq_ignore_ascii_case(f)))
            })
            .collect();
        if matched.iter().all(Option::is_none) {
            let shown: Vec<&str> = model_features.iter().take(8).map(String::as_str).collect();
            return Err(self.fail(
                "features",
                format!(
                    "none of the model's {} feature names ({}{}) is a column of the file (columns: {})",
                    model_features.len(),
                    shown.join(", "),
                    if model_features.len() > 8 { ", ..." } else { "" },
                    column_list(self.profile)
                ),
            ));
        }
        Ok(matched)
    }

    /// The event time: chosen, else the one column of times in every row.
    fn time(&self) -> Result<usize, FieldError> {
        let cols = self.cols;
        if let Some(i) = self.named("time", &self.choices.time)? {
            let c = &cols[i];
            if c.time_range.is_none() || c.missing > 0 {
                return Err(self.fail(
                    "time",
                    format!(
                        "--time `{}`: its values are not all RFC 3339 times or epoch milliseconds or seconds",
                        c.name
                    ),
                ));
            }
            return Ok(i);
        }
        let candidates: Vec<usize> = (0..cols.len())
            .filter(|&i| {
                let c = &cols[i];
                c.time_range.is_some() && c.missing == 0 && (c.times == c.present || c.epoch_seconds().is_some())
            })
            .collect();
        match candidates[..] {
            [i] => Ok(i),
            [] => Err(self.fail(
                "time",
                "no column holds times in every row (RFC 3339, or epoch milliseconds or seconds): name one with --time"
                    .into(),
            )),
            _ => {
                let names: Vec<&str> = candidates.iter().map(|&i| cols[i].name.as_str()).collect();
                Err(self.fail(
                    "time",
                    format!(
                        "{} columns could be the event time ({}): name one with --time",
                        names.len(),
                        names.join(", ")
                    ),
                ))
            }
        }
    }

    /// A recorded score that is NaN, infinite or text on some rows is still the recorded
    /// answer (not a request field): refused, naming how many rows and the first.
    fn finite_scores(&self, i: usize) -> Result<usize, FieldError> {
        let c = &self.cols[i];
        if c.numeric() {
            return Ok(i);
        }
        let (text, line) = c.first_text.clone().unwrap_or_default();
        let not_numbers = c.present - c.integers - c.numbers;
        Err(self.fail(
            &c.name,
            format!(
                "the recorded score holds {not_numbers} value(s) of {} that are not finite numbers (first at line {line}: \
                 `{}`): leave a score empty where none was recorded, or name another column with --score",
                c.present,
                cutover_models::shown(&text)
            ),
        ))
    }

    /// The recorded score: chosen, else by name and shape.
    fn score(&self, time: usize) -> Result<Option<usize>, FieldError> {
        if let Some(i) = self.named("score", &self.choices.score)? {
            return self.finite_scores(i).map(Some);
        }
        let cols = self.cols;
        let c: Vec<usize> = (0..cols.len())
            .filter(|&i| {
                let c = &cols[i];
                // Numbers, some of them perhaps NaN or text: a score column gone bad.
                let numbers = c.integers + c.numbers;
                i != time
                    && numbers > 0
                    && numbers + c.texts == c.present
                    && !self.is_feature(c)
                    && contains_any(&c.name, SCORE_WORDS)
                    && !(id_like(&c.name) && c.integral())
            })
            .collect();
        for &i in &c {
            self.finite_scores(i)?;
        }
        match c[..] {
            [] => Ok(None),
            [i] => Ok(Some(i)),
            _ => {
                let names: Vec<&str> = c.iter().map(|&i| cols[i].name.as_str()).collect();
                Err(self.fail(
                    "score",
                    format!(
                        "{} columns could hold the legacy score ({}): name one with --score",
                        names.len(),
                        names.join(", ")
                    ),
                ))
            }
        }
    }

    /// The answer's kind, the recorded decision (chosen, else by name, else by shape) and
    /// whether it was found by its shape alone.
    fn decision(&mut self, time: usize, score: Option<usize>) -> Result<(AnswerKind, Option<usize>, bool), FieldError> {
        let kind = answer_kind(self.model.objective());
        let cols = self.cols;
        if let Some(i) = self.named("decision", &self.choices.decision)? {
            if kind == AnswerKind::Regression {
                return Err(self.fail(
                    "decision",
                    format!(
                        "--decision `{}`: the model is a regression ({}): it has no decision",
                        cols[i].name,
                        self.model.objective().name()
                    ),
                ));
            }
            return Ok((kind, Some(i), false));
        }
        if kind == AnswerKind::Regression || self.choices.no_decision {
            return Ok((kind, None, false));
        }
        let classes = classes(self.model);
        let shaped = |c: &Column| {
            !c.many_valued
                && c.missing == 0
                && (c.texts + c.bools + c.integers == c.present)
                && c.distinct.len() == classes
        };
        let c: Vec<usize> = (0..cols.len())
            .filter(|&i| i != time && Some(i) != score && !self.is_feature(&cols[i]))
            .filter(|&i| {
                shaped(&cols[i])
                    && (contains_any(&cols[i].name, DECISION_WORDS) || (cols[i].texts > 0 && cols[i].integers == 0))
            })
            .collect();
        let by_name: Vec<usize> = c.iter().copied().filter(|&i| contains_any(&cols[i].name, DECISION_WORDS)).collect();
        let names = |set: &[usize]| set.iter().map(|&i| cols[i].name.as_str()).collect::<Vec<_>>().join(", ");
        match (&by_name[..], &c[..]) {
            ([i], _) => Ok((kind, Some(*i), false)),
            ([], [i]) => Ok((kind, Some(*i), true)),
            ([], []) => Ok((kind, None, false)),
            ([], many) => {
                self.notes.push(format!(
                    "{}: columns {} each hold as many values as the model has classes: none is taken as the recorded decision (name one with --decision)",
                    self.profile.file,
                    names(many)
                ));
                Ok((kind, None, false))
            }
            (many, _) => Err(self.fail(
                "decision",
                format!(
                    "{} columns could hold the legacy decision ({}): name one with --decision",
                    many.len(),
                    names(many)
                ),
            )),
        }
    }

    fn usable_key(c: &Column) -> bool {
        c.missing == 0 && c.max_len <= MAX_TEXT && (c.integral() || c.texts + c.integers == c.present)
    }

    /// The request id: chosen, else a distinct column in every row (one named like an id
    /// first).
    fn id(&self, time: usize, answers: [Option<usize>; 2]) -> Result<usize, FieldError> {
        let cols = self.cols;
        if let Some(i) = self.named("id", &self.choices.id)? {
            let c = &cols[i];
            if !Self::usable_key(c) || !c.unique {
                return Err(self.fail(
                    "id",
                    format!(
                        "--id `{}`: an id is present in every row, distinct, and a whole number or short text",
                        c.name
                    ),
                ));
            }
            return Ok(i);
        }
        let taken = |i: usize| i == time || answers.contains(&Some(i));
        let unique: Vec<usize> =
            (0..cols.len()).filter(|&i| !taken(i) && cols[i].unique && Self::usable_key(&cols[i])).collect();
        match unique.iter().find(|&&i| id_like(&cols[i].name)).or(unique.first()) {
            Some(&i) => Ok(i),
            None => Err(self
                .fail("id", "no column has a distinct value in every row (a request id): name one with --id".into())),
        }
    }

    /// The entity: chosen, else the column that repeats like one (named like an id first,
    /// the most distinct values), else the id itself, noted.
    fn entity(&mut self, time: usize, answers: [Option<usize>; 2], id: usize) -> Result<usize, FieldError> {
        let cols = self.cols;
        if let Some(i) = self.named("entity", &self.choices.entity)? {
            if !Self::usable_key(&cols[i]) {
                return Err(self.fail(
                    "entity",
                    format!(
                        "--entity `{}`: an entity is present in every row, a whole number or short text",
                        cols[i].name
                    ),
                ));
            }
            return Ok(i);
        }
        let enough = (self.profile.rows / 100).max(20) as usize;
        let taken = |i: usize| i == time || answers.contains(&Some(i));
        let c: Vec<usize> = (0..cols.len())
            .filter(|&i| i != id && !taken(i) && !cols[i].unique && Self::usable_key(&cols[i]))
            .filter(|&i| cols[i].many_valued || cols[i].distinct.len() >= enough)
            .collect();
        let distinct = |i: usize| if cols[i].many_valued { usize::MAX } else { cols[i].distinct.len() };
        let pick = |set: Vec<usize>| set.into_iter().rev().max_by_key(|&i| distinct(i));
        match pick(c.iter().copied().filter(|&i| id_like(&cols[i].name)).collect()).or_else(|| pick(c.clone())) {
            Some(i) => Ok(i),
            None => {
                self.notes.push(format!(
                    "{}: no column repeats like an entity (a customer, a courier): requests stick by their id `{}`; name one with --entity",
                    self.profile.file, cols[id].name
                ));
                Ok(id)
            }
        }
    }

    /// The request fields: every column but the answers', each of the kind its values
    /// show; the columns left out, with why.
    fn fields(
        &mut self,
        [time, id, entity]: [usize; 3],
        answers: [Option<usize>; 2],
    ) -> (Vec<FieldPlan>, Vec<(String, String)>) {
        let (mut fields, mut skipped) = (Vec::new(), Vec::new());
        for (i, c) in self.cols.iter().enumerate() {
            if answers.contains(&Some(i)) {
                continue;
            }
            if c.present == 0 {
                skipped.push((c.name.clone(), "it is empty in every row".to_string()));
                continue;
            }
            let kind = if i == time {
                Kind::Timestamp
            } else if i == id || i == entity {
                if c.integral() {
                    Kind::Integer
                } else {
                    Kind::Category
                }
            } else {
                kind_of(c)
            };
            if kind == Kind::Category && c.max_len > MAX_TEXT {
                skipped.push((
                    c.name.clone(),
                    format!("it holds text up to {} bytes long (a category takes {MAX_TEXT})", c.max_len),
                ));
                continue;
            }
            let note = if matches!(kind, Kind::Integer | Kind::Number) && i != id && i != entity && i != time {
                suspected_sentinel(c, self.profile.rows)
            } else {
                None
            };
            if let Some(n) = &note {
                self.notes.push(format!("{}: column `{}`: {n} (reported, not assumed)", self.profile.file, c.name));
            }
            fields.push(FieldPlan {
                name: c.name.clone(),
                kind,
                optional: c.missing > 0,
                epoch_s: i == time && c.epoch_seconds() == Some(true),
                note,
                missing_share: c.missing as f64 / self.profile.rows as f64,
            });
        }
        for (name, why) in &skipped {
            self.notes.push(format!("{}: column `{name}` is left out of the schema: {why}", self.profile.file));
        }
        (fields, skipped)
    }

    /// Each model feature: the field of its name and, for a category, its vocabulary (the
    /// model's category names, else the recorded values sorted, noted); a placeholder where
    /// no field provides it.
    fn features(&mut self, matched: &[Option<usize>], fields: &[FieldPlan]) -> Vec<FeaturePlan> {
        let placeholder =
            |f: &String| FeaturePlan { name: f.clone(), source: None, vocabulary: None, vocabulary_from_model: false };
        let mut features = Vec::new();
        for (k, f) in self.model.feature_names().iter().enumerate() {
            let field = matched[k].map(|i| &self.cols[i]).filter(|c| fields.iter().any(|p| p.name == c.name));
            let Some(c) = field else {
                features.push(placeholder(f));
                continue;
            };
            let plan = fields.iter().find(|p| p.name == c.name).expect("a field");
            let (vocabulary, from_model) = if plan.kind == Kind::Category {
                match self.vocabulary(k, f, c) {
                    Some(v) => v,
                    None => {
                        features.push(placeholder(f));
                        continue;
                    }
                }
            } else {
                (None, false)
            };
            features.push(FeaturePlan {
                name: f.clone(),
                source: Some(c.name.clone()),
                vocabulary,
                vocabulary_from_model: from_model,
            });
        }
        for f in features.iter().filter(|f| f.source.is_none()) {
            self.notes.push(format!(
                "feature `{}`: no request field provides it: a placeholder in legacy.toml and new.toml; define it before `cutover run`",
                f.name
            ));
        }
        features
    }

    /// The vocabulary of model feature `k` (`f`) read from category column `c`, and whether
    /// the model gave it; none where it has too many values to infer one.
    #[allow(clippy::type_complexity)]
    fn vocabulary(&mut self, k: usize, f: &str, c: &Column) -> Option<(Option<Vec<String>>, bool)> {
        if let Some(names) = self.model.category_names(k) {
            return Some((Some(names.to_vec()), true));
        }
        if c.many_valued {
            self.notes.push(format!(
                "feature `{f}`: field `{}` has over {} values: no vocabulary can be inferred",
                c.name,
                profile::DISTINCT_CAP
            ));
            return None;
        }
        let mut v: Vec<String> = c.distinct.keys().cloned().collect();
        v.sort();
        let how = if self.model.feature_types().get(k) == Some(&FeatureType::Categorical) {
            "a categorical feature saved without its category names"
        } else {
            "text fed to a numeric feature"
        };
        self.notes.push(format!(
            "feature `{f}`: {how}; codes assumed in the sorted order of the {} values recorded (as pandas and scikit-learn encode): check it with `cutover replay`",
            v.len()
        ));
        Some((Some(v), false))
    }

    /// Segments: categories of 2 to 12 values, each at least 1 % of rows (three at most).
    fn segments(&self, fields: &[FieldPlan], [id, entity]: [usize; 2]) -> Vec<(String, Vec<String>)> {
        let (cols, rows) = (self.cols, self.profile.rows);
        let mut segments = Vec::new();
        for p in fields {
            let c = self.profile.column(&p.name).expect("a column");
            if p.kind != Kind::Category || p.name == cols[id].name || p.name == cols[entity].name || c.many_valued {
                continue;
            }
            let mut values: Vec<(&String, &u64)> =
                c.distinct.iter().filter(|(_, &n)| n as f64 >= 0.01 * rows as f64).collect();
            if !(2..=12).contains(&values.len()) {
                continue;
            }
            values.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            segments.push((p.name.clone(), values.into_iter().map(|(v, _)| v.clone()).collect()));
            if segments.len() == 3 {
                break;
            }
        }
        segments
    }

    /// The decision's labels, as recorded (sorted), checked against the model's classes.
    fn labels(&self, kind: AnswerKind, decision: Option<usize>) -> Result<Vec<String>, FieldError> {
        let Some(d) = decision else { return Ok(Vec::new()) };
        let c = &self.cols[d];
        let mut v: Vec<String> = c.distinct.keys().cloned().collect();
        v.sort();
        let classes = classes(self.model);
        if kind == AnswerKind::Multiclass && v.len() != classes {
            return Err(self
                .fail("decision", format!("`{}` holds {} values, the model has {classes} classes", c.name, v.len())));
        }
        if kind == AnswerKind::Binary && v.len() > 2 {
            return Err(self.fail(
                "decision",
                format!("`{}` holds {} values ({}): a binary decision has two", c.name, v.len(), preview(&v)),
            ));
        }
        Ok(v)
    }
}

/// The classes a model's objective gives (two for a binary one).
fn classes(model: &Model) -> usize {
    match model.objective() {
        Objective::MultiSoftprob(k) | Objective::MultiSoftmax(k) => k,
        _ => 2,
    }
}

/// The kind of a request field its values show (neither time, id nor entity).
fn kind_of(c: &Column) -> Kind {
    if c.boolean() {
        Kind::Boolean
    } else if c.integers == c.present {
        Kind::Integer
    } else if c.integers + c.numbers == c.present {
        Kind::Number
    } else if c.times == c.present {
        Kind::Timestamp
    } else {
        Kind::Category
    }
}

/// 5 % of the spread of the recorded answers (between their 4th smallest and largest values
/// kept), two significant digits: a served answer further than that is a wrong one.
fn tolerance_of(c: &Column) -> f64 {
    let spread = match (c.low.last(), c.high.last()) {
        (Some(lo), Some(hi)) => hi.0 - lo.0,
        _ => 1.0,
    };
    round2(0.05 * spread.abs().max(1e-9) / 4.0)
}

/// Two significant digits.
pub fn round2(x: f64) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let e = 10f64.powi(x.abs().log10().floor() as i32 - 1);
    (x / e).round() * e
}

/// A repeated extreme value that looks like "not given": the message, or None.
fn suspected_sentinel(c: &Column, rows: u64) -> Option<String> {
    let repeated = |n: u64| n >= 3 && n as f64 >= 0.001 * rows as f64;
    let share = |n: u64| 100.0 * n as f64 / rows as f64;
    if let [(v, n), (next, _), ..] = c.low[..] {
        if repeated(n) && v < 0.0 && next >= 0.0 {
            return Some(format!(
                "{} appears in {:.1} % of rows below every other value ({} and up): a \"not given\" code? declare `missing_values = [{}]` if so",
                crate::schema::number_text(v),
                share(n),
                crate::schema::number_text(next),
                crate::schema::number_text(v)
            ));
        }
    }
    if let ([(v, n), (next, _), ..], Some(lo)) = (&c.high[..], c.min()) {
        if repeated(*n) && *v - *next > 10.0 * (*next - lo).max(1.0) {
            return Some(format!(
                "{} appears in {:.1} % of rows, far above every other value (up to {}): a \"not given\" code? declare `missing_values = [{}]` if so",
                crate::schema::number_text(*v),
                share(*n),
                crate::schema::number_text(*next),
                crate::schema::number_text(*v)
            ));
        }
    }
    None
}

fn column_list(p: &Profile) -> String {
    let names: Vec<String> = p.columns.iter().take(12).map(|c| c.name.clone()).collect();
    preview(&names) + if p.columns.len() > 12 { ", ..." } else { "" }
}

fn preview(v: &[String]) -> String {
    v.iter().take(12).map(String::as_str).collect::<Vec<_>>().join(", ")
}

/// The recorded (score, decision) pairs of two columns, with their lines.
pub fn answer_pairs(
    path: &Path,
    format: Format,
    score: &str,
    decision: &str,
    max_rows: u64,
) -> Result<Vec<(f64, String, u64)>, FieldError> {
    let file = path.display().to_string();
    let fail = |line: u64, field: &str, message: String| FieldError {
        file: file.clone(),
        line: line as usize,
        column: 0,
        field: field.into(),
        message,
    };
    let mut out = Vec::new();
    let mut push = |s: Raw<'_>, d: &str, line: u64| -> Result<(), FieldError> {
        let s = match s {
            Raw::Integer(i) => i as f64,
            Raw::Number(x) => x,
            Raw::Missing => return Ok(()),
            _ => return Err(fail(line, score, "not a number".into())),
        };
        out.push((s, d.trim().to_string(), line));
        Ok(())
    };
    let f = std::fs::File::open(path).map_err(|e| fail(0, "", format!("cannot read: {e}")))?;
    match format {
        Format::Csv => {
            let mut r = csv::ReaderBuilder::new().has_headers(true).from_reader(f);
            let h = r.headers().map_err(|e| fail(1, "header", e.to_string()))?.clone();
            let (Some(si), Some(di)) =
                (h.iter().position(|c| c.trim() == score), h.iter().position(|c| c.trim() == decision))
            else {
                return Err(fail(1, "header", format!("no column `{score}` or `{decision}`")));
            };
            for rec in r.records().take(max_rows as usize) {
                let rec = rec.map_err(|e| fail(e.position().map_or(0, |p| p.line()), "line", e.to_string()))?;
                let line = rec.position().map_or(0, |p| p.line());
                push(Raw::of_text(rec.get(si).unwrap_or("")), rec.get(di).unwrap_or(""), line)?;
            }
        }
        Format::JsonLines => {
            use std::io::BufRead;
            for (k, l) in std::io::BufReader::new(f).lines().enumerate().take(max_rows as usize) {
                let line = k as u64 + 1;
                let l = l.map_err(|e| fail(line, "line", e.to_string()))?;
                if l.trim().is_empty() {
                    continue;
                }
                let v: serde_json::Value =
                    serde_json::from_str(&l).map_err(|e| fail(line, "line", format!("not JSON: {e}")))?;
                let d = match v.get(decision) {
                    Some(serde_json::Value::String(s)) => s.clone(),
                    Some(serde_json::Value::Null) | None => continue,
                    Some(other) => other.to_string(),
                };
                let s = match v.get(score) {
                    Some(serde_json::Value::Number(n)) => Raw::Number(n.as_f64().unwrap_or(f64::NAN)),
                    Some(serde_json::Value::String(s)) => Raw::of_text(s),
                    _ => Raw::Missing,
                };
                push(s, &d, line)?;
            }
        }
    }
    Ok(out)
}

/// The threshold a binary decision follows on its score: `(threshold, [below, at or above])`.
/// With `given`, checks it; without, the shortest decimal between the highest score of the
/// lower label and the lowest of the higher. Inconsistent pairs name two rows that disagree.
pub fn threshold(pairs: &[(f64, String, u64)], given: Option<f64>) -> Result<(f64, [String; 2]), String> {
    let mut labels: Vec<&str> = Vec::new();
    for (_, d, _) in pairs {
        if !labels.contains(&d.as_str()) {
            labels.push(d);
            if labels.len() > 2 {
                return Err(format!("the decision holds more than two values ({})", labels.join(", ")));
            }
        }
    }
    if labels.len() < 2 {
        return Err(match labels.first() {
            Some(l) => {
                format!("every recorded decision is `{l}`: no threshold can be read from them; pass --threshold")
            }
            None => "no row has both a score and a decision".into(),
        });
    }
    // Each label's score range, with the rows at its ends.
    let range = |l: &str| {
        let rows = pairs.iter().filter(|p| p.1 == l);
        let lo = rows.clone().min_by(|a, b| a.0.total_cmp(&b.0)).expect("a row");
        let hi = rows.max_by(|a, b| a.0.total_cmp(&b.0)).expect("a row");
        (lo, hi)
    };
    let (r0, r1) = (range(labels[0]), range(labels[1]));
    // The higher label is the one whose highest score is higher.
    let (low, high, (_, low_top), (high_bottom, _)) =
        if r1.1 .0 >= r0.1 .0 { (labels[0], labels[1], r0, r1) } else { (labels[1], labels[0], r1, r0) };
    let f32_of = |x: f64| x as f32;
    if f32_of(low_top.0) >= f32_of(high_bottom.0) {
        return Err(format!(
            "no threshold separates the decisions: line {} has score {} and `{low}`, line {} has score {} and `{high}`",
            low_top.2, low_top.0, high_bottom.2, high_bottom.0
        ));
    }
    let t = match given {
        Some(t) => {
            if let Some(p) = pairs.iter().find(|p| (f32_of(p.0) >= t as f32) != (p.1 == high)) {
                return Err(format!(
                    "--threshold {t} disagrees with line {}: score {} and decision `{}`",
                    p.2, p.0, p.1
                ));
            }
            t
        }
        None => shortest_between(low_top.0, high_bottom.0),
    };
    Ok((t, [low.to_string(), high.to_string()]))
}

/// The decimal with the fewest digits in (lo, hi], compared as f32 as the answer does.
fn shortest_between(lo: f64, hi: f64) -> f64 {
    for digits in 0..10 {
        let scale = 10f64.powi(digits);
        let c = ((lo * scale).floor() + 1.0) / scale;
        if (c as f32) > (lo as f32) && (c as f32) <= (hi as f32) {
            return c;
        }
    }
    hi
}

#[cfg(test)]
mod tests;
