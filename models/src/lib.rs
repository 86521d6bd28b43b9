//! `cutover-models`: the model side of a migration, with no notion of time or sockets.
//!
//! Today: loading XGBoost models saved by `Booster.save_model` (JSON or UBJSON, xgboost
//! 1.7 to 3.x) and scoring them bit for bit as XGBoost does ([`Model`]), reading feature
//! rows from CSV ([`rows`]), and a second runtime through the `gbdt` crate ([`runtime`]),
//! the kind of conversion a new serving platform makes and a source of silent drift.
#![deny(missing_docs)]

pub mod audit;
mod error;
pub mod features;
mod forest;
pub mod fraud;
mod model;
pub mod objective;
pub mod paths;
pub mod registry;
pub mod rows;
pub mod runtime;
pub mod stack;
pub mod store;
pub mod xgboost;

pub use error::{line_column, FieldError, ModelError, Position};
pub use forest::Forest;
pub use model::{FeatureType, Model, Output};
pub use objective::Objective;
pub use runtime::{Runtime, Scorer};
