//! The live dashboard: `GET /dashboard` serves the report's page, whose script fetches
//! `GET /dashboard/panels` every two seconds and swaps the panels in. Both render the
//! simulator's panels from a snapshot of the router's rollout, off the async workers.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use cutover_sim::report::dashboard::{self, PageKind, ReportData};

use crate::http::ApiError;
use crate::router::RouterState;

const PANELS_URL: &str = "/dashboard/panels";

async fn render(state: Arc<RouterState>, whole: bool) -> Result<Response, ApiError> {
    let html = tokio::task::spawn_blocking(move || {
        let snap = state.snapshot();
        let data = ReportData {
            summary: &snap.summary,
            events: &snap.events,
            trace: &snap.trace,
            stage_stats: &snap.stage_stats,
            parity: &snap.parity,
            lineage: state.lineage(),
            horizon_s: snap.now_s.max(1.0),
            answer: state.answer(),
        };
        if whole {
            dashboard::page(&data, PageKind::Live { panels_url: PANELS_URL })
        } else {
            dashboard::panels(&data)
        }
    })
    .await
    .map_err(|e| {
        ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, format!("rendering the dashboard: {e}"))
    })?;
    Ok(([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-store")], html)
        .into_response())
}

/// The dashboard's routes, for the router to serve behind its token check.
pub fn routes() -> axum::Router<Arc<RouterState>> {
    axum::Router::new()
        .route("/dashboard", axum::routing::get(page))
        .route("/dashboard/panels", axum::routing::get(panels))
}

/// `GET /dashboard`: the whole page.
pub async fn page(State(state): State<Arc<RouterState>>) -> Result<Response, ApiError> {
    render(state, true).await
}

/// `GET /dashboard/panels`: the panels alone, for the page's refresh.
pub async fn panels(State(state): State<Arc<RouterState>>) -> Result<Response, ApiError> {
    render(state, false).await
}
