//! What every service shares: JSON errors, bounded bodies, health and Prometheus metrics.

use std::sync::OnceLock;

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::Serialize;

/// The largest request body a service reads.
pub const MAX_BODY: usize = 16 * 1024;

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
        (status, Json(self)).into_response()
    }
}

/// Reads a body of at most [`MAX_BODY`] bytes; a larger one is refused with 413.
pub async fn read_body(body: Body) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| ApiError::field(StatusCode::PAYLOAD_TOO_LARGE, "body", format!("larger than {MAX_BODY} bytes")))
}

/// Parses a scoring request of the migration's schema, answering 400 for a body that is
/// not one JSON object and 422 for a bad field.
pub fn parse_request(
    schema: &cutover_models::schema::Schema,
    body: &[u8],
) -> Result<cutover_models::schema::Record, ApiError> {
    let mut record = schema.record();
    schema.parse_json(body, &mut record).map_err(|e| {
        let status = if e.field == "body" { StatusCode::BAD_REQUEST } else { StatusCode::UNPROCESSABLE_ENTITY };
        ApiError::field(status, e.field, e.message)
    })?;
    Ok(record)
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
        handle
    })
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
