//! Sign-in through an organization's OpenID Connect provider (Google, Microsoft, Okta,
//! Keycloak, …): configuration by an admin, then the authorization-code flow with PKCE, state
//! and nonce. An identity is trusted for one org only: a provider configured by org A can sign
//! people into org A, never take over an account that is not a member of A.

use crate::error::{ServiceError, ServiceResult};
use crate::platform::Platform;
use crate::secrets::token_digest;
use crate::service::auth::{self, ClientInfo, IssuedSession};
use crate::vault::Binding;
use agentry_core::ErrorCode;
use agentry_core::agent::{FieldError, is_valid_slug};
use agentry_core::authz::Role;
use agentry_core::ids::{OrgId, UserId};
use agentry_core::scope::OrgScope;
use agentry_oidc::{AuthRequest, ClientCredentials, OidcError};
use agentry_store::StoreError;
use agentry_store::sso::{self, SsoProviderRow};
use agentry_store::users;
use chrono::Utc;
use serde::Deserialize;
use uuid::Uuid;

#[derive(Debug, Clone, Deserialize)]
pub struct SsoInput {
    pub slug: String,
    pub display_name: String,
    /// The issuer URL or its `/.well-known/openid-configuration`.
    pub discovery_url: String,
    pub client_id: String,
    pub client_secret: String,
    /// When set, people the provider vouches for join the org with this role on first sign-in;
    /// otherwise they must be members (or invited) already.
    #[serde(default)]
    pub auto_join_role: Option<String>,
}

fn binding(row: Uuid, discovery_url: &str) -> Binding<'_> {
    Binding {
        purpose: "sso_client_secret",
        row,
        context: discovery_url,
    }
}

fn sso_error(step: &str, e: OidcError) -> ServiceError {
    ServiceError::new(ErrorCode::SsoFailed, format!("{step}: {e}"))
        .with_details(serde_json::json!({ "step": step, "reason": e.code() }))
}

/// A discovery URL refused by policy (private address, plain http, not a URL) is the admin's
/// input to fix, not an upstream failure.
fn discovery_error(e: OidcError) -> ServiceError {
    match e.code() {
        "oidc_blocked_url" | "oidc_insecure_url" | "oidc_invalid_url" => {
            ServiceError::validation(vec![FieldError::new("discovery_url", e.to_string())])
        }
        _ => sso_error("discovery", e),
    }
}

/// Registers a provider after checking its discovery document can be fetched (through the
/// SSRF guard) and names the same issuer.
pub async fn create(
    platform: &Platform,
    scope: OrgScope,
    input: SsoInput,
) -> ServiceResult<SsoProviderRow> {
    let mut errors = Vec::new();
    if !is_valid_slug(&input.slug) {
        errors.push(FieldError::new(
            "slug",
            "must be 1-64 lowercase letters, digits or dashes",
        ));
    }
    for (field, value) in [
        ("display_name", &input.display_name),
        ("client_id", &input.client_id),
        ("client_secret", &input.client_secret),
    ] {
        if value.trim().is_empty() || value.len() > 1000 {
            errors.push(FieldError::new(field, "must be 1-1000 characters"));
        }
    }
    if let Some(role) = &input.auto_join_role
        && !matches!(Role::parse(role), Some(Role::Viewer | Role::Member))
    {
        errors.push(FieldError::new(
            "auto_join_role",
            "must be viewer or member",
        ));
    }
    if !errors.is_empty() {
        return Err(ServiceError::validation(errors));
    }
    agentry_oidc::discover(&platform.oidc, &input.discovery_url)
        .await
        .map_err(discovery_error)?;
    let id = Uuid::now_v7();
    let secret = platform
        .vault
        .seal(
            scope,
            &binding(id, &input.discovery_url),
            &input.client_secret,
        )
        .await
        .map_err(|e| ServiceError::internal("sealing the client secret", e))?;
    let now = Utc::now();
    let row = SsoProviderRow {
        id,
        org_id: scope.org_id.0,
        slug: input.slug.clone(),
        display_name: input.display_name.trim().to_string(),
        discovery_url: input.discovery_url.trim().to_string(),
        client_id: input.client_id.trim().to_string(),
        client_secret_encrypted: secret,
        auto_join_role: input.auto_join_role,
        created_at: now,
        updated_at: now,
    };
    sso::create(&platform.db, &row).await.map_err(|e| match e {
        StoreError::Conflict => ServiceError::new(
            ErrorCode::SsoProviderExists,
            format!(
                "a sign-in provider with the slug '{}' already exists",
                input.slug
            ),
        ),
        other => other.into(),
    })?;
    Ok(row)
}

pub async fn list(platform: &Platform, scope: OrgScope) -> ServiceResult<Vec<SsoProviderRow>> {
    Ok(sso::list(&platform.db, scope).await?)
}

pub async fn delete(platform: &Platform, scope: OrgScope, id: Uuid) -> ServiceResult<()> {
    if sso::delete(&platform.db, scope, id).await? {
        Ok(())
    } else {
        Err(ServiceError::new(
            ErrorCode::SsoProviderNotFound,
            format!("no sign-in provider with id {id}"),
        ))
    }
}

/// Begins a sign-in: remembers state, nonce and PKCE verifier; returns where to send the
/// browser and the state, which the caller also binds to the browser (a cookie) so a sign-in
/// started by someone else cannot be finished in this browser (login CSRF).
pub async fn start(
    platform: &Platform,
    slug: &str,
    redirect_uri: &str,
) -> ServiceResult<(String, String)> {
    let provider = sso::find_by_slug(&platform.db, slug)
        .await?
        .ok_or_else(|| {
            ServiceError::new(
                ErrorCode::SsoProviderNotFound,
                format!("no sign-in provider '{slug}'"),
            )
        })?;
    let metadata = agentry_oidc::discover(&platform.oidc, &provider.discovery_url)
        .await
        .map_err(|e| sso_error("discovery", e))?;
    let request = AuthRequest::new(
        &metadata,
        &provider.client_id,
        redirect_uri,
        &["openid", "email", "profile"],
    )
    .map_err(|e| sso_error("authorization request", e))?;
    sso::start_login(
        &platform.db,
        &token_digest(&request.state),
        provider.id,
        &request.nonce,
        &request.code_verifier,
        Utc::now() + chrono::Duration::minutes(10),
    )
    .await?;
    Ok((request.authorize_url(), request.state.clone()))
}

/// Finishes a sign-in from the provider's redirect.
pub async fn callback(
    platform: &Platform,
    state: &str,
    code: &str,
    redirect_uri: &str,
    client: &ClientInfo,
) -> ServiceResult<IssuedSession> {
    let expired = || {
        ServiceError::new(
            ErrorCode::TokenInvalid,
            "this sign-in is unknown or took too long; start again",
        )
    };
    if state.is_empty() || code.is_empty() {
        return Err(expired());
    }
    let login = sso::take_login(&platform.db, &token_digest(state))
        .await?
        .ok_or_else(expired)?;
    let provider = sso::find_by_id(&platform.db, login.provider_id)
        .await?
        .ok_or_else(expired)?;
    let scope = OrgScope {
        org_id: OrgId(provider.org_id),
    };
    let metadata = agentry_oidc::discover(&platform.oidc, &provider.discovery_url)
        .await
        .map_err(|e| sso_error("discovery", e))?;
    let secret = platform
        .vault
        .open(
            scope,
            &binding(provider.id, &provider.discovery_url),
            &provider.client_secret_encrypted,
        )
        .await
        .map_err(|e| ServiceError::internal("client secret", e))?;
    let tokens = agentry_oidc::exchange_code(
        &platform.oidc,
        &metadata,
        &ClientCredentials::new(&provider.client_id, &secret),
        redirect_uri,
        code,
        &login.code_verifier,
    )
    .await
    .map_err(|e| sso_error("token exchange", e))?;
    let jwks = agentry_oidc::fetch_jwks(&platform.oidc, &metadata)
        .await
        .map_err(|e| sso_error("signing keys", e))?;
    let claims = agentry_oidc::verify_id_token(
        &jwks,
        &tokens.id_token,
        &metadata.issuer,
        &provider.client_id,
        &login.nonce,
        Utc::now().timestamp(),
    )
    .map_err(|e| sso_error("id token", e))?;
    let user = resolve_user(platform, &provider, scope, &claims).await?;
    auth::issue_session(platform, &user, Some(provider.org_id), false, client).await
}

async fn resolve_user(
    platform: &Platform,
    provider: &SsoProviderRow,
    scope: OrgScope,
    claims: &agentry_oidc::IdentityClaims,
) -> ServiceResult<users::UserRow> {
    let refused = |why: &str| ServiceError::new(ErrorCode::SsoFailed, why.to_string());
    let is_member = |user: UserId| async move {
        Ok::<bool, ServiceError>(
            users::memberships_of(&platform.db, user)
                .await?
                .iter()
                .any(|m| m.org_id == scope.org_id.0),
        )
    };
    if let Some(id) = users::find_identity(&platform.db, &claims.issuer, &claims.subject).await? {
        let user = users::get(&platform.db, id)
            .await?
            .ok_or_else(|| refused("account not found"))?;
        if !user.is_active() {
            return Err(refused("this account is disabled"));
        }
        if !is_member(id).await? {
            return Err(refused(
                "you are not a member of this organization; ask for an invitation",
            ));
        }
        return Ok(user);
    }
    let email = claims
        .email
        .as_deref()
        .filter(|_| claims.email_verified)
        .ok_or_else(|| refused("the identity provider did not vouch for an email address"))?;
    let user = match users::find_by_email(&platform.db, email).await? {
        // An existing account is linked only when it already belongs to this org: the org's
        // provider may not vouch for people outside it.
        Some(user) if is_member(UserId(user.id)).await? && user.is_active() => user,
        Some(_) => {
            return Err(refused(
                "an account with this email exists but is not a member of this organization; sign in with your password",
            ));
        }
        None => {
            let role = provider.auto_join_role.as_deref().ok_or_else(|| {
                refused("you are not a member of this organization; ask an admin for an invitation")
            })?;
            let name = claims.name.clone().unwrap_or_default();
            let id = crate::service::account::create_user(
                platform,
                email,
                &name,
                None,
                Some((scope.org_id, None, role)),
            )
            .await?;
            users::get(&platform.db, id)
                .await?
                .ok_or_else(|| refused("account not found"))?
        }
    };
    users::link_identity(
        &platform.db,
        &claims.issuer,
        &claims.subject,
        UserId(user.id),
    )
    .await?;
    Ok(user)
}
