//! The rollout core: everything both faces run, pure (time is an argument). The plan's
//! controller, the pairing of two answers into an observation, the monitor's windows,
//! the judges, one rollout's history and trace, and the verdict. The simulated world and
//! the live router call into it; nothing here knows either.

pub mod baseline;
pub mod checkpoint;
pub mod controller;
pub mod guardrail;
pub mod history;
pub mod hold;
pub mod judge;
pub mod monitor;
pub mod pairing;
pub mod plan;
pub mod rollout;
pub mod sequential;
pub mod trace;
pub mod user_path;
pub mod verdict;

pub use controller::{Controller, Decision, Phase, Plan};
pub use guardrail::Guardrail;

/// Microseconds in a second: the core's times are microseconds of scenario time.
pub const SECOND: u64 = 1_000_000;
