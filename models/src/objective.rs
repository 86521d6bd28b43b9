//! XGBoost objectives: how a base score becomes a base margin, and how margins become
//! predictions, in the same f32 arithmetic as XGBoost's CPU predictor.

/// The learning objectives cutover evaluates exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Objective {
    /// `binary:logistic`: probability of the positive class.
    BinaryLogistic,
    /// `binary:logitraw`: the raw margin.
    BinaryLogitRaw,
    /// `reg:logistic`: logistic regression onto [0, 1].
    RegLogistic,
    /// `reg:squarederror` (and its old name `reg:linear`).
    RegSquaredError,
    /// `multi:softprob` with this many classes: a probability per class.
    MultiSoftprob(usize),
    /// `multi:softmax` with this many classes: the index of the most likely class.
    MultiSoftmax(usize),
}

impl Objective {
    /// Parses XGBoost's objective name; `None` for objectives cutover does not evaluate.
    pub fn from_name(name: &str, num_class: usize) -> Option<Objective> {
        Some(match name {
            "binary:logistic" => Objective::BinaryLogistic,
            "binary:logitraw" => Objective::BinaryLogitRaw,
            "reg:logistic" => Objective::RegLogistic,
            "reg:squarederror" | "reg:linear" => Objective::RegSquaredError,
            "multi:softprob" => Objective::MultiSoftprob(num_class),
            "multi:softmax" => Objective::MultiSoftmax(num_class),
            _ => return None,
        })
    }

    /// XGBoost's name for the objective.
    pub fn name(self) -> &'static str {
        match self {
            Objective::BinaryLogistic => "binary:logistic",
            Objective::BinaryLogitRaw => "binary:logitraw",
            Objective::RegLogistic => "reg:logistic",
            Objective::RegSquaredError => "reg:squarederror",
            Objective::MultiSoftprob(_) => "multi:softprob",
            Objective::MultiSoftmax(_) => "multi:softmax",
        }
    }

    /// Number of margins per row.
    pub fn num_groups(self) -> usize {
        match self {
            Objective::MultiSoftprob(k) | Objective::MultiSoftmax(k) => k,
            _ => 1,
        }
    }

    /// Number of transformed predictions per row.
    pub fn num_outputs(self) -> usize {
        match self {
            Objective::MultiSoftprob(k) => k,
            _ => 1,
        }
    }

    /// The base margin for a stored `base_score`.
    ///
    /// Logistic objectives store a probability, turned into a margin with the logit in f32;
    /// the others store the margin itself.
    pub fn base_margin(self, base_score: f32) -> f32 {
        if self.base_score_is_probability() {
            logit(base_score)
        } else {
            base_score
        }
    }

    /// Whether this objective stores its base score as a probability. `binary:logitraw`
    /// does not: its base score is the margin itself (checked against xgboost 1.7 to 3.2).
    pub fn base_score_is_probability(self) -> bool {
        matches!(self, Objective::BinaryLogistic | Objective::RegLogistic)
    }

    /// Turns one row's margins into its predictions (`out.len() == num_outputs()`).
    pub fn transform(self, margins: &[f32], out: &mut [f32]) {
        match self {
            Objective::BinaryLogistic | Objective::RegLogistic => out[0] = sigmoid(margins[0]),
            Objective::BinaryLogitRaw | Objective::RegSquaredError => out[0] = margins[0],
            Objective::MultiSoftprob(_) => softmax(margins, out),
            Objective::MultiSoftmax(_) => out[0] = argmax(margins) as f32,
        }
    }
}

/// `-ln(1/p - 1)` in f32, with p clamped to [1e-6, 1 - 1e-6] as XGBoost does.
pub fn logit(p: f32) -> f32 {
    let p = p.clamp(1e-6, 1.0 - 1e-6);
    -(1.0f32 / p - 1.0).ln()
}

/// XGBoost's sigmoid: `1 / (1 + exp(-x))` in f32, with the exponent capped at 88.7.
pub fn sigmoid(x: f32) -> f32 {
    const EPS: f32 = 1e-16;
    let e = (-x).min(88.7);
    1.0 / (e.exp() + 1.0 + EPS)
}

/// XGBoost's softmax: f32 maximum, f32 exponentials, an f64 sum divided in f32.
pub fn softmax(margins: &[f32], out: &mut [f32]) {
    let max = margins.iter().copied().fold(margins[0], f32::max);
    let mut sum = 0.0f64;
    for (o, &m) in out.iter_mut().zip(margins) {
        *o = (m - max).exp();
        sum += f64::from(*o);
    }
    let sum = sum as f32;
    for o in out.iter_mut() {
        *o /= sum;
    }
}

/// Index of the first largest margin, as XGBoost's `multi:softmax` reports it.
pub fn argmax(margins: &[f32]) -> usize {
    let mut best = 0;
    for (i, &m) in margins.iter().enumerate() {
        if m > margins[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logit_inverts_sigmoid_near_the_middle() {
        assert_eq!(logit(0.5), 0.0);
        assert!((sigmoid(logit(0.8)) - 0.8).abs() < 1e-6);
        assert_eq!(logit(0.0), logit(1e-6));
    }

    #[test]
    fn sigmoid_saturates_without_overflow() {
        assert_eq!(sigmoid(-1000.0), 1.0 / (88.7f32.exp() + 1.0));
        assert!(sigmoid(-1000.0) > 0.0);
        assert_eq!(sigmoid(1000.0), 1.0);
    }

    #[test]
    fn softmax_sums_to_one_and_argmax_takes_the_first_tie() {
        let mut out = [0.0; 3];
        softmax(&[1.0, 2.0, 2.0], &mut out);
        assert!((out.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(out[1], out[2]);
        assert_eq!(argmax(&[1.0, 2.0, 2.0]), 1);
    }
}
