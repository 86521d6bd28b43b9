//! The stacks a migration declares (`[stacks.legacy]`, `[stacks.new]` in
//! `migration.toml`): cutover's own in-process stack (the default), one external HTTP
//! service on its own API, or the composed new platform: a feature server (Feast's
//! `POST /get-online-features`) feeding the new spec's on-demand transforms, and a model
//! server speaking the Open Inference Protocol (`POST /v2/models/{name}/infer`).
//! This module holds the declarations, checked when the folder loads; the clients live in
//! `cutover-loadgen`.
//!
//! ```toml
//! [stacks.legacy]
//! kind = "http"
//! url = "http://127.0.0.1:9001"
//! path = "/predict"
//! # The body, as a TOML table or a JSON text: a string that is exactly "{field}" becomes
//! # that request field's value with its JSON type (null when absent); "{field}" inside a
//! # longer string is replaced by its text. Without `body` the request goes as it came.
//! body = { instances = [{ amount = "{amount}", country = "{country}" }], id = "txn-{transaction_id}" }
//! score = "/predictions/0/probability"     # JSON pointers into the answer
//! decision = "/predictions/0/label"        # optional
//! model_version = "/model_version"         # optional
//!
//! [stacks.new]
//! kind = "platform"
//! [stacks.new.feature_server]
//! url = "http://127.0.0.1:6566"
//! view = "customer_aggregates"             # each aggregate of the new spec is `view:name` ...
//! features = { customer_avg_amount_eur = "customer_stats:avg_eur" }   # ... unless mapped
//! join_key = "customer_id"                 # Feast's join key (the entity field's name by default)
//! push_source = "aggregates_push"          # optional: cutover's materializer pushes here
//! [stacks.new.model_server]
//! url = "http://127.0.0.1:8080"
//! model = "fraud"
//! version = "2"                            # optional: /v2/models/fraud/versions/2/infer
//! output = "predict"                       # or "predict_proba"
//! repository = "${MODELS:-/srv/models}"   # optional: where a model_artifact fault loads
//! ```
//!
//! URLs, header values and the repository may name environment variables: `${NAME}` or
//! `${NAME:-default}`; no message ever prints what a variable held.
//!
//! What cutover sends a service is bounded: a body template that could grow past
//! [`MAX_CALL_BODY`] for a request within [`MAX_REQUEST_BODY`] is refused, as are headers
//! that frame the message or belong to one hop (`content-length`, `host`, `connection`, ...),
//! which the router sets itself. Whether a URL's host is this machine is decided here, from
//! its text alone ([`is_loopback`]); the faces refuse the others unless `--allow-remote`.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use crate::error::line_column;
use crate::features::Pipeline;
use crate::schema::Schema;
use crate::FieldError;

/// The largest scoring request a cutover service reads, in bytes.
pub const MAX_REQUEST_BODY: usize = 16 * 1024;

/// The largest body cutover sends a declared service for one request, in bytes: a body
/// template is refused when a request within [`MAX_REQUEST_BODY`] could expand past it.
pub const MAX_CALL_BODY: usize = 64 * 1024;

/// Headers a declaration may not set: they frame the message or belong to one hop, and the
/// router's client sets them (a `content-length` of its own would cut every call short and
/// leave the rest on the connection for the next one).
pub const RESERVED_HEADERS: [&str; 13] = [
    "connection",
    "content-length",
    "content-type",
    "expect",
    "host",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The stacks of a migration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stacks {
    /// The legacy stack.
    pub legacy: StackDecl,
    /// The new stack.
    pub new: StackDecl,
    /// Every service URL the declarations name, where it was written.
    pub urls: Vec<UrlSite>,
}

/// A service URL as the migration file wrote it: where, and whether its host is this
/// machine, so that a refusal can name the place without printing what a variable held.
#[derive(Debug, Clone, PartialEq)]
pub struct UrlSite {
    /// The field (`stacks.new.url`, `stacks.new.model_server.url`).
    pub field: String,
    /// The text as written, its `${VAR}`s unexpanded.
    pub written: String,
    /// Line (1-based).
    pub line: usize,
    /// Column (1-based).
    pub column: usize,
    /// Whether its host is this machine ([`is_loopback`]).
    pub loopback: bool,
}

impl Stacks {
    /// The first URL whose host is not this machine, if any.
    pub fn first_remote(&self) -> Option<&UrlSite> {
        self.urls.iter().find(|u| !u.loopback)
    }
}

/// The refusal of a URL beyond this machine, after the flag or field that gave it: `written`
/// is the URL as given (its variables unexpanded, so no secret is printed).
pub fn remote_refused(written: &str) -> String {
    format!(
        "`{}` is not on this machine: cutover calls only loopback services (127.0.0.0/8, ::1, localhost) unless --allow-remote",
        cutover_models::shown(written)
    )
}

/// Whether a base URL's host is this machine: `localhost` or an IP address on loopback.
/// Decided from the text alone: any other name counts as remote, with no lookup.
pub fn is_loopback(url: &str) -> bool {
    let rest = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://")).unwrap_or("");
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return false;
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((h, after)) if after.is_empty() || after.starts_with(':') => h,
            _ => return false,
        },
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// One stack as declared.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum StackDecl {
    /// cutover's own stack, built from the registry entry.
    #[default]
    InProcess,
    /// One HTTP service with its own API.
    Http(HttpStack),
    /// A feature server and a model server, composed by cutover.
    Platform(PlatformStack),
}

impl StackDecl {
    /// Its kind as written.
    pub fn kind(&self) -> &'static str {
        match self {
            StackDecl::InProcess => "in-process",
            StackDecl::Http(_) => "http",
            StackDecl::Platform(_) => "platform",
        }
    }
}

/// An external service with its own API.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpStack {
    /// Base URL (`http://host:port`, no trailing slash).
    pub url: String,
    /// The scoring path (`/v1/score` unless set).
    pub path: String,
    /// Extra request headers.
    pub headers: Vec<(String, String)>,
    /// The request body's template; none forwards the request as it came.
    pub body: Option<Template>,
    /// Where the answer holds the score (a JSON pointer).
    pub score: String,
    /// The decision, when the service states one.
    pub decision: Option<String>,
    /// Every class's probability (multiclass).
    pub probabilities: Option<String>,
    /// The model version, when the service states it.
    pub model_version: Option<String>,
    /// The model row, when the service returns it (an array in the model's feature order).
    pub features: Option<String>,
}

/// The composed new platform.
#[derive(Debug, Clone, PartialEq)]
pub struct PlatformStack {
    /// The feature server.
    pub feature_server: FeatureServer,
    /// The model server.
    pub model_server: ModelServer,
}

/// A Feast feature server.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureServer {
    /// Base URL.
    pub url: String,
    /// Feast's join key for the request's entity.
    pub join_key: String,
    /// The feature view of aggregates not mapped one by one.
    pub view: Option<String>,
    /// Per aggregate of the new spec, by name: its feature reference (`view:feature`).
    /// Resolved against the spec by [`FeatureServer::references`].
    pub features: BTreeMap<String, String>,
    /// The push source cutover's materializer writes through (`POST /push`), if any.
    pub push_source: Option<String>,
    /// Where in `migration.toml` the section starts (for errors found against the spec).
    pub at: (usize, usize),
}

/// An Open Inference Protocol model server.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelServer {
    /// Base URL.
    pub url: String,
    /// The model's name.
    pub model: String,
    /// Its version, when pinned.
    pub version: Option<String>,
    /// The output to ask for.
    pub output: OipOutput,
    /// The input tensor's name.
    pub input: String,
    /// Its model repository (MLServer's folder of `model-settings.json`; a relative path
    /// is the migration folder's), where a `model_artifact` fault makes it load another
    /// artifact; none: that fault cannot be acted out (and the load test says so).
    pub repository: Option<std::path::PathBuf>,
}

impl ModelServer {
    /// The inference path.
    pub fn infer_path(&self) -> String {
        match &self.version {
            Some(v) => format!("/v2/models/{}/versions/{v}/infer", self.model),
            None => format!("/v2/models/{}/infer", self.model),
        }
    }
}

/// Which output an OIP server is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OipOutput {
    /// `predict`: the prediction (the probability of a binary:logistic model loaded as a
    /// regressor, as MLServer's XGBoost runtime does; every class's for softprob).
    Predict,
    /// `predict_proba`: every class's probability (the positive class's is the score).
    PredictProba,
}

impl OipOutput {
    /// Its name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            OipOutput::Predict => "predict",
            OipOutput::PredictProba => "predict_proba",
        }
    }
}

impl FeatureServer {
    /// The feature reference of each aggregate of `pipeline`, in its order; an aggregate
    /// neither mapped nor covered by `view`, or a mapping naming no aggregate, is an error.
    pub fn references(&self, pipeline: &Pipeline) -> Result<Vec<String>, String> {
        let names: Vec<&str> = pipeline.aggregates().iter().map(|a| a.name.as_str()).collect();
        if let Some(unknown) = self.features.keys().find(|k| !names.contains(&k.as_str())) {
            return Err(format!(
                "`{unknown}` is not an aggregate of the spec `{}` (aggregates: {})",
                pipeline.name(),
                names.join(", ")
            ));
        }
        names
            .iter()
            .map(|n| match (self.features.get(*n), &self.view) {
                (Some(r), _) => Ok(r.clone()),
                (None, Some(v)) => Ok(format!("{v}:{n}")),
                (None, None) => Err(format!("the spec's aggregate `{n}` has no feature: map it or set `view`")),
            })
            .collect()
    }
}

/// A request body's template: JSON with placeholders naming request fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    root: Node,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Literal(serde_json::Value),
    /// A whole-string placeholder: the field's value, typed.
    Field(String),
    /// Text with placeholders: literal pieces and fields, alternating.
    Text(Vec<Piece>),
    Array(Vec<Node>),
    Object(Vec<(String, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Literal(String),
    Field(String),
}

impl Template {
    /// Compiles a template, checking that every placeholder names a field of `schema`.
    pub fn compile(value: &serde_json::Value, schema: &Schema) -> Result<Template, String> {
        Ok(Template { root: node(value, schema, "body")? })
    }

    /// The body for one request (its JSON object as received).
    pub fn render(&self, request: &serde_json::Map<String, serde_json::Value>) -> serde_json::Value {
        render(&self.root, request)
    }

    /// The longest body it renders for a request of at most `request_bytes`, and the field
    /// that can make it so. A value never prints longer than it arrived, but a number may
    /// (`1e5` prints `100000.0`: at most [`LONGEST_NUMBER`] bytes); and since a request's
    /// values share its bytes, the worst request puts all of them into the field the
    /// template mentions most. So: the template's own text, [`LONGEST_NUMBER`] per mention,
    /// and the whole request once per mention of that field.
    pub fn max_len(&self, request_bytes: usize) -> (usize, Option<(String, usize)>) {
        let own = serde_json::to_vec(&render(&self.root, &serde_json::Map::new())).map_or(0, |b| b.len());
        let mut mentions = BTreeMap::<String, usize>::new();
        count_fields(&self.root, &mut mentions);
        let total: usize = mentions.values().sum();
        let most = mentions.into_iter().max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)));
        let worst = own
            .saturating_add(total.saturating_mul(LONGEST_NUMBER))
            .saturating_add(most.as_ref().map_or(0, |m| m.1).saturating_mul(request_bytes));
        (worst, most)
    }
}

/// The longest a JSON number prints (`-2.2250738585072014e-308`).
pub const LONGEST_NUMBER: usize = 24;

fn count_fields(n: &Node, out: &mut BTreeMap<String, usize>) {
    match n {
        Node::Literal(_) => {}
        Node::Field(f) => *out.entry(f.clone()).or_default() += 1,
        Node::Text(pieces) => {
            for p in pieces {
                if let Piece::Field(f) = p {
                    *out.entry(f.clone()).or_default() += 1;
                }
            }
        }
        Node::Array(a) => a.iter().for_each(|x| count_fields(x, out)),
        Node::Object(o) => o.iter().for_each(|(_, x)| count_fields(x, out)),
    }
}

fn node(v: &serde_json::Value, schema: &Schema, at: &str) -> Result<Node, String> {
    use serde_json::Value;
    Ok(match v {
        Value::String(s) => {
            let pieces = pieces(s, schema).map_err(|e| format!("{at}: {e}"))?;
            match pieces.as_slice() {
                [] => Node::Literal(Value::String(String::new())),
                [Piece::Field(f)] => Node::Field(f.clone()),
                [Piece::Literal(l)] => Node::Literal(Value::String(l.clone())),
                _ => Node::Text(pieces),
            }
        }
        Value::Array(a) => Node::Array(
            a.iter().enumerate().map(|(i, x)| node(x, schema, &format!("{at}[{i}]"))).collect::<Result<_, _>>()?,
        ),
        Value::Object(o) => Node::Object(
            o.iter()
                .map(|(k, x)| Ok((k.clone(), node(x, schema, &format!("{at}.{k}"))?)))
                .collect::<Result<_, String>>()?,
        ),
        other => Node::Literal(other.clone()),
    })
}

/// Splits text into literal pieces and `{field}` placeholders (`{{` and `}}` are braces).
fn pieces(s: &str, schema: &Schema) -> Result<Vec<Piece>, String> {
    let mut out = Vec::new();
    let mut lit = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                lit.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                lit.push('}');
            }
            '{' => {
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(c) => name.push(c),
                        None => {
                            return Err(format!(
                                "`{{{}` is not closed (write `{{{{` for a brace)",
                                cutover_models::shown(&name)
                            ))
                        }
                    }
                }
                if schema.index(&name).is_none() {
                    return Err(format!("`{{{}}}` names no request field", cutover_models::shown(&name)));
                }
                if !lit.is_empty() {
                    out.push(Piece::Literal(std::mem::take(&mut lit)));
                }
                out.push(Piece::Field(name));
            }
            '}' => return Err("a lone `}` (write `}}` for a brace)".into()),
            c => lit.push(c),
        }
    }
    if !lit.is_empty() {
        out.push(Piece::Literal(lit));
    }
    Ok(out)
}

fn render(n: &Node, request: &serde_json::Map<String, serde_json::Value>) -> serde_json::Value {
    use serde_json::Value;
    match n {
        Node::Literal(v) => v.clone(),
        Node::Field(f) => request.get(f).cloned().unwrap_or(Value::Null),
        Node::Text(pieces) => {
            let mut s = String::new();
            for p in pieces {
                match p {
                    Piece::Literal(l) => s.push_str(l),
                    Piece::Field(f) => match request.get(f) {
                        None | Some(Value::Null) => {}
                        Some(Value::String(t)) => s.push_str(t),
                        Some(other) => s.push_str(&other.to_string()),
                    },
                }
            }
            Value::String(s)
        }
        Node::Array(a) => Value::Array(a.iter().map(|x| render(x, request)).collect()),
        Node::Object(o) => Value::Object(o.iter().map(|(k, x)| (k.clone(), render(x, request))).collect()),
    }
}

// ---- the file's shape -------------------------------------------------------------------

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StacksDef {
    #[serde(default)]
    legacy: Option<Spanned<StackDef>>,
    #[serde(default)]
    new: Option<Spanned<StackDef>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct StackDef {
    kind: Spanned<String>,
    #[serde(default)]
    url: Option<Spanned<String>>,
    #[serde(default)]
    path: Option<Spanned<String>>,
    #[serde(default)]
    headers: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    body: Option<Spanned<toml::Value>>,
    #[serde(default)]
    score: Option<Spanned<String>>,
    #[serde(default)]
    decision: Option<Spanned<String>>,
    #[serde(default)]
    probabilities: Option<Spanned<String>>,
    #[serde(default)]
    model_version: Option<Spanned<String>>,
    #[serde(default)]
    features: Option<Spanned<String>>,
    #[serde(default)]
    feature_server: Option<Spanned<FeatureServerDef>>,
    #[serde(default)]
    model_server: Option<Spanned<ModelServerDef>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FeatureServerDef {
    url: Spanned<String>,
    #[serde(default)]
    join_key: Option<Spanned<String>>,
    #[serde(default)]
    view: Option<Spanned<String>>,
    #[serde(default)]
    features: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    push_source: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelServerDef {
    url: Spanned<String>,
    model: Spanned<String>,
    #[serde(default)]
    version: Option<Spanned<String>>,
    #[serde(default)]
    output: Option<Spanned<String>>,
    #[serde(default)]
    input: Option<Spanned<String>>,
    #[serde(default)]
    repository: Option<Spanned<String>>,
}

type Span = std::ops::Range<usize>;

impl StacksDef {
    /// Compiles the declarations; errors name `file`, the line and column, and the field.
    pub(crate) fn compile(&self, text: &str, file: &str, schema: &Schema) -> Result<Stacks, FieldError> {
        let err = |span: Span, field: String, message: String| {
            let (line, column) = if span.end > 0 { line_column(text, span.start) } else { (0, 0) };
            FieldError { file: file.into(), line, column, field, message }
        };
        let mut urls = Vec::new();
        let mut one = |def: &Option<Spanned<StackDef>>, which: &str| -> Result<StackDecl, FieldError> {
            match def {
                None => Ok(StackDecl::InProcess),
                Some(d) => compile_stack(d, &format!("stacks.{which}"), schema, text, &mut urls)
                    .map_err(|(span, field, message)| err(span, field, message)),
            }
        };
        let (legacy, new) = (one(&self.legacy, "legacy")?, one(&self.new, "new")?);
        Ok(Stacks { legacy, new, urls })
    }
}

type Fail = (Span, String, String);

/// A declared base URL, checked, with where it was written added to `urls`.
fn site(u: &Spanned<String>, field: String, text: &str, urls: &mut Vec<UrlSite>) -> Result<String, Fail> {
    let url = base_url(u).map_err(|e| (u.span(), field.clone(), e))?;
    let (line, column) = line_column(text, u.span().start);
    urls.push(UrlSite { field, written: u.get_ref().clone(), line, column, loopback: is_loopback(&url) });
    Ok(url)
}

fn compile_stack(
    d: &Spanned<StackDef>,
    at: &str,
    schema: &Schema,
    text: &str,
    urls: &mut Vec<UrlSite>,
) -> Result<StackDecl, Fail> {
    let s = d.get_ref();
    let f = |k: &str| format!("{at}.{k}");
    let http_only = [
        ("url", s.url.as_ref().map(Spanned::span)),
        ("path", s.path.as_ref().map(Spanned::span)),
        ("body", s.body.as_ref().map(Spanned::span)),
        ("score", s.score.as_ref().map(Spanned::span)),
        ("decision", s.decision.as_ref().map(Spanned::span)),
        ("probabilities", s.probabilities.as_ref().map(Spanned::span)),
        ("model_version", s.model_version.as_ref().map(Spanned::span)),
        ("features", s.features.as_ref().map(Spanned::span)),
    ];
    let platform_only = [
        ("feature_server", s.feature_server.as_ref().map(Spanned::span)),
        ("model_server", s.model_server.as_ref().map(Spanned::span)),
    ];
    let refuse = |keys: &[(&str, Option<Span>)], kind: &str| -> Result<(), Fail> {
        match keys.iter().find_map(|(k, sp)| sp.clone().map(|sp| (k, sp))) {
            Some((k, sp)) => Err((sp, f(k), format!("a stack of kind `{kind}` takes no `{k}`"))),
            None => Ok(()),
        }
    };
    match s.kind.get_ref().as_str() {
        "in-process" => {
            refuse(&http_only, "in-process")?;
            refuse(&platform_only, "in-process")?;
            if !s.headers.is_empty() {
                return Err((s.kind.span(), f("headers"), "a stack of kind `in-process` takes no `headers`".into()));
            }
            Ok(StackDecl::InProcess)
        }
        "http" => {
            refuse(&platform_only, "http")?;
            compile_http(d, &f, schema, text, urls)
        }
        "platform" => {
            refuse(&http_only, "platform")?;
            compile_platform(d, &f, schema, text, urls)
        }
        other => Err((
            s.kind.span(),
            f("kind"),
            format!("`{}` is not a stack kind (in-process, http or platform)", cutover_models::shown(other)),
        )),
    }
}

/// An http stack: its URL, path, headers, body template and where its answer holds what.
fn compile_http(
    d: &Spanned<StackDef>,
    f: &dyn Fn(&str) -> String,
    schema: &Schema,
    text: &str,
    urls: &mut Vec<UrlSite>,
) -> Result<StackDecl, Fail> {
    let s = d.get_ref();
    let url = s.url.as_ref().ok_or_else(|| (d.span(), f("url"), "an http stack needs `url`".into()))?;
    let path = match &s.path {
        None => "/v1/score".to_string(),
        Some(p) if p.get_ref().starts_with('/') && !p.get_ref().contains(char::is_whitespace) => p.get_ref().clone(),
        Some(p) => return Err((p.span(), f("path"), "must start with `/` and hold no space".into())),
    };
    let headers = http_headers(s, &f)?;
    let body = s.body.as_ref().map(|b| http_body(b, schema, &f)).transpose()?;
    let ptr = |p: &Option<Spanned<String>>, key: &str| -> Result<Option<String>, Fail> {
        p.as_ref().map(|p| pointer(p.get_ref()).map_err(|e| (p.span(), f(key), e))).transpose()
    };
    let score = ptr(&s.score, "score")?.unwrap_or_else(|| "/score".into());
    Ok(StackDecl::Http(HttpStack {
        url: site(url, f("url"), text, urls)?,
        path,
        headers,
        body,
        score,
        decision: ptr(&s.decision, "decision")?,
        probabilities: ptr(&s.probabilities, "probabilities")?,
        model_version: ptr(&s.model_version, "model_version")?,
        features: ptr(&s.features, "features")?,
    }))
}

/// An http stack's headers: names checked, none reserved, values expanded (never printed).
fn http_headers(s: &StackDef, f: &dyn Fn(&str) -> String) -> Result<Vec<(String, String)>, Fail> {
    let mut headers = Vec::new();
    for (name, value) in &s.headers {
        let ok_name = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
        if !ok_name {
            return Err((
                value.span(),
                f("headers"),
                format!("`{}` is not a header name", cutover_models::shown(name)),
            ));
        }
        let field = f(&format!("headers.{name}"));
        if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            return Err((
                value.span(),
                field,
                format!(
                    "`{}` frames the call or belongs to one hop: the router sets it (reserved: {})",
                    cutover_models::shown(name),
                    RESERVED_HEADERS.join(", ")
                ),
            ));
        }
        // A value may hold a secret from the environment: no message prints it.
        let expanded = expand(value.get_ref()).map_err(|e| (value.span(), field.clone(), e))?;
        if expanded.chars().any(char::is_control) {
            return Err((value.span(), field, "holds a control character (once its variables are expanded)".into()));
        }
        headers.push((name.clone(), expanded));
    }
    Ok(headers)
}

/// An http stack's body template: a TOML table or array, or a JSON text, that no request
/// within the body cap can expand past what a call may hold.
fn http_body(b: &Spanned<toml::Value>, schema: &Schema, f: &dyn Fn(&str) -> String) -> Result<Template, Fail> {
    let json = match b.get_ref() {
        toml::Value::String(t) => serde_json::from_str::<serde_json::Value>(t).map_err(|e| {
            (b.span(), f("body"), format!("not JSON (line {}, column {} of the text): {e}", e.line(), e.column()))
        })?,
        v @ (toml::Value::Table(_) | toml::Value::Array(_)) => {
            serde_json::to_value(v).map_err(|e| (b.span(), f("body"), format!("cannot be written as JSON: {e}")))?
        }
        _ => return Err((b.span(), f("body"), "must be a table, an array or a JSON text".into())),
    };
    let t = Template::compile(&json, schema).map_err(|e| (b.span(), f("body"), e))?;
    let (worst, most) = t.max_len(MAX_REQUEST_BODY);
    if worst > MAX_CALL_BODY {
        let why = most.map_or(String::new(), |(field, n)| {
            format!(" (`{{{}}}` appears {n} time(s))", cutover_models::shown(&field))
        });
        return Err((
            b.span(),
            f("body"),
            format!(
                "a request within the {} KiB body cap could expand to {worst} bytes here{why}, \
                 past the {} KiB a call's body may hold",
                MAX_REQUEST_BODY / 1024,
                MAX_CALL_BODY / 1024
            ),
        ));
    }
    Ok(t)
}

/// The composed platform: its feature server and its model server.
fn compile_platform(
    d: &Spanned<StackDef>,
    f: &dyn Fn(&str) -> String,
    schema: &Schema,
    text: &str,
    urls: &mut Vec<UrlSite>,
) -> Result<StackDecl, Fail> {
    let s = d.get_ref();
    if !s.headers.is_empty() {
        return Err((s.kind.span(), f("headers"), "a stack of kind `platform` takes no `headers`".into()));
    }
    let fs = s.feature_server.as_ref().ok_or_else(|| {
        (d.span(), f("feature_server"), "a platform needs `[feature_server]` (a Feast feature server)".into())
    })?;
    let ms = s.model_server.as_ref().ok_or_else(|| {
        (d.span(), f("model_server"), "a platform needs `[model_server]` (an Open Inference Protocol server)".into())
    })?;
    let (fsd, msd) = (fs.get_ref(), ms.get_ref());
    let ff = |k: &str| f(&format!("feature_server.{k}"));
    let mf = |k: &str| f(&format!("model_server.{k}"));
    let name = |v: &Spanned<String>, field: String| -> Result<String, Fail> {
        let t = v.get_ref();
        let ok = !t.is_empty() && t.len() <= 200 && t.bytes().all(|b| b.is_ascii_graphic() && b != b'/');
        if ok {
            Ok(t.clone())
        } else {
            Err((v.span(), field, format!("`{}` is not a name (no space, no `/`)", cutover_models::shown(t))))
        }
    };
    let mut features = BTreeMap::new();
    for (agg, reference) in &fsd.features {
        let r = reference.get_ref();
        match r.split_once(':') {
            Some((v, n)) if !v.is_empty() && !n.is_empty() && !n.contains(':') => {
                features.insert(agg.clone(), r.clone());
            }
            _ => {
                return Err((
                    reference.span(),
                    ff(&format!("features.{agg}")),
                    format!("`{}` is not a feature reference (`view:feature`)", cutover_models::shown(r)),
                ))
            }
        }
    }
    let entity = schema.field(schema.entity_field()).name.clone();
    let feature_server = FeatureServer {
        url: site(&fsd.url, ff("url"), text, urls)?,
        join_key: fsd.join_key.as_ref().map(|k| name(k, ff("join_key"))).transpose()?.unwrap_or(entity),
        view: fsd.view.as_ref().map(|v| name(v, ff("view"))).transpose()?,
        features,
        push_source: fsd.push_source.as_ref().map(|p| name(p, ff("push_source"))).transpose()?,
        at: line_column(text, fs.span().start),
    };
    let output = match &msd.output {
        None => OipOutput::Predict,
        Some(o) => match o.get_ref().as_str() {
            "predict" => OipOutput::Predict,
            "predict_proba" => OipOutput::PredictProba,
            other => {
                return Err((
                    o.span(),
                    mf("output"),
                    format!("`{}` is not an output (predict or predict_proba)", cutover_models::shown(other)),
                ))
            }
        },
    };
    let model_server = ModelServer {
        url: site(&msd.url, mf("url"), text, urls)?,
        model: name(&msd.model, mf("model"))?,
        version: msd.version.as_ref().map(|v| name(v, mf("version"))).transpose()?,
        output,
        input: msd.input.as_ref().map(|v| name(v, mf("input"))).transpose()?.unwrap_or_else(|| "input-0".into()),
        // Empty (an unset variable's empty default): no repository.
        repository: msd
            .repository
            .as_ref()
            .map(|r| expand(r.get_ref()).map_err(|e| (r.span(), mf("repository"), e)))
            .transpose()?
            .filter(|r| !r.is_empty())
            .map(std::path::PathBuf::from),
    };
    Ok(StackDecl::Platform(PlatformStack { feature_server, model_server }))
}

/// A JSON pointer (`/a/0/b`), or a key, which becomes one (`score` is `/score`).
pub fn pointer(p: &str) -> Result<String, String> {
    if p.is_empty() {
        return Err("is empty: name a key or a JSON pointer such as `/result/score`".into());
    }
    if p.starts_with('/') {
        // `~` escapes only `~0` and `~1`.
        let bad = p.match_indices('~').any(|(i, _)| !matches!(p.as_bytes().get(i + 1), Some(b'0' | b'1')));
        if bad {
            return Err(format!("`{}` is not a JSON pointer (`~` must be `~0` or `~1`)", cutover_models::shown(p)));
        }
        Ok(p.to_string())
    } else {
        Ok(format!("/{}", p.replace('~', "~0").replace('/', "~1")))
    }
}

/// A base URL: `http://` or `https://`, a host, an optional port; no path, query or
/// credentials. Returned without a trailing slash.
pub fn base_url(u: &Spanned<String>) -> Result<String, String> {
    check_url(u.get_ref())
}

/// Expands `${NAME}` and `${NAME:-default}` from the environment (a staging URL, a port
/// picked at start); a variable that is unset and has no default is an error.
pub fn expand(text: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let inner = &rest[at + 2..];
        let end = inner.find('}').ok_or_else(|| format!("`{}`: a `${{` is not closed", cutover_models::shown(text)))?;
        let (name, default) = match inner[..end].split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (&inner[..end], None),
        };
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!("`${{{}}}` is not a variable name", cutover_models::shown(name)));
        }
        match (std::env::var(name).ok().filter(|v| !v.is_empty()), default) {
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => return Err(format!("${{{name}}} is not set (write `${{{name}:-default}}` to give one)")),
        }
        rest = &inner[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Checks a base URL (see [`base_url`]); `${VAR}` and `${VAR:-default}` are expanded first.
/// A message quotes the URL as written, never what its variables held.
pub fn check_url(written: &str) -> Result<String, String> {
    let expanded = expand(written)?;
    let quoted = if expanded == written {
        format!("`{}`", cutover_models::shown(written))
    } else {
        format!("`{}` (its variables expanded)", cutover_models::shown(written))
    };
    let t = expanded.trim_end_matches('/');
    let rest = t
        .strip_prefix("http://")
        .or_else(|| t.strip_prefix("https://"))
        .ok_or_else(|| format!("{quoted} is not an http:// or https:// URL"))?;
    if rest.is_empty() || rest.contains(['/', '?', '#', '@']) || rest.contains(char::is_whitespace) {
        return Err(format!("{quoted}: give the scheme, host and port only (no path, query or user)"));
    }
    let port = match rest.strip_prefix('[') {
        Some(v6) => {
            let (_, after) = v6.split_once(']').ok_or_else(|| format!("{quoted}: an unclosed `[`"))?;
            after.strip_prefix(':')
        }
        None => rest.rsplit_once(':').map(|(_, p)| p),
    };
    if port.is_some_and(|p| p.parse::<u16>().map_or(true, |p| p == 0)) {
        return Err(format!("{quoted}: the port must be 1 to 65535"));
    }
    Ok(t.to_string())
}

#[cfg(test)]
mod tests;
