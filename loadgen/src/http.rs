//! What every service shares: JSON errors, bounded bodies, health and Prometheus metrics.

use std::sync::OnceLock;

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::{Deserialize, Serialize};

use crate::upstream::UpstreamFailure;

/// The largest request body a service reads.
pub const MAX_BODY: usize = cutover_migration::stacks::MAX_REQUEST_BODY;

/// The time a request's body has to arrive once its headers have.
pub const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// An error answer: a status and a JSON body naming the field at fault.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiError {
    /// HTTP status.
    #[serde(skip)]
    pub status: StatusCode,
    /// What went wrong.
    pub error: String,
    /// The field at fault, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    /// An error with a status and message.
    pub fn new(status: StatusCode, error: impl Into<String>) -> ApiError {
        ApiError { status, error: error.into(), field: None }
    }

    /// An error about one field.
    pub fn field(status: StatusCode, field: impl Into<String>, error: impl Into<String>) -> ApiError {
        ApiError { status, error: error.into(), field: Some(field.into()) }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status;
        let mut response = (status, Json(self)).into_response();
        if status == StatusCode::REQUEST_TIMEOUT || status == StatusCode::PAYLOAD_TOO_LARGE {
            // The rest of the body is not read: the connection cannot carry another request.
            response
                .headers_mut()
                .insert(axum::http::header::CONNECTION, axum::http::HeaderValue::from_static("close"));
        }
        response
    }
}

/// Reads a body of at most [`MAX_BODY`] bytes within [`BODY_TIMEOUT`]: a larger one is
/// refused with 413, a slower one with 408 (and its connection closed).
pub async fn read_body(body: Body) -> Result<Bytes, ApiError> {
    match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, MAX_BODY)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(_)) => {
            Err(ApiError::field(StatusCode::PAYLOAD_TOO_LARGE, "body", format!("larger than {MAX_BODY} bytes")))
        }
        Err(_) => {
            metrics::counter!("cutover_connections_timed_out_total").increment(1);
            Err(ApiError::field(
                StatusCode::REQUEST_TIMEOUT,
                "body",
                format!("did not arrive within {} s", BODY_TIMEOUT.as_secs()),
            ))
        }
    }
}

/// Parses a scoring request of the migration's schema, answering 400 for a body that is
/// not one JSON object and 422 for a bad field.
pub fn parse_request(
    schema: &cutover_migration::schema::Schema,
    body: &[u8],
) -> Result<cutover_migration::schema::Record, ApiError> {
    let mut record = schema.record();
    schema.parse_json(body, &mut record).map_err(|e| {
        let status = if e.field == "body" { StatusCode::BAD_REQUEST } else { StatusCode::UNPROCESSABLE_ENTITY };
        ApiError::field(status, e.field, e.message)
    })?;
    Ok(record)
}

/// [`parse_request`] for a stack: a refused request counts in
/// `cutover_stack_bad_requests_total` for `stack`.
pub fn parse_stack_request(
    schema: &cutover_migration::schema::Schema,
    body: &[u8],
    stack: &'static str,
) -> Result<cutover_migration::schema::Record, ApiError> {
    parse_request(schema, body).inspect_err(|_| {
        metrics::counter!("cutover_stack_bad_requests_total", "stack" => stack).increment(1);
    })
}

/// The process's Prometheus recorder (installed on first use).
pub fn metrics_handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5])
            .expect("static buckets")
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed (an embedding program's): then ours
        // still renders what it was given, and the other receives the macros.
        let _ = metrics::set_global_recorder(recorder);
        describe();
        // Histograms keep every sample until drained: drained every few seconds, so a
        // process nobody scrapes does not grow with its requests.
        let upkeep = handle.clone();
        let _ = std::thread::Builder::new().name("cutover-metrics".into()).spawn(move || loop {
            std::thread::sleep(std::time::Duration::from_secs(5));
            upkeep.run_upkeep();
        });
        handle
    })
}

/// Every metric the services export, with its help text.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!("cutover_router_requests_total", "User requests answered, by the stack that served them");
    describe_counter!("cutover_router_user_failures_total", "User requests that failed or exceeded the user budget");
    describe_counter!(
        "cutover_router_shadow_dropped_total",
        "Shadow calls skipped because too many were in flight (the new stack slower than the traffic)"
    );
    describe_counter!("cutover_router_bad_requests_total", "Scoring requests refused with 4xx before routing");
    describe_counter!(
        "cutover_router_fallbacks_total",
        "Canary requests answered by legacy after the new stack failed"
    );
    describe_counter!(
        "cutover_router_upstream_failures_total",
        "Calls from the router to a stack that failed, by stack and reason (connect, timeout, status, answer, too_large)"
    );
    describe_histogram!("cutover_router_latency_seconds", Unit::Seconds, "User-side latency at the router");
    describe_gauge!("cutover_rollout_weight_pct", "The new stack's share of users, percent");
    describe_gauge!("cutover_guardrail", "A guardrail statistic of the current stage's window");
    describe_counter!("cutover_stack_requests_total", "Requests a stack scored");
    describe_counter!(
        "cutover_stack_errors_total",
        "Calls to a stack that failed, as its caller saw them, by reason: connect, timeout, status (not 2xx), answer (unreadable), too_large"
    );
    describe_counter!("cutover_stack_bad_requests_total", "Requests a stack refused with 4xx");
    describe_histogram!("cutover_stack_latency_seconds", Unit::Seconds, "Time a stack took to score a request");
    describe_histogram!(
        "cutover_platform_stage_seconds",
        Unit::Seconds,
        "The composed platform's time per stage: feature_store, transforms, model_server"
    );
    describe_counter!(
        "cutover_connections_refused_total",
        "Connections closed at accept: the service was at its connection cap"
    );
    describe_counter!(
        "cutover_connections_timed_out_total",
        "Connections closed because headers or a body did not arrive in time"
    );
}

/// Registers every counter at zero, so a scrape sees each series from the start rather
/// than after its first increment.
pub fn register_counters(stacks: &[&'static str]) {
    metrics_handle();
    for name in [
        "cutover_router_user_failures_total",
        "cutover_router_bad_requests_total",
        "cutover_router_fallbacks_total",
        "cutover_router_shadow_dropped_total",
        "cutover_connections_refused_total",
        "cutover_connections_timed_out_total",
    ] {
        metrics::counter!(name).increment(0);
    }
    for &stack in stacks {
        metrics::counter!("cutover_router_requests_total", "served_by" => stack).increment(0);
        for name in ["cutover_stack_requests_total", "cutover_stack_bad_requests_total"] {
            metrics::counter!(name, "stack" => stack).increment(0);
        }
        for f in UpstreamFailure::ALL {
            for name in ["cutover_router_upstream_failures_total", "cutover_stack_errors_total"] {
                metrics::counter!(name, "stack" => stack, "reason" => f.reason()).increment(0);
            }
        }
    }
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics() -> Response {
    let body = metrics_handle().render();
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// `GET /healthz`: the process is up.
pub async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

/// Unknown paths: 404 as JSON.
pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such path")
}

/// A known path with the wrong method: 405 as JSON.
pub async fn wrong_method() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed on this path")
}

/// Ask a stack to include its model row in the answer (the router pairs feature rows).
pub const FEATURES_HEADER: &str = "x-cutover-features";

/// A stack's answer to `POST /v1/score`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnswerBody {
    /// The model's answer: the probability (binary), the most likely class's probability
    /// (multiclass), or the prediction (regression).
    pub score: f32,
    /// The decision's label (none for regression).
    pub decision: Option<String>,
    /// Every class's probability (multiclass).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probabilities: Option<Vec<f32>>,
    /// Which stack answered.
    pub stack: String,
    /// The artifact that scored it (empty where a model server scored it).
    pub model_sha256: String,
    /// The version the model server stated, on the composed platform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_version: Option<String>,
    /// The model row, when asked for with the `x-cutover-features: 1` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<Vec<f32>>,
}
