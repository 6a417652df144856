//! The organization's model routing: the model behind each tier (`tier:fast|standard|premium`
//! and `auto`) and named model aliases.

use crate::AppState;
use crate::error::{ApiError, ErrorEnvelope};
use crate::extract::ApiJson;
use crate::guard::{OrgGuard, perm};
use agentry_engine::service::audit::Change;
use agentry_engine::service::routing;
use axum::Json;
use axum::extract::State;
use serde_json::Value;

fn as_json(config: &routing::RoutingConfig) -> Result<Value, ApiError> {
    serde_json::to_value(config)
        .map_err(|e| agentry_engine::ServiceError::internal("routing settings", e).into())
}

/// The routing settings (`{tiers: {}, aliases: {}}` when none are set).
#[utoipa::path(get, path = "/routing", tag = "providers",
    responses((status = 200, body = Object)),
    security(("bearer" = ["providers:read"])))]
pub async fn get(
    State(state): State<AppState>,
    g: OrgGuard<perm::ProvidersRead>,
) -> Result<Json<Value>, ApiError> {
    let config = routing::get(&state.platform, g.scope).await?;
    Ok(Json(as_json(&config)?))
}

/// Replace the routing settings: `{tiers: {fast, standard, premium: "provider/model"},
/// aliases: {name: "provider/model"}, rules?}`. Every model must name a known provider.
#[utoipa::path(put, path = "/routing", tag = "providers", request_body = Object,
    responses((status = 200, body = Object), (status = 422, body = ErrorEnvelope)),
    security(("bearer" = ["providers:manage"])))]
pub async fn put(
    State(state): State<AppState>,
    g: OrgGuard<perm::ProvidersManage>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Json<Value>, ApiError> {
    let before = as_json(&routing::get(&state.platform, g.scope).await?)?;
    let config = routing::put(&state.platform, g.scope, body).await?;
    let after = as_json(&config)?;
    let change = Change::new("routing.update", "routing", g.scope.org_id.0)
        .before(before)
        .after(after.clone());
    crate::audit::record(&state, &g.caller, g.scope, change).await;
    Ok(Json(after))
}
