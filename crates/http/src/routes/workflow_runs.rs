//! Workflow runs: start, read, follow, cancel, retry (dead letters), re-run from a node.

use crate::AppState;
use crate::dto::List;
use crate::dto_workflows::{RerunIn, StartWorkflowRun, WorkflowRunOut};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extract::{ApiJson, ApiQuery};
use crate::guard::{WsGuard, perm};
use crate::routes::events::{RunKind, last_event_id, run_event_stream};
use agentry_core::ErrorCode;
use agentry_engine::service::audit::Change;
use agentry_engine::service::workflow_runs::{self, Rerun};
use agentry_store::workflow_runs::RunFilter;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, Sse};
use futures_util::Stream;
use serde::Deserialize;
use std::convert::Infallible;
use utoipa::IntoParams;
use uuid::Uuid;

fn parse_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| {
        ApiError::new(
            ErrorCode::WorkflowRunNotFound,
            format!("no workflow run with id {raw}"),
        )
    })
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    headers
        .get("idempotency-key")
        .map(|v| {
            v.to_str().map(str::to_owned).map_err(|_| {
                ApiError::new(ErrorCode::InvalidRequest, "Idempotency-Key must be ASCII")
            })
        })
        .transpose()
}

/// Start a run of the workflow's latest version (or `version`). Answers 202 with the queued
/// run; the same `Idempotency-Key` returns the same run.
#[utoipa::path(post, path = "/workflows/{slug}/runs", tag = "workflow-runs", request_body = StartWorkflowRun,
    params(("Idempotency-Key" = Option<String>, Header, description = "Starts at most one run per key")),
    responses((status = 202, body = WorkflowRunOut), (status = 404, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)),
    security(("bearer" = ["workflows:run"])))]
pub async fn start(
    State(state): State<AppState>,
    g: WsGuard<perm::WorkflowsRun>,
    Path(slug): Path<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<StartWorkflowRun>,
) -> Result<(StatusCode, Json<WorkflowRunOut>), ApiError> {
    let (row, created) = workflow_runs::start(
        &state.platform,
        g.scope,
        workflow_runs::StartWorkflowRun {
            slug,
            input: body.input,
            version: body.version,
            idempotency_key: idempotency_key(&headers)?,
            started_by: g.caller.principal.actor.clone(),
            trigger: None,
        },
    )
    .await?;
    if created {
        let change = Change::new("workflow_run.start", "workflow_run", row.id)
            .in_workspace(g.scope.workspace_id)
            .after(
                serde_json::json!({"workflow": row.workflow_slug, "version": row.workflow_version}),
            );
        crate::audit::record(&state, &g.caller, g.scope.org(), change).await;
    }
    Ok((StatusCode::ACCEPTED, Json(row.into())))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RunQuery {
    /// Only runs of this workflow (slug).
    pub workflow: Option<String>,
    /// queued | running | waiting | completed | failed | cancelled
    pub status: Option<String>,
    /// 1-200, default 50.
    pub limit: Option<u64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Workflow runs, newest first. `status=failed` lists the dead letters.
#[utoipa::path(get, path = "/workflow-runs", tag = "workflow-runs", params(RunQuery),
    responses((status = 200, body = List<WorkflowRunOut>), (status = 400, body = ErrorEnvelope)),
    security(("bearer" = ["workflows:read"])))]
pub async fn list(
    State(state): State<AppState>,
    g: WsGuard<perm::WorkflowsRead>,
    ApiQuery(q): ApiQuery<RunQuery>,
) -> Result<Json<List<WorkflowRunOut>>, ApiError> {
    use agentry_store::workflow_runs as st;
    if let Some(s) = q.status.as_deref()
        && ![
            st::QUEUED,
            st::RUNNING,
            st::WAITING,
            st::COMPLETED,
            st::FAILED,
            st::CANCELLED,
        ]
        .contains(&s)
    {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            format!(
                "unknown status '{s}': use queued, running, waiting, completed, failed or cancelled"
            ),
        ));
    }
    let before = q
        .cursor
        .as_deref()
        .map(|c| {
            Uuid::parse_str(c).map_err(|_| {
                ApiError::new(
                    ErrorCode::InvalidRequest,
                    "cursor is not one this API returned",
                )
            })
        })
        .transpose()?;
    let limit = q
        .limit
        .unwrap_or(50)
        .clamp(1, workflow_runs::MAX_LIST_LIMIT);
    let rows = workflow_runs::list(
        &state.platform,
        g.scope,
        RunFilter {
            workflow_slug: q.workflow,
            status: q.status,
            before,
            limit,
        },
    )
    .await?;
    let next_cursor = (rows.len() as u64 == limit)
        .then(|| rows.last().map(|r| r.id.to_string()))
        .flatten();
    Ok(Json(List {
        data: rows.into_iter().map(WorkflowRunOut::from).collect(),
        next_cursor,
    }))
}

/// A run with every node execution (status, input, output, attempts, duration) and its state.
#[utoipa::path(get, path = "/workflow-runs/{id}", tag = "workflow-runs",
    responses((status = 200, body = WorkflowRunOut), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = ["workflows:read"])))]
pub async fn get(
    State(state): State<AppState>,
    g: WsGuard<perm::WorkflowsRead>,
    Path(id): Path<String>,
) -> Result<Json<WorkflowRunOut>, ApiError> {
    let view = workflow_runs::view(&state.platform, g.scope, parse_id(&id)?).await?;
    Ok(Json(view.into()))
}

/// Follow a run's events (SSE): node.started, node.completed, node.failed, run.waiting,
/// approval.requested, approval.decided, run.completed, run.failed, run.cancelled. Resume with
/// `Last-Event-ID`.
#[utoipa::path(get, path = "/workflow-runs/{id}/events", tag = "workflow-runs",
    params(("Last-Event-ID" = Option<i64>, Header, description = "Resume after this event id")),
    responses((status = 200, content_type = "text/event-stream", description = "the run's events"),
        (status = 404, body = ErrorEnvelope)),
    security(("bearer" = ["workflows:read"])))]
pub async fn events(
    State(state): State<AppState>,
    g: WsGuard<perm::WorkflowsRead>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let id = parse_id(&id)?;
    let after = last_event_id(&headers)?;
    run_event_stream(
        state.platform.clone(),
        g.scope,
        RunKind::Workflow,
        id.into(),
        after,
    )
    .await
}

/// Cancel a run (a parked one at once, an executing one at its next commit).
#[utoipa::path(post, path = "/workflow-runs/{id}/cancel", tag = "workflow-runs",
    responses((status = 200, body = WorkflowRunOut), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)),
    security(("bearer" = ["workflows:run"])))]
pub async fn cancel(
    State(state): State<AppState>,
    g: WsGuard<perm::WorkflowsRun>,
    Path(id): Path<String>,
) -> Result<Json<WorkflowRunOut>, ApiError> {
    let id = parse_id(&id)?;
    let row = workflow_runs::cancel(&state.platform, g.scope, id).await?;
    let change =
        Change::new("workflow_run.cancel", "workflow_run", id).in_workspace(g.scope.workspace_id);
    crate::audit::record(&state, &g.caller, g.scope.org(), change).await;
    Ok(Json(row.into()))
}

/// Retry a dead-lettered run from its failed node (once).
#[utoipa::path(post, path = "/workflow-runs/{id}/retry", tag = "workflow-runs",
    responses((status = 202, body = WorkflowRunOut), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)),
    security(("bearer" = ["workflows:run"])))]
pub async fn retry(
    State(state): State<AppState>,
    g: WsGuard<perm::WorkflowsRun>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<WorkflowRunOut>), ApiError> {
    let id = parse_id(&id)?;
    let row = workflow_runs::retry(&state.platform, g.scope, id).await?;
    let change =
        Change::new("workflow_run.retry", "workflow_run", id).in_workspace(g.scope.workspace_id);
    crate::audit::record(&state, &g.caller, g.scope.org(), change).await;
    Ok((StatusCode::ACCEPTED, Json(row.into())))
}

/// Start a new run from a chosen node with an edited state; the original is untouched.
#[utoipa::path(post, path = "/workflow-runs/{id}/rerun", tag = "workflow-runs", request_body = RerunIn,
    responses((status = 202, body = WorkflowRunOut), (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)),
    security(("bearer" = ["workflows:run"])))]
pub async fn rerun(
    State(state): State<AppState>,
    g: WsGuard<perm::WorkflowsRun>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RerunIn>,
) -> Result<(StatusCode, Json<WorkflowRunOut>), ApiError> {
    let id = parse_id(&id)?;
    let row = workflow_runs::rerun(
        &state.platform,
        g.scope,
        id,
        Rerun {
            from_node: body.from_node,
            state: body.state,
            started_by: g.caller.principal.actor.clone(),
        },
    )
    .await?;
    let change = Change::new("workflow_run.rerun", "workflow_run", row.id)
        .in_workspace(g.scope.workspace_id)
        .after(serde_json::json!({"rerun_of": id}));
    crate::audit::record(&state, &g.caller, g.scope.org(), change).await;
    Ok((StatusCode::ACCEPTED, Json(row.into())))
}
