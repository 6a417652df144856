//! The API error body and the one middleware that writes it. Handlers and extractors return
//! [`ApiError`]; [`error_body`] adds the request id and turns axum's own bare 404/405/413
//! answers into the same JSON shape, so every error a client sees looks alike.

use agentry_core::ErrorCode;
use agentry_engine::ServiceError;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub details: Option<Value>,
    /// Extra response headers (`Retry-After`, `RateLimit`, …).
    pub headers: Vec<(&'static str, String)>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: None,
            headers: Vec::new(),
        }
    }

    pub fn with_headers(mut self, headers: Vec<(&'static str, String)>) -> Self {
        self.headers = headers;
        self
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        Self {
            headers: if e.code == ErrorCode::ConcurrencyLimited {
                vec![("Retry-After", "5".to_string())]
            } else {
                Vec::new()
            },
            code: e.code,
            message: e.message,
            details: e.details,
        }
    }
}

/// `{"error": {...}}`
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// A stable code from the table in docs/errors.md.
    pub code: String,
    /// What went wrong and what to do about it.
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
    /// Quote this when asking for help: it finds the request in the server logs.
    pub request_id: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = status.into_response();
        for (name, value) in &self.headers {
            let name = axum::http::HeaderName::try_from(name.to_ascii_lowercase());
            if let (Ok(n), Ok(v)) = (name, HeaderValue::from_str(value)) {
                response.headers_mut().insert(n, v);
            }
        }
        response.extensions_mut().insert(self);
        response
    }
}

/// Renders [`ApiError`]s (and axum's bodiless rejections) as the JSON error body.
pub async fn error_body(request: Request, next: Next) -> Response {
    let request_id = crate::middleware::request_id(request.headers());
    let is_api = request.uri().path().starts_with("/api/");
    let method = request.method().clone();
    let mut response = next.run(request).await;
    let error = match response.extensions_mut().remove::<ApiError>() {
        Some(e) => e,
        None if is_api && response.headers().get(header::CONTENT_TYPE).is_none() => {
            match response.status() {
                StatusCode::NOT_FOUND => {
                    ApiError::new(ErrorCode::RouteNotFound, "no API route matches this path")
                }
                StatusCode::METHOD_NOT_ALLOWED => ApiError::new(
                    ErrorCode::MethodNotAllowed,
                    format!("this route does not accept {method}"),
                ),
                StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
                    ErrorCode::PayloadTooLarge,
                    "the request body is larger than the limit",
                ),
                _ => return response,
            }
        }
        None => return response,
    };
    if error.code == ErrorCode::Internal {
        tracing::error!(request_id, "internal error: {}", error.message);
    }
    let body = ErrorEnvelope {
        error: ErrorBody {
            code: error.code.as_str().to_string(),
            message: error.message,
            details: error.details,
            request_id,
        },
    };
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    let status = response.status();
    let mut out = Response::new(Body::from(bytes));
    *out.status_mut() = status;
    for (name, value) in response.headers() {
        if name != header::CONTENT_LENGTH && name != header::CONTENT_TYPE {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    out
}
