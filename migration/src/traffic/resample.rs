//! Traffic from a team's recorded requests: a seeded resampler that keeps what detection
//! depends on.
//!
//! * **The mix of segments and the missing-value rates**: every request is a recorded row,
//!   copied whole (its id, entity and time rewritten), picked uniformly.
//! * **The time-of-day curve**: when the recording covers every hour of the day, a request
//!   at simulated hour h is picked among the rows recorded at hour h, and the arrival rate
//!   follows the recorded rate per hour (the source's `daily_curve`). Simulated time starts
//!   at the recording's first event, so hours line up.
//! * **Entity recurrence**: scaled to k times the recorded rate, the population is cloned
//!   k times (an entity `e` becomes `e`, `e~1`, ... `e~k-1`, each with its own history), so
//!   each clone recurs as often as the recorded entity did; below the recorded rate, a
//!   seeded share k of the entities is kept, whole.
//!
//! Everything is a pure function of (seed, request index, time). A file over [`MAX_ROWS`]
//! rows keeps the rows of a fixed subset of its entities, so recurrence survives.

use std::path::Path;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::Source;
use crate::answer::Answer;
use crate::recorded::{count_lines, FieldMap, Format, Reader, RowError};
use crate::schema::{key_of_text, mix, unit, KeyHasher, Kind, Record, Schema, Value};

/// Rows a resampler keeps in memory.
pub const MAX_ROWS: usize = 1_000_000;

const HOUR_MS: i64 = 3_600_000;

/// A recorded file, loaded once and shared by every seed.
#[derive(Debug)]
pub struct RecordedFile {
    schema: Arc<Schema>,
    rows: Vec<Record>,
    /// Row indices per UTC hour of day, when every hour has rows.
    by_hour: Option<Vec<Vec<u32>>>,
    curve: Option<Vec<f64>>,
    start_ms: i64,
    rate_rps: f64,
    /// The text of each text entity key.
    entity_text: FxHashMap<u64, Box<str>>,
    /// Rows in the file.
    pub rows_read: u64,
}

impl RecordedFile {
    /// Loads a recorded file (rows that cannot be read are an error naming them).
    pub fn load(
        path: &Path,
        format: Option<Format>,
        schema: &Arc<Schema>,
        answer: &Answer,
        max_rows: usize,
    ) -> Result<RecordedFile, RowError> {
        // Over the bound, keep every row of a fixed share of the entities (the share from the
        // file's lines, counted without parsing them).
        let keep = (max_rows as f64 / count_lines(path)? as f64).min(1.0);
        let mut reader = Reader::open(path, format, schema, answer, FieldMap::default())?;
        let mut rows = Vec::new();
        let entity = schema.entity_field();
        let text_entity = schema.field(entity).kind == Kind::Category;
        let mut entity_text = FxHashMap::default();
        let (mut first, mut last) = (i64::MAX, i64::MIN);
        let mut total = 0u64;
        while let Some(row) = reader.next_row() {
            let r = row?.record;
            total += 1;
            if keep < 1.0 && unit(0x5AFE, r.entity, 7) >= keep {
                continue;
            }
            first = first.min(r.time_ms);
            last = last.max(r.time_ms);
            rows.push(r);
        }
        if rows.is_empty() {
            return Err(RowError {
                file: path.display().to_string(),
                line: 0,
                column: None,
                field: "-".into(),
                message: "holds no requests".into(),
            });
        }
        if text_entity {
            // The entity texts, for the bodies a live test sends.
            entity_text = entity_texts(path, format, schema)?;
        }
        let span_s = ((last - first) as f64 / 1000.0).max(1.0);
        let mut counts = [0u64; 24];
        for r in &rows {
            counts[hour(r.time_ms)] += 1;
        }
        let full_day = last - first >= 24 * HOUR_MS - HOUR_MS && counts.iter().all(|&c| c > 0);
        let (by_hour, curve) = if full_day {
            let mut by_hour = vec![Vec::new(); 24];
            for (i, r) in rows.iter().enumerate() {
                by_hour[hour(r.time_ms)].push(i as u32);
            }
            // Relative to the mean hour: the scenario's rate stays the mean rate.
            let mean = rows.len() as f64 / 24.0;
            (Some(by_hour), Some(counts.iter().map(|&c| c as f64 / mean).collect()))
        } else {
            (None, None)
        };
        Ok(RecordedFile {
            schema: schema.clone(),
            rate_rps: rows.len() as f64 / span_s,
            rows,
            by_hour,
            curve,
            start_ms: first,
            entity_text,
            rows_read: total,
        })
    }

    /// Rows kept.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether no row is kept.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The recorded rate of the rows kept.
    pub fn rate_rps(&self) -> f64 {
        self.rate_rps
    }
}

/// The texts of a file's text entities, by key.
fn entity_texts(
    path: &Path,
    format: Option<Format>,
    schema: &Arc<Schema>,
) -> Result<FxHashMap<u64, Box<str>>, RowError> {
    // The record keeps only the key; the text is read from the raw cell of each row.
    let column = schema.field(schema.entity_field()).column.clone();
    let mut out = FxHashMap::default();
    let format = format.or_else(|| Format::of(path));
    let bad = |e: String| RowError {
        file: path.display().to_string(),
        line: 0,
        column: None,
        field: column.clone(),
        message: e,
    };
    match format {
        Some(Format::Csv) => {
            let mut r = csv::Reader::from_path(path).map_err(|e| bad(e.to_string()))?;
            let at = r.headers().map_err(|e| bad(e.to_string()))?.iter().position(|h| h.trim() == column);
            for rec in r.records() {
                let rec = rec.map_err(|e| bad(e.to_string()))?;
                if let Some(t) = at.and_then(|i| rec.get(i)) {
                    let t = t.trim();
                    out.entry(key_of_text(t)).or_insert_with(|| t.into());
                }
            }
        }
        _ => {
            let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let v: serde_json::Value = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
                let t = match v.get(&column) {
                    Some(serde_json::Value::String(s)) => s.clone(),
                    Some(serde_json::Value::Number(n)) => n.to_string(),
                    _ => continue,
                };
                out.entry(key_of_text(&t)).or_insert_with(|| t.into());
            }
        }
    }
    Ok(out)
}

fn hour(time_ms: i64) -> usize {
    (time_ms.div_euclid(HOUR_MS).rem_euclid(24)) as usize
}

/// Requests resampled from a recorded file for one seed and rate.
#[derive(Debug, Clone)]
pub struct Resampler {
    file: Arc<RecordedFile>,
    seed: u64,
    /// Copies of the population (rate above the recorded one).
    clones: u64,
    /// Rows to pick from: per hour of day, or one pool.
    pools: Arc<Vec<Vec<u32>>>,
}

impl Resampler {
    /// Resamples `file` at `rate_rps` for `seed`.
    pub fn new(file: Arc<RecordedFile>, seed: u64, rate_rps: f64) -> Resampler {
        let k = rate_rps / file.rate_rps;
        let clones = if k >= 1.0 { k.round().max(1.0) as u64 } else { 1 };
        // Below the recorded rate, a seeded share of the entities, each with all its rows.
        let keep = |i: &u32| k >= 1.0 || unit(seed, file.rows[*i as usize].entity, 11) < k;
        let pool = |rows: Vec<u32>| -> Vec<u32> {
            let kept: Vec<u32> = rows.iter().copied().filter(keep).collect();
            if kept.is_empty() {
                rows
            } else {
                kept
            }
        };
        let pools = match &file.by_hour {
            Some(by_hour) => by_hour.iter().map(|h| pool(h.clone())).collect(),
            None => vec![pool((0..file.rows.len() as u32).collect())],
        };
        Resampler { file, seed, clones, pools: Arc::new(pools) }
    }

    /// The recorded row and clone behind request `index` at `time_ms`.
    fn pick(&self, index: u64, time_ms: i64) -> (&Record, u64) {
        let pool = if self.pools.len() == 24 { &self.pools[hour(time_ms)] } else { &self.pools[0] };
        let i = ((unit(self.seed, index, 1) * pool.len() as f64) as usize).min(pool.len() - 1);
        let clone = ((unit(self.seed, index, 2) * self.clones as f64) as u64).min(self.clones - 1);
        (&self.file.rows[pool[i] as usize], clone)
    }

    fn entity_key(&self, row: &Record, clone: u64) -> u64 {
        if clone == 0 {
            return row.entity;
        }
        let s = &self.file.schema;
        match s.field(s.entity_field()).kind {
            Kind::Category => {
                let text = self.file.entity_text.get(&row.entity).map_or("", |t| &**t);
                let mut h = KeyHasher::new();
                h.write(text.as_bytes());
                h.write(b"~");
                h.write(clone.to_string().as_bytes());
                h.finish()
            }
            // Integers stay exact through JSON and f64: 53 bits.
            _ => mix(row.entity ^ mix(clone)) & ((1 << 53) - 1),
        }
    }

    fn id_key(&self, index: u64) -> u64 {
        let s = &self.file.schema;
        match s.field(s.id_field()).kind {
            Kind::Category => key_of_text(&format!("r{index}")),
            _ => index,
        }
    }
}

impl Source for Resampler {
    fn name(&self) -> String {
        format!("recorded requests ({} rows, {} copies of the population)", self.file.rows.len(), self.clones)
    }

    fn start_ms(&self) -> i64 {
        self.file.start_ms
    }

    fn fill(&self, index: u64, time_ms: i64, record: &mut Record) {
        let (row, clone) = self.pick(index, time_ms);
        let shift = time_ms - row.time_ms;
        record.values.copy_from_slice(&row.values);
        let s = &self.file.schema;
        // Every timestamp moves with the event time, so durations between them stay.
        for (i, f) in s.fields().iter().enumerate() {
            if f.kind == Kind::Timestamp {
                if let Value::Number(t) = record.values[i] {
                    record.values[i] = Value::Number(t + shift as f64);
                }
            }
        }
        record.id = self.id_key(index);
        record.entity = self.entity_key(row, clone);
        record.time_ms = time_ms;
        record.values[s.id_field()] = Value::Key(record.id);
        record.values[s.entity_field()] = Value::Key(record.entity);
        record.values[s.time_field()] = Value::Number(time_ms as f64);
    }

    fn daily_curve(&self) -> Option<Vec<f64>> {
        self.file.curve.clone()
    }

    fn render(&self, index: u64, record: &Record) -> serde_json::Value {
        let (row, clone) = self.pick(index, record.time_ms);
        let s = &self.file.schema;
        let entity_text =
            self.file.entity_text.get(&row.entity).map(
                |t| {
                    if clone == 0 {
                        t.to_string()
                    } else {
                        format!("{t}~{clone}")
                    }
                },
            );
        s.to_json(record, &|field, _| {
            if field == s.id_field() {
                Some(format!("r{index}"))
            } else {
                entity_text.clone()
            }
        })
    }

    fn reference(&self, n: usize) -> Vec<Record> {
        let step = (self.file.rows.len() / n.max(1)).max(1);
        self.file.rows.iter().step_by(step).take(n).cloned().collect()
    }
}
