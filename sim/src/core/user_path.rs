//! The user's path, modelled once for both faces: when the user's answer comes, and the
//! invariants every routed request keeps. The live router measures the time on the wall
//! clock and the simulator computes it with [`user_ms`], which models what the router does;
//! both check [`violations`] on every request they pair.

/// The user's end-to-end time, ms, from the two calls' service times. Routed to legacy:
/// legacy's call. Routed to the new stack and answered: its call. Routed to the new stack
/// and failed (an error or a timeout): legacy's answer, whose call the router starts beside
/// the new one (the fallback already in flight), so the user waits for the later of the two
/// calls, never their sum (docs/simulator.md).
pub fn user_ms(routed_new: bool, new_failed: bool, legacy_ms: f64, new_ms: f64) -> f64 {
    match (routed_new, new_failed) {
        (true, false) => new_ms,
        (true, true) => new_ms.max(legacy_ms),
        (false, _) => legacy_ms,
    }
}

/// An invariant of the user's path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invariant {
    /// A request goes to the new stack only when its entity's bucket is below the weight.
    ShareWithinWeight,
    /// Once a rollback takes effect, nothing is routed to the new stack.
    NothingToNewAfterRollback,
    /// A user never sees a failure the new stack caused while legacy could answer.
    NoFailureWhileLegacyHealthy,
}

impl Invariant {
    /// Its name in the history (`violation` events).
    pub fn name(self) -> &'static str {
        match self {
            Invariant::ShareWithinWeight => "new-stack share never above the stage weight",
            Invariant::NothingToNewAfterRollback => "nothing routed to new after a rollback",
            Invariant::NoFailureWhileLegacyHealthy => "no user-visible failure while legacy is healthy",
        }
    }
}

/// One routed request, as the invariants read it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Routed {
    /// The request's number (its id live).
    pub index: u64,
    /// Whether it went to the new stack.
    pub routed_new: bool,
    /// Its entity's bucket, percent.
    pub bucket: f64,
    /// The stage weight it was routed at, percent.
    pub weight: f64,
    /// Whether it was routed after a rollback had taken effect.
    pub after_rollback: bool,
    /// Whether the user saw a failure.
    pub user_failed: bool,
    /// Whether legacy answered.
    pub legacy_ok: bool,
    /// Whether the new stack's call erred (else, when the user saw a failure, it timed out
    /// or was too slow).
    pub new_erred: bool,
}

/// The invariants `r` breaks, each with what happened.
pub fn violations(r: &Routed) -> impl Iterator<Item = (Invariant, String)> + '_ {
    let share = (r.routed_new && r.bucket >= r.weight).then(|| {
        let detail = format!("entity bucket {:.2} % routed to new at weight {} %", r.bucket, r.weight);
        (Invariant::ShareWithinWeight, detail)
    });
    let rollback = (r.routed_new && r.after_rollback).then(|| {
        let detail = format!("request {} went to the new stack after the rollback", r.index);
        (Invariant::NothingToNewAfterRollback, detail)
    });
    let failure = (r.user_failed && r.legacy_ok && r.routed_new).then(|| {
        let how = if r.new_erred { "error" } else { "timeout" };
        let detail = format!("request {} failed for the user after the new stack's {how}", r.index);
        (Invariant::NoFailureWhileLegacyHealthy, detail)
    });
    [share, rollback, failure].into_iter().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_canary_call_costs_the_later_of_the_two_calls() {
        assert_eq!(user_ms(false, true, 8.0, 150.0), 8.0);
        assert_eq!(user_ms(true, false, 8.0, 30.0), 30.0);
        // The fallback was in flight beside the new call: the later of the two.
        assert_eq!(user_ms(true, true, 8.0, 150.0), 150.0);
        assert_eq!(user_ms(true, true, 40.0, 2.0), 40.0);
    }

    #[test]
    fn each_invariant_fires_on_its_own_breach_only() {
        let fine = Routed {
            index: 7,
            routed_new: true,
            bucket: 3.0,
            weight: 5.0,
            after_rollback: false,
            user_failed: false,
            legacy_ok: true,
            new_erred: false,
        };
        assert_eq!(violations(&fine).count(), 0);
        let names = |r: Routed| violations(&r).map(|(i, _)| i).collect::<Vec<_>>();
        assert_eq!(names(Routed { bucket: 5.0, ..fine }), [Invariant::ShareWithinWeight]);
        assert_eq!(names(Routed { after_rollback: true, ..fine }), [Invariant::NothingToNewAfterRollback]);
        assert_eq!(names(Routed { user_failed: true, ..fine }), [Invariant::NoFailureWhileLegacyHealthy]);
        // Legacy down too: the failure is not the new stack's doing.
        assert_eq!(names(Routed { user_failed: true, legacy_ok: false, ..fine }), []);
        // Served by legacy: none of them applies.
        let legacy = Routed { routed_new: false, bucket: 90.0, after_rollback: true, user_failed: true, ..fine };
        assert_eq!(names(legacy), []);
        let (_, detail) = violations(&Routed { user_failed: true, ..fine }).next().unwrap();
        assert_eq!(detail, "request 7 failed for the user after the new stack's timeout");
    }
}
