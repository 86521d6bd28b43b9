//! Holding a stage on adverse evidence: while the judge's evidence leans against the new
//! stack, short of a rollback, the stage does not advance. The rule is pure (time and the
//! evidence are arguments), so the controller and the plan check's trials run this very
//! code.
//!
//! The evidence is the sequential judge's weighted sum `S` (it rolls back at 1), read at
//! every evaluation the judge passes (a window with no traffic, or too little, holds
//! anyway); `S / alpha` is the e-value of the judge's one supermartingale, whose
//! rollback threshold is `1 / alpha`. A stage is held from the look where the e-value
//! reaches the hold level `H` until it falls below the release level; under a clean
//! migration Ville's inequality bounds the chance of ever being held by `1 / H` (derived
//! in docs/sequential.md). A hold that lasts the plan's maximum ends as the plan says:
//! roll back (the default) or advance.

use serde::{Deserialize, Serialize};

/// What a stage held for its maximum does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnMaxHold {
    /// Roll back: the evidence leaned against the new stack for the whole maximum.
    #[default]
    RollBack,
    /// Go on as if released: the stage advances once its bake and requests allow.
    Advance,
}

/// The plan's hold, on the scale of the judge's sum (1 rolls back).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HoldRule {
    /// The sum at which a stage is held: the hold e-value times alpha.
    pub at: f64,
    /// The sum below which a held stage is released.
    pub release: f64,
    /// The longest hold, µs.
    pub max_us: u64,
    /// What a hold that lasts `max_us` does.
    pub on_max: OnMaxHold,
    /// The false-rollback budget: e-value = sum / alpha.
    pub alpha: f64,
}

/// A hold in progress.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Held {
    /// When it began, µs.
    pub since_us: u64,
}

/// What the rule says at one look.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HoldStep {
    /// Not held: the stage goes on as its bake allows.
    Free,
    /// Held (since `since_us`).
    Held {
        /// When the hold began, µs.
        since_us: u64,
    },
    /// Released at this look, after holding since `since_us`.
    Released {
        /// When the hold began, µs.
        since_us: u64,
    },
    /// Held for the plan's maximum (since `since_us`): the plan's `on_max_hold` applies.
    Expired {
        /// When the hold began, µs.
        since_us: u64,
    },
}

/// The default hold e-value for a false-rollback budget `alpha`: `1 / sqrt(alpha)`, the
/// geometric middle between no evidence (1) and a rollback (`1 / alpha`); a clean
/// migration is ever held with probability at most `sqrt(alpha)`.
pub fn default_hold_e_value(alpha: f64) -> f64 {
    1.0 / alpha.sqrt()
}

/// The default release e-value: 1, where the evidence no longer favours the alternatives
/// over the limit.
pub const DEFAULT_RELEASE_E_VALUE: f64 = 1.0;

impl HoldRule {
    /// The e-value of a sum.
    pub fn e_value(&self, sum: f64) -> f64 {
        sum / self.alpha
    }

    /// The rollback threshold as an e-value.
    pub fn e_value_threshold(&self) -> f64 {
        1.0 / self.alpha
    }

    /// One look at `now_us` with the judge's sum at `sum`; `held` is the hold in progress,
    /// updated.
    pub fn step(&self, held: &mut Option<Held>, now_us: u64, sum: f64) -> HoldStep {
        match held {
            None if sum >= self.at => {
                *held = Some(Held { since_us: now_us });
                HoldStep::Held { since_us: now_us }
            }
            None => HoldStep::Free,
            Some(h) => {
                let since_us = h.since_us;
                if sum < self.release {
                    *held = None;
                    HoldStep::Released { since_us }
                } else if now_us.saturating_sub(since_us) >= self.max_us {
                    *held = None;
                    HoldStep::Expired { since_us }
                } else {
                    HoldStep::Held { since_us }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> HoldRule {
        HoldRule { at: 0.1, release: 0.01, max_us: 100, on_max: OnMaxHold::RollBack, alpha: 0.01 }
    }

    #[test]
    fn a_hold_begins_at_its_level_and_ends_below_the_release_level_not_the_hold_level() {
        let (r, mut held) = (rule(), None);
        assert_eq!(r.step(&mut held, 0, 0.09), HoldStep::Free);
        assert_eq!(r.step(&mut held, 5, 0.1), HoldStep::Held { since_us: 5 });
        // Between the two levels it stays held (no flapping around one level).
        assert_eq!(r.step(&mut held, 10, 0.05), HoldStep::Held { since_us: 5 });
        assert_eq!(r.step(&mut held, 15, 0.009), HoldStep::Released { since_us: 5 });
        assert_eq!(r.step(&mut held, 20, 0.05), HoldStep::Free);
    }

    #[test]
    fn a_hold_expires_at_its_maximum_and_a_new_one_may_begin() {
        let (r, mut held) = (rule(), None);
        assert_eq!(r.step(&mut held, 0, 0.5), HoldStep::Held { since_us: 0 });
        assert_eq!(r.step(&mut held, 99, 0.5), HoldStep::Held { since_us: 0 });
        assert_eq!(r.step(&mut held, 100, 0.5), HoldStep::Expired { since_us: 0 });
        assert_eq!(r.step(&mut held, 105, 0.5), HoldStep::Held { since_us: 105 });
        assert!((r.e_value(0.5) - 50.0).abs() < 1e-9 && (r.e_value_threshold() - 100.0).abs() < 1e-9);
        assert!((default_hold_e_value(0.01) - 10.0).abs() < 1e-9);
    }
}
