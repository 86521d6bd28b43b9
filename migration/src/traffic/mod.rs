//! Where a migration's traffic comes from: a team's recorded requests, resampled by seed
//! ([`Resampler`]), or a bundled generator named in the migration folder (the card-fraud
//! example's). Every face asks a [`Source`] for request `i` at a time and gets a record of
//! the migration's schema.

mod resample;

use std::sync::Arc;

pub use resample::{RecordedFile, Resampler, MAX_ROWS};

use crate::schema::{Record, Schema};

/// A source of requests.
pub trait Source: Send + Sync {
    /// What it is, for reports.
    fn name(&self) -> String;
    /// The event time of scenario time 0, epoch ms.
    fn start_ms(&self) -> i64;
    /// The event time of request `index` when requests come at `rate_rps` (for recorded
    /// files and training data; the simulator brings its own arrival times).
    fn time_at_rate(&self, index: u64, rate_rps: f64) -> i64 {
        self.start_ms() + (index as f64 * 1000.0 / rate_rps) as i64
    }
    /// Writes request `index`, arriving at `time_ms`, into `record`: a pure function of
    /// the source's seed and these two.
    fn fill(&self, index: u64, time_ms: i64, record: &mut Record);
    /// The hidden truth of request `index` (generators that own one; for training data).
    fn label(&self, _index: u64, _time_ms: i64) -> Option<f64> {
        None
    }
    /// Relative arrival rate per hour of the day (UTC), when the source knows one.
    fn daily_curve(&self) -> Option<Vec<f64>> {
        None
    }
    /// Request `index` (as `fill` wrote it into `record`) as a JSON body.
    fn render(&self, index: u64, record: &Record) -> serde_json::Value;
    /// A fixed sample of requests, the same for every seed: bins for parity statistics and
    /// segment values a migration does not list.
    fn reference(&self, n: usize) -> Vec<Record>;
}

/// A shared source.
pub type SharedSource = Arc<dyn Source>;

/// The bundled generators, by name.
pub const GENERATORS: [&str; 1] = ["card-fraud"];

/// Builds a bundled generator for a schema; `entities` sizes its population.
pub fn generator(name: &str, seed: u64, schema: &Arc<Schema>, entities: Option<u64>) -> Result<SharedSource, String> {
    match name {
        "card-fraud" => {
            let mut config = crate::fraud::GeneratorConfig::default();
            if let Some(n) = entities {
                config.customers = n;
            }
            Ok(Arc::new(crate::fraud::FraudSource::new(seed, config, schema)?))
        }
        other => Err(format!("no bundled generator `{other}` (generators: {})", GENERATORS.join(", "))),
    }
}
