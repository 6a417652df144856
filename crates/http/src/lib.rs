//! The HTTP surface of Agentry: REST `/api/v1` (+ SSE), OpenAPI, health, metrics and the
//! dashboard, assembled by [`router`].
//!
//! Architecture Invariant: this is the only crate that knows the wire format. Handlers call
//! engine service functions and map their results; no SQL and no business rules live here.

pub mod audit;
pub mod dto;
pub mod dto_identity;
pub mod dto_money;
pub mod dto_triggers;
pub mod dto_workflows;
pub mod error;
pub mod extract;
pub mod guard;
mod middleware;
pub mod openapi;
pub mod routes;
pub mod signin;
pub mod ui;

use agentry_engine::Platform;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::HeaderName;
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub platform: Arc<Platform>,
    pub metrics: PrometheusHandle,
    /// Request limits (in-process, or shared through Redis across replicas).
    pub limiter: agentry_ratelimit::Limiter,
    pub policies: Arc<agentry_ratelimit::Policies>,
    /// Origins allowed to send cookie-authenticated requests besides our own.
    pub trusted_origins: Arc<Vec<String>>,
}

impl AppState {
    /// A state with default limits (tests and embedders).
    pub fn new(platform: Arc<Platform>, metrics: PrometheusHandle) -> Self {
        Self {
            platform,
            metrics,
            limiter: agentry_ratelimit::Limiter::in_process(),
            policies: Arc::new(agentry_ratelimit::Policies::default()),
            trusted_origins: Arc::new(Vec::new()),
        }
    }

    /// The session cookie's name: `__Host-` prefixed (and `Secure`) when served over TLS;
    /// browsers refuse `__Host-` cookies without `Secure`, which plain http cannot set.
    pub fn cookie_name(&self) -> &'static str {
        if self.platform.config.identity.secure_cookies() {
            "__Host-agentry_session"
        } else {
            "agentry_session"
        }
    }
}

/// Installs the Prometheus recorder for this process (once) and returns its handle.
pub fn install_metrics() -> PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = metrics_exporter_prometheus::PrometheusBuilder::new()
                .set_buckets(&[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0, 30.0, 60.0,
                ])
                .map(|b| b.build_recorder())
                .unwrap_or_else(|_| {
                    metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder()
                });
            let handle = recorder.handle();
            // Another recorder may already be installed (tests); the handle still renders.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// The whole application.
pub fn router(state: AppState) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    let (api, _) = openapi::api_router().split_for_parts();
    Router::new()
        .nest("/api/v1", api.fallback(middleware::api_not_found))
        .route("/api/v1/openapi.json", axum::routing::get(openapi::serve))
        .route("/healthz", axum::routing::get(routes::system::healthz))
        .route("/readyz", axum::routing::get(routes::system::readyz))
        .route("/metrics", axum::routing::get(routes::system::metrics))
        .merge(ui::router())
        .layer(axum::middleware::from_fn(error::error_body))
        .layer(axum::middleware::from_fn(middleware::record_request))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            middleware::panic_response,
        ))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}
