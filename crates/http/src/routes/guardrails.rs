//! The organization's guardrail policy. Agents add their own (`guardrails` in the agent spec);
//! runs apply both, the stricter action winning.

use crate::AppState;
use crate::error::{ApiError, ErrorEnvelope};
use crate::extract::ApiJson;
use crate::guard::{OrgGuard, perm};
use agentry_engine::service::audit::Change;
use agentry_engine::service::guardrails;
use axum::Json;
use axum::extract::State;
use serde_json::Value;

/// The organization's policy (`{}` when none is set).
#[utoipa::path(get, path = "/guardrails", tag = "guardrails",
    responses((status = 200, body = Object)),
    security(("bearer" = ["org:read"])))]
pub async fn get(
    State(state): State<AppState>,
    g: OrgGuard<perm::OrgRead>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(guardrails::get(&state.platform, g.scope).await?))
}

/// Replace the organization's policy: `{input: {injection, blocked_topics, max_chars},
/// output: {pii, images, blocked_topics}, tool_results: {mark_untrusted, injection}}`, each rule
/// with an action `block`, `redact` or `flag`. Invalid rules answer 422 naming the field.
#[utoipa::path(put, path = "/guardrails", tag = "guardrails", request_body = Object,
    responses((status = 200, body = Object), (status = 422, body = ErrorEnvelope)),
    security(("bearer" = ["guardrails:manage"])))]
pub async fn put(
    State(state): State<AppState>,
    g: OrgGuard<perm::GuardrailsManage>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Json<Value>, ApiError> {
    let before = guardrails::get(&state.platform, g.scope).await?;
    let policy = guardrails::put(&state.platform, g.scope, body).await?;
    let change = Change::new("guardrails.update", "guardrail_policy", g.scope.org_id.0)
        .before(before)
        .after(policy.clone());
    crate::audit::record(&state, &g.caller, g.scope, change).await;
    Ok(Json(policy))
}
