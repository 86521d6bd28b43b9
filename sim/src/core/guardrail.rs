//! The guardrails, each defined once: its name, what it means, the statistic it reads
//! from a window, its confidence interval, the sequential test it gets, the answers it
//! applies to and where it sits in the order causes come before effects. The plan's
//! `[guardrails]` section, the monitor, the judges, the controller's success criteria, the
//! trace, the live router's gauges and the scenario checks all read this table, and every
//! one of them matches on [`Guardrail`] exhaustively: a guardrail added here and left out
//! of any of them is a compile error, not a silent skip.

use cutover_migration::answer::AnswerKind;
use serde::{Serialize, Serializer};

use super::monitor::{wilson, Window, WindowSummary};

/// A rollback trigger: an upper limit on one statistic of the new stack against legacy.
/// The plan writes it `max_<name>` (docs/contracts.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Guardrail {
    /// Decisions that differ.
    DecisionFlipRate,
    /// The mean absolute score difference.
    MeanAbsScoreDiff,
    /// The mean relative score difference (regression).
    MeanRelScoreDiff,
    /// Feature values that differ (the worst feature).
    FeatureMismatchRate,
    /// The new stack's failed calls.
    ErrorRate,
    /// The new stack's timed-out calls.
    TimeoutRate,
    /// The new stack's p99, ms.
    P99LatencyMs,
    /// The new stack's p99 over legacy's.
    P99LatencyRatio,
    /// Shadow calls without the production context.
    ShadowContextMismatchRate,
    /// The online store's freshness lag.
    FeatureStalenessS,
}

/// The requests a rate is counted over (one counter per kind and segment in the
/// sequential judge).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Every request.
    All = 0,
    /// Requests both stacks answered.
    Answered = 1,
    /// Shadow calls.
    Shadow = 2,
}

/// The sequential test a guardrail gets (docs/sequential.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Test {
    /// A Bernoulli rate over these requests, H0 p <= limit.
    Rate(Seen),
    /// One Bernoulli rate per feature, over every request.
    PerFeature,
    /// The new stack's latency above a bound (the limit in ms, or the limit times legacy's
    /// p99 when `relative`), H0 P(exceeding) <= 1 %.
    Exceedance {
        /// The bound is the limit times legacy's p99.
        relative: bool,
    },
    /// A bounded mean of the score differences (relative to legacy's answer, or absolute),
    /// H0 mean <= limit.
    Mean {
        /// Relative to legacy's answer.
        relative: bool,
    },
    /// A measured state, compared with its limit at each look.
    Direct,
}

/// The answers a guardrail applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answers {
    /// Every kind of answer.
    Any,
    /// Answers with a decision (binary, multiclass).
    Decisions,
    /// Numbers in the model's units (regression).
    Numbers,
}

/// A rate's events and trials over a window, `None` without data.
pub type Counts = fn(&Window) -> Option<(u64, u64)>;

/// A guardrail's definition.
#[derive(Debug, Clone, Copy)]
pub struct Definition {
    /// Its name (the plan's key is `max_` and this).
    pub name: &'static str,
    /// What it limits, in words.
    pub about: &'static str,
    /// Its statistic over a window; `None` without data for it.
    pub statistic: fn(&Window) -> Option<f64>,
    /// For a rate, its events and trials over a window (`None` without data): the
    /// window's 95 % interval is Wilson's on them.
    pub counts: Option<Counts>,
    /// Its sequential test.
    pub test: Test,
    /// The answers it applies to, and what to use instead on the others.
    pub answers: (Answers, &'static str),
    /// Its place when several trip at once: causes before effects (a lost context or a
    /// feature before the errors, latency and decisions they cause).
    pub cause_rank: u8,
    /// How a window's summary (the history's evaluations, timeline.csv, the report's charts)
    /// shows it.
    pub shown: Shown,
    /// The report's panel that shows its evidence in detail.
    pub panel: Panel,
}

/// How a guardrail shows in a window's summary. The summary is part of every evaluation in
/// the history (and so of its hash): what it holds is fixed; what each guardrail reads of
/// it is said here.
#[derive(Debug, Clone, Copy)]
pub enum Shown {
    /// As a value of its own: timeline.csv's column of this name, when it has one.
    Value {
        /// Whether timeline.csv has a column for it, named as the guardrail (if not: the
        /// history and the charts only).
        column: bool,
        /// Its value in a window's summary.
        read: Read,
    },
    /// Through the stacks' latency quantiles (timeline.csv's six latency columns).
    Latency,
    /// Not in a window's summary: where it shows instead.
    Elsewhere(&'static str),
}

/// The report's panels that show a guardrail's evidence in detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Panel {
    /// Score differences and decision flips.
    Scores,
    /// Feature parity by segment.
    Parity,
    /// Latency per stack per stage.
    Latency,
    /// Errors and timeouts of the new stack.
    Errors,
    /// The rollout timeline (the store's freshness, shadow calls).
    Timeline,
}

impl Panel {
    /// Its id in the report (`#panel-<id>`).
    pub fn id(self) -> &'static str {
        match self {
            Panel::Scores => "scores",
            Panel::Parity => "parity",
            Panel::Latency => "latency",
            Panel::Errors => "errors",
            Panel::Timeline => "timeline",
        }
    }
}

/// A value read from a window's summary.
pub type Read = fn(&WindowSummary) -> Option<f64>;

/// The latency columns of timeline.csv, legacy's then the new stack's.
pub const LATENCY_COLUMNS: [&str; 6] =
    ["legacy_p50_ms", "legacy_p95_ms", "legacy_p99_ms", "new_p50_ms", "new_p95_ms", "new_p99_ms"];

fn rate(k: u64, n: u64) -> Option<f64> {
    (n > 0).then(|| k as f64 / n as f64)
}

fn answered_mean(w: &Window, sum: f64) -> Option<f64> {
    (w.answered > 0).then(|| sum / w.answered as f64)
}

fn p99_ms(w: &Window, legacy: bool) -> Option<f64> {
    Window::latency_ms(if legacy { &w.legacy_latency } else { &w.new_latency }, 0.99)
}

impl Guardrail {
    /// Every guardrail, in the plan's order.
    pub const ALL: [Guardrail; 10] = [
        Guardrail::DecisionFlipRate,
        Guardrail::MeanAbsScoreDiff,
        Guardrail::MeanRelScoreDiff,
        Guardrail::FeatureMismatchRate,
        Guardrail::ErrorRate,
        Guardrail::TimeoutRate,
        Guardrail::P99LatencyMs,
        Guardrail::P99LatencyRatio,
        Guardrail::ShadowContextMismatchRate,
        Guardrail::FeatureStalenessS,
    ];

    /// Its definition.
    pub fn def(self) -> Definition {
        use Guardrail::*;
        let any = (Answers::Any, "");
        match self {
            DecisionFlipRate => Definition {
                name: "decision_flip_rate",
                about: "share of answered requests whose decision differs between the stacks",
                statistic: |w| rate(w.flips, w.answered),
                counts: Some(|w| (w.answered > 0).then_some((w.flips, w.answered))),
                test: Test::Rate(Seen::Answered),
                answers: (Answers::Decisions, "use max_mean_abs_score_diff or max_mean_rel_score_diff"),
                cause_rank: 6,
                shown: Shown::Value { column: true, read: |s| s.flip_rate },
                panel: Panel::Scores,
            },
            MeanAbsScoreDiff => Definition {
                name: "mean_abs_score_diff",
                about: "mean |new score - legacy score| (a probability; the largest class's; a regression's own units)",
                statistic: |w| answered_mean(w, w.sum_abs_diff),
                counts: None,
                test: Test::Mean { relative: false },
                answers: any,
                cause_rank: 7,
                shown: Shown::Value { column: true, read: |s| s.mean_abs_score_diff },
                panel: Panel::Scores,
            },
            MeanRelScoreDiff => Definition {
                name: "mean_rel_score_diff",
                about: "mean |new - legacy| / |legacy| of a regression's answers",
                statistic: |w| answered_mean(w, w.sum_rel_diff),
                counts: None,
                test: Test::Mean { relative: true },
                answers: (Answers::Numbers, "use max_mean_abs_score_diff"),
                cause_rank: 8,
                shown: Shown::Value { column: false, read: |s| s.mean_rel_score_diff },
                panel: Panel::Scores,
            },
            FeatureMismatchRate => Definition {
                name: "feature_mismatch_rate",
                about: "share of requests whose value of one feature differs (the worst feature)",
                statistic: |w| w.worst_feature().and_then(|(_, c)| rate(c, w.requests)),
                counts: Some(|w| Some((w.worst_feature()?.1, w.requests)).filter(|&(_, n)| n > 0)),
                test: Test::PerFeature,
                answers: any,
                cause_rank: 1,
                shown: Shown::Value { column: true, read: |s| s.feature_mismatch_rate },
                panel: Panel::Parity,
            },
            ErrorRate => Definition {
                name: "error_rate",
                about: "share of the new stack's calls that fail",
                statistic: |w| rate(w.new_errors, w.requests),
                counts: Some(|w| (w.requests > 0).then_some((w.new_errors, w.requests))),
                test: Test::Rate(Seen::All),
                answers: any,
                cause_rank: 2,
                shown: Shown::Value { column: true, read: |s| s.error_rate },
                panel: Panel::Errors,
            },
            TimeoutRate => Definition {
                name: "timeout_rate",
                about: "share of the new stack's calls that time out",
                statistic: |w| rate(w.new_timeouts, w.requests),
                counts: Some(|w| (w.requests > 0).then_some((w.new_timeouts, w.requests))),
                test: Test::Rate(Seen::All),
                answers: any,
                cause_rank: 3,
                shown: Shown::Value { column: true, read: |s| s.timeout_rate },
                panel: Panel::Errors,
            },
            P99LatencyMs => Definition {
                name: "p99_latency_ms",
                about: "the new stack's p99 latency, ms; tested on the tail past the limit: at most 1 % / k of \
                        calls past k times it (k = 1, 2, 4, 8), slow calls in a row counted as one",
                statistic: |w| p99_ms(w, false),
                counts: None,
                test: Test::Exceedance { relative: false },
                answers: any,
                cause_rank: 4,
                shown: Shown::Latency,
                panel: Panel::Latency,
            },
            P99LatencyRatio => Definition {
                name: "p99_latency_ratio",
                about: "the new stack's p99 latency over legacy's; tested on the tail past the limit times \
                        legacy's p99: at most 1 % / k of calls past k times it (k = 1, 2, 4, 8), slow calls in a \
                        row counted as one, calls legacy was as slow on not counted",
                statistic: |w| Some(p99_ms(w, false)? / p99_ms(w, true)?),
                counts: None,
                test: Test::Exceedance { relative: true },
                answers: any,
                cause_rank: 5,
                shown: Shown::Latency,
                panel: Panel::Latency,
            },
            ShadowContextMismatchRate => Definition {
                name: "shadow_context_mismatch_rate",
                about: "share of shadow calls that lacked the production context",
                // No shadow call in the window: nothing lost (0, not "no data").
                statistic: |w| rate(w.shadow_context_mismatches, w.shadow_calls).or(Some(0.0)),
                counts: Some(|w| (w.shadow_calls > 0).then_some((w.shadow_context_mismatches, w.shadow_calls))),
                test: Test::Rate(Seen::Shadow),
                answers: any,
                cause_rank: 0,
                shown: Shown::Elsewhere("the guardrails panel and the sequential evidence"),
                panel: Panel::Timeline,
            },
            FeatureStalenessS => Definition {
                name: "feature_staleness_s",
                about: "the online store's freshness lag, seconds",
                statistic: |w| w.staleness_s,
                counts: None,
                test: Test::Direct,
                answers: any,
                cause_rank: 9,
                shown: Shown::Value { column: true, read: |s| s.staleness_s },
                panel: Panel::Timeline,
            },
        }
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        self.def().name
    }

    /// timeline.csv's guardrail columns, from the definitions in the plan's order: each
    /// guardrail's own column, and the latency columns once where the first guardrail read
    /// through them stands.
    pub fn timeline_columns() -> Vec<(&'static str, Read)> {
        let mut out: Vec<(&'static str, Read)> = Vec::new();
        let mut latency = false;
        for g in Guardrail::ALL {
            match g.def().shown {
                Shown::Value { column: true, read } => out.push((g.name(), read)),
                Shown::Latency if !latency => {
                    latency = true;
                    let quantiles: [Read; 6] = [
                        |s| s.legacy_ms[0],
                        |s| s.legacy_ms[1],
                        |s| s.legacy_ms[2],
                        |s| s.new_ms[0],
                        |s| s.new_ms[1],
                        |s| s.new_ms[2],
                    ];
                    out.extend(LATENCY_COLUMNS.into_iter().zip(quantiles));
                }
                Shown::Value { column: false, .. } | Shown::Latency | Shown::Elsewhere(_) => {}
            }
        }
        out
    }

    /// The guardrail of this name.
    pub fn from_name(name: &str) -> Option<Guardrail> {
        Guardrail::ALL.into_iter().find(|g| g.name() == name)
    }

    /// Its statistic over `window`: `None` when the window has no data for it.
    pub fn statistic(self, window: &Window) -> Option<f64> {
        (self.def().statistic)(window)
    }

    /// The 95 % Wilson interval of a rate's statistic over `window` (`None` for the other
    /// statistics, or without data).
    pub fn interval(self, window: &Window) -> Option<(f64, f64)> {
        let (k, n) = self.def().counts?(window)?;
        Some(wilson(k, n))
    }

    /// Whether it applies to answers of this kind; if not, the answers it applies to and
    /// what to use instead.
    pub fn applies_to(self, kind: AnswerKind) -> Result<(), (&'static str, &'static str)> {
        let (answers, instead) = self.def().answers;
        let applies = match answers {
            Answers::Any => true,
            Answers::Decisions => kind != AnswerKind::Regression,
            Answers::Numbers => kind == AnswerKind::Regression,
        };
        let only = match answers {
            Answers::Any => "every answer",
            Answers::Decisions => "answers with a decision (binary, multiclass)",
            Answers::Numbers => "regression answers",
        };
        if applies {
            Ok(())
        } else {
            Err((only, instead))
        }
    }
}

impl std::fmt::Display for Guardrail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Guardrail {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_distinct_and_found_again() {
        for (i, g) in Guardrail::ALL.into_iter().enumerate() {
            assert_eq!(Guardrail::from_name(g.name()), Some(g));
            assert!(Guardrail::ALL[..i].iter().all(|o| o.name() != g.name()), "{g} twice");
            assert!(!g.def().about.is_empty());
        }
        assert_eq!(Guardrail::from_name("latency"), None);
    }

    #[test]
    fn causes_come_in_one_order() {
        let mut ranks: Vec<u8> = Guardrail::ALL.iter().map(|g| g.def().cause_rank).collect();
        ranks.sort_unstable();
        ranks.dedup();
        assert_eq!(ranks.len(), Guardrail::ALL.len(), "two guardrails share a place");
    }

    #[test]
    fn rates_have_intervals_around_their_statistic() {
        let mut w = Window::new(2);
        w.requests = 1000;
        w.answered = 990;
        w.flips = 10;
        w.new_errors = 20;
        w.new_timeouts = 5;
        w.feature_mismatches = vec![3, 7];
        w.shadow_calls = 100;
        w.shadow_context_mismatches = 1;
        for g in Guardrail::ALL {
            match (g.def().counts.is_some(), g.def().test) {
                (true, Test::Rate(_) | Test::PerFeature) => {
                    let (lo, hi) = g.interval(&w).unwrap();
                    let v = g.statistic(&w).unwrap();
                    assert!(lo < v && v < hi, "{g}: {v} outside ({lo}, {hi})");
                }
                (false, Test::Rate(_) | Test::PerFeature) => panic!("{g}: a rate without counts"),
                (_, _) => assert_eq!(g.interval(&w), None, "{g}"),
            }
        }
        assert_eq!(Guardrail::FeatureMismatchRate.statistic(&w), Some(0.007));
        assert_eq!(Guardrail::ErrorRate.statistic(&w), Some(0.02));
    }

    #[test]
    fn answers_decide_which_apply() {
        use AnswerKind::*;
        assert!(Guardrail::DecisionFlipRate.applies_to(Regression).is_err());
        assert!(Guardrail::DecisionFlipRate.applies_to(Multiclass).is_ok());
        assert!(Guardrail::MeanRelScoreDiff.applies_to(Binary).is_err());
        assert!(Guardrail::MeanRelScoreDiff.applies_to(Regression).is_ok());
        for g in Guardrail::ALL {
            assert!(
                [Binary, Multiclass, Regression].iter().any(|&k| g.applies_to(k).is_ok()),
                "{g} applies to nothing"
            );
        }
    }
}
