use crate::AppState;
use crate::dto::{List, Run, StartRun};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extract::{ApiJson, ApiQuery, parse_run_id};
use crate::guard::{WsGuard, perm};
use agentry_core::ErrorCode;
use agentry_core::run::RunStatus;
use agentry_engine::service::audit::Change;
use agentry_engine::service::runs;
use agentry_store::runs::RunFilter;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use std::time::Duration;
use utoipa::IntoParams;

/// How long `wait: true` waits before answering 202 with the run still in progress.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// Start a run. Answers 202 with the queued run, or with `wait: true` 200 with the finished run
/// (202 if it has not finished within 60 s). The same `Idempotency-Key` returns the same run.
#[utoipa::path(post, path = "/agents/{slug}/runs", tag = "runs", request_body = StartRun,
    params(("Idempotency-Key" = Option<String>, Header, description = "Starts at most one run per key")),
    responses((status = 202, body = Run), (status = 200, body = Run), (status = 404, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)),
    security(("bearer" = ["runs:execute"])))]
pub async fn create(
    State(state): State<AppState>,
    g: WsGuard<perm::RunsStart>,
    Path(slug): Path<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<StartRun>,
) -> Result<(StatusCode, Json<Run>), ApiError> {
    let idempotency_key = match headers.get("idempotency-key") {
        Some(v) => Some(
            v.to_str()
                .map_err(|_| {
                    ApiError::new(ErrorCode::InvalidRequest, "Idempotency-Key must be ASCII")
                })?
                .to_string(),
        ),
        None => None,
    };
    let (row, created) = runs::start(
        &state.platform,
        g.scope,
        runs::StartRun {
            agent_slug: slug,
            input: body.input,
            thread_id: body.thread_id,
            idempotency_key,
            started_by: g.caller.principal.actor.clone(),
            end_user: body.end_user,
        },
    )
    .await?;
    if created {
        let change = Change::new("run.start", "run", row.id)
            .in_workspace(g.scope.workspace_id)
            .after(serde_json::json!({"agent": row.agent_slug, "agent_version": row.agent_version, "thread_id": row.thread_id}));
        crate::audit::record(&state, &g.caller, g.scope.org(), change).await;
    }
    let row = if body.wait {
        runs::wait_for_end(&state.platform, g.scope, row.id.into(), MAX_WAIT).await?
    } else {
        row
    };
    let ended = row.status().is_terminal();
    let steps = if ended {
        Some(
            runs::get_with_steps(&state.platform, g.scope, row.id.into())
                .await?
                .1,
        )
    } else {
        None
    };
    let status = if ended && body.wait {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(Run::from_row(row, steps))))
}

/// A run with its steps.
#[utoipa::path(get, path = "/runs/{id}", tag = "runs",
    responses((status = 200, body = Run), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = ["runs:read"])))]
pub async fn get(
    State(state): State<AppState>,
    g: WsGuard<perm::RunsRead>,
    Path(id): Path<String>,
) -> Result<Json<Run>, ApiError> {
    let id = parse_run_id(&id)?;
    let (row, steps) = runs::get_with_steps(&state.platform, g.scope, id).await?;
    Ok(Json(Run::from_row(row, Some(steps))))
}

/// The member runs a crew manager or network router started (each with its own steps, events
/// and costs), oldest first.
#[utoipa::path(get, path = "/runs/{id}/children", tag = "runs",
    responses((status = 200, body = List<Run>), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = ["runs:read"])))]
pub async fn children(
    State(state): State<AppState>,
    g: WsGuard<perm::RunsRead>,
    Path(id): Path<String>,
) -> Result<Json<List<Run>>, ApiError> {
    let id = parse_run_id(&id)?;
    let rows = runs::children(&state.platform, g.scope, id).await?;
    Ok(Json(List {
        data: rows.into_iter().map(|r| Run::from_row(r, None)).collect(),
        next_cursor: None,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RunQuery {
    /// Only runs of this agent (slug).
    pub agent: Option<String>,
    /// queued | running | completed | failed | cancelled
    pub status: Option<String>,
    pub thread_id: Option<String>,
    /// 1-200, default 50.
    pub limit: Option<u64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Runs, newest first, with cursor pagination.
#[utoipa::path(get, path = "/runs", tag = "runs", params(RunQuery),
    responses((status = 200, body = List<Run>), (status = 400, body = ErrorEnvelope)),
    security(("bearer" = ["runs:read"])))]
pub async fn list(
    State(state): State<AppState>,
    g: WsGuard<perm::RunsRead>,
    ApiQuery(q): ApiQuery<RunQuery>,
) -> Result<Json<List<Run>>, ApiError> {
    let status = match q.status.as_deref() {
        Some(s) => Some(RunStatus::parse(s).ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidRequest,
                format!(
                    "unknown status '{s}': use queued, running, completed, failed or cancelled"
                ),
            )
        })?),
        None => None,
    };
    let before = match q.cursor.as_deref() {
        Some(c) => Some(c.parse().map_err(|_| {
            ApiError::new(
                ErrorCode::InvalidRequest,
                "cursor is not one this API returned",
            )
        })?),
        None => None,
    };
    let limit = q.limit.unwrap_or(50).clamp(1, runs::MAX_LIST_LIMIT);
    let rows = runs::list(
        &state.platform,
        g.scope,
        RunFilter {
            agent_slug: q.agent,
            status,
            thread_id: q.thread_id,
            before,
            limit,
        },
    )
    .await?;
    let next_cursor = (rows.len() as u64 == limit)
        .then(|| rows.last().map(|r| r.id.to_string()))
        .flatten();
    Ok(Json(List {
        data: rows.into_iter().map(|r| Run::from_row(r, None)).collect(),
        next_cursor,
    }))
}

/// Cancel a run: at once if queued, at its next step if running.
#[utoipa::path(post, path = "/runs/{id}/cancel", tag = "runs",
    responses((status = 202, body = Run), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)),
    security(("bearer" = ["runs:execute"])))]
pub async fn cancel(
    State(state): State<AppState>,
    g: WsGuard<perm::RunsCancel>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Run>), ApiError> {
    let id = parse_run_id(&id)?;
    let row = runs::cancel(&state.platform, g.scope, id).await?;
    let change = Change::new("run.cancel", "run", row.id).in_workspace(g.scope.workspace_id);
    crate::audit::record(&state, &g.caller, g.scope.org(), change).await;
    Ok((StatusCode::ACCEPTED, Json(Run::from_row(row, None))))
}
