//! A scoring stack as a registry entry claims it: the model artifact and the feature spec,
//! checked against the hashes the entry pins before anything is served.

use std::path::Path;
use std::sync::Arc;

use crate::features::{Pipeline, SpecError};
use crate::registry::{Entry, LineageMismatch, Registry, RegistryError};
use crate::schema::Schema;
use cutover_models::{Model, ModelError};

/// Why a stack refused to start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The registry or the entry could not be read.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The artifact or the spec is not what the entry pins.
    #[error("refusing to start: {0}")]
    Lineage(#[from] LineageMismatch),
    /// The artifact does not load.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The spec does not compile against the model.
    #[error(transparent)]
    Spec(#[from] SpecError),
}

/// A model and the feature pipeline that feeds it, verified against their registry entry.
#[derive(Debug, Clone)]
pub struct ScoringStack {
    entry: Entry,
    model: Arc<Model>,
    pipeline: Arc<Pipeline>,
}

impl ScoringStack {
    /// Starts the stack that claims entry `id`, from these files: refuses, naming the
    /// hash that differs, when they are not the bytes the entry pins.
    pub fn start(
        registry: &Registry,
        id: &str,
        model: &Path,
        spec: &Path,
        schema: &Arc<Schema>,
    ) -> Result<ScoringStack, StartError> {
        let entry = registry.get(id)?;
        registry.verify(&entry, model, spec)??;
        let model = cutover_models::xgboost::load_file(model)?;
        let pipeline = Pipeline::from_file(spec, schema, Some(model.feature_names()))?;
        Ok(ScoringStack { entry, model: Arc::new(model), pipeline: Arc::new(pipeline) })
    }

    /// Starts the stack from the files the entry names itself.
    pub fn start_entry(registry: &Registry, id: &str, schema: &Arc<Schema>) -> Result<ScoringStack, StartError> {
        let entry = registry.get(id)?;
        let (model, spec) = (registry.resolve(&entry.artifact)?, registry.resolve(&entry.feature_spec)?);
        ScoringStack::start(registry, id, &model, &spec, schema)
    }

    /// The registry entry it serves.
    pub fn entry(&self) -> &Entry {
        &self.entry
    }

    /// The model.
    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// The feature pipeline.
    pub fn pipeline(&self) -> &Arc<Pipeline> {
        &self.pipeline
    }
}
