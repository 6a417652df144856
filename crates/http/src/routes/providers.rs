use crate::AppState;
use crate::dto::{CreateProvider, List, Provider};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extract::{ApiJson, Auth};
use agentry_engine::service::providers::{self, ProviderInput};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

/// Register a model provider for the organization.
#[utoipa::path(post, path = "/providers", tag = "providers", request_body = CreateProvider,
    responses((status = 201, body = Provider), (status = 409, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn create(
    State(state): State<AppState>,
    Auth(who): Auth,
    ApiJson(body): ApiJson<CreateProvider>,
) -> Result<(StatusCode, Json<Provider>), ApiError> {
    let input = ProviderInput {
        name: body.name,
        kind: body.kind,
        base_url: body.base_url,
        api_key: body.api_key,
    };
    let info = providers::create(&state.platform, who.scope.org(), input).await?;
    Ok((StatusCode::CREATED, Json(info.into())))
}

/// List the providers the organization can use (its own and the instance's).
#[utoipa::path(get, path = "/providers", tag = "providers", responses((status = 200, body = List<Provider>)))]
pub async fn list(
    State(state): State<AppState>,
    Auth(who): Auth,
) -> Result<Json<List<Provider>>, ApiError> {
    let data = providers::list(&state.platform, who.scope.org()).await?;
    Ok(Json(List {
        data: data.into_iter().map(Provider::from).collect(),
        next_cursor: None,
    }))
}

#[utoipa::path(get, path = "/providers/{name}", tag = "providers",
    responses((status = 200, body = Provider), (status = 404, body = ErrorEnvelope)))]
pub async fn get(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(name): Path<String>,
) -> Result<Json<Provider>, ApiError> {
    Ok(Json(
        providers::get(&state.platform, who.scope.org(), &name)
            .await?
            .into(),
    ))
}

#[utoipa::path(delete, path = "/providers/{name}", tag = "providers",
    responses((status = 204), (status = 404, body = ErrorEnvelope)))]
pub async fn delete(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    providers::delete(&state.platform, who.scope.org(), &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
