//! Recorded traffic from the bundled domain, as a legacy service would have logged it: each
//! generated request with the legacy stack's score and decision, computed in order by the
//! same legacy path a replay runs (so a replay of the file reproduces them bit for bit).

use std::io::Write;

use cutover_models::fraud::wire::WireRequest;
use cutover_models::fraud::{Generator, GeneratorConfig, Request};
use cutover_models::paths::DualPath;
use cutover_models::registry::Registry;
use cutover_models::stack::ScoringStack;
use cutover_models::store::Schedule;
use cutover_models::Model;
use serde::Serialize;

use super::fields::FIELDS;
use super::source::Format;
use crate::scenario::LoadedScenario;

/// The legacy stack of a scenario's domain, answering requests in order.
pub struct Recorder {
    paths: DualPath,
    model: Model,
    threshold: f32,
}

impl Recorder {
    /// The legacy stack the scenario's `[domain]` names.
    pub fn new(loaded: &LoadedScenario) -> Result<Recorder, String> {
        let s = &loaded.scenario;
        let registry = Registry::open(&loaded.resolve(&s.domain.registry));
        let legacy =
            ScoringStack::start_entry(&registry, &s.domain.legacy_entry).map_err(|e| format!("legacy stack: {e}"))?;
        let paths = DualPath::new(legacy.pipeline().clone(), legacy.pipeline().clone(), Schedule::default())
            .map_err(|e| e.to_string())?;
        Ok(Recorder { paths, model: legacy.model().clone(), threshold: s.domain.decision_threshold as f32 })
    }

    /// The legacy answer to the next request: score and decision (true blocks).
    pub fn answer(&mut self, r: &Request) -> (f32, bool) {
        let score = self.model.predict_one(self.paths.compute_with(r, r).legacy);
        self.paths.served(r);
        (score, score >= self.threshold)
    }
}

#[derive(Serialize)]
struct Line<'a> {
    #[serde(flatten)]
    request: &'a WireRequest,
    legacy_score: f32,
    legacy_decision: &'static str,
}

/// Writes `n` generated requests (seed, mean rate) with their legacy answers.
pub fn write_recorded(
    loaded: &LoadedScenario,
    n: u64,
    seed: u64,
    rate_rps: f64,
    format: Format,
    out: &mut dyn Write,
) -> Result<(), String> {
    let mut recorder = Recorder::new(loaded)?;
    let config =
        GeneratorConfig { rate_rps, customers: loaded.scenario.domain.customers, ..GeneratorConfig::default() };
    let generator = Generator::with_config(seed, config);
    let io = |e: std::io::Error| e.to_string();
    let mut next = |i: u64| {
        let request = generator.request(i);
        let (score, block) = recorder.answer(&request);
        (WireRequest::of(&request), score, if block { "block" } else { "allow" })
    };
    match format {
        Format::Csv => {
            let mut w = csv::WriterBuilder::new().has_headers(false).from_writer(out);
            // Every field a replay reads, the time as milliseconds.
            let header = FIELDS.iter().map(|f| f.0).filter(|&f| f != "event_time");
            w.write_record(header).map_err(|e| e.to_string())?;
            let o = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
            for i in 0..n {
                let (wire, score, decision) = next(i);
                w.write_record([
                    wire.transaction_id.to_string(),
                    wire.customer_id.to_string(),
                    wire.event_time_ms.to_string(),
                    wire.amount.to_string(),
                    wire.currency,
                    wire.merchant_category,
                    wire.country,
                    wire.channel,
                    wire.device_os.unwrap_or_default(),
                    o(wire.account_age_days),
                    wire.card_present.to_string(),
                    o(wire.distance_from_home_km),
                    score.to_string(),
                    decision.to_string(),
                ])
                .map_err(|e| e.to_string())?;
            }
            w.flush().map_err(io)
        }
        Format::JsonLines => {
            let mut buf = Vec::new();
            for i in 0..n {
                let (wire, score, decision) = next(i);
                buf.clear();
                let line = Line { request: &wire, legacy_score: score, legacy_decision: decision };
                serde_json::to_writer(&mut buf, &line).map_err(|e| e.to_string())?;
                buf.push(b'\n');
                out.write_all(&buf).map_err(io)?;
            }
            out.flush().map_err(io)
        }
    }
}
