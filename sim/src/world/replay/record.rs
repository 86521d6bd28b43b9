//! Recorded traffic from a migration's traffic source, as its legacy service would have
//! logged it: each request with the legacy stack's answer, computed in order by the same
//! legacy path a replay runs (so a replay of the file reproduces them bit for bit).

use std::io::Write;

use cutover_migration::answer::Answer;
use cutover_migration::paths::LegacyRows;
use cutover_migration::recorded::Format;
use cutover_migration::schema::Record;
use cutover_models::Model;
use std::sync::Arc;

use cutover_migration::Migration;

/// The legacy stack of a migration, answering requests in order.
pub struct Recorder {
    rows: LegacyRows,
    model: Arc<Model>,
    answer: Answer,
    out: Vec<f32>,
}

impl Recorder {
    /// The legacy stack the migration's registry names.
    pub fn new(m: &Migration) -> Result<Recorder, String> {
        let (legacy, _) = m.start_stacks()?;
        let answer = m.answer().clone();
        let out = vec![0.0; answer.width()];
        Ok(Recorder {
            rows: LegacyRows::new(legacy.pipeline().clone(), m.schedule()),
            model: legacy.model().clone(),
            answer,
            out,
        })
    }

    /// The legacy answer to the next request: its headline score and decision.
    pub fn answer(&mut self, r: &Record) -> (f32, Option<u32>) {
        let row = self.rows.next_row(r);
        self.answer.score(&self.model, row, &mut self.out);
        (self.answer.headline(&self.out), self.answer.decision(&self.out))
    }
}

/// Writes `n` requests of the migration's traffic (seed, mean rate) with their legacy answers.
pub fn write_recorded(
    m: &Migration,
    n: u64,
    seed: u64,
    rate_rps: f64,
    format: Format,
    out: &mut dyn Write,
) -> Result<(), String> {
    let schema = m.schema().clone();
    let mut recorder = Recorder::new(m)?;
    let source = m.source(seed, rate_rps)?;
    let answer = m.answer().clone();
    let io = |e: std::io::Error| e.to_string();
    let mut record = schema.record();
    match format {
        Format::Csv => {
            let mut w = csv::WriterBuilder::new().has_headers(false).from_writer(out);
            let mut header: Vec<String> = schema.fields().iter().map(|f| f.column.clone()).collect();
            header.push(answer.recorded_score.clone());
            if answer.has_decision() {
                header.push(answer.recorded_decision.clone());
            }
            w.write_record(&header).map_err(|e| e.to_string())?;
            let mut cells: Vec<String> = Vec::with_capacity(header.len());
            for i in 0..n {
                source.fill(i, source.time_at_rate(i, rate_rps), &mut record);
                let (score, decision) = recorder.answer(&record);
                let json = source.render(i, &record);
                let key_text = |f: usize, _| json.get(&schema.field(f).name).and_then(|v| v.as_str()).map(String::from);
                cells.clear();
                cells.extend((0..schema.len()).map(|f| schema.cell_text(f, record.values[f], &key_text)));
                cells.push(score.to_string());
                if let Some(d) = decision {
                    cells.push(answer.label(d).to_string());
                }
                w.write_record(&cells).map_err(|e| e.to_string())?;
            }
            w.flush().map_err(io)
        }
        Format::JsonLines => {
            let mut buf = Vec::new();
            for i in 0..n {
                source.fill(i, source.time_at_rate(i, rate_rps), &mut record);
                let (score, decision) = recorder.answer(&record);
                let mut line = source.render(i, &record);
                if let Some(o) = line.as_object_mut() {
                    o.insert(answer.recorded_score.clone(), serde_json::json!(score));
                    if let Some(d) = decision {
                        o.insert(answer.recorded_decision.clone(), answer.label(d).into());
                    }
                }
                buf.clear();
                serde_json::to_writer(&mut buf, &line).map_err(|e| e.to_string())?;
                buf.push(b'\n');
                out.write_all(&buf).map_err(io)?;
            }
            out.flush().map_err(io)
        }
    }
}
