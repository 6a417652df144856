//! Health, readiness and metrics: unauthenticated, outside `/api/v1`.

use crate::AppState;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::json;

/// The process is up.
pub async fn healthz() -> impl IntoResponse {
    axum::Json(json!({"status": "ok"}))
}

/// The database answers, migrations are applied and the workers run.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let database = state.platform.db.is_ready().await;
    let workers = state.platform.workers_healthy();
    let status = if database && workers {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(json!({
            "status": if status == StatusCode::OK { "ready" } else { "not_ready" },
            "checks": {"database": database, "workers": workers},
        })),
    )
}

/// Prometheus metrics.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    if let Ok(counts) = agentry_store::runs::count_by_status(&state.platform.db).await {
        for status in agentry_core::run::RunStatus::ALL {
            let n = counts
                .iter()
                .find(|(s, _)| s == status.as_str())
                .map(|(_, n)| *n)
                .unwrap_or(0);
            metrics::gauge!("agentry_runs", "status" => status.as_str()).set(n as f64);
        }
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
