//! docs/your-migration.md, run as written: every command of its `sh` blocks in order, with
//! the exit code written beside it (0 where none is), and every `toml` block headed by the
//! files it edits applied to them as the guide says (each `[[feature]]` and each field
//! replaces the one of its name; tables and aggregates are added; a new file is written). The commands run in a
//! scratch folder where `tests/` and `domain/` are the repository's, so `my-*` folders land
//! there.

use std::path::{Path, PathBuf};
use std::time::Duration;

use toml_edit::{DocumentMut, Item};

use crate::SERIAL;

struct Block {
    lang: String,
    text: String,
}

fn blocks(md: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut current: Option<Block> = None;
    for line in md.lines() {
        if let Some(fence) = line.strip_prefix("```") {
            match current.take() {
                Some(b) => out.push(b),
                None => current = Some(Block { lang: fence.trim().to_string(), text: String::new() }),
            }
        } else if let Some(b) = &mut current {
            b.text += line;
            b.text.push('\n');
        }
    }
    out
}

/// The exit codes a command line's trailing comment allows.
fn expected_codes(comment: &str) -> Vec<i32> {
    match comment.find("exits ") {
        None => vec![0],
        Some(at) => comment[at + 6..]
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().unwrap())
            .collect(),
    }
}

fn name_of(item: &toml_edit::Table) -> Option<String> {
    item.get("name").and_then(|n| n.as_str()).map(str::to_string)
}

/// Applies a guide edit to one file, as the guide's words say (a file not there yet is
/// written as the block shows it).
fn apply(path: &Path, edit: &str) {
    if !path.exists() {
        std::fs::write(path, edit).unwrap();
        return;
    }
    let mut doc: DocumentMut = std::fs::read_to_string(path).unwrap().parse().unwrap();
    let edit: DocumentMut = edit.parse().unwrap();
    for (key, item) in edit.iter() {
        match (key, item) {
            ("request", Item::Table(t)) => {
                let fields = t["fields"].as_array().unwrap();
                let target = doc["request"]["fields"].as_array_mut().unwrap();
                for f in fields.iter() {
                    let name = f.as_inline_table().unwrap().get("name").unwrap().as_str().unwrap().to_string();
                    let at = target
                        .iter()
                        .position(|g| {
                            g.as_inline_table().and_then(|g| g.get("name")).and_then(|n| n.as_str()) == Some(&name)
                        })
                        .unwrap_or_else(|| panic!("{}: no field `{name}` to replace", path.display()));
                    target.replace(at, f.clone());
                }
            }
            ("feature", Item::ArrayOfTables(features)) => {
                let target = doc["feature"].as_array_of_tables_mut().unwrap();
                for f in features.iter() {
                    let name = name_of(f).unwrap();
                    let at = target
                        .iter()
                        .position(|g| name_of(g).as_deref() == Some(name.as_str()))
                        .unwrap_or_else(|| panic!("{}: no feature `{name}` to replace", path.display()));
                    let old = target.get_mut(at).unwrap();
                    let position = old.position();
                    *old = f.clone();
                    if let Some(p) = position {
                        old.set_position(Some(p));
                    }
                }
            }
            (_, Item::ArrayOfTables(tables)) => {
                if doc.get(key).is_none() {
                    doc.insert(key, Item::ArrayOfTables(toml_edit::ArrayOfTables::new()));
                }
                let target = doc[key].as_array_of_tables_mut().unwrap();
                for t in tables.iter() {
                    let mut t = t.clone();
                    t.set_position(Some(0));
                    target.push(t);
                }
            }
            (_, other) => {
                let mut other = other.clone();
                if let Item::Table(t) = &mut other {
                    t.set_position(Some(0));
                }
                doc.insert(key, other);
            }
        }
    }
    std::fs::write(path, doc.to_string()).unwrap();
}

/// A `curl -s -X POST URL -H ... -d 'JSON'` line, sent with reqwest to the router.
fn post(line: &str, router: &str) {
    let url =
        line.split_whitespace().find(|w| w.starts_with("http://")).unwrap().replace("http://127.0.0.1:8080", router);
    let body = line.split_once("-d '").unwrap().1.trim_end().trim_end_matches('\'');
    let body: serde_json::Value = serde_json::from_str(body).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let answer: serde_json::Value = rt.block_on(async {
        let resp = reqwest::Client::new().post(&url).json(&body).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{line}");
        resp.json().await.unwrap()
    });
    assert!(answer.to_string().contains("score"), "{answer}");
}

fn stop(mut child: std::process::Child) {
    let code = crate::ctrl_c(&mut child, Duration::from_secs(20));
    assert!(code.success(), "serve: {code:?}");
}

#[test]
fn every_command_of_the_migration_guide_runs_as_written() {
    let _serial = SERIAL.blocking_lock();
    use std::io::BufRead;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let guide = std::fs::read_to_string(root.join("docs/your-migration.md")).unwrap();
    let work: PathBuf = std::env::temp_dir().join(format!("cutover-guide-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    for d in ["tests", "domain"] {
        std::os::unix::fs::symlink(root.join(d), work.join(d)).unwrap();
    }
    let mut ran = 0;
    for block in blocks(&guide) {
        match block.lang.as_str() {
            "sh" => {
                type Lines = std::io::Lines<std::io::BufReader<std::process::ChildStdout>>;
                let mut serving: Option<(std::process::Child, String, Lines)> = None;
                for line in block.text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
                    ran += 1;
                    if line.starts_with("curl ") {
                        let (_, router, _) = serving.as_ref().expect("curl follows `cutover serve`");
                        post(line, router);
                        continue;
                    }
                    let (command, comment) = line.split_once(" #").unwrap_or((line, ""));
                    let args: Vec<String> = command.split_whitespace().map(str::to_string).collect();
                    assert_eq!(args[0], "cutover", "{line}");
                    let mut args: Vec<String> = args[1..].to_vec();
                    if args[0] == "serve" {
                        // The guide's port, any free one here.
                        if let Some(p) = args.iter().position(|a| a == "--port") {
                            args[p + 1] = "0".into();
                        }
                        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
                            .args(&args)
                            .current_dir(&work)
                            .stdout(std::process::Stdio::piped())
                            .stderr(std::process::Stdio::null())
                            .spawn()
                            .unwrap();
                        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
                        // Its addresses and token, up to the last line it prints.
                        let mut router = String::new();
                        loop {
                            let l = lines.next().expect("serve prints its addresses").unwrap();
                            if let Some(url) = l.strip_prefix("router") {
                                router = url.trim().to_string();
                            }
                            if l.starts_with("admin") {
                                break;
                            }
                        }
                        serving = Some((child, router, lines));
                        continue;
                    }
                    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
                        .args(&args)
                        .current_dir(&work)
                        .output()
                        .unwrap();
                    let code = out.status.code().unwrap_or(-1);
                    assert!(
                        expected_codes(comment).contains(&code),
                        "`{line}` exited {code}:\n{}\n{}",
                        String::from_utf8_lossy(&out.stdout),
                        String::from_utf8_lossy(&out.stderr)
                    );
                    if args[0] == "loadtest" {
                        // Every check holds, the shadow's cost at the router among them.
                        let dir = work.join(&args[args.iter().position(|a| a == "--out").unwrap() + 1]);
                        let s: serde_json::Value =
                            serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
                        assert_eq!(s["outcome"], "rolled_back", "{s:#}");
                        for e in s["expectations"].as_array().unwrap() {
                            let name = e["name"].as_str().unwrap();
                            assert!(e["passed"] == true, "{name}: {e}");
                        }
                    }
                }
                if let Some((child, _, lines)) = serving {
                    stop(child);
                    drop(lines);
                }
            }
            "toml" => {
                let first = block.text.lines().next().unwrap_or("");
                let files: Vec<&str> = first
                    .trim_start_matches('#')
                    .split_whitespace()
                    .filter(|w| w.starts_with("my-") && w.ends_with(".toml"))
                    .collect();
                assert!(!files.is_empty(), "a toml block names the files it edits: {first}");
                for f in files {
                    apply(&work.join(f), &block.text);
                }
            }
            _ => {}
        }
    }
    assert!(ran >= 14, "only {ran} commands found in the guide");
    let _ = std::fs::remove_dir_all(&work);
}
