//! Customer aggregates on both paths, with Feast's online-store semantics.
//!
//! Every served request is appended to the offline [`EventLog`]. A [`Materializer`]
//! folds the log into per-customer [`Aggregates`] up to a cut-off and publishes them at
//! an interval: the latest value per entity key, with a freshness lag (now minus the
//! cut-off) that can be measured and that a stalled job stretches. The legacy service's
//! own customer table and the new platform's online store are both materializers on the
//! same schedule by default, so with no fault the two paths read identical aggregates.

use rustc_hash::FxHashMap;

use crate::features::Aggregates;
use crate::fraud::{generator::eur_rate, Request};

/// One event of the offline log.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Event {
    /// When it happened, milliseconds since the epoch.
    pub time_ms: i64,
    /// The entity key.
    pub customer_id: u64,
    /// Its amount in euros (at the reference rates of the data warehouse).
    pub amount_eur: f64,
}

impl Event {
    /// The event a served request leaves in the log.
    pub fn of(request: &Request) -> Event {
        Event {
            time_ms: request.event_time_ms,
            customer_id: request.customer_id,
            amount_eur: request.amount * eur_rate(request.currency),
        }
    }
}

/// The offline event log, in arrival order.
#[derive(Debug, Clone, Default)]
pub struct EventLog {
    events: Vec<Event>,
    /// Events dropped from the front once every reader had folded them.
    offset: usize,
}

impl EventLog {
    /// An empty log.
    pub fn new() -> Self {
        EventLog::default()
    }

    /// Appends an event; events must arrive in time order.
    pub fn append(&mut self, event: Event) {
        debug_assert!(self.events.last().is_none_or(|e| e.time_ms <= event.time_ms), "events out of order");
        self.events.push(event);
    }

    /// The event at position `at` since the log began, unless dropped or not yet there.
    fn get(&self, at: usize) -> Option<&Event> {
        self.events.get(at.checked_sub(self.offset)?)
    }

    /// Drops the events before position `upto` (every reader has folded them), so a log
    /// that is read as it grows stays small. Amortized: it moves events only when at least
    /// half of those kept can go.
    pub fn compact(&mut self, upto: usize) {
        let drop = upto.saturating_sub(self.offset).min(self.events.len());
        if drop >= 4096 && drop * 2 >= self.events.len() {
            self.events.drain(..drop);
            self.offset += drop;
        }
    }

    /// Events ever appended (dropped ones included).
    pub fn appended(&self) -> usize {
        self.offset + self.events.len()
    }

    /// The time of the latest event.
    pub fn last_ms(&self) -> Option<i64> {
        self.events.last().map(|e| e.time_ms)
    }

    /// Number of events kept.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether the log keeps no event.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

/// A key-value store of the latest aggregates per customer (Feast's online store).
pub trait OnlineStore: Send {
    /// The latest aggregates of a customer, if the store has any.
    fn get(&self, customer_id: u64) -> Option<&Aggregates>;
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

/// Folds the event log into aggregates and publishes them on a schedule.
#[derive(Debug, Clone)]
pub struct Materializer {
    schedule: Schedule,
    /// Published values: the online table.
    table: FxHashMap<u64, Aggregates>,
    cursor: usize,
    as_of_ms: Option<i64>,
    /// A stalled job publishes nothing until this time (a fault).
    stalled_until_ms: i64,
}

impl Materializer {
    /// A materializer on the given schedule.
    pub fn new(schedule: Schedule) -> Self {
        Materializer { schedule, table: FxHashMap::default(), cursor: 0, as_of_ms: None, stalled_until_ms: i64::MIN }
    }

    /// The schedule.
    pub fn schedule(&self) -> Schedule {
        self.schedule
    }

    /// Number of customers with published aggregates.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether nothing is published.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    fn fold_until(&mut self, cutoff_ms: i64, log: &EventLog) {
        while let Some(e) = log.get(self.cursor) {
            if e.time_ms >= cutoff_ms {
                break;
            }
            let row = self.table.entry(e.customer_id).or_default();
            row.txn_count += 1.0;
            row.amount_sum_eur += e.amount_eur;
            self.cursor += 1;
        }
        self.as_of_ms = Some(cutoff_ms);
    }
}

impl OnlineStore for Materializer {
    fn clone_box(&self) -> Box<dyn OnlineStore> {
        Box::new(self.clone())
    }

    fn get(&self, customer_id: u64) -> Option<&Aggregates> {
        self.table.get(&customer_id)
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
mod tests {
    use super::*;

    fn event(t: i64, c: u64, a: f64) -> Event {
        Event { time_ms: t, customer_id: c, amount_eur: a }
    }

    #[test]
    fn publishes_the_latest_value_per_key_at_each_cut_off() {
        let mut log = EventLog::new();
        let mut store = Materializer::new(Schedule { interval_ms: 1000, delay_ms: 0 });
        log.append(event(100, 1, 10.0));
        log.append(event(900, 1, 30.0));
        log.append(event(1500, 2, 5.0));
        store.advance_to(999, &log);
        assert_eq!(store.as_of_ms(), Some(0));
        assert_eq!(store.get(1), None);
        store.advance_to(1200, &log);
        assert_eq!(store.get(1), Some(&Aggregates { txn_count: 2.0, amount_sum_eur: 40.0 }));
        assert_eq!(store.get(2), None, "after the cut-off");
        assert_eq!(store.freshness_lag_ms(1200), Some(200));
        store.advance_to(2000, &log);
        assert_eq!(store.get(2), Some(&Aggregates { txn_count: 1.0, amount_sum_eur: 5.0 }));
    }

    #[test]
    fn a_compacted_log_folds_into_the_same_tables_and_stays_small() {
        // Two logs with the same events, one compacted behind its readers as it grows.
        let (mut full, mut compacted) = (EventLog::new(), EventLog::new());
        let schedule = Schedule { interval_ms: 1000, delay_ms: 0 };
        let (mut a, mut b) = (Materializer::new(schedule), Materializer::new(schedule));
        let mut stalled = Materializer::new(schedule);
        stalled.stall_until(60_000);
        let mut kept = 0;
        for i in 0..200_000u64 {
            let now = (i / 2) as i64;
            a.advance_to(now, &full);
            b.advance_to(now, &compacted);
            stalled.advance_to(now, &compacted);
            compacted.compact(b.cursor().min(stalled.cursor()));
            kept = kept.max(compacted.len());
            let e = event(now, i % 977, (i % 13) as f64);
            full.append(e);
            compacted.append(e);
        }
        assert_eq!(a.table, b.table);
        assert_eq!(stalled.table, b.table, "the stalled reader caught up from events kept for it");
        assert_eq!(compacted.appended(), full.len());
        // A stall of 60 s at 2 events per ms holds back 120 000 events; afterwards the log
        // keeps about one interval's worth.
        assert!(kept <= 130_000, "kept {kept}");
        assert!(compacted.len() < 10_000, "{} events kept at the end", compacted.len());
    }

    #[test]
    fn a_stalled_job_serves_stale_values_and_catches_up() {
        let mut log = EventLog::new();
        let mut store = Materializer::new(Schedule { interval_ms: 1000, delay_ms: 0 });
        store.stall_until(5000);
        for t in 0..4 {
            log.append(event(t * 1000 + 10, 7, 1.0));
        }
        store.advance_to(4500, &log);
        assert_eq!(store.as_of_ms(), None);
        assert_eq!(store.freshness_lag_ms(4500), None);
        store.advance_to(5000, &log);
        assert_eq!(store.get(7).map(|a| a.txn_count), Some(4.0));
        assert_eq!(store.freshness_lag_ms(5300), Some(300));
    }

    #[test]
    fn a_delay_shifts_what_is_visible() {
        let mut log = EventLog::new();
        let mut store = Materializer::new(Schedule { interval_ms: 1000, delay_ms: 250 });
        log.append(event(500, 3, 2.0));
        store.advance_to(1100, &log);
        assert_eq!(store.get(3), None, "the 1000 ms cut-off is visible only from 1250 ms");
        store.advance_to(1250, &log);
        assert_eq!(store.get(3).map(|a| a.txn_count), Some(1.0));
    }
}
