//! Cost reports and exports from the ledger, and the org's price overrides.

use crate::AppState;
use crate::dto::List;
use crate::dto_money::{CostLine, CostReportOut, CostTotal, PriceIn, PriceOut};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extract::{ApiJson, ApiQuery};
use crate::guard::{OrgGuard, perm};
use agentry_core::ErrorCode;
use agentry_engine::service::audit::{Change, csv_cell};
use agentry_engine::service::costs;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct CostQuery {
    /// `agent`, `user`, `api_key`, `end_user`, `model`, `day` or `workspace` (default `day`).
    pub group_by: Option<String>,
    /// A date (`2026-12-01`) or RFC 3339 time; default 30 days before `to`.
    pub from: Option<String>,
    /// A date (inclusive: the whole day) or RFC 3339 time (exclusive); default now.
    pub to: Option<String>,
}

/// The report the API returns, also shown by the dashboard's costs page (`ui::costs`), so the
/// two cannot disagree on labels or totals.
pub(crate) async fn build_report(
    state: &AppState,
    scope: agentry_core::scope::OrgScope,
    q: &CostQuery,
) -> Result<CostReportOut, ApiError> {
    let report = costs::report(
        &state.platform,
        scope,
        q.group_by.as_deref().unwrap_or("day"),
        q.from.as_deref(),
        q.to.as_deref(),
    )
    .await?;
    let ids: Vec<uuid::Uuid> = report.groups.iter().filter_map(|g| g.key_id).collect();
    let labels = agentry_store::costs::labels(&state.platform.db, scope, report.group_by, &ids)
        .await
        .map_err(agentry_engine::ServiceError::from)?;
    let mut total = CostTotal::default();
    let mut cost_pico: i64 = 0;
    let data = report
        .groups
        .into_iter()
        .map(|g| {
            total.calls += g.calls;
            total.unpriced_calls += g.unpriced_calls;
            total.input_tokens += g.input_tokens.unwrap_or(0);
            total.output_tokens += g.output_tokens.unwrap_or(0);
            cost_pico = cost_pico.saturating_add(g.cost_pico.unwrap_or(0));
            let label = g
                .key_id
                .and_then(|id| labels.iter().find(|l| l.id == id).map(|l| l.label.clone()));
            CostLine::new(g, label)
        })
        .collect();
    total.cost_usd = costs::usd(Some(cost_pico));
    Ok(CostReportOut {
        group_by: report.group_by.as_str().to_string(),
        from: report.from,
        to: report.to,
        data,
        total,
    })
}

/// What the org spent, from the ledger (one event per billed model call), grouped.
#[utoipa::path(get, path = "/costs", tag = "costs", params(CostQuery),
    responses((status = 200, body = CostReportOut), (status = 422, body = ErrorEnvelope)),
    security(("bearer" = ["costs:read"])))]
pub async fn report(
    State(state): State<AppState>,
    g: OrgGuard<perm::CostsRead>,
    ApiQuery(q): ApiQuery<CostQuery>,
) -> Result<Json<CostReportOut>, ApiError> {
    Ok(Json(build_report(&state, g.scope, &q).await?))
}

const CSV_HEADER: &str = "group_by,key,label,provider,calls,unpriced_calls,cache_hits,input_tokens,cache_read_tokens,cache_write_tokens,output_tokens,cost_usd";

/// The same report as CSV (cells a spreadsheet would run as formulas are neutralised).
#[utoipa::path(get, path = "/costs/export", tag = "costs", params(CostQuery),
    responses((status = 200, content_type = "text/csv"), (status = 422, body = ErrorEnvelope)),
    security(("bearer" = ["costs:read"])))]
pub async fn export(
    State(state): State<AppState>,
    g: OrgGuard<perm::CostsRead>,
    ApiQuery(q): ApiQuery<CostQuery>,
) -> Result<Response, ApiError> {
    let report = build_report(&state, g.scope, &q).await?;
    let mut body = String::from(CSV_HEADER);
    body.push_str("\r\n");
    for line in &report.data {
        let cells = [
            report.group_by.clone(),
            line.key.clone().unwrap_or_default(),
            line.label.clone().unwrap_or_default(),
            line.provider.clone().unwrap_or_default(),
            line.calls.to_string(),
            line.unpriced_calls.to_string(),
            line.cache_hits.to_string(),
            line.input_tokens.to_string(),
            line.cache_read_tokens.to_string(),
            line.cache_write_tokens.to_string(),
            line.output_tokens.to_string(),
            line.cost_usd.clone(),
        ];
        let row: Vec<String> = cells.iter().map(|c| csv_cell(c)).collect();
        body.push_str(&row.join(","));
        body.push_str("\r\n");
    }
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"costs.csv\"",
            ),
        ],
        body,
    )
        .into_response())
}

/// The org's price overrides (the built-in catalogue applies to models without one).
#[utoipa::path(get, path = "/prices", tag = "costs",
    responses((status = 200, body = List<PriceOut>)),
    security(("bearer" = ["costs:read"])))]
pub async fn list_prices(
    State(state): State<AppState>,
    g: OrgGuard<perm::CostsRead>,
) -> Result<Json<List<PriceOut>>, ApiError> {
    let rows = costs::list_prices(&state.platform, g.scope).await?;
    Ok(Json(List {
        data: rows.into_iter().map(PriceOut::from).collect(),
        next_cursor: None,
    }))
}

/// Set the price of a model for the org (optionally for one provider), from a date on.
#[utoipa::path(post, path = "/prices", tag = "costs", request_body = PriceIn,
    responses((status = 201, body = PriceOut), (status = 422, body = ErrorEnvelope)),
    security(("bearer" = ["budgets:manage"])))]
pub async fn create_price(
    State(state): State<AppState>,
    g: OrgGuard<perm::BudgetsManage>,
    ApiJson(body): ApiJson<PriceIn>,
) -> Result<(StatusCode, Json<PriceOut>), ApiError> {
    let row = costs::create_price(&state.platform, g.scope, body.into()).await?;
    let out = PriceOut::from(row);
    let change = Change::new("price.create", "price", &out.id).after(serde_json::json!(&out));
    crate::audit::record(&state, &g.caller, g.scope, change).await;
    Ok((StatusCode::CREATED, Json(out)))
}

#[utoipa::path(delete, path = "/prices/{id}", tag = "costs",
    responses((status = 204), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = ["budgets:manage"])))]
pub async fn delete_price(
    State(state): State<AppState>,
    g: OrgGuard<perm::BudgetsManage>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = uuid::Uuid::parse_str(&id)
        .map_err(|_| ApiError::new(ErrorCode::PriceNotFound, "no price override with this id"))?;
    costs::delete_price(&state.platform, g.scope, id).await?;
    crate::audit::record(
        &state,
        &g.caller,
        g.scope,
        Change::new("price.delete", "price", id),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}
