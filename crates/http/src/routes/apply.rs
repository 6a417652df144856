use crate::AppState;
use crate::error::{ApiError, ErrorEnvelope};
use crate::extract::ApiJson;
use crate::guard::{WsGuard, perm};
use agentry_engine::service::apply;
use agentry_engine::service::audit::Change;
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyRequest {
    /// Resources as in the YAML files: `{apiVersion: agentry/v1, kind: Provider|Agent, metadata: {name}, spec}`.
    #[schema(value_type = Vec<Object>)]
    pub resources: Vec<apply::Resource>,
    /// Only compute the plan.
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PlanEntry {
    pub kind: String,
    pub name: String,
    /// create | update | unchanged
    pub action: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApplyResponse {
    pub plan: Vec<PlanEntry>,
    pub applied: bool,
}

/// Apply declarative resources (what `agentry apply -f` sends). Idempotent.
#[utoipa::path(post, path = "/apply", tag = "apply", request_body = ApplyRequest,
    responses((status = 200, body = ApplyResponse), (status = 422, body = ErrorEnvelope)),
    security(("bearer" = ["agents:write"])))]
pub async fn apply(
    State(state): State<AppState>,
    g: WsGuard<perm::AgentsWrite>,
    ApiJson(body): ApiJson<ApplyRequest>,
) -> Result<Json<ApplyResponse>, ApiError> {
    // Providers belong to the org: applying them also needs providers:manage.
    if body.resources.iter().any(|r| r.kind == "Provider") {
        g.caller
            .principal
            .authorize_org(agentry_core::authz::Action::ProvidersManage)?;
    }
    let plan = apply::apply(&state.platform, g.scope, body.resources, body.dry_run).await?;
    if !body.dry_run {
        for p in plan.iter().filter(|p| p.action != "unchanged") {
            let change = Change::new("config.apply", "resource", format!("{}/{}", p.kind, p.name))
                .in_workspace(g.scope.workspace_id)
                .after(serde_json::json!({"kind": p.kind, "name": p.name, "action": p.action}));
            crate::audit::record(&state, &g.caller, g.scope.org(), change).await;
        }
    }
    Ok(Json(ApplyResponse {
        plan: plan
            .into_iter()
            .map(|p| PlanEntry {
                kind: p.kind,
                name: p.name,
                action: p.action.to_string(),
            })
            .collect(),
        applied: !body.dry_run,
    }))
}
