use crate::AppState;
use crate::dto::{AgentInput, AgentOut, List};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extract::ApiJson;
use crate::guard::{WsGuard, perm};
use agentry_engine::service::agents;
use agentry_engine::service::audit::Change;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

/// Create an agent (version 1).
#[utoipa::path(post, path = "/agents", tag = "agents", request_body = AgentInput,
    responses((status = 201, body = AgentOut), (status = 409, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)),
    security(("bearer" = ["agents:write"])))]
pub async fn create(
    State(state): State<AppState>,
    g: WsGuard<perm::AgentsWrite>,
    ApiJson(body): ApiJson<AgentInput>,
) -> Result<(StatusCode, Json<AgentOut>), ApiError> {
    let agent = agents::create(&state.platform, g.scope, body.into()).await?;
    let after = serde_json::to_value(&agent.spec).unwrap_or_default();
    let change = Change::new("agent.create", "agent", &agent.spec.slug)
        .in_workspace(g.scope.workspace_id)
        .after(after);
    crate::audit::record(&state, &g.caller, g.scope.org(), change).await;
    Ok((StatusCode::CREATED, Json(agent.into())))
}

#[utoipa::path(get, path = "/agents", tag = "agents", responses((status = 200, body = List<AgentOut>)),
    security(("bearer" = ["agents:read"])))]
pub async fn list(
    State(state): State<AppState>,
    g: WsGuard<perm::AgentsRead>,
) -> Result<Json<List<AgentOut>>, ApiError> {
    let data = agents::list(&state.platform, g.scope).await?;
    Ok(Json(List {
        data: data.into_iter().map(AgentOut::from).collect(),
        next_cursor: None,
    }))
}

#[utoipa::path(get, path = "/agents/{slug}", tag = "agents",
    responses((status = 200, body = AgentOut), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = ["agents:read"])))]
pub async fn get(
    State(state): State<AppState>,
    g: WsGuard<perm::AgentsRead>,
    Path(slug): Path<String>,
) -> Result<Json<AgentOut>, ApiError> {
    Ok(Json(
        agents::get(&state.platform, g.scope, &slug).await?.into(),
    ))
}

/// Replace the agent's definition: writes a new immutable version.
#[utoipa::path(put, path = "/agents/{slug}", tag = "agents", request_body = AgentInput,
    responses((status = 200, body = AgentOut), (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)),
    security(("bearer" = ["agents:write"])))]
pub async fn update(
    State(state): State<AppState>,
    g: WsGuard<perm::AgentsWrite>,
    Path(slug): Path<String>,
    ApiJson(body): ApiJson<AgentInput>,
) -> Result<Json<AgentOut>, ApiError> {
    let before = agents::get(&state.platform, g.scope, &slug).await?;
    let agent = agents::update(&state.platform, g.scope, &slug, body.into()).await?;
    let change = Change::new("agent.update", "agent", &slug)
        .in_workspace(g.scope.workspace_id)
        .before(serde_json::to_value(&before.spec).unwrap_or_default())
        .after(serde_json::to_value(&agent.spec).unwrap_or_default());
    crate::audit::record(&state, &g.caller, g.scope.org(), change).await;
    Ok(Json(agent.into()))
}

/// Delete the agent. Its runs stay readable; runs in flight finish with their version.
#[utoipa::path(delete, path = "/agents/{slug}", tag = "agents",
    responses((status = 204), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = ["agents:write"])))]
pub async fn delete(
    State(state): State<AppState>,
    g: WsGuard<perm::AgentsWrite>,
    Path(slug): Path<String>,
) -> Result<StatusCode, ApiError> {
    let before = agents::get(&state.platform, g.scope, &slug).await?;
    agents::delete(&state.platform, g.scope, &slug).await?;
    let change = Change::new("agent.delete", "agent", &slug)
        .in_workspace(g.scope.workspace_id)
        .before(serde_json::to_value(&before.spec).unwrap_or_default());
    crate::audit::record(&state, &g.caller, g.scope.org(), change).await;
    Ok(StatusCode::NO_CONTENT)
}
