use std::path::Path;

use super::*;
use crate::Migration;

fn fraud_text() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../domain/fraud/migration.toml")).unwrap()
}

fn load(extra: &str) -> Result<Migration, FieldError> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../domain/fraud");
    Migration::parse(&format!("{}\n{extra}", fraud_text()), "migration.toml", &dir)
}

fn error(extra: &str) -> String {
    load(extra).expect_err(extra).to_string()
}

#[test]
fn stacks_are_in_process_unless_declared() {
    let m = load("").unwrap();
    assert_eq!(m.stacks(), &Stacks::default());
    assert_eq!(m.stacks().new.kind(), "in-process");
}

#[test]
fn an_http_stack_builds_its_body_from_the_template() {
    let m = load(
        r#"
[stacks.new]
kind = "http"
url = "http://127.0.0.1:9000/"
path = "/predict"
headers = { x-team = "fraud" }
body = { instances = [{ amt = "{amount}", os = "{device_os}", card = "{card_present}" }], id = "txn-{transaction_id}", note = "{{literal}}" }
score = "/predictions/0/p"
decision = "label"
model_version = "/meta/version"
"#,
    )
    .unwrap();
    let StackDecl::Http(h) = &m.stacks().new else { panic!("{:?}", m.stacks().new) };
    assert_eq!(h.url, "http://127.0.0.1:9000");
    assert_eq!(h.path, "/predict");
    assert_eq!(h.headers, vec![("x-team".to_string(), "fraud".to_string())]);
    assert_eq!((h.score.as_str(), h.decision.as_deref()), ("/predictions/0/p", Some("/label")));
    assert_eq!(h.model_version.as_deref(), Some("/meta/version"));
    let request = serde_json::json!({"transaction_id": 17, "amount": 12.5, "card_present": false, "country": "DE"});
    let body = h.body.as_ref().unwrap().render(request.as_object().unwrap());
    assert_eq!(
        body,
        serde_json::json!({
            "instances": [{"amt": 12.5, "os": null, "card": false}],
            "id": "txn-17",
            "note": "{literal}"
        })
    );
    assert_eq!(m.stacks().legacy, StackDecl::InProcess);
}

#[test]
fn a_json_text_body_is_a_template_too() {
    let m = load(
        r#"
[stacks.legacy]
kind = "http"
url = "http://localhost:8000"
body = '{"x": ["{amount}", "{country}-{channel}"]}'
"#,
    )
    .unwrap();
    let StackDecl::Http(h) = &m.stacks().legacy else { panic!() };
    let request = serde_json::json!({"amount": 3, "country": "FR", "channel": "web"});
    assert_eq!(h.body.as_ref().unwrap().render(request.as_object().unwrap()), serde_json::json!({"x": [3, "FR-web"]}));
    assert_eq!((h.path.as_str(), h.score.as_str()), ("/v1/score", "/score"));
}

#[test]
fn a_platform_names_its_servers_and_features() {
    let m = load(
        r#"
[stacks.new]
kind = "platform"
[stacks.new.feature_server]
url = "http://127.0.0.1:6566"
view = "customer_aggregates"
features = { customer_txn_count = "counts:n" }
push_source = "aggregates_push"
[stacks.new.model_server]
url = "http://127.0.0.1:8080"
model = "fraud"
version = "2"
output = "predict_proba"
"#,
    )
    .unwrap();
    let StackDecl::Platform(p) = &m.stacks().new else { panic!() };
    assert_eq!(p.feature_server.join_key, "customer_id");
    assert_eq!(p.model_server.infer_path(), "/v2/models/fraud/versions/2/infer");
    assert_eq!(p.model_server.output, OipOutput::PredictProba);
    let (_, new) = m.start_stacks().unwrap();
    assert_eq!(
        p.feature_server.references(new.pipeline()).unwrap(),
        vec!["counts:n".to_string(), "customer_aggregates:customer_avg_amount_eur".to_string()]
    );
}

#[test]
fn a_platform_missing_a_feature_is_refused_at_start_naming_the_line() {
    let extra = r#"
[stacks.new]
kind = "platform"
[stacks.new.feature_server]
url = "http://127.0.0.1:6566"
features = { customer_txn_count = "counts:n" }
[stacks.new.model_server]
url = "http://127.0.0.1:8080"
model = "fraud"
"#;
    let m = load(extra).unwrap();
    let e = m.start_stacks().unwrap_err();
    let line = fraud_text().lines().count() + 1 + 4;
    assert!(e.contains(&format!("migration.toml:{line}:")), "{e}");
    assert!(e.contains("stacks.new.feature_server.features") && e.contains("customer_avg_amount_eur"), "{e}");
    let extra = extra.replace("customer_txn_count = ", "customer_txn_cnt = ");
    let e = load(&extra).unwrap().start_stacks().unwrap_err();
    assert!(e.contains("`customer_txn_cnt` is not an aggregate"), "{e}");
}

#[test]
fn bad_declarations_are_one_line_naming_line_and_field() {
    let base = fraud_text().lines().count() + 1;
    for (extra, line, field, says) in [
        ("[stacks.new]\nkind = \"grpc\"", 2, "stacks.new.kind", "not a stack kind"),
        ("[stacks.new]\nkind = \"http\"", 1, "stacks.new.url", "needs `url`"),
        ("[stacks.new]\nkind = \"http\"\nurl = \"ftp://x\"", 3, "stacks.new.url", "not an http"),
        ("[stacks.new]\nkind = \"http\"\nurl = \"http://h:99999\"", 3, "stacks.new.url", "port"),
        ("[stacks.new]\nkind = \"http\"\nurl = \"http://h/api\"", 3, "stacks.new.url", "no path"),
        ("[stacks.new]\nkind = \"http\"\nurl = \"http://h\"\nbody = { a = \"{amout}\" }", 4, "stacks.new.body", "`{amout}` names no request field"),
        ("[stacks.new]\nkind = \"http\"\nurl = \"http://h\"\nbody = '{\"a\": '", 4, "stacks.new.body", "not JSON"),
        ("[stacks.new]\nkind = \"http\"\nurl = \"http://h\"\nbody = { a = \"{amount\" }", 4, "stacks.new.body", "not closed"),
        ("[stacks.new]\nkind = \"http\"\nurl = \"http://h\"\nscore = \"/a~2\"", 4, "stacks.new.score", "not a JSON pointer"),
        ("[stacks.new]\nkind = \"http\"\nurl = \"http://h\"\npath = \"predict\"", 4, "stacks.new.path", "start with"),
        ("[stacks.new]\nkind = \"http\"\nurl = \"http://h\"\nmodel_server = { url = \"http://m\", model = \"x\" }", 4, "stacks.new.model_server", "takes no"),
        ("[stacks.new]\nkind = \"in-process\"\nurl = \"http://h\"", 3, "stacks.new.url", "takes no `url`"),
        ("[stacks.new]\nkind = \"platform\"", 1, "stacks.new.feature_server", "Feast"),
        ("[stacks.new]\nkind = \"platform\"\nfeature_server = { url = \"http://f\", features = { a = \"nocolon\" } }\nmodel_server = { url = \"http://m\", model = \"x\" }", 3, "stacks.new.feature_server.features.a", "view:feature"),
        ("[stacks.new]\nkind = \"platform\"\nfeature_server = { url = \"http://f\" }\nmodel_server = { url = \"http://m\", model = \"a b\" }", 4, "stacks.new.model_server.model", "not a name"),
        ("[stacks.new]\nkind = \"platform\"\nfeature_server = { url = \"http://f\" }\nmodel_server = { url = \"http://m\", model = \"m\", output = \"proba\" }", 4, "stacks.new.model_server.output", "predict_proba"),
        ("[stacks.new]\nkind = \"http\"\nurl = \"http://h\"\nscor = \"/a\"", 4, "scor", "unknown field"),
    ] {
        let e = error(extra);
        assert!(e.starts_with(&format!("migration.toml:{}:", base + line)), "{extra}\n{e}");
        assert!(e.contains(&format!("`{field}`")), "{extra}\n{e}");
        assert!(e.contains(says), "{extra}\n{e}");
        assert!(!e.contains('\n'), "{e}");
    }
}

#[test]
fn urls_and_pointers() {
    assert_eq!(check_url("http://127.0.0.1:8080/").unwrap(), "http://127.0.0.1:8080");
    assert_eq!(check_url("http://[::1]:8080").unwrap(), "http://[::1]:8080");
    assert!(check_url("http://[::1]:0").is_err());
    assert!(check_url("http://user@h").is_err());
    assert!(check_url("http://").is_err());
    assert_eq!(pointer("a/b").unwrap(), "/a~1b");
    assert_eq!(pointer("/a~0b/0").unwrap(), "/a~0b/0");
    assert!(pointer("").is_err());
}

#[test]
fn urls_read_the_environment() {
    std::env::set_var("CUTOVER_TEST_STACKS_URL", "http://127.0.0.1:7001");
    assert_eq!(check_url("${CUTOVER_TEST_STACKS_URL}").unwrap(), "http://127.0.0.1:7001");
    assert_eq!(check_url("${CUTOVER_TEST_STACKS_UNSET:-http://h:9}/").unwrap(), "http://h:9");
    let e = check_url("${CUTOVER_TEST_STACKS_UNSET}").unwrap_err();
    assert!(e.contains("${CUTOVER_TEST_STACKS_UNSET} is not set"), "{e}");
    assert!(check_url("${CUTOVER TEST}").is_err());
    assert!(check_url("${OPEN").is_err());
    let e = error("[stacks.new]\nkind = \"http\"\nurl = \"${CUTOVER_TEST_STACKS_UNSET}\"");
    assert!(e.contains("`stacks.new.url`") && e.contains("is not set"), "{e}");
}

#[test]
fn only_loopback_hosts_are_loopback_and_no_name_is_looked_up() {
    for url in
        ["http://127.0.0.1:8080", "http://localhost:1", "http://LOCALHOST", "http://[::1]:80", "https://127.3.4.5"]
    {
        assert!(is_loopback(url), "{url}");
    }
    for url in [
        "http://127.0.0.1.example.com",
        "http://localhost.example.com:80",
        "http://10.0.0.1:80",
        "http://user@127.0.0.1",
        "ftp://127.0.0.1",
        "http://[::2]",
        "http://[::ffff:10.0.0.1]",
        "http://0.0.0.0:80",
        "http://example.invalid",
    ] {
        assert!(!is_loopback(url), "{url}");
    }
}

#[test]
fn declared_urls_are_kept_with_where_they_were_written() {
    std::env::set_var("CUTOVER_TEST_REMOTE_URL", "http://10.1.2.3:9000");
    let m = load("[stacks.new]\nkind = \"http\"\nurl = \"${CUTOVER_TEST_REMOTE_URL}\"").unwrap();
    let site = m.stacks().first_remote().expect("a remote url");
    assert_eq!(site.field, "stacks.new.url");
    assert_eq!(site.written, "${CUTOVER_TEST_REMOTE_URL}");
    assert_eq!(site.line, fraud_text().lines().count() + 1 + 3);
    let m = load("[stacks.new]\nkind = \"http\"\nurl = \"http://127.0.0.1:9\"").unwrap();
    assert!(m.stacks().first_remote().is_none() && m.stacks().urls.len() == 1);
}

#[test]
fn an_expanded_value_is_never_printed() {
    std::env::set_var("CUTOVER_TEST_SECRET_URL", "s3cr3t-token-value");
    for extra in [
        "[stacks.new]\nkind = \"http\"\nurl = \"${CUTOVER_TEST_SECRET_URL}\"",
        "[stacks.new]\nkind = \"http\"\nurl = \"http://${CUTOVER_TEST_SECRET_URL}:x\"",
        "[stacks.new]\nkind = \"platform\"\nfeature_server = { url = \"${CUTOVER_TEST_SECRET_URL}\" }\nmodel_server = { url = \"http://m\", model = \"x\" }",
    ] {
        let e = error(extra);
        assert!(!e.contains("s3cr3t"), "{e}");
        assert!(e.contains("${CUTOVER_TEST_SECRET_URL}") && e.contains("its variables expanded"), "{e}");
    }
    std::env::set_var("CUTOVER_TEST_SECRET_HEADER", "Bearer s3cr3t\u{1}");
    let e = error("[stacks.new]\nkind = \"http\"\nurl = \"http://h\"\nheaders = { authorization = \"${CUTOVER_TEST_SECRET_HEADER}\" }");
    assert!(e.contains("`stacks.new.headers.authorization`") && e.contains("control character"), "{e}");
    assert!(!e.contains("s3cr3t"), "{e}");
    std::env::set_var("CUTOVER_TEST_GOOD_HEADER", "Bearer abc");
    let m = load("[stacks.new]\nkind = \"http\"\nurl = \"http://h\"\nheaders = { authorization = \"${CUTOVER_TEST_GOOD_HEADER}\" }").unwrap();
    let StackDecl::Http(h) = &m.stacks().new else { panic!() };
    assert_eq!(h.headers, vec![("authorization".to_string(), "Bearer abc".to_string())]);
}

#[test]
fn framing_and_hop_by_hop_headers_are_refused_in_one_line() {
    let base = fraud_text().lines().count() + 1;
    for name in [
        "content-length",
        "Content-Length",
        "transfer-encoding",
        "host",
        "HOST",
        "connection",
        "te",
        "upgrade",
        "keep-alive",
        "trailer",
        "expect",
        "content-type",
    ] {
        let e = error(&format!("[stacks.new]\nkind = \"http\"\nurl = \"http://h\"\nheaders = {{ {name} = \"5\" }}"));
        assert!(e.starts_with(&format!("migration.toml:{}:", base + 4)), "{e}");
        assert!(e.contains(&format!("`stacks.new.headers.{name}`")) && e.contains("the router sets it"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }
}

#[test]
fn a_body_template_that_could_outgrow_the_call_limit_is_refused() {
    // One mention of every field expands within the limit.
    let fields = ["transaction_id", "customer_id", "amount", "currency", "country", "channel"];
    let body: Vec<String> = fields.iter().map(|f| format!("{f} = \"{{{f}}}\"")).collect();
    let ok = format!("[stacks.new]\nkind = \"http\"\nurl = \"http://h\"\nbody = {{ {} }}", body.join(", "));
    let m = load(&ok).unwrap();
    let StackDecl::Http(h) = &m.stacks().new else { panic!() };
    let (worst, most) = h.body.as_ref().unwrap().max_len(MAX_REQUEST_BODY);
    assert!(worst <= MAX_CALL_BODY && worst > MAX_REQUEST_BODY, "{worst}");
    assert_eq!(most.unwrap().1, 1);
    // A field mentioned four times could take a whole request each time.
    let many = "[stacks.new]\nkind = \"http\"\nurl = \"http://h\"\nbody = { a = \"{country}\", b = \"{country}\", c = \"x{country}\", d = [\"{country}\"] }";
    let e = error(many);
    assert!(
        e.contains("`stacks.new.body`") && e.contains("`{country}` appears 4 time(s)") && e.contains("64 KiB"),
        "{e}"
    );
    // So could 200 000 short placeholders.
    let placeholders = vec!["{amount}"; 200_000].join("");
    let e = error(&format!("[stacks.new]\nkind = \"http\"\nurl = \"http://h\"\nbody = {{ a = \"{placeholders}\" }}"));
    assert!(e.contains("could expand to") && e.len() < 400, "{}", &e[..e.len().min(400)]);
}

#[test]
fn the_bound_holds_for_every_request_within_the_body_cap() {
    // The worst requests: all the bytes in the field mentioned most, escapes, and numbers
    // that print longer than they came.
    let m = load("[stacks.new]\nkind = \"http\"\nurl = \"http://h\"\nbody = { a = \"{country}\", b = \"{country}-{amount}\", c = \"{amount}\", d = \"{transaction_id}\" }").unwrap();
    let StackDecl::Http(h) = &m.stacks().new else { panic!() };
    let t = h.body.as_ref().unwrap();
    let (worst, _) = t.max_len(MAX_REQUEST_BODY);
    let fill = |country: String| {
        let text = format!("{{\"country\": {country}, \"amount\": 1e5, \"transaction_id\": 1e-300}}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        (text.len(), serde_json::to_vec(&t.render(v.as_object().unwrap())).unwrap().len())
    };
    for country in [
        serde_json::to_string(&"x".repeat(MAX_REQUEST_BODY - 80)).unwrap(),
        format!("\"{}\"", "\\u0001".repeat((MAX_REQUEST_BODY - 80) / 6)),
        format!("\"{}\"", "\\\"".repeat((MAX_REQUEST_BODY - 80) / 2)),
    ] {
        let (sent, rendered) = fill(country);
        assert!(sent <= MAX_REQUEST_BODY, "{sent}");
        assert!(rendered <= worst, "{rendered} > {worst}");
    }
}
