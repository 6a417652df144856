//! The signed-in person's own account: password, two-factor sign-in, and their sessions.

use super::agents::status_of;
use super::flash::{self, Flash};
use super::form::FormPairs;
use super::page::{self, Nav};
use super::session::{self, LOGIN, Session};
use super::views::time;
use crate::AppState;
use agentry_auth::totp;
use agentry_core::ErrorCode;
use agentry_core::ids::{SessionId, UserId};
use agentry_engine::ServiceError;
use agentry_engine::service::account;
use agentry_engine::service::audit::Change;
use agentry_store::users::UserRow;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use minijinja::context;
use minijinja::value::Serde;
use serde::Serialize;
use uuid::Uuid;

pub const PAGE: &str = "/ui/account";
const TOTP_PAGE: &str = "/ui/account/totp";

#[derive(Debug, Serialize)]
struct SessionView {
    id: String,
    current: bool,
    created_at: String,
    last_seen_at: String,
    expires_at: String,
    ip: Option<String>,
    user_agent: Option<String>,
}

/// The signed-in person (boxed: a response is large, and this is the rare path).
fn user_of(who: &Session) -> Result<UserId, Box<Response>> {
    who.principal.actor.user_id().ok_or_else(|| {
        Box::new(page::error(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "This page is about a person's own account.",
        ))
    })
}

async fn load(state: &AppState, user: UserId) -> Result<UserRow, Response> {
    match agentry_store::users::get(&state.platform.db, user).await {
        Ok(Some(row)) => Ok(row),
        Ok(None) => Err(page::error(
            StatusCode::NOT_FOUND,
            "Not found",
            "This account no longer exists.",
        )),
        Err(e) => Err(page::service_error(e.into())),
    }
}

async fn record(state: &AppState, who: &Session, user: UserId, action: &'static str) {
    who.record(
        state,
        who.principal.org(),
        Change::new(action, "user", user.0),
    )
    .await;
}

pub async fn page(State(state): State<AppState>, who: Session, headers: HeaderMap) -> Response {
    let taken = flash::take(&state, &who, &headers, PAGE).await;
    let response = account_page(&state, &who, StatusCode::OK, taken.flash.clone(), None).await;
    flash::clear(&state, &taken, response)
}

async fn account_page(
    state: &AppState,
    who: &Session,
    status: StatusCode,
    flash: Option<Flash>,
    error: Option<String>,
) -> Response {
    let user = match user_of(who) {
        Ok(u) => u,
        Err(r) => return *r,
    };
    let row = match load(state, user).await {
        Ok(row) => row,
        Err(r) => return r,
    };
    let current = who.principal.session_id.map(|s| s.0);
    let sessions: Vec<SessionView> =
        match agentry_store::sessions::list_for_user(&state.platform.db, user).await {
            Ok(rows) => rows
                .into_iter()
                .filter(|s| !s.mfa_pending)
                .map(|s| SessionView {
                    id: s.id.to_string(),
                    current: Some(s.id) == current,
                    created_at: time(s.created_at),
                    last_seen_at: time(s.last_seen_at),
                    expires_at: time(s.expires_at),
                    ip: s.ip,
                    user_agent: s.user_agent,
                })
                .collect(),
            Err(e) => return page::service_error(e.into()),
        };
    let names: std::collections::HashMap<Uuid, String> = if who.principal.workspace_roles.is_empty()
    {
        Default::default()
    } else {
        agentry_engine::service::orgs::workspaces(&state.platform, who.principal.org())
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|w| (w.id, w.name))
            .collect()
    };
    let roles: Vec<(String, String)> = who
        .principal
        .org_role
        .map(|r| ("Organization".to_string(), r.as_str().to_string()))
        .into_iter()
        .chain(who.principal.workspace_roles.iter().map(|(w, r)| {
            let place = names
                .get(&w.0)
                .map(|n| format!("Workspace {n}"))
                .unwrap_or_else(|| format!("Workspace {w}"));
            (place, r.as_str().to_string())
        }))
        .collect();
    who.render(
        status,
        "account.html",
        Nav::Account,
        context! {
            email => row.email,
            name => row.name,
            has_password => row.password_hash.is_some(),
            totp_enabled => row.totp_secret_encrypted.is_some(),
            roles => roles,
            sessions => Serde(sessions),
            flash => Serde(flash),
            error => error,
        },
    )
}

/// Errors the person fixes by typing something else.
fn form_error(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::InvalidCredentials | ErrorCode::WeakPassword | ErrorCode::ValidationFailed
    )
}

async fn refused(state: &AppState, who: &Session, e: ServiceError) -> Response {
    if !form_error(e.code) {
        return page::service_error(e);
    }
    // A wrong current password is the form's fault, not a failed sign-in: 422, not 401.
    let status = if e.code == ErrorCode::InvalidCredentials {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        status_of(&e)
    };
    account_page(state, who, status, None, Some(sentence(&e.message))).await
}

/// Service messages are lower-case clauses; on a page they start a sentence.
fn sentence(message: &str) -> String {
    let mut chars = message.chars();
    match chars.next() {
        Some(first) => {
            let mut out: String = first.to_uppercase().collect();
            out.push_str(chars.as_str());
            if !out.ends_with('.') {
                out.push('.');
            }
            out
        }
        None => String::new(),
    }
}

pub async fn change_password(
    State(state): State<AppState>,
    who: Session,
    form: FormPairs,
) -> Response {
    let user = match user_of(&who) {
        Ok(u) => u,
        Err(r) => return *r,
    };
    let new = form.get("new_password");
    if new != form.get("new_password_again") {
        let e = ServiceError::new(
            ErrorCode::ValidationFailed,
            "the two new passwords are not the same",
        );
        return refused(&state, &who, e).await;
    }
    if let Err(e) = account::change_password(
        &state.platform,
        user,
        who.principal.session_id,
        form.get("current_password"),
        new,
    )
    .await
    {
        return refused(&state, &who, e).await;
    }
    record(&state, &who, user, "account.password_change").await;
    flash::redirect_notice(
        &state,
        &who,
        PAGE,
        "Your password was changed. Your other sessions have ended.",
    )
    .await
}

/// `GET /ui/account/totp`: a fresh secret to put into an authenticator app. Nothing is stored
/// until it is confirmed with a code.
pub async fn totp_form(State(state): State<AppState>, who: Session) -> Response {
    let user = match user_of(&who) {
        Ok(u) => u,
        Err(r) => return *r,
    };
    let row = match load(&state, user).await {
        Ok(row) => row,
        Err(r) => return r,
    };
    if row.totp_secret_encrypted.is_some() {
        return page::redirect(PAGE);
    }
    match account::begin_totp(&row.email) {
        Ok(e) => totp_page(&who, StatusCode::OK, &e.secret, &e.otpauth_uri, None),
        Err(e) => page::service_error(e),
    }
}

fn totp_page(
    who: &Session,
    status: StatusCode,
    secret: &str,
    uri: &str,
    error: Option<String>,
) -> Response {
    who.render(
        status,
        "totp.html",
        Nav::Account,
        context! { secret => secret, otpauth_uri => uri, error => error },
    )
}

pub async fn totp_enable(State(state): State<AppState>, who: Session, form: FormPairs) -> Response {
    let user = match user_of(&who) {
        Ok(u) => u,
        Err(r) => return *r,
    };
    let secret = form.get("secret").trim();
    let result = account::enable_totp(
        &state.platform,
        user,
        form.get("current_password"),
        secret,
        form.get("code"),
    )
    .await;
    match result {
        Ok(()) => {
            record(&state, &who, user, "account.totp_enable").await;
            flash::redirect_notice(
                &state,
                &who,
                PAGE,
                "Two-factor sign-in is on: signing in now also asks for a code from your app.",
            )
            .await
        }
        Err(e) if form_error(e.code) => {
            // The same secret again (the app already has it), unless the field was tampered with.
            let Some(bytes) = totp::decode_base32(secret) else {
                return page::redirect(TOTP_PAGE);
            };
            let uri = totp::otpauth_uri("Agentry", who.email(), &bytes);
            let status = if e.code == ErrorCode::InvalidCredentials {
                StatusCode::UNPROCESSABLE_ENTITY
            } else {
                status_of(&e)
            };
            totp_page(&who, status, secret, &uri, Some(sentence(&e.message)))
        }
        Err(e) => page::service_error(e),
    }
}

pub async fn totp_disable(
    State(state): State<AppState>,
    who: Session,
    form: FormPairs,
) -> Response {
    let user = match user_of(&who) {
        Ok(u) => u,
        Err(r) => return *r,
    };
    if let Err(e) = account::disable_totp(&state.platform, user, form.get("current_password")).await
    {
        return refused(&state, &who, e).await;
    }
    record(&state, &who, user, "account.totp_disable").await;
    flash::redirect_notice(&state, &who, PAGE, "Two-factor sign-in is off.").await
}

fn signed_out(state: &AppState, to: &str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, to.to_string())],
        [(header::SET_COOKIE, session::sign_out_cookie(state))],
    )
        .into_response()
}

pub async fn revoke_session(
    State(state): State<AppState>,
    who: Session,
    Path(raw): Path<String>,
) -> Response {
    let user = match user_of(&who) {
        Ok(u) => u,
        Err(r) => return *r,
    };
    let not_found = || {
        page::error(
            StatusCode::NOT_FOUND,
            "Not found",
            "You have no live session with this id.",
        )
    };
    let Ok(id) = raw.parse::<Uuid>() else {
        return not_found();
    };
    match agentry_store::sessions::revoke(&state.platform.db, user, SessionId(id)).await {
        Ok(true) => {}
        Ok(false) => return not_found(),
        Err(e) => return page::service_error(e.into()),
    }
    record(&state, &who, user, "account.session_revoke").await;
    if who.principal.session_id == Some(SessionId(id)) {
        return signed_out(&state, LOGIN);
    }
    flash::redirect_notice(&state, &who, PAGE, "The session was ended.").await
}

/// Ends every session of mine, this one included.
pub async fn sign_out_everywhere(State(state): State<AppState>, who: Session) -> Response {
    let user = match user_of(&who) {
        Ok(u) => u,
        Err(r) => return *r,
    };
    if let Err(e) = agentry_store::sessions::revoke_all(&state.platform.db, user, None).await {
        return page::service_error(e.into());
    }
    record(&state, &who, user, "account.sign_out_everywhere").await;
    signed_out(&state, &format!("{LOGIN}?notice=signed_out"))
}
