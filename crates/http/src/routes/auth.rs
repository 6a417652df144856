//! Public sign-in routes: password and TOTP, sign-out, password reset, invitation acceptance
//! and OpenID Connect. These (and the webhook deliveries of `routes/triggers.rs`, authenticated
//! by their signature) are the only `/api/v1` routes without a guard; each answers the same way
//! whether or not an account exists.

use crate::AppState;
use crate::dto_identity::{
    AcceptInvitation, MfaCode, ResetConfirm, ResetRequest, SignIn, SignedIn, SsoPublic,
};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extract::{ApiJson, ApiQuery};
use crate::guard::{PeerIp, session_token};
use crate::ui::session::{sign_in_cookie, sign_out_cookie};
use agentry_core::ErrorCode;
use agentry_core::ids::{SessionId, UserId};
use agentry_core::scope::OrgScope;
use agentry_engine::service::account;
use agentry_engine::service::audit::{self, Change};
use agentry_engine::service::auth::{self, ClientInfo, IssuedSession, SessionState};
use agentry_engine::service::principal::{Actor, RequestMeta};
use agentry_engine::service::sso;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

fn client(headers: &HeaderMap, ip: Option<String>) -> ClientInfo {
    crate::guard::client_info(headers, ip)
}

fn with_cookie(state: &AppState, issued: &IssuedSession, status: StatusCode) -> Response {
    let body = SignedIn {
        user_id: issued.user_id.0.to_string(),
        mfa_required: issued.mfa_required,
    };
    (
        status,
        [(header::SET_COOKIE, sign_in_cookie(state, &issued.token))],
        Json(body),
    )
        .into_response()
}

/// Sign in with email and password. Sets the session cookie; with two-factor enabled the session
/// is only good for `POST /auth/mfa` until the code is sent.
#[utoipa::path(post, path = "/auth/sign-in", tag = "auth", request_body = SignIn,
    responses((status = 200, body = SignedIn), (status = 401, body = ErrorEnvelope), (status = 429, body = ErrorEnvelope)),
    security(()))]
pub async fn sign_in(
    State(state): State<AppState>,
    PeerIp(ip): PeerIp,
    headers: HeaderMap,
    ApiJson(body): ApiJson<SignIn>,
) -> Result<Response, ApiError> {
    crate::signin::throttle(&state, &body.email, ip.as_deref()).await?;
    let client = client(&headers, ip.clone());
    let issued =
        auth::sign_in_password(&state.platform, &body.email, &body.password, &client).await?;
    let action = if issued.mfa_required {
        "account.sign_in_password_mfa_pending"
    } else {
        "account.sign_in"
    };
    record_for_user(&state, issued.user_id, &headers, ip, action).await;
    Ok(with_cookie(&state, &issued, StatusCode::OK))
}

/// Finish signing in with the 6-digit code of the authenticator app. The session id changes.
#[utoipa::path(post, path = "/auth/mfa", tag = "auth", request_body = MfaCode,
    responses((status = 200, body = SignedIn), (status = 401, body = ErrorEnvelope)),
    security(()))]
pub async fn mfa(
    State(state): State<AppState>,
    PeerIp(ip): PeerIp,
    headers: HeaderMap,
    ApiJson(body): ApiJson<MfaCode>,
) -> Result<Response, ApiError> {
    let pending = match session_token(&headers, state.cookie_name()) {
        Some(token) => auth::authenticate_session(&state.platform, token).await?,
        None => None,
    };
    let Some(SessionState::MfaPending(pending)) = pending else {
        return Err(ApiError::new(
            ErrorCode::Unauthorized,
            "sign in with your password first",
        ));
    };
    crate::signin::throttle(&state, &format!("mfa:{}", pending.user_id), ip.as_deref()).await?;
    let issued = auth::complete_mfa(
        &state.platform,
        &pending,
        &body.code,
        &client(&headers, ip.clone()),
    )
    .await?;
    record_for_user(&state, issued.user_id, &headers, ip, "account.sign_in").await;
    Ok(with_cookie(&state, &issued, StatusCode::OK))
}

/// Sign out: ends this session and clears the cookie.
#[utoipa::path(post, path = "/auth/sign-out", tag = "auth", responses((status = 204)), security(()))]
pub async fn sign_out(
    State(state): State<AppState>,
    PeerIp(ip): PeerIp,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(token) = session_token(&headers, state.cookie_name())
        && let Some(SessionState::Active(_, row) | SessionState::MfaPending(row)) =
            auth::authenticate_session(&state.platform, token).await?
    {
        agentry_store::sessions::revoke(&state.platform.db, UserId(row.user_id), SessionId(row.id))
            .await
            .map_err(agentry_engine::ServiceError::from)?;
        record_for_user(
            &state,
            UserId(row.user_id),
            &headers,
            ip,
            "account.sign_out",
        )
        .await;
    }
    Ok((
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, sign_out_cookie(&state))],
    )
        .into_response())
}

/// Ask for a password reset link by email. Always 202, whether or not the account exists; the
/// link is only ever sent to the account's address (an admin can also create one for a member).
#[utoipa::path(post, path = "/auth/password-reset", tag = "auth", request_body = ResetRequest,
    responses((status = 202), (status = 429, body = ErrorEnvelope)), security(()))]
pub async fn request_reset(
    State(state): State<AppState>,
    PeerIp(ip): PeerIp,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ResetRequest>,
) -> Result<StatusCode, ApiError> {
    crate::signin::throttle(&state, &format!("reset:{}", body.email), ip.as_deref()).await?;
    if let Some(mailer) = &state.platform.mailer
        && let Some((user, token)) = account::create_reset(&state.platform, &body.email).await?
    {
        record_for_user(
            &state,
            UserId(user.id),
            &headers,
            ip.clone(),
            "account.password_reset_request",
        )
        .await;
        let link = state
            .platform
            .config
            .identity
            .link(&format!("/ui/reset?token={token}"));
        let text = format!(
            "Someone asked to reset the password of your Agentry account.\n\nOpen this link within 30 minutes to choose a new password:\n{link}\n\nIf it was not you, ignore this email; your password stays as it is.\n"
        );
        if let Err(e) = mailer
            .send(&user.email, "Reset your Agentry password", &text)
            .await
        {
            tracing::warn!(error = %e, "could not send a password reset email");
        }
    }
    Ok(StatusCode::ACCEPTED)
}

/// Set a new password with a reset token. The token works once; every session of the account
/// ends.
#[utoipa::path(post, path = "/auth/password-reset/confirm", tag = "auth", request_body = ResetConfirm,
    responses((status = 204), (status = 400, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)),
    security(()))]
pub async fn confirm_reset(
    State(state): State<AppState>,
    PeerIp(ip): PeerIp,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ResetConfirm>,
) -> Result<StatusCode, ApiError> {
    crate::signin::throttle(&state, "reset-confirm", ip.as_deref()).await?;
    let user = account::reset_password(&state.platform, &body.token, &body.password).await?;
    record_for_user(&state, user, &headers, ip, "account.password_reset").await;
    Ok(StatusCode::NO_CONTENT)
}

/// Writes an audit entry about a person's own account in each org they belong to.
async fn record_for_user(
    state: &AppState,
    user: UserId,
    headers: &HeaderMap,
    ip: Option<String>,
    action: &'static str,
) {
    let Ok(Some(row)) = agentry_store::users::get(&state.platform.db, user).await else {
        return;
    };
    let actor = Actor::User {
        id: user,
        email: row.email,
    };
    let meta = RequestMeta {
        ip,
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        request_id: headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    };
    let orgs = agentry_store::users::memberships_of(&state.platform.db, user)
        .await
        .unwrap_or_default();
    let mut seen = Vec::new();
    for m in orgs {
        if seen.contains(&m.org_id) {
            continue;
        }
        seen.push(m.org_id);
        let org = OrgScope {
            org_id: agentry_core::ids::OrgId(m.org_id),
        };
        audit::record(
            &state.platform,
            org,
            &actor,
            &meta,
            Change::new(action, "user", user.0),
        )
        .await;
    }
}

/// Accept an invitation: a new person chooses a password; someone with an account must be
/// signed in as that account. Signs in and sets the session cookie.
#[utoipa::path(post, path = "/auth/invitations/accept", tag = "auth", request_body = AcceptInvitation,
    responses((status = 200, body = SignedIn), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope)),
    security(()))]
pub async fn accept_invitation(
    State(state): State<AppState>,
    PeerIp(ip): PeerIp,
    headers: HeaderMap,
    ApiJson(body): ApiJson<AcceptInvitation>,
) -> Result<Response, ApiError> {
    crate::signin::throttle(&state, "invitation", ip.as_deref()).await?;
    let signed_in = match session_token(&headers, state.cookie_name()) {
        Some(token) => match auth::authenticate_session(&state.platform, token).await? {
            Some(SessionState::Active(p, _)) => p.actor.user_id(),
            _ => None,
        },
        None => None,
    };
    let (issued, inv) = account::accept_invitation(
        &state.platform,
        &body.token,
        body.name.as_deref().unwrap_or(""),
        body.password.as_deref(),
        signed_in,
        &client(&headers, ip.clone()),
    )
    .await?;
    let row = agentry_store::users::get(&state.platform.db, issued.user_id)
        .await
        .ok()
        .flatten();
    if let Some(row) = row {
        let actor = Actor::User {
            id: issued.user_id,
            email: row.email,
        };
        let meta = RequestMeta {
            ip,
            ..RequestMeta::default()
        };
        let change = Change::new("invitation.accept", "invitation", inv.id)
            .after(serde_json::json!({"email": inv.email, "role": inv.role}));
        let org = OrgScope {
            org_id: agentry_core::ids::OrgId(inv.org_id),
        };
        audit::record(&state.platform, org, &actor, &meta, change).await;
    }
    Ok(with_cookie(&state, &issued, StatusCode::OK))
}

/// The sign-in providers configured on this instance (for the sign-in page).
#[utoipa::path(get, path = "/auth/sso", tag = "auth", responses((status = 200, body = Vec<SsoPublic>)), security(()))]
pub async fn sso_list(State(state): State<AppState>) -> Result<Json<Vec<SsoPublic>>, ApiError> {
    let rows = agentry_store::sso::all_public(&state.platform.db)
        .await
        .map_err(agentry_engine::ServiceError::from)?;
    Ok(Json(
        rows.into_iter()
            .map(|p| SsoPublic {
                start_url: format!("/api/v1/auth/sso/{}/start", p.slug),
                slug: p.slug,
                display_name: p.display_name,
            })
            .collect(),
    ))
}

pub fn sso_redirect_uri(state: &AppState) -> String {
    state
        .platform
        .config
        .identity
        .link("/api/v1/auth/sso/callback")
}

fn see_other(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(v) => (StatusCode::SEE_OTHER, [(header::LOCATION, v)]).into_response(),
        Err(_) => ApiError::new(ErrorCode::Internal, "bad redirect").into_response(),
    }
}

/// Start signing in through the provider `slug`: redirects the browser to it.
#[utoipa::path(get, path = "/auth/sso/{slug}/start", tag = "auth",
    responses((status = 303), (status = 404, body = ErrorEnvelope), (status = 502, body = ErrorEnvelope)), security(()))]
pub async fn sso_start(
    State(state): State<AppState>,
    PeerIp(ip): PeerIp,
    Path(slug): Path<String>,
) -> Result<Response, ApiError> {
    crate::signin::throttle(&state, &format!("sso:{slug}"), ip.as_deref()).await?;
    let (url, sso_state) = sso::start(&state.platform, &slug, &sso_redirect_uri(&state)).await?;
    let mut response = see_other(&url);
    // Binds the sign-in to this browser: the callback must come with the same state.
    if let Ok(cookie) = HeaderValue::from_str(&format!(
        "{}={sso_state}; HttpOnly; SameSite=Lax; Path=/; Max-Age=600{}",
        sso_cookie_name(&state),
        if state.platform.config.identity.secure_cookies() {
            "; Secure"
        } else {
            ""
        }
    )) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

fn sso_cookie_name(state: &AppState) -> &'static str {
    if state.platform.config.identity.secure_cookies() {
        "__Host-agentry_sso"
    } else {
        "agentry_sso"
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct CallbackQuery {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub error: Option<String>,
}

/// Where the identity provider sends the browser back. Signs in and goes to the dashboard.
#[utoipa::path(get, path = "/auth/sso/callback", tag = "auth", params(CallbackQuery),
    responses((status = 303), (status = 502, body = ErrorEnvelope)), security(()))]
pub async fn sso_callback(
    State(state): State<AppState>,
    PeerIp(ip): PeerIp,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<CallbackQuery>,
) -> Result<Response, ApiError> {
    if let Some(error) = q.error {
        return Err(ApiError::new(
            ErrorCode::SsoFailed,
            format!(
                "the identity provider refused the sign-in: {}",
                error.chars().take(100).collect::<String>()
            ),
        ));
    }
    let bound = session_token(&headers, sso_cookie_name(&state))
        .is_some_and(|c| agentry_auth::token::constant_time_eq(c.as_bytes(), q.state.as_bytes()));
    if !bound {
        return Err(ApiError::new(
            ErrorCode::TokenInvalid,
            "this sign-in was not started in this browser; start again from the sign-in page",
        ));
    }
    let issued = sso::callback(
        &state.platform,
        &q.state,
        &q.code,
        &sso_redirect_uri(&state),
        &client(&headers, ip.clone()),
    )
    .await?;
    record_for_user(&state, issued.user_id, &headers, ip, "account.sign_in_sso").await;
    Ok((
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, HeaderValue::from_static("/ui/agents")),
            (header::SET_COOKIE, sign_in_cookie(&state, &issued.token)),
        ],
    )
        .into_response())
}
