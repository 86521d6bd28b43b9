//! `cutover-models`: models and their exact scoring, with no notion of migrations, time
//! or sockets.
//!
//! Loading XGBoost models saved by `Booster.save_model` (JSON or UBJSON, xgboost 1.7 to
//! 3.x) and scoring them bit for bit as XGBoost does ([`Model`], over a flattened
//! [`Forest`] and its [`Objective`]); rows of numbers read from text for `predict`
//! ([`rows`]); and a second runtime through the `gbdt` crate ([`runtime`]), the kind of
//! conversion a new serving platform makes and a source of silent drift.
#![deny(missing_docs)]

mod error;
mod forest;
mod model;
pub mod objective;
pub mod rows;
pub mod runtime;
pub mod xgboost;

pub use error::{one_line, shown, ModelError, Position};
pub use forest::Forest;
pub use model::{FeatureType, Importance, Model, Output};
pub use objective::Objective;
pub use runtime::{Runtime, Scorer};
