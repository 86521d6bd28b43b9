//! The dual feature path: for one request, the legacy path (in-process preprocessing and
//! the service's own entity table) and the new path (on-demand transforms and the online
//! store) each produce the model's input row, and the two are diffed feature by feature.

use std::sync::Arc;

use crate::features::{diff_rows, FeatureDiff, FeatureKind, FeatureValues, Pipeline, SpecError};
use crate::schema::Record;
use crate::store::{EventLog, Materializer, OnlineStore, Schedule};

/// Both paths and the event log they share.
pub struct DualPath {
    legacy: Arc<Pipeline>,
    legacy_table: Materializer,
    new: Arc<Pipeline>,
    store: Box<dyn OnlineStore>,
    log: EventLog,
    kinds: Vec<FeatureKind>,
    legacy_values: FeatureValues,
    new_values: FeatureValues,
    /// Specs the new path can switch to (a `spec_switch` fault), with their buffers.
    alternates: Vec<(Arc<Pipeline>, FeatureValues)>,
    diffs: Vec<FeatureDiff>,
}

impl Clone for DualPath {
    fn clone(&self) -> DualPath {
        DualPath {
            legacy: self.legacy.clone(),
            legacy_table: self.legacy_table.clone(),
            new: self.new.clone(),
            store: self.store.clone_box(),
            log: self.log.clone(),
            kinds: self.kinds.clone(),
            legacy_values: self.legacy_values.clone(),
            new_values: self.new_values.clone(),
            alternates: self.alternates.clone(),
            diffs: self.diffs.clone(),
        }
    }
}

/// One request's rows on both paths and their diff.
#[derive(Debug, Clone, Copy)]
pub struct PathRows<'a> {
    /// The legacy path's model row.
    pub legacy: &'a [f32],
    /// The new path's model row.
    pub new: &'a [f32],
    /// Per feature, how they differ.
    pub diffs: &'a [FeatureDiff],
}

impl DualPath {
    /// Both paths on the same materialization schedule, the new one with the embedded store.
    pub fn new(legacy: Arc<Pipeline>, new: Arc<Pipeline>, schedule: Schedule) -> Result<DualPath, SpecError> {
        let store = Box::new(Materializer::new(schedule, new.clone()));
        DualPath::with_store(legacy, new, schedule, store)
    }

    /// Both paths, the new one reading aggregates from `store`.
    pub fn with_store(
        legacy: Arc<Pipeline>,
        new: Arc<Pipeline>,
        schedule: Schedule,
        store: Box<dyn OnlineStore>,
    ) -> Result<DualPath, SpecError> {
        if legacy.output_names() != new.output_names() {
            let at = legacy.output_names().iter().zip(new.output_names()).position(|(a, b)| a != b);
            let message = match at {
                Some(k) => format!(
                    "feature {k} is `{}` on the legacy path and `{}` on the new one",
                    legacy.output_names()[k],
                    new.output_names()[k]
                ),
                None => "the two specs have different numbers of model features".into(),
            };
            return Err(SpecError {
                file: new.name().to_string(),
                line: 0,
                column: 0,
                field: "feature".into(),
                message,
            });
        }
        let kinds = legacy.output_kinds();
        let (legacy_values, new_values) = (legacy.values(), new.values());
        let diffs = vec![FeatureDiff::Equal; kinds.len()];
        Ok(DualPath {
            legacy_table: Materializer::new(schedule, legacy.clone()),
            log: EventLog::for_pipelines(&[&legacy, &new]),
            legacy,
            new,
            store,
            kinds,
            legacy_values,
            new_values,
            alternates: Vec::new(),
            diffs,
        })
    }

    /// The legacy pipeline.
    pub fn legacy(&self) -> &Pipeline {
        &self.legacy
    }

    /// The new pipeline.
    pub fn new_pipeline(&self) -> &Pipeline {
        &self.new
    }

    /// The kind of each model feature.
    pub fn kinds(&self) -> &[FeatureKind] {
        &self.kinds
    }

    /// The online store, for faults and freshness.
    pub fn store_mut(&mut self) -> &mut dyn OnlineStore {
        self.store.as_mut()
    }

    /// The new path's freshness lag at `now_ms`.
    pub fn store_lag_ms(&self, now_ms: i64) -> Option<i64> {
        self.store.freshness_lag_ms(now_ms)
    }

    /// Computes both rows for `request` and their diff (allocation-free once warm).
    pub fn compute(&mut self, request: &Record) -> PathRows<'_> {
        self.compute_with(request, request)
    }

    /// Adds a spec the new path can switch to: it must give the same model features and
    /// read the same aggregates as the new spec ([`crate::features::switchable`]). Its slot.
    pub fn add_alternate(&mut self, spec: Arc<Pipeline>) -> Result<usize, String> {
        crate::features::switchable(&self.new, &spec)?;
        let values = spec.values();
        self.alternates.push((spec, values));
        Ok(self.alternates.len() - 1)
    }

    /// Computes the legacy row for `legacy` and the new row for `new`: the same request,
    /// unless the call to the new stack lost part of its context (a shadow mismatch).
    pub fn compute_with(&mut self, legacy: &Record, new: &Record) -> PathRows<'_> {
        self.compute_switched(legacy, new, None)
    }

    /// As [`DualPath::compute_with`], the new row computed with the alternate spec in slot
    /// `alternate` when given (a `spec_switch` fault), on the same store.
    pub fn compute_switched(&mut self, legacy: &Record, new: &Record, alternate: Option<usize>) -> PathRows<'_> {
        let now = legacy.time_ms;
        self.legacy_table.advance_to(now, &self.log);
        self.store.advance_to(now, &self.log);
        // Both readers are past these events: a long run keeps only what is still ahead.
        self.log.compact(self.legacy_table.cursor().min(self.store.cursor()));
        self.legacy_table.read(legacy.entity, &mut self.legacy_values.aggregates);
        self.legacy.compute(&legacy.values, &mut self.legacy_values);
        let (spec, values) = match alternate.and_then(|k| self.alternates.get_mut(k)) {
            Some((spec, values)) => (&**spec, values),
            None => (&*self.new, &mut self.new_values),
        };
        self.store.read(new.entity, &mut values.aggregates);
        spec.compute(&new.values, values);
        diff_rows(&self.kinds, &self.legacy_values.row, &values.row, &mut self.diffs);
        PathRows { legacy: &self.legacy_values.row, new: &values.row, diffs: &self.diffs }
    }

    /// The legacy row alone for `request`, when the new stack is out of the path (after a
    /// rollback): the new platform's store goes on materializing, but computes nothing.
    pub fn compute_legacy(&mut self, request: &Record) -> &[f32] {
        let now = request.time_ms;
        self.legacy_table.advance_to(now, &self.log);
        self.store.advance_to(now, &self.log);
        self.log.compact(self.legacy_table.cursor().min(self.store.cursor()));
        self.legacy_table.read(request.entity, &mut self.legacy_values.aggregates);
        self.legacy.compute(&request.values, &mut self.legacy_values);
        &self.legacy_values.row
    }

    /// Records that `request` was served: it joins the offline event log.
    pub fn served(&mut self, request: &Record) {
        self.log.append(request);
    }
}

/// The offline event log as services share it: the data warehouse every store
/// materializes from. Each reader (a stack's store, the platform's materialization job)
/// holds a [`LogReader`] and says how far it has folded; the log drops what every reader
/// has folded, so a live service's memory does not grow with the requests it serves.
#[derive(Clone)]
pub struct SharedLog(std::sync::Arc<LogInner>);

struct LogInner {
    log: std::sync::RwLock<EventLog>,
    readers: std::sync::Mutex<Vec<std::sync::Weak<std::sync::atomic::AtomicUsize>>>,
}

/// One reader's place in a [`SharedLog`]: events before it may be dropped. Dropping the
/// reader lets the log forget it.
pub struct LogReader(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl LogReader {
    /// The reader has folded every event before position `cursor`.
    pub fn folded(&self, cursor: usize) {
        self.0.store(cursor, std::sync::atomic::Ordering::Release);
    }
}

impl std::fmt::Debug for SharedLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedLog").field("kept", &self.read().len()).finish()
    }
}

impl SharedLog {
    /// A shared log keeping what these pipelines' aggregates read.
    pub fn new(pipelines: &[&Pipeline]) -> SharedLog {
        SharedLog(std::sync::Arc::new(LogInner {
            log: std::sync::RwLock::new(EventLog::for_pipelines(pipelines)),
            readers: std::sync::Mutex::new(Vec::new()),
        }))
    }

    /// A new reader, at the log's first event still kept.
    pub fn reader(&self) -> LogReader {
        let at = self.read().first_kept();
        let r = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(at));
        let mut readers = self.0.readers.lock().unwrap_or_else(|e| e.into_inner());
        readers.retain(|w| w.strong_count() > 0);
        readers.push(std::sync::Arc::downgrade(&r));
        LogReader(r)
    }

    /// The log, for reading.
    pub fn read(&self) -> std::sync::RwLockReadGuard<'_, EventLog> {
        self.0.log.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends a served request. Live requests arrive a little out of order, so the log
    /// keeps arrival order with times that never go back. What every reader has folded
    /// is dropped (amortized, see [`EventLog::compact`]).
    pub fn append(&self, request: &Record) {
        let upto = {
            let readers = self.0.readers.lock().unwrap_or_else(|e| e.into_inner());
            readers
                .iter()
                .filter_map(std::sync::Weak::upgrade)
                .map(|r| r.load(std::sync::atomic::Ordering::Acquire))
                .min()
        };
        let mut log = self.0.log.write().unwrap_or_else(|e| e.into_inner());
        let time = request.time_ms.max(log.last_ms().unwrap_or(i64::MIN));
        log.append_at(request, time);
        if let Some(upto) = upto {
            log.compact(upto);
        }
    }
}

/// A shared log keeping what these pipelines' aggregates read.
pub fn shared_log(pipelines: &[&Pipeline]) -> SharedLog {
    SharedLog::new(pipelines)
}

/// One feature path on its own, as one live service computes it: its pipeline, and the
/// aggregates it reads from its own store, materialized on the schedule from the shared
/// offline log (the data warehouse), to which the system of record (legacy, which sees
/// every request) appends what it served.
#[derive(Debug)]
pub struct SinglePath {
    pipeline: Arc<Pipeline>,
    store: Materializer,
    log: SharedLog,
    reader: LogReader,
    records: bool,
    values: FeatureValues,
}

impl std::fmt::Debug for LogReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("LogReader").field(&self.0.load(std::sync::atomic::Ordering::Relaxed)).finish()
    }
}

impl SinglePath {
    /// A path with an empty store over `log`; with `records`, it appends what it serves.
    pub fn new(pipeline: Arc<Pipeline>, schedule: Schedule, log: SharedLog, records: bool) -> SinglePath {
        let values = pipeline.values();
        let reader = log.reader();
        SinglePath { store: Materializer::new(schedule, pipeline.clone()), pipeline, log, reader, records, values }
    }

    /// The pipeline.
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// The model row for `request`.
    pub fn compute(&mut self, request: &Record) -> &[f32] {
        self.advance(request.time_ms);
        self.store.read(request.entity, &mut self.values.aggregates);
        self.pipeline.compute(&request.values, &mut self.values);
        &self.values.row
    }

    /// The model row for `request` computed with another spec on this path's store (a
    /// `spec_switch` fault; checked with [`crate::features::switchable`] when injected).
    pub fn compute_as(&mut self, request: &Record, spec: &Pipeline) -> Vec<f32> {
        self.advance(request.time_ms);
        let mut values = spec.values();
        self.store.read(request.entity, &mut values.aggregates);
        spec.compute(&request.values, &mut values);
        values.row
    }

    /// Runs the store's materializations due by `now_ms` (or by the log's latest event,
    /// if later), as its batch job does whether or not requests come.
    pub fn advance(&mut self, now_ms: i64) {
        let log = self.log.read();
        let Some(now) = log.last_ms().map_or(Some(now_ms), |last| Some(now_ms.max(last))).filter(|&t| t != i64::MIN)
        else {
            // No request yet, and no time given: nothing is due.
            return;
        };
        self.store.advance_to(now, &log);
        self.reader.folded(self.store.cursor());
    }

    /// Records that `request` was served (when this path is the system of record).
    pub fn served(&mut self, request: &Record) {
        if self.records {
            self.log.append(request);
        }
    }

    /// Holds materialization back until `until_ms` (the stale-features fault).
    pub fn stall_until(&mut self, until_ms: i64) {
        self.store.stall_until(until_ms);
    }

    /// How stale the served aggregates are at `now_ms`.
    pub fn freshness_lag_ms(&self, now_ms: i64) -> Option<i64> {
        self.store.freshness_lag_ms(now_ms)
    }
}

/// One path over a stream of requests, with its own table materialized as the service's
/// batch job does: the legacy features of a traffic source, for training data and audits.
pub struct LegacyRows {
    pipeline: Arc<Pipeline>,
    table: Materializer,
    log: EventLog,
    values: FeatureValues,
}

impl LegacyRows {
    /// An empty table for `pipeline` on `schedule`.
    pub fn new(pipeline: Arc<Pipeline>, schedule: Schedule) -> LegacyRows {
        let values = pipeline.values();
        let log = EventLog::for_pipelines(&[&pipeline]);
        LegacyRows { table: Materializer::new(schedule, pipeline.clone()), pipeline, log, values }
    }

    /// The model row of the next request (requests in time order), which then joins the log.
    pub fn next_row(&mut self, request: &Record) -> &[f32] {
        self.table.advance_to(request.time_ms, &self.log);
        self.log.compact(self.table.cursor());
        self.table.read(request.entity, &mut self.values.aggregates);
        self.pipeline.compute(&request.values, &mut self.values);
        self.log.append(request);
        &self.values.row
    }

    /// The model row and every feature's value (f64) of the last request.
    pub fn values(&self) -> &FeatureValues {
        &self.values
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (Issue 28: serve's memory grew with every request: the shared log was never
    /// dropped.) What every reader folded is dropped; a reader that lags holds the log back
    /// only to where it is.
    #[test]
    fn the_shared_log_keeps_only_what_a_reader_has_not_folded() {
        let m = crate::Migration::bundled_fraud().unwrap();
        let (legacy, new) = m.start_stacks().unwrap();
        let log = shared_log(&[legacy.pipeline(), new.pipeline()]);
        let schedule = Schedule { interval_ms: 60_000, delay_ms: 0 };
        let mut fast = SinglePath::new(legacy.pipeline().clone(), schedule, log.clone(), true);
        let mut slow = SinglePath::new(new.pipeline().clone(), schedule, log.clone(), false);
        let source = m.source(1, 200.0).unwrap();
        let mut r = m.schema().record();
        let mut kept_max = 0;
        for i in 0..200_000u64 {
            // 100 requests a second: a cut-off every 6 000 requests.
            source.fill(i, source.start_ms() + (i * 10) as i64, &mut r);
            fast.compute(&r);
            fast.served(&r);
            if i % 20_000 == 0 {
                slow.advance(i64::MIN);
            }
            kept_max = kept_max.max(log.read().len());
        }
        // At most the events since the slow reader's last fold and one interval, twice over
        // for the amortized drop.
        assert!(kept_max <= 2 * (20_000 + 6_000) + 4096, "the log kept {kept_max} events");
        assert_eq!(log.read().appended(), 200_000);
        // A reader that never folds holds everything from where it began.
        let held = log.reader();
        let at = log.read().first_kept();
        for i in 200_000..230_000u64 {
            source.fill(i, source.start_ms() + (i * 10) as i64, &mut r);
            fast.compute(&r);
            fast.served(&r);
            slow.advance(i64::MIN);
        }
        assert_eq!(log.read().first_kept(), at, "events a reader has not folded were dropped");
        drop(held);
        for i in 230_000..260_000u64 {
            source.fill(i, source.start_ms() + (i * 10) as i64, &mut r);
            fast.compute(&r);
            fast.served(&r);
            slow.advance(i64::MIN);
        }
        assert!(log.read().first_kept() > at, "a dropped reader still holds the log");
        assert!(log.read().len() < 20_000, "{}", log.read().len());
    }
}
