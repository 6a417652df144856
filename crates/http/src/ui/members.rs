//! The members page: who belongs to the organization with which roles, and, for admins, changing
//! roles, removing, disabling, signing out, password reset links and invitations. Every change
//! is written to the audit log with the same action names as the API.

use super::agents::status_of;
use super::flash::{self, Flash};
use super::form::{self, FormPairs};
use super::page::{self, Nav};
use super::session::Session;
use super::views::time;
use crate::AppState;
use agentry_core::ErrorCode;
use agentry_core::authz::{Action, Role};
use agentry_core::ids::{UserId, WorkspaceId};
use agentry_core::scope::OrgScope;
use agentry_engine::ServiceError;
use agentry_engine::service::audit::Change;
use agentry_engine::service::{members, orgs};
use agentry_store::users::{MemberRow, ORG_LEVEL};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::Utc;
use minijinja::context;
use minijinja::value::Serde;
use serde::Serialize;
use std::collections::HashMap;
use uuid::Uuid;

pub const PAGE: &str = "/ui/members";

/// One person with all their roles in the organization.
#[derive(Debug, Serialize)]
struct MemberView {
    id: String,
    name: String,
    email: String,
    org_role: Option<String>,
    workspace_roles: Vec<(String, String)>,
    disabled: bool,
    is_me: bool,
    since: String,
}

#[derive(Debug, Serialize)]
struct InvitationView {
    id: String,
    email: String,
    role: String,
    workspace: Option<String>,
    created_at: String,
    expires_at: String,
    expired: bool,
}

/// The invite form as typed (kept when it is refused).
#[derive(Debug, Clone, Serialize)]
pub struct InviteForm {
    email: String,
    role: String,
    workspace: String,
}

impl Default for InviteForm {
    fn default() -> Self {
        Self {
            email: String::new(),
            role: Role::Member.as_str().to_string(),
            workspace: String::new(),
        }
    }
}

/// What the page shows besides the lists.
#[derive(Default)]
struct Extras {
    flash: Option<Flash>,
    error: Option<String>,
    invite: InviteForm,
}

pub async fn page(State(state): State<AppState>, who: Session, headers: HeaderMap) -> Response {
    let taken = flash::take(&state, &who, &headers, PAGE).await;
    let extras = Extras {
        flash: taken.flash.clone(),
        ..Extras::default()
    };
    let response = members_page(&state, &who, StatusCode::OK, extras).await;
    flash::clear(&state, &taken, response)
}

async fn members_page(
    state: &AppState,
    who: &Session,
    status: StatusCode,
    extras: Extras,
) -> Response {
    let scope = match who.org(Action::OrgRead) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let can_manage = who.may(Action::MembersManage);
    let rows = match members::list(&state.platform, scope).await {
        Ok(rows) => rows,
        Err(e) => return page::service_error(e),
    };
    let workspaces = match orgs::workspaces(&state.platform, scope).await {
        Ok(list) => list,
        Err(e) => return page::service_error(e),
    };
    let names: HashMap<Uuid, String> = workspaces.iter().map(|w| (w.id, w.name.clone())).collect();
    let invitations = if can_manage {
        match members::list_invitations(&state.platform, scope).await {
            Ok(list) => list,
            Err(e) => return page::service_error(e),
        }
    } else {
        Vec::new()
    };
    let me = who.principal.actor.user_id().map(|u| u.0);
    let now = Utc::now();
    let invitations: Vec<InvitationView> = invitations
        .into_iter()
        .map(|i| InvitationView {
            id: i.id.to_string(),
            workspace: (i.workspace_id != ORG_LEVEL)
                .then(|| workspace_name(&names, i.workspace_id)),
            email: i.email,
            role: i.role,
            created_at: time(i.created_at),
            expires_at: time(i.expires_at),
            expired: i.expires_at <= now,
        })
        .collect();
    let workspace_choices: Vec<(String, String)> = workspaces
        .iter()
        .map(|w| (w.id.to_string(), w.name.clone()))
        .collect();
    who.render(
        status,
        "members.html",
        Nav::Members,
        context! {
            members => Serde(group(rows, &names, me)),
            invitations => Serde(invitations),
            workspaces => workspace_choices,
            roles => Role::ALL.iter().rev().map(|r| r.as_str()).collect::<Vec<_>>(),
            can_manage => can_manage,
            flash => Serde(extras.flash),
            error => extras.error,
            invite => Serde(extras.invite),
        },
    )
}

fn workspace_name(names: &HashMap<Uuid, String>, id: Uuid) -> String {
    names
        .get(&id)
        .cloned()
        .unwrap_or_else(|| format!("workspace {id}"))
}

/// One view per person from the membership rows (ordered by user, org-level row first).
fn group(rows: Vec<MemberRow>, names: &HashMap<Uuid, String>, me: Option<Uuid>) -> Vec<MemberView> {
    let mut out: Vec<MemberView> = Vec::new();
    for row in rows {
        let id = row.user_id.to_string();
        if out.last().is_none_or(|v| v.id != id) {
            out.push(MemberView {
                id,
                name: row.name.clone(),
                email: row.email.clone(),
                org_role: None,
                workspace_roles: Vec::new(),
                disabled: row.disabled_at.is_some(),
                is_me: me == Some(row.user_id),
                since: time(row.created_at),
            });
        }
        let Some(view) = out.last_mut() else {
            continue;
        };
        if row.workspace_id == ORG_LEVEL {
            view.org_role = Some(row.role);
            view.since = time(row.created_at);
        } else {
            view.workspace_roles
                .push((workspace_name(names, row.workspace_id), row.role));
        }
    }
    out
}

/// The memberships before a change, as the audit log records them (same shape as the API's).
fn rows_json(rows: &[MemberRow]) -> serde_json::Value {
    serde_json::Value::Array(
        rows.iter()
            .map(|m| {
                serde_json::json!({
                    "workspace_id": (m.workspace_id != ORG_LEVEL).then_some(m.workspace_id),
                    "role": m.role,
                })
            })
            .collect(),
    )
}

/// Errors about the action that the page explains next to the list; others get an error page.
fn shown_on_page(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::ValidationFailed
            | ErrorCode::Forbidden
            | ErrorCode::LastOwner
            | ErrorCode::WorkspaceNotFound
            | ErrorCode::UserNotFound
            | ErrorCode::InvitationNotFound
            | ErrorCode::MemberExists
            | ErrorCode::UserExists
    )
}

async fn refused(state: &AppState, who: &Session, e: ServiceError, invite: InviteForm) -> Response {
    if !shown_on_page(e.code) {
        return page::service_error(e);
    }
    let extras = Extras {
        flash: None,
        error: Some(e.message.clone()),
        invite,
    };
    members_page(state, who, status_of(&e), extras).await
}

/// The manage permission and the member's id from the path.
/// (Boxed: a response is large, and this is the rare path.)
fn target(who: &Session, raw: &str) -> Result<(OrgScope, UserId), Box<Response>> {
    let scope = who.org(Action::MembersManage).map_err(Box::new)?;
    let user = raw.parse().map(UserId).map_err(|_| {
        Box::new(page::error(
            StatusCode::NOT_FOUND,
            "Not found",
            "There is no member with this id.",
        ))
    })?;
    Ok((scope, user))
}

/// How a member is named in notices: their email, else their id.
async fn email_of(state: &AppState, scope: OrgScope, user: UserId) -> String {
    members::list(&state.platform, scope)
        .await
        .ok()
        .and_then(|rows| rows.into_iter().find(|m| m.user_id == user.0))
        .map(|m| m.email)
        .unwrap_or_else(|| user.0.to_string())
}

fn bad_workspace() -> ServiceError {
    ServiceError::new(
        ErrorCode::WorkspaceNotFound,
        "choose a workspace from the list",
    )
}

pub async fn set_role(
    State(state): State<AppState>,
    who: Session,
    Path(raw): Path<String>,
    form: FormPairs,
) -> Response {
    let (scope, user) = match target(&who, &raw) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let Ok(workspace) = form::optional::<Uuid>(form.get("workspace")) else {
        return refused(&state, &who, bad_workspace(), InviteForm::default()).await;
    };
    let workspace = workspace.map(WorkspaceId);
    let role = form.get("role").trim();
    let before = match members::set_role(
        &state.platform,
        scope,
        who.principal.org_role,
        user,
        workspace,
        role,
    )
    .await
    {
        Ok(before) => before,
        Err(e) => return refused(&state, &who, e, InviteForm::default()).await,
    };
    let change = Change::new("member.role_change", "user", user.0)
        .before(rows_json(&before))
        .after(serde_json::json!({"workspace_id": workspace.map(|w| w.0), "role": role}));
    who.record(&state, scope, change).await;
    let email = before.first().map(|m| m.email.clone()).unwrap_or_default();
    let place = match workspace {
        None => "the whole organization".to_string(),
        Some(ws) => match orgs::workspace(&state.platform, scope, ws).await {
            Ok(w) => format!("the workspace {}", w.name),
            Err(_) => "one workspace".to_string(),
        },
    };
    let notice = format!("{email} is now {role} in {place}.");
    flash::redirect_notice(&state, &who, PAGE, &notice).await
}

pub async fn remove(
    State(state): State<AppState>,
    who: Session,
    Path(raw): Path<String>,
) -> Response {
    let (scope, user) = match target(&who, &raw) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let before = match members::remove(&state.platform, scope, who.principal.org_role, user).await {
        Ok(before) => before,
        Err(e) => return refused(&state, &who, e, InviteForm::default()).await,
    };
    who.record(
        &state,
        scope,
        Change::new("member.remove", "user", user.0).before(rows_json(&before)),
    )
    .await;
    let email = before.first().map(|m| m.email.clone()).unwrap_or_default();
    let notice = format!("{email} was removed from the organization.");
    flash::redirect_notice(&state, &who, PAGE, &notice).await
}

async fn set_disabled(state: &AppState, who: &Session, raw: &str, disabled: bool) -> Response {
    let (scope, user) = match target(who, raw) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    if let Err(e) = members::set_disabled(
        &state.platform,
        scope,
        who.principal.org_role,
        user,
        disabled,
    )
    .await
    {
        return refused(state, who, e, InviteForm::default()).await;
    }
    let action = if disabled {
        "member.disable"
    } else {
        "member.enable"
    };
    who.record(state, scope, Change::new(action, "user", user.0))
        .await;
    let email = email_of(state, scope, user).await;
    let notice = if disabled {
        format!("{email} is disabled: they cannot sign in, and their sessions have ended.")
    } else {
        format!("{email} can sign in again.")
    };
    flash::redirect_notice(state, who, PAGE, &notice).await
}

pub async fn disable(
    State(state): State<AppState>,
    who: Session,
    Path(raw): Path<String>,
) -> Response {
    set_disabled(&state, &who, &raw, true).await
}

pub async fn enable(
    State(state): State<AppState>,
    who: Session,
    Path(raw): Path<String>,
) -> Response {
    set_disabled(&state, &who, &raw, false).await
}

pub async fn sign_out(
    State(state): State<AppState>,
    who: Session,
    Path(raw): Path<String>,
) -> Response {
    let (scope, user) = match target(&who, &raw) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let ended = match members::revoke_sessions(&state.platform, scope, user).await {
        Ok(n) => n,
        Err(e) => return refused(&state, &who, e, InviteForm::default()).await,
    };
    who.record(
        &state,
        scope,
        Change::new("member.sign_out", "user", user.0),
    )
    .await;
    let email = email_of(&state, scope, user).await;
    let notice = match ended {
        1 => format!("{email} was signed out everywhere (1 session ended)."),
        n => format!("{email} was signed out everywhere ({n} sessions ended)."),
    };
    flash::redirect_notice(&state, &who, PAGE, &notice).await
}

/// A single-use password reset link for a member, shown once. The same rules as the API: only
/// an owner resets an owner, and only for people who belong to no other organization (whose
/// admins would otherwise be able to take over each other's members).
pub async fn reset_link(
    State(state): State<AppState>,
    who: Session,
    Path(raw): Path<String>,
) -> Response {
    let (scope, user) = match target(&who, &raw) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let (email, link) =
        match members::reset_link(&state.platform, scope, who.principal.org_role, user).await {
            Ok(found) => found,
            Err(e) if matches!(e.code, ErrorCode::Forbidden | ErrorCode::UserNotFound) => {
                return refused(&state, &who, e, InviteForm::default()).await;
            }
            Err(e) => return page::service_error(e),
        };
    who.record(
        &state,
        scope,
        Change::new("member.password_reset_link", "user", user.0),
    )
    .await;
    let minutes = state.platform.config.identity.reset_link_ttl().as_secs() / 60;
    let flash = Flash::secret(
        format!("Password reset link for {email}"),
        link,
        format!("Give it to {email} yourself. It works once, for {minutes} minutes."),
    );
    show_once(&state, &who, flash).await
}

/// Redirects to the page showing a secret once; if the message cannot travel with the redirect,
/// the page is shown in this response instead (the secret must not be lost).
async fn show_once(state: &AppState, who: &Session, flash: Flash) -> Response {
    match flash::redirect(state, who, PAGE, flash).await {
        Ok(response) => response,
        Err(flash) => {
            let extras = Extras {
                flash: Some(flash),
                ..Extras::default()
            };
            members_page(state, who, StatusCode::OK, extras).await
        }
    }
}

pub async fn invite(State(state): State<AppState>, who: Session, form: FormPairs) -> Response {
    let typed = InviteForm {
        email: form.get("email").trim().to_string(),
        role: form.get("role").trim().to_string(),
        workspace: form.get("workspace").trim().to_string(),
    };
    let scope = match who.org(Action::MembersManage) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Ok(workspace) = form::optional::<Uuid>(&typed.workspace) else {
        return refused(&state, &who, bad_workspace(), typed).await;
    };
    let issued = match members::invite(
        &state.platform,
        scope,
        who.principal.org_role,
        who.principal.actor.user_id(),
        &typed.email,
        &typed.role,
        workspace.map(WorkspaceId),
    )
    .await
    {
        Ok(issued) => issued,
        Err(e) => return refused(&state, &who, e, typed).await,
    };
    let inv = &issued.invitation;
    let url = state
        .platform
        .config
        .identity
        .link(&format!("/ui/invite?token={}", issued.token));
    let mut emailed = false;
    if let Some(mailer) = &state.platform.mailer {
        let text = format!(
            "You are invited to an organization on Agentry as {}.\n\nAccept the invitation here:\n{url}\n",
            inv.role
        );
        match mailer
            .send(&inv.email, "You are invited to Agentry", &text)
            .await
        {
            Ok(()) => emailed = true,
            Err(e) => tracing::warn!(error = %e, "could not send an invitation email"),
        }
    }
    let change = Change::new("invitation.create", "invitation", inv.id).after(serde_json::json!({
        "email": inv.email, "role": inv.role, "workspace_id": workspace,
    }));
    who.record(&state, scope, change).await;
    let sent = if emailed {
        format!(
            "It was emailed to {}; you can also send it yourself.",
            inv.email
        )
    } else {
        format!(
            "No email is set up on this server: send it to {} yourself.",
            inv.email
        )
    };
    let flash = Flash::secret(
        format!("Invitation link for {}", inv.email),
        url,
        format!("{sent} It works once, until {}.", time(inv.expires_at)),
    );
    show_once(&state, &who, flash).await
}

pub async fn revoke_invitation(
    State(state): State<AppState>,
    who: Session,
    Path(raw): Path<String>,
) -> Response {
    let scope = match who.org(Action::MembersManage) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let not_found = || {
        ServiceError::new(
            ErrorCode::InvitationNotFound,
            "there is no pending invitation with this id",
        )
    };
    let Ok(id) = raw.parse::<Uuid>() else {
        return refused(&state, &who, not_found(), InviteForm::default()).await;
    };
    if let Err(e) = members::revoke_invitation(&state.platform, scope, id).await {
        return refused(&state, &who, e, InviteForm::default()).await;
    }
    who.record(
        &state,
        scope,
        Change::new("invitation.revoke", "invitation", id),
    )
    .await;
    flash::redirect_notice(
        &state,
        &who,
        PAGE,
        "The invitation was revoked; its link no longer works.",
    )
    .await
}
