//! The signed-in person's own account: profile and orgs, password, two-factor, sessions, and
//! the GDPR export and erasure. Session-only: API keys act for an org, not for a person.

use crate::AppState;
use crate::dto::List;
use crate::dto_identity::{
    ChangePassword, DisableTotp, EnableTotp, Me, OrgOut, SessionOut, SwitchOrg, TotpSetup,
    WorkspaceRole,
};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extract::ApiJson;
use crate::guard::UserCaller;
use crate::ui::session::sign_out_cookie;
use agentry_core::ErrorCode;
use agentry_core::ids::{OrgId, SessionId};
use agentry_engine::service::audit::Change;
use agentry_engine::service::{account, auth, orgs};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

async fn record(state: &AppState, me: &UserCaller, action: &'static str) {
    let change = Change::new(action, "user", me.user.0);
    crate::audit::record(state, &me.caller, me.caller.principal.org(), change).await;
}

/// Who I am, my roles in the current organization, and every organization I belong to.
#[utoipa::path(get, path = "/me", tag = "me", responses((status = 200, body = Me)), security(("session" = [])))]
pub async fn get(State(state): State<AppState>, me: UserCaller) -> Result<Json<Me>, ApiError> {
    let user = agentry_store::users::get(&state.platform.db, me.user)
        .await
        .map_err(agentry_engine::ServiceError::from)?
        .ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, "the account is gone"))?;
    let p = &me.caller.principal;
    let orgs = orgs::orgs_of(&state.platform, me.user).await?;
    Ok(Json(Me {
        id: user.id.to_string(),
        email: user.email,
        name: user.name,
        totp_enabled: user.totp_secret_encrypted.is_some(),
        org_id: p.org_id.0.to_string(),
        org_role: p.org_role.map(|r| r.as_str().to_string()),
        workspace_roles: p
            .workspace_roles
            .iter()
            .map(|(w, r)| WorkspaceRole {
                workspace_id: w.0.to_string(),
                role: r.as_str().to_string(),
            })
            .collect(),
        orgs: orgs
            .into_iter()
            .map(|o| OrgOut {
                id: o.id.to_string(),
                name: o.name,
                created_at: o.created_at,
            })
            .collect(),
    }))
}

/// Erase my account (GDPR Art. 17): personal data is removed, my sessions and keys end, audit
/// entries keep only a pseudonymous id. Refused while I am an organization's last owner.
#[utoipa::path(delete, path = "/me", tag = "me",
    responses((status = 204), (status = 409, body = ErrorEnvelope)), security(("session" = [])))]
pub async fn erase(State(state): State<AppState>, me: UserCaller) -> Result<Response, ApiError> {
    record(&state, &me, "account.erase").await;
    account::erase(&state.platform, me.user).await?;
    Ok((
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, sign_out_cookie(&state))],
    )
        .into_response())
}

/// Everything stored about me, machine-readable (GDPR Art. 15/20).
#[utoipa::path(get, path = "/me/export", tag = "me", responses((status = 200, body = Object)), security(("session" = [])))]
pub async fn export(
    State(state): State<AppState>,
    me: UserCaller,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(account::export(&state.platform, me.user).await?))
}

/// Change my password; every other session of mine ends.
#[utoipa::path(post, path = "/me/password", tag = "me", request_body = ChangePassword,
    responses((status = 204), (status = 401, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)),
    security(("session" = [])))]
pub async fn change_password(
    State(state): State<AppState>,
    me: UserCaller,
    ApiJson(body): ApiJson<ChangePassword>,
) -> Result<StatusCode, ApiError> {
    account::change_password(
        &state.platform,
        me.user,
        me.caller.principal.session_id,
        &body.current_password,
        &body.new_password,
    )
    .await?;
    record(&state, &me, "account.password_change").await;
    Ok(StatusCode::NO_CONTENT)
}

/// A new two-factor secret to put in an authenticator app (not active until confirmed).
#[utoipa::path(post, path = "/me/totp/setup", tag = "me", responses((status = 200, body = TotpSetup)), security(("session" = [])))]
pub async fn totp_setup(me: UserCaller) -> Result<Json<TotpSetup>, ApiError> {
    let email = match &me.caller.principal.actor {
        agentry_engine::service::principal::Actor::User { email, .. } => email.clone(),
        _ => String::new(),
    };
    let e = account::begin_totp(&email)?;
    Ok(Json(TotpSetup {
        secret: e.secret,
        otpauth_uri: e.otpauth_uri,
    }))
}

/// Turn on two-factor sign-in: current password + a code from the app.
#[utoipa::path(post, path = "/me/totp", tag = "me", request_body = EnableTotp,
    responses((status = 204), (status = 401, body = ErrorEnvelope)), security(("session" = [])))]
pub async fn totp_enable(
    State(state): State<AppState>,
    me: UserCaller,
    ApiJson(body): ApiJson<EnableTotp>,
) -> Result<StatusCode, ApiError> {
    account::enable_totp(
        &state.platform,
        me.user,
        &body.current_password,
        &body.secret,
        &body.code,
    )
    .await?;
    record(&state, &me, "account.totp_enable").await;
    Ok(StatusCode::NO_CONTENT)
}

/// Turn off two-factor sign-in (current password required).
#[utoipa::path(post, path = "/me/totp/disable", tag = "me", request_body = DisableTotp,
    responses((status = 204), (status = 401, body = ErrorEnvelope)), security(("session" = [])))]
pub async fn totp_disable(
    State(state): State<AppState>,
    me: UserCaller,
    ApiJson(body): ApiJson<DisableTotp>,
) -> Result<StatusCode, ApiError> {
    account::disable_totp(&state.platform, me.user, &body.current_password).await?;
    record(&state, &me, "account.totp_disable").await;
    Ok(StatusCode::NO_CONTENT)
}

/// My live sessions (this one is marked `current`).
#[utoipa::path(get, path = "/me/sessions", tag = "me", responses((status = 200, body = List<SessionOut>)), security(("session" = [])))]
pub async fn sessions(
    State(state): State<AppState>,
    me: UserCaller,
) -> Result<Json<List<SessionOut>>, ApiError> {
    let current = me.caller.principal.session_id.map(|s| s.0);
    let rows = agentry_store::sessions::list_for_user(&state.platform.db, me.user)
        .await
        .map_err(agentry_engine::ServiceError::from)?;
    Ok(Json(List {
        data: rows
            .into_iter()
            .map(|r| SessionOut::from_row(r, current))
            .collect(),
        next_cursor: None,
    }))
}

/// End one of my sessions.
#[utoipa::path(delete, path = "/me/sessions/{id}", tag = "me",
    responses((status = 204), (status = 404, body = ErrorEnvelope)), security(("session" = [])))]
pub async fn revoke_session(
    State(state): State<AppState>,
    me: UserCaller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let not_found = || {
        ApiError::new(
            ErrorCode::SessionNotFound,
            format!("no session with id {id}"),
        )
    };
    let sid: uuid::Uuid = id.parse().map_err(|_| not_found())?;
    let ended = agentry_store::sessions::revoke(&state.platform.db, me.user, SessionId(sid))
        .await
        .map_err(agentry_engine::ServiceError::from)?;
    if !ended {
        return Err(not_found());
    }
    record(&state, &me, "account.session_revoke").await;
    Ok(StatusCode::NO_CONTENT)
}

/// Sign out everywhere: every session of mine ends, this one included.
#[utoipa::path(post, path = "/me/sign-out-everywhere", tag = "me", responses((status = 204)), security(("session" = [])))]
pub async fn sign_out_everywhere(
    State(state): State<AppState>,
    me: UserCaller,
) -> Result<Response, ApiError> {
    agentry_store::sessions::revoke_all(&state.platform.db, me.user, None)
        .await
        .map_err(agentry_engine::ServiceError::from)?;
    record(&state, &me, "account.sign_out_everywhere").await;
    Ok((
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, sign_out_cookie(&state))],
    )
        .into_response())
}

/// Switch the organization this session acts in.
#[utoipa::path(post, path = "/me/org", tag = "me", request_body = SwitchOrg,
    responses((status = 204), (status = 404, body = ErrorEnvelope)), security(("session" = [])))]
pub async fn switch_org(
    State(state): State<AppState>,
    me: UserCaller,
    ApiJson(body): ApiJson<SwitchOrg>,
) -> Result<StatusCode, ApiError> {
    auth::switch_org(&state.platform, &me.caller.principal, OrgId(body.org_id)).await?;
    Ok(StatusCode::NO_CONTENT)
}
