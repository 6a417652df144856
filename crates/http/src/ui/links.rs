//! The pages behind single-use links, for people who are not signed in: accepting an invitation
//! (`/ui/invite?token=…`) and choosing a new password (`/ui/reset?token=…`). The token travels
//! in the form as a hidden field; the pages answer a used, revoked or expired link with a page
//! that says so and what to do.

use super::agents::status_of;
use super::form::FormPairs;
use super::login::client;
use super::page::{self, Nav};
use super::session::{self, LOGIN, MFA, START, SameOrigin};
use crate::AppState;
use crate::guard::PeerIp;
use agentry_core::ErrorCode;
use agentry_core::ids::{OrgId, SessionId, UserId};
use agentry_core::scope::OrgScope;
use agentry_engine::ServiceError;
use agentry_engine::secrets::token_digest;
use agentry_engine::service::audit::{self, Change};
use agentry_engine::service::auth::SessionState;
use agentry_engine::service::principal::{Actor, RequestMeta};
use agentry_engine::service::{account, orgs};
use agentry_store::users::ORG_LEVEL;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use minijinja::context;
use serde::Deserialize;

const INVALID_INVITATION: &str = "This invitation link is not valid: it was already used, revoked, or has expired. Ask whoever invited you for a new one.";
const INVALID_RESET: &str = "This password reset link is not valid: it was already used or has expired (links last 30 minutes at most). Ask an administrator for a new one.";

#[derive(Debug, Default, Deserialize)]
pub struct TokenQuery {
    #[serde(default)]
    token: String,
}

fn token_of(query: Result<Query<TokenQuery>, QueryRejection>) -> String {
    query.map(|Query(q)| q.token).unwrap_or_default()
}

fn meta(headers: &HeaderMap, ip: Option<String>) -> RequestMeta {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    RequestMeta {
        ip,
        user_agent: header(header::USER_AGENT.as_str()),
        request_id: header("x-request-id"),
    }
}

/// What the invitation page knows about the link and the visitor.
#[derive(Default)]
struct InviteState {
    error: Option<String>,
    name: String,
}

/// `GET /ui/invite?token=…`
pub async fn invite_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<TokenQuery>, QueryRejection>,
) -> Response {
    let token = token_of(query);
    invite_page(
        &state,
        &headers,
        StatusCode::OK,
        &token,
        InviteState::default(),
    )
    .await
}

fn invalid(template: &str, message: &str) -> Response {
    page::render(
        StatusCode::BAD_REQUEST,
        template,
        Nav::None,
        context! { invalid => message },
    )
}

/// The signed-in person's id and email, if the visitor is signed in.
async fn signed_in(
    state: &AppState,
    headers: &HeaderMap,
) -> Option<(UserId, String, Option<SessionId>)> {
    match session::current(headers, state).await {
        Ok(Some(SessionState::Active(p, row))) => match &p.actor {
            Actor::User { id, email } => Some((*id, email.clone(), Some(SessionId(row.id)))),
            _ => None,
        },
        _ => None,
    }
}

async fn invite_page(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    token: &str,
    shown: InviteState,
) -> Response {
    let token = token.trim();
    if token.is_empty() || token.len() > 200 {
        return invalid("invite.html", INVALID_INVITATION);
    }
    let db = &state.platform.db;
    let inv = match agentry_store::tokens::find_invitation(db, &token_digest(token)).await {
        Ok(Some(inv)) => inv,
        Ok(None) => return invalid("invite.html", INVALID_INVITATION),
        Err(e) => return page::service_error(e.into()),
    };
    let org = OrgScope {
        org_id: OrgId(inv.org_id),
    };
    let org_name = orgs::get(&state.platform, org)
        .await
        .map(|o| o.name)
        .unwrap_or_default();
    let workspace = if inv.workspace_id == ORG_LEVEL {
        None
    } else {
        orgs::workspace(
            &state.platform,
            org,
            agentry_core::ids::WorkspaceId(inv.workspace_id),
        )
        .await
        .ok()
        .map(|w| w.name)
    };
    let has_account = match agentry_store::users::find_by_email(db, &inv.email).await {
        Ok(user) => user.is_some(),
        Err(e) => return page::service_error(e.into()),
    };
    let me = signed_in(state, headers).await.map(|(_, email, _)| email);
    page::render(
        status,
        "invite.html",
        Nav::None,
        context! {
            token => token,
            email => inv.email,
            role => inv.role,
            org_name => org_name,
            workspace => workspace,
            has_account => has_account,
            signed_in_as => me,
            error => shown.error,
            name => shown.name,
        },
    )
}

/// `POST /ui/invite`: accepts the invitation, signs the person in and opens the dashboard.
pub async fn invite_submit(
    State(state): State<AppState>,
    _same_origin: SameOrigin,
    PeerIp(ip): PeerIp,
    headers: HeaderMap,
    form: FormPairs,
) -> Response {
    let token = form.get("token").trim().to_string();
    let shown = |error: String| InviteState {
        error: Some(error),
        name: form.get("name").trim().to_string(),
    };
    if let Err(e) = crate::signin::throttle(&state, "invitation", ip.as_deref()).await {
        return invite_page(
            &state,
            &headers,
            StatusCode::TOO_MANY_REQUESTS,
            &token,
            shown(e.message),
        )
        .await;
    }
    let me = signed_in(&state, &headers).await;
    let password = form.get("password");
    // Someone signed in as the invited account accepts without choosing a password.
    let password = (!password.is_empty()).then_some(password);
    if password.is_some() && form.get("password") != form.get("password_again") {
        let message = "The two passwords are not the same.".to_string();
        return invite_page(
            &state,
            &headers,
            StatusCode::UNPROCESSABLE_ENTITY,
            &token,
            shown(message),
        )
        .await;
    }
    let accepted = account::accept_invitation(
        &state.platform,
        &token,
        form.get("name"),
        password,
        me.as_ref().map(|(id, _, _)| *id),
        &client(&headers, ip.clone()),
    )
    .await;
    let (issued, inv) = match accepted {
        Ok(done) => done,
        Err(e) if e.code == ErrorCode::TokenInvalid => {
            return invalid("invite.html", INVALID_INVITATION);
        }
        Err(e) if is_form_error(&e) => {
            let status = status_of(&e);
            return invite_page(&state, &headers, status, &token, shown(e.message)).await;
        }
        Err(e) => return page::service_error(e),
    };
    // The cookie now holds the new session; the one it replaces would only linger unused.
    if let Some((id, _, Some(old))) = me {
        let _ = agentry_store::sessions::revoke(&state.platform.db, id, old).await;
    }
    let email = match agentry_store::users::get(&state.platform.db, issued.user_id).await {
        Ok(Some(user)) => user.email,
        _ => inv.email.clone(),
    };
    let actor = Actor::User {
        id: issued.user_id,
        email,
    };
    let change = Change::new("invitation.accept", "invitation", inv.id)
        .after(serde_json::json!({"email": inv.email, "role": inv.role}));
    let org = OrgScope {
        org_id: OrgId(inv.org_id),
    };
    audit::record(&state.platform, org, &actor, &meta(&headers, ip), change).await;
    let to = if issued.mfa_required { MFA } else { START };
    (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, to)],
        [(
            header::SET_COOKIE,
            session::sign_in_cookie(&state, &issued.token),
        )],
    )
        .into_response()
}

fn is_form_error(e: &ServiceError) -> bool {
    matches!(
        e.code,
        ErrorCode::ValidationFailed
            | ErrorCode::WeakPassword
            | ErrorCode::UserExists
            | ErrorCode::Unauthorized
    )
}

/// `GET /ui/reset?token=…`
pub async fn reset_form(query: Result<Query<TokenQuery>, QueryRejection>) -> Response {
    let token = token_of(query);
    reset_page(StatusCode::OK, &token, None)
}

fn reset_page(status: StatusCode, token: &str, error: Option<String>) -> Response {
    let token = token.trim();
    // Only the shape can be checked without using the link up; the rest is checked on submit.
    if !token.starts_with("rst_") || token.len() > 200 {
        return invalid("reset.html", INVALID_RESET);
    }
    page::render(
        status,
        "reset.html",
        Nav::None,
        context! { token => token, error => error },
    )
}

/// `POST /ui/reset`: sets the new password (every session of the account ends) and sends the
/// person to the sign-in page.
pub async fn reset_submit(
    State(state): State<AppState>,
    _same_origin: SameOrigin,
    PeerIp(ip): PeerIp,
    headers: HeaderMap,
    form: FormPairs,
) -> Response {
    let token = form.get("token").trim().to_string();
    if let Err(e) = crate::signin::throttle(&state, "reset-confirm", ip.as_deref()).await {
        return reset_page(StatusCode::TOO_MANY_REQUESTS, &token, Some(e.message));
    }
    let password = form.get("password");
    if password != form.get("password_again") {
        let message = "The two passwords are not the same.".to_string();
        return reset_page(StatusCode::UNPROCESSABLE_ENTITY, &token, Some(message));
    }
    let user = match account::reset_password(&state.platform, &token, password).await {
        Ok(user) => user,
        Err(e) if e.code == ErrorCode::TokenInvalid => return invalid("reset.html", INVALID_RESET),
        Err(e)
            if matches!(
                e.code,
                ErrorCode::WeakPassword | ErrorCode::ValidationFailed
            ) =>
        {
            return reset_page(status_of(&e), &token, Some(e.message));
        }
        Err(e) => return page::service_error(e),
    };
    record_reset(&state, user, &meta(&headers, ip)).await;
    page::redirect(&format!("{LOGIN}?notice=password_reset"))
}

/// The reset, in the audit log of every organization the person belongs to (as the API does).
async fn record_reset(state: &AppState, user: UserId, meta: &RequestMeta) {
    let Ok(Some(row)) = agentry_store::users::get(&state.platform.db, user).await else {
        return;
    };
    let actor = Actor::User {
        id: user,
        email: row.email,
    };
    let mut orgs: Vec<uuid::Uuid> = agentry_store::users::memberships_of(&state.platform.db, user)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|m| m.org_id)
        .collect();
    orgs.dedup();
    for org in orgs {
        let change = Change::new("account.password_reset", "user", user.0);
        audit::record(
            &state.platform,
            OrgScope { org_id: OrgId(org) },
            &actor,
            meta,
            change,
        )
        .await;
    }
}
