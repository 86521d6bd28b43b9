//! Any team's migration, from files alone: a folder this test writes itself (a multiclass
//! ticket-triage service, neither bundled example) through `registry`, `run`, `record`,
//! `replay`, `audit` and the live services; guardrails refused where the answer kind has
//! no such statistic; recorded traffic resampled as the recording was.

use std::path::{Path, PathBuf};

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::support::{self, in_root as cutover, root};

fn scratch(name: &str) -> PathBuf {
    support::scratch("migrations", name)
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn ok(o: &std::process::Output) -> String {
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success(), "{out}\n{}", String::from_utf8_lossy(&o.stderr));
    out
}

const MIGRATION: &str = r#"
name = "ticket-triage"
description = "Support tickets routed to one of four queues"

[request]
id = "ticket_id"
entity = "customer"
time = "opened_at"
fields = [
  { name = "ticket_id", kind = "category" },
  { name = "customer", kind = "integer" },
  { name = "opened_at", kind = "timestamp" },
  { name = "tz", kind = "category", optional = true },
  { name = "words", kind = "integer", min = 0 },
  { name = "priority", kind = "category" },
  { name = "plan", kind = "category", optional = true, missing_values = ["unknown"] },
  { name = "attachments", kind = "integer", missing_values = [-1] },
  { name = "vip", kind = "boolean" },
]

[[segment]]
field = "plan"
case_sensitive = false

[[segment]]
name = "length"
field = "words"
buckets = [50, 200]

[answer]
kind = "multiclass"
labels = ["billing", "bug", "account", "other"]
recorded_score = "queue_p"
recorded_decision = "queue"

[shadow]
context = ["plan"]

[registry]
path = "registry"
legacy = "triage/1"
new = "triage/2"

[store]
interval_s = 300

[traffic]
source = "recorded"
file = "tickets.csv"
"#;

const SPEC: &str = r#"
name = "triage"
[tables.priority_weight]
low = 10.0
medium = 20.0
high = 30.0

[[aggregate]]
name = "tickets_24h"
function = "count"
window_s = 86400

[[feature]]
name = "x0"
source = "words"
steps = [{ op = "scale", factor = 0.25, offset = -10.0 }]

[[feature]]
name = "x1"
source = "priority"
steps = [{ op = "lookup", table = "priority_weight", apply = "replace", case_sensitive = false, default = 15.0 }]

[[feature]]
name = "x2"
source = "plan"
vocabulary = ["free", "pro", "enterprise"]
case_sensitive = false

[[feature]]
name = "x3"
source = "attachments"

[[feature]]
name = "x4"
source = "vip"
steps = [{ op = "scale", factor = 8.0 }]

[[feature]]
name = "x5"
source = "opened_at"
steps = [{ op = "hour_of_day", zone = { field = "tz", default = "UTC" } }]

[[feature]]
name = "x6"
source = "tickets_24h"

[[feature]]
name = "x7"
divide = ["words", "attachments"]
on_zero = 0.0
"#;

const CLEAN: &str = r#"
name = "triage-clean"
seed = 4
migration = "."
[traffic]
rate_rps = 20
duration_s = 3600
[rollout]
shadow_s = 300
bake_s = 300
keep_legacy_warm_s = 300
min_requests_per_stage = 300
[guardrails]
max_decision_flip_rate = 0.002
max_mean_abs_score_diff = 0.002
max_feature_mismatch_rate = 0.005
max_error_rate = 0.01
max_shadow_context_mismatch_rate = 0.001
[expect]
outcome = "promoted"
max_bad_decisions = 0
"#;

/// Writes the folder: schema, specs, tickets recorded over six hours, both registry entries
/// (through `cutover registry add`), a clean scenario and a skewed one.
fn write_folder(name: &str) -> PathBuf {
    let dir = scratch(name);
    std::fs::create_dir_all(dir.join("registry")).unwrap();
    std::fs::write(dir.join("migration.toml"), MIGRATION).unwrap();
    std::fs::write(dir.join("legacy.toml"), SPEC).unwrap();
    std::fs::write(dir.join("new.toml"), SPEC.replace("name = \"triage\"", "name = \"triage-platform\"")).unwrap();
    std::fs::copy(root().join("tests/fixtures/xgboost/3.2.0/multi_softprob.ubj"), dir.join("model.ubj")).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut csv = String::from("ticket_id,customer,opened_at,tz,words,priority,plan,attachments,vip\n");
    let (plans, tzs) =
        (["free", "Pro", "ENTERPRISE", "unknown", ""], ["Europe/Paris", "America/Chicago", "", "Asia/Tokyo"]);
    let start = 1_772_323_200_000i64; // 2026-03-01T00:00:00Z
    let mut t = start;
    for i in 0..4000 {
        t += rng.random_range(1_000..9_000);
        let customer = (rng.random::<f64>().powi(3) * 300.0) as u64;
        csv += &format!(
            "T-{i:05},{customer},{t},{},{},{},{},{},{}\n",
            tzs[rng.random_range(0..tzs.len())],
            rng.random_range(5..400),
            ["low", "medium", "High", "urgent"][rng.random_range(0..4)],
            plans[rng.random_range(0..plans.len())],
            if rng.random_bool(0.1) { -1 } else { rng.random_range(0..4) },
            ["true", "false", "1", "0"][rng.random_range(0..4)],
        );
    }
    std::fs::write(dir.join("tickets.csv"), csv).unwrap();
    let d = dir.to_str().unwrap();
    for (spec, extra) in [("legacy.toml", vec!["--stage", "production"]), ("new.toml", vec!["--parent", "triage/1"])] {
        let model = dir.join("model.ubj");
        let spec = dir.join(spec);
        let mut args =
            vec!["registry", "--migration", d, "add", "--name", "triage", "--model", model.to_str().unwrap()];
        args.extend(["--spec", spec.to_str().unwrap()]);
        args.extend(extra);
        ok(&cutover(&args));
    }
    std::fs::write(dir.join("clean.toml"), CLEAN).unwrap();
    let skew = CLEAN
        .replace("triage-clean", "triage-skew")
        .replace("outcome = \"promoted\"", "outcome = \"rolled_back\"\ndetect_within_s = 120\nrollback_within_s = 120")
        .replace("max_bad_decisions = 0", "max_bad_decisions = 50")
        + "[[faults]]\nkind = \"feature_skew\"\nstart_s = 900\nfeature = \"x0\"\nscale = 3.0\n";
    std::fs::write(dir.join("skew.toml"), skew).unwrap();
    dir
}

#[test]
fn a_migration_written_here_runs_records_replays_and_audits() {
    let dir = write_folder("triage");
    let d = |f: &str| dir.join(f).to_str().unwrap().to_string();

    // The simulator: the clean rollout promotes, the same seed gives the same history, the
    // skewed one rolls back naming the feature.
    let out = scratch("triage-run");
    ok(&cutover(&["run", &d("clean.toml"), "--out", out.to_str().unwrap()]));
    let a = json(&out.join("summary.json"));
    assert_eq!(a["outcome"], "promoted", "{a:#}");
    ok(&cutover(&["run", &d("clean.toml"), "--out", out.to_str().unwrap()]));
    assert_eq!(json(&out.join("summary.json"))["history_sha256"], a["history_sha256"]);
    let parity = json(&out.join("parity.json"));
    let segments: Vec<&str> =
        parity[0]["segments"].as_array().unwrap().iter().map(|s| s["segment"].as_str().unwrap()).collect();
    assert!(segments.contains(&"plan=pro") && segments.contains(&"length=50-200"), "{segments:?}");
    assert!(segments.contains(&"plan=none"), "`unknown` and empty plans are missing: {segments:?}");
    let skew = scratch("triage-skew");
    ok(&cutover(&["run", &d("skew.toml"), "--out", skew.to_str().unwrap()]));
    let s = json(&skew.join("summary.json"));
    assert_eq!(s["outcome"], "rolled_back");
    assert_eq!(s["trigger"]["feature"], "x0", "{s:#}");
    let html = std::fs::read_to_string(skew.join("report.html")).unwrap();
    assert!(html.contains("Class-probability differences and argmax flips"), "the report draws the answer's kind");

    // Recorded traffic with the legacy answers, replayed: the answers are reproduced.
    let rec = dir.join("recorded.csv");
    ok(&cutover(&[
        "record",
        "--migration",
        &d(""),
        "--requests",
        "2000",
        "--rate-rps",
        "2",
        "--out",
        rec.to_str().unwrap(),
    ]));
    let header = std::fs::read_to_string(&rec).unwrap().lines().next().unwrap().to_string();
    assert!(header.ends_with(",queue_p,queue"), "{header}");
    let replayed = scratch("triage-replay");
    let stdout = ok(&cutover(&[
        "replay",
        "--migration",
        &d(""),
        "--requests",
        rec.to_str().unwrap(),
        "--out",
        replayed.to_str().unwrap(),
    ]));
    assert!(stdout.contains("replayed 2000 rows"), "{stdout}");
    let r = json(&replayed.join("replay.json"));
    assert_eq!(r["baseline"]["decisions_matched"], 2000, "{r:#}");
    assert_eq!(r["baseline"]["scores_exact"], 2000, "{r:#}");

    // The baseline audit of that folder.
    let audit = ok(&cutover(&["audit", "--migration", &d(""), "--requests", "500"]));
    assert!(audit.contains("## Lineage") && audit.contains("triage/2"), "{audit}");
}

#[test]
fn the_live_services_speak_a_written_migration_s_json() {
    let dir = write_folder("triage-live");
    let loaded = cutover_sim::LoadedScenario::read(&dir.join("clean.toml")).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let running = cutover_loadgen::start(cutover_loadgen::ServeConfig::new(loaded)).await.unwrap();
        let client = reqwest::Client::new();
        let url = format!("{}/v1/score", running.url());
        let good = serde_json::json!({
            "ticket_id": "T-1", "customer": 7, "opened_at": "2026-03-01T10:00:00+01:00", "tz": "Europe/Paris",
            "words": 120, "priority": "HIGH", "plan": "Pro", "attachments": -1, "vip": "1"
        });
        let resp = client.post(&url).json(&good).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let v: serde_json::Value = resp.json().await.unwrap();
        let probs = v["probabilities"].as_array().unwrap();
        assert_eq!(probs.len(), 4, "{v}");
        let sum: f64 = probs.iter().map(|p| p.as_f64().unwrap()).sum();
        assert!((sum - 1.0).abs() < 1e-5, "{v}");
        assert!(["billing", "bug", "account", "other"].contains(&v["decision"].as_str().unwrap()), "{v}");
        for (key, value) in
            [("vip", serde_json::json!("maybe")), ("words", serde_json::json!(-3)), ("colour", serde_json::json!(1))]
        {
            let mut bad = good.clone();
            bad[key] = value;
            let resp = client.post(&url).json(&bad).send().await.unwrap();
            assert_eq!(resp.status(), 422, "{key}");
            let e: serde_json::Value = resp.json().await.unwrap();
            assert_eq!(e["field"], key, "{e}");
        }
        // The service is still up.
        assert_eq!(client.post(&url).json(&good).send().await.unwrap().status(), 200);
        running.shutdown().await;
    });
}

#[test]
fn guardrails_an_answer_kind_lacks_are_refused_naming_the_field() {
    let dir = scratch("kinds");
    let eta = root().join("domain/eta").display().to_string();
    let plan = |guardrail: &str| {
        format!(
            "name = \"k\"\nmigration = {eta:?}\n[traffic]\nrate_rps = 1\nduration_s = 60\n[rollout]\nshadow_s = 10\nbake_s = 10\nkeep_legacy_warm_s = 10\n[guardrails]\n{guardrail}\n[expect]\noutcome = \"promoted\"\n"
        )
    };
    for (guardrail, field) in [
        ("max_decision_flip_rate = 0.01", "guardrails.max_decision_flip_rate"),
        (
            "max_error_rate = 0.01\n[[faults]]\nkind = \"errors\"\nstart_s = 1\nrate = 0.1\nsegment = \"country=DE\"",
            "faults[0].segment",
        ),
    ] {
        let p = dir.join("k.toml");
        std::fs::write(&p, plan(guardrail)).unwrap();
        let o = cutover(&["run", p.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2));
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(e.contains(&format!("field `{field}`")) && e.contains("k.toml:"), "{e}");
    }
    // On the bundled fraud migration (binary), a relative difference is refused.
    let p = dir.join("r.toml");
    std::fs::write(&p, plan("max_mean_rel_score_diff = 0.01").replace(&format!("migration = {eta:?}\n"), "")).unwrap();
    let o = cutover(&["run", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn resampled_traffic_keeps_the_recording_s_mix_recurrence_and_gaps() {
    use cutover_migration::schema::Value;
    let m = cutover_migration::Migration::load(&root().join("domain/eta")).unwrap();
    let file = m.recorded().unwrap();
    let recorded_rate = file.rate_rps();
    let s = m.schema().clone();
    let (city, vehicle, prep) =
        (s.index("city").unwrap(), s.index("vehicle").unwrap(), s.index("prep_minutes").unwrap());
    // What a stream of requests shows: share of Berlin, of missing vehicles and preparation
    // times, and how many requests of the same entity came in the hour before each (what a
    // per-entity aggregate sees).
    let berlin = s.interner().lookup("berlin");
    let stats = |records: &[cutover_migration::schema::Record]| {
        let n = records.len() as f64;
        let share =
            |f: &dyn Fn(&cutover_migration::schema::Record) -> bool| records.iter().filter(|r| f(r)).count() as f64 / n;
        let mut recent: std::collections::BTreeMap<u64, std::collections::VecDeque<i64>> = Default::default();
        let mut before = 0usize;
        for r in records {
            let q = recent.entry(r.entity).or_default();
            while q.front().is_some_and(|&t| t <= r.time_ms - 3_600_000) {
                q.pop_front();
            }
            before += q.len();
            q.push_back(r.time_ms);
        }
        (
            share(&|r| r.values[city] == Value::Text(berlin)),
            share(&|r| s.is_missing(r, vehicle)),
            share(&|r| s.is_missing(r, prep)),
            before as f64 / n,
        )
    };
    let recorded: Vec<_> = file_rows(&m);
    let (r_berlin, r_vehicle, r_prep, r_recur) = stats(&recorded);
    for (copies, seed) in [(1u64, 1), (10, 2)] {
        // Arrivals with the recording's own time profile, `copies` times as many.
        let rate = recorded_rate * copies as f64;
        let src = m.source(seed, rate).unwrap();
        let times: Vec<i64> =
            recorded.iter().flat_map(|r| (0..copies as i64).map(move |k| r.time_ms + k * 17)).collect();
        let out: Vec<_> = times
            .iter()
            .enumerate()
            .map(|(i, &t)| {
                let mut r = s.record();
                src.fill(i as u64, t, &mut r);
                r
            })
            .collect();
        let (berlin_share, vehicle_gap, prep_gap, recur) = stats(&out);
        assert!((berlin_share - r_berlin).abs() < 0.02, "Berlin {berlin_share} vs recorded {r_berlin}");
        assert!((vehicle_gap - r_vehicle).abs() < 0.01, "missing vehicle {vehicle_gap} vs {r_vehicle}");
        assert!((prep_gap - r_prep).abs() < 0.01, "missing prep {prep_gap} vs {r_prep}");
        // Each entity recurs as often per hour as in the recording, at any rate.
        assert!(
            (recur / r_recur - 1.0).abs() < 0.15,
            "{recur} earlier requests per courier-hour vs recorded {r_recur} at {rate} rps"
        );
        // Same seed, same requests.
        let again = m.source(seed, rate).unwrap();
        let mut r = s.record();
        again.fill(17, out[17].time_ms, &mut r);
        assert_eq!(r, out[17]);
    }
    // The recording covers every hour: its curve rises at dinner and sinks at night.
    let curve = m.source(1, 1.0).unwrap().daily_curve().expect("a two-day log has a daily curve");
    assert!((curve.iter().sum::<f64>() / 24.0 - 1.0).abs() < 1e-9, "the curve is relative to the mean");
    assert!(curve[18] > 1.5 * curve[3], "dinner {} vs night {}", curve[18], curve[3]);
}

fn file_rows(m: &cutover_migration::Migration) -> Vec<cutover_migration::schema::Record> {
    let mut reader = cutover_migration::recorded::Reader::open(
        &root().join("domain/eta/requests.csv"),
        None,
        m.schema(),
        m.answer(),
        Default::default(),
    )
    .unwrap();
    std::iter::from_fn(|| reader.next_row()).map(|r| r.unwrap().record).collect()
}

#[test]
fn no_code_outside_an_example_knows_its_field_names() {
    // The harness (the CLI, the live face, the simulator, the model side) reads every field
    // through a migration folder; only an example's own generator names its fields.
    let names = [
        "fraud::",
        "transaction_id",
        "customer_id",
        "amount_eur",
        "merchant_category",
        "device_os",
        "card_present",
        "courier_id",
        "distance_km",
        "prep_minutes",
    ];
    let mut offenders = Vec::new();
    let mut stack =
        vec![root().join("src"), root().join("sim/src"), root().join("loadgen/src"), root().join("migration/src")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                if !p.ends_with("fraud") {
                    stack.push(p);
                }
                continue;
            }
            let is_tests = p.file_name().is_some_and(|n| n == "tests.rs");
            if p.extension().is_none_or(|x| x != "rs") || is_tests {
                continue;
            }
            let text = std::fs::read_to_string(&p).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap_or("");
            for (i, line) in code.lines().enumerate() {
                let l = line.trim_start();
                if l.starts_with("//") {
                    continue;
                }
                // The one binding of the bundled generator, by the name a migration folder uses.
                if p.ends_with("migration/src/traffic/mod.rs") && l.contains("crate::fraud::") {
                    continue;
                }
                if let Some(n) = names.iter().find(|n| l.contains(*n)) {
                    offenders.push(format!("{}:{}: {n}", p.display(), i + 1));
                }
            }
        }
    }
    assert!(offenders.is_empty(), "{offenders:#?}");
}

/// domain/fraud/platform.toml is the fraud migration with the new platform real: above its
/// `[stacks]` it is migration.toml word for word (its own opening comment aside), so the
/// two cannot drift apart; and it loads with its URLs from their defaults.
#[test]
fn the_platform_migration_is_the_fraud_migration_with_its_stacks_declared() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("domain/fraud");
    let base = std::fs::read_to_string(dir.join("migration.toml")).unwrap();
    let uncommented = |t: &str| t.lines().skip_while(|l| l.starts_with('#')).collect::<Vec<_>>().join("\n");
    for (file, first) in [("platform.toml", "\n[stacks.new]"), ("own-services.toml", "\n[stacks.legacy]")] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        let body = text.split_once(first).unwrap().0;
        assert_eq!(uncommented(body).trim_end(), uncommented(&base).trim_end(), "{file}");
        cutover_migration::Migration::load(&dir.join(file)).unwrap();
    }
    let m = cutover_migration::Migration::load(&dir.join("platform.toml")).unwrap();
    let cutover_migration::stacks::StackDecl::Platform(p) = &m.stacks().new else { panic!("{:?}", m.stacks().new) };
    assert_eq!(p.model_server.model, "fraud");
    assert_eq!(m.stacks().legacy, cutover_migration::stacks::StackDecl::InProcess);
    // Every aggregate of the new spec has its feature in the view.
    let (_, new) = m.start_stacks().unwrap();
    assert_eq!(p.feature_server.references(new.pipeline()).unwrap().len(), new.pipeline().aggregates().len());
}
