use super::*;

fn folder(name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cutover-migration-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("registry")).unwrap();
    for (f, text) in files {
        std::fs::write(dir.join(f), text).unwrap();
    }
    dir
}

const BASE: &str = r#"
name = "loans"
[request]
id = "id"
entity = "applicant"
time = "at"
fields = [
  { name = "id", kind = "integer" },
  { name = "applicant", kind = "integer" },
  { name = "at", kind = "timestamp" },
  { name = "income", kind = "number", optional = true },
  { name = "region", kind = "category" },
]
[[segment]]
field = "region"
values = ["north", "south"]
[answer]
kind = "binary"
threshold = 0.3
labels = ["approve", "refer"]
[shadow]
context = ["income"]
[registry]
path = "registry"
legacy = "loan/1"
new = "loan/2"
[traffic]
source = "recorded"
file = "requests.csv"
"#;

const ROWS: &str =
    "id,applicant,at,income,region\n1,7,2026-03-01T00:00:00Z,100,north\n2,8,2026-03-01T00:00:01Z,,south\n";

#[test]
fn a_folder_declares_schema_segments_answer_context_and_traffic() {
    let dir = folder("ok", &[("migration.toml", BASE), ("requests.csv", ROWS)]);
    let m = Migration::load(&dir).unwrap();
    assert_eq!(m.schema().len(), 5);
    assert_eq!(m.segments().unwrap().names(), ["all", "region=north", "region=south", "region=other", "region=none"]);
    assert_eq!(m.answer().labels, ["approve", "refer"]);
    assert_eq!(m.shadow_context(), [3]);
    assert_eq!(m.recorded().unwrap().len(), 2);
    let src = m.source(3, 10.0).unwrap();
    let mut r = m.schema().record();
    src.fill(5, src.start_ms() + 1000, &mut r);
    assert_eq!(r.id, 5);
    assert!(r.entity == 7 || r.entity == 8 || r.entity >= 1 << 20, "an entity of the file or one of its copies");
}

#[test]
fn every_mistake_names_the_file_line_and_field() {
    let cases: [(&str, &str, &str); 8] = [
        ("kind = \"binary\"\nthreshold = 0.3", "kind = \"binary\"", "answer.threshold"),
        ("context = [\"income\"]", "context = [\"region\"]", "shadow.context[0]"),
        ("context = [\"income\"]", "context = [\"salary\"]", "shadow.context[0]"),
        ("source = \"recorded\"", "source = \"kafka\"", "traffic.source"),
        ("file = \"requests.csv\"", "file = \"nope.csv\"", "traffic.file"),
        ("path = \"registry\"", "path = \"nowhere\"", "registry.path"),
        ("values = [\"north\", \"south\"]", "values = [\"north\", \"north\"]", "segment[0].values"),
        ("name = \"loans\"", "name = \"loans\"\ncolour = 1", "colour"),
    ];
    for (from, to, field) in cases {
        let dir = folder("bad", &[("migration.toml", &BASE.replace(from, to)), ("requests.csv", ROWS)]);
        let e = Migration::load(&dir).unwrap_err();
        assert_eq!(e.field, field, "{e}");
        assert!(e.file.ends_with("migration.toml"), "{e}");
        assert!(e.line > 0, "{e}");
    }
}

#[test]
fn the_bundled_fraud_folder_loads() {
    let m = Migration::bundled_fraud().unwrap();
    assert_eq!(m.name, "card-fraud");
    let (legacy, new) = m.start_stacks().unwrap();
    assert_eq!(legacy.pipeline().output_names(), new.pipeline().output_names());
    assert_eq!(m.segments().unwrap().dims(), 4);
}
