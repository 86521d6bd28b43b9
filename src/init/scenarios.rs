//! The starter scenario library `cutover init` writes, chosen from the data, and its SLOs
//! set from what the sequential judge achieves on this traffic: every scenario runs over a
//! few seeds, a fault too small to be caught on every one of them is made larger (up to
//! three times), and the SLO is the slowest seed's time to rollback with half again as
//! margin. A judge twice as slow fails the library.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use cutover_migration::answer::AnswerKind;
use cutover_migration::infer::Plan;
use cutover_migration::schema::Kind;
use cutover_models::Model;
use cutover_sim::core::Guardrail;
use cutover_sim::faults::Tag;
use cutover_sim::scenario::Outcome;
use cutover_sim::world::sweep::{sweep, ScenarioRuns};

use super::write::{num, q};
use crate::Failure;

/// When faults start: in the first canary stage (shadow 600 s, stages of 600 s).
const FAULT_S: f64 = 900.0;

/// One scenario of the library, before its SLOs are known.
#[derive(Debug, Clone)]
pub struct Draft {
    /// Its file's stem and the scenario's name suffix.
    pub name: String,
    /// What it rehearses.
    pub description: String,
    /// Mean rate.
    pub rate_rps: f64,
    /// Duration.
    pub duration_s: f64,
    /// The hour the rollout starts.
    pub start_hour: u32,
    /// Its fault and what it does, one per magnitude tried in turn (empty: a clean scenario).
    pub magnitudes: Vec<(String, String)>,
    /// Which magnitude is in use.
    pub level: usize,
    /// Times a clean scenario's duration was doubled for its rollout to finish.
    pub doublings: u32,
    /// What it expects.
    pub outcome: Outcome,
    /// Its seed.
    pub seed: u64,
}

/// What the calibration runs found for one scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Calibrated {
    /// Seeds run.
    pub runs: usize,
    /// Runs that ended as expected.
    pub as_expected: usize,
    /// The slowest time from the fault's start to the rollback.
    pub slowest_s: Option<f64>,
    /// The most bad decisions served.
    pub most_bad: u64,
}

impl Calibrated {
    /// The SLO written: the slowest seed with half again, rounded up to 5 s.
    pub fn slo_s(&self) -> Option<f64> {
        self.slowest_s.map(|s| ((s * 1.5 + 5.0) / 5.0).ceil() * 5.0)
    }

    /// The bad-decision budget written: the most seen with half again, plus 5.
    pub fn bad_budget(&self) -> u64 {
        (self.most_bad as f64 * 1.5).ceil() as u64 + 5
    }

    pub fn describe(&self) -> String {
        match self.slo_s() {
            Some(slo) => format!(
                "{} of {} seeds rolled back, slowest {:.0} s after the fault: SLO {slo:.0} s",
                self.as_expected,
                self.runs,
                self.slowest_s.unwrap_or(0.0)
            ),
            None => format!("{} of {} seeds ended as expected", self.as_expected, self.runs),
        }
    }
}

/// The library the data calls for; `switches` are the specs the new path can switch to (see
/// [`cutover_migration::features::switchable`]), as a scenario names them, each with what it
/// changes in words.
pub fn library(plan: &Plan, model: &Model, rate: f64, switches: &[(String, String)]) -> Vec<Draft> {
    let l = Library {
        plan,
        rate,
        busiest: (0..24).max_by_key(|&h| (plan.hours[h], std::cmp::Reverse(h))).unwrap_or(9) as u32,
        ranked: plan.ranked.iter().copied().filter(|&i| model.importance()[i].splits > 0).collect(),
    };
    let mut out = l.clean();
    out.extend(l.top_numeric());
    out.extend(switches.iter().map(|(entry, changes)| l.spec_switch(entry, changes)));
    out.extend(l.threshold());
    out.extend(l.missing());
    out.extend(l.recoded());
    out.extend(l.stack());
    for (k, d) in out.iter_mut().enumerate() {
        d.seed = 101 + k as u64;
    }
    out
}

/// What the library is drawn from: the plan, the rate, the busiest hour, and the model's
/// features it relies on, most first.
struct Library<'a> {
    plan: &'a Plan,
    rate: f64,
    busiest: u32,
    ranked: Vec<usize>,
}

/// A fault table: its kind's name from the faults' definition, its start, then its fields.
fn fault_at(tag: Tag, start_s: f64, rest: &str) -> String {
    let rest = if rest.is_empty() { String::new() } else { format!("\n{rest}") };
    format!("kind = {}\nstart_s = {}{rest}", q(tag.name()), num(start_s))
}

/// A fault table starting in the first canary stage.
fn fault(tag: Tag, rest: &str) -> String {
    fault_at(tag, FAULT_S, rest)
}

/// A fault table starting as the rollout enters the 5 % stage.
fn fault_entering_canary_5(tag: Tag, rest: &str) -> String {
    format!("kind = {}\nstart_at = \"canary:5\"\n{rest}", q(tag.name()))
}

impl Library<'_> {
    fn draft(&self, name: &str, magnitudes: Vec<(String, String)>, outcome: Outcome) -> Draft {
        Draft {
            name: name.to_string(),
            description: String::new(),
            rate_rps: self.rate,
            duration_s: 4800.0,
            start_hour: self.busiest,
            magnitudes,
            level: 0,
            doublings: 0,
            outcome,
            seed: 0,
        }
    }

    /// A fault to roll back from, one table per magnitude tried in turn.
    fn fault(&self, name: &str, magnitudes: Vec<(String, String)>) -> Draft {
        self.draft(name, magnitudes, Outcome::RolledBack)
    }

    /// A clean promotion at the service's rate, and one at a tenth of it.
    fn clean(&self) -> Vec<Draft> {
        let clean = Draft {
            description: "Nothing goes wrong: the rollout promotes".into(),
            duration_s: 7200.0,
            ..self.draft("clean-promotes", Vec::new(), Outcome::Promoted)
        };
        let low = round1((self.rate / 10.0).clamp(0.5, 5.0));
        let slow = Draft {
            name: "clean-low-traffic".into(),
            description: format!("Nothing goes wrong at {} requests a second, a tenth of the service's rate", num(low)),
            rate_rps: low,
            duration_s: 28800.0,
            ..clean.clone()
        };
        vec![clean, slow]
    }

    /// The kind and optionality of model feature `i`'s field.
    fn field_kind(&self, i: usize) -> Option<(Kind, bool)> {
        let source = self.plan.features[i].source.as_deref()?;
        self.plan.field(source).map(|f| (f.kind, f.optional))
    }

    /// The numeric feature the model relies on most: skewed in other units; and its request
    /// field read in other units from the moment the 5 % stage begins (every feature derived
    /// from it following; timed by the stage, not the clock).
    fn top_numeric(&self) -> Vec<Draft> {
        let numeric = |&&i: &&usize| matches!(self.field_kind(i), Some((Kind::Number | Kind::Integer, _)));
        let Some(&i) = self.ranked.iter().find(numeric) else { return Vec::new() };
        let f = &self.plan.features[i].name;
        let skew = self.fault(
            &format!("skew-{}", slug(f)),
            [100.0, 1000.0]
                .iter()
                .map(|s| {
                    (
                        fault(Tag::FeatureSkew, &format!("feature = {}\nscale = {}", q(f), num(*s))),
                        format!("The new path reads `{f}`, the numeric feature the model relies on most, in other units (x{s})"),
                    )
                })
                .collect(),
        );
        let Some(field) = self.plan.features[i].source.clone() else { return vec![skew] };
        let read = self.fault(
            &format!("field-{}-entering-canary-5", slug(&field)),
            [100.0, 1000.0]
                .iter()
                .map(|s| {
                    (
                        fault_entering_canary_5(Tag::FieldSkew, &format!("field = {}\nscale = {}", q(&field), num(*s))),
                        format!(
                            "From the moment the rollout enters the 5 % stage, the new path reads the request field `{field}` in other units (x{s}): every feature derived from it follows"
                        ),
                    )
                })
                .collect(),
        );
        vec![skew, read]
    }

    /// The new path switching to another spec as the rollout enters the 5 % stage.
    fn spec_switch(&self, entry: &str, changes: &str) -> Draft {
        let stem = entry.rsplit('/').next().unwrap_or(entry).trim_end_matches(".toml").trim_start_matches("new-");
        self.fault(
            &format!("spec-{}-entering-canary-5", slug(stem)),
            vec![(
                fault_entering_canary_5(Tag::SpecSwitch, &format!("spec = {}", q(entry))),
                format!(
                    "From the moment the rollout enters the 5 % stage, the new path computes with the spec of `{entry}` ({changes})"
                ),
            )],
        )
    }

    /// A binary answer's decision threshold moved, the scores untouched: up where there is
    /// room.
    fn threshold(&self) -> Option<Draft> {
        let (AnswerKind::Binary, Some(t)) = (self.plan.kind, self.plan.threshold) else { return None };
        let moved = [0.1, 0.2].iter().map(|d| if t + d <= 0.95 { t + d } else { (t - d).max(0.01) });
        Some(
            self.fault(
                "threshold-moved",
                moved
                    .map(|x| (x * 1000.0).round() / 1000.0)
                    .map(|x| {
                        (
                            fault(Tag::DecisionThreshold, &format!("threshold = {}", num(x))),
                            format!(
                                "The new stack decides at {} instead of {} (the same scores, other decisions)",
                                num(x),
                                num(t)
                            ),
                        )
                    })
                    .collect(),
            ),
        )
    }

    /// Missing values filled with 0 on the most relied-on feature missing in 1 % of rows.
    fn missing(&self) -> Option<Draft> {
        let plan = self.plan;
        let share = |i: usize| plan.features[i].source.as_deref().and_then(|s| plan.missing_share(s)).unwrap_or(0.0);
        let i = *self.ranked.iter().find(|&&i| matches!(self.field_kind(i), Some((_, true))) && share(i) >= 0.01)?;
        let f = &plan.features[i].name;
        Some(self.fault(
            &format!("missing-{}-filled", slug(f)),
            vec![(
                fault(Tag::MissingValuePolicy, &format!("feature = {}\nfill = 0.0", q(f))),
                format!(
                    "The new path fills a missing `{f}` ({:.1} % of requests) with 0 where legacy passes it as missing",
                    100.0 * share(i)
                ),
            )],
        ))
    }

    /// The most relied-on category feature coded with a reordered vocabulary.
    fn recoded(&self) -> Option<Draft> {
        let i = *self.ranked.iter().find(|&&i| self.plan.features[i].vocabulary.is_some())?;
        let f = &self.plan.features[i].name;
        Some(self.fault(
            &format!("{}-recoded", slug(f)),
            vec![(
                fault(Tag::CategoricalEncoding, &format!("feature = {}\nshift = 1.0", q(f))),
                format!("The new path codes `{f}` with a reordered vocabulary (every code shifted by one)"),
            )],
        ))
    }

    /// The new stack itself: the wrong artifact, latency added and multiplied, errors and
    /// timeouts (5 %, then 10 and 20 % where 5 is not caught on every seed), and an early
    /// decommission, refused.
    fn stack(&self) -> Vec<Draft> {
        let rates = |tag: Tag, says: fn(f64) -> String| -> Vec<(String, String)> {
            [0.05, 0.1, 0.2].iter().map(|r| (fault(tag, &format!("rate = {}", num(*r))), says(r * 100.0))).collect()
        };
        let scaled = |values: &[f64], table: fn(f64) -> String, says: fn(f64) -> String| {
            values.iter().map(|x| (table(*x), says(*x))).collect::<Vec<_>>()
        };
        vec![
            self.fault(
                "wrong-model-artifact",
                vec![(
                    fault_at(Tag::ModelArtifact, 700.0, "artifact = \"../model_checkpoint.json\""),
                    "The new stack serves an earlier checkpoint of the model (the first half of its boosting rounds)"
                        .into(),
                )],
            ),
            self.fault(
                "latency-median",
                scaled(
                    &[40.0, 100.0, 250.0],
                    |ms| fault(Tag::Latency, &format!("add_ms = {}", num(ms))),
                    |ms| format!("The new stack answers {ms} ms slower on every call"),
                ),
            ),
            self.fault(
                "latency-p99-multiplied",
                scaled(
                    &[3.0, 5.0, 10.0],
                    |x| fault(Tag::LatencyScale, &format!("p99 = {}", num(x))),
                    |x| format!("The new stack's own 99th percentile {x} times as long, its median unchanged"),
                ),
            ),
            self.fault("errors", rates(Tag::Errors, |pct| format!("The new stack fails {pct} % of its calls"))),
            self.fault("timeouts", rates(Tag::Timeouts, |pct| format!("{pct} % of the new stack's calls time out"))),
            self.draft(
                "early-decommission",
                vec![(
                    fault_at(Tag::DecommissionLegacy, 3600.0, ""),
                    "Someone decommissions legacy before the post-migration window ends: refused, and the rollout promotes"
                        .into(),
                )],
                Outcome::Promoted,
            ),
        ]
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// A file-name-safe form of a feature name.
fn slug(s: &str) -> String {
    let s: String = s.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    s.trim_matches('-').chars().take(40).collect()
}

/// The guardrails for the answer's kind (the bundled plans' limits).
fn guardrails(plan: &Plan) -> String {
    let mut t = String::from("[guardrails]\n");
    for g in Guardrail::ALL {
        if g.applies_to(plan.kind).is_err() {
            continue;
        }
        if let Some((limit, note)) = limit_of(g, plan) {
            let _ = writeln!(t, "max_{} = {limit}{note}", g.name());
        }
    }
    t
}

/// The limit `init` writes for a guardrail (the bundled plans' limits), with a comment when
/// it needs one; none where `init` cannot know one. Every guardrail is named here, so one
/// added to the definition is a compile error until `init` says what it writes for it.
fn limit_of(g: Guardrail, plan: &Plan) -> Option<(String, &'static str)> {
    let text = |s: &str| Some((s.to_string(), ""));
    match g {
        Guardrail::DecisionFlipRate => text("0.002"),
        Guardrail::MeanAbsScoreDiff if plan.kind == AnswerKind::Regression => {
            let tol = plan.tolerance.unwrap_or(1.0);
            let limit = num(cutover_migration::infer::round2(tol / 20.0));
            Some((limit, "   # the model's units: a twentieth of the answer's tolerance"))
        }
        Guardrail::MeanAbsScoreDiff => text("0.002"),
        Guardrail::MeanRelScoreDiff => text("0.005"),
        Guardrail::FeatureMismatchRate => text("0.005"),
        Guardrail::ErrorRate | Guardrail::TimeoutRate => text("0.01"),
        // A limit in milliseconds is the team's own latency budget: not guessed.
        Guardrail::P99LatencyMs => None,
        Guardrail::P99LatencyRatio => text("1.5"),
        // A folder init writes declares no shadow context.
        Guardrail::ShadowContextMismatchRate => None,
        Guardrail::FeatureStalenessS => text("1800"),
    }
}

/// A scenario's text; `slo` and `bad` where calibrated.
fn text(plan: &Plan, d: &Draft, slo: Option<f64>, bad: Option<u64>, note: &str) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "# Written by `cutover init`{note}");
    let _ = writeln!(t, "name = {}", q(&format!("{}-{}", plan.name, d.name)));
    let description = d.magnitudes.get(d.level).map_or(d.description.as_str(), |m| m.1.as_str());
    let _ = writeln!(t, "description = {}", q(description));
    let _ = writeln!(t, "seed = {}\nmigration = \"..\"\n", d.seed);
    let _ = writeln!(
        t,
        "[traffic]\nrate_rps = {}\nduration_s = {}\nstart_hour_utc = {}\n",
        num(d.rate_rps),
        num(d.duration_s),
        d.start_hour
    );
    t += "[rollout]\nshadow_s = 600\nstages_pct = [1, 5, 25, 50, 100]\nbake_s = 600\nkeep_legacy_warm_s = 1800\n\n";
    t += "[controller]\npolicy = \"sequential\"\n\n";
    t += &guardrails(plan);
    if let Some((f, _)) = d.magnitudes.get(d.level) {
        let _ = write!(t, "\n[[faults]]\n{f}\n");
    }
    let _ = writeln!(t, "\n[expect]");
    match d.outcome {
        Outcome::RolledBack => {
            let slo = slo.unwrap_or(d.duration_s - FAULT_S);
            let _ = writeln!(
                t,
                "outcome = \"rolled_back\"\ndetect_within_s = {}\nrollback_within_s = {}",
                num(slo),
                num(slo)
            );
            if let Some(b) = bad {
                let _ = writeln!(t, "max_bad_decisions = {b}");
            }
        }
        _ => {
            let _ = writeln!(t, "outcome = \"promoted\"\nmax_bad_decisions = 0");
        }
    }
    t
}

/// Runs scenario files over seeds 1..=`seeds` on `jobs` threads: per file, how its runs
/// ended against what it expects, the slowest rollback after its fault, the most bad
/// decisions served.
pub fn measure(files: &[PathBuf], seeds: u64, jobs: usize) -> Result<Vec<Calibrated>, Failure> {
    let sweeps = sweep(files, seeds, 1, None, &[], jobs).map_err(|e| Failure::BadInput(e.to_string()))?;
    let records: &[ScenarioRuns] = &sweeps[0].records;
    Ok(records
        .iter()
        .map(|r| {
            let rolls_back = r.expected_outcome == Outcome::RolledBack;
            let as_expected = r
                .runs
                .iter()
                .filter(|run| if rolls_back { run.rolled_back_after_fault } else { run.outcome == r.expected_outcome })
                .count();
            let slowest = r.runs.iter().filter_map(|run| run.time_to_rollback_s).reduce(f64::max);
            Calibrated {
                runs: r.runs.len(),
                as_expected,
                slowest_s: if rolls_back { slowest } else { None },
                most_bad: r.runs.iter().map(|run| run.bad_decisions_served).max().unwrap_or(0),
            }
        })
        .collect())
}

/// Runs the library over `seeds` seeds, making a fault larger where it is not caught on
/// every seed (the drafts keep the magnitude settled on); one calibration per draft.
pub fn calibrate(dir: &Path, plan: &Plan, drafts: &mut [Draft], seeds: u64) -> Result<Vec<Calibrated>, Failure> {
    let folder = dir.join("scenarios");
    std::fs::create_dir_all(&folder)
        .map_err(|e| Failure::BadInput(format!("{}: cannot create: {e}", folder.display())))?;
    let mut result: Vec<Option<Calibrated>> = vec![None; drafts.len()];
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    loop {
        let todo: Vec<usize> = (0..drafts.len()).filter(|&i| result[i].is_none()).collect();
        if todo.is_empty() {
            break;
        }
        let mut files: Vec<PathBuf> = Vec::new();
        for &i in &todo {
            let path = folder.join(format!("{}.toml", drafts[i].name));
            std::fs::write(&path, text(plan, &drafts[i], None, None, " (being calibrated)"))
                .map_err(|e| Failure::BadInput(format!("{}: cannot write: {e}", path.display())))?;
            files.push(path);
        }
        let measured = measure(&files, seeds, jobs)?;
        for (&i, c) in todo.iter().zip(measured) {
            let d = &mut drafts[i];
            if c.as_expected < c.runs && d.outcome == Outcome::RolledBack && d.level + 1 < d.magnitudes.len() {
                d.level += 1;
                continue;
            }
            // A clean rollout still in progress at the end: give it the time it needs.
            // (Within what one run may simulate: the scenario would be refused beyond it.)
            let room = d.rate_rps * d.duration_s * 2.0 <= cutover_sim::scenario::MAX_REQUESTS;
            if c.as_expected < c.runs && d.outcome == Outcome::Promoted && d.doublings < 2 && room {
                d.duration_s *= 2.0;
                d.doublings += 1;
                continue;
            }
            result[i] = Some(c);
        }
    }
    Ok(result.into_iter().map(|c| c.expect("every draft calibrated")).collect())
}

/// The live library (`cutover loadtest`): a clean promotion and an error burst on real
/// sockets, on the bundled live plan (an hour's rollout in a minute of wall time).
pub fn write_live(dir: &Path, plan: &Plan) -> Result<(), Failure> {
    let folder = dir.join("live");
    std::fs::create_dir_all(&folder)
        .map_err(|e| Failure::BadInput(format!("{}: cannot create: {e}", folder.display())))?;
    let live = "\n[live]\nusers = 8\nrun_time_s = 45\ntime_scale = 60\nbaseline_s = 8\nthrottle_rps = 1000\n";
    let head = |name: &str, description: &str| {
        let mut t = String::new();
        let _ =
            writeln!(t, "# Written by `cutover init`: a load test of the live stacks (`cutover loadtest` this file)");
        let _ = writeln!(
            t,
            "name = {}\ndescription = {}\nseed = 1\nmigration = \"..\"\n",
            q(&format!("{}-live-{name}", plan.name)),
            q(description)
        );
        t += "[traffic]\nrate_rps = 200\nduration_s = 3600\n\n";
        t += "[rollout]\nshadow_s = 600\nstages_pct = [1, 5, 25, 50, 100]\nbake_s = 300\nkeep_legacy_warm_s = 600\nmin_requests_per_stage = 200\n\n";
        t += "[controller]\npolicy = \"sequential\"\n\n";
        t += &guardrails(plan).replace(
            "max_p99_latency_ratio = 1.5",
            "max_p99_latency_ratio = 10.0   # live: sub-millisecond p99s on cores shared with goose; 3x is scheduling noise",
        );
        t
    };
    let clean =
        head("clean-promotes", "A clean migration on real sockets: every guardrail holds and the rollout promotes")
            + "\n[expect]\noutcome = \"promoted\"\nmax_bad_decisions = 0\n"
            + live;
    let errors = head("error-burst", "The new stack fails a fifth of its calls for five minutes, mid-canary")
        + &format!("\n[[faults]]\nkind = {}\nstart_s = 1000\nend_s = 1300\nrate = 0.2\n", q(Tag::Errors.name()))
        + "\n[expect]\noutcome = \"rolled_back\"\ndetect_within_s = 60\nrollback_within_s = 60\n"
        + live;
    for (name, t) in [("clean-promotes.toml", clean), ("error-burst.toml", errors)] {
        let path = folder.join(name);
        std::fs::write(&path, t).map_err(|e| Failure::BadInput(format!("{}: cannot write: {e}", path.display())))?;
    }
    Ok(())
}

/// Writes every scenario with its SLOs; uncalibrated ones (a folder with placeholders)
/// say so and hold generous limits until `cutover init`'s calibration can run.
pub fn write_all(dir: &Path, plan: &Plan, drafts: &[Draft], calibrated: Option<&[Calibrated]>) -> Result<(), Failure> {
    let folder = dir.join("scenarios");
    std::fs::create_dir_all(&folder)
        .map_err(|e| Failure::BadInput(format!("{}: cannot create: {e}", folder.display())))?;
    for (k, d) in drafts.iter().enumerate() {
        let c = calibrated.and_then(|c| c.get(k));
        let note = match c {
            Some(c) if d.outcome == Outcome::RolledBack => format!(
                ": the SLO is the slowest of {} seeds ({:.0} s from the fault to the rollback) with half again",
                c.runs,
                c.slowest_s.unwrap_or(0.0)
            ),
            Some(c) => format!(": {} of {} seeds ended as expected", c.as_expected, c.runs),
            None => ": NOT CALIBRATED (the feature specs have placeholders); the limits below are loose".into(),
        };
        let path = folder.join(format!("{}.toml", d.name));
        let t = text(plan, d, c.and_then(Calibrated::slo_s), c.map(Calibrated::bad_budget), &note);
        std::fs::write(&path, t).map_err(|e| Failure::BadInput(format!("{}: cannot write: {e}", path.display())))?;
    }
    Ok(())
}
