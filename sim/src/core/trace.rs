//! What a report draws beyond the history: every guardrail's statistic at each evaluation
//! with its 95 % interval and the judge's evidence, each stage's statistics, and the
//! distribution of score differences. Kept by full runs and the live router; sweeps keep
//! none of it.

use cutover_migration::features::parity::decile_edges;
use cutover_migration::features::spec_diff::{diff_specs, SpecDifference};
use cutover_migration::features::{ParityStats, Pipeline};
use cutover_migration::registry::Entry;
use cutover_migration::schema::Record;
use cutover_migration::stack::ScoringStack;
use serde::Serialize;

use super::guardrail::Guardrail;
use super::monitor::{Observation, Window, WindowSummary};

/// One guardrail at one evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GuardrailPoint {
    /// Scenario time, s.
    pub t_s: f64,
    /// The guardrail.
    pub guardrail: Guardrail,
    /// The evaluation window's statistic (null without data).
    pub observed: Option<f64>,
    /// Its limit.
    pub limit: f64,
    /// 95 % Wilson interval of a rate statistic over the window.
    pub interval: Option<(f64, f64)>,
    /// The sequential judge's evidence: this guardrail's part of the weighted sum it rolls
    /// back on when the sum reaches 1.
    pub evidence: Option<f64>,
}

/// One stage's statistics over the whole stage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageStats {
    /// The phase (`shadow`, `canary1`, ...).
    pub phase: String,
    /// The new stack's share.
    pub weight_pct: f64,
    /// When it began, s.
    pub entered_s: f64,
    /// When it ended (null while on).
    pub left_s: Option<f64>,
    /// The stage window's statistics.
    pub window: WindowSummary,
}

/// Bin edges of |score difference| for probabilities: exactly 0, then decades up to 1.
pub const SCORE_DIFF_EDGES: [f64; 7] = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0];
/// Bin edges for answers in a model's own units (regression): decades up to 10 000.
pub const UNIT_DIFF_EDGES: [f64; 7] = [1e-4, 1e-3, 1e-2, 1e-1, 1.0, 1e2, 1e4];

/// The distribution of |new score - legacy score| over requests both stacks answered.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ScoreDiffs {
    /// Requests with bit-equal scores.
    pub zero: u64,
    /// Per decade bin: (edge below, edge above], from 0 to 1e-6 up to 0.1 to 1.
    pub bins: [u64; 7],
    /// The bins' upper edges.
    pub edges: [f64; 7],
    /// Requests both answered.
    pub answered: u64,
    /// Of those, decisions that differ.
    pub flips: u64,
    /// Of those, answers that would be wrong to serve (flips, or past the regression tolerance).
    pub wrong: u64,
}

impl ScoreDiffs {
    fn add(&mut self, diff: f64, flipped: bool, wrong: bool) {
        self.answered += 1;
        self.flips += u64::from(flipped);
        self.wrong += u64::from(wrong);
        if diff == 0.0 {
            self.zero += 1;
        } else {
            let k = self.edges.iter().position(|&e| diff <= e).unwrap_or(self.edges.len() - 1);
            self.bins[k] += 1;
        }
    }

    /// Share of answered requests whose decision flipped.
    pub fn flip_rate(&self) -> Option<f64> {
        (self.answered > 0).then(|| self.flips as f64 / self.answered as f64)
    }
}

/// Everything a report reads of one rollout beyond its history.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Trace {
    /// The plan's guardrails (name, limit).
    pub guardrails: Vec<(Guardrail, f64)>,
    /// Per evaluation, per guardrail.
    pub points: Vec<GuardrailPoint>,
    /// Stages that ended.
    pub stages: Vec<StageStats>,
    /// Score differences over the whole run.
    pub score_diffs: ScoreDiffs,
    /// The current stage's phase name.
    pub phase: String,
    /// Keep about this many guardrail points (a live rollout that runs for days).
    #[serde(skip)]
    pub window: Option<usize>,
}

impl Trace {
    /// An empty trace for these guardrails; `units`: score differences are in a model's
    /// own units (regression).
    pub fn new(guardrails: Vec<(Guardrail, f64)>, units: bool) -> Trace {
        let edges = if units { UNIT_DIFF_EDGES } else { SCORE_DIFF_EDGES };
        Trace {
            guardrails,
            phase: "shadow".into(),
            score_diffs: ScoreDiffs { edges, ..ScoreDiffs::default() },
            ..Trace::default()
        }
    }

    /// One request's paired outcome.
    pub fn observe(&mut self, p: &Observation<'_>) {
        if p.answered {
            self.score_diffs.add(p.abs_score_diff, p.flipped, p.wrong);
        }
    }

    /// One evaluation of `window`, with the judge's evidence per guardrail.
    pub fn evaluation(&mut self, t_s: f64, window: &Window, evidence: &[(Guardrail, f64)]) {
        for &(guardrail, limit) in &self.guardrails {
            self.points.push(GuardrailPoint {
                t_s,
                guardrail,
                observed: guardrail.statistic(window),
                limit,
                interval: guardrail.interval(window),
                evidence: evidence.iter().find(|(n, _)| *n == guardrail).map(|&(_, e)| e),
            });
        }
        if let Some(keep) = self.window {
            if self.points.len() > keep + keep / 4 {
                self.points.drain(..self.points.len() - keep);
            }
        }
    }

    /// The sequential judge's weighted sum at each evaluation (the sum of the guardrails'
    /// parts): it reaches 1 at the evaluation that rolls back, and not before.
    pub fn evidence_sum(&self) -> Vec<(f64, f64)> {
        let mut out: Vec<(f64, f64)> = Vec::new();
        for p in &self.points {
            let Some(e) = p.evidence else { continue };
            match out.last_mut() {
                Some((t, sum)) if *t == p.t_s => *sum += e,
                _ => out.push((p.t_s, e)),
            }
        }
        out
    }

    /// The stage that ran from `entered_s` ended at `t_s` with `window`; `next` begins.
    pub fn stage_ended(&mut self, weight_pct: f64, entered_s: f64, t_s: f64, window: &Window, next: String) {
        let phase = std::mem::replace(&mut self.phase, next);
        self.stages.push(StageStats { phase, weight_pct, entered_s, left_s: Some(t_s), window: window.summary() });
    }
}

/// The two stacks' lineage: their registry entries, the differences between their feature
/// specs, and artifacts a fault swapped in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Lineage {
    /// The legacy stack's entry.
    pub legacy: Entry,
    /// The new stack's entry.
    pub new: Entry,
    /// Every semantic difference between the two specs.
    pub spec_differences: Vec<SpecDifference>,
    /// Artifacts a `model_artifact` fault served instead: (file, sha256).
    pub swapped_artifacts: Vec<(String, String)>,
    /// Specs a `spec_switch` fault switched the new path to, with what each changes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub switched_specs: Vec<SwitchedSpec>,
}

/// A spec a `spec_switch` fault switches the new path to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SwitchedSpec {
    /// The fault's position in the scenario.
    pub fault: usize,
    /// The spec file.
    pub file: String,
    /// Its sha256.
    pub sha256: String,
    /// What it changes against the new spec.
    pub differences: Vec<SpecDifference>,
}

impl Lineage {
    /// The lineage of two started stacks.
    pub fn of(legacy: &ScoringStack, new: &ScoringStack, swapped_artifacts: Vec<(String, String)>) -> Lineage {
        Lineage {
            legacy: legacy.entry().clone(),
            new: new.entry().clone(),
            spec_differences: diff_specs(legacy.pipeline(), new.pipeline()),
            swapped_artifacts,
            switched_specs: Vec::new(),
        }
    }
}

/// Parity statistics binned on the legacy path's deciles over reference requests (their
/// aggregates read as for entities never seen), per feature and segment.
pub fn parity_stats(legacy: &Pipeline, reference: &[Record], segments: Vec<String>) -> ParityStats {
    let features = legacy.output_names().to_vec();
    let mut values = legacy.values();
    let mut sample: Vec<Vec<f32>> = vec![Vec::new(); features.len()];
    for r in reference {
        for (a, agg) in values.aggregates.iter_mut().zip(legacy.aggregates()) {
            *a = if matches!(
                agg.function,
                cutover_migration::features::Function::Count | cutover_migration::features::Function::Sum
            ) {
                0.0
            } else {
                f64::NAN
            };
        }
        legacy.compute(&r.values, &mut values);
        for (col, v) in sample.iter_mut().zip(&values.row) {
            col.push(*v);
        }
    }
    let edges = sample.iter().map(|c| decile_edges(c)).collect();
    ParityStats::new(features, legacy.output_kinds(), edges, segments)
}
