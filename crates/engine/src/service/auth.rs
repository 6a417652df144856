//! Authentication: API keys and browser sessions become a [`Principal`]; passwords and TOTP
//! codes become sessions. Throttling of sign-in attempts is the HTTP layer's (it knows the
//! client address); everything here answers the same way, in about the same time, whether or
//! not an account exists.

use crate::error::{ServiceError, ServiceResult};
use crate::platform::Platform;
use crate::secrets::token_digest;
use crate::service::principal::{Actor, Principal};
use crate::vault::{Binding, INSTANCE};
use agentry_auth::{password, totp};
use agentry_core::ErrorCode;
use agentry_core::authz::Role;
use agentry_core::ids::{OrgId, SessionId, UserId, WorkspaceId};
use agentry_core::scope::OrgScope;
use agentry_store::sessions::{self, NewSession, SessionRow};
use agentry_store::users::{self, UserRow};
use agentry_store::{api_keys, orgs};
use chrono::{Duration, Utc};
use uuid::Uuid;

/// Finds the principal for a bearer token, or `None` for an unknown, revoked or expired key.
pub async fn authenticate_key(
    platform: &Platform,
    token: &str,
) -> ServiceResult<Option<Principal>> {
    if !token.starts_with("agt_") || token.len() > 200 {
        return Ok(None);
    }
    let Some(row) = api_keys::find_active_by_hash(&platform.db, &token_digest(token)).await? else {
        return Ok(None);
    };
    let now = Utc::now();
    if row.expires_at.is_some_and(|t| t <= now) {
        return Ok(None);
    }
    let Some(role) = Role::parse(&row.role) else {
        return Ok(None);
    };
    // Record use at most once a minute per key: authentication stays a read.
    if row
        .last_used_at
        .is_none_or(|t| now - t > Duration::seconds(60))
    {
        let _ = api_keys::touch(&platform.db, row.id, now).await;
    }
    let scope = row.default_scope();
    let (org_role, workspace_roles) = if row.is_org_scoped() {
        (Some(role), Vec::new())
    } else {
        (None, vec![(scope.workspace_id, role)])
    };
    Ok(Some(Principal {
        actor: Actor::ApiKey {
            id: row.id,
            prefix: row.prefix.clone(),
        },
        org_id: scope.org_id,
        org_role,
        workspace_roles,
        default_workspace: Some(scope.workspace_id),
        session_id: None,
    }))
}

/// A browser session, as found from its cookie.
pub enum SessionState {
    /// Signed in: the principal in the session's current organization.
    Active(Principal, SessionRow),
    /// The password was right; the TOTP code is still due.
    MfaPending(SessionRow),
}

/// Resolves a session cookie. Expired (absolute or idle) sessions are revoked on sight.
pub async fn authenticate_session(
    platform: &Platform,
    token: &str,
) -> ServiceResult<Option<SessionState>> {
    if token.is_empty() || token.len() > 200 {
        return Ok(None);
    }
    let Some(found) = sessions::find_live_with_user(&platform.db, &token_digest(token)).await?
    else {
        return Ok(None);
    };
    let session = found.session;
    let now = Utc::now();
    let idle =
        Duration::from_std(platform.config.identity.session_idle).unwrap_or(Duration::hours(8));
    if session.expires_at <= now || session.last_seen_at + idle <= now {
        let _ =
            sessions::revoke(&platform.db, UserId(session.user_id), SessionId(session.id)).await;
        return Ok(None);
    }
    if !found.active {
        return Ok(None);
    }
    if session.mfa_pending {
        // A half-finished sign-in is short-lived whatever the configured idle time.
        if session.created_at + Duration::minutes(10) <= now {
            return Ok(None);
        }
        return Ok(Some(SessionState::MfaPending(session)));
    }
    if now - session.last_seen_at > Duration::seconds(60) {
        let _ = sessions::touch(&platform.db, SessionId(session.id), now).await;
    }
    let principal = principal_for(
        platform,
        UserId(session.user_id),
        found.email,
        &found.memberships,
        session.org_id,
        Some(session.id),
    )
    .await?;
    Ok(Some(SessionState::Active(principal, session)))
}

/// The principal of a signed-in user in `org` (or their first org).
async fn principal_for(
    platform: &Platform,
    user: UserId,
    email: String,
    memberships: &[users::MembershipRow],
    org: Option<Uuid>,
    session_id: Option<Uuid>,
) -> ServiceResult<Principal> {
    let org_id = org
        .filter(|o| memberships.iter().any(|m| m.org_id == *o))
        .or_else(|| memberships.first().map(|m| m.org_id));
    let mut principal = Principal {
        actor: Actor::User { id: user, email },
        org_id: OrgId(org_id.unwrap_or_else(Uuid::nil)),
        org_role: None,
        workspace_roles: Vec::new(),
        default_workspace: None,
        session_id: session_id.map(SessionId),
    };
    let Some(org_id) = org_id else {
        return Ok(principal);
    };
    for m in memberships.iter().filter(|m| m.org_id == org_id) {
        let Some(role) = Role::parse(&m.role) else {
            continue;
        };
        if m.is_org_level() {
            principal.org_role = Some(role);
        } else {
            principal
                .workspace_roles
                .push((WorkspaceId(m.workspace_id), role));
        }
    }
    principal.default_workspace = if principal.org_role.is_some() {
        platform.default_workspace(principal.org()).await?
    } else {
        principal.workspace_roles.first().map(|(w, _)| *w)
    };
    Ok(principal)
}
/// A new session: the token goes into the cookie, only its digest into the database.
pub struct IssuedSession {
    pub token: String,
    pub session_id: SessionId,
    pub user_id: UserId,
    pub mfa_required: bool,
}

/// Where a sign-in comes from (stored with the session, listed to its user).
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

const WRONG: &str = "the email or password is not right";

/// Signs in with email and password. With TOTP enabled, the session is only "MFA pending"
/// until [`complete_mfa`].
pub async fn sign_in_password(
    platform: &Platform,
    email: &str,
    password_text: &str,
    client: &ClientInfo,
) -> ServiceResult<IssuedSession> {
    let user = users::find_by_email(&platform.db, email).await?;
    let password_text = password_text.to_string();
    let hash = user.as_ref().and_then(|u| u.password_hash.clone());
    // argon2 is deliberately slow: keep it off the async threads.
    let ok = tokio::task::spawn_blocking(move || match hash {
        Some(h) => password::verify(&password_text, &h),
        None => {
            password::verify_dummy(&password_text);
            false
        }
    })
    .await
    .map_err(|e| ServiceError::internal("password check", e))?;
    let user = match user {
        Some(u) if ok && u.is_active() => u,
        _ => return Err(ServiceError::new(ErrorCode::InvalidCredentials, WRONG)),
    };
    issue_session(
        platform,
        &user,
        None,
        user.totp_secret_encrypted.is_some(),
        client,
    )
    .await
}

/// Signs a user in (any method): a fresh session id every time, never a reused one.
pub async fn issue_session(
    platform: &Platform,
    user: &UserRow,
    org: Option<Uuid>,
    mfa_pending: bool,
    client: &ClientInfo,
) -> ServiceResult<IssuedSession> {
    let token = agentry_auth::token::random_token("", 32)
        .map_err(|e| ServiceError::internal("session token", e))?;
    let absolute =
        Duration::from_std(platform.config.identity.session_absolute).unwrap_or(Duration::days(7));
    let default_org = match org {
        Some(o) => Some(o),
        None => users::memberships_of(&platform.db, UserId(user.id))
            .await?
            .first()
            .map(|m| m.org_id),
    };
    let session_id = sessions::create(
        &platform.db,
        NewSession {
            token_hash: &token_digest(&token),
            user_id: UserId(user.id),
            org_id: default_org,
            mfa_pending,
            ip: client.ip.as_deref(),
            user_agent: client.user_agent.as_deref(),
            expires_at: Utc::now() + absolute,
        },
    )
    .await?;
    Ok(IssuedSession {
        token,
        session_id,
        user_id: UserId(user.id),
        mfa_required: mfa_pending,
    })
}

/// Finishes a sign-in with the authenticator code: the pending session ends and a new one (a
/// new id) begins.
pub async fn complete_mfa(
    platform: &Platform,
    pending: &SessionRow,
    code: &str,
    client: &ClientInfo,
) -> ServiceResult<IssuedSession> {
    let user = users::get(&platform.db, UserId(pending.user_id))
        .await?
        .filter(UserRow::is_active)
        .ok_or_else(|| ServiceError::new(ErrorCode::InvalidCredentials, "the code is not right"))?;
    check_totp(platform, &user, code).await?;
    sessions::revoke(&platform.db, UserId(user.id), SessionId(pending.id)).await?;
    issue_session(platform, &user, pending.org_id, false, client).await
}

/// Checks a TOTP code of the user (and burns its time step so it cannot be replayed).
pub async fn check_totp(platform: &Platform, user: &UserRow, code: &str) -> ServiceResult<()> {
    let wrong = || ServiceError::new(ErrorCode::InvalidCredentials, "the code is not right");
    let Some(enc) = user.totp_secret_encrypted.as_deref() else {
        return Err(wrong());
    };
    let secret_b32 = platform
        .vault
        .open(INSTANCE, &totp_binding(UserId(user.id)), enc)
        .await
        .map_err(|e| ServiceError::internal("totp secret", e))?;
    let secret = totp::decode_base32(&secret_b32).ok_or_else(wrong)?;
    let now = u64::try_from(Utc::now().timestamp()).unwrap_or(0);
    let last = user.totp_last_step.and_then(|s| u64::try_from(s).ok());
    let step = totp::verify(&secret, code.trim(), now, last).ok_or_else(wrong)?;
    let step = i64::try_from(step).map_err(|_| wrong())?;
    if !users::use_totp_step(&platform.db, UserId(user.id), step).await? {
        return Err(wrong());
    }
    Ok(())
}

pub(crate) fn totp_binding(user: UserId) -> Binding<'static> {
    Binding {
        purpose: "user_totp_secret",
        row: user.0,
        context: "",
    }
}

/// Switches the session's current organization (the user must be a member there).
pub async fn switch_org(
    platform: &Platform,
    principal: &Principal,
    org: OrgId,
) -> ServiceResult<()> {
    let (Some(user), Some(session)) = (principal.actor.user_id(), principal.session_id) else {
        return Err(ServiceError::new(
            ErrorCode::Forbidden,
            "only a signed-in user can switch organizations",
        ));
    };
    let member = users::memberships_of(&platform.db, user)
        .await?
        .iter()
        .any(|m| m.org_id == org.0);
    let exists = orgs::get(&platform.db, OrgScope { org_id: org })
        .await?
        .is_some();
    if !member || !exists {
        return Err(ServiceError::new(
            ErrorCode::OrgNotFound,
            format!("no organization with id {}", org.0),
        ));
    }
    sessions::set_org(&platform.db, session, org.0).await?;
    Ok(())
}
