use crate::AppState;
use crate::dto::{AgentInput, AgentOut, List};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extract::{ApiJson, Auth};
use agentry_engine::service::agents;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

/// Create an agent (version 1).
#[utoipa::path(post, path = "/agents", tag = "agents", request_body = AgentInput,
    responses((status = 201, body = AgentOut), (status = 409, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn create(
    State(state): State<AppState>,
    Auth(who): Auth,
    ApiJson(body): ApiJson<AgentInput>,
) -> Result<(StatusCode, Json<AgentOut>), ApiError> {
    let agent = agents::create(&state.platform, who.scope, body.into()).await?;
    Ok((StatusCode::CREATED, Json(agent.into())))
}

#[utoipa::path(get, path = "/agents", tag = "agents", responses((status = 200, body = List<AgentOut>)))]
pub async fn list(
    State(state): State<AppState>,
    Auth(who): Auth,
) -> Result<Json<List<AgentOut>>, ApiError> {
    let data = agents::list(&state.platform, who.scope).await?;
    Ok(Json(List {
        data: data.into_iter().map(AgentOut::from).collect(),
        next_cursor: None,
    }))
}

#[utoipa::path(get, path = "/agents/{slug}", tag = "agents",
    responses((status = 200, body = AgentOut), (status = 404, body = ErrorEnvelope)))]
pub async fn get(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(slug): Path<String>,
) -> Result<Json<AgentOut>, ApiError> {
    Ok(Json(
        agents::get(&state.platform, who.scope, &slug).await?.into(),
    ))
}

/// Replace the agent's definition: writes a new immutable version.
#[utoipa::path(put, path = "/agents/{slug}", tag = "agents", request_body = AgentInput,
    responses((status = 200, body = AgentOut), (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn update(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(slug): Path<String>,
    ApiJson(body): ApiJson<AgentInput>,
) -> Result<Json<AgentOut>, ApiError> {
    let agent = agents::update(&state.platform, who.scope, &slug, body.into()).await?;
    Ok(Json(agent.into()))
}

/// Delete the agent. Its runs stay readable; runs in flight finish with their version.
#[utoipa::path(delete, path = "/agents/{slug}", tag = "agents",
    responses((status = 204), (status = 404, body = ErrorEnvelope)))]
pub async fn delete(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(slug): Path<String>,
) -> Result<StatusCode, ApiError> {
    agents::delete(&state.platform, who.scope, &slug).await?;
    Ok(StatusCode::NO_CONTENT)
}
