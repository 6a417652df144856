//! Authentication, authorization and rate limiting of `/api/v1`, in the types.
//!
//! A handler declares what it does by the guard it extracts: `OrgGuard<perm::ProvidersManage>`
//! or `WsGuard<perm::AgentsWrite>`. The guard authenticates the caller (bearer API key, or the
//! session cookie plus a cross-origin check), authorizes the action with the one permission
//! matrix, rate-limits the caller, and hands the handler the only tenancy scope it may use. A
//! handler without a guard has no scope, so it cannot touch tenant data. Paths play no part:
//! `/API/V1`, `//api/v1` or `%2e%2e` variants either match no route or reach the same guard.

use crate::AppState;
use crate::error::ApiError;
use agentry_core::ErrorCode;
use agentry_core::authz::Action;
use agentry_core::ids::WorkspaceId;
use agentry_core::scope::{OrgScope, WorkspaceScope};
use agentry_engine::service::auth::{self, SessionState};
use agentry_engine::service::principal::{Principal, RequestMeta};
use agentry_ratelimit::RouteClass;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use std::marker::PhantomData;

/// The header that picks the workspace of a workspace-level request.
pub const WORKSPACE_HEADER: &str = "x-agentry-workspace";

/// A permission a route needs: an action of the matrix and the rate-limit class it counts in.
pub trait Permission: Send + Sync + 'static {
    const ACTION: Action;
    const CLASS: RouteClass = RouteClass::General;
}

/// The permissions routes can ask for, one marker type each.
pub mod perm {
    use super::{Action, Permission, RouteClass};

    macro_rules! permission {
        ($($name:ident => $action:ident $(, $class:ident)?;)*) => {$(
            pub struct $name;
            impl Permission for $name {
                const ACTION: Action = Action::$action;
                $(const CLASS: RouteClass = RouteClass::$class;)?
            }
        )*};
    }

    permission! {
        OrgRead => OrgRead;
        OrgManage => OrgManage;
        WorkspacesManage => WorkspacesManage;
        MembersManage => MembersManage;
        ProvidersRead => ProvidersRead;
        ProvidersManage => ProvidersManage;
        ApiKeysManage => ApiKeysManage;
        SsoManage => SsoManage;
        AuditRead => AuditRead;
        CostsRead => CostsRead;
        BudgetsManage => BudgetsManage;
        GuardrailsManage => GuardrailsManage;
        AgentsRead => AgentsRead;
        AgentsWrite => AgentsWrite;
        RunsRead => RunsRead;
        RunsStart => RunsExecute, RunStart;
        RunsCancel => RunsExecute;
        WorkflowsRead => WorkflowsRead;
        WorkflowsWrite => WorkflowsWrite;
    }
}

/// An authenticated caller (any role), with the request's metadata for the audit log.
pub struct Caller {
    pub principal: Principal,
    pub meta: RequestMeta,
}

/// A caller allowed to perform the org-level action `P`.
pub struct OrgGuard<P: Permission> {
    pub caller: Caller,
    pub scope: OrgScope,
    _p: PhantomData<P>,
}

/// A caller allowed to perform the workspace-level action `P` in `scope`'s workspace.
pub struct WsGuard<P: Permission> {
    pub caller: Caller,
    pub scope: WorkspaceScope,
    _p: PhantomData<P>,
}

/// A signed-in person (session cookie); API keys are refused: these routes are about the
/// person, not about an org.
pub struct UserCaller {
    pub caller: Caller,
    pub user: agentry_core::ids::UserId,
}

pub fn request_meta(parts: &Parts) -> RequestMeta {
    RequestMeta {
        ip: client_ip(parts),
        user_agent: parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        request_id: parts
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    }
}

/// Where a sign-in comes from, for the session list.
pub fn client_info(
    headers: &HeaderMap,
    ip: Option<String>,
) -> agentry_engine::service::auth::ClientInfo {
    agentry_engine::service::auth::ClientInfo {
        ip,
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    }
}

/// The peer address. `X-Forwarded-For` is not trusted: a client could choose its own address
/// and dodge per-IP throttling. Behind a proxy, configure the proxy to pass the real address.
pub fn client_ip(parts: &Parts) -> Option<String> {
    parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_string())
}

fn bearer(headers: &HeaderMap) -> Option<Result<&str, ApiError>> {
    let value = headers.get(header::AUTHORIZATION)?;
    Some(
        value
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::Unauthorized,
                    "send an API key as 'Authorization: Bearer <key>'",
                )
            }),
    )
}

/// The session token from the cookie, if any.
pub fn session_token<'a>(headers: &'a HeaderMap, cookie_name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == cookie_name && !value.is_empty()).then_some(value)
        })
}

/// Cross-origin protection for cookie-authenticated requests (bearer requests never carry
/// ambient credentials, so they need none).
pub fn check_csrf(parts: &Parts, state: &AppState) -> Result<(), ApiError> {
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    agentry_auth::csrf::check(
        parts.method.as_str(),
        header("sec-fetch-site"),
        header("origin"),
        header("host"),
        &state.trusted_origins,
    )
    .map_err(|e| ApiError::new(ErrorCode::CsrfRejected, e.to_string()))
}

async fn authenticate(parts: &mut Parts, state: &AppState) -> Result<Caller, ApiError> {
    if let Some(cached) = parts.extensions.get::<CallerCache>() {
        return Ok(Caller {
            principal: cached.0.clone(),
            meta: request_meta(parts),
        });
    }
    let principal = match bearer(&parts.headers) {
        Some(token) => auth::authenticate_key(&state.platform, token?)
            .await?
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::Unauthorized,
                    "the API key is not valid (unknown, revoked or expired)",
                )
            })?,
        None => {
            let token = session_token(&parts.headers, state.cookie_name()).ok_or_else(|| {
                ApiError::new(
                    ErrorCode::Unauthorized,
                    "sign in, or send an API key as 'Authorization: Bearer <key>'",
                )
            })?;
            check_csrf(parts, state)?;
            match auth::authenticate_session(&state.platform, token).await? {
                Some(SessionState::Active(principal, _)) => principal,
                Some(SessionState::MfaPending(_)) => {
                    return Err(ApiError::new(
                        ErrorCode::MfaRequired,
                        "finish signing in with the code from your authenticator app",
                    ));
                }
                None => {
                    return Err(ApiError::new(
                        ErrorCode::Unauthorized,
                        "the session has ended; sign in again",
                    ));
                }
            }
        }
    };
    parts.extensions.insert(CallerCache(principal.clone()));
    Ok(Caller {
        principal,
        meta: request_meta(parts),
    })
}

#[derive(Clone)]
struct CallerCache(Principal);

async fn rate_limit(state: &AppState, caller: &Caller, class: RouteClass) -> Result<(), ApiError> {
    let key = match &caller.principal.actor {
        agentry_engine::service::principal::Actor::User { id, .. } => format!("user:{}", id.0),
        agentry_engine::service::principal::Actor::ApiKey { id, .. } => format!("key:{id}"),
        agentry_engine::service::principal::Actor::System => return Ok(()),
    };
    let policy = state.policies.get(class);
    let decision = state.limiter.check(policy, &key).await;
    if decision.allowed {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::RateLimited,
            format!(
                "too many requests ({} per {} s allowed); retry after the Retry-After header",
                decision.limit,
                decision.window.as_secs()
            ),
        )
        .with_headers(decision.headers()))
    }
}

fn workspace_header(parts: &Parts) -> Result<Option<WorkspaceId>, ApiError> {
    match parts.headers.get(WORKSPACE_HEADER) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .map(Some)
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::WorkspaceNotFound,
                    "X-Agentry-Workspace must be a workspace id",
                )
            }),
    }
}

impl<P: Permission> FromRequestParts<AppState> for OrgGuard<P> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = authenticate(parts, state).await?;
        rate_limit(state, &caller, P::CLASS).await?;
        let scope = caller.principal.authorize_org(P::ACTION)?;
        Ok(Self {
            caller,
            scope,
            _p: PhantomData,
        })
    }
}

impl<P: Permission> FromRequestParts<AppState> for WsGuard<P> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = authenticate(parts, state).await?;
        rate_limit(state, &caller, P::CLASS).await?;
        let requested = workspace_header(parts)?;
        if let Some(ws) = requested {
            // The header names a workspace; it must be one of the caller's org (else: not found,
            // exactly like a workspace that does not exist).
            agentry_engine::service::orgs::workspace(&state.platform, caller.principal.org(), ws)
                .await?;
        }
        let scope = caller.principal.authorize_workspace(P::ACTION, requested)?;
        Ok(Self {
            caller,
            scope,
            _p: PhantomData,
        })
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = authenticate(parts, state).await?;
        rate_limit(state, &caller, RouteClass::General).await?;
        Ok(caller)
    }
}

impl FromRequestParts<AppState> for UserCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let user = caller.principal.actor.user_id().ok_or_else(|| {
            ApiError::new(
                ErrorCode::Forbidden,
                "this route is about a person's own account; sign in as that person (API keys cannot use it)",
            )
        })?;
        Ok(Self { caller, user })
    }
}

/// True for methods that change state (CSRF applies to them).
pub fn is_unsafe(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The client's address (see [`client_ip`]); `None` when the server was not started with
/// connection info (in-process tests).
pub struct PeerIp(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for PeerIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(PeerIp(client_ip(parts)))
    }
}
