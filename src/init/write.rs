//! The folder's files as text: migration.toml, the two feature specs, the registry entries.

use std::fmt::Write as _;
use std::path::Path;

use cutover_migration::answer::AnswerKind;
use cutover_migration::features::sha256_hex;
use cutover_migration::infer::Plan;
use cutover_migration::registry::{Entry, Registry, Stage};
use cutover_migration::schema::Kind;
use cutover_models::Model;

use crate::Failure;

/// Where the folder came from, for its comments.
pub struct Origin<'a> {
    pub model: &'a Path,
    pub requests: &'a Path,
}

/// A TOML string literal.
pub fn q(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn list(items: &[String]) -> String {
    format!("[{}]", items.iter().map(|s| q(s)).collect::<Vec<_>>().join(", "))
}

/// A number as TOML writes it (always with a point or an exponent where fractional).
pub fn num(x: f64) -> String {
    toml::Value::Float(x).to_string()
}

fn write(path: &Path, text: &str) -> Result<(), Failure> {
    std::fs::write(path, text).map_err(|e| Failure::BadInput(format!("{}: cannot write: {e}", path.display())))
}

/// Writes migration.toml, legacy.toml, new.toml and the registry's two entries.
pub fn folder(
    dir: &Path,
    name: &str,
    plan: &Plan,
    model: &Model,
    model_file: &str,
    requests_file: &str,
    origin: &Origin<'_>,
) -> Result<(), Failure> {
    migration_toml(dir, name, plan, requests_file, origin)?;
    let legacy = spec(plan, &format!("{name}-legacy"), "legacy", origin);
    let new = spec(plan, &format!("{name}-new"), "new", origin);
    write(&dir.join("legacy.toml"), &legacy)?;
    write(&dir.join("new.toml"), &new)?;
    let registry = Registry::open(&dir.join("registry"));
    std::fs::create_dir_all(registry.root())
        .map_err(|e| Failure::BadInput(format!("{}: cannot create: {e}", registry.root().display())))?;
    let bytes = std::fs::read(dir.join(model_file))
        .map_err(|e| Failure::BadInput(format!("{}: cannot read: {e}", dir.join(model_file).display())))?;
    let (major, minor, patch) = model.version();
    let entry = |spec: &str, text: &str, parent: Option<String>, stage: Stage| Entry {
        name: name.to_string(),
        version: 0,
        artifact: format!("../{model_file}"),
        sha256: sha256_hex(&bytes),
        format: cutover_models::xgboost::format_name(&bytes).to_string(),
        objective: model.objective().name().to_string(),
        feature_names: model.feature_names().to_vec(),
        feature_spec: format!("../{spec}"),
        feature_spec_sha256: sha256_hex(text.as_bytes()),
        training_data_sha256: None,
        xgboost_version: format!("{major}.{minor}.{patch}"),
        parent,
        stage,
    };
    let bad = |e: cutover_migration::registry::RegistryError| Failure::BadInput(e.to_string());
    let first = registry.add(entry("legacy.toml", &legacy, None, Stage::Production)).map_err(bad)?;
    registry.add(entry("new.toml", &new, Some(first.id()), Stage::Staging)).map_err(bad)?;
    Ok(())
}

/// migration.toml.
pub fn migration_toml(
    dir: &Path,
    name: &str,
    plan: &Plan,
    requests_file: &str,
    origin: &Origin<'_>,
) -> Result<(), Failure> {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "# Written by `cutover init` from {} and {} ({} rows over {:.1} hours, {:.2} requests a second).",
        origin.model.display(),
        origin.requests.display(),
        plan.rows,
        plan.span_s / 3600.0,
        plan.rate_rps()
    );
    let _ = writeln!(t, "# Every value below was inferred; docs/your-migration.md says by which rule. Edit freely.");
    let _ = writeln!(t, "name = {}", q(name));
    let _ = writeln!(t, "description = {}", q(&format!("{name}: legacy service to the new platform")));
    let _ = writeln!(t, "\n[request]\nid = {}\nentity = {}\ntime = {}", q(&plan.id), q(&plan.entity), q(&plan.time));
    if plan.entity == plan.id {
        let _ = writeln!(t, "# no column repeats like an entity: requests stick by their id");
    }
    let _ = writeln!(t, "fields = [");
    for f in &plan.fields {
        let mut line = format!("  {{ name = {}, kind = {}", q(&f.name), q(kind_name(f.kind)));
        if f.optional {
            line += ", optional = true";
        }
        if f.epoch_s {
            line += ", epoch = \"s\"";
        }
        line += " },";
        let mut notes = Vec::new();
        if f.optional {
            notes.push(format!("missing in {:.1} % of rows", 100.0 * f.missing_share));
        }
        notes.extend(f.note.clone());
        if !notes.is_empty() {
            line += &format!("   # {}", notes.join("; "));
        }
        let _ = writeln!(t, "{line}");
    }
    let _ = writeln!(t, "]");
    if !plan.skipped.is_empty() {
        for (c, why) in &plan.skipped {
            let _ = writeln!(t, "# left out: `{c}`: {why}");
        }
    }
    for (field, values) in &plan.segments {
        let _ = writeln!(t, "\n[[segment]]\nfield = {}\nvalues = {}", q(field), list(values));
    }
    let _ = writeln!(t, "\n[answer]");
    match plan.kind {
        AnswerKind::Binary => {
            let _ = writeln!(t, "kind = \"binary\"\nthreshold = {}", num(plan.threshold.unwrap_or(0.5)));
            let _ = writeln!(t, "labels = {}             # below the threshold, at or above it", list(&plan.labels));
        }
        AnswerKind::Multiclass => {
            let _ = writeln!(
                t,
                "kind = \"multiclass\"\nlabels = {}             # in the model's class order",
                list(&plan.labels)
            );
        }
        AnswerKind::Regression => {
            let _ = writeln!(t, "kind = \"regression\"");
            let _ = writeln!(
                t,
                "tolerance = {}             # a served answer further than this from legacy's is a wrong one (5 % of the answers' spread)",
                num(plan.tolerance.unwrap_or(1.0))
            );
        }
    }
    if let Some(s) = &plan.score {
        let _ = writeln!(t, "recorded_score = {}", q(s));
    }
    if let Some(d) = &plan.decision {
        let _ = writeln!(t, "recorded_decision = {}", q(d));
    }
    let _ = writeln!(
        t,
        "\n# [shadow]\n# context = []   # optional fields a shadow call can lack; name them to rehearse that loss"
    );
    let _ = writeln!(
        t,
        "\n[registry]\npath = \"registry\"\nlegacy = {}\nnew = {}",
        q(&format!("{name}/1")),
        q(&format!("{name}/2"))
    );
    let _ = writeln!(t, "\n[traffic]\nsource = \"recorded\"\nfile = {}", q(requests_file));
    write(&dir.join(cutover_migration::folder::FILE), &t)
}

fn kind_name(k: Kind) -> &'static str {
    k.name()
}

/// A feature spec: every model feature read from its field, placeholders where none is.
/// A drifted definition of the new path, for a `spec_switch` rehearsal: new.toml with the
/// vocabulary of the most relied-on category feature in another order (its first two values
/// swapped), as a platform that rebuilt the vocabulary would have it. Written to
/// `drift/`; its path relative to the folder, or none when no feature has a vocabulary.
pub fn drift_spec(dir: &Path, name: &str, plan: &Plan, origin: &Origin<'_>) -> Result<Option<String>, Failure> {
    let Some(i) =
        plan.ranked.iter().copied().find(|&i| plan.features[i].vocabulary.as_ref().is_some_and(|v| v.len() >= 2))
    else {
        return Ok(None);
    };
    let mut drifted = plan.clone();
    let f = &mut drifted.features[i];
    if let Some(v) = f.vocabulary.as_mut() {
        v.swap(0, 1);
    }
    let stem: String =
        f.name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    let file = format!("drift/new-{}-vocabulary-reordered.toml", stem.trim_matches('-'));
    let text = format!(
        "# A drifted definition for the `spec_switch` rehearsal in scenarios/: new.toml with the\n# vocabulary of `{}` in another order (its first two values swapped), as a platform that\n# rebuilt it would code it. Not pinned in the registry: a fault switches to it mid-rollout.\n",
        f.name
    ) + &spec(&drifted, &format!("{name}-new-{}-reordered", stem.trim_matches('-')), "new", origin);
    std::fs::create_dir_all(dir.join("drift"))
        .map_err(|e| Failure::BadInput(format!("{}: cannot create: {e}", dir.join("drift").display())))?;
    write(&dir.join(&file), &text)?;
    Ok(Some(file))
}

fn spec(plan: &Plan, name: &str, side: &str, origin: &Origin<'_>) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "# The {side} path's features, as `cutover init` inferred them from {}: each model feature",
        origin.model.display()
    );
    let _ = writeln!(t, "# read from the request field of its name. Where the service derives a feature (a ratio,");
    let _ = writeln!(t, "# an hour in a zone, a code table), say so here: see docs/your-migration.md.");
    if side == "new" {
        let _ = writeln!(t, "# A copy of legacy.toml: the new platform's definitions start as the legacy ones.");
    }
    let _ = writeln!(t, "name = {}\n", q(name));
    for f in &plan.features {
        let _ = writeln!(t, "[[feature]]\nname = {}", q(&f.name));
        match &f.source {
            None => {
                let _ = writeln!(
                    t,
                    "placeholder = {}",
                    q(&format!(
                        "no request field is named `{}`: define it from the fields (source and steps, divide = [a, b], a lookup table, an aggregate) and delete this line",
                        f.name
                    ))
                );
            }
            Some(source) => {
                let _ = writeln!(t, "source = {}", q(source));
                if let Some(v) = &f.vocabulary {
                    let from = if f.vocabulary_from_model {
                        "the category names the model saved"
                    } else {
                        "assumed: the recorded values, sorted"
                    };
                    let _ = writeln!(t, "vocabulary = {}   # {from}", list(v));
                    let _ = writeln!(t, "case_sensitive = true\nunknown = \"nan\"");
                }
            }
        }
        let _ = writeln!(t);
    }
    t
}
