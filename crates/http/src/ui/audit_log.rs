//! The audit log page: newest first, 50 per page with an "older" link, filters, and exports
//! (CSV with formula-looking cells neutralised, or JSON) of what the filters select.

use super::page::{self, Nav};
use super::session::Session;
use super::views::time;
use crate::AppState;
use crate::dto_identity::AuditEntry;
use agentry_core::authz::Action;
use agentry_engine::service::audit;
use agentry_store::audit::{AuditFilter, AuditRow};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use minijinja::context;
use minijinja::value::Serde;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

const PAGE_SIZE: u64 = 50;
/// Entries per export (the API's limit too).
const EXPORT_MAX: u64 = 10_000;
/// Filter values longer than this match nothing anyone wrote; refuse them rather than query.
const MAX_FILTER_CHARS: usize = 200;

/// Filters as the form sends them; empty means "any".
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub struct AuditQuery {
    #[serde(default)]
    action: String,
    #[serde(default)]
    actor: String,
    #[serde(default)]
    target_type: String,
    #[serde(default)]
    before_id: String,
}

impl AuditQuery {
    fn any(&self) -> bool {
        !self.links().is_empty()
    }

    /// The filters that are set, for links that keep them (the template URL-encodes them).
    fn links(&self) -> BTreeMap<&'static str, &str> {
        [
            ("action", self.action.trim()),
            ("actor", self.actor.trim()),
            ("target_type", self.target_type.trim()),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .collect()
    }

    /// The store filter, or what is wrong with the query (shown above the filters).
    fn filter(&self, limit: u64) -> Result<AuditFilter, String> {
        let text = |v: &str| {
            let v = v.trim();
            (!v.is_empty()).then(|| v.to_string())
        };
        if [
            &self.action,
            &self.actor,
            &self.target_type,
            &self.before_id,
        ]
        .iter()
        .any(|v| v.chars().count() > MAX_FILTER_CHARS)
        {
            return Err("A filter is too long.".into());
        }
        let actor_id = match self.actor.trim() {
            "" => None,
            raw => Some(
                raw.parse::<Uuid>()
                    .map_err(|_| "Actor must be an actor id (a UUID, as shown in the list).")?,
            ),
        };
        let before_id = match self.before_id.trim() {
            "" => None,
            raw => Some(
                raw.parse::<Uuid>()
                    .map_err(|_| "The 'older' link is not one this page produced.")?,
            ),
        };
        Ok(AuditFilter {
            action: text(&self.action),
            actor_id,
            target_type: text(&self.target_type),
            before_id,
            limit,
            ..AuditFilter::default()
        })
    }
}

/// One entry as the page shows it.
#[derive(Debug, Serialize)]
struct EntryView {
    id: String,
    at: String,
    actor_type: String,
    actor_id: Option<String>,
    actor_label: String,
    action: String,
    target_type: String,
    target_id: Option<String>,
    ip: Option<String>,
    user_agent: Option<String>,
    request_id: Option<String>,
    before: Option<String>,
    after: Option<String>,
}

impl EntryView {
    fn from_row(r: AuditRow) -> Self {
        let json = |v: Option<serde_json::Value>| {
            v.filter(|v| !v.is_null())
                .map(|v| serde_json::to_string_pretty(&v).unwrap_or_default())
        };
        Self {
            id: r.id.to_string(),
            at: time(r.at),
            actor_type: r.actor_type,
            actor_id: r.actor_id.map(|u| u.to_string()),
            actor_label: r.actor_label,
            action: r.action,
            target_type: r.target_type,
            target_id: r.target_id,
            ip: r.ip,
            user_agent: r.user_agent,
            request_id: r.request_id,
            before: json(r.before),
            after: json(r.after),
        }
    }
}

fn bad_query() -> Response {
    page::error(
        StatusCode::BAD_REQUEST,
        "Bad request",
        "The filters are malformed.",
    )
}

pub async fn list(
    State(state): State<AppState>,
    who: Session,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Response {
    let scope = match who.org(Action::AuditRead) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Ok(Query(q)) = query else {
        return bad_query();
    };
    let (status, error, rows) = match q.filter(PAGE_SIZE) {
        Ok(filter) => match audit::list(&state.platform, scope, &filter).await {
            Ok(rows) => (StatusCode::OK, None, rows),
            Err(e) => return page::service_error(e),
        },
        Err(message) => (StatusCode::BAD_REQUEST, Some(message), Vec::new()),
    };
    let older = (rows.len() as u64 == PAGE_SIZE)
        .then(|| rows.last().map(|r| r.id.to_string()))
        .flatten();
    let entries: Vec<EntryView> = rows.into_iter().map(EntryView::from_row).collect();
    let links: BTreeMap<&str, String> = q
        .links()
        .into_iter()
        .map(|(k, v)| (k, v.to_string()))
        .collect();
    who.render(
        status,
        "audit.html",
        Nav::Audit,
        context! {
            entries => Serde(entries),
            filters => Serde(&q),
            // The filters that are set, for the "older" and export links.
            query => links,
            filtered => q.any(),
            paged => !q.before_id.is_empty(),
            older => older,
            error => error,
        },
    )
}

async fn export_rows(
    state: &AppState,
    who: &Session,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Vec<AuditRow>, Response> {
    let scope = who.org(Action::AuditRead)?;
    let Ok(Query(q)) = query else {
        return Err(bad_query());
    };
    let filter = q
        .filter(EXPORT_MAX)
        .map_err(|m| page::error(StatusCode::BAD_REQUEST, "Bad request", &m))?;
    audit::list(&state.platform, scope, &filter)
        .await
        .map_err(page::service_error)
}

/// `GET /ui/audit/export.csv`: up to 10,000 entries the filters select, newest first.
pub async fn export_csv(
    State(state): State<AppState>,
    who: Session,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Response {
    let rows = match export_rows(&state, &who, query).await {
        Ok(rows) => rows,
        Err(r) => return r,
    };
    let mut body = String::from(audit::CSV_HEADER);
    body.push_str("\r\n");
    for row in &rows {
        body.push_str(&audit::csv_row(row));
        body.push_str("\r\n");
    }
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"audit-log.csv\"",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

/// `GET /ui/audit/export.json`: the same entries as JSON (the API's format).
pub async fn export_json(
    State(state): State<AppState>,
    who: Session,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Response {
    let rows = match export_rows(&state, &who, query).await {
        Ok(rows) => rows,
        Err(r) => return r,
    };
    let entries: Vec<AuditEntry> = rows.into_iter().map(AuditEntry::from).collect();
    (
        StatusCode::OK,
        [
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"audit-log.json\"",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Json(entries),
    )
        .into_response()
}
