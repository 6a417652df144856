use crate::AppState;
use crate::dto::{CreateProvider, List, Provider};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extract::ApiJson;
use crate::guard::{OrgGuard, perm};
use agentry_engine::service::audit::Change;
use agentry_engine::service::providers::{self, ProviderInput};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

/// Register a model provider for the organization.
#[utoipa::path(post, path = "/providers", tag = "providers", request_body = CreateProvider,
    responses((status = 201, body = Provider), (status = 409, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)),
    security(("bearer" = ["providers:manage"])))]
pub async fn create(
    State(state): State<AppState>,
    g: OrgGuard<perm::ProvidersManage>,
    ApiJson(body): ApiJson<CreateProvider>,
) -> Result<(StatusCode, Json<Provider>), ApiError> {
    let (kind, base_url) = providers::with_preset(body.preset.as_deref(), body.kind, body.base_url)
        .map_err(|e| agentry_engine::ServiceError::validation(vec![e]))?;
    let input = ProviderInput {
        name: body.name,
        kind,
        base_url,
        api_key: body.api_key,
    };
    let info = providers::create(&state.platform, g.scope, input).await?;
    let change = Change::new("provider.create", "provider", &info.name).after(serde_json::json!({
        "name": info.name, "kind": info.kind, "base_url": info.base_url, "api_key": info.api_key_set.then_some("set")}));
    crate::audit::record(&state, &g.caller, g.scope, change).await;
    Ok((StatusCode::CREATED, Json(info.into())))
}

/// List the providers the organization can use (its own and the instance's).
#[utoipa::path(get, path = "/providers", tag = "providers", responses((status = 200, body = List<Provider>)),
    security(("bearer" = ["providers:read"])))]
pub async fn list(
    State(state): State<AppState>,
    g: OrgGuard<perm::ProvidersRead>,
) -> Result<Json<List<Provider>>, ApiError> {
    let data = providers::list(&state.platform, g.scope).await?;
    Ok(Json(List {
        data: data.into_iter().map(Provider::from).collect(),
        next_cursor: None,
    }))
}

#[utoipa::path(get, path = "/providers/{name}", tag = "providers",
    responses((status = 200, body = Provider), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = ["providers:read"])))]
pub async fn get(
    State(state): State<AppState>,
    g: OrgGuard<perm::ProvidersRead>,
    Path(name): Path<String>,
) -> Result<Json<Provider>, ApiError> {
    Ok(Json(
        providers::get(&state.platform, g.scope, &name)
            .await?
            .into(),
    ))
}

#[utoipa::path(delete, path = "/providers/{name}", tag = "providers",
    responses((status = 204), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = ["providers:manage"])))]
pub async fn delete(
    State(state): State<AppState>,
    g: OrgGuard<perm::ProvidersManage>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let before = providers::get(&state.platform, g.scope, &name).await?;
    providers::delete(&state.platform, g.scope, &name).await?;
    let change = Change::new("provider.delete", "provider", &name).before(serde_json::json!({
        "name": before.name, "kind": before.kind, "base_url": before.base_url}));
    crate::audit::record(&state, &g.caller, g.scope, change).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Circuit breakers of the org's models as this server sees them: `open` means calls are
/// skipped (and fall over) until a probe succeeds.
#[utoipa::path(get, path = "/provider-health", tag = "providers",
    responses((status = 200, body = List<ModelHealthOut>)),
    security(("bearer" = ["providers:read"])))]
pub async fn health(
    State(state): State<AppState>,
    g: OrgGuard<perm::ProvidersRead>,
) -> Json<List<ModelHealthOut>> {
    let data = providers::health(&state.platform, g.scope)
        .into_iter()
        .map(|h| ModelHealthOut {
            provider: h.provider,
            model: h.model,
            state: h.state.to_string(),
            calls: h.calls,
            failures: h.failures,
            consecutive_overloads: h.consecutive_overloads,
            retry_in_seconds: h.retry_in_seconds,
        })
        .collect();
    Json(List {
        data,
        next_cursor: None,
    })
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ModelHealthOut {
    pub provider: String,
    pub model: String,
    /// `closed`, `open` or `half_open`.
    pub state: String,
    /// Calls and failures counted in the current window.
    pub calls: u32,
    pub failures: u32,
    pub consecutive_overloads: u32,
    pub retry_in_seconds: Option<u64>,
}
