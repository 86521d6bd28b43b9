//! `cutover-sim`: the deterministic world. Seeded traffic through the legacy and new
//! serving stacks side by side, faults at named points of the request path, a sticky
//! router, a monitor pairing the two answers of every request, a pure rollout controller
//! with pluggable judges, one ordered history with a hash, and checkers that read it.
//!
//! No wall clock, no OS entropy, no unordered iteration: one seed in, one history out.
#![deny(missing_docs)]

pub mod controller;
pub mod dashboard;
pub mod faults;
pub mod history;
pub mod judge;
pub mod monitor;
pub mod param;
pub mod replay;
pub mod report;
pub mod rollout;
pub mod scenario;
pub mod sequential;
pub mod streams;
pub mod suite;
pub mod sweep;
pub mod trace;
pub mod world;

pub use controller::{Controller, Decision, Phase, Plan};
pub use scenario::{LoadedScenario, ScenarioError};
pub use world::{run, run_policies, run_recorded, Mode, RunError, RunResult};
