//! `cutover-loadgen`: the live face of cutover. The legacy and new scoring stacks as HTTP
//! services built from the same `migration/` code as the simulator's, a router in front that
//! runs the simulator's controller, judges and monitor on the wall clock, an admin API
//! behind a bearer token, and goose load tests of whole rollouts.
#![deny(missing_docs)]

pub mod clients;
pub mod dashboard;
pub mod drive;
pub mod faults;
pub mod http;
pub mod loadtest;
pub mod platform;
pub mod replay;
pub mod router;
pub mod serve;
pub mod serving;
pub mod stack;
pub mod state;
pub mod upstream;

pub use serve::{start, Running, ServeConfig};
