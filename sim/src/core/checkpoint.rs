//! What a rollout keeps across a restart of its router: the controller's place in the plan,
//! the judge's evidence, the open windows, and what the rollout found so far. A router
//! that writes it before each decision takes effect and resumes from it never repeats or
//! forgets a decision, and never spends its false-rollback budget a second time (the
//! judge's statistics go on from where they were). Pure data: the live face writes it.
//!
//! Floats are kept as their bits: a restored judge computes exactly what the saved one
//! would have (its statistics may be infinite or NaN where JSON numbers cannot go).

use serde::{Deserialize, Serialize};

use super::controller::Phase;
use super::judge::Trigger;
use super::monitor::Window;

/// A float as its bits.
pub mod bits {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `x` as its bits.
    pub fn serialize<S: Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(x.to_bits())
    }

    /// Reads a float from its bits.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        u64::deserialize(d).map(f64::from_bits)
    }

    /// Floats as their bits.
    pub mod vec {
        use serde::{Deserialize, Deserializer, Serializer};

        /// Writes every float as its bits.
        pub fn serialize<S: Serializer>(x: &[f64], s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq(x.iter().map(|v| v.to_bits()))
        }

        /// Reads floats from their bits.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
            Vec::<u64>::deserialize(d).map(|v| v.into_iter().map(f64::from_bits).collect())
        }
    }

    /// An optional float as its bits.
    pub mod opt {
        use serde::{Deserialize, Deserializer, Serializer};

        /// Writes the float, if any, as its bits.
        pub fn serialize<S: Serializer>(x: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
            match x {
                Some(v) => s.serialize_some(&v.to_bits()),
                None => s.serialize_none(),
            }
        }

        /// Reads an optional float from its bits.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
            Option::<u64>::deserialize(d).map(|v| v.map(f64::from_bits))
        }
    }
}

/// A trigger, its numbers as bits (a manual rollback's are NaN).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriggerState {
    guardrail: String,
    feature: Option<String>,
    segment: Option<String>,
    #[serde(with = "bits")]
    observed: f64,
    #[serde(with = "bits")]
    limit: f64,
    #[serde(default, with = "bits::opt")]
    held_s: Option<f64>,
}

impl From<&Trigger> for TriggerState {
    fn from(t: &Trigger) -> TriggerState {
        TriggerState {
            guardrail: t.guardrail.clone(),
            feature: t.feature.clone(),
            segment: t.segment.clone(),
            observed: t.observed,
            limit: t.limit,
            held_s: t.held_s,
        }
    }
}

impl From<TriggerState> for Trigger {
    fn from(t: TriggerState) -> Trigger {
        Trigger {
            guardrail: t.guardrail,
            feature: t.feature,
            segment: t.segment,
            observed: t.observed,
            limit: t.limit,
            held_s: t.held_s,
        }
    }
}

/// A latency histogram as its recorded (value, count) pairs.
pub mod histogram {
    use hdrhistogram::Histogram;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes the recorded values.
    pub fn serialize<S: Serializer>(h: &Histogram<u64>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(h.iter_recorded().map(|v| (v.value_iterated_to(), v.count_at_value())))
    }

    /// Records them into a histogram of the monitor's bounds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Histogram<u64>, D::Error> {
        let values = Vec::<(u64, u64)>::deserialize(d)?;
        let mut h = Histogram::new_with_bounds(1, 3_600_000_000, 3).map_err(serde::de::Error::custom)?;
        for (v, n) in values {
            h.saturating_record_n(v, n);
        }
        Ok(h)
    }
}

/// The controller's place in the plan and its judge's evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControllerState {
    /// The phase.
    pub phase: Phase,
    /// When it entered the phase, µs.
    pub entered_us: u64,
    /// Paired requests in the stage.
    pub stage_requests: u64,
    /// When it promoted.
    pub promoted_us: Option<u64>,
    /// Whether retirement is allowed.
    pub retirement_allowed: bool,
    /// The last breach.
    pub last_breach: Option<TriggerState>,
    /// The hold in progress (absent in states written before holds existed).
    #[serde(default)]
    pub held: Option<super::hold::Held>,
    /// The judge's own state (see [`super::judge::Judge::save`]).
    pub judge: serde_json::Value,
}

/// A rollout's state as of a moment, taken under its lock and written out later (the
/// judge's part, the larger, serialized only then).
pub struct RolloutSnapshot {
    /// All but the judge's state.
    pub state: RolloutState,
    /// The judge's, when called.
    pub judge: super::judge::JudgeSnapshot,
}

impl RolloutSnapshot {
    /// The state, the judge's included.
    pub fn into_state(self) -> RolloutState {
        let mut state = self.state;
        state.controller.judge = (self.judge)();
        state
    }
}

/// A rollout as its router left it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RolloutState {
    /// The controller.
    pub controller: ControllerState,
    /// Evidence since the last evaluation.
    pub eval_window: Window,
    /// Evidence since the stage began.
    pub stage_window: Window,
    /// First breach at or after the first fault.
    pub detected_us: Option<u64>,
    /// When it rolled back.
    pub rollback_us: Option<u64>,
    /// Why.
    pub trigger: Option<TriggerState>,
    /// (weight as bits, entered, left) per stage.
    pub stages: Vec<(u64, u64, Option<u64>)>,
    /// Invariant violations in words.
    pub violations: Vec<String>,
    /// Holds so far (absent in states written before holds existed).
    #[serde(default)]
    pub holds: Vec<super::verdict::HoldSpan>,
    /// The history's hash so far, and how many events it holds.
    pub history_sha256: String,
    /// Events pushed so far.
    pub history_pushed: u64,
}
