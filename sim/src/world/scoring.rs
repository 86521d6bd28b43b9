//! The world's scoring step: both stacks' models, and what the faults touching a call make
//! the new one score with (another artifact, the gbdt runtime) and answer (another
//! threshold, labels, a transformed score).

use std::sync::Arc;

use cutover_migration::answer::Answer;
use cutover_models::runtime::Scorer;
use cutover_models::{Model, Output};

use crate::faults::{served_answer, Kind, ModelTouch, Touch};

/// Both stacks' models and the answer they give.
#[derive(Clone)]
pub struct Scoring {
    /// The migration's answer.
    pub answer: Answer,
    legacy: Arc<Model>,
    new: Arc<Model>,
    /// The artifacts of `model_artifact` faults, by the fault's position.
    alternates: Vec<Option<Arc<Model>>>,
    /// The gbdt runtime of a `runtime_drift` fault.
    drift: Option<Arc<dyn Scorer>>,
}

/// One request's answers from both stacks.
pub struct Scored {
    /// Whether both stacks had the same input (the same model, the same row, nothing
    /// touching the answer): the two answers are equal.
    pub same_input: bool,
    /// The decision the new stack stated, where an answer fault made it differ from the
    /// one its values give.
    pub stated: Option<u32>,
}

impl Scoring {
    /// The scoring of two stacks (one model, shared, when both serve the same artifact)
    /// with what the run's faults serve instead.
    pub fn new(
        answer: Answer,
        (legacy, new): (Arc<Model>, Arc<Model>),
        alternates: Vec<Option<Arc<Model>>>,
        drift: Option<Arc<dyn Scorer>>,
    ) -> Scoring {
        Scoring { answer, legacy, new, alternates, drift }
    }

    /// Legacy's answer alone for `row` into `out`.
    pub fn legacy(&self, row: &[f32], out: &mut [f32]) {
        self.answer.score(&self.legacy, row, out);
    }

    /// Both answers for the rows `(legacy, new)` into `(legacy_out, new_out)`, the new one
    /// as `touch` says (its model) and as the answer faults among `answer_faults` make it.
    /// One model call when both would compute the same thing; none when `skip_same` (a
    /// sweep: equal answers, whatever they are, are read by nothing but the history).
    pub fn both<'k>(
        &self,
        touch: &Touch,
        (legacy_row, new_row): (&[f32], &[f32]),
        (legacy_out, new_out): (&mut [f32], &mut [f32]),
        skip_same: bool,
        answer_faults: impl Iterator<Item = &'k Kind>,
    ) -> Scored {
        let same_input = touch.model == ModelTouch::Same
            && !touch.answer_faults
            && Arc::ptr_eq(&self.legacy, &self.new)
            && legacy_row.iter().zip(new_row).all(|(a, b)| a.to_bits() == b.to_bits());
        if same_input && skip_same {
            legacy_out.fill(0.0);
            new_out.fill(0.0);
            return Scored { same_input, stated: None };
        }
        self.answer.score(&self.legacy, legacy_row, legacy_out);
        match touch.model {
            ModelTouch::Same if same_input => new_out.copy_from_slice(legacy_out),
            ModelTouch::Same => self.answer.score(&self.new, new_row, new_out),
            ModelTouch::Artifact(k) => {
                let alternate = self.alternates[k].as_ref().expect("loaded with the fault");
                self.answer.score(alternate, new_row, new_out)
            }
            ModelTouch::Drift => {
                self.drift.as_ref().expect("built with the fault").score_batch(new_row, Output::Prediction, new_out)
            }
        }
        let mut stated = None;
        if touch.answer_faults {
            let decision = served_answer(&self.answer, answer_faults, new_out);
            stated = decision.filter(|d| Some(*d) != self.answer.decision(new_out));
        }
        Scored { same_input, stated }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn scoring() -> (Scoring, Vec<f32>) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../domain/fraud");
        let model = Arc::new(cutover_models::xgboost::load_file(&dir.join("model.ubj")).unwrap());
        let answer = Answer::binary(0.5, "allow", "block");
        let row = vec![f32::NAN; model.feature_names().len()];
        (Scoring::new(answer, (model.clone(), model), Vec::new(), None), row)
    }

    #[test]
    fn the_same_input_is_scored_once_and_skipped_in_a_sweep() {
        let (s, row) = scoring();
        let (mut l, mut n) = ([0.0f32], [0.0f32]);
        let done = s.both(&Touch::default(), (&row, &row), (&mut l, &mut n), false, std::iter::empty());
        assert!(done.same_input && done.stated.is_none());
        assert_eq!(l, n);
        assert!(l[0] > 0.0 && l[0] < 1.0, "a probability: {l:?}");
        let skipped = s.both(&Touch::default(), (&row, &row), (&mut l, &mut n), true, std::iter::empty());
        assert!(skipped.same_input);
        assert_eq!((l[0], n[0]), (0.0, 0.0), "a sweep reads no answer it knows to be equal");
        // Another row: two model calls, not the same input.
        let mut other = row.clone();
        other[0] = 5000.0;
        let two = s.both(&Touch::default(), (&row, &other), (&mut l, &mut n), true, std::iter::empty());
        assert!(!two.same_input);
    }

    #[test]
    fn an_answer_fault_states_another_decision_from_the_same_scores() {
        let (s, row) = scoring();
        let (mut l, mut n) = ([0.0f32], [0.0f32]);
        s.both(&Touch::default(), (&row, &row), (&mut l, &mut n), false, std::iter::empty());
        let decided = s.answer.decision(&l).unwrap();
        // The threshold just above (or below) the score: the other decision.
        let threshold = if decided == 1 { l[0] + 1e-3 } else { l[0] - 1e-3 };
        let fault = Kind::DecisionThreshold { threshold };
        let touch = Touch { answer_faults: true, ..Touch::default() };
        let done = s.both(&touch, (&row, &row), (&mut l, &mut n), true, std::iter::once(&fault));
        assert!(!done.same_input, "an answer fault is never the same input, even in a sweep");
        assert_eq!(l, n, "the same scores");
        assert_eq!(done.stated, Some(1 - decided));
    }
}
