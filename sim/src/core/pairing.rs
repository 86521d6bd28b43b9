//! One request's pairing, the step both faces share: which stack a request routes to
//! (sticky by entity), what a shadow call loses of its context, how an answer is read,
//! what the user gets, and the paired evidence (answers compared as the migration's
//! answer kind says, feature rows diffed, the request's segments) that the monitor, the
//! judges and the trace read. The simulator calls it with modelled calls, the live router
//! with real ones.

use cutover_migration::answer::{Answer, Compared};
use cutover_migration::features::{diff_rows, FeatureDiff, FeatureKind};
use cutover_migration::schema::{Record, Schema, Value};
use cutover_migration::segments::Segments;

use super::monitor::Observation;

/// The salt of the canary bucket: every face routes an entity the same way.
const BUCKET_SALT: u64 = 0xB0C7;

pub use cutover_migration::schema::mix;

/// An entity's canary bucket in [0, 100), and whether at `weight_pct` it goes to the new
/// stack: the same entity always lands in the same bucket, so a user sees one stack.
pub fn route(entity: u64, weight_pct: f64) -> (f64, bool) {
    let bucket = (mix(entity ^ BUCKET_SALT) % 10_000) as f64 / 100.0;
    (bucket, bucket < weight_pct)
}

/// A shadow call without its production context: the context fields become missing.
pub fn strip_context(record: &mut Record, context: &[usize]) {
    for &i in context {
        record.values[i] = Value::Missing;
    }
}

/// The same for a JSON body: the context fields' keys are removed.
pub fn strip_context_json(body: &mut serde_json::Value, schema: &Schema, context: &[usize]) {
    if let Some(o) = body.as_object_mut() {
        for &i in context {
            o.remove(&schema.field(i).name);
        }
    }
}

/// How one call ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Called<'a> {
    /// The stack answered with these values (the answer's width) and, where it stated one
    /// that its values do not give (a `decision_threshold` or `decision_labels` fault, a
    /// service that decides on its own), that decision: what the user got.
    Answered(&'a [f32], Option<u32>),
    /// It failed.
    Error,
    /// It gave no answer within the caller's budget.
    Timeout,
}

impl Called<'_> {
    /// Whether it answered.
    pub fn ok(&self) -> bool {
        matches!(self, Called::Answered(..))
    }
}

/// One call: its service time and how it ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Call<'a> {
    /// Service time, ms.
    pub ms: f64,
    /// How it ended.
    pub outcome: Called<'a>,
}

impl Call<'_> {
    /// Whether it answered.
    pub fn ok(&self) -> bool {
        self.outcome.ok()
    }
}

/// What the user got.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UserAnswer {
    /// The new stack's answer.
    pub served_new: bool,
    /// End to end, ms.
    pub ms: f64,
    /// A user-visible failure: no answer, or past the budget.
    pub failed: bool,
}

impl UserAnswer {
    /// The user's answer: the new stack's when routed there and it answered, else legacy's
    /// (a fallback within the budget when the new stack failed); `ms` is the end-to-end time
    /// the face measured or modelled.
    pub fn of(routed_new: bool, new_ok: bool, legacy_ok: bool, ms: f64, budget_ms: f64) -> UserAnswer {
        let served_new = routed_new && new_ok;
        let answered = if served_new { true } else { legacy_ok };
        UserAnswer { served_new, ms, failed: !answered || ms > budget_ms }
    }
}

/// Where a service's JSON answer holds what the router reads: JSON pointers (RFC 6901).
#[derive(Debug, Clone, PartialEq)]
pub struct AnswerFields {
    /// The score (binary, regression) or the most likely class's probability.
    pub score: String,
    /// The decision label, when the service sends one.
    pub decision: Option<String>,
    /// The class probabilities (multiclass).
    pub probabilities: Option<String>,
}

impl Default for AnswerFields {
    /// cutover's own stacks: `/score`, `/decision`, `/probabilities`.
    fn default() -> Self {
        AnswerFields {
            score: "/score".into(),
            decision: Some("/decision".into()),
            probabilities: Some("/probabilities".into()),
        }
    }
}

/// Reads a service's answer into `out` (the answer's width): the values, or why not. A
/// decision the service states must agree with its values' (else the answer is read as
/// the service states it: the decision is what the user got).
pub fn read_answer(
    v: &serde_json::Value,
    fields: &AnswerFields,
    answer: &Answer,
    out: &mut [f32],
) -> Result<Option<u32>, String> {
    let number = |p: &str| v.pointer(p).and_then(serde_json::Value::as_f64);
    if out.len() > 1 {
        let p = fields.probabilities.as_deref().unwrap_or("/probabilities");
        let probs = v.pointer(p).and_then(|a| a.as_array()).ok_or_else(|| format!("no class probabilities at {p}"))?;
        if probs.len() != out.len() {
            return Err(format!("{} class probabilities at {p}, the answer has {} classes", probs.len(), out.len()));
        }
        for (o, x) in out.iter_mut().zip(probs) {
            *o = x.as_f64().ok_or_else(|| format!("a class probability at {p} is not a number"))? as f32;
        }
    } else {
        out[0] = number(&fields.score).ok_or_else(|| format!("no number at {}", fields.score))? as f32;
    }
    let stated = match fields.decision.as_deref().and_then(|p| v.pointer(p)) {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Bool(b)) => answer.parse_decision(if *b { "true" } else { "false" }),
        Some(serde_json::Value::String(s)) => Some(
            answer
                .parse_decision(s)
                .ok_or_else(|| format!("`{s}` is not one of the decisions ({})", answer.labels.join(", ")))?,
        ),
        Some(serde_json::Value::Number(n)) => answer.parse_decision(&n.to_string()),
        Some(_) => return Err("the decision is neither text nor a boolean".into()),
    };
    Ok(stated.or_else(|| answer.decision(out)))
}

/// The pairing step's buffers, one per face.
#[derive(Debug, Clone)]
pub struct Pairing {
    answer: Answer,
    segments: Segments,
    kinds: Vec<FeatureKind>,
    diffs: Vec<FeatureDiff>,
    mismatches: Vec<bool>,
    segs: Vec<usize>,
}

/// One request as paired: the evidence, and how the answers compare.
pub struct Paired<'a> {
    /// What the monitor and judges read.
    pub observation: Observation<'a>,
    /// The answers compared (zero when the new stack failed).
    pub compared: Compared,
    /// Per feature, how the rows differ.
    pub diffs: &'a [FeatureDiff],
}

impl Pairing {
    /// Buffers for a migration's answer, segments and model features.
    pub fn new(answer: Answer, segments: Segments, kinds: Vec<FeatureKind>) -> Pairing {
        let n = kinds.len();
        let segs = vec![0; segments.dims() + 1];
        Pairing { answer, segments, kinds, diffs: vec![FeatureDiff::Equal; n], mismatches: vec![false; n], segs }
    }

    /// The answer kind.
    pub fn answer(&self) -> &Answer {
        &self.answer
    }

    /// The segments.
    pub fn segments(&self) -> &Segments {
        &self.segments
    }

    /// The segments of a request (before faults that act on a segment are looked up).
    pub fn segments_of(&mut self, record: &Record) -> &[usize] {
        self.segments.of(record, &mut self.segs);
        &self.segs
    }

    /// Sets the segments of the next request to pair (known already, say from an earlier
    /// look at the same request), as [`Pairing::segments_of`] would.
    pub fn segments_are(&mut self, segs: &[usize]) {
        self.segs.copy_from_slice(segs);
    }

    /// The segments [`Pairing::segments_of`] found last, without looking again.
    pub fn last_segments(&self) -> &[usize] {
        &self.segs
    }

    /// Pairs one request's two calls: `rows` are the two model rows where known (the
    /// simulator always, the router when the stacks return them), `segments_ready` when
    /// [`Pairing::segments_of`] was called for this record already. None when legacy gave
    /// no answer: there is nothing to compare with.
    #[allow(clippy::too_many_arguments)]
    pub fn pair(
        &mut self,
        record: &Record,
        segments_ready: bool,
        rows: Option<(&[f32], &[f32])>,
        legacy: &Call<'_>,
        new: &Call<'_>,
        shadow: bool,
        context_lost: bool,
        served_new: bool,
    ) -> Option<Paired<'_>> {
        let Called::Answered(l, legacy_stated) = legacy.outcome else { return None };
        if !segments_ready {
            self.segments.of(record, &mut self.segs);
        }
        let compared = match new.outcome {
            Called::Answered(n, new_stated) => self.answer.compare_stated((l, legacy_stated), (n, new_stated)),
            _ => Compared::default(),
        };
        match rows {
            Some((lr, nr)) => diff_rows(&self.kinds, lr, nr, &mut self.diffs),
            None => self.diffs.fill(FeatureDiff::Equal),
        }
        for (m, d) in self.mismatches.iter_mut().zip(&self.diffs) {
            *m = d.is_mismatch();
        }
        let observation = Observation {
            answered: new.outcome.ok(),
            flipped: compared.flipped,
            abs_score_diff: compared.abs_diff,
            rel_score_diff: compared.rel_diff,
            wrong: compared.wrong,
            mismatches: &self.mismatches,
            segments: &self.segs,
            legacy_ms: legacy.ms,
            new_ms: new.ms,
            error: new.outcome == Called::Error,
            timeout: new.outcome == Called::Timeout,
            shadow,
            shadow_context_mismatch: context_lost,
            served_new,
        };
        Some(Paired { observation, compared, diffs: &self.diffs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_is_sticky_and_monotone_in_the_weight() {
        for entity in 0..2000u64 {
            let (b, at5) = route(entity, 5.0);
            assert!((0.0..100.0).contains(&b));
            assert_eq!(route(entity, 5.0), (b, at5), "the same entity, the same bucket");
            if at5 {
                assert!(route(entity, 25.0).1, "an entity on new at 5 % stays on new at 25 %");
            }
            assert!(!route(entity, 0.0).1);
            assert!(route(entity, 100.0).1);
        }
        let at5 = (0..20_000u64).filter(|&e| route(e, 5.0).1).count();
        assert!((800..1200).contains(&at5), "about 5 % of entities: {at5}");
    }

    #[test]
    fn the_user_gets_new_only_when_routed_there_and_it_answered() {
        assert_eq!(
            UserAnswer::of(true, true, true, 10.0, 400.0),
            UserAnswer { served_new: true, ms: 10.0, failed: false }
        );
        let fallback = UserAnswer::of(true, false, true, 160.0, 400.0);
        assert!(!fallback.served_new && !fallback.failed, "legacy answers within the budget");
        assert!(UserAnswer::of(true, false, true, 450.0, 400.0).failed, "past the budget");
        assert!(UserAnswer::of(false, true, false, 10.0, 400.0).failed, "legacy failed a user on legacy");
    }

    #[test]
    fn answers_are_read_one_way_whatever_the_case_of_the_decision() {
        let a = Answer::binary(0.5, "allow", "block");
        let f = AnswerFields::default();
        let mut out = [0.0f32];
        for (body, want) in [
            (serde_json::json!({"score": 0.7, "decision": "BLOCK"}), Some(1)),
            (serde_json::json!({"score": 0.7, "decision": "allow"}), Some(0)),
            (serde_json::json!({"score": 0.7, "decision": true}), Some(1)),
            (serde_json::json!({"score": 0.7}), Some(1)),
        ] {
            assert_eq!(read_answer(&body, &f, &a, &mut out), Ok(want), "{body}");
        }
        assert!(read_answer(&serde_json::json!({"score": 0.7, "decision": "maybe"}), &f, &a, &mut out).is_err());
        assert!(read_answer(&serde_json::json!({"decision": "block"}), &f, &a, &mut out).is_err());
        let nested = AnswerFields { score: "/result/p".into(), decision: None, probabilities: None };
        assert_eq!(read_answer(&serde_json::json!({"result": {"p": 0.2}}), &nested, &a, &mut out), Ok(Some(0)));
    }
}
