//! Who is signed in to the dashboard: a server-side session whose random id is the
//! `__Host-agentry_session` cookie (`agentry_session` over plain http, where browsers refuse
//! `__Host-` cookies). The cookie is `HttpOnly`, `SameSite=Lax`, `Secure` over TLS; state-changing
//! requests are additionally checked for a cross-site origin ([`crate::guard::check_csrf`]).

use super::page;
use crate::AppState;
use crate::guard::{self, check_csrf, is_unsafe};
use agentry_core::authz::Action;
use agentry_core::scope::{OrgScope, WorkspaceScope};
use agentry_engine::ServiceResult;
use agentry_engine::service::audit::{self, Change};
use agentry_engine::service::auth::{self, SessionState};
use agentry_engine::service::principal::{Actor, Principal, RequestMeta};
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::value::Serde;
use minijinja::{Value, context};
use serde::Serialize;

pub const LOGIN: &str = "/ui/login";
pub const MFA: &str = "/ui/login/mfa";
pub const START: &str = "/ui/agents";

/// The signed-in person of a dashboard route, with the workspace the dashboard shows. Without a
/// valid session the request is redirected to the sign-in page.
pub struct Session {
    pub principal: Principal,
    /// The default workspace, readable by the caller.
    pub scope: WorkspaceScope,
    /// Where the request came from, for the audit log.
    pub meta: RequestMeta,
}

/// The entries of the top navigation the signed-in person may open, and who they are.
#[derive(Debug, Serialize)]
struct Menu {
    members: bool,
    api_keys: bool,
    costs: bool,
    audit: bool,
    email: String,
}

// The error is the page the handler returns as it is; boxing it would only move the cost.
#[allow(clippy::result_large_err)]
impl Session {
    /// The workspace scope for `action`, or a 403 page.
    pub fn ws(&self, action: Action) -> Result<WorkspaceScope, Response> {
        self.principal
            .authorize_workspace(action, Some(self.scope.workspace_id))
            .map_err(page::service_error)
    }

    /// The org scope for `action`, or a 403 page.
    pub fn org(&self, action: Action) -> Result<OrgScope, Response> {
        self.principal
            .authorize_org(action)
            .map_err(page::service_error)
    }

    /// Whether the caller may perform the org-level `action` (to show or hide its forms).
    pub fn may(&self, action: Action) -> bool {
        self.principal.authorize_org(action).is_ok()
    }

    /// The signed-in person's email (empty for a principal that is not a person).
    pub fn email(&self) -> &str {
        match &self.principal.actor {
            Actor::User { email, .. } => email,
            _ => "",
        }
    }

    /// Renders a page for this person: the navigation only offers what their role may open.
    pub fn render(
        &self,
        status: StatusCode,
        template: &str,
        nav: page::Nav,
        ctx: Value,
    ) -> Response {
        let menu = Menu {
            members: self.may(Action::OrgRead),
            api_keys: self.may(Action::ApiKeysManage),
            costs: self.may(Action::CostsRead),
            audit: self.may(Action::AuditRead),
            email: self.email().to_string(),
        };
        page::render(
            status,
            template,
            nav,
            context! { menu => Serde(&menu), ..ctx },
        )
    }

    /// Writes the audit entry of a change this person just made in `org`.
    pub async fn record(&self, state: &AppState, org: OrgScope, change: Change) {
        audit::record(
            &state.platform,
            org,
            &self.principal.actor,
            &self.meta,
            change,
        )
        .await;
    }
}

/// Refuses a state-changing request sent by another site (for the public forms, which have no
/// [`Session`] to do it).
pub struct SameOrigin;

fn cross_site() -> Response {
    page::error(
        StatusCode::FORBIDDEN,
        "Forbidden",
        "This form was sent from another site, so it was refused.",
    )
}

impl FromRequestParts<AppState> for SameOrigin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        if is_unsafe(&parts.method) && check_csrf(parts, state).is_err() {
            return Err(cross_site());
        }
        Ok(SameOrigin)
    }
}

impl FromRequestParts<AppState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        SameOrigin::from_request_parts(parts, state).await?;
        match current(&parts.headers, state).await {
            Ok(Some(SessionState::Active(principal, _))) => {
                let scope = principal
                    .authorize_workspace(Action::AgentsRead, None)
                    .map_err(page::service_error)?;
                Ok(Session {
                    principal,
                    scope,
                    meta: guard::request_meta(parts),
                })
            }
            Ok(Some(SessionState::MfaPending(_))) => Err(Redirect::to(MFA).into_response()),
            Ok(None) => Err(Redirect::to(LOGIN).into_response()),
            Err(e) => Err(page::service_error(e)),
        }
    }
}

/// The session of the cookie, if there is one and it is still valid.
pub async fn current(headers: &HeaderMap, state: &AppState) -> ServiceResult<Option<SessionState>> {
    match guard::session_token(headers, state.cookie_name()) {
        Some(token) => auth::authenticate_session(&state.platform, token).await,
        None => Ok(None),
    }
}

/// `GET /`: the start page when signed in, else the sign-in page.
pub async fn home(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match current(&headers, &state).await {
        Ok(Some(SessionState::Active(..))) => Redirect::to(START).into_response(),
        Ok(Some(SessionState::MfaPending(_))) => Redirect::to(MFA).into_response(),
        Ok(None) => Redirect::to(LOGIN).into_response(),
        Err(e) => page::service_error(e),
    }
}

/// The `Set-Cookie` value for a new session (the token is hex: always cookie-safe).
pub fn sign_in_cookie(state: &AppState, token: &str) -> HeaderValue {
    let secure = if state.platform.config.identity.secure_cookies() {
        "; Secure"
    } else {
        ""
    };
    let max_age = state.platform.config.identity.session_absolute.as_secs();
    HeaderValue::from_str(&format!(
        "{}={token}; HttpOnly; SameSite=Lax; Path=/; Max-Age={max_age}{secure}",
        state.cookie_name()
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

pub fn sign_out_cookie(state: &AppState) -> HeaderValue {
    let secure = if state.platform.config.identity.secure_cookies() {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{}=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0{secure}",
        state.cookie_name()
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}
