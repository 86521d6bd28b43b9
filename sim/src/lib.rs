//! `cutover-sim`: the rollout core both faces run, and the deterministic world.
//!
//! * [`core`]: the plan's controller, the pairing step, the monitor, the judges, one
//!   rollout's history, trace and verdict; pure, shared with the live router.
//! * [`figures`]: the median, p95 and worst over runs, one rule each.
//! * [`scenario`], [`faults`], [`streams`]: the plan file, the faults it declares (plain
//!   data, resolved here, intercepted by either face), and named seeded streams.
//! * [`world`]: seeded traffic through the legacy and new stacks side by side, faults at
//!   named points of the request path, sticky routing, sweeps and replays; one seed in,
//!   one history out.
//! * [`check`]: the plan check, what a plan can catch before any traffic (the judge alone
//!   on the plan's traffic).
//! * [`report`]: the files a run writes and the dashboards, from either face's results.
//!
//! No wall clock, no OS entropy, no unordered iteration.
#![deny(missing_docs)]

pub mod check;
pub mod core;
pub mod faults;
pub mod figures;
pub mod param;
pub mod report;
pub mod scenario;
pub mod streams;
pub mod world;

pub use crate::core::{Controller, Decision, Phase, Plan};
pub use scenario::{LoadedScenario, ScenarioError};
pub use world::{run, run_policies, run_recorded, Mode, RunError, RunResult};
