//! Cross-cutting request handling: access logs and metrics, 404s inside the API, panics.

use crate::error::ApiError;
use agentry_core::ErrorCode;
use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::{Response, StatusCode};
use axum::middleware::Next;
use axum::response::IntoResponse;
use std::time::Instant;
use tracing::Instrument;

/// Logs every request once (with its request id) and counts it by route and status.
pub async fn record_request(request: Request, next: Next) -> axum::response::Response {
    let started = Instant::now();
    let method = request.method().clone();
    // The route template, never the raw path: ids in paths would explode metric cardinality.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let request_id = request_id(request.headers());
    // Every log line written while handling the request carries its id.
    let span = tracing::info_span!("request", request_id = %request_id);
    let response = next.run(request).instrument(span).await;
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    metrics::counter!("agentry_http_requests_total", "method" => method.to_string(), "route" => route.clone(), "status" => status.to_string()).increment(1);
    metrics::histogram!("agentry_http_request_duration_seconds", "route" => route.clone())
        .record(elapsed.as_secs_f64());
    tracing::info!(
        request_id,
        %method,
        route,
        status,
        duration_ms = elapsed.as_secs_f64() * 1000.0,
        "request"
    );
    response
}

/// The id `SetRequestIdLayer` gave the request.
pub fn request_id(headers: &axum::http::HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

pub async fn api_not_found() -> ApiError {
    ApiError::new(ErrorCode::RouteNotFound, "no API route matches this path")
}

pub fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response<Body> {
    tracing::error!("a request handler panicked");
    let mut response =
        ApiError::new(ErrorCode::Internal, "an internal error occurred").into_response();
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response
}
