//! Members of an organization: listing, roles, disabling, and invitations.

use crate::error::{ServiceError, ServiceResult};
use crate::platform::Platform;
use crate::secrets::token_digest;
use agentry_core::ErrorCode;
use agentry_core::agent::FieldError;
use agentry_core::authz::Role;
use agentry_core::ids::{UserId, WorkspaceId};
use agentry_core::scope::OrgScope;
use agentry_store::tokens::{self, InvitationRow, NewInvitation};
use agentry_store::users::{self, MemberRow};
use agentry_store::{orgs, sessions};
use chrono::Utc;

pub async fn list(platform: &Platform, scope: OrgScope) -> ServiceResult<Vec<MemberRow>> {
    Ok(users::members(&platform.db, scope).await?)
}

fn parse_role(role: &str) -> ServiceResult<Role> {
    Role::parse(role).ok_or_else(|| {
        ServiceError::validation(vec![FieldError::new(
            "role",
            "must be one of owner, admin, member, viewer",
        )])
    })
}

/// Only owners hand out or take away the owner role.
fn check_can_grant(actor_role: Option<Role>, role: Role) -> ServiceResult<()> {
    if role == Role::Owner && actor_role != Some(Role::Owner) {
        return Err(ServiceError::new(
            ErrorCode::Forbidden,
            "only an owner can make someone an owner",
        ));
    }
    Ok(())
}

async fn check_workspace(
    platform: &Platform,
    scope: OrgScope,
    workspace: Option<WorkspaceId>,
) -> ServiceResult<()> {
    if let Some(ws) = workspace
        && orgs::workspace(&platform.db, scope, ws).await?.is_none()
    {
        return Err(ServiceError::new(
            ErrorCode::WorkspaceNotFound,
            format!("no workspace with id {}", ws.0),
        ));
    }
    Ok(())
}

async fn member_rows(
    platform: &Platform,
    scope: OrgScope,
    user: UserId,
) -> ServiceResult<Vec<MemberRow>> {
    let rows: Vec<MemberRow> = users::members(&platform.db, scope)
        .await?
        .into_iter()
        .filter(|m| m.user_id == user.0)
        .collect();
    if rows.is_empty() {
        return Err(ServiceError::new(
            ErrorCode::UserNotFound,
            format!("no member with id {}", user.0),
        ));
    }
    Ok(rows)
}

/// Sets a member's role in the org (`workspace: None`) or in one workspace. Returns the roles
/// before, for the audit log.
pub async fn set_role(
    platform: &Platform,
    scope: OrgScope,
    actor_role: Option<Role>,
    user: UserId,
    workspace: Option<WorkspaceId>,
    role: &str,
) -> ServiceResult<Vec<MemberRow>> {
    let role = parse_role(role)?;
    let before = member_rows(platform, scope, user).await?;
    check_workspace(platform, scope, workspace).await?;
    check_can_grant(actor_role, role)?;
    let was_owner = before
        .iter()
        .any(|m| m.workspace_id == users::ORG_LEVEL && m.role == "owner");
    if was_owner && actor_role != Some(Role::Owner) {
        return Err(ServiceError::new(
            ErrorCode::Forbidden,
            "only an owner can change an owner's role",
        ));
    }
    if was_owner && workspace.is_none() && role != Role::Owner {
        ensure_another_owner(platform, scope).await?;
    }
    users::set_membership(&platform.db, scope, workspace, user, role.as_str()).await?;
    Ok(before)
}

async fn ensure_another_owner(platform: &Platform, scope: OrgScope) -> ServiceResult<()> {
    if users::count_owners(&platform.db, scope).await? <= 1 {
        return Err(ServiceError::new(
            ErrorCode::LastOwner,
            "this is the organization's last owner; make someone else an owner first",
        ));
    }
    Ok(())
}

/// Removes a member from the org (all their memberships) and ends their sessions there.
pub async fn remove(
    platform: &Platform,
    scope: OrgScope,
    actor_role: Option<Role>,
    user: UserId,
) -> ServiceResult<Vec<MemberRow>> {
    let before = member_rows(platform, scope, user).await?;
    let is_owner = before
        .iter()
        .any(|m| m.workspace_id == users::ORG_LEVEL && m.role == "owner");
    if is_owner {
        check_can_grant(actor_role, Role::Owner)?;
        ensure_another_owner(platform, scope).await?;
    }
    users::remove_membership(&platform.db, scope, None, user).await?;
    Ok(before)
}

/// Disables (or re-enables) a member's account: every session ends at once. Users can belong to
/// several orgs; an admin can only disable accounts whose every membership is in their org.
pub async fn set_disabled(
    platform: &Platform,
    scope: OrgScope,
    actor_role: Option<Role>,
    user: UserId,
    disabled: bool,
) -> ServiceResult<()> {
    let rows = member_rows(platform, scope, user).await?;
    let is_owner = rows
        .iter()
        .any(|m| m.workspace_id == users::ORG_LEVEL && m.role == "owner");
    if is_owner {
        check_can_grant(actor_role, Role::Owner)?;
        if disabled {
            ensure_another_owner(platform, scope).await?;
        }
    }
    let elsewhere = users::memberships_of(&platform.db, user)
        .await?
        .iter()
        .any(|m| m.org_id != scope.org_id.0);
    if elsewhere {
        return Err(ServiceError::new(
            ErrorCode::Forbidden,
            "this person is also a member of another organization; remove them from yours instead",
        ));
    }
    users::set_disabled(&platform.db, user, disabled).await?;
    if disabled {
        sessions::revoke_all(&platform.db, user, None).await?;
    }
    Ok(())
}

/// Ends all sessions of a member (an admin's "sign them out everywhere").
pub async fn revoke_sessions(
    platform: &Platform,
    scope: OrgScope,
    user: UserId,
) -> ServiceResult<u64> {
    member_rows(platform, scope, user).await?;
    Ok(sessions::revoke_all(&platform.db, user, None).await?)
}

/// A single-use password reset link for a member, for an admin to hand over when no email is
/// set up. Only an owner resets an owner, and only for people who belong to no other
/// organization (whose admins could otherwise take over each other's members). Returns the
/// member's email and the link.
pub async fn reset_link(
    platform: &Platform,
    scope: OrgScope,
    actor_role: Option<Role>,
    user: UserId,
) -> ServiceResult<(String, String)> {
    let rows = member_rows(platform, scope, user).await?;
    if rows.iter().any(|m| m.role == "owner") && actor_role != Some(Role::Owner) {
        return Err(ServiceError::new(
            ErrorCode::Forbidden,
            "only an owner can reset an owner's password",
        ));
    }
    let elsewhere = users::memberships_of(&platform.db, user)
        .await?
        .iter()
        .any(|m| m.org_id != scope.org_id.0);
    if elsewhere {
        return Err(ServiceError::new(
            ErrorCode::Forbidden,
            "this person also belongs to another organization; they can reset their password by email",
        ));
    }
    let token = crate::service::account::reset_link_for(platform, user).await?;
    let email = rows.first().map(|m| m.email.clone()).unwrap_or_default();
    Ok((
        email,
        platform
            .config
            .identity
            .link(&format!("/ui/reset?token={token}")),
    ))
}

/// An invitation with its one-time link (shown to the admin when no email is configured).
pub struct IssuedInvitation {
    pub invitation: InvitationRow,
    pub token: String,
}

pub async fn invite(
    platform: &Platform,
    scope: OrgScope,
    actor_role: Option<Role>,
    invited_by: Option<UserId>,
    email: &str,
    role: &str,
    workspace: Option<WorkspaceId>,
) -> ServiceResult<IssuedInvitation> {
    let role = parse_role(role)?;
    check_can_grant(actor_role, role)?;
    let email = users::normalize_email(email);
    if !looks_like_email(&email) {
        return Err(ServiceError::validation(vec![FieldError::new(
            "email",
            "must be an email address",
        )]));
    }
    check_workspace(platform, scope, workspace).await?;
    let token = agentry_auth::token::random_token("inv_", 32)
        .map_err(|e| ServiceError::internal("invitation token", e))?;
    let ttl = chrono::Duration::from_std(platform.config.identity.invitation_ttl)
        .unwrap_or(chrono::Duration::days(7));
    let invitation = tokens::create_invitation(
        &platform.db,
        scope,
        NewInvitation {
            workspace_id: workspace,
            email: &email,
            role: role.as_str(),
            token_hash: &token_digest(&token),
            invited_by,
            expires_at: Utc::now() + ttl,
        },
    )
    .await?;
    Ok(IssuedInvitation { invitation, token })
}

pub async fn list_invitations(
    platform: &Platform,
    scope: OrgScope,
) -> ServiceResult<Vec<InvitationRow>> {
    Ok(tokens::list_invitations(&platform.db, scope).await?)
}

pub async fn revoke_invitation(
    platform: &Platform,
    scope: OrgScope,
    id: uuid::Uuid,
) -> ServiceResult<()> {
    if tokens::revoke_invitation(&platform.db, scope, id).await? {
        Ok(())
    } else {
        Err(ServiceError::new(
            ErrorCode::InvitationNotFound,
            format!("no pending invitation with id {id}"),
        ))
    }
}

pub fn looks_like_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
}
