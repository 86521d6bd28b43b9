//! Scenario files (TOML): the traffic, the rollout plan with its rollback triggers, the
//! judge, the stacks, the faults and what must happen. See docs/contracts.md for the
//! contract. The module's rooms: `format` (what a user writes, with its defaults),
//! `validate` (everything checked before a run, each refusal naming the file, the line and
//! column where known, and the field), `plans` (the plan a command runs for a migration that
//! brings none) and `load` (reading a file and its migration folder).

mod format;
mod load;
mod plans;
mod validate;

pub use crate::faults::{FaultSpec, MAX_ADDED_MS};
pub use format::*;
pub use load::*;
pub use plans::default_plan;
pub use validate::{check_fault, MAX_RATE_RPS, MAX_REQUESTS};

/// A scenario that cannot run: one line naming the place and the field.
pub type ScenarioError = cutover_migration::FieldError;
