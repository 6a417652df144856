//! A person's own account: creating it (operator or invitation), passwords and resets, TOTP,
//! sessions, and the GDPR export and erasure.

use crate::error::{ServiceError, ServiceResult};
use crate::platform::Platform;
use crate::secrets::token_digest;
use crate::service::auth::{self, ClientInfo, IssuedSession, totp_binding};
use crate::vault::INSTANCE;
use agentry_auth::{password, totp};
use agentry_core::ErrorCode;
use agentry_core::agent::FieldError;
use agentry_core::ids::{OrgId, SessionId, UserId, WorkspaceId};
use agentry_core::scope::OrgScope;
use agentry_store::StoreError;
use agentry_store::tokens;
use agentry_store::users::{self, NewUser, UserRow};
use agentry_store::{api_keys, audit, sessions};
use chrono::Utc;
use serde_json::{Value, json};

/// Checks the password policy and hashes (argon2id, off the async threads).
pub async fn hash_password(pw: &str) -> ServiceResult<String> {
    password::check_policy(pw).map_err(|e| {
        ServiceError::new(ErrorCode::WeakPassword, e.to_string())
            .with_details(json!({ "field": "password", "reason": e.code() }))
    })?;
    let pw = pw.to_string();
    tokio::task::spawn_blocking(move || password::hash(&pw))
        .await
        .map_err(|e| ServiceError::internal("password hash", e))?
        .map_err(|e| ServiceError::internal("password hash", e))
}

fn validate_new_user(email: &str, name: &str) -> ServiceResult<()> {
    let mut errors = Vec::new();
    if !crate::service::members::looks_like_email(&users::normalize_email(email)) {
        errors.push(FieldError::new("email", "must be an email address"));
    }
    if name.trim().chars().count() > 200 {
        errors.push(FieldError::new("name", "must be at most 200 characters"));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ServiceError::validation(errors))
    }
}

/// Creates an account (operator command or first start), optionally with a membership.
pub async fn create_user(
    platform: &Platform,
    email: &str,
    name: &str,
    password_text: Option<&str>,
    membership: Option<(OrgId, Option<WorkspaceId>, &str)>,
) -> ServiceResult<UserId> {
    validate_new_user(email, name)?;
    let hash = match password_text {
        Some(p) => Some(hash_password(p).await?),
        None => None,
    };
    users::create(
        &platform.db,
        NewUser {
            email,
            name,
            password_hash: hash.as_deref(),
        },
        membership,
    )
    .await
    .map_err(|e| match e {
        StoreError::Conflict => ServiceError::new(
            ErrorCode::UserExists,
            format!(
                "an account with the email {} already exists",
                users::normalize_email(email)
            ),
        ),
        other => other.into(),
    })
}

/// Accepts an invitation. A new person sets a password and gets an account; someone who already
/// has an account must be signed in as that account (`signed_in`), so an invitation link can
/// never be used to take over an existing account.
pub async fn accept_invitation(
    platform: &Platform,
    token: &str,
    name: &str,
    password_text: Option<&str>,
    signed_in: Option<UserId>,
    client: &ClientInfo,
) -> ServiceResult<(IssuedSession, tokens::InvitationRow)> {
    let invalid = || {
        ServiceError::new(
            ErrorCode::TokenInvalid,
            "this invitation link is not valid: it was used, revoked or has expired; ask for a new one",
        )
    };
    if token.trim().is_empty() {
        return Err(invalid());
    }
    let inv = tokens::find_invitation(&platform.db, &token_digest(token))
        .await?
        .ok_or_else(invalid)?;
    let existing = users::find_by_email(&platform.db, &inv.email).await?;
    let user: UserRow = match existing {
        Some(user) => {
            if signed_in != Some(UserId(user.id)) {
                return Err(ServiceError::new(
                    ErrorCode::Unauthorized,
                    format!(
                        "an account for {} exists; sign in as that account, then open the invitation link again",
                        inv.email
                    ),
                ));
            }
            user
        }
        None => {
            let pw = password_text.ok_or_else(|| {
                ServiceError::validation(vec![FieldError::new(
                    "password",
                    "choose a password for your new account",
                )])
            })?;
            let id = create_user(platform, &inv.email, name, Some(pw), None).await?;
            users::get(&platform.db, id).await?.ok_or_else(invalid)?
        }
    };
    if !tokens::accept_invitation(&platform.db, inv.id).await? {
        return Err(invalid());
    }
    let workspace = (inv.workspace_id != users::ORG_LEVEL).then_some(WorkspaceId(inv.workspace_id));
    users::set_membership(
        &platform.db,
        OrgScope {
            org_id: OrgId(inv.org_id),
        },
        workspace,
        UserId(user.id),
        &inv.role,
    )
    .await?;
    let session = auth::issue_session(
        platform,
        &user,
        Some(inv.org_id),
        user.totp_secret_encrypted.is_some(),
        client,
    )
    .await?;
    Ok((session, inv))
}

/// A password reset link for `email`, or `None` when no active account has it (the caller
/// answers the same either way).
pub async fn create_reset(
    platform: &Platform,
    email: &str,
) -> ServiceResult<Option<(UserRow, String)>> {
    let Some(user) = users::find_by_email(&platform.db, email)
        .await?
        .filter(UserRow::is_active)
    else {
        return Ok(None);
    };
    Ok(Some((
        user.clone(),
        reset_link_for(platform, UserId(user.id)).await?,
    )))
}

/// A fresh single-use reset token for the user.
pub async fn reset_link_for(platform: &Platform, user: UserId) -> ServiceResult<String> {
    let token = agentry_auth::token::random_token("rst_", 32)
        .map_err(|e| ServiceError::internal("reset token", e))?;
    let ttl = chrono::Duration::from_std(platform.config.identity.reset_link_ttl())
        .unwrap_or(chrono::Duration::minutes(30));
    tokens::create_reset(&platform.db, user, &token_digest(&token), Utc::now() + ttl).await?;
    Ok(token)
}

/// Sets a new password with a reset token: the token works once, every session of the user
/// ends, and every other outstanding reset link dies.
pub async fn reset_password(
    platform: &Platform,
    token: &str,
    new_password: &str,
) -> ServiceResult<UserId> {
    let invalid = || {
        ServiceError::new(
            ErrorCode::TokenInvalid,
            "this reset link is not valid: it was used or has expired; ask for a new one",
        )
    };
    if token.trim().is_empty() || !token.starts_with("rst_") {
        return Err(invalid());
    }
    // Check the new password first so a weak choice does not burn the link.
    let hash = hash_password(new_password).await?;
    let user = tokens::redeem_reset(&platform.db, &token_digest(token))
        .await?
        .ok_or_else(invalid)?;
    users::set_password(&platform.db, user, &hash).await?;
    sessions::revoke_all(&platform.db, user, None).await?;
    tokens::expire_resets(&platform.db, user).await?;
    Ok(user)
}

async fn verify_current_password(user: &UserRow, current: &str) -> ServiceResult<()> {
    let hash = user.password_hash.clone();
    let current = current.to_string();
    let ok = tokio::task::spawn_blocking(move || match hash {
        Some(h) => password::verify(&current, &h),
        None => false,
    })
    .await
    .map_err(|e| ServiceError::internal("password check", e))?;
    if ok {
        Ok(())
    } else {
        Err(ServiceError::new(
            ErrorCode::InvalidCredentials,
            "the current password is not right",
        ))
    }
}

async fn load(platform: &Platform, user: UserId) -> ServiceResult<UserRow> {
    users::get(&platform.db, user)
        .await?
        .filter(UserRow::is_active)
        .ok_or_else(|| ServiceError::new(ErrorCode::Unauthorized, "the account is not active"))
}

/// Changes the password (the current one is required) and ends every other session.
pub async fn change_password(
    platform: &Platform,
    user: UserId,
    keep: Option<SessionId>,
    current: &str,
    new_password: &str,
) -> ServiceResult<()> {
    let row = load(platform, user).await?;
    verify_current_password(&row, current).await?;
    let hash = hash_password(new_password).await?;
    users::set_password(&platform.db, user, &hash).await?;
    sessions::revoke_all(&platform.db, user, keep).await?;
    tokens::expire_resets(&platform.db, user).await?;
    Ok(())
}

/// A TOTP secret to enrol (not stored until confirmed with a code).
pub struct TotpEnrolment {
    pub secret: String,
    pub otpauth_uri: String,
}

pub fn begin_totp(email: &str) -> ServiceResult<TotpEnrolment> {
    let secret = totp::generate_secret().map_err(|e| ServiceError::internal("totp secret", e))?;
    Ok(TotpEnrolment {
        secret: totp::encode_base32(&secret),
        otpauth_uri: totp::otpauth_uri("Agentry", email, &secret),
    })
}

/// Turns on TOTP: the password proves it is the owner, the code proves the app has the secret.
pub async fn enable_totp(
    platform: &Platform,
    user: UserId,
    current_password: &str,
    secret_b32: &str,
    code: &str,
) -> ServiceResult<()> {
    let row = load(platform, user).await?;
    verify_current_password(&row, current_password).await?;
    let secret = totp::decode_base32(secret_b32).ok_or_else(|| {
        ServiceError::validation(vec![FieldError::new(
            "secret",
            "must be the base32 secret from enrolment",
        )])
    })?;
    let now = u64::try_from(Utc::now().timestamp()).unwrap_or(0);
    let step = totp::verify(&secret, code.trim(), now, None).ok_or_else(|| {
        ServiceError::new(
            ErrorCode::InvalidCredentials,
            "the code is not right; check the phone's clock",
        )
    })?;
    let sealed = platform
        .vault
        .seal(INSTANCE, &totp_binding(user), &totp::encode_base32(&secret))
        .await
        .map_err(|e| ServiceError::internal("sealing totp secret", e))?;
    users::set_totp(&platform.db, user, Some(&sealed)).await?;
    users::use_totp_step(&platform.db, user, i64::try_from(step).unwrap_or(i64::MAX)).await?;
    Ok(())
}

pub async fn disable_totp(
    platform: &Platform,
    user: UserId,
    current_password: &str,
) -> ServiceResult<()> {
    let row = load(platform, user).await?;
    verify_current_password(&row, current_password).await?;
    users::set_totp(&platform.db, user, None).await?;
    Ok(())
}

/// Everything stored about the user, machine-readable (GDPR Art. 15/20). Secrets (password
/// hash, TOTP seed, key digests) are not personal data to hand out and are omitted.
pub async fn export(platform: &Platform, user: UserId) -> ServiceResult<Value> {
    let row = load(platform, user).await?;
    let memberships = users::memberships_of(&platform.db, user).await?;
    let sessions = sessions::list_for_user(&platform.db, user).await?;
    let identities = users::identities_of(&platform.db, user).await?;
    let mut keys = Vec::new();
    let mut activity = Vec::new();
    let mut org_ids: Vec<uuid::Uuid> = memberships.iter().map(|m| m.org_id).collect();
    org_ids.dedup();
    for org_id in org_ids {
        let scope = OrgScope {
            org_id: OrgId(org_id),
        };
        for k in api_keys::list(&platform.db, scope).await? {
            if k.created_by == Some(user.0) {
                keys.push(
                    json!({"id": k.id, "org_id": k.org_id, "name": k.name, "prefix": k.prefix,
                    "role": k.role, "created_at": k.created_at, "last_used_at": k.last_used_at}),
                );
            }
        }
        let filter = audit::AuditFilter {
            actor_id: Some(user.0),
            limit: 10_000,
            ..Default::default()
        };
        for e in audit::list(&platform.db, scope, &filter).await? {
            activity.push(serde_json::to_value(&e).unwrap_or(Value::Null));
        }
    }
    Ok(json!({
        "user": {"id": row.id, "email": row.email, "name": row.name, "created_at": row.created_at,
                  "updated_at": row.updated_at, "totp_enabled": row.totp_secret_encrypted.is_some(),
                  "password_set": row.password_hash.is_some()},
        "memberships": memberships.iter().map(|m| json!({"org_id": m.org_id,
            "workspace_id": (m.workspace_id != users::ORG_LEVEL).then_some(m.workspace_id),
            "role": m.role, "created_at": m.created_at})).collect::<Vec<_>>(),
        "sessions": sessions.iter().map(|s| json!({"id": s.id, "created_at": s.created_at,
            "last_seen_at": s.last_seen_at, "ip": s.ip, "user_agent": s.user_agent})).collect::<Vec<_>>(),
        "identities": identities.iter().map(|(i, s)| json!({"issuer": i, "subject": s})).collect::<Vec<_>>(),
        "api_keys": keys,
        "audit_log": activity,
        "exported_at": Utc::now(),
    }))
}

/// Erases the user's personal data (GDPR Art. 17). Audit entries keep a pseudonymous actor id.
/// Refused while the user is the last owner of an organization.
pub async fn erase(platform: &Platform, user: UserId) -> ServiceResult<()> {
    let row = load(platform, user).await?;
    let memberships = users::memberships_of(&platform.db, user).await?;
    for m in &memberships {
        if m.is_org_level() && m.role == "owner" {
            let scope = OrgScope {
                org_id: OrgId(m.org_id),
            };
            if users::count_owners(&platform.db, scope).await? <= 1 {
                return Err(ServiceError::new(
                    ErrorCode::LastOwner,
                    "you are the last owner of an organization; make someone else owner (or delete it) first",
                ));
            }
        }
    }
    let pseudonym = format!("erased user {}", user.0.simple());
    users::erase(&platform.db, user).await?;
    audit::pseudonymise_actor(&platform.db, user.0, &pseudonym).await?;
    // Entries by others can name the person too (an invitation to their email): scrub it.
    let mut org_ids: Vec<uuid::Uuid> = memberships.iter().map(|m| m.org_id).collect();
    org_ids.dedup();
    for org_id in org_ids {
        let scope = OrgScope {
            org_id: OrgId(org_id),
        };
        let filter = audit::AuditFilter {
            limit: 100_000,
            ..Default::default()
        };
        for entry in audit::list(&platform.db, scope, &filter).await? {
            let mentions = |v: &Option<Value>| {
                v.as_ref()
                    .is_some_and(|v| v.to_string().contains(&row.email))
            };
            if mentions(&entry.before) || mentions(&entry.after) {
                let scrub = |v: Option<Value>| {
                    v.map(|v| {
                        serde_json::from_str(&v.to_string().replace(&row.email, &pseudonym))
                            .unwrap_or(Value::Null)
                    })
                };
                audit::scrub(
                    &platform.db,
                    entry.id,
                    scrub(entry.before),
                    scrub(entry.after),
                )
                .await?;
            }
        }
    }
    Ok(())
}
