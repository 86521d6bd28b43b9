//! The baseline check both faces make of a recorded file: whether the legacy path (in
//! process, or the team's own service behind the router) reproduces the legacy answers the
//! file recorded, row by row, with the first that differs named.

use serde::Serialize;

use super::verdict::Expectation;

/// Whether the in-process legacy path reproduces the recorded legacy answers.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Baseline {
    /// Rows with a recorded score.
    pub scores: u64,
    /// Of those, recomputed within [`SCORE_TOLERANCE`].
    pub scores_matched: u64,
    /// Of those, bit for bit.
    pub scores_exact: u64,
    /// The largest |recorded - recomputed| score.
    pub max_abs_score_diff: f64,
    /// Rows with a recorded decision.
    pub decisions: u64,
    /// Of those, recomputed equal.
    pub decisions_matched: u64,
    /// The first row that differs, in words.
    pub first_mismatch: Option<String>,
    /// The decision labels, for the words.
    #[serde(skip)]
    pub labels: Vec<String>,
}

/// Recorded and recomputed scores agree within this (recorded files print decimals).
pub const SCORE_TOLERANCE: f64 = 1e-6;

impl Baseline {
    /// One row's recorded answer against the recomputed one.
    pub fn observe(&mut self, line: u64, recorded: (Option<f32>, Option<u32>), computed: (f32, Option<u32>)) {
        if let Some(s) = recorded.0 {
            self.scores += 1;
            let d = f64::from((s - computed.0).abs());
            self.max_abs_score_diff = self.max_abs_score_diff.max(d);
            self.scores_exact += u64::from(s.to_bits() == computed.0.to_bits());
            if d <= SCORE_TOLERANCE {
                self.scores_matched += 1;
            } else if self.first_mismatch.is_none() {
                self.first_mismatch = Some(format!("line {line}: recorded score {s}, recomputed {}", computed.0));
            }
        }
        if let Some(d) = recorded.1 {
            self.decisions += 1;
            if Some(d) == computed.1 {
                self.decisions_matched += 1;
            } else if self.first_mismatch.is_none() {
                let word = |d: Option<u32>| match d {
                    Some(d) => self.labels.get(d as usize).cloned().unwrap_or_else(|| d.to_string()),
                    None => "none".into(),
                };
                self.first_mismatch =
                    Some(format!("line {line}: recorded decision {}, recomputed {}", word(Some(d)), word(computed.1)));
            }
        }
    }

    /// The expectation it makes, when anything was recorded.
    pub fn expectation(&self) -> Option<Expectation> {
        if self.scores == 0 && self.decisions == 0 {
            return None;
        }
        let passed = self.scores_matched == self.scores && self.decisions_matched == self.decisions;
        let mut detail = format!(
            "the in-process legacy path reproduced {} of {} recorded scores (within {SCORE_TOLERANCE}; {} bit for bit; largest difference {:.3e}) and {} of {} recorded decisions",
            self.scores_matched, self.scores, self.scores_exact, self.max_abs_score_diff, self.decisions_matched, self.decisions
        );
        if let Some(m) = &self.first_mismatch {
            detail += &format!("; first difference at {m}");
        }
        Some(Expectation { name: "legacy_reproduces_recorded".into(), passed, detail })
    }
}
