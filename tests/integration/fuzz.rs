//! Fuzzing every parser a user or client reaches, from real inputs mutated: request bodies,
//! feature specs, migration folders, scenario files, recorded-request files (CSV and JSON
//! lines) and field maps. (Model bytes and feature-row CSV: `loader_fuzz.rs`.) Every input
//! ends in a result or one clear line naming the file, never a panic or a hang.
//!
//! The default suite tries [`cases`] inputs per parser (a fixed budget, seconds in all);
//! `CUTOVER_FUZZ_CASES=20000 cargo test --test integration fuzz` runs a longer campaign
//! (`CUTOVER_FUZZ_SEED=N` for other mutations than the fixed default).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cutover_migration::features::Pipeline;
use cutover_migration::recorded::{FieldMap, Reader};
use cutover_migration::Migration;
use cutover_sim::scenario::LoadedScenario;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use crate::support::root;

/// Inputs per parser: 192 by default, `CUTOVER_FUZZ_CASES` for a longer run.
pub(crate) fn cases() -> u32 {
    std::env::var("CUTOVER_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(192)
}

/// The mutations' seed: fixed, so the default suite tries the same inputs on every run
/// and machine; `CUTOVER_FUZZ_SEED` tries others.
fn rng_seed() -> u64 {
    std::env::var("CUTOVER_FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(17)
}

/// What a mutation splices in: the values parsers trip on.
const TOKENS: &[&[u8]] = &[
    b"inf",
    b"-inf",
    b"nan",
    b"NaN",
    b"Infinity",
    b"1e400",
    b"1e39",
    b"-0",
    b"99999999999999999999999",
    b"0x1F",
    b"\"",
    b"'",
    b"[",
    b"]",
    b"{",
    b"}",
    b"=",
    b",",
    b":",
    b"\n",
    b"\r\n",
    b"\t",
    b"null",
    b"true",
    b"\0",
    b"\\u0000",
    b"\xff\xfe",
    b"\xc3",
    b"\xe2\x80\xae",
    b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
    b"{{{{{{{{{{{{{{{{",
    b"#",
    b"..",
    b"/",
    b"../../../../etc/passwd",
    b"\"\"\"",
    b"[[faults]]",
    b"[x]",
    b"a.b.c = 1",
];

/// One edit of an input.
#[derive(Debug, Clone)]
enum Edit {
    Flip(f64, u8),
    Splice(f64, usize),
    Delete(f64, f64),
    DuplicateLine(f64),
    Long(f64, usize),
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let edit = prop_oneof![
        (0.0f64..1.0, any::<u8>()).prop_map(|(p, b)| Edit::Flip(p, b)),
        (0.0f64..1.0, 0..TOKENS.len()).prop_map(|(p, t)| Edit::Splice(p, t)),
        (0.0f64..1.0, 0.0f64..0.05).prop_map(|(p, l)| Edit::Delete(p, l)),
        (0.0f64..1.0).prop_map(Edit::DuplicateLine),
        (0.0f64..1.0, 1usize..5_000).prop_map(|(p, n)| Edit::Long(p, n)),
    ];
    proptest::collection::vec(edit, 1..4)
}

fn apply(seed: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut b = seed.to_vec();
    let at = |b: &Vec<u8>, p: f64| ((b.len() as f64) * p) as usize;
    for e in edits {
        match *e {
            Edit::Flip(p, x) if !b.is_empty() => {
                let i = at(&b, p).min(b.len() - 1);
                b[i] = x;
            }
            Edit::Flip(..) => {}
            Edit::Splice(p, t) => {
                let i = at(&b, p);
                b.splice(i..i, TOKENS[t].iter().copied());
            }
            Edit::Delete(p, l) => {
                let i = at(&b, p);
                let end = (i + at(&b, l)).min(b.len());
                b.drain(i..end);
            }
            Edit::DuplicateLine(p) => {
                let i = at(&b, p);
                let start = b[..i].iter().rposition(|&c| c == b'\n').map_or(0, |k| k + 1);
                let end = b[i..].iter().position(|&c| c == b'\n').map_or(b.len(), |k| i + k + 1);
                let line = b[start..end].to_vec();
                b.splice(end..end, line);
            }
            Edit::Long(p, n) => {
                let i = at(&b, p);
                b.splice(i..i, std::iter::repeat_n(b'7', n));
            }
        }
    }
    b
}

/// Runs `check` on `cases()` mutations of `seed` (and the seed itself, which must be
/// accepted); a panic or a failed check fails the test with the input that caused it.
/// `check` says whether the input was accepted; some must be, or the mutations never get
/// past the first syntax check and the deeper code is not being tried.
fn fuzz(name: &str, seed: &[u8], check: impl Fn(&[u8]) -> Result<bool, String>) {
    assert_eq!(check(seed), Ok(true), "{name}: the seed itself is refused");
    let accepted = std::cell::Cell::new(0u32);
    let tried = std::cell::Cell::new(0u32);
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        rng_seed: proptest::test_runner::RngSeed::Fixed(rng_seed()),
        ..Config::default()
    });
    let result = runner.run(&edits(), |e| {
        let input = apply(seed, &e);
        tried.set(tried.get() + 1);
        let ok = check(&input)
            .map_err(|m| TestCaseError::fail(format!("{m}\ninput: {:?}", String::from_utf8_lossy(&input))))?;
        accepted.set(accepted.get() + u32::from(ok));
        Ok(())
    });
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
    eprintln!("fuzz: {name}: {} inputs, {} accepted, the rest refused in one line", tried.get(), accepted.get());
    assert!(accepted.get() * 100 >= tried.get(), "{name}: only {} of {} inputs accepted", accepted.get(), tried.get());
}

/// An error message as a user sees it: one line, naming `file` (a refusal: `Ok(false)`).
fn one_line(message: &str, file: &str) -> Result<bool, String> {
    if message.contains('\n') || message.contains('\r') {
        return Err(format!("not one line: {message:?}"));
    }
    if !message.contains(file) {
        return Err(format!("does not name {file}: {message}"));
    }
    Ok(false)
}

fn text(bytes: &[u8]) -> Option<&str> {
    std::str::from_utf8(bytes).ok()
}

fn fraud() -> Migration {
    Migration::load(&root().join("domain/fraud")).unwrap()
}

fn eta() -> Migration {
    Migration::load(&root().join("domain/eta")).unwrap()
}

#[test]
fn request_bodies() {
    for m in [fraud(), eta()] {
        let source = m.source(3, 50.0).unwrap();
        let mut r = m.schema().record();
        source.fill(1, source.time_at_rate(1, 50.0), &mut r);
        let seed = serde_json::to_vec(&source.render(1, &r)).unwrap();
        let kept = m.schema().interner().len();
        fuzz(&format!("{} request body", m.name), &seed, |body| {
            let mut record = m.schema().record();
            match m.schema().parse_json(body, &mut record) {
                Ok(()) => Ok(true),
                Err(e) if e.field.is_empty() => Err(format!("no field named: {e}")),
                Err(e) if e.message.contains('\n') || e.field.contains('\n') => Err(format!("not one line: {e:?}")),
                Err(_) => Ok(false),
            }
        });
        // Nothing a client sent was kept.
        assert_eq!(m.schema().interner().len(), kept, "{}", m.name);
    }
}

#[test]
fn feature_specs() {
    for m in [fraud(), eta()] {
        let (legacy, new) = m.start_stacks().unwrap();
        let features = legacy.pipeline().output_names().to_vec();
        let schema = m.schema().clone();
        for spec in ["legacy.toml", "new.toml"] {
            let seed = std::fs::read(m.dir.join(spec)).unwrap();
            fuzz(&format!("{} {spec}", m.name), &seed, |bytes| {
                let Some(t) = text(bytes) else { return Ok(false) };
                match Pipeline::from_text(t, spec, &schema, Some(&features)) {
                    Ok(_) => Ok(true),
                    Err(e) => one_line(&e.to_string(), spec),
                }
            });
        }
        drop(new);
    }
}

#[test]
fn migration_folders() {
    for dir in [root().join("domain/fraud"), root().join("domain/eta")] {
        let seed = std::fs::read(dir.join("migration.toml")).unwrap();
        fuzz(&format!("{} migration.toml", dir.display()), &seed, |bytes| {
            let Some(t) = text(bytes) else { return Ok(false) };
            match Migration::parse(t, "migration.toml", &dir) {
                // A folder that parses must also start its stacks or say why in one line.
                Ok(m) => match m.start_stacks() {
                    Ok(_) => Ok(true),
                    Err(e) if e.contains('\n') => Err(format!("not one line: {e}")),
                    Err(_) => Ok(false),
                },
                Err(e) => one_line(&e.to_string(), "migration.toml"),
            }
        });
    }
}

#[test]
fn scenario_files() {
    let dir = root().join("scenarios");
    for name in ["skew-distance-miles.toml", "latency-median.toml", "errors-segment-jp.toml", "eta/timeouts-3pct.toml"]
    {
        let path = dir.join(name);
        let seed = std::fs::read(&path).unwrap();
        let base = path.parent().unwrap().to_path_buf();
        fuzz(name, &seed, |bytes| {
            let Some(t) = text(bytes) else { return Ok(false) };
            match LoadedScenario::parse(t, name, path.clone(), base.clone()) {
                Ok(_) => Ok(true),
                Err(e) => one_line(&e.to_string(), name),
            }
        });
    }
}

/// A scratch file per process for the inputs read from disk.
fn scratch_file(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cutover-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

/// Reads every row; accepted when every row was.
fn read_all(path: &Path, m: &Migration, map: FieldMap) -> Result<bool, String> {
    let file = path.display().to_string();
    let mut reader = match Reader::open(path, None, m.schema(), m.answer(), map) {
        Ok(r) => r,
        Err(e) => return one_line(&e.to_string(), &file),
    };
    let (mut rows, mut all) = (0, true);
    while let Some(row) = reader.next_row() {
        rows += 1;
        if let Err(e) = row {
            one_line(&e.to_string(), &file)?;
            if std::env::var_os("CUTOVER_FUZZ_DEBUG").is_some() {
                eprintln!("{e}");
            }
            all = false;
        }
        if rows > 100_000 {
            return Err("more rows than the input has lines".into());
        }
    }
    Ok(all)
}

#[test]
fn recorded_request_files() {
    let m = eta();
    let csv = std::fs::read_to_string(m.dir.join("requests.csv")).unwrap();
    let head: String = csv.lines().take(30).map(|l| format!("{l}\n")).collect();
    let csv_path = scratch_file("requests.csv");
    fuzz("recorded CSV", head.as_bytes(), |bytes| {
        std::fs::write(&csv_path, bytes).unwrap();
        read_all(&csv_path, &m, FieldMap::default())
    });
    // The same rows as JSON lines: numbers where they read as numbers.
    let mut lines = head.lines();
    let columns: Vec<&str> = lines.next().unwrap().split(',').collect();
    let jsonl: String = lines
        .map(|l| {
            let o: serde_json::Map<String, serde_json::Value> = columns
                .iter()
                .zip(l.split(','))
                .map(|(c, v)| {
                    let v = if v.is_empty() {
                        serde_json::Value::Null
                    } else {
                        v.parse::<f64>()
                            .ok()
                            .and_then(serde_json::Number::from_f64)
                            .map_or_else(|| serde_json::Value::String(v.into()), serde_json::Value::Number)
                    };
                    (c.to_string(), v)
                })
                .collect();
            format!("{}\n", serde_json::Value::Object(o))
        })
        .collect();
    let jsonl_path = scratch_file("requests.jsonl");
    fuzz("recorded JSON lines", jsonl.as_bytes(), |bytes| {
        std::fs::write(&jsonl_path, bytes).unwrap();
        read_all(&jsonl_path, &m, FieldMap::default())
    });
}

#[test]
fn field_maps() {
    let m = Arc::new(fraud());
    let seed = "[fields]\ntransaction_id = \"txn\"\ncustomer_id = \"cust\"\nevent_time_ms = \"ts\"\namount = \"amt\"\n\
                legacy_score = \"prob\"\nlegacy_decision = \"action\"\n[decisions]\nblock = [\"DECLINE\"]\nallow = [\"APPROVE\"]\n";
    fuzz("field map", seed.as_bytes(), |bytes| {
        let Some(t) = text(bytes) else { return Ok(false) };
        match FieldMap::parse(t, "fields.toml", m.schema(), m.answer()) {
            Ok(_) => Ok(true),
            Err(e) => one_line(&e.to_string(), "fields.toml"),
        }
    });
}
