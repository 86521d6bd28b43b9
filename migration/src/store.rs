//! Per-entity aggregates on both paths, with Feast's online-store semantics.
//!
//! Every served request is appended to the offline [`EventLog`]. A [`Materializer`] folds
//! the log, up to a cut-off, into the aggregates its feature spec declares, and publishes
//! them at an interval: per entity key, the value as of its latest event before the
//! cut-off, with a freshness lag (now minus the cut-off) that can be measured and that a
//! stalled job stretches. The value an aggregate folds is derived from each logged
//! request by the materializer's own spec, so a new platform that derives it differently
//! is a visible difference. The legacy service's own table and the new platform's online
//! store are both materializers on the migration's schedule, so with no fault the two
//! paths read identical aggregates.
//!
//! Windows (`window_s`) are kept as at most [`TILES`] tiles per entity, as tiled
//! aggregation in feature platforms does: an event leaves a window of W between
//! W - W/64 and W after it happened, on both paths alike.

use std::collections::VecDeque;
use std::sync::Arc;

use rustc_hash::FxHashMap;
use smallvec::SmallVec;

use crate::features::{FeatureValues, Function, Pipeline};
use crate::schema::{Record, Value};

/// Tiles per window.
pub const TILES: i64 = 64;
/// Entities a store keeps; events of further entities are not materialized (those
/// entities read as never seen, on both paths alike).
pub const MAX_ENTITIES: usize = 5_000_000;

/// The offline event log, in arrival order: each event's time, entity and the field values
/// its readers' aggregates read (all fields unless told which).
#[derive(Debug, Clone, Default)]
pub struct EventLog {
    times: Vec<i64>,
    entities: Vec<u64>,
    values: Vec<Value>,
    stride: usize,
    /// The fields kept, when not all.
    fields: Option<Vec<usize>>,
    /// Events dropped from the front once every reader had folded them.
    offset: usize,
}

impl EventLog {
    /// An empty log keeping every field.
    pub fn new() -> Self {
        EventLog::default()
    }

    /// An empty log keeping only what these pipelines' aggregates read.
    pub fn for_pipelines(pipelines: &[&Pipeline]) -> Self {
        let mut fields: Vec<usize> = pipelines.iter().flat_map(|p| p.aggregate_fields().iter().copied()).collect();
        fields.sort_unstable();
        fields.dedup();
        EventLog { stride: fields.len(), fields: Some(fields), ..EventLog::default() }
    }

    /// The fields kept (all when none are named).
    pub fn fields(&self) -> Option<&[usize]> {
        self.fields.as_deref()
    }

    /// Appends a served request; requests must arrive in time order.
    pub fn append(&mut self, r: &Record) {
        self.append_at(r, r.time_ms);
    }

    /// Appends a served request at a given time (live requests arrive a little out of order).
    pub fn append_at(&mut self, r: &Record, time_ms: i64) {
        debug_assert!(self.times.last().is_none_or(|&t| t <= time_ms), "events out of order");
        self.times.push(time_ms);
        self.entities.push(r.entity);
        match &self.fields {
            Some(fields) => self.values.extend(fields.iter().map(|&i| r.values[i])),
            None => {
                self.stride = r.values.len();
                self.values.extend_from_slice(&r.values);
            }
        }
    }

    /// The event at position `at` since the log began: (time, entity, values).
    fn get(&self, at: usize) -> Option<(i64, u64, &[Value])> {
        let i = at.checked_sub(self.offset)?;
        let time = *self.times.get(i)?;
        Some((time, self.entities[i], &self.values[i * self.stride..(i + 1) * self.stride]))
    }

    /// Drops the events before position `upto` (every reader has folded them), so a log
    /// that is read as it grows stays small. Amortized: it moves events only when at least
    /// half of those kept can go.
    pub fn compact(&mut self, upto: usize) {
        let drop = upto.saturating_sub(self.offset).min(self.times.len());
        if drop >= 4096 && drop * 2 >= self.times.len() {
            self.times.drain(..drop);
            self.entities.drain(..drop);
            self.values.drain(..drop * self.stride);
            self.offset += drop;
        }
    }

    /// The position of the first event still kept (those before it were dropped).
    pub fn first_kept(&self) -> usize {
        self.offset
    }

    /// Events ever appended (dropped ones included).
    pub fn appended(&self) -> usize {
        self.offset + self.times.len()
    }

    /// The time of the latest event.
    pub fn last_ms(&self) -> Option<i64> {
        self.times.last().copied()
    }

    /// Number of events kept.
    pub fn len(&self) -> usize {
        self.times.len()
    }

    /// Whether the log keeps no event.
    pub fn is_empty(&self) -> bool {
        self.times.is_empty()
    }
}

/// A key-value store of the latest aggregates per entity (Feast's online store).
pub trait OnlineStore: Send {
    /// The entity's aggregates into `out` (the spec's order); false when it has none (then
    /// counts and sums read 0 and the rest missing).
    fn read(&self, entity: u64, out: &mut [f64]) -> bool;
    /// The cut-off of the data it serves (events before it are included), if materialized.
    fn as_of_ms(&self) -> Option<i64>;
    /// Runs every materialization due by `now_ms`.
    fn advance_to(&mut self, now_ms: i64, log: &EventLog);
    /// Position in the log up to which it has folded events (it never reads before it).
    fn cursor(&self) -> usize;
    /// Holds materialization back until `until_ms`: a stalled job, the stale-features fault.
    fn stall_until(&mut self, until_ms: i64);
    /// How stale the served values are at `now_ms`: now minus the cut-off.
    fn freshness_lag_ms(&self, now_ms: i64) -> Option<i64> {
        self.as_of_ms().map(|t| now_ms - t)
    }
    /// A copy in its current state (the simulator forks a world when its judges diverge).
    fn clone_box(&self) -> Box<dyn OnlineStore>;
}

/// When a materializer runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// Cut-offs fall on multiples of this.
    pub interval_ms: i64,
    /// How long after its cut-off a materialization becomes visible.
    pub delay_ms: i64,
}

impl Default for Schedule {
    /// Every 15 minutes, visible at once: the legacy batch job's schedule.
    fn default() -> Self {
        Schedule { interval_ms: 15 * 60 * 1000, delay_ms: 0 }
    }
}

/// What one aggregate keeps of one entity: events, values present, their sum, min, max.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Acc {
    count: f64,
    n: f64,
    sum: f64,
    min: f64,
    max: f64,
}

impl Acc {
    const EMPTY: Acc = Acc { count: 0.0, n: 0.0, sum: 0.0, min: f64::INFINITY, max: f64::NEG_INFINITY };

    fn add(&mut self, x: f64) {
        self.count += 1.0;
        if !x.is_nan() {
            self.n += 1.0;
            self.sum += x;
            self.min = self.min.min(x);
            self.max = self.max.max(x);
        }
    }

    fn merge(&mut self, o: &Acc) {
        self.count += o.count;
        self.n += o.n;
        self.sum += o.sum;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
    }

    fn value(&self, f: Function) -> f64 {
        match f {
            Function::Count => self.count,
            Function::Sum => self.sum,
            _ if self.n == 0.0 => f64::NAN,
            Function::Mean => self.sum / self.n,
            Function::Min => self.min,
            Function::Max => self.max,
        }
    }
}

/// The online table: per entity, the values its aggregates publish, in the spec's order.
/// Read twice per request (the legacy table, the online store), so the values sit inline in
/// the hash table's entries for the usual few aggregates: one cache line per lookup.
#[derive(Debug, Clone)]
enum Published {
    Two(FxHashMap<u64, [f64; 2]>),
    Four(FxHashMap<u64, [f64; 4]>),
    Any(FxHashMap<u64, SmallVec<[f64; 8]>>),
}

impl Published {
    fn new(width: usize) -> Published {
        match width {
            0..=2 => Published::Two(FxHashMap::default()),
            3..=4 => Published::Four(FxHashMap::default()),
            _ => Published::Any(FxHashMap::default()),
        }
    }

    fn get(&self, entity: u64) -> Option<&[f64]> {
        match self {
            Published::Two(m) => m.get(&entity).map(|v| &v[..]),
            Published::Four(m) => m.get(&entity).map(|v| &v[..]),
            Published::Any(m) => m.get(&entity).map(|v| &v[..]),
        }
    }

    fn set(&mut self, entity: u64, values: &[f64]) {
        fn fill<const N: usize>(values: &[f64]) -> [f64; N] {
            let mut a = [0.0; N];
            a[..values.len()].copy_from_slice(values);
            a
        }
        match self {
            Published::Two(m) => {
                m.insert(entity, fill(values));
            }
            Published::Four(m) => {
                m.insert(entity, fill(values));
            }
            Published::Any(m) => {
                let v = m.entry(entity).or_default();
                v.clear();
                v.extend_from_slice(values);
            }
        }
    }

    fn len(&self) -> usize {
        match self {
            Published::Two(m) => m.len(),
            Published::Four(m) => m.len(),
            Published::Any(m) => m.len(),
        }
    }
}

/// What the aggregates have folded, per entity: one dense slot per entity seen, found by
/// its key (a table of 20 000 entities is a few MiB, not one allocation per entity).
#[derive(Debug, Clone, Default)]
struct Folded {
    /// Entity key to slot.
    index: FxHashMap<u64, u32>,
    /// Per slot: its entity's key.
    keys: Vec<u64>,
    /// Per slot: the time of its latest event.
    last_ms: Vec<i64>,
    /// Per slot: folded since the last publication.
    dirty: Vec<bool>,
    /// Per slot, one per aggregate with all history (slot after slot).
    totals: Vec<Acc>,
    /// Per slot, one per windowed aggregate: (tile index, what it holds), oldest first.
    tiles: Vec<VecDeque<(i64, Acc)>>,
}

/// Folds the event log into a spec's aggregates and publishes them on a schedule.
#[derive(Debug, Clone)]
pub struct Materializer {
    schedule: Schedule,
    pipeline: Arc<Pipeline>,
    /// Per aggregate: index into `total` or `tiles`, and the tile length of a window.
    layout: Vec<(usize, Option<i64>)>,
    totals: usize,
    windows: usize,
    /// What each entity's aggregates have folded.
    folded: Folded,
    /// Published values: the online table, read on every request.
    published: Published,
    /// Scratch for one entity's values.
    values: Vec<f64>,
    /// Slots folded since the last publication.
    touched: Vec<u32>,
    scratch: FeatureValues,
    /// A logged event's values at their fields' places (a projected log keeps fewer).
    row: Vec<Value>,
    inputs: Vec<f64>,
    cursor: usize,
    as_of_ms: Option<i64>,
    /// A stalled job publishes nothing until this time (a fault).
    stalled_until_ms: i64,
    /// Publications kept for a job writing them to an external store.
    outbox: Option<Vec<(u64, Vec<f64>)>>,
}

/// What an aggregate reads for an entity with no events: counts and sums 0, the rest missing.
pub fn absent_value(function: Function) -> f64 {
    Acc::EMPTY.value(function)
}

impl Materializer {
    /// A materializer of `pipeline`'s aggregates on the given schedule.
    pub fn new(schedule: Schedule, pipeline: Arc<Pipeline>) -> Self {
        let (mut totals, mut windows) = (0, 0);
        let layout = pipeline
            .aggregates()
            .iter()
            .map(|a| match a.window_ms {
                None => {
                    totals += 1;
                    (totals - 1, None)
                }
                Some(w) => {
                    windows += 1;
                    (windows - 1, Some(((w + TILES - 1) / TILES).max(1)))
                }
            })
            .collect();
        let scratch = pipeline.values();
        let inputs = vec![0.0; pipeline.aggregates().len()];
        let row = vec![Value::Missing; pipeline.schema().len()];
        let width = pipeline.aggregates().len();
        Materializer {
            schedule,
            pipeline,
            layout,
            totals,
            windows,
            folded: Folded::default(),
            published: Published::new(width),
            values: Vec::with_capacity(width),
            touched: Vec::new(),
            row,
            scratch,
            inputs,
            cursor: 0,
            as_of_ms: None,
            stalled_until_ms: i64::MIN,
            outbox: None,
        }
    }

    /// Keeps every publication from now on, for [`Materializer::take_published`]: the
    /// values a job writes to an external online store.
    pub fn keep_published(&mut self) {
        self.outbox.get_or_insert_with(Vec::new);
    }

    /// The publications since the last call: each entity with its values (spec order).
    pub fn take_published(&mut self) -> Vec<(u64, Vec<f64>)> {
        self.outbox.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// The schedule.
    pub fn schedule(&self) -> Schedule {
        self.schedule
    }

    /// Number of entities with published aggregates.
    pub fn len(&self) -> usize {
        self.published.len()
    }

    /// Whether nothing is published.
    pub fn is_empty(&self) -> bool {
        self.published.len() == 0
    }

    fn fold(&mut self, time_ms: i64, entity: u64, logged: &[Value], fields: Option<&[usize]>) {
        let p = &self.pipeline;
        let values = match fields {
            None => logged,
            Some(fields) => {
                for (&i, v) in fields.iter().zip(logged) {
                    self.row[i] = *v;
                }
                &self.row[..]
            }
        };
        for k in 0..self.inputs.len() {
            self.inputs[k] = p.aggregate_input(k, values, &mut self.scratch);
        }
        let (totals, windows) = (self.totals, self.windows);
        let f = &mut self.folded;
        let slot = match f.index.get(&entity) {
            Some(&slot) => slot as usize,
            None if f.keys.len() >= MAX_ENTITIES => return,
            None => {
                f.index.insert(entity, f.keys.len() as u32);
                f.keys.push(entity);
                f.last_ms.push(time_ms);
                f.dirty.push(false);
                f.totals.extend(std::iter::repeat_n(Acc::EMPTY, totals));
                f.tiles.extend(std::iter::repeat_with(VecDeque::new).take(windows));
                f.keys.len() - 1
            }
        };
        f.last_ms[slot] = time_ms;
        if !f.dirty[slot] {
            f.dirty[slot] = true;
            self.touched.push(slot as u32);
        }
        let (total, tiles) =
            (&mut f.totals[slot * totals..(slot + 1) * totals], &mut f.tiles[slot * windows..(slot + 1) * windows]);
        for (k, &(at, tile_ms)) in self.layout.iter().enumerate() {
            let x = self.inputs[k];
            match tile_ms {
                None => total[at].add(x),
                Some(tile_ms) => {
                    let tile = time_ms.div_euclid(tile_ms);
                    let tiles = &mut tiles[at];
                    while tiles.front().is_some_and(|&(t, _)| t <= tile - TILES) {
                        tiles.pop_front();
                    }
                    match tiles.back_mut() {
                        Some((t, acc)) if *t == tile => acc.add(x),
                        _ => {
                            let mut acc = Acc::EMPTY;
                            acc.add(x);
                            tiles.push_back((tile, acc));
                        }
                    }
                }
            }
        }
    }

    fn fold_until(&mut self, cutoff_ms: i64, log: &EventLog) {
        while let Some((time, entity, values)) = log.get(self.cursor) {
            if time >= cutoff_ms {
                break;
            }
            self.fold(time, entity, values, log.fields());
            self.cursor += 1;
        }
        self.as_of_ms = Some(cutoff_ms);
        self.publish();
    }

    /// Publishes the values of every entity folded since the last time: each as of its
    /// latest event.
    fn publish(&mut self) {
        let aggs = self.pipeline.aggregates();
        let (totals, windows) = (self.totals, self.windows);
        let f = &mut self.folded;
        for slot in self.touched.drain(..) {
            let slot = slot as usize;
            f.dirty[slot] = false;
            let entity = f.keys[slot];
            let values = &mut self.values;
            values.clear();
            for (a, &(at, tile_ms)) in aggs.iter().zip(&self.layout) {
                values.push(match tile_ms {
                    None => f.totals[slot * totals + at].value(a.function),
                    Some(tile_ms) => {
                        let newest = f.last_ms[slot].div_euclid(tile_ms);
                        let mut acc = Acc::EMPTY;
                        for (_, t) in f.tiles[slot * windows + at].iter().filter(|(t, _)| *t > newest - TILES) {
                            acc.merge(t);
                        }
                        acc.value(a.function)
                    }
                });
            }
            self.published.set(entity, values);
            if let Some(out) = &mut self.outbox {
                out.push((entity, values.clone()));
            }
        }
    }
}

impl OnlineStore for Materializer {
    fn clone_box(&self) -> Box<dyn OnlineStore> {
        Box::new(self.clone())
    }

    fn read(&self, entity: u64, out: &mut [f64]) -> bool {
        match self.published.get(entity) {
            Some(values) => {
                out.copy_from_slice(&values[..out.len()]);
                true
            }
            None => {
                for (o, a) in out.iter_mut().zip(self.pipeline.aggregates()) {
                    *o = Acc::EMPTY.value(a.function);
                }
                false
            }
        }
    }

    fn as_of_ms(&self) -> Option<i64> {
        self.as_of_ms
    }

    fn cursor(&self) -> usize {
        self.cursor
    }

    fn stall_until(&mut self, until_ms: i64) {
        self.stalled_until_ms = until_ms;
    }

    fn advance_to(&mut self, now_ms: i64, log: &EventLog) {
        if now_ms < self.stalled_until_ms {
            return;
        }
        let Schedule { interval_ms, delay_ms } = self.schedule;
        // The latest cut-off whose materialization is visible by now.
        let cutoff = (now_ms - delay_ms).div_euclid(interval_ms) * interval_ms;
        if self.as_of_ms.is_none_or(|t| cutoff > t) {
            self.fold_until(cutoff, log);
        }
    }
}

#[cfg(test)]
mod tests;
