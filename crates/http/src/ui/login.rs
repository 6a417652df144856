//! Signing in (email + password, then the authenticator code when TOTP is on, or through an
//! OpenID Connect provider) and signing out.

use super::form::FormPairs;
use super::page::{self, Nav};
use super::session::{self, LOGIN, MFA, START};
use crate::AppState;
use crate::guard::PeerIp;
use agentry_core::ErrorCode;
use agentry_engine::service::auth::{self, ClientInfo, IssuedSession, SessionState};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Deserialize;

pub(super) fn client(headers: &HeaderMap, ip: Option<String>) -> ClientInfo {
    crate::guard::client_info(headers, ip)
}

/// What the sign-in page may say after a redirect from elsewhere (fixed texts only: the query
/// chooses one, it cannot put words on the page).
#[derive(Debug, Default, Deserialize)]
pub struct LoginQuery {
    #[serde(default)]
    notice: String,
}

fn notice_text(key: &str) -> Option<&'static str> {
    match key {
        "password_reset" => Some("Your password was changed. Sign in with the new one."),
        "signed_out" => Some("You were signed out on every device."),
        _ => None,
    }
}

pub async fn form(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<LoginQuery>, QueryRejection>,
) -> Response {
    let notice = query.ok().and_then(|Query(q)| notice_text(&q.notice));
    match session::current(&headers, &state).await {
        Ok(Some(SessionState::Active(..))) => Redirect::to(START).into_response(),
        _ => login_page(&state, StatusCode::OK, None, "", notice).await,
    }
}

fn signed_in(state: &AppState, issued: &IssuedSession, to: &str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, to.to_string())],
        [(
            header::SET_COOKIE,
            session::sign_in_cookie(state, &issued.token),
        )],
    )
        .into_response()
}

pub async fn submit(
    State(state): State<AppState>,
    PeerIp(ip): PeerIp,
    headers: HeaderMap,
    form: FormPairs,
) -> Response {
    let email = form.get("email").trim().to_string();
    let password = form.get("password");
    if email.is_empty() || password.is_empty() {
        return login_page(
            &state,
            StatusCode::UNAUTHORIZED,
            Some("Enter your email and password."),
            &email,
            None,
        )
        .await;
    }
    let client = client(&headers, ip);
    if let Err(e) = crate::signin::throttle(&state, &email, client.ip.as_deref()).await {
        return login_page(
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            Some(&e.message),
            &email,
            None,
        )
        .await;
    }
    match auth::sign_in_password(&state.platform, &email, password, &client).await {
        Ok(issued) if issued.mfa_required => signed_in(&state, &issued, MFA),
        Ok(issued) => signed_in(&state, &issued, START),
        Err(e) if e.code == ErrorCode::InvalidCredentials => {
            login_page(
                &state,
                StatusCode::UNAUTHORIZED,
                Some("That email and password do not match an account."),
                &email,
                None,
            )
            .await
        }
        Err(e) => page::service_error(e),
    }
}

pub async fn mfa_form(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match session::current(&headers, &state).await {
        Ok(Some(SessionState::MfaPending(_))) => mfa_page(StatusCode::OK, None),
        Ok(Some(SessionState::Active(..))) => Redirect::to(START).into_response(),
        _ => Redirect::to(LOGIN).into_response(),
    }
}

pub async fn mfa_submit(
    State(state): State<AppState>,
    PeerIp(ip): PeerIp,
    headers: HeaderMap,
    form: FormPairs,
) -> Response {
    let pending = match session::current(&headers, &state).await {
        Ok(Some(SessionState::MfaPending(row))) => row,
        _ => return Redirect::to(LOGIN).into_response(),
    };
    let client = client(&headers, ip);
    let key = format!("mfa:{}", pending.user_id);
    if let Err(e) = crate::signin::throttle(&state, &key, client.ip.as_deref()).await {
        return mfa_page(StatusCode::TOO_MANY_REQUESTS, Some(&e.message));
    }
    match auth::complete_mfa(&state.platform, &pending, form.get("code"), &client).await {
        Ok(issued) => signed_in(&state, &issued, START),
        Err(e) if e.code == ErrorCode::InvalidCredentials => mfa_page(
            StatusCode::UNAUTHORIZED,
            Some("That code is not right. Check the clock of your phone and try the next code."),
        ),
        Err(e) => page::service_error(e),
    }
}

pub async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Ok(Some(SessionState::Active(_, row) | SessionState::MfaPending(row))) =
        session::current(&headers, &state).await
    {
        let _ = agentry_store::sessions::revoke(
            &state.platform.db,
            agentry_core::ids::UserId(row.user_id),
            agentry_core::ids::SessionId(row.id),
        )
        .await;
    }
    (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, LOGIN)],
        [(header::SET_COOKIE, session::sign_out_cookie(&state))],
    )
        .into_response()
}

/// The form never echoes the password back.
async fn login_page(
    state: &AppState,
    status: StatusCode,
    error: Option<&str>,
    email: &str,
    notice: Option<&str>,
) -> Response {
    let sso: Vec<(String, String)> = agentry_store::sso::all_public(&state.platform.db)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|p| (p.slug, p.display_name))
        .collect();
    page::render(
        status,
        "login.html",
        Nav::None,
        context! { error => error, email => email, sso => sso, notice => notice },
    )
}

fn mfa_page(status: StatusCode, error: Option<&str>) -> Response {
    page::render(
        status,
        "login_mfa.html",
        Nav::None,
        context! { error => error },
    )
}
