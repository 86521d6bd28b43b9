//! One totally ordered history of the run: stage changes, evaluations and decisions, fault
//! starts and ends, decommission attempts, invariant violations, and every request's
//! outcome folded into a running sha256. Same seed, same bytes, same hash.

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::controller::{Decision, Phase};
use super::monitor::WindowSummary;

/// An event of the history (requests are folded into the hash, not kept).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The rollout entered a phase.
    Stage {
        /// Virtual time, s.
        t_s: f64,
        /// The phase.
        phase: Phase,
        /// The new stack's share of users.
        weight_pct: f64,
    },
    /// The controller evaluated a window.
    Evaluation {
        /// Virtual time, s.
        t_s: f64,
        /// The window's statistics.
        window: Box<WindowSummary>,
        /// The decision.
        decision: Decision,
    },
    /// A fault began.
    FaultStart {
        /// Virtual time, s.
        t_s: f64,
        /// Its index in the scenario.
        index: usize,
        /// Its kind.
        kind: String,
    },
    /// A fault ended.
    FaultEnd {
        /// Virtual time, s.
        t_s: f64,
        /// Its index.
        index: usize,
    },
    /// Someone tried to decommission legacy.
    Decommission {
        /// Virtual time, s.
        t_s: f64,
        /// Whether it was allowed.
        allowed: bool,
        /// The controller's answer.
        detail: String,
    },
    /// A router restarted on its state folder and took the rollout up here.
    Resumed {
        /// Virtual time, s (the router's clock goes on from the last event written).
        t_s: f64,
        /// The phase it resumed in.
        phase: Phase,
        /// The new stack's share of users.
        weight_pct: f64,
        /// Scenario seconds of evidence between the last checkpoint and the last event
        /// written before the router stopped: requests in them are neither counted nor
        /// judged (the judge goes on from the checkpoint).
        lost_s: f64,
    },
    /// An invariant did not hold.
    Violation {
        /// Virtual time, s.
        t_s: f64,
        /// Which.
        invariant: String,
        /// Evidence in words.
        detail: String,
    },
}

/// The history and its running hash.
#[derive(Clone)]
pub struct History {
    events: Vec<Event>,
    hasher: Sha256,
    requests: u64,
    kept: bool,
    /// Events pushed, dropped ones included.
    pushed: u64,
    /// Keep about this many events in memory (a live rollout that runs for days).
    window: Option<usize>,
}

impl Default for History {
    fn default() -> Self {
        History::new()
    }
}

impl History {
    /// An empty history.
    pub fn new() -> History {
        History { events: Vec::new(), hasher: Sha256::new(), requests: 0, kept: true, pushed: 0, window: None }
    }

    /// Keeps at most `keep` events in memory (at least 16): past it, the oldest
    /// evaluations that held (for any reason) go first, never one of the newest half; stage changes,
    /// decisions, faults, decommissions and violations stay. The hash still covers every
    /// event, and [`History::pushed`] counts them all.
    pub fn windowed(mut self, keep: usize) -> History {
        self.window = Some(keep.max(16));
        self
    }

    /// Goes on from a history that reached `sha256` after `pushed` events (a router
    /// resumed from its state): the events kept so far are forgotten, and the hash from
    /// here covers that one first, then every event and request after it.
    pub fn resume(&mut self, sha256: &str, pushed: u64) {
        self.events.clear();
        self.hasher = Sha256::new();
        self.hasher.update(b"resumed:");
        self.hasher.update(sha256.as_bytes());
        self.pushed = pushed;
    }

    /// Events pushed so far, those the window dropped included.
    pub fn pushed(&self) -> u64 {
        self.pushed
    }

    /// The last `n` events pushed (at most the newest half of the window, which is never
    /// dropped), in order.
    pub fn last(&self, n: u64) -> &[Event] {
        let n = (n as usize).min(self.events.len());
        &self.events[self.events.len() - n..]
    }

    /// A history that keeps and hashes nothing (sweeps read only the outcome): its hash is
    /// Whether it keeps its events (a discarded history keeps nothing).
    pub fn kept(&self) -> bool {
        self.kept
    }

    /// the empty string.
    pub fn discarded() -> History {
        History { kept: false, ..History::new() }
    }

    /// Appends an event.
    pub fn push(&mut self, event: Event) {
        if !self.kept {
            return;
        }
        let bytes = serde_json::to_vec(&event).expect("events serialize");
        self.hasher.update((bytes.len() as u64).to_le_bytes());
        self.hasher.update(&bytes);
        self.events.push(event);
        self.pushed += 1;
        if let Some(keep) = self.window {
            if self.events.len() > keep + keep / 4 {
                self.forget(keep);
            }
        }
    }

    /// Drops the oldest evaluations that held, outside the newest half, down to `keep`;
    /// past twice that (a flood of admin calls, faults or violations), the oldest events of
    /// any kind but stage changes go too.
    fn forget(&mut self, keep: usize) {
        let drop_oldest = |events: &mut Vec<Event>, down_to: usize, which: &dyn Fn(&Event) -> bool| {
            let mut excess = events.len().saturating_sub(down_to);
            let protected = events.len() - keep / 2;
            let mut i = 0;
            events.retain(|e| {
                let old = i < protected;
                i += 1;
                let drop = excess > 0 && old && which(e);
                excess -= usize::from(drop);
                !drop
            });
        };
        drop_oldest(&mut self.events, keep, &|e| {
            matches!(e, Event::Evaluation { decision: Decision::Hold { .. } | Decision::Held { .. }, .. })
        });
        if self.events.len() > 2 * keep {
            drop_oldest(&mut self.events, keep, &|e| !matches!(e, Event::Stage { .. }));
        }
    }

    /// Folds one request's outcome into the hash: its fixed-width little-endian record.
    pub fn request(&mut self, record: &[u64; 6]) {
        self.requests += 1;
        if !self.kept {
            return;
        }
        for w in record {
            self.hasher.update(w.to_le_bytes());
        }
    }

    /// The events so far.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// Requests folded in.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// The hash of everything so far, lower-case hex.
    pub fn sha256(&self) -> String {
        if !self.kept {
            return String::new();
        }
        self.hasher.clone().finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hold(t_s: f64) -> Event {
        let window = Box::new(crate::core::monitor::Window::new(0).summary());
        Event::Evaluation { t_s, window, decision: Decision::Hold { reason: "baking".into() } }
    }

    /// (Issue 28) A windowed history keeps about its window in memory, never drops a stage
    /// change or the newest half, and hashes exactly as the whole one.
    #[test]
    fn a_windowed_history_forgets_old_holds_only_and_hashes_everything() {
        let (mut whole, mut windowed) = (History::new(), History::new().windowed(100));
        for k in 0..5_000 {
            let e = if k % 1_000 == 0 {
                Event::Stage { t_s: k as f64, phase: Phase::Canary(k / 1_000), weight_pct: k as f64 / 100.0 }
            } else {
                hold(k as f64)
            };
            whole.push(e.clone());
            windowed.push(e);
            assert!(windowed.events().len() <= 125, "{}", windowed.events().len());
        }
        assert_eq!(windowed.sha256(), whole.sha256());
        assert_eq!(windowed.pushed(), 5_000);
        let stages = windowed.events().iter().filter(|e| matches!(e, Event::Stage { .. })).count();
        assert_eq!(stages, 5, "a stage change was forgotten");
        assert_eq!(windowed.last(50), &whole.events()[whole.events().len() - 50..]);
    }
}
