use crate::AppState;
use crate::dto::{ApiKeyOut, CreateApiKey, List};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extract::ApiJson;
use crate::guard::{OrgGuard, perm};
use agentry_core::ErrorCode;
use agentry_core::authz::Role;
use agentry_core::ids::WorkspaceId;
use agentry_engine::service::api_keys::{self, KeySpec};
use agentry_engine::service::audit::Change;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

/// Create an API key (org- or workspace-scoped, with a role and optional expiry). The key is in
/// this response only; it is stored as a SHA-256 digest.
#[utoipa::path(post, path = "/api-keys", tag = "api-keys", request_body = CreateApiKey,
    responses((status = 201, body = ApiKeyOut), (status = 403, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)),
    security(("bearer" = ["api_keys:manage"])))]
pub async fn create(
    State(state): State<AppState>,
    g: OrgGuard<perm::ApiKeysManage>,
    ApiJson(body): ApiJson<CreateApiKey>,
) -> Result<(StatusCode, Json<ApiKeyOut>), ApiError> {
    let role = match body.role.as_deref() {
        None => Role::Member,
        Some(r) => Role::parse(r).ok_or_else(|| {
            ApiError::new(
                ErrorCode::ValidationFailed,
                "role: must be one of owner, admin, member, viewer",
            )
        })?,
    };
    let (row, key) = api_keys::create(
        &state.platform,
        g.scope,
        g.caller.principal.org_role,
        KeySpec {
            name: &body.name,
            role,
            workspace: body.workspace_id.map(WorkspaceId),
            expires_at: body.expires_at,
            created_by: g.caller.principal.actor.user_id(),
        },
    )
    .await?;
    let change = Change::new("api_key.create", "api_key", row.id).after(serde_json::json!({
        "name": row.name, "prefix": row.prefix, "role": row.role, "scope": row.scope,
        "workspace_id": row.workspace_id, "expires_at": row.expires_at}));
    crate::audit::record(&state, &g.caller, g.scope, change).await;
    Ok((
        StatusCode::CREATED,
        Json(ApiKeyOut::from_row(row, Some(key))),
    ))
}

#[utoipa::path(get, path = "/api-keys", tag = "api-keys", responses((status = 200, body = List<ApiKeyOut>)),
    security(("bearer" = ["api_keys:manage"])))]
pub async fn list(
    State(state): State<AppState>,
    g: OrgGuard<perm::ApiKeysManage>,
) -> Result<Json<List<ApiKeyOut>>, ApiError> {
    let rows = api_keys::list(&state.platform, g.scope).await?;
    Ok(Json(List {
        data: rows
            .into_iter()
            .map(|r| ApiKeyOut::from_row(r, None))
            .collect(),
        next_cursor: None,
    }))
}

/// Revoke a key; it stops working at once, on every replica.
#[utoipa::path(delete, path = "/api-keys/{id}", tag = "api-keys",
    responses((status = 204), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = ["api_keys:manage"])))]
pub async fn revoke(
    State(state): State<AppState>,
    g: OrgGuard<perm::ApiKeysManage>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = id.parse().map_err(|_| {
        ApiError::new(
            ErrorCode::ApiKeyNotFound,
            format!("no API key with id {id}"),
        )
    })?;
    let before = api_keys::revoke(&state.platform, g.scope, id).await?;
    let change = Change::new("api_key.revoke", "api_key", id).before(serde_json::json!({
        "name": before.name, "prefix": before.prefix, "role": before.role}));
    crate::audit::record(&state, &g.caller, g.scope, change).await;
    Ok(StatusCode::NO_CONTENT)
}
