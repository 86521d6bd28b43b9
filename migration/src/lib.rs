//! `cutover-migration`: the migration folder and everything declared in it, with no
//! notion of time or sockets and nothing of any one service: a migration's fields,
//! segments and answers come from its folder ([`folder`]).
//!
//! The request schema and its compact records ([`schema`]) and recorded requests
//! ([`recorded`]); the segments ([`segments`]); the answer a model gives ([`answer`]);
//! feature specs and the two feature paths ([`features`], [`paths`], [`store`]); the
//! declared stacks and their in-process form ([`stack`], [`stacks`]); traffic from
//! recorded requests or a bundled generator ([`traffic`]); the model registry and
//! lineage ([`registry`]); the baseline audit ([`audit`]); and what `init` infers from a
//! saved model and recorded requests ([`infer`]). The models themselves and their exact
//! scoring are the `cutover-models` crate's.
#![deny(missing_docs)]

pub mod answer;
pub mod audit;
mod error;
pub mod features;
pub mod folder;
mod fraud;
pub mod infer;
pub mod paths;
pub mod recorded;
pub mod registry;
pub mod schema;
pub mod segments;
pub mod stack;
pub mod stacks;
pub mod store;
pub mod traffic;

pub use error::{line_column, toml_error, FieldError};
pub use folder::Migration;
