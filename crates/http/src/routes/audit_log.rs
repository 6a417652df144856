//! Reading and exporting the audit log. There is no route that changes or deletes entries.

use crate::AppState;
use crate::dto::List;
use crate::dto_identity::AuditEntry;
use crate::error::{ApiError, ErrorEnvelope};
use crate::extract::ApiQuery;
use crate::guard::{OrgGuard, perm};
use agentry_core::ErrorCode;
use agentry_engine::service::audit;
use agentry_store::audit::AuditFilter;
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::IntoParams;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// An action (`member.role_change`) or a prefix ending in `*` (`member.*`).
    pub action: Option<String>,
    pub actor_id: Option<uuid::Uuid>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub workspace_id: Option<uuid::Uuid>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// 1-200, default 50 (export: up to 10,000).
    pub limit: Option<u64>,
    pub cursor: Option<uuid::Uuid>,
    /// Export only: `csv` (default) or `json`.
    pub format: Option<String>,
}

impl AuditQuery {
    fn filter(&self, max: u64) -> Result<AuditFilter, ApiError> {
        let limit = self.limit.unwrap_or(50);
        if limit == 0 || limit > max {
            return Err(ApiError::new(
                ErrorCode::InvalidRequest,
                format!("limit must be 1-{max}"),
            ));
        }
        Ok(AuditFilter {
            action: self.action.clone(),
            actor_id: self.actor_id,
            target_type: self.target_type.clone(),
            target_id: self.target_id.clone(),
            workspace_id: self.workspace_id,
            from: self.from,
            to: self.to,
            before_id: self.cursor,
            limit,
        })
    }
}

/// Audit entries, newest first, with filters and a cursor.
#[utoipa::path(get, path = "/audit-log", tag = "audit", params(AuditQuery),
    responses((status = 200, body = List<AuditEntry>), (status = 400, body = ErrorEnvelope)),
    security(("bearer" = ["audit:read"])))]
pub async fn list(
    State(state): State<AppState>,
    g: OrgGuard<perm::AuditRead>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<List<AuditEntry>>, ApiError> {
    let filter = q.filter(200)?;
    let rows = audit::list(&state.platform, g.scope, &filter).await?;
    let next_cursor = (rows.len() as u64 == filter.limit)
        .then(|| rows.last().map(|r| r.id.to_string()))
        .flatten();
    Ok(Json(List {
        data: rows.into_iter().map(AuditEntry::from).collect(),
        next_cursor,
    }))
}

/// Export entries as CSV (cells that a spreadsheet would run as formulas are neutralised) or
/// JSON. Same filters as the list; up to 10,000 entries per request (page with `cursor`).
#[utoipa::path(get, path = "/audit-log/export", tag = "audit", params(AuditQuery),
    responses((status = 200, content_type = "text/csv"), (status = 400, body = ErrorEnvelope)),
    security(("bearer" = ["audit:read"])))]
pub async fn export(
    State(state): State<AppState>,
    g: OrgGuard<perm::AuditRead>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Response, ApiError> {
    let mut filter = q.filter(10_000)?;
    if q.limit.is_none() {
        filter.limit = 10_000;
    }
    let rows = audit::list(&state.platform, g.scope, &filter).await?;
    match q.format.as_deref().unwrap_or("csv") {
        "json" => {
            let entries: Vec<AuditEntry> = rows.into_iter().map(AuditEntry::from).collect();
            Ok((
                StatusCode::OK,
                [(
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"audit-log.json\"",
                )],
                Json(entries),
            )
                .into_response())
        }
        "csv" => {
            let mut body = String::from(audit::CSV_HEADER);
            body.push_str("\r\n");
            for row in &rows {
                body.push_str(&audit::csv_row(row));
                body.push_str("\r\n");
            }
            Ok((
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                    (
                        header::CONTENT_DISPOSITION,
                        "attachment; filename=\"audit-log.csv\"",
                    ),
                ],
                body,
            )
                .into_response())
        }
        _ => Err(ApiError::new(
            ErrorCode::InvalidRequest,
            "format must be csv or json",
        )),
    }
}
