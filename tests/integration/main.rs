//! Integration tests of the `cutover` binary and the crates: one test binary, a module per area.

mod allocation;
mod audit_cli;
mod false_rollbacks;
mod feature_paths;
mod fixtures;
mod fuzz;
mod holds;
mod hostile;
mod init_cli;
mod loader_fuzz;
mod lockstep;
mod migrations;
mod plan_check;
mod predict_cli;
mod reference_model;
mod registry_cli;
mod replay_cli;
mod reports;
mod runtimes;
mod simulation;
mod support;
mod xgboost_parity;
