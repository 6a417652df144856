//! API keys: creation (shown once), authentication, and the admin token of first start.

use crate::error::{ServiceError, ServiceResult};
use crate::platform::Platform;
use agentry_core::ErrorCode;
use agentry_core::scope::{OrgScope, WorkspaceScope};
use agentry_store::api_keys::{self, ApiKeyRow, NewApiKey};
use chrono::{Duration, Utc};

/// Who is calling, as established by authentication.
#[derive(Debug, Clone)]
pub struct Principal {
    pub key_id: uuid::Uuid,
    pub scope: WorkspaceScope,
    pub role: String,
}

/// Creates a key and returns it with its plaintext, which is never stored or shown again.
pub async fn create(
    platform: &Platform,
    scope: WorkspaceScope,
    name: &str,
) -> ServiceResult<(ApiKeyRow, String)> {
    let name = name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err(ServiceError::validation(vec![
            agentry_core::agent::FieldError::new("name", "must be 1-200 characters"),
        ]));
    }
    create_with_role(platform, scope, name, "owner").await
}

async fn create_with_role(
    platform: &Platform,
    scope: WorkspaceScope,
    name: &str,
    role: &str,
) -> ServiceResult<(ApiKeyRow, String)> {
    let key = crate::secrets::generate_api_key()
        .map_err(|e| ServiceError::internal("generating an api key", e))?;
    let row = api_keys::create(
        &platform.db,
        scope,
        NewApiKey {
            name,
            key_hash: &platform.secrets.api_key_digest(&key),
            prefix: &key[..12],
            role,
        },
    )
    .await?;
    Ok((row, key))
}

pub async fn list(platform: &Platform, scope: OrgScope) -> ServiceResult<Vec<ApiKeyRow>> {
    Ok(api_keys::list(&platform.db, scope).await?)
}

pub async fn revoke(platform: &Platform, scope: OrgScope, id: uuid::Uuid) -> ServiceResult<()> {
    if api_keys::revoke(&platform.db, scope, id).await? {
        Ok(())
    } else {
        Err(ServiceError::new(
            ErrorCode::ApiKeyNotFound,
            format!("no API key with id {id}"),
        ))
    }
}

/// Finds the principal for a bearer token, or `None` for an unknown or revoked key.
pub async fn authenticate(platform: &Platform, token: &str) -> ServiceResult<Option<Principal>> {
    if !token.starts_with("agt_") || token.len() > 200 {
        return Ok(None);
    }
    let digest = platform.secrets.api_key_digest(token);
    let Some(row) = api_keys::find_active_by_hash(&platform.db, &digest).await? else {
        return Ok(None);
    };
    // Record use at most once a minute per key: authentication stays a read.
    let now = Utc::now();
    if row
        .last_used_at
        .is_none_or(|t| now - t > Duration::seconds(60))
    {
        let _ = api_keys::touch(&platform.db, row.id, now).await;
    }
    Ok(Some(Principal {
        key_id: row.id,
        scope: row.scope(),
        role: row.role.clone(),
    }))
}

/// On start: makes sure the admin can get in. With `AGENTRY_ADMIN_TOKEN` set, that token is
/// registered (once) as an owner key of the default org. Otherwise, on first start only (no keys
/// in the default org yet), a new key is generated and returned so it can be printed once.
pub async fn bootstrap_admin(
    platform: &Platform,
    env_token: Option<&str>,
) -> ServiceResult<Option<String>> {
    let scope = agentry_store::orgs::default_scope();
    if let Some(token) = env_token {
        if !token.starts_with("agt_") || token.len() < 36 {
            return Err(ServiceError::new(
                ErrorCode::ValidationFailed,
                "AGENTRY_ADMIN_TOKEN must start with 'agt_' and be at least 36 characters",
            ));
        }
        let digest = platform.secrets.api_key_digest(token);
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
                },
            )
            .await;
            match created {
                Ok(_) | Err(agentry_store::StoreError::Conflict) => {}
                Err(e) => return Err(e.into()),
            }
        }
        return Ok(None);
    }
    if !api_keys::list(&platform.db, scope.org()).await?.is_empty() {
        return Ok(None);
    }
    let (_, key) = create_with_role(platform, scope, "admin", "owner").await?;
    Ok(Some(key))
}
