use crate::AppState;
use crate::error::{ApiError, ErrorEnvelope};
use crate::extract::{ApiJson, Auth};
use agentry_engine::service::apply;
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
    responses((status = 200, body = ApplyResponse), (status = 422, body = ErrorEnvelope)))]
pub async fn apply(
    State(state): State<AppState>,
    Auth(who): Auth,
    ApiJson(body): ApiJson<ApplyRequest>,
) -> Result<Json<ApplyResponse>, ApiError> {
    let plan = apply::apply(&state.platform, who.scope, body.resources, body.dry_run).await?;
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
