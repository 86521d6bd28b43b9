//! A static diff of two feature specs: every semantic difference between the legacy and
//! the new definition of each feature, found before any traffic flows.

use serde::Serialize;

use super::spec::{Apply, FeatureDef, Missing, Sentinels, Step, Unknown};
use super::Pipeline;

/// One semantic difference between the two specs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpecDifference {
    /// The feature (or `tables.NAME`, or `aggregate NAME`).
    pub feature: String,
    /// What differs: `source`, `steps`, `vocabulary`, `unknown`, `case_sensitive`, `missing`,
    /// `sentinels`, `output`, `presence`, a table's key, or an aggregate's definition.
    pub aspect: String,
    /// The legacy definition.
    pub legacy: String,
    /// The new definition.
    pub new: String,
    /// What the difference does, in words.
    pub effect: String,
}

/// Renders a feature's input as written.
pub fn describe_source(d: &FeatureDef) -> String {
    if let Some(s) = &d.source {
        return s.get_ref().clone();
    }
    match d.arithmetic().first() {
        Some((op, pair)) => {
            let [a, b] = pair.get_ref();
            let mut out = format!("{a} {} {b}", op.symbol());
            if let Some(f) = d.fill_operands {
                out += &format!(" (missing as {f})");
            }
            if let Some(z) = d.on_zero {
                out += &format!(" (x/0 = {z})");
            }
            out
        }
        None => "-".into(),
    }
}

/// Renders a feature's steps compactly, for example `lookup(rates by currency), clip[0, 25000]`.
pub fn describe_steps(d: &FeatureDef) -> String {
    if d.steps.is_empty() {
        return if d.vocabulary.is_some() { "vocabulary".into() } else { "raw".into() };
    }
    d.steps.iter().map(|s| describe_step(s.get_ref())).collect::<Vec<_>>().join(", ")
}

fn describe_step(s: &Step) -> String {
    match s {
        Step::Scale { factor, offset } if *offset == 0.0 => format!("scale(x{factor})"),
        Step::Scale { factor, offset } => format!("scale(x{factor} {offset:+})"),
        Step::Log1p => "log1p".into(),
        Step::Clip { min, max } => format!("clip[{min}, {max}]"),
        Step::Round { digits } => format!("round({digits})"),
        Step::Bucketize { boundaries } => format!("bucketize({} bounds)", boundaries.len()),
        Step::Lookup { table, key, apply, .. } => {
            let how = match apply {
                Apply::Multiply => "x",
                Apply::Divide => "/",
                Apply::Add => "+",
                Apply::Subtract => "-",
                Apply::Replace => "=",
            };
            format!("lookup({how} {table} by {})", key.as_deref().unwrap_or("value"))
        }
        Step::HourOfDay { zone } => format!("hour_of_day({zone})"),
        Step::DayOfWeek { zone } => format!("day_of_week({zone})"),
        Step::DayOfMonth { zone } => format!("day_of_month({zone})"),
        Step::Month { zone } => format!("month({zone})"),
    }
}

/// Renders a missing-value policy.
pub fn describe_missing(m: Missing) -> String {
    match m {
        Missing::Nan => "NaN".into(),
        Missing::Constant(v) => format!("constant {v}"),
        Missing::Mean(v) => format!("mean {v}"),
    }
}

fn describe_unknown(u: Unknown) -> String {
    match u {
        Unknown::Nan => "NaN".into(),
        Unknown::Code(c) => format!("code {c}"),
    }
}

/// Whether the new path can switch from spec `new` to `other` mid-run (a `spec_switch`
/// fault): the same model features in the same order, the same aggregates (the store
/// materializes the new spec's), and something changed. The differences, or why not.
pub fn switchable(new: &Pipeline, other: &Pipeline) -> Result<Vec<SpecDifference>, String> {
    if new.output_names() != other.output_names() {
        let at = new.output_names().iter().zip(other.output_names()).position(|(a, b)| a != b);
        return Err(match at {
            Some(k) => format!(
                "model feature {k} is `{}` in the new spec and `{}` in `{}`",
                new.output_names()[k],
                other.output_names()[k],
                other.name()
            ),
            None => format!("`{}` computes another number of model features than the new spec", other.name()),
        });
    }
    let differences = diff_specs(new, other);
    if new.aggregate_definitions() != other.aggregate_definitions() {
        return Err(format!(
            "`{}` defines other aggregates than the new spec: the store materializes the new spec's, so a switch \
             changes features, not aggregates (rehearse a stale or skewed aggregate with stale_features or feature_skew)",
            other.name()
        ));
    }
    for a in new.aggregate_definitions() {
        let Some(of) = &a.of else { continue };
        if differences.iter().any(|d| &d.feature == of.get_ref()) {
            return Err(format!(
                "`{}` changes `{}`, which the aggregate `{}` folds: the store materializes the new spec's",
                other.name(),
                of.get_ref(),
                a.name.get_ref()
            ));
        }
    }
    if differences.is_empty() {
        return Err(format!(
            "`{}` defines every feature as the new spec does: the switch would change nothing",
            other.name()
        ));
    }
    Ok(differences)
}

/// Every semantic difference between `legacy` and `new`, in the legacy spec's order.
pub fn diff_specs(legacy: &Pipeline, new: &Pipeline) -> Vec<SpecDifference> {
    let mut out = Vec::new();
    let find = |p: &'_ Pipeline, name: &str| p.definitions().iter().find(|d| d.name.get_ref() == name).cloned();
    for l in legacy.definitions() {
        let name = l.name.get_ref();
        let Some(n) = find(new, name) else {
            out.push(diff(name, "presence", "defined", "absent", "the new spec does not compute this feature"));
            continue;
        };
        compare(name, l, &n, &mut out);
    }
    for n in new.definitions() {
        if find(legacy, n.name.get_ref()).is_none() {
            out.push(diff(n.name.get_ref(), "presence", "absent", "defined", "a feature only the new spec computes"));
        }
    }
    for (name, l) in legacy.tables() {
        let table = format!("tables.{name}");
        let Some((_, n)) = new.tables().iter().find(|(m, _)| m == name) else {
            out.push(diff(&table, "presence", "defined", "absent", "lookups in this table fail on the new path"));
            continue;
        };
        for (key, v) in l {
            match n.iter().find(|(k, _)| k == key) {
                None => {
                    out.push(diff(&table, key, &v.to_string(), "absent", "this key becomes missing (or the default)"))
                }
                Some((_, w)) if w != v => {
                    let effect = match (v, w) {
                        (super::TableValue::Number(a), super::TableValue::Number(b)) => {
                            format!("values looked up by {key} scale by {:.4}", b / a)
                        }
                        _ => format!("{key} maps to another value"),
                    };
                    out.push(diff(&table, key, &v.to_string(), &w.to_string(), &effect));
                }
                _ => {}
            }
        }
        for (key, w) in n {
            if !l.iter().any(|(k, _)| k == key) {
                out.push(diff(&table, key, "absent", &w.to_string(), "a key only the new spec knows"));
            }
        }
    }
    for (name, _) in new.tables() {
        if !legacy.tables().iter().any(|(m, _)| m == name) {
            out.push(diff(&format!("tables.{name}"), "presence", "absent", "defined", "a table only the new spec has"));
        }
    }
    let describe = |a: &super::AggregateDef| {
        let of = a.of.as_ref().map_or(String::new(), |o| format!(" of {}", o.get_ref()));
        let window = a.window_s.map_or(" over all history".to_string(), |w| format!(" over {w} s"));
        format!("{}{of}{window}", a.function.name())
    };
    for l in legacy.aggregate_definitions() {
        let name = l.name.get_ref();
        let label = format!("aggregate {name}");
        match new.aggregate_definitions().iter().find(|n| n.name.get_ref() == name) {
            None => out.push(diff(&label, "presence", &describe(l), "absent", "features reading it have no source")),
            Some(n) if describe(n) != describe(l) => out.push(diff(
                &label,
                "definition",
                &describe(l),
                &describe(n),
                "the store serves another value under the same name",
            )),
            _ => {}
        }
    }
    for n in new.aggregate_definitions() {
        if !legacy.aggregate_definitions().iter().any(|l| l.name.get_ref() == n.name.get_ref()) {
            out.push(diff(
                &format!("aggregate {}", n.name.get_ref()),
                "presence",
                "absent",
                &describe(n),
                "an aggregate only the new store has",
            ));
        }
    }
    out
}

fn diff(feature: &str, aspect: &str, legacy: &str, new: &str, effect: &str) -> SpecDifference {
    SpecDifference {
        feature: feature.into(),
        aspect: aspect.into(),
        legacy: legacy.into(),
        new: new.into(),
        effect: effect.into(),
    }
}

fn compare(name: &str, l: &FeatureDef, n: &FeatureDef, out: &mut Vec<SpecDifference>) {
    let (ls, ns) = (describe_source(l), describe_source(n));
    if ls != ns {
        out.push(diff(name, "source", &ls, &ns, "the feature reads a different input"));
    }
    let steps = |d: &FeatureDef| d.steps.iter().map(|s| s.get_ref().clone()).collect::<Vec<_>>();
    if steps(l) != steps(n) {
        out.push(diff(name, "steps", &describe_steps(l), &describe_steps(n), &step_effect(&steps(l), &steps(n))));
    }
    let vocab = |d: &FeatureDef| {
        d.vocabulary.as_ref().map(|v| v.get_ref().iter().map(|s| s.get_ref().clone()).collect::<Vec<_>>())
    };
    match (vocab(l), vocab(n)) {
        (Some(a), Some(b)) if a != b => {
            let mut sa = a.clone();
            let mut sb = b.clone();
            sa.sort();
            sb.sort();
            let effect = if sa == sb {
                "same values in another order: categories get other codes".to_string()
            } else {
                let added: Vec<_> = b.iter().filter(|v| !a.contains(v)).cloned().collect();
                let removed: Vec<_> = a.iter().filter(|v| !b.contains(v)).cloned().collect();
                format!("added [{}], removed [{}]: codes shift", added.join(", "), removed.join(", "))
            };
            out.push(diff(name, "vocabulary", &format!("{} values", a.len()), &format!("{} values", b.len()), &effect));
        }
        (a, b) if a.is_some() != b.is_some() => out.push(diff(
            name,
            "vocabulary",
            if a.is_some() { "encoded" } else { "none" },
            if b.is_some() { "encoded" } else { "none" },
            "categorical on one side only",
        )),
        _ => {}
    }
    // The scalar aspects: (aspect, differs, legacy, new, effect).
    let scalars = [
        (
            "unknown",
            l.unknown != n.unknown,
            describe_unknown(l.unknown),
            describe_unknown(n.unknown),
            "unseen categories are encoded differently",
        ),
        (
            "case_sensitive",
            l.case_sensitive != n.case_sensitive && l.vocabulary.is_some(),
            l.case_sensitive.to_string(),
            n.case_sensitive.to_string(),
            "values differing only in case match on one side only",
        ),
        (
            "missing",
            l.missing != n.missing,
            describe_missing(l.missing),
            describe_missing(n.missing),
            "missing values reach the model differently",
        ),
        (
            "sentinels",
            l.sentinels != n.sentinels,
            format!("{:?}", l.sentinels).to_lowercase(),
            format!("{:?}", n.sentinels).to_lowercase(),
            if n.sentinels == Sentinels::Keep {
                "values the schema declares missing reach the model as sent on the new path"
            } else {
                "values the schema declares missing reach the model as sent on the legacy path"
            },
        ),
        (
            "output",
            l.output != n.output,
            l.output.to_string(),
            n.output.to_string(),
            "the model reads it on one side only",
        ),
    ];
    for (aspect, differs, legacy, new, effect) in scalars {
        if differs {
            out.push(diff(name, aspect, &legacy, &new, effect));
        }
    }
}

fn step_effect(l: &[Step], n: &[Step]) -> String {
    let zone = |s: &[Step]| s.iter().find_map(|x| x.zone().map(|z| z.to_string()));
    if let (Some(a), Some(b)) = (zone(l), zone(n)) {
        if a != b {
            return format!("time computed in {b} instead of {a}");
        }
    }
    let scale = |s: &[Step]| {
        s.iter().fold(1.0, |acc, x| match x {
            Step::Scale { factor, .. } => acc * factor,
            _ => acc,
        })
    };
    let (a, b) = (scale(l), scale(n));
    if a != b {
        return format!("values scaled by {} (units differ)", b / a);
    }
    "the transform differs".into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::tests::{fraud_schema, pipeline};

    const BASE: &str = r#"
name = "x"
[tables.rates]
EUR = 1.0
USD = 0.92
[[aggregate]]
name = "n"
function = "count"
[[feature]]
name = "amount"
source = "amount"
steps = [{ op = "lookup", table = "rates", key = "currency" }]
[[feature]]
name = "hour"
source = "event_time_ms"
steps = [{ op = "hour_of_day", zone = "Europe/Berlin" }]
[[feature]]
name = "os"
source = "device_os"
vocabulary = ["android", "ios"]
[[feature]]
name = "ratio"
divide = ["amount", "n"]
"#;

    fn spec(text: &str) -> Pipeline {
        pipeline(text, &fraud_schema())
    }

    #[test]
    fn identical_specs_have_no_differences() {
        assert_eq!(diff_specs(&spec(BASE), &spec(BASE)), []);
    }

    #[test]
    fn each_change_is_named_with_its_effect() {
        let changed = BASE
            .replace(
                "steps = [{ op = \"lookup\", table = \"rates\", key = \"currency\" }]",
                "steps = [{ op = \"lookup\", table = \"rates\", key = \"currency\" }, { op = \"scale\", factor = 100.0 }]",
            )
            .replace("zone = \"Europe/Berlin\"", "zone = \"UTC\"")
            .replace("[\"android\", \"ios\"]", "[\"ios\", \"android\"]\ncase_sensitive = true\nunknown = { code = 0 }")
            .replace("USD = 0.92", "USD = 0.9")
            .replace("function = \"count\"", "function = \"count\"\nwindow_s = 3600")
            .replace("divide = [\"amount\", \"n\"]", "divide = [\"amount\", \"n\"]\non_zero = 0.0");
        let d = diff_specs(&spec(BASE), &spec(&changed));
        let found = |f: &str, a: &str| d.iter().find(|x| x.feature == f && x.aspect == a).map(|x| x.effect.clone());
        assert_eq!(found("amount", "steps").as_deref(), Some("values scaled by 100 (units differ)"));
        assert_eq!(found("hour", "steps").as_deref(), Some("time computed in UTC instead of Europe/Berlin"));
        assert!(found("os", "vocabulary").unwrap().contains("another order"));
        assert!(found("os", "case_sensitive").is_some());
        assert!(found("os", "unknown").is_some());
        assert!(found("tables.rates", "USD").unwrap().contains("scale by 0.9783"));
        assert!(found("aggregate n", "definition").is_some());
        assert!(found("ratio", "source").is_some());
        assert_eq!(d.len(), 8, "{d:#?}");
    }
}
