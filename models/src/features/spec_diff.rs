//! A static diff of two feature specs: every semantic difference between the legacy and
//! the new definition of each feature, found before any traffic flows.

use serde::Serialize;

use super::spec::{FeatureDef, Missing, Step, Unknown};
use super::Pipeline;

/// One semantic difference between the two specs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpecDifference {
    /// The feature (or `currency_rates`).
    pub feature: String,
    /// What differs: `source`, `steps`, `vocabulary`, `unknown`, `case_sensitive`, `missing`,
    /// `output`, `presence`, or a currency code.
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
    match (&d.source, &d.ratio) {
        (Some(s), _) => s.get_ref().clone(),
        (None, Some(r)) => format!("{} / {}", r.get_ref()[0], r.get_ref()[1]),
        (None, None) => "-".into(),
    }
}

/// Renders a feature's steps compactly, for example `currency, clip[0, 25000]`.
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
        Step::Bucketize { boundaries } => format!("bucketize({} bounds)", boundaries.len()),
        Step::Currency => "currency".into(),
        Step::HourOfDay { zone } => format!("hour_of_day({zone})"),
        Step::DayOfWeek { zone } => format!("day_of_week({zone})"),
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
    let rates = |p: &Pipeline| p.currency_rates().to_vec();
    let (lr, nr) = (rates(legacy), rates(new));
    for (code, rate) in &lr {
        match nr.iter().find(|(c, _)| c == code) {
            None => out.push(diff(
                "currency_rates",
                code,
                &rate.to_string(),
                "absent",
                "amounts in this currency become missing",
            )),
            Some((_, r)) if r != rate => out.push(diff(
                "currency_rates",
                code,
                &rate.to_string(),
                &r.to_string(),
                &format!("amounts in {code} scale by {:.4}", r / rate),
            )),
            _ => {}
        }
    }
    for (code, rate) in &nr {
        if !lr.iter().any(|(c, _)| c == code) {
            out.push(diff(
                "currency_rates",
                code,
                "absent",
                &rate.to_string(),
                "a currency only the new spec converts",
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
    let zone = |s: &[Step]| {
        s.iter().find_map(|x| match x {
            Step::HourOfDay { zone } | Step::DayOfWeek { zone } => Some(zone.clone()),
            _ => None,
        })
    };
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

    const BASE: &str = r#"
name = "x"
[currency_rates]
EUR = 1.0
USD = 0.92
[[feature]]
name = "amount"
source = "amount"
steps = [{ op = "currency" }]
[[feature]]
name = "hour"
source = "event_time"
steps = [{ op = "hour_of_day", zone = "local" }]
[[feature]]
name = "os"
source = "device_os"
vocabulary = ["android", "ios"]
"#;

    fn spec(text: &str) -> Pipeline {
        Pipeline::from_text(text, "s.toml", None).unwrap()
    }

    #[test]
    fn identical_specs_have_no_differences() {
        assert_eq!(diff_specs(&spec(BASE), &spec(BASE)), []);
    }

    #[test]
    fn each_change_is_named_with_its_effect() {
        let changed = BASE
            .replace(
                "steps = [{ op = \"currency\" }]",
                "steps = [{ op = \"currency\" }, { op = \"scale\", factor = 100.0 }]",
            )
            .replace("zone = \"local\"", "zone = \"UTC\"")
            .replace("[\"android\", \"ios\"]", "[\"ios\", \"android\"]\ncase_sensitive = true\nunknown = { code = 0 }")
            .replace("USD = 0.92", "USD = 0.9");
        let d = diff_specs(&spec(BASE), &spec(&changed));
        let found = |f: &str, a: &str| d.iter().find(|x| x.feature == f && x.aspect == a).map(|x| x.effect.clone());
        assert_eq!(found("amount", "steps").as_deref(), Some("values scaled by 100 (units differ)"));
        assert_eq!(found("hour", "steps").as_deref(), Some("time computed in UTC instead of local"));
        assert!(found("os", "vocabulary").unwrap().contains("another order"));
        assert!(found("os", "case_sensitive").is_some());
        assert!(found("os", "unknown").is_some());
        assert!(found("currency_rates", "USD").unwrap().contains("scale by 0.9783"));
        assert_eq!(d.len(), 6, "{d:#?}");
    }
}
