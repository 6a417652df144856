//! The caller's organization, its workspaces, and the owner's export and deletion.

use crate::AppState;
use crate::dto::List;
use crate::dto_identity::{NameInput, OrgOut, OrgTaskOut, WorkspaceOut};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extract::ApiJson;
use crate::guard::{OrgGuard, perm};
use agentry_core::ErrorCode;
use agentry_core::ids::WorkspaceId;
use agentry_engine::service::audit::Change;
use agentry_engine::service::orgs;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

fn parse_id(raw: &str, code: ErrorCode, what: &str) -> Result<uuid::Uuid, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::new(code, format!("no {what} with id {raw}")))
}

#[utoipa::path(get, path = "/org", tag = "org", responses((status = 200, body = OrgOut)),
    security(("bearer" = ["org:read"])))]
pub async fn get(
    State(state): State<AppState>,
    g: OrgGuard<perm::OrgRead>,
) -> Result<Json<OrgOut>, ApiError> {
    let o = orgs::get(&state.platform, g.scope).await?;
    Ok(Json(OrgOut {
        id: o.id.to_string(),
        name: o.name,
        created_at: o.created_at,
    }))
}

/// Rename the organization.
#[utoipa::path(patch, path = "/org", tag = "org", request_body = NameInput,
    responses((status = 200, body = OrgOut), (status = 422, body = ErrorEnvelope)),
    security(("bearer" = ["org:manage"])))]
pub async fn rename(
    State(state): State<AppState>,
    g: OrgGuard<perm::OrgManage>,
    ApiJson(body): ApiJson<NameInput>,
) -> Result<Json<OrgOut>, ApiError> {
    let before = orgs::get(&state.platform, g.scope).await?;
    let o = orgs::rename(&state.platform, g.scope, &body.name).await?;
    let change = Change::new("org.rename", "org", o.id)
        .before(serde_json::json!({"name": before.name}))
        .after(serde_json::json!({"name": o.name}));
    crate::audit::record(&state, &g.caller, g.scope, change).await;
    Ok(Json(OrgOut {
        id: o.id.to_string(),
        name: o.name,
        created_at: o.created_at,
    }))
}

/// Queues an org task and records who asked for it (before it runs: a deletion leaves nothing
/// to record against).
async fn queue_task(
    state: &AppState,
    g: &OrgGuard<perm::OrgManage>,
    kind: &str,
    action: &'static str,
) -> Result<(StatusCode, Json<OrgTaskOut>), ApiError> {
    let requested_by = g.caller.principal.actor.id();
    let task = orgs::request_task(&state.platform, g.scope, kind, requested_by).await?;
    let change = Change::new(action, "org_task", task.id);
    crate::audit::record(state, &g.caller, g.scope, change).await;
    Ok((StatusCode::ACCEPTED, Json(task.into())))
}

/// Export the organization (configuration and members; never secrets). 202 with a task to poll.
#[utoipa::path(post, path = "/org/export", tag = "org", responses((status = 202, body = OrgTaskOut)),
    security(("bearer" = ["org:manage"])))]
pub async fn export(
    State(state): State<AppState>,
    g: OrgGuard<perm::OrgManage>,
) -> Result<(StatusCode, Json<OrgTaskOut>), ApiError> {
    queue_task(&state, &g, "export", "org.export").await
}

/// Delete the organization and everything in it. 202 with a task to poll.
#[utoipa::path(delete, path = "/org", tag = "org", responses((status = 202, body = OrgTaskOut)),
    security(("bearer" = ["org:manage"])))]
pub async fn delete(
    State(state): State<AppState>,
    g: OrgGuard<perm::OrgManage>,
) -> Result<(StatusCode, Json<OrgTaskOut>), ApiError> {
    queue_task(&state, &g, "delete", "org.delete").await
}

/// An export or deletion task: its status and, for exports, the result.
#[utoipa::path(get, path = "/org/tasks/{id}", tag = "org",
    responses((status = 200, body = OrgTaskOut), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = ["org:manage"])))]
pub async fn task(
    State(state): State<AppState>,
    g: OrgGuard<perm::OrgManage>,
    Path(id): Path<String>,
) -> Result<Json<OrgTaskOut>, ApiError> {
    let id = parse_id(&id, ErrorCode::RouteNotFound, "task")?;
    Ok(Json(orgs::task(&state.platform, g.scope, id).await?.into()))
}

#[utoipa::path(get, path = "/workspaces", tag = "org", responses((status = 200, body = List<WorkspaceOut>)),
    security(("bearer" = ["org:read"])))]
pub async fn workspaces(
    State(state): State<AppState>,
    g: OrgGuard<perm::OrgRead>,
) -> Result<Json<List<WorkspaceOut>>, ApiError> {
    let rows = orgs::workspaces(&state.platform, g.scope).await?;
    Ok(Json(List {
        data: rows.into_iter().map(WorkspaceOut::from).collect(),
        next_cursor: None,
    }))
}

#[utoipa::path(post, path = "/workspaces", tag = "org", request_body = NameInput,
    responses((status = 201, body = WorkspaceOut), (status = 422, body = ErrorEnvelope)),
    security(("bearer" = ["workspaces:manage"])))]
pub async fn create_workspace(
    State(state): State<AppState>,
    g: OrgGuard<perm::WorkspacesManage>,
    ApiJson(body): ApiJson<NameInput>,
) -> Result<(StatusCode, Json<WorkspaceOut>), ApiError> {
    let w = orgs::create_workspace(&state.platform, g.scope, &body.name).await?;
    let change = Change::new("workspace.create", "workspace", w.id)
        .in_workspace(WorkspaceId(w.id))
        .after(serde_json::json!({"name": w.name}));
    crate::audit::record(&state, &g.caller, g.scope, change).await;
    Ok((StatusCode::CREATED, Json(w.into())))
}

#[utoipa::path(delete, path = "/workspaces/{id}", tag = "org",
    responses((status = 204), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = ["workspaces:manage"])))]
pub async fn delete_workspace(
    State(state): State<AppState>,
    g: OrgGuard<perm::WorkspacesManage>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = WorkspaceId(parse_id(&id, ErrorCode::WorkspaceNotFound, "workspace")?);
    let before = orgs::workspace(&state.platform, g.scope, id).await?;
    orgs::delete_workspace(&state.platform, g.scope, id).await?;
    let change = Change::new("workspace.delete", "workspace", id.0)
        .in_workspace(id)
        .before(serde_json::json!({"name": before.name}));
    crate::audit::record(&state, &g.caller, g.scope, change).await;
    Ok(StatusCode::NO_CONTENT)
}
