//! Approvals: the queue of decisions people owe workflow runs.

use crate::AppState;
use crate::dto::List;
use crate::dto_workflows::{ApprovalOut, DecisionIn};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extract::{ApiJson, ApiQuery};
use crate::guard::{WsGuard, perm};
use agentry_core::ErrorCode;
use agentry_engine::service::approvals::{self, Decide};
use agentry_engine::service::audit::Change;
use agentry_store::approvals::Filter;
use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

fn parse_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| {
        ApiError::new(
            ErrorCode::ApprovalNotFound,
            format!("no approval with id {raw}"),
        )
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ApprovalQuery {
    /// pending | approved | rejected | expired
    pub status: Option<String>,
    /// Only approvals of this workflow run.
    pub run_id: Option<String>,
    /// 1-200, default 100.
    pub limit: Option<u64>,
}

/// Approvals, oldest first (`status=pending` for the queue).
#[utoipa::path(get, path = "/approvals", tag = "approvals", params(ApprovalQuery),
    responses((status = 200, body = List<ApprovalOut>), (status = 400, body = ErrorEnvelope)),
    security(("bearer" = ["workflows:read"])))]
pub async fn list(
    State(state): State<AppState>,
    g: WsGuard<perm::WorkflowsRead>,
    ApiQuery(q): ApiQuery<ApprovalQuery>,
) -> Result<Json<List<ApprovalOut>>, ApiError> {
    if let Some(s) = q.status.as_deref()
        && !["pending", "approved", "rejected", "expired"].contains(&s)
    {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            format!("unknown status '{s}': use pending, approved, rejected or expired"),
        ));
    }
    let run_id = q
        .run_id
        .as_deref()
        .map(|r| {
            Uuid::parse_str(r)
                .map_err(|_| ApiError::new(ErrorCode::InvalidRequest, "run_id is not a run id"))
        })
        .transpose()?;
    let rows = approvals::list(
        &state.platform,
        g.scope,
        Filter {
            status: q.status,
            run_id,
            limit: q.limit.unwrap_or(100),
        },
    )
    .await?;
    Ok(Json(List {
        data: rows.into_iter().map(ApprovalOut::from).collect(),
        next_cursor: None,
    }))
}

#[utoipa::path(get, path = "/approvals/{id}", tag = "approvals",
    responses((status = 200, body = ApprovalOut), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = ["workflows:read"])))]
pub async fn get(
    State(state): State<AppState>,
    g: WsGuard<perm::WorkflowsRead>,
    Path(id): Path<String>,
) -> Result<Json<ApprovalOut>, ApiError> {
    Ok(Json(
        approvals::get(&state.platform, g.scope, parse_id(&id)?)
            .await?
            .into(),
    ))
}

/// Decide an approval: `approve` or `reject`, with an optional comment and state patch.
/// Single use: of concurrent decisions exactly one succeeds, the others get 409; after the
/// deadline, 410.
#[utoipa::path(post, path = "/approvals/{id}", tag = "approvals", request_body = DecisionIn,
    responses((status = 200, body = ApprovalOut), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope), (status = 410, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)),
    security(("bearer" = ["approvals:decide"])))]
pub async fn decide(
    State(state): State<AppState>,
    g: WsGuard<perm::ApprovalsDecide>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<DecisionIn>,
) -> Result<Json<ApprovalOut>, ApiError> {
    let id = parse_id(&id)?;
    let approved = match body.decision.as_str() {
        "approve" | "approved" => true,
        "reject" | "rejected" => false,
        other => {
            return Err(ApiError::new(
                ErrorCode::ValidationFailed,
                format!("decision: must be `approve` or `reject`, not `{other}`"),
            ));
        }
    };
    let row = approvals::decide(
        &state.platform,
        &g.caller.principal,
        g.scope,
        id,
        Decide {
            approved,
            comment: body.comment,
            state_patch: body.state_patch,
        },
    )
    .await?;
    let change = Change::new("approval.decide", "approval", id)
        .in_workspace(g.scope.workspace_id)
        .after(serde_json::json!({"status": row.status, "run_id": row.run_id}));
    crate::audit::record(&state, &g.caller, g.scope.org(), change).await;
    Ok(Json(row.into()))
}
