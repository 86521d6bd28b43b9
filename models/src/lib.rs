//! `cutover-models`: the model side of a migration, with no notion of time or sockets, and
//! nothing of any one service: a migration's fields, segments and answers come from its
//! migration folder ([`migration`]).
//!
//! Loading XGBoost models saved by `Booster.save_model` (JSON or UBJSON, xgboost 1.7 to
//! 3.x) and scoring them bit for bit as XGBoost does ([`Model`]); the request schema and
//! its compact records ([`schema`]); feature specs and the two feature paths
//! ([`features`], [`paths`], [`store`]); the answer a model gives ([`answer`]); traffic
//! from recorded requests or a bundled generator ([`traffic`]); the model registry and
//! lineage ([`registry`]); and a second runtime through the `gbdt` crate ([`runtime`]),
//! the kind of conversion a new serving platform makes and a source of silent drift.
#![deny(missing_docs)]

pub mod answer;
pub mod audit;
mod error;
pub mod features;
mod forest;
mod fraud;
pub mod infer;
pub mod migration;
mod model;
pub mod objective;
pub mod paths;
pub mod recorded;
pub mod registry;
pub mod rows;
pub mod runtime;
pub mod schema;
pub mod segments;
pub mod stack;
pub mod stacks;
pub mod store;
pub mod traffic;
pub mod xgboost;

pub use error::{line_column, one_line, shown, toml_error, FieldError, ModelError, Position};
pub use forest::Forest;
pub use migration::Migration;
pub use model::{FeatureType, Importance, Model, Output};
pub use objective::Objective;
pub use runtime::{Runtime, Scorer};
