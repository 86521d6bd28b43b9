//! What the model's answer is, as the migration folder declares it: a binary decision
//! (a threshold and two labels), a class among several (the argmax of the class
//! probabilities), or a number (regression, no decision). Scoring, pairing the two stacks'
//! answers and reading recorded answers all go through it.

use serde::{Deserialize, Serialize};

use cutover_models::objective::{softmax, Objective};
use cutover_models::Model;

/// The kind of answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerKind {
    /// A probability and a decision: at or above the threshold is the second label.
    Binary,
    /// A probability per class; the decision is the most likely class.
    Multiclass,
    /// A number in the model's units; no decision.
    Regression,
}

/// The `[answer]` section as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerDef {
    /// Its kind.
    pub kind: AnswerKind,
    /// Binary: a score at or above it takes the second label.
    #[serde(default)]
    pub threshold: Option<f64>,
    /// Binary: the two decisions, below and at or above the threshold; multiclass: one
    /// per class, in the model's class order.
    #[serde(default)]
    pub labels: Option<Vec<String>>,
    /// Regression: a served answer further than this from legacy's is a wrong answer.
    #[serde(default)]
    pub tolerance: Option<f64>,
    /// The column of recorded files holding the legacy service's score.
    #[serde(default = "d_score")]
    pub recorded_score: String,
    /// The column of recorded files holding the legacy service's decision.
    #[serde(default = "d_decision")]
    pub recorded_decision: String,
}

fn d_score() -> String {
    "legacy_score".into()
}

fn d_decision() -> String {
    "legacy_decision".into()
}

/// A validated answer declaration.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Answer {
    /// Its kind.
    pub kind: AnswerKind,
    /// Binary threshold.
    pub threshold: f32,
    /// Decision labels (binary: two; multiclass: one per class; regression: none).
    pub labels: Vec<String>,
    /// Regression tolerance.
    pub tolerance: f64,
    /// Recorded score column.
    pub recorded_score: String,
    /// Recorded decision column.
    pub recorded_decision: String,
}

/// How two answers to one request compare.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Compared {
    /// The decisions differ (never for regression).
    pub flipped: bool,
    /// Binary: |Δp|; multiclass: the largest |Δp| over the classes; regression: |Δy| in
    /// the model's units.
    pub abs_diff: f64,
    /// |Δy| / |y legacy| (regression; the absolute difference for the others).
    pub rel_diff: f64,
    /// The new answer would be a wrong one to serve: a flipped decision, or for regression
    /// a difference beyond the tolerance.
    pub wrong: bool,
}

impl Answer {
    /// Validates a declaration: `Err((field, message))`.
    pub fn compile(d: &AnswerDef) -> Result<Answer, (String, String)> {
        let e = |f: &str, m: &str| (format!("answer.{f}"), m.to_string());
        let (threshold, labels, tolerance) = match d.kind {
            AnswerKind::Binary => {
                if d.tolerance.is_some() {
                    return Err(e("tolerance", "applies to regression answers only"));
                }
                let t = d.threshold.ok_or_else(|| e("threshold", "a binary answer needs a threshold"))?;
                if !t.is_finite() {
                    return Err(e("threshold", "must be a finite number"));
                }
                let labels = d.labels.clone().unwrap_or_else(|| vec!["negative".into(), "positive".into()]);
                if labels.len() != 2 {
                    return Err(e("labels", "a binary answer has two labels: below and at or above the threshold"));
                }
                (t as f32, labels, 0.0)
            }
            AnswerKind::Multiclass => {
                if d.threshold.is_some() || d.tolerance.is_some() {
                    return Err(e("threshold", "a multiclass answer takes labels only (the decision is the argmax)"));
                }
                let labels =
                    d.labels.clone().ok_or_else(|| e("labels", "a multiclass answer needs one label per class"))?;
                if labels.len() < 2 || labels.len() > 64 {
                    return Err(e("labels", "needs 2 to 64 classes"));
                }
                (0.0, labels, 0.0)
            }
            AnswerKind::Regression => {
                if d.threshold.is_some() || d.labels.is_some() {
                    return Err(e("threshold", "a regression answer has no decision: no threshold or labels"));
                }
                let t = d.tolerance.unwrap_or(0.0);
                if !(t.is_finite() && t >= 0.0) {
                    return Err(e("tolerance", "must be a non-negative number"));
                }
                (0.0, Vec::new(), t)
            }
        };
        for (i, l) in labels.iter().enumerate() {
            if l.trim().is_empty() || labels[..i].iter().any(|m| m.eq_ignore_ascii_case(l)) {
                return Err(e("labels", &format!("label `{l}` is empty or repeated")));
            }
        }
        Ok(Answer {
            kind: d.kind,
            threshold,
            labels,
            tolerance,
            recorded_score: d.recorded_score.clone(),
            recorded_decision: d.recorded_decision.clone(),
        })
    }

    /// A binary answer (threshold, labels) as the bundled examples and tests use.
    pub fn binary(threshold: f32, negative: &str, positive: &str) -> Answer {
        Answer {
            kind: AnswerKind::Binary,
            threshold,
            labels: vec![negative.into(), positive.into()],
            tolerance: 0.0,
            recorded_score: d_score(),
            recorded_decision: d_decision(),
        }
    }

    /// Whether the answer carries a decision.
    pub fn has_decision(&self) -> bool {
        self.kind != AnswerKind::Regression
    }

    /// Values kept per answer: one, or one per class.
    pub fn width(&self) -> usize {
        match self.kind {
            AnswerKind::Multiclass => self.labels.len(),
            _ => 1,
        }
    }

    /// Whether a model can give this answer; the reason when not.
    pub fn check_model(&self, model: &Model) -> Result<(), String> {
        let o = model.objective();
        match (self.kind, o) {
            (AnswerKind::Binary, Objective::BinaryLogistic | Objective::RegLogistic) => {
                if !(0.0..=1.0).contains(&self.threshold) {
                    return Err(format!(
                        "the threshold {} is not a probability ({} gives one)",
                        self.threshold,
                        o.name()
                    ));
                }
                Ok(())
            }
            (AnswerKind::Binary, Objective::BinaryLogitRaw) => Ok(()),
            (AnswerKind::Multiclass, Objective::MultiSoftprob(k) | Objective::MultiSoftmax(k)) => {
                if k != self.labels.len() {
                    return Err(format!("the model has {k} classes, the answer {} labels", self.labels.len()));
                }
                Ok(())
            }
            (AnswerKind::Regression, o) if o.num_groups() == 1 => Ok(()),
            (kind, o) => Err(format!("a {kind:?} answer cannot come from a {} model", o.name()).to_lowercase()),
        }
    }

    /// Scores one row into `out` (`width()` values): the probability, the class
    /// probabilities (softmax of the margins, as `multi:softprob` gives them), or the
    /// prediction. Allocation-free.
    pub fn score(&self, model: &Model, row: &[f32], out: &mut [f32]) {
        match self.kind {
            AnswerKind::Multiclass => {
                model.margins(row, out);
                let mut m = [0.0f32; 64];
                m[..out.len()].copy_from_slice(out);
                softmax(&m[..out.len()], out);
            }
            _ => out[0] = model.predict_one(row),
        }
    }

    /// The decision of an answer: a class index (binary: 1 at or above the threshold),
    /// none for regression.
    pub fn decision(&self, out: &[f32]) -> Option<u32> {
        match self.kind {
            AnswerKind::Binary => Some(u32::from(out[0] >= self.threshold)),
            AnswerKind::Multiclass => Some(argmax(out) as u32),
            AnswerKind::Regression => None,
        }
    }

    /// The one number a table shows of an answer: the probability, the most likely
    /// class's probability, or the prediction.
    pub fn headline(&self, out: &[f32]) -> f32 {
        match self.kind {
            AnswerKind::Multiclass => out[argmax(out)],
            _ => out[0],
        }
    }

    /// Compares the new answer with legacy's, each with the decision its stack stated where
    /// that is not the one its values give (none: the values decide).
    pub fn compare_stated(&self, legacy: (&[f32], Option<u32>), new: (&[f32], Option<u32>)) -> Compared {
        let mut c = self.compare(legacy.0, new.0);
        if self.has_decision() && (legacy.1.is_some() || new.1.is_some()) {
            let decided = |(values, stated): (&[f32], Option<u32>)| stated.or_else(|| self.decision(values));
            c.flipped = decided(legacy) != decided(new);
            c.wrong = c.flipped;
        }
        c
    }

    /// Compares the new answer with legacy's.
    pub fn compare(&self, legacy: &[f32], new: &[f32]) -> Compared {
        match self.kind {
            AnswerKind::Binary | AnswerKind::Multiclass => {
                let abs = legacy.iter().zip(new).map(|(a, b)| f64::from((a - b).abs())).fold(0.0, f64::max);
                let flipped = self.decision(legacy) != self.decision(new);
                Compared { flipped, abs_diff: abs, rel_diff: abs, wrong: flipped }
            }
            AnswerKind::Regression => {
                let (l, n) = (f64::from(legacy[0]), f64::from(new[0]));
                let abs = (n - l).abs();
                let rel = if abs == 0.0 { 0.0 } else { abs / l.abs().max(f64::MIN_POSITIVE) };
                Compared { flipped: false, abs_diff: abs, rel_diff: rel, wrong: abs > self.tolerance }
            }
        }
    }

    /// A decision's label.
    pub fn label(&self, decision: u32) -> &str {
        self.labels.get(decision as usize).map_or("", String::as_str)
    }

    /// Reads a decision as a service writes it: a label (any case), a class index, or for
    /// binary answers `true`/`false` (true is the second label).
    pub fn parse_decision(&self, text: &str) -> Option<u32> {
        let t = text.trim();
        if let Some(k) = self.labels.iter().position(|l| l.eq_ignore_ascii_case(t)) {
            return Some(k as u32);
        }
        if self.kind == AnswerKind::Binary {
            if t.eq_ignore_ascii_case("true") {
                return Some(1);
            }
            if t.eq_ignore_ascii_case("false") {
                return Some(0);
            }
        }
        t.parse::<u32>().ok().filter(|&k| (k as usize) < self.labels.len())
    }
}

fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(kind: AnswerKind) -> AnswerDef {
        AnswerDef {
            kind,
            threshold: None,
            labels: None,
            tolerance: None,
            recorded_score: d_score(),
            recorded_decision: d_decision(),
        }
    }

    #[test]
    fn each_kind_compares_what_it_has() {
        let b = Answer::binary(0.5, "allow", "block");
        let c = b.compare(&[0.4], &[0.6]);
        assert!(c.flipped && c.wrong);
        assert!((c.abs_diff - 0.2).abs() < 1e-6);
        assert_eq!(b.parse_decision("BLOCK"), Some(1));
        assert_eq!(b.parse_decision("false"), Some(0));
        assert_eq!(b.parse_decision("maybe"), None);

        let m = Answer::compile(&AnswerDef {
            labels: Some(vec!["a".into(), "b".into(), "c".into()]),
            ..def(AnswerKind::Multiclass)
        })
        .unwrap();
        let c = m.compare(&[0.5, 0.3, 0.2], &[0.3, 0.5, 0.2]);
        assert!(c.flipped);
        assert!((c.abs_diff - 0.2).abs() < 1e-6, "the largest class difference");
        assert_eq!(m.parse_decision("2"), Some(2));
        assert_eq!(m.decision(&[0.1, 0.2, 0.7]), Some(2));

        let r = Answer::compile(&AnswerDef { tolerance: Some(0.5), ..def(AnswerKind::Regression) }).unwrap();
        let c = r.compare(&[40.0], &[44.0]);
        assert!(!c.flipped && c.wrong);
        assert_eq!(c.abs_diff, 4.0, "in the model's units, not clamped to [0, 1]");
        assert_eq!(c.rel_diff, 0.1);
        assert!(!r.compare(&[40.0], &[40.25]).wrong, "within the tolerance");
        assert_eq!(r.decision(&[3.0]), None);
    }

    #[test]
    fn declarations_that_make_no_sense_are_refused() {
        assert_eq!(Answer::compile(&def(AnswerKind::Binary)).unwrap_err().0, "answer.threshold");
        let three = AnswerDef {
            threshold: Some(0.5),
            labels: Some(vec!["a".into(), "b".into(), "c".into()]),
            ..def(AnswerKind::Binary)
        };
        assert_eq!(Answer::compile(&three).unwrap_err().0, "answer.labels");
        assert!(Answer::compile(&AnswerDef { threshold: Some(0.5), ..def(AnswerKind::Regression) }).is_err());
        assert!(Answer::compile(&AnswerDef {
            labels: Some(vec!["a".into(), "A".into()]),
            ..def(AnswerKind::Multiclass)
        })
        .is_err());
        assert!(Answer::compile(&AnswerDef { tolerance: Some(-1.0), ..def(AnswerKind::Regression) }).is_err());
    }
}
