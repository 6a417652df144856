use crate::AppState;
use crate::dto::{ApiKeyOut, CreateApiKey, List};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extract::{ApiJson, Auth};
use agentry_core::ErrorCode;
use agentry_engine::service::api_keys;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

/// Create an API key. The key is in this response only; it is stored as an HMAC digest.
#[utoipa::path(post, path = "/api-keys", tag = "api-keys", request_body = CreateApiKey,
    responses((status = 201, body = ApiKeyOut), (status = 422, body = ErrorEnvelope)))]
pub async fn create(
    State(state): State<AppState>,
    Auth(who): Auth,
    ApiJson(body): ApiJson<CreateApiKey>,
) -> Result<(StatusCode, Json<ApiKeyOut>), ApiError> {
    let (row, key) = api_keys::create(&state.platform, who.scope, &body.name).await?;
    Ok((
        StatusCode::CREATED,
        Json(ApiKeyOut::from_row(row, Some(key))),
    ))
}

#[utoipa::path(get, path = "/api-keys", tag = "api-keys", responses((status = 200, body = List<ApiKeyOut>)))]
pub async fn list(
    State(state): State<AppState>,
    Auth(who): Auth,
) -> Result<Json<List<ApiKeyOut>>, ApiError> {
    let rows = api_keys::list(&state.platform, who.scope.org()).await?;
    Ok(Json(List {
        data: rows
            .into_iter()
            .map(|r| ApiKeyOut::from_row(r, None))
            .collect(),
        next_cursor: None,
    }))
}

/// Revoke a key; it stops working at once.
#[utoipa::path(delete, path = "/api-keys/{id}", tag = "api-keys",
    responses((status = 204), (status = 404, body = ErrorEnvelope)))]
pub async fn revoke(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = id.parse().map_err(|_| {
        ApiError::new(
            ErrorCode::ApiKeyNotFound,
            format!("no API key with id {id}"),
        )
    })?;
    api_keys::revoke(&state.platform, who.scope.org(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}
