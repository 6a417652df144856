//! Configuring OpenID Connect sign-in for the organization.

use crate::AppState;
use crate::dto::List;
use crate::dto_identity::{CreateSsoProvider, SsoProviderOut};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extract::ApiJson;
use crate::guard::{OrgGuard, perm};
use crate::routes::auth::sso_redirect_uri;
use agentry_core::ErrorCode;
use agentry_engine::service::audit::Change;
use agentry_engine::service::sso::{self, SsoInput};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

/// Add an OpenID Connect provider. Its discovery document is fetched (through the SSRF guard)
/// to check it; the client secret is stored encrypted and never returned.
#[utoipa::path(post, path = "/sso-providers", tag = "sso", request_body = CreateSsoProvider,
    responses((status = 201, body = SsoProviderOut), (status = 409, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope), (status = 502, body = ErrorEnvelope)),
    security(("bearer" = ["sso:manage"])))]
pub async fn create(
    State(state): State<AppState>,
    g: OrgGuard<perm::SsoManage>,
    ApiJson(body): ApiJson<CreateSsoProvider>,
) -> Result<(StatusCode, Json<SsoProviderOut>), ApiError> {
    let row = sso::create(
        &state.platform,
        g.scope,
        SsoInput {
            slug: body.slug,
            display_name: body.display_name,
            discovery_url: body.discovery_url,
            client_id: body.client_id,
            client_secret: body.client_secret,
            auto_join_role: body.auto_join_role,
        },
    )
    .await?;
    let change =
        Change::new("sso_provider.create", "sso_provider", row.id).after(serde_json::json!({
        "slug": row.slug, "display_name": row.display_name, "discovery_url": row.discovery_url,
        "client_id": row.client_id, "client_secret": "set", "auto_join_role": row.auto_join_role}));
    crate::audit::record(&state, &g.caller, g.scope, change).await;
    Ok((
        StatusCode::CREATED,
        Json(SsoProviderOut::from_row(row, sso_redirect_uri(&state))),
    ))
}

#[utoipa::path(get, path = "/sso-providers", tag = "sso", responses((status = 200, body = List<SsoProviderOut>)),
    security(("bearer" = ["sso:manage"])))]
pub async fn list(
    State(state): State<AppState>,
    g: OrgGuard<perm::SsoManage>,
) -> Result<Json<List<SsoProviderOut>>, ApiError> {
    let rows = sso::list(&state.platform, g.scope).await?;
    Ok(Json(List {
        data: rows
            .into_iter()
            .map(|r| SsoProviderOut::from_row(r, sso_redirect_uri(&state)))
            .collect(),
        next_cursor: None,
    }))
}

#[utoipa::path(delete, path = "/sso-providers/{id}", tag = "sso",
    responses((status = 204), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = ["sso:manage"])))]
pub async fn delete(
    State(state): State<AppState>,
    g: OrgGuard<perm::SsoManage>,
    Path(raw): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id: uuid::Uuid = raw.parse().map_err(|_| {
        ApiError::new(
            ErrorCode::SsoProviderNotFound,
            format!("no sign-in provider with id {raw}"),
        )
    })?;
    sso::delete(&state.platform, g.scope, id).await?;
    crate::audit::record(
        &state,
        &g.caller,
        g.scope,
        Change::new("sso_provider.delete", "sso_provider", id),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}
