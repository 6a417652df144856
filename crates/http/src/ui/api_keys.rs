//! The API keys page: the organization's live keys, creating one (shown exactly once) and
//! revoking one after a confirmation page.

use super::agents::status_of;
use super::flash::{self, Flash};
use super::form::{self, FormPairs};
use super::page::{self, Nav};
use super::session::Session;
use super::views::time;
use crate::AppState;
use agentry_core::ErrorCode;
use agentry_core::authz::{Action, Role};
use agentry_core::ids::WorkspaceId;
use agentry_core::scope::OrgScope;
use agentry_engine::ServiceError;
use agentry_engine::service::api_keys::{self, KeySpec};
use agentry_engine::service::audit::Change;
use agentry_engine::service::orgs;
use agentry_store::api_keys::ApiKeyRow;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::{DateTime, NaiveDate, Utc};
use minijinja::context;
use minijinja::value::Serde;
use serde::Serialize;
use std::collections::HashMap;
use uuid::Uuid;

pub const PAGE: &str = "/ui/api-keys";

#[derive(Debug, Serialize)]
struct KeyView {
    id: String,
    name: String,
    prefix: String,
    role: String,
    /// "Whole organization" or the workspace's name.
    scope: String,
    created_at: String,
    expires_at: Option<String>,
    expired: bool,
    last_used_at: Option<String>,
}

/// The create form as typed.
#[derive(Debug, Clone, Serialize)]
pub struct KeyForm {
    name: String,
    role: String,
    workspace: String,
    expires: String,
}

impl Default for KeyForm {
    fn default() -> Self {
        Self {
            name: String::new(),
            role: Role::Member.as_str().to_string(),
            workspace: String::new(),
            expires: String::new(),
        }
    }
}

fn view(row: ApiKeyRow, names: &HashMap<Uuid, String>, now: DateTime<Utc>) -> KeyView {
    let scope = match row.workspace_id {
        Some(ws) if !row.is_org_scoped() => names
            .get(&ws)
            .map(|n| format!("Workspace: {n}"))
            .unwrap_or_else(|| format!("Workspace {ws}")),
        _ => "Whole organization".to_string(),
    };
    KeyView {
        id: row.id.to_string(),
        prefix: row.prefix,
        role: row.role,
        scope,
        created_at: time(row.created_at),
        expired: row.expires_at.is_some_and(|t| t <= now),
        expires_at: row.expires_at.map(time),
        last_used_at: row.last_used_at.map(time),
        name: row.name,
    }
}

pub async fn list(State(state): State<AppState>, who: Session, headers: HeaderMap) -> Response {
    let taken = flash::take(&state, &who, &headers, PAGE).await;
    let response = keys_page(
        &state,
        &who,
        StatusCode::OK,
        taken.flash.clone(),
        None,
        &KeyForm::default(),
    )
    .await;
    flash::clear(&state, &taken, response)
}

async fn workspace_names(
    state: &AppState,
    scope: OrgScope,
) -> Result<Vec<(Uuid, String)>, Response> {
    orgs::workspaces(&state.platform, scope)
        .await
        .map(|list| list.into_iter().map(|w| (w.id, w.name)).collect())
        .map_err(page::service_error)
}

async fn keys_page(
    state: &AppState,
    who: &Session,
    status: StatusCode,
    flash: Option<Flash>,
    error: Option<String>,
    form: &KeyForm,
) -> Response {
    let scope = match who.org(Action::ApiKeysManage) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let rows = match api_keys::list(&state.platform, scope).await {
        Ok(rows) => rows,
        Err(e) => return page::service_error(e),
    };
    let workspaces = match workspace_names(state, scope).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let names: HashMap<Uuid, String> = workspaces.iter().cloned().collect();
    let now = Utc::now();
    let keys: Vec<KeyView> = rows.into_iter().map(|r| view(r, &names, now)).collect();
    who.render(
        status,
        "api_keys.html",
        Nav::ApiKeys,
        context! {
            keys => Serde(keys),
            workspaces => workspaces.iter().map(|(id, n)| (id.to_string(), n.clone())).collect::<Vec<_>>(),
            roles => Role::ALL.iter().rev().map(|r| r.as_str()).collect::<Vec<_>>(),
            form => Serde(form),
            flash => Serde(flash),
            error => error,
        },
    )
}

/// A date from the form's date field: the key works until the end of that day (UTC).
fn end_of_day(raw: &str) -> Result<Option<DateTime<Utc>>, ServiceError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(23, 59, 59))
        .map(|t| Some(t.and_utc()))
        .ok_or_else(|| {
            ServiceError::new(
                ErrorCode::ValidationFailed,
                "expires: must be a date such as 2030-12-31, or empty",
            )
        })
}

fn form_error(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::ValidationFailed | ErrorCode::Forbidden | ErrorCode::WorkspaceNotFound
    )
}

/// The page again with the form as typed and what is wrong with it.
async fn refuse(state: &AppState, who: &Session, typed: &KeyForm, e: ServiceError) -> Response {
    if !form_error(e.code) {
        return page::service_error(e);
    }
    keys_page(state, who, status_of(&e), None, Some(e.message), typed).await
}

pub async fn create(State(state): State<AppState>, who: Session, form: FormPairs) -> Response {
    let typed = KeyForm {
        name: form.get("name").trim().to_string(),
        role: form.get("role").trim().to_string(),
        workspace: form.get("workspace").trim().to_string(),
        expires: form.get("expires").trim().to_string(),
    };
    let scope = match who.org(Action::ApiKeysManage) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Some(role) = Role::parse(&typed.role) else {
        let e = ServiceError::new(
            ErrorCode::ValidationFailed,
            "role: must be one of owner, admin, member, viewer",
        );
        return refuse(&state, &who, &typed, e).await;
    };
    let Ok(workspace) = form::optional::<Uuid>(&typed.workspace) else {
        let e = ServiceError::new(
            ErrorCode::WorkspaceNotFound,
            "choose a workspace from the list",
        );
        return refuse(&state, &who, &typed, e).await;
    };
    let expires_at = match end_of_day(&typed.expires) {
        Ok(t) => t,
        Err(e) => return refuse(&state, &who, &typed, e).await,
    };
    let created = api_keys::create(
        &state.platform,
        scope,
        who.principal.org_role,
        KeySpec {
            name: &typed.name,
            role,
            workspace: workspace.map(WorkspaceId),
            expires_at,
            created_by: who.principal.actor.user_id(),
        },
    )
    .await;
    let (row, key) = match created {
        Ok(created) => created,
        Err(e) => return refuse(&state, &who, &typed, e).await,
    };
    let change = Change::new("api_key.create", "api_key", row.id).after(serde_json::json!({
        "name": row.name, "prefix": row.prefix, "role": row.role, "scope": row.scope,
        "workspace_id": row.workspace_id, "expires_at": row.expires_at}));
    who.record(&state, scope, change).await;
    let flash = Flash::secret(
        format!("New API key “{}”", row.name),
        key,
        "Store it somewhere safe now and send it as 'Authorization: Bearer <key>'.",
    );
    match flash::redirect(&state, &who, PAGE, flash).await {
        Ok(response) => response,
        Err(flash) => {
            keys_page(
                &state,
                &who,
                StatusCode::CREATED,
                Some(flash),
                None,
                &KeyForm::default(),
            )
            .await
        }
    }
}

/// The key of the path, if it is a live key of the org.
async fn find(state: &AppState, scope: OrgScope, raw: &str) -> Result<ApiKeyRow, Response> {
    let not_found = || {
        page::error(
            StatusCode::NOT_FOUND,
            "Not found",
            "There is no live API key with this id (it may have been revoked already).",
        )
    };
    let id: Uuid = raw.parse().map_err(|_| not_found())?;
    let rows = api_keys::list(&state.platform, scope)
        .await
        .map_err(page::service_error)?;
    rows.into_iter().find(|k| k.id == id).ok_or_else(not_found)
}

/// `GET …/revoke`: asks before revoking (works without JavaScript).
pub async fn confirm_revoke(
    State(state): State<AppState>,
    who: Session,
    Path(raw): Path<String>,
) -> Response {
    let scope = match who.org(Action::ApiKeysManage) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let row = match find(&state, scope, &raw).await {
        Ok(row) => row,
        Err(r) => return r,
    };
    let names: HashMap<Uuid, String> = match workspace_names(&state, scope).await {
        Ok(w) => w.into_iter().collect(),
        Err(r) => return r,
    };
    let key = view(row, &names, Utc::now());
    who.render(
        StatusCode::OK,
        "api_key_revoke.html",
        Nav::ApiKeys,
        context! { key => Serde(key) },
    )
}

pub async fn revoke(
    State(state): State<AppState>,
    who: Session,
    Path(raw): Path<String>,
) -> Response {
    let scope = match who.org(Action::ApiKeysManage) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Ok(id) = raw.parse::<Uuid>() else {
        return page::error(
            StatusCode::NOT_FOUND,
            "Not found",
            "There is no live API key with this id.",
        );
    };
    let before = match api_keys::revoke(&state.platform, scope, id).await {
        Ok(before) => before,
        Err(e) => return page::service_error(e),
    };
    let change = Change::new("api_key.revoke", "api_key", id).before(serde_json::json!({
        "name": before.name, "prefix": before.prefix, "role": before.role}));
    who.record(&state, scope, change).await;
    let notice = format!(
        "The key “{}” ({}…) was revoked; it stops working at once.",
        before.name, before.prefix
    );
    flash::redirect_notice(&state, &who, PAGE, &notice).await
}
