//! Validation: everything a scenario asks, checked before any run, alone and against its
//! migration; every refusal names the file, the line and column, and the field.

use crate::core::Guardrail;
use cutover_migration::answer::AnswerKind;
use cutover_migration::Migration;
use toml::Spanned;

use super::format::*;
use super::ScenarioError;
use crate::faults::FaultSpec;

pub(super) fn err(file: &str, line: usize, column: usize, field: &str, message: String) -> ScenarioError {
    ScenarioError { file: file.into(), line, column, field: field.into(), message }
}

use cutover_migration::line_column;

/// Finds `key =` in a section of the text, for the position of a semantic error.
pub(super) fn key_position(text: &str, section: &str, key: &str) -> (usize, usize) {
    let start = text.find(&format!("[{section}]")).unwrap_or(0);
    let rest = &text[start..];
    let at = rest.find(&format!("\n{key}")).map(|i| start + i + 1).or_else(|| text.find(key)).unwrap_or(0);
    line_column(text, at)
}

/// A refusal at `section.key`: the file, the key's line and column, and the message.
type At<'a> = &'a dyn Fn(&str, &str, String) -> ScenarioError;

fn positive(v: f64) -> bool {
    v.is_finite() && v > 0.0
}

pub(super) fn validate(s: &Scenario, text: &str, file: &str) -> Result<(), ScenarioError> {
    let at = |section: &str, key: &str, message: String| {
        let (line, column) = key_position(text, section, key);
        err(file, line, column, &format!("{section}.{key}"), message)
    };
    if let Some(live) = &s.live {
        live_section(live, &at)?;
    }
    traffic_and_rollout(s, &at)?;
    controller_and_guardrails(s, text, file, &at)?;
    hold(s, &at)?;
    rare_below(s, &at)?;
    stacks_and_size(s, &at)?;
    faults_in_the_plan(s, text, file)
}

/// `[live]`: users, run time, scale, throttle, baseline and the shadow's cost limits.
fn live_section(live: &Live, at: At<'_>) -> Result<(), ScenarioError> {
    if live.users == 0 || live.users > 1000 {
        return Err(at("live", "users", format!("must be 1 to 1000, got {}", live.users)));
    }
    if !positive(live.run_time_s) || live.run_time_s > 3600.0 {
        return Err(at("live", "run_time_s", "must be a positive number of seconds, at most 3600".into()));
    }
    if !positive(live.time_scale) {
        return Err(at("live", "time_scale", "must be a positive number".into()));
    }
    if live.throttle_rps.is_some_and(|r| r == 0 || r > 1_000_000) {
        return Err(at("live", "throttle_rps", "must be 1 to 1000000".into()));
    }
    if !(live.baseline_s.is_finite() && (0.0..=600.0).contains(&live.baseline_s)) {
        return Err(at("live", "baseline_s", "must be 0 to 600 seconds".into()));
    }
    if !(live.max_shadow_cost_ms.is_finite() && (0.0..=10_000.0).contains(&live.max_shadow_cost_ms)) {
        return Err(at("live", "max_shadow_cost_ms", "must be 0 to 10000 ms".into()));
    }
    if live.max_shadow_machine_cost_pct.is_some_and(|p| !(p.is_finite() && p >= 0.0)) {
        return Err(at("live", "max_shadow_machine_cost_pct", "must be a non-negative percentage".into()));
    }
    Ok(())
}

/// `[traffic]` and `[rollout]`.
fn traffic_and_rollout(s: &Scenario, at: At<'_>) -> Result<(), ScenarioError> {
    if !positive(s.traffic.rate_rps) || s.traffic.rate_rps > MAX_RATE_RPS {
        return Err(at(
            "traffic",
            "rate_rps",
            format!("must be a positive number, at most {MAX_RATE_RPS}, got {}", s.traffic.rate_rps),
        ));
    }
    if !positive(s.traffic.duration_s) || s.traffic.duration_s > 30.0 * 86400.0 {
        return Err(at(
            "traffic",
            "duration_s",
            format!("must be positive and at most 30 days, got {}", s.traffic.duration_s),
        ));
    }
    if s.traffic.start_hour_utc.is_some_and(|h| h > 23) {
        return Err(at("traffic", "start_hour_utc", "must be an hour, 0 to 23".into()));
    }
    if let Some(curve) = &s.traffic.daily_curve {
        if curve.len() != 24 || curve.iter().any(|v| !(v.is_finite() && *v >= 0.0)) || curve.iter().all(|v| *v == 0.0) {
            return Err(at("traffic", "daily_curve", "needs 24 non-negative multipliers, not all zero".into()));
        }
    }
    let r = &s.rollout;
    for (key, v) in [("shadow_s", r.shadow_s), ("bake_s", r.bake_s), ("keep_legacy_warm_s", r.keep_legacy_warm_s)] {
        if !(v.is_finite() && v >= 0.0) {
            return Err(at("rollout", key, format!("must be a non-negative number, got {v}")));
        }
    }
    let stages = &r.stages_pct;
    if stages.is_empty()
        || stages.iter().any(|p| !(p.is_finite() && *p > 0.0 && *p <= 100.0))
        || stages.windows(2).any(|w| w[0] >= w[1])
        || stages.last() != Some(&100.0)
    {
        return Err(at(
            "rollout",
            "stages_pct",
            format!("must increase within (0, 100] and end at 100, got {stages:?}"),
        ));
    }
    Ok(())
}

/// `[rare_below]`: a guardrail the plan sets, tested as a rate or a mean, and a level
/// above 0 and below its limit.
fn rare_below(s: &Scenario, at: At<'_>) -> Result<(), ScenarioError> {
    use crate::core::guardrail::Test;
    for (name, &v) in &s.rare_below {
        let Some(g) = Guardrail::from_name(name) else {
            let names: Vec<&str> = Guardrail::ALL.iter().map(|g| g.name()).collect();
            return Err(at("rare_below", name, format!("not a guardrail (guardrails: {})", names.join(", "))));
        };
        let Some(limit) = s.guardrails.limit(g) else {
            return Err(at(
                "rare_below",
                name,
                format!("the plan sets no limit for it (`max_{name}` in [guardrails])"),
            ));
        };
        match g.def().test {
            Test::Rate(_) | Test::PerFeature | Test::Mean { .. } => {}
            Test::Exceedance { .. } | Test::Direct => {
                return Err(at(
                    "rare_below",
                    name,
                    "applies to rates and means only: a latency guardrail's test is of the share of calls past its \
                     limit, and a measured state is compared directly"
                        .into(),
                ))
            }
        }
        if !(v.is_finite() && v > 0.0 && v < limit) {
            return Err(at("rare_below", name, format!("must lie above 0 and below its limit {limit}, got {v}")));
        }
    }
    Ok(())
}

/// `[rollout]`'s hold: a release level below the hold level, which is below the
/// rollback's e-value (else the stage would roll back before it held).
fn hold(s: &Scenario, at: At<'_>) -> Result<(), ScenarioError> {
    let r = &s.rollout;
    let alpha = s.controller.false_rollback_budget;
    if !positive(r.release_e_value) {
        return Err(at("rollout", "release_e_value", format!("must be a positive e-value, got {}", r.release_e_value)));
    }
    if let Some(h) = r.hold_e_value {
        if !(h.is_finite() && h > r.release_e_value && h < 1.0 / alpha) {
            return Err(at(
                "rollout",
                "hold_e_value",
                format!(
                    "must lie above release_e_value ({}) and below the rollback's e-value 1 / false_rollback_budget \
                     ({}), got {h}",
                    r.release_e_value,
                    1.0 / alpha
                ),
            ));
        }
    } else if r.release_e_value >= crate::core::hold::default_hold_e_value(alpha) {
        return Err(at(
            "rollout",
            "release_e_value",
            format!(
                "must lie below the hold e-value (by default 1 / sqrt(false_rollback_budget) = {}), got {}",
                crate::core::hold::default_hold_e_value(alpha),
                r.release_e_value
            ),
        ));
    }
    if r.max_hold_s.is_some_and(|m| !positive(m)) {
        return Err(at("rollout", "max_hold_s", "must be a positive number of seconds".into()));
    }
    Ok(())
}

/// `[controller]` and `[guardrails]`: a plan without a rollback trigger is refused.
fn controller_and_guardrails(s: &Scenario, text: &str, file: &str, at: At<'_>) -> Result<(), ScenarioError> {
    let c = &s.controller;
    if !(c.false_rollback_budget > 0.0 && c.false_rollback_budget < 1.0) {
        return Err(at(
            "controller",
            "false_rollback_budget",
            format!("must be in (0, 1), got {}", c.false_rollback_budget),
        ));
    }
    for (key, v) in [("interval_s", c.interval_s), ("check_interval_s", c.check_interval_s)] {
        if !positive(v) {
            return Err(at("controller", key, format!("must be positive, got {v}")));
        }
    }
    if c.threshold == 0 {
        return Err(at("controller", "threshold", "must be at least 1".into()));
    }
    let set = s.guardrails.set();
    if set.is_empty() {
        let (line, column) = text.find("[guardrails]").map_or((0, 0), |i| line_column(text, i));
        return Err(err(
            file,
            line,
            column,
            "guardrails",
            "no rollback trigger: a plan must declare at least one guardrail before any traffic moves".into(),
        ));
    }
    for (guardrail, limit) in set {
        if !(limit.is_finite() && limit >= 0.0) {
            return Err(at(
                "guardrails",
                &format!("max_{guardrail}"),
                format!("must be a non-negative number, got {limit}"),
            ));
        }
    }
    Ok(())
}

/// `[stacks.*]`, and the run's size.
fn stacks_and_size(s: &Scenario, at: At<'_>) -> Result<(), ScenarioError> {
    for (name, m) in [("legacy", &s.stacks.legacy), ("new", &s.stacks.new)] {
        if !(positive(m.latency_ms_p50) && m.latency_ms_p99 >= m.latency_ms_p50 && positive(m.timeout_ms)) {
            return Err(at(
                &format!("stacks.{name}"),
                "latency_ms_p50",
                "needs 0 < latency_ms_p50 <= latency_ms_p99 and a positive timeout_ms".into(),
            ));
        }
        if let Some(st) = m.stalls {
            if !(positive(st.every_s) && positive(st.duration_s) && st.duration_s < st.every_s && positive(st.add_ms)) {
                return Err(at(
                    &format!("stacks.{name}"),
                    "stalls",
                    "needs every_s > duration_s > 0 and a positive add_ms".into(),
                ));
            }
        }
        if !(0.0..=1.0).contains(&m.error_rate) {
            return Err(at(
                &format!("stacks.{name}"),
                "error_rate",
                format!("must be in [0, 1], got {}", m.error_rate),
            ));
        }
    }
    let expected = s.traffic.rate_rps * s.traffic.duration_s;
    if expected > MAX_REQUESTS {
        return Err(at(
            "traffic",
            "rate_rps",
            format!(
                "{} requests per second for {} s is {expected:.3e} requests; a run simulates at most {MAX_REQUESTS:.0e} \
                 (about four minutes and 300 MB on one core): shorten duration_s or lower the rate",
                s.traffic.rate_rps, s.traffic.duration_s
            ),
        ));
    }
    Ok(())
}

/// Each fault alone, and against the plan: its moments name stages the plan has, and it
/// starts before the run ends.
fn faults_in_the_plan(s: &Scenario, text: &str, file: &str) -> Result<(), ScenarioError> {
    for (k, f) in s.faults.iter().enumerate() {
        validate_fault(k, f, text, file)?;
        let refuse = |field: &str, message: String| {
            let (line, column) = line_column(text, f.span().start);
            err(file, line, column, &format!("faults[{k}].{field}"), message)
        };
        // A moment names a stage the plan has.
        for (field, moment) in [("start_at", &f.get_ref().start_at), ("end_at", &f.get_ref().end_at)] {
            if let Some(Ok(crate::faults::Moment::Stage(p))) = moment.as_deref().map(crate::faults::Moment::parse) {
                if !s.rollout.stages_pct.contains(&p) {
                    let stages = &s.rollout.stages_pct;
                    return Err(refuse(
                        field,
                        format!("canary:{p}: the plan has no {p} % stage (stages_pct = {stages:?})"),
                    ));
                }
            }
        }
        let start = match (f.get_ref().start_at.is_some(), f.get_ref().start_s) {
            (false, Some(p)) => p.max(),
            _ => 0.0,
        };
        if start >= s.traffic.duration_s {
            let duration = s.traffic.duration_s;
            return Err(refuse(
                "start_s",
                format!("starts at {start} s, when the run has ended (duration_s = {duration})"),
            ));
        }
    }
    Ok(())
}

/// The highest arrival rate a scenario may ask for: beyond what one router serves.
pub const MAX_RATE_RPS: f64 = 100_000.0;
/// The most requests one run may simulate (rate x duration).
pub const MAX_REQUESTS: f64 = 5e7;

/// What a scenario asks of its migration: guardrails its answer has, segments it declares.
pub(super) fn validate_against(s: &Scenario, m: &Migration, text: &str, file: &str) -> Result<(), ScenarioError> {
    let at = |section: &str, key: &str, message: String| {
        let (line, column) = key_position(text, section, key);
        err(file, line, column, &format!("{section}.{key}"), message)
    };
    let kind = m.answer().kind;
    let g = &s.guardrails;
    for (guardrail, _) in g.set() {
        if let Err((only, instead)) = guardrail.applies_to(kind) {
            let answers = match kind {
                AnswerKind::Regression => "with a number (regression)",
                AnswerKind::Binary | AnswerKind::Multiclass => "with a decision",
            };
            let key = format!("max_{guardrail}");
            let message =
                format!("the migration `{}` answers {answers}: {key} applies to {only} only; {instead}", m.name);
            return Err(at("guardrails", &key, message));
        }
    }
    if kind != AnswerKind::Regression && g.max_mean_abs_score_diff.is_some_and(|v| v > 1.0) {
        return Err(at("guardrails", "max_mean_abs_score_diff", "a probability difference is at most 1".into()));
    }
    if g.max_shadow_context_mismatch_rate.is_some() && m.shadow_context().is_empty() {
        return Err(at(
            "guardrails",
            "max_shadow_context_mismatch_rate",
            format!("the migration `{}` declares no shadow context ([shadow] context)", m.name),
        ));
    }
    let segments = m.segments()?;
    for (name, stack) in [("legacy", &s.stacks.legacy), ("new", &s.stacks.new)] {
        for seg in &stack.slow_segments {
            segments.resolve(&seg.segment).map_err(|e| at(&format!("stacks.{name}"), "slow_segments", e))?;
        }
    }
    for (k, f) in s.faults.iter().enumerate() {
        let (line, column) = line_column(text, f.span().start);
        let fail = |field: &str, message: String| err(file, line, column, &format!("faults[{k}].{field}"), message);
        if let Some(seg) = &f.get_ref().segment {
            segments.resolve(seg).map_err(|e| fail("segment", e))?;
        }
        if f.get_ref().kind == "shadow_context" && m.shadow_context().is_empty() {
            return Err(fail(
                "kind",
                format!("the migration `{}` declares no shadow context ([shadow] context)", m.name),
            ));
        }
    }
    Ok(())
}

fn validate_fault(k: usize, f: &Spanned<FaultSpec>, text: &str, file: &str) -> Result<(), ScenarioError> {
    let (line, column) = line_column(text, f.span().start);
    check_fault(f.get_ref())
        .map_err(|(field, message)| err(file, line, column, &format!("faults[{k}].{field}"), message))
}

/// Checks one fault table (a scenario's, or one injected live) against its kind's
/// definition: `Err((field, message))`.
pub fn check_fault(spec: &FaultSpec) -> Result<(), (String, String)> {
    spec.check().map(|_| ())
}
