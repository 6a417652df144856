//! Extractors that reject with [`ApiError`]: JSON bodies, path ids and query strings.

use crate::error::ApiError;
use agentry_core::ErrorCode;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

/// A JSON body. Syntax errors → 400 `invalid_json`; wrong types, missing or unknown fields →
/// 422 `validation_failed` naming the field; wrong content type → 415; too large → 413.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::JsonDataError(e) => ApiError::new(
            ErrorCode::ValidationFailed,
            clean_serde_message(&e.body_text()),
        ),
        JsonRejection::JsonSyntaxError(e) => {
            ApiError::new(ErrorCode::InvalidJson, clean_serde_message(&e.body_text()))
        }
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "send the body as JSON with 'Content-Type: application/json'",
        ),
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(
                ErrorCode::PayloadTooLarge,
                "the request body is larger than the limit",
            )
        }
        other => ApiError::new(ErrorCode::InvalidRequest, other.body_text()),
    }
}

/// axum prefixes serde's message with its own words; keep serde's part, which names the field.
fn clean_serde_message(text: &str) -> String {
    text.split_once(": ")
        .map(|(_, rest)| rest.to_string())
        .unwrap_or_else(|| text.to_string())
}

/// A query string. Bad values → 400 `invalid_request`.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e: QueryRejection| ApiError::new(ErrorCode::InvalidRequest, e.body_text()))
    }
}

/// Parses a run id from the path; anything that is not a UUID is simply not found.
pub fn parse_run_id(raw: &str) -> Result<agentry_core::ids::RunId, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::new(ErrorCode::RunNotFound, format!("no run with id {raw}")))
}
