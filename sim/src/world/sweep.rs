//! Sweeps: every scenario over many seeds, the detection and false-rollback rates, and the
//! distributions of time to rollback and bad decisions (sweep.json in docs/contracts.md).
//! A sweep can be split into shards (every N-th seed) and the shards merged into exactly
//! the report one run would give: each shard keeps its per-run records, and the report is
//! computed from their union in seed order.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::scenario::{LoadedScenario, Outcome, Policy};
use crate::world::{run_policies, Mode, RunError};

/// One run of a sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Its seed.
    pub seed: u64,
    /// How it ended.
    pub outcome: Outcome,
    /// Whether its expectations held.
    pub passed: bool,
    /// Rolled back at or after the earliest fault's start.
    pub rolled_back_after_fault: bool,
    /// Seconds from the fault's start to the rollback.
    pub time_to_rollback_s: Option<f64>,
    /// Bad decisions served.
    pub bad_decisions_served: u64,
    /// The expectations that did not hold, by name (none when it passed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<String>,
}

/// The records of one scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioRuns {
    /// Scenario name.
    pub scenario: String,
    /// Its file.
    pub file: String,
    /// Whether it injects a fault (other than a decommission attempt).
    pub has_fault: bool,
    /// The outcome it expects.
    pub expected_outcome: Outcome,
    /// One record per seed, by seed.
    pub runs: Vec<RunRecord>,
}

/// Median, 95th percentile and worst, by the rules of [`crate::figures`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// Median (the mean of the two middle values for an even count).
    pub p50: Option<f64>,
    /// 95th percentile (the nearest rank: the ⌈0.95 n⌉-th smallest).
    pub p95: Option<f64>,
    /// The largest.
    #[serde(default)]
    pub max: Option<f64>,
}

/// One scenario's line of sweep.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioSweep {
    /// Scenario name.
    pub scenario: String,
    /// The outcome it expects.
    pub expected_outcome: Outcome,
    /// Runs.
    pub runs: u64,
    /// Runs whose expectations held.
    pub passed: u64,
    /// Fault scenarios: share of runs rolled back after the fault started.
    pub detection_rate: Option<f64>,
    /// Clean scenarios: share of runs rolled back.
    pub false_rollback_rate: Option<f64>,
    /// From the fault's start, over runs that rolled back.
    pub time_to_rollback_s: Spread,
    /// Bad decisions served.
    pub bad_decisions_served: Spread,
}

/// sweep.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sweep {
    /// The judge.
    pub policy: String,
    /// Seeds per scenario.
    pub seeds: u64,
    /// The first seed.
    pub seed_base: u64,
    /// Per scenario.
    pub scenarios: Vec<ScenarioSweep>,
    /// Which shards this covers, `I/N` each (empty for a whole sweep).
    pub shards: Vec<String>,
    /// Every run, for merging shards.
    pub records: Vec<ScenarioRuns>,
}

fn spread(v: Vec<f64>) -> Spread {
    let v = crate::figures::sorted(v);
    Spread { p50: crate::figures::median(&v), p95: crate::figures::nearest_rank(&v, 0.95), max: v.last().copied() }
}

/// Aggregates records into sweep.json's per-scenario lines.
pub fn summarize(records: &[ScenarioRuns]) -> Vec<ScenarioSweep> {
    records
        .iter()
        .map(|r| {
            let n = r.runs.len() as u64;
            let rate = |k: usize| if n == 0 { 0.0 } else { k as f64 / n as f64 };
            let rolled: Vec<&RunRecord> = r.runs.iter().filter(|x| x.outcome == Outcome::RolledBack).collect();
            ScenarioSweep {
                scenario: r.scenario.clone(),
                expected_outcome: r.expected_outcome,
                runs: n,
                passed: r.runs.iter().filter(|x| x.passed).count() as u64,
                detection_rate: r.has_fault.then(|| rate(r.runs.iter().filter(|x| x.rolled_back_after_fault).count())),
                false_rollback_rate: (!r.has_fault).then(|| rate(rolled.len())),
                time_to_rollback_s: spread(rolled.iter().filter_map(|x| x.time_to_rollback_s).collect()),
                bad_decisions_served: spread(r.runs.iter().map(|x| x.bad_decisions_served as f64).collect()),
            }
        })
        .collect()
}

/// Which seeds a shard runs: seeds `base .. base + seeds`, every `n`-th from the `i`-th.
pub fn shard_seeds(base: u64, seeds: u64, shard: Option<(u64, u64)>) -> Vec<u64> {
    (0..seeds).filter(|k| shard.is_none_or(|(i, n)| k % n == i)).map(|k| base + k).collect()
}

/// Runs every scenario over the shard's seeds on `jobs` threads, under each of `policies`
/// (none: each scenario's own judge), one sweep per policy in their order. The judges of
/// one seed share a world while they agree (see [`run_policies`]), and each run ends as soon
/// as its outcome can no longer change.
pub fn sweep(
    files: &[PathBuf],
    seeds: u64,
    seed_base: u64,
    shard: Option<(u64, u64)>,
    policies: &[Policy],
    jobs: usize,
) -> Result<Vec<Sweep>, RunError> {
    let loaded: Vec<LoadedScenario> = files.iter().map(|f| LoadedScenario::read(f)).collect::<Result<_, _>>()?;
    let seed_list = shard_seeds(seed_base, seeds, shard);
    let work: Vec<(usize, u64)> =
        (0..loaded.len()).flat_map(|s| seed_list.iter().map(move |&seed| (s, seed))).collect();
    let lanes = policies.len().max(1);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let slots = std::sync::Mutex::new(vec![None; work.len()]);
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1).min(work.len().max(1)) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(&(s, seed)) = work.get(i) else { break };
                let own = [loaded[s].scenario.controller.policy];
                let judges = if policies.is_empty() { &own[..] } else { policies };
                let r = run_policies(&loaded[s], Some(seed), judges, Mode::Sweep)
                    .map(|runs| runs.iter().map(|run| record(seed, &run.summary)).collect::<Vec<_>>());
                slots.lock().expect("no panics while holding it")[i] = Some(r.map_err(|e| e.to_string()));
            });
        }
    });
    let results = slots.into_inner().expect("threads joined");
    let empty: Vec<ScenarioRuns> = loaded
        .iter()
        .map(|l| ScenarioRuns {
            scenario: l.scenario.name.clone(),
            file: l.path.display().to_string(),
            // A fault of the new path, not an operator's action on the controller.
            has_fault: l.scenario.faults.iter().any(|f| {
                crate::faults::Tag::from_name(&f.get_ref().kind)
                    .is_some_and(|t| t.def().layer != crate::faults::Layer::Controller)
            }),
            expected_outcome: l.scenario.expect.outcome,
            runs: Vec::new(),
        })
        .collect();
    let mut records = vec![empty; lanes];
    for (&(s, _), r) in work.iter().zip(results) {
        let runs = r
            .expect("every run ran")
            .map_err(|message| RunError::Setup { file: files[s].display().to_string(), message })?;
        for (lane, run) in runs.into_iter().enumerate() {
            records[lane][s].runs.push(run);
        }
    }
    Ok(records
        .into_iter()
        .enumerate()
        .map(|(lane, records)| Sweep {
            policy: policies.get(lane).map_or("scenario", |p| p.name()).to_string(),
            seeds,
            seed_base,
            scenarios: summarize(&records),
            shards: shard.map(|(i, n)| vec![format!("{i}/{n}")]).unwrap_or_default(),
            records,
        })
        .collect())
}

fn record(seed: u64, s: &crate::core::verdict::Summary) -> RunRecord {
    let after = match (s.rollback_completed_s, s.fault_start_s) {
        (Some(r), Some(f)) if r >= f => Some(r - f),
        _ => None,
    };
    RunRecord {
        seed,
        outcome: s.outcome,
        passed: s.passed,
        rolled_back_after_fault: after.is_some(),
        time_to_rollback_s: after,
        bad_decisions_served: s.bad_decisions_served,
        failed: s.expectations.iter().filter(|e| !e.passed).map(|e| e.name.clone()).collect(),
    }
}

/// Merges shard sweeps into the sweep one run would have given.
pub fn merge(parts: Vec<Sweep>) -> Result<Sweep, String> {
    let first = parts.first().ok_or("nothing to merge")?.clone();
    let mut records: Vec<ScenarioRuns> =
        first.records.iter().map(|r| ScenarioRuns { runs: Vec::new(), ..r.clone() }).collect();
    let mut shards = Vec::new();
    for p in &parts {
        if (p.policy.as_str(), p.seeds, p.seed_base) != (first.policy.as_str(), first.seeds, first.seed_base) {
            return Err(format!(
                "shards disagree: policy {} seeds {} base {} against {} {} {}",
                p.policy, p.seeds, p.seed_base, first.policy, first.seeds, first.seed_base
            ));
        }
        if p.records.len() != records.len() || p.records.iter().zip(&records).any(|(a, b)| a.scenario != b.scenario) {
            return Err("shards ran different scenarios".into());
        }
        for (into, from) in records.iter_mut().zip(&p.records) {
            into.runs.extend(from.runs.iter().cloned());
        }
        shards.extend(p.shards.iter().cloned());
    }
    for r in &mut records {
        r.runs.sort_by_key(|x| x.seed);
        if r.runs.windows(2).any(|w| w[0].seed == w[1].seed) {
            return Err(format!("{}: a seed appears in two shards", r.scenario));
        }
    }
    shards.sort();
    let whole = shards.is_empty() || {
        let n: Vec<u64> = shards.iter().filter_map(|s| s.split('/').nth(1)?.parse().ok()).collect();
        n.first().is_some_and(|&n0| n.iter().all(|&x| x == n0) && shards.len() as u64 == n0)
    };
    Ok(Sweep {
        policy: first.policy,
        seeds: first.seeds,
        seed_base: first.seed_base,
        scenarios: summarize(&records),
        shards: if whole { Vec::new() } else { shards },
        records,
    })
}

/// A time in seconds as the tables write it: whole seconds, tenths under 10 s (a rollback
/// at the deciding request can come well within a second of the fault).
pub fn seconds(v: f64) -> String {
    if v < 9.95 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

/// Several judges' sweeps of the same scenarios side by side, as a Markdown table: per
/// fault scenario the detection rate and the median and 95th percentile of the time from
/// the fault's start to the rollback, per clean scenario the false rollback rate; with both
/// `sequential` and `flagger`, how many times faster the sequential judge's median is.
pub fn comparison(sweeps: &[Sweep]) -> String {
    use std::fmt::Write as _;
    let find = |name: &str| sweeps.iter().position(|s| s.policy == name);
    let speedup = find("sequential").zip(find("flagger"));
    let mut out = String::from("| scenario |");
    for s in sweeps {
        write!(out, " {} |", s.policy).expect("writes to a string");
    }
    if speedup.is_some() {
        out.push_str(" flagger p50 / sequential p50 |");
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(sweeps.len() + usize::from(speedup.is_some())));
    out.push('\n');
    let Some(first) = sweeps.first() else { return out };
    let secs = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{} s", seconds(v)));
    for (k, line) in first.scenarios.iter().enumerate() {
        write!(out, "| {} |", line.scenario).expect("writes to a string");
        for s in sweeps {
            let x = &s.scenarios[k];
            let cell = match (x.detection_rate, x.false_rollback_rate) {
                (Some(d), _) => format!(
                    "{:.1} % · {} · {} · {}",
                    100.0 * d,
                    secs(x.time_to_rollback_s.p50),
                    secs(x.time_to_rollback_s.p95),
                    secs(x.time_to_rollback_s.max)
                ),
                (None, Some(f)) => format!("{:.2} % false ({} of {})", 100.0 * f, (f * x.runs as f64).round(), x.runs),
                (None, None) => "-".into(),
            };
            write!(out, " {cell} |").expect("writes to a string");
        }
        if let Some((seq, flagger)) = speedup {
            let ratio = match (
                sweeps[flagger].scenarios[k].time_to_rollback_s.p50,
                sweeps[seq].scenarios[k].time_to_rollback_s.p50,
            ) {
                (Some(f), Some(s)) if s > 0.0 && line.detection_rate.is_some() => format!("{:.1}x", f / s),
                _ => "-".into(),
            };
            write!(out, " {ratio} |").expect("writes to a string");
        }
        out.push('\n');
    }
    out.push_str(
        "\nFault scenarios: detection rate · median · 95th percentile · worst of the time from the fault's start to \
         the rollback, over the runs rolled back after it (median: the mean of the two middle values for an even \
         count; 95th percentile: the nearest rank, the ⌈0.95 n⌉-th smallest). Clean scenarios: the false rollback \
         rate.\n",
    );
    out
}
