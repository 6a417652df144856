//! Budgets: limits on spend per org, workspace, agent, API key or end user, enforced before
//! every model call.

use crate::AppState;
use crate::dto::List;
use crate::dto_money::{BudgetIn, BudgetOut};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extract::ApiJson;
use crate::guard::{OrgGuard, perm};
use agentry_core::ErrorCode;
use agentry_engine::service::audit::Change;
use agentry_engine::service::budgets;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::json;

fn budget_id(id: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(id)
        .map_err(|_| ApiError::new(ErrorCode::BudgetNotFound, "no budget with this id"))
}

/// The audit snapshot of a budget (the webhook secret is never in it).
fn snapshot(b: &BudgetOut) -> serde_json::Value {
    json!({"name": b.name, "scope": b.scope, "period": b.period, "timezone": b.timezone,
           "unit": b.unit, "limit": b.limit, "thresholds": b.thresholds,
           "notify_url": b.notify_url, "notify_email": b.notify_email})
}

/// Create a budget. With `notify_url`, the answer carries the webhook secret once.
#[utoipa::path(post, path = "/budgets", tag = "costs", request_body = BudgetIn,
    responses((status = 201, body = BudgetOut), (status = 422, body = ErrorEnvelope)),
    security(("bearer" = ["budgets:manage"])))]
pub async fn create(
    State(state): State<AppState>,
    g: OrgGuard<perm::BudgetsManage>,
    ApiJson(body): ApiJson<BudgetIn>,
) -> Result<(StatusCode, Json<BudgetOut>), ApiError> {
    let info = budgets::create(&state.platform, g.scope, body.into()).await?;
    let out = BudgetOut::new(info, None);
    let change = Change::new("budget.create", "budget", &out.id).after(snapshot(&out));
    crate::audit::record(&state, &g.caller, g.scope, change).await;
    Ok((StatusCode::CREATED, Json(out)))
}

/// Budgets with their current period's spend.
#[utoipa::path(get, path = "/budgets", tag = "costs",
    responses((status = 200, body = List<BudgetOut>)),
    security(("bearer" = ["costs:read"])))]
pub async fn list(
    State(state): State<AppState>,
    g: OrgGuard<perm::CostsRead>,
) -> Result<Json<List<BudgetOut>>, ApiError> {
    let data = budgets::list(&state.platform, g.scope).await?;
    Ok(Json(List {
        data: data.into_iter().map(|b| BudgetOut::new(b, None)).collect(),
        next_cursor: None,
    }))
}

/// One budget, its current period, and the thresholds it has reached (with delivery status).
#[utoipa::path(get, path = "/budgets/{id}", tag = "costs",
    responses((status = 200, body = BudgetOut), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = ["costs:read"])))]
pub async fn get(
    State(state): State<AppState>,
    g: OrgGuard<perm::CostsRead>,
    Path(id): Path<String>,
) -> Result<Json<BudgetOut>, ApiError> {
    let (info, alerts) = budgets::get(&state.platform, g.scope, budget_id(&id)?).await?;
    Ok(Json(BudgetOut::new(info, Some(alerts))))
}

/// Replace a budget's definition; its spend so far is kept.
#[utoipa::path(put, path = "/budgets/{id}", tag = "costs", request_body = BudgetIn,
    responses((status = 200, body = BudgetOut), (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)),
    security(("bearer" = ["budgets:manage"])))]
pub async fn update(
    State(state): State<AppState>,
    g: OrgGuard<perm::BudgetsManage>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<BudgetIn>,
) -> Result<Json<BudgetOut>, ApiError> {
    let id = budget_id(&id)?;
    let (before, _) = budgets::get(&state.platform, g.scope, id).await?;
    let before = snapshot(&BudgetOut::new(before, None));
    let info = budgets::update(&state.platform, g.scope, id, body.into()).await?;
    let out = BudgetOut::new(info, None);
    let change = Change::new("budget.update", "budget", id)
        .before(before)
        .after(snapshot(&out));
    crate::audit::record(&state, &g.caller, g.scope, change).await;
    Ok(Json(out))
}

#[utoipa::path(delete, path = "/budgets/{id}", tag = "costs",
    responses((status = 204), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = ["budgets:manage"])))]
pub async fn delete(
    State(state): State<AppState>,
    g: OrgGuard<perm::BudgetsManage>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let row = budgets::delete(&state.platform, g.scope, budget_id(&id)?).await?;
    let change = Change::new("budget.delete", "budget", row.id).before(
        json!({"name": row.name, "scope_kind": row.scope_kind, "scope_ref": row.scope_ref}),
    );
    crate::audit::record(&state, &g.caller, g.scope, change).await;
    Ok(StatusCode::NO_CONTENT)
}
