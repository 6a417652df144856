//! API keys: org- or workspace-scoped, each with a role and an optional expiry. Created keys
//! are shown once; only their SHA-256 digest is stored. Revocation is a row update that every
//! replica sees on the next request (authentication reads the row each time).

use crate::error::{ServiceError, ServiceResult};
use crate::platform::Platform;
use crate::secrets::token_digest;
use agentry_core::ErrorCode;
use agentry_core::agent::FieldError;
use agentry_core::authz::Role;
use agentry_core::ids::{UserId, WorkspaceId};
use agentry_core::scope::{OrgScope, WorkspaceScope};
use agentry_store::api_keys::{self, ApiKeyRow, NewApiKey};
use chrono::{DateTime, Utc};

/// What a new key may do.
pub struct KeySpec<'a> {
    pub name: &'a str,
    pub role: Role,
    /// `Some`: the key works only in this workspace; `None`: in the whole org.
    pub workspace: Option<WorkspaceId>,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_by: Option<UserId>,
}

/// Creates a key and returns it with its plaintext, which is never stored or shown again.
/// `creator_role` is the role of whoever asks: nobody can mint a key stronger than themselves.
pub async fn create(
    platform: &Platform,
    scope: OrgScope,
    creator_role: Option<Role>,
    spec: KeySpec<'_>,
) -> ServiceResult<(ApiKeyRow, String)> {
    let name = spec.name.trim();
    let mut errors = Vec::new();
    if name.is_empty() || name.chars().count() > 200 {
        errors.push(FieldError::new("name", "must be 1-200 characters"));
    }
    if spec.expires_at.is_some_and(|t| t <= Utc::now()) {
        errors.push(FieldError::new("expires_at", "must be in the future"));
    }
    if !errors.is_empty() {
        return Err(ServiceError::validation(errors));
    }
    if creator_role.is_none_or(|r| r < spec.role) {
        return Err(ServiceError::new(
            ErrorCode::Forbidden,
            format!(
                "you cannot create a key with the role '{}', which is above your own",
                spec.role
            ),
        ));
    }
    let workspace = match spec.workspace {
        Some(ws) => {
            crate::service::orgs::workspace(platform, scope, ws)
                .await?
                .id
        }
        None => crate::service::orgs::workspaces(platform, scope)
            .await?
            .first()
            .map(|w| w.id)
            .unwrap_or(agentry_store::orgs::DEFAULT_WORKSPACE.0),
    };
    insert(
        platform,
        WorkspaceScope {
            org_id: scope.org_id,
            workspace_id: WorkspaceId(workspace),
        },
        name,
        spec.role,
        spec.workspace.is_none(),
        spec.expires_at,
        spec.created_by,
    )
    .await
}

async fn insert(
    platform: &Platform,
    scope: WorkspaceScope,
    name: &str,
    role: Role,
    org_scoped: bool,
    expires_at: Option<DateTime<Utc>>,
    created_by: Option<UserId>,
) -> ServiceResult<(ApiKeyRow, String)> {
    let key = crate::secrets::generate_api_key()
        .map_err(|e| ServiceError::internal("generating an api key", e))?;
    let row = api_keys::create(
        &platform.db,
        scope,
        NewApiKey {
            name,
            key_hash: &token_digest(&key),
            prefix: &key[..12],
            role: role.as_str(),
            org_scoped,
            created_by: created_by.map(|u| u.0),
            expires_at,
        },
    )
    .await?;
    Ok((row, key))
}

pub async fn list(platform: &Platform, scope: OrgScope) -> ServiceResult<Vec<ApiKeyRow>> {
    Ok(api_keys::list(&platform.db, scope).await?)
}

/// Revokes a key of the org; returns it as it was (for the audit log).
pub async fn revoke(
    platform: &Platform,
    scope: OrgScope,
    id: uuid::Uuid,
) -> ServiceResult<ApiKeyRow> {
    let not_found = || {
        ServiceError::new(
            ErrorCode::ApiKeyNotFound,
            format!("no API key with id {id}"),
        )
    };
    let before = api_keys::list(&platform.db, scope)
        .await?
        .into_iter()
        .find(|k| k.id == id)
        .ok_or_else(not_found)?;
    if api_keys::revoke(&platform.db, scope, id).await? {
        Ok(before)
    } else {
        Err(not_found())
    }
}

/// What first start created.
pub struct Bootstrap {
    /// The admin API key, when one was generated now (printed once).
    pub api_key: Option<String>,
    /// The admin account's email and generated password, when the account was created now.
    pub account: Option<(String, Option<String>)>,
}

/// On start: makes sure the operator can get in. The default org gets an owner account
/// (`AGENTRY_ADMIN_EMAIL`, default `admin@localhost.localdomain`) whose password is
/// `AGENTRY_ADMIN_PASSWORD` or generated and printed once, and an owner API key: the
/// `AGENTRY_ADMIN_TOKEN` when set (registered once), else generated on first start only.
pub async fn bootstrap_admin(
    platform: &Platform,
    env_token: Option<&str>,
    admin_email: &str,
    admin_password: Option<&str>,
) -> ServiceResult<Bootstrap> {
    let scope = agentry_store::orgs::default_scope();
    let mut out = Bootstrap {
        api_key: None,
        account: None,
    };
    let owner = match agentry_store::users::find_by_email(&platform.db, admin_email).await? {
        Some(u) => Some(UserId(u.id)),
        None if agentry_store::users::count_owners(&platform.db, scope.org()).await? == 0 => {
            let (password, shown) = match admin_password {
                Some(p) => (p.to_string(), None),
                None => {
                    let p = agentry_auth::token::random_token("", 16)
                        .map_err(|e| ServiceError::internal("admin password", e))?;
                    (p.clone(), Some(p))
                }
            };
            let created = crate::service::account::create_user(
                platform,
                admin_email,
                "Administrator",
                Some(&password),
                Some((scope.org_id, None, "owner")),
            )
            .await;
            match created {
                Ok(id) => {
                    out.account = Some((admin_email.to_string(), shown));
                    Some(id)
                }
                // Another replica created it a moment ago.
                Err(e) if e.code == ErrorCode::UserExists => None,
                Err(e) => return Err(e),
            }
        }
        None => None,
    };
    if let Some(token) = env_token {
        if !token.starts_with("agt_") || token.len() < 36 {
            return Err(ServiceError::new(
                ErrorCode::ValidationFailed,
                "AGENTRY_ADMIN_TOKEN must start with 'agt_' and be at least 36 characters",
            ));
        }
        let digest = token_digest(token);
        if api_keys::find_active_by_hash(&platform.db, &digest)
            .await?
            .is_none()
        {
            let created = api_keys::create(
                &platform.db,
                scope,
                NewApiKey {
                    name: "admin (AGENTRY_ADMIN_TOKEN)",
                    key_hash: &digest,
                    prefix: &token[..12],
                    role: "owner",
                    org_scoped: true,
                    created_by: owner.map(|u| u.0),
                    expires_at: None,
                },
            )
            .await;
            match created {
                Ok(_) | Err(agentry_store::StoreError::Conflict) => {}
                Err(e) => return Err(e.into()),
            }
        }
        return Ok(out);
    }
    if api_keys::list(&platform.db, scope.org()).await?.is_empty() {
        let (_, key) = insert(platform, scope, "admin", Role::Owner, true, None, owner).await?;
        out.api_key = Some(key);
    }
    Ok(out)
}
